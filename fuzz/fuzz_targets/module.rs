//! A module opcode stream (module value after its type id, or a module aux body), skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::decode::fuzzing;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = fuzzing::module_skip(data) {
        assert!(n <= data.len() && n > 0);
    }
});
