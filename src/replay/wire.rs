//! What is on the wire of a data connection: a batch in flight and the accounting of its replies
//! (each checked against its command), the redirections a cluster node answers with, and which
//! replies stop a connection. Used by the connections (`conn`) and by the follower of cluster
//! redirections (`redirect`), which do not depend on each other.

use super::batch::Batch;
use super::reply::{self, Reply};
use super::shared::Shared;
use bytes::Bytes;
use std::time::Duration;

/// Most bytes buffered while waiting for the end of one reply: the replies to our commands are
/// small, so a peer that sends this much without completing one is not speaking to us.
pub(super) const MAX_PENDING_REPLY: usize = 2 * reply::MAX_BULK as usize + (64 << 10);

/// Connection setup (TCP, TLS, AUTH) may take this long before it counts as a failed attempt.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A batch on the wire and how far its replies have come.
pub(super) struct InFlight {
    pub(super) batch: Batch,
    pub(super) sent: Bytes,
    replies: usize,
    /// Replies expected: the batch's commands, plus WAIT when replicas are awaited.
    expected: usize,
    key: usize,
    in_key: u32,
    pub(super) errors: Vec<Option<String>>,
    /// Per key: the cluster node that answered MOVED/ASK for it (its commands were not run here).
    pub(super) redirects: Vec<Option<Redirect>>,
    /// False for a batch re-written after a failover: its keys were counted already.
    pub(super) recount: bool,
    /// A reply did not fit its command: none of this batch's replies can be trusted.
    desynced: bool,
    /// Bytes of the `WAIT` appended to the batch (0: none).
    wait_bytes: usize,
    /// The `WAIT`'s answer: how many replicas had everything this connection wrote up to it.
    pub(super) replicated: Option<i64>,
}

/// A cluster redirection of one key: `MOVED <slot> <host>:<port>` or `ASK <slot> <host>:<port>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redirect {
    /// ASK (one-off, for a slot being migrated) rather than MOVED (the slot has a new owner).
    pub ask: bool,
    /// The key's hash slot.
    pub slot: u16,
    /// The node to ask (an empty host means the node that answered).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Some of the key's commands did run before the redirection (the key was being migrated
    /// while it was written): it is written again whole, idempotently.
    pub partial: bool,
}

impl Redirect {
    /// Parses the error text of a redirection.
    pub(crate) fn parse(e: &str, partial: bool) -> Option<Redirect> {
        let (ask, rest) = if let Some(r) = e.strip_prefix("MOVED ") {
            (false, r)
        } else {
            (true, e.strip_prefix("ASK ")?)
        };
        let mut it = rest.split_whitespace();
        let slot = it.next()?.parse().ok()?;
        let (host, port) = it.next()?.rsplit_once(':')?;
        Some(Redirect {
            ask,
            slot,
            host: host.to_string(),
            port: port.parse().ok()?,
            partial,
        })
    }
}

/// Why the replies of a connection cannot be taken further.
#[derive(Debug)]
pub(super) enum Stop {
    /// The target refuses writes (OOM, READONLY without Sentinel, NOAUTH…): stop the import.
    Fatal(String),
    /// With Sentinel: the primary moved (READONLY, LOADING, MASTERDOWN).
    Failover(String),
    /// A reply that does not fit its command: the reply stream can no longer be matched to the
    /// commands, so nothing after it can be trusted; reconnect and re-send idempotently.
    Desync(String),
}

