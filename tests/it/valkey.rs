//! Valkey as a target and a source: Redis 8.2 dumps into Valkey 8.1, a Valkey 8.1 dump into Redis
//! 8.2 and 7.0, and the corpus's Valkey dumps into Valkey 8.1. DEBUG DIGEST is not comparable
//! across Redis and Valkey, so every check compares key by key: type, value (streams by
//! `XINFO STREAM FULL`) and `PEXPIRETIME`, against a server that loaded the dump itself (or the
//! server that wrote it).

use crate::common;
use crate::common::import;

use common::{
    assert_same_keys, rdbkit, skip_if_missing, snapshot, text, Server, Snapshot, Val, Version,
};
use redis::Value as R;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

/// Far-future expiry (2100-01-01 UTC) for keys and hash fields.
const EXPIRE_AT_MS: i64 = 4_102_444_800_000;

fn verify(dump: &Path, target: &Server) -> Output {
    rdbkit(&["verify", dump.to_str().unwrap(), "--target", &target.url()])
}

/// `FUNCTION LIST WITHCODE` as (library name, code) pairs.
fn functions(s: &Server) -> BTreeSet<(String, String)> {
    let libs: Vec<R> = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("WITHCODE")
        .query(&mut s.conn())
        .unwrap();
    libs.iter()
        .map(|lib| {
            let R::Array(f) = lib else { panic!("{lib:?}") };
            let field = |n: &[u8]| {
                let i = f
                    .iter()
                    .position(|x| matches!(x, R::BulkString(b) if b == n))
                    .unwrap();
                match &f[i + 1] {
                    R::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    other => panic!("{other:?}"),
                }
            };
            (field(b"library_name"), field(b"library_code"))
        })
        .collect()
}

/// The summary line `written: N keys (R by RESTORE, C by commands)` as (N, R, C).
fn written(out: &str) -> (u64, u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with("written:"))
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .map(|s| s.parse().unwrap())
        .collect();
    (nums[0], nums[1], nums[2])
}

