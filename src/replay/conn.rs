//! One data-plane connection: writes batches with a bounded window of commands and bytes in
//! flight, matches replies to keys as they arrive, and survives dropped connections and stalls by
//! reconnecting with backoff and re-sending every unacknowledged batch idempotently.
//!
//! The data plane is hand-written over a raw socket rather than the `redis` crate's pipeline: the
//! crate copies every argument into a `Cmd` and builds a `Value` per reply, while here batches are
//! RESP bytes encoded once by the planner and replies only need to be classified as OK or error.

use super::batch::Batch;
use super::reply::{self, Reply};
use super::{ReplayError, Shared};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Most bytes of acknowledged batches kept per connection for rewriting after a failover.
const REWRITE_BYTES: usize = 64 << 20;

/// Data-plane limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnConfig {
    /// Most commands in flight per connection.
    pub window_commands: usize,
    /// Most bytes in flight per connection.
    pub window_bytes: usize,
    /// A connection with commands in flight and no reply for this long is considered dead.
    pub reply_timeout: Duration,
    /// Reconnect attempts in a row before giving up.
    pub max_attempts: u32,
    /// Acknowledged batches kept per connection and written again after a failover (a primary
    /// can lose its last acknowledged writes when a replica that had not received them takes over).
    pub rewrite_batches: usize,
    /// `WAIT <n> <timeout>` after each batch: acknowledged then means replicated to `n` replicas.
    pub wait_replicas: Option<(u32, Duration)>,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            window_commands: 20_000,
            window_bytes: 64 << 20,
            reply_timeout: Duration::from_secs(30),
            max_attempts: 10,
            rewrite_batches: 256,
            wait_replicas: None,
        }
    }
}

/// A batch on the wire and how far its replies have come.
struct InFlight {
    batch: Batch,
    sent: Bytes,
    replies: usize,
    /// Replies expected: the batch's commands, plus WAIT when replicas are awaited.
    expected: usize,
    key: usize,
    in_key: u32,
    errors: Vec<Option<String>>,
    /// False for a batch re-written after a failover: its keys were counted already.
    recount: bool,
}

impl InFlight {
    fn new(mut batch: Batch, wait: Option<(u32, Duration)>, recount: bool) -> InFlight {
        if let Some((n, t)) = wait {
            let mut r = super::batch::Resp::default();
            r.cmd(&[
                b"WAIT",
                n.to_string().as_bytes(),
                t.as_millis().to_string().as_bytes(),
            ]);
            batch.bytes.extend_from_slice(&r.buf);
        }
        let sent = Bytes::from(std::mem::take(&mut batch.bytes));
        let n = batch.keys.len();
        InFlight {
            expected: batch.commands + usize::from(wait.is_some()),
            batch,
            sent,
            replies: 0,
            key: 0,
            in_key: 0,
            errors: vec![None; n],
            recount,
        }
    }

    /// Prepares the batch to be written again on a new connection.
    fn for_resend(
        self,
        restore_replace: bool,
        wait: Option<(u32, Duration)>,
        recount: bool,
    ) -> InFlight {
        let mut b = self.batch;
        let body = self.sent.len()
            - if self.expected > b.commands {
                wait_len(wait)
            } else {
                0
            };
        b.bytes = self.sent[..body].to_vec();
        b.make_idempotent(restore_replace);
        InFlight::new(b, wait, recount)
    }

    fn done(&self) -> bool {
        self.replies == self.expected
    }

