//! AOF input on any bytes: the first byte picks a single file (the rest is the file) or a
//! directory (the rest split at NUL bytes into a manifest and two files it may name, `b` and `i`).
//! Detection, the scan and the command stream end in a result or an error, never a panic; when
//! the scan accepts the AOF, the stream reads it to the scan's end without an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbkit::source::aof::{detect, manifest, scan, AofCommands};
use std::path::PathBuf;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("rdbkit-fuzz-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let d = dir();
    let path = if mode & 1 == 0 {
        let p = d.join("appendonly.aof");
        std::fs::write(&p, rest).unwrap();
        p
    } else {
        let mut parts = rest.splitn(3, |&b| b == 0);
        let m = parts.next().unwrap_or_default();
        let _ = manifest::parse(&d.join("m"), m);
        std::fs::write(d.join("appendonly.aof.manifest"), m).unwrap();
        std::fs::write(d.join("b"), parts.next().unwrap_or_default()).unwrap();
        std::fs::write(d.join("i"), parts.next().unwrap_or_default()).unwrap();
        d.clone()
    };
    let until = (mode & 2 != 0).then_some(i64::from(mode >> 2));
    if let Ok(Some(aof)) = detect(&path) {
        if let Ok(s) = scan(&aof, until) {
            assert!(s.end <= aof.end());
            let mut r = AofCommands::open(&aof, 0, s.end).expect("opens");
            while let Some(c) = r.next_aof_command().expect("the scan read it") {
                assert!(!c.args.is_empty());
            }
        }
    }
});
