//! One data-plane connection: writes batches with a bounded window of commands and bytes in
//! flight, matches replies to keys as they arrive, and survives dropped connections and stalls by
//! reconnecting with backoff and re-sending every unacknowledged batch idempotently.
//!
//! The data plane is hand-written over a raw socket rather than the `redis` crate's pipeline: the
//! crate copies every argument into a `Cmd` and builds a `Value` per reply, while here batches are
//! RESP bytes encoded once by the planner and replies only need to be classified as OK or error.

use super::batch::Batch;
use super::config::ConnConfig;
use super::error::ReplayError;
use super::reply;
use super::shared::Shared;
use super::wire::{InFlight, Stop, CONNECT_TIMEOUT, MAX_PENDING_REPLY};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Acknowledged batches kept for a rewrite after a failover (Sentinel targets only). A primary
/// acknowledges a write before its replicas have it, so a replica promoted by a failover can miss
/// the last writes the old primary acknowledged. Batches are kept until a `WAIT` proves that every
/// online replica has them ("confirmed"), and are written again on the new primary otherwise.
///
/// Bounded per connection by `cap` bytes (its share of `--buffer-mb`) and `max_batches`
/// (`--rewrite-batches`): past half of either, the next batch carries `WAIT <replicas> <t>`; when
/// full, the connection takes no new batch until a WAIT answers (a bare one is sent if none is on
/// the wire). So memory stays bounded, and a wait for room always ends: a WAIT answers within `t`.
/// A WAIT answered by fewer replicas (one is gone, or lags by more than `t`) leaves the batches
/// kept; when that happens with the store full (or at the end of the input), the oldest are given
/// up, counted in [`super::ledger::Stats::unconfirmed`] and named in the summary, so that a dead replica
/// cannot stall the import.
pub(super) struct Retained {
    batches: VecDeque<InFlight>,
    bytes: usize,
    cap: usize,
    max_batches: usize,
    /// Replicas of the current primary: what a WAIT must reach to confirm.
    replicas: u32,
    /// Since when WAITs have been answered by fewer replicas (none: the last one confirmed).
    short_since: Option<std::time::Instant>,
    /// [`GIVE_UP_AFTER`] (shorter in unit tests).
    give_up_after: Duration,
    /// How long a WAIT may block the connection.
    wait: Duration,
    /// Bytes sent since the last WAIT went out.
    since_wait: usize,
    /// A WAIT is on the wire.
    wait_pending: bool,
}

impl Retained {
    fn new(cap: usize, max_batches: usize, reply_timeout: Duration) -> Retained {
        Retained {
            batches: VecDeque::new(),
            bytes: 0,
            cap,
            max_batches,
            replicas: 1,
            short_since: None,
            give_up_after: GIVE_UP_AFTER,
            wait: (reply_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(10)),
            since_wait: 0,
            wait_pending: false,
        }
    }

    fn enabled(&self) -> bool {
        self.cap > 0 && self.max_batches > 0
    }

    /// No new batch until a WAIT confirms (or gives up) some.
    fn full(&self) -> bool {
        self.enabled() && (self.bytes >= self.cap || self.batches.len() >= self.max_batches)
    }

    /// The WAIT a batch of `len` bytes about to be sent should carry, if any (`force`: one is
    /// needed now).
    fn wait_for(
        &mut self,
        len: usize,
        user: Option<(u32, Duration)>,
        force: bool,
    ) -> Option<(u32, Duration)> {
        if !self.enabled() {
            return user;
        }
        let due = force
            || !self.wait_pending
                && (self.since_wait + len >= self.cap / 2
                    || self.batches.len() >= self.max_batches / 2
                    || self.full());
        let wait = match user {
            // every batch waits already: ask for every online replica too
            Some((n, t)) => Some((n.max(self.replicas), t.max(self.wait))),
            None if due => Some((self.replicas, self.wait)),
            None => None,
        };
        if wait.is_some() {
            self.wait_pending = true;
            self.since_wait = 0;
        } else {
            self.since_wait += len;
        }
        wait
    }

