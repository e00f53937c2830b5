//! Batches: the unit the data plane writes, acknowledges, checkpoints and re-sends.
//!
//! A batch is self-contained RESP for one database: it starts with `SELECT db`, then the commands
//! of whole keys (a key never spans batches, so one key's commands stay in order on one
//! connection). It remembers each key's byte range so that after a dropped connection it can be
//! re-sent idempotently: RESTOREs gain `REPLACE`, command-built keys are preceded by `DEL`.

pub use crate::commands::Resp;
use std::sync::Arc;
use std::time::Duration;

/// The bytes of encoded commands that may exist at once (queued for a connection or in flight):
/// the producer waits for room before it hands a batch over, so the importer's memory stays flat
/// in the dump's size. A batch larger than the whole budget (one huge value) waits until nothing
/// else is held, so the bound is budget + largest value.
///
/// Built on a tokio [`Semaphore`](tokio::sync::Semaphore) of bytes: giving room back (dropping a
/// [`Permit`], which happens on the connections' runtime workers) never blocks, and only the
/// producer, a plain thread, ever waits. Batches kept after their acknowledgement for a rewrite
/// after a failover give their permit back: that memory is bounded by the connections themselves
/// (see `conn::Retained`), out of a share of `--buffer-mb` set aside for it.
#[derive(Debug)]
pub struct MemoryBudget {
    cap: u32,
    room: Arc<tokio::sync::Semaphore>,
}

/// A batch's share of the [`MemoryBudget`], given back when the batch is dropped.
#[derive(Debug)]
pub struct Permit {
    _held: tokio::sync::OwnedSemaphorePermit,
    bytes: usize,
}

impl Permit {
    /// The bytes it stands for.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl MemoryBudget {
    /// A budget of `cap` bytes (at most 4 GiB − 1).
    pub fn new(cap: usize) -> Arc<MemoryBudget> {
        let cap = u32::try_from(cap.max(1)).unwrap_or(u32::MAX);
        Arc::new(MemoryBudget {
            cap,
            room: Arc::new(tokio::sync::Semaphore::new(cap as usize)),
        })
    }

    /// Waits until `bytes` fit, or returns `None` once `stop` says the import is over (checked
    /// every 100 ms while waiting). Call it from a plain thread, never from a runtime worker:
    /// it blocks the calling thread (through `rt`, a multi-thread runtime, whose workers drive
    /// the timer).
    pub fn acquire(
        &self,
        rt: &tokio::runtime::Handle,
        bytes: usize,
        stop: impl Fn() -> bool,
    ) -> Option<Permit> {
        // a batch larger than the budget takes all of it: it goes alone
        let want = u32::try_from(bytes).unwrap_or(u32::MAX).clamp(1, self.cap);
        if let Ok(p) = self.room.clone().try_acquire_many_owned(want) {
            return Some(Permit { _held: p, bytes });
        }
        rt.block_on(async {
            loop {
                let wait = self.room.clone().acquire_many_owned(want);
                match tokio::time::timeout(Duration::from_millis(100), wait).await {
                    Ok(Ok(p)) => return Some(Permit { _held: p, bytes }),
                    Ok(Err(_closed)) => return None,
                    Err(_elapsed) if stop() => return None,
                    Err(_elapsed) => {}
                }
            }
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.cap as usize - self.room.available_permits()
    }
}

/// How a key travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyMode {
    /// One RESTORE of the raw value.
    Restore,
    /// Plain commands.
    Commands,
}

/// One key inside a batch.
#[derive(Debug, Clone)]
pub struct KeyRec {
    /// Where its name is in [`Batch::names`] (for reports and for DEL on re-send).
    pub name: std::ops::Range<usize>,
    /// How it is written.
    pub mode: KeyMode,
    /// Number of commands.
    pub commands: u32,
    /// Byte range of its commands in the batch.
    pub range: std::ops::Range<usize>,
    /// The RESTORE already carries REPLACE / the commands already start with DEL.
    pub replacing: bool,
    /// A module value: never replaced by `RESTORE … REPLACE` (FalkorDB 4.16 crashes on it), but
    /// by `MULTI`, `DEL`, `RESTORE`, `EXEC` (no client sees the key missing).
    pub module: bool,
}

/// Commands for a run of keys of one database.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Opened by SELECT (false: PING, for cluster nodes).
    pub select: bool,
    /// Sequence number in dump order (for checkpoints).
    pub id: u64,
    /// Target database.
    pub db: u64,
    /// Encoded commands, starting with SELECT.
    pub bytes: Vec<u8>,
    /// Keys in order.
    pub keys: Vec<KeyRec>,
    /// The keys' names, one after the other (one buffer per batch rather than one per key: the
    /// producer allocates and a connection thread frees, and per-key allocations showed up as
    /// 10% of a D1 import's CPU in malloc/free).
    pub names: Vec<u8>,
    /// Commands in `bytes`, SELECT included.
    pub commands: usize,
    /// Dump offset just past the batch's last entry.
    pub end_offset: u64,
    /// Dump offset of the batch's first entry (0 until it has one).
    pub start_offset: u64,
    /// Index of the input file the keys come from.
    pub file: usize,
    /// Its share of the memory budget (released when the last copy is dropped).
    pub permit: Option<Arc<Permit>>,
}

