//! RESP command generation: an entry becomes plain commands (SET, RPUSH, SADD, ZADD, HSET, XADD +
//! XSETID/XGROUP/XCLAIM, PEXPIREAT, HPEXPIREAT) or a RESTORE, encoded straight into a byte buffer.
//! Used by `rdbkit export --format resp` and by the importer's command path.

use crate::model::{Elem, Entry, HashField, Value};
use crate::payload;
use std::io::Write as _;

/// A RESP request buffer.
#[derive(Debug, Default, Clone)]
pub struct Resp {
    /// Encoded commands.
    pub buf: Vec<u8>,
}

impl Resp {
    /// Starts a command of `n` arguments.
    #[inline]
    pub fn begin(&mut self, n: usize) {
        self.header(b'*', n);
    }

    #[inline]
    fn header(&mut self, tag: u8, n: usize) {
        // lengths are mostly 1–3 digits: written without the general integer formatter
        match n {
            0..=9 => self
                .buf
                .extend_from_slice(&[tag, b'0' + n as u8, b'\r', b'\n']),
            10..=99 => self.buf.extend_from_slice(&[
                tag,
                b'0' + (n / 10) as u8,
                b'0' + (n % 10) as u8,
                b'\r',
                b'\n',
            ]),
            _ => {
                let mut b = crate::model::itoa_buf(n as i64);
                self.buf.push(tag);
                self.buf.extend_from_slice(b.as_slice());
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// One bulk-string argument.
    #[inline]
    pub fn arg(&mut self, a: &[u8]) {
        self.buf.reserve(a.len() + 16);
        self.header(b'$', a.len());
        self.buf.extend_from_slice(a);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer argument.
    #[inline]
    pub fn arg_int(&mut self, i: i64) {
        if let 0..=9 = i {
            self.buf
                .extend_from_slice(&[b'$', b'1', b'\r', b'\n', b'0' + i as u8, b'\r', b'\n']);
            return;
        }
        let mut b = crate::model::itoa_buf(i);
        let s = b.as_slice();
        self.header(b'$', s.len());
        self.buf.extend_from_slice(s);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An element argument (integers as decimal text).
    #[inline]
    pub fn arg_elem(&mut self, e: &Elem<'_>) {
        match e {
            Elem::Bytes(b) => self.arg(b),
            Elem::Int(i) => self.arg_int(*i),
        }
    }

    /// A score argument, in a form `strtod` reads back to the same double.
    pub fn arg_f64(&mut self, f: f64) {
        if f == f64::INFINITY {
            self.arg(b"inf")
        } else if f == f64::NEG_INFINITY {
            self.arg(b"-inf")
        } else {
            self.arg(crate::model::f64_buf(f).as_slice());
        }
    }

    /// A whole command.
    pub fn cmd(&mut self, args: &[&[u8]]) {
        self.begin(args.len());
        for a in args {
            self.arg(a);
        }
    }

    /// Bytes buffered.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// What the command generator may use on the target.
#[derive(Debug, Clone, Copy)]
pub struct CommandOptions {
    /// Most elements per variadic command (RPUSH, SADD, ZADD, HSET).
    pub max_elements: usize,
    /// Most argument bytes per command; also the largest string sent in one SET (bigger strings go
    /// as SET + APPEND chunks).
    pub max_bytes: usize,
    /// Target supports XSETID ENTRIESADDED/MAXDELETEDID and XGROUP CREATE ENTRIESREAD (7.0+).
    pub stream_v2: bool,
    /// Target supports hash field TTLs (HPEXPIREAT, 7.4+).
    pub field_ttl: bool,
    /// Footer version for RESTORE payloads of values that can only travel as RESTORE (modules).
    pub restore_version: u16,
}

impl Default for CommandOptions {
    fn default() -> Self {
        CommandOptions {
            max_elements: 1024,
            max_bytes: 1 << 20,
            stream_v2: true,
            field_ttl: true,
            restore_version: 12,
        }
    }
}

/// Why a value cannot be written with plain commands on this target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unrepresentable {
    /// The hash has field TTLs and the target predates them.
    #[error("hash field TTLs need Redis 7.4+ on the target")]
    FieldTtl,
    /// One element alone exceeds the per-command size limit.
    #[error("an element of {0} bytes exceeds the target's bulk length limit")]
    ElementTooLarge(usize),
}

/// Writes `items` as `CMD key a b c…` commands, split by element count and bytes.
fn chunked<T>(
    out: &mut Resp,
    [cmd, key]: [&[u8]; 2],
    items: &[T],
    args_per_item: usize,
    size: impl Fn(&T) -> usize,
    mut write: impl FnMut(&mut Resp, &T),
    o: &CommandOptions,
) -> Result<usize, Unrepresentable> {
    let mut n = 0;
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        let mut bytes = 0;
        while j < items.len() && j - i < o.max_elements {
            let s = size(&items[j]);
            if s > o.max_bytes {
                return Err(Unrepresentable::ElementTooLarge(s));
            }
            if j > i && bytes + s > o.max_bytes {
                break;
            }
            bytes += s;
            j += 1;
        }
        out.begin(2 + (j - i) * args_per_item);
        out.arg(cmd);
        out.arg(key);
        for it in &items[i..j] {
            write(out, it);
        }
        n += 1;
        i = j;
    }
    Ok(n)
}

/// Appends the commands that recreate `entry` (whose decoded value is `value`) to `out`; returns
/// how many commands were written. The caller selects the database.
pub fn entry_commands(
    out: &mut Resp,
    entry: &Entry<'_>,
    value: &Value<'_>,
    o: &CommandOptions,
) -> Result<usize, Unrepresentable> {
    let key: &[u8] = &entry.key;
    if let Value::Hash(fields) = value {
        if !o.field_ttl && fields.iter().any(|f| f.expire_ms.is_some()) {
            return Err(Unrepresentable::FieldTtl);
        }
    }
    let mut n = match value {
        Value::String(s) => string_commands(out, key, s, o),
        Value::List(v) => chunked(
            out,
            [b"RPUSH", key],
            v,
            1,
            Elem::len,
            |r, e| r.arg_elem(e),
            o,
        )?,
        Value::Set(v) => chunked(
            out,
            [b"SADD", key],
            v,
            1,
            Elem::len,
            |r, e| r.arg_elem(e),
            o,
        )?,
        // ZADD turns a -0 score into 0; only RESTORE reproduces it
        Value::SortedSet(v) if v.iter().any(|(_, s)| *s == 0.0 && s.is_sign_negative()) => {
            return Ok(restore_command(out, entry, o))
        }
        Value::SortedSet(v) => chunked(
            out,
            [b"ZADD", key],
            v,
            2,
            |(m, _)| m.len() + 24,
            |r, (m, s)| {
                r.arg_f64(*s);
                r.arg_elem(m);
            },
            o,
        )?,
        Value::Hash(v) => {
            let mut n = chunked(
                out,
                [b"HSET", key],
                v,
                2,
                |f| f.field.len() + f.value.len(),
                |r, f| {
                    r.arg_elem(&f.field);
                    r.arg_elem(&f.value);
                },
                o,
            )?;
            n += field_ttl_commands(out, key, v, o)?;
            n
        }
        Value::Stream(s) => stream_commands(out, key, s, o),
        Value::Module(_) => return Ok(restore_command(out, entry, o)),
    };
    if let Some(ms) = entry.expire_ms {
        out.begin(3);
        out.arg(b"PEXPIREAT");
        out.arg(key);
        out.arg_int(ms);
        n += 1;
    }
    Ok(n)
}

/// `RESTORE key ttl payload [ABSTTL]` for values that only RESTORE can carry exactly.
fn restore_command(out: &mut Resp, entry: &Entry<'_>, o: &CommandOptions) -> usize {
    out.begin(if entry.expire_ms.is_some() { 5 } else { 4 });
    out.arg(b"RESTORE");
    out.arg(&entry.key);
    out.arg_int(entry.expire_ms.unwrap_or(0));
    out.arg(&payload::for_entry(entry, o.restore_version));
    if entry.expire_ms.is_some() {
        out.arg(b"ABSTTL");
    }
    1
}

fn string_commands(out: &mut Resp, key: &[u8], s: &Elem<'_>, o: &CommandOptions) -> usize {
    let bytes = s.to_bytes();
    let mut chunks = bytes.chunks(o.max_bytes.max(1));
    let first = chunks.next().unwrap_or_default();
    out.cmd(&[b"SET", key, first]);
    1 + chunks
        .map(|c| {
            out.cmd(&[b"APPEND", key, c]);
        })
        .count()
}

fn field_ttl_commands(
    out: &mut Resp,
    key: &[u8],
    fields: &[HashField<'_>],
    o: &CommandOptions,
) -> Result<usize, Unrepresentable> {
    let mut with_ttl: Vec<&HashField<'_>> =
        fields.iter().filter(|f| f.expire_ms.is_some()).collect();
    with_ttl.sort_by_key(|f| f.expire_ms);
    let mut n = 0;
    for group in with_ttl.chunk_by(|a, b| a.expire_ms == b.expire_ms) {
        for part in group.chunks(o.max_elements.max(1)) {
            out.begin(5 + part.len());
            out.arg(b"HPEXPIREAT");
            out.arg(key);
            out.arg_int(part[0].expire_ms.unwrap_or(0));
            out.arg(b"FIELDS");
            out.arg_int(part.len() as i64);
            for f in part {
                out.arg_elem(&f.field);
            }
            n += 1;
        }
    }
    Ok(n)
}

fn id_arg(out: &mut Resp, id: crate::model::StreamId) {
    let mut tmp = [0u8; 48];
    let mut w = &mut tmp[..];
    let _ = write!(w, "{}-{}", id.ms, id.seq);
    let n = 48 - w.len();
    out.arg(&tmp[..n]);
}

fn stream_commands(
    out: &mut Resp,
    key: &[u8],
    s: &crate::model::Stream<'_>,
    o: &CommandOptions,
) -> usize {
    let mut n = 0;
    for e in &s.entries {
        out.begin(3 + 2 * e.fields.len());
        out.arg(b"XADD");
        out.arg(key);
        id_arg(out, e.id);
        for (f, v) in &e.fields {
            out.arg_elem(f);
            out.arg_elem(v);
        }
        n += 1;
    }
    if s.entries.is_empty() {
        // an empty stream: create it through a throw-away group (works for any last ID, unlike
        // XADD … MAXLEN 0), then remove the group
        out.cmd(&[
            b"XGROUP",
            b"CREATE",
            key,
            b"rdbkit-tmp-group",
            b"0",
            b"MKSTREAM",
        ]);
        out.cmd(&[b"XGROUP", b"DESTROY", key, b"rdbkit-tmp-group"]);
        n += 2;
    }
    match (o.stream_v2, s.entries_added, s.max_deleted_id) {
        (true, Some(added), Some(maxdel)) => {
            out.begin(7);
            out.arg(b"XSETID");
            out.arg(key);
            id_arg(out, s.last_id);
            out.arg(b"ENTRIESADDED");
            out.arg_int(added.min(i64::MAX as u64) as i64);
            out.arg(b"MAXDELETEDID");
            id_arg(out, maxdel);
        }
        _ => {
            out.begin(3);
            out.arg(b"XSETID");
            out.arg(key);
            id_arg(out, s.last_id);
        }
    }
    n += 1;
    for g in &s.groups {
        let with_read = o.stream_v2 && g.entries_read.is_some();
        out.begin(if with_read { 7 } else { 5 });
        out.arg(b"XGROUP");
        out.arg(b"CREATE");
        out.arg(key);
        out.arg(&g.name);
        id_arg(out, g.last_delivered);
        if let (true, Some(r)) = (with_read, g.entries_read) {
            out.arg(b"ENTRIESREAD");
            out.arg_int(r.min(i64::MAX as u64) as i64);
        }
        n += 1;
        for c in &g.consumers {
            out.cmd(&[b"XGROUP", b"CREATECONSUMER", key, &g.name, &c.name]);
            n += 1;
        }
        for p in &g.pending {
            let Some(c) = p.consumer.and_then(|c| g.consumers.get(c)) else {
                continue;
            };
            out.begin(12);
            for a in [&b"XCLAIM"[..], key, &g.name, &c.name, b"0"] {
                out.arg(a);
            }
            id_arg(out, p.id);
            out.arg(b"TIME");
            out.arg_int(p.delivery_time);
            out.arg(b"RETRYCOUNT");
            out.arg_int(p.delivery_count.min(i64::MAX as u64) as i64);
            out.arg(b"FORCE");
            out.arg(b"JUSTID");
            n += 1;
        }
    }
    n
}
