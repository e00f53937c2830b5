//! `rdbkit verify` against real servers: pipelined reads over several connections with a window
//! many times smaller than the data, big values read in chunks, and each kind of difference found
//! (value, missing key, type, key TTL, field TTL) on a single 8.2 and on a 3-primary cluster.

use crate::common;

use common::{Server, Version};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn verify(dump: &Path, target: &Server, extra: &[&str]) -> Output {
    let url = target.url();
    let mut args = vec!["verify", dump.to_str().unwrap(), "--target", &url];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(&args)
        .output()
        .unwrap()
}

/// Far-future expiry (2100-01-01) plus `i` seconds.
fn at(i: u64) -> u64 {
    4_102_444_800_000 + i * 1000
}

/// Sends `cmds` pipelined, 1000 at a time.
fn run(s: &Server, cmds: Vec<redis::Cmd>) {
    let mut c = s.conn();
    for chunk in cmds.chunks(1000) {
        let mut p = redis::pipe();
        for cmd in chunk {
            p.add_command(cmd.clone()).ignore();
        }
        p.query::<()>(&mut c).unwrap();
    }
}

macro_rules! cmd {
    ($($a:expr),* $(,)?) => {{
        let mut c = redis::Cmd::new();
        $(c.arg($a);)*
        c
    }};
}

/// The big values, each larger than verify's chunk (1000 elements / 1 MiB).
const BIG_STRING: usize = 3 << 20;
const BIG_ELEMS: usize = 5000;

/// A dump written by 8.2: `n` small keys of every type (strings, lists, sets, zsets, hashes with
/// field TTLs on every third, a fifth of the keys with a TTL) and one big value of each type.
fn mixed_dump(dir: &Path, n: u64) -> PathBuf {
    let s = Server::start(Version::V82);
    let mut cmds = Vec::new();
    for i in 0..n {
        let k = |p: &str| format!("{p}:{i}");
        let key = match i % 8 {
            0..=3 => {
                cmds.push(cmd!(
                    &"SET",
                    &k("s"),
                    &format!("value-{i}-{}", "x".repeat((i % 50) as usize))
                ));
                k("s")
            }
            4 => {
                cmds.push(cmd!(&"RPUSH", &k("l"), &"a", &i, &"c", &format!("e{i}")));
                k("l")
            }
            5 => {
                cmds.push(cmd!(&"SADD", &k("t"), &"a", &i, &format!("m{i}")));
                k("t")
            }
            6 => {
                cmds.push(cmd!(
                    &"ZADD",
                    &k("z"),
                    &1.5,
                    &"a",
                    &(i as f64 / 3.0),
                    &format!("m{i}")
                ));
                k("z")
            }
            _ => {
                cmds.push(cmd!(
                    &"HSET",
                    &k("h"),
                    &"f1",
                    &i,
                    &"f2",
                    &"v2",
                    &"f3",
                    &format!("v{i}")
                ));
                if i % 3 == 0 {
                    cmds.push(cmd!(
                        &"HPEXPIREAT",
                        &k("h"),
                        &at(i),
                        &"FIELDS",
                        &2,
                        &"f1",
                        &"f2"
                    ));
                }
                k("h")
            }
        };
        if i % 5 == 0 {
            cmds.push(cmd!(&"PEXPIREAT", &key, &at(i)));
        }
    }
    cmds.push(cmd!(&"SET", &"big:string", &"s".repeat(BIG_STRING)));
    let elems: Vec<String> = (0..BIG_ELEMS).map(|j| format!("element-{j}")).collect();
    for part in elems.chunks(500) {
        let mut l = cmd!(&"RPUSH", &"big:list");
        let mut t = cmd!(&"SADD", &"big:set");
        let mut z = cmd!(&"ZADD", &"big:zset");
        let mut h = cmd!(&"HSET", &"big:hash");
        for (j, e) in part.iter().enumerate() {
            l.arg(e);
            t.arg(e);
            z.arg(j as f64 * 0.25).arg(e);
            h.arg(e).arg(j);
        }
        cmds.extend([l, t, z, h]);
        let mut ttl = cmd!(&"HPEXPIREAT", &"big:hash", &at(7), &"FIELDS", &part.len());
        ttl.arg(part);
        cmds.push(ttl);
    }
    for j in 0..2500 {
        cmds.push(cmd!(
            &"XADD",
            &"big:stream",
            &format!("{}-1", j + 1),
            &"f",
            &j
        ));
    }
    cmds.push(cmd!(&"XGROUP", &"CREATE", &"big:stream", &"g", &"100-1"));
    run(&s, cmds);
    s.save_to(dir.join("mixed.rdb"))
}

