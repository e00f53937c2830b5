//! # rdbkit
//!
//! Decode, inspect, export and replay Redis / Valkey / Redis Enterprise RDB dumps.
//!
//! The [`Decoder`] walks a dump held in memory (usually a memory map, see [`source`]) and yields
//! [`Item`]s one at a time without materialising the dump. Key records come as [`Entry`]s that carry
//! the exact bytes of the serialized value (for byte-exact `RESTORE` payloads, see [`payload`]) and
//! decode into a typed [`Value`] on demand.
//!
//! ```
//! use rdbkit::{Decoder, Item, Value};
//! let dump = rdbkit::testing::tiny_dump();
//! let mut strings = Vec::new();
//! for item in Decoder::new(&dump) {
//!     if let Item::Entry(entry) = item? {
//!         if let Value::String(s) = entry.value()? {
//!             println!("{} = {}", String::from_utf8_lossy(&entry.key), String::from_utf8_lossy(&s.to_bytes()));
//!             strings.push((entry.key.to_vec(), s.to_bytes().to_vec()));
//!         }
//!     }
//! }
//! assert_eq!(strings, [(b"greeting".to_vec(), b"hello".to_vec())]);
//! # Ok::<(), rdbkit::DecodeError>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod cluster;
pub mod commands;
mod crc;
pub mod decode;
pub mod diff;
pub mod dups;
pub mod error;
pub mod filter;
pub mod model;
pub mod output;
pub mod payload;
#[cfg(feature = "import")]
pub mod replay;
pub mod source;
pub mod text;
pub mod transform;
pub mod write;

pub use crc::{crc64, crc64_combine};
pub use decode::Decoder;
pub use error::{DecodeError, ErrorKind};
pub use model::{
    Checksum, Consumer, ConsumerGroup, Dialect, Elem, Encoding, Entry, HashField, IdmpProducer,
    Item, Magic, ModuleId, ModuleValue, PendingEntry, Producer, Stream, StreamEntry, StreamId,
    Value, ValueType,
};

/// Small fixtures for examples and tests.
#[doc(hidden)]
pub mod testing {
    /// A one-key RDB 12 dump: `greeting` = `hello`.
    pub fn tiny_dump() -> Vec<u8> {
        let mut w = crate::write::RdbWriter::new(12);
        w.aux(b"redis-ver", b"8.2.3").select_db(0).resize_db(1, 0);
        w.string_key(b"greeting", b"hello", None);
        w.finish()
    }

    /// A seeded xorshift64 generator: repeatable pseudo-random test input without a dependency.
    #[derive(Debug, Clone)]
    pub struct XorShift(u64);

    impl Default for XorShift {
        fn default() -> Self {
            XorShift(0x9e37_79b9_7f4a_7c15)
        }
    }

    impl XorShift {
        /// A generator from `seed` (not zero: zero stays zero).
        pub fn with_seed(seed: u64) -> Self {
            XorShift(seed.max(1))
        }

        /// The next value.
        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Every `.rdb` file under `dir`, recursively, shorter than `max_len` bytes, sorted (none
    /// when `dir` does not exist).
    pub fn rdb_files(dir: &std::path::Path, max_len: u64) -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, max_len: u64, out: &mut Vec<std::path::PathBuf>) {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, max_len, out);
                } else if p.extension().is_some_and(|x| x == "rdb")
                    && e.metadata().is_ok_and(|m| m.len() < max_len)
                {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, max_len, &mut out);
        out.sort();
        out
    }

    /// True under `RDBKIT_REQUIRE_SERVERS=1` (set by `.ci/run`): whatever a test needs (the
    /// servers, the FalkorDB module, the corpus, Chromium) must be there; a test that cannot run
    /// fails instead of skipping.
    pub fn required() -> bool {
        std::env::var("RDBKIT_REQUIRE_SERVERS").as_deref() == Ok("1")
    }

    /// Says that (part of) a test cannot run for want of `what`: panics under
    /// `RDBKIT_REQUIRE_SERVERS=1`, else prints `SKIP: {what}` and returns true.
    #[track_caller]
    pub fn skip(what: &str) -> bool {
        if required() {
            panic!("{what} (RDBKIT_REQUIRE_SERVERS=1: a missing requirement is a failure)");
        }
        eprintln!("SKIP: {what}");
        true
    }

    /// The public dump corpus: `$RDBKIT_CORPUS`, else `<crate>/../shared/corpus`, a directory
    /// holding `MANIFEST.tsv`. When it is absent: `None`, after [`skip`] (a panic in CI).
    #[track_caller]
    pub fn corpus_dir() -> Option<std::path::PathBuf> {
        let dir = match std::env::var_os("RDBKIT_CORPUS") {
            Some(d) => std::path::PathBuf::from(d),
            None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        };
        if dir.join("MANIFEST.tsv").is_file() {
            Some(dir)
        } else {
            skip(&format!(
                "no corpus at {} (MANIFEST.tsv; set RDBKIT_CORPUS)",
                dir.display()
            ));
            None
        }
    }
}

#[cfg(test)]
mod oibits {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<crate::Decoder<'static>>();
        assert_send_sync::<crate::Entry<'static>>();
        assert_send_sync::<crate::Item<'static>>();
        assert_send_sync::<crate::DecodeError>();
    }
}
