//! Module values and module aux records (format §7.2): a module type id followed by a typed opcode
//! stream that ends with opcode 0. The stream is self-describing, so it can be skipped without the
//! module.
//!
//! Some module types are also *read* (each decoder in a file of its own, naming the encoding
//! versions it reads): RedisJSON documents ([`json`]) and RedisBloom's five types ([`bloom`]). A
//! type none of them reads, or an encoding version they do not know, stays opaque: [`decode`] says
//! which.

pub mod bloom;
pub mod json;
pub mod search;

use std::borrow::Cow;

use super::cursor::Cursor;
use super::string::{read_len, read_string, skip_string, RdbString};
use crate::error::{DecodeError, ErrorKind, Result};
use crate::model::ModuleValue;

/// Skips a module opcode stream up to and including its EOF marker.
pub(crate) fn skip_opcodes(c: &mut Cursor<'_>) -> Result<()> {
    loop {
        let at = c.pos();
        match read_len(c, "module opcode")? {
            0 => return Ok(()),
            1 | 2 => {
                read_len(c, "module integer")?;
            }
            3 => c.skip(4, "module float")?,
            4 => c.skip(8, "module double")?,
            5 => skip_string(c, "module string")?,
            op => {
                return Err(c.err_at(
                    at,
                    crate::error::ErrorKind::Invalid {
                        what: "module value",
                        detail: format!("unknown module opcode {op}"),
                    },
                ))
            }
        }
    }
}

/// Reads the operands of a module opcode stream in the order a module's `rdb_load` does
/// (`RedisModule_LoadUnsigned`, `LoadDouble`, `LoadStringBuffer`…): each read expects one opcode
/// and fails, naming the offset and what the module would have loaded there, on any other.
pub(crate) struct Ops<'a> {
    c: Cursor<'a>,
    /// The module type being read, for messages.
    module: &'static str,
}

const OPCODE_NAMES: [&str; 6] = ["EOF", "SINT", "UINT", "FLOAT", "DOUBLE", "STRING"];

impl<'a> Ops<'a> {
    /// A reader over `body` (the stream after the type id, through its EOF), which starts at
    /// absolute offset `offset`.
    pub(crate) fn new(body: &'a [u8], offset: u64, module: &'static str) -> Self {
        Ops {
            c: Cursor::blob(body, offset),
            module,
        }
    }

    /// Absolute offset of the next opcode.
    pub(crate) fn offset(&self) -> u64 {
        self.c.offset()
    }

    fn opcode(&mut self, want: &[u64], what: &'static str) -> Result<u64> {
        let at = self.c.pos();
        let op = read_len(&mut self.c, "module opcode")?;
        if want.contains(&op) {
            return Ok(op);
        }
        let found = OPCODE_NAMES.get(op as usize).map_or_else(
            || format!("unknown opcode {op}"),
            |n| format!("opcode {op} ({n})"),
        );
        let expected = OPCODE_NAMES[want[0] as usize];
        Err(self.c.err_at(
            at,
            ErrorKind::Invalid {
                what: "module value",
                detail: format!(
                    "{}: expected {what} ({expected}), found {found}",
                    self.module
                ),
            },
        ))
    }

    /// An unsigned integer (`SaveUnsigned`; `SaveSigned` writes the same opcode).
    pub(crate) fn uint(&mut self, what: &'static str) -> Result<u64> {
        self.opcode(&[2, 1], what)?;
        read_len(&mut self.c, what)
    }

    /// A signed integer (`SaveSigned`: its two's-complement bits as an unsigned).
    pub(crate) fn sint(&mut self, what: &'static str) -> Result<i64> {
        self.uint(what).map(|u| u as i64)
    }

    /// A double (`SaveDouble`).
    pub(crate) fn double(&mut self, what: &'static str) -> Result<f64> {
        self.opcode(&[4], what)?;
        self.c.read_f64_le(what)
    }

