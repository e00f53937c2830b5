//! `rdbkit diff` against dumps a real 8.2 saved and against the live server: a dump against itself
//! is equal (exit 0, no output); after exactly known changes (one key deleted, one added, one of
//! another type, one field changed in a big hash, one key TTL and one hash field TTL moved) the
//! diff prints exactly those lines (exit 1), whether B is the second dump or the server itself
//! (read by sync, or by scan as side A).

use crate::common;

use common::{Server, Version};
use std::path::Path;

macro_rules! cmd {
    ($($a:expr),* $(,)?) => {{
        let mut c = redis::Cmd::new();
        $(c.arg($a);)*
        c
    }};
}

/// Far-future expiry (2100-01-01) plus `i` seconds.
fn at(i: u64) -> u64 {
    4_102_444_800_000 + i * 1000
}

fn run(s: &Server, cmds: Vec<redis::Cmd>) {
    let mut c = s.conn();
    let mut p = redis::pipe();
    for cmd in cmds {
        p.add_command(cmd).ignore();
    }
    p.query::<()>(&mut c).unwrap();
}

/// `rdbkit diff A B EXTRA…`: exit code, the stdout lines sorted, stderr.
fn diff(a: &str, b: &str, extra: &[&str]) -> (i32, Vec<String>, String) {
    let mut args = vec!["diff", a, b];
    args.extend_from_slice(extra);
    let o = common::rdbkit(&args);
    let mut lines: Vec<String> = String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    for l in &lines {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    (
        o.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The lines of the changes made to the server after dump A, as `diff A B` prints them (sorted).
fn expected() -> Vec<String> {
    let mut v = vec![
        r#"{"kind":"missing","db":0,"key":"key:5","type":"string"}"#.to_string(),
        r#"{"kind":"extra","db":0,"key":"new:key","type":"string"}"#.to_string(),
        r#"{"kind":"type","db":0,"key":"key:7","a":"string","b":"list"}"#.to_string(),
        r#"{"kind":"value","db":0,"key":"big:hash","type":"hash","element":{"field":"f1234","a":"v1234","b":"changed"}}"#.to_string(),
        format!(r#"{{"kind":"ttl","db":0,"key":"ttl:key","type":"string","a":{},"b":{}}}"#, at(1), at(3601)),
        format!(r#"{{"kind":"field_ttl","db":0,"key":"ft:hash","field":"f2","a":{},"b":{}}}"#, at(2), at(7202)),
    ];
    v.sort();
    v
}

/// A→B lines seen as B→A: missing and extra exchanged, and `a` with `b`.
fn flipped() -> Vec<String> {
    let mut v = vec![
        r#"{"kind":"extra","db":0,"key":"key:5","type":"string"}"#.to_string(),
        r#"{"kind":"missing","db":0,"key":"new:key","type":"string"}"#.to_string(),
        r#"{"kind":"type","db":0,"key":"key:7","a":"list","b":"string"}"#.to_string(),
        r#"{"kind":"value","db":0,"key":"big:hash","type":"hash","element":{"field":"f1234","a":"changed","b":"v1234"}}"#.to_string(),
        format!(r#"{{"kind":"ttl","db":0,"key":"ttl:key","type":"string","a":{},"b":{}}}"#, at(3601), at(1)),
        format!(r#"{{"kind":"field_ttl","db":0,"key":"ft:hash","field":"f2","a":{},"b":{}}}"#, at(7202), at(2)),
    ];
    v.sort();
    v
}

#[test]
fn diff_reports_exactly_the_changed_keys_between_dumps_and_against_the_live_server() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(Version::V82);
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(20_000)
        .arg("key")
        .arg(32)
        .query::<()>(&mut s.conn())
        .unwrap();
    let mut cmds = Vec::new();
    // a big hash (hashtable encoding), and one value of each other type
    for chunk in (0..5000).collect::<Vec<_>>().chunks(500) {
        let mut c = cmd!("HSET", "big:hash");
        for i in chunk {
            c.arg(format!("f{i}")).arg(format!("v{i}"));
        }
        cmds.push(c);
    }
    cmds.push(cmd!("SET", "ttl:key", "v"));
    cmds.push(cmd!("PEXPIREAT", "ttl:key", at(1)));
    cmds.push(cmd!("HSET", "ft:hash", "f1", "a", "f2", "b", "f3", "c"));
    cmds.push(cmd!("HPEXPIREAT", "ft:hash", at(2), "FIELDS", 1, "f2"));
    cmds.push(cmd!("RPUSH", "list", "a", "b", "c"));
    cmds.push(cmd!("SADD", "set", "a", "b", 3));
    cmds.push(cmd!("ZADD", "zset", 1.5, "a", 2, "b"));
    cmds.push(cmd!("XADD", "stream", "1-1", "f", "v"));
    cmds.push(cmd!("XGROUP", "CREATE", "stream", "g", "0"));
    run(&s, cmds);
    let a = s.save_to(tmp.path().join("a.rdb"));

    // the same dump: equal, nothing printed
    let (code, lines, err) = diff(p(&a), p(&a), &[]);
    assert_eq!((code, lines.len()), (0, 0), "{lines:?}\n{err}");
    assert!(err.contains("20007 keys equal"), "{err}");

    // exactly known changes
    run(
        &s,
        vec![
            cmd!("DEL", "key:5"),
            cmd!("SET", "new:key", "x"),
            cmd!("DEL", "key:7"),
            cmd!("RPUSH", "key:7", "now a list"),
            cmd!("HSET", "big:hash", "f1234", "changed"),
            cmd!("PEXPIREAT", "ttl:key", at(3601)),
            cmd!("HPEXPIREAT", "ft:hash", at(7202), "FIELDS", 1, "f2"),
        ],
    );
    let b = s.save_to(tmp.path().join("b.rdb"));
    let (code, lines, err) = diff(p(&a), p(&b), &[]);
    assert_eq!(lines, expected(), "{err}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("6 differences (1 missing, 1 extra, 1 type, 1 value, 1 ttl, 1 field_ttl)"),
        "{err}"
    );

    // the dump against the live server (a replica's snapshot), and the server by scan as A
    let (code, lines, err) = diff(p(&a), &s.url(), &[]);
    assert_eq!((code, &lines), (1, &expected()), "{err}");
    let (code, lines, err) = diff(&s.url(), p(&a), &["--source-mode", "scan"]);
    assert_eq!((code, &lines), (1, &flipped()), "{err}");

    // a TTL moved by less than the tolerance is no difference; filters narrow the comparison
    let (code, lines, err) = diff(p(&a), p(&b), &["--ttl-tolerance", "120m", "--key", "ttl:*"]);
    assert_eq!((code, lines.len()), (0, 0), "{lines:?}\n{err}");
    // a side that cannot be read is exit 2
    let (code, _, err) = diff(p(&a), p(&tmp.path().join("nope.rdb")), &[]);
    assert_eq!(code, 2, "{err}");
}

/// A server that loaded a dump holds what the dump holds, though FalkorDB graphs and vector sets
/// are serialized anew when saved again: those module values, of one module type on both sides,
/// are counted apart, not reported as differences (it used to print four `value` lines, exit 1).
#[test]
fn module_values_serialized_anew_are_not_differences() {
    if !common::falkordb_or_skip() {
        return;
    }
    let dump = common::testdata("redis82_all_types_v12.rdb");
    let loaded = Server::with_falkordb(Some(&dump), &[]);
    let o = common::rdbkit(&["diff", dump.to_str().unwrap(), &loaded.url()]);
    let t = common::text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(o.stdout.is_empty(), "{t}");
    assert!(
        t.contains("4 module values of one module type whose serialized bytes differ"),
        "{t}"
    );
}
