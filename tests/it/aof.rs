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
    let mut con = s.conn();
    let mut r = Rng(seed);
    let field_ttls = s.version == Version::V82;
    for i in 0..n {
        let db = r.below(3);
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

#[allow(dead_code)]
fn _used_later(s: &Server, d: &Path) {
    writes(s, 1, 1);
    let _ = server_on(s.version, d);
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
