//! Verify's read pipelines: one connection writes the read commands of its keys while it reads and
//! compares the replies of earlier ones, with at most `window_bytes` of expected reply bytes (and
//! `window_commands` commands) in flight. Keys come in batches from the decoder; a cluster has a
//! set of such connections per primary, and keys a node redirects (MOVED/ASK) go to a follower
//! that reads them again where the cluster says.

use super::resp::{self, V};
use super::want::{DumpStats, Want};
use crate::commands::Resp;
use crate::replay::routes::Routes;
use crate::replay::target::Transport;
use crate::replay::wire::Redirect;
use crate::replay::{ReplayError, Target};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;

/// Mismatches listed in the report (the first ones in dump order); the rest are counted.
pub(crate) const LISTED: usize = 1000;

/// A redirected key is followed at most this many times.
const MAX_HOPS: u32 = 5;

/// Bytes of commands buffered ahead of the socket.
const WRITE_AHEAD: usize = 64 << 10;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PipeConfig {
    pub window_bytes: usize,
    pub window_commands: usize,
    pub timeout: Duration,
    /// A cluster: no SELECT, and MOVED/ASK are followed.
    pub cluster: bool,
}

/// What connections found.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub matched: u64,
    pub mismatched: u64,
    /// seq → (db, key, why); the first [`LISTED`] in dump order.
    pub mismatches: BTreeMap<u64, (u64, Vec<u8>, String)>,
    pub commands: u64,
    pub batches: u64,
    pub redirected: u64,
    /// Most expected reply bytes in flight on one connection at once.
    pub peak_bytes: usize,
}

impl Tally {
    pub(crate) fn differs(&mut self, w: &Want, why: String) {
        self.mismatched += 1;
        let full = self.mismatches.len() >= LISTED;
        if full
            && self
                .mismatches
                .last_key_value()
                .is_some_and(|(k, _)| *k < w.seq)
        {
            return;
        }
        self.mismatches.insert(w.seq, (w.db, w.key.clone(), why));
        if full {
            self.mismatches.pop_last();
        }
    }

    fn settle(&mut self, mut w: Want) {
        match w.diff.take() {
            None => self.matched += 1,
            Some(why) => self.differs(&w, why),
        }
    }

    pub(crate) fn merge(&mut self, o: Tally) {
        self.matched += o.matched;
        self.commands += o.commands;
        self.batches += o.batches;
        self.redirected += o.redirected;
        self.peak_bytes = self.peak_bytes.max(o.peak_bytes);
        self.mismatched += o.mismatched;
        for (seq, m) in o.mismatches {
            self.mismatches.insert(seq, m);
            if self.mismatches.len() > LISTED {
                self.mismatches.pop_last();
            }
        }
    }
}

/// A key a node redirected, on its way to the follower.
pub(crate) struct Bounced {
    want: Want,
    hops: u32,
}

/// Where a connection takes its keys from.
pub(crate) enum Feed {
    /// Batches from the decoder, shared by the connections of one node.
    Queue(Arc<Mutex<mpsc::Receiver<Vec<Want>>>>),
    /// A fixed set (the follower's keys for one node).
    Fixed(VecDeque<Want>),
}

/// What each command in flight was.
enum Sent {
    Select,
    Asking,
    /// A key's read, with the reply bytes it was expected to take.
    Read(usize),
}

/// Opens a connection to `node` within the timeout.
pub(crate) async fn connect(
    node: &Target,
    timeout: Duration,
) -> Result<Box<dyn Transport>, ReplayError> {
    tokio::time::timeout(timeout, node.connect_raw())
        .await
        .map_err(|_| ReplayError::Connect(format!("no connection to {} in time", node.display())))?
}

