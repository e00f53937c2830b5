//! Cluster redirections. A node answers `MOVED <slot> <host>:<port>` for a key of a slot it no
//! longer owns, and `ASK <slot> <host>:<port>` for a key of a slot it is migrating away when the
//! key is not (or no longer) on it. Neither runs the command, so the key is written to the node
//! named: after `ASKING` for ASK, and whole and idempotently when some of its commands already ran
//! on the old node (the key was migrated while it was being written). A MOVED also updates the
//! slot map, so that later keys of that slot go straight to their new owner.
//!
//! Redirections are rare (they happen while a cluster is being resharded), so they are followed
//! off the main pipeline: the connection hands the batch's redirected keys to a task that writes
//! them on short-lived connections, while its own pipeline goes on.

use super::batch::{Batch, KeyRec};
use super::config::ConnConfig;
use super::error::ReplayError;
use super::reply;
use super::shared::Shared;
use super::target::Target;
use super::wire::{InFlight, Redirect, Stop, CONNECT_TIMEOUT, MAX_PENDING_REPLY};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// A key is redirected at most this many times in a row before it is reported as failed.
const MAX_HOPS: u32 = 5;

/// A key on its way to another node: its record, its commands as first encoded, and where to.
struct Redirected {
    key: KeyRec,
    name: Vec<u8>,
    cmds: Vec<u8>,
    to: Redirect,
    /// Some of its commands ran somewhere already.
    rewrite: bool,
}

/// Writes the redirected keys of a completed batch where the cluster says they belong, settles
/// them, and then releases the batch from the checkpoint's unacknowledged set.
pub(super) async fn follow(
    shared: Arc<Shared>,
    cfg: ConnConfig,
    f: InFlight,
) -> Result<(), ReplayError> {
    let count = f.recount;
    let mut pending: Vec<Redirected> = f
        .batch
        .keys
        .iter()
        .zip(&f.redirects)
        .filter_map(|(k, r)| {
            let to = r.clone()?;
            Some(Redirected {
                key: k.clone(),
                name: f.batch.key(k).to_vec(),
                cmds: f.sent.get(k.range.clone())?.to_vec(),
                rewrite: to.partial,
                to,
            })
        })
        .collect();
    let res = follow_keys(&shared, &cfg, &mut pending, count).await;
    for p in &pending {
        // not settled: the import stopped while these were on their way
        shared.ledger.in_doubt(&p.name);
    }
    // on failure the batch stays open: the checkpoint must not move past keys in doubt
    if count && res.is_ok() {
        shared.watermarks.close(&f.batch);
    }
    res
}

async fn follow_keys(
    shared: &Shared,
    cfg: &ConnConfig,
    pending: &mut Vec<Redirected>,
    count: bool,
) -> Result<(), ReplayError> {
    let replace = !shared.skip_existing;
    for _hop in 0..MAX_HOPS {
        if pending.is_empty() {
            return Ok(());
        }
        for p in pending.iter() {
            if p.to.ask {
                shared.ledger.stats.asked.fetch_add(1, Relaxed);
            } else {
                shared.ledger.stats.moved.fetch_add(1, Relaxed);
                if let Some(r) = &shared.routes {
                    r.moved(p.to.slot, &p.to.host, p.to.port);
                }
            }
        }
        // one batch per destination and kind
        let mut groups: Vec<(String, u16, bool)> = pending
            .iter()
            .map(|p| (p.to.host.clone(), p.to.port, p.to.ask))
            .collect();
        groups.sort();
        groups.dedup();
        let mut next = Vec::new();
        for (host, port, ask) in groups {
            let (mine, rest): (Vec<Redirected>, Vec<Redirected>) = std::mem::take(pending)
                .into_iter()
                .partition(|p| p.to.host == host && p.to.port == port && p.to.ask == ask);
            *pending = rest;
            let mut b = Batch::with_context(shared.next_batch.fetch_add(1, Relaxed), 0, false);
            for p in &mine {
                b.push_redirected(&p.key, &p.name, &p.cmds, p.rewrite, ask, replace);
            }
            let host = if host.is_empty() {
                shared.target.host.clone()
            } else {
                host
            };
            let node = shared.target.at(host, port);
            let f = match exchange(&node, b, shared, cfg).await {
                Ok(f) => f,
                Err(e) => {
                    pending.extend(mine);
                    pending.extend(next);
                    return Err(e);
                }
            };
            for (j, p) in mine.into_iter().enumerate() {
                match &f.redirects[j] {
                    Some(to) => next.push(Redirected {
                        rewrite: p.rewrite || to.partial,
                        to: to.clone(),
                        ..p
                    }),
                    None if count => {
                        shared
                            .ledger
                            .settle(&p.name, p.key.mode, f.errors[j].as_deref())
                    }
                    None => {}
                }
            }
        }
        *pending = next;
    }
    for p in pending.drain(..) {
        shared.ledger.fail(
            &p.name,
            format!(
                "still redirected after {MAX_HOPS} hops (last: slot {} to {}:{})",
                p.to.slot, p.to.host, p.to.port
            ),
        );
    }
    Ok(())
}

