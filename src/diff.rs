//! Key-by-key comparison of two datasets (`rdbkit diff A B`).
//!
//! Each side is something that can be opened as an [`Input`] as often as needed (a dump file, or a
//! live server read again). Memory is bounded by an index of key hashes, not by the data:
//!
//! 1. **Index A.** One `Slot` of 32 bytes per key of A: a 64-bit hash of (db, key), a 64-bit
//!    digest of the value (independent of the encoding: a listpack and a hashtable with the same
//!    fields have the same digest), a 32-bit digest of the hash field TTLs, the key's TTL and its
//!    type. The vector is sorted by key hash. Keys of A whose hashes collide (rare: 64 bits) are
//!    found among the sorted neighbours and read again in full: they are compared by their whole
//!    key.
//! 2. **Stream B.** Each key of B is looked up: absent from A is `extra`; another type is `type`;
//!    a key TTL further apart than the tolerance is `ttl`; another value digest or field-TTL
//!    digest makes the key a *suspect* (its db and key are kept, up to [`DiffOptions::suspect_bytes`]
//!    of key bytes; beyond that it is reported at once without its first differing element).
//! 3. **A again.** Keys of A that B did not have are `missing`; the values of the suspects are
//!    collected (canonical form: sets and hashes sorted), up to [`DiffOptions::detail_bytes`].
//! 4. **B again** (only when there are suspects): each suspect's value is compared with A's
//!    element by element and the first differing element is reported (`value`), and the first
//!    field whose TTL differs beyond the tolerance (`field_ttl`). Suspects left over by the
//!    budget of step 3 take further rounds of steps 3 and 4.
//!
//! Keys whose TTL has passed (as of [`DiffOptions::now_ms`]), hash fields whose TTL has passed and
//! empty collections are left out on both sides: a server loading the dump drops them too.
//!
//! A key of B whose 64-bit hash equals that of a *different* key of A (and not of the same key)
//! would be taken for it: with n keys on each side the chance is about n²/2⁶⁴ (5·10⁻⁶ for ten
//! million keys each).

use crate::error::DecodeError;
use crate::filter::Filter;
use crate::model::{Elem, Entry, Item, StreamId, Value, ValueType};
use crate::output::json;
use crate::source::Input;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io;

/// How [`diff`] compares.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Key TTLs (and field TTLs) that differ by at most this many milliseconds are equal.
    pub ttl_tolerance_ms: i64,
    /// The time against which TTLs are judged passed (Unix ms).
    pub now_ms: i64,
    /// Verify the CRC64 trailers.
    pub verify_checksum: bool,
    /// Keys compared (on both sides).
    pub filter: Filter,
    /// Most key bytes of suspects kept between the passes; beyond it a differing key is reported
    /// without its first differing element.
    pub suspect_bytes: usize,
    /// Most bytes of A's suspect values held at once for the element comparison (one value larger
    /// than this is still held, alone).
    pub detail_bytes: usize,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            ttl_tolerance_ms: 0,
            now_ms: 0,
            verify_checksum: true,
            filter: Filter::default(),
            suspect_bytes: 64 << 20,
            detail_bytes: 256 << 20,
        }
    }
}

/// The kind of a [`Difference`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// In A, not in B.
    Missing,
    /// In B, not in A.
    Extra,
    /// Of another type in B.
    Type,
    /// Another value.
    Value,
    /// Another key TTL.
    Ttl,
    /// Another hash field TTL.
    FieldTtl,
}

impl Kind {
    /// The name in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Type => "type",
            Kind::Value => "value",
            Kind::Ttl => "ttl",
            Kind::FieldTtl => "field_ttl",
        }
    }
}

/// Where two values first differ.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    /// Not determined (the key was reported without its second look, see
    /// [`DiffOptions::suspect_bytes`]).
    Unknown,
    /// Strings: the first differing byte and both lengths.
    String {
        /// Offset of the first differing byte (the shorter length when one is a prefix).
        offset: u64,
        /// Length in A.
        a_len: u64,
        /// Length in B.
        b_len: u64,
    },
    /// Lists: the first differing index and the elements there (`None` past the end).
    List {
        /// Index.
        index: u64,
        /// A's element.
        a: Option<Vec<u8>>,
        /// B's element.
        b: Option<Vec<u8>>,
    },
    /// Sets: the first member (in byte order) on one side only.
    Set {
        /// The member.
        member: Vec<u8>,
        /// In A.
        a: bool,
        /// In B.
        b: bool,
    },
    /// Sorted sets: the first member (in byte order) whose score differs or that one side lacks.
    SortedSet {
        /// The member.
        member: Vec<u8>,
        /// A's score.
        a: Option<f64>,
        /// B's score.
        b: Option<f64>,
    },
    /// Hashes: the first field (in byte order) whose value differs or that one side lacks.
    Hash {
        /// The field.
        field: Vec<u8>,
        /// A's value.
        a: Option<Vec<u8>>,
        /// B's value.
        b: Option<Vec<u8>>,
    },
    /// Streams: the first entry that differs (by ID order), or `None` when the entries are equal
    /// and the metadata or consumer groups differ.
    Stream {
        /// The first differing entry's ID (the smaller of the two at the first difference).
        id: Option<StreamId>,
        /// `entries`, `metadata` (length, last ID, …) or `groups`.
        part: &'static str,
    },
    /// Module values: their serialized bytes differ.
    Module,
}

