//! The producer thread of a scan: `SCAN`, pipelined `DUMP` + `PEXPIRETIME`/`PTTL`, the records
//! of the synthesized dump, and what it sends through the stream's channel.

use super::*;

/// How the absolute expire time is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TtlCommand {
    /// `PEXPIRETIME`: absolute, exact (Redis 7.0+, Valkey).
    PExpireTime,
    /// `PTTL` + the local clock (older servers).
    Pttl,
}

impl TtlCommand {
    pub(super) fn name(self) -> &'static str {
        match self {
            TtlCommand::PExpireTime => "PEXPIRETIME",
            TtlCommand::Pttl => "PTTL",
        }
    }
}

/// Why the producer stops.
pub(super) enum Halt {
    /// The reader dropped the stream: nobody to tell.
    ReaderGone,
    Error(ScanError),
}

impl From<ScanError> for Halt {
    fn from(e: ScanError) -> Self {
        Halt::Error(e)
    }
}

pub(super) struct Producer {
    pub(super) client: redis::Client,
    pub(super) con: redis::Connection,
    pub(super) opts: ScanOptions,
    pub(super) chunk_bytes: usize,
    /// Keys in the next pipeline of `DUMP`s.
    pub(super) group: usize,
    pub(super) server: SourceServer,
    pub(super) ttl: TtlCommand,
    /// FUNCTION2 payloads, written after the header.
    pub(super) functions: Vec<Vec<u8>>,
    pub(super) tx: Option<SyncSender<Msg>>,
    pub(super) counters: Arc<Counters>,
    /// The chunk being filled.
    pub(super) out: Vec<u8>,
    /// CRC64 of the chunks handed over.
    pub(super) crc: u64,
    /// The RDB version of the header, once written.
    pub(super) version: Option<u16>,
    /// The database the connection has selected.
    pub(super) db: u64,
    pub(super) hasher: RandomState,
}

pub(super) fn connect(
    client: &redis::Client,
    opts: &ScanOptions,
) -> redis::RedisResult<redis::Connection> {
    let con = client.get_connection_with_timeout(opts.timeout)?;
    con.set_read_timeout(Some(opts.timeout))?;
    con.set_write_timeout(Some(opts.timeout))?;
    Ok(con)
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `name:value` from an `INFO` reply.
pub(super) fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.trim_end()
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix(':'))
    })
}

/// (db, keys, expires) of each `dbN:keys=…,expires=…` line of `INFO keyspace`.
pub(super) fn keyspace(info: &str) -> Vec<(u64, u64, u64)> {
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
pub(super) fn major_minor(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// The RDB version a server writes, from its version: used only for the header of a scan that
/// found no key (otherwise the payloads' version is used). Format §10.1, §16.1.
pub(super) fn rdb_version_of(server: &SourceServer) -> u16 {
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

pub(super) fn is_retryable(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// The text of an error reply (`ERR …`, `NOPERM …`).
pub(super) fn reply_error(v: &redis::Value) -> String {
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
    pub(super) fn introduce(&mut self) -> Result<(), ScanError> {
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
    pub(super) fn function_libraries(&mut self) -> Result<Vec<Vec<u8>>, ScanError> {
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

    pub(super) fn run_and_report(mut self) {
        let msg = match self.run() {
            Ok(()) => Msg::End,
            Err(Halt::Error(e)) => Msg::Failed(e),
            Err(Halt::ReaderGone) => return,
        };
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }

    pub(super) fn run(&mut self) -> Result<(), Halt> {
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
    pub(super) fn retrying<T>(
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

    pub(super) fn scan_db(&mut self, db: u64, keys: u64, expires: u64) -> Result<(), Halt> {
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
    pub(super) fn dump_group(
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
    pub(super) fn header(&mut self, version: u16) -> Result<(), Halt> {
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
    pub(super) fn put(&mut self, mut data: &[u8]) -> Result<(), Halt> {
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
    pub(super) fn flush_unhashed(&mut self) -> Result<(), Halt> {
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
