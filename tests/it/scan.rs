//! The scan source (`rdbkit::source::scan`): a live server read by SCAN + DUMP as an RDB stream.
//! What it writes must load in Redis with the source's dataset (digests, TTLs, streams, modules,
//! functions), work without SYNC/PSYNC, import through the unchanged importer, and keep memory
//! bounded by its channel.

use crate::common;

use common::{assert_same_dataset, skip_if_missing, Server, Version};
use rdbkit::source::scan::{scan_stream, ScanOptions, ScanStats, ScanStream};
use rdbkit::{Decoder, Item};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn start(source: &Server, opts: ScanOptions) -> ScanStream {
    let client = redis::Client::open(source.url()).unwrap();
    scan_stream(client, opts).expect("scan_stream")
}

/// Reads the whole stream into `dir/name`; returns the file and the final counts.
fn scan_to_file(
    source: &Server,
    opts: ScanOptions,
    dir: &Path,
    name: &str,
) -> (PathBuf, ScanStats) {
    let mut stream = start(source, opts);
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    std::io::copy(&mut stream, &mut file).expect("read the scan stream");
    file.flush().unwrap();
    (path, stream.stats())
}

/// A server of version `v` (started with `args`) holding `n` strings from `DEBUG POPULATE n
/// prefix size`, and a connection to it; `None` when the server is not installed.
fn populated(
    v: Version,
    args: &[&str],
    n: u32,
    prefix: &str,
    size: u32,
) -> Option<(Server, redis::Connection)> {
    if skip_if_missing(v) {
        return None;
    }
    let source = Server::start_opts(v, args);
    let mut c = source.conn();
    let (n, size) = (n.to_string(), size.to_string());
    cmd(&mut c, &["DEBUG", "POPULATE", &n, prefix, &size]);
    Some((source, c))
}

fn cmd(c: &mut redis::Connection, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.exec(c)
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
}

/// Every key of every db, counted from INFO keyspace.
fn total_keys(s: &Server) -> u64 {
    s.keyspace().values().sum()
}

/// Expire times (absolute ms) per (db, key) as the dump holds them.
fn dump_expiries(path: &Path) -> BTreeMap<(u64, Vec<u8>), Option<i64>> {
    let data = std::fs::read(path).unwrap();
    let mut out = BTreeMap::new();
    for item in Decoder::new(&data) {
        if let Item::Entry(e) = item.unwrap() {
            out.insert((e.db, e.key.to_vec()), e.expire_ms);
        }
    }
    out
}

/// An 8.2 with every type (the all-types dump: strings, lists, sets, zsets, hashes with field
/// TTLs, streams with groups, FalkorDB graphs and vector sets, two function libraries), 2,000
/// more strings, keys with TTLs and a few keys in db 2: scanned into a file, that file loaded by
/// another 8.2 holds the same dataset (digest, exact expire times, field TTLs, streams, modules,
/// functions).
#[test]
fn scanned_dump_loads_with_the_sources_dataset() {
    if skip_if_missing(Version::V82) || !common::falkordb_or_skip() {
        return;
    }
    let source = Server::with_falkordb(Some(&common::testdata("redis82_all_types_v12.rdb")), &[]);
    let mut c = source.conn();
    cmd(&mut c, &["DEBUG", "POPULATE", "2000", "pop", "32"]);
    for i in 0..50 {
        let k = format!("ttl:{i}");
        cmd(&mut c, &["SET", &k, "v"]);
        cmd(&mut c, &["PEXPIRE", &k, &(3_600_000 + i * 7).to_string()]);
    }
    cmd(&mut c, &["HSET", "fttl", "a", "1", "b", "2", "c", "3"]);
    cmd(
        &mut c,
        &["HPEXPIRE", "fttl", "5000000", "FIELDS", "2", "a", "b"],
    );
    cmd(&mut c, &["XADD", "st", "1-1", "f", "v"]);
    cmd(&mut c, &["XADD", "st", "2-1", "f", "w"]);
    cmd(&mut c, &["XGROUP", "CREATE", "st", "g", "0"]);
    cmd(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "1",
            "STREAMS",
            "st",
            ">",
        ],
    );
    cmd(&mut c, &["SELECT", "2"]);
    cmd(&mut c, &["RPUSH", "l2", "a", "b", "c"]);
    cmd(&mut c, &["ZADD", "z2", "1.5", "a", "2", "b"]);
    cmd(&mut c, &["SADD", "s2", "1", "2", "x"]);
    cmd(&mut c, &["SET", "t2", "v", "PX", "7200000"]);
    let keys = total_keys(&source);
    assert!(
        source.keyspace().contains_key(&2),
        "{:?}",
        source.keyspace()
    );

    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = scan_to_file(&source, ScanOptions::default(), dir.path(), "scan.rdb");
    assert_eq!(stats.keys, keys, "{stats:?}");
    assert_eq!((stats.vanished, stats.duplicates), (0, 0), "{stats:?}");
    let head = std::fs::read(&path).unwrap();
    assert_eq!(&head[..9], b"REDIS0012", "the payloads' RDB version");
    assert_eq!(stats.bytes, head.len() as u64);

    let loaded = Server::with_falkordb(Some(&path), &[]);
    assert_eq!(total_keys(&loaded), keys);
    // digests, PEXPIRETIME exactly, HPEXPIRETIME, XINFO STREAM FULL, graphs, functions
    assert_same_dataset(&source, &loaded);
}

