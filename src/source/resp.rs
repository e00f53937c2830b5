//! Reads RESP requests — the commands a primary sends its replicas after the snapshot, and what an
//! AOF file holds — one at a time from any [`BufRead`], with the byte length each took.
//!
//! Written by hand: the request form of RESP (an array of bulk strings) is a dozen lines, and the
//! client crates parse replies, not requests. Lengths are checked before anything is allocated
//! and each argument grows with the bytes actually read, so a corrupt or hostile length costs
//! nothing.

use std::io::{self, BufRead, Read};

/// Most arguments accepted in one command (Redis itself accepts up to `INT_MAX`; a replicated
/// `MSET` of a million pairs stays well inside this).
pub const MAX_ARGS: u64 = 1 << 26;

/// Largest argument accepted: Redis's `proto-max-bulk-len` can be raised to this at most.
pub const MAX_ARG_BYTES: u64 = 1 << 40;

/// One command: its arguments (the name first) and the bytes it took in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The name and the arguments, as sent.
    pub args: Vec<Vec<u8>>,
    /// Bytes the command took in the stream (what it adds to a replication offset).
    pub len: u64,
}

impl Command {
    /// The command's name, upper-cased (`SET`, `PEXPIREAT`…).
    pub fn name(&self) -> String {
        self.args
            .first()
            .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
            .unwrap_or_default()
    }

    /// True when the name is `name` (ASCII case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.args
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The command written as RESP (an array of bulk strings).
    pub fn to_resp(&self, out: &mut Vec<u8>) {
        write_resp(&self.args, out);
    }
}

/// Appends `args` as one RESP request.
pub fn write_resp<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    let mut r = crate::commands::Resp {
        buf: std::mem::take(out),
    };
    r.begin(args.len());
    for a in args {
        r.arg(a.as_ref());
    }
    *out = r.buf;
}

/// A stream that is not a sequence of RESP requests, or that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bytes that are not a RESP request.
    #[error("{name}: offset {offset}: expected {expected}, found {found}")]
    Protocol {
        /// The stream's name (a file, a server).
        name: String,
        /// Offset in the stream where the bad bytes start.
        offset: u64,
        /// What was expected there.
        expected: &'static str,
        /// What was found (escaped, at most a few dozen bytes).
        found: String,
    },
    /// The stream ended inside a command (a truncated AOF, a connection cut mid-command).
    #[error("{name}: offset {offset}: the stream ends inside a command that started there")]
    Truncated {
        /// The stream's name.
        name: String,
        /// Where the incomplete command starts.
        offset: u64,
    },
    /// Reading failed.
    #[error("{name}: offset {offset}: {source}")]
    Io {
        /// The stream's name.
        name: String,
        /// Where reading stopped.
        offset: u64,
        /// The cause.
        source: io::Error,
    },
}

/// Longest annotation line an AOF may hold (Redis's `AOF_ANNOTATION_LINE_MAX_LEN`).
pub const MAX_ANNOTATION: u64 = 1024;

/// What an AOF holds between its commands: an annotation line (`#…\r\n`), which Redis skips
/// when it loads the file. `aof-timestamp-enabled yes` writes `#TS:<unix seconds>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Offset of the `#` in the stream.
    pub offset: u64,
    /// The Unix time in seconds of a `#TS:` annotation; `None` for any other annotation.
    pub ts: Option<i64>,
}

/// One entry of an AOF: a command, or an annotation between commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A command.
    Command(Command),
    /// An annotation line.
    Annotation(Annotation),
}

/// A source of commands in order: a replica's stream, an AOF's files.
pub trait CommandSource: Send {
    /// The next command; `Ok(None)` at the end of the stream.
    fn next_command(&mut self) -> Result<Option<Command>, CommandError>;
    /// Offset of the next byte to read (the commands read so far end there).
    fn position(&self) -> u64;
    /// When the last command read was recorded, in Unix milliseconds, when the stream says (an
    /// AOF's last `#TS:` annotation); relative expirations are made absolute from it.
    fn recorded_at_ms(&self) -> Option<i64> {
        None
    }
}

impl<R: BufRead + Send> CommandSource for CommandReader<R> {
    fn next_command(&mut self) -> Result<Option<Command>, CommandError> {
        CommandReader::next_command(self)
    }
    fn position(&self) -> u64 {
        self.pos
    }
    fn recorded_at_ms(&self) -> Option<i64> {
        self.ts.map(|s| s.saturating_mul(1000))
    }
}

