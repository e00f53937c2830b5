//! A live server read by `SCAN` + pipelined `DUMP`/`PEXPIRETIME`, turned into an RDB stream.
//!
//! Managed services (ElastiCache, Redis Cloud) refuse `SYNC`/`PSYNC`, so their data cannot be
//! taken over the replication protocol. [`scan_stream`] reads it key by key instead and
//! *synthesizes a dump*: a [`ScanStream`] is an [`std::io::Read`] that yields a valid RDB file, so
//! everything that reads dumps (the importer with its filters, `--db-map`, conflict rules, targets
//! and progress) takes it as it takes a file given as `-`.
//!
//! The dump is written as Redis writes one: the header (`REDIS00NN`, or `VALKEY0NN` for Valkey 9,
//! where NN is the RDB version of the server's `DUMP` payloads, the same for every key of one
//! server), `redis-ver` (or `valkey-ver`) and `ctime` AUX fields, the function libraries
//! (`FUNCTION LIST WITHCODE`, Redis 7.0 and later), then per database `SELECTDB`, a `RESIZEDB` hint
//! (from `INFO keyspace`) and one record per key: `EXPIRETIME_MS` when the key has a TTL, the
//! payload's KEY_META block if any, the type byte, the key and the payload's value bytes (the
//! payload without its 2-byte version and 8-byte CRC64 footer, which is checked first), and finally
//! `EOF` and the CRC64 trailer. Module values and Valkey payloads travel as they are: the value
//! bytes are never decoded here.
//!
//! **Not a point-in-time snapshot.** Each key is read at its own moment while the scan runs. `SCAN`
//! returns every key that exists for the whole scan at least once; a key written, changed or
//! deleted during the scan may be seen before or after the change, or (if it was created or deleted
//! meanwhile) not at all. Keys `SCAN` returned that were gone by the time of their `DUMP` are
//! skipped and counted ([`ScanStats::vanished`]). Databases are the ones `INFO keyspace` listed when
//! the scan started. Module aux data and the script cache are not reachable by commands and are not
//! in the stream.
//!
//! **TTLs.** On servers with `PEXPIRETIME` (Redis 7.0+, Valkey) a key's absolute expire time is read
//! exactly, right after its `DUMP`. Before 7.0 it is `PTTL` plus the local clock at the middle of the
//! pipeline's round trip: exact within half of that round trip (a few milliseconds).
//!
//! **Memory** is bounded whatever the dataset's size: the producer thread sends chunks of at most
//! [`ScanOptions::chunk_bytes`] through a channel of [`ScanOptions::channel_bytes`] and waits when
//! it is full; one pipeline of `DUMP`s asks for about [`ScanOptions::batch_bytes`] (the group size
//! adapts to the sizes seen; a single value larger than that is held whole, once); and the
//! duplicate check keeps 8 bytes (about 16 with the set's overhead) per key of the database being
//! scanned (see [`ScanStats::duplicates`]).

use crate::decode::crc64;
use crate::payload;
use crate::text::escape_bytes;
use crate::write::{put_len, put_string};
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a scan reads the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// Databases to read (`None`: every database `INFO keyspace` lists).
    pub dbs: Option<Vec<u64>>,
    /// The `COUNT` hint of each `SCAN`, and the most keys in one pipeline of `DUMP`s.
    pub count: u32,
    /// About how many bytes of `DUMP` replies one pipeline asks for: the number of keys in the
    /// next pipeline is this divided by the mean payload size seen in the last one.
    pub batch_bytes: usize,
    /// Size of the chunks the producer thread hands to the reader.
    pub chunk_bytes: usize,
    /// Most bytes waiting between the producer thread and the reader (rounded down to whole
    /// chunks, at least two).
    pub channel_bytes: usize,
    /// Deadline of connecting and of every read and write on the source's connection.
    pub timeout: Duration,
    /// Reconnections in a row after a dropped connection or a timeout before the scan gives up
    /// (`SCAN` resumes from its cursor, the `DUMP`s of the pipeline are sent again).
    pub retries: u32,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            dbs: None,
            count: 1000,
            batch_bytes: 8 << 20,
            chunk_bytes: 256 << 10,
            channel_bytes: 8 << 20,
            timeout: Duration::from_secs(30),
            retries: 5,
        }
    }
}