    /// Accounts one reply; returns a fatal error message if the target refuses to go on.
    fn on_reply(&mut self, r: Reply, failover: bool, shared: &Shared) -> Result<(), String> {
        let idx = self.replies;
        self.replies += 1;
        if idx == 0 {
            // SELECT
            return match r {
                Reply::Ok | Reply::Int(_) => Ok(()),
                Reply::Error(e) => Err(format!("SELECT {}: {e}", self.batch.db)),
            };
        }
        if idx == self.batch.commands {
            // WAIT: how many replicas have everything so far
            if let (Reply::Int(got), Some((want, _))) = (&r, shared.wait_replicas) {
                if *got < i64::from(want) {
                    shared
                        .stats
                        .unreplicated
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            return Ok(());
        }
        while self
            .batch
            .keys
            .get(self.key)
            .is_some_and(|k| self.in_key >= k.commands)
        {
            self.key += 1;
            self.in_key = 0;
        }
        self.in_key += 1;
        if let Reply::Error(e) = r {
            if is_fatal(&e) || (failover && is_failover(&e)) {
                return Err(e);
            }
            if let Some(slot) = self.errors.get_mut(self.key) {
                slot.get_or_insert(e);
            }
        }
        Ok(())
    }
}

/// Replies after which writing more is pointless: the target is out of memory, read-only (a
/// replica, or a primary that was demoted), still loading, or refuses us.
fn is_fatal(e: &str) -> bool {
    [
        "OOM",
        "READONLY",
        "LOADING",
        "NOAUTH",
        "NOPERM",
        "WRONGPASS",
        "MASTERDOWN",
        "CLUSTERDOWN",
        "MOVED",
        "ASK",
    ]
    .iter()
    .any(|p| e.starts_with(p))
}

/// Replies that, with Sentinel, mean "the primary moved": reconnect through the sentinels.
fn is_failover(e: &str) -> bool {
    ["READONLY", "LOADING", "MASTERDOWN"]
        .iter()
        .any(|p| e.starts_with(p))
}

/// Bytes of the WAIT command appended to a batch.
fn wait_len(wait: Option<(u32, Duration)>) -> usize {
    wait.map_or(0, |(n, t)| {
        let mut r = super::batch::Resp::default();
        r.cmd(&[
            b"WAIT",
            n.to_string().as_bytes(),
            t.as_millis().to_string().as_bytes(),
        ]);
        r.buf.len()
    })
}

/// Why a session ended.
enum SessionEnd {
    /// All input written and acknowledged.
    Finished,
    /// The connection failed; reconnect and re-send.
    Lost(String),
}

/// Runs one connection until its input is exhausted and acknowledged.
pub async fn run(
    id: usize,
    mut rx: mpsc::Receiver<Batch>,
    shared: Arc<Shared>,
    cfg: ConnConfig,
    node: Option<super::Target>,
) -> Result<(), ReplayError> {
    // a cluster shard's primary, or the (possibly Sentinel-resolved) target
    let node = node.unwrap_or_else(|| shared.target.clone());
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut recent: VecDeque<InFlight> = VecDeque::new();
    let mut attempts = 0u32;
    let mut input_done = false;
    let sentinel = shared.target.sentinel.clone();
    let mut primary = sentinel.as_ref().and_then(|s| s.current());
    let replace = !shared.skip_existing;
    loop {
        let stream = match node.connect_raw().await {
            Ok(s) => s,
            Err(e @ (ReplayError::Auth(_) | ReplayError::Config(_))) => return Err(e),
            Err(e) => {
                attempts += 1;
                if attempts > cfg.max_attempts {
                    return Err(shared.gave_up(id, attempts - 1, &e.to_string()));
                }
                backoff(attempts).await;
                continue;
            }
        };
        if attempts > 0 || !inflight.is_empty() {
            shared
                .stats
                .reconnects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let old = std::mem::take(&mut inflight);
            inflight = old
                .into_iter()
                .map(|f| {
                    let recount = f.recount;
                    f.for_resend(replace, cfg.wait_replicas, recount)
                })
                .collect();
        }
        let now_primary = sentinel.as_ref().and_then(|s| s.current());
        if now_primary != primary {
            // A failover: what the old primary acknowledged last may not have reached the new
            // one, so it is written again (idempotently, and not counted twice).
            primary = now_primary;
            for f in recent.drain(..).rev() {
                inflight.push_front(f.for_resend(replace, cfg.wait_replicas, false));
            }
        }
        let end = session(
            stream,
            &mut rx,
            &mut inflight,
            &mut recent,
            &mut input_done,
            &shared,
            &cfg,
            &mut attempts,
        )
        .await?;
        match end {
            SessionEnd::Finished => return Ok(()),
            SessionEnd::Lost(why) => {
                attempts += 1;
                if attempts > cfg.max_attempts {
                    return Err(shared.gave_up(id, attempts - 1, &why));
                }
                shared.note(format!(
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
    rx: &mut mpsc::Receiver<Batch>,
    inflight: &mut VecDeque<InFlight>,
    recent: &mut VecDeque<InFlight>,
    input_done: &mut bool,
    shared: &Shared,
    cfg: &ConnConfig,
    attempts: &mut u32,
) -> Result<SessionEnd, ReplayError> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Bytes>();
    let mut writer = tokio::spawn(async move {
        while let Some(b) = wrx.recv().await {
            wr.write_all(&b).await?;
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
    let mut lost: Option<String> = None;
    let sentinel_mode = shared.target.sentinel.is_some();
    let mut epoch = shared.primary_epoch.subscribe();
    epoch.mark_unchanged();
    let mut deadline = Instant::now() + cfg.reply_timeout;
    let end = loop {
        if *input_done && inflight.is_empty() {
            break SessionEnd::Finished;
        }
        let room = inflight.is_empty() || (cmds < cfg.window_commands && bytes < cfg.window_bytes);
        tokio::select! {
            Ok(()) = epoch.changed(), if sentinel_mode => {
                break SessionEnd::Lost("the sentinels report a new primary".into());
            },
            next = rx.recv(), if room && !*input_done => match next {
                Some(batch) => {
                    let f = InFlight::new(batch, cfg.wait_replicas, true);
                    cmds += f.batch.commands;
                    bytes += f.sent.len();
                    if inflight.is_empty() {
                        deadline = Instant::now() + cfg.reply_timeout;
                    }
                    let _ = wtx.send(f.sent.clone());
                    inflight.push_back(f);
                }
                None => *input_done = true,
            },
            res = rd.read_buf(&mut buf) => {
                match res {
                    Ok(0) => break SessionEnd::Lost("server closed the connection".into()),
                    Err(e) => break SessionEnd::Lost(format!("read failed: {e}")),
                    Ok(_) => {}
                }
                let mut consumed = 0;
                loop {
                    let parsed = reply::parse(&buf[consumed..]).map_err(ReplayError::Protocol)?;
                    let Some((r, n)) = parsed else { break };
                    consumed += n;
                    let Some(front) = inflight.front_mut() else {
                        return Err(ReplayError::Protocol("reply with no command in flight".into()));
                    };
                    let failover = shared.target.sentinel.is_some();
                    if let Err(m) = front.on_reply(r, failover, shared) {
                        if failover && is_failover(&m) {
                            lost = Some(format!("{m} (failover?)"));
                            break;
                        }
                        return Err(shared.fatal(m));
                    }
                    if front.done() {
                        let f = inflight.pop_front().expect("front exists");
                        cmds -= f.batch.commands;
                        bytes -= f.sent.len();
                        if f.recount {
                            shared.complete(&f.batch, &f.errors);
                        }
                        *attempts = 0;
                        if cfg.rewrite_batches > 0 && sentinel_mode {
                            recent.push_back(f);
                            // bounded in batches and in bytes
                            while recent.len() > cfg.rewrite_batches
                                || recent.iter().map(|f| f.sent.len()).sum::<usize>() > REWRITE_BYTES
                            {
                                recent.pop_front();
                            }
                        }
                    }
                }
                buf.drain(..consumed);
                if let Some(why) = lost.take() {
                    break SessionEnd::Lost(why);
                }
                deadline = Instant::now() + cfg.reply_timeout;
            },
            _ = tokio::time::sleep_until(deadline), if !inflight.is_empty() => {
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
    Ok(end)
}
