//! RediSearch index definitions read from the module's aux data: `info` lists exactly what
//! `FT.INFO` says of each index on the server that wrote the dump, and `import` recreates them
//! (`FT.CREATE`) on a target that cannot take the aux data, to the same definition and the same
//! search results.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redis::Value as R;
use serde_json::{json, Value};

use crate::common::{self, rdbkit, text, Server, Stack, Version};

/// The two indexes (a HASH one with most options, a JSON one with `$.path AS alias` fields), as
/// `FT.CREATE` arguments.
fn indexes() -> Vec<Vec<&'static str>> {
    let hash = "idx ON HASH PREFIX 2 doc: item: FILTER @n>=0 LANGUAGE german SCORE 0.5 \
                SCORE_FIELD sc LANGUAGE_FIELD lang STOPWORDS 2 foo bar SCHEMA \
                title TEXT WEIGHT 2.5 NOSTEM SORTABLE body TEXT n NUMERIC SORTABLE \
                tags TAG SEPARATOR ; CASESENSITIVE loc GEO \
                v VECTOR FLAT 6 TYPE FLOAT32 DIM 4 DISTANCE_METRIC L2 \
                h VECTOR HNSW 12 TYPE FLOAT32 DIM 4 DISTANCE_METRIC COSINE M 12 \
                EF_CONSTRUCTION 100 EF_RUNTIME 20";
    let json = "jidx ON JSON PREFIX 1 j: SCHEMA $.name AS name TEXT $.age AS age NUMERIC \
                SORTABLE $.tags[*] AS tags TAG $.city AS city TAG CASESENSITIVE";
    [hash, json]
        .iter()
        .map(|s| s.split(' ').collect())
        .collect()
}

fn cmd(s: &Server, args: &[&str]) -> R {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(&mut s.conn())
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn vector(i: usize) -> Vec<u8> {
    (0..4)
        .flat_map(|d| ((i * 7 + d * 3) as f32 / 10.0).to_le_bytes())
        .collect()
}

fn with_modules(modules: &[Stack]) -> Server {
    let args = Stack::args(modules);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_opts(Version::V82, &args)
}

/// An 8.2 with the three modules: 300 hashes, 200 JSON documents, the two indexes (with an alias
/// and a synonym group), indexed and saved. `None` to skip.
fn source(dir: &Path) -> Option<(Server, PathBuf)> {
    if common::skip_if_no_modules(&Stack::ALL) {
        return None;
    }
    let s = with_modules(&Stack::ALL);
    let mut c = s.conn();
    let mut p = redis::pipe();
    for i in 0..300 {
        let key = if i % 3 == 0 {
            format!("item:{i}")
        } else {
            format!("doc:{i}")
        };
        p.cmd("HSET")
            .arg(&key)
            .arg("title")
            .arg(format!("hello world {}", i % 17))
            .arg("body")
            .arg(["running dogs", "walked cats", "hi there"][i % 3])
            .arg("n")
            .arg(i % 50)
            .arg("tags")
            .arg(["a;b", "B", "a", "c;A"][i % 4])
            .arg("loc")
            .arg(format!("{},{}", 13.0 + (i % 10) as f64 / 10.0, 52.5))
            .arg("v")
            .arg(vector(i))
            .arg("h")
            .arg(vector(i + 1))
            .ignore();
    }
    for i in 0..200 {
        let (tag, city) = (["x", "y", "z"][i % 3], ["Berlin", "berlin"][i % 2]);
        p.cmd("JSON.SET")
            .arg(format!("j:{i}"))
            .arg("$")
            .arg(
                json!({"name": format!("user {}", i % 23), "age": i % 60,
                       "tags": [tag, "w"], "city": city})
                .to_string(),
            )
            .ignore();
    }
    p.query::<()>(&mut c).unwrap();
    for args in indexes() {
        let mut a = vec!["FT.CREATE"];
        a.extend(args);
        cmd(&s, &a);
    }
    cmd(&s, &["FT.ALIASADD", "jalias", "jidx"]);
    cmd(&s, &["FT.SYNUPDATE", "idx", "grp", "hello", "hi"]);
    wait_indexed(&s, &["idx", "jidx"]);
    let dump = s.save_to(dir.join("search.rdb"));
    Some((s, dump))
}

/// A reply as JSON (maps of RESP3 as objects, everything else as arrays and strings).
fn to_json(v: &R) -> Value {
    match v {
        R::Nil => Value::Null,
        R::Int(i) => json!(i),
        R::Double(d) => json!(d),
        R::BulkString(b) => json!(String::from_utf8_lossy(b)),
        R::SimpleString(s) => json!(s),
        R::Okay => json!("OK"),
        R::Array(a) | R::Set(a) => Value::Array(a.iter().map(to_json).collect()),
        R::Map(m) => Value::Array(
            m.iter()
                .flat_map(|(k, v)| [to_json(k), to_json(v)])
                .collect(),
        ),
        other => json!(format!("{other:?}")),
    }
}

/// `FT.INFO` as name → value (the top level is a flat `name value …` array).
fn ft_info(s: &Server, index: &str) -> serde_json::Map<String, Value> {
    let Value::Array(a) = to_json(&cmd(s, &["FT.INFO", index])) else {
        panic!("FT.INFO {index}: not an array")
    };
    a.chunks(2)
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].clone()))
        .collect()
}

