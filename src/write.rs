//! An RDB writer: header, aux fields, databases, key records (copied raw from a decoded entry or
//! encoded from simple values), EOF and the CRC64 trailer. Used by `rdbkit filter`/`split`
//! ([`DumpBuilder`], `dump.rs`: a dump of selected keys), by the tests and fuzz targets to build
//! inputs, and by the doc examples.

mod dump;
pub use dump::{copy_record, DumpBuilder};

use crate::crc::crc64;
use crate::model::Entry;

/// Appends an RDB length (format §3.1), smallest form.
pub fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends a raw (unencoded) RDB string.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Builds an RDB file in memory.
///
/// ```
/// use rdbkit::{write::RdbWriter, Decoder, Item};
/// let mut w = RdbWriter::new(12);
/// w.aux(b"redis-ver", b"8.2.3");
/// w.select_db(0);
/// w.string_key(b"k", b"v", Some(1_900_000_000_000));
/// let dump = w.finish();
/// let keys: Vec<_> = Decoder::new(&dump)
///     .filter_map(|i| match i.unwrap() { Item::Entry(e) => Some(e.key.into_owned()), _ => None })
///     .collect();
/// assert_eq!(keys, vec![b"k".to_vec()]);
/// ```
#[derive(Debug, Clone)]
pub struct RdbWriter {
    buf: Vec<u8>,
    version: u32,
}

impl RdbWriter {
    /// Starts a `REDIS` dump of the given version.
    pub fn new(version: u32) -> Self {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(format!("REDIS{version:04}").as_bytes());
        RdbWriter { buf, version }
    }

    /// Starts a `VALKEY` dump (version ≥ 80).
    pub fn new_valkey(version: u32) -> Self {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(format!("VALKEY{version:03}").as_bytes());
        RdbWriter { buf, version }
    }

    /// An AUX field.
    pub fn aux(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.buf.push(0xfa);
        put_string(&mut self.buf, key);
        put_string(&mut self.buf, value);
        self
    }

    /// SELECTDB.
    pub fn select_db(&mut self, db: u64) -> &mut Self {
        self.buf.push(0xfe);
        put_len(&mut self.buf, db);
        self
    }

    /// RESIZEDB hint.
    pub fn resize_db(&mut self, size: u64, expires: u64) -> &mut Self {
        self.buf.push(0xfb);
        put_len(&mut self.buf, size);
        put_len(&mut self.buf, expires);
        self
    }

    /// A FUNCTION2 record.
    pub fn function(&mut self, code: &[u8]) -> &mut Self {
        self.buf.push(0xf5);
        put_string(&mut self.buf, code);
        self
    }

    fn prefixes(&mut self, expire_ms: Option<i64>, idle: Option<u64>, freq: Option<u8>) {
        if let Some(ms) = expire_ms {
            self.buf.push(0xfc);
            self.buf.extend_from_slice(&ms.to_le_bytes());
        }
        if let Some(i) = idle {
            self.buf.push(0xf8);
            put_len(&mut self.buf, i);
        }
        if let Some(f) = freq {
            self.buf.extend_from_slice(&[0xf9, f]);
        }
    }

    /// A key record with an already serialized value (`raw` as in [`Entry::raw`]).
    pub fn raw_key(
        &mut self,
        key: &[u8],
        type_id: u8,
        raw: &[u8],
        expire_ms: Option<i64>,
    ) -> &mut Self {
        self.prefixes(expire_ms, None, None);
        self.buf.push(type_id);
        put_string(&mut self.buf, key);
        self.buf.extend_from_slice(raw);
        self
    }

    /// Copies a decoded entry byte for byte (prefix opcodes, KEY_META, type, key, value).
    pub fn entry(&mut self, e: &Entry<'_>) -> &mut Self {
        self.prefixes(e.expire_ms, e.idle, e.freq);
        if let Some(m) = e.meta {
            self.buf.extend_from_slice(m);
        }
        self.buf.push(e.type_id);
        put_string(&mut self.buf, &e.key);
        self.buf.extend_from_slice(e.raw);
        self
    }

    /// A plain string key.
    pub fn string_key(&mut self, key: &[u8], value: &[u8], expire_ms: Option<i64>) -> &mut Self {
        let mut raw = Vec::with_capacity(value.len() + 5);
        put_string(&mut raw, value);
        self.raw_key(key, 0, &raw, expire_ms)
    }

    /// Appends arbitrary bytes (for building malformed inputs in tests).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Writes EOF and, for version ≥ 5, the CRC64 trailer; returns the dump.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xff);
        if self.version >= 5 {
            let crc = crc64(0, &self.buf);
            self.buf.extend_from_slice(&crc.to_le_bytes());
        }
        self.buf
    }
}
