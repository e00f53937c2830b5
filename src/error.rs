//! Typed decoding errors. Every error names the absolute file offset where decoding stopped and what
//! was expected there; key context is attached at the entry level.

use std::fmt;

/// Result alias used throughout the decoder.
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;

/// A decoding failure: where it happened, what went wrong, and (when known) which key was being
/// decoded and which server produced the dump.
///
/// The payload is boxed so that `Result<T, DecodeError>` stays one word wide on the hot path.
#[derive(Debug)]
pub struct DecodeError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    offset: u64,
    kind: ErrorKind,
    /// Offset inside an LZF-decompressed blob, whose bytes are not in the file.
    blob_offset: Option<u64>,
    /// The error arose inside a nested blob (listpack, ziplist…), not at the input's end.
    nested: bool,
    key: Option<Vec<u8>>,
    producer: Option<String>,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended (or a nested blob ended) before a field was complete.
    #[error("{what}: needs {needed} bytes but only {remaining} remain")]
    Truncated {
        /// The item being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes remaining.
        remaining: u64,
    },
    /// A count or length read from the input exceeds what the remaining bytes could hold.
    #[error("{what} {len} exceeds remaining {remaining} bytes")]
    LengthPastEnd {
        /// The item being read.
        what: &'static str,
        /// The claimed length or count.
        len: u64,
        /// Bytes remaining.
        remaining: u64,
    },
    /// The file does not start with `REDIS` or `VALKEY` and a version number.
    #[error("not an RDB file: bad magic {0:?}")]
    BadMagic(String),
    /// The RDB version is outside what this decoder understands.
    #[error("unsupported RDB version {0}")]
    UnsupportedVersion(u32),
    /// A type byte or opcode the decoder does not know; there is no way to skip it.
    #[error("unknown type or opcode {byte} (0x{byte:02x}){note}")]
    UnknownOpcode {
        /// The byte.
        byte: u8,
        /// Extra explanation (e.g. Redis Enterprise opcodes).
        note: &'static str,
    },
    /// A type id that a newer Redis writes but whose layout could not be confirmed from Redis's
    /// own source, so the value is refused rather than guessed.
    #[error(
        "type {byte} ({name}, written since {since}): its layout is not confirmed by Redis's \
         source (only third-party parsers describe it), so rdbkit does not decode it rather than \
         risk a misread"
    )]
    UnconfirmedType {
        /// The type byte.
        byte: u8,
        /// Its name in Redis (`RDB_TYPE_…`).
        name: &'static str,
        /// The RDB version (and Redis release) that introduced it.
        since: &'static str,
    },
    /// A length encoding byte that is not valid where it appears.
    #[error("invalid length encoding byte 0x{0:02x}")]
    BadLength(u8),
    /// A string encoding kind that does not exist.
    #[error("invalid string encoding kind {0}")]
    BadStringEncoding(u8),
    /// LZF data did not decompress to the announced length.
    #[error("LZF: {0}")]
    Lzf(String),
    /// A nested structure (ziplist, listpack, intset, zipmap, stream, module stream…) is inconsistent.
    #[error("{what}: {detail}")]
    Invalid {
        /// The structure being read.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The CRC64 trailer does not match the file contents.
    #[error("CRC64 mismatch: trailer says {expected:#018x}, contents hash to {found:#018x}")]
    ChecksumMismatch {
        /// Checksum stored in the file.
        expected: u64,
        /// Checksum computed over the file.
        found: u64,
    },
    /// Reading the input failed.
    #[error("I/O error: {0}")]
    Io(String),
}

impl DecodeError {
    /// Build an error at an absolute file offset.
    pub fn new(offset: u64, kind: ErrorKind) -> Self {
        DecodeError(Box::new(Inner {
            offset,
            kind,
            blob_offset: None,
            nested: false,
            key: None,
            producer: None,
        }))
    }

    pub(crate) fn invalid(offset: u64, what: &'static str, detail: impl Into<String>) -> Self {
        Self::new(
            offset,
            ErrorKind::Invalid {
                what,
                detail: detail.into(),
            },
        )
    }

    /// The absolute byte offset in the input where decoding failed.
    pub fn offset(&self) -> u64 {
        self.0.offset
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The key being decoded when the error happened, if any.
    pub fn key(&self) -> Option<&[u8]> {
        self.0.key.as_deref()
    }

    /// True when the error only says the input ended early (used by the streaming reader to ask
    /// for more bytes before giving up).
    pub fn is_truncation(&self) -> bool {
        matches!(
            self.0.kind,
            ErrorKind::Truncated { .. } | ErrorKind::LengthPastEnd { .. }
        ) && !self.0.nested
    }

    pub(crate) fn nested(mut self) -> Self {
        self.0.nested = true;
        self
    }

    pub(crate) fn with_blob_offset(mut self, inner: u64) -> Self {
        self.0.blob_offset.get_or_insert(inner);
        self
    }

    pub(crate) fn with_key(mut self, key: &[u8]) -> Self {
        if self.0.key.is_none() {
            self.0.key = Some(key.to_vec());
        }
        self
    }

    pub(crate) fn with_producer(mut self, producer: Option<&str>) -> Self {
        if self.0.producer.is_none() {
            self.0.producer = producer.map(str::to_owned);
        }
        self
    }

    pub(crate) fn io(offset: u64, err: std::io::Error) -> Self {
        Self::new(offset, ErrorKind::Io(err.to_string()))
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.0;
        write!(f, "offset {:#x}", i.offset)?;
        if let Some(b) = i.blob_offset {
            write!(f, " (+{b} inside an LZF-compressed blob)")?;
        }
        write!(f, ": {}", i.kind)?;
        if let Some(k) = &i.key {
            write!(f, " (key {})", crate::text::escape_bytes(k))?;
        }
        if self.is_truncation() {
            // the record runs past the end of the input: a download cut short, most often
            write!(
                f,
                "; the input ends inside this record: truncated, or a length in it is corrupt"
            )?;
        }
        if let Some(p) = &i.producer {
            write!(f, " [dump written by {p}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}
