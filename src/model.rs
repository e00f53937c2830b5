//! The typed data model the decoder yields: items of a dump, key entries, and decoded values.
//!
//! Byte strings are `Cow<[u8]>`: borrowed from the input where the bytes are used as-is, owned where
//! they had to be decompressed. Integers stored in integer encodings stay integers ([`Elem::Int`])
//! until someone asks for their text.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Which server family wrote the dump (from the magic, aux fields and Enterprise-only opcodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Producer {
    /// Open-source Redis (`REDIS` magic).
    Redis,
    /// Valkey (`VALKEY` magic, or a `valkey-ver` aux field).
    Valkey,
    /// Redis Enterprise / Redis Cloud (Enterprise-only opcodes or aux fields seen).
    RedisEnterprise,
}

impl fmt::Display for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Producer::Redis => "Redis",
            Producer::Valkey => "Valkey",
            Producer::RedisEnterprise => "Redis Enterprise",
        })
    }
}

/// The magic at the start of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    /// `REDIS` + 4 digits.
    Redis,
    /// `VALKEY` + 3 digits (Valkey 9+).
    Valkey,
}

/// The state of the CRC64 trailer, reported with [`Item::Eof`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The trailer matched the contents.
    Verified(u64),
    /// The trailer is zero: the dump was written with `rdbchecksum no`.
    Disabled,
    /// The version predates checksums (RDB < 5).
    Absent,
    /// The caller turned verification off; the stored value is reported as is.
    NotChecked(u64),
}

/// One element of a collection, a string value, a hash field or a stream field.
#[derive(Debug, Clone, PartialEq)]
pub enum Elem<'a> {
    /// Bytes (borrowed from the input when stored verbatim).
    Bytes(Cow<'a, [u8]>),
    /// An integer-encoded element; its logical value is the canonical decimal text.
    Int(i64),
}

impl<'a> Elem<'a> {
    /// The logical bytes of the element (integers as decimal text).
    pub fn to_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Elem::Bytes(b) => Cow::Borrowed(b.as_ref()),
            Elem::Int(i) => Cow::Owned(i.to_string().into_bytes()),
        }
    }

    /// Appends the logical bytes to `out` without an intermediate allocation.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Elem::Bytes(b) => out.extend_from_slice(b),
            Elem::Int(i @ 0..=9) => out.push(b'0' + *i as u8),
            Elem::Int(i) => {
                let mut buf = itoa_buf(*i);
                out.extend_from_slice(buf.as_slice());
            }
        }
    }

    /// Length in bytes of the logical value.
    pub fn len(&self) -> usize {
        match self {
            Elem::Bytes(b) => b.len(),
            Elem::Int(i) => decimal_len(*i),
        }
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Detaches the element from the input buffer.
    pub fn into_owned(self) -> Elem<'static> {
        match self {
            Elem::Bytes(b) => Elem::Bytes(Cow::Owned(b.into_owned())),
            Elem::Int(i) => Elem::Int(i),
        }
    }
}

impl<'a> From<&'a [u8]> for Elem<'a> {
    fn from(b: &'a [u8]) -> Self {
        Elem::Bytes(Cow::Borrowed(b))
    }
}

/// Small stack buffer for integer formatting.
pub(crate) struct ItoaBuf {
    buf: [u8; 20],
    pub(crate) len: usize,
}

impl ItoaBuf {
    pub(crate) fn as_slice(&mut self) -> &[u8] {
        &self.buf[20 - self.len..]
    }
}

/// "00" "01" … "99": two digits per step (integer text is a large part of RESP export).
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Decimal text of `v`.
pub(crate) fn itoa_buf(v: i64) -> ItoaBuf {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = 20;
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i] = DIGIT_PAIRS[d];
        buf[i + 1] = DIGIT_PAIRS[d + 1];
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        buf[i] = DIGIT_PAIRS[d];
        buf[i + 1] = DIGIT_PAIRS[d + 1];
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    ItoaBuf { buf, len: 20 - i }
}

/// Length of the decimal text of `v`, without formatting it.
pub(crate) fn decimal_len(v: i64) -> usize {
    let n = v.unsigned_abs();
    let digits = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    digits + usize::from(v < 0)
}

