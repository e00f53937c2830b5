//! Transforms (`--rename`, `--ttl-shift`, `--ttl-max`, `--skip-expiring-within`, `--drop-ttl`) on
//! a dump saved by a real server, imported into a server and a cluster and exported: values equal
//! the source's byte for byte (DUMP), TTLs moved exactly, counts in the summary exact, a rename
//! that makes two keys one refused before any write.

use crate::common::*;
use std::path::PathBuf;

const N: usize = 40;

/// A Redis 8.2 dump: `old:<i>` of several types (`N`, every fifth with a TTL of an hour),
/// `keep:<i>` (10, one named like a renamed key would be with `--rename 'old:*=keep:*'`),
/// `soon:<i>` expiring in 40 s (5), `drop:<i>` with a TTL of an hour (5).
fn source(tmp: &std::path::Path) -> (Server, PathBuf) {
    let s = Server::start(Version::V82);
    let mut con = s.conn();
    let mut p = redis::pipe();
    for i in 0..N {
        let k = format!("old:{i}");
        match i % 4 {
            0 => p.cmd("SET").arg(&k).arg(format!("v{i}")).ignore(),
            1 => p.cmd("RPUSH").arg(&k).arg("a").arg(i).ignore(),
            2 => p
                .cmd("HSET")
                .arg(&k)
                .arg("f")
                .arg(i)
                .arg("g")
                .arg("x")
                .ignore(),
            _ => p.cmd("ZADD").arg(&k).arg(i).arg("m").ignore(),
        };
        if i % 5 == 0 {
            p.cmd("PEXPIRE").arg(&k).arg(3_600_000).ignore();
        }
    }
    for i in 0..10 {
        p.cmd("SET").arg(format!("keep:{i}")).arg(i).ignore();
    }
    for i in 0..5 {
        p.cmd("SET")
            .arg(format!("soon:{i}"))
            .arg(i)
            .arg("PX")
            .arg(40_000)
            .ignore();
        p.cmd("SET")
            .arg(format!("drop:{i}"))
            .arg(i)
            .arg("EX")
            .arg(3600)
            .ignore();
    }
    p.query::<()>(&mut con).unwrap();
    let path = s.save_to(tmp.join("src.rdb"));
    (s, path)
}

fn dump_of(s: &Server, key: &str) -> Option<Vec<u8>> {
    redis::cmd("DUMP").arg(key).query(&mut s.conn()).unwrap()
}

fn pexpiretime(s: &Server, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME")
        .arg(key)
        .query(&mut s.conn())
        .unwrap()
}

