//! The importer's reply reader on whatever a target (or something pretending to be one) sends:
//! every prefix of the input either parses, needs more bytes, or is refused; never a panic, and a
//! parsed reply always consumes bytes that exist. Fed by a seed of real replies (+OK, errors,
//! integers, bulk strings, arrays) that libFuzzer mutates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::replay::reply;

fuzz_target!(|data: &[u8]| {
    let mut pos = 0;
    while pos < data.len() {
        match reply::parse(&data[pos..]) {
            Ok(Some((_, n))) => {
                assert!(n > 0 && n <= data.len() - pos);
                pos += n;
            }
            Ok(None) | Err(_) => break,
        }
    }
});
