//! `rdbkit plan` / `import --dry-run` against real servers (the verdict checked by running the
//! import), `report`'s headline on a dump holding expired keys, and `info --cluster` on the
//! shards of a backup.

use crate::common::{self, rdbkit, text, Server, Version};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn int(s: &Server, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut s.conn())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("{field} in INFO {section}"))
        .trim()
        .parse()
        .unwrap()
}

fn dbsize(s: &Server) -> u64 {
    redis::cmd("DBSIZE").query(&mut s.conn()).unwrap()
}

/// A dump written by a real 8.2: `n` strings of 200 bytes (`key:0…`), a hash with field TTLs
/// and the function library `planlib`.
fn dump(dir: &Path, n: u64) -> PathBuf {
    let s = Server::start(Version::V82);
    let mut c = s.conn();
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(n)
        .arg("key")
        .arg(200)
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("HSET")
        .arg("fieldttl")
        .arg(&["a", "1", "b", "2"])
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("HPEXPIREAT")
        .arg("fieldttl")
        .arg(4_102_444_800_000u64)
        .arg("FIELDS")
        .arg(1)
        .arg("a")
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=planlib\nredis.register_function('planf', function() return 1 end)")
        .query::<()>(&mut c)
        .unwrap();
    s.save_to(dir.join("plan.rdb"))
}

/// `rdbkit plan DUMP --target URL --format json EXTRA…`: the exit code and the JSON.
fn plan(dump: &Path, url: &str, extra: &[&str]) -> (i32, Json, String) {
    let mut args = vec![
        "plan",
        dump.to_str().unwrap(),
        "--target",
        url,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let o = rdbkit(&args);
    let j: Json = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("plan JSON: {e}\n{}", text(&o)));
    (o.status.code().unwrap_or(-1), j, text(&o))
}

