//! Replies of any size read with bounded memory.

use crate::replay::reply::Reply;

/// Reads replies of any size with bounded memory: a follow applies whatever the source ran, and
/// some commands answer with values (`LPOP`, `GETDEL`) that may be large. Only whether each reply
/// is an error (and its text) is kept.
#[derive(Debug, Default)]
pub(super) struct ReplySkipper {
    /// Elements still to read in each open array (the innermost last), and how many it had.
    open: Vec<(u64, u64)>,
    /// Errors that were elements of a top-level array, with their index in it (the replies
    /// inside an `EXEC`).
    pub(super) nested: Vec<(usize, String)>,
    /// Bytes of a bulk string (and its CRLF) still to skip.
    bulk_left: u64,
    /// A partial line.
    line: Vec<u8>,
    /// The first error inside the current top-level array.
    nested_err: Option<String>,
    /// Per top-level reply, its first bulk string when that is at most 4 KiB (else empty).
    pub(super) values: Vec<Vec<u8>>,
    /// The first bulk string of the current top-level reply, and whether one was seen.
    value: Option<Vec<u8>>,
    /// A bulk string being kept (its bytes so far).
    keeping: Option<Vec<u8>>,
}

impl ReplySkipper {
    pub(super) fn feed(&mut self, mut data: &[u8], out: &mut Vec<Reply>) -> Result<(), String> {
        while !data.is_empty() {
            if self.bulk_left > 0 {
                let n = (data.len() as u64).min(self.bulk_left) as usize;
                if let Some(k) = self.keeping.as_mut() {
                    k.extend_from_slice(&data[..n]);
                }
                data = &data[n..];
                self.bulk_left -= n as u64;
                if self.bulk_left == 0 {
                    if let Some(mut k) = self.keeping.take() {
                        k.truncate(k.len().saturating_sub(2));
                        self.value.get_or_insert(k);
                    }
                }
                if self.bulk_left == 0 {
                    self.element_done(Reply::Other, out);
                }
                continue;
            }
            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(data);
                if self.line.len() > 1 << 20 {
                    return Err("a reply line longer than 1 MiB".into());
                }
                return Ok(());
            };
            self.line.extend_from_slice(&data[..=nl]);
            data = &data[nl + 1..];
            let line = std::mem::take(&mut self.line);
            let body = line
                .strip_suffix(b"\r\n")
                .ok_or("a reply line without CR")?;
            let (&tag, rest) = body.split_first().ok_or("an empty reply line")?;
            let num = || -> Result<i64, String> {
                std::str::from_utf8(rest)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        format!("bad number in reply {:?}", String::from_utf8_lossy(body))
                    })
            };
            match tag {
                b'-' | b'!' => {
                    let e = String::from_utf8_lossy(rest).into_owned();
                    self.element_done(Reply::Error(e), out)
                }
                b'+' | b':' | b',' | b'#' | b'_' | b'(' => self.element_done(Reply::Other, out),
                b'$' | b'=' => match num()? {
                    n if n < 0 => self.element_done(Reply::Other, out),
                    n => {
                        self.bulk_left = n as u64 + 2;
                        if n <= 4096 && self.value.is_none() {
                            self.keeping = Some(Vec::with_capacity(n as usize + 2));
                        }
                    }
                },
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = num()?;
                    let n = if matches!(tag, b'%' | b'|') {
                        n.saturating_mul(2)
                    } else {
                        n
                    };
                    if n <= 0 {
                        self.element_done(Reply::Other, out);
                    } else {
                        if self.open.is_empty() {
                            self.nested.clear();
                        }
                        self.open.push((n as u64, n as u64));
                    }
                }
                _ => return Err(format!("unexpected reply type byte 0x{tag:02x}")),
            }
        }
        Ok(())
    }

    /// One element ended: the enclosing arrays count it; a top-level reply is emitted.
    fn element_done(&mut self, r: Reply, out: &mut Vec<Reply>) {
        let mut r = r;
        loop {
            if self.open.is_empty() {
                let nested = self.nested_err.take();
                self.values.push(self.value.take().unwrap_or_default());
                out.push(match (r, nested) {
                    (Reply::Error(e), _) => Reply::Error(e),
                    (_, Some(e)) => Reply::Error(e),
                    (r, None) => r,
                });
                return;
            }
            if let Reply::Error(e) = &r {
                self.nested_err.get_or_insert_with(|| e.clone());
            }
            let depth = self.open.len();
            let (left, total) = self.open.last_mut().expect("checked above");
            if let (Reply::Error(e), 1) = (&r, depth) {
                self.nested.push(((*total - *left) as usize, e.clone()));
            }
            *left -= 1;
            if *left > 0 {
                return;
            }
            self.open.pop();
            r = Reply::Other;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_of_any_size_are_skipped_with_their_errors_kept() {
        let mut s = ReplySkipper::default();
        let mut out = Vec::new();
        let big = format!("${}\r\n{}\r\n", 3 << 20, "x".repeat(3 << 20));
        let stream =
            format!("+OK\r\n{big}*2\r\n:1\r\n-ERR inner\r\n-WRONGTYPE no\r\n*0\r\n$-1\r\n");
        // fed in small pieces, as a socket delivers them
        for chunk in stream.as_bytes().chunks(7) {
            s.feed(chunk, &mut out).unwrap();
        }
        assert_eq!(
            out,
            vec![
                Reply::Other,
                Reply::Other,
                Reply::Error("ERR inner".into()),
                Reply::Error("WRONGTYPE no".into()),
                Reply::Other,
                Reply::Other,
            ]
        );
    }
}
