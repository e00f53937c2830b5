//! RediSearch's aux record (index definitions), read and turned into `FT.CREATE` arguments: never
//! a panic, never an allocation sized by an unchecked count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::decode::fuzzing;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::module_search(data);
});
