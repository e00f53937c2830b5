//! `rdbkit export` options.

use rdbkit::write::RdbWriter;
use std::process::Command;

/// `--min-size` keeps the keys whose estimated memory (as `report` estimates it) is at least the
/// given size, like `report`, `filter` and `split` do.
#[test]
fn min_size_keeps_only_big_keys() {
    let mut w = RdbWriter::new(12);
    w.select_db(0);
    w.string_key(b"small", b"x", None);
    w.string_key(b"big", &[b'y'; 5000], None);
    w.string_key(b"tiny", b"12", None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.rdb");
    std::fs::write(&path, w.finish()).unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
            .args(["export", "--format", "jsonl"])
            .args(extra)
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["key"].as_str().unwrap().to_owned()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(&[]), ["small", "big", "tiny"]);
    assert_eq!(run(&["--min-size", "2k"]), ["big"]);
    assert_eq!(run(&["--min-size", "1"]), ["small", "big", "tiny"]);
    assert!(run(&["--min-size", "1g"]).is_empty());
}