    /// A string (`SaveString`/`SaveStringBuffer`), not yet decompressed.
    pub(crate) fn raw_string(&mut self, what: &'static str) -> Result<RdbString<'a>> {
        self.opcode(&[5], what)?;
        read_string(&mut self.c, what)
    }

    /// A string's bytes (decompressed if it was LZF-compressed; bounded by the compressed size).
    pub(crate) fn string(&mut self, what: &'static str) -> Result<Cow<'a, [u8]>> {
        self.raw_string(what)?.to_bytes()
    }

    /// The EOF marker that ends the stream; nothing may follow it.
    pub(crate) fn end(mut self) -> Result<()> {
        self.opcode(&[0], "the end of the value")?;
        if !self.c.is_empty() {
            return Err(self.c.invalid(
                "module value",
                format!(
                    "{}: {} bytes after the EOF opcode",
                    self.module,
                    self.c.remaining()
                ),
            ));
        }
        Ok(())
    }

    /// An error at the current position.
    pub(crate) fn invalid(&self, detail: impl Into<String>) -> DecodeError {
        self.c.invalid(
            "module value",
            format!("{}: {}", self.module, detail.into()),
        )
    }
}

/// A module value read by one of rdbkit's module decoders.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ModuleData {
    /// A RedisJSON document (`ReJSON-RL`).
    Json(json::JsonDoc),
    /// A RedisBloom scalable Bloom filter (`MBbloom--`).
    Bloom(bloom::BloomFilter),
    /// A RedisBloom Cuckoo filter (`MBbloomCF`).
    Cuckoo(bloom::CuckooFilter),
    /// A RedisBloom Count-Min sketch (`CMSk-TYPE`).
    Cms(bloom::CountMinSketch),
    /// A RedisBloom Top-K (`TopK-TYPE`).
    TopK(bloom::TopK),
    /// A RedisBloom t-digest (`TDIS-TYPE`).
    TDigest(bloom::TDigest),
}

impl ModuleData {
    /// Short type name used by `export` (`json`, `bloom`, `cuckoo`, `cms`, `topk`, `tdigest`).
    pub fn kind(&self) -> &'static str {
        match self {
            ModuleData::Json(_) => "json",
            ModuleData::Bloom(_) => "bloom",
            ModuleData::Cuckoo(_) => "cuckoo",
            ModuleData::Cms(_) => "cms",
            ModuleData::TopK(_) => "topk",
            ModuleData::TDigest(_) => "tdigest",
        }
    }

    /// The bytes the module reports for the value (its `mem_usage` callback, which `MEMORY USAGE`
    /// adds to the key's own allocation), computed as the module does from what the dump holds.
    pub fn mem_usage(&self) -> u64 {
        match self {
            ModuleData::Json(d) => d.mem_usage,
            ModuleData::Bloom(b) => b.mem_usage(),
            ModuleData::Cuckoo(c) => c.mem_usage(),
            ModuleData::Cms(c) => c.mem_usage(),
            ModuleData::TopK(t) => t.mem_usage(),
            ModuleData::TDigest(t) => t.mem_usage(),
        }
    }

    /// The counts of the value that add up over keys of its kind, as `info` totals them: Bloom
    /// `capacity`/`items`/`filters`, Cuckoo `items`/`deleted`/`filters`, Count-Min `count`, Top-K
    /// `k`, t-digest `observations` (its weights, which count added values) and `centroids`.
    /// Rates, decays and compressions do not add up and are left out.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        match self {
            ModuleData::Json(_) => Vec::new(),
            ModuleData::Bloom(b) => vec![
                ("capacity", b.capacity()),
                ("items", b.items),
                ("filters", b.filters.len() as u64),
            ],
            ModuleData::Cuckoo(c) => vec![
                ("items", c.items),
                ("deleted", c.deleted),
                ("filters", c.filter_bytes.len() as u64),
            ],
            ModuleData::Cms(c) => vec![("count", c.count)],
            ModuleData::TopK(t) => vec![("k", t.k)],
            ModuleData::TDigest(t) => vec![
                // weights are whole numbers of added values, kept as doubles by the module
                ("observations", (t.merged_weight + t.unmerged_weight) as u64),
                (
                    "centroids",
                    t.merged_nodes.max(0) as u64 + t.unmerged_nodes.max(0) as u64,
                ),
            ],
        }
    }

    /// The parameters as a JSON object (for the RedisBloom types; `None` for documents).
    pub fn params(&self) -> Option<serde_json::Value> {
        match self {
            ModuleData::Json(_) => None,
            ModuleData::Bloom(b) => Some(b.params()),
            ModuleData::Cuckoo(c) => Some(c.params()),
            ModuleData::Cms(c) => Some(c.params()),
            ModuleData::TopK(t) => Some(t.params()),
            ModuleData::TDigest(t) => Some(t.params()),
        }
    }
}

