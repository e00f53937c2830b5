//! `rdbkit filter` and `rdbkit split` against real servers: the dumps they write keep the input's
//! RDB version, carry a valid CRC64, copy every kept record byte for byte, and load into Redis with
//! the digest of "load the original, delete the other keys"; split shards hold exactly the keys of
//! their slots, with the original values.

use crate::common;

use crate::common::rdbkit;
use common::{Server, Version};
use rdbkit::cluster::key_hash_slot;
use rdbkit::{Checksum, Decoder, Item};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "rdbkit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rdbkit-rewrite-")
        .tempdir()
        .unwrap()
}

/// One key record as written: db, key → (type id, expiry, idle, freq, value bytes).
type Records = BTreeMap<(u64, Vec<u8>), (u8, Option<i64>, Option<u64>, Option<u8>, Vec<u8>)>;

struct Parsed {
    version: u32,
    checksum: Checksum,
    aux: Vec<(Vec<u8>, Vec<u8>)>,
    functions: usize,
    records: Records,
    /// (db, declared size, declared expires) from RESIZEDB.
    resize: Vec<(u64, u64, u64)>,
}

fn parse(dump: &[u8]) -> Parsed {
    let mut p = Parsed {
        version: 0,
        checksum: Checksum::Absent,
        aux: Vec::new(),
        functions: 0,
        records: BTreeMap::new(),
        resize: Vec::new(),
    };
    let mut db = 0;
    for item in Decoder::new(dump) {
        match item.expect("decodes") {
            Item::Header { version, .. } => p.version = version,
            Item::Aux { key, value } => p.aux.push((key.to_vec(), value.to_vec())),
            Item::Function { .. } => p.functions += 1,
            Item::SelectDb { db: d } => db = d,
            Item::ResizeDb {
                db_size,
                expires_size,
            } => p.resize.push((db, db_size, expires_size)),
            Item::Entry(e) => {
                p.records.insert(
                    (e.db, e.key.to_vec()),
                    (e.type_id, e.expire_ms, e.idle, e.freq, e.raw.to_vec()),
                );
            }
            Item::Eof { checksum, .. } => p.checksum = checksum,
            _ => {}
        }
    }
    p
}

/// Starts the server that can load `dump` (8.2 with FalkorDB for the 8.2 all-types dump).
fn load(v: Version, dump: &Path) -> Server {
    if v == Version::V82 && common::falkordb_available() {
        Server::with_falkordb(Some(dump), &[])
    } else {
        Server::start_with_dump(v, dump, &[])
    }
}

/// Deletes from `server` every key of `all` not in `keep`.
fn delete_others(server: &Server, all: &Records, keep: &Records) {
    let mut c = server.conn();
    let mut by_db: BTreeMap<u64, Vec<&Vec<u8>>> = BTreeMap::new();
    for (db, key) in all.keys() {
        if !keep.contains_key(&(*db, key.clone())) {
            by_db.entry(*db).or_default().push(key);
        }
    }
    for (db, keys) in by_db {
        redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
        for k in keys {
            redis::cmd("DEL").arg(k).query::<()>(&mut c).unwrap();
        }
    }
}

