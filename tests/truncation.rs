use rdbkit::{Decoder, Item};
use std::time::Instant;
#[test]
fn proto() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus"));
    let m = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    for line in m.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if !f[20].is_empty() { continue; }
        let n: usize = f[4].parse().unwrap();
        if n < 65536 { continue; }
        let data = std::fs::read(root.join(f[0])).unwrap();
        let t = Instant::now();
        let mut items = 0;
        for it in Decoder::new(&data) { items += 1; if it.is_err() { break; } }
        let t1 = t.elapsed();
        let t = Instant::now();
        for it in Decoder::new(&data) { match it { Ok(Item::Entry(e)) => { let _ = e.value(); } Ok(_) => {} Err(_) => break } }
        let t2 = t.elapsed();
        let t = Instant::now();
        for it in Decoder::new(&data).verify_checksum(false) { if it.is_err() { break; } }
        println!("{} {n} items {items} skip {:?} values {:?} nocrc {:?}", f[0], t1, t2, t.elapsed());
    }
}
