//! A re-run is a first-class path. Each import here is run once into an empty target and then
//! again into the target it filled: with `--replace`, `--skip-existing`, `--flush-target` and
//! through a checkpoint resume. After every run the target must equal a server that loaded the
//! dump itself (`common::same_dataset`: digest, key and field TTLs, stream groups, module values,
//! function libraries), and must still be alive.

use crate::common;
use crate::common::import;

use common::{text, Server, Version};
use std::path::{Path, PathBuf};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// `FUNCTION LIST WITHCODE`: each library's name and code, sorted by name (the server lists
/// them and their functions in hash order).
fn libraries(s: &Server) -> String {
    let v: Vec<Vec<redis::Value>> = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("WITHCODE")
        .query(&mut s.conn())
        .unwrap();
    let mut libs: Vec<(String, String)> = v
        .iter()
        .map(|fields| {
            let get = |name: &str| {
                fields
                    .chunks(2)
                    .find(|p| matches!(&p[0], redis::Value::BulkString(b) if b == name.as_bytes()))
                    .map(|p| format!("{:?}", p[1]))
                    .unwrap_or_default()
            };
            (get("library_name"), get("library_code"))
        })
        .collect();
    libs.sort();
    format!("{libs:?}")
}

/// A checkpoint that says nothing was acknowledged past the dump's first byte, as a kill in the
/// first moments leaves it: the resume re-sends every key (RESTORE … REPLACE, DEL first).
fn early_checkpoint(dir: &Path, dump: &Path) -> PathBuf {
    let cp = dir.join("import.checkpoint");
    let body = serde_json::json!({
        "inputs": [{
            "name": dump.display().to_string(),
            "dump_len": std::fs::metadata(dump).unwrap().len(),
            "offset": 1,
        }],
        "keys_written": 0,
    });
    std::fs::write(&cp, body.to_string()).unwrap();
    cp
}

/// Imports `dump` into `target` (empty), then again with each conflict option and through a
/// checkpoint resume; after each run, the target equals `loader` and answers PING.
fn rerun_matrix(dump: &Path, target: &Server, loader: &Server) {
    let out = import(dump, target, &[]);
    assert!(out.status.success(), "first run: {}", text(&out));
    common::assert_same_dataset(target, loader);
    // a plain re-run is refused before anything is written
    let out = import(dump, target, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("refusing to write into a non-empty target"),
        "{}",
        text(&out)
    );
    common::assert_same_dataset(target, loader);
    let tmp = tempfile::tempdir().unwrap();
    for option in ["--replace", "--skip-existing", "--flush-target", "resume"] {
        let cp;
        let extra: Vec<&str> = if option == "resume" {
            cp = early_checkpoint(tmp.path(), dump);
            vec!["--checkpoint", cp.to_str().unwrap()]
        } else {
            vec![option]
        };
        let out = import(dump, target, &extra);
        let t = text(&out);
        let alive: redis::RedisResult<String> = redis::cmd("PING").query(&mut target.conn());
        assert!(
            alive.is_ok(),
            "{option}: the target died: {t}\n{}",
            target.log()
        );
        assert!(out.status.success(), "{option}: {t}");
        assert!(!t.contains("failed"), "{option}: {t}");
        if let Err(e) = common::same_dataset(target, loader) {
            panic!("{option}: {e}");
        }
    }
}

/// Module values (FalkorDB graphs, vector sets) and function libraries, re-imported: FalkorDB
/// 4.16 crashes on `RESTORE … REPLACE` of a graph, so module values are replaced by DEL and
/// RESTORE in one MULTI/EXEC.
#[test]
fn falkordb_dump_reruns_with_every_option_and_a_resume() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    assert!(
        common::falkordb_available(),
        "FalkorDB is needed (scripts/install-servers.sh)"
    );
    let dump = testdata("redis82_all_types_v12.rdb");
    let loader = Server::with_falkordb(Some(&dump), &[]);
    let target = Server::with_falkordb(None, &[]);
    rerun_matrix(&dump, &target, &loader);
}

/// A re-run with functions counts the libraries as already there (not as failed keys), and a
/// library of the same name with other code is refused up front, replaced or kept by option.
#[test]
fn function_libraries_on_a_rerun() {
    if common::skip_if_missing(Version::V82) {
        return;
    }
    let dump = testdata("redis82_all_types_v12.rdb");
    let target = Server::with_falkordb(None, &[]);
    let first = import(&dump, &target, &[]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("function libraries loaded: lib2, mylib")
            || text(&first).contains("function libraries loaded: mylib, lib2"),
        "{}",
        text(&first)
    );
    let again = import(&dump, &target, &["--skip-existing"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("function libraries already on the target"),
        "{}",
        text(&again)
    );
    // another version of lib2 on the target
    let other = "#!lua name=lib2\nredis.register_function('other', function() return 'target' end)";
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(other)
        .query::<String>(&mut target.conn())
        .unwrap();
    redis::cmd("FLUSHALL")
        .query::<()>(&mut target.conn())
        .unwrap();
    let refused = import(&dump, &target, &[]);
    let t = text(&refused);
    assert!(!refused.status.success(), "{t}");
    assert!(t.contains("function library \"lib2\" exists on"), "{t}");
    assert_eq!(target.keyspace().values().sum::<u64>(), 0, "{t}");
    let kept = import(&dump, &target, &["--skip-existing"]);
    assert!(kept.status.success(), "{}", text(&kept));
    assert!(libraries(&target).contains("'target'"));
    let flushed = import(&dump, &target, &["--flush-target"]);
    let t = text(&flushed);
    assert!(flushed.status.success(), "{t}");
    assert!(
        t.contains("--flush-target replaced function libraries lib2"),
        "{t}"
    );
    let loader = Server::with_falkordb(Some(&dump), &[]);
    assert_eq!(libraries(&target), libraries(&loader));
}
