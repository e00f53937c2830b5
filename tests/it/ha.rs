//! Targets operators run: a Sentinel-managed primary (with a forced failover and with the primary
//! killed mid-import), several dumps at once (one gzipped), and a rate-limited import. Real
//! processes on loopback ports.

use crate::common;

use common::process::Running;
use common::{wait_until, Node, Sentinel, Server, Version};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn rdbkit(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rdbkit"));
    c.args(args);
    c
}

/// Primary + replica + three sentinels that all see the replica.
pub(crate) fn sentinel_setup() -> (Server, Server, Vec<Sentinel>) {
    let primary = Server::start(Version::V82);
    let replica = primary.replica(Version::V82);
    let conf = [
        "sentinel down-after-milliseconds mymaster 1000",
        "sentinel failover-timeout mymaster 10000",
        "sentinel parallel-syncs mymaster 1",
    ];
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| Sentinel::start(primary.port, 2, None, &conf))
        .collect();
    wait_until(Duration::from_secs(30), || {
        sentinels.iter().all(|s| {
            s.query::<Vec<redis::Value>>(&["SENTINEL", "replicas", "mymaster"])
                .is_ok_and(|r| !r.is_empty())
                && s.query::<Vec<redis::Value>>(&["SENTINEL", "sentinels", "mymaster"])
                    .is_ok_and(|r| r.len() == 2)
        })
    });
    (primary, replica, sentinels)
}

/// A dump of realistic shape written by a real 8.2, large enough to fill the importer's memory
/// budget (32 MiB) several times: `strings` strings of 100 bytes (`DEBUG POPULATE`), and a tenth
/// as many each of hashes, lists, sets and sorted sets of 5-20 elements, 20% of all collections
/// with a key TTL, every 50th hash with field TTLs, and streams with consumer groups and pending
/// entries. About 110 bytes of RESTORE per key: 650,000 strings make 101 MB of commands.
fn big_mixed_dump(dir: &Path, strings: u64) -> PathBuf {
    let s = Server::start(Version::V82);
    populate_mixed(&mut s.conn(), strings, 100);
    s.save_to(dir.join("big-mixed.rdb"))
}

/// The data of [`big_mixed_dump`], written into `c`: `strings` strings of `size` bytes, a tenth
/// as many of each collection type, three streams.
fn populate_mixed(c: &mut redis::Connection, strings: u64, size: u64) {
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(strings)
        .arg("str")
        .arg(size)
        .query::<()>(c)
        .unwrap();
    let n = strings / 10;
    let far = 4_102_444_800_000u64; // 2100-01-01
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let mut p = redis::pipe();
        for &i in chunk {
            let len = 5 + i % 16;
            let elems: Vec<String> = (0..len).map(|j| format!("element-{i}-{j}")).collect();
            let mut h = redis::cmd("HSET");
            h.arg(format!("hash:{i}"));
            for (j, e) in elems.iter().enumerate() {
                h.arg(format!("field{j}")).arg(e);
            }
            p.add_command(h).ignore();
            p.cmd("RPUSH").arg(format!("list:{i}")).arg(&elems).ignore();
            p.cmd("SADD").arg(format!("set:{i}")).arg(&elems).ignore();
            let mut z = redis::cmd("ZADD");
            z.arg(format!("zset:{i}"));
            for (j, e) in elems.iter().enumerate() {
                z.arg(j as f64 * 1.5 + i as f64).arg(e);
            }
            p.add_command(z).ignore();
            if i % 5 == 0 {
                for k in ["hash", "list", "set", "zset"] {
                    p.cmd("PEXPIREAT")
                        .arg(format!("{k}:{i}"))
                        .arg(far + i)
                        .ignore();
                }
            }
            if i % 50 == 0 {
                p.cmd("HPEXPIREAT")
                    .arg(format!("hash:{i}"))
                    .arg(far + 7 * i)
                    .arg("FIELDS")
                    .arg(2)
                    .arg("field0")
                    .arg("field1")
                    .ignore();
            }
        }
        p.query::<()>(c).unwrap();
    }
    for st in 0..3 {
        let key = format!("stream:{st}");
        let mut p = redis::pipe();
        for e in 0..500 {
            p.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("n")
                .arg(e)
                .arg("payload")
                .arg(format!("{st}-{e}"))
                .ignore();
        }
        p.cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg("g1")
            .arg("0")
            .ignore();
        p.cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg("g2")
            .arg("$")
            .ignore();
        p.cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g1")
            .arg("alice")
            .arg("COUNT")
            .arg(120)
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .ignore();
        p.query::<()>(c).unwrap();
    }
}

