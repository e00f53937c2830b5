//! LZF: the input as an RDB string (seeds are `0xC3 clen ulen data` strings); the input after 4
//! bytes as raw LZF data whose first 4 bytes (LE) give the expected length, checked against the
//! `lzf` crate's decompressor; and the input compressed by a small greedy compressor here (which
//! emits long and overlapping back-references), which must decompress back to the input.
//!
//! Not `lzf::compress`: lzf 1.0.0's compressor itself panics on some inputs (index out of bounds
//! at compress.rs:89; found by this target).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::decode::fuzzing;
use std::collections::{HashMap, VecDeque};

fuzz_target!(|data: &[u8]| {
    if let Ok((_, n)) = fuzzing::rdb_string(data) {
        assert!(n <= data.len());
    }
    if data.len() >= 4 {
        let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let lzf = &data[4..];
        let ours = fuzzing::lzf(lzf, len as u64);
        if let Ok(v) = &ours {
            assert_eq!(v.len(), len);
        }
        // The reference, where the decoder even tries (it refuses impossible lengths up front).
        if len > 0 && len <= lzf.len() * 88 {
            let reference = lzf::decompress(lzf, len).ok().filter(|v| v.len() == len);
            assert_eq!(
                ours.as_ref().ok(),
                reference.as_ref(),
                "differs from the lzf crate"
            );
        }
    }
    if !data.is_empty() && data.len() <= 1 << 16 {
        let c = compress(data);
        let back = fuzzing::lzf(&c, data.len() as u64).expect("decompresses valid LZF");
        assert_eq!(back, data);
    }
});

/// Greedy LZF: at each position the longest match (3..=264 bytes) among the 16 latest earlier
/// positions within 8 KiB that share its first 3 bytes, else a literal (runs of up to 32).
fn compress(data: &[u8]) -> Vec<u8> {
    fn flush(out: &mut Vec<u8>, lit: &mut Vec<u8>) {
        for run in lit.chunks(32) {
            out.push((run.len() - 1) as u8);
            out.extend_from_slice(run);
        }
        lit.clear();
    }
    let mut seen: HashMap<&[u8], VecDeque<usize>> = HashMap::new();
    let (mut out, mut lit) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < data.len() {
        let mut best = (0usize, 0usize); // (length, distance)
        if let Some(prefix) = data.get(i..i + 3) {
            for &j in seen.get(prefix).into_iter().flatten() {
                if i - j > 8192 {
                    continue;
                }
                let mut l = 0;
                while l < 264 && i + l < data.len() && data[j + l] == data[i + l] {
                    l += 1;
                }
                if l > best.0 {
                    best = (l, i - j);
                }
            }
        }
        let step = if best.0 >= 3 {
            flush(&mut out, &mut lit);
            let (code, d) = (best.0 - 2, best.1 - 1);
            if code < 7 {
                out.push((code << 5 | d >> 8) as u8);
            } else {
                out.push((7 << 5 | d >> 8) as u8);
                out.push((code - 7) as u8);
            }
            out.push(d as u8);
            best.0
        } else {
            lit.push(data[i]);
            1
        };
        for k in i..i + step {
            if let Some(prefix) = data.get(k..k + 3) {
                let q = seen.entry(prefix).or_default();
                if q.len() == 16 {
                    q.pop_back();
                }
                q.push_front(k);
            }
        }
        i += step;
    }
    flush(&mut out, &mut lit);
    out
}