/// Fills `s` with every type in its small and large encodings, keys with TTLs, three databases,
/// a stream with consumer groups, pending entries and a deleted entry, a function library, and
/// (when `field_ttls`) a hash with field TTLs. Returns the keys holding field TTLs.
fn fill(s: &Server, field_ttls: bool) -> BTreeSet<Vec<u8>> {
    let mut c = s.conn();
    let mut run = |args: &[&str]| {
        redis::cmd(args[0])
            .arg(&args[1..])
            .query::<R>(&mut c)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    };
    let big: String = "x".repeat(20_000);
    let nums: Vec<String> = (0..2000).map(|i| format!("{i}")).collect();
    let words: Vec<String> = (0..2000).map(|i| format!("member-{i}")).collect();
    run(&["SET", "str:small", "hello"]);
    run(&["SET", "str:int", "12345"]);
    run(&["SET", "str:big", &big]);
    run(&[
        "SET",
        "str:ttl",
        "expiring",
        "PXAT",
        &EXPIRE_AT_MS.to_string(),
    ]);
    run(&["RPUSH", "list:small", "a", "b", "3"]);
    let mut cmd = vec!["RPUSH", "list:big"];
    cmd.extend(words.iter().map(String::as_str));
    run(&cmd);
    run(&["SADD", "set:intset", "1", "2", "300000"]);
    run(&["SADD", "set:listpack", "a", "b", "c"]);
    let mut cmd = vec!["SADD", "set:big"];
    cmd.extend(words.iter().map(String::as_str));
    run(&cmd);
    run(&["ZADD", "zset:small", "1", "a", "2.5", "b", "-3", "c"]);
    let mut cmd = vec!["ZADD", "zset:big"];
    let scores: Vec<String> = (0..500).map(|i| format!("{}", i as f64 / 7.0)).collect();
    for i in 0..500 {
        cmd.push(&scores[i]);
        cmd.push(&words[i]);
    }
    run(&cmd);
    run(&["HSET", "hash:small", "f1", "v1", "f2", "2"]);
    let mut cmd = vec!["HSET", "hash:big"];
    for i in 0..1000 {
        cmd.push(&words[i]);
        cmd.push(&nums[i]);
    }
    run(&cmd);
    run(&["HSET", "hash:ttl", "a", "1", "b", "2"]);
    run(&["PEXPIREAT", "hash:ttl", &EXPIRE_AT_MS.to_string()]);
    for i in 1..=30 {
        run(&["XADD", "stream:s", &format!("{i}-1"), "n", &i.to_string()]);
    }
    run(&["XDEL", "stream:s", "5-1"]);
    run(&["XGROUP", "CREATE", "stream:s", "g1", "0"]);
    run(&["XGROUP", "CREATE", "stream:s", "g2", "$"]);
    run(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "alice",
        "COUNT",
        "4",
        "STREAMS",
        "stream:s",
        ">",
    ]);
    run(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "bob",
        "COUNT",
        "3",
        "STREAMS",
        "stream:s",
        ">",
    ]);
    run(&["XACK", "stream:s", "g1", "1-1"]);
    run(&["XADD", "stream:empty", "MAXLEN", "0", "*", "k", "v"]);
    for db in ["1", "2"] {
        run(&["SELECT", db]);
        run(&["SET", &format!("db{db}:str"), db]);
        run(&["RPUSH", &format!("db{db}:list"), "x", "y"]);
        run(&[
            "PEXPIREAT",
            &format!("db{db}:list"),
            &EXPIRE_AT_MS.to_string(),
        ]);
    }
    run(&["SELECT", "0"]);
    run(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=vklib\nredis.register_function('vk_get', function(keys, args) return redis.call('GET', keys[1]) end)",
    ]);
    let mut ttl_keys = BTreeSet::new();
    if field_ttls {
        run(&["HSET", "hash:fieldttl", "keep", "1", "volatile", "2"]);
        run(&[
            "HPEXPIREAT",
            "hash:fieldttl",
            &(EXPIRE_AT_MS + 1).to_string(),
            "FIELDS",
            "1",
            "volatile",
        ]);
        ttl_keys.insert(b"hash:fieldttl".to_vec());
    }
    ttl_keys
}

/// The installed Valkey is the 8.1.8 the tests are written for, and it identifies itself as
/// Valkey in `INFO server` (which the importer relies on).
#[test]
fn valkey_server_starts() {
    if skip_if_missing(Version::Valkey81) {
        return;
    }
    let s = Server::start(Version::Valkey81);
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut s.conn())
        .unwrap();
    assert!(info.contains("server_name:valkey"), "{info}");
    assert!(info.contains("valkey_version:8.1.8"), "{info}");
    assert_eq!(s.keyspace().len(), 0);
}

