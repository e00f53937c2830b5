//! AOF input (issue 15): `info`, `import`, `export` of real servers' append-only files — Redis 7.0
//! and 8.2 directories (RDB and AOF bases, a rewrite in the middle), a Redis 6.2 file with an RDB
//! preamble —, point-in-time cuts (`--until`) and damaged files.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A server persisting to an AOF (`appendfsync no`: written before each reply, never postponed).
fn aof_server(v: Version, preamble: bool, extra: &[&str]) -> Server {
    let mut args = vec![
        "--appendonly",
        "yes",
        "--appendfsync",
        "no",
        "--aof-use-rdb-preamble",
        if preamble { "yes" } else { "no" },
        "--auto-aof-rewrite-percentage",
        "0",
    ];
    args.extend_from_slice(extra);
    Server::start_opts(v, &args)
}

/// `BGREWRITEAOF`, returning once it is done.
fn rewrite(s: &Server) {
    let mut con = s.conn();
    redis::cmd("BGREWRITEAOF").query::<()>(&mut con).unwrap();
    wait_until(Duration::from_secs(30), || {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut con)
            .unwrap();
        info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
    });
}

/// A small deterministic generator (the writes differ per seed, the same on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` writes of every type, in dbs 0–2, with TTLs (and field TTLs on 8.2), streams with groups,
/// `MULTI` blocks; each command is checked to succeed.
fn writes(s: &Server, seed: u64, n: usize) {
    writes_in(s, seed, n, 3)
}

/// [`writes`] in dbs `0..dbs`.
fn writes_in(s: &Server, seed: u64, n: usize, dbs: u64) {
    let mut con = s.conn();
    let mut r = Rng(seed);
    let field_ttls = s.version == Version::V82;
    for i in 0..n {
        let db = r.below(dbs);
        redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
        let k = r.below(12);
        let cmds: Vec<Vec<String>> = match r.below(12) {
            0 => vec![vec!["SET".into(), format!("s:{k}"), format!("v{i}")]],
            1 => vec![vec!["INCRBY".into(), format!("n:{k}"), (i % 7).to_string()]],
            2 => vec![vec![
                "RPUSH".into(),
                format!("l:{k}"),
                format!("a{i}"),
                format!("b{i}"),
            ]],
            3 => vec![vec![
                "SADD".into(),
                format!("set:{k}"),
                format!("m{}", i % 9),
            ]],
            4 => vec![vec![
                "ZADD".into(),
                format!("z:{k}"),
                (i % 13).to_string(),
                format!("m{}", i % 5),
            ]],
            5 => vec![vec![
                "HSET".into(),
                format!("h:{k}"),
                format!("f{}", i % 4),
                format!("v{i}"),
            ]],
            6 => vec![vec![
                "XADD".into(),
                format!("x:{k}"),
                "*".into(),
                "f".into(),
                format!("{i}"),
            ]],
            7 => vec![
                vec![
                    "XADD".into(),
                    format!("x:{k}"),
                    "*".into(),
                    "g".into(),
                    i.to_string(),
                ],
                vec![
                    "XGROUP".into(),
                    "CREATE".into(),
                    format!("x:{k}"),
                    format!("g{i}"),
                    "0".into(),
                ],
                vec![
                    "XREADGROUP".into(),
                    "GROUP".into(),
                    format!("g{i}"),
                    "c1".into(),
                    "COUNT".into(),
                    "1".into(),
                    "STREAMS".into(),
                    format!("x:{k}"),
                    ">".into(),
                ],
            ],
            8 => vec![vec![
                "EXPIRE".into(),
                format!("s:{k}"),
                (1000 + i).to_string(),
            ]],
            9 => vec![vec![
                "SETEX".into(),
                format!("e:{k}"),
                (2000 + i).to_string(),
                "v".into(),
            ]],
            10 if field_ttls => vec![
                vec![
                    "HSET".into(),
                    format!("hf:{k}"),
                    "a".into(),
                    "1".into(),
                    "b".into(),
                    "2".into(),
                ],
                vec![
                    "HEXPIRE".into(),
                    format!("hf:{k}"),
                    (3000 + i).to_string(),
                    "FIELDS".into(),
                    "1".into(),
                    "a".into(),
                ],
            ],
            10 => vec![vec!["LPOP".into(), format!("l:{k}")]],
            _ => vec![
                vec!["MULTI".into()],
                vec!["INCR".into(), format!("n:{k}")],
                vec!["LPUSH".into(), format!("l:{k}"), format!("t{i}")],
                vec!["EXEC".into()],
            ],
        };
        for c in cmds {
            let mut cmd = redis::cmd(&c[0]);
            for a in &c[1..] {
                cmd.arg(a);
            }
            // a group created twice, a key of another type: the error is the server's answer,
            // recorded nowhere, and the dataset stays comparable
            let _ = cmd.query::<redis::Value>(&mut con);
        }
    }
}

