//! The memory model: what a key costs in a Redis 8.2 that loaded the dump, as `MEMORY USAGE key
//! SAMPLES 0` reports it.
//!
//! It follows how 8.2 stores each value after `rdbLoad` with the default configuration, rounded to
//! jemalloc's size classes (Redis builds jemalloc with an 8-byte quantum: 8, 16, 24, …, 64, 80,
//! 96, 112, 128, 160, …, four classes per doubling):
//!
//! * the key object: a 16-byte `robj` header, the expiry (8 bytes) when the key has a TTL, and the
//!   key as an embedded sds (1 + sds header + key + NUL), in one allocation;
//! * strings: integers live in the header; short strings are embedded in the same allocation
//!   (`embstr`, when the whole object fits 64 bytes); others get their own sds;
//! * listpacks (small lists, hashes, sets, sorted sets) cost their bytes; the dump's listpack blob
//!   is the in-memory listpack, other small encodings (ziplist, zipmap, hashtable records that
//!   fit) are re-encoded as the server would;
//! * hash tables: the 56-byte `dict`, 8 bytes per bucket (power of two ≥ the element count, as
//!   `dictExpand` sizes them on load), a 24-byte `dictEntry` and the sds of each element;
//! * skiplists: the `dict` plus one node per member whose expected size follows the level
//!   distribution (p = 1/4), the 32-level header node and the member sds;
//! * quicklists: one 32-byte node per listpack (or plain) node of the dump plus the node's bytes;
//! * streams: the listpacks, the radix trees as `MEMORY USAGE` counts them (simulated on the
//!   dump's IDs) and the consumer groups' PELs;
//! * module values: unknown to the server-independent model; the serialized size stands in.
//!
//! The encoding a value gets is decided with the 8.2 defaults ([`Limits`]): the dump's encoding
//! does not matter, only the sizes (a 6.2 ziplist hash is a listpack in 8.2).

use crate::decode::shape;
use crate::model::{Elem, Encoding, Entry, Value, ValueType};

/// Encoding thresholds of the loading server (`redis.conf` names; defaults of Redis 8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `hash-max-listpack-entries`.
    pub hash_entries: usize,
    /// `hash-max-listpack-value`.
    pub hash_value: usize,
    /// `set-max-intset-entries`.
    pub set_intset_entries: usize,
    /// `set-max-listpack-entries`.
    pub set_entries: usize,
    /// `set-max-listpack-value`.
    pub set_value: usize,
    /// `zset-max-listpack-entries`.
    pub zset_entries: usize,
    /// `zset-max-listpack-value`.
    pub zset_value: usize,
    /// Bytes per quicklist node (`list-max-listpack-size -2` = 8 KiB).
    pub list_node_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            hash_entries: 512,
            hash_value: 64,
            set_intset_entries: 512,
            set_entries: 128,
            set_value: 64,
            zset_entries: 128,
            zset_value: 64,
            list_node_bytes: 8192,
        }
    }
}

/// The estimate for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Bytes, comparable with `MEMORY USAGE key SAMPLES 0` (which excludes the keyspace's own
    /// hash table slot, see [`keyspace_overhead`]).
    pub bytes: u64,
    /// The encoding the server would report (`OBJECT ENCODING`).
    pub encoding: &'static str,
}

// Struct sizes of Redis 8.2 on 64-bit Linux.
const ROBJ: u64 = 16;
const EXPIRE: u64 = 8;
const DICT: u64 = 56;
const DICT_ENTRY: u64 = 24;
/// Per zset member beyond its node and sds, as `MEMORY USAGE` counts it.
const ZSET_DICT_ENTRY: u64 = 16;
const ZSET: u64 = 16;
const ZSKIPLIST: u64 = 32;
const ZSL_NODE_BASE: u64 = 24;
const ZSL_LEVEL: u64 = 16;
const ZSL_MAX_LEVEL: u32 = 32;
const QUICKLIST: u64 = 40;
const QUICKLIST_NODE: u64 = 40;
const LISTPACK_EX: u64 = 24;
const STREAM: u64 = 112;
const STREAM_ID: u64 = 16;
const RAX_NODE: u64 = 4 + 8 * 30;
const STREAM_CG: u64 = 40;
const STREAM_NACK: u64 = 32;
const STREAM_CONSUMER: u64 = 32;
/// Per-field metadata of a hash field with a TTL in a hashtable (the field string grows by it).
const HFE_FIELD_META: u64 = 16;

