//! Intset blobs (format §5.4): `encoding:u32 | length:u32 | length × int(encoding)`, all little-endian,
//! members strictly increasing.

use super::cursor::Cursor;
use crate::error::Result;
use crate::model::Elem;

const WHAT: &str = "intset";

/// Element count announced by the header, capped by the blob size (each element takes at least
/// one byte), for sizing the output before the walk.
pub(crate) fn len_hint(blob: &[u8]) -> usize {
    (blob
        .get(4..8)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize))
    .min(blob.len())
}

/// Walks every member of the intset in `c`, calling `f`. Returns the number of members.
pub(crate) fn walk<'b>(
    c: &mut Cursor<'b>,
    f: &mut impl FnMut(Elem<'b>) -> Result<()>,
) -> Result<usize> {
    let enc = c.read_u32_le("intset encoding")?;
    let len = c.read_u32_le("intset length")?;
    if !matches!(enc, 2 | 4 | 8) {
        return Err(c.invalid(WHAT, format!("encoding {enc} is not 2, 4 or 8")));
    }
    let body = u64::from(len) * u64::from(enc);
    if body != c.remaining() as u64 {
        return Err(c.invalid(
            WHAT,
            format!(
                "{len} members of {enc} bytes need {body} bytes, blob has {}",
                c.remaining()
            ),
        ));
    }
    if len == 0 {
        return Err(c.invalid(WHAT, "empty intset"));
    }
    let mut prev: Option<i64> = None;
    for _ in 0..len {
        let v = match enc {
            2 => i64::from(c.read_i16_le("intset member")?),
            4 => i64::from(c.read_i32_le("intset member")?),
            _ => c.read_i64_le("intset member")?,
        };
        if prev.is_some_and(|p| p >= v) {
            return Err(c.invalid(WHAT, format!("members not strictly increasing at {v}")));
        }
        prev = Some(v);
        f(Elem::Int(v))?;
    }
    Ok(len as usize)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn build(enc: u32, members: &[i64]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&enc.to_le_bytes());
        out.extend_from_slice(&(members.len() as u32).to_le_bytes());
        for &m in members {
            out.extend_from_slice(&m.to_le_bytes()[..enc as usize]);
        }
        out
    }

    fn decode(blob: &[u8]) -> Result<Vec<i64>> {
        let mut v = Vec::new();
        walk(&mut Cursor::blob(blob, 0), &mut |e| {
            if let Elem::Int(i) = e {
                v.push(i)
            }
            Ok(())
        })?;
        Ok(v)
    }

    #[test]
    fn all_widths() {
        assert_eq!(
            decode(&build(2, &[-32768, 0, 32767])).unwrap(),
            vec![-32768, 0, 32767]
        );
        assert_eq!(
            decode(&build(4, &[i32::MIN as i64, 1])).unwrap(),
            vec![i32::MIN as i64, 1]
        );
        assert_eq!(
            decode(&build(8, &[i64::MIN, i64::MAX])).unwrap(),
            vec![i64::MIN, i64::MAX]
        );
    }

    #[test]
    fn rejects_bad_sets() {
        assert!(decode(&build(3, &[1])).is_err());
        assert!(decode(&build(2, &[2, 1]))
            .unwrap_err()
            .to_string()
            .contains("strictly increasing"));
        assert!(decode(&build(2, &[])).is_err());
        let mut b = build(2, &[1, 2]);
        b[4] = 200; // length far beyond the blob
        assert!(decode(&b)
            .unwrap_err()
            .to_string()
            .contains("need 400 bytes"));
    }
}
