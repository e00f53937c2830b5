//! The replay importer: decodes a dump on one thread, plans each key (RESTORE of the raw bytes or
//! plain commands), and writes batches over several pipelined connections.
//!
//! ```text
//! mmap ─▶ Decoder ─▶ Planner ──batches (per key hash)──▶ conn 0 ─▶ target
//!                      │                                ▶ conn 1 ─▶ target
//!                      └─ control connection (conflict check, FUNCTION/SCRIPT LOAD, EXISTS)
//! acks ─▶ Shared (counts, per-key reports, checkpoint watermark)
//! ```

pub mod batch;
pub mod conn;
pub mod plan;
pub mod reply;
pub mod target;
pub mod verify;

pub use conn::ConnConfig;
pub use target::{rdb_version_for, Target, TargetInfo, TlsOptions};

use crate::filter::Filter;
use crate::model::{escape_bytes, Item};
use crate::source::Input;
use batch::Batch;
use plan::Planner;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Bad options or URL.
    #[error("{0}")]
    Config(String),
    /// Could not connect.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The target refused our credentials (its reply text).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The target sent something that is not RESP.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A target database already holds keys and no conflict rule was given.
    #[error("{0}")]
    Conflict(String),
    /// The target answered with an error that stops the import (OOM, READONLY, LOADING…).
    #[error("target refused writes: {message} ({written} keys written before)")]
    Fatal {
        /// The target's reply.
        message: String,
        /// Keys acknowledged before.
        written: u64,
    },
    /// Reconnecting failed too often.
    #[error("connection {conn} gave up after {attempts} reconnect attempts ({why}); {written} keys written, dump offset {offset} fully acknowledged")]
    GaveUp {
        /// Connection index.
        conn: usize,
        /// Attempts made.
        attempts: u32,
        /// Last failure.
        why: String,
        /// Keys acknowledged.
        written: u64,
        /// Checkpoint watermark.
        offset: u64,
    },
    /// The dump is corrupt.
    #[error(transparent)]
    Decode(#[from] crate::DecodeError),
    /// A control-plane command failed.
    #[error("{0}")]
    Redis(String),
    /// Checkpoint file I/O.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

/// How keys are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// RESTORE where the target can take it, commands otherwise (decided per key).
    #[default]
    Auto,
    /// RESTORE only; keys the target cannot RESTORE are reported.
    Restore,
    /// Plain commands only (module values still go by RESTORE).
    Commands,
}

/// Reasons a key is not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// Excluded by `--db`/`--key`/`--type`.
    Filtered,
    /// TTL already passed.
    Expired,
    /// Acknowledged in an earlier run (checkpoint).
    Checkpoint,
    /// Empty collection (Redis does not keep those).
    Empty,
    /// Exists on the target and `--skip-existing` was given.
    Existing,
    /// Module value whose module the target lacks.
    ModuleMissing,
    /// The target cannot represent the value (e.g. field TTLs before 7.4).
    Unrepresentable,
}

impl Skip {
    /// Name for summaries.
    pub fn name(&self) -> &'static str {
        match self {
            Skip::Filtered => "filtered",
            Skip::Expired => "expired",
            Skip::Checkpoint => "done in an earlier run (checkpoint)",
            Skip::Empty => "empty collection",
            Skip::Existing => "exists on target (--skip-existing)",
            Skip::ModuleMissing => "module missing on target",
            Skip::Unrepresentable => "not representable on target",
        }
    }
}

