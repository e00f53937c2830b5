//! `rdbkit export` options.

use crate::common;

use common::{
    assert_same_keys, skip_if_missing, snapshot_without, Server, Val, Version, STREAM_SINCE_7,
};
use rdbkit::write::RdbWriter;
use std::collections::BTreeSet;
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

/// `HPEXPIRETIME` of every field of every hash in `db` of `s` (8.2 only), keyed by key.
fn field_ttls(s: &Server, db: u64, hashes: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<i64>)> {
    let mut c = s.conn();
    redis::cmd("SELECT").arg(db).exec(&mut c).unwrap();
    hashes
        .iter()
        .map(|k| {
            let fields: Vec<Vec<u8>> = redis::cmd("HKEYS").arg(k).query(&mut c).unwrap();
            let mut fields = fields;
            fields.sort();
            let ttls: Vec<i64> = redis::cmd("HPEXPIRETIME")
                .arg(k)
                .arg("FIELDS")
                .arg(fields.len())
                .arg(&fields)
                .query(&mut c)
                .unwrap();
            (k.clone(), ttls)
        })
        .collect()
}

/// `export --format resp --target-version` for each installed server (issue 12 item 6): the 8.2
/// all-types dump (its keys but the module values: hash field TTLs, listpack sets, RDB 11 streams
/// with consumer groups, TTLs, three databases) is piped into that server with `redis-cli --pipe`
/// with zero errors, and equals 8.2 loading the dump key by key — type, value, TTL, streams by
/// `XINFO STREAM FULL` as far as the server has its fields, and on 8.2 the field TTLs. On older
/// servers the field TTLs need `--field-ttls drop`, which the refusal names, and what cannot be
/// expressed is reported on stderr with its count.
#[test]
fn resp_export_for_each_target_version_pipes_cleanly_and_equals_the_dump() {
    let targets = [
        (Version::V62, "6.2"),
        (Version::V70, "7.0"),
        (Version::Valkey81, "valkey-8.1"),
        (Version::V82, "8.2"),
    ];
    if targets.iter().any(|(v, _)| skip_if_missing(*v)) || !common::falkordb_or_skip() {
        return;
    }
    let dump = common::testdata("redis82_all_types_v12.rdb");
    let loader = Server::with_falkordb(Some(&dump), &[]);
    let builtin = [
        "--type", "string", "--type", "list", "--type", "set", "--type", "zset", "--type", "hash",
        "--type", "stream",
    ];
    let want_all = snapshot_without(&loader, &[]);
    let modules: BTreeSet<Vec<u8>> = want_all
        .iter()
        .filter(|(_, k)| matches!(k.val, Val::Other(_)))
        .map(|((_, key), _)| key.clone())
        .collect();
    assert!(!modules.is_empty(), "the dump holds module values");
    // the dump's hashes and their field TTLs, as 8.2 loaded them
    let mut hashes: Vec<(u64, Vec<u8>)> = want_all
        .iter()
        .filter(|(_, k)| matches!(k.val, Val::Hash(_)))
        .map(|((db, key), _)| (*db, key.clone()))
        .collect();
    hashes.sort();
    let dbs: BTreeSet<u64> = hashes.iter().map(|(db, _)| *db).collect();
    let ttls_of = |s: &Server| -> Vec<(Vec<u8>, Vec<i64>)> {
        dbs.iter()
            .flat_map(|&db| {
                let keys: Vec<Vec<u8>> = hashes
                    .iter()
                    .filter(|(d, _)| *d == db)
                    .map(|(_, k)| k.clone())
                    .collect();
                field_ttls(s, db, &keys)
            })
            .collect()
    };
    let want_ttls = ttls_of(&loader);
    let fields_with_ttl = want_ttls
        .iter()
        .flat_map(|(_, t)| t)
        .filter(|&&t| t > 0)
        .count();
    assert!(fields_with_ttl > 0, "the dump holds hash field TTLs");

    let export = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rdbkit"))
            .args(["export", "--format", "resp"])
            .args(args)
            .args(builtin)
            .arg(&dump)
            .output()
            .unwrap()
    };
    for (v, release) in targets {
        let old = v != Version::V82;
        if old {
            // the default refuses the hashes with field TTLs, naming the option
            let out = export(&["--target-version", release]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains("--field-ttls drop"),
                "{release}: {err}"
            );
        }
        let mut args = vec!["--target-version", release];
        if old {
            args.extend(["--field-ttls", "drop"]);
        }
        let out = export(&args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{release}: {err}");
        let target = Server::start(v);
        target.pipe(&out.stdout); // panics unless redis-cli reports zero errors
        let drop: &[&[u8]] = if v == Version::V62 {
            &STREAM_SINCE_7
        } else {
            &[]
        };
        assert_same_keys(
            &snapshot_without(&loader, drop),
            &snapshot_without(&target, drop),
            &modules,
            &format!("export --target-version {release}"),
        );
        if old {
            assert!(
                err.contains(&format!(
                    "{fields_with_ttl} hash fields written without their TTL"
                )),
                "{release}: {err}"
            );
        } else {
            assert_eq!(ttls_of(&target), want_ttls, "field TTLs on {release}");
            assert!(!err.contains("not expressible"), "{release}: {err}");
        }
        assert_eq!(
            err.contains("streams without entries-added"),
            v == Version::V62,
            "{release}: {err}"
        );
    }
}
