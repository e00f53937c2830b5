//! Writes the hand-assembled RDB 14 (Redis 8.8) fixtures of `testdata/` (see testdata/README.md):
//!
//! ```sh
//! cargo run --release --example rdb14_fixtures -- testdata     # writes testdata/rdb14/
//! ```
//!
//! No Redis 8.8 server is available here, so these are assembled from layouts confirmed by Redis's
//! source (RDB 13: KEY_META 243, stream type 26; format §16.2–16.3) and from a real 8.2 dump, whose
//! records are copied byte for byte (types 0–25 did not change in RDB 13 or 14). The two types RDB
//! 14 adds (27, 28) are not written here: tests/dumps.rs assembles the records that must be
//! refused by name.

use rdbkit::write::{put_len, put_string, RdbWriter};
use rdbkit::{Decoder, Item};
use std::path::Path;

/// The AUX fields a Redis 8.8 `SAVE` writes, with fixed values.
fn aux_88(w: &mut RdbWriter) {
    w.aux(b"redis-ver", b"8.8.0")
        .aux(b"redis-bits", b"64")
        .aux(b"ctime", b"1767225600")
        .aux(b"used-mem", b"1048576")
        .aux(b"aof-base", b"0");
}

/// The IDMP tail of a type-26 stream (format §16.3) with no producers: duration 100 s, at most
/// 100 entries, counters 0.
fn idmp_tail(out: &mut Vec<u8>) {
    for n in [100, 100, 0, 0, 0] {
        put_len(out, n);
    }
}

fn empty() -> Vec<u8> {
    let mut w = RdbWriter::new(14);
    aux_88(&mut w);
    w.finish()
}

/// The 8.2 all-types dump as 8.8 would lay it out where the layout is confirmed: version 14,
/// `redis-ver` 8.8.0, every stream as type 26 (8.6+ write no older stream type), everything
/// else copied.
fn all_types(v12: &[u8]) -> Vec<u8> {
    let mut w = RdbWriter::new(14);
    let mut d = Decoder::new(v12);
    let mut prev = d.position() as usize;
    while let Some(item) = d.next_item().expect("the v12 dump decodes") {
        let span = &v12[prev..d.position() as usize];
        match item {
            Item::Header { .. } | Item::Eof { .. } => {}
            Item::Aux { key, .. } if key.as_ref() == b"redis-ver" => {
                w.aux(b"redis-ver", b"8.8.0");
            }
            Item::Entry(e) if e.type_id == 21 => {
                let mut raw = e.raw.to_vec();
                idmp_tail(&mut raw);
                let mut e26 = e.clone();
                e26.type_id = 26;
                e26.raw = &raw;
                w.entry(&e26);
            }
            _ => {
                w.bytes(span);
            }
        }
        prev = d.position() as usize;
    }
    w.finish()
}

/// One string key with a TTL and a KEY_META block (format §16.2) between the expiry and the type
/// byte: one class `test` version 1, holding one unsigned integer.
fn key_meta() -> Vec<u8> {
    let mut w = RdbWriter::new(14);
    aux_88(&mut w);
    w.select_db(0).resize_db(2, 1);
    let mut rec = vec![0xfc];
    rec.extend_from_slice(&4_102_444_800_000i64.to_le_bytes());
    rec.push(0xf3);
    put_len(&mut rec, 1);
    // class name "test" (6 bits a character, A-Z a-z 0-9 _ -), version 1, no flags
    let name: u32 = b"test"
        .iter()
        .fold(0, |acc, &ch| (acc << 6) | u32::from(ch - b'a' + 26));
    rec.extend_from_slice(&((name << 8) | (1 << 3)).to_le_bytes());
    put_len(&mut rec, 2); // UINT
    put_len(&mut rec, 7);
    put_len(&mut rec, 0); // EOF
    rec.push(0);
    put_string(&mut rec, b"meta:key");
    put_string(&mut rec, b"value with metadata");
    w.bytes(&rec).string_key(b"plain", b"no metadata", None);
    w.finish()
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "testdata".into());
    let dir = Path::new(&dir);
    let v12 = std::fs::read(dir.join("redis82_all_types_v12.rdb")).expect("read the 8.2 dump");
    // a subdirectory: the tests that load every testdata/*.rdb into 8.2 do not see them
    let dir = dir.join("rdb14");
    std::fs::create_dir_all(&dir).expect("create testdata/rdb14");
    for (name, bytes) in [
        ("handmade_empty_v14.rdb", empty()),
        ("handmade_all_types_v14.rdb", all_types(&v12)),
        ("handmade_key_meta_v14.rdb", key_meta()),
    ] {
        std::fs::write(dir.join(name), &bytes).expect("write fixture");
        println!("{name}: {} bytes", bytes.len());
    }
}