/// Import options.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Which keys.
    pub filter: Filter,
    /// Source db → target db.
    pub db_map: BTreeMap<u64, u64>,
    /// RESTORE / commands / auto.
    pub mode: Mode,
    /// Overwrite existing keys.
    pub replace: bool,
    /// Keep existing keys, count them.
    pub skip_existing: bool,
    /// Empty the target databases that will be written first.
    pub flush_target: bool,
    /// Missing modules are expected: their keys are skipped without failing the run.
    pub skip_modules: bool,
    /// Parallel data connections.
    pub connections: usize,
    /// Data-plane limits.
    pub conn: ConnConfig,
    /// Resume file.
    pub checkpoint: Option<PathBuf>,
    /// How often the resume file is rewritten.
    pub checkpoint_interval: Duration,
    /// Verify the dump's CRC64.
    pub verify_checksum: bool,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            filter: Filter::default(),
            db_map: BTreeMap::new(),
            mode: Mode::Auto,
            replace: false,
            skip_existing: false,
            flush_target: false,
            skip_modules: false,
            connections: 2,
            conn: ConnConfig::default(),
            checkpoint: None,
            checkpoint_interval: Duration::from_secs(2),
            verify_checksum: true,
        }
    }
}

/// Live counters (read by progress displays).
#[derive(Debug, Default)]
pub struct Stats {
    /// Dump bytes decoded.
    pub bytes_read: AtomicU64,
    /// Keys acknowledged, written by RESTORE.
    pub written_restore: AtomicU64,
    /// Keys acknowledged, written by commands.
    pub written_commands: AtomicU64,
    /// Keys skipped for any reason.
    pub skipped: AtomicU64,
    /// Keys that failed.
    pub failed: AtomicU64,
    /// Reconnects.
    pub reconnects: AtomicU64,
    /// Batches that `WAIT` reported as reaching fewer replicas than asked.
    pub unreplicated: AtomicU64,
}

impl Stats {
    /// Keys acknowledged.
    pub fn written(&self) -> u64 {
        self.written_restore.load(Relaxed) + self.written_commands.load(Relaxed)
    }
}

/// Most per-key reports kept for the summary.
const MAX_REPORTS: usize = 1000;

/// State shared by the planner and the connections.
pub struct Shared {
    target: Target,
    wait_replicas: Option<(u32, Duration)>,
    /// Live counters.
    pub stats: Stats,
    skip_existing: bool,
    skipped: Mutex<BTreeMap<Skip, u64>>,
    /// (key, reason) for failed and not-written keys, first [`MAX_REPORTS`].
    reports: Mutex<Vec<(Vec<u8>, String)>>,
    open: Mutex<(BTreeMap<u64, usize>, u64)>,
    notes: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("target", &self.target.display())
            .finish()
    }
}

impl Shared {
    fn new(target: Target, skip_existing: bool, wait_replicas: Option<(u32, Duration)>) -> Shared {
        Shared {
            target,
            wait_replicas,
            stats: Stats::default(),
            skip_existing,
            skipped: Mutex::default(),
            reports: Mutex::default(),
            open: Mutex::default(),
            notes: Mutex::default(),
            stop: AtomicBool::new(false),
        }
    }

    fn report(&self, key: &[u8], why: String) {
        let mut r = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() < MAX_REPORTS {
            r.push((key.to_vec(), why));
        }
    }

    pub(crate) fn skip(&self, why: Skip, report: Option<(&[u8], String)>) {
        *self
            .skipped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(why)
            .or_default() += 1;
        self.stats.skipped.fetch_add(1, Relaxed);
        if let Some((k, msg)) = report {
            self.report(k, msg);
        }
    }

    pub(crate) fn fail(&self, key: &[u8], why: String) {
        self.stats.failed.fetch_add(1, Relaxed);
        self.report(key, why);
    }

