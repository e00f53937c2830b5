//! `--follow`: applies a live source's command stream to the target, in order, after its snapshot.
//!
//! ```text
//! CommandReader ─▶ parser thread ─ops─▶ dispatcher ─▶ writer per primary ─▶ target
//!  (spool)          SELECT, MULTI,        (slot)         pipelined, in order
//!                   TTLs made absolute       ◀── acks: the applied offset ──┘
//! ```
//!
//! Order matters here as it does not for a snapshot (`INCR`, `LPUSH`, `RENAME` are not
//! idempotent), so each primary gets exactly one connection and commands go out in the order the
//! source executed them. The offset applied (every command before it acknowledged by the target)
//! is reported to the source in `REPLCONF ACK`, so the source's `INFO replication` shows the true
//! lag; a command left unanswered when a connection breaks is reported in doubt, never sent twice.

use super::error::ReplayError;
use super::reply::Reply;
use super::target::Target;
use crate::source::replica::ReplicaProgress;
use crate::source::resp::{Command, CommandReader};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How to follow.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Source database → target database.
    pub db_map: BTreeMap<u64, u64>,
    /// Only these source databases (empty: all).
    pub dbs: Vec<u64>,
    /// The target URL's database: every command goes there when `db_map` is empty (as the
    /// snapshot's keys do).
    pub target_db: Option<u64>,
    /// Deadline of each round trip to the target.
    pub reply_timeout: Duration,
    /// Most commands in one round trip.
    pub window_commands: usize,
    /// Stop once everything up to this source offset is applied (`u64::MAX`: until told).
    /// The command line sets it on SIGINT/SIGTERM to the source's offset at that moment.
    pub until: Arc<AtomicU64>,
    /// Set to stop at once, without draining (a second signal).
    pub abort: Arc<AtomicBool>,
    /// A key of the target's db 0 in which each round records `"<replid> <offset>"`, in the
    /// same `MULTI`/`EXEC` as the round's commands: after a crash the target itself says which
    /// offset it holds, so a resume neither repeats nor skips a command. Deleted at a clean
    /// end. Not used for a cluster target.
    pub marker: Option<String>,
    /// The source's replication id (written in the marker).
    pub replid: String,
    /// The offset the follow starts at (the snapshot's): what a target without a marker holds.
    pub start_offset: u64,
}

/// The marker key `--checkpoint` uses with `--follow`.
pub const MARKER_KEY: &str = "__rdbkit_follow_offset__";

/// What following did.
#[derive(Debug, Clone, Default)]
pub struct FollowSummary {
    /// Commands applied (a `MULTI`/`EXEC` block counts its commands).
    pub commands: u64,
    /// `MULTI`/`EXEC` blocks applied whole.
    pub blocks: u64,
    /// Commands of databases left out by `--db`.
    pub skipped: u64,
    /// Commands the target answered with an error, by error code.
    pub errors: BTreeMap<String, u64>,
    /// The first few of those errors, with their command.
    pub error_samples: Vec<String>,
    /// Commands sent when a connection broke, before any answer: maybe applied, maybe not.
    pub in_doubt: u64,
    /// The source offset applied at the end.
    pub applied_offset: u64,
    /// How long the follow ran.
    pub elapsed: Duration,
    /// Notes for the summary.
    pub notes: Vec<String>,
}

impl FollowSummary {
    /// True when every command was applied without an error or a doubt.
    pub fn is_success(&self) -> bool {
        self.errors.is_empty() && self.in_doubt == 0
    }
}

/// Progress while following.
#[derive(Debug, Clone, Copy)]
pub struct FollowProgress {
    /// Commands applied.
    pub commands: u64,
    /// Source offset applied.
    pub applied_offset: u64,
    /// Source offset received.
    pub received_offset: u64,
}

/// One unit applied in order: a command, or a whole `MULTI`/`EXEC` block.
#[derive(Debug, Clone)]
struct Op {
    start: u64,
    end: u64,
    db: u64,
    cmds: Vec<Vec<Vec<u8>>>,
    block: bool,
}