/// The changes every test makes to its target, and the MISMATCH line each must produce.
fn spoil(target: &[&Server], keys: u64) -> Vec<String> {
    let node = |k: &str| -> &Server {
        let slot = rdbkit::cluster::key_hash_slot(k.as_bytes());
        target[usize::from(slot / 5462).min(target.len() - 1) % target.len()]
    };
    let one = |k: &str, c: redis::Cmd| c.query::<()>(&mut node(k).conn()).unwrap();
    let last = |p: &str, r: u64| {
        (0..keys)
            .rev()
            .find(|i| i % 8 == r)
            .map(|i| format!("{p}:{i}"))
    };
    let s = last("s", 3).unwrap();
    let l = last("l", 4).unwrap();
    let z = last("z", 6).unwrap();
    // a string with a TTL (i % 5 == 0, i % 8 < 4) and a hash with field TTLs (i % 3 == 0, i % 8 == 7)
    let ttl_key = (0..keys)
        .rev()
        .find(|i| i % 40 == 0)
        .map(|i| format!("s:{i}"))
        .unwrap();
    // a list with a TTL that is not `l` (lists are compared by DUMP, then their TTL)
    let lttl = (0..keys).rev().filter(|i| i % 40 == 20).nth(1).unwrap();
    let lttl_key = format!("l:{lttl}");
    let fttl = (0..keys).rev().find(|i| i % 24 == 15).unwrap();
    let fttl_key = format!("h:{fttl}");
    one(&s, cmd!(&"SET", &s, &"other"));
    one(&l, cmd!(&"DEL", &l));
    one(&z, cmd!(&"DEL", &z));
    one(&z, cmd!(&"SET", &z, &"now a string"));
    one(&ttl_key, cmd!(&"PEXPIREAT", &ttl_key, &(at(0) + 3_600_000)));
    one(
        &lttl_key,
        cmd!(&"PEXPIREAT", &lttl_key, &(at(0) + 7_200_000)),
    );
    one(
        "big:stream",
        cmd!(&"XGROUP", &"SETID", &"big:stream", &"g", &"200-1"),
    );
    one(
        &fttl_key,
        cmd!(&"HPEXPIREAT", &fttl_key, &(at(0) + 5), &"FIELDS", &1, &"f2"),
    );
    one("big:list", cmd!(&"LSET", &"big:list", &4500, &"changed"));
    one(
        "big:string",
        cmd!(&"SETRANGE", &"big:string", &3_000_000, &"Z"),
    );
    one(
        "big:hash",
        cmd!(
            &"HPEXPIREAT",
            &"big:hash",
            &at(8),
            &"FIELDS",
            &1,
            &"element-4999"
        ),
    );
    let value_len = format!(
        "value-{}-{}",
        &s[2..],
        "x".repeat((s[2..].parse::<u64>().unwrap() % 50) as usize)
    )
    .len();
    let fttl_field_at = at(fttl);
    vec![
        format!("MISMATCH db0 \"{s}\": string value differs (5 vs {value_len} bytes)"),
        format!("MISMATCH db0 \"{l}\": missing on target"),
        format!("MISMATCH db0 \"{z}\": type string on target, zset in dump"),
        format!(
            "MISMATCH db0 \"{ttl_key}\": expiry {} on target, {} in dump",
            at(0) + 3_600_000,
            at(ttl_key[2..].parse().unwrap())
        ),
        format!(
            "MISMATCH db0 \"{fttl_key}\": field TTL of \"f2\" is {} on target, Some({fttl_field_at}) in dump",
            at(0) + 5
        ),
        format!(
            "MISMATCH db0 \"{lttl_key}\": expiry {} on target, {} in dump",
            at(0) + 7_200_000,
            at(lttl)
        ),
        "MISMATCH db0 \"big:stream\": consumer group g: last id 200-1 / 0 pending on target, 100-1 / 0 in dump".to_string(),
        "MISMATCH db0 \"big:list\": list element 4500 differs".to_string(),
        format!("MISMATCH db0 \"big:string\": string value differs at byte 3000000 ({BIG_STRING} bytes)"),
        format!(
            "MISMATCH db0 \"big:hash\": field TTL of \"element-4999\" is {} on target, Some({}) in dump",
            at(8),
            at(7)
        ),
    ]
}

