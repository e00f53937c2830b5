//! Where dumps come from: memory-mapped files, or any `Read` (stdin, gzip) decoded as a stream with
//! bounded memory.
//!
//! Mapped input is decoded in place by [`Decoder`]. Streamed input goes through [`StreamDecoder`],
//! which keeps a window of the input: it parses a record from the window and, when the record is
//! incomplete, reads more (doubling the request so a huge value costs O(log n) retries) and tries
//! again. Consumed bytes are hashed for the CRC64 check and dropped, so memory stays at the window
//! size plus the largest single record.

use crate::decode::cursor::Cursor;
use crate::decode::{check_trailer, crc64, crc64_combine, parse_item, Decoder, State};
use crate::error::{DecodeError, Result};
use crate::model::{Item, Producer};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Bytes requested from a stream at a time.
const READ_CHUNK: usize = 1 << 20;

/// Decodes a dump from a `Read`, holding only a bounded window of it in memory.
///
/// ```
/// use rdbkit::{source::StreamDecoder, Item};
/// let dump = rdbkit::testing::tiny_dump();
/// let mut dec = StreamDecoder::new(&dump[..]);
/// let mut keys = 0;
/// while let Some(item) = dec.next_item()? {
///     if let Item::Entry(_) = item { keys += 1 }
/// }
/// assert_eq!(keys, 1);
/// # Ok::<(), rdbkit::DecodeError>(())
/// ```
pub struct StreamDecoder<R> {
    reader: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed by returned items.
    start: usize,
    /// Absolute offset of `buf[0]`.
    base: u64,
    /// CRC64 of everything before `buf[0]`.
    crc: u64,
    input_done: bool,
    state: State,
    verify: bool,
    failed: bool,
}

impl<R> std::fmt::Debug for StreamDecoder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("position", &(self.base + self.start as u64))
            .finish()
    }
}

impl<R: Read> StreamDecoder<R> {
    /// A decoder reading from `reader`.
    pub fn new(reader: R) -> Self {
        StreamDecoder {
            reader,
            buf: Vec::new(),
            start: 0,
            base: 0,
            crc: 0,
            input_done: false,
            state: State::default(),
            verify: true,
            failed: false,
        }
    }