/// One difference between A and B.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// What differs.
    pub kind: Kind,
    /// Database.
    pub db: u64,
    /// The key.
    pub key: Vec<u8>,
    /// Types on each side (`None` where the key is absent).
    pub types: (Option<ValueType>, Option<ValueType>),
    /// `value`: the first differing element.
    pub element: Option<Element>,
    /// `ttl` / `field_ttl`: the TTLs (absolute Unix ms, `None` for none) on each side.
    pub ttls: (Option<i64>, Option<i64>),
    /// `field_ttl`: the field.
    pub field: Option<Vec<u8>>,
}

impl Difference {
    fn new(kind: Kind, db: u64, key: &[u8]) -> Self {
        Difference {
            kind,
            db,
            key: key.to_vec(),
            types: (None, None),
            element: None,
            ttls: (None, None),
            field: None,
        }
    }

    /// The same difference seen from the other side (A and B exchanged).
    pub fn flipped(mut self) -> Self {
        self.kind = match self.kind {
            Kind::Missing => Kind::Extra,
            Kind::Extra => Kind::Missing,
            k => k,
        };
        self.types = (self.types.1, self.types.0);
        self.ttls = (self.ttls.1, self.ttls.0);
        self.element = self.element.map(|e| match e {
            Element::String {
                offset,
                a_len,
                b_len,
            } => Element::String {
                offset,
                a_len: b_len,
                b_len: a_len,
            },
            Element::List { index, a, b } => Element::List { index, a: b, b: a },
            Element::Set { member, a, b } => Element::Set { member, a: b, b: a },
            Element::SortedSet { member, a, b } => Element::SortedSet { member, a: b, b: a },
            Element::Hash { field, a, b } => Element::Hash { field, a: b, b: a },
            e => e,
        });
        self
    }

    /// One JSON object (no newline): `{"kind":…,"db":N,"key":…,…}`, keys and elements rendered
    /// as `export` renders them (a JSON string when UTF-8, else `{"base64":…}`).
    pub fn to_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"kind\":\"");
        out.extend_from_slice(self.kind.name().as_bytes());
        out.extend_from_slice(format!("\",\"db\":{},\"key\":", self.db).as_bytes());
        json::bytes(out, &self.key);
        let ty = |t: Option<ValueType>| t.map_or("null".to_string(), |t| format!("\"{t}\""));
        let ms = |t: Option<i64>| t.map_or("null".to_string(), |t| t.to_string());
        match self.kind {
            Kind::Missing => {
                out.extend_from_slice(format!(",\"type\":{}", ty(self.types.0)).as_bytes())
            }
            Kind::Extra => {
                out.extend_from_slice(format!(",\"type\":{}", ty(self.types.1)).as_bytes())
            }
            Kind::Type => out.extend_from_slice(
                format!(",\"a\":{},\"b\":{}", ty(self.types.0), ty(self.types.1)).as_bytes(),
            ),
            Kind::Ttl => out.extend_from_slice(
                format!(
                    ",\"type\":{},\"a\":{},\"b\":{}",
                    ty(self.types.0),
                    ms(self.ttls.0),
                    ms(self.ttls.1)
                )
                .as_bytes(),
            ),
            Kind::FieldTtl => {
                out.extend_from_slice(b",\"field\":");
                match &self.field {
                    Some(f) => json::bytes(out, f),
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(
                    format!(",\"a\":{},\"b\":{}", ms(self.ttls.0), ms(self.ttls.1)).as_bytes(),
                );
            }
            Kind::Value => {
                out.extend_from_slice(
                    format!(",\"type\":{},\"element\":", ty(self.types.0)).as_bytes(),
                );
                element_json(out, self.element.as_ref().unwrap_or(&Element::Unknown));
            }
        }
        out.push(b'}');
    }
}

fn opt_bytes(out: &mut Vec<u8>, b: &Option<Vec<u8>>) {
    match b {
        Some(b) => json::bytes(out, b),
        None => out.extend_from_slice(b"null"),
    }
}

fn opt_score(out: &mut Vec<u8>, s: Option<f64>) {
    match s {
        Some(s) if s.is_finite() => out.extend_from_slice(crate::text::f64_buf(s).as_slice()),
        Some(s) if s > 0.0 => out.extend_from_slice(b"\"inf\""),
        Some(_) => out.extend_from_slice(b"\"-inf\""),
        None => out.extend_from_slice(b"null"),
    }
}

