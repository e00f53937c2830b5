//! A bounds-checked cursor over a byte slice that knows its absolute file offset.
//!
//! Every read checks the remaining length first and fails with an error naming the offset and the
//! item being read; nothing here indexes with `[]` or can panic. Fixed-width integers are read
//! with nom's `complete` number parsers.

use crate::error::{DecodeError, ErrorKind, Result};
use nom::number::complete as num;

type NomRes<'a, T> = nom::IResult<&'a [u8], T, ()>;

/// Cursor over `data`, whose first byte sits at absolute offset `base` in the input.
#[derive(Clone, Debug)]
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    /// `Some(file_offset)` when `data` is an LZF-decompressed blob (not present in the file).
    lzf_origin: Option<u64>,
    /// Nested cursors report overruns as corruption, never as "need more input".
    nested: bool,
}

impl<'a> Cursor<'a> {
    /// A top-level cursor over the input (or over a window of a stream starting at `base`).
    pub(crate) fn new(data: &'a [u8], base: u64) -> Self {
        Cursor {
            data,
            pos: 0,
            base,
            lzf_origin: None,
            nested: false,
        }
    }

    /// A nested cursor over a blob that lies in the input at absolute offset `base`.
    pub(crate) fn blob(data: &'a [u8], base: u64) -> Self {
        Cursor {
            data,
            pos: 0,
            base,
            lzf_origin: None,
            nested: true,
        }
    }

    /// A nested cursor over a decompressed blob whose compressed string starts at `origin`.
    pub(crate) fn lzf_blob(data: &'a [u8], origin: u64) -> Self {
        Cursor {
            data,
            pos: 0,
            base: origin,
            lzf_origin: Some(origin),
            nested: true,
        }
    }

    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Absolute offset of the next byte (for LZF blobs: the compressed string's offset).
    #[inline]
    pub(crate) fn offset(&self) -> u64 {
        match self.lzf_origin {
            Some(o) => o,
            None => self.base + self.pos as u64,
        }
    }

    /// The bytes in `[from, pos)`.
    #[inline]
    pub(crate) fn since(&self, from: usize) -> &'a [u8] {
        self.data.get(from..self.pos).unwrap_or_default()
    }

    /// The unread bytes.
    #[inline]
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    /// An error at the current position.
    #[cold]
    pub(crate) fn err(&self, kind: ErrorKind) -> DecodeError {
        self.err_at(self.pos, kind)
    }

    /// An error at position `pos` of this cursor.
    #[cold]
    pub(crate) fn err_at(&self, pos: usize, kind: ErrorKind) -> DecodeError {
        let e = match self.lzf_origin {
            Some(o) => DecodeError::new(o, kind).with_blob_offset(pos as u64),
            None => DecodeError::new(self.base + pos as u64, kind),
        };
        if self.nested {
            e.nested()
        } else {
            e
        }
    }

    #[cold]
    pub(crate) fn invalid(&self, what: &'static str, detail: impl Into<String>) -> DecodeError {
        self.err(ErrorKind::Invalid {
            what,
            detail: detail.into(),
        })
    }

    #[cold]
    fn truncated(&self, what: &'static str, needed: usize) -> DecodeError {
        self.err(ErrorKind::Truncated {
            what,
            needed: needed as u64,
            remaining: self.remaining() as u64,
        })
    }

    /// Fails unless at least `n` more bytes remain. Used before anything is sized by `n`.
    #[inline]
    pub(crate) fn need(&self, n: u64, what: &'static str) -> Result<()> {
        if n > self.remaining() as u64 {
            return Err(self.err(ErrorKind::LengthPastEnd {
                what,
                len: n,
                remaining: self.remaining() as u64,
            }));
        }
        Ok(())
    }

