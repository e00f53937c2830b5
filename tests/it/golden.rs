//! Golden outputs: the built binary's `info`, `info --json`, `export --format jsonl`,
//! `export --format resp`, `report --format json` and the text `report` on every dump in
//! `testdata/` and `testdata/rdb14/`, compared byte for byte with `tests/golden/<dump>.<case>`.
//!
//! The clock is fixed with `RDBKIT_NOW_MS` (see [`NOW_MS`]), so `info`'s expired counts and the
//! report's expiry histogram do not change from run to run; nothing else in these outputs depends
//! on the time (`ctime` is the dump's own aux field). An output over [`MAX_INLINE`] bytes (the
//! exports of the all-types dumps) is stored as `<dump>.<case>.sha256`: one comment line, then the
//! SHA-256 of the output in hex.
//!
//! After an intended change of output: `RDBKIT_BLESS=1 cargo test --release --test it -- golden::`, then
//! review `git diff tests/golden/`. The test also fails on a golden file that no case produces.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The fixed clock: 2099-12-31 23:30 UTC, half an hour before the TTLs of the testdata dumps
/// (2100-01-01), so those keys fall in the report's "< 1h" bucket instead of the default "later".
const NOW_MS: i64 = 4_102_444_800_000 - 1_800_000;

/// Outputs longer than this are stored as a SHA-256 (keeps the golden files small).
const MAX_INLINE: usize = 200 * 1024;

/// (case name used in the file name, arguments before the dump path).
const CASES: [(&str, &[&str]); 6] = [
    ("info.txt", &["info"]),
    ("info.json", &["info", "--json"]),
    ("export.jsonl", &["export", "--format", "jsonl"]),
    ("export.resp", &["export", "--format", "resp"]),
    ("report.json", &["report", "--format", "json"]),
    ("report.txt", &["report"]),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden_dir() -> PathBuf {
    root().join("tests/golden")
}

/// The `.rdb` files of `testdata/` and `testdata/rdb14/`, sorted, with the name used for their
/// golden files (`rdb14/x.rdb` becomes `rdb14_x`).
fn dumps() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (dir, prefix) in [("testdata", ""), ("testdata/rdb14", "rdb14_")] {
        let dir = root().join(dir);
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let p = e.expect("directory entry").path();
            if p.extension().is_some_and(|x| x == "rdb") {
                let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
                out.push((format!("{prefix}{stem}"), p));
            }
        }
    }
    out.sort();
    out
}

fn run(args: &[&str], dump: &Path) -> Vec<u8> {
    let o = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(args)
        .arg(dump)
        .env("RDBKIT_NOW_MS", NOW_MS.to_string())
        .output()
        .expect("run rdbkit");
    assert!(
        o.status.success(),
        "rdbkit {args:?} {} failed: {}",
        dump.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The golden file's name and content for one output.
fn golden_of(base: &str, out: &[u8]) -> (String, Vec<u8>) {
    if out.len() > MAX_INLINE {
        let text = format!(
            "# SHA-256 of the output ({} bytes, over the {MAX_INLINE}-byte limit for inline golden files)\n{}\n",
            out.len(),
            sha256_hex(out)
        );
        (format!("{base}.sha256"), text.into_bytes())
    } else {
        (base.to_string(), out.to_vec())
    }
}

/// Where two byte strings first differ, with the lines around it (for the failure message).
fn first_difference(want: &[u8], got: &[u8]) -> String {
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let line_start = got[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let line = |b: &[u8]| {
        let end = b[line_start.min(b.len())..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| line_start + p);
        String::from_utf8_lossy(&b[line_start.min(b.len())..end]).into_owned()
    };
    format!(
        "first difference at byte {at} (lengths {} golden, {} now)\n    golden: {}\n    now:    {}",
        want.len(),
        got.len(),
        line(want),
        line(got)
    )
}

#[test]
fn outputs_match_golden_files() {
    let bless = std::env::var_os("RDBKIT_BLESS").is_some_and(|v| v == "1");
    let dir = golden_dir();
    if bless {
        fs::create_dir_all(&dir).expect("create tests/golden");
    }
    let dumps = dumps();
    assert!(
        dumps.len() >= 10,
        "expected the testdata dumps, found {dumps:?}"
    );
    let mut expected_files = BTreeSet::new();
    let mut failures = Vec::new();
    for (name, dump) in &dumps {
        for (case, args) in CASES {
            let out = run(args, dump);
            let (file, content) = golden_of(&format!("{name}.{case}"), &out);
            let path = dir.join(&file);
            expected_files.insert(file.clone());
            if bless {
                fs::write(&path, &content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                continue;
            }
            match fs::read(&path) {
                Ok(want) if want == content => {}
                Ok(want) => failures.push(format!(
                    "{file} (rdbkit {} {}): {}",
                    args.join(" "),
                    dump.display(),
                    first_difference(&want, &content)
                )),
                Err(e) => failures.push(format!("{file}: {e}")),
            }
        }
    }
    // A golden file that no case produces any more is stale (removed when blessing).
    for e in fs::read_dir(&dir).expect("read tests/golden") {
        let file = e
            .expect("directory entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !expected_files.contains(&file) {
            if bless {
                fs::remove_file(dir.join(&file)).expect("remove stale golden file");
            } else {
                failures.push(format!("{file}: no case produces this golden file"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} output(s) differ from tests/golden/ (if intended: RDBKIT_BLESS=1 cargo test --release --test it -- golden::, then review the diff):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
