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

use crate::crc::crc64;
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

mod producer;
#[cfg(test)]
mod tests;

use producer::*;

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
