//! `examples/kubernetes/`: the command line of every Job is one the current CLI accepts (each
//! `args:` list, with `$(PART)` taken as every completion index, parsed by rdbkit itself with
//! `--help` appended: an unknown option or a bad value is a usage error, exit 2). yamllint checks
//! the YAML itself (`.ci/run`).

use crate::common::*;
use std::path::Path;

/// The `args:` lists of a manifest (block style, one `- item` a line), and its `completions:`.
fn args_of(yaml: &str) -> (Vec<Vec<String>>, usize) {
    let mut lists = Vec::new();
    let mut completions = 1;
    let mut current: Option<(usize, Vec<String>)> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if let Some((at, list)) = &mut current {
            if let Some(item) = t.strip_prefix("- ").filter(|_| indent >= *at) {
                list.push(item.trim_matches('"').to_string());
                continue;
            }
            lists.push(std::mem::take(list));
            current = None;
        }
        if t == "args:" {
            current = Some((indent, Vec::new()));
        } else if let Some(n) = t.strip_prefix("completions:") {
            completions = n.trim().parse().unwrap();
        }
    }
    if let Some((_, list)) = current {
        lists.push(list);
    }
    (lists, completions)
}

#[test]
fn kubernetes_jobs_use_options_the_cli_accepts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes");
    let mut checked = 0;
    for f in std::fs::read_dir(&dir).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let (lists, completions) = args_of(&std::fs::read_to_string(&path).unwrap());
        assert!(!lists.is_empty(), "{}: no args", path.display());
        for args in lists {
            for part in 0..completions {
                let mut a: Vec<String> = args
                    .iter()
                    .map(|s| s.replace("$(PART)", &part.to_string()))
                    .collect();
                assert!(!a.iter().any(|s| s.contains("$(")), "{a:?}");
                a.push("--help".into());
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                let o = rdbkit(&a);
                assert_eq!(
                    o.status.code(),
                    Some(0),
                    "{}: {a:?}\n{}",
                    path.display(),
                    text(&o)
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "{checked} command lines checked");
    // the check can fail: an option the CLI lacks, or a part past the count
    for bad in [&["--no-such-option"][..], &["--slots", "3/3"]] {
        let mut a = vec!["import", "/backup/dump.rdb", "--target", "redis://h:6379"];
        a.extend_from_slice(bad);
        a.push("--help");
        assert_eq!(rdbkit(&a).status.code(), Some(2), "{a:?}");
    }
}
