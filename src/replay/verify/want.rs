//! One key to verify: what the dump holds (copied out of the decoder's buffers, in one byte buffer
//! per key), the read commands that check it, and the comparison of each reply with the dump.
//!
//! Most keys are compared by their `DUMP` payload: a key whose serialized value (type byte,
//! encoding, every element, field TTLs, stream groups, module data) is byte for byte the dump's
//! holds the same value, so one `DUMP` and the key's expiry check it (see [`Want::dumped`]). A key
//! whose payload differs (another encoding, an older or newer server, a real difference) is read
//! again element by element as below ([`Want::expand`]), which decides; so does a value larger
//! than a chunk, which is never asked by `DUMP`. [`DumpStats`] stops asking `DUMP` for a type
//! whose payloads keep differing (a target that re-encodes it).
//!
//! Read element by element, every key starts with `TYPE` and ends with the key's expiry; collections read their length and
//! then their elements in chunks of at most [`ReadLimits::chunk_elems`] elements and about
//! [`ReadLimits::chunk_bytes`] bytes (LRANGE ranges, SMISMEMBER, ZRANGE ranges, HMGET + HPEXPIRETIME,
//! XRANGE … COUNT), big strings STRLEN + GETRANGE pieces, so that no reply is much larger than a
//! chunk. Replies are compared one by one as they arrive, in command order; the first difference
//! is the key's verdict and the key's later replies are only read past.
//!
//! This file holds what the dump holds and how a key moves through a connection; `want/reads.rs`
//! the read commands ([`Want::plan`], [`Want::encode_next`]), `want/compare.rs` the comparison of
//! the replies ([`Want::on_reply`]).

mod compare;
mod reads;

use crate::model::{Elem, Entry, StreamId, Value};
use crate::replay::wire::Redirect;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Sizes of the reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    /// Most elements read by one command.
    pub chunk_elems: usize,
    /// About the most bytes one command reads (one element larger than this is read alone).
    pub chunk_bytes: usize,
    /// The target has HPEXPIRETIME (7.4+).
    pub hfe: bool,
    /// The target has PEXPIRETIME (7.0+); older servers are asked PTTL.
    pub pexpiretime: bool,
    /// Now, in Unix ms (PTTL is turned into an expiry with it).
    pub now: i64,
    /// Allowed difference between the dump's and the target's key expiry, in ms; hash fields that
    /// expire within it are not read.
    pub tol: i64,
}

/// One read command of a key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Step {
    /// `DUMP`: the payload compared with the dump's byte for byte.
    Dump,
    Type,
    Get,
    StrLen,
    /// Byte range `[a, b)` of a string.
    GetRange(usize, usize),
    /// LLEN / SCARD / ZCARD / HLEN.
    Len,
    /// Element range `[a, b)` (list elements, set members, zset ranks, live hash fields, stream
    /// entries).
    LRange(usize, usize),
    SMisMember(usize, usize),
    ZRange(usize, usize),
    HMGet(usize, usize),
    HPExpireTime(usize, usize),
    XRange(usize, usize),
    XInfoGroups,
    Ttl,
}

#[derive(Debug)]
enum Kind {
    String,
    List,
    Set,
    ZSet,
    Hash,
    Stream(Box<StreamWant>),
    Module(String),
}

#[derive(Debug)]
struct StreamWant {
    ids: Vec<StreamId>,
    /// Per entry: the end of its field/value elements.
    fends: Vec<usize>,
    /// (name, last delivered id, pending entries with a consumer)
    groups: Vec<(Vec<u8>, String, usize)>,
}

/// What a key compared by `DUMP` keeps to be read again element by element (its `data` is the
/// dump's payload without the footer: `[KEY_META] type | value bytes`).
#[derive(Debug, Clone, Copy)]
struct Dumped {
    type_id: u8,
    /// The type byte read in the dump's dialect.
    encoding: crate::model::Encoding,
    /// Bytes of KEY_META before the type byte.
    meta_len: usize,
    /// Offset of the value in the dump (for decode errors).
    value_offset: u64,
}

