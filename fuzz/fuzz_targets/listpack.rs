//! A listpack blob on its own, walked to the end with every element read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::decode::fuzzing;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = fuzzing::listpack(data) {
        assert!(n <= data.len());
    }
});
