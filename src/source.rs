//! Where dumps come from: memory-mapped files, or any `Read` (stdin, gzip) decoded as a stream with
//! bounded memory.
//!
//! Mapped input is decoded in place by [`Decoder`]. Streamed input goes through [`StreamDecoder`],
//! which keeps a window of the input: it parses a record from the window and, when the record is
//! incomplete, reads more (doubling the request so a huge value costs O(log n) retries) and tries
//! again. Consumed bytes are hashed for the CRC64 check and dropped, so memory stays at the window
//! size plus the largest single record.

use crate::decode::cursor::Cursor;
use crate::decode::{check_trailer, crc64, parse_item, Decoder, State};
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
    // The CRC64 of a large dump is computed on a second core while the first decodes: a dump
    // normally ends with EOF + 8-byte trailer, so the hashed prefix is known in advance. Any other
    // layout (bytes after the trailer) falls back to hashing at the end.
    std::thread::scope(|scope| {
        let mut ahead = (verify && data.len() >= PARALLEL_CRC_MIN)
            .then(|| scope.spawn(|| crc64(0, &data[..data.len() - 8])));
        let mut d = Decoder::new(data).verify_checksum(false);
        while let Some(mut item) = d.next_item()? {
            if let Item::Eof { checksum, offset } = &mut item {
                let body_end = *offset as usize + 1;
                let precomputed = ahead.take().filter(|_| body_end + 8 == data.len());
                let compute = || match precomputed {
                    Some(h) => h.join().unwrap_or_else(|_| crc64(0, &data[..body_end])),
                    None => crc64(0, &data[..body_end]),
                };
                *checksum = check_trailer(*checksum, verify, *offset + 1, compute)
                    .map_err(|e| e.with_producer(Some(&d.producer().to_string())))?;
            }
            f(item, d.position())?;
        }
        Ok(d.producer())
    })
}

/// Below this size the checksum is computed inline.
const PARALLEL_CRC_MIN: usize = 4 << 20;