/// The bundled 8.2 all-types dump into Valkey 8.1: every key Valkey can read goes by RESTORE (the
/// payload footer set to 11), the FalkorDB and vector-set keys are reported as missing modules,
/// the hashes with field TTLs are refused, and the rest equals 8.2 loading the dump, key by key.
#[test]
fn redis82_all_types_dump_into_valkey81() {
    if skip_if_missing(Version::Valkey81) || skip_if_missing(Version::V82) {
        return;
    }
    let dump = common::testdata("redis82_all_types_v12.rdb");
    let loader = Server::with_falkordb(Some(&dump), &[]);
    let want = snapshot(&loader);
    let target = Server::start(Version::Valkey81);
    // the summary shows the first 5 keys of each list; the file has them all
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys.tsv");
    let out = import(&dump, &target, &["--keys-file", keys.to_str().unwrap()]);
    let t = text(&out);
    assert!(
        !out.status.success(),
        "keys were left out: must exit 1\n{t}"
    );
    assert!(t.contains("(Valkey 8.1.8, RDB 11)"), "{t}");
    let t = format!("{t}\n{}", std::fs::read_to_string(&keys).unwrap());
    let mut absent = BTreeSet::new();
    for (key, why) in [
        (
            "graph:small",
            "module type graphdata not loaded on the target",
        ),
        (
            "graph:chain",
            "module type graphdata not loaded on the target",
        ),
        ("vset:q8", "module type vectorset not loaded on the target"),
        (
            "vset:noquant",
            "module type vectorset not loaded on the target",
        ),
        ("hash:ttl-small", "hash field TTLs"),
        ("hash:ttl-big", "hash field TTLs"),
    ] {
        assert!(
            t.lines()
                .any(|l| l.contains(&format!("{key:?}")) && l.contains(why)),
            "{key} not reported as {why:?}:\n{t}"
        );
        absent.insert(key.as_bytes().to_vec());
    }
    assert!(t.contains("skipped: 4 (module missing on target)"), "{t}");
    let (n, by_restore, by_commands) = written(&t);
    assert_eq!(n as usize, want.len() - absent.len(), "{t}");
    assert_eq!((by_restore, by_commands), (n, 0), "{t}");
    let got = snapshot(&target);
    assert_same_keys(&want, &got, &absent, "8.2 all-types dump in Valkey 8.1");
    assert_eq!(functions(&target), functions(&loader));
    // verify: the written keys are equal, exactly the reported ones are missing
    let v = verify(&dump, &target);
    let vt = text(&v);
    assert!(
        vt.contains(&format!("verified: {n} keys equal, 6 differ")),
        "{vt}"
    );
    let missing: BTreeSet<Vec<u8>> = vt
        .lines()
        .filter(|l| l.starts_with("MISMATCH") && l.ends_with("missing on target"))
        .map(|l| l.split('"').nth(1).unwrap().as_bytes().to_vec())
        .collect();
    assert_eq!(missing, absent, "{vt}");

    // `--field-ttls drop`: the two hashes go by commands without their field TTLs (counted), the
    // modules are still reported, and `verify` finds only the module keys missing
    let with_ttls = [b"hash:ttl-small".to_vec(), b"hash:ttl-big".to_vec()];
    let fields_with_ttl: usize = with_ttls.iter().map(|k| fields_with_ttl(&loader, k)).sum();
    assert!(fields_with_ttl > 0);
    for k in &with_ttls {
        absent.remove(k);
    }
    redis::cmd("FLUSHALL")
        .query::<()>(&mut target.conn())
        .unwrap();
    let out = import(&dump, &target, &["--replace", "--field-ttls", "drop"]);
    let t = text(&out);
    assert!(
        !out.status.success(),
        "module keys left out: must exit 1\n{t}"
    );
    assert!(t.contains("skipped: 4 (module missing on target)"), "{t}");
    assert!(
        t.contains(&format!(
            "{fields_with_ttl} hash fields written without their TTL"
        )),
        "{t}"
    );
    let (n, by_restore, by_commands) = written(&t);
    assert_eq!(n as usize, want.len() - absent.len(), "{t}");
    assert_eq!((by_restore, by_commands), (n - 2, 2), "{t}");
    let got = snapshot(&target);
    assert_same_keys(&want, &got, &absent, "--field-ttls drop into Valkey 8.1");
    let vt = text(&verify(&dump, &target));
    assert!(
        vt.contains(&format!("verified: {n} keys equal, 4 differ")),
        "{vt}"
    );
}

/// How many fields of hash `key` on `s` have a TTL (`HPEXPIRETIME`, Redis 7.4+).
fn fields_with_ttl(s: &Server, key: &[u8]) -> usize {
    let mut c = s.conn();
    let fields: Vec<Vec<u8>> = redis::cmd("HKEYS").arg(key).query(&mut c).unwrap();
    let times: Vec<i64> = redis::cmd("HPEXPIRETIME")
        .arg(key)
        .arg("FIELDS")
        .arg(fields.len())
        .arg(&fields)
        .query(&mut c)
        .unwrap();
    times.iter().filter(|&&t| t > 0).count()
}

