//! One of RedisBloom's five types (chosen by the first byte), read to its parameters: never a
//! panic, never an allocation sized by an unchecked count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::decode::fuzzing;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::module_bloom(data);
});
