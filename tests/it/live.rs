//! Live sources: `rdbkit dump` of a running server, `rdbkit import redis://… --follow` under a
//! steady writer, stopped by a signal, the target then equal to the source.

use crate::common::process::{output, Running};
use crate::common::{self, Server, Version};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Every type, TTLs (key and, on 8.2, field), a stream with a consumer group and pending
/// entries, keys in db 0, 1 and 3, and `n` plain strings.
fn fill(s: &Server, n: u64) {
    let mut c = s.conn();
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(n)
        .arg("pop")
        .arg(32)
        .query::<()>(&mut c)
        .unwrap();
    let mut p = redis::pipe();
    for i in 0..200 {
        p.cmd("RPUSH").arg(format!("list:{i}")).arg(&[1, 2, 3]);
        p.cmd("SADD").arg(format!("set:{i}")).arg(&["a", "b", "c"]);
        p.cmd("ZADD")
            .arg(format!("zset:{i}"))
            .arg(1.5)
            .arg("m")
            .arg(2)
            .arg("n");
        p.cmd("HSET")
            .arg(format!("hash:{i}"))
            .arg("f")
            .arg(i)
            .arg("g")
            .arg("x");
        p.cmd("PEXPIREAT")
            .arg(format!("list:{i}"))
            .arg(4_102_444_800_000u64);
    }
    p.cmd("XADD").arg("stream").arg("1-1").arg("f").arg("v");
    p.cmd("XADD").arg("stream").arg("2-1").arg("f").arg("w");
    p.cmd("XGROUP")
        .arg("CREATE")
        .arg("stream")
        .arg("g")
        .arg("0");
    p.cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg("stream")
        .arg(">");
    p.query::<()>(&mut c).unwrap();
    if s.version == Version::V82 {
        redis::cmd("HEXPIRE")
            .arg("hash:1")
            .arg(100_000)
            .arg("FIELDS")
            .arg(1)
            .arg("f")
            .query::<()>(&mut c)
            .unwrap();
    }
    for db in [1, 3] {
        redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
        redis::cmd("SET")
            .arg(format!("in-db-{db}"))
            .arg("v")
            .query::<()>(&mut c)
            .unwrap();
    }
}

/// A test writer: mixed writes at a steady rate until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    handle: thread::JoinHandle<()>,
}

impl Writer {
    /// Every type, `EXPIRE`/`PERSIST`, `DEL`, `MULTI`/`EXEC`, `EVAL`, `FCALL` (7.0+), field TTLs
    /// (8.2), and for a standalone target writes in db 1 and 3 with a `FLUSHDB` of db 3 now and
    /// then. `cluster`: keys of one command or block share a hash tag, and db 0 only.
    fn start(s: &Server, cluster: bool) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let (stop2, ops2, v) = (stop.clone(), ops.clone(), s.version);
        let mut c = s.conn();
        if v != Version::V62 {
            redis::cmd("FUNCTION")
                .arg("LOAD")
                .arg("REPLACE")
                .arg("#!lua name=rk\nredis.register_function('bump', function(keys, args) return redis.call('INCRBY', keys[1], args[1]) end)")
                .query::<()>(&mut c)
                .unwrap();
        }
        let handle = thread::spawn(move || {
            let mut i: u64 = 0;
            while !stop2.load(Relaxed) {
                let mut p = redis::pipe();
                for _ in 0..20 {
                    i += 1;
                    let k = |name: &str, m: u64| format!("w:{name}:{}", i % m);
                    p.cmd("SET").arg(k("s", 500)).arg(i).arg("EX").arg(10_000);
                    p.cmd("INCR").arg(k("ctr", 50));
                    p.cmd("LPUSH").arg(k("l", 100)).arg(i);
                    if i % 7 == 0 {
                        p.cmd("RPOP").arg(k("l", 100));
                    }
                    p.cmd("SADD").arg(k("set", 100)).arg(i % 37);
                    if i % 5 == 0 {
                        p.cmd("SREM").arg(k("set", 100)).arg(i % 11);
                    }
                    p.cmd("ZADD")
                        .arg(k("z", 100))
                        .arg(i as f64 * 1.5)
                        .arg(i % 30);
                    p.cmd("ZINCRBY").arg(k("z", 100)).arg(0.25).arg(i % 30);
                    p.cmd("HSET").arg(k("h", 100)).arg(i % 10).arg(i);
                    if i % 9 == 0 {
                        p.cmd("HDEL").arg(k("h", 100)).arg(i % 10);
                    }
                    p.cmd("XADD").arg("w:x").arg("*").arg("f").arg(i);
                    if i % 13 == 0 {
                        p.cmd("XREADGROUP")
                            .arg("GROUP")
                            .arg("g")
                            .arg("c2")
                            .arg("COUNT")
                            .arg(2)
                            .arg("STREAMS")
                            .arg("stream")
                            .arg(">");
                    }
                    p.cmd("EXPIRE").arg(k("h", 100)).arg(20_000);
                    if i % 4 == 0 {
                        p.cmd("PERSIST").arg(k("h", 100));
                    }
                    if i % 17 == 0 {
                        p.cmd("DEL").arg(k("l", 100));
                    }
                    if i % 3 == 0 {
                        let t = format!("{{t{}}}", i % 40);
                        p.cmd("MULTI")
                            .cmd("SET")
                            .arg(format!("{t}a"))
                            .arg(i)
                            .cmd("INCR")
                            .arg(format!("{t}b"))
                            .cmd("EXEC");
                    }
                    if i % 11 == 0 {
                        let t = format!("{{e{}}}", i % 20);
                        p.cmd("EVAL")
                            .arg("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])")
                            .arg(2)
                            .arg(format!("{t}k1"))
                            .arg(format!("{t}k2"))
                            .arg(i);
                    }
                    if v != Version::V62 && i % 6 == 0 {
                        p.cmd("FCALL").arg("bump").arg(1).arg(k("f", 20)).arg(3);
                    }
                    if v == Version::V82 && i % 8 == 0 {
                        p.cmd("HSET")
                            .arg(k("fh", 20))
                            .arg("a")
                            .arg(1)
                            .arg("b")
                            .arg(2);
                        p.cmd("HEXPIRE")
                            .arg(k("fh", 20))
                            .arg(50_000)
                            .arg("FIELDS")
                            .arg(1)
                            .arg("a");
                    }
                    if !cluster && i % 10 == 0 {
                        p.cmd("SELECT").arg(1);
                        p.cmd("SET").arg(k("d1", 50)).arg(i);
                        p.cmd("SELECT").arg(3);
                        p.cmd("SET").arg(k("d3", 50)).arg(i);
                        if i % 400 == 0 {
                            p.cmd("FLUSHDB");
                        }
                        p.cmd("SELECT").arg(0);
                    }
                }
                p.query::<()>(&mut c).unwrap();
                ops2.fetch_add(20, Relaxed);
                thread::sleep(Duration::from_millis(3));
            }
        });
        Writer { stop, ops, handle }
    }

    /// Stops and returns the number of write rounds done.
    fn stop(self) -> u64 {
        self.stop.store(true, Relaxed);
        self.handle.join().unwrap();
        self.ops.load(Relaxed)
    }
}