/// Reads commands one at a time. See the module documentation.
#[derive(Debug)]
pub struct CommandReader<R> {
    r: R,
    name: String,
    pos: u64,
    /// Annotation lines (`#…`) accepted between commands (an AOF).
    annotations: bool,
    /// The last `#TS:` annotation read.
    ts: Option<i64>,
}

impl<R: BufRead> CommandReader<R> {
    /// A reader of `r`, named `name` in errors, whose first byte is at `offset` of the stream.
    pub fn new(r: R, name: impl Into<String>, offset: u64) -> Self {
        CommandReader {
            r,
            name: name.into(),
            pos: offset,
            annotations: false,
            ts: None,
        }
    }

    /// Accepts AOF annotation lines (`#…\r\n`, at most [`MAX_ANNOTATION`] bytes) between
    /// commands: [`Self::next_command`] skips them (remembering the last `#TS:`), and
    /// [`Self::next_entry`] returns them.
    pub fn with_annotations(mut self) -> Self {
        self.annotations = true;
        self
    }

    /// The Unix seconds of the last `#TS:` annotation read.
    pub fn last_timestamp(&self) -> Option<i64> {
        self.ts
    }

    /// The stream's name (in errors).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next command or annotation; `Ok(None)` at a clean end of the stream.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, CommandError> {
        if self.annotations {
            let first = loop {
                match self.r.fill_buf() {
                    Ok([]) => return Ok(None),
                    Ok(b) => break b[0],
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(self.io(e)),
                }
            };
            if first == b'#' {
                return self.annotation().map(|a| Some(Entry::Annotation(a)));
            }
        }
        Ok(self.read_command()?.map(Entry::Command))
    }

    /// Reads one `#…` line.
    fn annotation(&mut self) -> Result<Annotation, CommandError> {
        let start = self.pos;
        let mut line = Vec::with_capacity(32);
        let got = (&mut self.r)
            .take(MAX_ANNOTATION)
            .read_until(b'\n', &mut line)
            .map_err(|e| self.io(e))?;
        self.pos += got as u64;
        if line.last() != Some(&b'\n') {
            if (got as u64) < MAX_ANNOTATION {
                return Err(self.truncated(start));
            }
            return Err(self.found(start, "an annotation line of at most 1024 bytes", &line));
        }
        let ts = line
            .strip_prefix(b"#TS:")
            .map(|t| t.strip_suffix(b"\r\n").unwrap_or(t))
            .map(|t| {
                std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .ok_or_else(|| self.found(start, "#TS:<unix seconds>", &line))
            })
            .transpose()?;
        if ts.is_some() {
            self.ts = ts;
        }
        Ok(Annotation { offset: start, ts })
    }

    /// Offset of the next byte to read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next command; `Ok(None)` at a clean end of the stream (between commands).
    pub fn next_command(&mut self) -> Result<Option<Command>, CommandError> {
        loop {
            match self.next_entry()? {
                Some(Entry::Command(c)) => return Ok(Some(c)),
                Some(Entry::Annotation(_)) => continue,
                None => return Ok(None),
            }
        }
    }

    fn read_command(&mut self) -> Result<Option<Command>, CommandError> {
        let start = self.pos;
        let first = match self.r.fill_buf() {
            Ok([]) => return Ok(None),
            Ok(b) => b[0],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return self.read_command(),
            Err(e) => return Err(self.io(e)),
        };
        if first != b'*' {
            return Err(self.protocol(start, "'*' (a RESP array of arguments)"));
        }
        let n = self.header(b'*', start, MAX_ARGS, "an argument count")?;
        if n == 0 {
            // Redis refuses it in an AOF; here it would be a command without a name
            return Err(self.found(start, "an argument count of at least 1", b"*0"));
        }
        let mut args = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            let at = self.pos;
            let len = self.header(b'$', start, MAX_ARG_BYTES, "a bulk string length")?;
            let mut arg = Vec::with_capacity(len.min(1 << 20) as usize);
            let got = (&mut self.r)
                .take(len)
                .read_to_end(&mut arg)
                .map_err(|e| self.io(e))?;
            self.pos += got as u64;
            if (got as u64) < len {
                return Err(self.truncated(start));
            }
            let mut crlf = [0u8; 2];
            self.exact(&mut crlf, start)?;
            if crlf != *b"\r\n" {
                self.pos -= 2;
                return Err(self.protocol(at, "CRLF after a bulk string"));
            }
            args.push(arg);
        }
        Ok(Some(Command {
            args,
            len: self.pos - start,
        }))
    }

    /// Reads `<tag><decimal>\r\n` with the decimal at most `max`.
    fn header(
        &mut self,
        tag: u8,
        start: u64,
        max: u64,
        what: &'static str,
    ) -> Result<u64, CommandError> {
        let at = self.pos;
        let mut line = Vec::with_capacity(24);
        // at most a tag, 20 digits and CRLF: a longer line is not a header
        let got = (&mut self.r)
            .take(24)
            .read_until(b'\n', &mut line)
            .map_err(|e| self.io(e))?;
        self.pos += got as u64;
        if line.last() != Some(&b'\n') {
            if got < 24 {
                return Err(self.truncated(start));
            }
            return Err(self.found(at, what, &line));
        }
        let body = line
            .strip_prefix(&[tag][..])
            .and_then(|l| l.strip_suffix(b"\r\n"));
        match body
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(n) if n <= max => Ok(n),
            _ => Err(self.found(at, what, &line)),
        }
    }

    fn exact(&mut self, buf: &mut [u8], start: u64) -> Result<(), CommandError> {
        match self.r.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(self.truncated(start)),
            Err(e) => Err(self.io(e)),
        }
    }

    fn protocol(&mut self, at: u64, expected: &'static str) -> CommandError {
        let found = self.r.fill_buf().map(|b| b.to_vec()).unwrap_or_default();
        self.found(at, expected, &found)
    }

    fn found(&self, at: u64, expected: &'static str, bytes: &[u8]) -> CommandError {
        CommandError::Protocol {
            name: self.name.clone(),
            offset: at,
            expected,
            found: crate::text::escape_bytes(&bytes[..bytes.len().min(32)]),
        }
    }

    fn truncated(&self, start: u64) -> CommandError {
        CommandError::Truncated {
            name: self.name.clone(),
            offset: start,
        }
    }

    fn io(&self, source: io::Error) -> CommandError {
        CommandError::Io {
            name: self.name.clone(),
            offset: self.pos,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Result<Vec<Command>, CommandError> {
        let mut r = CommandReader::new(bytes, "t", 100);
        let mut out = Vec::new();
        while let Some(c) = r.next_command()? {
            out.push(c);
        }
        Ok(out)
    }

    #[test]
    fn reads_commands_with_their_lengths() {
        let mut buf = Vec::new();
        write_resp(&[&b"SELECT"[..], b"3"], &mut buf);
        let first = buf.len() as u64;
        write_resp(&[&b"set"[..], b"k\r\n", b""], &mut buf);
        let cmds = all(&buf).unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].args, vec![b"SELECT".to_vec(), b"3".to_vec()]);
        assert_eq!(cmds[0].len, first);
        assert!(cmds[1].is("SET"));
        assert_eq!(cmds[1].args[1], b"k\r\n");
        assert_eq!(cmds[0].len + cmds[1].len, buf.len() as u64);
    }

    #[test]
    fn every_cut_is_a_truncation_at_the_command_start() {
        let mut buf = Vec::new();
        write_resp(&[&b"PING"[..]], &mut buf);
        let second = buf.len();
        write_resp(&[&b"SET"[..], b"key", b"value"], &mut buf);
        for cut in second + 1..buf.len() {
            match all(&buf[..cut]) {
                Err(CommandError::Truncated { offset, .. }) => {
                    assert_eq!(offset, 100 + second as u64, "cut at {cut}")
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_bytes_and_huge_lengths_are_errors_not_allocations() {
        let e = all(b"+OK\r\n").unwrap_err().to_string();
        assert!(e.contains("offset 100") && e.contains("RESP array"), "{e}");
        // a length the stream does not hold is a truncation, found without allocating it
        let e = all(b"*1\r\n$999999999\r\nx").unwrap_err();
        assert!(matches!(e, CommandError::Truncated { .. }), "{e}");
        let e = all(b"*1\r\n$99999999999999\r\nx").unwrap_err().to_string();
        assert!(e.contains("a bulk string length"), "{e}");
        let e = all(b"*99999999999999999\r\n").unwrap_err().to_string();
        assert!(e.contains("an argument count"), "{e}");
        let e = all(b"*1\r\n$3\r\nabcXY").unwrap_err().to_string();
        assert!(e.contains("CRLF"), "{e}");
    }
}
