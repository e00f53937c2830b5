//! A byte queue between a network reader and a slower consumer: memory up to a cap, then a file.
//!
//! A primary disconnects a replica whose output buffer outgrows `client-output-buffer-limit
//! replica` (256 MB hard, 64 MB for 60 s by default). The replication source therefore reads the
//! socket at the network's pace whatever the importer's pace, and parks what the importer has not
//! taken yet here: in memory up to `mem_cap` bytes, then in an unlinked temporary file, which is
//! emptied again once the consumer has caught up. Order is kept: while the file holds unread
//! bytes, new bytes go to the file too.
//!
//! Both sides are plain threads (the consumer is a decoder or a command parser, never an async
//! task): the consumer waits on a condition variable that every push, mark and close wakes.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// See the module documentation.
#[derive(Debug)]
pub struct Spool {
    state: Mutex<State>,
    wake: Condvar,
    mem_cap: usize,
    dir: PathBuf,
}

#[derive(Debug, Default)]
struct State {
    mem: VecDeque<Vec<u8>>,
    /// Bytes of `mem[0]` already read.
    front_read: usize,
    mem_bytes: usize,
    file: Option<Spill>,
    /// Bytes pushed and read since the start.
    pushed: u64,
    taken: u64,
    /// Where a consumer reading up to a mark must stop (the end of the snapshot).
    mark: Option<u64>,
    /// `Some` once the writer is done: `Ok` for a clean end, `Err` with the reason otherwise.
    closed: Option<Result<(), String>>,
    /// Most bytes ever held in the file at once (for the summary and the tests).
    peak_spilled: u64,
}

#[derive(Debug)]
struct Spill {
    w: File,
    r: File,
    unread: u64,
}

impl Spool {
    /// A spool that holds up to `mem_cap` bytes in memory and spills the rest into a temporary
    /// file in `dir` (unlinked at once, so nothing stays behind whatever happens).
    pub fn new(mem_cap: usize, dir: &Path) -> Spool {
        Spool {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            mem_cap: mem_cap.max(1),
            dir: dir.to_path_buf(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `data`. Fails only when the spill file cannot be written (a full disk).
    pub fn push(&self, data: Vec<u8>) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut s = self.lock();
        let to_file = s.file.as_ref().is_some_and(|f| f.unread > 0)
            || s.mem_bytes + data.len() > self.mem_cap;
        if to_file {
            if s.file.is_none() {
                s.file = Some(self.open_spill()?);
            }
            let f = s.file.as_mut().expect("opened above");
            f.w.write_all(&data)?;
            f.unread += data.len() as u64;
            let unread = f.unread;
            s.peak_spilled = s.peak_spilled.max(unread);
        } else {
            s.mem_bytes += data.len();
        }
        s.pushed += data.len() as u64;
        if !to_file {
            s.mem.push_back(data);
        }
        drop(s);
        self.wake.notify_all();
        Ok(())
    }

    fn open_spill(&self) -> io::Result<Spill> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self
            .dir
            .join(format!("rdbkit-spool-{}-{n}", std::process::id()));
        let w = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let r = File::open(&path);
        // unlinked at once: the open handles keep the data, nothing is left behind on a crash
        let _ = std::fs::remove_file(&path);
        Ok(Spill {
            w,
            r: r?,
            unread: 0,
        })
    }

    /// Marks the current end: a reader with `upto_mark` stops there.
    pub fn mark(&self) {
        let mut s = self.lock();
        s.mark = Some(s.pushed);
        drop(s);
        self.wake.notify_all();
    }

    /// Ends the queue: readers get the rest, then end of input (`Ok`) or the error.
    pub fn close(&self, result: Result<(), String>) {
        let mut s = self.lock();
        if s.closed.is_none() {
            s.closed = Some(result);
        }
        drop(s);
        self.wake.notify_all();
    }

    /// Bytes pushed and not read yet.
    pub fn backlog(&self) -> u64 {
        let s = self.lock();
        s.pushed - s.taken
    }

    /// The most bytes the spill file held at once.
    pub fn peak_spilled(&self) -> u64 {
        self.lock().peak_spilled
    }

    /// Reads into `buf`, waiting for bytes. With `upto_mark`, stops at the mark (0 = the mark is
    /// reached). `idle` bounds each wait: when nothing arrives for that long, the read fails (the
    /// writer has its own deadline and closes the queue first; this one only guards against a
    /// writer that died without closing).
    pub fn read(&self, buf: &mut [u8], upto_mark: bool, idle: Duration) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut s = self.lock();
        loop {
            let limit = match (upto_mark, s.mark) {
                (true, Some(m)) => (m - s.taken).min(buf.len() as u64) as usize,
                _ => buf.len(),
            };
            if limit == 0 {
                return Ok(0);
            }
            if let Some(front) = s.mem.front() {
                let avail = &front[s.front_read..];
                let n = avail.len().min(limit);
                buf[..n].copy_from_slice(&avail[..n]);
                s.front_read += n;
                if s.front_read == s.mem[0].len() {
                    s.mem.pop_front();
                    s.front_read = 0;
                }
                s.mem_bytes -= n;
                s.taken += n as u64;
                return Ok(n);
            }
            if let Some(f) = s.file.as_mut().filter(|f| f.unread > 0) {
                let want = (limit as u64).min(f.unread) as usize;
                let n = f.r.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the spill file ended before its recorded length",
                    ));
                }
                f.unread -= n as u64;
                if f.unread == 0 {
                    // caught up: empty the file so its disk space comes back
                    f.w.set_len(0)?;
                    f.w.seek(SeekFrom::Start(0))?;
                    f.r.seek(SeekFrom::Start(0))?;
                }
                s.taken += n as u64;
                return Ok(n);
            }
            match &s.closed {
                Some(Ok(())) => return Ok(0),
                Some(Err(e)) => return Err(io::Error::other(e.clone())),
                None => {}
            }
            let (g, timeout) = self
                .wake
                .wait_timeout(s, idle)
                .unwrap_or_else(|e| e.into_inner());
            s = g;
            if timeout.timed_out() && s.pushed == s.taken && s.closed.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no bytes from the source for {idle:?}"),
                ));
            }
        }
    }
}