/// Writes one batch on a connection of its own and reads all its replies; a lost connection is
/// retried (the batch re-sent idempotently) up to the configured attempts.
async fn exchange(
    node: &Target,
    b: Batch,
    shared: &Shared,
    cfg: &ConnConfig,
) -> Result<InFlight, ReplayError> {
    let replace = !shared.skip_existing;
    let mut f = InFlight::new(b, None, true);
    let mut attempts = 0;
    loop {
        let why = match once(node, &mut f, shared, cfg.reply_timeout).await {
            Ok(()) => return Ok(f),
            Err(Stop::Fatal(m)) => return Err(shared.fatal(m)),
            Err(Stop::Failover(m) | Stop::Desync(m)) => m,
        };
        attempts += 1;
        if attempts > cfg.max_attempts {
            return Err(ReplayError::GaveUp {
                conn: usize::MAX,
                attempts: attempts - 1,
                why: format!("writing redirected keys to {}: {why}", node.display()),
                offset: shared.watermark(0),
            });
        }
        tokio::time::sleep(Duration::from_millis(
            (100u64 << attempts.min(6)).min(5_000),
        ))
        .await;
        f = f.for_resend(replace, None, true);
    }
}

async fn once(
    node: &Target,
    f: &mut InFlight,
    shared: &Shared,
    timeout: Duration,
) -> Result<(), Stop> {
    let lost = |m: String| Stop::Desync(m);
    let mut s = tokio::time::timeout(CONNECT_TIMEOUT, node.connect_raw())
        .await
        .map_err(|_| lost(format!("no connection to {} in time", node.display())))?
        .map_err(|e| match e {
            ReplayError::Auth(_) | ReplayError::Config(_) => Stop::Fatal(e.to_string()),
            e => lost(e.to_string()),
        })?;
    let sent = f.sent.clone();
    let mut buf = Vec::new();
    let mut deadline = Instant::now() + timeout;
    let (mut rd, mut wr) = tokio::io::split(&mut s);
    let write = async {
        wr.write_all(&sent).await?;
        wr.flush().await
    };
    let read = async {
        while !f.done() {
            let n = tokio::time::timeout_at(deadline, rd.read_buf(&mut buf))
                .await
                .map_err(|_| lost(format!("no reply for {timeout:?}")))?
                .map_err(|e| lost(format!("read failed: {e}")))?;
            if n == 0 {
                return Err(lost("server closed the connection".into()));
            }
            let mut consumed = 0;
            while let Some((r, used)) = reply::parse(&buf[consumed..])
                .map_err(|e| lost(format!("unreadable reply: {e}")))?
            {
                consumed += used;
                f.on_reply(r, false, shared)?;
                deadline = Instant::now() + timeout;
                if f.done() {
                    break;
                }
            }
            buf.drain(..consumed);
            if buf.len() > MAX_PENDING_REPLY {
                return Err(lost("a reply too large to be ours".into()));
            }
        }
        Ok(())
    };
    let write = async { write.await.map_err(|e| lost(format!("write failed: {e}"))) };
    // the first failure ends both (a server that stopped reading never finishes the write)
    tokio::try_join!(write, read).map(|_| ())
}