impl InFlight {
    pub(super) fn new(mut batch: Batch, wait: Option<(u32, Duration)>, recount: bool) -> InFlight {
        let before = batch.bytes.len();
        if let Some((n, t)) = wait {
            let mut r = super::batch::Resp::default();
            r.cmd(&[
                b"WAIT",
                n.to_string().as_bytes(),
                t.as_millis().to_string().as_bytes(),
            ]);
            batch.bytes.extend_from_slice(&r.buf);
        }
        let wait_bytes = batch.bytes.len() - before;
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
            redirects: vec![None; n],
            recount,
            desynced: false,
            wait_bytes,
            replicated: None,
        }
    }

    /// Prepares the batch to be written again on a new connection.
    pub(super) fn for_resend(
        self,
        restore_replace: bool,
        wait: Option<(u32, Duration)>,
        recount: bool,
    ) -> InFlight {
        let mut b = self.batch;
        b.bytes = self.sent[..self.sent.len() - self.wait_bytes].to_vec();
        b.make_idempotent(restore_replace);
        InFlight::new(b, wait, recount)
    }

    /// All replies arrived: the batch's keys are settled in the ledger, except those a cluster
    /// node redirected (settled by the task following them, which then also `close`s the batch).
    pub(super) fn settle(&self, shared: &Shared, close: bool) {
        shared
            .ledger
            .stats
            .bytes_written
            .fetch_add(self.sent.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for (j, k) in self.batch.keys.iter().enumerate() {
            if self.redirects[j].is_none() {
                shared
                    .ledger
                    .settle(self.batch.key(k), k.mode, self.errors[j].as_deref());
            }
        }
        if close {
            shared.watermarks.close(&self.batch);
        }
    }

    pub(super) fn done(&self) -> bool {
        self.replies == self.expected
    }

    /// Keys whose every reply has arrived.
    pub(super) fn replied_keys(&self) -> usize {
        if self.desynced {
            return 0;
        }
        let full = self
            .batch
            .keys
            .get(self.key)
            .is_some_and(|k| self.in_key >= k.commands);
        (self.key + usize::from(full)).min(self.batch.keys.len())
    }

    /// Accounts one reply, checking that it fits its command.
    pub(super) fn on_reply(
        &mut self,
        r: Reply,
        failover: bool,
        shared: &Shared,
    ) -> Result<(), Stop> {
        let res = self.account(r, failover, shared);
        if let Err(Stop::Desync(_)) = res {
            self.desynced = true;
        }
        res
    }

    fn account(&mut self, r: Reply, failover: bool, shared: &Shared) -> Result<(), Stop> {
        let idx = self.replies;
        self.replies += 1;
        if idx >= self.expected {
            return Err(Stop::Desync("a reply with no command in flight".into()));
        }
        if idx == 0 {
            // SELECT (must be +OK) or PING (cluster nodes)
            return match r {
                Reply::Ok => Ok(()),
                Reply::Other if !self.batch.select => Ok(()),
                Reply::Error(e) if failover && is_failover(&e) => Err(Stop::Failover(e)),
                Reply::Error(e) if self.batch.select => {
                    Err(Stop::Fatal(format!("SELECT {}: {e}", self.batch.db)))
                }
                Reply::Error(e) => Err(Stop::Fatal(format!("PING: {e}"))),
                other => Err(Stop::Desync(format!(
                    "unexpected reply {other:?} to {}",
                    if self.batch.select { "SELECT" } else { "PING" }
                ))),
            };
        }
        if idx == self.batch.commands {
            // WAIT: how many replicas have everything so far
            return match r {
                Reply::Int(got) => {
                    self.replicated = Some(got);
                    // `--wait-replicas`: count the batches that reached fewer replicas than asked
                    if shared
                        .wait_replicas
                        .is_some_and(|(want, _)| got < i64::from(want))
                    {
                        shared
                            .ledger
                            .stats
                            .unreplicated
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(())
                }
                // a primary demoted during a failover unblocks its WAITs with an error
                Reply::Error(e) if failover => Err(Stop::Failover(format!("WAIT: {e}"))),
                Reply::Error(e) => Err(Stop::Fatal(format!("WAIT: {e}"))),
                _ => Err(Stop::Desync(format!("unexpected reply {r:?} to WAIT"))),
            };
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
        let Some(k) = self.batch.keys.get(self.key) else {
            return Err(Stop::Desync("more replies than commands".into()));
        };
        match r {
            Reply::Error(e) => {
                if failover && is_failover(&e) {
                    return Err(Stop::Failover(e));
                }
                let slot = &mut self.redirects[self.key];
                if slot.is_none() {
                    if let Some(to) = Redirect::parse(&e, self.in_key > 1) {
                        *slot = Some(to);
                        return Ok(());
                    }
                }
                if slot.is_some() && (e.starts_with("MOVED ") || e.starts_with("ASK ")) {
                    return Ok(());
                }
                if is_fatal(&e) {
                    // the key fails with it; the connection drains what it sent, then stops
                    self.errors[self.key].get_or_insert_with(|| e.clone());
                    return Err(Stop::Fatal(e));
                }
                self.errors[self.key].get_or_insert(e);
            }
            // a RESTORE answers +OK or an error, nothing else
            // (a module value replaced by MULTI/DEL/RESTORE/EXEC answers +QUEUED and an array)
            Reply::Int(_) | Reply::Other
                if k.mode == super::batch::KeyMode::Restore && !k.module =>
            {
                return Err(Stop::Desync(format!(
                    "unexpected reply {r:?} to the RESTORE of {}",
                    crate::model::escape_bytes(self.batch.key(k))
                )));
            }
            _ => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::batch::{KeyMode, Resp};

    fn shared() -> Shared {
        let t = crate::replay::Target::parse("redis://127.0.0.1:1", None).unwrap();
        let cfg = crate::replay::ImportConfig {
            memory_budget: 1 << 20,
            ..Default::default()
        };
        Shared::new(t, &cfg, 1, None)
    }

    /// A batch of one RESTORE key and one two-command key.
    fn batch() -> InFlight {
        let mut b = Batch::new(1, 0);
        let mut r = Resp::default();
        r.cmd(&[b"RESTORE", b"a", b"0", b"x"]);
        b.push_key(b"a", KeyMode::Restore, 1, &mut r, false);
        r.cmd(&[b"RPUSH", b"b", b"1"]);
        r.cmd(&[b"RPUSH", b"b", b"2"]);
        b.push_key(b"b", KeyMode::Commands, 2, &mut r, false);
        InFlight::new(b, None, true)
    }

    #[test]
    fn redirections_parse() {
        let m = Redirect::parse("MOVED 3999 127.0.0.1:6381", false).unwrap();
        assert_eq!(
            (m.ask, m.slot, m.host.as_str(), m.port),
            (false, 3999, "127.0.0.1", 6381)
        );
        let a = Redirect::parse("ASK 1 ::1:7000", true).unwrap();
        assert_eq!(
            (a.ask, a.host.as_str(), a.port, a.partial),
            (true, "::1", 7000, true)
        );
        for bad in [
            "MOVED",
            "ASK x 1.2.3.4:5",
            "MOVED 1 nohost",
            "BUSYKEY exists",
            "MOVED 1 h:99999",
        ] {
            assert_eq!(Redirect::parse(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn replies_are_checked_against_their_commands() {
        let s = shared();
        // all fine: SELECT +OK, RESTORE +OK, two integers
        let mut f = batch();
        for r in [Reply::Ok, Reply::Ok, Reply::Int(1), Reply::Int(2)] {
            f.on_reply(r, false, &s).unwrap();
        }
        assert!(f.done());
        assert_eq!(f.replied_keys(), 2);
        // an integer for SELECT or for a RESTORE: out of step, nothing of the batch is trusted
        let mut f = batch();
        assert!(matches!(
            f.on_reply(Reply::Int(1), false, &s),
            Err(Stop::Desync(_))
        ));
        let mut f = batch();
        f.on_reply(Reply::Ok, false, &s).unwrap();
        let err = f.on_reply(Reply::Other, false, &s);
        assert!(
            matches!(&err, Err(Stop::Desync(m)) if m.contains("RESTORE of \"a\"")),
            "{err:?}"
        );
        assert_eq!(f.replied_keys(), 0);
        // an error is the key's; OOM stops the import; READONLY is a failover only with Sentinel
        let mut f = batch();
        f.on_reply(Reply::Ok, false, &s).unwrap();
        f.on_reply(Reply::Error("ERR bad payload".into()), false, &s)
            .unwrap();
        assert_eq!(f.errors[0].as_deref(), Some("ERR bad payload"));
        assert!(matches!(
            f.on_reply(Reply::Error("OOM".into()), false, &s),
            Err(Stop::Fatal(_))
        ));
        // the refused key fails with the refusal (its connection drains, then stops)
        assert_eq!(f.errors[1].as_deref(), Some("OOM"));
        let mut f = batch();
        f.on_reply(Reply::Ok, true, &s).unwrap();
        let r = f.on_reply(Reply::Error("READONLY replica".into()), true, &s);
        assert!(matches!(r, Err(Stop::Failover(_))));
        // MOVED/ASK are recorded per key, the rest of the key's replies with it
        let mut f = batch();
        f.on_reply(Reply::Ok, false, &s).unwrap();
        f.on_reply(Reply::Ok, false, &s).unwrap();
        f.on_reply(Reply::Int(1), false, &s).unwrap();
        f.on_reply(Reply::Error("ASK 5 10.0.0.2:7001".into()), false, &s)
            .unwrap();
        assert!(f.done());
        let to = f.redirects[1].as_ref().unwrap();
        assert!(to.ask && to.partial, "{to:?}");
        assert!(f.redirects[0].is_none() && f.errors[1].is_none());
    }
}