    /// A bare WAIT is needed: kept batches wait for a confirmation and no batch will bring one
    /// (the store is full, or the input is over and everything is acknowledged).
    fn needs_bare_wait(&self, input_over: bool) -> bool {
        self.enabled()
            && !self.wait_pending
            && !self.batches.is_empty()
            && (self.full() || input_over)
    }

    /// An acknowledged batch: kept, or (with everything before it) released by its WAIT.
    /// `may_give_up`: unconfirmed batches may be given up (no failover is under way).
    fn on_acknowledged(
        &mut self,
        mut f: InFlight,
        shared: &Shared,
        input_over: bool,
        may_give_up: bool,
    ) {
        if !self.enabled() {
            shared.pool.recycle(f.sent);
            return;
        }
        let mut answered = None;
        if let Some(got) = f.replicated {
            self.wait_pending = false;
            if got >= i64::from(self.replicas) {
                self.short_since = None;
                for old in self.batches.drain(..) {
                    shared.pool.recycle(old.sent);
                }
                self.bytes = 0;
                shared.pool.recycle(f.sent);
                return;
            }
            answered = Some(got.max(0) as u32);
        }
        let unconfirmed = f.replicated.is_some();
        let short_for = if unconfirmed {
            self.short_since
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
        } else {
            Duration::ZERO
        };
        // held bytes are this store's, no longer the queue's budget
        f.batch.permit = None;
        if !f.batch.keys.is_empty() {
            self.bytes += f.sent.len();
            self.batches.push_back(f);
        }
        // A replica short for less than `GIVE_UP_AFTER` may be one a failover is promoting (it
        // has left the old primary, which accepts writes until the sentinels demote it): keep
        // everything, so that the new primary gets it again. Past that, the replica counts as
        // gone: the oldest batches are given up and later WAITs ask only for the replicas that
        // answer, so that a dead replica slows the import once, not at every batch.
        if unconfirmed
            && may_give_up
            && short_for >= self.give_up_after
            && (self.full() || input_over)
        {
            if let Some(got) = answered.filter(|&g| g < self.replicas) {
                shared.ledger.note(format!(
                    "only {got} of {} replicas confirmed writes for {short_for:.0?}: the others count as gone for the rest of this connection",
                    self.replicas
                ));
                self.replicas = got;
            }
            let keep = if input_over { 0 } else { self.cap / 2 };
            while self.bytes > keep || (!input_over && self.batches.len() > self.max_batches / 2) {
                let Some(old) = self.batches.pop_front() else {
                    break;
                };
                self.bytes -= old.sent.len();
                shared.ledger.unconfirmed(old.batch.keys.len());
            }
        }
    }

    /// Everything kept, to be written again on a new connection.
    fn take_all(&mut self) -> VecDeque<InFlight> {
        self.bytes = 0;
        self.short_since = None;
        self.wait_pending = false;
        self.since_wait = 0;
        std::mem::take(&mut self.batches)
    }
}

/// Online replicas of the primary `node` stands for (`INFO replication`), or `None` when it
/// cannot be asked within [`CONNECT_TIMEOUT`].
async fn online_replicas(node: &super::target::Target) -> Option<u32> {
    let node = node.clone();
    let ask = tokio::task::spawn_blocking(move || -> Option<u32> {
        let mut con = node.pinned().ok()?.control(Duration::from_secs(2)).ok()?;
        let info: String = redis::cmd("INFO").arg("replication").query(&mut con).ok()?;
        Some(
            info.lines()
                .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                .count() as u32,
        )
    });
    tokio::time::timeout(CONNECT_TIMEOUT, ask)
        .await
        .ok()?
        .ok()
        .flatten()
}