/// Applies `reader`'s commands to `target` until `cfg.until` is reached (see the module
/// documentation); `live` learns the applied offset.
pub fn follow<R: BufRead + Send + 'static>(
    reader: CommandReader<R>,
    live: ReplicaProgress,
    target: Target,
    cfg: FollowConfig,
    on_progress: Box<dyn Fn(&FollowProgress) + Send>,
) -> Result<FollowSummary, ReplayError> {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ReplayError::Internal(format!("tokio runtime: {e}")))?;
    let pinned = target.pinned()?;
    let mut con = pinned.control(cfg.reply_timeout)?;
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query(&mut con)
        .map_err(|e| pinned.failure("INFO: ", &e))?;
    let cluster = info.contains("cluster_enabled:1");
    let (nodes, routes) = if cluster {
        let (slots, nodes) = super::preflight::cluster_layout(&mut con, &pinned)?;
        let routes = Arc::new(super::routes::Routes::new(slots, nodes.clone()));
        (nodes, Some(routes))
    } else {
        (vec![target.clone()], None)
    };
    if cluster && cfg.marker.is_some() {
        return Err(ReplayError::Config(
            "--checkpoint with --follow needs a single primary (Sentinel or standalone) target: a cluster has no one place for the offset marker".into(),
        ));
    }
    let start_offset = live.applied_offset();
    let mut cfg = cfg;
    cfg.start_offset = start_offset;
    if target.sentinel.is_some() && cfg.marker.is_none() {
        // a failover is ridden by the marker (see `NodeWriter::recover`); deleted at the end
        cfg.marker = Some(MARKER_KEY.to_string());
    }
    let (ops_tx, ops_rx) = async_channel::bounded::<Op>(4096);
    let parse_cfg = cfg.clone();
    let parse_live = live.clone();
    let skipped = Arc::new(AtomicU64::new(0));
    let parse_skipped = skipped.clone();
    let parser = std::thread::Builder::new()
        .name("rdbkit-follow".into())
        .spawn(move || parse(reader, &parse_live, &parse_cfg, &ops_tx, &parse_skipped))
        .map_err(|e| ReplayError::Internal(format!("starting the follow parser: {e}")))?;
    let applied = Arc::new(AtomicU64::new(start_offset));
    let commands = Arc::new(AtomicU64::new(0));
    let (mut summary, result) = rt.block_on(dispatch(Dispatch {
        ops: ops_rx,
        nodes,
        routes,
        cfg: cfg.clone(),
        live: live.clone(),
        applied: applied.clone(),
        commands: commands.clone(),
        on_progress,
    }));
    // the parser ends when the source's stream is closed (the caller stops the replica) or when
    // its queue is gone; it is waited for only when it has ended (the stream broke)
    if parser.is_finished() {
        if let Ok(Err(e)) = parser.join() {
            summary
                .notes
                .push(format!("the source's stream ended: {e}"));
        }
    }
    summary.commands = commands.load(Relaxed);
    summary.skipped = skipped.load(Relaxed);
    summary.applied_offset = applied.load(Relaxed);
    summary.elapsed = started.elapsed();
    result?;
    // a clean end: the marker's work is done (the checkpoint file keeps the offset)
    if let (Some(m), true) = (
        &cfg.marker,
        summary.applied_offset >= cfg.until.load(Relaxed),
    ) {
        let mut con = target.pinned()?.control(cfg.reply_timeout)?;
        let del = redis::cmd("SELECT")
            .arg(0)
            .query::<()>(&mut con)
            .and_then(|()| redis::cmd("DEL").arg(m).query::<()>(&mut con));
        if let Err(e) = del {
            summary.notes.push(format!(
                "could not delete the offset marker {m} on the target: {e}"
            ));
        }
    }
    Ok(summary)
}

/// Millisecond Unix time now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads commands into ops until the stream ends or `until` is passed.
fn parse<R: BufRead>(
    mut reader: CommandReader<R>,
    live: &ReplicaProgress,
    cfg: &FollowConfig,
    ops: &async_channel::Sender<Op>,
    skipped: &AtomicU64,
) -> Result<(), String> {
    let mut db = 0u64;
    let mut block: Option<Op> = None;
    loop {
        if reader.position() >= cfg.until.load(Relaxed) || cfg.abort.load(Relaxed) {
            return Ok(());
        }
        let Some(c) = reader.next_command().map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let end = reader.position();
        let start = end - c.len;
        let op = |db, cmds, block| Op {
            start,
            end,
            db,
            cmds,
            block,
        };
        let out = if c.is("PING") {
            Some(op(db, Vec::new(), false))
        } else if c.is("SELECT") {
            db = c
                .args
                .get(1)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(db);
            Some(op(db, Vec::new(), false))
        } else if c.is("REPLCONF") {
            if c.args
                .get(1)
                .is_some_and(|a| a.eq_ignore_ascii_case(b"GETACK"))
            {
                live.ack_now();
            }
            Some(op(db, Vec::new(), false))
        } else if c.is("MULTI") {
            block = Some(op(db, Vec::new(), true));
            None
        } else if c.is("EXEC") {
            block.take().map(|mut b| {
                b.end = end;
                b
            })
        } else {
            let args = absolute_ttl(c, now_ms());
            match block.as_mut() {
                Some(b) => {
                    b.cmds.push(args);
                    None
                }
                None => Some(op(db, vec![args], false)),
            }
        };
        if let Some(mut o) = out {
            if !o.cmds.is_empty() && !cfg.dbs.is_empty() && !cfg.dbs.contains(&o.db) {
                skipped.fetch_add(o.cmds.len() as u64, Relaxed);
                o.cmds.clear();
            }
            o.db = match cfg.target_db.filter(|_| cfg.db_map.is_empty()) {
                Some(db) => db,
                None => cfg.db_map.get(&o.db).copied().unwrap_or(o.db),
            };
            if ops.send_blocking(o).is_err() {
                return Ok(());
            }
        }
    }
}