/// jemalloc's size class for an allocation of `n` bytes (Redis' build: 8-byte quantum).
///
/// ```
/// use rdbkit::output::report::memory::jemalloc_size;
/// assert_eq!(jemalloc_size(20), 24);
/// assert_eq!(jemalloc_size(65), 80);
/// assert_eq!(jemalloc_size(5297), 6144);
/// ```
pub fn jemalloc_size(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    if n <= 64 {
        return n.div_ceil(8) * 8;
    }
    let lg = 63 - (n - 1).leading_zeros(); // floor(log2(n - 1))
    let delta = 1u64 << (lg - 2);
    n.div_ceil(delta) * delta
}

/// sds header bytes for a string of `len` bytes (`sdsReqType`).
fn sds_hdr(len: u64) -> u64 {
    match len {
        0..32 => 1,
        32..256 => 3,
        256..65536 => 5,
        65536..=0xffff_ffff => 9,
        _ => 17,
    }
}

/// An sds of `len` bytes in its own allocation.
fn sds_alloc(len: u64) -> u64 {
    jemalloc_size(sds_hdr(len) + len + 1)
}

/// Bytes of the key object before any embedded value: header, expiry, embedded key sds.
fn kvobj_base(key_len: u64, has_expire: bool) -> u64 {
    ROBJ + if has_expire { EXPIRE } else { 0 } + 1 + sds_hdr(key_len) + key_len + 1
}

/// `string2ll`: the strict integer syntax Redis turns into integer encodings.
fn parse_int(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || s == "-0"
    {
        return None;
    }
    s.parse().ok()
}

fn elem_int(e: &Elem<'_>) -> Option<i64> {
    match e {
        Elem::Int(i) => Some(*i),
        Elem::Bytes(b) => parse_int(b),
    }
}

/// Bytes of one listpack entry holding `e` (encoding, data and back-length).
fn lp_entry(e: &Elem<'_>) -> u64 {
    let body = match elem_int(e) {
        Some(v) => match v {
            0..=127 => 1,
            -4096..=4095 => 2,
            -32768..=32767 => 3,
            -8_388_608..=8_388_607 => 4,
            -2_147_483_648..=2_147_483_647 => 5,
            _ => 9,
        },
        None => {
            let n = e.len() as u64;
            n + match n {
                0..64 => 1,
                64..4096 => 2,
                _ => 5,
            }
        }
    };
    body + match body {
        0..128 => 1,
        128..16384 => 2,
        16384..2_097_152 => 3,
        2_097_152..268_435_456 => 4,
        _ => 5,
    }
}

/// How a server turned a zset score into listpack text (`d2string`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ScoreText {
    /// Redis ≥ 7.2: shortest round-trip digits.
    Shortest,
    /// Ziplists of Redis ≤ 6.2 (`%.17g`), which 8.2 copies entry by entry.
    G17,
}

/// `%.17g` of a finite, non-zero double.
fn fmt_g17(x: f64) -> String {
    let e = format!("{:.16e}", x); // 17 significant digits, correctly rounded
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if (-4..17).contains(&exp) {
        let decimals = (16 - exp).max(0) as usize;
        trim(&format!("{x:.decimals$}"))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    }
}

/// Listpack entry bytes of a zset score, as `zzlInsertAt` writes it (integers as integers).
fn lp_score(s: f64, style: ScoreText) -> u64 {
    if s.fract() == 0.0 && s.abs() < 4_503_599_627_370_496.0 {
        return lp_entry(&Elem::Int(s as i64));
    }
    let text = if s.is_infinite() {
        if s > 0.0 {
            "inf".to_string()
        } else {
            "-inf".to_string()
        }
    } else if style == ScoreText::G17 {
        fmt_g17(s)
    } else {
        let plain = format!("{s}");
        let exp = format!("{s:e}").replace("e", "e+").replace("e+-", "e-");
        if plain.len() <= exp.len() {
            plain
        } else {
            exp
        }
    };
    lp_entry(&Elem::Bytes(text.into_bytes().into()))
}

/// A listpack's total bytes from its entries' sizes.
fn lp_bytes(entries: impl Iterator<Item = u64>) -> u64 {
    6 + entries.sum::<u64>() + 1
}