/// A Redis 8.2 source for a follow: `fill`ed, diskless without delay, with a backlog large enough
/// for what the test writer writes while rdbkit is away (as it must be in production: README,
/// "Re-runs and resume").
fn follow_source() -> Server {
    let src = Server::start_opts(
        Version::V82,
        &[
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            "--repl-backlog-size",
            "64mb",
        ],
    );
    fill(&src, 5_000);
    src
}

/// `rdbkit import SRC --target DST --follow --checkpoint CP --quiet EXTRA…`, its output in a new
/// directory `step` of `tmp`.
fn follow_resumable(
    (src, dst, cp): (&str, &str, &Path),
    extra: &[&str],
    tmp: &Path,
    step: &str,
) -> Running {
    let dir = tmp.join(step);
    std::fs::create_dir(&dir).unwrap();
    let mut a = vec![
        "import",
        src,
        "--target",
        dst,
        "--follow",
        "--checkpoint",
        cp.to_str().unwrap(),
        "--quiet",
    ];
    a.extend_from_slice(extra);
    Running::start(&a, &dir)
}

/// Stops a follow with SIGTERM; it must exit 0.
fn stop_follow(mut r: Running) {
    r.signal("-TERM");
    let st = r.wait_exit(Duration::from_secs(60));
    assert!(st.success(), "{}", r.output());
}

/// `rdbkit dump` of a disk-based and a diskless transfer of each Redis version (and `.gz`)
/// loads into a server of that version with the source's dataset.
#[test]
fn dump_of_a_live_server_loads_with_the_sources_dataset() {
    for v in Version::ALL {
        if common::skip_if_missing(v) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    for v in Version::ALL {
        for diskless in ["no", "yes"] {
            let src = Server::start_opts(
                v,
                &[
                    "--repl-diskless-sync",
                    diskless,
                    "--repl-diskless-sync-delay",
                    "0",
                ],
            );
            fill(&src, 20_000);
            let gz = diskless == "yes";
            let file = tmp.path().join(format!(
                "{v:?}-{diskless}.rdb{}",
                if gz { ".gz" } else { "" }
            ));
            let o = common::rdbkit(&["dump", &src.url(), "-o", file.to_str().unwrap()]);
            let t = common::text(&o);
            assert!(o.status.success(), "{v:?} diskless={diskless}: {t}");
            assert!(t.contains("CRC64 checked"), "{t}");
            let plain = if gz {
                let mut d = flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap());
                let mut bytes = Vec::new();
                d.read_to_end(&mut bytes).unwrap();
                let p = file.with_extension("");
                std::fs::write(&p, bytes).unwrap();
                p
            } else {
                file
            };
            let loaded = Server::start_with_dump(v, &plain, &[]);
            common::assert_same_dataset(&src, &loaded);
        }
    }
}

/// A source that is being written to during the snapshot (stretched by `rdb-key-save-delay`)
/// and during `--follow`; SIGTERM with `--pause-source-writes`; the target then equals the source.
fn follow_case(v: Version, diskless: bool, cluster: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let src = Server::start_opts(
        v,
        &[
            "--repl-diskless-sync",
            if diskless { "yes" } else { "no" },
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    fill(&src, 20_000);
    if cluster {
        // the cluster has db 0 only
        for db in [1, 3] {
            let mut c = src.conn();
            redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
            redis::cmd("FLUSHDB").query::<()>(&mut c).unwrap();
        }
    }
    // ~2 s of snapshot (100 µs per key) during which the writer runs
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("rdb-key-save-delay")
        .arg(100)
        .query::<()>(&mut src.conn())
        .unwrap();
    let nodes = if cluster {
        common::cluster()
    } else {
        Vec::new()
    };
    let single = if cluster {
        None
    } else {
        Some(Server::start(Version::V82))
    };
    let target_url = match &single {
        Some(t) => t.url(),
        None => nodes[0].url(),
    };
    let writer = Writer::start(&src, cluster);
    let mut child = Running::start(
        &[
            "import",
            &src.url(),
            "--target",
            &target_url,
            "--follow",
            "--pause-source-writes",
            "20s",
            "--quiet",
        ],
        tmp.path(),
    );
    child.wait_for("following", Duration::from_secs(120));
    thread::sleep(Duration::from_millis(1500));
    let rounds = writer.stop();
    assert!(rounds > 100, "the writer barely ran: {rounds}");
    child.signal("-TERM");
    let st = child.wait_exit(Duration::from_secs(90));
    let out = output(tmp.path());
    assert!(st.success(), "{v:?}: {out}");
    assert!(out.contains("cutover: the target had every write"), "{out}");
    assert!(out.contains("switch the clients"), "{out}");
    // the pause is still on: nothing can change the source now
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query::<()>(&mut src.conn())
        .ok();
    let what = format!("{v:?} diskless={diskless} cluster={cluster}");
    match (&single, v) {
        (Some(t), Version::V82) => common::assert_same_dataset(&src, t),
        (Some(t), _) => {
            let fields: &[&[u8]] = if v == Version::V62 {
                &common::STREAM_SINCE_7
            } else {
                &[]
            };
            let want = common::snapshot_without(&src, fields);
            let got = common::snapshot_without(t, fields);
            common::assert_same_keys(&want, &got, &Default::default(), &what);
        }
        (None, _) => {
            let want = common::snapshot(&src);
            let mut got = common::Snapshot::new();
            for n in &nodes {
                got.extend(common::snapshot(n));
            }
            common::assert_same_keys(&want, &got, &Default::default(), &what);
        }
    }
}

#[test]
fn follow_from_redis_8_2_diskless_equals_the_source() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    follow_case(Version::V82, true, false);
}

#[test]
fn follow_from_redis_7_0_disk_based_equals_the_source() {
    if common::skip_if_missing(Version::V70) || common::skip_if_missing(Version::V82) {
        return;
    }
    follow_case(Version::V70, false, false);
}

#[test]
fn follow_from_redis_6_2_with_relative_expires_equals_the_source() {
    if common::skip_if_missing(Version::V62) || common::skip_if_missing(Version::V82) {
        return;
    }
    follow_case(Version::V62, true, false);
}

#[test]
fn follow_into_a_cluster_equals_the_source() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    follow_case(Version::V82, false, true);
}