    pub(crate) fn note(&self, n: String) {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).push(n);
    }

    /// A batch's start offset enters the set of unacknowledged work.
    fn open_batch(&self, start: u64) {
        *self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .entry(start)
            .or_default() += 1;
    }

    /// Everything before `end` has been planned.
    fn advance(&self, end: u64) {
        let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        o.1 = o.1.max(end);
    }

    /// Dump offset below which every key is acknowledged or skipped.
    pub fn watermark(&self) -> u64 {
        let o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        o.0.keys().next().copied().unwrap_or(o.1)
    }

    /// All replies of a batch arrived; `errors` has one slot per key.
    pub(crate) fn complete(&self, b: &Batch, errors: &[Option<String>]) {
        for (k, err) in b.keys.iter().zip(errors) {
            match err {
                None => match k.mode {
                    batch::KeyMode::Restore => self.stats.written_restore.fetch_add(1, Relaxed),
                    batch::KeyMode::Commands => self.stats.written_commands.fetch_add(1, Relaxed),
                },
                Some(e) if self.skip_existing && e.starts_with("BUSYKEY") => {
                    self.skip(Skip::Existing, None);
                    0
                }
                Some(e) => {
                    self.fail(&k.key, e.clone());
                    0
                }
            };
        }
        self.close_empty(b);
    }

    /// A batch that ended up with no keys (all skipped) leaves the unacknowledged set.
    fn close_empty(&self, b: &Batch) {
        let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = o.0.get_mut(&b.start_offset) {
            *n -= 1;
            if *n == 0 {
                o.0.remove(&b.start_offset);
            }
        }
    }

    pub(crate) fn fatal(&self, message: String) -> ReplayError {
        self.stop.store(true, Relaxed);
        ReplayError::Fatal {
            message,
            written: self.stats.written(),
        }
    }

    pub(crate) fn gave_up(&self, conn: usize, attempts: u32, why: &str) -> ReplayError {
        self.stop.store(true, Relaxed);
        ReplayError::GaveUp {
            conn,
            attempts,
            why: why.to_string(),
            written: self.stats.written(),
            offset: self.watermark(),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The target's description.
    pub target: TargetInfo,
    /// Keys written by RESTORE.
    pub written_restore: u64,
    /// Keys written by commands.
    pub written_commands: u64,
    /// Skipped keys per reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Keys that failed.
    pub failed: u64,
    /// (key, reason) for failed keys and keys not written for a reported reason.
    pub reports: Vec<(String, String)>,
    /// Function libraries loaded.
    pub functions: u64,
    /// Lua scripts loaded.
    pub scripts: u64,
    /// Module aux records that could not be restored.
    pub module_aux_unrestored: Vec<String>,
    /// Reconnects during the run.
    pub reconnects: u64,
    /// Dump bytes read.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Notes (assumed limits, reconnects…).
    pub notes: Vec<String>,
    /// Keys whose module is missing are tolerated.
    pub skip_modules: bool,
}

impl Summary {
    /// Keys written.
    pub fn written(&self) -> u64 {
        self.written_restore + self.written_commands
    }

    /// True when nothing was lost: no failures, nothing unrepresentable, and no module keys
    /// skipped unless `--skip-modules` said so.
    pub fn is_success(&self) -> bool {
        let get = |s: Skip| self.skipped.get(s.name()).copied().unwrap_or(0);
        self.failed == 0
            && get(Skip::Unrepresentable) == 0
            && (self.skip_modules || get(Skip::ModuleMissing) == 0)
    }
}

/// Progress snapshot for displays.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Dump bytes decoded.
    pub bytes_read: u64,
    /// Dump size when known.
    pub total_bytes: Option<u64>,
    /// Keys acknowledged.
    pub written: u64,
    /// Keys skipped.
    pub skipped: u64,
    /// Keys failed.
    pub failed: u64,
    /// Since start.
    pub elapsed: Duration,
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x100000001b3)
    })
}

/// Checkpoint file contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    dump_len: Option<u64>,
    offset: u64,
}

fn read_checkpoint(path: &PathBuf) -> Result<Option<Checkpoint>, ReplayError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReplayError::Checkpoint(format!("{}: {e}", path.display()))),
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ReplayError::Checkpoint(format!("{}: {e}", path.display())))?;
    Ok(Some(Checkpoint {
        dump_len: v["dump_len"].as_u64(),
        offset: v["offset"].as_u64().unwrap_or(0),
    }))
}

fn write_checkpoint(path: &PathBuf, c: Checkpoint, written: u64) -> Result<(), ReplayError> {
    let tmp = path.with_extension("tmp");
    let body =
        serde_json::json!({"dump_len": c.dump_len, "offset": c.offset, "keys_written": written});
    std::fs::write(&tmp, body.to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| ReplayError::Checkpoint(format!("{}: {e}", path.display())))
}