impl Batch {
    /// A new batch for `db`, opened by `SELECT db` (or by `PING` on a cluster node, which has only
    /// db 0 and refuses SELECT), so that every batch is self-contained.
    pub fn new(id: u64, db: u64) -> Batch {
        Self::with_context(id, db, true)
    }

    /// A new batch; `select` false opens it with PING instead of SELECT.
    pub fn with_context(id: u64, db: u64, select: bool) -> Batch {
        Self::in_buffer(id, db, select, Vec::new())
    }

    /// A new batch encoded into `buf` (cleared first): a recycled buffer saves the allocation and
    /// the page faults of a fresh one.
    pub fn in_buffer(id: u64, db: u64, select: bool, mut buf: Vec<u8>) -> Batch {
        buf.clear();
        let mut r = Resp { buf };
        if select {
            r.begin(2);
            r.arg(b"SELECT");
            r.arg_int(db as i64);
        } else {
            r.cmd(&[b"PING"]);
        }
        Batch {
            select,
            id,
            db,
            bytes: r.buf,
            keys: Vec::new(),
            names: Vec::new(),
            commands: 1,
            end_offset: 0,
            start_offset: 0,
            file: 0,
            permit: None,
        }
    }

    /// The name of one of its keys.
    pub fn key(&self, k: &KeyRec) -> &[u8] {
        self.names.get(k.name.clone()).unwrap_or_default()
    }

    /// Appends a key whose commands are in `resp` (moved out of it).
    pub fn push_key(
        &mut self,
        key: &[u8],
        mode: KeyMode,
        commands: u32,
        resp: &mut Resp,
        replacing: bool,
    ) -> &mut KeyRec {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&resp.buf);
        resp.buf.clear();
        self.record_key(key, mode, commands, start, replacing)
    }

    /// Appends a key whose commands `write` encodes straight into the batch (no intermediate
    /// copy: this is how multi-megabyte RESTORE payloads are built).
    pub fn write_key(
        &mut self,
        key: &[u8],
        mode: KeyMode,
        commands: u32,
        replacing: bool,
        write: impl FnOnce(&mut Resp),
    ) -> &mut KeyRec {
        let start = self.bytes.len();
        let mut r = Resp {
            buf: std::mem::take(&mut self.bytes),
        };
        write(&mut r);
        self.bytes = r.buf;
        self.record_key(key, mode, commands, start, replacing)
    }

    fn record_key(
        &mut self,
        key: &[u8],
        mode: KeyMode,
        commands: u32,
        start: usize,
        replacing: bool,
    ) -> &mut KeyRec {
        let at = self.names.len();
        self.names.extend_from_slice(key);
        self.keys.push(KeyRec {
            name: at..self.names.len(),
            mode,
            commands,
            range: start..self.bytes.len(),
            replacing,
            module: false,
        });
        self.commands += commands as usize;
        self.keys.last_mut().expect("just pushed")
    }

    /// Rewrites the batch so that sending it again cannot duplicate or refuse data written by an
    /// earlier, interrupted attempt. With `restore_replace` false (`--skip-existing`), RESTOREs
    /// stay as they are: a key written by the interrupted attempt then answers BUSYKEY.
    pub fn make_idempotent(&mut self, restore_replace: bool) {
        if self.keys.iter().all(|k| k.replacing) {
            return;
        }
        let old = std::mem::take(&mut self.bytes);
        let names = std::mem::take(&mut self.names);
        let mut fresh = Batch::with_context(self.id, self.db, self.select);
        for k in std::mem::take(&mut self.keys) {
            let cmds = &old[k.range.clone()];
            let key = &names[k.name.clone()];
            let mut r = Resp::default();
            let mut n = k.commands;
            match (k.replacing, k.mode) {
                (true, _) => r.buf.extend_from_slice(cmds),
                (false, KeyMode::Restore) if restore_replace && k.module => {
                    replace_atomically(&mut r, key, cmds);
                    n = 4;
                }
                (false, KeyMode::Restore) if restore_replace => {
                    r.buf.extend_from_slice(&add_replace(cmds))
                }
                (false, KeyMode::Restore) => r.buf.extend_from_slice(cmds),
                (false, KeyMode::Commands) => {
                    r.cmd(&[b"DEL", key]);
                    r.buf.extend_from_slice(cmds);
                    n += 1;
                }
            }
            fresh.push_key(key, k.mode, n, &mut r, true).module = k.module;
        }
        fresh.end_offset = self.end_offset;
        fresh.start_offset = self.start_offset;
        fresh.file = self.file;
        fresh.permit = self.permit.take();
        *self = fresh;
    }
}