/// Text of a finite or infinite double: exactly what `format!("{x:?}")` gives (the shortest text
/// that reads back as `x`).
pub(crate) struct FloatBuf {
    buf: [u8; 40],
    len: usize,
}

impl FloatBuf {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Formats `x` like `{x:?}`. Hand-written fast path because the standard formatter (Grisu) was
/// ~10% of `export --format resp|jsonl` on D1, whose zset scores are short decimals: when
/// `x · 10^k` is within 2^-13 of an integer `r < 2^40` for the smallest such `k`, `r / 10^k` is
/// the only `k`-digit decimal that reads back as `x` and no shorter one does (the rounding
/// interval of `x` is narrower than `2^-12` in units of `10^-k`), so `r` with `k` decimals is the
/// shortest text; `r / 10^k == x` checks the read-back exactly (both are exact doubles and the
/// division is correctly rounded, as parsing is). Everything else goes to the standard formatter.
/// The test `float_text_matches_debug` compares both on millions of values.
pub(crate) fn f64_buf(x: f64) -> FloatBuf {
    let mut out = FloatBuf {
        buf: [0; 40],
        len: 0,
    };
    let a = x.abs();
    if (1e-4..1e12).contains(&a) {
        const LIMIT: f64 = (1u64 << 40) as f64;
        let mut p = 1.0f64;
        for k in 0..=16usize {
            let scaled = a * p;
            if scaled >= LIMIT {
                break;
            }
            let r = scaled.round();
            if r / p == a {
                let mut digits = itoa_buf(r as i64);
                let d = digits.as_slice();
                let mut n = 0;
                let mut put = |b: &[u8]| {
                    out.buf[n..n + b.len()].copy_from_slice(b);
                    n += b.len();
                };
                if x < 0.0 {
                    put(b"-");
                }
                if k == 0 {
                    put(d);
                    put(b".0");
                } else if d.len() > k {
                    put(&d[..d.len() - k]);
                    put(b".");
                    put(&d[d.len() - k..]);
                } else {
                    put(b"0.");
                    for _ in d.len()..k {
                        put(b"0");
                    }
                    put(d);
                }
                out.len = n;
                return out;
            }
            p *= 10.0;
        }
    }
    use std::io::Write as _;
    let mut w = &mut out.buf[..];
    let _ = write!(w, "{x:?}");
    out.len = 40 - w.len();
    out
}

/// A hash field with its value and, for hashes with field TTLs, its absolute expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct HashField<'a> {
    /// Field name.
    pub field: Elem<'a>,
    /// Field value.
    pub value: Elem<'a>,
    /// Absolute expiry of the field in Unix milliseconds, when it has one.
    pub expire_ms: Option<i64>,
}

/// A stream ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One live stream entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry<'a> {
    /// Entry ID.
    pub id: StreamId,
    /// Field/value pairs in order.
    pub fields: Vec<(Elem<'a>, Elem<'a>)>,
}

/// A pending entry of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// Entry ID.
    pub id: StreamId,
    /// Last delivery time, Unix ms.
    pub delivery_time: i64,
    /// Number of deliveries.
    pub delivery_count: u64,
    /// Owning consumer (index into [`ConsumerGroup::consumers`]), if any.
    pub consumer: Option<usize>,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumer<'a> {
    /// Consumer name.
    pub name: Cow<'a, [u8]>,
    /// Last time the consumer was seen, Unix ms.
    pub seen_time: i64,
    /// Last successful interaction (RDB type 21+; equal to `seen_time` before).
    pub active_time: i64,
    /// IDs of the entries this consumer owns (a subset of the group PEL).
    pub pending: Vec<StreamId>,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerGroup<'a> {
    /// Group name.
    pub name: Cow<'a, [u8]>,
    /// Last delivered ID.
    pub last_delivered: StreamId,
    /// Logical read counter as recorded (RDB type 19+; `None` for older streams, whose loader
    /// estimates it). [`ConsumerGroup::ENTRIES_READ_UNKNOWN`] is Redis's "unknown" marker (the
    /// server shows `entries-read` nil): see [`ConsumerGroup::entries_read`].
    pub entries_read: Option<u64>,
    /// The group's pending entries list.
    pub pending: Vec<PendingEntry>,
    /// Consumers in file order.
    pub consumers: Vec<Consumer<'a>>,
}