    /// Turns CRC64 verification on (default) or off.
    pub fn verify_checksum(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Who wrote the dump, as far as the items read so far tell.
    pub fn producer(&self) -> Producer {
        self.state.producer()
    }

    /// RDB version once the header was read.
    pub fn version(&self) -> Option<u32> {
        self.state.version()
    }

    /// Drops consumed bytes (hashing them) so the window only holds unread input.
    fn compact(&mut self) {
        if self.start > 0 {
            self.crc = crc64(self.crc, &self.buf[..self.start]);
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.start = 0;
        }
    }

    /// Reads at least `want` more bytes unless the input ends.
    fn fill(&mut self, want: usize) -> Result<()> {
        let target = self.buf.len() + want;
        while self.buf.len() < target {
            let old = self.buf.len();
            self.buf.resize(target, 0);
            let n = loop {
                match self.reader.read(&mut self.buf[old..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(old);
                        return Err(DecodeError::io(self.base + old as u64, e));
                    }
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                self.input_done = true;
                break;
            }
        }
        Ok(())
    }

    /// The next item, `Ok(None)` after `Eof` or after an error.
    pub fn next_item(&mut self) -> Result<Option<Item<'_>>> {
        Ok(self.next_with_position()?.map(|(i, _)| i))
    }

    /// The next item and the input position just after it.
    pub fn next_with_position(&mut self) -> Result<Option<(Item<'_>, u64)>> {
        if self.failed || self.state.is_finished() {
            return Ok(None);
        }
        // Consumed bytes are dropped only before reading more or once they are most of the
        // window: compacting after every item would move the window per item (quadratic).
        if self.start > READ_CHUNK && self.start * 2 > self.buf.len() {
            self.compact();
        }
        // Find a window that holds the whole next record (probe parse), then parse it for real.
        // The probe's item borrows the window, which must grow between attempts, hence two passes.
        let mut want = READ_CHUNK;
        loop {
            let mut st = self.state.clone();
            let mut c = Cursor::new(&self.buf[self.start..], self.base + self.start as u64);
            match parse_item(&mut c, &mut st) {
                Ok(_) => break,
                Err(e) if e.is_truncation() && !self.input_done => {
                    self.compact();
                    if let Err(e) = self.fill(want.max(self.buf.len())) {
                        self.failed = true;
                        return Err(e);
                    }
                    want = want.saturating_mul(2);
                }
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        let mut c = Cursor::new(&self.buf[self.start..], self.base + self.start as u64);
        let mut item = parse_item(&mut c, &mut self.state)?;
        self.start += c.pos();
        if let Item::Eof { checksum, offset } = &mut item {
            let body_end = (*offset - self.base) as usize + 1;
            let (crc, buf) = (self.crc, &self.buf);
            match check_trailer(*checksum, self.verify, *offset + 1, || {
                crc64(crc, &buf[..body_end])
            }) {
                Ok(c) => *checksum = c,
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        Ok(Some((item, self.base + self.start as u64)))
    }
}

/// An opened input: a memory map, or a stream.
pub enum Input {
    /// A memory-mapped regular file.
    Mapped(memmap2::Mmap),
    /// A whole file read into memory (when mapping is not possible).
    Bytes(Vec<u8>),
    /// A stream (stdin, gzip), decoded with bounded memory.
    Stream(Box<dyn Read + Send>),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Mapped(m) => write!(f, "Mapped({} bytes)", m.len()),
            Input::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Input::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// Maps `file` read-only.
///
/// The map is only sound while nobody truncates or rewrites the file; a concurrent truncation can
/// make reads fault (SIGBUS). Dumps are finished files that nothing rewrites in place (Redis renames
/// a temporary file over the old one), which is the contract callers accept.
#[allow(unsafe_code)]
fn map(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: memmap2 requires that the mapped file is not modified while mapped; see above. The
    // map is read-only and every access goes through bounds-checked slices.
    let m = unsafe { memmap2::MmapOptions::new().map(file)? };
    let _ = m.advise(memmap2::Advice::Sequential);
    Ok(m)
}

impl Input {
    /// Opens `path`: `-` is stdin; `.gz` files (or gzip magic) are decompressed as a stream;
    /// regular files are mapped; anything that cannot be mapped (a FIFO) is streamed.
    pub fn open(path: &Path) -> io::Result<Input> {
        if path.as_os_str() == "-" {
            return Ok(Self::from_reader(Box::new(io::stdin())));
        }
        let mut file = File::open(path)?;
        let mut magic = [0u8; 2];
        let meta = file.metadata()?;
        if meta.is_file() {
            let n = file.read(&mut magic)?;
            if n == 2 && magic == [0x1f, 0x8b] {
                let file = File::open(path)?;
                return Ok(Input::Stream(Box::new(flate2::read::MultiGzDecoder::new(
                    io::BufReader::new(file),
                ))));
            }
            if meta.len() == 0 {
                return Ok(Input::Bytes(Vec::new()));
            }
            return match map(&file) {
                Ok(m) => Ok(Input::Mapped(m)),
                Err(_) => Ok(Input::Bytes(std::fs::read(path)?)),
            };
        }
        Ok(Self::from_reader(Box::new(file)))
    }

    /// A streamed input that sniffs the gzip magic.
    pub fn from_reader(r: Box<dyn Read + Send>) -> Input {
        let mut r = io::BufReader::with_capacity(READ_CHUNK, r);
        let is_gz = io::BufRead::fill_buf(&mut r)
            .map(|b| b.starts_with(&[0x1f, 0x8b]))
            .unwrap_or(false);
        if is_gz {
            Input::Stream(Box::new(flate2::read::MultiGzDecoder::new(r)))
        } else {
            Input::Stream(Box::new(r))
        }
    }

    /// Total size when known (mapped input).
    pub fn len_hint(&self) -> Option<u64> {
        match self {
            Input::Mapped(m) => Some(m.len() as u64),
            Input::Bytes(b) => Some(b.len() as u64),
            Input::Stream(_) => None,
        }
    }

    /// Decodes the input, calling `f` with each item and the byte position after it. Stops at the
    /// first decode error or when `f` fails. Returns who wrote the dump.
    pub fn decode<E: From<DecodeError>>(
        self,
        verify_checksum: bool,
        mut f: impl FnMut(Item<'_>, u64) -> Result<(), E>,
    ) -> Result<Producer, E> {
        match self {
            Input::Mapped(m) => decode_slice(&m, verify_checksum, f),
            Input::Bytes(b) => decode_slice(&b, verify_checksum, f),
            Input::Stream(r) => {
                let mut d = StreamDecoder::new(r).verify_checksum(verify_checksum);
                while let Some((item, pos)) = d.next_with_position()? {
                    f(item, pos)?;
                }
                Ok(d.producer())
            }
        }
    }
}

fn decode_slice<E: From<DecodeError>>(
    data: &[u8],
    verify: bool,
    mut f: impl FnMut(Item<'_>, u64) -> Result<(), E>,
) -> Result<Producer, E> {
    std::thread::scope(|scope| {
        let mut trailer = TrailerCheck::start(scope, data, verify);
        let mut d = Decoder::new(data).verify_checksum(false);
        while let Some(mut item) = d.next_item()? {
            trailer.resolve(&mut item, &d)?;
            f(item, d.position())?;
        }
        Ok(d.producer())
    })
}

/// Verification of the CRC64 trailer of mapped input. The CRC64 of a large dump is computed on a
/// second core while the first decodes: a dump normally ends with EOF + 8-byte trailer, so the
/// hashed prefix is known in advance. Any other layout (bytes after the trailer) falls back to
/// hashing at the end.
struct TrailerCheck<'scope, 'a> {
    data: &'a [u8],
    verify: bool,
    ahead: Option<std::thread::ScopedJoinHandle<'scope, u64>>,
}

impl<'scope, 'a: 'scope> TrailerCheck<'scope, 'a> {
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        data: &'a [u8],
        verify: bool,
    ) -> Self {
        let ahead = (verify && data.len() >= PARALLEL_CRC_MIN)
            .then(|| scope.spawn(move || crc64(0, &data[..data.len() - 8])));
        TrailerCheck {
            data,
            verify,
            ahead,
        }
    }

    /// Resolves the checksum of an `Eof` item (other items pass unchanged).
    #[inline]
    fn resolve(&mut self, item: &mut Item<'_>, d: &Decoder<'_>) -> Result<()> {
        match item {
            Item::Eof { .. } => self.resolve_eof(item, d),
            _ => Ok(()),
        }
    }

    #[cold]
    fn resolve_eof(&mut self, item: &mut Item<'_>, d: &Decoder<'_>) -> Result<()> {
        if let Item::Eof { checksum, offset } = item {
            let data = self.data;
            let body_end = *offset as usize + 1;
            let precomputed = self.ahead.take().filter(|_| body_end + 8 == data.len());
            let compute = || match precomputed {
                Some(h) => h.join().unwrap_or_else(|_| crc64(0, &data[..body_end])),
                None => crc64(0, &data[..body_end]),
            };
            *checksum = check_trailer(*checksum, self.verify, *offset + 1, compute)
                .map_err(|e| e.with_producer(Some(&d.producer().to_string())))?;
        }
        Ok(())
    }
}

/// Below this size the checksum is computed inline.
const PARALLEL_CRC_MIN: usize = 4 << 20;

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
    /// Most input bytes of chunks handed to workers and not merged yet: bounds the outputs held
    /// for ordering, and how far framing runs ahead of the workers. A deep queue keeps the workers
    /// fed while the framing thread is not scheduled (it shares the cores with them); worth it
    /// when a chunk's output is small (`info`'s counters), not when it is formatted text.
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
            Input::Mapped(m) if opts.threads > 1 => parallel(&m, Some(&m), opts, worker, merge),
            Input::Bytes(b) if opts.threads > 1 => parallel(&b, None, opts, worker, merge),
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

/// A chunk on its way to a worker: a span of whole records the framer has checked, which the
/// worker reads again (handing over bytes rather than decoded items keeps the items in the cache
/// of the core that works on them), and maybe the final `Eof`, whose checksum the framer resolves.
struct Job<'a, O> {
    seq: u64,
    /// Input span `start..end` and the decoder state at `start`.
    span: (usize, usize, State),
    eof: Option<(Item<'a>, u64)>,
    version: Option<u32>,
    out: O,
}

/// A chunk worked on.
struct Done<O, E> {
    seq: u64,
    out: O,
    /// CRC64 of the span (when verifying), combined in file order by the merging thread.
    crc: u64,
    result: std::thread::Result<std::result::Result<(), E>>,
}

/// A chunk's input span and, once worked on, its result.
type Waiting<W> = (
    u64,
    Option<Done<<W as ChunkWorker>::Out, <W as ChunkWorker>::Error>>,
);

/// The framing and merging side of [`parallel`]: hands spans to the workers and merges their
/// outputs in file order (finished chunks wait here until every chunk before them is merged).
struct Dispatch<'a, 'c, W: ChunkWorker, M> {
    worker: &'c W,
    merge: M,
    jobs: &'c std::sync::mpsc::SyncSender<Job<'a, W::Out>>,
    done: &'c std::sync::mpsc::Receiver<Done<W::Out, W::Error>>,
    max_in_flight: usize,
    max_in_flight_bytes: u64,
    seq: u64,
    /// Chunks from `next` on, in order: input span, and the result (`None` while a worker has it).
    waiting: std::collections::VecDeque<Waiting<W>>,
    next: u64,
    in_flight_bytes: u64,
    /// CRC64 of the input of every chunk merged so far.
    crc: u64,
    /// Drained outputs, for reuse.
    outs: Vec<W::Out>,
}

impl<'a, W, M> Dispatch<'a, '_, W, M>
where
    W: ChunkWorker,
    M: FnMut(&mut W::Out) -> std::result::Result<(), W::Error>,
{
    /// Hands a span (and the `Eof` after it) to a worker, once there is room in flight.
    fn send(
        &mut self,
        span: (usize, usize, State),
        eof: Option<(Item<'a>, u64)>,
        version: Option<u32>,
    ) -> std::result::Result<(), W::Error> {
        while self.waiting.len() >= self.max_in_flight
            || (!self.waiting.is_empty() && self.in_flight_bytes >= self.max_in_flight_bytes)
        {
            self.receive_one()?;
        }
        let bytes = (span.1 - span.0) as u64;
        let job = Job {
            seq: self.seq,
            span,
            eof,
            version,
            out: self.outs.pop().unwrap_or_else(|| self.worker.output()),
        };
        self.seq += 1;
        self.waiting.push_back((bytes, None));
        self.in_flight_bytes += bytes;
        // never blocks: the channel has room for every chunk in flight
        self.jobs.send(job).expect("chunk workers ended early");
        Ok(())
    }

    /// Merges every chunk handed out.
    fn finish(&mut self) -> std::result::Result<(), W::Error> {
        while !self.waiting.is_empty() {
            self.receive_one()?;
        }
        Ok(())
    }

    /// Stores the next finished chunk and merges every chunk that is now next in order.
    fn receive_one(&mut self) -> std::result::Result<(), W::Error> {
        let done = self.done.recv().expect("chunk workers ended early");
        if let Some(w) = self.waiting.get_mut((done.seq - self.next) as usize) {
            w.1 = Some(done);
        }
        while self.waiting.front().is_some_and(|w| w.1.is_some()) {
            let Some((span, Some(mut done))) = self.waiting.pop_front() else {
                break;
            };
            self.next += 1;
            self.in_flight_bytes -= span;
            self.crc = crc64_combine(self.crc, done.crc, span);
            let result = match done.result {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            (self.merge)(&mut done.out)?;
            result?;
            self.outs.push(done.out);
        }
        Ok(())
    }
}

/// Reads the records of a job's span again (the framer checked them), appending them to `items`.
fn reread<'a>(
    data: &'a [u8],
    (start, end, state): (usize, usize, State),
    items: &mut Vec<(Item<'a>, u64)>,
) -> Result<()> {
    let mut d = Decoder::resume(data.get(..end).unwrap_or_default(), start, state);
    while d.position() < end as u64 {
        match d.next_item()? {
            Some(item) => items.push((item, d.position())),
            None => break,
        }
    }
    if d.position() != end as u64 {
        // the framer read the same bytes from the same state, so this cannot happen; if it did,
        // say so rather than lose records
        return Err(DecodeError::invalid(
            d.position(),
            "record",
            format!("chunk re-read ended here, framing at {end}"),
        ));
    }
    Ok(())
}

/// A worker of [`parallel`]: re-reads each job's span, hashes it and works on its items.
fn work_jobs<'a, W: ChunkWorker>(
    data: &'a [u8],
    worker: &W,
    verify: bool,
    jobs: &std::sync::Mutex<std::sync::mpsc::Receiver<Job<'a, W::Out>>>,
    done: std::sync::mpsc::Sender<Done<W::Out, W::Error>>,
    cancelled: &std::sync::atomic::AtomicBool,
) {
    let mut state = worker.state();
    let mut items = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        let Ok(mut job) = job else { break };
        let (start, end) = (job.span.0, job.span.1);
        let mut crc = 0;
        let result = if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
            Ok(Ok(()))
        } else {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if verify {
                    crc = crc64(0, data.get(start..end).unwrap_or_default());
                }
                let reread = reread(data, job.span, &mut items);
                items.extend(job.eof.take());
                let chunk = Chunk {
                    items: &items,
                    version: job.version,
                };
                // the items read before a re-read error are worked on, then the error stands
                let worked = worker.work(&mut state, chunk, &mut job.out);
                worked.and(reread.map_err(W::Error::from))
            }))
        };
        items.clear();
        let finished = Done {
            seq: job.seq,
            out: job.out,
            crc,
            result,
        };
        if done.send(finished).is_err() {
            break;
        }
    }
}

/// [`Input::decode_chunks`] on worker threads: this thread frames the records (values are only
/// skipped) into spans of about `chunk_bytes`; workers decode each span's items, compute its
/// CRC64 and work on the items; this thread merges the outputs, and the CRCs, in file order. At
/// most [`ChunkOptions::in_flight_bytes`] of input are in flight.
fn parallel<'a, W: ChunkWorker>(
    data: &'a [u8],
    map: Option<&memmap2::Mmap>,
    opts: ChunkOptions,
    worker: &W,
    merge: impl FnMut(&mut W::Out) -> std::result::Result<(), W::Error>,
) -> std::result::Result<Producer, W::Error> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Mutex};

    // chunks in flight: as many as the byte budget holds, and at least a few per thread
    let max_in_flight = (opts.in_flight_bytes / opts.chunk_bytes.max(1))
        .clamp(opts.threads as u64 * 4, 1024) as usize;
    let (job_tx, job_rx) = mpsc::sync_channel::<Job<'a, W::Out>>(max_in_flight);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done<W::Out, W::Error>>();
    let cancelled = AtomicBool::new(false);
    let verify = opts.verify_checksum;
    std::thread::scope(|scope| {
        if let Some(m) = map {
            scope.spawn(move || populate(m));
        }
        for _ in 0..opts.threads {
            let (job_rx, done_tx, cancelled) = (&job_rx, done_tx.clone(), &cancelled);
            scope.spawn(move || work_jobs(data, worker, verify, job_rx, done_tx, cancelled));
        }
        drop(done_tx);

        let mut dispatch = Dispatch {
            worker,
            merge,
            jobs: &job_tx,
            done: &done_rx,
            max_in_flight,
            max_in_flight_bytes: opts.in_flight_bytes,
            seq: 0,
            waiting: Default::default(),
            next: 0,
            in_flight_bytes: 0,
            crc: 0,
            outs: Vec::new(),
        };
        let mut d = Decoder::new(data).verify_checksum(false);
        let mut framing: Result<()> = Ok(());
        let mut run = || -> std::result::Result<(), W::Error> {
            let mut chunk_start = 0usize;
            let mut chunk_state = d.state().clone();
            loop {
                let before = d.position() as usize;
                let (end, trailer) = match d.next_item() {
                    Ok(Some(Item::Eof { checksum, offset })) => (true, Some((checksum, offset))),
                    Ok(Some(_)) => (false, None),
                    Ok(None) => (true, None),
                    Err(e) => {
                        framing = Err(e);
                        (true, None)
                    }
                };
                let mut eof = None;
                let span_end = match trailer {
                    None => d.position() as usize,
                    Some((checksum, offset)) => {
                        // the span ends before the trailer; every span is merged, and so hashed,
                        // before the framer resolves the checksum
                        if before > chunk_start {
                            let state = std::mem::replace(&mut chunk_state, d.state().clone());
                            dispatch.send((chunk_start, before, state), None, d.version())?;
                            chunk_start = before;
                        }
                        dispatch.finish()?;
                        let (crc, rest) = (dispatch.crc, data.get(before..=offset as usize));
                        let resolved = check_trailer(checksum, verify, offset + 1, || {
                            let rest = rest.unwrap_or_default();
                            crc64_combine(crc, crc64(0, rest), rest.len() as u64)
                        });
                        match resolved {
                            Ok(checksum) => {
                                eof = Some((Item::Eof { checksum, offset }, d.position()))
                            }
                            Err(e) => {
                                framing = Err(e.with_producer(Some(&d.producer().to_string())))
                            }
                        }
                        before
                    }
                };
                if (span_end > chunk_start || eof.is_some())
                    && (end || (span_end - chunk_start) as u64 >= opts.chunk_bytes)
                {
                    let state = std::mem::replace(&mut chunk_state, d.state().clone());
                    dispatch.send((chunk_start, span_end, state), eof, d.version())?;
                    chunk_start = span_end;
                }
                if end {
                    break;
                }
            }
            dispatch.finish()
        };
        let res = run();
        cancelled.store(true, Ordering::Relaxed);
        drop(job_tx);
        res?;
        framing?;
        Ok(d.producer())
    })
}

fn populate(m: &memmap2::Mmap) {
    const STEP: usize = 4 << 20;
    let mut off = 0;
    while off < m.len() {
        let n = STEP.min(m.len() - off);
        if m.advise_range(memmap2::Advice::PopulateRead, off, n)
            .is_err()
        {
            return;
        }
        off += n;
    }
}
