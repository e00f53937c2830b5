//! One value of any type id, decoded as `Entry::value` does (input: type id, dialect flag, value
//! bytes). Cross-checks: `Entry::value_in` (LZF blobs decompressed into a scratch arena) decodes
//! to the same value; whatever decodes must also be skippable by the file decoder's cheap walk,
//! which must end exactly where the value ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::decode::fuzzing;

fuzz_target!(|data: &[u8]| {
    let [t, flags, raw @ ..] = data else { return };
    let valkey = flags & 1 != 0;
    let skipped = fuzzing::skip_value(*t, raw, valkey);
    if let Ok(n) = &skipped {
        assert!(*n <= raw.len());
    }
    let Some(e) = fuzzing::entry(*t, raw, valkey) else {
        assert!(skipped.is_err(), "unknown type, but skip_value says {skipped:?}");
        return;
    };
    let value = e.value();
    let mut scratch = Vec::new();
    match (&value, e.value_in(&mut scratch)) {
        (Ok(a), Ok(b)) => assert_eq!(a, &b, "value_in differs"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("value {a:?} but value_in {b:?}"),
    }
    if let Ok(v) = value {
        std::hint::black_box(v.len());
        assert_eq!(
            skipped.as_ref().ok(),
            Some(&raw.len()),
            "decoded, but skip_value says {skipped:?}"
        );
    }
});