/// Filters `input` with `args`, checks the output's structure against the input, then checks in a
/// real server that loading it gives the original minus the other keys (`same_dataset`).
fn check_filter(v: Version, input: &Path, args: &[&str], want_keys: Option<usize>) {
    let dir = tmp();
    let out = dir.path().join("out.rdb");
    let mut cmd = vec![
        "filter",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    cmd.extend_from_slice(args);
    ok(rdbkit(&cmd));
    let (orig_bytes, new_bytes) = (std::fs::read(input).unwrap(), std::fs::read(&out).unwrap());
    let (orig, new) = (parse(&orig_bytes), parse(&new_bytes));
    assert_eq!(new.version, orig.version, "{args:?}: RDB version");
    assert_eq!(&new_bytes[..9], &orig_bytes[..9], "{args:?}: magic");
    assert!(
        matches!(new.checksum, Checksum::Verified(_)),
        "{args:?}: checksum {:?}",
        new.checksum
    );
    assert_eq!(new.aux, orig.aux, "{args:?}: aux fields");
    assert_eq!(new.functions, orig.functions, "{args:?}: functions");
    if let Some(n) = want_keys {
        assert_eq!(new.records.len(), n, "{args:?}: kept keys");
    }
    // every kept record is the original's, byte for byte (type, TTL, LRU/LFU, value)
    for (k, rec) in &new.records {
        assert_eq!(orig.records.get(k), Some(rec), "{args:?}: record {k:?}");
    }
    // RESIZEDB carries the real counts
    for (db, size, expires) in &new.resize {
        let in_db: Vec<_> = new.records.iter().filter(|((d, _), _)| d == db).collect();
        assert_eq!(*size, in_db.len() as u64);
        assert_eq!(
            *expires,
            in_db.iter().filter(|(_, r)| r.1.is_some()).count() as u64
        );
    }

    let original = load(v, input);
    delete_others(&original, &orig.records, &new.records);
    let filtered = load(v, &out);
    common::same_dataset(&filtered, &original).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let n: u64 = filtered.keyspace().values().sum();
    assert_eq!(n, new.records.len() as u64, "{args:?}: keys loaded");
}

#[test]
fn filter_loads_with_the_expected_digest() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let all_types = common::testdata("redis82_all_types_v12.rdb");
    if common::falkordb_or_skip() {
        check_filter(
            Version::V82,
            &all_types,
            &["--db", "0", "--type", "hash"],
            Some(7),
        );
        check_filter(
            Version::V82,
            &all_types,
            &["--key", "str:*", "--key", "list:*", "--key", "graph:*"],
            None,
        );
        check_filter(Version::V82, &all_types, &["--min-size", "1k"], None);
        check_filter(
            Version::V82,
            &all_types,
            &["--db", "1", "--db", "3"],
            Some(8),
        );
        check_filter(Version::V82, &all_types, &["--key", "nothing:*"], Some(0));
    }
    let multi = common::testdata("redis82_multiple_dbs_v12.rdb");
    check_filter(Version::V82, &multi, &["--db", "7", "--db", "0"], Some(5));
    check_filter(Version::V82, &multi, &["--type", "string"], None);
    let unchecked = common::testdata("redis82_no_checksum_v12.rdb");
    check_filter(Version::V82, &unchecked, &[], Some(4));
}

#[test]
fn filter_keeps_old_rdb_versions() {
    for (v, name) in [
        (Version::V62, "redis62_all_types_v9.rdb"),
        (Version::V70, "redis70_all_types_v10.rdb"),
    ] {
        if common::skip_if_missing(v) {
            continue;
        }
        let input = common::testdata(name);
        check_filter(v, &input, &["--type", "zset", "--type", "stream"], Some(10));
        check_filter(v, &input, &["--key", "*big*"], None);
    }
}

/// Splits `input` (db 0 only) into shards, loads each into a server, and checks that the shards
/// partition the original keys by slot with the same values.
fn check_split(input: &Path, spec: &str, ranges: &[Vec<(u16, u16)>]) {
    let dir = tmp();
    let out_dir = dir.path().join("shards");
    let out = ok(rdbkit(&[
        "split",
        input.to_str().unwrap(),
        "--cluster-slots",
        spec,
        "--db",
        "0",
        "-o",
        out_dir.to_str().unwrap(),
    ]));
    let listing = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listing.lines().count(), ranges.len(), "{listing}");

    let orig = parse(&std::fs::read(input).unwrap());
    let original = load(Version::V82, input);
    let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (i, shard_ranges) in ranges.iter().enumerate() {
        let path = out_dir.join(format!("shard-{i}.rdb"));
        let bytes = std::fs::read(&path).unwrap();
        let parsed = parse(&bytes);
        assert_eq!(parsed.version, orig.version);
        assert!(matches!(parsed.checksum, Checksum::Verified(_)));
        assert_eq!(
            parsed.functions, orig.functions,
            "functions go to every shard"
        );
        let server = load(Version::V82, &path);
        let loaded: u64 = server.keyspace().values().sum();
        assert_eq!(loaded, parsed.records.len() as u64, "shard {i} keys loaded");
        for ((db, key), rec) in &parsed.records {
            assert_eq!(*db, 0);
            let slot = key_hash_slot(key);
            assert!(
                shard_ranges.iter().any(|&(a, b)| (a..=b).contains(&slot)),
                "key {key:?} (slot {slot}) in shard {i} {shard_ranges:?}"
            );
            assert_eq!(orig.records.get(&(0, key.clone())), Some(rec));
            assert_eq!(
                server.digest_value(key),
                original.digest_value(key),
                "value of {key:?}"
            );
            assert!(
                seen.insert(key.clone(), i).is_none(),
                "{key:?} in two shards"
            );
        }
    }
    let db0: Vec<&Vec<u8>> = orig
        .records
        .keys()
        .filter(|(db, _)| *db == 0)
        .map(|(_, k)| k)
        .collect();
    assert_eq!(
        seen.len(),
        db0.len(),
        "every db-0 key lands in exactly one shard"
    );
}

