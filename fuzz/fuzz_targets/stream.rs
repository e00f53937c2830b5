//! A stream value (input: selector byte for type 15/19/21/26, then the value bytes), decoded with
//! every node listpack, and skipped the cheap way: both must end at the same byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::decode::fuzzing;

fuzz_target!(|data: &[u8]| {
    let [sel, raw @ ..] = data else { return };
    let t = fuzzing::STREAM_TYPES[usize::from(*sel) % 4];
    let skipped = fuzzing::stream_skip(t, raw);
    if let Ok((s, n)) = fuzzing::stream(t, raw) {
        assert!(n <= raw.len());
        assert_eq!(skipped.ok(), Some(n), "decoded, skip disagrees");
        for g in &s.groups {
            for c in &g.consumers {
                for id in &c.pending {
                    assert!(g.pending.iter().any(|p| p.id == *id));
                }
            }
        }
        assert!(s.entries.windows(2).all(|w| w[0].id < w[1].id));
    }
});