/// The numbers in the first output line that starts with `prefix`.
fn line_numbers(out: &str, prefix: &str) -> Vec<u64> {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?}:\n{out}"));
    line.split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// `compared by DUMP payload: E keys equal, R with another payload read again by elements`
fn dump_stats(out: &str) -> (u64, u64) {
    let n = line_numbers(out, "compared by DUMP payload: ");
    (n[0], n[1])
}

/// `read over N connections: C commands in B batches, at most W reply bytes in flight …`
fn pipeline_stats(out: &str) -> (u64, u64, u64, u64) {
    let n = line_numbers(out, "read over ");
    (n[0], n[1], n[2], n[3])
}

fn assert_mismatches(out: &Output, want: &[String], equal: u64) {
    let t = text(out);
    assert!(!out.status.success(), "{t}");
    let got: Vec<&str> = t.lines().filter(|l| l.starts_with("MISMATCH")).collect();
    let mut want_sorted: Vec<&str> = want.iter().map(String::as_str).collect();
    let mut got_sorted = got.clone();
    want_sorted.sort();
    got_sorted.sort();
    assert_eq!(got_sorted, want_sorted, "{t}");
    let summary = format!("verified: {equal} keys equal, {} differ", want.len());
    assert!(t.contains(&summary), "{t}");
}

#[test]
fn verify_pipelines_many_windows_and_finds_each_difference() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let n = 40_000;
    let dump = mixed_dump(tmp.path(), n);
    let keys = n + 6;
    let target = Server::start_with_dump(Version::V82, &dump, &[]);
    // 64 KiB of replies in flight per connection: the dump's ~4 MB of values is 60 windows
    let small = ["--connections", "3", "--window-bytes", "65536"];
    let out = verify(&dump, &target, &small);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!("verified: {keys} keys equal, 0 differ")),
        "{t}"
    );
    let (conns, commands, batches, peak) = pipeline_stats(&t);
    assert_eq!(conns, 3, "{t}");
    assert!(batches >= 60, "{t}");
    // at least two commands per key; the big values go in many chunk reads
    assert!(commands >= 2 * keys + 5 * (BIG_ELEMS as u64 / 1000), "{t}");
    // the window was filled and never exceeded (big values are read in chunks of half of it)
    assert!((48 << 10..=64 << 10).contains(&peak), "{t}");
    // every small collection (half of the keys, and the big values whose payload fits in a
    // chunk) was settled by one DUMP: the target holds the payloads 8.2 wrote
    let (equal, again) = dump_stats(&t);
    assert!((n / 2..=n / 2 + 5).contains(&equal) && again == 0, "{t}");

    let want = spoil(&[&target], n);
    assert_mismatches(
        &verify(&dump, &target, &small),
        &want,
        keys - want.len() as u64,
    );
    // the defaults agree
    assert_mismatches(
        &verify(&dump, &target, &[]),
        &want,
        keys - want.len() as u64,
    );
}