/// `--wait-replicas N`: since when its `WAIT`s have been answered by fewer than N replicas.
/// A shortfall that lasts `--timeout` stops the import: a replica that is gone would otherwise
/// make every batch wait the whole `WAIT` timeout (hours on a large dump) and the import would
/// never end in practice.
#[derive(Default)]
struct ReplicaAcks {
    short_since: Option<Instant>,
}

impl ReplicaAcks {
    /// A `WAIT want t` answered `got`: `Err` (the message) once no `WAIT` has reached `want`
    /// replicas for `limit`.
    fn on_wait(&mut self, want: u32, t: Duration, got: i64, limit: Duration) -> Result<(), String> {
        if got >= i64::from(want) {
            self.short_since = None;
            return Ok(());
        }
        let since = *self.short_since.get_or_insert_with(Instant::now);
        if since.elapsed() < limit {
            return Ok(());
        }
        Err(format!(
            "--wait-replicas {want}: no WAIT was acknowledged by {want} {} for {:.1?} (the last one by {got}, each WAIT waiting up to {t:?}): the replica acknowledgement is missing (a replica is gone or cannot keep up), so the import stopped; check the primary's replicas (INFO replication), or lower --wait-replicas",
            if want == 1 { "replica" } else { "replicas" },
            since.elapsed(),
        ))
    }
}

/// Why a session ended.
enum SessionEnd {
    /// All input written and acknowledged.
    Finished,
    /// The connection failed; reconnect and re-send.
    Lost(String),
    /// The import cannot go on: the target refuses it (its reply), or the replicas do not
    /// acknowledge as `--wait-replicas` asks.
    Fatal(ReplayError),
}