/// Strings in the Sentinel tests' dump (with a tenth as many of each collection type): 910,003
/// keys, 58 MB of RDB and 101 MB (97 MiB) of RESTOREs (measured: `total_net_input_bytes` of an 8.2
/// after `rdbkit import`), which is 3 times the importer's default memory budget (`--buffer-mb 32`)
/// and 97 times the 1 MiB one. Several times what the budget holds is what matters (the import
/// through Sentinel hung once it was full); more only makes each of the cases below slower (the
/// dump was 1.4M keys, 150 MB of commands, before).
const BIG_STRINGS: u64 = 650_000;

/// The dump the Sentinel tests import (made once per test binary). Kept in cargo's per-target
/// scratch directory, under a name that changes with the generator and its size.
fn shared_big_dump() -> &'static Path {
    static DUMP: OnceLock<PathBuf> = OnceLock::new();
    DUMP.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ha-big-mixed-v1-{BIG_STRINGS}"));
        let p = dir.join("big-mixed.rdb");
        if !p.is_file() {
            let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let made = big_mixed_dump(tmp.path(), BIG_STRINGS);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::rename(made, &p).unwrap();
        }
        p
    })
}

/// Strings (of [`LARGE_STRING_BYTES`]) in the dump of the size users run: with a tenth as many of
/// each collection type, three streams and a few big keys, 325 MB on disk and 173,000 keys. Few
/// keys for the bytes keeps the comparisons (per key) to seconds; its strings are stored
/// uncompressed, so the bytes are what the importer reads, sends and the servers hold.
const LARGE_STRINGS: u64 = 120_000;
const LARGE_STRING_BYTES: u64 = 2_500;

/// A dump of several hundred MB written by a real 8.2 (`--rdbcompression no`):
/// [`populate_mixed`] with [`LARGE_STRINGS`] strings of [`LARGE_STRING_BYTES`], and big keys,
/// each larger than a batch and than `--buffer-mb 1`: a hash, a set and a sorted set of 100,000
/// elements, a list of 200,000 (with a TTL) and a 20 MB string.
fn large_dump(dir: &Path) -> PathBuf {
    let s = Server::start_opts(Version::V82, &["--rdbcompression", "no"]);
    let mut c = s.conn();
    populate_mixed(&mut c, LARGE_STRINGS, LARGE_STRING_BYTES);
    for chunk in (0..200_000u64).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        let (mut h, mut st, mut z) = (redis::cmd("HSET"), redis::cmd("SADD"), redis::cmd("ZADD"));
        h.arg("big:hash");
        st.arg("big:set");
        z.arg("big:zset");
        let mut l = redis::cmd("RPUSH");
        l.arg("big:list");
        for &i in chunk {
            l.arg(format!("item-{i}"));
            if i < 100_000 {
                h.arg(format!("field-{i}")).arg(format!("value-{i}"));
                st.arg(format!("member-{i}"));
                z.arg(i as f64 / 7.0).arg(format!("member-{i}"));
            }
        }
        p.add_command(l).ignore();
        if chunk[0] < 100_000 {
            p.add_command(h).ignore();
            p.add_command(st).ignore();
            p.add_command(z).ignore();
        }
        p.query::<()>(&mut c).unwrap();
    }
    redis::pipe()
        .cmd("PEXPIREAT")
        .arg("big:list")
        .arg(4_102_444_800_000u64)
        .ignore()
        .cmd("SET")
        .arg("big:string")
        .arg(vec![b'x'; 20 << 20])
        .ignore()
        .query::<()>(&mut c)
        .unwrap();
    s.save_to(dir.join("large.rdb"))
}

/// The dump of [`large_dump`], made once per test binary, kept like [`shared_big_dump`].
fn shared_large_dump() -> &'static Path {
    static DUMP: OnceLock<PathBuf> = OnceLock::new();
    DUMP.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ha-large-v1-{LARGE_STRINGS}-{LARGE_STRING_BYTES}"));
        let p = dir.join("large.rdb");
        if !p.is_file() {
            let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let made = large_dump(tmp.path());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::rename(made, &p).unwrap();
        }
        p
    })
}

