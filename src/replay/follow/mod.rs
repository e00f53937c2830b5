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

mod parse;
mod replies;
mod route;
mod writer;

pub use parse::{absolute_ttl, touched_before};
use route::{broadcast, by_slot, route, SlotMap};
use writer::write_node;

use super::error::ReplayError;
use super::target::Target;
use crate::source::replica::ReplicaProgress;
use crate::source::resp::CommandSource;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to follow.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Source database → target database.
    pub db_map: BTreeMap<u64, u64>,
    /// Only these source databases (empty: all).
    pub dbs: Vec<u64>,
    /// Only commands on keys matching one of these globs (`--key`; empty: all). A command on
    /// several keys of which only some match is cut to those (`DEL`, `UNLINK`, `TOUCH`, `MSET`)
    /// or left out, and counted in the summary's notes.
    pub keys: Vec<Vec<u8>>,
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
    /// `--replace`: the import's own keys (the snapshot's, and any the commands touched before
    /// `start_offset`); a command's first touch of any other key deletes it first (see
    /// [`crate::replay::keyset`]). `None`: commands apply onto whatever the target holds.
    pub replace_foreign: Option<Arc<std::sync::Mutex<crate::replay::keyset::Ours>>>,
    /// `--rename`: every key of every command is written under its new name (the first rule
    /// that matches), its position known from the servers' key specifications
    /// ([`crate::commands::keys`]); a command whose keys cannot be placed is left out and
    /// reported, never applied under the old names.
    pub renames: Vec<crate::transform::Rename>,
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
    /// Times a target connection was made anew (Sentinel: after a failover or a broken link).
    pub reconnects: u64,
    /// Times the sentinels named a new primary of the target.
    pub failovers: u64,
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
    /// Times a target connection was made anew so far ([`FollowSummary::reconnects`]).
    pub reconnects: u64,
    /// Times the sentinels named a new primary of the target so far.
    pub failovers: u64,
}

/// What the writers count of their links to the target, shared with the dispatcher.
#[derive(Debug, Default)]
struct Links {
    /// Connections made anew.
    reconnects: AtomicU64,
    /// New primaries named by the sentinels (the highest epoch a writer saw).
    failovers: AtomicU64,
}

/// One unit applied in order: a command, or a whole `MULTI`/`EXEC` block.
#[derive(Debug, Clone)]
struct Op {
    start: u64,
    end: u64,
    db: u64,
    cmds: Vec<Vec<Vec<u8>>>,
    block: bool,
    /// Sent after `ASKING` (an ASK redirection: the slot is being imported by that node).
    asking: bool,
    /// Redirections followed so far (a bound against a cluster that sends an op in circles).
    redirects: u8,
    /// Its share of [`FOLLOW_MEMORY`], given back when the last copy of the op is dropped
    /// (acknowledged by every primary it went to). Copies kept for a failover do not hold it.
    budget: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

impl Op {
    /// The bytes its arguments take.
    fn bytes(&self) -> usize {
        self.cmds
            .iter()
            .flat_map(|c| c.iter())
            .map(|a| a.len() + 16)
            .sum()
    }
}

/// Most bytes of the source's commands held between the parser and the target's acknowledgement
/// (queued, in flight, redirected), all primaries together: the values of a burst of large
/// writes wait in the spool (memory, then a file), not here. A single larger op still goes, alone.
pub const FOLLOW_MEMORY: usize = 64 << 20;

/// The parser's side of [`FOLLOW_MEMORY`]. The parser runs on a thread of its own, so waiting
/// for room there blocks no runtime worker; the wait ends when the writers acknowledge ops, or
/// when the follow ends (the semaphore is closed).
struct Budget {
    room: Arc<tokio::sync::Semaphore>,
    rt: tokio::runtime::Handle,
}

impl Budget {
    /// Room for `bytes` (at most the whole budget); `None` once the follow has ended.
    fn take(&self, bytes: usize) -> Option<Arc<tokio::sync::OwnedSemaphorePermit>> {
        let n = bytes.clamp(1, FOLLOW_MEMORY) as u32;
        self.rt
            .block_on(self.room.clone().acquire_many_owned(n))
            .ok()
            .map(Arc::new)
    }
}

/// The ops dispatched and not yet acknowledged everywhere they went, in dispatch order (which is
/// the order of their start offsets): a queue, not a map, since acknowledgements come nearly in
/// order and the applied offset is the first one still due.
#[derive(Default)]
struct Outstanding {
    /// (start offset, acknowledgements due); 0 due: acknowledged, left until it reaches the front.
    ops: std::collections::VecDeque<(u64, usize)>,
    /// Entries with acknowledgements due.
    due: usize,
}

impl Outstanding {
    fn push(&mut self, start: u64, n: usize) {
        self.ops.push_back((start, n));
        self.due += 1;
    }