impl Batch {
    /// Appends a key that a cluster node redirected: `cmds` are its commands as first encoded.
    /// `rewrite` (some of them ran on the old node) makes it idempotent, as for a re-send;
    /// `asking` (an ASK redirection) puts `ASKING` before each command, as the importing node
    /// accepts a key of a migrating slot only from a connection that just said ASKING.
    pub fn push_redirected(
        &mut self,
        k: &KeyRec,
        key: &[u8],
        cmds: &[u8],
        rewrite: bool,
        asking: bool,
        restore_replace: bool,
    ) {
        let (mut body, mut n, mut replacing) = (cmds.to_vec(), k.commands, k.replacing);
        if rewrite {
            let mut one = Batch::with_context(0, self.db, self.select);
            let mut r = Resp { buf: body };
            one.push_key(key, k.mode, k.commands, &mut r, k.replacing);
            one.make_idempotent(restore_replace);
            let kk = &one.keys[0];
            body = one.bytes[kk.range.clone()].to_vec();
            (n, replacing) = (kk.commands, kk.replacing);
        }
        if asking {
            let mut out = Vec::with_capacity(body.len() + n as usize * 20);
            for c in split_commands(&body) {
                out.extend_from_slice(b"*1\r\n$6\r\nASKING\r\n");
                out.extend_from_slice(&body[c]);
            }
            body = out;
            n *= 2;
        }
        let mut r = Resp { buf: body };
        self.push_key(key, k.mode, n, &mut r, replacing);
    }
}