/// The tests that each hold five servers and hundreds of MB of data run one at a time: several
/// at once on a small machine only test the machine, and the moments they aim at (a failover in
/// the last tenth of an import, a kill in its middle) would slip.
fn one_heavy_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// When, during the import, the sentinels are told to fail over.
#[derive(Clone, Copy, Debug)]
enum When {
    /// Half a second after the import started.
    FirstSecond,
    /// Once the primary holds half of the keys.
    Middle,
    /// Once it holds 90% of them (the last batches).
    LastBatches,
}

/// Imports the big dump through the sentinels with `--buffer-mb buffer` (None: the default)
/// while `disrupt` runs at `when`; the primary the sentinels name at the end must hold exactly
/// what `want` (a server that loaded the dump itself) holds, and the summary must name the
/// failover.
fn import_through_failover(
    dump: &Path,
    want: &Server,
    when: When,
    buffer: Option<&str>,
    disrupt: impl FnOnce(&mut Server, &[Sentinel]),
) {
    let case = format!("{when:?}, buffer {buffer:?}");
    let total: u64 = want.keyspace().values().sum();
    let begun = Instant::now();
    let (mut primary, _replica, sentinels) = sentinel_setup();
    let set_up = begun.elapsed();
    let addrs: Vec<String> = sentinels.iter().map(Sentinel::addr).collect();
    let addrs = addrs.join(",");
    let mut args = vec![
        "import",
        dump.to_str().unwrap(),
        "--sentinel",
        &addrs,
        "--master-name",
        "mymaster",
        "--quiet",
        "--timeout",
        "5",
        "--retries",
        "30",
    ];
    if let Some(b) = buffer {
        args.extend(["--buffer-mb", b]);
    }
    // the last tenth of an unthrottled import takes ~0.3 s, less than a poller starved by the
    // other tests on two cores may need to see it begin: held to 100k keys/s (its last tenth
    // ~0.9 s), the failover is sure to be asked for before the end
    if matches!(when, When::LastBatches) {
        args.extend(["--rate-limit", "100k"]);
    }
    let started = Instant::now();
    let child = rdbkit(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    match when {
        When::FirstSecond => std::thread::sleep(Duration::from_millis(500)),
        When::Middle | When::LastBatches => {
            let at = match when {
                When::Middle => total / 2,
                _ => total - total / 10,
            };
            // polled every 5 ms on one connection: the last tenth of a fast import can take
            // well under a second (the dump is all in db 0)
            // (a connection the server closed is opened again: on a machine loaded enough for
            // the sentinels to fail the primary over on their own, its clients are dropped)
            let mut c = primary.conn();
            let start = Instant::now();
            loop {
                match redis::cmd("DBSIZE").query::<u64>(&mut c) {
                    Ok(n) if n >= at => break,
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("{case}: polling the primary: {e}; connecting again");
                        c = primary.conn();
                    }
                }
                assert!(start.elapsed() < Duration::from_secs(120), "{case}: stuck");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    let landed = primary.keyspace().values().sum::<u64>();
    disrupt(&mut primary, &sentinels);
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert!(
        out.status.success(),
        "{case}, {landed} of {total} keys at the failover: {t}"
    );
    // the promotion takes the sentinels a second or two: an import whose last tenth is faster
    // than that ends first (its batches confirmed on the replica by WAIT), and the replica it
    // promotes must then hold everything all the same
    wait_until(Duration::from_secs(60), || {
        sentinels[0].primary_port() != primary.port
    });
    let new_primary = sentinels[0].primary_port();
    let seen = t.contains("failover: the primary moved");
    assert!(
        seen || matches!(when, When::LastBatches),
        "{case}: the import did not see the failover: {t}"
    );
    if !seen {
        eprintln!("{case}: the promotion completed after the import ended");
    }
    assert!(
        landed < total,
        "{case}: the failover came after the import ({landed} keys): {t}"
    );
    let imported = started.elapsed();
    // DEBUG DIGEST blocks the server for seconds: without sentinels, it cannot trigger a failover
    drop(sentinels);
    let got = Node {
        port: new_primary,
        version: Version::V82,
    };
    let compared = Instant::now();
    if let Err(e) = common::same_dataset(got, want) {
        panic!("{case}: the new primary differs from the dump:\n{e}\n--- rdbkit ---\n{t}");
    }
    eprintln!(
        "{case}: failover at {landed} of {total} keys; set-up {set_up:.1?}, import {imported:.1?}, \
         comparison {:.1?}",
        compared.elapsed()
    );
}

fn sentinel_failover(_: &mut Server, sentinels: &[Sentinel]) {
    let r: String = sentinels[0]
        .query(&["SENTINEL", "FAILOVER", "mymaster"])
        .unwrap();
    assert_eq!(r, "OK");
}

/// Without any failover, an import through the sentinels of a dump several times the memory
/// budget ends, and equals a direct load (it hung at 126,464 keys before).
fn import_through_sentinels_without_failover(dump: &Path, want: &Server) {
    let (primary, _replica, sentinels) = sentinel_setup();
    let out = rdbkit(&[
        "import",
        dump.to_str().unwrap(),
        "--sentinel",
        &sentinels[0].addr(),
        "--master-name",
        "mymaster",
        "--quiet",
        "--timeout",
        "10",
    ])
    .output()
    .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    // a loaded machine can make the sentinels fail over on their own: compare what they name
    let now = sentinels[0].primary_port();
    assert_eq!(
        t.contains("failover: the primary moved"),
        now != primary.port,
        "{t}"
    );
    // DEBUG DIGEST blocks the server for seconds: without sentinels, it cannot trigger a failover
    drop(sentinels);
    assert_eq!(
        common_keys(now),
        want.keyspace().values().sum::<u64>(),
        "{t}"
    );
    let got = Node {
        port: now,
        version: Version::V82,
    };
    if let Err(e) = common::same_dataset(got, want) {
        panic!("no failover: the primary differs from the dump:\n{e}\n--- rdbkit ---\n{t}");
    }
}

/// Imports through Sentinel of a dump several times the memory budget (issue 12 item 1), one case
/// after another against one reference (8.2 loading the dump itself, started once): each case
/// holds five servers and moves ~100 MB, and several at once on a small machine would only test
/// the machine. The cases: no failover; a `SENTINEL FAILOVER` in the first second, in the middle
/// and in the last batches, with the default budget and with `--buffer-mb 1`; and the primary
/// killed in the middle. Each starts a fresh primary, replica and three sentinels (a failover
/// leaves the old primary resyncing, and a kill leaves none).
#[test]
fn sentinel_imports_of_a_dump_larger_than_the_budget() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let _heavy = one_heavy_test_at_a_time();
    let dump = shared_big_dump();
    let want = Server::start_with_dump(Version::V82, dump, &[]);
    import_through_sentinels_without_failover(dump, &want);
    for buffer in [None, Some("1")] {
        for when in [When::FirstSecond, When::Middle, When::LastBatches] {
            import_through_failover(dump, &want, when, buffer, sentinel_failover);
        }
    }
    import_through_failover(dump, &want, When::Middle, None, |primary, _| {
        primary.crash()
    });
}

/// Starts a Sentinel-managed primary with one replica, imports the big dump through the
/// sentinels with `extra` options, and SIGKILLs the replica (by its pid) once the primary holds a
/// fifth of the keys. Returns the primary, the sentinels, rdbkit's exit status and output (it
/// must exit within `limit`), and how long it ran after the kill.
fn import_and_kill_the_replica(
    dump: &Path,
    total: u64,
    extra: &[&str],
    limit: Duration,
) -> (Server, Vec<Sentinel>, ExitStatus, String, Duration) {
    let (primary, mut replica, sentinels) = sentinel_setup();
    let addrs: Vec<String> = sentinels.iter().map(Sentinel::addr).collect();
    let addrs = addrs.join(",");
    let mut args = vec![
        "import",
        dump.to_str().unwrap(),
        "--sentinel",
        &addrs,
        "--master-name",
        "mymaster",
        "--quiet",
        "--timeout",
        "5",
    ];
    args.extend(extra);
    let out = tempfile::tempdir().unwrap();
    let mut run = Running::start(&args, out.path());
    wait_until(Duration::from_secs(120), || {
        primary.keyspace().values().sum::<u64>() >= total / 5
    });
    replica.crash();
    let killed = Instant::now();
    let landed = primary.keyspace().values().sum::<u64>();
    let status = run.wait_exit(limit);
    let after = killed.elapsed();
    let t = run.output();
    assert!(
        landed < total,
        "the import ended before the replica was killed: {t}"
    );
    (primary, sentinels, status, t, after)
}

/// A replica SIGKILLed while an import through Sentinel runs, with a dump far larger than the
/// memory budget (`--buffer-mb 1`). The import must end (every wait has a deadline: the batches
/// kept for a failover wait for the lost replica's confirmation only so long), the primary must
/// equal a direct load of the dump, and the summary must say that the writes after the kill were
/// not confirmed on a replica. A replica started afterwards resyncs to the same dataset. With
/// `--wait-replicas 1` (acknowledged must mean replicated) the import cannot be what it asks
/// for: it must stop within its deadline (`--timeout`), naming the missing acknowledgement,
/// instead of making every batch wait the whole `WAIT` timeout.
#[test]
fn sentinel_import_with_its_replica_killed_ends_and_says_so() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let _heavy = one_heavy_test_at_a_time();
    let dump = shared_big_dump();
    let want = Server::start_with_dump(Version::V82, dump, &[]);
    let total: u64 = want.keyspace().values().sum();

    let (primary, sentinels, status, t, after) =
        import_and_kill_the_replica(dump, total, &["--buffer-mb", "1"], Duration::from_secs(240));
    assert!(status.success(), "{t}");
    assert!(
        t.contains(&format!("written: {total} keys (")),
        "every key written, counted once: {t}"
    );
    assert!(t.contains("replicas confirmed writes for"), "{t}");
    assert!(
        t.contains("could not be confirmed on every replica (WAIT)"),
        "{t}"
    );
    assert!(!t.contains("failover: the primary moved"), "{t}");
    assert!(!t.contains("in doubt") && !t.contains("failed:"), "{t}");
    assert_eq!(sentinels[0].primary_port(), primary.port, "{t}");
    eprintln!("replica killed: the import ended {after:.1?} after the kill");
    drop(sentinels);
    common::assert_same_dataset(&primary, &want);
    // a replica started now copies the primary whole
    let again = primary.replica(Version::V82);
    wait_until(Duration::from_secs(60), || {
        again.keyspace().values().sum::<u64>() == total
    });
    common::assert_same_dataset(&again, &want);
    drop((again, primary));

    let (primary, _sentinels, status, t, after) = import_and_kill_the_replica(
        dump,
        total,
        &["--wait-replicas", "1"],
        Duration::from_secs(90),
    );
    assert_eq!(status.code(), Some(1), "{t}");
    assert!(
        t.contains("--wait-replicas 1: no WAIT was acknowledged by 1 replica for")
            && t.contains("the replica acknowledgement is missing"),
        "{t}"
    );
    // the shortfall may last --timeout (5 s); the connections then drain what they sent
    assert!(
        after < Duration::from_secs(45),
        "stopped {after:?} after the kill: {t}"
    );
    // what the summary counts is what the primary holds: each written key is there, and the
    // others there were sent without an acknowledgement (in doubt)
    let held = primary.keyspace().values().sum::<u64>();
    let (written, in_doubt) = (
        number_after(&t, "written: "),
        number_after(&t, "in doubt: "),
    );
    assert!(
        written <= held && held <= written + in_doubt && held < total,
        "{held} keys on the primary: {t}"
    );
}

/// The number that follows the first `label` at the start of a line of `t` (0 without one).
fn number_after(t: &str, label: &str) -> u64 {
    t.lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// A dump of the size users run (several hundred MB, [`large_dump`]), imported as they import
/// it: directly into an 8.2; again with `--skip-existing` (nothing written, every key counted),
/// `--replace` and `--flush-target` (the same dataset);
/// interrupted (rdbkit SIGKILLed mid-import) and resumed from its checkpoint; and through
/// Sentinel with a `SENTINEL FAILOVER` in the middle. Each result equals a server that loaded the
/// dump itself.
#[test]
fn a_dump_of_hundreds_of_mb_imports_reruns_resumes_and_survives_a_failover() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let _heavy = one_heavy_test_at_a_time();
    let begun = Instant::now();
    let dump = shared_large_dump();
    let size = std::fs::metadata(dump).unwrap().len();
    assert!(size > 300_000_000, "{size} bytes");
    let made = begun.elapsed();
    let want = Server::start_with_dump(Version::V82, dump, &[]);
    let total: u64 = want.keyspace().values().sum();
    let mut times = vec![format!("dump {} MB: {made:.1?}", size / 1_000_000)];
    let mut lap = Instant::now();
    let mut time = |what: &str| {
        times.push(format!("{what} {:.1?}", lap.elapsed()));
        lap = Instant::now();
    };

    // directly, then again with --skip-existing: nothing is written twice, every key counted
    let target = Server::start(Version::V82);
    let out = common::import(dump, &target, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("written: {total} keys (")), "{t}");
    time("import");
    common::assert_same_dataset(&target, &want);
    time("compare");
    let before = target.digest();
    let out = common::import(dump, &target, &["--skip-existing"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("written: 0 keys ("), "{t}");
    assert!(
        t.contains(&format!(
            "skipped: {total} (exists on target (--skip-existing))"
        )),
        "{t}"
    );
    assert_eq!(target.digest(), before, "{t}");
    time("--skip-existing");
    // again with --replace (every key written again over itself) and --flush-target (emptied
    // first): the same dataset (compared in full once above; here by digest and key count)
    // (the target equalled `want` in full before --skip-existing, which changed nothing)
    let want_digest = before;
    for opt in ["--replace", "--flush-target"] {
        let out = common::import(dump, &target, &[opt]);
        let t = text(&out);
        assert!(out.status.success(), "{opt}: {t}");
        assert!(
            t.contains(&format!("written: {total} keys (")),
            "{opt}: {t}"
        );
        assert_eq!(target.digest(), want_digest, "{opt}: {t}");
        time(opt);
    }
    drop(target);

    // killed mid-import, resumed from its checkpoint
    let target = Server::start(Version::V82);
    let tmp = tempfile::tempdir().unwrap();
    let cp = tmp.path().join("import.checkpoint");
    let url = target.url();
    let args = [
        "import",
        dump.to_str().unwrap(),
        "--target",
        &url,
        "--quiet",
        "--checkpoint",
        cp.to_str().unwrap(),
        "--checkpoint-interval-ms",
        "50",
    ];
    // held to 100 MB/s of dump (3.4 s), so that it is surely killed in the middle: unthrottled,
    // its checkpoint (what is acknowledged in dump order) can still be short of a twentieth when
    // the import is nearly done
    let throttled = [&args[..], &["--rate-limit", "100MB"]].concat();
    let mut run = Running::start(&throttled, tmp.path());
    wait_until(Duration::from_secs(60), || {
        let offset = std::fs::read_to_string(&cp)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["inputs"][0]["offset"].as_u64())
            .unwrap_or(0);
        offset > size / 5
    });
    run.signal("-KILL");
    run.wait_exit(Duration::from_secs(10));
    let held = target.keyspace().values().sum::<u64>();
    assert!(held < total, "killed after the end: {held} keys");
    let mut rerun = Running::start(&args, tmp.path());
    let status = rerun.wait_exit(Duration::from_secs(120));
    let t = rerun.output();
    assert!(status.success(), "{t}");
    assert!(t.contains("after dump offset"), "{t}");
    assert!(t.contains("done in an earlier run"), "{t}");
    time("killed and resumed");
    common::assert_same_dataset(&target, &want);
    time("compare");
    drop(target);

    // through Sentinel, failing over in the middle
    import_through_failover(dump, &want, When::Middle, None, sentinel_failover);
    time("through a failover (set-up, import, compare)");
    eprintln!("{} keys: {}", total, times.join(", "));
}

