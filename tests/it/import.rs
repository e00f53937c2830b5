//! Proof for the importer, against real servers: digests equal to the server loading the dump
//! itself (RESTORE and command modes), `verify` agreeing, cross-version fallbacks, modules,
//! conflict rules, filters, resume after a kill, reconnects under CLIENT KILL, and values larger
//! than the target's bulk limit.

use crate::common;
use crate::common::import;

use common::{rdbkit, text, Server, Version};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn verify(dump: &Path, target: &Server, extra: &[&str]) -> Output {
    let url = target.url();
    let mut args = vec!["verify", dump.to_str().unwrap(), "--target", &url];
    args.extend_from_slice(extra);
    rdbkit(&args)
}

fn reset(s: &Server) {
    let mut c = s.conn();
    redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
    redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query::<()>(&mut c)
        .unwrap();
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn testdata_dumps() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rdb"))
            .collect();
    v.sort();
    v
}

/// Corpus dumps 8.2 loads with what is installed here (same selection as tests/roundtrip.rs).
fn corpus_dumps() -> Vec<PathBuf> {
    let Some(root) = rdbkit::testing::corpus_dir() else {
        return Vec::new();
    };
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (path, loads, dup) = (col("path"), col("loads_in_8.2"), col("dup_of"));
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f.get(dup).is_none_or(|d| d.is_empty()))
        .filter(|f| f[loads] == "yes" || f[loads] == "yes(with falkordb.so)")
        .map(|f| root.join(f[path]))
        // an AOF (an RDB preamble, then commands) is imported with its commands, which a server
        // loading it as a dump ignores: tests/it/aof.rs compares it with a server loading an AOF
        .filter(|p| !matches!(rdbkit::source::aof::detect(p), Ok(Some(_))))
        .collect()
}

/// Imports one dump in RESTORE (auto) and command modes; both must equal the dump loaded by 8.2,
/// and `verify` must agree.
fn check_dump(target: &Server, dump: &Path) -> Result<(), String> {
    let loader = Server::with_falkordb(Some(dump), &[]);
    for mode in ["auto", "commands"] {
        reset(target);
        let out = import(dump, target, &["--mode", mode]);
        if !out.status.success() {
            return Err(format!("import --mode {mode} failed:\n{}", text(&out)));
        }
        if let Err(e) = common::same_dataset(&loader, target) {
            return Err(format!(
                "--mode {mode}: differs from 8.2 loading the dump:\n{e}\n{}",
                text(&out)
            ));
        }
        let v = verify(dump, target, &[]);
        if !v.status.success() {
            return Err(format!("verify after --mode {mode}:\n{}", text(&v)));
        }
    }
    Ok(())
}

#[test]
fn every_dump_imports_to_an_equal_dataset_in_both_modes() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let target = Server::with_falkordb(None, &[]);
    let dumps: Vec<PathBuf> = testdata_dumps().into_iter().chain(corpus_dumps()).collect();
    let failures: Vec<String> = dumps
        .iter()
        .filter_map(|d| {
            check_dump(&target, d)
                .err()
                .map(|e| format!("{}: {e}", d.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} dumps:\n{}",
        failures.len(),
        dumps.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} dumps imported to equal datasets (RESTORE and commands)",
        dumps.len()
    );
}

