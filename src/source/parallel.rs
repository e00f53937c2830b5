//! The parallel engine: a mapped dump cut into regions that worker threads decode at once (each
//! region finds its first record boundary), merged back in file order for any [`ChunkWorker`].

use super::Input;
use crate::crc::{crc64, crc64_combine};
use crate::decode::{check_trailer, Decoder, State};
use crate::error::{DecodeError, Result};
use crate::model::{Checksum, Item, Producer};

/// Consecutive items of a dump handed to [`ChunkWorker::work`] in one call.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'c, 'a> {
    /// The items in file order, each with the input position just after it.
    pub items: &'c [(Item<'a>, u64)],
    /// The dump's RDB version once the header was read (a chunk need not hold the header).
    pub version: Option<u32>,
}

/// How [`Input::decode_chunks`] runs.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOptions {
    /// Verify the CRC64 trailer.
    pub verify_checksum: bool,
    /// Worker threads for mapped input; 0 or 1 works in the calling thread. Streamed input is
    /// always worked on in the calling thread.
    pub threads: usize,
    /// Input bytes per chunk (at least one item per chunk). Outputs are merged after about this
    /// much input in every mode.
    pub chunk_bytes: u64,
    /// How far past the records merged so far chunks are handed out, in input bytes: bounds the
    /// outputs held for ordering (to the output of this much input, plus the record that
    /// straddles its end). A deeper queue helps a little when a chunk's output is small (`info`'s
    /// counters), not when it is formatted text.
    pub in_flight_bytes: u64,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            verify_checksum: true,
            threads: default_threads(),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            in_flight_bytes: DEFAULT_IN_FLIGHT_BYTES,
        }
    }
}

/// Input bytes per chunk by default: big enough that handing a chunk to a thread costs nothing
/// next to decoding it, small enough that two workers stay busy until the end of a dump.
pub const DEFAULT_CHUNK_BYTES: u64 = 256 << 10;

/// [`ChunkOptions::in_flight_bytes`] by default: bounds formatted output held for ordering to a
/// few MiB.
pub const DEFAULT_IN_FLIGHT_BYTES: u64 = 8 << 20;

/// The number of threads the machine offers (1 when unknown).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Per-chunk work of [`Input::decode_chunks`]: decoding values and formatting output, done on
/// worker threads, with results merged in file order on the calling thread.
pub trait ChunkWorker: Sync {
    /// Per worker thread scratch (buffers reused across chunks).
    type State;
    /// The result of working on one or more chunks; reused after [`Input::decode_chunks`]'s merge
    /// function drained it.
    type Out: Send;
    /// The error type.
    type Error: From<DecodeError> + Send;
    /// A fresh per-thread state.
    fn state(&self) -> Self::State;
    /// A fresh, empty output.
    fn output(&self) -> Self::Out;
    /// Works on `chunk`, appending to `out`. On error, `out` must hold the results of the items
    /// before the failing one: it is merged before the error is returned.
    fn work(
        &self,
        state: &mut Self::State,
        chunk: Chunk<'_, '_>,
        out: &mut Self::Out,
    ) -> std::result::Result<(), Self::Error>;
}