fn common_keys(port: u16) -> u64 {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("DBSIZE").query(&mut c).unwrap()
}

#[test]
fn several_dumps_one_gzipped_import_together() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/redis82_multiple_dbs_v12.rdb");
    let b_plain =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/redis82_no_compression_v12.rdb");
    let b = tmp.path().join("shard2.rdb.gz");
    let gz = Command::new("gzip")
        .arg("-c")
        .arg(&b_plain)
        .output()
        .unwrap();
    assert!(gz.status.success());
    std::fs::write(&b, gz.stdout).unwrap();
    let target = Server::start(Version::V82);
    let url = target.url();
    let out = rdbkit(&[
        "import",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--target",
        &url,
        "--quiet",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for d in [&a, &b] {
        let v = rdbkit(&["verify", d.to_str().unwrap(), "--target", &url])
            .output()
            .unwrap();
        assert!(v.status.success(), "{}: {}", d.display(), text(&v));
    }
    let want: u64 = [&a, &b_plain]
        .iter()
        .map(|d| {
            Server::start_with_dump(Version::V82, d, &[])
                .keyspace()
                .values()
                .sum::<u64>()
        })
        .sum();
    assert_eq!(target.keyspace().values().sum::<u64>(), want);
}

#[test]
fn rate_limit_holds_the_import_back() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = common::populated_dump(tmp.path(), 20_000);
    let target = Server::start(Version::V82);
    let start = Instant::now();
    let out = rdbkit(&[
        "import",
        dump.to_str().unwrap(),
        "--target",
        &target.url(),
        "--quiet",
        "--rate-limit",
        "10k",
    ])
    .output()
    .unwrap();
    let took = start.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    // 22,000 keys at 10,000 keys/s with no initial burst: over two seconds, never much less
    assert!(took >= Duration::from_millis(1500), "took {took:?}");
    assert_eq!(target.keyspace().values().sum::<u64>(), 22_000);
}