/// Copies a directory (flat: an AOF directory) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A server that loads the AOF copied into `dir` (a directory holding `appendonlydir/` or
/// `appendonly.aof`).
fn server_on(v: Version, dir: &Path) -> Server {
    Server::start_opts(
        v,
        &[
            "--appendonly",
            "yes",
            "--aof-load-truncated",
            "yes",
            "--dir",
            dir.to_str().unwrap(),
        ],
    )
}

fn info_json(path: &Path) -> serde_json::Value {
    let o = rdbkit(&["info", path.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The source's AOF, copied: `(copy dir, path to give rdbkit)`.
fn snapshot_aof(s: &Server, tmp: &Path) -> (PathBuf, PathBuf) {
    let copy = tmp.join(format!("copy-{}", s.port));
    if s.dir().join("appendonlydir").exists() {
        copy_dir(&s.dir().join("appendonlydir"), &copy.join("appendonlydir"));
        (copy.clone(), copy.join("appendonlydir"))
    } else {
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(s.dir().join("appendonly.aof"), copy.join("appendonly.aof")).unwrap();
        (copy.clone(), copy.join("appendonly.aof"))
    }
}

#[test]
fn info_reads_the_base_and_the_commands() {
    if skip_if_missing(Version::V70) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = aof_server(Version::V70, true, &["--aof-timestamp-enabled", "yes"]);
    let mut con = s.conn();
    for i in 0..5 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query::<()>(&mut con)
            .unwrap();
    }
    rewrite(&s);
    // a new second: the next write is annotated (the rewrite's file starts without one)
    std::thread::sleep(Duration::from_millis(1100));
    redis::cmd("SELECT").arg(4).query::<()>(&mut con).unwrap();
    for i in 0..3 {
        redis::cmd("RPUSH")
            .arg("l")
            .arg(i)
            .query::<()>(&mut con)
            .unwrap();
    }
    let (_, dir) = snapshot_aof(&s, tmp.path());
    let v = info_json(&dir);
    assert_eq!(v["base"]["keys"], 5, "{v:#}");
    let aof = &v["aof"];
    assert_eq!(aof["commands_by_name"]["RPUSH"], 3, "{v:#}");
    assert_eq!(aof["commands_by_name"]["SELECT"], 1, "{v:#}");
    assert_eq!(aof["databases"], serde_json::json!([4]));
    assert_eq!(aof["files"].as_array().unwrap().len(), 2);
    assert!(aof["first_ts"].as_i64().unwrap() > 1_600_000_000);
    assert!(aof["truncated"].is_null());
    // the manifest names the same AOF; a cut last command is reported with its file and offset
    let manifest = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".manifest"))
        .unwrap();
    assert_eq!(info_json(&manifest)["aof"]["commands"], aof["commands"]);
    let incr = PathBuf::from(aof["files"][1]["path"].as_str().unwrap());
    let len = std::fs::metadata(&incr).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&incr).unwrap();
    f.set_len(len - 3).unwrap();
    let o = rdbkit(&["info", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("truncated tail: yes"), "{out}");
    assert!(out.contains("RPUSH 2"), "{out}");
    assert!(out.contains(&format!("{} offset", incr.display())), "{out}");
}

