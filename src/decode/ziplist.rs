//! Ziplist blobs (format §5.2): `zlbytes:u32 | zltail:u32 | zllen:u16 | (prevlen encoding data)* | 0xFF`.
//!
//! Validation mirrors `ziplistValidateIntegrity`: sizes, every entry inside the blob, each prevlen
//! equal to the previous entry's size, zltail pointing at the last entry, count when known.

use super::cursor::Cursor;
use crate::error::Result;
use crate::model::Elem;
use std::borrow::Cow;

const WHAT: &str = "ziplist";
const HEADER: usize = 10;

/// Element count announced by the header, capped by the blob size (each element takes at least
/// one byte), for sizing the output before the walk.
pub(crate) fn len_hint(blob: &[u8]) -> usize {
    (blob
        .get(8..10)
        .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]]))))
    .min(blob.len())
}

/// Walks every entry of the ziplist in `c`, calling `f`. Returns the number of entries.
pub(crate) fn walk<'b>(
    c: &mut Cursor<'b>,
    f: &mut impl FnMut(Elem<'b>) -> Result<()>,
) -> Result<usize> {
    let blob_len = c.remaining();
    let zlbytes = c.read_u32_le("ziplist zlbytes")? as usize;
    let zltail = c.read_u32_le("ziplist zltail")? as usize;
    let zllen = c.read_u16_le("ziplist zllen")?;
    if zlbytes != blob_len {
        return Err(c.invalid(
            WHAT,
            format!("header says {zlbytes} bytes, blob has {blob_len}"),
        ));
    }
    let mut n = 0usize;
    let mut prev_size = 0usize;
    let mut last_start = HEADER;
    loop {
        let start = c.pos();
        let first = c.read_u8("ziplist entry")?;
        if first == 0xff {
            break;
        }
        let prevlen = if first < 254 {
            usize::from(first)
        } else {
            // 254: a 4-byte prevlen follows (255 was the end marker, handled above)
            c.read_u32_le("ziplist prevlen")? as usize
        };
        if prevlen != prev_size {
            return Err(c.invalid(
                WHAT,
                format!("entry prevlen {prevlen} but previous entry is {prev_size} bytes"),
            ));
        }
        let e = c.read_u8("ziplist encoding")?;
        let elem = match e >> 6 {
            0 => Elem::Bytes(Cow::Borrowed(
                c.read_bytes(usize::from(e & 0x3f), "ziplist string")?,
            )),
            1 => {
                let len = (usize::from(e & 0x3f) << 8) | usize::from(c.read_u8("ziplist length")?);
                Elem::Bytes(Cow::Borrowed(c.read_bytes(len, "ziplist string")?))
            }
            2 => {
                let len = c.read_u32_be("ziplist length")?;
                Elem::Bytes(Cow::Borrowed(
                    c.read_len_bytes(u64::from(len), "ziplist string")?,
                ))
            }
            _ => match e {
                0xc0 => Elem::Int(i64::from(c.read_i16_le("ziplist int16")?)),
                0xd0 => Elem::Int(i64::from(c.read_i32_le("ziplist int32")?)),
                0xe0 => Elem::Int(c.read_i64_le("ziplist int64")?),
                0xf0 => {
                    let s = c.read_bytes(3, "ziplist int24")?;
                    Elem::Int(i64::from(i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8))
                }
                0xfe => Elem::Int(i64::from(c.read_u8("ziplist int8")? as i8)),
                0xf1..=0xfd => Elem::Int(i64::from(e & 0x0f) - 1),
                _ => return Err(c.invalid(WHAT, format!("invalid encoding byte 0x{e:02x}"))),
            },
        };
        prev_size = c.pos() - start;
        last_start = start;
        n += 1;
        f(elem)?;
    }
    if !c.is_empty() {
        return Err(c.invalid(
            WHAT,
            format!("{} bytes after the end marker", c.remaining()),
        ));
    }
    if zltail != last_start {
        return Err(c.invalid(
            WHAT,
            format!("zltail {zltail} but last entry starts at {last_start}"),
        ));
    }
    if zllen != u16::MAX && usize::from(zllen) != n {
        return Err(c.invalid(WHAT, format!("header count {zllen} but {n} entries")));
    }
    Ok(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes a ziplist as Redis does (smallest forms), for tests and fuzz seeds.
    pub(crate) fn build(elems: &[Elem<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut last = HEADER;
        for e in elems {
            let start = body.len();
            last = HEADER + start;
            if prev < 254 {
                body.push(prev as u8);
            } else {
                body.push(254);
                body.extend_from_slice(&(prev as u32).to_le_bytes());
            }
            match e {
                Elem::Int(v) => {
                    let v = *v;
                    if (0..=12).contains(&v) {
                        body.push(0xf1 + v as u8);
                    } else if (-128..=127).contains(&v) {
                        body.extend_from_slice(&[0xfe, v as i8 as u8]);
                    } else if (-32768..=32767).contains(&v) {
                        body.push(0xc0);
                        body.extend_from_slice(&(v as i16).to_le_bytes());
                    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
                        body.push(0xf0);
                        body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
                    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
                        body.push(0xd0);
                        body.extend_from_slice(&(v as i32).to_le_bytes());
                    } else {
                        body.push(0xe0);
                        body.extend_from_slice(&v.to_le_bytes());
                    }
                }
                Elem::Bytes(b) => {
                    if b.len() < 64 {
                        body.push(b.len() as u8);
                    } else if b.len() < 16384 {
                        body.extend_from_slice(&[0x40 | (b.len() >> 8) as u8, b.len() as u8]);
                    } else {
                        body.push(0x80);
                        body.extend_from_slice(&(b.len() as u32).to_be_bytes());
                    }
                    body.extend_from_slice(b);
                }
            }
            prev = body.len() - start;
        }
        let mut out = Vec::new();
        out.extend_from_slice(&((body.len() + HEADER + 1) as u32).to_le_bytes());
        out.extend_from_slice(&(last as u32).to_le_bytes());
        out.extend_from_slice(&(elems.len().min(65535) as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out.push(0xff);
        out
    }

    fn decode(blob: &[u8]) -> Result<Vec<Elem<'_>>> {
        let mut v = Vec::new();
        walk(&mut Cursor::blob(blob, 0), &mut |e| {
            v.push(e);
            Ok(())
        })?;
        Ok(v)
    }

    #[test]
    fn every_encoding_round_trips() {
        let big = vec![b'z'; 20000];
        let mid = vec![b'y'; 300];
        let elems = vec![
            Elem::Int(0),
            Elem::Int(12),
            Elem::Int(13),
            Elem::Int(-128),
            Elem::Int(127),
            Elem::Int(-32768),
            Elem::Int(32767),
            Elem::Int(-(1 << 23)),
            Elem::Int((1 << 23) - 1),
            Elem::Int(i32::MIN as i64),
            Elem::Int(i64::MAX),
            Elem::from(&b""[..]),
            Elem::from(&b"hello"[..]),
            Elem::Bytes(Cow::Borrowed(&mid)),
            Elem::Bytes(Cow::Borrowed(&big)),
            Elem::from(&b"after-big"[..]),
        ];
        let blob = build(&elems);
        assert_eq!(decode(&blob).unwrap(), elems);
    }

    #[test]
    fn empty_ziplist_is_valid() {
        assert!(decode(&build(&[])).unwrap().is_empty());
    }

    #[test]
    fn corruption_is_detected() {
        let blob = build(&[Elem::from(&b"ab"[..]), Elem::Int(3)]);
        let mut b = blob.clone();
        b[8] = 5; // count
        assert!(decode(&b)
            .unwrap_err()
            .to_string()
            .contains("header count 5"));
        let mut b = blob.clone();
        b[14] = 7; // prevlen of 2nd entry
        assert!(decode(&b).unwrap_err().to_string().contains("prevlen"));
        let mut b = blob.clone();
        b[4] = 0; // zltail
        assert!(decode(&b).unwrap_err().to_string().contains("zltail"));
        let mut b = blob;
        b[11] = 0x3f; // string length past the end
        assert!(decode(&b).is_err());
    }
}
