use rdbkit::{Decoder, Item};
#[test]
fn explore() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus"));
    let m = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    for line in m.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let data = std::fs::read(root.join(f[0])).unwrap();
        let mut n = 0;
        let mut res = String::from("ok");
        for item in Decoder::new(&data) {
            match item {
                Ok(Item::Entry(e)) => { n += 1; if let Err(er) = e.value() { res = format!("VALUE ERR {er}"); break; } }
                Ok(_) => {}
                Err(e) => { res = format!("ERR {e}"); break; }
            }
        }
        println!("{}\t{}\t{}\t{}", f[0], &f[9][..f[9].len().min(30)], n, res);
    }
}