/// A dump generated by 8.2 (large encodings too) into Valkey 8.1: by RESTORE, again over the
/// same keys with `--replace`, and by commands (`--mode commands`): each time equal to the 8.2
/// that wrote it, key by key, with the hash holding field TTLs refused.
#[test]
fn generated_redis82_dump_into_valkey81() {
    if skip_if_missing(Version::Valkey81) || skip_if_missing(Version::V82) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = Server::start(Version::V82);
    let field_ttl_keys = fill(&source, true);
    let dump = source.save_to(dir.path().join("gen82.rdb"));
    let want = snapshot(&source);
    let target = Server::start(Version::Valkey81);
    for (extra, commands) in [
        (&[][..], false),
        (&["--replace"][..], false),
        (&["--replace", "--mode", "commands"][..], true),
    ] {
        let out = import(&dump, &target, extra);
        let t = text(&out);
        assert!(!out.status.success(), "{extra:?}: {t}");
        assert!(
            t.contains("\"hash:fieldttl\": hash field TTLs"),
            "{extra:?}: field TTLs not refused:\n{t}"
        );
        let (n, by_restore, by_commands) = written(&t);
        assert_eq!(n as usize, want.len() - 1, "{extra:?}: {t}");
        let split = if commands { (0, n) } else { (n, 0) };
        assert_eq!((by_restore, by_commands), split, "{extra:?}: {t}");
        let what = format!("8.2 dump in Valkey 8.1 {extra:?}");
        assert_same_keys(&want, &snapshot(&target), &field_ttl_keys, &what);
    }
    // `--field-ttls drop`: the hash is written by commands, its one field TTL dropped
    let out = import(&dump, &target, &["--replace", "--field-ttls", "drop"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("1 hash fields written without their TTL"), "{t}");
    let (n, _, by_commands) = written(&t);
    assert_eq!((n as usize, by_commands), (want.len(), 1), "{t}");
    let what = "8.2 dump in Valkey 8.1, --field-ttls drop";
    assert_same_keys(&want, &snapshot(&target), &BTreeSet::new(), what);
    let vo = verify(&dump, &target);
    assert!(vo.status.success(), "{what}: verify\n{}", text(&vo));
    assert_eq!(functions(&target), functions(&source));
}

/// A dump written by Valkey 8.1 (RDB 11, `valkey-ver`), with the Valkey that wrote it still
/// running as the reference.
fn valkey81_dump(dir: &Path) -> (Server, PathBuf) {
    let source = Server::start(Version::Valkey81);
    fill(&source, false);
    let dump = source.save_to(dir.join("valkey81.rdb"));
    let info = text(&rdbkit(&["info", dump.to_str().unwrap()]));
    assert!(info.contains("producer:      Valkey"), "{info}");
    assert!(info.contains("rdb version:   11"), "{info}");
    (source, dump)
}

/// Imports `dump` into an empty server `v`: exit 0, every key written, `by_commands` of them by
/// commands; equal to `source` key by key, same function libraries, and `verify` passes.
fn import_equals_source(source: &Server, dump: &Path, v: Version, by_commands: u64) {
    let want = snapshot(source);
    let target = Server::start(v);
    let out = import(dump, &target, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{v:?}:\n{t}");
    let (n, _, commands) = written(&t);
    assert_eq!(n as usize, want.len(), "{v:?}:\n{t}");
    assert_eq!(commands, by_commands, "{v:?}:\n{t}");
    let what = format!("{} in {v:?}", dump.display());
    assert_same_keys(&want, &snapshot(&target), &BTreeSet::new(), &what);
    assert_eq!(functions(&target), functions(source), "{what}");
    let vo = verify(dump, &target);
    assert!(vo.status.success(), "{what}: verify\n{}", text(&vo));
}

/// A dump written by Valkey 8.1 into Redis 8.2: everything by RESTORE, equal to the Valkey that
/// wrote it, and `verify` passes.
#[test]
fn valkey81_dump_into_redis82() {
    if skip_if_missing(Version::Valkey81) || skip_if_missing(Version::V82) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (source, dump) = valkey81_dump(dir.path());
    import_equals_source(&source, &dump, Version::V82, 0);
}

/// A dump written by Valkey 8.1 into Redis 7.0 (RDB 10): the listpack sets and the RDB 11 streams
/// (types 20 and 21, which 7.0 cannot read) go by commands, the rest by RESTORE; equal to the
/// Valkey that wrote it (stream groups included), and `verify` passes.
#[test]
fn valkey81_dump_into_redis70() {
    if skip_if_missing(Version::Valkey81) || skip_if_missing(Version::V70) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (source, dump) = valkey81_dump(dir.path());
    let data = std::fs::read(&dump).unwrap();
    let newer_than_70 = rdbkit::Decoder::new(&data)
        .filter_map(|i| match i.unwrap() {
            rdbkit::Item::Entry(e) if e.type_id > 19 => Some(()),
            _ => None,
        })
        .count() as u64;
    assert!(newer_than_70 >= 3, "set:listpack, stream:s, stream:empty");
    import_equals_source(&source, &dump, Version::V70, newer_than_70);
}

/// `$RDBKIT_CORPUS`, or `<crate>/../shared/corpus`; None (or a panic under
/// `RDBKIT_REQUIRE_SERVERS=1`) when its MANIFEST.tsv is absent.
fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("RDBKIT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.join("MANIFEST.tsv").is_file() {
        return Some(dir);
    }
    let msg = format!("{}/MANIFEST.tsv not found", dir.display());
    if std::env::var("RDBKIT_REQUIRE_SERVERS").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIP: {msg}");
    None
}

/// The corpus's Valkey dumps (from valkey-io/valkey, or written by Valkey: `valkey-ver`, VALKEY
/// magic) into Valkey 8.1. Each is compared key by key with a server that loads it itself: Valkey
/// 8.1 for RDB ≤ 11, Redis 8.2 for the RDB 12 one; Valkey 9 dumps (RDB 80), which no installed
/// server loads, against the values HDT3213/rdb's own tool printed where it printed them. Dumps
/// rdbkit cannot read (RDB 75 and 987 test files) must fail with an error naming the version and
/// write nothing.
#[test]
fn corpus_valkey_dumps_into_valkey81() {
    if skip_if_missing(Version::Valkey81) || skip_if_missing(Version::V82) {
        return;
    }
    let Some(root) = corpus_dir() else { return };
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (path, repo, notes, ver, loads82) = (
        col("path"),
        col("source_repo"),
        col("notes"),
        col("rdb_version"),
        col("loads_in_8.2"),
    );
    let target = Server::start(Version::Valkey81);
    let mut checked = Vec::new();
    for f in lines.map(|l| l.split('\t').collect::<Vec<_>>()) {
        let valkey = f[repo] == "valkey-io/valkey"
            || f[notes].contains("valkey-io/valkey")
            || f[path].contains("valkey_");
        // corrupt on purpose: no server loads them, nothing to compare with
        if !valkey || f[notes].contains("corrupt-on-purpose") {
            continue;
        }
        let file = root.join(f[path]);
        // an AOF (an RDB preamble, then commands) is imported with its commands, which the
        // snapshot compared here leaves out: tests/it/aof.rs compares it with a server loading it
        if matches!(rdbkit::source::aof::detect(&file), Ok(Some(_))) {
            continue;
        }
        let version: u32 = f[ver].parse().unwrap();
        redis::cmd("FLUSHALL")
            .query::<()>(&mut target.conn())
            .unwrap();
        redis::cmd("FUNCTION")
            .arg("FLUSH")
            .query::<()>(&mut target.conn())
            .unwrap();
        let out = import(&file, &target, &[]);
        let t = text(&out);
        let what = f[path];
        if version > 11 && version != 12 && version != 80 {
            assert!(!out.status.success(), "{what}: {t}");
            assert!(
                t.contains(&format!("unsupported RDB version {version}")),
                "{what}: {t}"
            );
            assert!(target.keyspace().is_empty(), "{what}: wrote keys");
            checked.push(what.to_string());
            continue;
        }
        let got = snapshot(&target);
        if version <= 11 {
            let loader = Server::start_with_dump(Version::Valkey81, &file, &[]);
            assert!(out.status.success(), "{what}: {t}");
            assert_same_keys(&snapshot(&loader), &got, &BTreeSet::new(), what);
            assert_eq!(functions(&target), functions(&loader), "{what}");
        } else if version == 12 {
            assert_eq!(f[loads82], "yes", "{what}");
            let loader = Server::start_with_dump(Version::V82, &file, &[]);
            assert!(out.status.success(), "{what}: {t}");
            assert_same_keys(&snapshot(&loader), &got, &BTreeSet::new(), what);
        } else {
            check_against_hdt_json(&file, &out, &got, false);
            redis::cmd("FLUSHALL")
                .query::<()>(&mut target.conn())
                .unwrap();
            let out = import(&file, &target, &["--field-ttls", "drop"]);
            check_against_hdt_json(&file, &out, &snapshot(&target), true);
        }
        checked.push(what.to_string());
    }
    eprintln!("checked: {checked:?}");
    // valkey/ (7 loadable files), NexCache's RDB 12, 75 and 987 files, HDT3213's three Valkey 9
    assert!(checked.len() >= 13, "only {checked:?}");
}

/// A Valkey 9 dump against HDT3213/rdb's JSON of it (next to the dump), when there is one: hash
/// field TTLs cannot go into Valkey 8.1 and are refused, unless `dropped` (`--field-ttls drop`);
/// every other key is written as the JSON shows it. Without a JSON, the import must succeed and
/// write as many keys as `info` counts.
fn check_against_hdt_json(file: &Path, out: &Output, got: &Snapshot, dropped: bool) {
    let t = text(out);
    let json = file.with_extension("json");
    let Ok(j) = std::fs::read_to_string(&json) else {
        assert!(out.status.success(), "{}: {t}", file.display());
        let dbsize: usize = got.len();
        let info = text(&rdbkit(&["info", file.to_str().unwrap()]));
        assert!(
            info.contains(&format!("keys:          {dbsize} ")),
            "{}: {dbsize} keys written\n{info}",
            file.display()
        );
        return;
    };
    let records: Vec<serde_json::Value> = serde_json::from_str(&j).unwrap();
    for r in records {
        let key = r["key"].as_str().unwrap();
        let with_field_ttls = r["expire"]
            .as_object()
            .is_some_and(|m| m.values().any(|v| v.as_i64().unwrap_or(0) > 0));
        let state = got.get(&(r["db"].as_u64().unwrap(), key.as_bytes().to_vec()));
        if with_field_ttls && !dropped {
            assert!(state.is_none(), "{key}: written with field TTLs dropped");
            assert!(t.contains(&format!("{key:?}: hash field TTLs")), "{t}");
            continue;
        }
        assert!(out.status.success() || !dropped, "{t}");
        let state = state.unwrap_or_else(|| panic!("{key} missing:\n{t}"));
        match (r["type"].as_str().unwrap(), &state.val) {
            ("string", Val::Str(v)) => assert_eq!(r["value"].as_str().unwrap().as_bytes(), &v[..]),
            ("hash", Val::Hash(h)) => {
                let want = json_hash(&r["hash"]);
                assert_eq!(&want, h, "{key}");
            }
            (ty, v) => panic!("{key}: JSON type {ty}, target has {v:?}"),
        }
    }
}

/// The `hash` object of a dump's JSON description: field → value.
fn json_hash(j: &serde_json::Value) -> BTreeMap<Vec<u8>, Vec<u8>> {
    j.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_bytes().to_vec(),
                v.as_str().unwrap().as_bytes().to_vec(),
            )
        })
        .collect()
}