/// A [`Read`] over a shared spool: up to the mark (the snapshot) or to the end (the stream).
#[derive(Debug, Clone)]
pub struct SpoolReader {
    spool: std::sync::Arc<Spool>,
    upto_mark: bool,
    idle: Duration,
}

impl SpoolReader {
    /// A reader of `spool`; with `upto_mark` it ends at the mark.
    pub fn new(spool: std::sync::Arc<Spool>, upto_mark: bool, idle: Duration) -> Self {
        SpoolReader {
            spool,
            upto_mark,
            idle,
        }
    }
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.spool.read(buf, self.upto_mark, self.idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn order_is_kept_across_memory_and_file_many_times_the_cap() {
        let dir = std::env::temp_dir();
        let spool = Arc::new(Spool::new(1000, &dir));
        let w = spool.clone();
        let writer = std::thread::spawn(move || {
            for i in 0u32..20_000 {
                w.push(i.to_le_bytes().to_vec()).unwrap();
                if i == 10_000 {
                    w.mark();
                }
            }
            w.close(Ok(()));
        });
        let mut first = Vec::new();
        SpoolReader::new(spool.clone(), true, Duration::from_secs(10))
            .read_to_end(&mut first)
            .unwrap();
        let mut rest = Vec::new();
        SpoolReader::new(spool.clone(), false, Duration::from_secs(10))
            .read_to_end(&mut rest)
            .unwrap();
        writer.join().unwrap();
        assert_eq!(first.len(), 10_001 * 4);
        let all: Vec<u32> = [first, rest]
            .concat()
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(all, (0..20_000).collect::<Vec<_>>());
        // a reader that started only after the writer: everything beyond 1000 bytes spilled
        let late = Spool::new(1000, &dir);
        for i in 0u32..5000 {
            late.push(i.to_le_bytes().to_vec()).unwrap();
        }
        assert_eq!(late.peak_spilled(), 20_000 - 1000);
    }

    #[test]
    fn an_error_reaches_the_reader_after_the_bytes_before_it() {
        let spool = Arc::new(Spool::new(1 << 20, &std::env::temp_dir()));
        spool.push(b"abc".to_vec()).unwrap();
        spool.close(Err("the source closed the connection".into()));
        let mut r = SpoolReader::new(spool, false, Duration::from_secs(1));
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        let e = r.read(&mut buf).unwrap_err();
        assert!(e.to_string().contains("closed the connection"), "{e}");
    }

    #[test]
    fn a_silent_writer_is_a_timeout_not_a_hang() {
        let spool = Arc::new(Spool::new(16, &std::env::temp_dir()));
        let mut r = SpoolReader::new(spool, false, Duration::from_millis(50));
        let e = r.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
