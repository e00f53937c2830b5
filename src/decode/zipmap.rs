//! Zipmap blobs (format §5.1), written by Redis ≤ 2.4:
//! `zmlen:u8 | (len field len free:u8 value free-bytes)* | 0xFF`.
//!
//! What is valid is what Redis loads: `zipmap.c:zipmapValidateIntegrity` (deep, as `rdb.c` always
//! calls it for zipmaps) and the duplicate check of `rdbLoadObject`'s zipmap conversion. So: the
//! blob is at least 2 bytes and its last byte is 0xFF; entries are walked from byte 1 to the first
//! 0xFF in a field-length position (bytes between that and the last byte are ignored, as Redis
//! does); a length byte of 254 is followed by a 4-byte length of at least 254, and 255 is no
//! value length; there is at least one pair; the header count is 254 ("unknown") or
//! equals the number of pairs (a header of 0xFF is not "unknown": Redis rejects
//! `zipmap_big_len.rdb`, "Zipmap integrity check failed"); no field appears twice ("Hash zipmap
//! with dup elements").

use super::cursor::Cursor;
use crate::error::Result;
use crate::model::Elem;
use std::borrow::Cow;

const WHAT: &str = "zipmap";
const BIGLEN: u8 = 254;
const END: u8 = 255;

/// A length in a value position: one byte below 254, 254 and a 4-byte length, never 255. (The
/// validator of `zipmap.c` reads 255 as 254, but the loaders reject such a zipmap either way: 7.0
/// as "Zipmap integrity check failed", 8.2 in the conversion that follows; tests/it/dumps.rs.)
fn read_value_len(c: &mut Cursor<'_>) -> Result<u64> {
    match c.read_u8("zipmap value length")? {
        BIGLEN => read_big_len(c),
        END => Err(c.invalid(WHAT, "end marker 0xff where a value length was expected")),
        b => Ok(u64::from(b)),
    }
}

/// The 4-byte length after a 254 byte. Only lengths ≥ 254 take that form: Redis iterates a zipmap
/// by the length's size (`ZIPMAP_LEN_BYTES`), so a shorter length written long is misread, and
/// 7.0 and 8.2 refuse it (tests/it/dumps.rs).
fn read_big_len(c: &mut Cursor<'_>) -> Result<u64> {
    let at = c.pos();
    let n = c.read_u32_le("zipmap length")?;
    if n < u32::from(BIGLEN) {
        return Err(c.err_at(
            at - 1,
            crate::error::ErrorKind::Invalid {
                what: WHAT,
                detail: format!("length {n} in the 5-byte form, which is only for lengths ≥ 254"),
            },
        ));
    }
    Ok(u64::from(n))
}

/// Element count announced by the header, capped by the blob size (each element takes at least
/// one byte), for sizing the output before the walk.
pub(crate) fn len_hint(blob: &[u8]) -> usize {
    (blob.first().map_or(0, |&n| usize::from(n) * 2)).min(blob.len())
}

