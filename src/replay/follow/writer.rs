//! One writer per primary: ops in order, pipelined rounds, each round with its offset marker in
//! one `MULTI`/`EXEC` when resumable; a Sentinel failover ridden from the new primary's marker.

use super::replies::ReplySkipper;
use super::{Done, FollowConfig, FollowSummary, Op};
use crate::replay::error::ReplayError;
use crate::replay::reply::Reply;
use crate::replay::target::Target;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One primary's writer: takes ops in order, sends them pipelined, reads the replies. What it
/// saw (errors, blocks, commands in doubt) is returned, not shared under a lock.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write_node(
    index: usize,
    node: Target,
    cluster: bool,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<Op>>,
    done: tokio::sync::mpsc::UnboundedSender<Done>,
    cfg: FollowConfig,
    commands: Arc<AtomicU64>,
    links: Arc<super::Links>,
) -> (FollowSummary, Result<(), ReplayError>) {
    let mut w = NodeWriter {
        conn: match node.connect_raw().await {
            Ok(c) => c,
            Err(e) => return (FollowSummary::default(), Err(e)),
        },
        db: None,
        cluster,
        retained: std::collections::VecDeque::new(),
        retained_size: (0, 0),
        start_offset: cfg.start_offset,
        pruned_upto: cfg.start_offset,
        marker: cfg.marker.clone().filter(|_| !cluster),
        cfg,
        seen: FollowSummary::default(),
        links,
        buf: Vec::with_capacity(1 << 20),
        scratch: vec![0u8; 1 << 16],
    };
    let watcher = node.sentinel.as_ref().map(|_| watch_primary(&node));
    let mut epoch = watcher.as_ref().map(|(rx, _)| rx.clone());
    let _stop_watching = AbortOnDrop(watcher.map(|(_, task)| task));
    // ops come in chunks; a round takes up to `window_commands` of them, the rest wait here
    let mut pending: std::collections::VecDeque<Op> = std::collections::VecDeque::new();
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(ops) => pending.extend(ops),
                None => break,
            }
        }
        let mut batch = Vec::new();
        let mut n_cmds = 0;
        while n_cmds < w.cfg.window_commands {
            if pending.is_empty() {
                match rx.try_recv() {
                    Ok(ops) => pending.extend(ops),
                    Err(_) => break,
                }
            }
            let Some(op) = pending.pop_front() else {
                break;
            };
            n_cmds += op.cmds.len();
            batch.push(op);
        }
        if batch.is_empty() {
            continue;
        }
        // the sentinels name a new primary: the old one may accept writes for seconds before it
        // is demoted, and those would be lost with it
        if let Some(e) = epoch.as_mut().filter(|e| e.has_changed().unwrap_or(false)) {
            let named = *e.borrow_and_update();
            w.links.failovers.fetch_max(named, Relaxed);
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
    // a primary named after the last round is a failover too
    if let Some(e) = &epoch {
        w.links.failovers.fetch_max(*e.borrow(), Relaxed);
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
        let mut acked = Vec::with_capacity(batch.len());
        let mut applied = 0;
        for (op, errors) in batch.into_iter().zip(answers) {
            if cluster {
                if let Some(d) = redirect(op.clone(), &errors) {
                    let _ = done.send(d);
                    continue;
                }
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
            applied += op.cmds.len() as u64;
            acked.push(op.start);
        }
        commands.fetch_add(applied, Relaxed);
        let _ = done.send(Done::Acked(acked));
    }
    Ok(())
}

/// What a cluster's answers to an op ask for: `MOVED`/`ASK` (to another node) or `TRYAGAIN`.
fn redirect(op: Op, errors: &[String]) -> Option<Done> {
    for e in errors {
        let mut parts = e.split_whitespace();
        let kind = parts.next()?;
        if kind == "TRYAGAIN" {
            return Some(Done::Retry(op));
        }
        if kind != "MOVED" && kind != "ASK" {
            continue;
        }
        let slot = parts.next().and_then(|s| s.parse().ok())?;
        let (host, port) = parts.next()?.rsplit_once(':')?;
        return Some(Done::Redirect {
            op,
            slot,
            host: host.to_string(),
            port: port.parse().ok()?,
            ask: kind == "ASK",
        });
    }
    None
}

/// Sentinel: the epoch of the primary the sentinels name (see [`crate::replay::watch_primary`]).
/// Ends with the follow (the handle is aborted).
fn watch_primary(
    node: &Target,
) -> (
    tokio::sync::watch::Receiver<u64>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(0u64);
    let node = node.clone();
    let task = tokio::spawn(async move { crate::replay::watch_primary(&node, &tx).await });
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
    conn: Box<dyn crate::replay::target::Transport>,
    /// The database the connection has selected (a cluster has only 0).
    db: Option<u64>,
    cluster: bool,
    /// The key that records the offset applied, written with each round (see [`FollowConfig`]).
    marker: Option<String>,
    /// Sentinel: the ops of the last [`RETAIN_FOR`], sent again after a failover from where the
    /// new primary's marker says it stands (writes the old primary acknowledged but had not
    /// passed to its replica yet).
    retained: std::collections::VecDeque<(Instant, Op)>,
    /// Commands and bytes in `retained`.
    retained_size: (usize, usize),
    /// The offset the follow started at (what a primary without a marker holds).
    start_offset: u64,
    /// The end of the last op no longer kept: a new primary must hold at least that much.
    pruned_upto: u64,
    cfg: FollowConfig,
    seen: FollowSummary,
    /// Reconnects and failovers, counted for the progress reports.
    links: Arc<super::Links>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

/// How long a Sentinel follow keeps applied ops, to send again after a failover: far longer
/// than a replica's usual lag behind its primary (milliseconds).
const RETAIN_FOR: Duration = Duration::from_secs(10);
/// At most this many commands are kept for that.
const RETAIN_MAX: usize = 1 << 20;
/// … and at most this many bytes of them.
const RETAIN_BYTES: usize = 256 << 20;
/// How long a failover may take before the follow gives up.
const FAILOVER_WITHIN: Duration = Duration::from_secs(60);

impl NodeWriter {
    fn retain(&mut self, batch: &[Op]) {
        let now = Instant::now();
        // kept copies give their share of the follow's memory back: what they hold is bounded
        // here, by time, commands and bytes
        self.retained.extend(batch.iter().map(|op| {
            let mut kept = op.clone();
            kept.budget = None;
            (now, kept)
        }));
        for op in batch {
            self.retained_size.0 += op.cmds.len();
            self.retained_size.1 += op.bytes();
        }
        while let Some((at, op)) = self.retained.front() {
            let (kept, bytes) = self.retained_size;
            if now.duration_since(*at) < RETAIN_FOR && kept <= RETAIN_MAX && bytes <= RETAIN_BYTES {
                break;
            }
            self.retained_size.0 -= op.cmds.len();
            self.retained_size.1 -= op.bytes();
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
            self.links.reconnects.fetch_add(1, Relaxed);
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
            // ASKING holds for the next command, or for a whole MULTI block
            let asking = |buf: &mut Vec<u8>, n: &mut usize| {
                if op.asking {
                    crate::source::resp::write_resp(&[&b"ASKING"[..]], buf);
                    *n += 1;
                }
            };
            if op.block {
                asking(&mut self.buf, &mut n);
                crate::source::resp::write_resp(&[&b"MULTI"[..]], &mut self.buf);
                n += 1;
            }
            for c in &op.cmds {
                if !op.block {
                    asking(&mut self.buf, &mut n);
                }
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
        // a round of large values leaves no large buffer behind
        if self.buf.capacity() > 8 << 20 {
            self.buf = Vec::with_capacity(1 << 20);
        }
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