/// Buckets of a dict sized for `n` elements (`dictExpand`: next power of two, at least 4).
fn dict_buckets(n: u64) -> u64 {
    n.max(4).next_power_of_two()
}

fn dict_base(n: u64) -> u64 {
    DICT + 8 * dict_buckets(n)
}

/// Buckets of a dict that grew one insert at a time to `n` elements: it doubles when full and then
/// rehashes incrementally, one non-empty bucket per later insert, so until about 63% of the old
/// table's buckets (those non-empty) were moved, both tables exist.
fn grown_dict_buckets(n: u64) -> u64 {
    if n <= 4 {
        return 4;
    }
    let old = (n - 1).next_power_of_two() / 2; // the size that was full when the last insert came
    let old = old.max(4);
    let steps = n - old - 1;
    let non_empty = (old as f64 * (1.0 - (-1.0f64).exp())) as u64;
    if steps < non_empty {
        old + 2 * old
    } else {
        2 * old
    }
}

/// Expected jemalloc size of a skiplist node (level ~ geometric with p = 1/4, capped at 32).
fn expected_zsl_node() -> f64 {
    let mut e = 0.0;
    let mut p_level = 0.75;
    for level in 1..=ZSL_MAX_LEVEL {
        let p = if level == ZSL_MAX_LEVEL {
            0.25f64.powi(ZSL_MAX_LEVEL as i32 - 1)
        } else {
            p_level
        };
        e += p * jemalloc_size(ZSL_NODE_BASE + ZSL_LEVEL * u64::from(level)) as f64;
        p_level *= 0.25;
    }
    e
}

/// Nodes of a Redis radix tree (`rax`) holding `keys` (sorted, distinct): compressed chains, branch
/// nodes and the empty leaf after each key, as `raxInsert` builds them.
pub fn rax_nodes(keys: &[[u8; 16]]) -> u64 {
    fn count(keys: &[[u8; 16]], depth: usize) -> u64 {
        // keys share their first `depth` bytes; the node at this position:
        if keys.is_empty() {
            return 0;
        }
        if depth == 16 {
            return 1; // a leaf (all keys have the same length, so at most one ends here)
        }
        // one child char for all keys: a compressed node running to where they diverge or end
        let first = &keys[0];
        let last = &keys[keys.len() - 1];
        if first[depth] == last[depth] {
            let mut d = depth;
            while d < 16 && first[d] == last[d] {
                d += 1;
            }
            return 1 + count(keys, d);
        }
        // a branch node with one child per distinct next byte
        let mut n = 1;
        let mut i = 0;
        while i < keys.len() {
            let c = keys[i][depth];
            let j = i + keys[i..].iter().take_while(|k| k[depth] == c).count();
            n += count(&keys[i..j], depth + 1);
            i = j;
        }
        n
    }
    if keys.is_empty() {
        return 1; // the empty head node
    }
    count(keys, 0)
}

/// `streamRadixTreeMemoryUsage` as Redis 8.2 computes it.
fn rax_usage(keys: &mut Vec<[u8; 16]>) -> u64 {
    keys.sort_unstable();
    keys.dedup();
    keys.len() as u64 * STREAM_ID + rax_nodes(keys) * RAX_NODE
}

fn id_bytes(id: crate::model::StreamId) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.ms.to_be_bytes());
    b[8..].copy_from_slice(&id.seq.to_be_bytes());
    b
}

