//! Newer and malformed dumps from the field (issue 12, item 7): RDB 14, duplicate keys, zipmap
//! integrity. Verdicts on malformed dumps are compared with what real servers do when loading them.

use crate::common;

use crate::common::rdbkit;
use common::{skip_if_missing, testdata, Server, Version};
use rdbkit::write::{put_string, RdbWriter};
use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ok(args: &[&str]) -> Vec<u8> {
    let out = rdbkit(args);
    assert!(
        out.status.success(),
        "rdbkit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn fails(args: &[&str]) -> String {
    let out = rdbkit(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rdbkit {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn jsonl(bytes: &[u8]) -> Vec<J> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Does `v` load `dump` at startup? `Err(log)` when it refuses it (the process exits).
fn redis_loads(v: Version, dump: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(dump, dir.path().join("load.rdb")).expect("copy dump");
    let log = dir.path().join("server.log");
    let mut child = Command::new(v.binary())
        .args(["--port", "0", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .args(["--dbfilename", "load.rdb", "--logfile"])
        .arg(&log)
        // no TCP port: a unix socket keeps the server up once loaded
        .arg("--unixsocket")
        .arg(dir.path().join("redis.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Ok(Some(_)) = child.try_wait() {
            return Err(std::fs::read_to_string(&log).unwrap_or_default());
        }
        if text.contains("DB loaded from disk") || text.contains("Done loading RDB") {
            common::kill(&mut child);
            return Ok(());
        }
        if Instant::now() > deadline {
            common::kill(&mut child);
            panic!(
                "{v:?} neither loaded nor refused {}:\n{text}",
                dump.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// RDB 14
// ---------------------------------------------------------------------------------------------

#[test]
fn rdb14_empty_dump_is_read() {
    let f = testdata("rdb14/handmade_empty_v14.rdb");
    let info: J = serde_json::from_slice(&ok(&["info", s(&f), "--json"])).unwrap();
    assert_eq!(info["rdb_version"], 14);
    assert_eq!(info["keys"], 0);
    assert_eq!(info["aux"]["redis-ver"], "8.8.0");
    assert!(
        info["checksum"].to_string().contains("verified"),
        "{}",
        info["checksum"]
    );
    assert!(ok(&["export", s(&f), "--format", "jsonl"]).is_empty());
}

/// Streams of type 26 carry an IDMP section that type 21 has not; everything else is equal.
fn without_idmp(mut lines: Vec<J>) -> Vec<J> {
    for l in &mut lines {
        if let Some(v) = l.get_mut("value").and_then(J::as_object_mut) {
            v.remove("idmp");
        }
    }
    lines
}

#[test]
fn rdb14_dump_exports_like_the_v12_dump_it_was_built_from() {
    let v14 = testdata("rdb14/handmade_all_types_v14.rdb");
    let v12 = testdata("redis82_all_types_v12.rdb");
    let a = jsonl(&ok(&[
        "export",
        s(&v14),
        "--format",
        "jsonl",
        "--threads",
        "2",
    ]));
    let b = jsonl(&ok(&[
        "export",
        s(&v12),
        "--format",
        "jsonl",
        "--threads",
        "2",
    ]));
    assert_eq!(a.len(), 60);
    let streams = a.iter().filter(|l| l["type"] == "stream").count();
    assert!(streams >= 2, "the fixture has type-26 streams");
    assert_eq!(without_idmp(a), without_idmp(b));
    let info: J = serde_json::from_slice(&ok(&["info", s(&v14), "--json"])).unwrap();
    assert_eq!(info["rdb_version"], 14);
    assert!(
        info["encodings"].to_string().contains("stream v4 (IDMP)"),
        "{}",
        info["encodings"]
    );
}

#[test]
fn rdb14_dump_imports_into_8_2_like_8_2_loads_the_v12_original() {
    if skip_if_missing(Version::V82) {
        return;
    }
    if !common::falkordb_or_skip() {
        return;
    }
    let v14 = testdata("rdb14/handmade_all_types_v14.rdb");
    let target = Server::with_falkordb(None, &[]);
    ok(&["import", s(&v14), "--target", &target.url()]);
    let want = Server::with_falkordb(Some(&testdata("redis82_all_types_v12.rdb")), &[]);
    assert_eq!(target.keyspace(), want.keyspace());
    assert_eq!(target.digest(), want.digest());
    // TTLs too (DEBUG DIGEST ignores them)
    for (db, _) in want.keyspace() {
        let keys = |srv: &Server| {
            let mut c = srv.conn();
            redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
            let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
            keys.sort();
            keys.into_iter()
                .map(|k| {
                    let t: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(&mut c).unwrap();
                    (k, t)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&target), keys(&want), "db {db}");
    }
}

#[test]
fn rdb14_key_meta_is_read() {
    let f = testdata("rdb14/handmade_key_meta_v14.rdb");
    let lines = jsonl(&ok(&["export", s(&f), "--format", "jsonl"]));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["key"], "meta:key");
    assert_eq!(lines[0]["value"], "value with metadata");
    assert_eq!(lines[0]["expire_at_ms"], 4_102_444_800_000i64);
    assert_eq!(lines[1]["key"], "plain");
}

/// A dump whose second key is of type `t`, its value as third-party parsers lay it out (format
/// §16.4–16.5: ARRAY = count, insert-index flag, then index, tag and value per element).
fn new_type_dump(dir: &Path, t: u8) -> PathBuf {
    let mut w = RdbWriter::new(14);
    w.aux(b"redis-ver", b"8.8.0")
        .select_db(0)
        .string_key(b"before", b"a string", None);
    let mut rec = vec![t];
    put_string(&mut rec, b"new:type");
    for n in [1, 0, 0, 0] {
        rdbkit::write::put_len(&mut rec, n);
    }
    put_string(&mut rec, b"x");
    w.bytes(&rec);
    let p = dir.join(format!("type{t}_v14.rdb"));
    std::fs::write(&p, w.finish()).unwrap();
    p
}

#[test]
fn rdb14_types_without_a_confirmed_layout_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (t, name) in [
        (27u8, "RDB_TYPE_STREAM_LISTPACKS_5"),
        (28, "RDB_TYPE_ARRAY"),
    ] {
        let f = new_type_dump(dir.path(), t);
        let bytes = std::fs::read(&f).unwrap();
        // the record of the second key starts with the type byte
        let at = bytes
            .windows(10)
            .position(|w| w[0] == t && &w[2..10] == b"new:type")
            .expect("type byte");
        for cmd in [&["info"][..], &["export", "--format", "resp"]] {
            let mut args = cmd.to_vec();
            args.insert(1, s(&f));
            let err = fails(&args);
            for want in [
                s(&f).to_string(),
                format!("offset {at:#x}"),
                format!("type {t} ({name}, written since RDB 14, Redis 8.8)"),
                "not confirmed".to_string(),
            ] {
                assert!(err.contains(&want), "{args:?}: {want:?} not in {err}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Duplicate keys
// ---------------------------------------------------------------------------------------------

/// A dump with `k` (string) and `s` (set) twice in db 0, `k` once in db 1.
fn dup_dump(dir: &Path) -> PathBuf {
    let set = |members: &[&[u8]]| {
        let mut raw = Vec::new();
        rdbkit::write::put_len(&mut raw, members.len() as u64);
        for m in members {
            put_string(&mut raw, m);
        }
        raw
    };
    let mut w = RdbWriter::new(9);
    w.select_db(0)
        .string_key(b"k", b"first", None)
        .raw_key(b"s", 2, &set(&[b"a", b"b"]), None)
        .string_key(b"other", b"x", None)
        .string_key(b"k", b"last", Some(4_102_444_800_000))
        .raw_key(b"s", 2, &set(&[b"c"]), None)
        .select_db(1)
        .string_key(b"k", b"db1", None);
    let p = dir.join("dups.rdb");
    std::fs::write(&p, w.finish()).unwrap();
    p
}

fn corpus(rel: &str) -> PathBuf {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")).join(rel);
    if !p.is_file() {
        let alt = Path::new("/work/shared/corpus").join(rel);
        assert!(alt.is_file(), "corpus dump {rel} missing");
        return alt;
    }
    p
}

#[test]
fn duplicate_keys_are_refused_by_every_command_and_counted_by_info() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dup_dump(dir.path());
    let d = s(&dump);
    let text = String::from_utf8(ok(&["info", d])).unwrap();
    assert!(
        text.contains(
            "duplicates:    2 keys appear more than once in one database (2 extra copies)"
        ),
        "{text}"
    );
    assert!(text.contains("db 0 key \"k\" at offsets 0x"), "{text}");
    let info: J = serde_json::from_slice(&ok(&["info", d, "--json"])).unwrap();
    assert_eq!(info["duplicates"]["keys"], 2);
    assert_eq!(info["duplicates"]["list"][0]["key"], "k");
    assert_eq!(
        info["duplicates"]["list"][0]["offsets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let out = dir.path().join("out");
    let o = s(&out);
    for args in [
        vec!["export", d, "--format", "jsonl"],
        vec!["export", d, "--format", "resp"],
        vec!["report", d],
        vec!["filter", d, "-o", o],
        vec!["split", d, "--cluster-slots", "2", "-o", o, "--db", "0"],
        vec!["verify", d, "--target", "redis://127.0.0.1:1"],
        vec!["import", d, "--target", "redis://127.0.0.1:1"],
    ] {
        let err = fails(&args);
        assert!(err.contains("RDB has duplicated key"), "{args:?}: {err}");
        assert!(
            err.contains("db 0 key \"k\" at offsets 0x"),
            "{args:?}: {err}"
        );
        assert!(err.contains("--duplicates first"), "{args:?}: {err}");
    }
    assert!(!out.exists(), "nothing written");

    // a redis-rdb-cli dump from the corpus: 8.2 refuses it, so does rdbkit, naming the key
    let cli = corpus("redis-rdb-cli/rdt/string.rdb");
    let err = fails(&["export", s(&cli), "--format", "jsonl"]);
    assert!(err.contains("key \"hll3\""), "{err}");
    if !skip_if_missing(Version::V82) {
        let log = redis_loads(Version::V82, &dump).unwrap_err();
        assert!(log.contains("duplicated key"), "{log}");
        let log = redis_loads(Version::V82, &cli).unwrap_err();
        assert!(log.contains("duplicated key 'hll3'"), "{log}");
    }
}

#[test]
fn duplicates_first_or_last_is_the_one_copy_every_command_uses() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dump = dup_dump(dir.path());
    let d = s(&dump);
    for (choice, k, members) in [
        ("first", "first", vec!["a", "b"]),
        ("last", "last", vec!["c"]),
    ] {
        let get = |srv: &Server| -> (String, Vec<String>, i64, String) {
            let mut c = srv.conn();
            let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
            let mut m: Vec<String> = redis::cmd("SMEMBERS").arg("s").query(&mut c).unwrap();
            m.sort();
            let ttl: i64 = redis::cmd("PEXPIRETIME").arg("k").query(&mut c).unwrap();
            redis::cmd("SELECT").arg(1).query::<()>(&mut c).unwrap();
            let db1: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
            (v, m, ttl, db1)
        };
        let ttl = if choice == "last" {
            4_102_444_800_000
        } else {
            -1
        };
        let want = (
            k.to_string(),
            members.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            ttl,
            "db1".to_string(),
        );

        // import writes exactly that copy
        let imported = Server::start(Version::V82);
        ok(&[
            "import",
            d,
            "--target",
            &imported.url(),
            "--duplicates",
            choice,
        ]);
        assert_eq!(get(&imported), want, "import --duplicates {choice}");
        assert_eq!(imported.keyspace(), [(0, 3), (1, 1)].into());

        // the RESP export too (no union of the two sets)
        let piped = Server::start(Version::V82);
        piped.pipe(&ok(&[
            "export",
            d,
            "--format",
            "resp",
            "--duplicates",
            choice,
        ]));
        assert_eq!(get(&piped), want, "export --duplicates {choice}");
        assert_eq!(piped.digest(), imported.digest());

        // JSON lines: one line per key
        let lines = jsonl(&ok(&[
            "export",
            d,
            "--format",
            "jsonl",
            "--duplicates",
            choice,
        ]));
        assert_eq!(lines.len(), 4);

        // filter writes a dump Redis loads, equal to the import
        let out = dir.path().join(format!("{choice}.rdb"));
        ok(&["filter", d, "-o", s(&out), "--duplicates", choice]);
        redis_loads(Version::V82, &out).expect("the filtered dump loads");
        assert_eq!(
            Server::start_with_dump(Version::V82, &out, &[]).digest(),
            imported.digest()
        );

        // verify compares against the chosen copy, and finds the other one different
        ok(&[
            "verify",
            d,
            "--target",
            &imported.url(),
            "--duplicates",
            choice,
        ]);
        let other = if choice == "first" { "last" } else { "first" };
        let err = fails(&[
            "verify",
            d,
            "--target",
            &imported.url(),
            "--duplicates",
            other,
        ]);
        assert!(err.contains("keys differ"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Zipmap integrity, as Redis checks it
// ---------------------------------------------------------------------------------------------

fn zipmap(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut z = vec![pairs.len() as u8];
    for (k, v) in pairs {
        z.push(k.len() as u8);
        z.extend_from_slice(k);
        z.push(v.len() as u8);
        z.push(0);
        z.extend_from_slice(v);
    }
    z.push(0xff);
    z
}

#[test]
fn zipmap_validity_agrees_with_redis() {
    let valid = zipmap(&[(b"MKD1G6", b"2"), (b"YNNXK", b"F7TI")]);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![("valid", valid.clone())];
    let mut big_len = valid.clone();
    big_len[0] = 0xff; // HDT3213/rdb's zipmap_big_len.rdb
    cases.push(("header 0xff", big_len));
    let mut unknown = valid.clone();
    unknown[0] = 0xfe;
    cases.push(("header 0xfe", unknown));
    let mut wrong = valid.clone();
    wrong[0] = 3;
    cases.push(("header count 3 of 2", wrong));
    let mut long = vec![1, 1, b'k', 0xfe, 44, 1, 0, 0, 0];
    long.extend_from_slice(&[b'v'; 300]);
    long.push(0xff);
    cases.push(("value length 0xfe + 300", long));
    cases.push((
        "value length 0xfe + 2 (not the shortest form)",
        vec![1, 1, b'k', 0xfe, 2, 0, 0, 0, 0, b'v', b'w', 0xff],
    ));
    cases.push((
        "field length 0xfe + 1 (not the shortest form)",
        vec![1, 0xfe, 1, 0, 0, 0, b'k', 1, 0, b'v', 0xff],
    ));
    cases.push((
        "value length 0xff + 4 bytes",
        vec![1, 1, b'k', 0xff, 2, 0, 0, 0, 0, b'v', b'w', 0xff],
    ));
    let mut tail = valid.clone();
    tail.extend_from_slice(&[9, 9, 0xff]);
    cases.push(("bytes after the first end marker", tail));
    let mut last = valid.clone();
    last.push(0);
    cases.push(("last byte not 0xff", last));
    cases.push(("duplicate field", zipmap(&[(b"f", b"1"), (b"f", b"2")])));
    cases.push(("empty", vec![0, 0xff]));

    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (i, (what, blob)) in cases.iter().enumerate() {
        let mut raw = Vec::new();
        put_string(&mut raw, blob);
        let mut w = RdbWriter::new(9);
        w.select_db(0)
            .raw_key(b"zimap_doesnt_compress", 9, &raw, None)
            .string_key(b"after", b"x", None);
        let p = dir.path().join(format!("zm{i}.rdb"));
        std::fs::write(&p, w.finish()).unwrap();
        let ours = rdbkit(&["export", s(&p), "--format", "resp"]);
        let ours_ok = ours.status.success();
        if !ours_ok {
            let err = String::from_utf8_lossy(&ours.stderr);
            assert!(
                err.contains(s(&p)) && err.contains("offset 0x") && err.contains("zipmap"),
                "{what}: {err}"
            );
        }
        for v in [Version::V70, Version::V82] {
            if skip_if_missing(v) {
                continue;
            }
            let theirs = redis_loads(v, &p);
            assert_eq!(
                ours_ok,
                theirs.is_ok(),
                "{what}: rdbkit {} but {v:?} {}",
                if ours_ok { "accepts" } else { "refuses" },
                match &theirs {
                    Ok(()) => "loads it".to_string(),
                    Err(log) => format!("refuses it:\n{log}"),
                }
            );
            checked += 1;
            if ours_ok {
                // and they read the same hash
                let srv = Server::start_with_dump(v, &p, &[]);
                let piped = Server::start(v);
                piped.pipe(&ours.stdout);
                assert_eq!(piped.digest(), srv.digest(), "{what} on {v:?}");
            }
        }
    }
    if std::env::var("RDBKIT_REQUIRE_SERVERS").as_deref() == Ok("1") {
        assert_eq!(checked, cases.len() * 2);
    }
}
