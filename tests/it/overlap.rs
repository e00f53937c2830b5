//! Several dumps into one target: a key held by more than one is refused before any write,
//! naming the key and both files, unless `--replace` (the last file's copy) or `--skip-existing`
//! (the first file's) says which copy is written; `plan` answers 3 for it, and for a `--rename`
//! that makes two keys one.

use crate::common::*;
use std::path::{Path, PathBuf};

/// A Redis 8.2 dump holding `pairs`.
fn dump(dir: &Path, name: &str, pairs: &[(&str, &str)]) -> PathBuf {
    let s = Server::start(Version::V82);
    for (k, v) in pairs {
        redis::cmd("SET")
            .arg(k)
            .arg(v)
            .query::<()>(&mut s.conn())
            .unwrap();
    }
    s.save_to(dir.join(name))
}

fn get(s: &Server, k: &str) -> Option<String> {
    redis::cmd("GET").arg(k).query(&mut s.conn()).unwrap()
}

fn dbsize(s: &Server) -> u64 {
    redis::cmd("DBSIZE").query(&mut s.conn()).unwrap()
}

#[test]
fn a_key_in_two_dumps_is_refused_unless_a_conflict_option_chooses_the_copy() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = dump(
        tmp.path(),
        "a.rdb",
        &[("only:a", "1"), ("shared", "from a")],
    );
    let b = dump(
        tmp.path(),
        "b.rdb",
        &[("only:b", "2"), ("shared", "from b")],
    );
    let (pa, pb) = (a.to_str().unwrap(), b.to_str().unwrap());
    let t = Server::start(Version::V82);
    let url = t.url();

    let o = rdbkit(&["import", pa, pb, "--target", &url, "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let msg = text(&o);
    assert!(
        msg.contains("db 0 key \"shared\" in ") && msg.contains(pa) && msg.contains(pb),
        "{msg}"
    );
    assert_eq!(dbsize(&t), 0, "nothing is written");
    let o = rdbkit(&["plan", pa, pb, "--target", &url]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));

    // --replace: the last file on the command line
    for (order, want) in [([pa, pb], "from b"), ([pb, pa], "from a")] {
        redis::cmd("FLUSHALL").query::<()>(&mut t.conn()).unwrap();
        let o = rdbkit(&[
            "import",
            order[0],
            order[1],
            "--target",
            &url,
            "--replace",
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            text(&o).contains("skipped: 1 (another input's copy is written)"),
            "{}",
            text(&o)
        );
        assert_eq!(get(&t, "shared").as_deref(), Some(want));
        assert_eq!(dbsize(&t), 3);
    }
    // --skip-existing: the first
    redis::cmd("FLUSHALL").query::<()>(&mut t.conn()).unwrap();
    let o = rdbkit(&[
        "import",
        pb,
        pa,
        "--target",
        &url,
        "--skip-existing",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(get(&t, "shared").as_deref(), Some("from b"));
    assert_eq!(dbsize(&t), 3);

    // a plan that finds a rename collision: the import would not succeed
    let fresh = Server::start(Version::V82);
    let o = rdbkit(&[
        "plan",
        pa,
        "--target",
        &fresh.url(),
        "--rename",
        "only:a=shared",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("--rename gives"), "{}", text(&o));
}