impl Limits {
    fn list(&self, e: &Entry<'_>, items: &[Elem<'_>]) -> (u64, &'static str) {
        let node_limit = self.list_node_bytes as u64;
        // the nodes the server builds: the dump's own for quicklist2, else packed as RPUSH would
        let nodes: Vec<(u64, u64)> = match (e.encoding() == Encoding::ListQuicklist2)
            .then(|| shape::quicklist2_nodes(e.raw))
            .flatten()
        {
            Some(n) => n,
            None => {
                let mut nodes = Vec::new();
                let mut cur: Option<u64> = None;
                for it in items {
                    let sz = lp_entry(it);
                    if it.len() as u64 > node_limit {
                        if let Some(c) = cur.take() {
                            nodes.push((2, c));
                        }
                        nodes.push((1, it.len() as u64));
                        continue;
                    }
                    match cur {
                        Some(c) if c + sz <= node_limit => cur = Some(c + sz),
                        Some(c) => {
                            nodes.push((2, c));
                            cur = Some(7 + sz);
                        }
                        None => cur = Some(7 + sz),
                    }
                }
                nodes.extend(cur.map(|c| (2, c)));
                nodes
            }
        };
        if let [(2, sz)] = nodes.as_slice() {
            if *sz <= node_limit {
                return (jemalloc_size(*sz), "listpack");
            }
        }
        let bytes = QUICKLIST
            + nodes
                .iter()
                .map(|&(_, sz)| QUICKLIST_NODE + jemalloc_size(sz))
                .sum::<u64>();
        (bytes, "quicklist")
    }

    fn set(&self, e: &Entry<'_>, items: &[Elem<'_>]) -> (u64, &'static str) {
        let n = items.len();
        // an intset stays one up to the limit; other encodings (listpacks excepted, which load as
        // they are) become one when every member is an integer
        let intset = n <= self.set_intset_entries
            && (e.encoding() == Encoding::SetIntset
                || (e.encoding() != Encoding::SetListpack
                    && items.iter().all(|i| elem_int(i).is_some())));
        if intset {
            let width = items
                .iter()
                .filter_map(elem_int)
                .map(|v| {
                    if i16::try_from(v).is_ok() {
                        2
                    } else if i32::try_from(v).is_ok() {
                        4
                    } else {
                        8
                    }
                })
                .max()
                .unwrap_or(2);
            return (jemalloc_size(8 + width * n as u64), "intset");
        }
        let small = n <= self.set_entries;
        if e.encoding() == Encoding::SetListpack && small {
            if let Some(b) = shape::listpack_len(e.encoding(), e.raw) {
                return (jemalloc_size(b), "listpack");
            }
        }
        if small
            && (e.encoding() == Encoding::SetListpack
                || items.iter().all(|i| i.len() <= self.set_value))
        {
            return (
                jemalloc_size(lp_bytes(items.iter().map(lp_entry))),
                "listpack",
            );
        }
        let elems: u64 = items
            .iter()
            .map(|i| DICT_ENTRY + sds_alloc(i.len() as u64))
            .sum();
        (dict_base(n as u64) + elems, "hashtable")
    }

    fn zset(&self, e: &Entry<'_>, items: &[(Elem<'_>, f64)]) -> (u64, &'static str) {
        let n = items.len();
        let small = n <= self.zset_entries;
        if e.encoding() == Encoding::ZsetListpack && small {
            if let Some(b) = shape::listpack_len(e.encoding(), e.raw) {
                return (jemalloc_size(b), "listpack");
            }
        }
        if small && items.iter().all(|(m, _)| m.len() <= self.zset_value) {
            let style = if e.encoding() == Encoding::ZsetZiplist {
                ScoreText::G17
            } else {
                ScoreText::Shortest
            };
            let lp = lp_bytes(items.iter().map(|(m, s)| lp_entry(m) + lp_score(*s, style)));
            return (jemalloc_size(lp), "listpack");
        }
        let header = jemalloc_size(ZSL_NODE_BASE + ZSL_LEVEL * u64::from(ZSL_MAX_LEVEL));
        let node = expected_zsl_node();
        let elems: f64 = items
            .iter()
            .map(|(m, _)| (sds_alloc(m.len() as u64) + ZSET_DICT_ENTRY) as f64 + node)
            .sum();
        (
            ZSET + ZSKIPLIST + dict_base(n as u64) + header + elems.round() as u64,
            "skiplist",
        )
    }

    fn hash(&self, e: &Entry<'_>, fields: &[crate::model::HashField<'_>]) -> (u64, &'static str) {
        let n = fields.len();
        let ttl = fields.iter().any(|f| f.expire_ms.is_some()) || e.encoding().has_field_ttls();
        let small = n <= self.hash_entries
            && fields
                .iter()
                .all(|f| f.field.len() <= self.hash_value && f.value.len() <= self.hash_value);
        if small {
            if ttl {
                let lp = match (e.encoding() == Encoding::HashListpackEx)
                    .then(|| shape::listpack_len(e.encoding(), e.raw))
                    .flatten()
                {
                    Some(b) => b,
                    None => lp_bytes(fields.iter().map(|f| {
                        lp_entry(&f.field)
                            + lp_entry(&f.value)
                            + lp_entry(&Elem::Int(f.expire_ms.unwrap_or(0)))
                    })),
                };
                return (LISTPACK_EX + jemalloc_size(lp), "listpackex");
            }
            let lp = match (e.encoding() == Encoding::HashListpack)
                .then(|| shape::listpack_len(e.encoding(), e.raw))
                .flatten()
            {
                Some(b) => b,
                None => lp_bytes(
                    fields
                        .iter()
                        .map(|f| lp_entry(&f.field) + lp_entry(&f.value)),
                ),
            };
            return (jemalloc_size(lp), "listpack");
        }
        let elems: u64 = fields
            .iter()
            .map(|f| {
                let meta = if f.expire_ms.is_some() {
                    HFE_FIELD_META
                } else {
                    0
                };
                DICT_ENTRY
                    + jemalloc_size(sds_hdr(f.field.len() as u64) + f.field.len() as u64 + 1 + meta)
                    + sds_alloc(f.value.len() as u64)
            })
            .sum();
        // 8.2 loads a hash table with field TTLs (types 22 and 24) into a dict that grows as fields
        // are added; other hashes get a dict sized for all fields up front. Valkey's HASH_2 (22 in
        // Valkey dumps), the same kind of hash, is sized the same way.
        let base = if matches!(
            e.encoding(),
            Encoding::HashMetadataPreGa | Encoding::HashMetadata | Encoding::Hash2
        ) {
            DICT + 8 * grown_dict_buckets(n as u64)
        } else {
            dict_base(n as u64)
        };
        (base + elems, "hashtable")
    }

    fn stream(&self, e: &Entry<'_>, s: &crate::model::Stream<'_>) -> u64 {
        let nodes = shape::stream_nodes(e.raw).unwrap_or_default();
        let mut keys: Vec<[u8; 16]> = nodes.iter().map(|n| n.0).collect();
        let mut bytes = STREAM + rax_usage(&mut keys);
        bytes += nodes.iter().map(|n| jemalloc_size(n.1)).sum::<u64>();
        for g in &s.groups {
            let mut pel: Vec<[u8; 16]> = g.pending.iter().map(|p| id_bytes(p.id)).collect();
            bytes += STREAM_CG + rax_usage(&mut pel) + STREAM_NACK * g.pending.len() as u64;
            for c in &g.consumers {
                let mut cpel: Vec<[u8; 16]> = c.pending.iter().map(|id| id_bytes(*id)).collect();
                bytes += STREAM_CONSUMER + c.name.len() as u64 + rax_usage(&mut cpel);
            }
        }
        bytes
    }

    /// Estimates the memory of `entry` (whose decoded value is `value`) in a server with these
    /// limits.
    ///
    /// ```
    /// use rdbkit::output::report::memory::Limits;
    /// let dump = rdbkit::testing::tiny_dump();
    /// for item in rdbkit::Decoder::new(&dump) {
    ///     if let rdbkit::Item::Entry(e) = item? {
    ///         let est = Limits::default().estimate(&e, &e.value()?);
    ///         // "greeting" = "hello": one 40-byte allocation (header + key + embedded value)
    ///         assert_eq!((est.bytes, est.encoding), (40, "embstr"));
    ///     }
    /// }
    /// # Ok::<(), rdbkit::DecodeError>(())
    /// ```
    pub fn estimate(&self, entry: &Entry<'_>, value: &Value<'_>) -> Estimate {
        let base = kvobj_base(entry.key.len() as u64, entry.expire_ms.is_some());
        let (extra, encoding) = match value {
            Value::String(s) => {
                if elem_int(s).is_some() {
                    (0, "int")
                } else {
                    let n = s.len() as u64;
                    // 8.2 decides with the key's size as if its sds header were one byte
                    // (`klen + 3`), then allocates the real header.
                    let key_len = entry.key.len() as u64;
                    let assumed = base - (1 + sds_hdr(key_len) + key_len + 1) + key_len + 3;
                    if assumed + 4 + n <= 64 {
                        return Estimate {
                            bytes: jemalloc_size(base + 4 + n),
                            encoding: "embstr",
                        };
                    }
                    (sds_alloc(n), "raw")
                }
            }
            Value::List(items) => self.list(entry, items),
            Value::Set(items) => self.set(entry, items),
            Value::SortedSet(items) => self.zset(entry, items),
            Value::Hash(fields) => self.hash(entry, fields),
            Value::Stream(s) => (self.stream(entry, s), "stream"),
            // a module value rdbkit reads counts what the module reports (its `mem_usage`);
            // any other counts its serialized size
            Value::Module(m) => match crate::decode::module::decode(m) {
                Ok(Some(d)) => (d.mem_usage(), d.kind()),
                _ => (entry.raw.len() as u64, "module"),
            },
        };
        Estimate {
            bytes: jemalloc_size(base) + extra,
            encoding,
        }
    }
}

