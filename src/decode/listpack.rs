//! Listpack blobs (format §5.3): `total_bytes:u32 | count:u16 | (encoding data backlen)* | 0xFF`.
//!
//! Validation mirrors Redis' `lpValidateIntegrity`: header and total size, every element inside the
//! blob, each backlen equal to its element's size, the terminator last, and the count when known.

use super::cursor::Cursor;
use crate::error::Result;
use crate::model::Elem;
use std::borrow::Cow;

const WHAT: &str = "listpack";

/// Element count announced by the header, capped by the blob size (each element takes at least
/// one byte), for sizing the output before the walk.
pub(crate) fn len_hint(blob: &[u8]) -> usize {
    (blob
        .get(4..6)
        .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]]))))
    .min(blob.len())
}

/// Walks every element of the listpack in `c` (which must span exactly the blob), calling `f`.
/// Returns the number of elements.
pub(crate) fn walk<'b>(
    c: &mut Cursor<'b>,
    f: &mut impl FnMut(Elem<'b>) -> Result<()>,
) -> Result<usize> {
    let blob_len = c.remaining();
    let total = c.read_u32_le("listpack total bytes")? as usize;
    let count = c.read_u16_le("listpack element count")?;
    if total != blob_len {
        return Err(c.invalid(
            WHAT,
            format!("header says {total} bytes, blob has {blob_len}"),
        ));
    }
    let mut n = 0usize;
    // Well-formed elements of the common encodings go through `plain_elem`; anything else (the
    // terminator, 32-bit strings, a truncation or a bad backlen) leaves that loop at the
    // element's start and goes through the checked loop below, which reports it.
    let body = c.rest();
    let mut p = 0;
    while let Some((elem, next)) = plain_elem(body, p) {
        n += 1;
        f(elem)?;
        p = next;
    }
    c.skip(p as u64, WHAT)?;
    loop {
        let start = c.pos();
        let b = c.read_u8("listpack element")?;
        if b == 0xff {
            break;
        }
        let elem = match b {
            0x00..=0x7f => Elem::Int(i64::from(b)),
            0x80..=0xbf => Elem::Bytes(Cow::Borrowed(
                c.read_bytes((b & 0x3f) as usize, "listpack string")?,
            )),
            0xc0..=0xdf => {
                let v = (i64::from(b & 0x1f) << 8) | i64::from(c.read_u8("listpack int13")?);
                Elem::Int(if v >= 4096 { v - 8192 } else { v })
            }
            0xe0..=0xef => {
                let len =
                    (usize::from(b & 0x0f) << 8) | usize::from(c.read_u8("listpack str12 length")?);
                Elem::Bytes(Cow::Borrowed(c.read_bytes(len, "listpack string")?))
            }
            0xf0 => {
                let len = c.read_u32_le("listpack str32 length")?;
                Elem::Bytes(Cow::Borrowed(
                    c.read_len_bytes(u64::from(len), "listpack string")?,
                ))
            }
            0xf1 => Elem::Int(i64::from(c.read_i16_le("listpack int16")?)),
            0xf2 => {
                let s = c.read_bytes(3, "listpack int24")?;
                Elem::Int(i64::from(i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8))
            }
            0xf3 => Elem::Int(i64::from(c.read_i32_le("listpack int32")?)),
            0xf4 => Elem::Int(c.read_i64_le("listpack int64")?),
            _ => {
                return Err(c.err_at(
                    start,
                    invalid_kind(format!("invalid encoding byte 0x{b:02x}")),
                ))
            }
        };
        let entry_len = (c.pos() - start) as u64;
        let (expect, size) = encode_backlen(entry_len);
        let got = c.read_bytes(size, "listpack backlen")?;
        // byte-wise: these are 1–5 bytes, and a memcmp call per element showed up in profiles
        if got.iter().zip(&expect[..size]).any(|(a, b)| a != b) {
            return Err(c.err_at(
                start,
                invalid_kind(format!(
                    "backlen {got:02x?} does not encode entry size {entry_len}"
                )),
            ));
        }
        n += 1;
        f(elem)?;
    }
    if !c.is_empty() {
        return Err(c.invalid(
            WHAT,
            format!("{} bytes after the terminator", c.remaining()),
        ));
    }
    if count != u16::MAX && usize::from(count) != n {
        return Err(c.invalid(WHAT, format!("header count {count} but {n} elements")));
    }
    Ok(n)
}