/// rdbkit killed mid-follow (SIGKILL) and rerun with the same `--checkpoint` continues by partial
/// resync, exactly after what the target holds (counters are not incremented twice). Then the
/// source's backlog moves past the checkpoint while rdbkit is down: the rerun refuses to take a
/// new snapshot over the target unless told, and with `--flush-target` ends equal again.
#[test]
fn follow_killed_and_rerun_with_its_checkpoint_continues_exactly() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = follow_source();
    let dst = Server::start(Version::V82);
    let cp = tmp.path().join("follow.json");
    let (src_url, dst_url) = (src.url(), dst.url());
    let urls = (src_url.as_str(), dst_url.as_str(), cp.as_path());
    let writer = Writer::start(&src, false);
    let mut first = follow_resumable(urls, &[], tmp.path(), "1");
    first.wait_for("following", Duration::from_secs(60));
    thread::sleep(Duration::from_millis(1000));
    first.signal("-KILL");
    first.wait_exit(Duration::from_secs(10));
    thread::sleep(Duration::from_millis(300));
    let mut second = follow_resumable(urls, &[], tmp.path(), "2");
    second.wait_for("following", Duration::from_secs(60));
    assert!(
        second.output().contains("partial resync"),
        "{}",
        second.output()
    );
    thread::sleep(Duration::from_millis(700));
    writer.stop();
    stop_follow(second);
    common::assert_same_dataset(&src, &dst);

    // the backlog moves on while rdbkit is down
    let mut c = src.conn();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-backlog-size")
        .arg("16384")
        .query::<()>(&mut c)
        .unwrap();
    for i in 0..2000 {
        redis::cmd("SET")
            .arg(format!("after:{i}"))
            .arg("x".repeat(64))
            .query::<()>(&mut c)
            .unwrap();
    }
    redis::cmd("DEL").arg("hash:7").query::<()>(&mut c).unwrap();
    let mut third = follow_resumable(urls, &[], tmp.path(), "3");
    let st = third.wait_exit(Duration::from_secs(60));
    assert!(!st.success(), "{}", third.output());
    assert!(
        third
            .output()
            .contains("a new full snapshot is needed; rerun with --replace or --flush-target"),
        "{}",
        third.output()
    );
    let mut fourth = follow_resumable(urls, &["--flush-target"], tmp.path(), "4");
    fourth.wait_for("following", Duration::from_secs(60));
    stop_follow(fourth);
    common::assert_same_dataset(&src, &dst);
}

/// A Sentinel-managed target fails over in the middle of the follow: writes the old primary
/// acknowledged but had not passed to its replica are written again on the new primary, from
/// where its marker says it stands, and nothing is applied twice.
#[test]
fn follow_into_a_sentinel_target_rides_a_failover() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (primary, _replica, sentinels) = crate::ha::sentinel_setup();
    let src = Server::start_opts(Version::V82, &["--repl-diskless-sync-delay", "0"]);
    fill(&src, 5_000);
    let writer = Writer::start(&src, false);
    let addrs: Vec<String> = sentinels.iter().map(|s| s.addr()).collect();
    let prom = tmp.path().join("rdbkit.prom");
    let mut child = Running::start(
        &[
            "import",
            &src.url(),
            "--sentinel",
            &addrs.join(","),
            "--master-name",
            "mymaster",
            "--follow",
            "--quiet",
            "--metrics-file",
            prom.to_str().unwrap(),
        ],
        tmp.path(),
    );
    child.wait_for("following", Duration::from_secs(60));
    thread::sleep(Duration::from_millis(700));
    let _: redis::Value = sentinels[0]
        .query(&["SENTINEL", "FAILOVER", "mymaster"])
        .unwrap();
    let start = Instant::now();
    while sentinels[0].primary_port() == primary.port {
        assert!(start.elapsed() < Duration::from_secs(30), "no failover");
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(1500));
    writer.stop();
    child.signal("-TERM");
    let st = child.wait_exit(Duration::from_secs(90));
    let out = output(tmp.path());
    assert!(st.success(), "{out}");
    let now = common::Node {
        port: sentinels[0].primary_port(),
        version: Version::V82,
    };
    common::assert_same_dataset(&src, now);
    assert!(out.contains("failover ("), "{out}");
    // the follow's failover reaches the metrics: one new primary, at least one new connection
    let m = crate::ops::textfile(&prom);
    assert_eq!(m["rdbkit_failovers_total"], 1.0, "{m:?}");
    assert!(m["rdbkit_reconnects_total"] >= 1.0, "{m:?}");
}