#[test]
fn split_partitions_keys_by_slot() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let input = if common::falkordb_or_skip() {
        common::testdata("redis82_all_types_v12.rdb")
    } else {
        common::testdata("redis82_multiple_dbs_v12.rdb")
    };
    check_split(
        &input,
        "3",
        &[vec![(0, 5461)], vec![(5462, 10922)], vec![(10923, 16383)]],
    );

    // a nodes.conf: two primaries with scattered ranges, a replica and the vars line
    let dir = tmp();
    let conf = dir.path().join("nodes.conf");
    std::fs::write(
        &conf,
        "\
aaaa 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-4000 8001-12000 [5->-bbbb]
bbbb 127.0.0.1:30002@40002 master - 0 1700000000000 2 connected 4001-8000 12001-16383
cccc 127.0.0.1:30003@40003 slave aaaa 0 1700000000000 1 connected
vars currentEpoch 2 lastVoteEpoch 0
",
    )
    .unwrap();
    check_split(
        &input,
        conf.to_str().unwrap(),
        &[
            vec![(0, 4000), (8001, 12000)],
            vec![(4001, 8000), (12001, 16383)],
        ],
    );
    // the dump that a cluster node wrote (SLOT_INFO records) splits and loads too
    check_split(
        &common::testdata("redis82_cluster_slot_info_v12.rdb"),
        "2",
        &[vec![(0, 8191)], vec![(8192, 16383)]],
    );
}

#[test]
fn split_refuses_other_dbs_and_uncovered_slots() {
    let dir = tmp();
    let input = common::testdata("redis82_multiple_dbs_v12.rdb");
    let out = rdbkit(&[
        "split",
        input.to_str().unwrap(),
        "--cluster-slots",
        "2",
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("db 1") && err.contains("--db 0"), "{err}");

    let conf = dir.path().join("nodes.conf");
    std::fs::write(&conf, "aaaa 127.0.0.1:1@2 master - 0 0 1 connected 0-100\n").unwrap();
    let out = rdbkit(&[
        "split",
        input.to_str().unwrap(),
        "--cluster-slots",
        conf.to_str().unwrap(),
        "--db",
        "0",
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("served by no primary"));
}

/// `key_hash_slot` agrees with `CLUSTER KEYSLOT` of a cluster-enabled 8.2 on awkward keys.
#[test]
fn key_hash_slot_matches_the_server() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let server = Server::start_opts(
        Version::V82,
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ],
    );
    let mut c = server.conn();
    let mut keys: Vec<Vec<u8>> = [
        &b"foo"[..],
        b"",
        b"{",
        b"}",
        b"{}",
        b"{}x",
        b"x{}y{z}",
        b"{user1000}.following",
        b"a{b}c{d}",
        b"{{a}}",
        b"\xff\x00{\xfe}",
        b"123456789",
    ]
    .iter()
    .map(|k| k.to_vec())
    .collect();
    for i in 0..500u32 {
        keys.push(format!("key:{i}:{}", i * 7919).into_bytes());
    }
    for k in keys {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&k)
            .query(&mut c)
            .unwrap();
        assert_eq!(key_hash_slot(&k), slot, "key {k:?}");
    }
}