/// Relative expirations become absolute, so that a TTL does not grow by the time the command
/// waited (Redis 6.2 replicates `EXPIRE`, `SETEX`, `SET … EX` as sent; 7.0 already sends
/// `PEXPIREAT` and `PXAT`). `now` is when the command is read from the stream.
pub fn absolute_ttl(c: Command, now: i64) -> Vec<Vec<u8>> {
    let num = |a: &[u8]| -> Option<i64> { std::str::from_utf8(a).ok()?.parse().ok() };
    let at = |v: i64, unit: i64| (now + v.saturating_mul(unit)).to_string().into_bytes();
    let mut args = c.args;
    let name = args[0].to_ascii_uppercase();
    match name.as_slice() {
        b"EXPIRE" | b"PEXPIRE" if args.len() >= 3 => {
            if let Some(v) = num(&args[2]) {
                let unit = if name == b"EXPIRE" { 1000 } else { 1 };
                args[0] = b"PEXPIREAT".to_vec();
                args[2] = at(v, unit);
            }
        }
        b"SETEX" | b"PSETEX" if args.len() == 4 => {
            if let Some(v) = num(&args[2]) {
                let unit = if name == b"SETEX" { 1000 } else { 1 };
                let value = args.pop().unwrap_or_default();
                let key = std::mem::take(&mut args[1]);
                args = vec![b"SET".to_vec(), key, value, b"PXAT".to_vec(), at(v, unit)];
            }
        }
        b"SET" | b"GETEX" => {
            let first = if name == b"SET" { 3 } else { 2 };
            for i in first..args.len().saturating_sub(1) {
                let opt = args[i].to_ascii_uppercase();
                let unit = match opt.as_slice() {
                    b"EX" => 1000,
                    b"PX" => 1,
                    _ => continue,
                };
                if let Some(v) = num(&args[i + 1]) {
                    args[i] = b"PXAT".to_vec();
                    args[i + 1] = at(v, unit);
                }
                break;
            }
        }
        _ => {}
    }
    args
}

/// Which key routes a command in a cluster: most commands name it first; a few later.
fn routing_key(args: &[Vec<u8>]) -> Option<&[u8]> {
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"BITOP" => args.get(2),
        b"EVAL" | b"EVALSHA" | b"FCALL" | b"FCALL_RO" => {
            let n: u64 = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            if n == 0 {
                None
            } else {
                args.get(3)
            }
        }
        b"FLUSHALL" | b"FLUSHDB" | b"FUNCTION" | b"SCRIPT" | b"PUBLISH" | b"SPUBLISH"
        | b"SWAPDB" | b"MULTI" | b"EXEC" => None,
        _ => args.get(1),
    }
    .map(|k| k.as_slice())
}

struct Dispatch {
    ops: async_channel::Receiver<Op>,
    nodes: Vec<Target>,
    routes: Option<Arc<super::routes::Routes>>,
    cfg: FollowConfig,
    live: ReplicaProgress,
    applied: Arc<AtomicU64>,
    commands: Arc<AtomicU64>,
    on_progress: Box<dyn Fn(&FollowProgress) + Send>,
}

/// What a writer tells the dispatcher.
enum Done {
    /// The op that started at this offset is acknowledged.
    Acked(u64),
    /// The op must go to another node (MOVED).
    Moved(Op, u16, String, u16),
    /// The writer stopped on an error (returned by its task).
    Failed,
}

async fn dispatch(d: Dispatch) -> (FollowSummary, Result<(), ReplayError>) {
    let mut seen = FollowSummary::default();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Done>();
    let mut writers = Vec::new();
    let mut queues = Vec::new();
    for (i, node) in d.nodes.iter().enumerate() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Op>(256);
        queues.push(tx);
        let done = done_tx.clone();
        let writer = write_node(
            i,
            node.clone(),
            d.routes.is_some(),
            rx,
            done.clone(),
            d.cfg.clone(),
            d.commands.clone(),
        );
        writers.push(tokio::spawn(async move {
            let (seen, r) = writer.await;
            if r.is_err() {
                let _ = done.send(Done::Failed);
            }
            (seen, r)
        }));
    }
    drop(done_tx);
    // ops sent and not acknowledged, by start offset, with the acknowledgements still due (one
    // per primary for a command sent to all)
    let mut outstanding: BTreeMap<u64, usize> = BTreeMap::new();
    let mut dispatched = d.applied.load(Relaxed);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut input_open = true;
    let mut spanned = 0u64;
    let result = loop {
        let applied = outstanding
            .keys()
            .next()
            .copied()
            .unwrap_or(dispatched)
            .min(dispatched);
        d.applied.store(applied, Relaxed);
        d.live.applied(applied);
        if applied >= d.cfg.until.load(Relaxed) || d.cfg.abort.load(Relaxed) {
            break Ok(());
        }
        if !input_open && outstanding.is_empty() {
            break Ok(());
        }
        tokio::select! {
            op = d.ops.recv(), if input_open && outstanding.len() < 65536 => match op {
                Ok(op) => {
                    dispatched = op.end;
                    if op.cmds.is_empty() {
                        continue;
                    }
                    let parts: Vec<(usize, Op)> = match &d.routes {
                        None => vec![(0, op)],
                        Some(_) if broadcast(&op) => {
                            (0..queues.len()).map(|n| (n, op.clone())).collect()
                        }
                        Some(r) => {
                            let parts = by_slot(op);
                            if parts.len() > 1 {
                                spanned += 1;
                            }
                            parts.into_iter().map(|p| (route(&p, Some(r)), p)).collect()
                        }
                    };
                    outstanding.insert(parts[0].1.start, parts.len());
                    let mut sent = true;
                    for (node, part) in parts {
                        sent &= queues[node].send(part).await.is_ok();
                    }
                    if !sent {
                        break Err(ReplayError::Stopped);
                    }
                }
                Err(_) => input_open = false,
            },
            done = done_rx.recv() => match done {
                Some(Done::Acked(start)) => {
                    if let Some(n) = outstanding.get_mut(&start) {
                        *n -= 1;
                        if *n == 0 {
                            outstanding.remove(&start);
                        }
                    }
                }
                Some(Done::Moved(op, slot, host, port)) => {
                    if let Some(r) = &d.routes { r.moved(slot, &host, port); }
                    let node = route(&op, d.routes.as_deref());
                    if queues[node].send(op).await.is_err() {
                        break Err(ReplayError::Stopped);
                    }
                }
                // a writer failed (its error is the one reported) or every writer ended
                Some(Done::Failed) | None => break Err(ReplayError::Stopped),
            },
            _ = tick.tick() => {
                (d.on_progress)(&FollowProgress {
                    commands: d.commands.load(Relaxed),
                    applied_offset: applied,
                    received_offset: d.live.received_offset(),
                });
            }
        }
    };
    drop(queues);
    if spanned > 0 {
        seen.notes.push(format!(
            "{spanned} commands or MULTI blocks named keys of several hash slots: a cluster cannot run them as one, so they were applied per slot (a block then not atomically)"
        ));
    }
    let mut first_err = None;
    for w in writers {
        match w.await {
            Ok((part, r)) => {
                seen.blocks += part.blocks;
                seen.in_doubt += part.in_doubt;
                seen.notes.extend(part.notes);
                for (code, n) in part.errors {
                    *seen.errors.entry(code).or_default() += n;
                }
                let room = 10usize.saturating_sub(seen.error_samples.len());
                seen.error_samples
                    .extend(part.error_samples.into_iter().take(room));
                if let Err(e) = r {
                    first_err.get_or_insert(e);
                }
            }
            Err(e) => {
                first_err.get_or_insert(ReplayError::Internal(format!("follow writer: {e}")));
            }
        }
    }
    let result = match (result, first_err) {
        (_, Some(e)) => Err(e),
        (r, None) => r,
    };
    (seen, result)
}

