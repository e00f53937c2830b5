//! A live source: rdbkit connects to a running server as a replica and receives its snapshot, then
//! the stream of its writes.
//!
//! ```text
//! socket ─▶ driver (async, own thread) ─▶ pump thread ─▶ Spool (memory, then a file)
//!              │  handshake, framing,                      ├─▶ snapshot: SpoolReader up to the mark
//!              │  REPLCONF ACK every second                └─▶ stream:   CommandReader after it
//!              ◀── applied offset, ACK requests (from the consumer)
//! ```
//!
//! The protocol as a replica speaks it: `PING`, `REPLCONF capa eof capa psync2`, `PSYNC ? -1`
//! (or `PSYNC replid offset` to continue), then newline keep-alives while the primary prepares the
//! snapshot, a disk-based (`$<len>`) or diskless (`$EOF:<40-byte mark>`) transfer, and the command
//! stream. rdbkit never replies to the stream; it sends `REPLCONF ACK <offset>` once a second and
//! when the consumer meets `REPLCONF GETACK`, with the offset the consumer says is applied, so
//! that the source's `INFO replication` shows the true lag and a `WAIT` on the source means "the
//! target has it". The socket is read at the network's pace whatever the consumer's pace (see
//! [`super::spool`]), so the primary never drops rdbkit for an output buffer over its limit.

use super::spool::{Spool, SpoolReader};
use std::future::Future;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

/// Length of the end mark of a diskless transfer (`$EOF:<mark>`).
const EOF_MARK_LEN: usize = 40;

/// How rdbkit connects as a replica.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// Name in messages: the source's address, without its password.
    pub name: String,
    /// Ask for the snapshot only (`REPLCONF rdb-only 1`, Redis 7.0+): the primary keeps no
    /// stream for rdbkit. Used by `rdbkit dump`.
    pub rdb_only: bool,
    /// Continue after `(replid, offset)` (the offset of the last byte applied) instead of a full
    /// snapshot, when the source's backlog still holds it.
    pub resume: Option<(String, u64)>,
    /// Bytes of unread stream held in memory before spilling to `spool_dir`.
    pub mem_cap: usize,
    /// Where the spill file goes (unlinked at once).
    pub spool_dir: PathBuf,
    /// How long the source may stay silent (it sends keep-alives every second while preparing a
    /// snapshot and a `PING` every 10 s by default in the stream) before rdbkit gives up.
    pub silence: Duration,
    /// Deadline of each handshake step.
    pub step_timeout: Duration,
    /// How long to try connecting again when the link breaks during the stream (zero: the
    /// stream ends with the link).
    pub reconnect: Duration,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            name: "the source".into(),
            rdb_only: false,
            resume: None,
            mem_cap: 64 << 20,
            spool_dir: std::env::temp_dir(),
            silence: Duration::from_secs(60),
            step_timeout: Duration::from_secs(30),
            reconnect: Duration::from_secs(60),
        }
    }
}

/// What the source answered to `PSYNC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncKind {
    /// A full snapshot follows; the stream starts at `offset`.
    Full {
        /// The source's replication id.
        replid: String,
        /// The replication offset of the snapshot.
        offset: u64,
    },
    /// The stream continues after `offset` (no snapshot).
    Continue {
        /// The replication id (a new one after a failover of the source).
        replid: String,
        /// The offset the stream continues after.
        offset: u64,
    },
}

impl SyncKind {
    /// The replication id.
    pub fn replid(&self) -> &str {
        match self {
            SyncKind::Full { replid, .. } | SyncKind::Continue { replid, .. } => replid,
        }
    }
    /// The offset at which the command stream starts.
    pub fn offset(&self) -> u64 {
        match self {
            SyncKind::Full { offset, .. } | SyncKind::Continue { offset, .. } => *offset,
        }
    }
}

/// Why a live source could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The source refuses to serve replicas (`SYNC`/`PSYNC` renamed away, denied by an ACL, a
    /// managed service): `--source-mode scan` reads it without them.
    #[error("{name} refuses to serve a replica ({reply})")]
    Refused {
        /// The source.
        name: String,
        /// Its answer.
        reply: String,
    },
    /// Connecting or authenticating failed.
    #[error("{name}: {message}")]
    Connect {
        /// The source.
        name: String,
        /// What failed.
        message: String,
    },
    /// The source answered something a primary does not.
    #[error("{name}: {message}")]
    Protocol {
        /// The source.
        name: String,
        /// What was wrong.
        message: String,
    },
}