/// A Sentinel source read from its replica (`--from-replica`): the snapshot and the stream come
/// from the replica, the cutover pauses and reads the primary; the target equals the primary.
#[test]
fn follow_from_a_sentinel_sources_replica_equals_the_primary() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (primary, replica, sentinels) = crate::ha::sentinel_setup();
    // no DEBUG POPULATE: it is not replicated, the replica would not have those keys
    fill(&primary, 0);
    let dst = Server::start(Version::V82);
    let writer = Writer::start(&primary, false);
    let addrs: Vec<String> = sentinels.iter().map(|s| s.addr()).collect();
    let url = format!("redis+sentinel://{}/mymaster", addrs.join(","));
    let mut child = Running::start(
        &[
            "import",
            &url,
            "--from-replica",
            "--target",
            &dst.url(),
            "--follow",
            "--pause-source-writes",
            "20s",
            "--quiet",
        ],
        tmp.path(),
    );
    child.wait_for("following", Duration::from_secs(60));
    let out = output(tmp.path());
    assert!(
        out.contains(&format!(
            "receiving from the replica 127.0.0.1:{}",
            replica.port
        )),
        "{out}"
    );
    thread::sleep(Duration::from_millis(1000));
    writer.stop();
    child.signal("-TERM");
    let st = child.wait_exit(Duration::from_secs(60));
    let out = output(tmp.path());
    assert!(st.success(), "{out}");
    assert!(out.contains("cutover: the target had every write"), "{out}");
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query::<()>(&mut primary.conn())
        .ok();
    common::assert_same_dataset(&primary, &dst);
}