/// A source whose SYNC and PSYNC are renamed away (as managed services refuse them):
/// `rdbkit import redis://…` in the default mode (sync) says so and reads it by scan instead,
/// through the unchanged importer, into an equal target; `rdbkit dump` too, into a file that
/// loads equal.
#[test]
fn source_without_sync_is_imported_by_scan() {
    let renamed = [
        "--rename-command",
        "SYNC",
        "",
        "--rename-command",
        "PSYNC",
        "",
    ];
    let Some((source, mut c)) = populated(Version::V82, &renamed, 3000, "k", 100) else {
        return;
    };
    let refused = redis::cmd("PSYNC").arg("?").arg("-1").exec(&mut c);
    assert!(refused.is_err(), "PSYNC must be refused: {refused:?}");
    cmd(&mut c, &["HSET", "h", "f", "1", "g", "2"]);
    cmd(&mut c, &["HPEXPIRE", "h", "9000000", "FIELDS", "1", "f"]);
    cmd(&mut c, &["SET", "t", "v", "PX", "8000000"]);
    cmd(&mut c, &["SELECT", "3"]);
    cmd(&mut c, &["SADD", "s", "a", "b"]);
    cmd(
        &mut c,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=scanlib\nredis.register_function('f', function() return 1 end)",
        ],
    );

    let target = Server::start(Version::V82);
    let out = common::rdbkit(&[
        "import",
        &source.url(),
        "--target",
        &target.url(),
        "--quiet",
    ]);
    let t = common::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("refuses to serve a replica") && t.contains("reading it by SCAN + DUMP"),
        "{t}"
    );
    assert!(t.contains("3003 keys read by scan"), "{t}");
    assert_same_dataset(&source, &target);

    // `rdbkit dump` of it falls back the same way; the file loads with the source's dataset
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nosync.rdb");
    let out = common::rdbkit(&["dump", &source.url(), "-o", file.to_str().unwrap()]);
    let t = common::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("reading it by SCAN + DUMP") && t.contains("CRC64 checked"),
        "{t}"
    );
    assert_same_dataset(&source, &Server::start_with_dump(Version::V82, &file, &[]));

    // --follow needs the replication stream: refused, nothing written
    let other = Server::start(Version::V82);
    let url = other.url();
    let out = common::rdbkit(&["import", &source.url(), "--target", &url, "--follow"]);
    let t = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("--follow needs its replication stream"), "{t}");
    assert_eq!(total_keys(&other), 0);
}