/// `rdbkit import PATH --target URL EXTRA…`, which must succeed; its output.
fn import_aof(path: &Path, url: &str, extra: &[&str]) -> String {
    let mut args = vec!["import", path.to_str().unwrap(), "--target", url, "--quiet"];
    args.extend_from_slice(extra);
    let o = rdbkit(&args);
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

/// Writes, a rewrite (its history kept in the manifest), more writes: imported into an empty
/// server, the AOF gives what a server started on a copy of it holds.
fn import_matches_loading(v: Version, preamble: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let s = aof_server(v, preamble, &["--aof-disable-auto-gc", "yes"]);
    writes(&s, 7, 300);
    rewrite(&s);
    writes(&s, 8, 300);
    let (_, dir) = snapshot_aof(&s, tmp.path());
    let (load_dir, _) = snapshot_aof(&s, &tmp.path().join("load"));
    let manifest = std::fs::read_to_string(
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".manifest"))
            .unwrap(),
    )
    .unwrap();
    assert!(manifest.contains("type h"), "{manifest}");
    let base = if preamble { ".base.rdb" } else { ".base.aof" };
    assert!(manifest.contains(base), "{manifest}");
    let target = Server::start(v);
    let out = import_aof(&dir, &target.url(), &[]);
    assert!(out.contains("commands: "), "{out}");
    let loaded = server_on(v, &load_dir);
    assert!(loaded.keyspace().values().sum::<u64>() > 20);
    assert_same_dataset(&target, &loaded);
    // export --format resp: the base as commands, then the recorded ones, piped into a server
    let resp = tmp.path().join("aof.resp");
    let d = dir.to_str().unwrap();
    let o = rdbkit(&[
        "export",
        d,
        "--format",
        "resp",
        "-o",
        resp.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let piped = Server::start(v);
    piped.pipe(&std::fs::read(&resp).unwrap());
    assert_same_dataset(&piped, &loaded);
    // JSON lines hold the base only, and say so; verify cannot be exact, and says so
    let o = rdbkit(&["export", d, "-o", tmp.path().join("j").to_str().unwrap()]);
    assert_eq!(o.status.success(), preamble, "{}", text(&o));
    let said = if preamble {
        "not folded"
    } else {
        "use --format resp"
    };
    assert!(text(&o).contains(said), "{}", text(&o));
    let o = rdbkit(&["verify", d, "--target", &target.url()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("could not be exact"), "{}", text(&o));
}

#[test]
fn import_of_a_redis_70_directory_equals_loading_it() {
    if skip_if_missing(Version::V70) {
        return;
    }
    import_matches_loading(Version::V70, true);
    import_matches_loading(Version::V70, false);
}

#[test]
fn import_of_a_redis_82_directory_equals_loading_it() {
    if skip_if_missing(Version::V82) {
        return;
    }
    import_matches_loading(Version::V82, true);
    import_matches_loading(Version::V82, false);
}

/// Redis 6.2: one file, an RDB preamble then commands, its last command cut short (dropped and
/// reported, as the server does with aof-load-truncated yes).
#[test]
fn import_of_a_redis_62_preamble_file_equals_loading_it() {
    if skip_if_missing(Version::V62) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = aof_server(Version::V62, true, &[]);
    writes(&s, 11, 300);
    rewrite(&s);
    writes(&s, 12, 200);
    let (_, file) = snapshot_aof(&s, tmp.path());
    let (load_dir, load_file) = snapshot_aof(&s, &tmp.path().join("load"));
    let head = std::fs::read(&file).unwrap();
    assert!(head.starts_with(b"REDIS"));
    for f in [&file, &load_file] {
        let len = std::fs::metadata(f).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(f)
            .unwrap()
            .set_len(len - 4)
            .unwrap();
    }
    let target = Server::start(Version::V62);
    let out = import_aof(&file, &target.url(), &[]);
    assert!(
        out.contains("left out, as Redis does with aof-load-truncated yes"),
        "{out}"
    );
    assert!(out.contains("RDB base"), "{out}");
    let loaded = server_on(Version::V62, &load_dir);
    assert!(loaded.keyspace().values().sum::<u64>() > 20);
    assert_same_dataset(&target, &loaded);
}

/// The offsets and times of the `#TS:` annotations of `file`.
fn annotations(file: &Path) -> Vec<(u64, i64)> {
    let data = std::fs::read(file).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = data[at..].windows(5).position(|w| w == b"\r\n#TS") {
        let start = at + i + 2;
        let end = start + data[start..].iter().position(|&b| b == b'\r').unwrap();
        let ts = std::str::from_utf8(&data[start + 4..end])
            .unwrap()
            .parse()
            .unwrap();
        out.push((start as u64, ts));
        at = end;
    }
    out
}

/// `--until`: writes over several seconds; the import cut before a chosen annotation equals a
/// server started on the AOF truncated at that annotation.
#[test]
fn until_cuts_at_an_annotation() {
    if skip_if_missing(Version::V70) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = aof_server(Version::V70, true, &["--aof-timestamp-enabled", "yes"]);
    writes(&s, 21, 100);
    rewrite(&s);
    for seed in 22..25 {
        std::thread::sleep(Duration::from_millis(1100));
        writes(&s, seed, 100);
    }
    let (_, dir) = snapshot_aof(&s, tmp.path());
    let (load_dir, _) = snapshot_aof(&s, &tmp.path().join("load"));
    let incr = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
            .unwrap()
    };
    let marks = annotations(&incr(&dir));
    assert!(marks.len() >= 2, "{marks:?}");
    let (cut, ts) = marks[1];
    let load_incr = incr(&load_dir.join("appendonlydir"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&load_incr)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let target = Server::start(Version::V70);
    let until = (ts - 1).to_string();
    let out = import_aof(&dir, &target.url(), &["--until", &until]);
    assert!(
        out.contains(&format!("stop at the annotation #TS:{ts}")),
        "{out}"
    );
    let loaded = server_on(Version::V70, &load_dir);
    assert_same_dataset(&target, &loaded);
    // before the base: refused, nothing written
    let empty = Server::start(Version::V70);
    let o = rdbkit(&[
        "import",
        dir.to_str().unwrap(),
        "--target",
        &empty.url(),
        "--until",
        "1000",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("before the AOF's base"), "{}", text(&o));
    assert!(empty.keyspace().is_empty());
}

/// `--checkpoint`: the first run killed while it applies the commands, the rerun continues where
/// the target's offset marker says (non-idempotent commands: a command applied twice or skipped
/// would show), and the end equals loading the AOF.
#[test]
fn checkpoint_resumes_the_commands_exactly() {
    killed_and_resumed(Version::V70, false, false);
}

/// The same with `--replace` onto a target that holds some of the commands' keys: the first run
/// clears them as it first writes them; the resume must not clear them again (they hold what the
/// first run applied).
#[test]
fn checkpoint_resume_with_replace_deletes_foreign_keys_once() {
    killed_and_resumed(Version::V82, true, false);
}

/// The same under `--rename`: the resume counts the keys the first run made and cleared under
/// their new names (the commands' `c:*` and `log`), and writes nothing under the old ones.
#[test]
fn checkpoint_resume_of_renamed_commands_with_replace() {
    killed_and_resumed(Version::V82, true, true);
}

/// Renames, in every database of `s`, the keys matching `pattern` (a `prefix*` or an exact name)
/// to `to` + the rest: the dataset an import with `--rename 'pattern=to*'` gives.
fn rename_on(s: &Server, pattern: &str, to: &str) {
    let mut con = s.conn();
    for db in 0..16 {
        redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut con).unwrap();
        for k in keys {
            let new = match pattern.strip_suffix('*') {
                Some(prefix) => format!("{to}{}", &k[prefix.len()..]),
                None => to.to_string(),
            };
            redis::cmd("RENAME")
                .arg(&k)
                .arg(new)
                .query::<()>(&mut con)
                .unwrap();
        }
    }
    redis::cmd("SELECT").arg(0).query::<()>(&mut con).unwrap();
}

/// An AOF whose commands end with 6,000 `INCR` and `RPUSH log` pairs, imported one round trip at a
/// time, SIGKILLed among them, then run again: the target equals a server loaded from the AOF
/// (but for the key `mine` when `foreign`: the target then held `log`, `c:3` and `mine` first).
/// With `renamed`, the import renames `c:*` to `cc:*` and `log` to `journal` (so do the target's
/// foreign keys and the loaded server compared with).
fn killed_and_resumed(v: Version, foreign: bool, renamed: bool) {
    if skip_if_missing(v) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = aof_server(v, true, &[]);
    writes(&s, 31, 100);
    rewrite(&s);
    let mut p = redis::pipe();
    for i in 0..6000 {
        p.cmd("INCR").arg(format!("c:{}", i % 7)).ignore();
        p.cmd("RPUSH").arg("log").arg(i).ignore();
    }
    p.query::<()>(&mut s.conn()).unwrap();
    let (_, dir) = snapshot_aof(&s, tmp.path());
    let (load_dir, _) = snapshot_aof(&s, &tmp.path().join("load"));
    let target = Server::start(v);
    if foreign {
        let mut p = redis::pipe();
        let (log, c3) = if renamed {
            ("journal", "cc:3")
        } else {
            ("log", "c:3")
        };
        p.cmd("RPUSH").arg(log).arg("foreign").ignore();
        p.cmd("SET").arg(c3).arg(1000).ignore();
        p.cmd("SET").arg("mine").arg("keep").ignore();
        p.query::<()>(&mut target.conn()).unwrap();
    }
    let renames = ["--rename", "c:*=cc:*", "--rename", "log=journal"];
    let ckpt = tmp.path().join("ckpt.json");
    let url = target.url();
    let mut args = vec![
        "import",
        dir.to_str().unwrap(),
        "--target",
        &url,
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--window-commands",
        "1",
        "--quiet",
    ];
    if foreign {
        args.push("--replace");
    }
    if renamed {
        args.extend_from_slice(&renames);
    }
    let run_dir = tmp.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let mut first = process::Running::start(&args, &run_dir);
    let marker = || -> Option<String> {
        redis::cmd("GET")
            .arg("__rdbkit_follow_offset__")
            .query(&mut target.conn())
            .unwrap()
    };
    wait_until(Duration::from_secs(30), || marker().is_some());
    first.signal("-KILL");
    first.wait_exit(Duration::from_secs(10));
    let at = marker().expect("killed while applying the commands");
    let llen: u64 = redis::cmd("LLEN")
        .arg("log")
        .query(&mut target.conn())
        .unwrap();
    assert!(llen < 6000, "the first run had finished ({llen}, {at})");
    let mut again = args[4..6].to_vec();
    if foreign {
        again.push("--replace");
    }
    if renamed {
        again.extend_from_slice(&renames);
        let old_names: u64 = redis::cmd("EXISTS")
            .arg("log")
            .arg("c:0")
            .query(&mut target.conn())
            .unwrap();
        assert_eq!(old_names, 0, "a key written under its old name");
    }
    let out = import_aof(&dir, &url, &again);
    assert!(out.contains("resuming the commands at"), "{out}");
    let loaded = server_on(v, &load_dir);
    if renamed {
        rename_on(&loaded, "c:*", "cc:");
        rename_on(&loaded, "log", "journal");
    }
    if foreign {
        equal_but_mine(&target, &loaded);
    } else {
        assert_same_dataset(&target, &loaded);
    }
}

/// Keys the target holds before the import, named as the AOF's: `base:list` is in the RDB
/// base, the `fresh:*` keys only in the commands (`fresh:*` in db 1 too), `mine` is not the AOF's.
fn foreign_keys(t: &Server) {
    let mut con = t.conn();
    let mut p = redis::pipe();
    p.cmd("RPUSH").arg("base:list").arg("foreign").ignore();
    p.cmd("RPUSH").arg("fresh:list").arg("foreign").ignore();
    p.cmd("SET").arg("fresh:n").arg(1000).ignore();
    p.cmd("SADD").arg("fresh:set").arg("zz").ignore();
    p.cmd("HSET")
        .arg("fresh:h")
        .arg("f")
        .arg("foreign")
        .ignore();
    p.cmd("SET").arg("mine").arg("keep").ignore();
    p.cmd("SELECT").arg(1).ignore();
    p.cmd("RPUSH").arg("fresh:list").arg("foreign1").ignore();
    p.query::<()>(&mut con).unwrap();
}

/// An 8.2 AOF (RDB base, then commands) whose commands add to keys the target of
/// [`foreign_keys`] already holds: `(tmp, aof dir, a server loaded from a copy)`.
fn aof_onto_foreign_keys() -> (tempfile::TempDir, PathBuf, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let s = aof_server(Version::V82, true, &[]);
    writes(&s, 41, 200);
    let mut con = s.conn();
    redis::cmd("RPUSH")
        .arg("base:list")
        .arg("b1")
        .query::<()>(&mut con)
        .unwrap();
    rewrite(&s);
    writes(&s, 42, 200);
    for db in [0, 1] {
        let mut p = redis::pipe();
        p.cmd("SELECT").arg(db).ignore();
        p.cmd("RPUSH").arg("base:list").arg("c1").ignore();
        p.cmd("RPUSH").arg("fresh:list").arg("a").arg("b").ignore();
        p.cmd("INCR").arg("fresh:n").ignore();
        p.cmd("SADD").arg("fresh:set").arg("x").ignore();
        p.cmd("SUNIONSTORE")
            .arg("fresh:u")
            .arg("fresh:set")
            .arg("fresh:set2")
            .ignore();
        p.cmd("HSET").arg("fresh:h").arg("g").arg("1").ignore();
        p.query::<()>(&mut con).unwrap();
    }
    let (_, dir) = snapshot_aof(&s, tmp.path());
    let (load_dir, _) = snapshot_aof(&s, &tmp.path().join("load"));
    let loaded = server_on(Version::V82, &load_dir);
    (tmp, dir, loaded)
}

/// The target equals `loaded` but for `mine`, which it still holds.
fn equal_but_mine(target: &Server, loaded: &Server) {
    let mut con = target.conn();
    let mine: Option<String> = redis::cmd("GET").arg("mine").query(&mut con).unwrap();
    assert_eq!(mine.as_deref(), Some("keep"));
    redis::cmd("DEL").arg("mine").query::<()>(&mut con).unwrap();
    assert_same_dataset(target, loaded);
    redis::cmd("SET")
        .arg("mine")
        .arg("keep")
        .query::<()>(&mut con)
        .unwrap();
}

#[test]
fn commands_onto_keys_the_target_holds_follow_the_conflict_options() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let (_tmp, dir, loaded) = aof_onto_foreign_keys();
    let target = Server::start(Version::V82);
    foreign_keys(&target);
    let before = target.digest();
    let d = dir.to_str().unwrap();
    let url = target.url();
    // no option: refused before anything is written (was: exit 0, the target's keys added to)
    let o = rdbkit(&["import", d, "--target", &url, "--quiet"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("refusing to apply the AOF's commands"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("nothing was written"), "{}", text(&o));
    assert_eq!(target.digest(), before);
    // --skip-existing cannot be exact for commands: refused, nothing written
    let o = rdbkit(&["import", d, "--target", &url, "--skip-existing", "--quiet"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("--skip-existing cannot import an AOF"),
        "{}",
        text(&o)
    );
    assert_eq!(target.digest(), before);
    // --replace: the AOF's keys replace the target's (first-touched keys deleted in the same
    // MULTI as their first command), other keys stay; a second --replace run gives the same
    let out = import_aof(&dir, &url, &["--replace"]);
    // held, touched by the commands, not in the base: fresh:{list,n,set,h} in db 0, fresh:list in db 1
    assert!(
        out.contains("--replace: 5 keys cleared on the target"),
        "{out}"
    );
    equal_but_mine(&target, &loaded);
    import_aof(&dir, &url, &["--replace"]);
    equal_but_mine(&target, &loaded);
    // and onto what an import left: refused again without an option
    let o = rdbkit(&["import", d, "--target", &url, "--quiet"]);
    assert!(!o.status.success(), "{}", text(&o));
    // --flush-target: exactly the AOF
    import_aof(&dir, &url, &["--flush-target"]);
    assert_same_dataset(&target, &loaded);
}

/// The conflict options with `--rename 'fresh:*=new:*'`: the target holds the renamed names of
/// the keys the commands touch; every run compares with a loaded server renamed the same way.
#[test]
fn renamed_commands_onto_keys_the_target_holds_follow_the_conflict_options() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let (_tmp, dir, loaded) = aof_onto_foreign_keys();
    rename_on(&loaded, "fresh:*", "new:");
    let target = Server::start(Version::V82);
    foreign_keys(&target);
    rename_on(&target, "fresh:*", "new:");
    let before = target.digest();
    let (d, url) = (dir.to_str().unwrap(), target.url());
    let rename = ["--rename", "fresh:*=new:*"];
    for option in [None, Some("--skip-existing")] {
        let mut args = vec!["import", d, "--target", &url, "--quiet"];
        args.extend_from_slice(&rename);
        args.extend(option);
        let o = rdbkit(&args);
        assert!(!o.status.success(), "{option:?}: {}", text(&o));
        assert_eq!(target.digest(), before, "{option:?} wrote");
    }
    let replace = [&rename[..], &["--replace"]].concat();
    let out = import_aof(&dir, &url, &replace);
    assert!(
        out.contains("--replace: 5 keys cleared on the target"),
        "{out}"
    );
    equal_but_mine(&target, &loaded);
    import_aof(&dir, &url, &replace);
    equal_but_mine(&target, &loaded);
    import_aof(&dir, &url, &[&rename[..], &["--flush-target"]].concat());
    assert_same_dataset(&target, &loaded);
}

/// An 8.2 AOF of db 0 written over several seconds (`aof-timestamp-enabled yes`), a copy to
/// import and a copy truncated at its last annotation to load: `(tmp, aof dir, load dir, the
/// annotation's time)`.
fn timed_aof() -> (tempfile::TempDir, PathBuf, PathBuf, i64) {
    let tmp = tempfile::tempdir().unwrap();
    let s = aof_server(Version::V82, true, &["--aof-timestamp-enabled", "yes"]);
    writes_in(&s, 41, 150, 1);
    rewrite(&s);
    for seed in 42..45 {
        std::thread::sleep(Duration::from_millis(1100));
        writes_in(&s, seed, 100, 1);
    }
    let (_, dir) = snapshot_aof(&s, tmp.path());
    let (load_dir, _) = snapshot_aof(&s, &tmp.path().join("load"));
    let incr = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
            .unwrap()
    };
    let marks = annotations(&incr(&dir));
    let (cut, ts) = marks[marks.len() - 1];
    std::fs::OpenOptions::new()
        .write(true)
        .open(incr(&load_dir.join("appendonlydir")))
        .unwrap()
        .set_len(cut)
        .unwrap();
    (tmp, dir, load_dir, ts)
}

/// One second before `ts`, as RFC 3339.
fn rfc3339_before(ts: i64) -> String {
    let utc = rdbkit::output::info::format_utc(ts - 1);
    format!("{}T{}Z", &utc[..10], &utc[11..19])
}

/// The README's point-in-time restore into a cluster: an 8.2 AOF cut with `--until` (an RFC 3339
/// time) into three primaries holds what a server started on the truncated AOF holds.
#[test]
fn until_into_a_cluster() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let (_tmp, dir, load_dir, ts) = timed_aof();
    let nodes = cluster();
    let out = import_aof(&dir, &nodes[0].url(), &["--until", &rfc3339_before(ts)]);
    assert!(
        out.contains(&format!("stop at the annotation #TS:{ts}")),
        "{out}"
    );
    let loaded = server_on(Version::V82, &load_dir);
    let want = snapshot(&loaded);
    assert!(want.len() > 20);
    let mut got = Snapshot::new();
    for n in &nodes {
        got.extend(snapshot(n));
    }
    assert_same_keys(&want, &got, &Default::default(), "cluster --until");
}

/// The README's point-in-time restore into the primary a Sentinel group names, over keys it
/// held (`--flush-target`), with `--checkpoint`.
#[test]
fn until_into_a_sentinel_primary() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let (tmp, dir, load_dir, ts) = timed_aof();
    let (primary, _replica, sentinels) = crate::ha::sentinel_setup();
    redis::cmd("SET")
        .arg("stale")
        .arg(1)
        .query::<()>(&mut primary.conn())
        .unwrap();
    let addrs: Vec<String> = sentinels.iter().map(|s| s.addr()).collect();
    let url = format!("redis+sentinel://{}/mymaster", addrs.join(","));
    let ckpt = tmp.path().join("pitr.ckpt");
    let until = rfc3339_before(ts);
    let args = [
        "--until",
        &until,
        "--flush-target",
        "--checkpoint",
        ckpt.to_str().unwrap(),
    ];
    let out = import_aof(&dir, &url, &args);
    assert!(
        out.contains(&format!("stop at the annotation #TS:{ts}")),
        "{out}"
    );
    let loaded = server_on(Version::V82, &load_dir);
    assert_same_dataset(&primary, &loaded);
}