impl Input {
    /// Decodes the input in chunks of consecutive items: `worker` works on each chunk (on
    /// `opts.threads` threads for mapped input) and `merge` receives the outputs in file order, on
    /// the calling thread; it must drain the output it is given (the output is reused).
    ///
    /// The result is the same as a sequential decode: the first error in file order wins (a value
    /// error in a chunk before a framing error, or the framing error), and every output before the
    /// error, including the failing chunk's partial output, is merged before it is returned.
    ///
    /// ```
    /// use rdbkit::source::{Chunk, ChunkOptions, ChunkWorker, Input};
    /// use rdbkit::{DecodeError, Item};
    /// struct CountElements;
    /// impl ChunkWorker for CountElements {
    ///     type State = Vec<u8>;
    ///     type Out = usize;
    ///     type Error = DecodeError;
    ///     fn state(&self) -> Vec<u8> { Vec::new() }
    ///     fn output(&self) -> usize { 0 }
    ///     fn work(&self, scratch: &mut Vec<u8>, c: Chunk<'_, '_>, n: &mut usize) -> Result<(), DecodeError> {
    ///         for (item, _) in c.items {
    ///             if let Item::Entry(e) = item { *n += e.value_in(scratch)?.len() }
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// let input = Input::Bytes(rdbkit::testing::tiny_dump());
    /// let mut total = 0;
    /// let opts = ChunkOptions { threads: 2, ..Default::default() };
    /// input.decode_chunks(opts, &CountElements, |n: &mut usize| {
    ///     total += std::mem::take(n);
    ///     Ok::<(), DecodeError>(())
    /// })?;
    /// assert_eq!(total, 1);
    /// # Ok::<(), DecodeError>(())
    /// ```
    pub fn decode_chunks<W: ChunkWorker>(
        self,
        opts: ChunkOptions,
        worker: &W,
        merge: impl FnMut(&mut W::Out) -> std::result::Result<(), W::Error>,
    ) -> std::result::Result<Producer, W::Error> {
        match self {
            Input::Mapped(m) if opts.threads > 1 => parallel(&m, opts, worker, merge),
            Input::Bytes(b) if opts.threads > 1 => parallel(&b, opts, worker, merge),
            other => sequential(other, opts, worker, merge),
        }
    }
}

/// [`Input::decode_chunks`] in the calling thread: items are worked on one at a time as they are
/// decoded (streamed input cannot hold several), outputs merged after every `chunk_bytes`.
fn sequential<W: ChunkWorker>(
    input: Input,
    opts: ChunkOptions,
    worker: &W,
    mut merge: impl FnMut(&mut W::Out) -> std::result::Result<(), W::Error>,
) -> std::result::Result<Producer, W::Error> {
    let mut state = worker.state();
    let mut out = worker.output();
    let mut version = None;
    let mut merged_at = 0u64;
    // set when the callback returned an error: the decode stopped there, nothing is left to merge
    let mut stopped = false;
    let res = input.decode(opts.verify_checksum, |item, pos| {
        if let Item::Header { version: v, .. } = item {
            version = Some(v);
        }
        let items = [(item, pos)];
        let chunk = Chunk {
            items: &items,
            version,
        };
        stopped = true;
        if let Err(e) = worker.work(&mut state, chunk, &mut out) {
            merge(&mut out)?;
            return Err(e);
        }
        if pos - merged_at >= opts.chunk_bytes {
            merge(&mut out)?;
            merged_at = pos;
        }
        stopped = false;
        Ok(())
    });
    if !stopped {
        // what was worked on before the end (or before a framing error) still goes out
        merge(&mut out)?;
    }
    res
}

/// Where the records of a region begin.
enum Start {
    /// Known: the first region, and regions read again on the merging thread.
    At(usize, State),
    /// Where the worker of the region before stopped reading, handed over through the
    /// [`Frontier`].
    HandedOver,
}

/// A region on its way to a worker.
struct Job<O> {
    seq: u64,
    /// The bytes `start..end`: the worker hashes them, and reads the records that begin in them
    /// (the last one may end past `end`).
    region: (usize, usize),
    start: Start,
    out: O,
}

/// What reading the records of a region found.
struct RegionRead {
    /// Where the records read began and the decoder state there; `None` when the region before
    /// could not hand over (it ended in an error or at the `Eof`, or the decode was cancelled).
    began: Option<(usize, State)>,
    /// Position and state after the last record read.
    ended: (usize, State),
    /// An `Eof` read (its checksum unresolved): its offset and the position after it.
    eof: Option<(Checksum, u64, u64)>,
}

/// A region worked on.
struct Done<O, E> {
    seq: u64,
    out: O,
    /// CRC64 of the region's bytes before the trailer (when verifying), joined in file order.
    crc: u64,
    read: RegionRead,
    result: std::thread::Result<std::result::Result<(), E>>,
}

