//! `rdbkit report`: per-key memory estimates and the summaries built from them — biggest keys,
//! totals per type, encoding and database, an expiry histogram, and memory by key prefix as a tree.
//!
//! The estimates come from [`memory`], a model of how Redis 8.2 stores each value. A [`Report`]
//! keeps bounded state whatever the dump's size: the top-N heaps, the counters, and a prefix tree
//! whose nodes have at most [`ReportOptions::max_children`] children each (the rest are folded into
//! an `(other)` child).
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

pub mod memory;

use crate::error::DecodeError;
use crate::model::{Entry, ValueType};
use serde_json::{json, Value as Json};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;

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

    fn to_json(self) -> Json {
        json!({"keys": self.keys, "memory": self.memory, "elements": self.elements, "expires": self.expires})
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
        if !memory::is_modelled(r.value_type) {
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

    /// Hash-table buckets of the keyspace (main and expires tables per database), which `MEMORY
    /// USAGE` leaves out.
    pub fn keyspace_overhead(&self) -> u64 {
        self.dbs
            .values()
            .map(|t| memory::keyspace_overhead(t.keys, t.expires))
            .sum()
    }

    /// The prefix tree as JSON: `{"name","keys","memory","children":[…]}`, at most `limit` children
    /// per node (largest first, the rest merged into `(other)`).
    pub fn prefix_json(&self, limit: usize) -> Json {
        fn node(name: &[u8], n: &PrefixNode, limit: usize, sep: &[u8]) -> Json {
            let (kids, other) = n.sorted_children(limit);
            let mut children: Vec<Json> = kids
                .into_iter()
                .map(|(seg, c)| node(&[name, seg].concat(), c, limit, sep))
                .collect();
            if let Some((keys, memory)) = other {
                children.push(json!({"name": "(other)", "prefix": false, "keys": keys,
                    "memory": memory, "children": []}));
            }
            let prefix = name.is_empty() || (!sep.is_empty() && name.ends_with(sep));
            json!({"name": display_bytes(name), "prefix": prefix, "keys": n.keys,
                "memory": n.memory, "children": children})
        }
        node(b"", &self.prefixes, limit, &self.opts.separator)
    }

    /// The summary as JSON (what `--format json` prints and the HTML page embeds).
    pub fn to_json(&self) -> Json {
        fn totals<K: std::fmt::Display>(m: &BTreeMap<K, Totals>) -> serde_json::Map<String, Json> {
            m.iter()
                .map(|(k, t)| (k.to_string(), t.to_json()))
                .collect()
        }
        let dbs: serde_json::Map<String, Json> = self
            .dbs
            .iter()
            .map(|(k, t)| (k.to_string(), t.to_json()))
            .collect();
        let expiry: serde_json::Map<String, Json> = EXPIRY_BUCKETS
            .iter()
            .zip(self.expiry.iter())
            .map(|(k, t)| (k.to_string(), t.to_json()))
            .collect();
        json!({
            "model": "Redis 8.2 (jemalloc), MEMORY USAGE-comparable per key",
            "totals": {
                "keys": self.totals.keys,
                "memory": self.totals.memory,
                "elements": self.totals.elements,
                "expires": self.totals.expires,
                "serialized": self.serialized,
                "keyspace_overhead": self.keyspace_overhead(),
                "module_keys": self.unmodelled.keys,
                "module_memory": self.unmodelled.memory,
            },
            "dbs": dbs,
            "types": totals(&self.types),
            "encodings": totals(&self.encodings),
            "expiry": expiry,
            "top_by_memory": self.top_by_memory().iter().map(|r| record_json(r)).collect::<Vec<_>>(),
            "top_by_elements": self.top_by_elements().iter().map(|r| record_json(r)).collect::<Vec<_>>(),
            "prefix": {
                "separator": display_bytes(&self.opts.separator),
                "depth": self.opts.depth,
                "tree": self.prefix_json(50),
            },
        })
    }

    /// The summary as aligned text tables.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let t = &self.totals;
        let _ = writeln!(
            s,
            "keys: {}   memory: {} ({})   elements: {}   with TTL: {}",
            group(t.keys),
            human(t.memory),
            group(t.memory),
            group(t.elements),
            group(t.expires)
        );
        let _ = writeln!(
            s,
            "keyspace tables: {}   dump values: {}   (estimates model Redis 8.2; see README \"Memory report\")",
            human(self.keyspace_overhead()),
            human(self.serialized)
        );
        if self.unmodelled.keys > 0 {
            let _ = writeln!(
                s,
                "module values: {} counted at their serialized size ({})",
                crate::output::count(self.unmodelled.keys, "key"),
                human(self.unmodelled.memory)
            );
        }
        let table = |s: &mut String, title: &str, rows: Vec<(String, Totals)>| {
            let w = rows
                .iter()
                .map(|r| r.0.len())
                .max()
                .unwrap_or(0)
                .max(title.len());
            let _ = writeln!(
                s,
                "\n{title:<w$}  {:>12} {:>10}  {:>7}  {:>12}  {:>10}",
                "keys", "memory", "share", "elements", "with TTL"
            );
            for (name, t) in rows {
                let _ = writeln!(
                    s,
                    "{name:<w$}  {:>12} {:>10}  {:>6.1}%  {:>12}  {:>10}",
                    group(t.keys),
                    human(t.memory),
                    pct(t.memory, self.totals.memory),
                    group(t.elements),
                    group(t.expires)
                );
            }
        };
        table(
            &mut s,
            "db",
            self.dbs
                .iter()
                .map(|(k, t)| (format!("db{k}"), *t))
                .collect(),
        );
        table(
            &mut s,
            "type",
            self.types
                .iter()
                .map(|(k, t)| (k.to_string(), *t))
                .collect(),
        );
        table(
            &mut s,
            "encoding",
            self.encodings
                .iter()
                .map(|(k, t)| (k.clone(), *t))
                .collect(),
        );
        table(
            &mut s,
            "expiry",
            EXPIRY_BUCKETS
                .iter()
                .zip(self.expiry.iter())
                .map(|(k, t)| (k.to_string(), *t))
                .collect(),
        );
        let top = |s: &mut String, title: &str, v: Vec<&KeyRecord>| {
            if v.is_empty() {
                return;
            }
            let _ = writeln!(s, "\n{title}");
            let _ = writeln!(
                s,
                "  {:>10} {:>10}  {:<7} {:<11} {:>4}  {:<19}  key",
                "memory", "elements", "type", "encoding", "db", "expires (UTC)"
            );
            for r in v {
                let _ = writeln!(
                    s,
                    "  {:>10} {:>10}  {:<7} {:<11} {:>4}  {:<19}  {}",
                    human(r.memory),
                    group(r.elements),
                    r.value_type.name(),
                    r.encoding,
                    r.db,
                    r.expire_ms
                        .map(|t| super::info::format_utc(t.div_euclid(1000)).replace(" UTC", ""))
                        .unwrap_or_else(|| "-".into()),
                    display_bytes(&r.key)
                );
            }
        };
        top(&mut s, "biggest keys by memory", self.top_by_memory());
        top(&mut s, "biggest keys by elements", self.top_by_elements());
        let _ = writeln!(
            s,
            "\nmemory by prefix (separator {:?}, depth {})",
            display_bytes(&self.opts.separator),
            self.opts.depth
        );
        fn tree(
            s: &mut String,
            n: &PrefixNode,
            path: &[u8],
            sep: &[u8],
            indent: usize,
            total: u64,
        ) {
            let (kids, other) = n.sorted_children(10);
            for (seg, c) in kids {
                let p = [path, seg].concat();
                let mut label = display_bytes(&p);
                if !sep.is_empty() && p.ends_with(sep) {
                    label.push('*');
                }
                let _ = writeln!(
                    s,
                    "  {:>10} {:>6.1}% {:>10} keys  {:indent$}{label}",
                    human(c.memory),
                    pct(c.memory, total),
                    group(c.keys),
                    "",
                );
                tree(s, c, &p, sep, indent + 2, total);
            }
            if let Some((keys, memory)) = other {
                let _ = writeln!(
                    s,
                    "  {:>10} {:>6.1}% {:>10} keys  {:indent$}(other)",
                    human(memory),
                    pct(memory, total),
                    group(keys),
                    "",
                );
            }
        }
        tree(
            &mut s,
            &self.prefixes,
            b"",
            &self.opts.separator,
            0,
            self.totals.memory,
        );
        s
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

/// Bytes as readable text: UTF-8 kept, `\` doubled, control and invalid bytes as `\xNN`.
pub fn display_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(s, "\\x{byte:02x}");
                    }
                }
                c => s.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(s, "\\x{byte:02x}");
        }
    }
    s
}

