//! RedisJSON documents (`ReJSON-RL`).
//!
//! Encoding versions read (RedisJSON 2.x `redisjson.rs`, `value_rdb_load_json`):
//! - **3** (written by RedisJSON 2.0 and later): one STRING, the document as compact JSON text.
//! - **2** (RedisJSON 2.0 previews): the STRING, then a UINT; when it is not 0, two more STRINGs
//!   (an old RediSearch aux field), which are skipped.
//!
//! Version 0 (RedisJSON 1.x, a tree of typed nodes) and any later version are not read: the value
//! stays opaque.

use serde::de::{self, Deserializer as _, MapAccess, SeqAccess, Visitor};

use super::{unknown_encver, Ops};
use crate::error::{DecodeError, ErrorKind, Result};

/// The module type name.
pub const TYPE_NAME: &str = "ReJSON-RL";

/// A JSON document read from a dump.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonDoc {
    /// The document as compact JSON text (as RedisJSON saved it; object members in their order).
    pub text: String,
    /// What RedisJSON reports for it (`JSON.DEBUG MEMORY`, its `mem_usage` callback).
    pub mem_usage: u64,
}

/// Reads a `ReJSON-RL` value of encoding version `encver` from its opcode stream `body` (at
/// absolute offset `offset`).
pub fn read(body: &[u8], offset: u64, encver: u32) -> Result<JsonDoc> {
    if !matches!(encver, 2 | 3) {
        return Err(unknown_encver(
            offset,
            TYPE_NAME,
            encver,
            "versions 2 and 3",
        ));
    }
    let mut ops = Ops::new(body, offset, TYPE_NAME);
    let at = ops.offset();
    let data = ops.string("the document text")?;
    if encver == 2 && ops.uint("the legacy aux flag")? > 0 {
        ops.string("a legacy aux string")?;
        ops.string("a legacy aux string")?;
    }
    ops.end()?;
    let text = String::from_utf8(data.into_owned()).map_err(|e| {
        invalid(
            at,
            format!(
                "the document is not UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let mem_usage =
        memory(&text).map_err(|e| invalid(at, format!("the document is not JSON: {e}")))?;
    Ok(JsonDoc { text, mem_usage })
}

fn invalid(offset: u64, detail: String) -> DecodeError {
    DecodeError::new(
        offset,
        ErrorKind::Invalid {
            what: "module value",
            detail: format!("{TYPE_NAME}: {detail}"),
        },
    )
}

/// Validates `text` as one JSON value and computes RedisJSON's `get_memory` of it (ijson values:
/// 8 bytes per value, plus 16 for a float or a 64-bit integer, 4 for a 24-bit one, the bytes of a
/// string; arrays `8 × (capacity + 2)`, objects `8 × (3 × capacity + 2)` plus their keys' bytes,
/// where the capacity grows 0, 4, 8, 16… as the parser pushes members).
pub fn memory(text: &str) -> std::result::Result<u64, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let m = de.deserialize_any(Mem)?;
    de.end()?;
    Ok(m)
}

/// ijson's size of a value header.
const IVALUE: u64 = 8;

fn capacity(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        n.max(4).next_power_of_two()
    }
}

fn int_mem(fits_8: bool, fits_24: bool) -> u64 {
    IVALUE
        + if fits_8 {
            0
        } else if fits_24 {
            4
        } else {
            16
        }
}

struct Mem;

impl<'de> Visitor<'de> for Mem {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<u64, E> {
        Ok(IVALUE)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<u64, E> {
        Ok(IVALUE)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<u64, E> {
        Ok(int_mem(
            (-128..=383).contains(&v),
            v > -8_388_608 && v <= 8_388_607,
        ))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<u64, E> {
        Ok(int_mem(v <= 383, v <= 8_388_607))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<u64, E> {
        Ok(IVALUE + 16)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<u64, E> {
        Ok(IVALUE + v.len() as u64)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<u64, A::Error> {
        let (mut n, mut sum) = (0u64, 0u64);
        while let Some(m) = seq.next_element_seed(MemSeed)? {
            n += 1;
            sum += m;
        }
        Ok(IVALUE
            + if n == 0 {
                0
            } else {
                8 * (capacity(n) + 2) + sum
            })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<u64, A::Error> {
        let (mut n, mut sum) = (0u64, 0u64);
        while let Some(k) = map.next_key_seed(KeyLen)? {
            n += 1;
            sum += k + map.next_value_seed(MemSeed)?;
        }
        Ok(IVALUE
            + if n == 0 {
                0
            } else {
                8 * (3 * capacity(n) + 2) + sum
            })
    }
}

struct MemSeed;

impl<'de> de::DeserializeSeed<'de> for MemSeed {
    type Value = u64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<u64, D::Error> {
        d.deserialize_any(Mem)
    }
}

/// An object key's length in bytes.
struct KeyLen;

impl<'de> de::DeserializeSeed<'de> for KeyLen {
    type Value = u64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<u64, D::Error> {
        d.deserialize_str(KeyLen)
    }
}

impl<'de> Visitor<'de> for KeyLen {
    type Value = u64;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<u64, E> {
        Ok(v.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values measured with `JSON.DEBUG MEMORY` on RedisJSON 2.8.3.
    #[test]
    fn memory_matches_redisjson() {
        for (doc, want) in [
            ("[]", 8),
            ("[null]", 64),
            ("[null,null,null,null,null]", 128),
            ("{\"0\":null}", 129),
            ("383", 8),
            ("384", 12),
            ("-129", 12),
            ("8388608", 24),
            ("-8388608", 24),
            ("1.0", 24),
            ("\"abc\"", 11),
            ("true", 8),
            ("18446744073709551615", 24),
        ] {
            assert_eq!(memory(doc).unwrap(), want, "{doc}");
        }
        let nine: Vec<String> = (0..9).map(|i| format!("\"{i}\":null")).collect();
        assert_eq!(memory(&format!("{{{}}}", nine.join(","))).unwrap(), 489);
    }

    #[test]
    fn reads_version_3_and_refuses_others() {
        let body = [5, 7, b'{', b'"', b'a', b'"', b':', b'1', b'}', 0];
        let d = read(&body, 10, 3).unwrap();
        assert_eq!(d.text, "{\"a\":1}");
        let e = read(&body, 10, 4).unwrap_err();
        assert!(e.to_string().contains("encoding version 4"), "{e}");
        let bad = [5, 2, b'{', b'x', 0];
        let e = read(&bad, 10, 3).unwrap_err();
        assert_eq!(e.offset(), 10);
        assert!(e.to_string().contains("not JSON"), "{e}");
    }
}