impl ConsumerGroup<'_> {
    /// What a dump records as a group's entries-read when the server did not know it: Redis's
    /// `SCG_INVALID_ENTRIES_READ` (-1), saved as an unsigned length.
    pub const ENTRIES_READ_UNKNOWN: u64 = u64::MAX;

    /// The recorded entries-read as the server holds it: `Some(None)` for "unknown" (nil in
    /// `XINFO STREAM … FULL`), `None` when the dump does not record it (before RDB type 19).
    /// A value above `i64::MAX` other than the marker (a server would hold it as a negative
    /// number) reads as unknown.
    ///
    /// ```
    /// use rdbkit::model::{ConsumerGroup, StreamId};
    /// let mut g = ConsumerGroup {
    ///     name: b"g"[..].into(),
    ///     last_delivered: StreamId::default(),
    ///     entries_read: Some(ConsumerGroup::ENTRIES_READ_UNKNOWN),
    ///     pending: vec![],
    ///     consumers: vec![],
    /// };
    /// assert_eq!(g.known_entries_read(), Some(None));
    /// g.entries_read = Some(7);
    /// assert_eq!(g.known_entries_read(), Some(Some(7)));
    /// g.entries_read = None;
    /// assert_eq!(g.known_entries_read(), None);
    /// ```
    pub fn known_entries_read(&self) -> Option<Option<u64>> {
        self.entries_read
            .map(|r| (r <= i64::MAX as u64).then_some(r))
    }
}

/// Stream idempotency state (RDB 13, type 26).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamIdmp<'a> {
    /// IDMP-DURATION in seconds.
    pub duration: u64,
    /// IDMP-MAXSIZE.
    pub max_entries: u64,
    /// Producers in file order.
    pub producers: Vec<IdmpProducer<'a>>,
    /// All-time count of iids added.
    pub iids_added: u64,
    /// All-time count of duplicate iids.
    pub iids_duplicates: u64,
}

/// One IDMP producer and its recorded (iid, entry ID) pairs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IdmpProducer<'a> {
    /// Producer id.
    pub pid: Cow<'a, [u8]>,
    /// Idempotency ids with the stream entry each produced, in insertion order.
    pub entries: Vec<(Cow<'a, [u8]>, StreamId)>,
}

/// A decoded stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream<'a> {
    /// Live entries in ID order.
    pub entries: Vec<StreamEntry<'a>>,
    /// Number of live entries as recorded.
    pub length: u64,
    /// Last generated ID.
    pub last_id: StreamId,
    /// First entry ID (type 19+).
    pub first_id: Option<StreamId>,
    /// Maximal deleted entry ID (type 19+).
    pub max_deleted_id: Option<StreamId>,
    /// Count of all entries ever added (type 19+).
    pub entries_added: Option<u64>,
    /// Consumer groups.
    pub groups: Vec<ConsumerGroup<'a>>,
    /// Idempotency state (type 26).
    pub idmp: Option<StreamIdmp<'a>>,
}

/// A module type id decoded into its name and encoding version (format §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModuleId(pub u64);

impl ModuleId {
    /// The 9-character module type name.
    pub fn name(&self) -> String {
        const CHARSET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut id = self.0 >> 10;
        let mut name = [0u8; 9];
        for slot in name.iter_mut().rev() {
            *slot = CHARSET[(id & 63) as usize];
            id >>= 6;
        }
        String::from_utf8_lossy(&name).into_owned()
    }

    /// The module's encoding version (low 10 bits).
    pub fn encver(&self) -> u32 {
        (self.0 & 1023) as u32
    }
}

