//! The type table: what an RDB type byte means (format §4.1), read once per record in the dialect
//! of the dump's producer, so nothing downstream matches on bare type numbers.

use super::ValueType;
use std::fmt;

/// How to read the type ids whose meaning depends on who wrote the dump (22 and 23, format §4.1):
/// the `VALKEY` magic gives the Valkey meanings, anything else the Redis ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dialect {
    /// True for dumps with the `VALKEY` magic (Valkey 9+).
    pub valkey: bool,
}

/// The stored form of a value: its RDB type byte read in the dump's [`Dialect`]. Variants are named
/// after Redis's and Valkey's `RDB_TYPE_*` constants.
///
/// ```
/// use rdbkit::model::{Dialect, Encoding, ValueType};
/// let redis = Encoding::from_type(22, Dialect { valkey: false }).unwrap();
/// let valkey = Encoding::from_type(22, Dialect { valkey: true }).unwrap();
/// assert_eq!(redis, Encoding::HashMetadataPreGa);
/// assert_eq!(valkey, Encoding::Hash2);
/// assert_eq!((redis.value_type(), valkey.value_type()), (ValueType::Hash, ValueType::Hash));
/// assert_eq!(valkey.type_id(), 22);
/// assert_eq!(Encoding::from_type(23, Dialect { valkey: true }), None);
/// assert_eq!(Encoding::ListQuicklist2.to_string(), "quicklist2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Encoding {
    /// 0 `RDB_TYPE_STRING`.
    String,
    /// 1 `RDB_TYPE_LIST`: a linked list of strings.
    List,
    /// 2 `RDB_TYPE_SET`: a hash table of strings.
    Set,
    /// 3 `RDB_TYPE_ZSET`: a skiplist with scores as text.
    Zset,
    /// 4 `RDB_TYPE_HASH`: a hash table.
    Hash,
    /// 5 `RDB_TYPE_ZSET_2`: a skiplist with binary scores.
    Zset2,
    /// 7 `RDB_TYPE_MODULE_2`: a module value.
    Module2,
    /// 9 `RDB_TYPE_HASH_ZIPMAP`.
    HashZipmap,
    /// 10 `RDB_TYPE_LIST_ZIPLIST`.
    ListZiplist,
    /// 11 `RDB_TYPE_SET_INTSET`.
    SetIntset,
    /// 12 `RDB_TYPE_ZSET_ZIPLIST`.
    ZsetZiplist,
    /// 13 `RDB_TYPE_HASH_ZIPLIST`.
    HashZiplist,
    /// 14 `RDB_TYPE_LIST_QUICKLIST`: ziplist nodes.
    ListQuicklist,
    /// 15 `RDB_TYPE_STREAM_LISTPACKS`.
    StreamListpacks,
    /// 16 `RDB_TYPE_HASH_LISTPACK`.
    HashListpack,
    /// 17 `RDB_TYPE_ZSET_LISTPACK`.
    ZsetListpack,
    /// 18 `RDB_TYPE_LIST_QUICKLIST_2`: listpack and plain nodes.
    ListQuicklist2,
    /// 19 `RDB_TYPE_STREAM_LISTPACKS_2`.
    StreamListpacks2,
    /// 20 `RDB_TYPE_SET_LISTPACK`.
    SetListpack,
    /// 21 `RDB_TYPE_STREAM_LISTPACKS_3`.
    StreamListpacks3,
    /// 22 in Redis dumps, `RDB_TYPE_HASH_METADATA_PRE_GA` (7.4 RC): a hash table with field TTLs.
    HashMetadataPreGa,
    /// 23 in Redis dumps, `RDB_TYPE_HASH_LISTPACK_EX_PRE_GA` (7.4 RC): a listpack with field TTLs.
    HashListpackExPreGa,
    /// 24 `RDB_TYPE_HASH_METADATA`: a hash table with field TTLs.
    HashMetadata,
    /// 25 `RDB_TYPE_HASH_LISTPACK_EX`: a listpack with field TTLs.
    HashListpackEx,
    /// 26 `RDB_TYPE_STREAM_LISTPACKS_4`: a stream with idempotency state.
    StreamListpacks4,
    /// 22 in Valkey dumps, `RDB_TYPE_HASH_2` (Valkey 9): a hash table with absolute field expiries.
    Hash2,
}