/// Splits an op whose keys fall in several hash slots into one op per slot (a cluster refuses
/// them whole): a `MULTI` block by command, and `DEL`, `UNLINK`, `TOUCH` and `MSET` by key.
fn by_slot(op: Op) -> Vec<Op> {
    let slot = |k: &[u8]| crate::cluster::key_hash_slot(k);
    let mut cmds: Vec<(Option<u16>, Vec<Vec<u8>>)> = Vec::new();
    for c in op.cmds.iter() {
        let name = c[0].to_ascii_uppercase();
        let step = match name.as_slice() {
            b"DEL" | b"UNLINK" | b"TOUCH" => 1,
            b"MSET" => 2,
            _ => 0,
        };
        if step > 0 && c.len() > 1 + step {
            let mut per: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
            for kv in c[1..].chunks(step) {
                per.entry(slot(&kv[0]))
                    .or_insert_with(|| vec![c[0].clone()])
                    .extend(kv.iter().cloned());
            }
            if per.len() > 1 {
                cmds.extend(per.into_iter().map(|(s, c)| (Some(s), c)));
                continue;
            }
        }
        cmds.push((routing_key(c).map(slot), c.clone()));
    }
    let mut parts: BTreeMap<Option<u16>, Vec<Vec<Vec<u8>>>> = BTreeMap::new();
    let first = cmds.iter().find_map(|(s, _)| *s);
    for (s, c) in cmds {
        // keyless commands of a block (none are replicated today) stay with its first slot
        parts.entry(s.or(first)).or_default().push(c);
    }
    if parts.len() == 1 {
        let cmds = parts.into_values().next().unwrap_or_default();
        return vec![Op { cmds, ..op }];
    }
    parts
        .into_values()
        .map(|cmds| Op {
            start: op.start,
            end: op.end,
            db: op.db,
            block: op.block && cmds.len() > 1,
            cmds,
        })
        .collect()
}

/// Commands for every primary of a cluster: they act on a whole database or on code, not on keys.
fn broadcast(op: &Op) -> bool {
    op.cmds.iter().all(|c| {
        let n = c[0].to_ascii_uppercase();
        matches!(
            n.as_slice(),
            b"FLUSHALL" | b"FLUSHDB" | b"FUNCTION" | b"SCRIPT"
        )
    })
}

fn route(op: &Op, routes: Option<&super::routes::Routes>) -> usize {
    let Some(r) = routes else { return 0 };
    op.cmds
        .iter()
        .find_map(|c| routing_key(c))
        .map_or(0, |k| r.shard(crate::cluster::key_hash_slot(k)))
}

