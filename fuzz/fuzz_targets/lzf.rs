//! LZF: the input as an RDB string (seeds are `0xC3 clen ulen data` strings), and the input as raw
//! LZF data after a 4-byte little-endian expected length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::decode::fuzzing;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, n)) = fuzzing::rdb_string(data) {
        assert!(n <= data.len());
    }
    if data.len() >= 4 {
        let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        if let Ok(v) = fuzzing::lzf(&data[4..], u64::from(len)) {
            assert_eq!(v.len() as u64, u64::from(len));
        }
    }
});