    fn ack(&mut self, start: u64) {
        // nearly always the front: one writer acknowledges in the order it was given
        let at = match self.ops.front() {
            Some((s, _)) if *s == start => Ok(0),
            _ => self.ops.binary_search_by_key(&start, |(s, _)| *s),
        };
        if let Ok(i) = at {
            let n = &mut self.ops[i].1;
            if *n > 0 {
                *n -= 1;
                if *n == 0 {
                    self.due -= 1;
                }
            }
        }
        while self.ops.front().is_some_and(|(_, n)| *n == 0) {
            self.ops.pop_front();
        }
    }

    /// The start of the first op still due.
    fn first(&self) -> Option<u64> {
        self.ops.front().map(|(s, _)| *s)
    }

    /// Entries held (acknowledged ones behind the first due included): what bounds its memory.
    fn len(&self) -> usize {
        self.ops.len()
    }

    fn is_empty(&self) -> bool {
        self.due == 0
    }
}

/// Most redirections one op follows before the follow stops with an error.
const MAX_REDIRECTS: u8 = 16;

/// Applies `reader`'s commands to `target` until `cfg.until` is reached (see the module
/// documentation); `live` learns the applied offset.
pub fn follow<S: CommandSource + 'static>(
    reader: S,
    live: ReplicaProgress,
    target: Target,
    cfg: FollowConfig,
    on_progress: Box<dyn Fn(&FollowProgress) + Send>,
) -> Result<FollowSummary, ReplayError> {
    let started = Instant::now();
    let rt = super::runtime()?;
    let pinned = target.pinned()?;
    let mut con = pinned.control(cfg.reply_timeout)?;
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query(&mut con)
        .map_err(|e| pinned.failure("INFO: ", &e))?;
    let cluster = info.contains("cluster_enabled:1");
    let (nodes, routes) = if cluster {
        let (slots, nodes) = crate::replay::preflight::cluster_layout(&mut con, &pinned)?;
        let routes = SlotMap::new(slots, nodes.clone());
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
    let (ops_tx, ops_rx) = async_channel::bounded::<Vec<Op>>(64);
    let parse_cfg = cfg.clone();
    let parse_live = live.clone();
    let counts = Arc::new(parse::Counts::default());
    let parse_counts = counts.clone();
    let room = Arc::new(tokio::sync::Semaphore::new(FOLLOW_MEMORY));
    let budget = Budget {
        room: room.clone(),
        rt: rt.handle().clone(),
    };
    let parser = std::thread::Builder::new()
        .name("rdbkit-follow".into())
        .spawn(move || {
            parse::parse(
                reader,
                &parse_live,
                &parse_cfg,
                &ops_tx,
                &parse_counts,
                &budget,
            )
        })
        .map_err(|e| ReplayError::Internal(format!("starting the follow parser: {e}")))?;
    let applied = Arc::new(AtomicU64::new(start_offset));
    let commands = Arc::new(AtomicU64::new(0));
    let links = Arc::new(Links::default());
    let (mut summary, result) = rt.block_on(dispatch(Dispatch {
        ops: ops_rx,
        nodes,
        routes,
        cfg: cfg.clone(),
        live: live.clone(),
        applied: applied.clone(),
        commands: commands.clone(),
        links: links.clone(),
        on_progress,
    }));
    summary.reconnects = links.reconnects.load(Relaxed);
    summary.failovers = links.failovers.load(Relaxed);
    // a parser waiting for room ends now
    room.close();
    // the parser ends when the source's stream is closed (the caller stops the replica) or when
    // its queue is gone; it is waited for only when it has ended (the stream broke)
    if parser.is_finished() {
        if let Ok(Err(e)) = parser.join() {
            summary
                .notes
                .push(format!("the source's stream ended: {e}"));
        }
    }
    // the UNLINKs of --replace are the target's, not the source's commands
    let foreign = counts.foreign.load(Relaxed);
    summary.commands = commands.load(Relaxed).saturating_sub(foreign);
    if foreign > 0 {
        summary.notes.push(format!(
            "--replace: {} cleared on the target as the commands first wrote them (UNLINK in the same MULTI), so that the commands built the source's values instead of adding to the target's: keys it held before the import that the snapshot did not replace (on a resume, any key not written by the import before it)",
            crate::text::count(foreign, "key")
        ));
    }
    summary.skipped = counts.skipped.load(Relaxed);
    let renamed = counts.renamed.load(Relaxed);
    if renamed > 0 {
        summary.notes.push(format!(
            "--rename: {} in the commands written under their new names",
            crate::text::count(renamed, "key")
        ));
    }
    let split = &counts.split;
    let cut = split.cut.load(Relaxed);
    if cut > 0 {
        summary.notes.push(format!(
            "{cut} commands (DEL, UNLINK, TOUCH, MSET) named keys on both sides of --key: applied to the matching keys only"
        ));
    }
    let left = split
        .left_out
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if !left.is_empty() {
        let list: Vec<String> = left.iter().map(|(n, c)| format!("{c} {n}")).collect();
        summary.notes.push(format!(
            "left out, naming keys on both sides of --key (the target may now differ from the source for their keys): {}",
            list.join(", ")
        ));
    }
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

struct Dispatch {
    ops: async_channel::Receiver<Vec<Op>>,
    nodes: Vec<Target>,
    routes: Option<SlotMap>,
    cfg: FollowConfig,
    live: ReplicaProgress,
    applied: Arc<AtomicU64>,
    commands: Arc<AtomicU64>,
    links: Arc<Links>,
    on_progress: Box<dyn Fn(&FollowProgress) + Send>,
}

/// What a writer tells the dispatcher.
enum Done {
    /// The ops that started at these offsets are acknowledged (one round's).
    Acked(Vec<u64>),
    /// The op must go to another node: `MOVED` (the slot's owner changed) or `ASK` (the key is
    /// being migrated: this op only, after `ASKING`).
    Redirect {
        op: Op,
        slot: u16,
        host: String,
        port: u16,
        ask: bool,
    },
    /// A command on several keys of a slot being migrated, some moved already (`TRYAGAIN`):
    /// sent again shortly.
    Retry(Op),
    /// The writer stopped on an error (returned by its task).
    Failed,
}

/// The writers' queues and tasks; a node met by a redirection gets its writer on the way.
struct Writers {
    /// Unbounded: what they hold is bounded by [`FOLLOW_MEMORY`] (every op holds its share), and
    /// a dispatcher waiting on one stalled primary would stop the others' acknowledgements and
    /// the progress line too.
    queues: Vec<tokio::sync::mpsc::UnboundedSender<Vec<Op>>>,
    tasks: Vec<tokio::task::JoinHandle<(FollowSummary, Result<(), ReplayError>)>>,
    done: tokio::sync::mpsc::UnboundedSender<Done>,
    cluster: bool,
    cfg: FollowConfig,
    commands: Arc<AtomicU64>,
    links: Arc<Links>,
}

impl Writers {
    fn start(&mut self, node: Target) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Op>>();
        let i = self.queues.len();
        self.queues.push(tx);
        let done = self.done.clone();
        let writer = write_node(
            i,
            node,
            self.cluster,
            rx,
            done.clone(),
            self.cfg.clone(),
            self.commands.clone(),
            self.links.clone(),
        );
        self.tasks.push(tokio::spawn(async move {
            let (seen, r) = writer.await;
            if r.is_err() {
                let _ = done.send(Done::Failed);
            }
            (seen, r)
        }));
    }
}

async fn dispatch(mut d: Dispatch) -> (FollowSummary, Result<(), ReplayError>) {
    let mut seen = FollowSummary::default();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Done>();
    let mut w = Writers {
        queues: Vec::new(),
        tasks: Vec::new(),
        done: done_tx,
        cluster: d.routes.is_some(),
        cfg: d.cfg.clone(),
        commands: d.commands.clone(),
        links: d.links.clone(),
    };
    for node in &d.nodes {
        w.start(node.clone());
    }
    let (mut asked, mut moved, mut retried) = (0u64, 0u64, 0u64);
    // ops sent and not acknowledged, in the order they were dispatched (by start offset), with
    // the acknowledgements still due (one per primary for a command sent to all); acknowledged
    // ones leave from the front
    let mut outstanding = Outstanding::default();
    let mut dispatched = d.applied.load(Relaxed);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut input_open = true;
    let mut spanned = 0u64;
    let mut per_node: Vec<Vec<Op>> = Vec::new();
    let result = loop {
        let applied = outstanding.first().unwrap_or(dispatched).min(dispatched);
        d.applied.store(applied, Relaxed);
        d.live.applied(applied);
        if applied >= d.cfg.until.load(Relaxed) || d.cfg.abort.load(Relaxed) {
            break Ok(());
        }
        if !input_open && outstanding.is_empty() {
            break Ok(());
        }
        tokio::select! {
            chunk = d.ops.recv(), if input_open && outstanding.len() < 1 << 18 => match chunk {
                Ok(chunk) => {
                    per_node.resize_with(w.queues.len(), Vec::new);
                    for op in chunk {
                        dispatched = op.end;
                        if op.cmds.is_empty() {
                            continue;
                        }
                        let start = op.start;
                        let n = match &d.routes {
                            None => {
                                per_node[0].push(op);
                                1
                            }
                            Some(_) if broadcast(&op) => {
                                for q in per_node.iter_mut() {
                                    q.push(op.clone());
                                }
                                per_node.len()
                            }
                            Some(r) => {
                                let parts = by_slot(op);
                                if parts.len() > 1 {
                                    spanned += 1;
                                }
                                let n = parts.len();
                                for p in parts {
                                    per_node[route(&p, Some(r))].push(p);
                                }
                                n
                            }
                        };
                        outstanding.push(start, n);
                    }
                    let mut sent = true;
                    for (node, ops) in per_node.iter_mut().enumerate() {
                        if !ops.is_empty() {
                            sent &= w.queues[node].send(std::mem::take(ops)).is_ok();
                        }
                    }
                    if !sent {
                        break Err(ReplayError::Stopped);
                    }
                }
                Err(_) => input_open = false,
            },
            done = done_rx.recv() => match done {
                Some(Done::Acked(starts)) => {
                    for start in starts {
                        outstanding.ack(start);
                    }
                }
                Some(Done::Redirect { mut op, slot, host, port, ask }) => {
                    if op.redirects >= MAX_REDIRECTS {
                        break Err(ReplayError::Protocol(format!(
                            "a command of the source's offset {} was redirected {MAX_REDIRECTS} times (last to {host}:{port} for slot {slot}): the cluster's slot map does not settle",
                            op.start
                        )));
                    }
                    op.redirects += 1;
                    let Some(map) = d.routes.as_mut() else {
                        break Err(ReplayError::Protocol(format!("{host}:{port} redirected a command, but the target is not a cluster")));
                    };
                    let (node, new) = map.node(&host, port);
                    if new {
                        w.start(map.nodes[node].clone());
                    }
                    if ask {
                        asked += 1;
                    } else {
                        moved += 1;
                        map.moved(slot, node);
                    }
                    op.asking = ask;
                    if w.queues[node].send(vec![op]).is_err() {
                        break Err(ReplayError::Stopped);
                    }
                }
                Some(Done::Retry(mut op)) => {
                    if op.redirects >= MAX_REDIRECTS {
                        break Err(ReplayError::Protocol(format!(
                            "a command of the source's offset {} was answered TRYAGAIN {MAX_REDIRECTS} times: its slot's migration does not end",
                            op.start
                        )));
                    }
                    op.redirects += 1;
                    retried += 1;
                    // the keys of a slot in migration are split between two nodes for as long as
                    // MIGRATE takes for them: wait a little, then send it where its slot is now
                    let node = route(&op, d.routes.as_ref());
                    let q = w.queues[node].clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _ = q.send(vec![op]);
                    });
                }
                // a writer failed (its error is the one reported) or every writer ended
                Some(Done::Failed) | None => break Err(ReplayError::Stopped),
            },
            _ = tick.tick() => {
                (d.on_progress)(&FollowProgress {
                    commands: d.commands.load(Relaxed),
                    applied_offset: applied,
                    received_offset: d.live.received_offset(),
                    reconnects: d.links.reconnects.load(Relaxed),
                    failovers: d.links.failovers.load(Relaxed),
                });
            }
        }
    };
    let Writers { queues, tasks, .. } = w;
    drop(queues);
    if asked + moved + retried > 0 {
        seen.notes.push(format!(
            "cluster redirections followed: {moved} MOVED, {asked} ASK, {retried} TRYAGAIN"
        ));
    }
    if spanned > 0 {
        seen.notes.push(format!(
            "{spanned} commands or MULTI blocks named keys of several hash slots: a cluster cannot run them as one, so they were applied per slot (a block then not atomically)"
        ));
    }
    let mut first_err = None;
    for t in tasks {
        match t.await {
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