/// True for the module types that [`decode`] reads (whatever their encoding version).
pub fn is_read(type_name: &str) -> bool {
    matches!(
        type_name,
        json::TYPE_NAME
            | bloom::BLOOM_TYPE
            | bloom::CUCKOO_TYPE
            | bloom::CMS_TYPE
            | bloom::TOPK_TYPE
            | bloom::TDIGEST_TYPE
    )
}

/// Reads a module value whose type one of rdbkit's decoders knows.
///
/// `Ok(None)`: a module type rdbkit does not read (it stays opaque). `Err`: a type it reads but
/// an encoding version it does not know, or bytes that do not follow the module's layout; the
/// message names the offset and what was expected, and the value is then carried opaque (never
/// misread).
pub fn decode(m: &ModuleValue<'_>) -> Result<Option<ModuleData>> {
    let name = m.id.name();
    let encver = m.id.encver();
    let (ops, at) = (m.body, m.offset);
    Ok(Some(match name.as_str() {
        json::TYPE_NAME => ModuleData::Json(json::read(ops, at, encver)?),
        bloom::BLOOM_TYPE => ModuleData::Bloom(bloom::BloomFilter::read(ops, at, encver)?),
        bloom::CUCKOO_TYPE => ModuleData::Cuckoo(bloom::CuckooFilter::read(ops, at, encver)?),
        bloom::CMS_TYPE => ModuleData::Cms(bloom::CountMinSketch::read(ops, at, encver)?),
        bloom::TOPK_TYPE => ModuleData::TopK(bloom::TopK::read(ops, at, encver)?),
        bloom::TDIGEST_TYPE => ModuleData::TDigest(bloom::TDigest::read(ops, at, encver)?),
        _ => return Ok(None),
    }))
}

/// The error for an encoding version a decoder does not read.
pub(crate) fn unknown_encver(
    offset: u64,
    module: &'static str,
    encver: u32,
    reads: &'static str,
) -> DecodeError {
    DecodeError::new(
        offset,
        ErrorKind::Invalid {
            what: "module value",
            detail: format!(
                "{module} encoding version {encver} is not one rdbkit reads ({reads}); the value is \
                 carried opaque"
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_every_opcode() {
        // UINT 5, SINT 1, FLOAT, DOUBLE, STRING "ab", EOF
        let body = [
            2, 5, 1, 1, 3, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 5, 2, b'a', b'b', 0, 0xaa,
        ];
        let mut c = Cursor::new(&body, 0);
        skip_opcodes(&mut c).unwrap();
        assert_eq!(c.remaining(), 1);
    }

    #[test]
    fn ops_read_in_order_and_name_the_mismatch() {
        // UINT 5, DOUBLE 1.5, STRING "ab", EOF
        let mut body = vec![2, 5, 4];
        body.extend_from_slice(&1.5f64.to_le_bytes());
        body.extend_from_slice(&[5, 2, b'a', b'b', 0]);
        let mut ops = Ops::new(&body, 100, "TEST");
        assert_eq!(ops.uint("n").unwrap(), 5);
        assert_eq!(ops.double("d").unwrap(), 1.5);
        assert_eq!(&*ops.string("s").unwrap(), b"ab");
        ops.end().unwrap();

        let mut ops = Ops::new(&body, 100, "TEST");
        let e = ops.double("error rate").unwrap_err();
        assert_eq!(e.offset(), 100);
        assert!(
            e.to_string()
                .contains("TEST: expected error rate (DOUBLE), found opcode 2 (UINT)"),
            "{e}"
        );
    }

    #[test]
    fn unknown_opcode_is_an_error() {
        let mut c = Cursor::new(&[2, 5, 9], 0);
        let e = skip_opcodes(&mut c).unwrap_err();
        assert_eq!(e.offset(), 2);
        assert!(e.to_string().contains("unknown module opcode 9"));
    }
}
