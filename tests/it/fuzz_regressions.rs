//! Inputs found by the cargo-fuzz targets in fuzz/ (see fuzz/README.md), minimised, as byte
//! literals. Each must decode to `Ok` or `Err` without panicking, and the decoder's different
//! paths (whole file, single value, DUMP payload, cheap skip) must agree on it.

use rdbkit::decode::fuzzing;
use rdbkit::write::RdbWriter;
use rdbkit::{payload, Decoder, Item};

/// What the `value` target does with its input (type id, dialect flag, value bytes): decode and
/// skip must agree, and a value that decodes is skipped to its very end.
fn value_input(data: &[u8]) -> Result<(), String> {
    let [t, flags, raw @ ..] = data else {
        return Ok(());
    };
    let valkey = flags & 1 != 0;
    let skipped = fuzzing::skip_value(*t, raw, valkey);
    let Some(e) = fuzzing::entry(*t, raw, valkey) else {
        // not a type in this dialect: the file decoder's skip refuses it too
        assert!(skipped.is_err(), "{skipped:?}");
        return Err(format!("type {t} is unknown"));
    };
    let decoded = e.value();
    let mut scratch = Vec::new();
    match (&decoded, e.value_in(&mut scratch)) {
        (Ok(a), Ok(b)) => assert_eq!(a, &b),
        (a, b) => assert_eq!(a.is_ok(), b.is_ok(), "value {a:?} / value_in {b:?}"),
    }
    if decoded.is_ok() {
        assert_eq!(skipped.as_ref().ok(), Some(&raw.len()), "{skipped:?}");
    }
    decoded.map(|_| ()).map_err(|e| e.to_string())
}

/// What the `decode_file` target does: drain the dump, decode every value (`value` and
/// `value_in`) and its DUMP payload.
fn whole_file(data: &[u8]) -> Result<(), String> {
    let mut version = 0u16;
    let mut scratch = Vec::new();
    for item in Decoder::new(data).verify_checksum(false) {
        match item.map_err(|e| e.to_string())? {
            Item::Header { version: v, .. } => version = v as u16,
            Item::Entry(e) => {
                let p = payload::for_entry(&e, version);
                payload::verify(&p).map_err(|e| e.to_string())?;
                let a = e.value().map_err(|e| e.to_string());
                let b = e.value_in(&mut scratch).map_err(|e| e.to_string());
                assert_eq!(a.is_ok(), b.is_ok(), "value {a:?} / value_in {b:?}");
                if e.meta.is_none() {
                    let b = payload::decode(&p).map_err(|e| e.to_string());
                    assert_eq!(a.is_ok(), b.is_ok(), "{a:?} / {b:?}");
                }
                a?;
            }
            _ => {}
        }
    }
    Ok(())
}

// See: fuzz target value, found 2026-11-27. Type 23 (the 7.4 RC listpack hash with field TTLs) is
// not a type in Valkey dumps: value_type and skip_value rejected it, but decode_value decoded it,
// so payload::decode accepted a type-23 payload with a Valkey footer version.
#[test]
fn type_23_is_unknown_in_valkey_dialect() {
    let input: &[u8] = &[
        0x17, 0x2d, 0xc3, 0x3a, 0x40, 0x4d, 0x1c, 0x4d, 0x00, 0x00, 0x00, 0x09, 0x00, 0x86, 0x66,
        0x69, 0x65, 0x6c, 0x64, 0x32, 0x07, 0x86, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x32, 0x07, 0xf4,
        0x8f, 0xee, 0xfe, 0xff, 0xff, 0x3f, 0x20, 0x1a, 0x80, 0x19, 0x00, 0x31, 0xa0, 0x19, 0x03,
        0x31, 0x07, 0xf4, 0xff, 0x40, 0x00, 0xe0, 0x01, 0x19, 0x00, 0x33, 0xa0, 0x19, 0x04, 0x33,
        0x07, 0x00, 0x01, 0xff,
    ];
    assert!(value_input(input).is_err());
    // The same value bytes: a hash in Redis' dialect, unknown in Valkey's.
    let raw = &input[2..];
    assert!(fuzzing::decode_value(23, raw, false).is_ok());
    assert!(payload::decode(&payload::build(None, 23, raw, 12)).is_ok());
    assert!(payload::decode(&payload::build(None, 23, raw, 80)).is_err());
}

// See: fuzz target value, found 2026-11-27. Entry::value_in sized its scratch arena by the sum of
// the uncompressed lengths that the value's LZF headers announce, unchecked: a quicklist node
// announcing 2^64-ish bytes panicked with "capacity overflow", one announcing 4 GiB allocated
// 4 GiB. Impossible lengths (beyond LZF's maximum expansion of the data) no longer count.
#[test]
fn value_in_does_not_size_its_arena_by_unchecked_lzf_lengths() {
    // type 18, 1 node, container 10, LZF string: clen 1, ulen 0x6202_8102_bcae_09ff, data ff
    let huge: &[u8] = &[
        0x12, 0x00, 0x01, 0x0a, 0xc3, 0x01, 0x81, 0x81, 0x62, 0x02, 0x81, 0x02, 0xbc, 0xae, 0x09,
        0xff,
    ];
    // type 18, 1 node, container 10, LZF string: clen 0, ulen 0xffff_ffff
    let four_gib: &[u8] = &[
        0x12, 0x00, 0x01, 0x0a, 0xc3, 0x00, 0x80, 0xff, 0xff, 0xff, 0xff,
    ];
    for input in [huge, four_gib] {
        assert!(value_input(input).is_err());
        // the same value in a dump, through Decoder and Entry::value_in
        let mut w = RdbWriter::new(12);
        w.raw_key(b"k", input[0], &input[2..], None);
        assert!(whole_file(&w.finish()).is_err());
    }
}