/// A running live source. Dropping it (or [`Replica::stop`]) closes the connection.
#[derive(Debug)]
pub struct Replica {
    kind: SyncKind,
    name: String,
    spool: Arc<Spool>,
    shared: Arc<Live>,
    silence: Duration,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// State the driver and the consumer share.
#[derive(Debug, Default)]
struct Live {
    /// Offset of the last byte the consumer applied (sent in `REPLCONF ACK`).
    applied: AtomicU64,
    /// Offset of the last byte received.
    received: AtomicU64,
    /// Bytes of the snapshot received.
    snapshot_bytes: AtomicU64,
    /// Times the link broke and was continued by a partial resync.
    reconnects: AtomicU64,
    /// The link broke and the source could only offer a new full snapshot.
    lost_stream: std::sync::atomic::AtomicBool,
    ack_now: Notify,
    stop: Notify,
}

enum Piece {
    Data(Vec<u8>),
    Mark,
    End(Result<(), String>),
}

impl Replica {
    /// Connects with `connect` (an authenticated stream to the source, opened on the replica's own
    /// thread), performs the handshake and returns once the source has said what it will send.
    pub fn start<F, Fut, T>(connect: F, opts: ReplicaOptions) -> Result<Replica, ReplicaError>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, String>>,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let spool = Arc::new(Spool::new(opts.mem_cap, &opts.spool_dir));
        let shared = Arc::new(Live::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (pieces_tx, pieces_rx) = mpsc::channel::<Piece>(64);
        let name = opts.name.clone();
        let silence = opts.silence;
        // the pump: the only place that touches the spool's lock on the writing side, so the
        // async driver never waits on a std lock or on the disk
        let pump_spool = spool.clone();
        std::thread::Builder::new()
            .name("rdbkit-spool".into())
            .spawn(move || pump(pieces_rx, &pump_spool))
            .map_err(|e| connect_error(&name, e))?;
        let (d_shared, d_opts) = (shared.clone(), opts.clone());
        let thread = std::thread::Builder::new()
            .name("rdbkit-replica".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(connect_error(&d_opts.name, e)));
                        return;
                    }
                };
                rt.block_on(drive(connect, d_opts, d_shared, ready_tx, pieces_tx));
            })
            .map_err(|e| connect_error(&name, e))?;
        // the driver's own steps have deadlines; this one covers connecting and a server that
        // answers LOADING for a while
        let wait = opts.step_timeout * 4;
        let kind = match ready_rx.recv_timeout(wait) {
            Ok(r) => r?,
            Err(_) => {
                shared.stop.notify_one();
                return Err(ReplicaError::Connect {
                    name,
                    message: format!("no answer to the replication handshake within {wait:?}"),
                });
            }
        };
        shared.applied.store(kind.offset(), Relaxed);
        shared.received.store(kind.offset(), Relaxed);
        Ok(Replica {
            kind,
            name,
            spool,
            shared,
            silence,
            thread: Some(thread),
        })
    }

    /// What the source answered to `PSYNC`.
    pub fn kind(&self) -> &SyncKind {
        &self.kind
    }

    /// The snapshot's bytes (an RDB file); empty after a `Continue`.
    pub fn snapshot(&self) -> SpoolReader {
        SpoolReader::new(self.spool.clone(), true, self.silence * 2)
    }

    /// The command stream after the snapshot. Read it only after the snapshot is consumed.
    pub fn commands(&self) -> super::resp::CommandReader<BufReader<SpoolReader>> {
        super::resp::CommandReader::new(
            BufReader::with_capacity(
                1 << 20,
                SpoolReader::new(self.spool.clone(), false, self.silence * 2),
            ),
            self.name.clone(),
            self.kind.offset(),
        )
    }

    /// A handle the consumer uses to report progress and ask for acknowledgements.
    pub fn progress(&self) -> ReplicaProgress {
        ReplicaProgress {
            shared: self.shared.clone(),
            spool: self.spool.clone(),
        }
    }

    /// Closes the connection and waits (at most a few seconds) for the driver to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.notify_one();
        if let Some(t) = self.thread.take() {
            // the driver ends within one poll of its stop notification
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The consumer's side of a [`Replica`]: where it reports what it applied.
#[derive(Debug, Clone)]
pub struct ReplicaProgress {
    shared: Arc<Live>,
    spool: Arc<Spool>,
}

impl ReplicaProgress {
    /// The progress of a finite command stream no replica feeds (an AOF's commands): applied up
    /// to `applied`, received up to `received`.
    pub fn detached(applied: u64, received: u64) -> ReplicaProgress {
        let shared = Live::default();
        shared.applied.store(applied, Relaxed);
        shared.received.store(received, Relaxed);
        ReplicaProgress {
            shared: Arc::new(shared),
            spool: Arc::new(Spool::new(1, &std::env::temp_dir())),
        }
    }
    /// Records that everything up to `offset` is applied (sent in the next `REPLCONF ACK`).
    pub fn applied(&self, offset: u64) {
        self.shared.applied.fetch_max(offset, Relaxed);
    }
    /// Offset of the last byte applied.
    pub fn applied_offset(&self) -> u64 {
        self.shared.applied.load(Relaxed)
    }
    /// Offset of the last byte received from the source.
    pub fn received_offset(&self) -> u64 {
        self.shared.received.load(Relaxed)
    }
    /// Bytes of the snapshot received so far.
    pub fn snapshot_bytes(&self) -> u64 {
        self.shared.snapshot_bytes.load(Relaxed)
    }
    /// Sends a `REPLCONF ACK` now (the consumer met `REPLCONF GETACK`).
    pub fn ack_now(&self) {
        self.shared.ack_now.notify_one();
    }
    /// Times the link to the source broke and rdbkit continued by a partial resync.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Relaxed)
    }
    /// Whether the stream ended because the source, reconnected, could only offer a new full
    /// snapshot (restarted, or its backlog moved on).
    pub fn stream_lost(&self) -> bool {
        self.shared.lost_stream.load(Relaxed)
    }
    /// Bytes received and not yet read by the consumer.
    pub fn backlog(&self) -> u64 {
        self.spool.backlog()
    }
    /// The most bytes that waited on disk at once.
    pub fn peak_spilled(&self) -> u64 {
        self.spool.peak_spilled()
    }
}