/// `rdbkit dump` of a source holding a 1 GiB string (stored uncompressed): rdbkit's memory stays
/// flat (its peak RSS is a small fraction of the value), and the file loads with the source's
/// digest.
#[test]
fn dump_of_a_1_gib_value_keeps_memory_flat() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = Server::start_opts(
        Version::V82,
        &[
            "--rdbcompression",
            "no",
            "--proto-max-bulk-len",
            "2gb",
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    let mut c = src.conn();
    redis::cmd("SETRANGE")
        .arg("big")
        .arg((1u64 << 30) - 1)
        .arg("x")
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("SET")
        .arg("small")
        .arg("v")
        .query::<()>(&mut c)
        .unwrap();
    let file = tmp.path().join("big.rdb");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(["dump", &src.url(), "-o", file.to_str().unwrap(), "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the peak resident size so far, read until the process ends
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let start = Instant::now();
    let st = loop {
        if let Ok(s) = std::fs::read_to_string(&status) {
            if let Some(v) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak_kib = peak_kib.max(v);
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "dump too slow");
        thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(st.success(), "{err}");
    assert!(
        std::fs::metadata(&file).unwrap().len() > 1 << 30,
        "the file holds the whole value"
    );
    eprintln!("rdbkit dump of a 1 GiB value: peak RSS {peak_kib} KiB");
    assert!(peak_kib > 0, "no memory reading");
    assert!(
        peak_kib < 256 * 1024,
        "rdbkit's peak RSS was {peak_kib} KiB for a 1 GiB value"
    );
    let loaded = Server::start_with_dump(Version::V82, &file, &[]);
    assert_eq!(src.digest(), loaded.digest());
}

/// `--key` with `--follow`: the snapshot and the commands keep the matching keys; a command on
/// keys of both sides is cut to the matching ones (`DEL`, `MSET`) or left out and reported
/// (`RENAME`).
#[test]
fn follow_with_a_key_filter_applies_only_the_matching_keys() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = Server::start_opts(Version::V82, &["--repl-diskless-sync-delay", "0"]);
    let mut c = src.conn();
    for k in ["keep:1", "keep:2", "drop:1", "drop:2"] {
        redis::cmd("SET")
            .arg(k)
            .arg("v")
            .query::<()>(&mut c)
            .unwrap();
    }
    let dst = Server::start(Version::V82);
    let mut child = Running::start(
        &[
            "import",
            &src.url(),
            "--target",
            &dst.url(),
            "--follow",
            "--key",
            "keep:*",
            "--quiet",
        ],
        tmp.path(),
    );
    child.wait_for("following", Duration::from_secs(60));
    let mut p = redis::pipe();
    p.cmd("SET").arg("keep:3").arg("x");
    p.cmd("SET").arg("drop:3").arg("x");
    p.cmd("INCR").arg("keep:n");
    p.cmd("DEL").arg("keep:1").arg("drop:1");
    p.cmd("MSET").arg("keep:m").arg("1").arg("drop:m").arg("2");
    p.cmd("RENAME").arg("drop:2").arg("keep:renamed");
    p.query::<()>(&mut c).unwrap();
    thread::sleep(Duration::from_millis(500));
    child.signal("-TERM");
    let st = child.wait_exit(Duration::from_secs(60));
    let out = output(tmp.path());
    assert!(st.success(), "{out}");
    assert!(
        out.contains("2 commands (DEL, UNLINK, TOUCH, MSET) named keys on both sides of --key"),
        "{out}"
    );
    assert!(out.contains("naming keys on both sides of --key (the target may now differ from the source for their keys): 1 RENAME"), "{out}");
    let want: common::Snapshot = common::snapshot(&src)
        .into_iter()
        .filter(|((_, k), _)| k.starts_with(b"keep:") && k.as_slice() != b"keep:renamed")
        .collect();
    common::assert_same_keys(
        &want,
        &common::snapshot(&dst),
        &Default::default(),
        "follow --key keep:*",
    );
    assert_eq!(want.len(), 4, "keep:2, keep:3, keep:n, keep:m");
}

/// `--rename` with `--follow`: the snapshot's keys and every key of the later commands are
/// written under their new names, keys in any argument position (`ZUNIONSTORE`'s sources, `SORT …
/// STORE`'s destination, `MSET`'s every other argument), and keys no rule matches keep theirs:
/// each renamed key on the target holds exactly the value (`DUMP`) and TTL of its source key.
#[test]
fn follow_with_rename_writes_the_commands_keys_under_their_new_names() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = Server::start_opts(Version::V82, &["--repl-diskless-sync-delay", "0"]);
    let mut c = src.conn();
    let mut p = redis::pipe();
    p.cmd("SET").arg("old:a").arg("1");
    p.cmd("ZADD").arg("old:z1").arg(1).arg("x").arg(2).arg("y");
    p.cmd("ZADD").arg("old:z2").arg(5).arg("y");
    p.cmd("SET").arg("other").arg("kept");
    p.query::<()>(&mut c).unwrap();
    let dst = Server::start(Version::V82);
    let cp = tmp.path().join("follow.json");
    let (src_url, dst_url) = (src.url(), dst.url());
    let urls = (src_url.as_str(), dst_url.as_str(), cp.as_path());
    let rename = ["--rename", "old:*=new:*"];
    let mut child = follow_resumable(urls, &rename, tmp.path(), "1");
    child.wait_for("following", Duration::from_secs(60));
    let mut p = redis::pipe();
    p.cmd("INCR").arg("old:a");
    p.cmd("ZUNIONSTORE")
        .arg("old:u")
        .arg(2)
        .arg("old:z1")
        .arg("old:z2")
        .arg("WEIGHTS")
        .arg(1)
        .arg(3);
    p.cmd("RPUSH").arg("old:l").arg(3).arg(1).arg(2);
    p.cmd("SORT").arg("old:l").arg("STORE").arg("old:sorted");
    p.cmd("MSET").arg("old:m").arg("1").arg("plain").arg("2");
    p.cmd("PEXPIRE").arg("old:m").arg(600_000);
    p.cmd("RENAME").arg("old:a").arg("old:b");
    p.query::<()>(&mut c).unwrap();
    thread::sleep(Duration::from_millis(500));
    child.signal("-TERM");
    let st = child.wait_exit(Duration::from_secs(60));
    let out = child.output();
    assert!(st.success(), "{out}");
    let renamed = |k: &[u8]| -> Vec<u8> {
        match k.strip_prefix(b"old:") {
            Some(rest) => [&b"new:"[..], rest].concat(),
            None => k.to_vec(),
        }
    };
    let same_renamed = |what: &str| {
        let want: common::Snapshot = common::snapshot(&src)
            .into_iter()
            .map(|((db, k), v)| ((db, renamed(&k)), v))
            .collect();
        let got = common::snapshot(&dst);
        common::assert_same_keys(&want, &got, &Default::default(), what);
    };
    same_renamed("follow --rename");
    let names: Vec<String> = {
        let mut n: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut dst.conn()).unwrap();
        n.sort();
        n
    };
    assert_eq!(
        names,
        [
            "new:b",
            "new:l",
            "new:m",
            "new:sorted",
            "new:u",
            "new:z1",
            "new:z2",
            "other",
            "plain"
        ],
        "{out}"
    );
    let score: f64 = redis::cmd("ZSCORE")
        .arg("new:u")
        .arg("y")
        .query(&mut dst.conn())
        .unwrap();
    assert_eq!(score, 17.0, "2·1 + 5·3");
    let ttl: i64 = redis::cmd("PEXPIRETIME")
        .arg("new:m")
        .query(&mut dst.conn())
        .unwrap();
    let src_ttl: i64 = redis::cmd("PEXPIRETIME")
        .arg("old:m")
        .query(&mut src.conn())
        .unwrap();
    assert_eq!(ttl, src_ttl);
    assert!(
        out.contains("--rename: 11 keys in the commands written under their new names"),
        "{out}"
    );

    // again: resumed from the checkpoint (partial resync), then a new snapshot with --replace
    // and with --flush-target; each with more commands, each equal under the new names
    let more = |i: i64| {
        let mut p = redis::pipe();
        p.cmd("INCRBY").arg("old:b").arg(i);
        p.cmd("LPUSH").arg("old:l").arg(i);
        p.cmd("ZUNIONSTORE").arg("old:u").arg(1).arg("old:z2");
        p.cmd("SET").arg(format!("old:run{i}")).arg(i);
        p.query::<()>(&mut src.conn()).unwrap();
    };
    let fresh = tmp.path().join("fresh.json");
    let again: [(&str, &Path, &[&str]); 3] = [
        ("2", cp.as_path(), &[]),
        ("3", fresh.as_path(), &["--replace"]),
        ("4", fresh.as_path(), &["--flush-target"]),
    ];
    for (i, (step, checkpoint, option)) in again.into_iter().enumerate() {
        let _ = std::fs::remove_file(&fresh);
        let args = [&rename[..], option].concat();
        let mut r = follow_resumable((urls.0, urls.1, checkpoint), &args, tmp.path(), step);
        r.wait_for("following", Duration::from_secs(60));
        more(i as i64 + 2);
        thread::sleep(Duration::from_millis(500));
        if step == "2" {
            assert!(r.output().contains("partial resync"), "{}", r.output());
        }
        stop_follow(r);
        same_renamed(&format!("follow --rename, run {step} {option:?}"));
    }
    // without an option, a target holding keys is refused and left as it was
    let before = dst.digest();
    std::fs::remove_file(&fresh).unwrap();
    let mut r = follow_resumable((urls.0, urls.1, &fresh), &rename, tmp.path(), "5");
    let st = r.wait_exit(Duration::from_secs(60));
    assert!(!st.success(), "{}", r.output());
    assert!(
        r.output()
            .contains("refusing to follow into a target that holds keys"),
        "{}",
        r.output()
    );
    assert_eq!(dst.digest(), before);
}

/// The link to the source breaks twice during the follow (`CLIENT KILL TYPE replica`, as a
/// network blip or a proxy's idle timeout would): rdbkit connects again and continues by
/// partial resync, as the source's own replicas do; nothing is lost or applied twice.
#[test]
fn follow_continues_by_partial_resync_when_the_link_breaks() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = follow_source();
    let dst = Server::start(Version::V82);
    let writer = Writer::start(&src, false);
    let prom = tmp.path().join("rdbkit.prom");
    let json = tmp.path().join("summary.json");
    let mut child = Running::start(
        &[
            "import",
            &src.url(),
            "--target",
            &dst.url(),
            "--follow",
            "--pause-source-writes",
            "20s",
            "--quiet",
            "--metrics-file",
            prom.to_str().unwrap(),
            "--summary-json",
            json.to_str().unwrap(),
        ],
        tmp.path(),
    );
    child.wait_for("following", Duration::from_secs(60));
    for _ in 0..2 {
        thread::sleep(Duration::from_millis(700));
        let killed: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("replica")
            .query(&mut src.conn())
            .unwrap();
        assert_eq!(killed, 1, "rdbkit's replica link:\n{}", output(tmp.path()));
    }
    thread::sleep(Duration::from_millis(700));
    let rounds = writer.stop();
    assert!(rounds > 50, "the writer barely ran: {rounds}");
    child.signal("-TERM");
    let st = child.wait_exit(Duration::from_secs(60));
    let out = output(tmp.path());
    assert!(st.success(), "{out}");
    assert!(
        out.contains("the link to the source broke 2 times and was continued by partial resync"),
        "{out}"
    );
    // the final metrics say the same as the summary
    let m = crate::ops::textfile(&prom);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let c = &j["commands"];
    assert_eq!(c["source_reconnects"], 2, "{j}");
    assert_eq!(m["rdbkit_source_reconnects_total"], 2.0, "{m:?}");
    assert_eq!(
        Some(m["rdbkit_commands_applied_total"]),
        c["applied"].as_f64(),
        "{m:?} / {j}"
    );
    assert_eq!(
        Some(m["rdbkit_follow_applied_offset"]),
        c["applied_offset"].as_f64(),
        "{m:?} / {j}"
    );
    assert_eq!(
        (m["rdbkit_reconnects_total"], m["rdbkit_failovers_total"]),
        (0.0, 0.0)
    );
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query::<()>(&mut src.conn())
        .unwrap();
    // the source served the two reconnections from its backlog, with no new snapshot
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut src.conn())
        .unwrap();
    assert!(info.contains("sync_partial_ok:2"), "{info}");
    assert!(info.contains("sync_full:1"), "{info}");
    common::assert_same_dataset(&src, &dst);
}