/// Keys of the 8.2 all-types dump that older servers cannot hold: hashes with field TTLs, and
/// module values (FalkorDB graphs, vector sets).
fn unrepresentable_before_74(dump: &Path) -> Vec<String> {
    let data = std::fs::read(dump).unwrap();
    rdbkit::Decoder::new(&data)
        .filter_map(|i| match i.unwrap() {
            rdbkit::Item::Entry(e) => {
                let v = e.value().unwrap();
                let ttl_hash =
                    matches!(&v, rdbkit::Value::Hash(f) if f.iter().any(|f| f.expire_ms.is_some()));
                (ttl_hash || e.type_id == 7)
                    .then(|| format!("db{} {}", e.db, rdbkit::model::escape_bytes(&e.key)))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn dump_from_82_into_older_servers_falls_back_to_commands_and_reports_the_rest() {
    let dump = testdata("redis82_all_types_v12.rdb");
    let expected_missing = unrepresentable_before_74(&dump);
    assert!(expected_missing.len() >= 4, "{expected_missing:?}");
    for v in [Version::V70, Version::V62] {
        if common::skip_if_missing(v) {
            continue;
        }
        let target = Server::start(v);
        let out = import(&dump, &target, &["--skip-modules"]);
        let t = text(&out);
        // field-TTL hashes cannot be represented: reported per key, exit non-zero
        assert!(!out.status.success(), "{v:?}: import should fail\n{t}");
        assert!(t.contains("hash field TTLs need Redis 7.4+"), "{v:?}\n{t}");
        assert!(t.contains("by commands"), "{t}");
        // verify: exactly the unrepresentable keys differ, everything else is equal
        let vt = text(&verify(&dump, &target, &[]));
        // 6.2 has no functions: the dump's two libraries are missing there, and verify says so
        let libs = vt
            .lines()
            .filter(|l| l.starts_with("MISMATCH function library"))
            .count();
        assert_eq!(libs, if v == Version::V62 { 2 } else { 0 }, "{v:?}:\n{vt}");
        let mut missing: Vec<String> = vt
            .lines()
            .filter_map(|l| l.strip_prefix("MISMATCH db"))
            .map(|l| format!("db{l}"))
            .map(|l| l.split(": ").next().unwrap().to_string())
            .collect();
        missing.sort();
        let mut want = expected_missing.clone();
        want.sort();
        assert_eq!(missing, want, "{v:?}: verify output:\n{vt}");
        // the keys the older server holds digest like on 8.2 (zsets aside: digests of fractional
        // scores are formatted differently across versions; verify compared those by value)
        let loader = Server::with_falkordb(Some(&dump), &[]);
        let data = std::fs::read(&dump).unwrap();
        for item in rdbkit::Decoder::new(&data) {
            if let rdbkit::Item::Entry(e) = item.unwrap() {
                let name = format!("db{} {}", e.db, rdbkit::model::escape_bytes(&e.key));
                if want.contains(&name) || e.value_type() == rdbkit::ValueType::SortedSet {
                    continue;
                }
                let (a, b) = (
                    digest_value(&loader, e.db, &e.key),
                    digest_value(&target, e.db, &e.key),
                );
                assert_eq!(a, b, "{v:?}: {name}");
            }
        }
    }
}

fn digest_value(s: &Server, db: u64, key: &[u8]) -> String {
    let mut c = s.conn();
    redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
    let mut d: Vec<String> = redis::cmd("DEBUG")
        .arg("DIGEST-VALUE")
        .arg(key)
        .query(&mut c)
        .unwrap();
    d.pop().unwrap()
}

#[test]
fn dump_from_62_into_82_goes_by_restore() {
    let Some((dump, loader)) = common::loaded(Version::V82, "redis62_all_types_v9.rdb") else {
        return;
    };
    let target = Server::start(Version::V82);
    let out = import(&dump, &target, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("by RESTORE, 0 by commands"), "{t}");
    common::assert_same_dataset(&target, &loader);
    assert!(verify(&dump, &target, &[]).status.success());
}

#[test]
fn module_values_go_to_targets_with_the_module_and_are_reported_otherwise() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let dump = testdata("redis82_all_types_v12.rdb");
    let loader = Server::with_falkordb(Some(&dump), &[]);
    let with = Server::with_falkordb(None, &[]);
    assert!(import(&dump, &with, &[]).status.success());
    let data = std::fs::read(&dump).unwrap();
    let graphs = rdbkit::Decoder::new(&data)
        .filter(|i| matches!(i, Ok(rdbkit::Item::Entry(e)) if e.type_id == 7))
        .count();
    assert!(graphs >= 2);
    // graphs have no digest callback: same_dataset compares their DUMP bytes
    common::assert_same_dataset(&with, &loader);
    // without FalkorDB: graph keys reported per key, run fails unless --skip-modules
    let without = Server::start(Version::V82);
    let out = import(&dump, &without, &[]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("module type graphdata not loaded on the target"),
        "{t}"
    );
    reset(&without);
    let out = import(&dump, &without, &["--skip-modules"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("module missing on target"));
}

#[test]
fn conflicts_replace_skip_existing_remap_and_filters() {
    let Some((dump, loader)) = common::loaded(Version::V82, "redis82_multiple_dbs_v12.rdb") else {
        return;
    };
    let target = Server::start(Version::V82);
    let mut c = target.conn();
    // a non-empty target db is refused, naming the counts, and nothing is written
    redis::cmd("SELECT").arg(1).query::<()>(&mut c).unwrap();
    redis::cmd("SET")
        .arg("db1:str")
        .arg("theirs")
        .query::<()>(&mut c)
        .unwrap();
    let out = import(&dump, &target, &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("db1 holds 1 key;"), "{}", text(&out));
    assert_eq!(target.keyspace().values().sum::<u64>(), 1);
    // --skip-existing keeps their value and counts it
    let out = import(&dump, &target, &["--skip-existing"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("skipped: 1 (exists on target"),
        "{}",
        text(&out)
    );
    let v: String = redis::cmd("GET").arg("db1:str").query(&mut c).unwrap();
    assert_eq!(v, "theirs");
    // --replace overwrites: now equal to the dump
    let out = import(&dump, &target, &["--replace"]);
    assert!(out.status.success(), "{}", text(&out));
    common::assert_same_dataset(&target, &loader);
    // --db-map moves db 1 to db 9; --db restricts; --type and --key filter
    reset(&target);
    let out = import(&dump, &target, &["--db", "1", "--db-map", "1:9"]);
    assert!(out.status.success(), "{}", text(&out));
    let ks = target.keyspace();
    assert_eq!(ks.keys().copied().collect::<Vec<_>>(), vec![9], "{ks:?}");
    assert_eq!(ks[&9], loader.keyspace()[&1]);
    reset(&target);
    let out = import(&dump, &target, &["--type", "string", "--key", "*str*"]);
    assert!(out.status.success(), "{}", text(&out));
    let data = std::fs::read(&dump).unwrap();
    let want = rdbkit::Decoder::new(&data)
        .filter(|i| matches!(i, Ok(rdbkit::Item::Entry(e)) if e.value_type() == rdbkit::ValueType::String && rdbkit::filter::glob_match(b"*str*", &e.key)))
        .count() as u64;
    assert!(want > 0);
    assert_eq!(target.keyspace().values().sum::<u64>(), want);
    // --flush-target empties the written dbs first
    redis::cmd("SELECT").arg(0).query::<()>(&mut c).unwrap();
    redis::cmd("SET")
        .arg("stray")
        .arg("x")
        .query::<()>(&mut c)
        .unwrap();
    let out = import(&dump, &target, &["--flush-target"]);
    assert!(out.status.success(), "{}", text(&out));
    common::assert_same_dataset(&target, &loader);
}

#[test]
fn interrupted_import_resumes_from_its_checkpoint() {
    let Some((tmp, dump, loader)) = common::loaded_populated(600_000) else {
        return;
    };
    let target = Server::start(Version::V82);
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
        "20",
        "--connections",
        "1",
        "--window-commands",
        "200",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // kill it once the checkpoint shows progress but well before the end
    let start = Instant::now();
    let offset = loop {
        let off = std::fs::read_to_string(&cp)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["inputs"][0]["offset"].as_u64())
            .unwrap_or(0);
        if off > 0 {
            break off;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "import finished before it could be interrupted"
        );
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let len = std::fs::metadata(&dump).unwrap().len();
    assert!(
        offset < len,
        "checkpoint {offset} should be inside the {len}-byte dump"
    );
    let partial: u64 = target.keyspace().values().sum();
    assert!(
        partial < loader.keyspace().values().sum::<u64>(),
        "killed too late: {partial} keys"
    );
    // the rerun continues from the checkpoint (the target now holds keys: allowed when resuming)
    let out = rdbkit(&args[..args.len() - 4]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("after dump offset"), "{t}");
    assert!(t.contains("done in an earlier run"), "{t}");
    common::assert_same_dataset(&target, &loader);
}

#[test]
fn import_survives_its_connections_being_killed() {
    let Some((_tmp, dump, loader)) = common::loaded_populated(600_000) else {
        return;
    };
    let target = Server::start(Version::V82);
    let url = target.url();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args([
            "import",
            dump.to_str().unwrap(),
            "--target",
            &url,
            "--quiet",
            "--window-commands",
            "500",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut kills = 0;
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(150));
        if let Ok(mut c) = redis::Client::open(url.as_str()).unwrap().get_connection() {
            let killed: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes")
                .query(&mut c)
                .unwrap_or(0);
            if killed > 0 {
                kills += 1;
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        kills >= 2,
        "only {kills} kills landed during the import; make the dump bigger"
    );
    assert!(t.contains("reconnects:"), "{t}");
    if let Err(e) = common::same_dataset(&target, &loader) {
        panic!("{e}\n{t}");
    }
}

#[test]
fn value_over_the_bulk_limit_goes_by_commands_in_chunks() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    // uncompressed, so the RESTORE payload really is larger than the target's 1 MB limit
    let src = Server::start_opts(Version::V82, &["--rdbcompression", "no"]);
    let mut c = src.conn();
    for chunk in 0..10u64 {
        let items: Vec<String> = (0..1000u64)
            .map(|i| {
                format!(
                    "{:0200}",
                    (chunk * 1000 + i).wrapping_mul(0x9e3779b97f4a7c15)
                )
            })
            .collect();
        redis::cmd("RPUSH")
            .arg("biglist")
            .arg(&items)
            .query::<()>(&mut c)
            .unwrap();
    }
    redis::cmd("SET")
        .arg("small")
        .arg("v")
        .query::<()>(&mut c)
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dump = src.save_to(tmp.path().join("biglist.rdb"));
    let target = Server::start_opts(Version::V82, &["--proto-max-bulk-len", "1mb"]);
    let out = import(&dump, &target, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("1 by RESTORE, 1 by commands"), "{t}");
    common::assert_same_dataset(&target, &src);
}

/// A test CA, a server certificate for `localhost`/127.0.0.1 and a client certificate, both signed
/// by it (openssl CLI): (ca, server cert, server key, client cert, client key).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (apt-get install openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=rdbkit test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    // extensions make it an X.509 v3 certificate (rustls refuses v1)
    std::fs::write(
        dir.join("cli.cnf"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "cli.key",
        "-out",
        "cli.csr",
        "-subj",
        "/CN=rdbkit test client",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "cli.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cli.pem",
        "-days",
        "2",
        "-extfile",
        "cli.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("srv.pem"),
        dir.join("srv.key"),
        dir.join("cli.pem"),
        dir.join("cli.key"),
    )
}

/// Over TLS (`rediss://`, Debian's 7.0 is built with TLS) the dataset equals the one written over
/// plain TCP. The server's certificate is checked against `--tls-ca`, and refused without it
/// unless `--tls-insecure`; the server requires a client certificate (`--tls-cert`/`--tls-key`).
#[test]
fn tls_import_equals_plain_import() {
    if common::skip_if_missing(Version::V70) || common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key, cli_cert, cli_key) = tls_files(tmp.path());
    let dump = common::populated_dump(tmp.path(), 50_000);
    let tls = Server::start_opts(
        Version::V70,
        &[
            "--tls-port",
            common::FREE_PORT,
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--tls-ca-cert-file",
            ca.to_str().unwrap(),
            "--tls-auth-clients",
            "yes",
        ],
    );
    let tls_port = tls.extra_port.unwrap();
    let plain = Server::start(Version::V70);
    let out = import(&dump, &plain, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let url = format!("rediss://localhost:{tls_port}");
    let client = [
        "--tls-cert".to_string(),
        cli_cert.to_str().unwrap().to_string(),
        "--tls-key".into(),
        cli_key.to_str().unwrap().to_string(),
    ];
    let with_ca = ["--tls-ca".to_string(), ca.to_str().unwrap().to_string()];
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "import".to_string(),
            dump.to_str().unwrap().to_string(),
            "--target".into(),
            url.clone(),
            "--quiet".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>| {
        Command::new(env!("CARGO_BIN_EXE_rdbkit"))
            .args(a)
            .output()
            .unwrap()
    };
    // an unknown CA is refused before anything is written
    let mut a = args(&[]);
    a.extend(client.iter().cloned());
    let out = run(a);
    assert!(!out.status.success());
    assert!(text(&out).contains("certificate"), "{}", text(&out));
    // without a client certificate the server refuses the connection
    let mut a = args(&[]);
    a.extend(with_ca.iter().cloned());
    let out = run(a);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(tls.keyspace().values().sum::<u64>(), 0);
    // --tls-insecure skips the check of the server's certificate (no --tls-ca)
    let mut a = args(&["--tls-insecure"]);
    a.extend(client.iter().cloned());
    let out = run(a);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("written: 52000 keys"), "{}", text(&out));
    // verify with the CA and the client certificate
    let mut a = vec![
        "verify".to_string(),
        dump.to_str().unwrap().to_string(),
        "--target".into(),
        url.clone(),
    ];
    a.extend(with_ca.iter().cloned());
    a.extend(client.iter().cloned());
    let out = run(a);
    assert!(out.status.success(), "{}", text(&out));
    common::assert_same_dataset(&tls, &plain);
}

/// `redis://user:password@host` authenticates as an ACL user: the default user here may not write,
/// so the import succeeds only as that user (and fails with a wrong password).
#[test]
fn import_authenticates_as_an_acl_user() {
    let Some((dump, loader)) = common::loaded(Version::V82, "redis82_multiple_dbs_v12.rdb") else {
        return;
    };
    let target = Server::start(Version::V82);
    let mut c = target.conn();
    for rule in [
        &["importer", "on", ">s3cret", "~*", "&*", "+@all"][..],
        &["default", "-@write"],
    ] {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(rule)
            .exec(&mut c)
            .unwrap();
    }
    let as_user = |url: String| {
        rdbkit(&[
            "import",
            dump.to_str().unwrap(),
            "--target",
            &url,
            "--quiet",
        ])
    };
    let out = as_user(target.url());
    assert!(
        !out.status.success(),
        "the default user wrote: {}",
        text(&out)
    );
    let out = as_user(format!(
        "redis://importer:Wr0ngPw@127.0.0.1:{}",
        target.port
    ));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("Wr0ngPw"),
        "the password is shown: {}",
        text(&out)
    );
    assert_eq!(target.keyspace().values().sum::<u64>(), 0);
    let out = as_user(format!("redis://importer:s3cret@127.0.0.1:{}", target.port));
    assert!(out.status.success(), "{}", text(&out));
    common::assert_same_dataset(&target, &loader);
}

/// `--wait-replicas 1`: every batch is acknowledged only once the replica has it, so the replica
/// equals the dump as soon as the import ends (no waiting here); `--wait-replicas 2` with one
/// replica counts the batches that reached too few replicas.
#[test]
fn wait_replicas_means_replicated() {
    let Some((dump, loader)) = common::loaded(Version::V82, "redis82_multiple_dbs_v12.rdb") else {
        return;
    };
    let primary = Server::start(Version::V82);
    let replica = primary.replica(Version::V82);
    let out = import(&dump, &primary, &["--wait-replicas", "1"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    common::assert_same_dataset(&replica, &loader);
    reset(&primary);
    let out = import(
        &dump,
        &primary,
        &["--wait-replicas", "2", "--wait-timeout-ms", "100"],
    );
    let t = text(&out);
    assert!(
        t.contains("replica"),
        "fewer replicas than asked went unreported: {t}"
    );
}

/// A dump written by a real 8.2 whose hashes hold field TTLs, some of them already expired when
/// it is imported: `hash:mixed` (fields without TTL, with a far TTL, and expired), `hash:gone`
/// (every field expired), `hash:big` (a hash table: 600 fields, 100 with a far TTL and 100
/// expired), `hash:keyttl` (a key TTL as well), and keys without field TTLs around them. Active
/// expiry is off while it is written, so the dump holds the fields that expire 1.5 s later; the
/// function returns once they have. Returns the dump.
fn dump_with_expired_field_ttls(dir: &Path) -> PathBuf {
    let s = Server::start(Version::V82);
    let mut c = s.conn();
    let mut run = |args: &[&str]| {
        redis::cmd(args[0])
            .arg(&args[1..])
            .query::<redis::Value>(&mut c)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    };
    run(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    let far = "4102444800000"; // 2100-01-01
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let soon_ms = now_ms + 1500;
    let soon = soon_ms.to_string();
    run(&["SET", "str:plain", "v"]);
    run(&["HSET", "hash:plain", "a", "1", "b", "2"]);
    run(&["RPUSH", "list:plain", "x", "y"]);
    run(&[
        "HSET",
        "hash:mixed",
        "a",
        "1",
        "b",
        "2",
        "far1",
        "3",
        "far2",
        "4",
        "gone1",
        "5",
        "gone2",
        "6",
    ]);
    run(&[
        "HPEXPIREAT",
        "hash:mixed",
        far,
        "FIELDS",
        "2",
        "far1",
        "far2",
    ]);
    run(&[
        "HPEXPIREAT",
        "hash:mixed",
        &soon,
        "FIELDS",
        "2",
        "gone1",
        "gone2",
    ]);
    run(&["HSET", "hash:gone", "p", "1", "q", "2"]);
    run(&["HPEXPIREAT", "hash:gone", &soon, "FIELDS", "2", "p", "q"]);
    let fields: Vec<String> = (0..600).map(|i| format!("field-{i}")).collect();
    let mut hset = vec!["HSET", "hash:big"];
    for f in &fields {
        hset.extend([f.as_str(), f.as_str()]);
    }
    run(&hset);
    let mut far_fields = vec!["HPEXPIREAT", "hash:big", far, "FIELDS", "100"];
    far_fields.extend(fields[..100].iter().map(String::as_str));
    run(&far_fields);
    let mut soon_fields = vec!["HPEXPIREAT", "hash:big", &soon, "FIELDS", "100"];
    soon_fields.extend(fields[100..200].iter().map(String::as_str));
    run(&soon_fields);
    run(&["HSET", "hash:keyttl", "k", "1", "t", "2", "e", "3"]);
    run(&["PEXPIREAT", "hash:keyttl", far]);
    run(&[
        "HPEXPIREAT",
        "hash:keyttl",
        "4102444900000",
        "FIELDS",
        "1",
        "t",
    ]);
    run(&["HPEXPIREAT", "hash:keyttl", &soon, "FIELDS", "1", "e"]);
    let dump = s.save_to(dir.join("field-ttls.rdb"));
    // the dump holds the fields that are about to expire, with their TTL
    let out = rdbkit(&["export", "--format", "jsonl", dump.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let jsonl = String::from_utf8_lossy(&out.stdout);
    assert_eq!(jsonl.matches(&soon).count(), 2 + 2 + 100 + 1, "{jsonl}");
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        <= soon_ms + 100
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    dump
}

/// `--field-ttls drop` into servers without hash field TTLs (issue 12 item 6), end to end: the
/// dump above into Redis 7.0 and Valkey 8.1. Without the option the hashes with live field TTLs
/// are refused, each named with the option; with it every hash holds exactly its fields that
/// had not expired, with their values (those servers have no field TTLs at all), key TTLs kept,
/// `hash:gone` absent, and the summary counts the fields whose TTL was dropped. Equal to 8.2
/// loading the dump itself, key by key. The same through `export --format resp --target-version
/// 7.0 --field-ttls drop | redis-cli --pipe` into 7.0: zero errors, same keys.
#[test]
fn field_ttls_drop_into_servers_without_field_ttls() {
    for v in [Version::V82, Version::V70, Version::Valkey81] {
        if common::skip_if_missing(v) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let dump = dump_with_expired_field_ttls(dir.path());
    let loader = Server::start_with_dump(Version::V82, &dump, &[]);
    let want = common::snapshot(&loader);
    let key = |k: &str| (0u64, k.as_bytes().to_vec());
    assert!(!want.contains_key(&key("hash:gone")), "{want:?}");
    let hash = |k: &str| match &want[&key(k)].val {
        common::Val::Hash(h) => h
            .keys()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect::<Vec<_>>(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(hash("hash:mixed"), ["a", "b", "far1", "far2"]);
    assert_eq!(hash("hash:big").len(), 500);
    assert_eq!(hash("hash:keyttl"), ["k", "t"]);
    // the fields whose TTL is dropped: the live ones with a TTL
    let dropped = 2 + 100 + 1;
    let ttl_hashes = ["hash:mixed", "hash:big", "hash:keyttl"];
    let none = std::collections::BTreeSet::new();
    for v in [Version::V70, Version::Valkey81] {
        let target = Server::start(v);
        let out = import(&dump, &target, &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{v:?}: {t}");
        for k in ttl_hashes {
            assert!(
                t.lines()
                    .any(|l| l.contains(&format!("{k:?}")) && l.contains("field TTL")),
                "{v:?}: {k} not refused: {t}"
            );
            assert!(
                !common::snapshot(&target).contains_key(&key(k)),
                "{v:?}: {k} written"
            );
        }
        assert!(t.contains("--field-ttls drop"), "{v:?}: {t}");
        reset(&target);
        let out = import(&dump, &target, &["--field-ttls", "drop"]);
        let t = text(&out);
        assert!(out.status.success(), "{v:?}: {t}");
        assert!(
            t.contains(&format!("{dropped} hash fields written without their TTL")),
            "{v:?}: {t}"
        );
        common::assert_same_keys(&want, &common::snapshot(&target), &none, &format!("{v:?}"));
    }
    // the RESP export for 7.0, piped into it
    let out = rdbkit(&[
        "export",
        "--format",
        "resp",
        "--target-version",
        "7.0",
        "--field-ttls",
        "drop",
        dump.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{dropped} hash fields written without their TTL")),
        "{err}"
    );
    let target = Server::start(Version::V70);
    target.pipe(&out.stdout); // panics unless redis-cli reports zero errors
    common::assert_same_keys(
        &want,
        &common::snapshot(&target),
        &none,
        "export | redis-cli --pipe",
    );
}
