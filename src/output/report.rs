//! `rdbkit report`: per-key memory estimates and the summaries built from them — biggest keys,
//! totals per type, encoding and database, an expiry histogram, and memory by key prefix as a tree.
//!
//! The estimates come from [`memory`], a model of how Redis 8.2 stores each value. A [`Report`]
//! keeps bounded state whatever the dump's size: the top-N heaps, the counters, and a prefix tree
//! whose nodes have at most [`ReportOptions::max_children`] children each (the rest are folded into
//! an `(other)` child).
//!
//! This file aggregates; `report/text.rs` renders the text tables and CSV rows, `report/json.rs`
//! the JSON (summary, prefix tree, one object per key), `report/memory.rs` is the cost model.
//!
//! ```
//! use rdbkit::output::report::{Report, ReportOptions};
//! let dump = rdbkit::testing::tiny_dump();
//! let mut report = Report::new(ReportOptions::default());
//! let mut scratch = Vec::new();
//! for item in rdbkit::Decoder::new(&dump) {
//!     if let rdbkit::Item::Entry(e) = item? {
//!         let rec = report.record(&e, &mut scratch)?;
//!         assert_eq!((rec.memory, rec.encoding), (40, "embstr"));
//!         report.add(&rec);
//!     }
//! }
//! assert_eq!(report.totals.keys, 1);
//! assert_eq!(report.top_by_memory()[0].key, b"greeting");
//! # Ok::<(), rdbkit::DecodeError>(())
//! ```

mod json;
pub mod memory;
mod text;

pub use json::record_json;
pub use text::{csv_row, display_bytes, group, human, CSV_HEADER};

use crate::error::DecodeError;
use crate::model::{Entry, ValueType};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// What one key costs, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Database number.
    pub db: u64,
    /// Key bytes.
    pub key: Vec<u8>,
    /// Logical type.
    pub value_type: ValueType,
    /// Encoding in a Redis 8.2 that loads the dump (`OBJECT ENCODING`).
    pub encoding: &'static str,
    /// Encoding in the dump itself.
    pub rdb_encoding: &'static str,
    /// Estimated bytes in memory (comparable with `MEMORY USAGE key SAMPLES 0`).
    pub memory: u64,
    /// Bytes of the serialized value in the dump.
    pub serialized: u64,
    /// Elements (1 for strings and modules, entries for streams).
    pub elements: u64,
    /// Bytes of the largest element (hash: field + value; stream: an entry's fields and values).
    pub largest_element: u64,
    /// Absolute expiry, Unix milliseconds.
    pub expire_ms: Option<i64>,
}

/// Report settings.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// How many keys the top lists hold.
    pub top: usize,
    /// Separator of key segments for the prefix tree.
    pub separator: Vec<u8>,
    /// Prefix tree depth (segments).
    pub depth: usize,
    /// Children kept per prefix node while aggregating; later new prefixes go to `(other)`.
    pub max_children: usize,
    /// "Now" for TTL buckets, Unix milliseconds.
    pub now_ms: i64,
    /// The loading server's encoding thresholds.
    pub limits: memory::Limits,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            top: 10,
            separator: b":".to_vec(),
            depth: 3,
            max_children: 2000,
            now_ms: 0,
            limits: memory::Limits::default(),
        }
    }
}

/// Keys and bytes of a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Keys.
    pub keys: u64,
    /// Estimated bytes.
    pub memory: u64,
    /// Elements.
    pub elements: u64,
    /// Keys with a TTL.
    pub expires: u64,
}

impl Totals {
    fn add(&mut self, r: &KeyRecord) {
        self.keys += 1;
        self.memory += r.memory;
        self.elements += r.elements;
        self.expires += u64::from(r.expire_ms.is_some());
    }
}

/// Expiry buckets, in [`EXPIRY_BUCKETS`] order.
pub const EXPIRY_BUCKETS: [&str; 5] = ["no TTL", "expired", "< 1h", "< 1d", "later"];

