//! What rdbkit tells its user, and how it exits, when something is off: bad `--target` values,
//! passwords, the URL forms of sockets and Sentinel, `info` on odd inputs, and counts. Real
//! servers (and a real sentinel) on loopback ports or Unix sockets.

use crate::common;

use common::{Server, Version};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn rdbkit(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rdbkit"));
    c.args(args).env_remove("REDISCLI_AUTH");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run rdbkit")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Sets `requirepass` over `c` (`""`: none).
fn require_password_on(c: &mut redis::Connection, pw: &str) {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(pw)
        .query::<()>(c)
        .unwrap();
}

/// `server` asks for `pw` from now on (`Server` waits for readiness without a password).
fn require_password(server: &Server, pw: &str) {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(pw)
        .query::<()>(&mut server.conn())
        .unwrap();
}

fn testdata(name: &str) -> String {
    common::testdata(name).to_str().unwrap().to_string()
}

/// A dump without module values, loadable by every installed server.
const PLAIN_DUMP: &str = "redis82_multiple_dbs_v12.rdb";

#[test]
fn a_target_that_is_not_a_url_is_a_usage_error_with_the_url_it_means() {
    let dump = testdata(PLAIN_DUMP);
    let out = rdbkit(
        &["import", &dump, "--target", "127.0.0.1:6379", "--quiet"],
        &[],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("did you mean redis://127.0.0.1:6379?"), "{t}");
    assert!(!t.contains("relative URL without a base"), "{t}");
    // an unknown scheme lists every accepted one, and never echoes the rest of the URL
    let out = rdbkit(
        &[
            "import",
            &dump,
            "--target",
            "http://:hunter2@h:1",
            "--quiet",
        ],
        &[],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    for scheme in [
        "redis://",
        "rediss://",
        "redis+sentinel://",
        "redis-sentinel://",
        "sentinel://",
        "unix://",
        "redis+unix://",
    ] {
        assert!(t.contains(scheme), "{scheme} missing from: {t}");
    }
    assert!(!t.contains("hunter2"), "{t}");
    // with credentials, no suggestion that would echo them
    let out = rdbkit(&["verify", &dump, "--target", "u:hunter2@h:1"], &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(!t.contains("hunter2"), "{t}");
    // --sentinel without a master name anywhere
    let out = rdbkit(&["import", &dump, "--sentinel", "127.0.0.1:1"], &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("--master-name"), "{t}");
}

#[test]
fn missing_and_wrong_passwords_name_the_target_and_how_to_give_one() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let target = Server::start(Version::V82);
    require_password(&target, "right-pw");
    let dump = testdata(PLAIN_DUMP);
    let url = target.url();
    for cmd in ["import", "verify"] {
        let out = rdbkit(&[cmd, &dump, "--target", &url], &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains(&url), "{cmd}: the target is not named: {t}");
        assert!(t.contains("requires a password and none was given"), "{t}");
        assert!(
            t.contains("REDISCLI_AUTH") && t.contains("user:password@"),
            "{t}"
        );
    }
    let out = rdbkit(
        &["import", &dump, "--target", &url],
        &[("REDISCLI_AUTH", "wrong-pw")],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("refused the password"), "{t}");
    assert!(
        !t.contains("wrong-pw") && !t.contains("AuthenticationFailed"),
        "{t}"
    );
    let with_pw = format!("redis://:wrong-pw@127.0.0.1:{}", target.port);
    let out = rdbkit(&["import", &dump, "--target", &with_pw], &[]);
    let t = text(&out);
    assert!(t.contains("refused the password"), "{t}");
    assert!(
        t.contains(&format!("redis://:***@127.0.0.1:{}", target.port)),
        "{t}"
    );
    assert!(!t.contains("wrong-pw"), "{t}");
    let mut c = redis::Client::open(format!("redis://:right-pw@127.0.0.1:{}", target.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let n: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 0, "nothing may be written");
}

/// `redis-server --unixsocket`: imports and verifies over the socket, both URL forms, with the
/// db and the password given the socket way.
#[test]
fn unix_socket_targets_import_and_verify_without_tcp() {
    let Some((dump, loader)) = common::loaded(Version::V82, PLAIN_DUMP) else {
        return;
    };
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("redis.sock");
    let target = Server::start_opts(
        Version::V82,
        &[
            "--unixsocket",
            sock.to_str().unwrap(),
            "--unixsocketperm",
            "700",
        ],
    );
    require_password(&target, "sock-pw");
    let dump = dump.to_str().unwrap();
    let plain = format!("unix://{}", sock.display());
    let out = rdbkit(
        &["import", dump, "--target", &plain, "--quiet"],
        &[("REDISCLI_AUTH", "sock-pw")],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!("into unix://:***@{}\n", sock.display())),
        "the target is named: {t}"
    );
    let mut c = redis::Client::open(format!("redis://:sock-pw@127.0.0.1:{}", target.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let digest = |c: &mut redis::Connection| -> String {
        redis::cmd("DEBUG").arg("DIGEST").query(c).unwrap()
    };
    assert_eq!(digest(&mut c), loader.digest());
    let out = rdbkit(
        &["verify", dump, "--target", &plain],
        &[("REDISCLI_AUTH", "sock-pw")],
    );
    assert!(out.status.success(), "{}", text(&out));
    // redis+unix:// with the password in the URL and every key remapped into db 9
    redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
    let url = format!("redis+unix://:sock-pw@{}?db=9", sock.display());
    let out = rdbkit(&["import", dump, "--target", &url, "--quiet"], &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.contains("sock-pw"), "{t}");
    let info: String = redis::cmd("INFO").arg("keyspace").query(&mut c).unwrap();
    let total: u64 = loader.keyspace().values().sum();
    assert!(
        info.contains(&format!("db9:keys={total},")),
        "{info} (want {total} keys in db9)"
    );
}

/// Sentinels with their own password (`requirepass`) in front of a primary with another: every
/// way of giving the sentinel's password (in `--sentinel` URLs, `RDBKIT_SENTINEL_PASSWORD`,
/// `--sentinel-password`) imports a dataset equal to 8.2 loading the dump; a missing or wrong
/// sentinel password is said plainly, naming the sentinel, with no password in the output.
#[test]
fn sentinel_url_forms_and_sentinel_passwords_in_urls() {
    let Some((dump_path, loader)) = common::loaded(Version::V82, PLAIN_DUMP) else {
        return;
    };
    let primary = Server::start(Version::V82);
    require_password(&primary, "data-pw");
    let sentinel_conf = ["sentinel auth-pass mymaster data-pw"];
    let sentinels: Vec<common::Sentinel> = (0..2)
        .map(|_| common::Sentinel::start(primary.port, 1, Some("sentinel-pw"), &sentinel_conf))
        .collect();
    let dump = dump_path.to_str().unwrap();
    let sp = sentinels[0].port;
    // equal to the loader (compared without the password, which is set again after the flush)
    let assert_imported = |what: &str| {
        let mut c = redis::Client::open(format!("redis://:data-pw@127.0.0.1:{}", primary.port))
            .unwrap()
            .get_connection()
            .unwrap();
        require_password_on(&mut c, "");
        let same = common::same_dataset(&primary, &loader);
        let mut c = primary.conn();
        redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
        require_password_on(&mut c, "data-pw");
        if let Err(e) = same {
            panic!("{what}: the primary differs from the dump:\n{e}");
        }
    };
    let s_entry = sentinels
        .iter()
        .map(|s| format!("redis://:sentinel-pw@127.0.0.1:{}", s.port))
        .collect::<Vec<_>>()
        .join(",");
    type Form<'a> = (Vec<String>, Vec<(&'a str, &'a str)>);
    let forms: Vec<Form> = vec![
        // the SENTINEL_HOSTS form: the sentinel's password in its URL, the master and the data
        // password from a target URL
        (
            vec![
                "--sentinel".into(),
                s_entry.clone(),
                "--target".into(),
                "redis://:data-pw@mymaster".into(),
            ],
            vec![],
        ),
        // --master-name with the data password from REDISCLI_AUTH
        (
            vec![
                "--sentinel".into(),
                s_entry,
                "--master-name".into(),
                "mymaster".into(),
            ],
            vec![("REDISCLI_AUTH", "data-pw")],
        ),
        (
            vec![
                "--target".into(),
                format!("redis-sentinel://:data-pw@127.0.0.1:{sp}/mymaster"),
            ],
            vec![("RDBKIT_SENTINEL_PASSWORD", "sentinel-pw")],
        ),
        (
            vec![
                "--target".into(),
                format!("sentinel://:data-pw@127.0.0.1:{sp}#mymaster"),
                "--sentinel-password".into(),
                "sentinel-pw".into(),
            ],
            vec![],
        ),
    ];
    for (extra, env) in forms {
        let mut args = vec!["import", dump, "--quiet"];
        args.extend(extra.iter().map(String::as_str));
        let out = rdbkit(&args, &env);
        let t = text(&out);
        assert!(out.status.success(), "{args:?}: {t}");
        assert!(!t.contains("data-pw") && !t.contains("sentinel-pw"), "{t}");
        assert_imported(&format!("{args:?}"));
    }
    // without the sentinel's password: said plainly, with where it goes
    let out = rdbkit(
        &[
            "import",
            dump,
            "--sentinel",
            &format!("127.0.0.1:{sp}"),
            "--master-name",
            "mymaster",
        ],
        &[("REDISCLI_AUTH", "data-pw")],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("sentinel 127.0.0.1:{sp}")), "{t}");
    assert!(t.contains("--sentinel-password"), "{t}");
    // a wrong sentinel password, in the URL or from the environment: the same, and no password
    // (neither the wrong one nor the right ones) in the output; nothing written
    let wrong_url = format!("redis://:wrong-pw@127.0.0.1:{sp}");
    let addr = format!("127.0.0.1:{sp}");
    for (entry, env) in [
        (&wrong_url, vec![("REDISCLI_AUTH", "data-pw")]),
        (
            &addr,
            vec![
                ("REDISCLI_AUTH", "data-pw"),
                ("RDBKIT_SENTINEL_PASSWORD", "wrong-pw"),
            ],
        ),
    ] {
        let out = rdbkit(
            &[
                "import",
                dump,
                "--sentinel",
                entry,
                "--master-name",
                "mymaster",
            ],
            &env,
        );
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{entry}: {t}");
        assert!(
            t.contains(&format!("sentinel 127.0.0.1:{sp}")),
            "{entry}: {t}"
        );
        assert!(t.contains("password"), "{entry}: {t}");
        for secret in ["wrong-pw", "data-pw", "sentinel-pw"] {
            assert!(!t.contains(secret), "{entry}: {secret} printed: {t}");
        }
    }
    let mut c = redis::Client::open(format!("redis://:data-pw@127.0.0.1:{}", primary.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let n: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 0, "written despite the wrong sentinel password");
}

#[test]
fn info_of_a_directory_names_the_path_without_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let out = rdbkit(&["info", dir.path().to_str().unwrap()], &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&dir.path().display().to_string()), "{t}");
    assert!(t.contains("is a directory"), "{t}");
    assert!(!t.contains("offset"), "{t}");
}

#[test]
fn info_gives_the_checksum_as_fields_and_modules_and_aux_readably() {
    let dump = testdata("redis82_all_types_v12.rdb");
    let out = rdbkit(&["info", "--json", &dump], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["checksum"]["state"], "verified", "{}", v["checksum"]);
    let crc = v["checksum"]["value"].as_str().unwrap();
    let bytes = std::fs::read(common::testdata("redis82_all_types_v12.rdb")).unwrap();
    let trailer = u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().unwrap());
    assert_eq!(crc, format!("{trailer:#018x}"));
    let out = rdbkit(&["info", &dump], &[]);
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |name: &str| -> String {
        t.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in {t}"))
            .to_string()
    };
    assert_eq!(
        line("modules:"),
        "modules:       graphdata/18 (2 keys), vectorset/0 (2 keys)"
    );
    // ctime, used-mem and aof-base have their own lines: the aux line does not repeat them
    for l in t.lines().filter(|l| l.starts_with("aux:")) {
        for k in ["ctime=", "used-mem=", "aof-base=", "redis-ver="] {
            assert!(!l.contains(k), "{l}");
        }
    }
    assert!(line("used-mem:").contains("4528072"), "{t}");
}

#[test]
fn counts_of_one_are_singular() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one.rdb");
    let dump = testdata("redis82_all_types_v12.rdb");
    let out = rdbkit(
        &[
            "filter",
            &dump,
            "-o",
            one.to_str().unwrap(),
            "--key",
            "str:int16",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = rdbkit(&["export", one.to_str().unwrap(), "-o", "/dev/null"], &[]);
    let t = text(&out);
    assert!(t.contains("exported 1 key\n"), "{t}");
    let _ = Path::new(&dump);
}

/// `rdbkit import` of `dumps` into `target` with `extra` options.
fn import(dumps: &[&Path], target: &str, extra: &[&str]) -> Output {
    let mut args = vec!["import".to_string()];
    args.extend(dumps.iter().map(|d| d.to_str().unwrap().to_string()));
    args.extend(["--target".to_string(), target.to_string(), "--quiet".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    rdbkit(&args, &[])
}

#[test]
fn a_truncated_dump_is_named_with_its_offset_and_size_and_no_rerun_advice() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let good = random_strings_dump(tmp.path());
    let bytes = std::fs::read(&good).unwrap();
    let cut = tmp.path().join("cut.rdb");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let target = Server::start(Version::V82);
    let size = bytes.len() * 2 / 3;
    let named = format!("{} is truncated at offset", cut.display());
    // the offline commands say it too, with the file and the offset
    for cmd in ["info", "export"] {
        let out = common::rdbkit(&[cmd, cut.to_str().unwrap()]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {t}");
        assert!(
            t.contains(&format!("{}: offset 0x", cut.display())),
            "{cmd}: {t}"
        );
        assert!(
            t.contains("the input ends inside this record: truncated"),
            "{cmd}: {t}"
        );
    }
    // several inputs: the message says which one is damaged, and what it holds
    let out = import(&[&good, &cut], &target.url(), &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&named), "{t}");
    assert!(
        t.contains(&format!(" of {size} bytes: value 1024 exceeds remaining")),
        "{t}"
    );
    assert!(t.contains("a rerun cannot mend a damaged file"), "{t}");
    assert!(!t.contains("--replace"), "{t}");
    // alone: what was written before the damage is on the target, and the summary says so
    redis::cmd("FLUSHALL")
        .query::<()>(&mut target.conn())
        .unwrap();
    let out = import(&[&cut], &target.url(), &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let on_target: u64 = target.keyspace().values().sum();
    assert!(on_target > 0, "{t}");
    let written = format!("written: {on_target} keys");
    assert!(t.contains(&written), "want {written:?} in {t}");
    assert!(
        t.contains("the keys before that offset were written"),
        "{t}"
    );
    // into a non-empty target the damage is found before anything is written
    let out = import(&[&cut], &target.url(), &["--replace"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&named) && t.contains("nothing was written"),
        "{t}"
    );
}

/// 2,000 incompressible 1 KiB strings, in a dump written by 8.2.
fn random_strings_dump(dir: &Path) -> std::path::PathBuf {
    let src = Server::start(Version::V82);
    let mut c = src.conn();
    let mut rng = rdbkit::testing::XorShift::with_seed(7);
    for i in 0..2000 {
        let v: Vec<u8> = (0..128)
            .flat_map(|_| rng.next_u64().to_le_bytes())
            .collect();
        redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg(v)
            .query::<()>(&mut c)
            .unwrap();
    }
    src.save_to(dir.join("random.rdb"))
}

#[test]
fn out_of_memory_gets_memory_advice_and_the_key_lists_go_to_a_file() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = random_strings_dump(tmp.path());
    let target = Server::start_opts(
        Version::V82,
        &["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"],
    );
    let cp = tmp.path().join("import.cp");
    let keys = tmp.path().join("keys.tsv");
    let out = import(
        &[&dump],
        &target.url(),
        &[
            "--checkpoint",
            cp.to_str().unwrap(),
            "--keys-file",
            keys.to_str().unwrap(),
            "--connections",
            "1",
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("OOM"), "{t}");
    assert!(
        t.contains("free memory on it or raise its maxmemory"),
        "{t}"
    );
    assert!(t.contains(&format!("--checkpoint {}", cp.display())), "{t}");
    assert!(!t.contains("--replace"), "{t}");
    // every list shows at most 5 keys, and the file holds them all
    let lines = std::fs::read_to_string(&keys).unwrap_or_default();
    let total = |label: &str, list: &str| -> usize {
        let Some(line) = t.lines().find(|l| l.starts_with(label)) else {
            return 0;
        };
        let n: usize = line[label.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let in_file = lines.lines().filter(|l| l.starts_with(list)).count();
        assert_eq!(
            n, in_file,
            "{label} {n} vs {in_file} {list} lines in the file"
        );
        n
    };
    let failed = total("failed: ", "failed\t");
    let in_doubt = total("in doubt: ", "in-doubt\t");
    assert!(
        failed + in_doubt > 5,
        "the run must report more keys than it shows: {t}"
    );
    assert!(t.contains(&format!("key lists: {}", keys.display())), "{t}");
    let listed = t.lines().filter(|l| l.starts_with("  \"k:")).count();
    assert!(listed <= 10, "{listed} keys printed: {t}");
}

#[test]
fn a_checkpoint_is_written_at_the_start_and_its_absence_is_explained() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = random_strings_dump(tmp.path());
    let loader = Server::start_with_dump(Version::V82, &dump, &[]);
    let target = Server::start(Version::V82);
    let cp = tmp.path().join("import.cp");
    let url = target.url();
    // slow enough (200 keys/s) to be killed before the first periodic checkpoint (2 s)
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args([
            "import",
            dump.to_str().unwrap(),
            "--target",
            &url,
            "--quiet",
            "--checkpoint",
            cp.to_str().unwrap(),
            "--rate-limit",
            "200",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while target.keyspace().values().sum::<u64>() == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "nothing written");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "not killed early enough"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cp).expect("a checkpoint at the start"))
            .unwrap();
    assert_eq!(saved["inputs"][0]["offset"], 0, "{saved}");
    // the rerun resumes over the keys of the killed run
    let out = import(&[&dump], &url, &["--checkpoint", cp.to_str().unwrap()]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(target.digest(), loader.digest());
    // a non-empty target and no checkpoint file: the refusal says why the checkpoint did not help
    let other = tmp.path().join("other.cp");
    let out = import(&[&dump], &url, &["--checkpoint", other.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("refusing to write into a non-empty target"),
        "{t}"
    );
    assert!(
        t.contains(&format!("No checkpoint was found at {}", other.display())),
        "{t}"
    );
}

#[test]
fn a_value_over_proto_max_bulk_len_says_to_raise_it() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = rdbkit::testing::XorShift::with_seed(3);
    let big: Vec<u8> = (0..(2 << 20) / 8)
        .flat_map(|_| rng.next_u64().to_le_bytes())
        .collect();
    let mut w = rdbkit::write::RdbWriter::new(12);
    w.select_db(0).resize_db(2, 0);
    w.string_key(b"big", &big, None);
    w.string_key(b"small", b"v", None);
    let dump = tmp.path().join("big.rdb");
    std::fs::write(&dump, w.finish()).unwrap();
    let target = Server::start_opts(Version::V82, &["--proto-max-bulk-len", "1mb"]);
    for mode in ["auto", "commands", "restore"] {
        redis::cmd("FLUSHALL")
            .query::<()>(&mut target.conn())
            .unwrap();
        let out = import(&[&dump], &target.url(), &["--mode", mode]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{mode}: {t}");
        assert!(t.contains("failed: 1 key\n"), "{mode}: {t}");
        assert!(
            t.contains("more than the target's proto-max-bulk-len (1048576): raise the target's proto-max-bulk-len"),
            "{mode}: {t}"
        );
        assert!(
            t.contains("CONFIG SET proto-max-bulk-len 3mb"),
            "{mode}: {t}"
        );
        let small: Option<String> = redis::cmd("GET")
            .arg("small")
            .query(&mut target.conn())
            .unwrap();
        assert_eq!(small.as_deref(), Some("v"), "{mode}");
        let exists: u64 = redis::cmd("EXISTS")
            .arg("big")
            .query(&mut target.conn())
            .unwrap();
        assert_eq!(exists, 0, "{mode}");
    }
}

#[test]
fn the_target_is_named_at_the_start_and_module_aux_is_one_line_per_module() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    if !common::falkordb_or_skip() {
        return;
    }
    let target = Server::with_falkordb(None, &[]);
    require_password(&target, "pw");
    let dump = common::testdata("redis82_all_types_v12.rdb");
    let url = format!("redis://:pw@127.0.0.1:{}", target.port);
    let shown = format!("redis://:***@127.0.0.1:{}", target.port);
    let out = import(&[&dump], &url, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("importing {} into {shown}\n", dump.display())),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("target: {shown} (Redis 8.2")),
        "{stdout}"
    );
    assert!(!t.contains(":pw@"), "{t}");
    let aux: Vec<&str> = stdout.lines().filter(|l| l.contains("aux")).collect();
    assert_eq!(aux.len(), 1, "{stdout}");
    assert!(
        aux[0].starts_with("module aux: graphdata: 2 aux records of module-wide data"),
        "{stdout}"
    );
    assert!(!stdout.contains("not restored: graphdata/18"), "{stdout}");
}

#[test]
fn one_key_is_one_key() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("tiny.rdb");
    std::fs::write(&dump, rdbkit::testing::tiny_dump()).unwrap();
    let target = Server::start(Version::V82);
    let out = import(&[&dump], &target.url(), &[]);
    let t = text(&out);
    assert!(t.contains("written: 1 key ("), "{t}");
    let out = import(&[&dump], &target.url(), &[]);
    let t = text(&out);
    assert!(t.contains("db0 holds 1 key;"), "{t}");
    let out = rdbkit(
        &["verify", dump.to_str().unwrap(), "--target", &target.url()],
        &[],
    );
    assert!(
        text(&out).contains("verified: 1 key equal"),
        "{}",
        text(&out)
    );
}

/// A target that runs out of memory with several connections and full pipelines: each key sent
/// ends written or failed (the connections read the replies to what they had sent before they
/// stop), none in doubt, and the count of written keys is what the target holds.
#[test]
fn out_of_memory_with_full_pipelines_leaves_no_key_in_doubt() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // 40,000 strings of 1 KiB (40 MB on the target) against 8 MB of maxmemory: the refusals
    // arrive while each connection's window (up to 16 MiB) holds thousands of keys
    let src = Server::start(Version::V82);
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(40_000)
        .arg("k")
        .arg(1024)
        .query::<()>(&mut src.conn())
        .unwrap();
    let dump = src.save_to(tmp.path().join("big.rdb"));
    drop(src);
    let target = Server::start_opts(
        Version::V82,
        &["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"],
    );
    let out = import(&[&dump], &target.url(), &["--connections", "3"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("OOM"), "{t}");
    assert!(!t.contains("in doubt"), "no key may be in doubt: {t}");
    let on_target: u64 = target.keyspace().values().sum();
    assert!(on_target > 0 && on_target < 40_000, "{on_target} keys: {t}");
    let written = format!("written: {on_target} keys");
    assert!(t.contains(&written), "want {written:?} in {t}");
    assert!(t.contains("failed: "), "{t}");
}