/// A module value whose module the target lacks is reported as "module missing on target" before
/// anything is sent for it, also when the target runs other modules (Redis 8.2 always has
/// `vectorset`, here FalkorDB too): librdb's test dump holds a `test__rdb` value, which went to
/// the server and came back `ERR Bad data format`.
#[test]
fn module_type_the_target_lacks_is_reported_before_sending() {
    if skip_if_missing(Version::Valkey81) || skip_if_missing(Version::V82) {
        return;
    }
    let Some(root) = corpus_dir() else { return };
    let dump = root.join("librdb/test/dumps/module.rdb");
    let info = text(&rdbkit(&["info", dump.to_str().unwrap()]));
    assert!(
        info.contains("modules:       test__rdb/1 (1 key)"),
        "{info}"
    );
    for target in [
        Server::with_falkordb(None, &[]),
        Server::start(Version::V82),
        Server::start(Version::Valkey81),
    ] {
        let out = import(&dump, &target, &[]);
        let t = text(&out);
        assert!(!out.status.success(), "{t}");
        assert!(
            t.contains("\"key1\": module type test__rdb not loaded on the target"),
            "{t}"
        );
        assert!(t.contains("skipped: 1 (module missing on target)"), "{t}");
        assert!(
            !t.contains("Bad data format") && !t.contains("failed:"),
            "{t}"
        );
        assert!(target.keyspace().is_empty());
        // the server never saw it: no RESTORE was refused
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut target.conn())
            .unwrap();
        assert!(!stats.contains("cmdstat_restore:"), "{stats}");
        let out = import(&dump, &target, &["--skip-modules"]);
        assert!(out.status.success(), "{}", text(&out));
    }
}