/// Children of a prefix node by memory, and the `(keys, memory)` of what was folded into
/// `(other)`.
pub type SortedChildren<'a> = (Vec<(&'a [u8], &'a PrefixNode)>, Option<(u64, u64)>);

/// A node of the prefix tree: all keys starting with `path` joined by the separator.
#[derive(Debug, Clone, Default)]
pub struct PrefixNode {
    /// Keys under the node.
    pub keys: u64,
    /// Estimated bytes under the node.
    pub memory: u64,
    /// Children by next segment.
    pub children: HashMap<Vec<u8>, PrefixNode>,
    /// Keys under the node whose next segment did not fit `max_children`.
    pub other: Option<Box<PrefixNode>>,
}

impl PrefixNode {
    fn add(&mut self, segments: &[&[u8]], memory: u64, max_children: usize) {
        self.keys += 1;
        self.memory += memory;
        let Some((first, rest)) = segments.split_first() else {
            return;
        };
        let child = if let Some(c) = self.children.get_mut(*first) {
            c
        } else if self.children.len() < max_children {
            self.children.entry(first.to_vec()).or_default()
        } else {
            let o = self.other.get_or_insert_with(Default::default);
            o.keys += 1;
            o.memory += memory;
            return;
        };
        child.add(rest, memory, max_children);
    }

    /// Children sorted by memory (largest first), `(other)` last, at most `limit` of them (the
    /// remainder merged into the `(other)` entry).
    pub fn sorted_children(&self, limit: usize) -> SortedChildren<'_> {
        let mut v: Vec<(&[u8], &PrefixNode)> = self
            .children
            .iter()
            .map(|(k, n)| (k.as_slice(), n))
            .collect();
        v.sort_by(|a, b| b.1.memory.cmp(&a.1.memory).then_with(|| a.0.cmp(b.0)));
        let mut other = self.other.as_ref().map(|o| (o.keys, o.memory));
        if v.len() > limit {
            for (_, n) in v.drain(limit..) {
                let o = other.get_or_insert((0, 0));
                o.0 += n.keys;
                o.1 += n.memory;
            }
        }
        (v, other)
    }
}

/// A top-N list kept as a min-heap of (score, sequence) so ties keep the earliest keys.
#[derive(Debug, Clone, Default)]
struct Top {
    n: usize,
    heap: BinaryHeap<Reverse<(u64, Reverse<u64>, usize)>>,
    items: Vec<Option<KeyRecord>>,
    free: Vec<usize>,
    seq: u64,
}

impl Top {
    fn new(n: usize) -> Self {
        Top {
            n,
            ..Default::default()
        }
    }

    fn offer(&mut self, score: u64, r: &KeyRecord) {
        self.seq += 1;
        if self.n == 0 {
            return;
        }
        if self.heap.len() == self.n {
            match self.heap.peek() {
                Some(Reverse((s, _, _))) if *s >= score => return,
                _ => {}
            }
            if let Some(Reverse((_, _, slot))) = self.heap.pop() {
                self.items[slot] = None;
                self.free.push(slot);
            }
        }
        let slot = match self.free.pop() {
            Some(s) => {
                self.items[s] = Some(r.clone());
                s
            }
            None => {
                self.items.push(Some(r.clone()));
                self.items.len() - 1
            }
        };
        self.heap.push(Reverse((score, Reverse(self.seq), slot)));
    }

    fn sorted(&self) -> Vec<&KeyRecord> {
        let mut v: Vec<_> = self.heap.iter().map(|Reverse(t)| *t).collect();
        v.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        v.iter()
            .filter_map(|(_, _, slot)| self.items[*slot].as_ref())
            .collect()
    }
}