/// The keys of a dump, in file order.
fn dump_keys(dump: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(dump).unwrap();
    rdbkit::Decoder::new(&data)
        .filter_map(|i| match i.unwrap() {
            rdbkit::Item::Entry(e) => Some(e.key.into_owned()),
            _ => None,
        })
        .collect()
}

/// Every key is on node `home(key)` with the `DEBUG DIGEST-VALUE` it has on `loader` (which
/// loaded the dump itself), and on no other node.
fn assert_keys_at_home(
    loader: &Server,
    nodes: &[Server],
    keys: &[Vec<u8>],
    home: impl Fn(&[u8]) -> usize,
) {
    let zeros = "0".repeat(40);
    for chunk in keys.chunks(2000) {
        let digests = |s: &Server| -> Vec<String> {
            let mut c = redis::cmd("DEBUG");
            c.arg("DIGEST-VALUE");
            for k in chunk {
                c.arg(k);
            }
            c.query(&mut s.conn()).unwrap()
        };
        let want = digests(loader);
        let per_node: Vec<Vec<String>> = nodes.iter().map(digests).collect();
        for (i, k) in chunk.iter().enumerate() {
            let home = home(k);
            for (n, d) in per_node.iter().enumerate() {
                let expect = if n == home { &want[i] } else { &zeros };
                assert_eq!(
                    &d[i],
                    expect,
                    "key {} on node {n}",
                    String::from_utf8_lossy(k)
                );
            }
        }
    }
}