#[test]
fn verify_on_a_cluster_reads_every_primary_and_finds_each_difference() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let n = 12_000;
    let dump = mixed_dump(tmp.path(), n);
    let keys = n + 6;
    let nodes = common::cluster();
    let url = nodes[0].url();
    let imp = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args([
            "import",
            dump.to_str().unwrap(),
            "--target",
            &url,
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(imp.status.success(), "{}", text(&imp));
    let small = ["--connections", "2", "--window-bytes", "32768"];
    let out = verify(&dump, &nodes[1], &small);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!("verified: {keys} keys equal, 0 differ")),
        "{t}"
    );
    let (conns, _, batches, _) = pipeline_stats(&t);
    assert_eq!(conns, 6, "two connections to each of three primaries: {t}");
    assert!(batches >= 20, "{t}");
    let refs: Vec<&Server> = nodes.iter().collect();
    let want = spoil(&refs, n);
    assert_mismatches(
        &verify(&dump, &nodes[2], &small),
        &want,
        keys - want.len() as u64,
    );
}

/// Two libraries, one of which calls `GET`, and 300 strings in db 0 (every shard of a
/// three-primary cluster holds some), written by 8.2.
fn functions_dump(dir: &Path) -> PathBuf {
    let s = Server::start(Version::V82);
    let mut c = s.conn();
    for lib in [
        "#!lua name=rdbkit_get\nredis.register_function('rdbkit_get', function(keys, args) return redis.call('GET', keys[1]) end)",
        "#!lua name=rdbkit_two\nredis.register_function{function_name='rdbkit_two', callback=function(keys, args) return 2 end, flags={'no-writes'}}",
    ] {
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg(lib)
            .query::<String>(&mut c)
            .unwrap();
    }
    run(
        &s,
        (0..300)
            .map(|i| cmd!(&"SET", &format!("f:{i}"), &format!("v{i}")))
            .collect(),
    );
    s.save_to(dir.join("functions.rdb"))
}

#[test]
fn functions_reach_every_cluster_primary_and_verify_names_a_primary_that_lacks_one() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = functions_dump(tmp.path());
    let nodes = common::cluster();
    let imp = common::rdbkit(&[
        "import",
        dump.to_str().unwrap(),
        "--target",
        &nodes[0].url(),
        "--quiet",
    ]);
    assert!(imp.status.success(), "{}", text(&imp));
    // FCALL with a key of each shard, on the primary that owns it
    for (i, node) in nodes.iter().enumerate() {
        let k = (0..300)
            .map(|k| format!("f:{k}"))
            .find(|k| usize::from(rdbkit::cluster::key_hash_slot(k.as_bytes()) / 5462) == i)
            .unwrap();
        let got: String = redis::cmd("FCALL")
            .arg("rdbkit_get")
            .arg(1)
            .arg(&k)
            .query(&mut node.conn())
            .unwrap_or_else(|e| panic!("FCALL on primary {i} (port {}): {e}", node.port));
        assert_eq!(got, format!("v{}", &k[2..]), "primary {i}");
        let two: i64 = redis::cmd("FCALL_RO")
            .arg("rdbkit_two")
            .arg(1)
            .arg(&k)
            .query(&mut node.conn())
            .unwrap();
        assert_eq!(two, 2, "primary {i}");
    }
    let ok = verify(&dump, &nodes[1], &[]);
    let t = text(&ok);
    assert!(ok.status.success(), "{t}");
    assert!(t.contains("verified: 300 keys equal, 0 differ"), "{t}");
    assert!(
        t.contains(
            "function libraries: 2 of the dump checked on 3 primaries, 0 missing or different"
        ),
        "{t}"
    );

    // one primary loses a library, another holds other code under the name of the second
    redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg("rdbkit_get")
        .query::<()>(&mut nodes[2].conn())
        .unwrap();
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg("#!lua name=rdbkit_two\nredis.register_function('rdbkit_two', function(keys, args) return 3 end)")
        .query::<String>(&mut nodes[0].conn())
        .unwrap();
    let bad = verify(&dump, &nodes[0], &[]);
    let t = text(&bad);
    assert!(!bad.status.success(), "{t}");
    let mut got: Vec<&str> = t.lines().filter(|l| l.starts_with("MISMATCH")).collect();
    got.sort();
    assert_eq!(
        got,
        [
            format!(
                "MISMATCH function library \"rdbkit_get\" missing on redis://127.0.0.1:{}",
                nodes[2].port
            ),
            format!(
                "MISMATCH function library \"rdbkit_two\" on redis://127.0.0.1:{} has other code than the dump's",
                nodes[0].port
            ),
        ],
        "{t}"
    );
    // the keys are still equal: only the libraries fail the verify
    assert!(t.contains("verified: 300 keys equal, 0 differ"), "{t}");
    assert!(
        t.contains("2 function libraries missing or different on the target"),
        "{t}"
    );
}