/// The element at `b[p..]` and the position after its backlen, when it is a well-formed element
/// of any encoding but 32-bit strings; `None` for everything else (then the checked loop of
/// [`walk`] takes over at `p`). Hand-written over the slice because the `Cursor` loop was ~70
/// instructions per element, the largest item of `rdbkit info` on D1 (callgrind).
#[inline(always)]
fn plain_elem(b: &[u8], p: usize) -> Option<(Elem<'_>, usize)> {
    let first = *b.get(p)?;
    let at = |i: usize| b.get(p + i).copied();
    let (elem, len) = match first {
        0x00..=0x7f => (Elem::Int(i64::from(first)), 1),
        0x80..=0xbf => {
            let l = usize::from(first & 0x3f);
            (Elem::Bytes(Cow::Borrowed(b.get(p + 1..p + 1 + l)?)), 1 + l)
        }
        0xc0..=0xdf => {
            let v = (i64::from(first & 0x1f) << 8) | i64::from(at(1)?);
            (Elem::Int(if v >= 4096 { v - 8192 } else { v }), 2)
        }
        0xe0..=0xef => {
            let l = (usize::from(first & 0x0f) << 8) | usize::from(at(1)?);
            (Elem::Bytes(Cow::Borrowed(b.get(p + 2..p + 2 + l)?)), 2 + l)
        }
        0xf1 => (
            Elem::Int(i64::from(i16::from_le_bytes([at(1)?, at(2)?]))),
            3,
        ),
        0xf2 => {
            let v = i32::from_le_bytes([0, at(1)?, at(2)?, at(3)?]) >> 8;
            (Elem::Int(i64::from(v)), 4)
        }
        0xf3 => {
            let s = b.get(p + 1..p + 5)?;
            (
                Elem::Int(i64::from(i32::from_le_bytes([s[0], s[1], s[2], s[3]]))),
                5,
            )
        }
        0xf4 => {
            let s = b.get(p + 1..p + 9)?;
            let mut v = [0u8; 8];
            v.copy_from_slice(s);
            (Elem::Int(i64::from_le_bytes(v)), 9)
        }
        _ => return None,
    };
    let end = p + len;
    if len < 128 {
        // one-byte backlen: the entry size itself
        (at(len)? == len as u8).then_some((elem, end + 1))
    } else {
        let (expect, size) = encode_backlen(len as u64);
        (b.get(end..end + size)? == &expect[..size]).then_some((elem, end + size))
    }
}

fn invalid_kind(detail: String) -> crate::error::ErrorKind {
    crate::error::ErrorKind::Invalid { what: WHAT, detail }
}

