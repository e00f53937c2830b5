//! `--slots`: several processes, each taking one part of the key space (`i/n`) with its own
//! checkpoint, run at the same time into one target (standalone and a 3-primary cluster) leave
//! what one process leaves; each counts exactly its keys; a part run again with `--replace` changes
//! nothing; bad values are usage errors; `diff`, `filter` and `plan` take the same parts.

use crate::common::process::Running;
use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The three parts `i/3` of 0..16383, written out here (not computed by the code under test):
/// 16384 = 3 × 5461 + 1, so the first part has one slot more.
const PARTS: [(u16, u16); 3] = [(0, 5461), (5462, 10922), (10923, 16383)];

/// A Redis 8.2 dump of db 0: `DEBUG POPULATE` strings, lists with a TTL, and keys sharing hash
/// tags (whose slot is their tag's).
fn source(dir: &Path) -> PathBuf {
    let s = Server::start(Version::V82);
    let mut c = s.conn();
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(6000)
        .arg("key")
        .arg(16)
        .query::<()>(&mut c)
        .unwrap();
    let mut p = redis::pipe();
    for i in 0..600 {
        p.cmd("RPUSH")
            .arg(format!("list:{i}"))
            .arg(&[1, 2, 3])
            .ignore();
        p.cmd("PEXPIREAT")
            .arg(format!("list:{i}"))
            .arg(4_102_444_800_000u64 + i)
            .ignore();
        p.cmd("HSET")
            .arg(format!("{{user{}}}:profile:{i}", i % 7))
            .arg("f")
            .arg(i)
            .ignore();
    }
    p.query::<()>(&mut c).unwrap();
    s.save_to(dir.join("src.rdb"))
}

/// Keys per part, counted by a cluster (`CLUSTER COUNTKEYSINSLOT` on each slot's owner).
fn keys_per_part(nodes: &[Server]) -> [u64; 3] {
    let mut per = [0u64; 3];
    for n in nodes {
        let mut c = n.conn();
        let mut p = redis::pipe();
        for s in 0..16384u16 {
            p.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(s);
        }
        let counts: Vec<u64> = p.query(&mut c).unwrap();
        for (s, k) in counts.iter().enumerate() {
            let part = PARTS
                .iter()
                .position(|&(a, b)| (a..=b).contains(&(s as u16)))
                .unwrap();
            per[part] += k;
        }
    }
    per
}

/// The `written: N keys` of a summary.
fn written(out: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix("written: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no written: line in\n{out}"))
}