/// Walks the zipmap in `c` (which must span exactly the blob), calling `f` with field, value,
/// field, value… Returns the pair count.
pub(crate) fn walk<'b>(
    c: &mut Cursor<'b>,
    f: &mut impl FnMut(Elem<'b>) -> Result<()>,
) -> Result<usize> {
    let blob = c.rest();
    if blob.len() < 2 {
        return Err(c.invalid(
            WHAT,
            format!("{} bytes, a zipmap needs at least 2", blob.len()),
        ));
    }
    if blob[blob.len() - 1] != END {
        return Err(c.err_at(
            c.pos() + blob.len() - 1,
            crate::error::ErrorKind::Invalid {
                what: WHAT,
                detail: format!(
                    "last byte 0x{:02x}, expected the end marker 0xff",
                    blob[blob.len() - 1]
                ),
            },
        ));
    }
    let header_at = c.pos();
    let zmlen = c.read_u8("zipmap count")?;
    // the pairs, to check for duplicate fields; bounded by the blob (each pair takes ≥ 3 bytes)
    let mut fields: std::collections::HashSet<&'b [u8]> = std::collections::HashSet::new();
    loop {
        let at = c.pos();
        let flen = match c.read_u8("zipmap field length")? {
            END => break,
            BIGLEN => read_big_len(c)?,
            b => u64::from(b),
        };
        let field = c.read_len_bytes(flen, "zipmap field")?;
        let vlen = read_value_len(c)?;
        let free = c.read_u8("zipmap free")?;
        let value = c.read_len_bytes(vlen, "zipmap value")?;
        c.skip(u64::from(free), "zipmap free space")?;
        // Redis: every entry ends before the blob's last byte (`OUT_OF_RANGE`)
        if c.is_empty() {
            return Err(c.invalid(WHAT, "an entry reaches the end marker"));
        }
        if !fields.insert(field) {
            return Err(c.err_at(
                at,
                crate::error::ErrorKind::Invalid {
                    what: WHAT,
                    detail: format!(
                        "duplicate field {:?} (Redis: \"Hash zipmap with dup elements\")",
                        String::from_utf8_lossy(field)
                    ),
                },
            ));
        }
        f(Elem::Bytes(Cow::Borrowed(field)))?;
        f(Elem::Bytes(Cow::Borrowed(value)))?;
    }
    let n = fields.len();
    // what follows the end marker up to the blob's last byte is ignored, as Redis does
    c.skip(c.remaining() as u64, "zipmap tail")?;
    if n == 0 {
        return Err(c.err_at(
            header_at,
            crate::error::ErrorKind::Invalid {
                what: WHAT,
                detail: "empty zipmap".into(),
            },
        ));
    }
    if zmlen != BIGLEN && usize::from(zmlen) != n {
        return Err(c.err_at(
            header_at,
            crate::error::ErrorKind::Invalid {
                what: WHAT,
                detail: format!(
                    "header count {zmlen} (0x{zmlen:02x}) but {n} pairs; only 254 means \"count \
                     unknown\" (Redis: \"Zipmap integrity check failed\")"
                ),
            },
        ));
    }
    Ok(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn build(pairs: &[(&[u8], &[u8])], free: u8) -> Vec<u8> {
        let mut out = vec![pairs.len().min(254) as u8];
        let len = |out: &mut Vec<u8>, l: usize| {
            if l < 254 {
                out.push(l as u8)
            } else {
                out.push(254);
                out.extend_from_slice(&(l as u32).to_le_bytes());
            }
        };
        for (k, v) in pairs {
            len(&mut out, k.len());
            out.extend_from_slice(k);
            len(&mut out, v.len());
            out.push(free);
            out.extend_from_slice(v);
            out.extend(std::iter::repeat_n(0, free as usize));
        }
        out.push(255);
        out
    }

    fn decode(blob: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut v = Vec::new();
        walk(&mut Cursor::blob(blob, 0), &mut |e| {
            v.push(e.to_bytes().into_owned());
            Ok(())
        })?;
        Ok(v)
    }

    #[test]
    fn pairs_with_free_space_and_long_values() {
        let long = vec![b'v'; 300];
        let blob = build(&[(b"a", b"1"), (b"bb", &long)], 3);
        assert_eq!(
            decode(&blob).unwrap(),
            vec![b"a".to_vec(), b"1".to_vec(), b"bb".to_vec(), long]
        );
    }

    /// What Redis's `zipmapValidateIntegrity` (deep) plus the duplicate check of `rdb.c` accept
    /// and reject, case by case.
    #[test]
    fn agrees_with_redis_integrity_check() {
        let two = build(&[(b"a", b"1"), (b"b", b"2")], 0);
        assert!(decode(&two).is_ok());
        // header 254: count unknown, accepted
        let mut b = two.clone();
        b[0] = 254;
        assert_eq!(decode(&b).unwrap().len(), 4);
        // header 255 (HDT3213/rdb's zipmap_big_len.rdb): not "unknown", rejected
        b[0] = 255;
        let err = decode(&b).unwrap_err().to_string();
        assert!(err.contains("header count 255"), "{err}");
        // a value length byte of 254 is followed by a 4-byte length ≥ 254
        let mut blob = vec![1, 1, b'k', 254, 44, 1, 0, 0, 0];
        blob.extend_from_slice(&[b'v'; 300]);
        blob.push(255);
        assert_eq!(decode(&blob).unwrap()[1].len(), 300);
        // … a shorter length in that form, or a value length byte of 255, is refused (as 7.0 and
        // 8.2 do)
        let blob = [1, 1, b'k', 254, 2, 0, 0, 0, 0, b'v', b'w', 255];
        assert!(decode(&blob).is_err());
        let blob = [1, 1, b'k', 255, 2, 0, 0, 0, 0, b'v', b'w', 255];
        assert!(decode(&blob).is_err());
        // bytes between the first end marker and the last byte are ignored
        let mut tail = build(&[(b"a", b"1")], 0);
        tail.extend_from_slice(&[7, 7, 255]);
        assert_eq!(decode(&tail).unwrap(), vec![b"a".to_vec(), b"1".to_vec()]);
        // the last byte must be the end marker
        let mut last = build(&[(b"a", b"1")], 0);
        last.push(0);
        assert!(decode(&last).unwrap_err().to_string().contains("last byte"));
        // a duplicate field
        let dup = build(&[(b"a", b"1"), (b"a", b"2")], 0);
        let err = decode(&dup).unwrap_err().to_string();
        assert!(err.contains("duplicate field"), "{err}");
        // an entry whose free space reaches the last byte
        let mut free = build(&[(b"a", b"1")], 0);
        free[4] = 1; // free byte of the value: skips the end marker
        assert!(decode(&free).is_err());
    }

    #[test]
    fn rejects_bad_zipmaps() {
        let mut b = build(&[(b"a", b"1")], 0);
        b[0] = 2;
        assert!(decode(&b)
            .unwrap_err()
            .to_string()
            .contains("header count 2"));
        assert!(decode(&[0, 255]).is_err());
        assert!(decode(&[1, 1, b'a', 255]).is_err());
    }
}