/// Why a scan failed. Messages name the key where one is concerned; they never hold the source's
/// address or password.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The source could not be reached or refused the login.
    #[error("connecting to the scan source: {0}")]
    Connect(#[source] redis::RedisError),
    /// A command failed on the connection (after the retries, for a dropped connection).
    #[error("{command} on the scan source: {source}")]
    Command {
        /// The command.
        command: &'static str,
        /// What the client said.
        #[source]
        source: redis::RedisError,
    },
    /// The source answered a command about one key with an error.
    #[error("{command} of key {key} in db {db}: the source replied {message}")]
    Reply {
        /// The command.
        command: &'static str,
        /// The database.
        db: u64,
        /// The key, quoted with `\xNN` escapes.
        key: String,
        /// The error reply.
        message: String,
    },
    /// A reply that does not have the shape its command gives.
    #[error("{command} on the scan source: unexpected reply {detail}")]
    UnexpectedReply {
        /// The command.
        command: &'static str,
        /// What came.
        detail: String,
    },
    /// A `DUMP` payload whose footer does not check (its CRC64, its length).
    #[error("DUMP of key {key} in db {db}: bad payload: {detail}")]
    BadPayload {
        /// The database.
        db: u64,
        /// The key, quoted with `\xNN` escapes.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// A payload with another RDB version than the ones before it (the server changed under the
    /// scan: a failover to another version).
    #[error("DUMP of key {key} in db {db}: RDB version {found}, while the keys before it had {expected} (did the source change during the scan?)")]
    VersionChanged {
        /// The database.
        db: u64,
        /// The key, quoted with `\xNN` escapes.
        key: String,
        /// This payload's version.
        found: u16,
        /// The version of the stream's header.
        expected: u16,
    },
    /// The producer thread stopped without saying why (it panicked).
    #[error("the scan stopped unexpectedly")]
    Stopped,
}

/// What the source said about itself when the scan started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceServer {
    /// `redis_version` (for Valkey: `valkey_version`).
    pub version: String,
    /// `server_name:valkey` in `INFO server`.
    pub valkey: bool,
    /// The databases to read, with `INFO keyspace`'s key and expire counts: (db, keys, expires).
    pub databases: Vec<(u64, u64, u64)>,
}

/// Counts of a scan so far (final once the stream has been read to its end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Key records written.
    pub keys: u64,
    /// Keys `SCAN` returned that were gone by the time of their `DUMP` (nil) or of their TTL
    /// query (deleted or expired in between): skipped.
    pub vanished: u64,
    /// Keys `SCAN` returned more than once (it may, while the server resizes its tables): written
    /// once. The check keeps a 64-bit hash (keyed at random per run) of each key of the current
    /// database, so two different keys would be taken for one with a probability of about
    /// n²/2⁶⁵ for n keys (under 3·10⁻⁶ for 10 million keys); the count says how many were left out.
    pub duplicates: u64,
    /// RDB bytes produced.
    pub bytes: u64,
    /// Times the producer found the channel full and waited for the reader.
    pub stalls: u64,
    /// Most bytes waiting in the channel at once (the chunk being handed over included).
    pub peak_queued_bytes: u64,
    /// Reconnections to the source.
    pub reconnects: u64,
}

#[derive(Debug, Default)]
struct Counters {
    keys: AtomicU64,
    vanished: AtomicU64,
    duplicates: AtomicU64,
    bytes: AtomicU64,
    stalls: AtomicU64,
    queued: AtomicU64,
    peak_queued: AtomicU64,
    reconnects: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ScanStats {
        let c = self;
        ScanStats {
            keys: c.keys.load(Relaxed),
            vanished: c.vanished.load(Relaxed),
            duplicates: c.duplicates.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            stalls: c.stalls.load(Relaxed),
            peak_queued_bytes: c.peak_queued.load(Relaxed),
            reconnects: c.reconnects.load(Relaxed),
        }
    }
}

enum Msg {
    Data(Vec<u8>),
    End,
    Failed(ScanError),
}

/// A live server's data as an RDB stream; see the [module documentation](self).
///
/// Reading yields the dump's bytes; a failure of the scan is an [`io::Error`] whose inner error
/// ([`io::Error::get_ref`]) is the [`ScanError`]. Dropping the stream stops the scan (the producer
/// thread ends at its next hand-over).
pub struct ScanStream {
    rx: Receiver<Msg>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    failed: Option<String>,
    counters: Arc<Counters>,
    server: SourceServer,
    capacity_bytes: usize,
}

impl std::fmt::Debug for ScanStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanStream")
            .field("server", &self.server)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ScanStream {
    /// The counts so far.
    pub fn stats(&self) -> ScanStats {
        self.counters.snapshot()
    }

    /// A handle on the counts that stays valid after the stream was handed on (to the importer):
    /// call [`ScanStatsHandle::get`] once it has been read.
    pub fn stats_handle(&self) -> ScanStatsHandle {
        ScanStatsHandle(Arc::clone(&self.counters))
    }

    /// The source's version and the databases being read.
    pub fn server(&self) -> &SourceServer {
        &self.server
    }

    /// The channel's bound: the most bytes of whole chunks that wait between the producer
    /// thread and the reader ([`ScanOptions::channel_bytes`] rounded down to whole chunks).
    pub fn channel_capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }
}