/// Where each region's records begin, handed from the worker of the region before once it has
/// read its records (before working on them). Records can only be found by reading from the
/// start, so the reading is a chain through the regions; it is the cheap part (a region's worker
/// hashes its bytes while it waits, and works on its items after handing over), so the work of
/// consecutive regions overlaps.
#[derive(Default)]
struct Frontier {
    /// Region number → where its records begin (`None`: the region before ended in an error or
    /// at the `Eof`, or was cancelled).
    slots: std::sync::Mutex<std::collections::HashMap<u64, Option<(usize, State)>>>,
    published: std::sync::Condvar,
    cancelled: std::sync::atomic::AtomicBool,
}

impl Frontier {
    fn publish(&self, seq: u64, start: Option<(usize, State)>) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(seq, start);
        }
        self.published.notify_all();
    }

    /// Waits for the start of region `seq` (`None` if the region before cannot give it).
    fn wait(&self, seq: u64) -> Option<(usize, State)> {
        let mut slots = self.slots.lock().ok()?;
        loop {
            if let Some(start) = slots.remove(&seq) {
                return start;
            }
            if self.cancelled.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            slots = self.published.wait(slots).ok()?;
        }
    }

    fn cancel(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _lock = self.slots.lock();
        self.published.notify_all();
    }
}

/// Reads the records that begin in `region`, from `start` (known, or waited for from
/// `frontier`), appending them to `items`. Stops at an `Eof` (reported, not appended) or at the
/// first error (returned).
fn read_region<'a>(
    data: &'a [u8],
    region: (usize, usize),
    start: Start,
    frontier: Option<(&Frontier, u64)>,
    items: &mut Vec<(Item<'a>, u64)>,
) -> (RegionRead, Result<()>) {
    let (pos, state) = match start {
        Start::At(pos, state) => (pos, state),
        Start::HandedOver => match frontier.and_then(|(f, seq)| f.wait(seq)) {
            Some(start) => start,
            None => {
                let read = RegionRead {
                    began: None,
                    ended: (region.0, State::default()),
                    eof: None,
                };
                return (read, Ok(()));
            }
        },
    };
    let began = Some((pos, state.clone()));
    let mut d = Decoder::resume(data, pos, state);
    let (mut eof, mut res) = (None, Ok(()));
    while (d.position() as usize) < region.1 {
        match d.next_item() {
            Ok(Some(Item::Eof { checksum, offset })) => {
                eof = Some((checksum, offset, d.position()));
                break;
            }
            Ok(Some(item)) => items.push((item, d.position())),
            Ok(None) => break,
            Err(e) => {
                res = Err(e);
                break;
            }
        }
    }
    let read = RegionRead {
        began,
        ended: (d.position() as usize, d.state().clone()),
        eof,
    };
    (read, res)
}

/// Reads a region's records and works on them; the items read before a read error are worked on,
/// then the error stands.
fn work_region<'a, W: ChunkWorker>(
    data: &'a [u8],
    worker: &W,
    state: &mut W::State,
    items: &mut Vec<(Item<'a>, u64)>,
    (region, start): ((usize, usize), Start),
    frontier: Option<(&Frontier, u64)>,
    out: &mut W::Out,
) -> (RegionRead, std::result::Result<(), W::Error>) {
    items.clear();
    let (read, res) = read_region(data, region, start, frontier, items);
    if let Some((f, seq)) = frontier {
        let next =
            (res.is_ok() && read.eof.is_none() && read.began.is_some()).then(|| read.ended.clone());
        f.publish(seq + 1, next);
    }
    let chunk = Chunk {
        items,
        version: read.ended.1.version(),
    };
    let worked = worker.work(state, chunk, out);
    items.clear();
    (read, worked.and(res.map_err(W::Error::from)))
}