/// The reads of a key compared by `DUMP`.
const DUMP_STEPS: [Step; 2] = [Step::Dump, Step::Ttl];
/// The reads of a string no longer than a chunk (as [`Want::plan`] makes them).
const GET_STEPS: [Step; 2] = [Step::Get, Step::Ttl];

/// Per type id, how many keys' `DUMP` payloads equalled the dump's and how many did not; shared by
/// the connections (which count) and the decoder (which decides how to compare the next key).
pub(crate) struct DumpStats {
    equal: Vec<AtomicU64>,
    differ: Vec<AtomicU64>,
}

impl Default for DumpStats {
    fn default() -> Self {
        DumpStats {
            equal: (0..256).map(|_| AtomicU64::new(0)).collect(),
            differ: (0..256).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl DumpStats {
    /// Keys of a type are asked `DUMP` until 64 of them differed and fewer than three in four
    /// were equal: then the target keeps that type in another encoding, and element reads alone
    /// are cheaper.
    pub(crate) fn worth_it(&self, type_id: u8) -> bool {
        let t = usize::from(type_id);
        let d = self.differ[t].load(Relaxed);
        d < 64 || self.equal[t].load(Relaxed) >= 3 * d
    }

    fn count(&self, type_id: u8, equal: bool) {
        let v = if equal { &self.equal } else { &self.differ };
        v[usize::from(type_id)].fetch_add(1, Relaxed);
    }

    /// Keys compared by `DUMP`: (equal, read again).
    pub(crate) fn totals(&self) -> (u64, u64) {
        let sum = |v: &[AtomicU64]| v.iter().map(|a| a.load(Relaxed)).sum();
        (sum(&self.equal), sum(&self.differ))
    }
}

/// A key of the dump on its way through a verify connection.
#[derive(Debug)]
pub(crate) struct Want {
    /// Position in the dump (mismatches are reported in dump order).
    pub seq: u64,
    /// Target database.
    pub db: u64,
    /// The key.
    pub key: Vec<u8>,
    expire_ms: Option<i64>,
    kind: Kind,
    /// Elements, concatenated (hash: field, value, field, value…; stream: field, value… of every
    /// entry; string: the value).
    data: Vec<u8>,
    ends: Vec<usize>,
    scores: Vec<f64>,
    /// Expiry (or -1) of each live hash field.
    fexp: Vec<i64>,
    /// Hash: fields in the dump, expiring ones included.
    total: usize,
    /// Zset: element indexes sorted by member (built at the first ZRANGE reply of a big zset).
    zindex: Vec<u32>,
    steps: Cow<'static, [Step]>,
    limits: ReadLimits,
    /// Compared by `DUMP` (its `data` is the payload).
    dumped: Option<Dumped>,
    /// Replies compared so far.
    pub replied: usize,
    /// Commands sent so far (ASKING not counted).
    pub sent: usize,
    /// The verdict, once a difference was found.
    pub diff: Option<String>,
    /// Read on the node named by an ASK: every command goes after `ASKING`.
    pub asking: bool,
    /// A node answered MOVED or ASK: the key is read again there.
    pub redirect: Option<Redirect>,
}

/// The verdict for a key the target does not hold.
const MISSING: &str = "missing on target";

/// The mark of a key whose `DUMP` payload differs from the dump's: it is read again by elements.
const READ_AGAIN: &str = "\0read again";

/// The start of the verdict for a key whose read answered WRONGTYPE, followed by the dump's type:
/// the target's type is asked afterwards for the keys listed (see [`type_differs`]).
pub(crate) const TYPE_DIFFERS: &str = "\0type differs from ";

/// The message for a key of type `got` on the target, when the verdict was [`TYPE_DIFFERS`].
pub(crate) fn type_differs(why: &str, got: Option<&str>) -> Option<String> {
    let want = why.strip_prefix(TYPE_DIFFERS)?;
    Some(match got {
        Some(t) => format!("type {t} on target, {want} in dump"),
        None => format!("type on target is not {want} (WRONGTYPE), {want} in dump"),
    })
}

impl Want {
    /// Copies what `v` (the value of `e`) must look like on the target, with the reads that check
    /// it. Hash fields that expire within the tolerance are not read (but still counted as
    /// possible).
    pub(crate) fn new(seq: u64, db: u64, e: &Entry<'_>, v: &Value<'_>, limits: ReadLimits) -> Want {
        Want::of_value(seq, db, &e.key, e.expire_ms, e.raw.len(), v, limits)
    }

    fn blank(seq: u64, db: u64, key: &[u8], expire_ms: Option<i64>, limits: ReadLimits) -> Want {
        Want {
            seq,
            db,
            key: key.to_vec(),
            expire_ms,
            kind: Kind::String,
            data: Vec::new(),
            ends: Vec::new(),
            scores: Vec::new(),
            fexp: Vec::new(),
            total: 0,
            zindex: Vec::new(),
            steps: Cow::Borrowed(&[]),
            limits,
            dumped: None,
            replied: 0,
            sent: 0,
            diff: None,
            asking: false,
            redirect: None,
        }
    }

    /// A key compared by its `DUMP` payload (and its expiry). Only for values whose payload fits
    /// in a chunk: the reply is about as large as the dump's value.
    pub(crate) fn dumped(seq: u64, db: u64, e: &Entry<'_>, limits: ReadLimits) -> Want {
        let mut w = Want::blank(seq, db, &e.key, e.expire_ms, limits);
        let meta = e.meta.unwrap_or_default();
        w.data.reserve_exact(meta.len() + 1 + e.raw.len());
        w.data.extend_from_slice(meta);
        w.data.push(e.type_id);
        w.data.extend_from_slice(e.raw);
        w.dumped = Some(Dumped {
            type_id: e.type_id,
            encoding: e.encoding(),
            meta_len: meta.len(),
            value_offset: e.value_offset,
        });
        w.steps = Cow::Borrowed(&DUMP_STEPS);
        w
    }

    /// The payload's size that decides whether a key goes by `DUMP` (see [`Want::dumped`]).
    pub(crate) fn dump_len(e: &Entry<'_>) -> usize {
        e.meta.map_or(0, <[u8]>::len) + 1 + e.raw.len()
    }

    /// This key was compared by `DUMP`, whose payload differed: [`Want::expand`] reads it again.
    pub(crate) fn read_again(&self) -> bool {
        self.dumped.is_some() && self.diff.as_deref() == Some(READ_AGAIN)
    }

    /// Counts a settled key compared by `DUMP` in `stats` (equal, or read again).
    pub(crate) fn count_in(&self, stats: &DumpStats) {
        if let Some(d) = self.dumped {
            match self.diff.as_deref() {
                None => stats.count(d.type_id, true),
                Some(READ_AGAIN) => stats.count(d.type_id, false),
                Some(_) => {}
            }
        }
    }

    /// The same key, to be read element by element: its value decoded again from the payload kept.
    pub(crate) fn expand(&self) -> Result<Want, crate::DecodeError> {
        let d = self.dumped.expect("expand is for keys compared by DUMP");
        let raw = &self.data[d.meta_len + 1..];
        let v = crate::decode::value::decode_value(
            d.encoding,
            raw,
            d.value_offset,
            &mut crate::decode::value::NoStore,
        )
        .map_err(|e| e.with_key(&self.key))?;
        let mut w = Want::of_value(
            self.seq,
            self.db,
            &self.key,
            self.expire_ms,
            raw.len(),
            &v,
            self.limits,
        );
        w.asking = self.asking;
        Ok(w)
    }

    fn of_value(
        seq: u64,
        db: u64,
        key: &[u8],
        expire_ms: Option<i64>,
        raw_len: usize,
        v: &Value<'_>,
        limits: ReadLimits,
    ) -> Want {
        let mut w = Want {
            // the decoded elements take about as much as the encoded value
            data: Vec::with_capacity(raw_len + 16),
            ends: Vec::with_capacity(match v {
                Value::Hash(f) => 2 * f.len(),
                // a string is `data` itself
                Value::String(_) | Value::Stream(_) | Value::Module(_) => 0,
                v => v.len(),
            }),
            ..Want::blank(seq, db, key, expire_ms, limits)
        };
        let push = |w: &mut Want, el: &Elem<'_>| {
            el.write_to(&mut w.data);
            w.ends.push(w.data.len());
        };
        w.kind = match v {
            Value::String(s) => {
                s.write_to(&mut w.data);
                Kind::String
            }
            Value::List(items) => {
                items.iter().for_each(|el| push(&mut w, el));
                Kind::List
            }
            Value::Set(items) => {
                items.iter().for_each(|el| push(&mut w, el));
                Kind::Set
            }
            Value::SortedSet(items) => {
                for (m, s) in items {
                    push(&mut w, m);
                    w.scores.push(*s);
                }
                Kind::ZSet
            }
            Value::Hash(fields) => {
                w.total = fields.len();
                for f in fields {
                    if f.expire_ms.is_some_and(|x| x <= limits.now + limits.tol) {
                        continue;
                    }
                    push(&mut w, &f.field);
                    push(&mut w, &f.value);
                    w.fexp.push(f.expire_ms.unwrap_or(-1));
                }
                Kind::Hash
            }
            Value::Stream(s) => {
                let mut sw = StreamWant {
                    ids: Vec::with_capacity(s.entries.len()),
                    fends: Vec::with_capacity(s.entries.len()),
                    groups: Vec::new(),
                };
                for en in &s.entries {
                    for (f, v) in &en.fields {
                        push(&mut w, f);
                        push(&mut w, v);
                    }
                    sw.ids.push(en.id);
                    sw.fends.push(w.ends.len());
                }
                sw.groups = s
                    .groups
                    .iter()
                    .map(|g| {
                        let live = g.pending.iter().filter(|p| p.consumer.is_some()).count();
                        (g.name.to_vec(), g.last_delivered.to_string(), live)
                    })
                    .collect();
                Kind::Stream(Box::new(sw))
            }
            Value::Module(m) => Kind::Module(m.id.name()),
        };
        w.steps = match w.kind {
            Kind::String if w.data.len() <= limits.chunk_bytes => Cow::Borrowed(&GET_STEPS),
            _ => Cow::Owned(w.plan()),
        };
        w
    }

    fn elem(&self, i: usize) -> &[u8] {
        let a = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[a..self.ends[i]]
    }

    fn elem_len(&self, i: usize) -> usize {
        self.ends[i] - if i == 0 { 0 } else { self.ends[i - 1] }
    }

    /// Nothing more to send: every command went, or the verdict is known.
    pub(crate) fn sending_done(&self) -> bool {
        self.sent == self.steps.len() || self.diff.is_some()
    }

    /// Every sent command has its reply, and nothing more will be sent.
    pub(crate) fn complete(&self) -> bool {
        self.replied == self.sent && self.sending_done()
    }

    /// Takes back the command [`Want::encode_next`] encoded last (the caller removed its bytes).
    pub(crate) fn unsend(&mut self) {
        self.sent -= 1;
    }

    /// Takes a redirection instead of a reply: nothing more is sent here, the replies still due
    /// are read past.
    pub(crate) fn on_redirect(&mut self, to: Redirect) {
        self.replied += 1;
        if self.redirect.is_none() {
            self.redirect = Some(to);
        }
        self.diff.get_or_insert_with(|| "redirected".into());
    }

    /// Starts over, to be read on the node a redirection named.
    pub(crate) fn restart(&mut self) -> Option<Redirect> {
        let to = self.redirect.take()?;
        self.replied = 0;
        self.sent = 0;
        self.diff = None;
        self.asking = to.ask;
        Some(to)
    }

    /// The type name `TYPE` must answer.
    fn type_name(&self) -> &str {
        match &self.kind {
            Kind::String => "string",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Hash => "hash",
            Kind::Stream(_) => "stream",
            Kind::Module(m) => m,
        }
    }
}