/// One primary's writer: takes ops in order, sends them pipelined, reads the replies. What it
/// saw (errors, blocks, commands in doubt) is returned, not shared under a lock.
#[allow(clippy::too_many_arguments)]
async fn write_node(
    index: usize,
    node: Target,
    cluster: bool,
    mut rx: tokio::sync::mpsc::Receiver<Op>,
    done: tokio::sync::mpsc::UnboundedSender<Done>,
    cfg: FollowConfig,
    commands: Arc<AtomicU64>,
) -> (FollowSummary, Result<(), ReplayError>) {
    let mut w = NodeWriter {
        conn: match node.connect_raw().await {
            Ok(c) => c,
            Err(e) => return (FollowSummary::default(), Err(e)),
        },
        db: None,
        cluster,
        retained: std::collections::VecDeque::new(),
        start_offset: cfg.start_offset,
        pruned_upto: cfg.start_offset,
        marker: cfg.marker.clone().filter(|_| !cluster),
        cfg,
        seen: FollowSummary::default(),
        buf: Vec::with_capacity(1 << 20),
        scratch: vec![0u8; 1 << 16],
    };
    let watcher = node.sentinel.as_ref().map(|_| watch_primary(&node));
    let mut epoch = watcher.as_ref().map(|(rx, _)| rx.clone());
    let _stop_watching = AbortOnDrop(watcher.map(|(_, task)| task));
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut n_cmds = batch[0].cmds.len();
        while n_cmds < w.cfg.window_commands {
            match rx.try_recv() {
                Ok(op) => {
                    n_cmds += op.cmds.len();
                    batch.push(op);
                }
                Err(_) => break,
            }
        }
        // the sentinels name a new primary: the old one may accept writes for seconds before it
        // is demoted, and those would be lost with it
        if let Some(e) = epoch.as_mut().filter(|e| e.has_changed().unwrap_or(false)) {
            e.borrow_and_update();
            let r = w
                .recover(
                    &node,
                    &batch,
                    Some("the sentinels named a new primary".into()),
                )
                .await;
            if let Err(e) = finish_round(&mut w, &node, index, batch, r, cluster, &done, &commands)
            {
                return (w.seen, Err(e));
            }
            continue;
        }
        let result = match &w.marker {
            Some(_) => w.transaction(&batch).await,
            None => w.plain(&batch).await,
        };
        // a Sentinel target: a broken connection or a demoted primary is a failover to ride
        let failed_over = match &result {
            Err(_) => true,
            Ok(errs) => errs.iter().flatten().any(|e| e.starts_with("READONLY")),
        };
        let result = match (node.sentinel.is_some(), failed_over) {
            (true, true) => w.recover(&node, &batch, result.err()).await,
            _ => result,
        };
        if let Err(e) = finish_round(
            &mut w, &node, index, batch, result, cluster, &done, &commands,
        ) {
            return (w.seen, Err(e));
        }
    }
    (w.seen, Ok(()))
}

/// Accounts for one round's answers: acknowledges its ops, reports their errors, hands MOVED
/// ops back to the dispatcher; a round without answers is in doubt.
#[allow(clippy::too_many_arguments)]
fn finish_round(
    w: &mut NodeWriter,
    node: &Target,
    index: usize,
    batch: Vec<Op>,
    result: Result<Vec<Vec<String>>, String>,
    cluster: bool,
    done: &tokio::sync::mpsc::UnboundedSender<Done>,
    commands: &AtomicU64,
) -> Result<(), ReplayError> {
    let sent: u64 = batch.iter().map(|o| o.cmds.len() as u64).sum();
    if node.sentinel.is_some() {
        w.retain(&batch);
    }
    {
        let answers = match result {
            Ok(a) => a,
            Err(e) => {
                w.seen.in_doubt += sent;
                return Err(ReplayError::Connect(format!(
                    "{} (connection {index}): {e}; {sent} commands sent without an answer are in doubt",
                    node.display()
                )));
            }
        };
        for (op, errors) in batch.into_iter().zip(answers) {
            let moved = errors.iter().find(|e| e.starts_with("MOVED ")).cloned();
            if let (Some(m), true) = (moved, cluster) {
                let mut parts = m.split_whitespace().skip(1);
                let slot = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let (host, port) = parts
                    .next()
                    .and_then(|a| a.rsplit_once(':'))
                    .map(|(h, p)| (h.to_string(), p.parse().unwrap_or(0)))
                    .unwrap_or_default();
                let _ = done.send(Done::Moved(op, slot, host, port));
                continue;
            }
            for e in errors {
                let code = e.split_whitespace().next().unwrap_or("ERR").to_string();
                *w.seen.errors.entry(code).or_default() += 1;
                if w.seen.error_samples.len() < 10 {
                    let name = op
                        .cmds
                        .first()
                        .map(|c| String::from_utf8_lossy(&c[0]).to_ascii_uppercase())
                        .unwrap_or_default();
                    w.seen.error_samples.push(format!("{name}: {e}"));
                }
            }
            if op.block {
                w.seen.blocks += 1;
            }
            commands.fetch_add(op.cmds.len() as u64, Relaxed);
            let _ = done.send(Done::Acked(op.start));
        }
    }
    Ok(())
}

/// Sentinel: asks the sentinels every 200 ms which primary they name, and bumps the epoch when it
/// changes. Ends with the follow (the handle is aborted).
fn watch_primary(
    node: &Target,
) -> (
    tokio::sync::watch::Receiver<u64>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(0u64);
    let node = node.clone();
    let task = tokio::spawn(async move {
        let mut last = node.sentinel.as_ref().and_then(|s| s.current());
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let t = node.clone();
            let now = tokio::task::spawn_blocking(move || t.resolve().ok())
                .await
                .ok()
                .flatten();
            if now.is_some() && now != last {
                last = now;
                tx.send_modify(|e| *e += 1);
            }
        }
    });
    (rx, task)
}

/// Aborts a task when dropped (the writer's sentinel watcher ends with the writer).
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

