//! One stream node listpack (input: 16-byte master key, then the listpack), decoded into entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::decode::fuzzing;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (key, lp) = data.split_at(16);
    let key: &[u8; 16] = key.try_into().unwrap();
    let _ = fuzzing::stream_node(key, lp);
});