/// A Valkey 9 dump (`VALKEY080`, a HASH_2 hash with field TTLs) into Redis 8.2: Redis cannot
/// RESTORE Valkey's type 22, so the hash goes by commands with its field TTLs; values and each
/// field's expiry equal HDT3213/rdb's JSON of the dump, and `verify` passes.
#[test]
fn valkey9_hash_with_field_ttls_into_redis82() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let Some(root) = corpus_dir() else { return };
    let dump = root.join("HDT3213-rdb/valkey_hash2_with_hfe.rdb");
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dump.with_extension("json")).unwrap())
            .unwrap();
    let target = Server::start(Version::V82);
    let out = import(&dump, &target, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(written(&t), (1, 0, 1), "{t}");
    let got = snapshot(&target);
    assert_eq!(got.len(), json.len());
    let mut c = target.conn();
    for r in &json {
        let key = r["key"].as_str().unwrap();
        let want = json_hash(&r["hash"]);
        let state = &got[&(0, key.as_bytes().to_vec())];
        assert_eq!(state.val, Val::Hash(want), "{key}");
        for (field, at) in r["expire"].as_object().unwrap() {
            let at = at.as_i64().unwrap();
            let got: Vec<i64> = redis::cmd("HPEXPIRETIME")
                .arg(key)
                .arg("FIELDS")
                .arg(1)
                .arg(field)
                .query(&mut c)
                .unwrap();
            // the JSON writes 0 for a field without a TTL
            assert_eq!(got, [if at == 0 { -1 } else { at }], "{key}.{field}");
        }
    }
    let vo = verify(&dump, &target);
    assert!(vo.status.success(), "{}", text(&vo));
}