/// The forward byte layout of a backlen for an entry of `l` bytes, and its size.
pub(crate) fn encode_backlen(l: u64) -> ([u8; 5], usize) {
    let mut out = [0u8; 5];
    let size = match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    };
    // the last byte holds the least significant 7 bits; every byte but the first has bit 7 set
    let mut v = l;
    for i in (0..size).rev() {
        out[i] = (v & 127) as u8 | if i == 0 { 0 } else { 128 };
        v >>= 7;
    }
    (out, size)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// Builds a listpack the way Redis' `lpAppend` encodes strings and integers.
    pub(crate) fn build(elems: &[Elem<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for e in elems {
            let start = body.len();
            match e {
                Elem::Int(v) => {
                    let v = *v;
                    if (0..=127).contains(&v) {
                        body.push(v as u8);
                    } else if (-4096..=4095).contains(&v) {
                        let u = (v as u16) & 0x1fff;
                        body.extend_from_slice(&[0xc0 | (u >> 8) as u8, u as u8]);
                    } else if (-32768..=32767).contains(&v) {
                        body.push(0xf1);
                        body.extend_from_slice(&(v as i16).to_le_bytes());
                    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
                        body.push(0xf2);
                        body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
                    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
                        body.push(0xf3);
                        body.extend_from_slice(&(v as i32).to_le_bytes());
                    } else {
                        body.push(0xf4);
                        body.extend_from_slice(&v.to_le_bytes());
                    }
                }
                Elem::Bytes(b) => {
                    if b.len() < 64 {
                        body.push(0x80 | b.len() as u8);
                    } else if b.len() < 4096 {
                        body.extend_from_slice(&[0xe0 | (b.len() >> 8) as u8, b.len() as u8]);
                    } else {
                        body.push(0xf0);
                        body.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    }
                    body.extend_from_slice(b);
                }
            }
            let (bl, n) = encode_backlen((body.len() - start) as u64);
            body.extend_from_slice(&bl[..n]);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&((body.len() + 7) as u32).to_le_bytes());
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
        let big = vec![b'x'; 5000];
        let mid = vec![b'y'; 100];
        let elems = vec![
            Elem::Int(0),
            Elem::Int(127),
            Elem::Int(128),
            Elem::Int(-1),
            Elem::Int(-4096),
            Elem::Int(4095),
            Elem::Int(-32768),
            Elem::Int(32767),
            Elem::Int(-(1 << 23)),
            Elem::Int((1 << 23) - 1),
            Elem::Int(i32::MIN as i64),
            Elem::Int(i64::MIN),
            Elem::Int(i64::MAX),
            Elem::Bytes(Cow::Borrowed(b"")),
            Elem::Bytes(Cow::Borrowed(b"a")),
            Elem::Bytes(Cow::Borrowed(&mid)),
            Elem::Bytes(Cow::Borrowed(&big)),
        ];
        let blob = build(&elems);
        assert_eq!(decode(&blob).unwrap(), elems);
    }

    #[test]
    fn format_doc_vector() {
        // the hash {a: 1} listpack of rdb-format.md §13
        let blob = [0x0c, 0, 0, 0, 0x02, 0, 0x81, 0x61, 0x02, 0x01, 0x01, 0xff];
        assert_eq!(
            decode(&blob).unwrap(),
            vec![Elem::from(&b"a"[..]), Elem::Int(1)]
        );
    }

    #[test]
    fn backlen_sizes_at_boundaries() {
        for (l, n) in [
            (127, 1),
            (128, 2),
            (16382, 2),
            (16383, 3),
            (2097150, 3),
            (2097151, 4),
        ] {
            assert_eq!(encode_backlen(l).1, n, "L={l}");
        }
        assert_eq!(&encode_backlen(200).0[..2], &[1, 200 & 127 | 128]);
    }

    #[test]
    fn corruption_is_detected() {
        let blob = build(&[Elem::from(&b"abc"[..]), Elem::Int(5)]);
        // wrong total size
        let mut b = blob.clone();
        b[0] += 1;
        assert!(matches!(
            decode(&b).unwrap_err().kind(),
            ErrorKind::Invalid { .. }
        ));
        // wrong count
        let mut b = blob.clone();
        b[4] = 3;
        assert!(decode(&b)
            .unwrap_err()
            .to_string()
            .contains("header count 3 but 2"));
        // broken backlen
        let mut b = blob.clone();
        b[10] = 9;
        assert!(decode(&b).unwrap_err().to_string().contains("backlen"));
        // string running past the end
        let mut b = blob.clone();
        b[6] = 0x80 | 60;
        assert!(decode(&b).is_err());
        // invalid encoding byte
        let mut b = blob;
        b[6] = 0xf7;
        assert!(decode(&b).unwrap_err().to_string().contains("0xf7"));
    }
}