/// Databases that entries passing the filter will be written to (mapped inputs only).
fn prescan(data: &[u8], cfg: &ImportConfig) -> Result<BTreeSet<u64>, ReplayError> {
    let mut dbs = BTreeSet::new();
    for item in crate::Decoder::new(data).verify_checksum(false) {
        if let Item::Entry(e) = item? {
            if cfg.filter.matches(&e) {
                dbs.insert(cfg.db_map.get(&e.db).copied().unwrap_or(e.db));
            }
        }
    }
    Ok(dbs)
}

fn redis_err(what: &str) -> impl Fn(redis::RedisError) -> ReplayError + '_ {
    move |e| ReplayError::Redis(format!("{what}: {e}"))
}

/// Refuses (or flushes) target databases that already hold keys.
fn check_conflicts(
    con: &mut redis::Connection,
    dbs: &BTreeSet<u64>,
    cfg: &ImportConfig,
    resuming: bool,
) -> Result<(), ReplayError> {
    let mut busy = Vec::new();
    for &db in dbs {
        redis::cmd("SELECT")
            .arg(db)
            .query::<()>(con)
            .map_err(redis_err("SELECT"))?;
        let n: u64 = redis::cmd("DBSIZE")
            .query(con)
            .map_err(redis_err("DBSIZE"))?;
        if n == 0 {
            continue;
        }
        if cfg.flush_target {
            redis::cmd("FLUSHDB")
                .query::<()>(con)
                .map_err(redis_err("FLUSHDB"))?;
        } else if !(cfg.replace || cfg.skip_existing || resuming) {
            busy.push(format!("db{db} holds {n} keys"));
        }
    }
    if busy.is_empty() {
        Ok(())
    } else {
        Err(ReplayError::Conflict(format!(
            "refusing to write into a non-empty target: {}; use --replace to overwrite, --skip-existing to keep the target's keys, or --flush-target to empty those databases first",
            busy.join(", ")
        )))
    }
}