/// Runs one connection until its feed is exhausted and every key is settled. Redirected keys go
/// to `follow` (main connections) or into `bounced` (the follower's own connections); keys whose
/// `DUMP` payload differed are read again by elements on the same connection (counted in `stats`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn drive(
    stream: &mut Box<dyn Transport>,
    node: &str,
    feed: &mut Feed,
    cfg: &PipeConfig,
    stats: &DumpStats,
    tally: &mut Tally,
    follow: Option<&mpsc::Sender<Bounced>>,
    bounced: &mut Vec<Want>,
) -> Result<(), ReplayError> {
    let lost = |why: String| ReplayError::Connect(format!("verify connection to {node}: {why}"));
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut queue: VecDeque<Want> = VecDeque::new();
    // keys before `cursor` are fully sent
    let mut cursor = 0;
    let mut fifo: VecDeque<Sent> = VecDeque::new();
    let mut in_flight = 0usize;
    let mut out = Resp::default();
    let mut written = 0;
    let mut rbuf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut db: Option<u64> = None;
    let mut feed_done = false;
    let mut deadline = Instant::now() + cfg.timeout;
    let mut redirected = Vec::new();
    loop {
        // fill the write buffer within the window
        while out.len() - written < WRITE_AHEAD
            && fifo.len() < cfg.window_commands
            && (in_flight < cfg.window_bytes || fifo.is_empty())
        {
            if cursor == queue.len() {
                if let Feed::Fixed(keys) = feed {
                    match keys.pop_front() {
                        Some(w) => queue.push_back(w),
                        None => feed_done = true,
                    }
                }
                if cursor == queue.len() {
                    break;
                }
            }
            let w = &mut queue[cursor];
            if w.sending_done() {
                cursor += 1;
                continue;
            }
            let (mark, queued, db_before) = (out.len(), fifo.len(), db);
            if !cfg.cluster && db != Some(w.db) {
                out.cmd(&[b"SELECT", w.db.to_string().as_bytes()]);
                fifo.push_back(Sent::Select);
                db = Some(w.db);
            }
            if w.asking {
                out.cmd(&[b"ASKING"]);
                fifo.push_back(Sent::Asking);
            }
            let est = w.encode_next(&mut out);
            if in_flight + est > cfg.window_bytes && queued > 0 {
                // wait for room (a read larger than the window goes alone)
                out.buf.truncate(mark);
                fifo.truncate(queued);
                db = db_before;
                w.unsend();
                break;
            }
            if queued == 0 {
                deadline = Instant::now() + cfg.timeout;
            }
            fifo.push_back(Sent::Read(est));
            in_flight += est;
            tally.commands += 1;
            tally.peak_bytes = tally.peak_bytes.max(in_flight);
        }
        let need_keys = cursor == queue.len()
            && !feed_done
            && fifo.len() < cfg.window_commands
            && in_flight < cfg.window_bytes;
        if queue.is_empty() && fifo.is_empty() && feed_done {
            return Ok(());
        }
        let pending_write = written < out.len();
        tokio::select! {
            r = wr.write(&out.buf[written..]), if pending_write => {
                let n = r.map_err(|e| lost(format!("write failed: {e}")))?;
                written += n;
                if written == out.len() {
                    out.buf.clear();
                    written = 0;
                } else if written > (1 << 20) {
                    out.buf.drain(..written);
                    written = 0;
                }
            }
            r = rd.read_buf(&mut rbuf), if !fifo.is_empty() => {
                let n = r.map_err(|e| lost(format!("read failed: {e}")))?;
                if n == 0 {
                    return Err(lost("the server closed the connection".into()));
                }
                let mut used = 0;
                // replies arrived: the connection is alive
                deadline = Instant::now() + cfg.timeout;
                while let Some((v, len)) = resp::parse(&rbuf[used..]).map_err(&lost)? {
                    used += len;
                    let sent = fifo.pop_front().ok_or_else(|| lost("a reply to no command".into()))?;
                    match (sent, &v) {
                        (Sent::Select, V::Simple(b"OK")) | (Sent::Asking, V::Simple(b"OK")) => {}
                        (Sent::Select, other) => {
                            return Err(ReplayError::Redis(format!("SELECT on {node}: {other:?}")))
                        }
                        (Sent::Asking, other) => {
                            return Err(ReplayError::Redis(format!("ASKING on {node}: {other:?}")))
                        }
                        (Sent::Read(est), v) => {
                            in_flight -= est;
                            let w = queue
                                .iter_mut()
                                .find(|w| w.replied < w.sent)
                                .ok_or_else(|| lost("a reply to no key".into()))?;
                            let to = match v {
                                V::Error(e) if cfg.cluster => {
                                    Redirect::parse(&String::from_utf8_lossy(e), false)
                                }
                                _ => None,
                            };
                            match to {
                                Some(to) => w.on_redirect(to),
                                None => w.on_reply(v),
                            }
                            while queue.front().is_some_and(Want::complete) {
                                let w = queue.pop_front().expect("front exists");
                                cursor = cursor.saturating_sub(1);
                                if w.redirect.is_some() {
                                    redirected.push(w);
                                    continue;
                                }
                                w.count_in(stats);
                                if w.read_again() {
                                    queue.push_back(w.expand()?);
                                } else {
                                    tally.settle(w);
                                }
                            }
                        }
                    }
                }
                rbuf.drain(..used);
                // an unparsed reply larger than any we asked for (plus slack) is not ours
                let limit = cfg.window_bytes.max(in_flight).saturating_mul(2).max(64 << 20);
                if rbuf.len() > limit {
                    return Err(lost(format!(
                        "a reply larger than {limit} bytes: the target holds a value far larger than the dump's"
                    )));
                }
            }
            b = next_batch(feed), if need_keys => match b {
                Some(b) => {
                    tally.batches += 1;
                    queue.extend(b);
                }
                None => feed_done = true,
            },
            () = tokio::time::sleep_until(deadline), if !fifo.is_empty() => {
                return Err(lost(format!("no reply for {:?}", cfg.timeout)));
            }
        }
        for w in redirected.drain(..) {
            tally.redirected += 1;
            match follow {
                Some(f) => f
                    .send(Bounced { want: w, hops: 0 })
                    .await
                    .map_err(|_| ReplayError::Config("the redirect follower stopped".into()))?,
                None => bounced.push(w),
            }
        }
    }
}

