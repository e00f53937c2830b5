//! The parallel decode (`Input::decode_chunks` on two threads, in small byte regions handed over
//! between workers) against the sequential one (one thread): the same items at the same
//! positions, merged in the same order, and the same result or error, for any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::source::{Chunk, ChunkOptions, ChunkWorker, Input};
use rdbkit::{DecodeError, Item};

/// Each item's end position, each entry's decoded value length or error.
struct Trace;

impl ChunkWorker for Trace {
    type State = Vec<u8>;
    type Out = Vec<String>;
    type Error = DecodeError;
    fn state(&self) -> Vec<u8> {
        Vec::new()
    }
    fn output(&self) -> Vec<String> {
        Vec::new()
    }
    fn work(
        &self,
        scratch: &mut Vec<u8>,
        c: Chunk<'_, '_>,
        out: &mut Vec<String>,
    ) -> Result<(), DecodeError> {
        for (item, pos) in c.items {
            let line = match item {
                Item::Entry(e) => match e.value_in(scratch) {
                    Ok(v) => format!("{pos} entry db{} {} {}", e.db, e.type_id, v.len()),
                    Err(err) => format!("{pos} entry error {err}"),
                },
                other => format!("{pos} {other:?}"),
            };
            out.push(line);
        }
        Ok(())
    }
}

fn run(data: &[u8], threads: usize, chunk_bytes: u64) -> (Vec<String>, String) {
    let mut got = Vec::new();
    let opts = ChunkOptions {
        verify_checksum: true,
        threads,
        chunk_bytes,
        ..Default::default()
    };
    let res = Input::Bytes(data.to_vec()).decode_chunks(opts, &Trace, |o: &mut Vec<String>| {
        got.append(o);
        Ok::<(), DecodeError>(())
    });
    (got, format!("{res:?}"))
}

fuzz_target!(|data: &[u8]| {
    // region size from the input's length: from a few bytes (most records span regions) up
    let chunk_bytes = 1 + (data.len() as u64).wrapping_mul(7919) % 211;
    let seq = run(data, 1, chunk_bytes);
    let par = run(data, 2, chunk_bytes);
    assert_eq!(seq, par, "chunk_bytes {chunk_bytes}");
});