fn run(args: &[&str]) -> String {
    let o = rdbkit(args);
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

#[test]
fn renamed_and_retimed_keys_hold_the_sources_values() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (src, dump) = source(tmp.path());
    let d = dump.to_str().unwrap();
    let t = Server::start(Version::V82);
    let url = t.url();
    let shift = 7_200_000i64;
    let transforms = [
        "--rename",
        "old:*=new:{*}",
        "--ttl-shift",
        "2h",
        "--skip-expiring-within",
        "125m",
        "--drop-ttl",
        "drop:*",
    ];
    let mut args = vec!["import", d, "--target", &url, "--quiet"];
    args.extend_from_slice(&transforms);
    let out = run(&args);
    assert!(
        out.contains(&format!("transformed: {N} keys renamed (--rename)")),
        "{out}"
    );
    assert!(
        out.contains("transformed: 5 keys left out, expiring soon"),
        "{out}"
    );
    assert!(
        out.contains("transformed: 5 keys with their TTL removed (--drop-ttl)"),
        "{out}"
    );
    // TTLs moved: old:0,5,… (8 keys, now ending in 3 h) and soon:* (5, now ending in 2 h 40 s, so
    // left out as ending within 125 min); the drop:* lost theirs first
    assert!(
        out.contains("transformed: 13 keys with their TTL moved (--ttl-shift)"),
        "{out}"
    );
    let check = |t: &Server| {
        for i in 0..N {
            let (old, new) = (format!("old:{i}"), format!("new:{{{i}}}"));
            assert_eq!(dump_of(t, &old), None, "{old} written under its old name");
            assert_eq!(dump_of(t, &new), dump_of(&src, &old), "{new}");
            let want = match pexpiretime(&src, &old) {
                -1 => -1,
                at => at + shift,
            };
            assert_eq!(pexpiretime(t, &new), want, "{new}");
        }
        for i in 0..5 {
            assert_eq!(dump_of(t, &format!("soon:{i}")), None);
            assert_eq!(pexpiretime(t, &format!("drop:{i}")), -1);
        }
        for i in 0..10 {
            let k = format!("keep:{i}");
            assert_eq!(dump_of(t, &k), dump_of(&src, &k));
        }
        let keys: u64 = redis::cmd("DBSIZE").query(&mut t.conn()).unwrap();
        assert_eq!(keys, (N + 10 + 5) as u64);
    };
    check(&t);
    // verify with the same transforms finds every key as they made it; without them, none
    let mut v = vec!["verify", d, "--target", &url];
    v.extend_from_slice(&transforms);
    let o = rdbkit(&v);
    assert!(o.status.success(), "{}", text(&o));
    let o = rdbkit(&["verify", d, "--target", &url]);
    assert!(!o.status.success(), "{}", text(&o));
    // reruns: --replace and --skip-existing leave the same; --flush-target too
    for opt in ["--replace", "--skip-existing", "--flush-target"] {
        let mut a = args.clone();
        a.push(opt);
        run(&a);
        check(&t);
    }
    // export applies the same transforms
    let mut a = vec!["export", d];
    a.extend_from_slice(&transforms);
    let o = rdbkit(&a);
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), N + 10 + 5);
    let renamed = lines
        .iter()
        .filter(|l| l["key"].as_str().is_some_and(|k| k.starts_with("new:{")))
        .count();
    assert_eq!(renamed, N);
    // --ttl-max: an hour's TTL ends within 30 minutes of the import
    let t2 = Server::start(Version::V82);
    let before = now_ms();
    run(&[
        "import",
        d,
        "--target",
        &t2.url(),
        "--ttl-max",
        "30m",
        "--quiet",
    ]);
    let after = now_ms();
    let at = pexpiretime(&t2, "old:0");
    assert!(at >= before + 1_800_000 && at <= after + 1_800_000, "{at}");
    assert_eq!(pexpiretime(&t2, "soon:0"), pexpiretime(&src, "soon:0"));
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn a_rename_onto_another_key_is_refused_before_any_write() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_src, dump) = source(tmp.path());
    let t = Server::start(Version::V82);
    let o = rdbkit(&[
        "import",
        dump.to_str().unwrap(),
        "--target",
        &t.url(),
        "--rename",
        "old:*=keep:*",
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    let msg = text(&o);
    // old:0..9 land on keep:0..9, which the dump holds
    assert!(
        msg.contains("--rename gives 10 keys the name of another key"),
        "{msg}"
    );
    assert!(msg.contains("db 0: \"keep:3\" from "), "{msg}");
    assert!(
        msg.contains("\"old:3\" (offset 0x") && msg.contains("\"keep:3\" (offset 0x"),
        "{msg}"
    );
    let keys: u64 = redis::cmd("DBSIZE").query(&mut t.conn()).unwrap();
    assert_eq!(keys, 0);
    // a --key that leaves the keep:* keys out makes the same rename valid
    let o = rdbkit(&[
        "import",
        dump.to_str().unwrap(),
        "--target",
        &t.url(),
        "--rename",
        "old:*=keep:*",
        "--key",
        "old:*",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let keys: u64 = redis::cmd("DBSIZE").query(&mut t.conn()).unwrap();
    assert_eq!(keys, N as u64);
    // the TTL transforms are refused where they would not be applied: a follow's commands set
    // TTLs of their own (--rename applies to them: live::follow_with_rename_…)
    let o = rdbkit(&[
        "import",
        &t.url(),
        "--target",
        &t.url(),
        "--follow",
        "--ttl-shift",
        "1h",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("the TTL transforms"), "{}", text(&o));
}

#[test]
fn renamed_keys_go_to_the_slot_of_their_new_name() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (src, dump) = source(tmp.path());
    let nodes = cluster();
    let url = nodes[0].url();
    run(&[
        "import",
        dump.to_str().unwrap(),
        "--target",
        &url,
        "--rename",
        "old:*=new:{*}",
        "--quiet",
    ]);
    for i in 0..N {
        let new = format!("new:{{{i}}}");
        // only the node owning the new name's slot holds it; the others answer MOVED
        let held: Vec<Option<Vec<u8>>> = nodes
            .iter()
            .filter_map(|n| {
                redis::cmd("DUMP")
                    .arg(&new)
                    .query::<Option<Vec<u8>>>(&mut n.conn())
                    .ok()
            })
            .collect();
        assert_eq!(held, vec![dump_of(&src, &format!("old:{i}"))], "{new}");
    }
}