fn connect_error(name: &str, e: impl std::fmt::Display) -> ReplicaError {
    ReplicaError::Connect {
        name: name.to_string(),
        message: e.to_string(),
    }
}

fn pump(mut rx: mpsc::Receiver<Piece>, spool: &Spool) {
    while let Some(p) = rx.blocking_recv() {
        match p {
            Piece::Data(d) => {
                if let Err(e) = spool.push(d) {
                    spool.close(Err(format!("spilling the source's stream to disk: {e}")));
                    return;
                }
            }
            Piece::Mark => spool.mark(),
            Piece::End(r) => {
                spool.close(r);
                return;
            }
        }
    }
    spool.close(Err("the replication driver stopped".into()));
}

/// Bytes read from the socket that the framing has not consumed yet.
struct Conn<R> {
    r: R,
    buf: Vec<u8>,
    name: String,
    silence: Duration,
}

impl<R: AsyncRead + Unpin> Conn<R> {
    /// Reads more bytes (at least one), within `limit`.
    async fn more(&mut self, limit: Duration) -> Result<(), String> {
        let mut chunk = vec![0u8; 256 << 10];
        match tokio::time::timeout(limit, self.r.read(&mut chunk)).await {
            Err(_) => Err(format!("{}: nothing received for {limit:?}", self.name)),
            Ok(Err(e)) => Err(format!("{}: {e}", self.name)),
            Ok(Ok(0)) => Err(format!("{} closed the connection", self.name)),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// One `\r\n`-terminated line (without it), within `limit`.
    async fn line(&mut self, limit: Duration) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(l);
            }
            if self.buf.len() > 4096 {
                return Err(format!(
                    "{}: expected a reply line, found {}",
                    self.name,
                    crate::text::escape_bytes(&self.buf[..64])
                ));
            }
            self.more(limit).await?;
        }
    }
}

async fn command<W: AsyncWrite + Unpin>(w: &mut W, args: &[&[u8]]) -> Result<(), String> {
    let mut out = Vec::new();
    super::resp::write_resp(args, &mut out);
    w.write_all(&out).await.map_err(|e| e.to_string())?;
    w.flush().await.map_err(|e| e.to_string())
}

