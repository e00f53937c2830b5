//! `rdbkit info --salvage`: a corrupt value between readable keys is reported and skipped; without
//! the flag the first error aborts with its offset.

use rdbkit::write::RdbWriter;
use std::process::Command;

fn info(path: &std::path::Path, salvage: bool) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rdbkit"));
    c.args(["info", "--json", path.to_str().unwrap()]);
    if salvage {
        c.arg("--salvage");
    }
    let o = c.output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn salvage_skips_a_corrupt_value_and_keeps_the_rest() {
    // a hash listpack whose header claims 3 elements but holds 2
    let lp = [0x0c, 0, 0, 0, 0x03, 0, 0x81, b'a', 0x02, 0x01, 0x01, 0xff];
    let mut raw = vec![lp.len() as u8];
    raw.extend_from_slice(&lp);
    let mut w = RdbWriter::new(12);
    w.select_db(0);
    w.string_key(b"before", b"1", None);
    w.raw_key(b"broken", 16, &raw, None);
    w.string_key(b"after", b"2", None);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("damaged.rdb");
    std::fs::write(&path, w.finish()).unwrap();

    let (ok, out) = info(&path, false);
    assert!(!ok);
    assert!(
        out.contains("listpack: header count 3 but 2 elements"),
        "{out}"
    );
    assert!(out.contains("key \"broken\""), "{out}");

    let (ok, out) = info(&path, true);
    assert!(!ok, "skipped values still fail the run");
    let json: serde_json::Value =
        serde_json::from_str(out.split("\nrdbkit:").next().unwrap()).unwrap();
    assert_eq!(json["dbs"]["0"]["keys"], 2, "{out}");
    assert_eq!(json["salvaged"].as_array().unwrap().len(), 1);
    assert!(json["salvaged"][0].as_str().unwrap().contains("broken"));
    assert!(out.contains("1 corrupt values were skipped"), "{out}");
}