impl Encoding {
    /// The encoding of type byte `type_id` in `dialect`, or `None` when the decoder does not know
    /// the type there (in Valkey dumps 23 is not a type).
    pub fn from_type(type_id: u8, dialect: Dialect) -> Option<Self> {
        use Encoding::*;
        Some(match type_id {
            0 => String,
            1 => List,
            2 => Set,
            3 => Zset,
            4 => Hash,
            5 => Zset2,
            7 => Module2,
            9 => HashZipmap,
            10 => ListZiplist,
            11 => SetIntset,
            12 => ZsetZiplist,
            13 => HashZiplist,
            14 => ListQuicklist,
            15 => StreamListpacks,
            16 => HashListpack,
            17 => ZsetListpack,
            18 => ListQuicklist2,
            19 => StreamListpacks2,
            20 => SetListpack,
            21 => StreamListpacks3,
            22 if dialect.valkey => Hash2,
            22 => HashMetadataPreGa,
            23 if dialect.valkey => return None,
            23 => HashListpackExPreGa,
            24 => HashMetadata,
            25 => HashListpackEx,
            26 => StreamListpacks4,
            _ => return None,
        })
    }

    /// The type byte this encoding is written with.
    pub fn type_id(self) -> u8 {
        use Encoding::*;
        match self {
            String => 0,
            List => 1,
            Set => 2,
            Zset => 3,
            Hash => 4,
            Zset2 => 5,
            Module2 => 7,
            HashZipmap => 9,
            ListZiplist => 10,
            SetIntset => 11,
            ZsetZiplist => 12,
            HashZiplist => 13,
            ListQuicklist => 14,
            StreamListpacks => 15,
            HashListpack => 16,
            ZsetListpack => 17,
            ListQuicklist2 => 18,
            StreamListpacks2 => 19,
            SetListpack => 20,
            StreamListpacks3 => 21,
            HashMetadataPreGa | Hash2 => 22,
            HashListpackExPreGa => 23,
            HashMetadata => 24,
            HashListpackEx => 25,
            StreamListpacks4 => 26,
        }
    }

    /// The logical type of values stored this way.
    pub fn value_type(self) -> ValueType {
        use Encoding::*;
        match self {
            String => ValueType::String,
            List | ListZiplist | ListQuicklist | ListQuicklist2 => ValueType::List,
            Set | SetIntset | SetListpack => ValueType::Set,
            Zset | Zset2 | ZsetZiplist | ZsetListpack => ValueType::SortedSet,
            Hash | HashZipmap | HashZiplist | HashListpack | HashMetadataPreGa
            | HashListpackExPreGa | HashMetadata | HashListpackEx | Hash2 => ValueType::Hash,
            StreamListpacks | StreamListpacks2 | StreamListpacks3 | StreamListpacks4 => {
                ValueType::Stream
            }
            Module2 => ValueType::Module,
        }
    }

    /// The name `rdbkit info` reports ("listpack", "quicklist2", …).
    pub fn name(self) -> &'static str {
        use Encoding::*;
        match self {
            String => "string",
            List => "linkedlist",
            Set | Hash => "hashtable",
            Zset => "skiplist (text scores)",
            Zset2 => "skiplist",
            Module2 => "module",
            HashZipmap => "zipmap",
            ListZiplist | ZsetZiplist | HashZiplist => "ziplist",
            SetIntset => "intset",
            ListQuicklist => "quicklist",
            StreamListpacks => "stream v1",
            HashListpack | ZsetListpack | SetListpack => "listpack",
            ListQuicklist2 => "quicklist2",
            StreamListpacks2 => "stream v2",
            StreamListpacks3 => "stream v3",
            Hash2 => "hashtable with field TTLs (Valkey)",
            HashMetadataPreGa => "hashtable with field TTLs (7.4 RC)",
            HashListpackExPreGa => "listpack with field TTLs (7.4 RC)",
            HashMetadata => "hashtable with field TTLs",
            HashListpackEx => "listpack with field TTLs",
            StreamListpacks4 => "stream v4 (IDMP)",
        }
    }

    /// True for the hash encodings that carry field TTLs (Redis 22–25, Valkey's `HASH_2`).
    pub fn has_field_ttls(self) -> bool {
        use Encoding::*;
        matches!(
            self,
            HashMetadataPreGa | HashListpackExPreGa | HashMetadata | HashListpackEx | Hash2
        )
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every known type byte maps to an encoding that writes the same byte back, in both dialects.
    #[test]
    fn type_bytes_round_trip() {
        let mut known = 0;
        for valkey in [false, true] {
            for t in 0..=255u8 {
                if let Some(e) = Encoding::from_type(t, Dialect { valkey }) {
                    assert_eq!(e.type_id(), t, "{e:?}");
                    known += 1;
                }
            }
        }
        // 25 type ids (0–5, 7, 9–26 less 6 and 8) in Redis dumps, 24 in Valkey dumps (no 23)
        assert_eq!(known, 25 + 24);
    }
}