async fn drive<F, Fut, T>(
    connect: F,
    opts: ReplicaOptions,
    live: Arc<Live>,
    ready: std::sync::mpsc::Sender<Result<SyncKind, ReplicaError>>,
    pieces: mpsc::Sender<Piece>,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, String>>,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut conn, mut w, kind) = match open(&connect, &opts).await {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let (mut full, mut start) = (matches!(kind, SyncKind::Full { .. }), kind.offset());
    let replid = kind.replid().to_string();
    let _ = ready.send(Ok(kind));
    let mut streaming = false;
    let end = loop {
        let first = !streaming;
        let r = tokio::select! {
            r = transfer(&mut conn, &mut w, &live, &pieces, full, start, first, &mut streaming) => r,
            _ = live.stop.notified() => Ok(()),
        };
        let broken = match r {
            Ok(()) => break Ok(()),
            // a broken snapshot cannot be continued, and `rdb-only` has no stream to continue
            Err(e) if !streaming || opts.rdb_only || opts.reconnect.is_zero() => break Err(e),
            Err(e) if e == CONSUMER_GONE => break Err(e),
            Err(e) => e,
        };
        // a replica whose link breaks continues where it stopped (`PSYNC replid offset`), as
        // the source's replicas do: a network blip, `CLIENT KILL` or a failover of a Sentinel
        // source is not the end of a follow
        let received = live.received.load(Relaxed);
        let again = tokio::select! {
            r = reconnect(&connect, &opts, &replid, received, &broken, &live.lost_stream) => r,
            _ = live.stop.notified() => break Ok(()),
        };
        match again {
            Ok((c, ww)) => {
                (conn, w, full, start) = (c, ww, false, received);
                live.reconnects.fetch_add(1, Relaxed);
            }
            Err(e) => break Err(e),
        }
    };
    let _ = pieces.send(Piece::End(end)).await;
}

/// What the driver says when the consumer has dropped the stream.
const CONSUMER_GONE: &str = "the consumer is gone";

type Link<T> = (Conn<tokio::io::ReadHalf<T>>, tokio::io::WriteHalf<T>);

/// Connects and performs the handshake.
async fn open<F, Fut, T>(
    connect: &F,
    opts: &ReplicaOptions,
) -> Result<
    (
        Conn<tokio::io::ReadHalf<T>>,
        tokio::io::WriteHalf<T>,
        SyncKind,
    ),
    ReplicaError,
>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, String>>,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let stream = match tokio::time::timeout(opts.step_timeout, connect()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(connect_error(&opts.name, e)),
        Err(_) => {
            return Err(connect_error(
                &opts.name,
                format!("could not connect within {:?}", opts.step_timeout),
            ))
        }
    };
    let (r, mut w) = tokio::io::split(stream);
    let mut conn = Conn {
        r,
        buf: Vec::new(),
        name: opts.name.clone(),
        silence: opts.silence,
    };
    let kind = handshake(&mut conn, &mut w, opts).await?;
    Ok((conn, w, kind))
}