/// The report state: feed it every selected key with [`Report::add`].
#[derive(Debug, Clone)]
pub struct Report {
    opts: ReportOptions,
    /// All keys.
    pub totals: Totals,
    /// Per database.
    pub dbs: BTreeMap<u64, Totals>,
    /// Per type name.
    pub types: BTreeMap<&'static str, Totals>,
    /// Per `type/encoding` (in-memory encoding).
    pub encodings: BTreeMap<String, Totals>,
    /// Per expiry bucket ([`EXPIRY_BUCKETS`]).
    pub expiry: [Totals; 5],
    /// Bytes of the dump's serialized values.
    pub serialized: u64,
    /// Keys whose estimate is not a model of the server (module values).
    pub unmodelled: Totals,
    /// Memory by prefix; the root covers every key.
    pub prefixes: PrefixNode,
    by_memory: Top,
    by_elements: Top,
}

impl Report {
    /// An empty report.
    pub fn new(opts: ReportOptions) -> Self {
        Report {
            by_memory: Top::new(opts.top),
            by_elements: Top::new(opts.top),
            opts,
            totals: Totals::default(),
            dbs: BTreeMap::new(),
            types: BTreeMap::new(),
            encodings: BTreeMap::new(),
            expiry: Default::default(),
            serialized: 0,
            unmodelled: Totals::default(),
            prefixes: PrefixNode::default(),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &ReportOptions {
        &self.opts
    }

    /// Decodes `e` (LZF blobs into `scratch`) and estimates what it costs.
    pub fn record(&self, e: &Entry<'_>, scratch: &mut Vec<u8>) -> Result<KeyRecord, DecodeError> {
        key_record(e, &self.opts.limits, scratch)
    }

    /// The expiry bucket of a record (index into [`EXPIRY_BUCKETS`]).
    pub fn expiry_bucket(&self, r: &KeyRecord) -> usize {
        match r.expire_ms {
            None => 0,
            Some(t) if t <= self.opts.now_ms => 1,
            Some(t) if t - self.opts.now_ms < 3_600_000 => 2,
            Some(t) if t - self.opts.now_ms < 86_400_000 => 3,
            Some(_) => 4,
        }
    }

    /// Adds a key to every summary.
    pub fn add(&mut self, r: &KeyRecord) {
        self.totals.add(r);
        self.dbs.entry(r.db).or_default().add(r);
        self.types.entry(r.value_type.name()).or_default().add(r);
        self.encodings
            .entry(format!("{}/{}", r.value_type.name(), r.encoding))
            .or_default()
            .add(r);
        let b = self.expiry_bucket(r);
        self.expiry[b].add(r);
        self.serialized += r.serialized;
        if !memory::is_modelled(r.value_type, r.encoding) {
            self.unmodelled.add(r);
        }
        let segments = split_prefix(&r.key, &self.opts.separator, self.opts.depth);
        self.prefixes
            .add(&segments, r.memory, self.opts.max_children.max(1));
        self.by_memory.offer(r.memory, r);
        self.by_elements.offer(r.elements, r);
    }

    /// The biggest keys by estimated memory, largest first.
    pub fn top_by_memory(&self) -> Vec<&KeyRecord> {
        self.by_memory.sorted()
    }

    /// The biggest keys by element count, largest first.
    pub fn top_by_elements(&self) -> Vec<&KeyRecord> {
        self.by_elements.sorted()
    }

    /// The keys a server loading the dump now would hold: every key but those whose TTL has
    /// passed at [`ReportOptions::now_ms`] (a primary drops them while loading), with their
    /// memory. [`Report::totals`] is the dump as saved.
    pub fn loaded_now(&self) -> Totals {
        let (t, x) = (&self.totals, &self.expiry[1]);
        Totals {
            keys: t.keys - x.keys,
            memory: t.memory - x.memory,
            elements: t.elements - x.elements,
            expires: t.expires - x.expires,
        }
    }

    /// Hash-table buckets of the keyspace (main and expires tables per database), which `MEMORY
    /// USAGE` leaves out.
    pub fn keyspace_overhead(&self) -> u64 {
        self.dbs
            .values()
            .map(|t| memory::keyspace_overhead(t.keys, t.expires))
            .sum()
    }
}

/// Decodes `e` and estimates its memory with `limits`.
pub fn key_record(
    e: &Entry<'_>,
    limits: &memory::Limits,
    scratch: &mut Vec<u8>,
) -> Result<KeyRecord, DecodeError> {
    let v = e.value_in(scratch)?;
    let est = limits.estimate(e, &v);
    Ok(KeyRecord {
        db: e.db,
        key: e.key.to_vec(),
        value_type: e.value_type(),
        encoding: est.encoding,
        rdb_encoding: e.encoding().name(),
        memory: est.bytes,
        serialized: e.raw.len() as u64,
        elements: v.len() as u64,
        largest_element: memory::largest_element(&v),
        expire_ms: e.expire_ms,
    })
}

/// The path of `key` in the prefix tree: up to `depth` prefixes, each ending with `sep`; when the
/// key has fewer separators than that, its remaining part ends the path as a leaf (the key itself).
/// `a:b:c` → `["a:", "b:"]` at depth 2, `["a:", "b:", "c"]` at depth 3; `abc` → `["abc"]`.
fn split_prefix<'k>(key: &'k [u8], sep: &[u8], depth: usize) -> Vec<&'k [u8]> {
    let mut out = Vec::new();
    let mut rest = key;
    while out.len() < depth {
        match (!sep.is_empty())
            .then(|| rest.windows(sep.len()).position(|w| w == sep))
            .flatten()
        {
            Some(i) => {
                out.push(&rest[..i + sep.len()]);
                rest = &rest[i + sep.len()..];
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    out
}

/// Parses a size with an optional binary unit: `512`, `10k`, `1.5MB`, `2GiB` (k/m/g = 1024ⁿ).
///
/// ```
/// use rdbkit::output::report::parse_size;
/// assert_eq!(parse_size("512"), Ok(512));
/// assert_eq!(parse_size("10k"), Ok(10 * 1024));
/// assert_eq!(parse_size("1.5MB"), Ok(1536 * 1024));
/// assert!(parse_size("ten").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("bad size {s:?} (e.g. 512, 10k, 1.5MB)")),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?} (e.g. 512, 10k, 1.5MB)"))?;
    Ok((v * mult as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_split_to_depth() {
        assert_eq!(split_prefix(b"a:b:c", b":", 2), vec![&b"a:"[..], b"b:"]);
        assert_eq!(
            split_prefix(b"a:b:c", b":", 5),
            vec![&b"a:"[..], b"b:", b"c"]
        );
        assert_eq!(split_prefix(b"a:b:c", b":", 1), vec![&b"a:"[..]]);
        assert_eq!(split_prefix(b"abc", b":", 3), vec![&b"abc"[..]]);
        assert_eq!(split_prefix(b"a::b", b"::", 3), vec![&b"a::"[..], b"b"]);
        assert_eq!(split_prefix(b"a:", b":", 3), vec![&b"a:"[..], b""]);
        assert!(split_prefix(b"a:b", b":", 0).is_empty());
    }

    #[test]
    fn top_keeps_the_largest() {
        let mut t = Top::new(2);
        for (i, m) in [5u64, 1, 9, 7, 9].iter().enumerate() {
            let r = KeyRecord {
                db: 0,
                key: vec![b'a' + i as u8],
                value_type: ValueType::String,
                encoding: "raw",
                rdb_encoding: "string",
                memory: *m,
                serialized: 0,
                elements: 1,
                largest_element: 0,
                expire_ms: None,
            };
            t.offer(*m, &r);
        }
        let keys: Vec<_> = t.sorted().iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys, vec![b"c".to_vec(), b"e".to_vec()]);
    }

    #[test]
    fn prefix_tree_bounds_children() {
        let mut root = PrefixNode::default();
        for k in [&b"a:1"[..], b"a:2", b"b:1", b"c:1"] {
            root.add(&split_prefix(k, b":", 2), 10, 2);
        }
        assert_eq!(root.keys, 4);
        assert_eq!(root.children.len(), 2);
        assert_eq!(root.other.as_ref().map(|o| o.keys), Some(1));
        assert_eq!(root.children[&b"a:"[..]].keys, 2);
    }
}
