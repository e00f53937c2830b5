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
    for o in ["--keys-file", "--dry-run"] {
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
