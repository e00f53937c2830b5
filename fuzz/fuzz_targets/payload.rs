//! DUMP payloads: `payload::verify` and `payload::decode` on the raw input, and on the input with
//! its CRC64 footer repaired (a KEY_META block before the type byte is split off) (so mutations reach the value decoder), where `decode` must agree with
//! decoding the same value bytes directly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::decode::fuzzing;
use rdbkit::payload;

fuzz_target!(|data: &[u8]| {
    let _ = payload::decode(data);
    if data.len() < 11 {
        assert!(payload::verify(data).is_err());
        return;
    }
    let mut p = data.to_vec();
    let n = p.len();
    let crc = rdbkit::crc64(0, &p[..n - 8]);
    p[n - 8..].copy_from_slice(&crc.to_le_bytes());
    // a payload may start with a KEY_META block (RDB 13+): the type byte follows it
    let Ok(v) = payload::verify(&p) else {
        // only a KEY_META block that does not parse is refused once the footer is right
        assert!(p[0] == 0xf3, "a repaired footer verifies");
        return;
    };
    let start = v.meta.map_or(0, <[u8]>::len);
    assert_eq!(v.type_id, p[start]);
    assert_eq!(v.raw, &p[start + 1..n - 10]);
    assert_eq!(v.rdb_version, u16::from_le_bytes([p[n - 10], p[n - 9]]));
    let valkey = (80..=255).contains(&v.rdb_version);
    match (
        payload::decode(&p),
        fuzzing::decode_value(v.type_id, v.raw, valkey),
    ) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("payload::decode {a:?} but decode_value {b:?}"),
    }
});