/// The counts of a [`ScanStream`], readable after the stream itself was moved away.
#[derive(Debug, Clone)]
pub struct ScanStatsHandle(Arc<Counters>);

impl ScanStatsHandle {
    /// The counts so far.
    pub fn get(&self) -> ScanStats {
        self.0.snapshot()
    }
}

impl Read for ScanStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.cur.len() {
                let n = buf.len().min(self.cur.len() - self.pos);
                buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if let Some(e) = &self.failed {
                return Err(io::Error::other(e.clone()));
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            // No deadline is needed here: the producer's waits all have one (the connection's
            // timeouts, bounded retries) except its hand-over to this reader, which cannot be
            // waiting while the reader is. So this returns, with data, the end, or the sender
            // gone when the thread ended.
            match self.rx.recv() {
                Ok(Msg::Data(chunk)) => {
                    self.counters.queued.fetch_sub(chunk.len() as u64, Relaxed);
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Msg::End) => self.done = true,
                Ok(Msg::Failed(e)) => {
                    self.failed = Some(e.to_string());
                    return Err(io::Error::other(e));
                }
                Err(_) => {
                    self.failed = Some(ScanError::Stopped.to_string());
                    return Err(io::Error::other(ScanError::Stopped));
                }
            }
        }
    }
}

/// Starts reading the server `client` points at; see the [module documentation](self).
///
/// Connects (the connection's database, if any, does not matter: every database is selected),
/// reads `INFO server`, `INFO keyspace` and the function libraries, then returns while a
/// background thread scans. A connection or login failure is returned here.
///
/// ```no_run
/// use rdbkit::source::scan::{scan_stream, ScanOptions};
/// let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
/// let mut stream = scan_stream(client, ScanOptions::default())?;
/// let mut file = std::fs::File::create("live.rdb").unwrap();
/// std::io::copy(&mut stream, &mut file).unwrap();
/// eprintln!("{:?}", stream.stats());
/// # Ok::<(), rdbkit::source::scan::ScanError>(())
/// ```
pub fn scan_stream(client: redis::Client, opts: ScanOptions) -> Result<ScanStream, ScanError> {
    let con = connect(&client, &opts).map_err(ScanError::Connect)?;
    let mut p = Producer {
        client,
        con,
        chunk_bytes: opts.chunk_bytes.max(64),
        group: INITIAL_GROUP.min(opts.count.max(1) as usize),
        opts,
        server: SourceServer {
            version: String::new(),
            valkey: false,
            databases: Vec::new(),
        },
        ttl: TtlCommand::PExpireTime,
        functions: Vec::new(),
        tx: None,
        counters: Arc::new(Counters::default()),
        out: Vec::new(),
        crc: 0,
        version: None,
        db: 0,
        hasher: RandomState::new(),
    };
    p.introduce()?;
    let slots = (p.opts.channel_bytes / p.chunk_bytes).max(2);
    let (tx, rx) = sync_channel(slots);
    p.tx = Some(tx);
    p.out = Vec::with_capacity(p.chunk_bytes);
    let stream = ScanStream {
        rx,
        cur: Vec::new(),
        pos: 0,
        done: false,
        failed: None,
        counters: Arc::clone(&p.counters),
        server: p.server.clone(),
        capacity_bytes: slots * p.chunk_bytes,
    };
    std::thread::Builder::new()
        .name("rdbkit-scan".into())
        .spawn(move || p.run_and_report())
        .map_err(|e| ScanError::Command {
            command: "starting the scan thread",
            source: redis::RedisError::from(e),
        })?;
    Ok(stream)
}

/// Keys in the first pipeline of `DUMP`s (later ones follow the payload sizes seen).
const INITIAL_GROUP: usize = 64;

/// How the absolute expire time is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TtlCommand {
    /// `PEXPIRETIME`: absolute, exact (Redis 7.0+, Valkey).
    PExpireTime,
    /// `PTTL` + the local clock (older servers).
    Pttl,
}

impl TtlCommand {
    fn name(self) -> &'static str {
        match self {
            TtlCommand::PExpireTime => "PEXPIRETIME",
            TtlCommand::Pttl => "PTTL",
        }
    }
}

/// Why the producer stops.
enum Halt {
    /// The reader dropped the stream: nobody to tell.
    ReaderGone,
    Error(ScanError),
}

impl From<ScanError> for Halt {
    fn from(e: ScanError) -> Self {
        Halt::Error(e)
    }
}

