//! The manifest of a multi-part AOF (Redis 7.0+), read as Redis's `aofLoadManifestFromFile`
//! reads it: one file per line as `key value` pairs (`file <name> seq <n> type <b|h|i>`, values
//! quoted as `sdssplitargs` allows, unknown keys ignored), `#` lines skipped, lines of at most
//! 1024 bytes, one base at most, increasing sequence numbers of the incremental files.

use super::AofError;
use std::path::Path;

/// The longest line Redis accepts (`MANIFEST_MAX_LINE`).
const MAX_LINE: usize = 1024;

/// The files a manifest lists, in its order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The base file (type `b`).
    pub base: Option<String>,
    /// Incremental files (type `i`), in manifest (sequence) order.
    pub incr: Vec<String>,
    /// History files (type `h`): left by a rewrite, not loaded.
    pub history: Vec<String>,
}

/// True when `text` reads as a manifest: its first line that is not a comment is a `file` entry.
pub fn looks_like_manifest(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n')
        .find(|l| !l.starts_with(b"#"))
        .and_then(|l| split_args(std::str::from_utf8(l).ok()?.trim()))
        .is_some_and(|a| a.len() >= 6 && a[0].eq_ignore_ascii_case("file"))
}

/// Parses the manifest at `path` (its bytes in `text`).
pub fn parse(path: &Path, text: &[u8]) -> Result<Manifest, AofError> {
    let err = |line: usize, message: String| AofError::Manifest {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut m = Manifest::default();
    let mut max_seq = 0i64;
    let mut n = 0;
    let mut rest = text;
    while !rest.is_empty() {
        n += 1;
        let (raw, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        if raw.starts_with(b"#") {
            continue;
        }
        if raw.len() + 1 > MAX_LINE {
            return Err(err(n, "a line longer than 1024 bytes".into()));
        }
        let line = std::str::from_utf8(raw)
            .map_err(|_| err(n, "a line that is not UTF-8 text".into()))?
            .trim_matches([' ', '\t', '\r']);
        let args = split_args(line)
            .filter(|a| a.len() >= 6 && a.len() % 2 == 0)
            .ok_or_else(|| {
                err(
                    n,
                    format!("expected `file <name> seq <n> type <b|h|i>`, found {line:?}"),
                )
            })?;
        let (mut name, mut seq, mut kind) = (None, 0i64, None);
        for kv in args.chunks(2) {
            match kv[0].to_ascii_lowercase().as_str() {
                "file" => name = Some(kv[1].clone()),
                "seq" => seq = kv[1].parse().unwrap_or(0),
                "type" => kind = kv[1].chars().next(),
                _ => {}
            }
        }
        let (Some(name), true, Some(kind)) = (name, seq != 0, kind) else {
            return Err(err(
                n,
                format!("a line without file, seq or type: {line:?}"),
            ));
        };
        if name.contains('/') || name == ".." || name == "." {
            return Err(err(n, format!("{name:?} is a path, not a file name")));
        }
        match kind {
            'b' if m.base.is_some() => return Err(err(n, "a second base file".into())),
            'b' => m.base = Some(name),
            'h' => m.history.push(name),
            'i' => {
                if seq <= max_seq {
                    return Err(err(
                        n,
                        format!("sequence {seq} after {max_seq}: not increasing"),
                    ));
                }
                max_seq = seq;
                m.incr.push(name);
            }
            k => return Err(err(n, format!("unknown file type {k:?} (b, h or i)"))),
        }
    }
    if n == 0 {
        return Err(err(0, "the manifest is empty".into()));
    }
    Ok(m)
}

/// Splits a line into arguments as Redis's `sdssplitargs` does for what a manifest holds: words
/// separated by blanks, `"…"` with backslash escapes (`\n`, `\"`, `\\`, `\xHH`…), `'…'` literal.
/// `None` when a quote is not closed or is followed by something other than a blank.
fn split_args(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Some(out);
        };
        let mut arg = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            loop {
                match chars.next()? {
                    c if c == first => break,
                    '\\' if first == '"' => match chars.next()? {
                        'n' => arg.push('\n'),
                        'r' => arg.push('\r'),
                        't' => arg.push('\t'),
                        'b' => arg.push('\u{8}'),
                        'a' => arg.push('\u{7}'),
                        'x' => {
                            let h: String = [chars.next()?, chars.next()?].iter().collect();
                            arg.push(char::from(u8::from_str_radix(&h, 16).ok()?));
                        }
                        c => arg.push(c),
                    },
                    '\\' if chars.peek() == Some(&'\'') => {
                        chars.next();
                        arg.push('\'');
                    }
                    c => arg.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_ascii_whitespace()) {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_ascii_whitespace() {
                    break;
                }
                arg.push(c);
                chars.next();
            }
        }
        out.push(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_redis_writes() {
        let text = b"file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.1.incr.aof seq 1 type h\nfile appendonly.aof.2.incr.aof seq 2 type i\nfile \"with space.aof\" seq 3 type i extra x\n";
        assert!(looks_like_manifest(text));
        let m = parse(Path::new("m"), text).unwrap();
        assert_eq!(m.base.as_deref(), Some("appendonly.aof.2.base.rdb"));
        assert_eq!(m.incr, ["appendonly.aof.2.incr.aof", "with space.aof"]);
        assert_eq!(m.history, ["appendonly.aof.1.incr.aof"]);
    }

    #[test]
    fn refuses_what_redis_refuses() {
        let bad: [&[u8]; 7] = [
            b"",
            b"file a seq 1\n",
            b"file a seq 1 type x\n",
            b"file a seq 1 type b\nfile b seq 2 type b\n",
            b"file a seq 2 type i\nfile b seq 2 type i\n",
            b"file ../a seq 1 type i\n",
            b"file \"a seq 1 type i\n",
        ];
        for t in bad {
            let e = parse(Path::new("m"), t).unwrap_err().to_string();
            assert!(e.starts_with("m: line "), "{e}");
        }
        assert!(!looks_like_manifest(b"*2\r\n$6\r\nSELECT\r\n"));
        assert!(!looks_like_manifest(b"REDIS0011"));
    }
}