/// Waits (at most 30 s) until every index has indexed all documents.
fn wait_indexed(s: &Server, names: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in names {
        loop {
            let i = ft_info(s, n);
            let word = |k: &str| {
                i.get(k)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            };
            let (indexing, pct) = (word("indexing"), word("percent_indexed"));
            if indexing.as_deref() == Some("0") && pct.as_deref() == Some("1") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{n}: still indexing: {indexing:?} {pct:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A flat `name value …` array as pairs.
fn pairs(v: &Value) -> Vec<(String, Value)> {
    v.as_array()
        .unwrap()
        .chunks(2)
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].clone()))
        .collect()
}

#[test]
fn info_lists_the_index_definitions_as_ft_info_has_them() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((s, dump)) = source(tmp.path()) else {
        return;
    };
    let o = rdbkit(&["info", dump.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let info: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["search_unread"], json!([]), "{info}");
    let ours = info["search_indexes"].as_array().unwrap();
    let mut names: Vec<&str> = ours.iter().map(|i| i["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["idx", "jidx"]);
    for idx in ours {
        let name = idx["name"].as_str().unwrap();
        let theirs = ft_info(&s, name);
        let def: Vec<(String, Value)> = pairs(&theirs["index_definition"]);
        let get = |k: &str| def.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("key_type"), Some(idx["on"].clone()), "{name}");
        assert_eq!(get("prefixes"), Some(idx["prefixes"].clone()), "{name}");
        assert_eq!(
            get("filter"),
            idx["filter"].as_str().map(Value::from),
            "{name}"
        );
        // FT.INFO leaves out the defaults (english, score 1)
        let lang = get("default_language").unwrap_or(json!("english"));
        assert_eq!(lang, idx["language"], "{name}");
        assert_eq!(
            get("language_field"),
            idx["language_field"].as_str().map(Value::from)
        );
        assert_eq!(
            get("score_field"),
            idx["score_field"].as_str().map(Value::from)
        );
        let score = get("default_score").unwrap_or(json!("1"));
        let score: f64 = score.as_str().unwrap().parse().unwrap();
        assert_eq!(score, idx["score"].as_f64().unwrap(), "{name}");
        // the schema: identifier, attribute, type and every option FT.INFO shows, in order
        let attrs = theirs["attributes"].as_array().unwrap();
        let fields = idx["fields"].as_array().unwrap();
        assert_eq!(attrs.len(), fields.len(), "{name}");
        for (a, f) in attrs.iter().zip(fields) {
            let a = a.as_array().unwrap();
            let (id, attr, ty) = (&a[1], &a[3], &a[5]);
            assert_eq!(id, &f["identifier"], "{name}");
            assert_eq!(attr, &f["attribute"], "{name}");
            assert_eq!(ty, &f["type"], "{name}");
            // FT.INFO's flags after the type (WEIGHT 1 is its default, UNF implied for NUMERIC)
            let mut theirs: Vec<String> = a[6..]
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect();
            let mut words: Vec<String> = f["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap().to_string())
                .collect();
            if ty == "VECTOR" {
                // FT.INFO names the vector parameters in lower case, as attribute pairs
                let v = &f["vector"];
                let want = [
                    ("algorithm", v["algorithm"].clone()),
                    ("data_type", v["data_type"].clone()),
                    ("dim", json!(v["dim"].to_string())),
                    ("distance_metric", v["distance_metric"].clone()),
                ];
                for (k, val) in want {
                    let at = theirs
                        .iter()
                        .position(|t| t == k)
                        .unwrap_or_else(|| panic!("{name} {attr}: no {k} in FT.INFO {theirs:?}"));
                    let want = val.as_str().map_or_else(|| val.to_string(), str::to_string);
                    assert_eq!(theirs[at + 1], want, "{name} {attr} {k}");
                }
                continue;
            }
            theirs.retain(|t| t != "UNF" || ty != "NUMERIC");
            if let Some(at) = theirs.iter().position(|t| t == "WEIGHT") {
                if theirs[at + 1] == "1" {
                    theirs.drain(at..at + 2);
                }
            }
            // a JSON TAG has no separator: FT.INFO shows it as SEPARATOR ""
            if let Some(at) = theirs
                .windows(2)
                .position(|w| w[0] == "SEPARATOR" && w[1].is_empty())
            {
                theirs.drain(at..at + 2);
            }
            theirs.sort();
            words.sort();
            assert_eq!(words, theirs, "{name} {attr}");
        }
    }
    let hash = ours.iter().find(|i| i["name"] == "idx").unwrap();
    assert_eq!(hash["stopwords"], json!(["bar", "foo"]));
    assert_eq!(
        hash["synonyms"],
        json!([{"group": "grp", "terms": ["hello", "hi"]}])
    );
    let j = ours.iter().find(|i| i["name"] == "jidx").unwrap();
    assert_eq!(j["aliases"], json!(["jalias"]));

    // the text form: one line per index, one per field
    let o = rdbkit(&["info", dump.to_str().unwrap()]);
    let t = text(&o);
    assert!(t.contains("search indexes: 2"), "{t}");
    for line in [
        format!("    {:<24} TAG\n", "$.tags[*] AS tags"),
        format!("    {:<24} TEXT NOSTEM WEIGHT 2.5 SORTABLE\n", "title"),
        "  jidx ON JSON PREFIX 1 j: aliases jalias\n".to_string(),
    ] {
        assert!(t.contains(&line), "{line:?} not in\n{t}");
    }
}

#[test]
fn import_without_aux_support_names_the_indexes_not_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((s, dump)) = source(tmp.path()) else {
        return;
    };
    // RedisJSON but no RediSearch: every key is written, the two indexes are named as not there
    let target = with_modules(&[Stack::Json]);
    let url = target.url();
    let o = rdbkit(&["import", dump.to_str().unwrap(), "--target", &url]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let line = t
        .lines()
        .find(|l| l.contains("search indexes not recreated on the target"))
        .unwrap_or_else(|| panic!("no search index line in\n{t}"));
    let mut names: Vec<&str> = line
        .split("target: ")
        .nth(1)
        .unwrap()
        .split(" (")
        .next()
        .unwrap()
        .split(", ")
        .collect();
    names.sort();
    assert_eq!(names, ["idx", "jidx"], "{line}");
    let n: u64 = redis::cmd("DBSIZE").query(&mut target.conn()).unwrap();
    let want: u64 = redis::cmd("DBSIZE").query(&mut s.conn()).unwrap();
    assert_eq!(n, want);
    let r: redis::RedisResult<R> = redis::cmd("FT._LIST").query(&mut target.conn());
    assert!(r.is_err(), "the target has no search module: {r:?}");
}