/// Runs one connection until its input is exhausted and acknowledged. When it gives up, every
/// key it had sent without an acknowledgement is recorded as in doubt.
pub async fn run(
    id: usize,
    rx: async_channel::Receiver<Batch>,
    shared: Arc<Shared>,
    cfg: ConnConfig,
    node: Option<super::target::Target>,
) -> Result<(), ReplayError> {
    let mut jobs = tokio::task::JoinSet::new();
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let res = drive(id, rx, &shared, cfg, node, &mut inflight, &mut jobs).await;
    // keys sent and not answered: a connection given up, or stopped before its drain ended
    abandon(&shared, &inflight);
    // redirected keys finish (or are recorded as in doubt) before the connection reports
    let mut first = res;
    while let Some(j) = jobs.join_next().await {
        let r = j.unwrap_or_else(|e| Err(ReplayError::Internal(format!("redirect task: {e}"))));
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// Accounts the batches of a connection that stops: keys whose replies all arrived are settled,
/// a key partly answered with an error fails with it, and every other key sent is in doubt (the
/// target may or may not have run its commands).
fn abandon(shared: &Shared, inflight: &VecDeque<InFlight>) {
    for (i, f) in inflight.iter().enumerate() {
        let settled = if i == 0 && f.recount {
            f.replied_keys()
        } else {
            0
        };
        for (j, k) in f.batch.keys.iter().enumerate() {
            let partly_failed = i == 0 && f.recount && j == settled && f.errors[j].is_some();
            if (j < settled && f.redirects[j].is_none()) || partly_failed {
                shared
                    .ledger
                    .settle(f.batch.key(k), k.mode, f.errors[j].as_deref());
            } else {
                shared.ledger.in_doubt(f.batch.key(k));
            }
        }
    }
}

/// How long WAITs may be answered by fewer replicas than expected before the missing ones count
/// as gone and unconfirmed batches are given up. Longer than a Sentinel failover takes to be
/// announced (a `SENTINEL FAILOVER` switches in about a second; an automatic one after
/// `down-after-milliseconds`, while the old primary is unreachable and its connections fail).
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// How long a connection whose target refused a write (out of memory, read-only) keeps reading
/// the replies to what it had sent, so that each of those keys ends written or failed rather
/// than in doubt.
const DRAIN: Duration = Duration::from_secs(5);

#[allow(clippy::too_many_arguments)]
async fn drive(
    id: usize,
    rx: async_channel::Receiver<Batch>,
    shared: &Arc<Shared>,
    cfg: ConnConfig,
    node: Option<super::target::Target>,
    inflight: &mut VecDeque<InFlight>,
    jobs: &mut tokio::task::JoinSet<Result<(), ReplayError>>,
) -> Result<(), ReplayError> {
    // a cluster shard's primary, or the (possibly Sentinel-resolved) target
    let node = node.unwrap_or_else(|| shared.target.clone());
    let sentinel = shared.target.sentinel.clone();
    let mut retained = Retained::new(
        if sentinel.is_some() {
            shared.retain_per_conn
        } else {
            0
        },
        cfg.rewrite_batches,
        cfg.reply_timeout,
    );
    // `WAIT n 0` would block forever, and one longer than the reply timeout would count as a
    // dead connection: a WAIT's own timeout stays within both
    let cfg = ConnConfig {
        wait_replicas: cfg
            .wait_replicas
            .map(|(n, t)| (n, t.clamp(Duration::from_millis(1), cfg.reply_timeout / 2))),
        ..cfg
    };
    let mut acks = ReplicaAcks::default();
    let mut attempts = 0u32;
    let mut input_done = false;
    let mut primary = sentinel.as_ref().and_then(|s| s.current());
    let replace = !shared.skip_existing;
    loop {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, node.connect_raw()).await;
        let stream = match connected {
            Ok(Ok(s)) => s,
            Ok(Err(e @ (ReplayError::Auth(_) | ReplayError::Config(_)))) => return Err(e),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no connection within {CONNECT_TIMEOUT:?}"),
                };
                attempts += 1;
                if attempts > cfg.max_attempts {
                    return Err(shared.gave_up(id, attempts - 1, &why));
                }
                backoff(attempts).await;
                continue;
            }
        };
        if retained.enabled() {
            // what a WAIT must reach on this primary (unknown: keep the last count)
            // the sentinels' count too: during a failover the old primary reports none
            let listed = match sentinel.clone() {
                Some(s) => tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio::task::spawn_blocking(move || s.replicas()),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .flatten(),
                None => None,
            };
            let online = online_replicas(&node).await;
            if online.is_some() || listed.is_some() {
                retained.replicas = online.unwrap_or(0).max(listed.unwrap_or(0));
            }
        }
        if attempts > 0 || !inflight.is_empty() {
            shared
                .ledger
                .stats
                .reconnects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let old = std::mem::take(inflight);
            *inflight = old
                .into_iter()
                .map(|f| {
                    let recount = f.recount;
                    f.for_resend(replace, cfg.wait_replicas, recount)
                })
                .collect();
        }
        // Acknowledged batches not yet confirmed on every replica are written again on any new
        // connection (idempotently, and not counted twice): after a failover the new primary
        // may lack them, and after a plain reconnect this is how a WAIT can confirm them.
        let now_primary = sentinel.as_ref().and_then(|s| s.current());
        let moved = now_primary != primary;
        primary = now_primary;
        let kept = retained.take_all();
        if moved && !kept.is_empty() {
            shared.ledger.note(format!(
                "connection {id}: wrote the last {} acknowledged batches again on the new primary",
                kept.len()
            ));
        }
        for f in kept.into_iter().rev() {
            inflight.push_front(f.for_resend(replace, cfg.wait_replicas, false));
        }
        let end = session(
            stream,
            &rx,
            inflight,
            &mut retained,
            &mut input_done,
            shared,
            &cfg,
            &mut attempts,
            &mut acks,
            jobs,
        )
        .await;
        match end {
            SessionEnd::Finished => return Ok(()),
            SessionEnd::Fatal(e) => {
                shared
                    .stop
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return Err(e);
            }
            SessionEnd::Lost(why) => {
                attempts += 1;
                if attempts > cfg.max_attempts {
                    return Err(shared.gave_up(id, attempts - 1, &why));
                }
                shared.ledger.note(format!(
                    "connection {id}: {why}; reconnecting (attempt {attempts})"
                ));
                backoff(attempts).await;
            }
        }
    }
}