/// Memory the keyspace itself needs for `keys` keys of which `expires` have a TTL: the buckets of
/// the main and expires hash tables (8 bytes each, a power of two ≥ the count). `MEMORY USAGE`
/// leaves this out; the report adds it to the totals.
pub fn keyspace_overhead(keys: u64, expires: u64) -> u64 {
    let table = |n: u64| if n == 0 { 0 } else { 8 * dict_buckets(n) };
    table(keys) + table(expires)
}

/// The logical type's element with the most bytes (for hashes field + value; for streams the
/// largest entry's fields and values).
pub fn largest_element(v: &Value<'_>) -> u64 {
    let m = match v {
        Value::String(s) => s.len(),
        Value::List(items) | Value::Set(items) => items.iter().map(Elem::len).max().unwrap_or(0),
        Value::SortedSet(items) => items.iter().map(|(m, _)| m.len()).max().unwrap_or(0),
        Value::Hash(f) => f
            .iter()
            .map(|f| f.field.len() + f.value.len())
            .max()
            .unwrap_or(0),
        Value::Stream(s) => s
            .entries
            .iter()
            .map(|e| {
                e.fields
                    .iter()
                    .map(|(f, v)| f.len() + v.len())
                    .sum::<usize>()
            })
            .max()
            .unwrap_or(0),
        Value::Module(m) => m.body.len(),
    };
    m as u64
}

