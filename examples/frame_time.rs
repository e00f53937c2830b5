//! Times the record loop alone (framing: every value skipped, nothing decoded) over a mapped dump
//! whose pages are already mapped: the sequential part of a parallel `info` or `export`.
//!
//! `cargo run --release --example frame_time -- target/bench-data/d1-s1.rdb`
use rdbkit::{Decoder, Item};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: frame_time DUMP")?;
    let file = std::fs::File::open(path)?;
    // SAFETY: a benchmark over a dump nothing rewrites while it runs (see `source::map`).
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file)? };
    // map every page first, so the timing is of the loop, not of page faults
    let touched: u64 = map.iter().step_by(4096).map(|&b| u64::from(b)).sum();
    let start = std::time::Instant::now();
    let (mut records, mut entries) = (0u64, 0u64);
    let mut d = Decoder::new(&map).verify_checksum(false);
    while let Some(item) = d.next_item()? {
        records += 1;
        entries += u64::from(matches!(item, Item::Entry(_)));
    }
    let took = start.elapsed();
    println!(
        "{records} records ({entries} keys) framed in {:.1} ms: {:.1} ns/record [{touched}]",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e9 / records as f64
    );
    Ok(())
}