/// A worker of [`parallel`]: hashes each job's region, reads its records and works on them.
fn work_jobs<W: ChunkWorker>(
    data: &[u8],
    worker: &W,
    verify: bool,
    jobs: &std::sync::Mutex<std::sync::mpsc::Receiver<Job<W::Out>>>,
    done: std::sync::mpsc::Sender<Done<W::Out, W::Error>>,
    cancelled: &std::sync::atomic::AtomicBool,
    frontier: &Frontier,
) {
    let mut state = worker.state();
    let mut items = Vec::new();
    let hashed_end = data.len().saturating_sub(8);
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        let Ok(mut job) = job else { break };
        let mut crc = 0;
        let mut read = RegionRead {
            began: None,
            ended: (job.region.0, State::default()),
            eof: None,
        };
        let result = if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
            frontier.publish(job.seq + 1, None);
            Ok(Ok(()))
        } else {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // first, while the region before is read: no wait on anything
                if verify {
                    let (a, b) = (job.region.0.min(hashed_end), job.region.1.min(hashed_end));
                    crc = crc64(0, data.get(a..b).unwrap_or_default());
                }
                let (r, res) = work_region(
                    data,
                    worker,
                    &mut state,
                    &mut items,
                    (job.region, job.start),
                    Some((frontier, job.seq)),
                    &mut job.out,
                );
                read = r;
                res
            }))
        };
        if result.is_err() {
            // a panic may have come before the hand-over: let the next region's worker go on
            frontier.publish(job.seq + 1, None);
        }
        let finished = Done {
            seq: job.seq,
            out: job.out,
            crc,
            read,
            result,
        };
        if done.send(finished).is_err() {
            break;
        }
    }
}

/// A region handed out, and its result once worked on.
type Waiting<W> = (
    (usize, usize),
    Option<Done<<W as ChunkWorker>::Out, <W as ChunkWorker>::Error>>,
);