/// A module value: kept opaque (the bytes go back to a server that has the module via RESTORE).
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleValue<'a> {
    /// The module type.
    pub id: ModuleId,
    /// The module's opcode stream, from after the type id through the EOF marker.
    pub body: &'a [u8],
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// A string.
    String(Elem<'a>),
    /// A list, head to tail.
    List(Vec<Elem<'a>>),
    /// A set.
    Set(Vec<Elem<'a>>),
    /// A sorted set: (member, score) in file order.
    SortedSet(Vec<(Elem<'a>, f64)>),
    /// A hash, possibly with per-field TTLs.
    Hash(Vec<HashField<'a>>),
    /// A stream.
    Stream(Box<Stream<'a>>),
    /// A module value.
    Module(ModuleValue<'a>),
}

impl Value<'_> {
    /// Number of elements (1 for strings and modules, entries for streams).
    pub fn len(&self) -> usize {
        match self {
            Value::String(_) | Value::Module(_) => 1,
            Value::List(v) | Value::Set(v) => v.len(),
            Value::SortedSet(v) => v.len(),
            Value::Hash(v) => v.len(),
            Value::Stream(s) => s.entries.len(),
        }
    }

    /// True for a list, set, sorted set or hash without elements: Redis skips such keys on load and
    /// no command can create them. Strings, streams (an empty stream is a valid key) and module
    /// values are never empty in this sense.
    pub fn is_empty(&self) -> bool {
        match self {
            Value::String(_) | Value::Module(_) | Value::Stream(_) => false,
            _ => self.len() == 0,
        }
    }
}

/// The logical Redis type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    /// string
    String,
    /// list
    List,
    /// set
    Set,
    /// zset
    SortedSet,
    /// hash
    Hash,
    /// stream
    Stream,
    /// module
    Module,
}

impl ValueType {
    /// The name Redis' `TYPE` command prints.
    pub fn name(&self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::List => "list",
            ValueType::Set => "set",
            ValueType::SortedSet => "zset",
            ValueType::Hash => "hash",
            ValueType::Stream => "stream",
            ValueType::Module => "module",
        }
    }

    /// Parses a `TYPE` name (as used by `--type` filters).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "string" => ValueType::String,
            "list" => ValueType::List,
            "set" => ValueType::Set,
            "zset" | "sortedset" => ValueType::SortedSet,
            "hash" => ValueType::Hash,
            "stream" => ValueType::Stream,
            "module" => ValueType::Module,
            _ => return None,
        })
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Renders bytes for humans: printable ASCII as is, everything else as `\xNN` (and `\\`, `\"`).
pub fn escape_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_render_as_canonical_decimal() {
        for v in [0i64, 7, -7, 12345, i64::MIN, i64::MAX] {
            assert_eq!(Elem::Int(v).to_bytes().as_ref(), v.to_string().as_bytes());
            assert_eq!(Elem::Int(v).len(), v.to_string().len());
            let mut out = Vec::new();
            Elem::Int(v).write_to(&mut out);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }

    #[test]
    fn integer_text_and_length() {
        let mut rng = crate::testing::XorShift::with_seed(0x2545_f491_4f6c_dd1d);
        let mut vals = vec![
            0i64,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            -1,
            -10,
            i64::MIN,
            i64::MAX,
        ];
        for _ in 0..100_000 {
            let r = rng.next_u64();
            vals.push((r as i64) >> (r % 63));
        }
        for v in vals {
            assert_eq!(itoa_buf(v).as_slice(), v.to_string().as_bytes());
            assert_eq!(decimal_len(v), v.to_string().len(), "{v}");
        }
    }

    #[test]
    fn float_text_matches_debug() {
        let mut rng = crate::testing::XorShift::default();
        let mut next = || rng.next_u64();
        let check = |x: f64| {
            assert_eq!(
                std::str::from_utf8(f64_buf(x).as_slice()).unwrap(),
                format!("{x:?}"),
                "{:#x}",
                x.to_bits()
            );
        };
        for x in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.2 + 0.1,
            1e-4,
            0.99e-4,
            1e12,
            1e12 - 0.5,
            999_999_999_999.9,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            4003.19,
            252014.0,
        ] {
            check(x);
        }
        for _ in 0..2_000_000 {
            let r = next();
            let x = match r % 6 {
                // short decimals, as scores usually are
                0 => {
                    (r >> 20) as f64 % 1e9
                        / [1.0, 10.0, 100.0, 1e3, 1e4, 1e6][(r >> 8) as usize % 6]
                }
                1 => ((r >> 12) % 1_000_000) as f64 / 100.0,
                // any bit pattern
                2 => f64::from_bits(r),
                // values near the limits of the fast path
                3 => f64::from_bits(1e12f64.to_bits() ^ (r & 0xff)),
                4 => f64::from_bits(1e-4f64.to_bits() ^ (r & 0xff)),
                // powers of two and their neighbours
                _ => f64::from_bits((((r >> 8) % 2046 + 1) << 52) ^ (r & 3)),
            };
            let x = if r & (1 << 7) != 0 { -x } else { x };
            if !x.is_nan() {
                check(x);
            }
        }
    }

    #[test]
    fn module_id_decodes_name_and_version() {
        // graphdata, encver 13 (format §15.3)
        let id = ModuleId(0x82b6a985d6ad680d);
        assert_eq!(id.name(), "graphdata");
        assert_eq!(id.encver(), 13);
    }

    #[test]
    fn escape_is_readable_and_unambiguous() {
        assert_eq!(escape_bytes(b"a\"b\xff"), "\"a\\\"b\\xff\"");
    }
}

/// One key record of a dump, with its raw value bytes and a lazily decoded typed value.
#[derive(Clone)]
pub struct Entry<'a> {
    /// Database number (from the last SELECTDB).
    pub db: u64,
    /// Key bytes.
    pub key: Cow<'a, [u8]>,
    /// RDB type id of the value (format §4.1).
    pub type_id: u8,
    /// Absolute expiry in Unix milliseconds.
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds (IDLE opcode).
    pub idle: Option<u64>,
    /// LFU frequency counter (FREQ opcode).
    pub freq: Option<u8>,
    /// The KEY_META block (opcode 243 included) that preceded the type byte (RDB 13+).
    pub meta: Option<&'a [u8]>,
    /// The value's serialized bytes exactly as in the file (after the key, before the next record).
    pub raw: &'a [u8],
    /// Absolute offset where the record starts (its first prefix opcode or type byte).
    pub offset: u64,
    /// Absolute offset of `raw`.
    pub value_offset: u64,
    pub(crate) dialect: crate::decode::value::Dialect,
}

impl<'a> Entry<'a> {
    /// Decodes the value into its typed form.
    ///
    /// ```
    /// # use rdbkit::{Decoder, Item, Value, Elem};
    /// # let dump = rdbkit::testing::tiny_dump();
    /// for item in Decoder::new(&dump) {
    ///     if let Item::Entry(e) = item? {
    ///         assert_eq!(e.key.as_ref(), b"greeting");
    ///         assert_eq!(e.value()?, Value::String(Elem::from(&b"hello"[..])));
    ///     }
    /// }
    /// # Ok::<(), rdbkit::DecodeError>(())
    /// ```
    pub fn value(&self) -> Result<Value<'a>, crate::DecodeError> {
        self.decode_with(self.raw, &mut crate::decode::value::NoStore)
    }

    /// Decodes `raw` (this entry's value bytes) with blobs decompressed into `store`.
    fn decode_with<'s, S: crate::decode::value::BlobStore<'s>>(
        &self,
        raw: &'s [u8],
        store: &mut S,
    ) -> Result<Value<'s>, crate::DecodeError> {
        crate::decode::value::decode_value(
            self.type_id,
            raw,
            self.value_offset,
            self.dialect,
            store,
        )
        .map_err(|e| e.with_key(&self.key))
    }

    /// Like [`Entry::value`], but LZF-compressed blobs (listpacks, ziplists, intsets) are
    /// decompressed into `scratch`, which the elements then borrow: no allocation per element.
    /// Reuse one scratch buffer across entries.
    ///
    /// ```
    /// # let dump = rdbkit::testing::tiny_dump();
    /// let mut scratch = Vec::new();
    /// for item in rdbkit::Decoder::new(&dump) {
    ///     if let rdbkit::Item::Entry(e) = item? {
    ///         assert_eq!(e.value_in(&mut scratch)?, e.value()?);
    ///     }
    /// }
    /// # Ok::<(), rdbkit::DecodeError>(())
    /// ```
    pub fn value_in<'s>(
        &'s self,
        scratch: &'s mut Vec<u8>,
    ) -> Result<Value<'s>, crate::DecodeError> {
        let total = crate::decode::value::lzf_total(self.type_id, self.raw, self.dialect);
        scratch.clear();
        scratch.resize(total, 0);
        self.decode_with(self.raw, &mut crate::decode::value::Arena::new(scratch))
    }

    /// Checks the value as [`Entry::value_in`] does (the same errors) and returns its element
    /// count, emptiness and module type, without building it where the encoding allows.
    pub(crate) fn summary_in(
        &self,
        scratch: &mut Vec<u8>,
    ) -> Result<crate::decode::value::Summary, crate::DecodeError> {
        let total = crate::decode::value::lzf_total(self.type_id, self.raw, self.dialect);
        scratch.clear();
        scratch.resize(total, 0);
        crate::decode::value::summarize_value(
            self.type_id,
            self.raw,
            self.value_offset,
            self.dialect,
            &mut crate::decode::value::Arena::new(scratch),
        )
        .map_err(|e| e.with_key(&self.key))
    }

    /// The logical type of the value.
    pub fn value_type(&self) -> ValueType {
        // the decoder only yields entries whose type id it knows
        crate::decode::value::value_type(self.type_id, self.dialect).unwrap_or(ValueType::Module)
    }

    /// The encoding name of the stored value ("listpack", "quicklist2", …).
    pub fn encoding(&self) -> &'static str {
        crate::decode::value::encoding_name(self.type_id, self.dialect)
    }

    /// True when the key's TTL is before `now_ms`.
    pub fn is_expired_at(&self, now_ms: i64) -> bool {
        self.expire_ms.is_some_and(|e| e <= now_ms)
    }
}

impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("db", &self.db)
            .field("key", &escape_bytes(&self.key))
            .field("type_id", &self.type_id)
            .field("expire_ms", &self.expire_ms)
            .field("raw_len", &self.raw.len())
            .field("offset", &self.offset)
            .finish()
    }
}

/// One item of a dump, in file order.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    /// The header: magic and RDB version.
    Header {
        /// `REDIS` or `VALKEY`.
        magic: Magic,
        /// RDB format version.
        version: u32,
    },
    /// An AUX field (`redis-ver`, `ctime`, …). Integer-encoded values are rendered as decimal text.
    Aux {
        /// Field name.
        key: Cow<'a, [u8]>,
        /// Field value.
        value: Cow<'a, [u8]>,
    },
    /// Following entries belong to this database.
    SelectDb {
        /// Database number.
        db: u64,
    },
    /// Size hint for the current database.
    ResizeDb {
        /// Keys.
        db_size: u64,
        /// Keys with a TTL.
        expires_size: u64,
    },
    /// Cluster slot hint (Redis 7.4+).
    SlotInfo {
        /// Slot number.
        slot: u64,
        /// Keys in the slot.
        size: u64,
        /// Keys with a TTL in the slot.
        expires_size: u64,
    },
    /// Valkey 9 atomic slot migration state (opcode 243 in `VALKEY` dumps).
    SlotImport {
        /// Job name.
        job: Cow<'a, [u8]>,
        /// Slot ranges (inclusive).
        ranges: Vec<(u64, u64)>,
    },
    /// A module aux record; `body` is the opcode stream after `when`, through its EOF.
    ModuleAux {
        /// The module type.
        id: ModuleId,
        /// 1 = before keys, 2 = after keys.
        when: u64,
        /// Opcode stream bytes.
        body: &'a [u8],
        /// Absolute offset of the record.
        offset: u64,
    },
    /// A function library (FUNCTION2, or a 7.0-RC FUNCTION_PRE_GA record translated as Redis 7.0
    /// does), as given to `FUNCTION LOAD`.
    Function {
        /// Library source code with its shebang line.
        code: Cow<'a, [u8]>,
    },
    /// A cached Lua script (`lua` AUX field or the legacy Enterprise key form).
    Script {
        /// Script body.
        body: Cow<'a, [u8]>,
        /// SHA1 of the body, lowercase hex.
        sha1: String,
    },
    /// A key and its value.
    Entry(Entry<'a>),
    /// End of the dump.
    Eof {
        /// Trailer state.
        checksum: Checksum,
        /// Absolute offset of the EOF opcode.
        offset: u64,
    },
}
