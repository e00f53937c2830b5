//! The operator's surface: shell completions, the man page and `--help`'s headings (generated
//! from the CLI definition), `--summary-json` and `--metrics`.

use crate::common::*;

/// The subcommands `rdbkit --help` lists.
fn subcommands() -> Vec<String> {
    let o = rdbkit(&["--help"]);
    assert!(o.status.success(), "{}", text(&o));
    let help = String::from_utf8(o.stdout).unwrap();
    let list = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands: section")
        .split("\n\n")
        .next()
        .unwrap();
    let names: Vec<String> = list
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect();
    for n in ["info", "import", "verify", "diff", "completions", "man"] {
        assert!(names.iter().any(|x| x == n), "{n} not in {names:?}");
    }
    names
}

#[test]
fn completions_name_every_subcommand() {
    let subs = subcommands();
    let o = rdbkit(&["completions", "bash"]);
    assert!(o.status.success(), "{}", text(&o));
    let bash = String::from_utf8(o.stdout).unwrap();
    assert!(bash.contains("complete -F _rdbkit"), "{bash}");
    // the words offered after `rdbkit`, and a case for each subcommand's own options
    let words = bash
        .lines()
        .find_map(|l| l.trim().strip_prefix("opts=\"-h -V --help --version "))
        .expect("the top-level words");
    for s in &subs {
        assert!(
            words.split([' ', '"']).any(|w| w == s),
            "bash: {s} not offered: {words}"
        );
        assert!(
            bash.contains(&format!("rdbkit,{s})")),
            "bash: no case for {s}"
        );
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = rdbkit(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", text(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(
            out.contains("import") && out.contains("--target"),
            "{shell}"
        );
    }
    let o = rdbkit(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn man_page_has_every_subcommand_and_renders() {
    let subs = subcommands();
    let o = rdbkit(&["man"]);
    assert!(o.status.success(), "{}", text(&o));
    let page = String::from_utf8(o.stdout).unwrap();
    // the title comes before any section (the lines before it only define a string)
    let first = page
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap();
    assert!(first.starts_with(".TH rdbkit 1"), "{first}");
    for s in &subs {
        let head = format!(".SH \"RDBKIT {}\"", s.to_uppercase());
        assert!(page.contains(&head), "no {head}");
    }
    // import's options under the headings --help shows
    let import = page.split(".SH \"RDBKIT IMPORT\"").nth(1).unwrap();
    let import = import.split("\n.SH ").next().unwrap();
    for h in ["SOURCE", "TARGET", "CONFLICTS", "FILTERS", "OUTPUT"] {
        assert!(import.contains(&format!(".SS {h}")), "import: no {h}");
    }
    let groff = std::process::Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    match groff {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(page.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "groff: {}", text(&out));
            assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
        }
        Err(e) if std::env::var_os("RDBKIT_REQUIRE_SERVERS").is_some() => {
            panic!("groff is needed to render the man page: {e}")
        }
        Err(e) => eprintln!("SKIP: rendering the man page: groff: {e}"),
    }
}

/// The heading each option of `help` is listed under.
fn headings(help: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for l in help.lines() {
        if let Some(h) = l.strip_suffix(':').filter(|h| !h.starts_with(' ')) {
            out.push((h.to_string(), Vec::new()));
        } else if let Some(opt) = l
            .trim_start()
            .split([' ', ','])
            .find(|w| w.starts_with("--"))
        {
            if l.starts_with("  ") && !l.starts_with("          ") {
                if let Some(last) = out.last_mut() {
                    last.1.push(opt.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn import_help_groups_options_by_concern() {
    let o = rdbkit(&["import", "--help"]);
    assert!(o.status.success(), "{}", text(&o));
    let help = String::from_utf8(o.stdout).unwrap();
    let found = headings(&help);
    let names: Vec<&str> = found.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(
        names,
        [
            "Arguments",
            "Options",
            "Source",
            "Target",
            "Conflicts",
            "Filters",
            "Transforms",
            "Writing",
            "Resume",
            "Follow",
            "Output"
        ],
        "{help}"
    );
    let under = |h: &str| {
        found
            .iter()
            .find(|(n, _)| n == h)
            .map(|(_, o)| o.clone())
            .unwrap()
    };
    assert_eq!(under("Options"), ["--help", "--version"]);
    assert_eq!(
        under("Conflicts"),
        ["--replace", "--skip-existing", "--flush-target"]
    );
    assert!(under("Source").contains(&"--source-mode".to_string()));
    assert!(under("Source").contains(&"--duplicates".to_string()));
    assert!(under("Target").contains(&"--target".to_string()));
    assert!(under("Target").contains(&"--tls-ca".to_string()));
    assert!(under("Filters").starts_with(&["--db".to_string(), "--key".into(), "--type".into()]));
    assert!(under("Transforms").contains(&"--rename".to_string()));
    assert!(under("Transforms").contains(&"--db-map".to_string()));
    assert!(under("Writing").contains(&"--rate-limit".to_string()));
    assert_eq!(
        under("Resume"),
        ["--checkpoint", "--checkpoint-interval-ms"]
    );
    assert!(under("Follow").contains(&"--follow".to_string()));
    for o in ["--keys-file", "--dry-run", "--summary-json", "--metrics"] {
        assert!(under("Output").contains(&o.to_string()), "{o}: {help}");
    }
    // verify uses the same headings for the options it shares
    let o = rdbkit(&["verify", "--help"]);
    let help = String::from_utf8(o.stdout).unwrap();
    let found = headings(&help);
    let names: Vec<&str> = found.iter().map(|(h, _)| h.as_str()).skip(2).collect();
    assert_eq!(
        names,
        [
            "Source",
            "Target",
            "Filters",
            "Transforms",
            "Checking",
            "Output"
        ],
        "{help}"
    );
}

/// Every subcommand's options are under the concern headings, in the one order import uses:
/// none but `--help` and `--version` left under "Options".
#[test]
fn every_subcommands_help_groups_options_by_concern() {
    let order = [
        "Source",
        "Target",
        "Conflicts",
        "Filters",
        "Transforms",
        "Writing",
        "Resume",
        "Follow",
        "Checking",
        "Output",
    ];
    let import = [&order[..8], &order[9..]].concat();
    let want: &[(&str, &[&str])] = &[
        ("info", &["Source", "Checking", "Output"]),
        ("export", &["Source", "Filters", "Transforms", "Output"]),
        ("import", &import),
        ("plan", &import),
        (
            "verify",
            &[
                "Source",
                "Target",
                "Filters",
                "Transforms",
                "Checking",
                "Output",
            ],
        ),
        ("report", &["Source", "Filters", "Output"]),
        ("filter", &["Source", "Filters", "Output"]),
        ("split", &["Source", "Filters", "Output"]),
        ("dump", &["Source", "Output"]),
        ("diff", &["Source", "Filters", "Checking", "Output"]),
        ("completions", &[]),
        ("man", &[]),
    ];
    let subs = subcommands();
    assert_eq!(
        subs,
        want.iter().map(|(c, _)| c.to_string()).collect::<Vec<_>>(),
        "a subcommand without its expected headings here"
    );
    for (cmd, heads) in want {
        let canonical: Vec<&str> = order
            .iter()
            .copied()
            .filter(|h| heads.contains(h))
            .collect();
        assert_eq!(&canonical, heads, "{cmd}: not in the one order");
        let o = rdbkit(&[cmd, "--help"]);
        assert!(o.status.success(), "{}", text(&o));
        let help = String::from_utf8(o.stdout).unwrap();
        let found = headings(&help);
        let options = found
            .iter()
            .find(|(h, _)| h == "Options")
            .map(|(_, o)| o.clone())
            .unwrap();
        assert_eq!(options, ["--help", "--version"], "{cmd}: {help}");
        let names: Vec<&str> = found
            .iter()
            .map(|(h, _)| h.as_str())
            .filter(|h| !["Arguments", "Options"].contains(h))
            .collect();
        assert_eq!(&names, heads, "{cmd}: {help}");
        for (h, opts) in &found {
            assert!(
                !opts.is_empty() || h == "Arguments",
                "{cmd}: {h} is empty: {help}"
            );
        }
    }
}

/// A dump of 3 `a:` keys, 2 `other:` keys, 2 keys already expired and one 2 MiB string under a
/// name that is not UTF-8 (`big\xff`).
fn mixed_dump(dir: &std::path::Path) -> std::path::PathBuf {
    let mut rng = rdbkit::testing::XorShift::with_seed(7);
    let big: Vec<u8> = (0..(2 << 20) / 8)
        .flat_map(|_| rng.next_u64().to_le_bytes())
        .collect();
    let mut w = rdbkit::write::RdbWriter::new(12);
    w.select_db(0).resize_db(8, 2);
    for k in ["a:1", "a:2", "a:3", "other:1", "other:2"] {
        w.string_key(k.as_bytes(), format!("v-{k}").as_bytes(), None);
    }
    w.string_key(b"exp:1", b"gone", Some(1_000));
    w.string_key(b"exp:2", b"gone", Some(2_000));
    w.string_key(b"big\xff", &big, None);
    let dump = dir.join("mixed.rdb");
    std::fs::write(&dump, w.finish()).unwrap();
    dump
}

/// [`mixed_dump`] and an 8.2 target that holds its key `a:1` (so a plain import refuses it) and
/// takes no value over 1 MB (so its `big\xff` fails).
fn mixed_onto_a_held_key(dir: &std::path::Path) -> (std::path::PathBuf, Server) {
    let dump = mixed_dump(dir);
    let target = Server::start_opts(Version::V82, &["--proto-max-bulk-len", "1mb"]);
    redis::cmd("SET")
        .arg("a:1")
        .arg("theirs")
        .query::<()>(&mut target.conn())
        .unwrap();
    (dump, target)
}

fn read_json(p: &std::path::Path) -> serde_json::Value {
    let body = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn summary_json_of_an_import_and_a_verify() {
    if skip_if_missing(Version::V82) {
        return;
    }
    use base64::Engine;
    let tmp = tempfile::tempdir().unwrap();
    let (dump, target) = mixed_onto_a_held_key(tmp.path());
    let json = tmp.path().join("out/summary.json");
    std::fs::create_dir(tmp.path().join("out")).unwrap();
    let out = import(
        &dump,
        &target,
        &[
            "--skip-existing",
            "--key",
            "a:*",
            "--key",
            "exp:*",
            "--key",
            "big*",
            "--summary-json",
            json.to_str().unwrap(),
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let j = read_json(&json);
    assert_eq!(j["command"], "import");
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(j["exit_code"], 1);
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("not every key was written"),
        "{j}"
    );
    assert_eq!(j["sources"], serde_json::json!([dump.to_str().unwrap()]));
    assert_eq!(j["target"]["url"], target.url());
    assert_eq!(j["target"]["server"], "Redis");
    let k = &j["keys"];
    assert_eq!(k["written"], 2, "{j}");
    assert_eq!(
        k["skipped"],
        serde_json::json!({"filtered": 2, "expired": 2, "exists on target (--skip-existing)": 1}),
        "{j}"
    );
    assert_eq!(k["failed"], 1);
    let failed = k["failed_keys"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{j}");
    // a key that is not UTF-8 is written as export writes it
    let b64 = base64::engine::general_purpose::STANDARD.encode(b"big\xff");
    assert_eq!(failed[0]["key"], serde_json::json!({ "base64": b64 }));
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("proto-max-bulk-len"),
        "{j}"
    );
    assert_eq!(k["in_doubt"], 0);
    assert_eq!(k["in_doubt_keys"], serde_json::json!([]));
    // the text says the same
    assert!(t.contains("written: 2 keys"), "{t}");
    assert!(t.contains("failed: 1 key\n  \"big\\xff\": "), "{t}");
    // only the document is left in its directory (the temporary file was renamed)
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["summary.json"]);

    // verify: a:1 differs (the target kept its own), a:2 and a:3 are equal
    let vjson = tmp.path().join("verify.json");
    let url = target.url();
    let out = rdbkit(&[
        "verify",
        dump.to_str().unwrap(),
        "--target",
        &url,
        "--key",
        "a:*",
        "--summary-json",
        vjson.to_str().unwrap(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let v = read_json(&vjson);
    assert_eq!(v["command"], "verify");
    assert_eq!(v["status"], "failed");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["error"], "1 key differ", "{v}");
    assert_eq!(v["target"], url);
    assert_eq!(
        (v["matched"].as_u64(), v["mismatched"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    let m = v["mismatches"].as_array().unwrap();
    assert_eq!(m.len(), 1);
    assert!(m[0]["key"].as_str().unwrap().contains("a:1"), "{v}");
    assert!(
        t.contains(&format!(
            "MISMATCH {}: {}",
            m[0]["key"].as_str().unwrap(),
            m[0]["why"].as_str().unwrap()
        )),
        "{t}"
    );
    // a failure before any key: the document still says why, with the usage exit code
    let out = rdbkit(&[
        "import",
        dump.to_str().unwrap(),
        "--target",
        "127.0.0.1:1",
        "--summary-json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let j = read_json(&json);
    assert_eq!(
        (j["status"].as_str(), j["exit_code"].as_u64()),
        (Some("failed"), Some(2))
    );
    assert!(
        j["error"].as_str().unwrap().contains("redis://127.0.0.1:1"),
        "{j}"
    );
    assert_eq!(j["keys"], serde_json::Value::Null);
}

/// One scrape of `http://127.0.0.1:PORT/metrics` by a plain TCP client: the counters by name.
fn scrape(port: u16) -> Option<std::collections::BTreeMap<String, f64>> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    c.read_to_string(&mut body).ok()?;
    if body.is_empty() {
        // the import ended with this connection accepted by the kernel, never answered
        return None;
    }
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    let body = body.split("\r\n\r\n").nth(1)?;
    assert!(body.ends_with("# EOF\n"), "{body}");
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

#[test]
fn metrics_are_served_during_an_import() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let n = 12_000u64;
    let mut w = rdbkit::write::RdbWriter::new(12);
    w.select_db(0).resize_db(n, 0);
    for i in 0..n {
        w.string_key(format!("k:{i}").as_bytes(), b"value", None);
    }
    let dump = tmp.path().join("many.rdb");
    std::fs::write(&dump, w.finish()).unwrap();
    let target = Server::start(Version::V82);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let json = tmp.path().join("summary.json");
    let url = target.url();
    // 4000 keys/s: about three seconds
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args([
            "import",
            dump.to_str().unwrap(),
            "--target",
            &url,
            "--quiet",
            "--rate-limit",
            "4000",
            "--metrics",
            &addr,
            "--summary-json",
            json.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut scrapes = Vec::new();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed().as_secs() < 60 {
        if let Some(m) = scrape(port) {
            scrapes.push(m);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    let names = [
        "rdbkit_keys_written_total",
        "rdbkit_bytes_written_total",
        "rdbkit_keys_skipped_total",
        "rdbkit_keys_failed_total",
        "rdbkit_keys_in_doubt_total",
        "rdbkit_redirections_moved_total",
        "rdbkit_reconnects_total",
        "rdbkit_failovers_total",
        "rdbkit_commands_applied_total",
        "rdbkit_follow_lag_bytes",
        "rdbkit_follow_lag_seconds",
    ];
    let mid: Vec<_> = scrapes
        .iter()
        .filter(|m| {
            m["rdbkit_keys_written_total"] > 0.0 && m["rdbkit_keys_written_total"] < n as f64
        })
        .collect();
    assert!(mid.len() >= 3, "{} scrapes mid-run: {scrapes:?}", mid.len());
    for m in &scrapes {
        for name in names {
            assert!(m.contains_key(name), "{name} missing: {m:?}");
        }
    }
    // counters never go down
    for pair in scrapes.windows(2) {
        for name in [
            "rdbkit_keys_written_total",
            "rdbkit_bytes_written_total",
            "rdbkit_dump_bytes_read_total",
        ] {
            assert!(pair[1][name] >= pair[0][name], "{name} went down: {pair:?}");
        }
    }
    // what the last scrape saw is at most what the summary says was written in the end
    let j = read_json(&json);
    assert_eq!(j["keys"]["written"], n);
    let last = scrapes.last().unwrap();
    assert!(last["rdbkit_keys_written_total"] <= n as f64);
    assert!(last["rdbkit_dump_bytes_read_total"] <= j["keys"]["bytes_read"].as_f64().unwrap());
    assert_eq!(target.keyspace().values().sum::<u64>(), n);
}

/// `--summary-json -`: the document alone on stdout, the text summary on stderr (import and
/// verify).
#[test]
fn summary_json_on_stdout_and_the_text_on_stderr() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = mixed_dump(tmp.path());
    let target = Server::start(Version::V82);
    let out = import(&dump, &target, &["--key", "a:*", "--summary-json", "-"]);
    let (stdout, stderr) = (
        String::from_utf8(out.stdout.clone()).unwrap(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let j: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        (j["command"].as_str(), j["status"].as_str()),
        (Some("import"), Some("ok"))
    );
    assert_eq!(j["keys"]["written"], 3, "{j}");
    assert!(stderr.contains("written: 3 keys"), "{stderr}");
    assert!(!stdout.contains("written: "), "{stdout}");
    let url = target.url();
    let d = dump.to_str().unwrap();
    let out = rdbkit(&[
        "verify",
        d,
        "--target",
        &url,
        "--key",
        "a:*",
        "--summary-json",
        "-",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        (v["command"].as_str(), v["matched"].as_u64()),
        (Some("verify"), Some(3)),
        "{v}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verified: 3 keys equal, 0 differ"),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("verified: "), "{stdout}");
}

/// The samples of a Prometheus text file (node_exporter's textfile format): every sample has its
/// `# HELP` and `# TYPE` (counters named `…_total`).
pub(crate) fn textfile(p: &std::path::Path) -> std::collections::BTreeMap<String, f64> {
    let body = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = std::collections::BTreeMap::new();
    let lines: Vec<&str> = body.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with('#') {
            continue;
        }
        let (name, v) = l.split_once(' ').unwrap_or_else(|| panic!("{l}: {body}"));
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        assert!(i >= 2, "{body}");
        assert!(
            lines[i - 2].starts_with(&format!("# HELP {name} ")),
            "{body}"
        );
        assert_eq!(lines[i - 1], format!("# TYPE {name} {kind}"), "{body}");
        out.insert(name.to_string(), v.parse().unwrap());
    }
    out
}

/// `--metrics-file`: written at the end, also of a failed import, with the same numbers as the
/// summary.
#[test]
fn metrics_file_holds_the_summarys_numbers() {
    if skip_if_missing(Version::V82) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (dump, target) = mixed_onto_a_held_key(tmp.path());
    let dir = tmp.path().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    let prom = dir.join("rdbkit.prom");
    let json = tmp.path().join("summary.json");
    let out = import(
        &dump,
        &target,
        &[
            "--skip-existing",
            "--key",
            "a:*",
            "--key",
            "exp:*",
            "--key",
            "big*",
            "--mode",
            "commands",
            "--summary-json",
            json.to_str().unwrap(),
            "--metrics-file",
            prom.to_str().unwrap(),
        ],
    );
    // big\xff is refused (proto-max-bulk-len): a failed import still writes the file
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let m = textfile(&prom);
    let k = &read_json(&json)["keys"];
    let skipped: u64 = k["skipped"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    for (name, want) in [
        ("rdbkit_keys_written_total", k["written"].as_u64().unwrap()),
        (
            "rdbkit_keys_written_restore_total",
            k["written_restore"].as_u64().unwrap(),
        ),
        (
            "rdbkit_keys_written_commands_total",
            k["written_commands"].as_u64().unwrap(),
        ),
        ("rdbkit_keys_skipped_total", skipped),
        ("rdbkit_keys_failed_total", k["failed"].as_u64().unwrap()),
        (
            "rdbkit_keys_in_doubt_total",
            k["in_doubt"].as_u64().unwrap(),
        ),
        (
            "rdbkit_bytes_written_total",
            k["bytes_written"].as_u64().unwrap(),
        ),
        (
            "rdbkit_dump_bytes_read_total",
            k["bytes_read"].as_u64().unwrap(),
        ),
    ] {
        assert_eq!(
            m.get(name).copied(),
            Some(want as f64),
            "{name}: {m:?} / {k}"
        );
    }
    assert_eq!(
        (
            m["rdbkit_keys_written_total"],
            skipped,
            k["failed"].as_u64()
        ),
        (2.0, 5, Some(1))
    );
    assert!(m["rdbkit_bytes_written_total"] > 0.0);
    // only the file is left in its directory (the temporary one was renamed)
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["rdbkit.prom"]);
}