/// The merging side of [`parallel`]: hands regions to the workers, and merges their outputs in
/// file order after checking that each region's records began where the previous region's
/// ended, in the same state.
struct Merger<'a, 'c, W: ChunkWorker, M> {
    data: &'a [u8],
    worker: &'c W,
    merge: M,
    jobs: &'c std::sync::mpsc::SyncSender<Job<W::Out>>,
    done: &'c std::sync::mpsc::Receiver<Done<W::Out, W::Error>>,
    verify: bool,
    max_in_flight: usize,
    /// How far past `ended` regions are handed out, in bytes.
    max_ahead: usize,
    seq: u64,
    /// Regions from `next` on, in order, and their results once worked on.
    waiting: std::collections::VecDeque<Waiting<W>>,
    next: u64,
    /// CRC64 of every region merged so far: of the input up to `hashed_to`.
    crc: u64,
    hashed_to: usize,
    /// Where the records of the regions merged so far ended, and the decoder state there.
    ended: (usize, State),
    /// The resolved `Eof` was merged: later regions (bytes after the trailer) are dropped.
    finished: bool,
    /// For regions read again on this thread.
    state: Option<W::State>,
    items: Vec<(Item<'a>, u64)>,
    /// Drained outputs for reuse, at most `keep_outs`.
    outs: Vec<W::Out>,
    keep_outs: usize,
}

impl<'a, W, M> Merger<'a, '_, W, M>
where
    W: ChunkWorker,
    M: FnMut(&mut W::Out) -> std::result::Result<(), W::Error>,
{
    /// Hands a region to a worker, once there is room in flight. Room is counted from where the
    /// merged records end, not in regions: a region's output covers the records that begin in
    /// it, however far they reach (one 1 MiB value, one region).
    fn send(&mut self, region: (usize, usize)) -> std::result::Result<(), W::Error> {
        while !self.waiting.is_empty()
            && (self.waiting.len() >= self.max_in_flight
                || region.1 > self.ended.0.saturating_add(self.max_ahead))
        {
            self.receive_one()?;
        }
        let start = if self.seq == 0 {
            Start::At(0, State::default())
        } else {
            Start::HandedOver
        };
        let job = Job {
            seq: self.seq,
            region,
            start,
            out: self.outs.pop().unwrap_or_else(|| self.worker.output()),
        };
        self.seq += 1;
        self.waiting.push_back((region, None));
        // never blocks: the channel has room for every region in flight
        self.jobs.send(job).expect("chunk workers ended early");
        Ok(())
    }

    /// Keeps a drained output for reuse, a few at most: an output keeps the capacity of the
    /// largest region it held, and a pool as deep as the queue would keep that many times the
    /// largest output (measured: 115 MiB for `export` of D2, against 30 MiB).
    fn recycle(&mut self, out: W::Out) {
        if self.outs.len() < self.keep_outs {
            self.outs.push(out);
        }
    }

    /// Merges every region handed out.
    fn finish(&mut self) -> std::result::Result<(), W::Error> {
        while !self.waiting.is_empty() {
            self.receive_one()?;
        }
        if !self.finished {
            // the records ended without an `Eof`: read on from there to report why
            let end = self.data.len() + 1;
            let start = Start::At(self.ended.0, self.ended.1.clone());
            let out = self.worker.output();
            self.local((self.ended.0, end), start, out)?;
        }
        Ok(())
    }

    /// Stores the next finished region and merges every region that is now next in order.
    fn receive_one(&mut self) -> std::result::Result<(), W::Error> {
        let done = self.done.recv().expect("chunk workers ended early");
        if let Some(w) = self.waiting.get_mut((done.seq - self.next) as usize) {
            w.1 = Some(done);
        }
        while self.waiting.front().is_some_and(|w| w.1.is_some()) {
            let Some((region, Some(done))) = self.waiting.pop_front() else {
                break;
            };
            self.next += 1;
            let hashed_end = self.data.len().saturating_sub(8);
            let hashed = region
                .1
                .min(hashed_end)
                .saturating_sub(region.0.min(hashed_end));
            self.crc = crc64_combine(self.crc, done.crc, hashed as u64);
            self.hashed_to = region.1.min(hashed_end);
            self.settle(region, done)?;
        }
        Ok(())
    }

    /// Merges a region whose records began where the last merged ones ended; reads it again here
    /// otherwise.
    fn settle(
        &mut self,
        region: (usize, usize),
        mut done: Done<W::Out, W::Error>,
    ) -> std::result::Result<(), W::Error> {
        let result = match done.result {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        if self.finished {
            return Ok(());
        }
        let right = done
            .read
            .began
            .as_ref()
            .is_some_and(|(p, s)| *p == self.ended.0 && *s == self.ended.1);
        if right {
            (self.merge)(&mut done.out)?;
            result?;
            self.recycle(done.out);
            self.ended = done.read.ended;
            if let Some(eof) = done.read.eof {
                self.merge_eof(eof)?;
            }
            return Ok(());
        }
        // A worker reads from where the region before it stopped, so this is not reached unless
        // that worker failed (its error was returned above) or panicked. Rather than trust it,
        // drop the output and read the region again here.
        drop(done.out);
        if self.ended.0 >= region.1 {
            return Ok(());
        }
        let start = Start::At(self.ended.0, self.ended.1.clone());
        let out = self.worker.output();
        self.local(region, start, out)
    }

    /// Reads and works on a region on this thread, and merges it.
    fn local(
        &mut self,
        region: (usize, usize),
        start: Start,
        mut out: W::Out,
    ) -> std::result::Result<(), W::Error> {
        let state = self.state.get_or_insert_with(|| self.worker.state());
        let (read, result) = work_region(
            self.data,
            self.worker,
            state,
            &mut self.items,
            (region, start),
            None,
            &mut out,
        );
        (self.merge)(&mut out)?;
        result?;
        self.recycle(out);
        self.ended = read.ended;
        if let Some(eof) = read.eof {
            self.merge_eof(eof)?;
        }
        Ok(())
    }

    /// Resolves the checksum of the `Eof` and merges it, worked on like any item.
    fn merge_eof(
        &mut self,
        (checksum, offset, after): (Checksum, u64, u64),
    ) -> std::result::Result<(), W::Error> {
        self.finished = true;
        let body_end = offset as usize + 1;
        let data = self.data;
        // the regions merged so far cover the bytes before the trailer when the dump ends with it;
        // otherwise (bytes after the trailer) hash here
        let (crc, hashed_to) = (self.crc, self.hashed_to);
        let checksum = check_trailer(checksum, self.verify, offset + 1, || {
            if hashed_to == body_end {
                crc
            } else {
                crc64(0, data.get(..body_end).unwrap_or_default())
            }
        })
        .map_err(|e| e.with_producer(Some(&self.ended.1.producer().to_string())))?;
        let state = self.state.get_or_insert_with(|| self.worker.state());
        let items = [(Item::Eof { checksum, offset }, after)];
        let chunk = Chunk {
            items: &items,
            version: self.ended.1.version(),
        };
        let mut out = self.outs.pop().unwrap_or_else(|| self.worker.output());
        let worked = self.worker.work(state, chunk, &mut out);
        (self.merge)(&mut out)?;
        worked?;
        self.recycle(out);
        Ok(())
    }
}

/// [`Input::decode_chunks`] on worker threads. The input is cut into regions of `chunk_bytes`.
/// A worker hashes its region (CRC64), then reads the records that begin in it, from where the
/// worker of the region before stopped (the [`Frontier`]: the decoder state is handed over with
/// the position), hands over where it stopped, and works on its items while the next region is
/// read. The items stay on the core that decoded them; nothing is read twice. This thread merges
/// the outputs and joins the hashes in file order, checking that each region's records began
/// where the previous region's ended, in the same state. At most
/// [`ChunkOptions::in_flight_bytes`] of input are in flight.
fn parallel<W: ChunkWorker>(
    data: &[u8],
    opts: ChunkOptions,
    worker: &W,
    merge: impl FnMut(&mut W::Out) -> std::result::Result<(), W::Error>,
) -> std::result::Result<Producer, W::Error> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Mutex};

