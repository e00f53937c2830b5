//! A RESP2 reply reader for `verify`, which needs the values (the import's reader in
//! `replay::reply` only classifies replies). Values borrow from the read buffer, so comparing them
//! with the dump copies nothing. Check-then-consume: `Ok(None)` means more bytes are needed.

/// One reply, borrowing from the buffer it was read from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum V<'a> {
    /// A nil bulk string or nil array.
    Nil,
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(&'a [u8]),
    /// A simple string (`+OK`, `+string` from TYPE).
    Simple(&'a [u8]),
    /// An error, with its text.
    Error(&'a [u8]),
    /// An array.
    Array(Vec<V<'a>>),
}

impl V<'_> {
    /// The bytes of a bulk or simple string.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            V::Bulk(b) | V::Simple(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an array (a nil array reads as empty).
    pub(crate) fn items(&self) -> Option<&[Self]> {
        match self {
            V::Array(a) => Some(a),
            V::Nil => Some(&[]),
            _ => None,
        }
    }
}

/// Deepest nesting accepted (XRANGE and XINFO GROUPS replies nest two levels).
const MAX_DEPTH: usize = 8;

/// Parses one reply at the start of `buf`: `Ok(Some((reply, consumed)))`, `Ok(None)` when more
/// bytes are needed, `Err` for bytes that are not RESP2.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(V<'_>, usize)>, String> {
    let mut pos = 0;
    Ok(parse_at(buf, &mut pos, 0)?.map(|v| (v, pos)))
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = buf.get(*pos..)?;
    let end = rest.iter().position(|&b| b == b'\r')?;
    // the '\n' must have arrived too
    rest.get(end + 1)?;
    *pos += end + 2;
    Some(&rest[..end])
}

fn int(l: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(l)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad integer in reply: {}", crate::model::escape_bytes(l)))
}

fn parse_at<'a>(buf: &'a [u8], pos: &mut usize, depth: usize) -> Result<Option<V<'a>>, String> {
    if depth > MAX_DEPTH {
        return Err("reply nested too deeply".into());
    }
    let Some(&tag) = buf.get(*pos) else {
        return Ok(None);
    };
    *pos += 1;
    let Some(l) = line(buf, pos) else {
        return Ok(None);
    };
    Ok(Some(match tag {
        b':' => V::Int(int(l)?),
        b'+' => V::Simple(l),
        b'-' => V::Error(l),
        b'$' => {
            let n = int(l)?;
            if n < 0 {
                return Ok(Some(V::Nil));
            }
            let n = usize::try_from(n).map_err(|_| "bulk length out of range".to_string())?;
            let end = pos.checked_add(n).ok_or("bulk length out of range")?;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("bulk string not followed by CRLF".into());
            }
            let b = &buf[*pos..end];
            *pos = end + 2;
            V::Bulk(b)
        }
        b'*' => {
            let n = int(l)?;
            if n < 0 {
                return Ok(Some(V::Nil));
            }
            // every element takes at least 3 bytes: never reserve more than the buffer could hold
            let n = usize::try_from(n).map_err(|_| "array length out of range".to_string())?;
            let mut items = Vec::with_capacity(n.min(buf.len() / 3));
            for _ in 0..n {
                match parse_at(buf, pos, depth + 1)? {
                    Some(v) => items.push(v),
                    None => return Ok(None),
                }
            }
            V::Array(items)
        }
        other => {
            return Err(format!(
                "unexpected reply type byte 0x{other:02x} (verify speaks RESP2)"
            ))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_replies_and_waits_for_more_bytes() {
        let full = b"*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n:7\r\n+OK\r\n";
        let (v, used) = parse(full).unwrap().unwrap();
        assert_eq!(
            v,
            V::Array(vec![
                V::Bulk(b"1-1"),
                V::Array(vec![V::Bulk(b"f"), V::Int(7)])
            ])
        );
        assert_eq!(&full[used..], b"+OK\r\n");
        // every proper prefix of the first reply is incomplete, never an error
        for cut in 0..used {
            assert_eq!(parse(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(parse(b"$-1\r\n").unwrap(), Some((V::Nil, 5)));
        assert_eq!(parse(b"*-1\r\n").unwrap(), Some((V::Nil, 5)));
        assert_eq!(
            parse(b"-WRONGTYPE x\r\n").unwrap(),
            Some((V::Error(b"WRONGTYPE x"), 14))
        );
    }

    #[test]
    fn rejects_what_is_not_resp2() {
        assert!(parse(b"$3\r\nabcde\r\n").is_err());
        assert!(parse(b":12x\r\n").is_err());
        assert!(parse(b"%1\r\n").is_err());
        assert!(parse(b"$99999999999999999999\r\n").is_err());
        let deep = "*1\r\n".repeat(20);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