/// The source is restarted (without persistence) during the follow: its new replication id has
/// no history, so the stream cannot continue. rdbkit says that a new full snapshot is needed and
/// how to take it, and exits 1 without touching the target; the rerun with `--flush-target` and
/// the same checkpoint takes it and ends equal to the restarted source.
#[test]
fn follow_of_a_restarted_source_asks_for_a_new_snapshot() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut src = follow_source();
    let dst = Server::start(Version::V82);
    let cp = tmp.path().join("follow.json");
    // the restarted source keeps its port, so the same command reaches it
    let (src_url, dst_url) = (src.url(), dst.url());
    let urls = (src_url.as_str(), dst_url.as_str(), cp.as_path());
    let writer = Writer::start(&src, false);
    let mut first = follow_resumable(urls, &[], tmp.path(), "1");
    first.wait_for("following", Duration::from_secs(60));
    thread::sleep(Duration::from_millis(1000));
    writer.stop();
    src.restart_empty();
    fill(&src, 3_000);
    let writer = Writer::start(&src, false);
    let st = first.wait_exit(Duration::from_secs(90));
    writer.stop();
    let out = first.output();
    assert!(!st.success(), "{out}");
    assert!(
        out.contains("a new full snapshot is needed; rerun with --checkpoint")
            && out.contains("--flush-target"),
        "{out}"
    );
    assert!(cp.exists(), "the checkpoint is kept: {out}");
    // the target still holds what the first source had: nothing of the new one was applied
    let keys: u64 = redis::cmd("DBSIZE").query(&mut dst.conn()).unwrap();
    assert!(keys >= 5_000, "{keys}");
    let mut second = follow_resumable(urls, &["--flush-target"], tmp.path(), "2");
    second.wait_for("following", Duration::from_secs(60));
    stop_follow(second);
    common::assert_same_dataset(&src, &dst);
}