async fn backoff(attempt: u32) {
    let ms = (100u64 << attempt.min(6)).min(5_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[allow(clippy::too_many_arguments)]
async fn session(
    stream: Box<dyn super::target::Transport>,
    rx: &async_channel::Receiver<Batch>,
    inflight: &mut VecDeque<InFlight>,
    retained: &mut Retained,
    input_done: &mut bool,
    shared: &Arc<Shared>,
    cfg: &ConnConfig,
    attempts: &mut u32,
    acks: &mut ReplicaAcks,
    jobs: &mut tokio::task::JoinSet<Result<(), ReplayError>>,
) -> SessionEnd {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Bytes>();
    let mut writer = tokio::spawn(async move {
        while let Some(b) = wrx.recv().await {
            wr.write_all(&b).await?;
            if wrx.is_empty() {
                // TLS keeps records it could not send yet; with nothing more to write they would
                // wait there (and the replies with them) until the next batch
                wr.flush().await?;
            }
        }
        wr.shutdown().await
    });
    for f in inflight.iter() {
        let _ = wtx.send(f.sent.clone());
    }
    let (mut cmds, mut bytes): (usize, usize) = inflight
        .iter()
        .fold((0, 0), |(c, b), f| (c + f.batch.commands, b + f.sent.len()));
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let sentinel_mode = shared.target.sentinel.is_some();
    let mut epoch = shared.primary_epoch.subscribe();
    epoch.mark_unchanged();
    // Reset only when a whole reply arrives: a peer trickling bytes does not keep us waiting.
    let mut deadline = Instant::now() + cfg.reply_timeout;
    // The target refused a write (out of memory, read-only): no new batch; the replies to what
    // was sent are still read, until `DRAIN` has passed. The same once another connection (or
    // a signal) has stopped the import.
    let mut fatal: Option<ReplayError> = None;
    let mut drain_until: Option<Instant> = None;
    let end = loop {
        let stopping = fatal.is_some() || shared.stop.load(std::sync::atomic::Ordering::Relaxed);
        if stopping && drain_until.is_none() {
            drain_until = Some(Instant::now() + DRAIN);
            deadline = deadline.min(Instant::now() + DRAIN);
        }
        if stopping && inflight.is_empty() {
            break match fatal.take() {
                Some(m) => SessionEnd::Fatal(m),
                None => SessionEnd::Finished,
            };
        }
        let drained = *input_done && inflight.is_empty();
        if !stopping && retained.needs_bare_wait(drained) {
            // kept batches wait for a confirmation that no batch will carry: ask for it alone
            let bare = Batch::with_context(0, 0, false);
            let wait = retained.wait_for(bare.bytes.len(), cfg.wait_replicas, true);
            let f = InFlight::new(bare, wait, true);
            cmds += f.batch.commands;
            bytes += f.sent.len();
            if inflight.is_empty() {
                deadline = Instant::now() + cfg.reply_timeout;
            }
            let _ = wtx.send(f.sent.clone());
            inflight.push_back(f);
            continue;
        }
        if drained {
            break SessionEnd::Finished;
        }
        let room = !stopping
            && !retained.full()
            && (inflight.is_empty() || (cmds < cfg.window_commands && bytes < cfg.window_bytes));
        tokio::select! {
            Ok(()) = epoch.changed(), if sentinel_mode => {
                break SessionEnd::Lost("the sentinels report a new primary".into());
            },
            next = rx.recv(), if room && !*input_done => match next {
                Ok(batch) => {
                    let wait = retained.wait_for(batch.bytes.len(), cfg.wait_replicas, false);
                    let f = InFlight::new(batch, wait, true);
                    cmds += f.batch.commands;
                    bytes += f.sent.len();
                    if inflight.is_empty() {
                        deadline = Instant::now() + cfg.reply_timeout;
                    }
                    let _ = wtx.send(f.sent.clone());
                    inflight.push_back(f);
                }
                Err(_) => *input_done = true,
            },
            res = rd.read_buf(&mut buf) => {
                match res {
                    Ok(0) => break SessionEnd::Lost("server closed the connection".into()),
                    Err(e) => break SessionEnd::Lost(format!("read failed: {e}")),
                    Ok(_) => {}
                }
                let mut consumed = 0;
                let mut stop = None;
                let mut progressed = false;
                loop {
                    let (r, n) = match reply::parse(&buf[consumed..]) {
                        Ok(Some(p)) => p,
                        Ok(None) => break,
                        Err(e) => {
                            stop = Some(Stop::Desync(format!("unreadable reply: {e}")));
                            break;
                        }
                    };
                    consumed += n;
                    let Some(front) = inflight.front_mut() else {
                        stop = Some(Stop::Desync("a reply with no command in flight".into()));
                        break;
                    };
                    match front.on_reply(r, sentinel_mode, shared) {
                        Ok(()) => {}
                        Err(Stop::Fatal(m)) => {
                            if fatal.is_none() {
                                fatal = Some(shared.fatal(m));
                            }
                        }
                        Err(s) => {
                            stop = Some(s);
                            break;
                        }
                    }
                    progressed = true;
                    if front.done() {
                        let f = inflight.pop_front().expect("front exists");
                        cmds -= f.batch.commands;
                        bytes -= f.sent.len();
                        *attempts = 0;
                        if f.redirects.iter().any(Option::is_some) {
                            // the other keys are settled now, the redirected ones by the task
                            if f.recount {
                                f.settle(shared, false);
                            }
                            jobs.spawn(super::redirect::follow(shared.clone(), *cfg, f));
                            continue;
                        }
                        if f.recount {
                            f.settle(shared, true);
                        }
                        if let (Some((want, t)), Some(got)) = (cfg.wait_replicas, f.replicated) {
                            if let Err(m) = acks.on_wait(want, t, got, cfg.reply_timeout) {
                                if fatal.is_none() {
                                    shared.stop.store(true, std::sync::atomic::Ordering::Relaxed);
                                    fatal = Some(ReplayError::Unreplicated(m));
                                }
                            }
                        }
                        // never give up unconfirmed batches while the primary is moving
                        let calm = !epoch.has_changed().unwrap_or(false);
                        retained.on_acknowledged(f, shared, *input_done && inflight.is_empty(), calm);
                    }
                }
                buf.drain(..consumed);
                if progressed {
                    // once per read, not per reply (a clock read per key showed in profiles)
                    deadline = Instant::now() + cfg.reply_timeout;
                    if let Some(until) = drain_until {
                        deadline = deadline.min(until);
                    }
                }
                match stop {
                    // a draining connection lost: what it still had in flight is in doubt
                    Some(_) if fatal.is_some() => break SessionEnd::Fatal(fatal.take().unwrap_or(ReplayError::Stopped)),
                    Some(Stop::Fatal(m)) => break SessionEnd::Fatal(shared.fatal(m)),
                    Some(Stop::Failover(m)) => break SessionEnd::Lost(format!("{m} (failover?)")),
                    Some(Stop::Desync(m)) => {
                        break SessionEnd::Lost(format!("{m}; the reply stream is out of step with the commands"))
                    }
                    None if buf.len() > MAX_PENDING_REPLY => {
                        break SessionEnd::Lost(format!(
                            "{} bytes received without a complete reply",
                            buf.len()
                        ))
                    }
                    None => {}
                }
            },
            _ = tokio::time::sleep_until(deadline), if !inflight.is_empty() => {
                if let Some(m) = fatal.take() {
                    break SessionEnd::Fatal(m);
                }
                if drain_until.is_some() {
                    break SessionEnd::Finished;
                }
                break SessionEnd::Lost(format!("no reply for {:?}", cfg.reply_timeout));
            },
            res = &mut writer => {
                let why = match res {
                    Ok(Ok(())) => "writer stopped".to_string(),
                    Ok(Err(e)) => format!("write failed: {e}"),
                    Err(e) => format!("writer task failed: {e}"),
                };
                break SessionEnd::Lost(why);
            },
        }
    };
    drop(wtx);
    if matches!(end, SessionEnd::Finished) {
        let _ = writer.await;
    } else {
        writer.abort();
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::batch::{KeyMode, Resp};

    fn shared() -> Shared {
        let t = crate::replay::target::Target::parse("redis://127.0.0.1:1", None).unwrap();
        let cfg = crate::replay::config::ImportConfig {
            memory_budget: 1 << 20,
            ..Default::default()
        };
        Shared::new(t, &cfg, 1, None)
    }

    /// An acknowledged batch of one key whose WAIT (if any) was answered by `replicated`.
    fn acked(id: u64, replicated: Option<i64>) -> InFlight {
        let mut b = Batch::new(id, 0);
        let mut r = Resp::default();
        r.cmd(&[b"SET", format!("k{id}").as_bytes(), &[b'x'; 100]]);
        b.push_key(
            format!("k{id}").as_bytes(),
            KeyMode::Commands,
            1,
            &mut r,
            false,
        );
        let mut f = InFlight::new(b, replicated.map(|_| (1, Duration::from_millis(1))), true);
        f.replicated = replicated;
        f
    }

    #[test]
    fn a_wait_replicas_shortfall_stops_the_import_once_it_lasts_the_limit() {
        let mut a = ReplicaAcks::default();
        let t = Duration::from_millis(5);
        // short, but not for long: counted, the import goes on
        assert!(a.on_wait(1, t, 0, Duration::from_secs(60)).is_ok());
        // reached: the shortfall is over
        assert!(a.on_wait(1, t, 1, Duration::ZERO).is_ok());
        assert!(a.short_since.is_none());
        let e = a.on_wait(2, t, 1, Duration::ZERO).unwrap_err();
        assert!(
            e.contains("--wait-replicas 2: no WAIT was acknowledged by 2 replicas")
                && e.contains("the last one by 1"),
            "{e}"
        );
    }

    #[test]
    fn a_short_replica_keeps_every_batch_until_the_grace_ends_then_counts_as_gone() {
        let s = shared();
        let mut r = Retained::new(1000, 4, Duration::from_secs(1));
        r.replicas = 1;
        // the store fills; every WAIT is answered by no replica (a failover is promoting it)
        for id in 1..=6 {
            r.on_acknowledged(acked(id, Some(0)), &s, false, true);
        }
        assert_eq!(r.batches.len(), 6, "nothing is given up within the grace");
        assert_eq!(
            s.ledger
                .stats
                .unconfirmed
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        // a confirmation ends the shortfall and releases everything
        r.on_acknowledged(acked(7, Some(1)), &s, false, true);
        assert!(r.batches.is_empty() && r.short_since.is_none());
        // past the grace, the oldest go and the missing replica counts as gone
        r.give_up_after = Duration::ZERO;
        for id in 8..=13 {
            r.on_acknowledged(acked(id, Some(0)), &s, false, true);
        }
        assert_eq!(r.replicas, 0);
        assert!(
            s.ledger
                .stats
                .unconfirmed
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
        // while a failover is under way nothing is given up, whatever the time
        let s2 = shared();
        let mut r2 = Retained::new(1000, 4, Duration::from_secs(1));
        r2.give_up_after = Duration::ZERO;
        for id in 1..=6 {
            r2.on_acknowledged(acked(id, Some(0)), &s2, false, false);
        }
        assert_eq!(r2.batches.len(), 6);
    }
}
