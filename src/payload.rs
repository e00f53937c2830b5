//! DUMP/RESTORE payloads (format §9): `[KEY_META] type | value bytes | rdb_version:u16 LE | crc64:u64 LE`.
//!
//! Payloads are built from an entry's raw value bytes, never re-encoded, so every encoding (LZF,
//! stream consumer groups, field TTLs, module data) reaches the target byte for byte.

use crate::crc::crc64;
use crate::decode::cursor::Cursor;
use crate::decode::skip_key_meta;
use crate::decode::value::decode_type;
use crate::error::{DecodeError, ErrorKind, Result};
use crate::model::Dialect;
use crate::model::{Entry, Value};

/// Builds the DUMP payload of `entry` with footer version `rdb_version`.
///
/// ```
/// // rdb-format.md §13: DUMP of "bar" from Redis 7.4–8.2 (RDB 12)
/// let p = rdbkit::payload::build(None, 0, b"\x03bar", 12);
/// assert_eq!(p, b"\x00\x03bar\x0c\x00\x2d\xc8\x7d\xa0\x14\x4c\x63\x5e");
/// ```
pub fn build(meta: Option<&[u8]>, type_id: u8, raw: &[u8], rdb_version: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(meta.map_or(0, <[u8]>::len) + raw.len() + 11);
    write(&mut p, meta, type_id, raw, rdb_version);
    p
}

/// Appends the payload to `out` (lets a writer reuse its buffer).
pub fn write(out: &mut Vec<u8>, meta: Option<&[u8]>, type_id: u8, raw: &[u8], rdb_version: u16) {
    let start = out.len();
    if let Some(m) = meta {
        out.extend_from_slice(m);
    }
    out.push(type_id);
    out.extend_from_slice(raw);
    out.extend_from_slice(&rdb_version.to_le_bytes());
    let crc = crc64(0, &out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// The payload of an entry.
pub fn for_entry(e: &Entry<'_>, rdb_version: u16) -> Vec<u8> {
    build(e.meta, e.type_id, e.raw, rdb_version)
}

/// Size of the payload of an entry, without building it.
pub fn len_for_entry(e: &Entry<'_>) -> usize {
    e.meta.map_or(0, <[u8]>::len) + 1 + e.raw.len() + 10
}

/// A verified payload: its KEY_META block if any, type, value bytes and footer version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    /// The KEY_META block (opcode 0xF3 included) in front of the type byte: Redis 8.6+ (RDB 13 and
    /// later) payloads of keys with module key metadata (format §16.2). It goes in front of the type
    /// byte of an RDB key record too.
    pub meta: Option<&'a [u8]>,
    /// RDB type id.
    pub type_id: u8,
    /// The serialized value.
    pub raw: &'a [u8],
    /// Footer RDB version.
    pub rdb_version: u16,
}

/// Checks a payload's footer (length, CRC64) the way `RESTORE` does, without decoding the value.
pub fn verify(p: &[u8]) -> Result<Payload<'_>> {
    if p.len() < 11 {
        return Err(DecodeError::new(
            0,
            ErrorKind::Truncated {
                what: "DUMP payload",
                needed: 11,
                remaining: p.len() as u64,
            },
        ));
    }
    let (body, footer) = p.split_at(p.len() - 10);
    let rdb_version = u16::from_le_bytes([footer[0], footer[1]]);
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    let expected = u64::from_le_bytes(crc);
    let found = crc64(0, &p[..p.len() - 8]);
    if expected != found {
        return Err(DecodeError::new(
            (p.len() - 8) as u64,
            ErrorKind::ChecksumMismatch { expected, found },
        ));
    }
    if body[0] == 0xf3 && (13..80).contains(&rdb_version) {
        let mut c = Cursor::blob(body, 0);
        c.skip(1, "KEY_META opcode")?;
        skip_key_meta(&mut c)?;
        let meta = c.since(0);
        let type_id = c.read_u8("type after KEY_META")?;
        return Ok(Payload {
            meta: Some(meta),
            type_id,
            raw: c.rest(),
            rdb_version,
        });
    }
    Ok(Payload {
        meta: None,
        type_id: body[0],
        raw: &body[1..],
        rdb_version,
    })
}

/// Verifies and fully decodes a payload (as a RESTORE with deep sanitization would).
pub fn decode(p: &[u8]) -> Result<Value<'_>> {
    let v = verify(p)?;
    let dialect = Dialect {
        valkey: (80..=255).contains(&v.rdb_version),
    };
    // skip first: it rejects unknown types and checks the value ends where the footer starts
    decode_type(
        v.type_id,
        v.raw,
        1,
        dialect,
        &mut crate::decode::value::NoStore,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_doc_vectors() {
        let hex = |s: &str| {
            s.split(' ')
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            build(None, 0, &hex("c0 0a"), 9),
            hex("00 c0 0a 09 00 be 6d 06 89 5a 28 00 0a")
        );
        assert_eq!(
            build(None, 0, b"\x03bar", 11),
            hex("00 03 62 61 72 0b 00 8f 61 f4 13 13 f9 14 9e")
        );
        assert_eq!(
            build(None, 0, b"\x03bar", 80),
            hex("00 03 62 61 72 50 00 29 94 80 f1 70 34 9a e3")
        );
        let h = hex("10 0c 0c 00 00 00 02 00 81 61 02 01 01 ff 0b 00 ed 79 2e 9b 57 88 0d 52");
        assert_eq!(build(None, 0x10, &h[1..h.len() - 10], 11), h);
        match decode(&h).unwrap() {
            Value::Hash(f) => assert_eq!(f.len(), 1),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn verify_rejects_bad_crc_and_short_payloads() {
        let mut p = build(None, 0, b"\x03bar", 12);
        assert!(verify(&p).is_ok());
        p[2] ^= 1;
        assert!(matches!(
            verify(&p).unwrap_err().kind(),
            ErrorKind::ChecksumMismatch { .. }
        ));
        assert!(verify(&p[..5]).is_err());
    }

    #[test]
    fn verify_splits_key_meta_from_the_type() {
        // one class: spec, one UINT opcode (2, 7), module EOF (0)
        let meta = [0xf3, 1, 0x41, 0x42, 0x43, 0x44, 2, 7, 0];
        let p = build(Some(&meta), 0, b"\x03bar", 13);
        let v = verify(&p).unwrap();
        assert_eq!(
            (v.meta, v.type_id, v.raw),
            (Some(&meta[..]), 0, &b"\x03bar"[..])
        );
        // before RDB 13 the byte is not KEY_META
        assert_eq!(
            verify(&build(Some(&meta), 0, b"\x03bar", 12)).unwrap().meta,
            None
        );
        // a KEY_META block cut short is an error, not a panic
        assert!(verify(&build(None, 0xf3, &[5, 1], 13)).is_err());
    }

    #[test]
    fn crc_is_jones_with_zero_init() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6d914c4b8d9ca);
    }
}