/// One primary's connection and what it knows of it.
struct NodeWriter {
    conn: Box<dyn super::target::Transport>,
    /// The database the connection has selected (a cluster has only 0).
    db: Option<u64>,
    cluster: bool,
    /// The key that records the offset applied, written with each round (see [`FollowConfig`]).
    marker: Option<String>,
    /// Sentinel: the ops of the last [`RETAIN_FOR`], sent again after a failover from where the
    /// new primary's marker says it stands (writes the old primary acknowledged but had not
    /// passed to its replica yet).
    retained: std::collections::VecDeque<(Instant, Op)>,
    /// The offset the follow started at (what a primary without a marker holds).
    start_offset: u64,
    /// The end of the last op no longer kept: a new primary must hold at least that much.
    pruned_upto: u64,
    cfg: FollowConfig,
    seen: FollowSummary,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

/// How long a Sentinel follow keeps applied ops, to send again after a failover: far longer
/// than a replica's usual lag behind its primary (milliseconds).
const RETAIN_FOR: Duration = Duration::from_secs(10);
/// At most this many commands are kept for that.
const RETAIN_MAX: usize = 1 << 20;
/// How long a failover may take before the follow gives up.
const FAILOVER_WITHIN: Duration = Duration::from_secs(60);

impl NodeWriter {
    fn retain(&mut self, batch: &[Op]) {
        let now = Instant::now();
        self.retained
            .extend(batch.iter().map(|op| (now, op.clone())));
        let mut kept: usize = self.retained.iter().map(|(_, o)| o.cmds.len()).sum();
        while let Some((at, op)) = self.retained.front() {
            if now.duration_since(*at) < RETAIN_FOR && kept <= RETAIN_MAX {
                break;
            }
            kept -= op.cmds.len();
            self.pruned_upto = op.end;
            self.retained.pop_front();
        }
    }

