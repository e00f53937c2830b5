//! The streaming decoder: a dump read from any `Read` (stdin, gzip) with a bounded window.

use crate::crc::crc64;
use crate::decode::cursor::Cursor;
use crate::decode::{check_trailer, parse_item, State};
use crate::error::{DecodeError, Result};
use crate::model::{Item, Producer};
use std::io::{self, Read};
/// Bytes requested from a stream at a time.
pub(super) const READ_CHUNK: usize = 1 << 20;

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