/// The byte ranges of the commands in `buf` (RESP arrays of bulk strings, as the planner writes
/// them). Anything unreadable ends the list with one range covering the rest.
pub fn split_commands(buf: &[u8]) -> Vec<std::ops::Range<usize>> {
    fn header(buf: &[u8], pos: &mut usize, tag: u8) -> Option<usize> {
        if buf.get(*pos) != Some(&tag) {
            return None;
        }
        let rest = buf.get(*pos + 1..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let n = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
        *pos += 1 + end + 2;
        Some(n)
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let one = (|| {
            let args = header(buf, &mut pos, b'*')?;
            for _ in 0..args {
                let len = header(buf, &mut pos, b'$')?;
                pos = pos.checked_add(len + 2).filter(|&p| p <= buf.len())?;
            }
            Some(())
        })();
        if one.is_none() {
            out.push(start..buf.len());
            break;
        }
        out.push(start..pos);
    }
    out
}

/// Writes `restore` (one encoded RESTORE without REPLACE) so that it replaces `key` without
/// `REPLACE`: `MULTI`, `DEL key`, the RESTORE, `EXEC` (4 commands; EXEC's reply carries the
/// RESTORE's error, if any).
pub fn replace_atomically(r: &mut Resp, key: &[u8], restore: &[u8]) {
    r.cmd(&[b"MULTI"]);
    r.cmd(&[b"DEL", key]);
    r.buf.extend_from_slice(restore);
    r.cmd(&[b"EXEC"]);
}

/// Adds a `REPLACE` argument to one encoded command (`*N\r\n…` → `*N+1\r\n…$7\r\nREPLACE\r\n`).
fn add_replace(cmd: &[u8]) -> Vec<u8> {
    let end = cmd.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    let n: usize = std::str::from_utf8(cmd.get(1..end).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut out = format!("*{}\r\n", n + 1).into_bytes();
    out.extend_from_slice(cmd.get(end + 2..).unwrap_or_default());
    out.extend_from_slice(b"$7\r\nREPLACE\r\n");
    out
}

/// Most buffers kept for reuse, and their most bytes in all.
const POOL_BUFFERS: usize = 16;
const POOL_BYTES: usize = 8 << 20;

/// Buffers of acknowledged batches, reused by new ones (a new batch takes the largest).
#[derive(Default)]
pub(crate) struct BufferPool(std::sync::Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    /// A buffer for a new batch: the largest recycled one, or a new one.
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let best = (0..p.len()).max_by_key(|&i| p[i].capacity());
        best.map(|i| p.swap_remove(i)).unwrap_or_default()
    }

    /// Takes back the bytes of an acknowledged batch (when nothing else refers to them).
    pub(crate) fn recycle(&self, sent: bytes::Bytes) {
        if let Ok(m) = sent.try_into_mut() {
            let v: Vec<u8> = m.into();
            let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let held: usize = p.iter().map(Vec::capacity).sum();
            if p.len() < POOL_BUFFERS && held + v.capacity() <= POOL_BYTES {
                p.push(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_waits_for_room_and_lets_one_oversized_batch_through() {
        // as in the importer: a multi-thread runtime drives the timers on its own workers (a
        // current-thread one would need its `block_on` to run)
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let h = rt.handle().clone();
        let b = MemoryBudget::new(100);
        let p1 = b.acquire(&h, 60, || false).unwrap();
        let p2 = b.acquire(&h, 40, || false).unwrap();
        assert_eq!(b.used(), 100);
        // no room and told to stop: gives up instead of waiting
        assert!(b.acquire(&h, 1, || true).is_none());
        let (b2, h2) = (b.clone(), h.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(()).unwrap();
            b2.acquire(&h2, 500, || false).map(|p| p.bytes())
        });
        // the waiter has started: it cannot finish while anything is held
        rx.recv().unwrap();
        drop(p1);
        // its sender is dropped only when it ends: a timeout means it is still waiting
        assert!(
            matches!(
                rx.recv_timeout(Duration::from_millis(300)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            ),
            "an oversized batch waits until nothing is held"
        );
        drop(p2);
        assert_eq!(t.join().unwrap(), Some(500));
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn redirected_keys_gain_asking_and_idempotence() {
        let mut src = Batch::with_context(1, 0, false);
        let mut r = Resp::default();
        r.cmd(&[b"RPUSH", b"k", b"a"]);
        r.cmd(&[b"RPUSH", b"k", b"b"]);
        src.push_key(b"k", KeyMode::Commands, 2, &mut r, false);
        let k = src.keys[0].clone();
        let cmds = src.bytes[k.range.clone()].to_vec();
        let mut b = Batch::with_context(2, 0, false);
        b.push_redirected(&k, b"k", &cmds, true, true, true);
        let mut want = Resp::default();
        want.cmd(&[b"PING"]);
        for c in [
            &[&b"DEL"[..], b"k"][..],
            &[b"RPUSH", b"k", b"a"],
            &[b"RPUSH", b"k", b"b"],
        ] {
            want.cmd(&[b"ASKING"]);
            want.cmd(c);
        }
        assert_eq!(
            String::from_utf8_lossy(&b.bytes),
            String::from_utf8_lossy(&want.buf)
        );
        assert_eq!((b.commands, b.keys[0].commands), (7, 6));
        // MOVED, nothing ran: the same commands, nothing added
        let mut b = Batch::with_context(3, 0, false);
        b.push_redirected(&k, b"k", &cmds, false, false, true);
        assert_eq!(&b.bytes[b.keys[0].range.clone()], &cmds[..]);
    }

    #[test]
    fn resend_adds_replace_and_del() {
        let mut b = Batch::new(7, 3);
        let mut r = Resp::default();
        r.cmd(&[b"RESTORE", b"k1", b"0", b"payload"]);
        b.push_key(b"k1", KeyMode::Restore, 1, &mut r, false);
        r.cmd(&[b"RPUSH", b"k2", b"a"]);
        r.cmd(&[b"RPUSH", b"k2", b"b"]);
        b.push_key(b"k2", KeyMode::Commands, 2, &mut r, false);
        b.end_offset = 99;
        b.make_idempotent(true);
        let mut want = Resp::default();
        want.cmd(&[b"SELECT", b"3"]);
        want.cmd(&[b"RESTORE", b"k1", b"0", b"payload", b"REPLACE"]);
        want.cmd(&[b"DEL", b"k2"]);
        want.cmd(&[b"RPUSH", b"k2", b"a"]);
        want.cmd(&[b"RPUSH", b"k2", b"b"]);
        assert_eq!(
            String::from_utf8_lossy(&b.bytes),
            String::from_utf8_lossy(&want.buf)
        );
        assert_eq!(b.commands, 5);
        assert_eq!(b.end_offset, 99);
        assert_eq!(split_commands(&b.bytes).len(), 5);
        // a second re-send changes nothing
        let before = b.bytes.clone();
        b.make_idempotent(true);
        assert_eq!(b.bytes, before);
    }
}
