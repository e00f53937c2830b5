//! Proof for the decoder: every dump that Redis 8.2 loads, exported by `rdbkit export --format resp`
//! and piped into an empty 8.2 with `redis-cli --pipe`, gives the same dataset as 8.2 loading the
//! dump itself (`common::same_dataset`: digest, key and field TTLs, stream groups, module values);
//! `rdbkit info` key counts equal `INFO keyspace`; the expire times rdbkit decodes are the loaded ones.

use crate::common;

use crate::common::rdbkit;
use common::{Server, Version};
use rdbkit::{Decoder, Item};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    corpus_rows_loadable_by_82(|_| true)
}

/// [`corpus_loadable_by_82`], only the rows whose `type_ids` column passes `keep`.
fn corpus_rows_loadable_by_82(keep: impl Fn(&str) -> bool) -> Option<Vec<PathBuf>> {
    let root = rdbkit::testing::corpus_dir()?;
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next()?.split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (path, loads, dup, types) = (
        col("path"),
        col("loads_in_8.2"),
        col("dup_of"),
        col("type_ids"),
    );
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let l = f[loads];
        if !f.get(dup).is_none_or(|d| d.is_empty()) {
            continue; // byte-identical copy of an earlier row
        }
        if !keep(f[types]) {
            continue;
        }
        // an AOF (an RDB preamble, then commands) is read with its commands, which a server
        // loading it as a dump ignores: tests/it/aof.rs compares it with a server loading an AOF
        let aof = matches!(
            rdbkit::source::aof::detect(&root.join(f[path])),
            Ok(Some(_))
        );
        if (l == "yes" || l == "yes(with falkordb.so)") && !aof {
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

/// A dump written by Redis `v` with the streams commands find hard to rebuild: pending entries
/// whose entries were deleted (`XDEL`, inside the stream) or trimmed (`XTRIM`, before its first
/// entry, or all of them), a group created mid-stream without reads (entries-read unknown on 7.0+),
/// a consumer without pending entries, and an empty stream made by `XGROUP CREATE … MKSTREAM`.
fn hard_streams_dump(v: Version, dir: &Path) -> PathBuf {
    let s = Server::start(v);
    let mut c = s.conn();
    let mut run = |args: &[&str]| {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.exec(&mut c)
            .unwrap_or_else(|e| panic!("{args:?} on {v:?}: {e}"));
    };
    for i in 1..=12 {
        run(&["XADD", "s", &format!("{i}-1"), "f", &format!("v{i}")]);
    }
    run(&["XGROUP", "CREATE", "s", "g1", "0"]);
    run(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "alice",
        "COUNT",
        "8",
        "STREAMS",
        "s",
        ">",
    ]);
    run(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "bob",
        "COUNT",
        "2",
        "STREAMS",
        "s",
        ">",
    ]);
    run(&["XDEL", "s", "4-1", "6-1"]);
    run(&["XTRIM", "s", "MINID", "3-0"]);
    run(&["XGROUP", "CREATE", "s", "g3", "7-1"]);
    run(&["XGROUP", "CREATECONSUMER", "s", "g3", "erin"]);
    for (key, trim) in [("t", "0"), ("h", "2")] {
        for i in 1..=3 {
            run(&["XADD", key, &format!("{i}-1"), "f", "v"]);
        }
        run(&["XGROUP", "CREATE", key, "g", "0"]);
        run(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", key, ">"]);
        run(&["XTRIM", key, "MAXLEN", trim]);
    }
    run(&["XGROUP", "CREATE", "e", "g", "$", "MKSTREAM"]);
    s.save_to(dir.join(format!("hard-streams-{v:?}.rdb")))
}

/// Stream consumer groups written as commands (issue 12 item 5): every corpus dump with streams
/// that 8.2 loads, and dumps with hard streams freshly written by 6.2, 7.0 and 8.2, through
/// `export --format resp | redis-cli --pipe` and through `import --mode commands`, equal 8.2
/// loading the dump (`same_dataset`: `XINFO STREAM FULL` in full but consumers' seen/active
/// times — entries, length, last/first/max-deleted IDs, entries-added, and per group entries-read
/// nil included, lag, the pending entries with consumer, delivery time and count).
#[test]
fn streams_round_trip_through_export_and_import_commands() {
    if [Version::V62, Version::V70, Version::V82]
        .into_iter()
        .any(common::skip_if_missing)
    {
        return;
    }
    let Some(mut dumps) = corpus_rows_loadable_by_82(|types| types.contains("stream")) else {
        return;
    };
    assert!(dumps.len() >= 15, "corpus dumps with streams: {dumps:?}");
    let dir = tempfile::tempdir().unwrap();
    for v in [Version::V62, Version::V70, Version::V82] {
        dumps.push(hard_streams_dump(v, dir.path()));
    }
    let target = Server::with_falkordb(None, &[]);
    let mut failures = Vec::new();
    for d in &dumps {
        if let Err(e) = round_trip(&target, d) {
            failures.push(format!("{} (export): {e}", d.display()));
        }
        let loader = Server::with_falkordb(Some(d), &[]);
        reset(&target);
        let out = rdbkit(&[
            "import",
            d.to_str().unwrap(),
            "--target",
            &target.url(),
            "--mode",
            "commands",
            "--quiet",
        ]);
        if !out.status.success() {
            failures.push(format!(
                "{} (import): {}",
                d.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        } else if let Err(e) = common::same_dataset(&loader, &target) {
            failures.push(format!("{} (import --mode commands): {e}", d.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
