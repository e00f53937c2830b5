//! Where dumps come from: memory-mapped files, or any `Read` (stdin, gzip) decoded as a stream with
//! bounded memory.
//!
//! Mapped input is decoded in place by [`Decoder`]. Streamed input goes through [`StreamDecoder`],
//! which keeps a window of the input: it parses a record from the window and, when the record is
//! incomplete, reads more (doubling the request so a huge value costs O(log n) retries) and tries
//! again. Consumed bytes are hashed for the CRC64 check and dropped, so memory stays at the window
//! size plus the largest single record.

use crate::crc::crc64;
use crate::decode::{check_trailer, Decoder};
use crate::error::{DecodeError, Result};
use crate::model::{Item, Producer};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

pub mod aof;
mod parallel;
#[cfg(feature = "import")]
pub mod replica;
pub mod resp;
#[cfg(feature = "import")]
pub mod scan;
pub mod spool;
mod stream;
pub use parallel::{
    default_threads, Chunk, ChunkOptions, ChunkWorker, DEFAULT_CHUNK_BYTES, DEFAULT_IN_FLIGHT_BYTES,
};
pub use stream::StreamDecoder;
use stream::READ_CHUNK;

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
        if meta.is_dir() {
            // reading would fail at offset 0 with EISDIR, which does not say what was wrong
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory, not a dump file",
            ));
        }
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