    /// After a failover: reconnects to the primary the sentinels name (within
    /// [`FAILOVER_WITHIN`]), reads the offset its marker holds, and applies again every kept op
    /// after it, then `batch`. Returns `batch`'s errors.
    async fn recover(
        &mut self,
        node: &Target,
        batch: &[Op],
        cause: Option<String>,
    ) -> Result<Vec<Vec<String>>, String> {
        let deadline = Instant::now() + FAILOVER_WITHIN;
        let cause = cause.unwrap_or_else(|| "the primary answered READONLY".into());
        let key = self.marker.clone().unwrap_or_default();
        let held = loop {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{cause}; no writable primary within {FAILOVER_WITHIN:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let Ok(conn) = node.connect_raw().await else {
                continue;
            };
            self.conn = conn;
            self.db = None;
            self.buf.clear();
            crate::source::resp::write_resp(&[&b"ROLE"[..]], &mut self.buf);
            crate::source::resp::write_resp(&[&b"SELECT"[..], b"0"], &mut self.buf);
            crate::source::resp::write_resp(&[b"GET", key.as_bytes()], &mut self.buf);
            let Ok((replies, _, values)) = self.round_trip_values(3).await else {
                continue;
            };
            self.db = Some(0);
            if values.first().map(Vec::as_slice) != Some(b"master") {
                continue;
            }
            if let Some(Reply::Error(e)) = replies.get(2) {
                return Err(format!("reading the offset marker on the new primary: {e}"));
            }
            let marker = values.get(2).and_then(|v| {
                let text = std::str::from_utf8(v).ok()?;
                let (id, off) = text.split_once(' ')?;
                (id == self.cfg.replid).then(|| off.parse::<u64>().ok())?
            });
            break marker.unwrap_or(self.start_offset);
        };
        let again: Vec<Op> = self
            .retained
            .iter()
            .map(|(_, o)| o)
            .chain(batch.iter())
            .filter(|o| o.end > held)
            .cloned()
            .collect();
        if held < self.pruned_upto {
            return Err(format!(
                "{cause}; the new primary holds the source's writes up to offset {held} only, and rdbkit no longer keeps those from {held} to {}: rerun with --flush-target",
                self.pruned_upto
            ));
        }
        let resent = again
            .iter()
            .filter(|o| batch.iter().all(|b| b.start != o.start))
            .count();
        self.seen.notes.push(format!(
            "failover ({cause}): the new primary held the source's writes up to offset {held}; {resent} kept ops after it written again"
        ));
        let mut errs = Vec::new();
        for chunk in again.chunks(self.cfg.window_commands.max(1)) {
            errs.extend(self.transaction(chunk).await?);
        }
        // the errors of `batch`, the last ops sent again
        let n = batch.iter().filter(|o| o.end > held).count();
        let mut tail: Vec<Vec<String>> = errs.split_off(errs.len() - n);
        let mut out = vec![Vec::new(); batch.len() - n];
        out.append(&mut tail);
        Ok(out)
    }

    fn select(&mut self, db: u64) -> bool {
        if self.cluster || self.db == Some(db) {
            return false;
        }
        crate::source::resp::write_resp(
            &[&b"SELECT"[..], db.to_string().as_bytes()],
            &mut self.buf,
        );
        self.db = Some(db);
        true
    }

    /// The ops pipelined as they are (each source block as a `MULTI`/`EXEC` of its own). Returns
    /// each op's error replies.
    async fn plain(&mut self, batch: &[Op]) -> Result<Vec<Vec<String>>, String> {
        self.buf.clear();
        let mut expect = Vec::with_capacity(batch.len());
        for op in batch {
            let mut n = usize::from(self.select(op.db));
            if op.block {
                crate::source::resp::write_resp(&[&b"MULTI"[..]], &mut self.buf);
                n += 1;
            }
            for c in &op.cmds {
                crate::source::resp::write_resp(c, &mut self.buf);
                n += 1;
            }
            if op.block {
                crate::source::resp::write_resp(&[&b"EXEC"[..]], &mut self.buf);
                n += 1;
            }
            expect.push(n);
        }
        let total = expect.iter().sum();
        let (replies, _) = self.round_trip(total).await?;
        let mut at = 0;
        Ok(expect
            .into_iter()
            .map(|n| {
                let errs = replies[at..at + n]
                    .iter()
                    .filter_map(|r| match r {
                        Reply::Error(e) => Some(e.clone()),
                        _ => None,
                    })
                    .collect();
                at += n;
                errs
            })
            .collect())
    }

    /// The ops and the marker in one `MULTI`/`EXEC`: the target holds the ops and the offset after
    /// them together or neither, so a resume starts exactly after what was applied. A round
    /// that a command aborts at queue time (one the target does not know) is sent again
    /// without the transaction.
    async fn transaction(&mut self, batch: &[Op]) -> Result<Vec<Vec<String>>, String> {
        let db_before_round = self.db;
        self.buf.clear();
        crate::source::resp::write_resp(&[&b"MULTI"[..]], &mut self.buf);
        let mut owner = Vec::new();
        for (i, op) in batch.iter().enumerate() {
            if self.select(op.db) {
                owner.push(None);
            }
            for c in &op.cmds {
                crate::source::resp::write_resp(c, &mut self.buf);
                owner.push(Some(i));
            }
        }
        let end = batch.last().map_or(0, |o| o.end);
        let value = format!("{} {end}", self.cfg.replid);
        let key = self.marker.clone().unwrap_or_default();
        if self.select(0) {
            owner.push(None);
        }
        crate::source::resp::write_resp(&[b"SET", key.as_bytes(), value.as_bytes()], &mut self.buf);
        owner.push(None);
        crate::source::resp::write_resp(&[&b"EXEC"[..]], &mut self.buf);
        let (replies, nested) = self.round_trip(owner.len() + 2).await?;
        if let Some(Reply::Error(e)) = replies.last() {
            if e.starts_with("EXECABORT") {
                // nothing ran, not even the SELECTs queued in the transaction
                self.db = db_before_round;
                let errs = self.plain(batch).await?;
                self.buf.clear();
                let selected = self.select(0);
                crate::source::resp::write_resp(
                    &[b"SET", key.as_bytes(), value.as_bytes()],
                    &mut self.buf,
                );
                self.round_trip(1 + usize::from(selected)).await?;
                return Ok(errs);
            }
        }
        let mut errs = vec![Vec::new(); batch.len()];
        for (i, e) in nested {
            if let Some(Some(op)) = owner.get(i) {
                errs[*op].push(e);
            }
        }
        Ok(errs)
    }

    /// Writes the buffer and reads `n` replies within the reply timeout each way; errors inside
    /// the last array reply come with their index.
    async fn round_trip(&mut self, n: usize) -> Result<(Vec<Reply>, Vec<(usize, String)>), String> {
        let (r, nested, _) = self.round_trip_values(n).await?;
        Ok((r, nested))
    }

    /// [`Self::round_trip`], also keeping each reply's first bulk string (up to 4 KiB; `ROLE`'s
    /// role, a `GET`'s value).
    async fn round_trip_values(
        &mut self,
        n: usize,
    ) -> Result<(Vec<Reply>, Vec<(usize, String)>, Vec<Vec<u8>>), String> {
        let limit = self.cfg.reply_timeout;
        tokio::time::timeout(limit, self.conn.write_all(&self.buf))
            .await
            .map_err(|_| format!("no progress writing for {limit:?}"))?
            .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(n);
        let mut skip = ReplySkipper::default();
        while out.len() < n {
            let got = tokio::time::timeout(limit, self.conn.read(&mut self.scratch))
                .await
                .map_err(|_| format!("no answer for {limit:?}"))?
                .map_err(|e| e.to_string())?;
            if got == 0 {
                return Err("the target closed the connection".into());
            }
            skip.feed(&self.scratch[..got], &mut out)?;
        }
        Ok((out, skip.nested, skip.values))
    }
}

/// Reads replies of any size with bounded memory: a follow applies whatever the source ran, and
/// some commands answer with values (`LPOP`, `GETDEL`) that may be large. Only whether each reply
/// is an error (and its text) is kept.
#[derive(Debug, Default)]
struct ReplySkipper {
    /// Elements still to read in each open array (the innermost last), and how many it had.
    open: Vec<(u64, u64)>,
    /// Errors that were elements of a top-level array, with their index in it (the replies
    /// inside an `EXEC`).
    nested: Vec<(usize, String)>,
    /// Bytes of a bulk string (and its CRLF) still to skip.
    bulk_left: u64,
    /// A partial line.
    line: Vec<u8>,
    /// The first error inside the current top-level array.
    nested_err: Option<String>,
    /// Per top-level reply, its first bulk string when that is at most 4 KiB (else empty).
    values: Vec<Vec<u8>>,
    /// The first bulk string of the current top-level reply, and whether one was seen.
    value: Option<Vec<u8>>,
    /// A bulk string being kept (its bytes so far).
    keeping: Option<Vec<u8>>,
}

impl ReplySkipper {
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<Reply>) -> Result<(), String> {
        while !data.is_empty() {
            if self.bulk_left > 0 {
                let n = (data.len() as u64).min(self.bulk_left) as usize;
                if let Some(k) = self.keeping.as_mut() {
                    k.extend_from_slice(&data[..n]);
                }
                data = &data[n..];
                self.bulk_left -= n as u64;
                if self.bulk_left == 0 {
                    if let Some(mut k) = self.keeping.take() {
                        k.truncate(k.len().saturating_sub(2));
                        self.value.get_or_insert(k);
                    }
                }
                if self.bulk_left == 0 {
                    self.element_done(Reply::Other, out);
                }
                continue;
            }
            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(data);
                if self.line.len() > 1 << 20 {
                    return Err("a reply line longer than 1 MiB".into());
                }
                return Ok(());
            };
            self.line.extend_from_slice(&data[..=nl]);
            data = &data[nl + 1..];
            let line = std::mem::take(&mut self.line);
            let body = line
                .strip_suffix(b"\r\n")
                .ok_or("a reply line without CR")?;
            let (&tag, rest) = body.split_first().ok_or("an empty reply line")?;
            let num = || -> Result<i64, String> {
                std::str::from_utf8(rest)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        format!("bad number in reply {:?}", String::from_utf8_lossy(body))
                    })
            };
            match tag {
                b'-' | b'!' => {
                    let e = String::from_utf8_lossy(rest).into_owned();
                    self.element_done(Reply::Error(e), out)
                }
                b'+' | b':' | b',' | b'#' | b'_' | b'(' => self.element_done(Reply::Other, out),
                b'$' | b'=' => match num()? {
                    n if n < 0 => self.element_done(Reply::Other, out),
                    n => {
                        self.bulk_left = n as u64 + 2;
                        if n <= 4096 && self.value.is_none() {
                            self.keeping = Some(Vec::with_capacity(n as usize + 2));
                        }
                    }
                },
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = num()?;
                    let n = if matches!(tag, b'%' | b'|') {
                        n.saturating_mul(2)
                    } else {
                        n
                    };
                    if n <= 0 {
                        self.element_done(Reply::Other, out);
                    } else {
                        if self.open.is_empty() {
                            self.nested.clear();
                        }
                        self.open.push((n as u64, n as u64));
                    }
                }
                _ => return Err(format!("unexpected reply type byte 0x{tag:02x}")),
            }
        }
        Ok(())
    }

    /// One element ended: the enclosing arrays count it; a top-level reply is emitted.
    fn element_done(&mut self, r: Reply, out: &mut Vec<Reply>) {
        let mut r = r;
        loop {
            if self.open.is_empty() {
                let nested = self.nested_err.take();
                self.values.push(self.value.take().unwrap_or_default());
                out.push(match (r, nested) {
                    (Reply::Error(e), _) => Reply::Error(e),
                    (_, Some(e)) => Reply::Error(e),
                    (r, None) => r,
                });
                return;
            }
            if let Reply::Error(e) = &r {
                self.nested_err.get_or_insert_with(|| e.clone());
            }
            let depth = self.open.len();
            let (left, total) = self.open.last_mut().expect("checked above");
            if let (Reply::Error(e), 1) = (&r, depth) {
                self.nested.push(((*total - *left) as usize, e.clone()));
            }
            *left -= 1;
            if *left > 0 {
                return;
            }
            self.open.pop();
            r = Reply::Other;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Command {
        Command {
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            len: 0,
        }
    }

    fn strs(v: Vec<Vec<u8>>) -> Vec<String> {
        v.into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect()
    }

    #[test]
    fn relative_ttls_become_absolute() {
        let now = 1_000_000;
        assert_eq!(
            strs(absolute_ttl(cmd(&["expire", "k", "10"]), now)),
            ["PEXPIREAT", "k", "1010000"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["PEXPIRE", "k", "5", "NX"]), now)),
            ["PEXPIREAT", "k", "1000005", "NX"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["SETEX", "k", "2", "v"]), now)),
            ["SET", "k", "v", "PXAT", "1002000"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["set", "k", "v", "px", "7", "GET"]), now)),
            ["set", "k", "v", "PXAT", "1000007", "GET"]
        );
        // a value that reads "EX" is not an option
        assert_eq!(
            strs(absolute_ttl(cmd(&["SET", "EX", "EX", "EX", "3"]), now)),
            ["SET", "EX", "EX", "PXAT", "1003000"]
        );
        assert_eq!(
            strs(absolute_ttl(cmd(&["PEXPIREAT", "k", "99"]), now)),
            ["PEXPIREAT", "k", "99"]
        );
    }

    #[test]
    fn replies_of_any_size_are_skipped_with_their_errors_kept() {
        let mut s = ReplySkipper::default();
        let mut out = Vec::new();
        let big = format!("${}\r\n{}\r\n", 3 << 20, "x".repeat(3 << 20));
        let stream =
            format!("+OK\r\n{big}*2\r\n:1\r\n-ERR inner\r\n-WRONGTYPE no\r\n*0\r\n$-1\r\n");
        // fed in small pieces, as a socket delivers them
        for chunk in stream.as_bytes().chunks(7) {
            s.feed(chunk, &mut out).unwrap();
        }
        assert_eq!(
            out,
            vec![
                Reply::Other,
                Reply::Other,
                Reply::Error("ERR inner".into()),
                Reply::Error("WRONGTYPE no".into()),
                Reply::Other,
                Reply::Other,
            ]
        );
    }
}
