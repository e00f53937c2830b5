//! One value of any type id, decoded as `Entry::value` does (input: type id, dialect flag, value
//! bytes). Cross-check: whatever decodes must also be skippable by the file decoder's cheap walk,
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
    if let Ok(v) = fuzzing::decode_value(*t, raw, valkey) {
        std::hint::black_box(v.len());
        assert_eq!(
            skipped.as_ref().ok(),
            Some(&raw.len()),
            "decoded, but skip_value says {skipped:?}"
        );
    }
});
