//! Zipmap blobs (format §5.1), written by Redis ≤ 2.4:
//! `zmlen:u8 | (len field len value free:u8 value free-bytes)* | 0xFF`.

use super::cursor::Cursor;
use crate::error::Result;
use crate::model::Elem;
use std::borrow::Cow;

const WHAT: &str = "zipmap";

fn read_len(c: &mut Cursor<'_>) -> Result<Option<u64>> {
    match c.read_u8("zipmap length")? {
        255 => Ok(None),
        254 => Ok(Some(u64::from(c.read_u32_le("zipmap length")?))),
        b => Ok(Some(u64::from(b))),
    }
}

/// Element count announced by the header, capped by the blob size (each element takes at least
/// one byte), for sizing the output before the walk.
pub(crate) fn len_hint(blob: &[u8]) -> usize {
    (blob.first().map_or(0, |&n| usize::from(n) * 2)).min(blob.len())
}

/// Walks the zipmap in `c`, calling `f` with field, value, field, value… Returns the pair count.
pub(crate) fn walk<'b>(
    c: &mut Cursor<'b>,
    f: &mut impl FnMut(Elem<'b>) -> Result<()>,
) -> Result<usize> {
    let zmlen = c.read_u8("zipmap count")?;
    let mut n = 0usize;
    while let Some(flen) = read_len(c)? {
        let field = c.read_len_bytes(flen, "zipmap field")?;
        let vlen = read_len(c)?
            .ok_or_else(|| c.invalid(WHAT, "end marker where a value length was expected"))?;
        let free = c.read_u8("zipmap free")?;
        let value = c.read_len_bytes(vlen, "zipmap value")?;
        c.skip(u64::from(free), "zipmap free space")?;
        f(Elem::Bytes(Cow::Borrowed(field)))?;
        f(Elem::Bytes(Cow::Borrowed(value)))?;
        n += 1;
    }
    if !c.is_empty() {
        return Err(c.invalid(
            WHAT,
            format!("{} bytes after the end marker", c.remaining()),
        ));
    }
    if zmlen < 254 && usize::from(zmlen) != n {
        return Err(c.invalid(WHAT, format!("header count {zmlen} but {n} pairs")));
    }
    if n == 0 {
        return Err(c.invalid(WHAT, "empty zipmap"));
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