/// The target cluster is resharded while the follow runs: slots that the writer's keys use move
/// from node 0 to node 1 key by key (`MIGRATE`), the way `redis-cli --cluster reshard` moves them.
/// Meanwhile node 0 answers `ASK` for keys already moved, `TRYAGAIN` for a block whose keys are on
/// both sides, and `MOVED` once a slot is node 1's: the follow sends each command where its key
/// is, in order, and the cluster ends equal to the source.
#[test]
fn follow_into_a_cluster_being_resharded_equals_the_source() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = Server::start_opts(Version::V82, &["--repl-diskless-sync-delay", "0"]);
    fill(&src, 5_000);
    for db in [1, 3] {
        let mut c = src.conn();
        redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
        redis::cmd("FLUSHDB").query::<()>(&mut c).unwrap();
    }
    let nodes = common::cluster();
    let ids = common::cluster_ids(&nodes);
    // node 0's slots that the writer's keys use (common::cluster gives it slots 0..5461)
    let mut slots: Vec<u16> = ["s", "ctr", "l", "set", "z", "h"]
        .iter()
        .flat_map(|n| (0..50).map(move |i| format!("w:{n}:{i}")))
        .map(|k| rdbkit::cluster::key_hash_slot(k.as_bytes()))
        .filter(|&s| s < 5462)
        .collect();
    slots.sort();
    slots.dedup();
    slots.truncate(30);
    assert!(slots.len() >= 20, "{slots:?}");
    // the slot of a counter the writer increments every round moves last, and stays half-moved
    // (its keys on node 1, the slot still node 0's) until one of the increments has reached node
    // 1: an ASK, whatever the machine's pace
    let counter = (0..50)
        .map(|i| format!("w:ctr:{i}"))
        .find(|k| slots.contains(&rdbkit::cluster::key_hash_slot(k.as_bytes())))
        .unwrap();
    let held_slot = rdbkit::cluster::key_hash_slot(counter.as_bytes());
    slots.retain(|&s| s != held_slot);
    slots.push(held_slot);
    let on_node1 = || -> Option<i64> {
        let (_, v): ((), Option<i64>) = redis::pipe()
            .cmd("ASKING")
            .cmd("GET")
            .arg(&counter)
            .query(&mut nodes[1].conn())
            .unwrap();
        v
    };
    let writer = Writer::start(&src, true);
    let mut child = Running::start(
        &[
            "import",
            &src.url(),
            "--target",
            &nodes[0].url(),
            "--follow",
            "--pause-source-writes",
            "20s",
            "--quiet",
        ],
        tmp.path(),
    );
    child.wait_for("following", Duration::from_secs(60));
    let port1 = nodes[1].port.to_string();
    for &s in &slots {
        let slot = s.to_string();
        common::cluster_cmd(&nodes[1], &["SETSLOT", &slot, "IMPORTING", &ids[0]]);
        common::cluster_cmd(&nodes[0], &["SETSLOT", &slot, "MIGRATING", &ids[1]]);
        // moved in small steps, so that the writes meet the slot half moved
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(s)
                .arg(1)
                .query(&mut nodes[0].conn())
                .unwrap();
            if keys.is_empty() {
                break;
            }
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(&port1)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query::<()>(&mut nodes[0].conn())
                .unwrap();
            thread::sleep(Duration::from_millis(40));
        }
        if s == held_slot {
            let moved = on_node1();
            common::wait_until(Duration::from_secs(30), || on_node1() != moved);
        }
        for n in [&nodes[1], &nodes[0], &nodes[2]] {
            common::cluster_cmd(n, &["SETSLOT", &slot, "NODE", &ids[1]]);
        }
    }
    thread::sleep(Duration::from_millis(500));
    let rounds = writer.stop();
    assert!(rounds > 100, "the writer barely ran: {rounds}");
    child.signal("-TERM");
    let st = child.wait_exit(Duration::from_secs(90));
    let out = output(tmp.path());
    assert!(st.success(), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("cluster redirections followed"))
        .unwrap_or_else(|| panic!("no redirections: {out}"));
    let count = |kind: &str| -> u64 {
        line.split(", ")
            .find_map(|p| {
                p.trim()
                    .strip_suffix(kind)?
                    .trim()
                    .rsplit(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    eprintln!("{line}");
    assert!(count("ASK") > 0 && count("MOVED") > 0, "{line}");
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query::<()>(&mut src.conn())
        .unwrap();
    for &s in &slots {
        let n: u64 = redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(s)
            .query(&mut nodes[0].conn())
            .unwrap();
        assert_eq!(n, 0, "slot {s} left keys on node 0");
    }
    let want = common::snapshot(&src);
    let mut got = common::Snapshot::new();
    for n in &nodes {
        got.extend(common::snapshot(n));
    }
    common::assert_same_keys(&want, &got, &Default::default(), "resharded cluster");
}

/// The target stalls (its process stopped by SIGSTOP) while the source writes 320 MB: rdbkit keeps reading
/// the source at the network's pace (so the source never drops it for its output-buffer limit),
/// holds 64 MiB in memory and the rest in a temporary file, its memory stays bounded, and once
/// the target moves again everything is applied: the target equals the source.
#[test]
fn follow_spills_the_stream_to_disk_while_the_target_stalls() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = follow_source();
    let dst = Server::start(Version::V82);
    let mut child = Running::start(
        &[
            "import",
            &src.url(),
            "--target",
            &dst.url(),
            "--follow",
            "--quiet",
            "--timeout",
            "120",
        ],
        tmp.path(),
    );
    child.wait_for("following", Duration::from_secs(60));
    // stalled for as long as the test needs (a `CLIENT PAUSE` ends at a fixed time, which a loaded
    // machine may pass before the 320 MB are written): nothing is answered until the thaw
    dst.freeze();
    let offset = || -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut src.conn())
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    };
    let offset0 = offset();
    let t0 = Instant::now();
    let mut c = src.conn();
    for chunk in 0..32 {
        let mut p = redis::pipe();
        for i in 0..10 {
            let n = chunk * 10 + i;
            // values that differ, so that nothing downstream can share them
            let value: Vec<u8> = (0..1 << 20).map(|b: u32| (b ^ (n * 7919)) as u8).collect();
            p.cmd("SET").arg(format!("big:{n}")).arg(value).ignore();
        }
        p.query::<()>(&mut c).unwrap();
    }
    let written = offset() - offset0;
    assert!(written > 320_000_000, "{written}");
    // rdbkit has received the whole stream (its progress line says so), though the target has
    // applied nothing of it
    let lag = |out: &str| -> u64 {
        out.lines()
            .rev()
            .filter_map(|l| l.strip_prefix("following: ")?.split("lag ").nth(1))
            .find_map(|l| l.split(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let start = Instant::now();
    // (less the few bytes of PINGs and the like between the offsets read and the follow's start)
    while lag(&child.output()) + 4096 < written {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "rdbkit did not receive the {written} bytes written:\n{}\n--- source log ---\n{}",
            child.output(),
            src.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let held: u64 = redis::cmd("DBSIZE").query(&mut src.conn()).unwrap();
    eprintln!(
        "rdbkit received the stream {:?} after the target stalled",
        t0.elapsed()
    );
    dst.thaw();
    let start = Instant::now();
    while redis::cmd("DBSIZE").query::<u64>(&mut dst.conn()).unwrap() != held
        || redis::cmd("EXISTS")
            .arg("big:319")
            .query::<u64>(&mut dst.conn())
            .unwrap()
            == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the target did not catch up: {} of {held} keys\n{}",
            redis::cmd("DBSIZE").query::<u64>(&mut dst.conn()).unwrap(),
            child.output()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    child.signal("-TERM");
    let st = child.wait_exit(Duration::from_secs(60));
    let out = child.output();
    assert!(st.success(), "{out}");
    let spilled: f64 = out
        .lines()
        .find_map(|l| l.split("up to ").nth(1)?.split(" MB").next()?.parse().ok())
        .unwrap_or_else(|| panic!("no spill reported: {out}"));
    assert!(spilled > 200.0, "{spilled} MB spilled: {out}");
    assert!(
        peak_kib < 250 * 1024,
        "rdbkit peaked at {peak_kib} KiB while 320 MB waited"
    );
    eprintln!(
        "spilled {spilled} MB, rdbkit's peak RSS {} MB",
        peak_kib / 1024
    );
    common::assert_same_dataset(&src, &dst);
}

/// `--follow --replace` into a target that holds keys: the snapshot's keys are replaced by
/// RESTORE, and keys first written on the source after the snapshot replace the target's own
/// (deleted in the same MULTI as their first command) instead of adding to them (`RPUSH` onto
/// the target's list, `INCR` of its counter). A rerun with `--replace` takes a new snapshot
/// onto what the first left and ends equal too. `--skip-existing` is refused with `--follow`.
#[test]
fn follow_with_replace_replaces_keys_first_written_after_the_snapshot() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = follow_source();
    let dst = Server::start(Version::V82);
    let mut con = dst.conn();
    let mut p = redis::pipe();
    p.cmd("RPUSH").arg("after:list").arg("foreign").ignore();
    p.cmd("SET").arg("after:n").arg(1000).ignore();
    p.cmd("SADD").arg("after:set").arg("zz").ignore();
    p.cmd("SET").arg("mine").arg("keep").ignore();
    p.query::<()>(&mut con).unwrap();
    let (src_url, dst_url) = (src.url(), dst.url());
    let o = common::rdbkit(&[
        "import",
        &src_url,
        "--target",
        &dst_url,
        "--follow",
        "--skip-existing",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", common::text(&o));
    assert!(common::text(&o).contains("--skip-existing cannot be combined with --follow"));
    for (step, n) in [("1", 0), ("2", 1)] {
        let dir = tmp.path().join(step);
        std::fs::create_dir(&dir).unwrap();
        let args = [
            "import",
            &src_url,
            "--target",
            &dst_url,
            "--follow",
            "--replace",
            "--quiet",
        ];
        let mut r = Running::start(&args, &dir);
        r.wait_for("following", Duration::from_secs(60));
        let mut s = src.conn();
        let mut p = redis::pipe();
        // in the first run these keys are not in the snapshot; in the second they are
        p.cmd("RPUSH")
            .arg("after:list")
            .arg(format!("a{n}"))
            .ignore();
        p.cmd("INCR").arg("after:n").ignore();
        p.cmd("SADD").arg("after:set").arg(format!("x{n}")).ignore();
        p.cmd("SUNIONSTORE")
            .arg("after:u")
            .arg("after:set")
            .arg("after:none")
            .ignore();
        p.query::<()>(&mut s).unwrap();
        thread::sleep(Duration::from_millis(500));
        stop_follow(r);
        let out = common::process::output(&dir);
        if n == 0 {
            assert!(
                out.contains("--replace: 3 keys cleared on the target"),
                "{out}"
            );
        }
        let mine: Option<String> = redis::cmd("GET").arg("mine").query(&mut con).unwrap();
        assert_eq!(mine.as_deref(), Some("keep"));
        redis::cmd("DEL").arg("mine").query::<()>(&mut con).unwrap();
        common::assert_same_dataset(&src, &dst);
        redis::cmd("SET")
            .arg("mine")
            .arg("keep")
            .query::<()>(&mut con)
            .unwrap();
    }
}

/// A cluster node given as the source: its own snapshot holds a third of the keys, so every
/// primary's is read (by replication and by `SCAN`), and the target gets the whole cluster.
/// `--follow` of a cluster source is refused (its writes are split over the primaries), and
/// `rdbkit dump` of one node says the file holds that node's slots only.
#[test]
fn import_of_a_cluster_node_reads_every_primary() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = Server::start(Version::V82);
    let mut p = redis::pipe();
    for i in 0..3000 {
        p.cmd("SET").arg(format!("k:{i}")).arg(i).ignore();
        if i % 10 == 0 {
            p.cmd("HSET").arg(format!("h:{i}")).arg("f").arg(i).ignore();
            p.cmd("PEXPIRE")
                .arg(format!("k:{i}"))
                .arg(3_600_000)
                .ignore();
        }
    }
    p.query::<()>(&mut src.conn()).unwrap();
    let dump = src.save_to(tmp.path().join("src.rdb"));
    let nodes = common::cluster();
    for n in &nodes {
        // a replica's snapshot starts at once, not after the default 5 s gathering delay
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("repl-diskless-sync-delay")
            .arg(0)
            .query::<()>(&mut n.conn())
            .unwrap();
    }
    let node0 = nodes[0].url();
    let o = common::rdbkit(&[
        "import",
        dump.to_str().unwrap(),
        "--target",
        &node0,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", common::text(&o));
    let on0: u64 = redis::cmd("DBSIZE").query(&mut nodes[0].conn()).unwrap();
    assert!(on0 > 0 && on0 < 3300, "{on0}");
    for mode in ["sync", "scan"] {
        let dst = Server::start(Version::V82);
        let o = common::rdbkit(&[
            "import",
            &node0,
            "--target",
            &dst.url(),
            "--source-mode",
            mode,
            "--quiet",
        ]);
        assert!(o.status.success(), "{mode}: {}", common::text(&o));
        assert!(
            common::text(&o).contains("reading the snapshot of each of its 3 primaries"),
            "{}",
            common::text(&o)
        );
        common::assert_same_dataset(&src, &dst);
    }
    let dst = Server::start(Version::V82);
    let o = common::rdbkit(&["import", &node0, "--target", &dst.url(), "--follow"]);
    assert_eq!(o.status.code(), Some(2), "{}", common::text(&o));
    assert!(common::text(&o).contains("one node of a cluster of 3 primaries"));
    let file = tmp.path().join("node0.rdb");
    let o = common::rdbkit(&["dump", &node0, "-o", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", common::text(&o));
    assert!(
        common::text(&o).contains("the file holds this node's slots only"),
        "{}",
        common::text(&o)
    );
}

/// The follow may write databases the snapshot did not have: a target holding keys in one of
/// them is refused before anything is written (it used to be written into), and emptied with
/// `--flush-target`.
#[test]
fn follow_refuses_a_target_holding_keys_in_any_database_it_may_write() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = follow_source();
    let dst = Server::start(Version::V82);
    let mut con = dst.conn();
    redis::cmd("SELECT").arg(7).query::<()>(&mut con).unwrap();
    redis::cmd("RPUSH")
        .arg("l")
        .arg("foreign")
        .query::<()>(&mut con)
        .unwrap();
    let (src_url, dst_url) = (src.url(), dst.url());
    let args = [
        "import", &src_url, "--target", &dst_url, "--follow", "--quiet",
    ];
    let dir = tmp.path().join("1");
    std::fs::create_dir(&dir).unwrap();
    let mut r = Running::start(&args, &dir);
    let st = r.wait_exit(Duration::from_secs(60));
    let out = r.output();
    assert!(!st.success(), "{out}");
    assert!(
        out.contains("refusing to follow into a target that holds keys") && out.contains("db7"),
        "{out}"
    );
    assert_eq!(dst.keyspace(), std::collections::BTreeMap::from([(7, 1)]));
    let dir = tmp.path().join("2");
    std::fs::create_dir(&dir).unwrap();
    let mut flush = args.to_vec();
    flush.push("--flush-target");
    let mut r = Running::start(&flush, &dir);
    r.wait_for("following", Duration::from_secs(60));
    let mut s = src.conn();
    redis::cmd("SELECT").arg(7).query::<()>(&mut s).unwrap();
    redis::cmd("RPUSH")
        .arg("l")
        .arg("src")
        .query::<()>(&mut s)
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    stop_follow(r);
    common::assert_same_dataset(&src, &dst);
}
