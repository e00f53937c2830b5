//! A minimal RESP2 reply reader for the data plane: it only needs to know where each reply ends and
//! whether it is an error. Check-then-consume in the style of mini-redis: `Incomplete` (here
//! `Ok(None)`) is control flow, a malformed reply is a protocol error.

/// What a reply says about its command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// Any other non-error reply that is not an integer (`+PONG`, a bulk string, an array…).
    Other,
    /// An integer reply.
    Int(i64),
    /// An error reply, with its text (`BUSYKEY Target key name already exists.`).
    Error(String),
}

/// Deepest nesting accepted (our commands get flat replies or arrays of integers).
const MAX_DEPTH: usize = 8;

/// Largest bulk reply accepted (the replies to our commands are a few bytes: OK, integers,
/// stream IDs, library names).
pub const MAX_BULK: i64 = 1 << 20;

/// Parses one reply at the start of `buf`: `Ok(Some((reply, consumed)))`, `Ok(None)` when more
/// bytes are needed, `Err` for bytes that are not RESP.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let mut pos = 0;
    match parse_at(buf, &mut pos, 0)? {
        Some(r) => Ok(Some((r, pos))),
        None => Ok(None),
    }
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = buf.get(*pos..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    *pos += end + 2;
    Some(&rest[..end])
}

fn int(l: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(l)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad integer in reply: {}", crate::model::escape_bytes(l)))
}

fn parse_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Reply>, String> {
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
    match tag {
        b':' => Ok(Some(Reply::Int(int(l)?))),
        b'+' if l == b"OK" => Ok(Some(Reply::Ok)),
        b'+' | b',' | b'#' | b'_' => Ok(Some(Reply::Other)),
        b'-' => Ok(Some(Reply::Error(String::from_utf8_lossy(l).into_owned()))),
        b'$' => {
            let n = int(l)?;
            if n < 0 {
                return Ok(Some(Reply::Other));
            }
            // our commands never get big replies: a huge length is a confused peer, not a reason
            // to wait for (and buffer) gigabytes
            if n > MAX_BULK {
                return Err(format!(
                    "bulk reply of {n} bytes is larger than any reply expected"
                ));
            }
            let end = *pos + n as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            *pos = end;
            Ok(Some(Reply::Other))
        }
        b'*' | b'%' | b'~' => {
            let n = int(l)?;
            if n > MAX_BULK {
                return Err(format!(
                    "array reply of {n} elements is larger than any reply expected"
                ));
            }
            let n = if tag == b'%' { n.saturating_mul(2) } else { n };
            let mut first_err = None;
            for _ in 0..n.max(0) {
                match parse_at(buf, pos, depth + 1)? {
                    None => return Ok(None),
                    Some(Reply::Error(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Some(Reply::Ok | Reply::Other | Reply::Int(_)) => {}
                }
            }
            Ok(Some(first_err.map_or(Reply::Other, Reply::Error)))
        }
        _ => Err(format!("unexpected reply type byte 0x{tag:02x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_nested_replies() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Some((Reply::Ok, 5)));
        assert_eq!(parse(b":12\r\n+OK").unwrap(), Some((Reply::Int(12), 5)));
        assert_eq!(parse(b"+PONG\r\n").unwrap(), Some((Reply::Other, 7)));
        assert_eq!(parse(b"$3\r\nabc\r\n").unwrap(), Some((Reply::Other, 9)));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Some((Reply::Other, 5)));
        assert_eq!(
            parse(b"*2\r\n:1\r\n:2\r\n").unwrap(),
            Some((Reply::Other, 12))
        );
        assert_eq!(
            parse(b"-BUSYKEY exists\r\n").unwrap(),
            Some((Reply::Error("BUSYKEY exists".into()), 17))
        );
    }

    #[test]
    fn incomplete_needs_more() {
        for partial in [&b"+O"[..], b"$3\r\nab", b"*2\r\n:1\r\n", b""] {
            assert_eq!(parse(partial).unwrap(), None, "{partial:?}");
        }
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(parse(b"!!\r\n").is_err());
        assert!(parse(b"$x\r\n").is_err());
        // a length no reply of ours has is refused at once rather than awaited
        assert!(parse(b"$9999999999\r\n").is_err());
    }
}