async fn next_batch(feed: &mut Feed) -> Option<Vec<Want>> {
    match feed {
        Feed::Queue(rx) => rx.lock().await.recv().await,
        Feed::Fixed(_) => None,
    }
}

/// Reads redirected keys again on the nodes named, up to [`MAX_HOPS`] times each.
pub(crate) async fn follower(
    mut rx: mpsc::Receiver<Bounced>,
    routes: Arc<Routes>,
    base: Target,
    cfg: PipeConfig,
    stats: Arc<DumpStats>,
) -> Result<Tally, ReplayError> {
    let mut tally = Tally::default();
    let mut conns: HashMap<(String, u16), Box<dyn Transport>> = HashMap::new();
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < 1024 {
            match rx.try_recv() {
                Ok(b) => group.push(b),
                Err(_) => break,
            }
        }
        while !group.is_empty() {
            // by destination, in order
            let mut by: BTreeMap<(String, u16), VecDeque<Want>> = BTreeMap::new();
            let mut hops: HashMap<u64, u32> = HashMap::new();
            for mut b in group.drain(..) {
                let Some(to) = b.want.restart() else {
                    continue;
                };
                if !to.ask {
                    routes.moved(to.slot, &to.host, to.port);
                }
                if b.hops >= MAX_HOPS {
                    tally.differs(
                        &b.want,
                        format!(
                            "still redirected after {MAX_HOPS} hops (last: slot {} to {}:{})",
                            to.slot, to.host, to.port
                        ),
                    );
                    continue;
                }
                let host = if to.host.is_empty() {
                    base.host.clone()
                } else {
                    to.host.clone()
                };
                hops.insert(b.want.seq, b.hops + 1);
                by.entry((host, to.port)).or_default().push_back(b.want);
            }
            for ((host, port), keys) in by {
                let node = base.at(host.clone(), port);
                let key = (host, port);
                if !conns.contains_key(&key) {
                    conns.insert(key.clone(), connect(&node, cfg.timeout).await?);
                }
                let stream = conns.get_mut(&key).expect("inserted above");
                let mut feed = Feed::Fixed(keys);
                let mut again = Vec::new();
                drive(
                    stream,
                    &node.display(),
                    &mut feed,
                    &cfg,
                    &stats,
                    &mut tally,
                    None,
                    &mut again,
                )
                .await?;
                group.extend(again.into_iter().map(|w| Bounced {
                    hops: hops.get(&w.seq).copied().unwrap_or(MAX_HOPS),
                    want: w,
                }));
            }
        }
    }
    // redirected keys were counted by the connection that met them; the follower's own
    // redirections are hops of the same keys
    tally.redirected = 0;
    Ok(tally)
}