    let chunk = opts.chunk_bytes.clamp(1, usize::MAX as u64) as usize;
    // regions in flight: as many as the byte budget holds, and at least a few per thread
    let max_in_flight =
        (opts.in_flight_bytes / chunk as u64).clamp(opts.threads as u64 * 4, 1024) as usize;
    let (job_tx, job_rx) = mpsc::sync_channel::<Job<W::Out>>(max_in_flight);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done<W::Out, W::Error>>();
    let cancelled = AtomicBool::new(false);
    let frontier = Frontier::default();
    let verify = opts.verify_checksum;
    std::thread::scope(|scope| {
        for _ in 0..opts.threads {
            let (job_rx, done_tx, cancelled, frontier) =
                (&job_rx, done_tx.clone(), &cancelled, &frontier);
            scope.spawn(move || {
                work_jobs(data, worker, verify, job_rx, done_tx, cancelled, frontier)
            });
        }
        drop(done_tx);

        let mut merger = Merger {
            data,
            worker,
            merge,
            jobs: &job_tx,
            done: &done_rx,
            verify,
            max_in_flight,
            max_ahead: opts.in_flight_bytes.try_into().unwrap_or(usize::MAX),
            seq: 0,
            waiting: Default::default(),
            next: 0,
            crc: 0,
            hashed_to: 0,
            ended: (0, State::default()),
            finished: false,
            state: None,
            items: Vec::new(),
            outs: Vec::new(),
            keep_outs: opts.threads,
        };
        let mut run = || -> std::result::Result<(), W::Error> {
            let mut at = 0;
            while at < data.len() && !merger.finished {
                let end = at.saturating_add(chunk).min(data.len());
                merger.send((at, end))?;
                at = end;
            }
            merger.finish()
        };
        // a worker's panic is re-raised by the merger: stop the workers before passing it on,
        // or the scope would wait for them forever
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut run));
        cancelled.store(true, Ordering::Relaxed);
        frontier.cancel();
        let producer = merger.ended.1.producer();
        drop(merger);
        drop(job_tx);
        match res {
            Ok(res) => res?,
            Err(panic) => std::panic::resume_unwind(panic),
        }
        Ok(producer)
    })
}