/// Connects again after the link broke with `cause`, asking to continue after `received`;
/// tries for `opts.reconnect`. A source that can only offer a new full snapshot (it was
/// restarted, or its backlog no longer holds `received`) ends the stream: what the target holds
/// can be continued only from a new snapshot, which the user must choose.
async fn reconnect<F, Fut, T>(
    connect: &F,
    opts: &ReplicaOptions,
    replid: &str,
    received: u64,
    cause: &str,
    lost: &std::sync::atomic::AtomicBool,
) -> Result<Link<T>, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, String>>,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let o = ReplicaOptions {
        resume: Some((replid.to_string(), received)),
        ..opts.clone()
    };
    let deadline = tokio::time::Instant::now() + opts.reconnect;
    let mut pause = Duration::from_millis(100);
    loop {
        let last = match open(connect, &o).await {
            Ok((c, w, SyncKind::Continue { .. })) => return Ok((c, w)),
            Ok((_, _, SyncKind::Full { replid: new, .. })) => {
                lost.store(true, Relaxed);
                return Err(format!(
                    "{cause}; on reconnecting, {} can no longer continue its stream {replid} after offset {received} and offers a new full snapshot ({new}): it was restarted, or its backlog moved on",
                    opts.name
                ));
            }
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() + pause > deadline {
            return Err(format!(
                "{cause}; reconnecting failed for {:?}: {last}",
                opts.reconnect
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// The handshake up to the source's answer to `PSYNC`.
async fn handshake<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    conn: &mut Conn<R>,
    w: &mut W,
    opts: &ReplicaOptions,
) -> Result<SyncKind, ReplicaError> {
    let name = &opts.name;
    let step = opts.step_timeout;
    let proto = |message: String| ReplicaError::Protocol {
        name: name.clone(),
        message,
    };
    let conn_err = |message: String| connect_error(name, message);
    command(w, &[b"PING"]).await.map_err(conn_err)?;
    let pong = conn.line(step).await.map_err(conn_err)?;
    if let Some(err) = pong.strip_prefix('-') {
        return Err(conn_err(format!("PING: {err}")));
    }
    command(w, &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
        .await
        .map_err(conn_err)?;
    let capa = conn.line(step).await.map_err(conn_err)?;
    if let Some(err) = capa.strip_prefix('-') {
        // REPLCONF itself may be renamed or denied, like SYNC
        return Err(ReplicaError::Refused {
            name: name.clone(),
            reply: format!("REPLCONF: {err}"),
        });
    }
    if opts.rdb_only {
        command(w, &[b"REPLCONF", b"rdb-only", b"1"])
            .await
            .map_err(conn_err)?;
        // before 7.0 this is an unknown option: the snapshot is the same, the stream is ignored
        let _ = conn.line(step).await.map_err(conn_err)?;
    }
    let (id, off) = match &opts.resume {
        Some((id, off)) => (id.clone(), (off + 1).to_string()),
        None => ("?".to_string(), "-1".to_string()),
    };
    // a primary that is loading or has just started answers -LOADING / -NOMASTERLINK for a while
    let deadline = tokio::time::Instant::now() + step * 3;
    loop {
        command(w, &[b"PSYNC", id.as_bytes(), off.as_bytes()])
            .await
            .map_err(conn_err)?;
        let mut reply = conn.line(step).await.map_err(conn_err)?;
        // a primary that serves several replicas may send keep-alive newlines first
        while reply.is_empty() {
            reply = conn.line(step).await.map_err(conn_err)?;
        }
        let words: Vec<&str> = reply.split_whitespace().collect();
        match words.as_slice() {
            ["+FULLRESYNC", replid, offset] => {
                let offset = offset
                    .parse()
                    .map_err(|_| proto(format!("bad offset in {reply:?}")))?;
                return Ok(SyncKind::Full {
                    replid: replid.to_string(),
                    offset,
                });
            }
            ["+CONTINUE", rest @ ..] => {
                let (old, at) = opts.resume.clone().unwrap_or_default();
                return Ok(SyncKind::Continue {
                    replid: rest.first().map_or(old, |s| s.to_string()),
                    offset: at,
                });
            }
            [first, ..]
                if (first.starts_with("-LOADING") || first.starts_with("-NOMASTERLINK"))
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ if reply.starts_with('-') => {
                return Err(ReplicaError::Refused {
                    name: name.clone(),
                    reply: format!("PSYNC: {}", &reply[1..]),
                })
            }
            _ => return Err(proto(format!("unexpected answer to PSYNC: {reply:?}"))),
        }
    }
}

/// Receives the snapshot (after a full sync) and then the stream, acknowledging every second.
/// `mark`: the end of the snapshot is marked in the spool (the first link only); `streaming` is
/// set once the stream is reached.
#[allow(clippy::too_many_arguments)]
async fn transfer<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    conn: &mut Conn<R>,
    w: &mut W,
    live: &Live,
    pieces: &mpsc::Sender<Piece>,
    full: bool,
    start: u64,
    mark: bool,
    streaming: &mut bool,
) -> Result<(), String> {
    let send = |p: Piece| async move { pieces.send(p).await.map_err(|_| CONSUMER_GONE) };
    let silence = conn.silence;
    if full {
        // keep-alive newlines until the bulk header
        let header = loop {
            while conn.buf.first() == Some(&b'\n') {
                conn.buf.remove(0);
            }
            if conn.buf.first().is_some_and(|&b| b != b'$') {
                return Err(format!(
                    "{}: expected the snapshot ($<length> or $EOF:<mark>), found {}",
                    conn.name,
                    crate::text::escape_bytes(&conn.buf[..conn.buf.len().min(32)])
                ));
            }
            if conn.buf.windows(2).any(|w| w == b"\r\n") {
                break conn.line(silence).await?;
            }
            conn.more(silence).await?;
        };
        let bad = || format!("{}: bad snapshot header {header:?}", conn.name);
        let body = header.strip_prefix('$').ok_or_else(bad)?;
        if let Some(mark) = body.strip_prefix("EOF:") {
            if mark.len() != EOF_MARK_LEN {
                return Err(bad());
            }
            let finder = memchr::memmem::Finder::new(mark.as_bytes()).into_owned();
            loop {
                if let Some(i) = finder.find(&conn.buf) {
                    let data: Vec<u8> = conn.buf.drain(..i).collect();
                    conn.buf.drain(..EOF_MARK_LEN);
                    live.snapshot_bytes.fetch_add(data.len() as u64, Relaxed);
                    send(Piece::Data(data)).await?;
                    break;
                }
                // all but the last bytes, which may be the start of the mark
                let keep = conn.buf.len().min(EOF_MARK_LEN - 1);
                let data: Vec<u8> = conn.buf.drain(..conn.buf.len() - keep).collect();
                live.snapshot_bytes.fetch_add(data.len() as u64, Relaxed);
                if !data.is_empty() {
                    send(Piece::Data(data)).await?;
                }
                conn.more(silence).await?;
            }
        } else {
            let mut left: u64 = body.parse().map_err(|_| bad())?;
            while left > 0 {
                if conn.buf.is_empty() {
                    conn.more(silence).await?;
                }
                let n = (conn.buf.len() as u64).min(left) as usize;
                let data: Vec<u8> = conn.buf.drain(..n).collect();
                left -= n as u64;
                live.snapshot_bytes.fetch_add(n as u64, Relaxed);
                send(Piece::Data(data)).await?;
            }
        }
    }
    if mark {
        send(Piece::Mark).await?;
    }
    *streaming = true;
    // after a diskless transfer the primary starts the stream only after the first ACK
    let (mut received, stream_start) = (start, start);
    ack(w, live)
        .await
        .map_err(|e| format!("{}: sending REPLCONF ACK: {e}", conn.name))?;
    if !conn.buf.is_empty() {
        received += conn.buf.len() as u64;
        live.received.store(received, Relaxed);
        send(Piece::Data(std::mem::take(&mut conn.buf))).await?;
    }
    // a replica acknowledges once a second; rdbkit also as soon as the applied offset moves
    // (checked every 100 ms), so that the source's view of the lag, and a WAIT on it, are current
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut chunk = vec![0u8; 256 << 10];
    let mut last_byte = tokio::time::Instant::now();
    let (mut acked, mut acked_at) = (live.applied.load(Relaxed), tokio::time::Instant::now());
    loop {
        tokio::select! {
            r = conn.r.read(&mut chunk) => match r {
                Ok(0) => return Err(format!("{} closed the connection", conn.name)),
                Ok(n) => {
                    received += n as u64;
                    live.received.store(received, Relaxed);
                    last_byte = tokio::time::Instant::now();
                    send(Piece::Data(chunk[..n].to_vec())).await?;
                }
                Err(e) => return Err(format!("{}: {e}", conn.name)),
            },
            _ = tick.tick() => {
                if last_byte.elapsed() > silence {
                    return Err(format!("{}: nothing received for {silence:?} (a primary pings its replicas every 10 s)", conn.name));
                }
                let now = live.applied.load(Relaxed);
                // after a diskless transfer the primary starts the stream on an ACK that comes
                // once it has seen its fork end; an earlier one is lost, and it then buffers
                // the stream (up to its output-buffer limit for replicas) until the next one:
                // until the first byte, one every tick
                let waiting = received == stream_start;
                if waiting || now != acked || acked_at.elapsed() >= Duration::from_secs(1) {
                    ack(w, live).await.map_err(|e| format!("{}: sending REPLCONF ACK: {e}", conn.name))?;
                    (acked, acked_at) = (now, tokio::time::Instant::now());
                }
            }
            _ = live.ack_now.notified() => {
                ack(w, live).await.map_err(|e| format!("{}: sending REPLCONF ACK: {e}", conn.name))?;
            }
        }
    }
}

/// `REPLCONF ACK <applied offset>`.
async fn ack<W: AsyncWrite + Unpin>(w: &mut W, live: &Live) -> std::io::Result<()> {
    let off = live.applied.load(Relaxed).to_string();
    let mut out = Vec::new();
    super::resp::write_resp(&[&b"REPLCONF"[..], b"ACK", off.as_bytes()], &mut out);
    w.write_all(&out).await?;
    w.flush().await
}