struct Producer {
    client: redis::Client,
    con: redis::Connection,
    opts: ScanOptions,
    chunk_bytes: usize,
    /// Keys in the next pipeline of `DUMP`s.
    group: usize,
    server: SourceServer,
    ttl: TtlCommand,
    /// FUNCTION2 payloads, written after the header.
    functions: Vec<Vec<u8>>,
    tx: Option<SyncSender<Msg>>,
    counters: Arc<Counters>,
    /// The chunk being filled.
    out: Vec<u8>,
    /// CRC64 of the chunks handed over.
    crc: u64,
    /// The RDB version of the header, once written.
    version: Option<u16>,
    /// The database the connection has selected.
    db: u64,
    hasher: RandomState,
}

fn connect(client: &redis::Client, opts: &ScanOptions) -> redis::RedisResult<redis::Connection> {
    let con = client.get_connection_with_timeout(opts.timeout)?;
    con.set_read_timeout(Some(opts.timeout))?;
    con.set_write_timeout(Some(opts.timeout))?;
    Ok(con)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `name:value` from an `INFO` reply.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.trim_end()
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix(':'))
    })
}

/// (db, keys, expires) of each `dbN:keys=…,expires=…` line of `INFO keyspace`.
fn keyspace(info: &str) -> Vec<(u64, u64, u64)> {
    let mut dbs: Vec<(u64, u64, u64)> = info
        .lines()
        .filter_map(|l| {
            let (db, fields) = l.trim().strip_prefix("db")?.split_once(':')?;
            let field = |name: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
            };
            Some((
                db.parse().ok()?,
                field("keys")?,
                field("expires").unwrap_or(0),
            ))
        })
        .collect();
    dbs.sort_unstable();
    dbs
}