/// `rdbkit import DUMP --target URL --slots i/3 --checkpoint …` for i in 0..3, all at once;
/// their outputs.
fn parts_at_once(dump: &Path, url: &str, tmp: &Path) -> Vec<String> {
    let runs: Vec<(Running, PathBuf)> = (0..3)
        .map(|i| {
            let dir = tmp.join(format!("part{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let cp = dir.join("cp.json");
            let slots = format!("{i}/3");
            let r = Running::start(
                &[
                    "import",
                    dump.to_str().unwrap(),
                    "--target",
                    url,
                    "--slots",
                    &slots,
                    "--checkpoint",
                    cp.to_str().unwrap(),
                    "--quiet",
                ],
                &dir,
            );
            (r, dir)
        })
        .collect();
    runs.into_iter()
        .map(|(mut r, _)| {
            let st = r.wait_exit(Duration::from_secs(60));
            let out = r.output();
            assert!(st.success(), "{out}");
            out
        })
        .collect()
}

fn pexpiretimes(s: &Server) -> Vec<i64> {
    let mut c = s.conn();
    [0, 1, 299, 599]
        .iter()
        .map(|i| {
            redis::cmd("PEXPIRETIME")
                .arg(format!("list:{i}"))
                .query(&mut c)
                .unwrap()
        })
        .collect()
}

#[test]
fn three_parts_at_once_equal_one_process() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = source(tmp.path());
    let loaded = Server::start_with_dump(Version::V82, &dump, &[]);
    let total: u64 = loaded.keyspace().values().sum();
    assert_eq!(total, 7200);

    // one process into a cluster: the reference layout and the keys of each part
    let one = cluster();
    let o = import(&dump, &one[0], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let per = keys_per_part(&one);
    assert_eq!(per.iter().sum::<u64>(), total);
    assert!(per.iter().all(|&n| n > 1000), "{per:?}");

    // three processes, one part each, into a standalone target
    let target = Server::start(Version::V82);
    let outs = parts_at_once(&dump, &target.url(), &tmp.path().join("standalone"));
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(written(out), per[i], "part {i}:\n{out}");
        let other = total - per[i];
        assert!(
            out.contains(&format!("skipped: {other} (outside --slots)")),
            "part {i}:\n{out}"
        );
    }
    assert_same_dataset(&loaded, &target);
    assert_eq!(pexpiretimes(&target), pexpiretimes(&loaded));

    // a part run again with --replace changes nothing
    let o = import(&dump, &target, &["--slots", "5462-10922", "--replace"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(written(&text(&o)), per[1]);
    assert_same_dataset(&loaded, &target);

    // the same part without a conflict option is refused: its keys are there
    let o = import(&dump, &target, &["--slots", "1/3"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("holds {} keys in --slots 5462-10922", per[1])),
        "{}",
        text(&o)
    );

    // three processes into another 3-primary cluster: node by node what one process wrote
    let three = cluster();
    let outs = parts_at_once(&dump, &three[0].url(), &tmp.path().join("cluster"));
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(written(out), per[i], "part {i}:\n{out}");
    }
    for (a, b) in one.iter().zip(&three) {
        assert_same_dataset(a, b);
    }
}

#[test]
fn diff_filter_and_plan_take_the_same_parts() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = source(tmp.path());
    let d = dump.to_str().unwrap();
    let target = Server::start(Version::V82);
    let url = target.url();
    let o = import(&dump, &target, &["--slots", "0-5461"]);
    assert!(o.status.success(), "{}", text(&o));
    let part0: u64 = target.keyspace().values().sum();

    // the target holds part 0 only: equal on it, different on the whole
    let o = rdbkit(&["diff", d, &url, "--slots", "0/3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = rdbkit(&["diff", d, &url, "--slots", "0-100", "--slots", "101-5461"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = rdbkit(&["diff", d, &url, "--slots", "1/3"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = rdbkit(&["verify", d, "--target", &url, "--slots", "0/3"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = rdbkit(&["verify", d, "--target", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // filter: the parts are disjoint and together the dump
    let mut sum = 0;
    for i in 0..3 {
        let out = tmp.path().join(format!("p{i}.rdb"));
        let slots = format!("{i}/3");
        let o = rdbkit(&["filter", d, "-o", out.to_str().unwrap(), "--slots", &slots]);
        assert!(o.status.success(), "{}", text(&o));
        let s = Server::start_with_dump(Version::V82, &out, &[]);
        let n: u64 = s.keyspace().values().sum();
        if i == 0 {
            assert_eq!(n, part0);
            assert_same_dataset(&s, &target);
        }
        sum += n;
    }
    assert_eq!(sum, 7200);

    // export counts the same keys
    let o = rdbkit(&["export", d, "--format", "jsonl", "--slots", "0/3"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        o.stdout.iter().filter(|&&b| b == b'\n').count() as u64,
        part0
    );

    // the plan counts the other parts apart
    let fresh = Server::start(Version::V82);
    let o = rdbkit(&["plan", d, "--target", &fresh.url(), "--slots", "0/3"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "skipped: {} (outside --slots)",
            group(7200 - part0)
        )),
        "{}",
        text(&o)
    );
}

/// 12345 → "12,345", as the plan's text groups digits.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn bad_slot_values_are_usage_errors_naming_them() {
    for bad in ["3/3", "16384", "9-2", "x", "1/0", "-5"] {
        let o = rdbkit(&["export", "/nonexistent.rdb", "--slots", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(text(&o).contains(bad), "{bad}: {}", text(&o));
    }
    let o = rdbkit(&[
        "import",
        "/nonexistent.rdb",
        "--target",
        "redis://127.0.0.1:1",
        "--slots",
        "0/2",
        "--flush-target",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