/// A key for JSON: a string when UTF-8, else `{"base64": …}`, by the rule of
/// `export --format jsonl` ([`super::json::bytes`], whose text it reads back).
pub fn json_bytes(b: &[u8]) -> Json {
    let mut text = Vec::with_capacity(b.len() + 2);
    super::json::bytes(&mut text, b);
    // json::bytes writes a JSON string or object (its tests parse it back with serde_json)
    serde_json::from_slice(&text).unwrap_or(Json::Null)
}

/// One key as a JSON object (`--format jsonl` rows and the top lists).
pub fn record_json(r: &KeyRecord) -> Json {
    let mut o = json!({
        "db": r.db,
        "key": json_bytes(&r.key),
        "type": r.value_type.name(),
        "encoding": r.encoding,
        "rdb_encoding": r.rdb_encoding,
        "memory": r.memory,
        "serialized": r.serialized,
        "elements": r.elements,
        "largest_element": r.largest_element,
    });
    if let Some(t) = r.expire_ms {
        o["expire_at_ms"] = t.into();
    }
    o
}

/// The CSV header matching [`csv_row`].
pub const CSV_HEADER: &str =
    "db,key,type,encoding,rdb_encoding,memory,serialized,elements,largest_element,expire_at_ms\n";

/// One key as a CSV row (RFC 4180 quoting; the key as [`display_bytes`] text).
pub fn csv_row(out: &mut String, r: &KeyRecord) {
    let key = display_bytes(&r.key);
    let _ = write!(out, "{},", r.db);
    if key.contains([',', '"', '\n', '\r']) || key.starts_with(' ') || key.ends_with(' ') {
        let _ = write!(out, "\"{}\"", key.replace('"', "\"\""));
    } else {
        out.push_str(&key);
    }
    let _ = writeln!(
        out,
        ",{},{},{},{},{},{},{},{}",
        r.value_type.name(),
        r.encoding,
        r.rdb_encoding.replace(',', ";"),
        r.memory,
        r.serialized,
        r.elements,
        r.largest_element,
        r.expire_ms.map(|t| t.to_string()).unwrap_or_default()
    );
}

