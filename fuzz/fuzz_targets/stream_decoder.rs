//! Differential: `source::StreamDecoder` over a reader that hands out uneven chunks (and the odd
//! `Interrupted`) must yield exactly the items, positions and outcome of `Decoder`.
//!
//! Chunks are up to 64 KiB: `StreamDecoder::fill` re-zeroes its whole request (≥ 1 MiB) before
//! every `read`, so tiny chunks would only make each run slow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::source::StreamDecoder;
use rdbkit::{Decoder, Item};
use std::io::{self, Read};

struct Chunky<'a> {
    data: &'a [u8],
    pos: usize,
    step: usize,
    calls: usize,
}

impl Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls % 7 == 3 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf
            .len()
            .min(self.data.len() - self.pos)
            .min(1 + (self.calls * self.step * 997) % 65536);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Everything an item says, offsets included.
fn describe(item: &Item<'_>) -> String {
    match item {
        Item::Entry(e) => format!(
            "Entry db={} key={:?} type={} expire={:?} idle={:?} freq={:?} meta={:?} raw={:?} \
             offset={} value_offset={}",
            e.db,
            e.key,
            e.type_id,
            e.expire_ms,
            e.idle,
            e.freq,
            e.meta,
            e.raw,
            e.offset,
            e.value_offset
        ),
        other => format!("{other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let h = data
        .iter()
        .fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(b.into()));
    let verify = h & 1 == 0;
    let mut a = Decoder::new(data).verify_checksum(verify);
    let reader = Chunky {
        data,
        pos: 0,
        step: 1 + (h >> 1) % 13,
        calls: 0,
    };
    let mut b = StreamDecoder::new(reader).verify_checksum(verify);
    for _ in 0..=data.len() + 1 {
        let x = a.next_item();
        let (y, ypos) = match b.next_with_position() {
            Ok(Some((item, pos))) => (Ok(Some(describe(&item))), Some(pos)),
            Ok(None) => (Ok(None), None),
            Err(e) => (Err(e), None),
        };
        match (x, y) {
            (Ok(Some(i)), Ok(Some(j))) => {
                assert_eq!(describe(&i), j);
                assert_eq!(Some(a.position()), ypos, "position after {j}");
                assert_eq!(b.position(), a.position());
                assert_eq!(a.producer(), b.producer());
                assert_eq!(a.version(), b.version());
            }
            (Ok(None), Ok(None)) => return,
            (Err(e1), Err(e2)) => {
                // Same error, same place. (Messages may differ in the "[dump written by …]" note,
                // which StreamDecoder does not add to checksum mismatches.)
                assert_eq!(e1.kind(), e2.kind(), "{e1} / {e2}");
                assert_eq!(e1.offset(), e2.offset(), "{e1} / {e2}");
                assert_eq!(e1.key(), e2.key(), "{e1} / {e2}");
                return;
            }
            (x, y) => panic!("Decoder {x:?} but StreamDecoder {y:?}"),
        }
    }
    panic!("more items than input bytes");
});
