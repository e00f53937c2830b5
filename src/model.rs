//! The typed data model the decoder yields: items of a dump, key entries, and decoded values.
//!
//! Byte strings are `Cow<[u8]>`: borrowed from the input where the bytes are used as-is, owned where
//! they had to be decompressed. Integers stored in integer encodings stay integers ([`Elem::Int`])
//! until someone asks for their text.
//!
//! Data only: decoding an [`Entry`]'s value ([`Entry::value`]) lives with the decoder
//! (`decode/entry.rs`); the model imports nothing of it.

mod encoding;

pub use crate::text::escape_bytes;
pub use encoding::{Dialect, Encoding};

use crate::text::{decimal_len, itoa_buf};
use std::borrow::Cow;
use std::fmt;

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
/// Two are equal when their type and bytes are: where they were read (`offset`) is not part of
/// the value (a dump's record and the DUMP payload built from it hold the same value).
#[derive(Debug, Clone)]
pub struct ModuleValue<'a> {
    /// The module type.
    pub id: ModuleId,
    /// The module's opcode stream, from after the type id through the EOF marker.
    pub body: &'a [u8],
    /// Absolute offset of `body` in the input.
    pub offset: u64,
}

impl PartialEq for ModuleValue<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.body == other.body
    }
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

/// One key record of a dump, with its raw value bytes and a lazily decoded typed value.
#[derive(Clone)]
pub struct Entry<'a> {
    /// Database number (from the last SELECTDB).
    pub db: u64,
    /// Key bytes.
    pub key: Cow<'a, [u8]>,
    /// RDB type id of the value (format §4.1), as written. What it means depends on the dump's
    /// producer: see [`Entry::encoding`].
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
    /// The type byte read in the dump's dialect, once, when the record was read.
    pub(crate) encoding: Encoding,
}

impl Entry<'_> {
    /// How the value is stored: its type byte read in the dump's dialect.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The logical type of the value.
    pub fn value_type(&self) -> ValueType {
        self.encoding.value_type()
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
        /// Absolute offset of `body`.
        body_offset: u64,
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
    fn module_id_decodes_name_and_version() {
        // graphdata, encver 13 (format §15.3)
        let id = ModuleId(0x82b6a985d6ad680d);
        assert_eq!(id.name(), "graphdata");
        assert_eq!(id.encver(), 13);
    }
}
