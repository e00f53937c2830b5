//! A RedisJSON value's opcode stream (versions 2 and 3), read into a document: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::decode::fuzzing;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::module_json(data);
});