fn element_json(out: &mut Vec<u8>, e: &Element) {
    match e {
        Element::Unknown => out.extend_from_slice(b"null"),
        Element::String {
            offset,
            a_len,
            b_len,
        } => out.extend_from_slice(
            format!("{{\"offset\":{offset},\"a_len\":{a_len},\"b_len\":{b_len}}}").as_bytes(),
        ),
        Element::List { index, a, b } => {
            out.extend_from_slice(format!("{{\"index\":{index},\"a\":").as_bytes());
            opt_bytes(out, a);
            out.extend_from_slice(b",\"b\":");
            opt_bytes(out, b);
            out.push(b'}');
        }
        Element::Set { member, a, b } => {
            out.extend_from_slice(b"{\"member\":");
            json::bytes(out, member);
            out.extend_from_slice(format!(",\"a\":{a},\"b\":{b}}}").as_bytes());
        }
        Element::SortedSet { member, a, b } => {
            out.extend_from_slice(b"{\"member\":");
            json::bytes(out, member);
            out.extend_from_slice(b",\"a\":");
            opt_score(out, *a);
            out.extend_from_slice(b",\"b\":");
            opt_score(out, *b);
            out.push(b'}');
        }
        Element::Hash { field, a, b } => {
            out.extend_from_slice(b"{\"field\":");
            json::bytes(out, field);
            out.extend_from_slice(b",\"a\":");
            opt_bytes(out, a);
            out.extend_from_slice(b",\"b\":");
            opt_bytes(out, b);
            out.push(b'}');
        }
        Element::Stream { id, part } => {
            out.extend_from_slice(b"{\"id\":");
            match id {
                Some(id) => out.extend_from_slice(format!("\"{id}\"").as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(format!(",\"part\":\"{part}\"}}").as_bytes());
        }
        Element::Module => out.extend_from_slice(b"{\"part\":\"module\"}"),
    }
}

/// What [`diff`] counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffSummary {
    /// Keys compared in A (after the filter; without expired keys and empty collections).
    pub a_keys: u64,
    /// Keys compared in B.
    pub b_keys: u64,
    /// Keys of both sides with equal type, value, TTL and field TTLs.
    pub equal: u64,
    /// Differences by kind (a key can have a `ttl` and a `value` difference).
    pub by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Keys of A or B whose hashes collided with another key of the same side (compared by full
    /// key).
    pub collisions: u64,
    /// Keys whose value was compared element by element (the second look).
    pub detailed: u64,
    /// Keys reported `value`/`field_ttl` without their first differing element (over the
    /// suspect budget).
    pub undetailed: u64,
    /// Module values of one module type on both sides whose serialized bytes differ: not
    /// reported as differences, since a module may serialize an equal value differently (as
    /// `verify` takes them).
    pub modules_by_bytes: u64,
    /// Bytes of the key index.
    pub index_bytes: u64,
    /// Passes over A and over B.
    pub passes: (u32, u32),
}

impl DiffSummary {
    /// Differences of all kinds.
    pub fn differences(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// The same summary seen from the other side.
    pub fn flipped(mut self) -> Self {
        std::mem::swap(&mut self.a_keys, &mut self.b_keys);
        self.passes = (self.passes.1, self.passes.0);
        let m = self.by_kind.remove("missing");
        let e = self.by_kind.remove("extra");
        if let Some(e) = e {
            self.by_kind.insert("missing", e);
        }
        if let Some(m) = m {
            self.by_kind.insert("extra", m);
        }
        self
    }
}

/// Why [`diff`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A side could not be opened (again).
    #[error("{side}: {source}")]
    Open {
        /// `A` or `B`.
        side: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A side does not decode.
    #[error("{side}: {source}")]
    Decode {
        /// `A` or `B`.
        side: &'static str,
        /// The error.
        #[source]
        source: DecodeError,
    },
    /// A key appears twice in one database of a side.
    #[error("{side}: db {db} key {key} appears more than once (`rdbkit info` lists such keys)")]
    Duplicate {
        /// `A` or `B`.
        side: &'static str,
        /// Database.
        db: u64,
        /// The key, quoted with `\xNN` escapes.
        key: String,
    },
    /// The output could not be written.
    #[error("writing the differences: {0}")]
    Write(#[source] io::Error),
    /// A side held other keys on a later read (a live server that changed between the passes).
    #[error("{0}")]
    Changed(String),
}

/// Internal error of one pass: decoding or the callback.
enum PassError {
    Decode(DecodeError),
    Write(io::Error),
    Dup(u64, Vec<u8>),
}

impl From<DecodeError> for PassError {
    fn from(e: DecodeError) -> Self {
        PassError::Decode(e)
    }
}

fn pass_err(side: &'static str, e: PassError) -> DiffError {
    match e {
        PassError::Decode(source) => DiffError::Decode { side, source },
        PassError::Write(e) => DiffError::Write(e),
        PassError::Dup(db, key) => DiffError::Duplicate {
            side,
            db,
            key: crate::text::escape_bytes(&key),
        },
    }
}

/// One key of A in the index.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    digest: u64,
    ttl: i64,
    field_ttls: u32,
    ty: u8,
    seen: bool,
}

const NO_TTL: i64 = i64::MIN;

fn key_hash(db: u64, key: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    db.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

fn type_code(t: ValueType) -> u8 {
    match t {
        ValueType::String => 0,
        ValueType::List => 1,
        ValueType::Set => 2,
        ValueType::SortedSet => 3,
        ValueType::Hash => 4,
        ValueType::Stream => 5,
        ValueType::Module => 6,
    }
}

fn type_of(c: u8) -> ValueType {
    match c {
        0 => ValueType::String,
        1 => ValueType::List,
        2 => ValueType::Set,
        3 => ValueType::SortedSet,
        4 => ValueType::Hash,
        5 => ValueType::Stream,
        _ => ValueType::Module,
    }
}

fn elem_bytes<'b>(e: &'b Elem<'_>, buf: &'b mut Vec<u8>) -> &'b [u8] {
    match e {
        Elem::Bytes(b) => b,
        Elem::Int(_) => {
            buf.clear();
            e.write_to(buf);
            buf
        }
    }
}

fn hash_of(parts: &[&[u8]]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for p in parts {
        h.write_usize(p.len());
        h.write(p);
    }
    h.finish()
}

fn score_bits(s: f64) -> [u8; 8] {
    // -0.0 and 0.0 are one score for Redis
    (if s == 0.0 { 0.0f64 } else { s }).to_bits().to_le_bytes()
}

/// The digests of a value: (value without field TTLs, field TTLs), `None` for a value a server
/// would not hold (an empty collection, every field of a hash expired).
fn digest(v: &Value<'_>, now_ms: i64) -> Option<(u64, u32)> {
    let mut buf = Vec::new();
    let mut buf2 = Vec::new();
    let unordered = |items: &mut dyn Iterator<Item = u64>| -> (u64, u64) {
        let mut n = 0u64;
        let mut sum = 0u64;
        for x in items {
            n += 1;
            sum = sum.wrapping_add(x);
        }
        (n, sum)
    };
    let d = match v {
        Value::String(s) => hash_of(&[b"s", elem_bytes(s, &mut buf)]),
        Value::List(items) => {
            if items.is_empty() {
                return None;
            }
            let mut h = std::hash::DefaultHasher::new();
            h.write(b"l");
            for e in items {
                let b = elem_bytes(e, &mut buf);
                h.write_usize(b.len());
                h.write(b);
            }
            h.finish()
        }
        Value::Set(items) => {
            let (n, sum) =
                unordered(&mut items.iter().map(|e| hash_of(&[elem_bytes(e, &mut buf)])));
            if n == 0 {
                return None;
            }
            hash_of(&[b"S", &n.to_le_bytes(), &sum.to_le_bytes()])
        }
        Value::SortedSet(items) => {
            let (n, sum) = unordered(
                &mut items
                    .iter()
                    .map(|(m, s)| hash_of(&[elem_bytes(m, &mut buf), &score_bits(*s)])),
            );
            if n == 0 {
                return None;
            }
            hash_of(&[b"z", &n.to_le_bytes(), &sum.to_le_bytes()])
        }
        Value::Hash(fields) => {
            let live = || {
                fields
                    .iter()
                    .filter(|f| f.expire_ms.is_none_or(|t| t > now_ms))
            };
            let (n, sum) = unordered(&mut live().map(|f| {
                let fb = elem_bytes(&f.field, &mut buf);
                let vb = elem_bytes(&f.value, &mut buf2);
                hash_of(&[fb, vb])
            }));
            if n == 0 {
                return None;
            }
            let (_, tsum) = unordered(&mut live().filter_map(|f| {
                f.expire_ms
                    .map(|t| hash_of(&[elem_bytes(&f.field, &mut buf), &t.to_le_bytes()]))
            }));
            let value = hash_of(&[b"h", &n.to_le_bytes(), &sum.to_le_bytes()]);
            return Some((value, (tsum ^ (tsum >> 32)) as u32));
        }
        Value::Stream(s) => {
            let mut h = std::hash::DefaultHasher::new();
            h.write(b"x");
            for e in &s.entries {
                e.id.hash(&mut h);
                for (f, v) in &e.fields {
                    let b = elem_bytes(f, &mut buf);
                    h.write_usize(b.len());
                    h.write(b);
                    let b = elem_bytes(v, &mut buf);
                    h.write_usize(b.len());
                    h.write(b);
                }
            }
            stream_meta(s).hash(&mut h);
            stream_groups(s).hash(&mut h);
            h.finish()
        }
        Value::Module(m) => hash_of(&[b"m", &m.id.0.to_le_bytes(), m.body]),
    };
    Some((d, 0))
}

/// A stream's metadata, as compared: length, last ID, first ID, max deleted ID, entries added,
/// idempotency state.
fn stream_meta(s: &crate::model::Stream<'_>) -> String {
    format!(
        "{} {} {:?} {:?} {:?} {:?}",
        s.length, s.last_id, s.first_id, s.max_deleted_id, s.entries_added, s.idmp
    )
}

/// A stream's consumer groups, as compared: names, last delivered IDs, pending entries (ID,
/// delivery time and count, consumer) and consumers (name, seen time, pending IDs). Not compared:
/// `entries_read` (older dumps lack it and servers estimate it) and `active_time` (older dumps
/// lack it).
fn stream_groups(s: &crate::model::Stream<'_>) -> String {
    let mut out = String::new();
    for g in &s.groups {
        out.push_str(&format!(
            "[{} {} ",
            crate::text::escape_bytes(&g.name),
            g.last_delivered
        ));
        for p in &g.pending {
            let c = p
                .consumer
                .and_then(|c| g.consumers.get(c))
                .map(|c| crate::text::escape_bytes(&c.name));
            out.push_str(&format!(
                "({} {} {} {:?})",
                p.id, p.delivery_time, p.delivery_count, c
            ));
        }
        for c in &g.consumers {
            out.push_str(&format!(
                "<{} {} {:?}>",
                crate::text::escape_bytes(&c.name),
                c.seen_time,
                c.pending
            ));
        }
        out.push(']');
    }
    out
}

/// A value in a form that compares element by element: collections without an order sorted.
#[derive(Debug, Clone, PartialEq)]
enum Canon {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    Zset(Vec<(Vec<u8>, f64)>),
    Hash(Vec<(Vec<u8>, Vec<u8>, Option<i64>)>),
    Stream {
        entries: Vec<(StreamId, Vec<Vec<u8>>)>,
        meta: String,
        groups: String,
    },
    Module(u64, Vec<u8>),
}

impl Canon {
    fn of(v: &Value<'_>, now_ms: i64) -> Canon {
        let b = |e: &Elem<'_>| e.to_bytes().into_owned();
        match v {
            Value::String(s) => Canon::Str(b(s)),
            Value::List(items) => Canon::List(items.iter().map(b).collect()),
            Value::Set(items) => {
                let mut v: Vec<Vec<u8>> = items.iter().map(b).collect();
                v.sort_unstable();
                Canon::Set(v)
            }
            Value::SortedSet(items) => {
                let mut v: Vec<(Vec<u8>, f64)> = items.iter().map(|(m, s)| (b(m), *s)).collect();
                v.sort_unstable_by(|x, y| x.0.cmp(&y.0));
                Canon::Zset(v)
            }
            Value::Hash(fields) => {
                let mut v: Vec<(Vec<u8>, Vec<u8>, Option<i64>)> = fields
                    .iter()
                    .filter(|f| f.expire_ms.is_none_or(|t| t > now_ms))
                    .map(|f| (b(&f.field), b(&f.value), f.expire_ms))
                    .collect();
                v.sort_unstable_by(|x, y| x.0.cmp(&y.0));
                Canon::Hash(v)
            }
            Value::Stream(s) => Canon::Stream {
                entries: s
                    .entries
                    .iter()
                    .map(|e| {
                        (
                            e.id,
                            e.fields.iter().flat_map(|(f, v)| [b(f), b(v)]).collect(),
                        )
                    })
                    .collect(),
                meta: stream_meta(s),
                groups: stream_groups(s),
            },
            Value::Module(m) => Canon::Module(m.id.0, m.body.to_vec()),
        }
    }

    /// Bytes held (about).
    fn size(&self) -> usize {
        let elems = |v: &[Vec<u8>]| v.iter().map(|e| e.len() + 24).sum::<usize>();
        match self {
            Canon::Str(s) => s.len(),
            Canon::List(v) | Canon::Set(v) => elems(v),
            Canon::Zset(v) => v.iter().map(|e| e.0.len() + 32).sum(),
            Canon::Hash(v) => v.iter().map(|e| e.0.len() + e.1.len() + 64).sum(),
            Canon::Stream {
                entries,
                meta,
                groups,
            } => {
                entries.iter().map(|e| elems(&e.1) + 40).sum::<usize>() + meta.len() + groups.len()
            }
            Canon::Module(_, b) => b.len(),
        }
    }
}

/// A field whose TTL differs: the field, A's TTL, B's TTL.
type FieldTtlDiff = (Vec<u8>, Option<i64>, Option<i64>);

/// The first difference of values of one type (`None`: equal), and the first field whose TTL
/// differs beyond `tol` among the fields both hold with equal values.
fn compare(a: &Canon, b: &Canon, tol: i64) -> (Option<Element>, Option<FieldTtlDiff>) {
    // merges two sorted lists by key, yielding the first key where they differ
    fn first_sorted<T, K: Ord + ?Sized>(
        a: &[T],
        b: &[T],
        key: impl Fn(&T) -> &K,
        same: impl Fn(&T, &T) -> bool,
    ) -> Option<(Option<usize>, Option<usize>)> {
        let (mut i, mut j) = (0, 0);
        loop {
            match (a.get(i), b.get(j)) {
                (None, None) => return None,
                (Some(_), None) => return Some((Some(i), None)),
                (None, Some(_)) => return Some((None, Some(j))),
                (Some(x), Some(y)) => match key(x).cmp(key(y)) {
                    std::cmp::Ordering::Less => return Some((Some(i), None)),
                    std::cmp::Ordering::Greater => return Some((None, Some(j))),
                    std::cmp::Ordering::Equal => {
                        if !same(x, y) {
                            return Some((Some(i), Some(j)));
                        }
                        i += 1;
                        j += 1;
                    }
                },
            }
        }
    }
    let mut field_ttl = None;
    let el = match (a, b) {
        (Canon::Str(x), Canon::Str(y)) => (x != y).then(|| {
            let offset = x.iter().zip(y).take_while(|(p, q)| p == q).count();
            Element::String {
                offset: offset as u64,
                a_len: x.len() as u64,
                b_len: y.len() as u64,
            }
        }),
        (Canon::List(x), Canon::List(y)) => {
            let n = x.len().max(y.len());
            (0..n)
                .find(|&i| x.get(i) != y.get(i))
                .map(|i| Element::List {
                    index: i as u64,
                    a: x.get(i).cloned(),
                    b: y.get(i).cloned(),
                })
        }
        (Canon::Set(x), Canon::Set(y)) => {
            first_sorted(x, y, |e| e.as_slice(), |_, _| true).map(|(i, j)| Element::Set {
                member: i
                    .map(|i| x[i].clone())
                    .or_else(|| j.map(|j| y[j].clone()))
                    .unwrap_or_default(),
                a: i.is_some(),
                b: j.is_some(),
            })
        }
        (Canon::Zset(x), Canon::Zset(y)) => first_sorted(
            x,
            y,
            |e| e.0.as_slice(),
            |p, q| score_bits(p.1) == score_bits(q.1),
        )
        .map(|(i, j)| Element::SortedSet {
            member: i
                .map(|i| x[i].0.clone())
                .or_else(|| j.map(|j| y[j].0.clone()))
                .unwrap_or_default(),
            a: i.map(|i| x[i].1),
            b: j.map(|j| y[j].1),
        }),
        (Canon::Hash(x), Canon::Hash(y)) => {
            let el = first_sorted(x, y, |e| e.0.as_slice(), |p, q| p.1 == q.1).map(|(i, j)| {
                Element::Hash {
                    field: i
                        .map(|i| x[i].0.clone())
                        .or_else(|| j.map(|j| y[j].0.clone()))
                        .unwrap_or_default(),
                    a: i.map(|i| x[i].1.clone()),
                    b: j.map(|j| y[j].1.clone()),
                }
            });
            // field TTLs of the fields on both sides
            let ttl_off = |p: Option<i64>, q: Option<i64>| match (p, q) {
                (Some(p), Some(q)) => (p - q).abs() > tol,
                (p, q) => p.is_some() != q.is_some(),
            };
            let (mut i, mut j) = (0, 0);
            while let (Some(p), Some(q)) = (x.get(i), y.get(j)) {
                match p.0.cmp(&q.0) {
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                    std::cmp::Ordering::Equal => {
                        if ttl_off(p.2, q.2) {
                            field_ttl = Some((p.0.clone(), p.2, q.2));
                            break;
                        }
                        i += 1;
                        j += 1;
                    }
                }
            }
            el
        }
        (
            Canon::Stream {
                entries: ea,
                meta: ma,
                groups: ga,
            },
            Canon::Stream {
                entries: eb,
                meta: mb,
                groups: gb,
            },
        ) => {
            let n = ea.len().max(eb.len());
            match (0..n).find(|&i| ea.get(i) != eb.get(i)) {
                Some(i) => {
                    let id = match (ea.get(i), eb.get(i)) {
                        (Some(p), Some(q)) => p.0.min(q.0),
                        (Some(p), None) => p.0,
                        (None, Some(q)) => q.0,
                        (None, None) => StreamId::default(),
                    };
                    Some(Element::Stream {
                        id: Some(id),
                        part: "entries",
                    })
                }
                None if ma != mb => Some(Element::Stream {
                    id: None,
                    part: "metadata",
                }),
                None if ga != gb => Some(Element::Stream {
                    id: None,
                    part: "groups",
                }),
                None => None,
            }
        }
        // a module may serialize an equal value differently (RedisBloom's Top-K holds heap
        // addresses, a vector set or a graph saved again is laid out anew): other bytes are
        // counted apart ([`DiffSummary::modules_by_bytes`]), another module type is a difference
        (Canon::Module(ia, _), Canon::Module(ib, _)) => (ia != ib).then_some(Element::Module),
        // types are compared before values
        _ => Some(Element::Unknown),
    };
    (el, field_ttl)
}

fn ttl_differs(a: i64, b: i64, tol: i64) -> bool {
    match (a == NO_TTL, b == NO_TTL) {
        (true, true) => false,
        (false, false) => (a as i128 - b as i128).abs() > tol as i128,
        _ => true,
    }
}

fn opt_ttl(t: i64) -> Option<i64> {
    (t != NO_TTL).then_some(t)
}

/// A key as one pass sees it: kept, and its digests (`None`: left out).
struct Seen {
    hash: u64,
    digest: u64,
    field_ttls: u32,
    ttl: i64,
    ty: u8,
}

fn look(e: &Entry<'_>, hash: u64, opts: &DiffOptions) -> Result<Option<Seen>, DecodeError> {
    if !opts.filter.matches(e) || e.is_expired_at(opts.now_ms) {
        return Ok(None);
    }
    let v = e.value()?;
    let Some((digest, field_ttls)) = self::digest(&v, opts.now_ms) else {
        return Ok(None);
    };
    Ok(Some(Seen {
        hash,
        digest,
        field_ttls,
        ttl: e.expire_ms.unwrap_or(NO_TTL),
        ty: type_code(e.value_type()),
    }))
}

/// Runs one pass over a side, calling `f` with each key kept (entry and its digests).
fn pass(
    side: &'static str,
    open: &mut dyn FnMut() -> io::Result<Input>,
    opts: &DiffOptions,
    mut f: impl FnMut(&Entry<'_>, Seen) -> Result<(), PassError>,
) -> Result<(), DiffError> {
    pass_with_hints(
        side,
        open,
        opts,
        &|_, _| true,
        &mut |_, _| {},
        &mut (),
        |_, e, s| f(e, s),
    )
}

/// [`pass`] over the keys for which `want(key hash, entry)` is true: the others are not decoded.
fn pass_some(
    side: &'static str,
    open: &mut dyn FnMut() -> io::Result<Input>,
    opts: &DiffOptions,
    want: &dyn Fn(u64, &Entry<'_>) -> bool,
    mut f: impl FnMut(&Entry<'_>, Seen) -> Result<(), PassError>,
) -> Result<(), DiffError> {
    pass_with_hints(
        side,
        open,
        opts,
        want,
        &mut |_, _| {},
        &mut (),
        |_, e, s| f(e, s),
    )
}

/// [`pass`], also calling `hint` with each RESIZEDB hint (keys in the database), both with `state`.
fn pass_with_hints<T>(
    side: &'static str,
    open: &mut dyn FnMut() -> io::Result<Input>,
    opts: &DiffOptions,
    want: &dyn Fn(u64, &Entry<'_>) -> bool,
    hint: &mut dyn FnMut(u64, &mut T),
    state: &mut T,
    mut f: impl FnMut(&mut T, &Entry<'_>, Seen) -> Result<(), PassError>,
) -> Result<(), DiffError> {
    let input = open().map_err(|source| DiffError::Open { side, source })?;
    input
        .decode(opts.verify_checksum, |item, _| -> Result<(), PassError> {
            match item {
                Item::Entry(e) => {
                    let hash = key_hash(e.db, &e.key);
                    if want(hash, &e) {
                        if let Some(s) = look(&e, hash, opts)? {
                            f(state, &e, s)?;
                        }
                    }
                }
                Item::ResizeDb { db_size, .. } => hint(db_size, state),
                _ => {}
            }
            Ok(())
        })
        .map(|_| ())
        .map_err(|e| pass_err(side, e))
}

/// A key of A whose hash collides with another of A's: compared by its whole key.
struct Exact {
    digest: u64,
    field_ttls: u32,
    ttl: i64,
    ty: u8,
    seen: bool,
}

/// Compares A (`open_a`) with B (`open_b`), calling `emit` with each difference; see the module
/// documentation for the passes and their memory. Each `open` is called once per pass over that
/// side.
pub fn diff(
    open_a: &mut dyn FnMut() -> io::Result<Input>,
    open_b: &mut dyn FnMut() -> io::Result<Input>,
    opts: &DiffOptions,
    emit: &mut dyn FnMut(&Difference) -> io::Result<()>,
) -> Result<DiffSummary, DiffError> {
    let mut sum = DiffSummary::default();
    let mut report = |d: Difference, sum: &mut DiffSummary| -> Result<(), PassError> {
        *sum.by_kind.entry(d.kind.name()).or_default() += 1;
        emit(&d).map_err(PassError::Write)
    };
    let tol = opts.ttl_tolerance_ms.max(0);

    // pass 1: index A (reserved from the dump's RESIZEDB hints, so that the vector does not
    // double past its need; never more than a few million slots on a hint's word alone)
    let mut index: Vec<Slot> = Vec::new();
    let mut hinted = |n: u64, index: &mut Vec<Slot>| index.reserve(n.min(1 << 22) as usize);
    pass_with_hints(
        "A",
        open_a,
        opts,
        &|_, _| true,
        &mut hinted,
        &mut index,
        |index, _, s| {
            index.push(Slot {
                hash: s.hash,
                digest: s.digest,
                ttl: s.ttl,
                field_ttls: s.field_ttls,
                ty: s.ty,
                seen: false,
            });
            Ok(())
        },
    )?;
    sum.passes.0 += 1;
    sum.a_keys = index.len() as u64;
    index.sort_unstable_by_key(|s| s.hash);
    let colliding: HashSet<u64> = index
        .windows(2)
        .filter(|w| w[0].hash == w[1].hash)
        .map(|w| w[0].hash)
        .collect();
    let mut exact: HashMap<(u64, Vec<u8>), Exact> = HashMap::new();
    if !colliding.is_empty() {
        index.retain(|s| !colliding.contains(&s.hash));
        pass("A", open_a, opts, |e, s| {
            if colliding.contains(&s.hash) {
                let prev = exact.insert(
                    (e.db, e.key.to_vec()),
                    Exact {
                        digest: s.digest,
                        field_ttls: s.field_ttls,
                        ttl: s.ttl,
                        ty: s.ty,
                        seen: false,
                    },
                );
                if prev.is_some() {
                    return Err(PassError::Dup(e.db, e.key.to_vec()));
                }
            }
            Ok(())
        })?;
        sum.passes.0 += 1;
        sum.collisions = exact.len() as u64;
    }
    index.shrink_to_fit();
    sum.index_bytes = (index.capacity() * std::mem::size_of::<Slot>()) as u64;

    // pass 2: stream B
    let mut suspects: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut suspect_bytes = 0usize;
    let mut b_keys = 0u64;
    let mut equal = 0u64;
    let mut matched = 0u64;
    pass("B", open_b, opts, |e, s| {
        b_keys += 1;
        let found: Option<(u64, u32, i64, u8)> = if colliding.contains(&s.hash) {
            match exact.get_mut(&(e.db, e.key.to_vec())) {
                Some(x) if x.seen => return Err(PassError::Dup(e.db, e.key.to_vec())),
                Some(x) => {
                    x.seen = true;
                    Some((x.digest, x.field_ttls, x.ttl, x.ty))
                }
                None => None,
            }
        } else {
            match index.binary_search_by_key(&s.hash, |x| x.hash) {
                Ok(i) => {
                    let x = &mut index[i];
                    if x.seen {
                        return Err(PassError::Dup(e.db, e.key.to_vec()));
                    }
                    x.seen = true;
                    Some((x.digest, x.field_ttls, x.ttl, x.ty))
                }
                Err(_) => None,
            }
        };
        let Some((digest, field_ttls, ttl, ty)) = found else {
            let mut d = Difference::new(Kind::Extra, e.db, &e.key);
            d.types.1 = Some(type_of(s.ty));
            return report(d, &mut sum);
        };
        matched += 1;
        let types = (Some(type_of(ty)), Some(type_of(s.ty)));
        if ty != s.ty {
            let mut d = Difference::new(Kind::Type, e.db, &e.key);
            d.types = types;
            return report(d, &mut sum);
        }
        let mut same = true;
        if ttl_differs(ttl, s.ttl, tol) {
            let mut d = Difference::new(Kind::Ttl, e.db, &e.key);
            d.types = types;
            d.ttls = (opt_ttl(ttl), opt_ttl(s.ttl));
            report(d, &mut sum)?;
            same = false;
        }
        if digest != s.digest || field_ttls != s.field_ttls {
            same = false;
            if suspect_bytes + e.key.len() <= opts.suspect_bytes {
                suspect_bytes += e.key.len() + 32;
                suspects.push((e.db, e.key.to_vec()));
            } else {
                sum.undetailed += 1;
                let kind = if digest != s.digest {
                    Kind::Value
                } else {
                    Kind::FieldTtl
                };
                let mut d = Difference::new(kind, e.db, &e.key);
                d.types = types;
                if kind == Kind::Value {
                    d.element = Some(Element::Unknown);
                }
                report(d, &mut sum)?;
            }
        }
        if same {
            equal += 1;
        }
        Ok(())
    })?;
    sum.passes.1 += 1;
    sum.b_keys = b_keys;

    // pass 3 (and later rounds): A again, for what B lacks and the suspects' values
    let mut pending: HashSet<(u64, Vec<u8>)> = suspects.into_iter().collect();
    // every key of A found in B and no value to look at again: no more passes
    let mut first = matched < sum.a_keys;
    while first || !pending.is_empty() {
        let mut held: HashMap<(u64, Vec<u8>), Canon> = HashMap::new();
        let mut held_bytes = 0usize;
        let report_missing = first;
        let pending_hashes: HashSet<u64> = pending.iter().map(|(db, k)| key_hash(*db, k)).collect();
        let seen = |hash: u64, e: &Entry<'_>| {
            if colliding.contains(&hash) {
                exact.get(&(e.db, e.key.to_vec())).is_some_and(|x| x.seen)
            } else {
                index
                    .binary_search_by_key(&hash, |x| x.hash)
                    .is_ok_and(|i| index[i].seen)
            }
        };
        // only the keys B lacked and the suspects are decoded
        let want = |hash: u64, e: &Entry<'_>| {
            (report_missing && !seen(hash, e)) || pending_hashes.contains(&hash)
        };
        pass_some("A", open_a, opts, &want, |e, s| {
            if report_missing && !seen(s.hash, e) {
                let mut d = Difference::new(Kind::Missing, e.db, &e.key);
                d.types.0 = Some(type_of(s.ty));
                report(d, &mut sum)?;
            }
            if !pending.is_empty() && (held.is_empty() || held_bytes < opts.detail_bytes) {
                let id = (e.db, e.key.to_vec());
                if pending.contains(&id) && !held.contains_key(&id) {
                    let c = Canon::of(&e.value()?, opts.now_ms);
                    held_bytes += c.size() + id.1.len();
                    held.insert(id, c);
                }
            }
            Ok(())
        })?;
        sum.passes.0 += 1;
        first = false;
        if held.is_empty() {
            if !pending.is_empty() {
                return Err(DiffError::Changed(format!(
                    "A: {} keys that differed were not found on the second read (a live server that changed?)",
                    pending.len()
                )));
            }
            break;
        }
        let held_hashes: HashSet<u64> = held.keys().map(|(db, k)| key_hash(*db, k)).collect();
        pass_some(
            "B",
            open_b,
            opts,
            &|h, _| held_hashes.contains(&h),
            |e, s| {
                let id = (e.db, e.key.to_vec());
                let Some(a) = held.get(&id) else {
                    return Ok(());
                };
                let b = Canon::of(&e.value()?, opts.now_ms);
                let types = (Some(type_of(s.ty)), Some(type_of(s.ty)));
                let (el, fttl) = compare(a, &b, tol);
                sum.detailed += 1;
                if let (Canon::Module(_, x), Canon::Module(_, y), None) = (a, &b, &el) {
                    if x != y {
                        sum.modules_by_bytes += 1;
                    }
                }
                if let Some(el) = el {
                    let mut d = Difference::new(Kind::Value, e.db, &e.key);
                    d.types = types;
                    d.element = Some(el);
                    report(d, &mut sum)?;
                }
                if let Some((field, ta, tb)) = fttl {
                    let mut d = Difference::new(Kind::FieldTtl, e.db, &e.key);
                    d.types = types;
                    d.field = Some(field);
                    d.ttls = (ta, tb);
                    report(d, &mut sum)?;
                }
                Ok(())
            },
        )?;
        sum.passes.1 += 1;
        for id in held.keys() {
            pending.remove(id);
        }
    }
    // keys compared equal in pass 2 less those whose second look found no difference
    sum.equal = equal;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::RdbWriter;

    fn run(a: Vec<u8>, b: Vec<u8>, opts: &DiffOptions) -> (Vec<String>, DiffSummary) {
        let mut lines = Vec::new();
        let sum = diff(
            &mut || Ok(Input::Bytes(a.clone())),
            &mut || Ok(Input::Bytes(b.clone())),
            opts,
            &mut |d| {
                let mut out = Vec::new();
                d.to_json(&mut out);
                lines.push(String::from_utf8(out).unwrap());
                Ok(())
            },
        )
        .unwrap();
        lines.sort();
        (lines, sum)
    }

    #[test]
    fn reports_each_kind_once() {
        let mut a = RdbWriter::new(12);
        a.select_db(0)
            .string_key(b"same", b"v", None)
            .string_key(b"gone", b"v", None)
            .string_key(b"retyped", b"v", None)
            .string_key(b"changed", b"abcdef", None)
            .string_key(b"ttl", b"v", Some(4_000_000_000_000));
        let mut b = RdbWriter::new(12);
        b.select_db(0)
            .string_key(b"ttl", b"v", Some(4_000_000_009_000))
            .string_key(b"changed", b"abcXef", None)
            .string_key(b"new", b"v", None)
            .string_key(b"same", b"v", None);
        // a set (type 2: count, then strings) of one member
        b.raw_key(b"retyped", 2, b"\x01\x01x", None);
        let opts = DiffOptions {
            ttl_tolerance_ms: 2000,
            ..Default::default()
        };
        let (lines, sum) = run(a.finish(), b.finish(), &opts);
        assert_eq!(
            lines,
            [
                r#"{"kind":"extra","db":0,"key":"new","type":"string"}"#,
                r#"{"kind":"missing","db":0,"key":"gone","type":"string"}"#,
                r#"{"kind":"ttl","db":0,"key":"ttl","type":"string","a":4000000000000,"b":4000000009000}"#,
                r#"{"kind":"type","db":0,"key":"retyped","a":"string","b":"set"}"#,
                r#"{"kind":"value","db":0,"key":"changed","type":"string","element":{"offset":3,"a_len":6,"b_len":6}}"#,
            ]
        );
        assert_eq!(
            (sum.a_keys, sum.b_keys, sum.equal, sum.differences()),
            (5, 5, 1, 5)
        );
        // the same dump: nothing
        let (lines, sum) = run(
            RdbWriter::new(12).finish(),
            RdbWriter::new(12).finish(),
            &opts,
        );
        assert!(lines.is_empty() && sum.differences() == 0);
    }
}