/// `--source-mode scan` on a source that would serve a replica: the import reads it by scan,
/// with the filters and `--db-map` of any import; with `--follow` it is a usage error.
#[test]
fn source_mode_scan_takes_filters_and_refuses_follow() {
    let Some((source, mut c)) = populated(Version::V82, &[], 100, "zero", 8) else {
        return;
    };
    cmd(&mut c, &["SELECT", "3"]);
    cmd(&mut c, &["DEBUG", "POPULATE", "50", "three", "8"]);
    let target = Server::start(Version::V82);
    let (src, dst) = (source.url(), target.url());
    let scan = ["--source-mode", "scan"];
    let out = common::rdbkit(
        &[
            &["import", &src, "--target", &dst][..],
            &scan,
            &["--follow"],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
    assert!(common::text(&out).contains("--source-mode scan cannot --follow"));
    let out = common::rdbkit(
        &[
            &[
                "import", &src, "--target", &dst, "--db", "3", "--db-map", "3:1",
            ][..],
            &scan,
        ]
        .concat(),
    );
    let t = common::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("not a point-in-time snapshot") && t.contains("50 keys read by scan"),
        "{t}"
    );
    assert_eq!(target.keyspace(), BTreeMap::from([(1, 50)]));
}

/// Redis 6.2 has no PEXPIRETIME: expire times are PTTL plus the local clock. Every key with a
/// TTL keeps one, and each is the source's own within the time the scan took.
#[test]
fn ttls_from_pttl_before_redis_7() {
    let Some((source, mut c)) = populated(Version::V62, &[], 500, "plain", 10) else {
        return;
    };
    for i in 0..500 {
        let k = format!("ttl:{i}");
        cmd(
            &mut c,
            &[
                "SET",
                &k,
                &i.to_string(),
                "PX",
                &(1_000_000 + i * 13).to_string(),
            ],
        );
    }
    cmd(&mut c, &["SELECT", "1"]);
    cmd(&mut c, &["ZADD", "z", "1", "a", "2.5", "b"]);
    cmd(&mut c, &["PEXPIRE", "z", "2000000"]);

    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let (path, stats) = scan_to_file(&source, ScanOptions::default(), dir.path(), "scan62.rdb");
    let took = t0.elapsed().as_millis() as i64 + 1;
    assert_eq!(&std::fs::read(&path).unwrap()[..9], b"REDIS0009");
    assert_eq!(stats.keys, 1001, "{stats:?}");

    let loaded = Server::start_with_dump(Version::V62, &path, &[]);
    assert_eq!(loaded.digest(), source.digest(), "values, key names, dbs");
    // the source's expire times now, each known within this pipeline's round trip
    let written = dump_expiries(&path);
    let mut with_ttl = 0;
    for ((db, key), exp) in &written {
        redis::cmd("SELECT").arg(*db).exec(&mut c).unwrap();
        let before = now_ms();
        let pttl: i64 = redis::cmd("PTTL").arg(key).query(&mut c).unwrap();
        let after = now_ms();
        let k = String::from_utf8_lossy(key);
        match exp {
            None => assert_eq!(pttl, -1, "db {db} {k}: no TTL in the dump"),
            Some(e) => {
                with_ttl += 1;
                assert!(pttl > 0, "db {db} {k}: TTL in the dump, none on the source");
                let (lo, hi) = (before + pttl - took, after + pttl + took);
                assert!(
                    (lo..=hi).contains(e),
                    "db {db} {k}: written {e}, source {}..{} ±{took}",
                    before + pttl,
                    after + pttl
                );
            }
        }
    }
    assert_eq!(with_ttl, 501);
}

/// A Valkey 8.1 source: its payloads (RDB 11) travel as they are, under a `REDIS0011` header with
/// `valkey-ver`, and the file loads in Valkey with the source's dataset.
#[test]
fn valkey_source_is_written_as_valkey_wrote_it() {
    let Some((source, mut c)) = populated(Version::Valkey81, &[], 1000, "v", 16) else {
        return;
    };
    cmd(&mut c, &["HSET", "h", "a", "1"]);
    cmd(&mut c, &["XADD", "st", "1-1", "f", "v"]);
    cmd(&mut c, &["XGROUP", "CREATE", "st", "g", "0"]);
    cmd(&mut c, &["SET", "t", "v", "PX", "5000000"]);
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = scan_to_file(&source, ScanOptions::default(), dir.path(), "valkey.rdb");
    assert_eq!(stats.keys, 1003);
    let data = std::fs::read(&path).unwrap();
    assert_eq!(&data[..9], b"REDIS0011");
    let producer = Decoder::new(&data).find_map(|i| match i.unwrap() {
        Item::Aux { key, value } if &*key == b"valkey-ver" => Some(value.into_owned()),
        _ => None,
    });
    assert_eq!(producer.as_deref(), Some(&b"8.1.8"[..]), "{:?}", producer);
    assert_same_dataset(
        &source,
        &Server::start_with_dump(Version::Valkey81, &path, &[]),
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// 200,000 keys (about 7 MB of dump: the populated values compress) through a channel of 1 MiB
/// (16 chunks of 64 KiB): a reader that pauses makes the producer wait on the full channel again
/// and again; what waits never exceeds the bound, and the result is still the source's dataset.
#[test]
fn memory_is_bounded_by_the_channel() {
    let Some((source, _c)) = populated(Version::V82, &[], 200_000, "big", 64) else {
        return;
    };
    let opts = ScanOptions {
        chunk_bytes: 64 << 10,
        channel_bytes: 1 << 20,
        ..ScanOptions::default()
    };
    let mut stream = start(&source, opts);
    assert_eq!(stream.channel_capacity_bytes(), 1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.rdb");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let (mut since_pause, mut pauses, mut stalls) = (0usize, 0, 0);
    loop {
        // every 1.25 MiB (more than the channel holds), stop reading until the producer has found
        // the channel full once more since the last pause, or has produced every key
        if since_pause >= 5 << 18 {
            since_pause = 0;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let now = stream.stats();
                if now.stalls > stalls {
                    stalls = now.stalls;
                    pauses += 1;
                    break;
                }
                if now.keys == 200_000 {
                    break;
                }
                assert!(Instant::now() < deadline, "the producer is stuck: {now:?}");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).unwrap();
        since_pause += n;
    }
    file.flush().unwrap();
    let stats = stream.stats();
    assert!(pauses >= 3, "{pauses} pauses, {stats:?}");
    assert!(stats.stalls >= 3, "{stats:?}");
    // the chunks in the channel plus the one being handed over
    assert!(
        stats.peak_queued_bytes <= (1 << 20) + (64 << 10),
        "{stats:?}"
    );
    assert!(
        stats.bytes > 4 * (1 << 20),
        "several times the channel: {stats:?}"
    );
    assert_eq!(stats.keys, 200_000);
    let loaded = Server::start_with_dump(Version::V82, &path, &[]);
    assert_eq!(loaded.digest(), source.digest());
}