/// `1234567` → `1,234,567`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes with a binary unit: `1.5 MiB`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn pct(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 * 100.0 / total as f64
    }
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

    #[test]
    fn text_helpers() {
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(12), "12");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(display_bytes(b"k\\\xff\n"), "k\\\\\\xff\\x0a");
        let mut s = String::new();
        csv_row(
            &mut s,
            &KeyRecord {
                db: 1,
                key: b"a,\"b".to_vec(),
                value_type: ValueType::Hash,
                encoding: "listpack",
                rdb_encoding: "listpack",
                memory: 48,
                serialized: 20,
                elements: 2,
                largest_element: 3,
                expire_ms: Some(5),
            },
        );
        assert_eq!(s, "1,\"a,\"\"b\",hash,listpack,listpack,48,20,2,3,5\n");
    }

    /// Keys in the report's JSON follow `export --format jsonl`: UTF-8 as a string (escapes
    /// undone), anything else as base64.
    #[test]
    fn json_keys_follow_the_export_rule() {
        assert_eq!(
            json_bytes("k é\n\"\\\u{1}".as_bytes()),
            json!("k é\n\"\\\u{1}")
        );
        assert_eq!(json_bytes(b"k\xff"), json!({"base64": "a/8="}));
        assert_eq!(json_bytes(b""), json!(""));
    }
}