/// `rdbkit verify` of `dump` against `node` passes with `n` keys equal.
fn assert_verifies(dump: &Path, node: &Server, n: usize) {
    let out = rdbkit(&["verify", dump.to_str().unwrap(), "--target", &node.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let want = format!("verified: {n} keys equal, 0 differ");
    assert!(text(&out).contains(&want), "{}", text(&out));
}

#[test]
fn cluster_import_routes_every_key_to_its_slot_owner() {
    let Some((_tmp, dump, loader)) = common::loaded_populated(30_000) else {
        return;
    };
    let nodes = common::cluster();
    let out = rdbkit(&[
        "import",
        dump.to_str().unwrap(),
        "--target",
        &nodes[0].url(),
        "--quiet",
    ])
    .output()
    .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("cluster target: 3 primaries"), "{t}");
    let total: u64 = nodes
        .iter()
        .map(|n| n.keyspace().values().sum::<u64>())
        .sum();
    assert_eq!(total, 32_000);
    // every key lives on the node that owns its slot, with the value the dump holds
    let keys = dump_keys(&dump);
    assert_keys_at_home(&loader, &nodes, &keys, |k| {
        usize::from(rdbkit::cluster::key_hash_slot(k) / 5462).min(2)
    });
    // verify reads every key back from the node that owns its slot
    assert_verifies(&dump, &nodes[2], 32_000);
    // a multi-db dump is refused unless --db-map folds it into db 0
    let multi = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/redis82_multiple_dbs_v12.rdb");
    let out = rdbkit(&[
        "import",
        multi.to_str().unwrap(),
        "--target",
        &nodes[1].url(),
        "--quiet",
        "--skip-existing",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("fold them with --db-map"),
        "{}",
        text(&out)
    );
}

/// A cluster being resharded during the import. Slots of node 0 that are MIGRATING to node 1
/// from the start answer ASK for every key (node 0 never holds them), so those keys must arrive on
/// node 1 through ASKING. Slots moved to node 2 after the import began (the importer's slot map is
/// then stale) answer MOVED, which must be followed and must re-route the slot.
#[test]
fn cluster_import_follows_ask_and_moved_during_a_reshard() {
    let Some((_tmp, dump, loader)) = common::loaded_populated(30_000) else {
        return;
    };
    let nodes = common::cluster();
    let ids = common::cluster_ids(&nodes);
    let keys = dump_keys(&dump);
    let slot = |k: &[u8]| rdbkit::cluster::key_hash_slot(k);
    let owner0 = |s: u16| s < 5462;
    // ASK: 40 slots of node 0 that hold keys, migrating to node 1 before the import starts
    let mut ask_slots: Vec<u16> = keys
        .iter()
        .map(|k| slot(k))
        .filter(|&s| owner0(s))
        .collect();
    ask_slots.sort();
    ask_slots.dedup();
    ask_slots.truncate(40);
    for &s in &ask_slots {
        let s = s.to_string();
        common::cluster_cmd(&nodes[1], &["SETSLOT", &s, "IMPORTING", &ids[0]]);
        common::cluster_cmd(&nodes[0], &["SETSLOT", &s, "MIGRATING", &ids[1]]);
    }
    // MOVED: slots of node 0 whose keys all come in the last fifth of the dump
    let early: std::collections::HashSet<u16> =
        keys[..keys.len() * 4 / 5].iter().map(|k| slot(k)).collect();
    let mut moved_slots: Vec<u16> = keys[keys.len() * 4 / 5..]
        .iter()
        .map(|k| slot(k))
        .filter(|s| owner0(*s) && !early.contains(s) && !ask_slots.contains(s))
        .collect();
    moved_slots.sort();
    moved_slots.dedup();
    moved_slots.truncate(60);
    assert!(moved_slots.len() >= 20, "{moved_slots:?}");

    let child = rdbkit(&[
        "import",
        dump.to_str().unwrap(),
        "--target",
        &nodes[0].url(),
        "--rate-limit",
        "4000",
        "--quiet",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let held = |n: &Server| n.keyspace().values().sum::<u64>();
    wait_until(Duration::from_secs(30), || {
        nodes.iter().map(held).sum::<u64>() > 1000
    });
    for &s in &moved_slots {
        let n: u64 = redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(s)
            .query(&mut nodes[0].conn())
            .unwrap();
        assert_eq!(
            n, 0,
            "slot {s} was written before it moved: the test ran too late"
        );
        let s = s.to_string();
        common::cluster_cmd(&nodes[2], &["SETSLOT", &s, "IMPORTING", &ids[0]]);
        common::cluster_cmd(&nodes[0], &["SETSLOT", &s, "MIGRATING", &ids[2]]);
        for n in [&nodes[2], &nodes[0], &nodes[1]] {
            common::cluster_cmd(n, &["SETSLOT", &s, "NODE", &ids[2]]);
        }
    }
    let written_at_move: u64 = nodes.iter().map(held).sum();
    assert!(
        written_at_move < keys.len() as u64 * 3 / 4,
        "{written_at_move}"
    );
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let in_slots = |set: &[u16]| keys.iter().filter(|k| set.contains(&slot(k))).count();
    let (asks, moves) = (in_slots(&ask_slots), in_slots(&moved_slots));
    let line = t
        .lines()
        .find(|l| l.contains("cluster redirections followed"))
        .unwrap_or_else(|| panic!("no redirections: {t}"));
    // every key of a migrating slot is asked for; MOVED re-routes its slot, so at least one per
    // moved slot that had keys still to write and at most one per key
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.len(), 2, "{line}");
    assert_eq!(nums[1], asks, "{line}");
    assert!(
        nums[0] >= moved_slots.len().min(moves) && nums[0] <= moves,
        "{line}"
    );
    assert_eq!(nodes.iter().map(held).sum::<u64>(), keys.len() as u64);
    // each key on the node that owns (or imports) its slot, with the dump's value
    assert_keys_at_home(&loader, &nodes, &keys, |k| {
        let s = slot(k);
        if ask_slots.contains(&s) {
            1
        } else if moved_slots.contains(&s) {
            2
        } else {
            usize::from(s / 5462).min(2)
        }
    });
    // verify follows the cluster too: keys of slots still migrating are read from the importing
    // node (ASK), and once the migration is finished the slot map is read again (MOVED)
    let verify = || assert_verifies(&dump, &nodes[0], keys.len());
    verify();
    for &s in &ask_slots {
        for n in [&nodes[1], &nodes[0], &nodes[2]] {
            common::cluster_cmd(n, &["SETSLOT", &s.to_string(), "NODE", &ids[1]]);
        }
    }
    verify();
}
