//! Proof for the decoder: every dump that Redis 8.2 loads, exported by `rdbkit export --format resp`
//! and piped into an empty 8.2 with `redis-cli --pipe`, gives the same dataset as 8.2 loading the
//! dump itself (`common::same_dataset`: digest, key and field TTLs, stream groups, module values);
//! `rdbkit info` key counts equal `INFO keyspace`; the expire times rdbkit decodes are the loaded ones.

mod common;

use common::{Server, Version};
use rdbkit::{Decoder, Item};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn rdbkit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(args)
        .output()
        .expect("run rdbkit")
}

/// `rdbkit info --json` → db → keys a primary keeps on load.
fn loadable_counts(dump: &Path) -> Result<BTreeMap<u64, u64>, String> {
    let out = rdbkit(&["info", "--json", dump.to_str().unwrap()]);
    if !out.status.success() {
        return Err(format!(
            "info failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(v["dbs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(db, s)| (db.parse().unwrap(), s["loadable"].as_u64().unwrap()))
        .filter(|(_, n)| *n > 0)
        .collect())
}

fn reset(server: &Server) {
    let mut c = server.conn();
    redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
    redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query::<()>(&mut c)
        .unwrap();
}

fn pexpiretime(server: &Server, db: u64, key: &[u8]) -> i64 {
    let mut c = server.conn();
    redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
    redis::cmd("PEXPIRETIME").arg(key).query(&mut c).unwrap()
}

/// Round-trips one dump; returns a description of what differs.
///
/// The loader is a fresh primary started on the dump: `DEBUG RELOAD` would be faster but keeps hash
/// fields whose TTL has passed, which a startup load drops (corpus: redis-replicator/dump-ttlhash.rdb).
fn round_trip(target: &Server, dump: &Path) -> Result<(), String> {
    let counts = loadable_counts(dump)?;
    let loader = &Server::with_falkordb(Some(dump), &[]);
    let keyspace = loader.keyspace();
    if keyspace != counts {
        return Err(format!(
            "info says {counts:?}, INFO keyspace says {keyspace:?}"
        ));
    }
    let out = rdbkit(&["export", "--format", "resp", dump.to_str().unwrap()]);
    if !out.status.success() {
        return Err(format!(
            "export failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    reset(target);
    target.pipe(&out.stdout);
    common::same_dataset(loader, target)?;
    // and the loader's expire times are the dump's, as rdbkit decodes them
    let data = std::fs::read(dump).unwrap();
    let now = common_now_ms();
    for item in Decoder::new(&data) {
        if let Item::Entry(e) = item.map_err(|e| e.to_string())? {
            if let Some(ms) = e.expire_ms.filter(|&ms| ms > now + 60_000) {
                let loaded = pexpiretime(loader, e.db, &e.key);
                if loaded != ms {
                    return Err(format!(
                        "TTL of {:?}: dump {ms} as decoded, {loaded} as loaded by 8.2",
                        e.key
                    ));
                }
            }
        }
    }
    Ok(())
}

fn common_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn run_all(dumps: &[PathBuf]) {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let target = Server::with_falkordb(None, &[]);
    let mut failures = Vec::new();
    for d in dumps {
        if let Err(e) = round_trip(&target, d) {
            failures.push(format!("{}: {e}", d.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} dumps differ:\n{}",
        failures.len(),
        dumps.len(),
        failures.join("\n")
    );
    eprintln!("{} dumps round-tripped to equal datasets", dumps.len());
}

#[test]
fn testdata_dumps_round_trip_to_equal_datasets() {
    let mut dumps: Vec<PathBuf> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rdb"))
            .collect();
    dumps.sort();
    assert!(dumps.len() >= 5, "testdata/ holds too few dumps");
    run_all(&dumps);
}

/// Corpus rows (MANIFEST.tsv) that Redis 8.2 loads with what is installed here.
fn corpus_loadable_by_82() -> Option<Vec<PathBuf>> {
    let root = rdbkit::testing::corpus_dir()?;
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next()?.split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (path, loads, dup) = (col("path"), col("loads_in_8.2"), col("dup_of"));
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let l = f[loads];
        if !f.get(dup).is_none_or(|d| d.is_empty()) {
            continue; // byte-identical copy of an earlier row
        }
        if l == "yes" || l == "yes(with falkordb.so)" {
            out.push(root.join(f[path]));
        } else if let Some(how) = l.strip_prefix("yes") {
            eprintln!("skipping {}: 8.2 loads it only {how}", f[path]);
        }
    }
    Some(out)
}

#[test]
fn corpus_dumps_round_trip_to_equal_datasets() {
    let Some(dumps) = corpus_loadable_by_82() else {
        return;
    };
    assert!(dumps.len() > 100);
    run_all(&dumps);
}