fn reasons(j: &Json) -> String {
    j["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Below the need the plan says no (OOM, or eviction under an eviction policy) and the import
/// indeed stops with OOM; above it the plan says yes and the import succeeds, and the projected
/// memory is within 10% of what the server's `used_memory` grew by.
#[test]
fn maxmemory_below_and_above_the_need() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = dump(tmp.path(), 20_000);
    let target = Server::start(Version::V82);
    let (code, j, out) = plan(&dump, &target.url(), &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(j["ok"], true);
    assert_eq!(j["keys"]["read"], 20_001);
    assert_eq!(j["keys"]["restore"], 20_001, "{out}");
    let need = j["primaries"][0]["need"].as_u64().unwrap();
    assert_eq!(j["primaries"][0]["keys"], 20_001);

    let used = int(&target, "memory", "used_memory");
    let set = |max: u64, policy: &str| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(max)
            .arg("maxmemory-policy")
            .arg(policy)
            .query::<()>(&mut target.conn())
            .unwrap();
    };
    set(used + need / 2, "noeviction");
    let (code, j, out) = plan(&dump, &target.url(), &[]);
    assert_eq!(code, 3, "{out}");
    let r = reasons(&j);
    assert!(r.contains("short by") && r.contains("OOM"), "{r}");
    set(used + need / 2, "allkeys-lru");
    let (code, j, out) = plan(&dump, &target.url(), &[]);
    assert_eq!(code, 3, "{out}");
    assert!(reasons(&j).contains("evict"), "{}", reasons(&j));
    // the text output gives the reasons first
    let o = rdbkit(&["plan", dump.to_str().unwrap(), "--target", &target.url()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        t.lines().nth(1).unwrap().contains("would NOT succeed") && t.contains("evict"),
        "{t}"
    );
    // the verdict holds: the import stops with OOM
    set(used + need / 2, "noeviction");
    let o = common::import(&dump, &target, &[]);
    assert!(
        !o.status.success() && text(&o).contains("OOM"),
        "{}",
        text(&o)
    );

    // above the need: yes, and the import succeeds
    let fresh = Server::start(Version::V82);
    let used = int(&fresh, "memory", "used_memory");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + need * 2)
        .query::<()>(&mut fresh.conn())
        .unwrap();
    let (code, j, out) = plan(&dump, &fresh.url(), &[]);
    assert_eq!((code, &j["ok"]), (0, &Json::Bool(true)), "{out}");
    let o = common::import(&dump, &fresh, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(dbsize(&fresh), 20_001);
    let grown = int(&fresh, "memory", "used_memory") - used;
    let err = (need as f64 - grown as f64) / grown as f64;
    eprintln!(
        "projected {need} B, used_memory grew by {grown} B ({:+.2}%)",
        err * 100.0
    );
    assert!(err.abs() < 0.10, "projected {need}, grew by {grown}");
}

/// Keys of the dump already on the target are counted exactly (more than one EXISTS pipeline),
/// a conflicting function library is a reason, the options turn them into notes, and a dry run
/// writes nothing.
#[test]
fn conflicts_are_counted_and_a_dry_run_writes_nothing() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = dump(tmp.path(), 3000);
    let target = Server::start(Version::V82);
    let mut c = target.conn();
    // 1234 keys of the dump (key:0 … key:2466, every other one) and 7 others
    let mut p = redis::pipe();
    for i in (0..2468).step_by(2) {
        p.cmd("SET").arg(format!("key:{i}")).arg("old").ignore();
    }
    for i in 0..7 {
        p.cmd("SET").arg(format!("other:{i}")).arg("x").ignore();
    }
    p.query::<()>(&mut c).unwrap();
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=planlib\nredis.register_function('planf', function() return 2 end)")
        .query::<()>(&mut c)
        .unwrap();
    let before = target.digest();
    let (code, j, out) = plan(&dump, &target.url(), &[]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(j["primaries"][0]["existing_keys"], 1234, "{out}");
    let r = reasons(&j);
    assert!(
        r.contains("db0 on") && r.contains("holds 1241 keys, 1234 of them keys of the dump"),
        "{r}"
    );
    assert!(r.contains("function library \"planlib\""), "{r}");
    // the import refuses the same way
    let o = common::import(&dump, &target, &[]);
    assert!(
        !o.status.success() && text(&o).contains("refusing to write into a non-empty target"),
        "{}",
        text(&o)
    );
    let (code, j, out) = plan(&dump, &target.url(), &["--replace"]);
    assert_eq!((code, &j["ok"]), (0, &Json::Bool(true)), "{out}");
    assert!(
        j["notes"].to_string().contains("--replace overwrites them"),
        "{out}"
    );
    let url = target.url();
    for extra in [
        &[][..],
        &["--flush-target"],
        &["--replace", "--format", "text"],
    ] {
        let mut args = vec![
            "import",
            dump.to_str().unwrap(),
            "--target",
            &url,
            "--dry-run",
        ];
        args.extend_from_slice(extra);
        let o = rdbkit(&args);
        let want = if extra.is_empty() { 3 } else { 0 };
        assert_eq!(o.status.code(), Some(want), "{extra:?}: {}", text(&o));
        assert_eq!(dbsize(&target), 1241, "{extra:?}");
    }
    assert_eq!(target.digest(), before, "a dry run wrote to the target");
}

/// A dump of Redis 8.2 into Redis 6.2: the keys the plan sends by commands (and why), and the
/// field-TTL hash it cannot hold, are what the import then does.
#[test]
fn keys_by_commands_are_what_the_import_does() {
    if common::skip_if_missing(Version::V82) || common::skip_if_missing(Version::V62) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = dump(tmp.path(), 100);
    let target = Server::start(Version::V62);
    let (code, j, out) = plan(&dump, &target.url(), &[]);
    assert_eq!(code, 3, "{out}");
    let r = reasons(&j);
    assert!(
        r.contains("1 value the target cannot hold") && r.contains("--field-ttls drop"),
        "{r}"
    );
    assert!(r.contains("no FUNCTION LOAD"), "{r}");
    let (code, j, out) = plan(&dump, &target.url(), &["--field-ttls", "drop"]);
    assert_eq!(code, 3, "{out}"); // the library still cannot go
    let restore = j["keys"]["restore"].as_u64().unwrap();
    let commands = j["keys"]["written"].as_u64().unwrap() - restore;
    assert_eq!(restore + commands, 101, "{out}");
    assert!(commands >= 1, "{out}");
    assert!(
        j["notes"].to_string().contains("written without their TTL"),
        "{out}"
    );
    let o = common::import(&dump, &target, &["--field-ttls", "drop"]);
    let t = text(&o);
    assert!(
        t.contains(&format!("({restore} by RESTORE, {commands} by commands)")),
        "plan said {restore} by RESTORE, {commands} by commands; the import: {t}"
    );
}

/// `report`'s headline gives the dump as saved and as it would load now: keys whose TTL passed
/// after the save are left out of the second, exactly (a server loading the dump agrees).
#[test]
fn report_headline_leaves_out_expired_keys() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(Version::V82);
    let mut c = s.conn();
    let mut p = redis::pipe();
    for i in 0..50 {
        p.cmd("SET")
            .arg(format!("live:{i}"))
            .arg("v".repeat(100))
            .ignore();
    }
    for i in 0..30 {
        p.cmd("SET")
            .arg(format!("short:{i}"))
            .arg("x".repeat(300))
            .arg("PX")
            .arg(800)
            .ignore();
    }
    p.query::<()>(&mut c).unwrap();
    let dump = s.save_to(tmp.path().join("expiring.rdb"));
    std::thread::sleep(Duration::from_millis(1000));
    let o = rdbkit(&["report", dump.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let j: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["totals"]["keys"], 80);
    assert_eq!(j["loaded_now"]["keys"], 50);
    // the memory figures are exact sums of the per-key rows
    let o = rdbkit(&["report", dump.to_str().unwrap(), "--format", "jsonl"]);
    let (mut all, mut live) = (0u64, 0u64);
    for row in String::from_utf8_lossy(&o.stdout).lines() {
        let r: Json = serde_json::from_str(row).unwrap();
        let m = r["memory"].as_u64().unwrap();
        all += m;
        if r["key"].as_str().unwrap().starts_with("live:") {
            live += m;
        }
    }
    assert_eq!(j["totals"]["memory"], all);
    assert_eq!(j["loaded_now"]["memory"], live);
    assert!(live < all);
    let o = rdbkit(&["report", dump.to_str().unwrap()]);
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    let mut lines = t.lines();
    assert!(lines.next().unwrap().starts_with("keys: 80 "), "{t}");
    let second = lines.next().unwrap();
    assert!(
        second.starts_with("as it would load now: keys: 50 ")
            && second.contains(&format!("({})", group(live)))
            && second.contains("30 keys already expired left out"),
        "{t}"
    );
    // a server loading the dump holds what the second figure says
    let loaded = Server::start_with_dump(Version::V82, &dump, &[]);
    assert_eq!(dbsize(&loaded), 50);
}

fn group(n: u64) -> String {
    rdbkit::output::report::group(n)
}

/// A 3-primary cluster: keys and memory per primary follow the slots, keys already on a primary
/// are counted there, and a primary whose maxmemory is too small is named alone.
#[test]
fn three_primary_cluster() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = dump(tmp.path(), 3000);
    let nodes = common::cluster();
    // common::cluster: primary i serves slots i*5462 ..= min((i+1)*5462, 16384) - 1
    let owner = |key: &str| usize::from(rdbkit::cluster::key_hash_slot(key.as_bytes()) / 5462);
    let names: Vec<String> = (0..3000)
        .map(|i| format!("key:{i}"))
        .chain(["fieldttl".to_string()])
        .collect();
    let mut want = [0u64; 3];
    for k in &names {
        want[owner(k)] += 1;
    }
    // 100 keys of the dump already there, each on its primary
    let mut existing = [0u64; 3];
    for k in names.iter().take(100) {
        let i = owner(k);
        existing[i] += 1;
        redis::cmd("SET")
            .arg(k)
            .arg("old")
            .query::<()>(&mut nodes[i].conn())
            .unwrap();
    }
    let (code, j, out) = plan(&dump, &nodes[0].url(), &["--replace"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(j["server"]["cluster"], true);
    let primaries = j["primaries"].as_array().unwrap();
    assert_eq!(primaries.len(), 3, "{out}");
    for (i, n) in nodes.iter().enumerate() {
        let p = primaries
            .iter()
            .find(|p| {
                p["address"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!(":{}", n.port))
            })
            .unwrap_or_else(|| panic!("primary {} in {out}", n.port));
        assert_eq!(p["keys"], want[i], "{out}");
        assert_eq!(p["existing_keys"], existing[i], "{out}");
        assert!(p["memory"].as_u64().unwrap() > want[i] * 200, "{out}");
    }
    // without --replace each primary holding keys of its own is a reason
    let (code, j, _) = plan(&dump, &nodes[1].url(), &[]);
    assert_eq!(code, 3);
    let r = reasons(&j);
    assert_eq!(j["reasons"].as_array().unwrap().len(), 3, "{r}");
    for (i, n) in nodes.iter().enumerate() {
        let line = format!(
            "holds {} keys, {} of them keys of the dump",
            existing[i], existing[i]
        );
        assert!(
            r.contains(&format!(":{}", n.port)) && r.contains(&line),
            "{r}"
        );
    }
    // the third primary's maxmemory below its share: it alone is named
    let need = primaries[2]["need"].as_u64().unwrap();
    let used = int(&nodes[2], "memory", "used_memory");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + need / 2)
        .query::<()>(&mut nodes[2].conn())
        .unwrap();
    let (code, j, out) = plan(&dump, &nodes[0].url(), &["--replace"]);
    assert_eq!(code, 3, "{out}");
    let r = reasons(&j);
    assert_eq!(j["reasons"].as_array().unwrap().len(), 1, "{r}");
    assert!(
        r.contains(&format!(":{}: the dump's keys need", nodes[2].port)),
        "{r}"
    );
}

/// `info --cluster` on `rdbkit split`'s shards: consistent; then with a key moved from shard 1
/// into shard 0 and a key of shard 2 copied there: two orphans and one duplicate, exactly.
#[test]
fn sharded_backup_checked_as_one() {
    use rdbkit::cluster::key_hash_slot;
    use rdbkit::{Decoder, Item};
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = dump(tmp.path(), 3000);
    let dir = tmp.path().join("shards");
    let o = rdbkit(&[
        "split",
        dump.to_str().unwrap(),
        "--cluster-slots",
        "3",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let shard = |i: usize| dir.join(format!("shard-{i}.rdb"));
    let info = |files: &[PathBuf]| {
        let mut args = vec!["info", "--cluster", "--json"];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        let o = rdbkit(&args);
        let j: Json = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("info JSON: {e}\n{}", text(&o)));
        (o.status.code().unwrap_or(-1), j)
    };
    let files: Vec<PathBuf> = (0..3).map(shard).collect();
    let (code, j) = info(&files);
    assert_eq!((code, &j["consistent"]), (0, &Json::Bool(true)), "{j}");
    assert_eq!((&j["orphans"], &j["duplicates"]), (&json(0), &json(0)));
    let equal = rdbkit::cluster::equal_shards(3);
    for (i, s) in j["shards"].as_array().unwrap().iter().enumerate() {
        for r in s["ranges"].as_array().unwrap() {
            let (a, b) = (r[0].as_u64().unwrap() as u16, r[1].as_u64().unwrap() as u16);
            assert!(equal[i].owns(a) && equal[i].owns(b), "{j}");
        }
    }
    // the key of median slot of a shard (inside its range, not at its edge)
    let keys = |i: usize| -> Vec<(u16, Vec<u8>)> {
        let data = std::fs::read(shard(i)).unwrap();
        let mut v: Vec<(u16, Vec<u8>)> = Decoder::new(&data)
            .filter_map(|it| match it.unwrap() {
                Item::Entry(e) => Some((key_hash_slot(&e.key), e.key.to_vec())),
                _ => None,
            })
            .collect();
        v.sort();
        v
    };
    let moved = keys(1)[keys(1).len() / 2].1.clone();
    let copied = keys(2)[keys(2).len() / 2].1.clone();
    // rewrite: shard 0 gains both, shard 1 loses the moved one
    let rewrite = |i: usize, drop: &[u8], add: &[(usize, &[u8])]| {
        let data = std::fs::read(shard(i)).unwrap();
        let mut w = rdbkit::write::RdbWriter::new(12);
        w.select_db(0);
        for it in Decoder::new(&data) {
            if let Item::Entry(e) = it.unwrap() {
                if e.key.as_ref() != drop {
                    w.entry(&e);
                }
            }
        }
        for (from, key) in add {
            let other = std::fs::read(shard(*from)).unwrap();
            for it in Decoder::new(&other) {
                if let Item::Entry(e) = it.unwrap() {
                    if e.key.as_ref() == *key {
                        w.entry(&e);
                    }
                }
            }
        }
        let out = tmp.path().join(format!("changed-{i}.rdb"));
        std::fs::write(&out, w.finish()).unwrap();
        out
    };
    let s0 = rewrite(0, b"", &[(1, &moved), (2, &copied)]);
    let s1 = rewrite(1, &moved, &[]);
    let (code, j) = info(&[s0.clone(), s1, shard(2)]);
    assert_eq!((code, &j["consistent"]), (1, &Json::Bool(false)), "{j}");
    assert_eq!(j["orphans"], 2, "{j}");
    assert_eq!(j["shards"][0]["orphans"], 2, "{j}");
    let listed: Vec<String> = j["orphan_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    let name = |k: &[u8]| String::from_utf8(k.to_vec()).unwrap();
    assert!(
        listed.contains(&name(&moved)) && listed.contains(&name(&copied)),
        "{j}"
    );
    assert_eq!(j["duplicates"], 1, "{j}");
    assert_eq!(j["duplicate_keys"][0]["key"], json(name(&copied)));
}

fn json(v: impl Into<Json>) -> Json {
    v.into()
}

/// `plan`'s estimated duration: none before any import on this machine; after one, the rates it
/// recorded (`$RDBKIT_STATE_DIR/rates.json`, the numbers of its summary) applied to the plan's
/// keys and payload bytes; a state file that cannot be read is a warning, never a failure.
#[test]
fn estimated_duration_from_this_machines_last_import() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = dump(tmp.path(), 5_000);
    let target = Server::start(Version::V82);
    let url = target.url();
    let state = tmp.path().join("state");
    let file = state.join("rates.json");
    let env = [("RDBKIT_STATE_DIR", state.as_os_str())];
    let run = |args: &[&str]| common::rdbkit_env(args, &env);
    let d = dump.to_str().unwrap();
    let plan_json = || {
        let o = run(&["plan", d, "--target", &url, "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        serde_json::from_slice::<Json>(&o.stdout).unwrap()
    };
    let plan_text = || {
        let o = run(&["plan", d, "--target", &url]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        text(&o)
    };
    // nothing measured yet
    let j = plan_json();
    assert_eq!(
        (&j["estimated_duration_s"], &j["estimate"]),
        (&Json::Null, &Json::Null),
        "{j}"
    );
    assert!(plan_text().contains("estimated duration: none (no import measured on this machine)\n"));
    // a state file that is not one: plan warns and knows none; the import warns, succeeds and
    // starts the file anew
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(&file, "{\"records\": [tru").unwrap();
    let t = plan_text();
    assert!(
        t.contains(&format!("warning: {}: not a rates file", file.display()))
            && t.contains("estimated duration: none"),
        "{t}"
    );
    let summary = tmp.path().join("summary.json");
    let o = run(&[
        "import",
        d,
        "--target",
        &url,
        "--quiet",
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(&format!("warning: {}: not a rates file", file.display())),
        "{t}"
    );
    assert_eq!(dbsize(&target), 5_001);
    let s: Json = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let k = &s["keys"];
    let rates: Json = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let records = rates["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{rates}");
    let r = &records[0];
    for (field, from_summary) in [
        ("keys", &k["written"]),
        ("keys_restore", &k["written_restore"]),
        ("keys_commands", &k["written_commands"]),
        ("payload_bytes", &k["bytes_written"]),
        ("dump_bytes", &k["bytes_read"]),
        ("elapsed_s", &k["elapsed_s"]),
    ] {
        assert_eq!(&r[field], from_summary, "{field}: {r} / {k}");
    }
    assert_eq!(r["keys"], 5_001);
    let (keys, payload, secs) = (
        r["keys"].as_f64().unwrap(),
        r["payload_bytes"].as_f64().unwrap(),
        r["elapsed_s"].as_f64().unwrap(),
    );
    assert_eq!(r["keys_per_s"].as_f64().unwrap(), keys / secs);
    assert_eq!(r["payload_bytes_per_s"].as_f64().unwrap(), payload / secs);
    assert_eq!(
        (r["target_kind"].as_str(), r["primaries"].as_u64()),
        (Some("standalone"), Some(1))
    );
    assert_eq!(r["rdbkit"], env!("CARGO_PKG_VERSION"));
    assert!(
        r["server"].as_str().unwrap().starts_with("Redis 8.2"),
        "{r}"
    );

    // the same import planned again into the emptied target: the arithmetic from that record
    redis::cmd("FLUSHALL")
        .query::<()>(&mut target.conn())
        .unwrap();
    redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query::<()>(&mut target.conn())
        .unwrap();
    let j = plan_json();
    let (pk, pb) = (
        j["keys"]["written"].as_u64().unwrap(),
        j["payload_bytes"].as_u64().unwrap(),
    );
    assert_eq!(pk, 5_001);
    // the projected payload is the import's, less its batches' SELECTs
    let written = k["bytes_written"].as_u64().unwrap();
    assert!(
        pb < written && (written - pb) as f64 / (written as f64) < 0.005,
        "projected {pb} B, written {written} B"
    );
    let by_keys = pk as f64 / r["keys_per_s"].as_f64().unwrap();
    let by_bytes = pb as f64 / r["payload_bytes_per_s"].as_f64().unwrap();
    let want = by_keys.max(by_bytes);
    assert_eq!(j["estimated_duration_s"].as_f64(), Some(want), "{j}");
    let e = &j["estimate"];
    assert_eq!(&e["record"], r);
    assert_eq!(
        e["bound_by"],
        if by_bytes > by_keys { "bytes" } else { "keys" }
    );
    assert_eq!(e["file"], file.to_str().unwrap());
    let t = plan_text();
    let shown = if want < 1.0 {
        format!("{want:.2} s")
    } else {
        format!("{want:.1} s")
    };
    assert!(
        t.contains(&format!("estimated duration: {shown} (5,001 keys at ")),
        "{shown}: {t}"
    );
}