/// (major, minor) of a version string such as `7.2.4`.
fn major_minor(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// The RDB version a server writes, from its version: used only for the header of a scan that
/// found no key (otherwise the payloads' version is used). Format §10.1, §16.1.
fn rdb_version_of(server: &SourceServer) -> u16 {
    let v = major_minor(&server.version);
    if server.valkey {
        return if v.0 >= 9 { 80 } else { 11 };
    }
    match v {
        (9.., _) | (8, 8..) => 14,
        (8, 6..) => 13,
        (8, _) | (7, 4..) => 12,
        (7, 2..) => 11,
        (7, _) => 10,
        (5 | 6, _) => 9,
        (4, _) => 8,
        (3, 2..) => 7,
        _ => 6,
    }
}

fn is_retryable(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// The text of an error reply (`ERR …`, `NOPERM …`).
fn reply_error(v: &redis::Value) -> String {
    match v {
        redis::Value::ServerError(e) => match e.details() {
            Some(d) => format!("{} {d}", e.code()),
            None => e.code().to_string(),
        },
        v => format!("{v:?}"),
    }
}

impl Producer {
    /// `INFO server`, `INFO keyspace`, the function libraries.
    fn introduce(&mut self) -> Result<(), ScanError> {
        let info = |con: &mut redis::Connection, section: &str| -> Result<String, ScanError> {
            redis::cmd("INFO")
                .arg(section)
                .query::<String>(con)
                .map_err(|source| ScanError::Command {
                    command: "INFO",
                    source,
                })
        };
        let server = info(&mut self.con, "server")?;
        self.server.valkey = info_field(&server, "server_name") == Some("valkey");
        let redis_version = info_field(&server, "redis_version").unwrap_or_default();
        self.server.version = if self.server.valkey {
            info_field(&server, "valkey_version").unwrap_or(redis_version)
        } else {
            redis_version
        }
        .to_string();
        let (major, _) = major_minor(redis_version);
        self.ttl = if major >= 7 {
            TtlCommand::PExpireTime
        } else {
            TtlCommand::Pttl
        };
        let mut dbs = keyspace(&info(&mut self.con, "keyspace")?);
        if let Some(wanted) = &self.opts.dbs {
            dbs.retain(|(db, _, _)| wanted.contains(db));
        }
        self.server.databases = dbs;
        if major >= 7 {
            self.functions = self.function_libraries()?;
        }
        Ok(())
    }

    /// The code of every function library (`FUNCTION LIST WITHCODE`).
    fn function_libraries(&mut self) -> Result<Vec<Vec<u8>>, ScanError> {
        let reply: redis::Value = redis::cmd("FUNCTION")
            .arg("LIST")
            .arg("WITHCODE")
            .query(&mut self.con)
            .map_err(|source| ScanError::Command {
                command: "FUNCTION LIST",
                source,
            })?;
        let unexpected = |v: &redis::Value| ScanError::UnexpectedReply {
            command: "FUNCTION LIST",
            detail: format!("{v:?}").chars().take(200).collect(),
        };
        let redis::Value::Array(libs) = &reply else {
            return Err(unexpected(&reply));
        };
        let mut out = Vec::with_capacity(libs.len());
        for lib in libs {
            let pairs: Vec<(&redis::Value, &redis::Value)> = match lib {
                redis::Value::Array(kv) => kv
                    .chunks(2)
                    .filter_map(|p| Some((p.first()?, p.get(1)?)))
                    .collect(),
                redis::Value::Map(kv) => kv.iter().map(|(k, v)| (k, v)).collect(),
                v => return Err(unexpected(v)),
            };
            let is_code = |k: &redis::Value| match k {
                redis::Value::BulkString(k) => k == b"library_code",
                redis::Value::SimpleString(k) => k == "library_code",
                _ => false,
            };
            let code = pairs.iter().find_map(|(k, v)| match v {
                redis::Value::BulkString(code) if is_code(k) => Some(code.clone()),
                _ => None,
            });
            out.push(code.ok_or_else(|| unexpected(lib))?);
        }
        Ok(out)
    }

    fn run_and_report(mut self) {
        let msg = match self.run() {
            Ok(()) => Msg::End,
            Err(Halt::Error(e)) => Msg::Failed(e),
            Err(Halt::ReaderGone) => return,
        };
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }

    fn run(&mut self) -> Result<(), Halt> {
        let dbs = self.server.databases.clone();
        for (db, keys, expires) in dbs {
            self.scan_db(db, keys, expires)?;
        }
        if self.version.is_none() {
            self.header(rdb_version_of(&self.server))?;
        }
        self.put(&[0xff])?;
        self.crc = crc64(self.crc, &self.out);
        let crc = self.crc;
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.flush_unhashed()
    }

    /// Runs `f` on the connection; a dropped connection or a timeout reconnects (selecting the
    /// current database again) and runs it again, up to [`ScanOptions::retries`] times in a row.
    fn retrying<T>(
        &mut self,
        command: &'static str,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, ScanError> {
        let mut attempt = 0u32;
        loop {
            match f(&mut self.con) {
                Ok(v) => return Ok(v),
                Err(e) if is_retryable(&e) && attempt < self.opts.retries => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100u64 << attempt.min(6)));
                    self.counters.reconnects.fetch_add(1, Relaxed);
                    match connect(&self.client, &self.opts).and_then(|mut c| {
                        redis::cmd("SELECT").arg(self.db).exec(&mut c)?;
                        Ok(c)
                    }) {
                        Ok(c) => self.con = c,
                        // the next attempt fails on the old connection and counts as one
                        Err(e) if is_retryable(&e) => {}
                        Err(source) => return Err(ScanError::Command { command, source }),
                    }
                }
                Err(source) => return Err(ScanError::Command { command, source }),
            }
        }
    }

    fn scan_db(&mut self, db: u64, keys: u64, expires: u64) -> Result<(), Halt> {
        self.db = db;
        self.retrying("SELECT", |c| redis::cmd("SELECT").arg(db).exec(c))?;
        // 64-bit hashes of the keys written: SCAN may return a key twice (module docs)
        let mut seen: HashSet<u64> = HashSet::new();
        let mut selected = false;
        let mut cursor: u64 = 0;
        let count = self.opts.count.max(1);
        loop {
            let (next, mut batch): (u64, Vec<Vec<u8>>) = self.retrying("SCAN", |c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(count)
                    .query(c)
            })?;
            let before = batch.len();
            batch.retain(|k| !seen.contains(&self.hasher.hash_one(k)));
            self.counters
                .duplicates
                .fetch_add((before - batch.len()) as u64, Relaxed);
            let mut i = 0;
            while i < batch.len() {
                let n = self.group.min(batch.len() - i);
                let group = &batch[i..i + n];
                let bytes =
                    self.dump_group(db, group, &mut seen, &mut selected, (keys, expires))?;
                // the next group asks for about batch_bytes, growing at most twofold
                let mean = (bytes / n.max(1)).max(1);
                self.group = (self.opts.batch_bytes / mean)
                    .clamp(1, count as usize)
                    .min(self.group * 2);
                i += n;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// One pipeline of `DUMP` + TTL for `keys`; writes their records. Returns the payload bytes.
    fn dump_group(
        &mut self,
        db: u64,
        keys: &[Vec<u8>],
        seen: &mut HashSet<u64>,
        selected: &mut bool,
        hints: (u64, u64),
    ) -> Result<usize, Halt> {
        let ttl = self.ttl;
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("DUMP").arg(k).cmd(ttl.name()).arg(k);
        }
        let packed = pipe.get_packed_pipeline();
        let (sent, replies) = self.retrying("DUMP", |c| {
            let sent = now_ms();
            let r = redis::ConnectionLike::req_packed_commands(c, &packed, 0, keys.len() * 2)?;
            Ok((sent, r))
        })?;
        // PTTL's moment: the middle of the round trip
        let at = sent + (now_ms() - sent) / 2;
        if replies.len() != keys.len() * 2 {
            return Err(ScanError::UnexpectedReply {
                command: "DUMP",
                detail: format!("{} replies to {} commands", replies.len(), keys.len() * 2),
            }
            .into());
        }
        let mut bytes = 0;
        let mut record = Vec::new();
        for (key, pair) in keys.iter().zip(replies.chunks(2)) {
            let quoted = || escape_bytes(key);
            let p = match &pair[0] {
                redis::Value::Nil => {
                    self.counters.vanished.fetch_add(1, Relaxed);
                    continue;
                }
                redis::Value::BulkString(p) => p,
                e @ redis::Value::ServerError(_) => {
                    return Err(ScanError::Reply {
                        command: "DUMP",
                        db,
                        key: quoted(),
                        message: reply_error(e),
                    }
                    .into())
                }
                v => {
                    return Err(ScanError::UnexpectedReply {
                        command: "DUMP",
                        detail: format!("{v:?}").chars().take(200).collect(),
                    }
                    .into())
                }
            };
            bytes += p.len();
            let expire_ms = match &pair[1] {
                redis::Value::Int(-2) => {
                    // deleted or expired between DUMP and the TTL query
                    self.counters.vanished.fetch_add(1, Relaxed);
                    continue;
                }
                redis::Value::Int(t) if *t < 0 => None,
                redis::Value::Int(t) => Some(match ttl {
                    TtlCommand::PExpireTime => *t,
                    TtlCommand::Pttl => at.saturating_add(*t),
                }),
                e @ redis::Value::ServerError(_) => {
                    return Err(ScanError::Reply {
                        command: ttl.name(),
                        db,
                        key: quoted(),
                        message: reply_error(e),
                    }
                    .into())
                }
                v => {
                    return Err(ScanError::UnexpectedReply {
                        command: ttl.name(),
                        detail: format!("{v:?}").chars().take(200).collect(),
                    }
                    .into())
                }
            };
            let payload = payload::verify(p).map_err(|e| ScanError::BadPayload {
                db,
                key: quoted(),
                detail: e.to_string(),
            })?;
            if !seen.insert(self.hasher.hash_one(key)) {
                self.counters.duplicates.fetch_add(1, Relaxed);
                continue;
            }
            match self.version {
                None => self.header(payload.rdb_version)?,
                Some(v) if v != payload.rdb_version => {
                    return Err(ScanError::VersionChanged {
                        db,
                        key: quoted(),
                        found: payload.rdb_version,
                        expected: v,
                    }
                    .into())
                }
                Some(_) => {}
            }
            if !*selected {
                *selected = true;
                let mut sel = vec![0xfe];
                put_len(&mut sel, db);
                if self.version.is_some_and(|v| v >= 7) {
                    sel.push(0xfb);
                    put_len(&mut sel, hints.0);
                    put_len(&mut sel, hints.1);
                }
                self.put(&sel)?;
            }
            record.clear();
            if let Some(ms) = expire_ms {
                record.push(0xfc);
                record.extend_from_slice(&ms.to_le_bytes());
            }
            if let Some(m) = payload.meta {
                record.extend_from_slice(m);
            }
            record.push(payload.type_id);
            put_string(&mut record, key);
            self.put(&record)?;
            self.put(payload.raw)?;
            self.counters.keys.fetch_add(1, Relaxed);
        }
        Ok(bytes)
    }

    /// The header: magic and version, AUX fields, function libraries.
    fn header(&mut self, version: u16) -> Result<(), Halt> {
        self.version = Some(version);
        let mut h = if version >= 80 {
            format!("VALKEY{version:03}").into_bytes()
        } else {
            format!("REDIS{version:04}").into_bytes()
        };
        if version >= 7 {
            let ver_key: &[u8] = if self.server.valkey {
                b"valkey-ver"
            } else {
                b"redis-ver"
            };
            let aux: [(&[u8], Vec<u8>); 3] = [
                (ver_key, self.server.version.clone().into_bytes()),
                (b"redis-bits", b"64".to_vec()),
                (b"ctime", (now_ms() / 1000).to_string().into_bytes()),
            ];
            for (k, v) in aux {
                h.push(0xfa);
                put_string(&mut h, k);
                put_string(&mut h, &v);
            }
        }
        if version >= 10 {
            for code in std::mem::take(&mut self.functions) {
                h.push(0xf5);
                put_string(&mut h, &code);
            }
        }
        self.put(&h)
    }

    /// Appends to the chunk, handing over every full one.
    fn put(&mut self, mut data: &[u8]) -> Result<(), Halt> {
        while !data.is_empty() {
            let n = (self.chunk_bytes - self.out.len()).min(data.len());
            self.out.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.out.len() >= self.chunk_bytes {
                self.crc = crc64(self.crc, &self.out);
                self.flush_unhashed()?;
            }
        }
        Ok(())
    }

    /// Hands the chunk over (its bytes already in the CRC, or not part of it: the trailer).
    fn flush_unhashed(&mut self) -> Result<(), Halt> {
        if self.out.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.out, Vec::with_capacity(self.chunk_bytes));
        let len = chunk.len() as u64;
        let c = &self.counters;
        c.bytes.fetch_add(len, Relaxed);
        let queued = c.queued.fetch_add(len, Relaxed) + len;
        c.peak_queued.fetch_max(queued, Relaxed);
        let Some(tx) = &self.tx else {
            return Err(Halt::ReaderGone);
        };
        match tx.try_send(Msg::Data(chunk)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(m)) => {
                c.stalls.fetch_add(1, Relaxed);
                tx.send(m).map_err(|_| Halt::ReaderGone)
            }
            Err(TrySendError::Disconnected(_)) => Err(Halt::ReaderGone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decoder, Item};
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A fake source on 127.0.0.1 for what a real server does only by chance (SCAN returning a
    /// key twice, a key deleted between SCAN and DUMP, a damaged payload, a dropped connection):
    /// `answer(conn, cmd)` gives the raw RESP reply to each command of connection `conn` (0
    /// first); `None` closes the connection.
    fn fake(answer: impl Fn(usize, &[String]) -> Option<Vec<u8>> + Send + 'static) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (n, sock) in listener.incoming().enumerate() {
                let Ok(sock) = sock else { return };
                let mut out = sock.try_clone().unwrap();
                let mut r = BufReader::new(sock);
                let mut line = String::new();
                'conn: loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let argc: usize = line.trim()[1..].parse().unwrap();
                    let mut cmd = Vec::with_capacity(argc);
                    for _ in 0..argc {
                        line.clear();
                        r.read_line(&mut line).unwrap();
                        let len: usize = line.trim()[1..].parse().unwrap();
                        let mut arg = vec![0u8; len + 2];
                        std::io::Read::read_exact(&mut r, &mut arg).unwrap();
                        arg.truncate(len);
                        cmd.push(String::from_utf8(arg).unwrap());
                    }
                    match answer(n, &cmd) {
                        Some(reply) => out.write_all(&reply).unwrap(),
                        None => break 'conn,
                    }
                }
            }
        });
        port
    }

    fn bulk(b: &[u8]) -> Vec<u8> {
        let mut v = format!("${}\r\n", b.len()).into_bytes();
        v.extend_from_slice(b);
        v.extend_from_slice(b"\r\n");
        v
    }

    /// The fake's answers to everything but SCAN and DUMP: a Redis 7.2 with one database.
    fn common(cmd: &[String]) -> Vec<u8> {
        match (cmd[0].as_str(), cmd.get(1).map(String::as_str)) {
            ("INFO", Some("server")) => bulk(b"redis_version:7.2.4\r\n"),
            ("INFO", Some("keyspace")) => bulk(b"db0:keys=5,expires=1\r\n"),
            ("FUNCTION", _) => b"*0\r\n".to_vec(),
            // key "late" is deleted between its DUMP and its PEXPIRETIME; "t" has a TTL
            ("PEXPIRETIME", Some("late")) => b":-2\r\n".to_vec(),
            ("PEXPIRETIME", Some("t")) => b":4102444800000\r\n".to_vec(),
            ("PEXPIRETIME", _) => b":-1\r\n".to_vec(),
            _ => b"+OK\r\n".to_vec(),
        }
    }

    fn scan_reply(cursor: &str, keys: &[&str]) -> Vec<u8> {
        let mut v = b"*2\r\n".to_vec();
        v.extend(bulk(cursor.as_bytes()));
        v.extend(format!("*{}\r\n", keys.len()).into_bytes());
        for k in keys {
            v.extend(bulk(k.as_bytes()));
        }
        v
    }

    /// DUMP of the string `value` as Redis 7.2 writes it.
    fn dump_of(value: &str) -> Vec<u8> {
        let mut raw = Vec::new();
        put_string(&mut raw, value.as_bytes());
        bulk(&payload::build(None, 0, &raw, 11))
    }

    fn keys_of(dump: &[u8]) -> Vec<(String, Option<i64>)> {
        Decoder::new(dump)
            .filter_map(|i| match i.unwrap() {
                Item::Entry(e) => Some((String::from_utf8_lossy(&e.key).into_owned(), e.expire_ms)),
                _ => None,
            })
            .collect()
    }

    fn read_all(port: u16) -> (io::Result<Vec<u8>>, ScanStats) {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let opts = ScanOptions {
            timeout: Duration::from_secs(5),
            ..ScanOptions::default()
        };
        let mut s = scan_stream(client, opts).unwrap();
        let mut out = Vec::new();
        let r = s.read_to_end(&mut out).map(|_| out);
        (r, s.stats())
    }

    #[test]
    fn keys_returned_twice_written_once_and_vanished_ones_skipped() {
        let port = fake(|_, cmd| {
            Some(match (cmd[0].as_str(), cmd.get(1).map(String::as_str)) {
                ("SCAN", Some("0")) => scan_reply("7", &["a", "b", "t"]),
                // "b" again (a table resized under the scan), "gone" deleted before its DUMP
                ("SCAN", _) => scan_reply("0", &["b", "gone", "late", "c"]),
                ("DUMP", Some("gone")) => b"$-1\r\n".to_vec(),
                ("DUMP", Some(k)) => dump_of(&format!("value of {k}")),
                _ => common(cmd),
            })
        });
        let (dump, stats) = read_all(port);
        let dump = dump.unwrap();
        assert_eq!(&dump[..9], b"REDIS0011");
        let t = Some(4_102_444_800_000);
        let want = [("a", None), ("b", None), ("t", t), ("c", None)];
        let want: Vec<_> = want.iter().map(|(k, e)| (k.to_string(), *e)).collect();
        // the Decoder checks the CRC64 trailer too
        assert_eq!(keys_of(&dump), want);
        assert_eq!(
            (stats.keys, stats.vanished, stats.duplicates, stats.bytes),
            (4, 2, 1, dump.len() as u64)
        );
    }

    #[test]
    fn a_damaged_payload_is_an_error_naming_its_key() {
        let port = fake(|_, cmd| {
            Some(match (cmd[0].as_str(), cmd.get(1).map(String::as_str)) {
                ("SCAN", _) => scan_reply("0", &["fine", "bro\x01ken"]),
                ("DUMP", Some("fine")) => dump_of("ok"),
                ("DUMP", Some(_)) => {
                    let mut p = payload::build(None, 0, b"\x03abc", 11);
                    p[2] ^= 0x20;
                    bulk(&p)
                }
                _ => common(cmd),
            })
        });
        let (dump, _) = read_all(port);
        let e = dump.unwrap_err().to_string();
        assert!(
            e.contains(r#"DUMP of key "bro\x01ken" in db 0: bad payload"#)
                && e.contains("CRC64 mismatch"),
            "{e}"
        );
    }

    #[test]
    fn a_dropped_connection_resumes_from_the_scan_cursor() {
        // the first connection closes when asked for the second SCAN page
        let port = fake(|conn, cmd| {
            Some(match (cmd[0].as_str(), cmd.get(1).map(String::as_str)) {
                ("SCAN", Some("0")) => scan_reply("9", &["a", "b"]),
                ("SCAN", _) if conn == 0 => return None,
                ("SCAN", _) => scan_reply("0", &["c"]),
                ("DUMP", Some(k)) => dump_of(k),
                _ => common(cmd),
            })
        });
        let (dump, stats) = read_all(port);
        let names: Vec<String> = keys_of(&dump.unwrap()).into_iter().map(|k| k.0).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!((stats.keys, stats.reconnects), (3, 1));
    }

    #[test]
    fn keyspace_lines() {
        let info = "# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0,subexpiry=0\r\ndb12:keys=1,expires=0,avg_ttl=0\r\n";
        assert_eq!(keyspace(info), vec![(0, 10, 2), (12, 1, 0)]);
        assert_eq!(keyspace("# Keyspace\r\n"), vec![]);
    }

    #[test]
    fn info_fields() {
        let info =
            "# Server\r\nredis_version:8.2.3\r\nserver_name:valkey\r\nvalkey_version:8.1.8\r\n";
        assert_eq!(info_field(info, "redis_version"), Some("8.2.3"));
        assert_eq!(info_field(info, "server_name"), Some("valkey"));
        assert_eq!(info_field(info, "redis"), None);
    }

    #[test]
    fn versions_of_servers_that_had_no_key() {
        let s = |v: &str, valkey| SourceServer {
            version: v.into(),
            valkey,
            databases: vec![],
        };
        assert_eq!(rdb_version_of(&s("6.2.14", false)), 9);
        assert_eq!(rdb_version_of(&s("7.0.15", false)), 10);
        assert_eq!(rdb_version_of(&s("7.2.4", false)), 11);
        assert_eq!(rdb_version_of(&s("8.2.3", false)), 12);
        assert_eq!(rdb_version_of(&s("8.1.8", true)), 11);
        assert_eq!(rdb_version_of(&s("9.0.0", true)), 80);
    }
}