    /// A string with a 6- or 14-bit length whose bytes are all present: the bytes, and the cursor
    /// moves past them. `None` (cursor unmoved) for anything else.
    #[inline(always)]
    pub(crate) fn short_string(&mut self) -> Option<&'a [u8]> {
        let rest = self.data.get(self.pos..)?;
        let b = usize::from(*rest.first()?);
        let (n, head) = match b {
            0..=0x3f => (b, 1),
            0x40..=0x7f => (((b & 0x3f) << 8) | usize::from(*rest.get(1)?), 2),
            _ => return None,
        };
        let s = rest.get(head..head + n)?;
        self.pos += head + n;
        Some(s)
    }

    #[inline]
    pub(crate) fn read_u8(&mut self, what: &'static str) -> Result<u8> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.truncated(what, 1)),
        }
    }

    #[inline]
    pub(crate) fn read_bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.truncated(what, n)),
        }
    }

    /// Reads a length-checked slice whose size came from the input as a `u64`.
    #[inline]
    pub(crate) fn read_len_bytes(&mut self, n: u64, what: &'static str) -> Result<&'a [u8]> {
        self.need(n, what)?;
        self.read_bytes(n as usize, what)
    }

    #[inline]
    pub(crate) fn skip(&mut self, n: u64, what: &'static str) -> Result<()> {
        self.read_len_bytes(n, what).map(|_| ())
    }

    #[inline]
    fn fixed<T>(
        &mut self,
        n: usize,
        what: &'static str,
        f: impl FnOnce(&'a [u8]) -> NomRes<'a, T>,
    ) -> Result<T> {
        let rest = self.rest();
        match f(rest) {
            Ok((_, v)) => {
                self.pos += n;
                Ok(v)
            }
            Err(_) => Err(self.truncated(what, n)),
        }
    }

    #[inline]
    pub(crate) fn read_u16_le(&mut self, what: &'static str) -> Result<u16> {
        self.fixed(2, what, num::le_u16)
    }
    #[inline]
    pub(crate) fn read_u32_le(&mut self, what: &'static str) -> Result<u32> {
        self.fixed(4, what, num::le_u32)
    }
    #[inline]
    pub(crate) fn read_u32_be(&mut self, what: &'static str) -> Result<u32> {
        self.fixed(4, what, num::be_u32)
    }
    #[inline]
    pub(crate) fn read_u64_be(&mut self, what: &'static str) -> Result<u64> {
        self.fixed(8, what, num::be_u64)
    }
    #[inline]
    pub(crate) fn read_u64_le(&mut self, what: &'static str) -> Result<u64> {
        self.fixed(8, what, num::le_u64)
    }
    #[inline]
    pub(crate) fn read_i64_le(&mut self, what: &'static str) -> Result<i64> {
        self.fixed(8, what, num::le_i64)
    }
    #[inline]
    pub(crate) fn read_i32_le(&mut self, what: &'static str) -> Result<i32> {
        self.fixed(4, what, num::le_i32)
    }
    #[inline]
    pub(crate) fn read_i16_le(&mut self, what: &'static str) -> Result<i16> {
        self.fixed(2, what, num::le_i16)
    }
    #[inline]
    pub(crate) fn read_f64_le(&mut self, what: &'static str) -> Result<f64> {
        self.fixed(8, what, num::le_f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_end_fail_with_offset() {
        let mut c = Cursor::new(&[1, 2, 3], 100);
        assert_eq!(c.read_u16_le("x").unwrap(), 0x0201);
        let e = c.read_u32_le("thing").unwrap_err();
        assert_eq!(e.offset(), 102);
        assert!(e.is_truncation());
        assert!(e
            .to_string()
            .contains("thing: needs 4 bytes but only 1 remain"));
    }

    #[test]
    fn nested_overrun_is_not_truncation() {
        let mut c = Cursor::blob(&[1], 10);
        let e = c.read_bytes(5, "blob").unwrap_err();
        assert!(!e.is_truncation());
        assert_eq!(e.offset(), 10);
    }

    #[test]
    fn huge_lengths_are_rejected_before_use() {
        let mut c = Cursor::new(&[0; 4], 0);
        let e = c.read_len_bytes(u64::MAX, "string").unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::LengthPastEnd {
                len: u64::MAX,
                remaining: 4,
                ..
            }
        ));
    }
}
