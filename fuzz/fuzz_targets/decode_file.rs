//! The whole-file decoder: every item drained, every entry's value decoded (by `Entry::value` and,
//! into a reused scratch arena, `Entry::value_in`: both must agree), and its DUMP payload built,
//! verified and decoded again (which must agree with `Entry::value`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::{payload, Decoder, Item};

fuzz_target!(|data: &[u8]| {
    // Checksum off: mutated dumps still reach their EOF (the differential target checks it on).
    let mut version = 0u16;
    let mut scratch = Vec::new();
    for item in Decoder::new(data).verify_checksum(false) {
        let Ok(item) = item else { break };
        match item {
            Item::Header { version: v, .. } => version = v as u16,
            Item::Entry(e) => {
                let value = e.value();
                match (&value, e.value_in(&mut scratch)) {
                    (Ok(a), Ok(b)) => assert_eq!(a, &b, "value_in differs"),
                    (Err(_), Err(_)) => {}
                    (a, b) => panic!("Entry::value {a:?} but value_in {b:?}"),
                }
                let _ = e.value_type();
                let _ = e.encoding();
                let p = payload::for_entry(&e, version);
                assert_eq!(p.len(), payload::len_for_entry(&e));
                let v = payload::verify(&p).expect("a payload built by for_entry verifies");
                assert_eq!(v.rdb_version, version);
                // verify() does not parse a KEY_META prefix, so only plain payloads are compared.
                if e.meta.is_none() {
                    assert_eq!(v.type_id, e.type_id);
                    assert_eq!(v.raw, e.raw);
                    match (&value, payload::decode(&p)) {
                        (Ok(a), Ok(b)) => assert_eq!(a, &b, "payload decode differs"),
                        (Err(_), Err(_)) => {}
                        (a, b) => panic!("Entry::value {a:?} but payload::decode {b:?}"),
                    }
                }
                if let Ok(v) = value {
                    std::hint::black_box(v.len());
                }
            }
            other => {
                std::hint::black_box(other);
            }
        }
    }
});