/// Imports `input` into `target`. `on_progress` is called a few times per second from a
/// background thread.
pub fn import(
    input: Input,
    target: Target,
    cfg: ImportConfig,
    on_progress: Box<dyn Fn(&Progress) + Send>,
) -> Result<Summary, ReplayError> {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ReplayError::Config(format!("tokio runtime: {e}")))?;
    let client = target.client()?;
    let info = rt.block_on(async {
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| ReplayError::Connect(format!("{}: {e}", target.display())))?;
        TargetInfo::probe(&mut con).await
    })?;
    let mut sync_con = client
        .get_connection()
        .map_err(|e| ReplayError::Connect(format!("{}: {e}", target.display())))?;
    let shared = Arc::new(Shared::new(
        target,
        cfg.skip_existing,
        cfg.conn.wait_replicas,
    ));
    if info.bulk_limit_assumed {
        shared.note(
            "the target refused CONFIG GET proto-max-bulk-len; assuming the 512 MB default".into(),
        );
    }
    if info.cluster {
        return Err(ReplayError::Config(
            "the target is a Redis Cluster node; cluster targets are not supported yet".into(),
        ));
    }

    let total = input.len_hint();
    let checkpoint = match &cfg.checkpoint {
        Some(p) => read_checkpoint(p)?,
        None => None,
    };
    if let Some(c) = checkpoint {
        if c.dump_len != total {
            return Err(ReplayError::Checkpoint(format!(
                "the checkpoint was written for a dump of {:?} bytes, this one has {total:?}",
                c.dump_len
            )));
        }
    }
    let resume_from = checkpoint.map_or(0, |c| c.offset);
    let resuming = resume_from > 0;
    if resuming {
        shared.note(format!(
            "resuming after dump offset {resume_from} (keys after it are re-sent with REPLACE)"
        ));
    }
    let mut known_dbs: Option<BTreeSet<u64>> = None;
    if let Input::Mapped(m) = &input {
        let dbs = prescan(m, &cfg)?;
        check_conflicts(&mut sync_con, &dbs, &cfg, resuming)?;
        known_dbs = Some(dbs);
    }

    // data plane
    let n = cfg.connections.max(1);
    let mut senders = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(4);
        senders.push(tx);
        tasks.push(rt.spawn(conn::run(i, rx, shared.clone(), cfg.conn)));
    }

    // progress and checkpoints
    let (done, done_rx) = std::sync::mpsc::channel::<()>();
    let ticker = {
        let (shared, cp, every) = (
            shared.clone(),
            cfg.checkpoint.clone(),
            cfg.checkpoint_interval,
        );
        std::thread::spawn(move || {
            let mut last_cp = Instant::now();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                done_rx.recv_timeout(Duration::from_millis(50))
            {
                let s = &shared.stats;
                on_progress(&Progress {
                    bytes_read: s.bytes_read.load(Relaxed),
                    total_bytes: total,
                    written: s.written(),
                    skipped: s.skipped.load(Relaxed),
                    failed: s.failed.load(Relaxed),
                    elapsed: started.elapsed(),
                });
                if let Some(p) = &cp {
                    if last_cp.elapsed() >= every {
                        let c = Checkpoint {
                            dump_len: total,
                            offset: shared.watermark(),
                        };
                        let _ = write_checkpoint(p, c, s.written());
                        last_cp = Instant::now();
                    }
                }
            }
        })
    };

    let mut functions = 0u64;
    let mut scripts = 0u64;
    let mut module_aux = Vec::new();
    let produced: Result<(), ReplayError> = (|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut planner = Planner::new(&cfg, &info, &shared, now, resume_from);
        if cfg.skip_existing {
            let mut con = shared
                .target
                .client()?
                .get_connection()
                .map_err(|e| ReplayError::Connect(e.to_string()))?;
            planner.exists = Some(Box::new(move |db, key| {
                let _ = redis::cmd("SELECT").arg(db).query::<()>(&mut con);
                // an unanswerable check counts as "exists": never overwrite on doubt
                redis::cmd("EXISTS")
                    .arg(key)
                    .query::<u64>(&mut con)
                    .map_or(true, |n| n > 0)
            }));
        }
        let mut open: Vec<Option<Batch>> = (0..n).map(|_| None).collect();
        let mut next_id = 0u64;
        let mut seen_dbs: HashSet<u64> = HashSet::new();
        let mut seen_scripts: HashSet<String> = HashSet::new();
        let send = |slot: &mut Option<Batch>, i: usize| -> Result<(), ReplayError> {
            if let Some(b) = slot.take() {
                if !b.keys.is_empty() {
                    senders[i]
                        .blocking_send(b)
                        .map_err(|_| ReplayError::Config("a connection stopped".into()))?;
                } else {
                    shared.close_empty(&b);
                }
            }
            Ok(())
        };
        input.decode(cfg.verify_checksum, |item, pos| -> Result<(), ReplayError> {
            shared.stats.bytes_read.store(pos, Relaxed);
            if shared.stop.load(Relaxed) {
                return Err(ReplayError::Config("stopped".into()));
            }
            match item {
                Item::Header { magic, version } => {
                    planner.dump_version = version.min(u32::from(u16::MAX)) as u16;
                    planner.dump_valkey = magic == crate::Magic::Valkey;
                }
                Item::Entry(e) => {
                    let db = shared.target.db.filter(|_| cfg.db_map.is_empty()).unwrap_or_else(|| cfg.db_map.get(&e.db).copied().unwrap_or(e.db));
                    if known_dbs.is_none() && seen_dbs.insert(db) && cfg.filter.matches(&e) {
                        check_conflicts(&mut sync_con, &BTreeSet::from([db]), &cfg, resuming)?;
                    }
                    let i = (fnv1a(&e.key) % n as u64) as usize;
                    if open[i].as_ref().is_some_and(|b| b.db != db) {
                        send(&mut open[i], i)?;
                    }
                    let b = open[i].get_or_insert_with(|| {
                        next_id += 1;
                        Batch::new(next_id, db)
                    });
                    if b.keys.is_empty() && b.start_offset == 0 {
                        b.start_offset = e.offset.max(1);
                        shared.open_batch(b.start_offset);
                    }
                    planner.plan(&e, b)?;
                    shared.advance(e.value_offset + e.raw.len() as u64);
                    if Planner::batch_full(b) {
                        send(&mut open[i], i)?;
                    }
                }
                Item::Function { code } => {
                    let mut c = redis::cmd("FUNCTION");
                    c.arg("LOAD");
                    if cfg.replace {
                        c.arg("REPLACE");
                    }
                    c.arg(code.as_ref());
                    match c.query::<String>(&mut sync_con) {
                        Ok(_) => functions += 1,
                        Err(err) => shared.fail(b"(function library)", format!("FUNCTION LOAD: {err}")),
                    }
                }
                Item::Script { body, sha1 } if seen_scripts.insert(sha1.clone()) => {
                    match redis::cmd("SCRIPT").arg("LOAD").arg(body.as_ref()).query::<String>(&mut sync_con) {
                        Ok(_) => scripts += 1,
                        Err(err) => shared.fail(b"(lua script)", format!("SCRIPT LOAD {sha1}: {err}")),
                    }
                }
                Item::ModuleAux { id, when, body, .. } => {
                    let name = id.name();
                    let w = if when == 1 { "before" } else { "after" };
                    if info.enterprise {
                        let ver = planner.dump_version.min(info.rdb_version);
                        let mut p = body.to_vec();
                        p.extend_from_slice(&ver.to_le_bytes());
                        let crc = crate::crc64(0, &p);
                        p.extend_from_slice(&crc.to_le_bytes());
                        let r = redis::cmd("RESTOREMODAUX").arg(&name).arg(id.encver()).arg(w).arg(p).query::<redis::Value>(&mut sync_con);
                        if let Err(err) = r {
                            module_aux.push(format!("{name}/{} {w}: {err}", id.encver()));
                        }
                    } else {
                        module_aux.push(format!("{name}/{} {w}: module aux data has no command on this target (RESTOREMODAUX is Redis Enterprise only)", id.encver()));
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        for (i, slot) in open.iter_mut().enumerate() {
            send(slot, i)?;
        }
        Ok(())
    })();
    drop(senders);
    let conn_results: Vec<Result<(), ReplayError>> = rt.block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(
                t.await
                    .unwrap_or_else(|e| Err(ReplayError::Config(format!("connection task: {e}")))),
            );
        }
        out
    });
    drop(done);
    let _ = ticker.join();
    // the first real cause wins: a connection's fatal error explains the producer's "stopped"
    for r in conn_results {
        r?;
    }
    produced?;
    if let Some(p) = &cfg.checkpoint {
        let end = total.unwrap_or_else(|| shared.stats.bytes_read.load(Relaxed));
        write_checkpoint(
            p,
            Checkpoint {
                dump_len: total,
                offset: end,
            },
            shared.stats.written(),
        )?;
    }
    let s = &shared.stats;
    let skipped = shared
        .skipped
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.name(), *v))
        .collect();
    let reports = shared
        .reports
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, m)| (escape_bytes(k), m.clone()))
        .collect();
    let notes = shared
        .notes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Summary {
        target: info,
        written_restore: s.written_restore.load(Relaxed),
        written_commands: s.written_commands.load(Relaxed),
        skipped,
        failed: s.failed.load(Relaxed),
        reports,
        functions,
        scripts,
        module_aux_unrestored: module_aux,
        reconnects: s.reconnects.load(Relaxed),
        bytes: s.bytes_read.load(Relaxed),
        elapsed: started.elapsed(),
        notes,
        skip_modules: cfg.skip_modules,
    })
}
