//! The RESP command reader (a live source's stream after its snapshot; AOF files) on any bytes:
//! each command read takes bytes that exist and says how many, and the reader ends in a clean
//! end, a truncation or a protocol error; never a panic, never an allocation the input does not
//! back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::source::resp::CommandReader;

fuzz_target!(|data: &[u8]| {
    let mut r = CommandReader::new(data, "fuzz", 0);
    let mut total = 0u64;
    while let Ok(Some(c)) = r.next_command() {
        assert!(c.len > 0);
        total += c.len;
        assert_eq!(total, r.position());
        assert!(total <= data.len() as u64);
    }
});