/// True for values whose estimate follows the server's (or the module's) data structures: all but
/// the module values that no decoder of rdbkit reads (estimate encoding `module`).
pub fn is_modelled(t: ValueType, encoding: &str) -> bool {
    t != ValueType::Module || encoding != "module"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        let classes = [
            8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448,
            512, 640, 768, 896, 1024, 1280,
        ];
        let mut prev = 0;
        for c in classes {
            assert_eq!(jemalloc_size(c), c);
            assert_eq!(jemalloc_size(prev + 1), c, "after {prev}");
            prev = c;
        }
        assert_eq!(jemalloc_size(16385), 20480);
    }

    #[test]
    fn rax_shapes() {
        let k = |ms: u64, seq: u64| id_bytes(crate::model::StreamId { ms, seq });
        assert_eq!(rax_nodes(&[]), 1);
        // one key: a compressed node with the 16 bytes, then the leaf
        assert_eq!(rax_nodes(&[k(1, 1)]), 2);
        // two keys diverging in the last byte: compressed prefix, branch, two leaves
        assert_eq!(rax_nodes(&[k(1, 1), k(1, 2)]), 4);
        // diverging earlier: each branch child has a compressed tail and a leaf
        assert_eq!(rax_nodes(&[k(1, 1), k(2, 1)]), 6);
    }

    #[test]
    fn percent_17g() {
        assert_eq!(fmt_g17(3.3), "3.2999999999999998");
        assert_eq!(fmt_g17(0.1), "0.10000000000000001");
        assert_eq!(fmt_g17(1e300), "1.0000000000000001e+300");
        assert_eq!(fmt_g17(0.5), "0.5");
        assert_eq!(fmt_g17(-2.5e-7), "-2.4999999999999999e-07");
        assert_eq!(fmt_g17(1.0 / 3.0), "0.33333333333333331");
    }

    #[test]
    fn ints_follow_string2ll() {
        assert_eq!(parse_int(b"12345"), Some(12345));
        assert_eq!(parse_int(b"-7"), Some(-7));
        for bad in [
            &b"007"[..],
            b"-0",
            b"+1",
            b"1.0",
            b"",
            b" 1",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }
}