/// Damage: the last file cut at every offset (a dropped tail or a clean end, never more), the
/// base cut (an error naming it and the offset: not the last file), bytes flipped (a result or an
/// error with the file and the offset); never a panic. An import of a damaged AOF writes nothing.
#[test]
fn damaged_aofs_are_errors_or_dropped_tails_never_panics() {
    if skip_if_missing(Version::V70) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = aof_server(Version::V70, false, &[]);
    writes(&s, 51, 6);
    rewrite(&s);
    writes(&s, 52, 6);
    let (_, dir) = snapshot_aof(&s, tmp.path());
    let full = info_json(&dir);
    let total = full["aof"]["commands"].as_u64().unwrap();
    let files: Vec<PathBuf> = full["aof"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| PathBuf::from(f["path"].as_str().unwrap()))
        .collect();
    let (base, incr) = (&files[0], &files[1]);
    let work = tmp.path().join("work");
    let damaged = |file: &Path, bytes: &[u8]| -> std::process::Output {
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&dir, &work);
        std::fs::write(work.join(file.file_name().unwrap()), bytes).unwrap();
        rdbkit(&["info", work.to_str().unwrap(), "--json"])
    };
    let no_panic = |o: &std::process::Output, what: &str| {
        assert!(
            matches!(o.status.code(), Some(0 | 1)) && !text(o).contains("panicked"),
            "{what}: {}",
            text(o)
        );
    };
    let incr_bytes = std::fs::read(incr).unwrap();
    let incr_name = incr.file_name().unwrap().to_string_lossy().into_owned();
    for cut in 0..incr_bytes.len() {
        let o = damaged(incr, &incr_bytes[..cut]);
        no_panic(&o, &format!("incr cut at {cut}"));
        assert!(o.status.success(), "incr cut at {cut}: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["aof"]["commands"].as_u64().unwrap() <= total);
        if let Some(off) = v["aof"]["truncated"]["offset"].as_u64() {
            assert!(off <= cut as u64, "cut at {cut}: {v:#}");
            let p = v["aof"]["truncated"]["path"].as_str().unwrap();
            assert!(p.ends_with(&incr_name), "{p}");
        }
    }
    let base_bytes = std::fs::read(base).unwrap();
    let base_name = base.file_name().unwrap().to_string_lossy().into_owned();
    let mut refused = 0;
    for cut in (0..base_bytes.len()).step_by(3) {
        let o = damaged(base, &base_bytes[..cut]);
        no_panic(&o, &format!("base cut at {cut}"));
        if !o.status.success() {
            refused += 1;
            let t = text(&o);
            assert!(
                t.contains(&base_name) && t.contains("offset") && t.contains("not the last file"),
                "base cut at {cut}: {t}"
            );
        }
    }
    assert!(refused > base_bytes.len() / 6, "{refused}");
    for at in (0..incr_bytes.len()).step_by(2) {
        let mut b = incr_bytes.clone();
        b[at] ^= 0x55;
        let o = damaged(incr, &b);
        no_panic(&o, &format!("incr byte {at} flipped"));
        if !o.status.success() {
            let t = text(&o);
            assert!(
                t.contains(&incr_name) && t.contains("offset"),
                "byte {at}: {t}"
            );
        }
    }
    // a damaged AOF imported: refused before anything is written
    let mut b = incr_bytes.clone();
    b[0] = b'+';
    let _ = std::fs::remove_dir_all(&work);
    copy_dir(&dir, &work);
    std::fs::write(work.join(&incr_name), &b).unwrap();
    let target = Server::start(Version::V70);
    let o = rdbkit(&["import", work.to_str().unwrap(), "--target", &target.url()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("nothing was written"), "{}", text(&o));
    assert!(target.keyspace().is_empty());
}

/// The corpus's AOF files (an RDB preamble then commands, from Redis's and Valkey's test
/// assets): imported, each equals an 8.2 server loading it as its AOF.
#[test]
fn corpus_aofs_import_as_a_server_loads_them() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let Some(root) = rdbkit::testing::corpus_dir() else {
        assert!(
            std::env::var_os("RDBKIT_REQUIRE_SERVERS").is_none(),
            "no corpus"
        );
        return;
    };
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let aofs: Vec<PathBuf> = manifest
        .lines()
        .skip(1)
        .map(|l| root.join(l.split('\t').next().unwrap()))
        .filter(|p| matches!(rdbkit::source::aof::detect(p), Ok(Some(_))))
        .collect();
    assert!(!aofs.is_empty(), "the corpus holds rdb-preamble.aof");
    let tmp = tempfile::tempdir().unwrap();
    for (i, f) in aofs.iter().enumerate() {
        let dir = tmp.path().join(i.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(f, dir.join("appendonly.aof")).unwrap();
        let target = Server::start(Version::V82);
        let out = import_aof(f, &target.url(), &[]);
        assert!(out.contains("commands: "), "{out}");
        let loaded = server_on(Version::V82, &dir);
        assert_same_dataset(&target, &loaded);
    }
}