/// A dump written by Redis 6.2 holds ziplists, which 8.2 turns into listpacks on load: the DUMP
/// payloads differ, so the keys are read again element by element (and equal), and after 64 such
/// lists verify stops asking DUMP for them. A changed element is found either way.
#[test]
fn verify_reads_again_what_the_target_encodes_otherwise() {
    if common::skip_if_missing(Version::V62) || common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let n = 5000u64;
    let old = Server::start(Version::V62);
    run(
        &old,
        (0..n)
            .map(|i| cmd!(&"RPUSH", &format!("l:{i}"), &"a", &i, &format!("e{i}")))
            .chain((0..500).map(|i| cmd!(&"SADD", &format!("i:{i}"), &1, &i, &(i + 7))))
            .collect(),
    );
    let dump = old.save_to(tmp.path().join("old.rdb"));
    let target = Server::start(Version::V82);
    let imp = common::rdbkit(&[
        "import",
        dump.to_str().unwrap(),
        "--target",
        &target.url(),
        "--quiet",
    ]);
    assert!(imp.status.success(), "{}", text(&imp));
    // one connection and a small window: the decoder is at most a few batches ahead of the replies
    let small = ["--connections", "1", "--window-bytes", "16384"];
    let out = verify(&dump, &target, &small);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!("verified: {} keys equal, 0 differ", n + 500)),
        "{t}"
    );
    let (equal, again) = dump_stats(&t);
    // intsets load as intsets: their payloads are equal
    assert!(equal >= 500, "{t}");
    // lists: 64 differed, then the ones queued meanwhile; the rest went by element reads alone
    assert!((64..=2500).contains(&again), "{t}");

    // an element changed in a list read again after DUMP and in one read by elements only
    for k in ["l:1", &format!("l:{}", n - 1)] {
        redis::cmd("LSET")
            .arg(k)
            .arg(2)
            .arg("changed")
            .query::<()>(&mut target.conn())
            .unwrap();
    }
    let out = verify(&dump, &target, &small);
    assert_mismatches(
        &out,
        &[
            "MISMATCH db0 \"l:1\": list element 2 differs".to_string(),
            format!("MISMATCH db0 \"l:{}\": list element 2 differs", n - 1),
        ],
        n + 500 - 2,
    );
}

/// `verify --sample N` checks exactly N keys chosen at random: with N the dump's key count it
/// finds the one key changed on the target; with a smaller N it checks exactly N. `--format json`
/// gives the counts as one object.
#[test]
fn verify_sample_finds_a_corrupted_key_and_json_has_exact_counts() {
    let Some((_tmp, dump, server)) = common::loaded_populated(1000) else {
        return;
    };
    redis::cmd("SET")
        .arg("key:5")
        .arg("corrupted")
        .query::<()>(&mut server.conn())
        .unwrap();
    let json = |o: &Output| -> serde_json::Value {
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
    };
    let o = verify(&dump, &server, &["--sample", "3000", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["matched"], 2999, "{j}");
    assert_eq!(j["mismatched"], 1, "{j}");
    assert_eq!(j["skipped"], 0, "{j}");
    assert_eq!(j["sample"]["keys"], 3000, "{j}");
    assert_eq!(j["sample"]["of"], 3000, "{j}");
    assert_eq!(j["mismatches"][0]["key"], "db0 \"key:5\"", "{j}");
    // a sample of 10: exactly 10 compared, the rest not
    let o = verify(
        &dump,
        &server,
        &["--sample", "10", "--seed", "7", "--format", "json"],
    );
    let j = json(&o);
    let compared = j["matched"].as_u64().unwrap() + j["mismatched"].as_u64().unwrap();
    assert_eq!((compared, j["skipped"].as_u64()), (10, Some(2990)), "{j}");
}
