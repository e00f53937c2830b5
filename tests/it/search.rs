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

/// `rdbkit import DUMP --target TARGET EXTRA… --summary-json …`: the output and the summary.
fn import_into(dump: &Path, target: &str, extra: &[&str]) -> (std::process::Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let js = dir.path().join("summary.json");
    let mut args = vec![
        "import",
        dump.to_str().unwrap(),
        "--target",
        target,
        "--summary-json",
        js.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = rdbkit(&args);
    let summary = std::fs::read(&js)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or(Value::Null);
    (o, summary)
}

/// What `FT.INFO` says of an index's definition (no counters or timings).
fn definition(s: &Server, index: &str) -> Value {
    let i = ft_info(s, index);
    let keep = [
        "index_name",
        "index_options",
        "index_definition",
        "attributes",
        "stopwords_list",
    ];
    Value::Object(
        i.into_iter()
            .filter(|(k, _)| keep.contains(&k.as_str()))
            .collect(),
    )
}

/// Queries over both indexes (by name or alias), with a synonym, tags, ranges, geo and KNN.
fn queries() -> Vec<Vec<Vec<u8>>> {
    let q = |words: &[&str]| -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        v.extend(["NOCONTENT", "LIMIT", "0", "1000"].map(|w| w.as_bytes().to_vec()));
        v
    };
    let mut knn = q(&["idx", "*=>[KNN 7 @v $vec AS d]", "SORTBY", "d"]);
    knn.extend([
        b"PARAMS".to_vec(),
        b"2".to_vec(),
        b"vec".to_vec(),
        vector(12),
        b"DIALECT".to_vec(),
        b"2".to_vec(),
    ]);
    vec![
        q(&["idx", "@title:hello"]),
        // "hi" only in the body: found through the synonym group {hello, hi}
        q(&["idx", "@body:hello"]),
        q(&["idx", "@n:[10 20]", "SORTBY", "n", "ASC"]),
        q(&["idx", "@tags:{A}"]),
        q(&["idx", "@tags:{a}"]),
        q(&["idx", "@loc:[13.2 52.5 10 km]"]),
        q(&["idx", "running"]),
        // "foo" is a stop word of idx: left out of the query, not required
        q(&["idx", "@title:(hello foo)"]),
        knn,
        q(&["jalias", "@name:user"]),
        q(&["jidx", "@tags:{x}"]),
        q(&["jalias", "@city:{Berlin}"]),
        q(&["jidx", "@age:[10 20]", "SORTBY", "age", "DESC"]),
    ]
}

/// `FT.SEARCH` of `q` on `s`: the total and the ids. A sorted query (`SORTBY`) is asked
/// `WITHSORTKEYS`, and its ids come in runs of one sort key, in order, each run's ids sorted
/// (each server breaks ties by its own insertion order); others' ids are sorted.
fn search(s: &Server, q: &[Vec<u8>]) -> (i64, Vec<String>) {
    let sorted = q.iter().any(|w| w == b"SORTBY");
    let mut c = redis::cmd("FT.SEARCH");
    for a in q {
        c.arg(a);
    }
    if sorted {
        c.arg("WITHSORTKEYS");
    }
    let r: R = c
        .query(&mut s.conn())
        .unwrap_or_else(|e| panic!("FT.SEARCH {:?}: {e}", String::from_utf8_lossy(&q[1])));
    let Value::Array(a) = to_json(&r) else {
        panic!("FT.SEARCH: {r:?}")
    };
    let total = a[0].as_i64().unwrap();
    let word = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    if !sorted {
        let mut ids: Vec<String> = a[1..].iter().map(word).collect();
        ids.sort();
        return (total, ids);
    }
    let mut runs: Vec<(String, Vec<String>)> = Vec::new();
    for p in a[1..].chunks(2) {
        let (id, key) = (word(&p[0]), word(&p[1]));
        match runs.last_mut() {
            Some((k, ids)) if *k == key => ids.push(id),
            _ => runs.push((key, vec![id])),
        }
    }
    let ids = runs
        .into_iter()
        .flat_map(|(k, mut ids)| {
            ids.sort();
            ids.into_iter().map(move |i| format!("{k} {i}"))
        })
        .collect();
    (total, ids)
}

/// The two servers' indexes have the same definitions and answer the same queries with the same
/// documents, once each has indexed them all.
fn assert_same_indexes(source: &Server, target: &Server, what: &str) {
    wait_indexed(target, &["idx", "jidx"]);
    for idx in ["idx", "jidx"] {
        assert_eq!(
            definition(target, idx),
            definition(source, idx),
            "{what}: {idx}"
        );
        assert_eq!(
            ft_info(target, idx)["num_docs"],
            ft_info(source, idx)["num_docs"],
            "{what}: {idx}"
        );
    }
    for q in queries() {
        let (a, b) = (search(source, &q), search(target, &q));
        let q1 = String::from_utf8_lossy(&q[1]);
        assert!(a.0 > 0, "{what}: {q1:?} finds nothing");
        assert_eq!(a.0 as usize, a.1.len(), "{what}: {q1:?}: not all returned");
        assert_eq!(b, a, "{what}: {q1:?}");
    }
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// Deletes every key of `s` (the indexes stay: a FLUSHDB would drop them too).
fn delete_all_keys(s: &Server) {
    let mut c = s.conn();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    for k in keys.chunks(500) {
        redis::cmd("DEL").arg(k).query::<()>(&mut c).unwrap();
    }
}

/// Replaces `jidx` on the target by another definition, and moves its alias to another index.
fn alter_jidx(t: &Server) {
    let list: Vec<String> = redis::cmd("FT._LIST").query(&mut t.conn()).unwrap();
    if !list.iter().any(|n| n == "other") {
        cmd(
            t,
            &[
                "FT.CREATE",
                "other",
                "ON",
                "HASH",
                "PREFIX",
                "1",
                "zz:",
                "SCHEMA",
                "f",
                "TEXT",
            ],
        );
    }
    cmd(t, &["FT.DROPINDEX", "jidx"]);
    cmd(
        t,
        &[
            "FT.CREATE",
            "jidx",
            "ON",
            "JSON",
            "PREFIX",
            "1",
            "j:",
            "SCHEMA",
            "$.name",
            "AS",
            "name",
            "TAG",
        ],
    );
    cmd(t, &["FT.ALIASUPDATE", "jalias", "other"]);
}

#[test]
fn import_recreates_the_indexes_and_reruns_by_option() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((s, dump)) = source(tmp.path()) else {
        return;
    };
    let target = with_modules(&[Stack::Json, Stack::Search]);
    let url = target.url();
    let n_keys = |t: &Server| -> u64 { redis::cmd("DBSIZE").query(&mut t.conn()).unwrap() };
    let want_keys = n_keys(&s);

    // plan says what the import will create
    let o = rdbkit(&[
        "plan",
        dump.to_str().unwrap(),
        "--target",
        &url,
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(strings(&plan["search_indexes"]), ["idx", "jidx"], "{plan}");

    let (o, sum) = import_into(&dump, &url, &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("search indexes created (FT.CREATE): "), "{t}");
    assert!(
        !t.contains("not recreated") && !t.contains("ft_index0"),
        "{t}"
    );
    let si = &sum["keys"]["search_indexes"];
    assert_eq!(strings(&si["created"]), ["idx", "jidx"], "{sum}");
    assert_eq!(si["errors"], json!([]), "{sum}");
    assert_eq!(si["not_expressible"], json!([]), "{sum}");
    assert_eq!(n_keys(&target), want_keys);
    assert_same_indexes(&s, &target, "first import");

    // a rerun meets the indexes: refused before any write, as keys are, even with no key there
    let (key_refusal, _) = import_into(&dump, &url, &[]);
    assert!(!key_refusal.status.success());
    delete_all_keys(&target);
    let o = rdbkit(&["plan", dump.to_str().unwrap(), "--target", &url]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("search index \"jidx\" exists"),
        "{}",
        text(&o)
    );
    let (o, _) = import_into(&dump, &url, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), key_refusal.status.code(), "{t}");
    for what in [
        "refusing to write into a non-empty target",
        "search index \"idx\" exists on",
        "search index \"jidx\" exists on",
    ] {
        assert!(t.contains(what), "{what:?} not in {t}");
    }
    assert_eq!(n_keys(&target), 0, "a refused import wrote keys");

    // --replace: the target's other jidx (and the alias moved away) become the dump's again
    alter_jidx(&target);
    let (o, sum) = import_into(&dump, &url, &["--replace"]);
    assert!(o.status.success(), "{}", text(&o));
    let si = &sum["keys"]["search_indexes"];
    assert_eq!(strings(&si["replaced"]), ["idx", "jidx"], "{sum}");
    assert_same_indexes(&s, &target, "--replace");
    assert_eq!(n_keys(&target), want_keys);

    // --skip-existing keeps the target's
    alter_jidx(&target);
    let (o, sum) = import_into(&dump, &url, &["--skip-existing"]);
    assert!(o.status.success(), "{}", text(&o));
    let si = &sum["keys"]["search_indexes"];
    // each index kept with its aliases and synonyms as the target has them
    assert_eq!(strings(&si["kept"]), ["idx", "jidx"], "{sum}");
    let attrs = ft_info(&target, "jidx")["attributes"].clone();
    assert_eq!(
        attrs.as_array().unwrap().len(),
        1,
        "jidx was not kept: {attrs}"
    );
    assert_eq!(
        ft_info(&target, "jalias")["index_name"],
        json!("other"),
        "the alias was not kept"
    );

    // --flush-target: the result is the dump's indexes
    let (o, sum) = import_into(&dump, &url, &["--flush-target"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(sum["keys"]["search_indexes"]["errors"], json!([]), "{sum}");
    assert_same_indexes(&s, &target, "--flush-target");
    assert_eq!(n_keys(&target), want_keys);

    // a resume (a checkpoint of an interrupted run) meets the indexes that run created
    alter_jidx(&target);
    let cp = tmp.path().join("import.checkpoint");
    let body = json!({
        "inputs": [{
            "name": dump.display().to_string(),
            "dump_len": std::fs::metadata(&dump).unwrap().len(),
            "offset": 1,
        }],
        "keys_written": 0,
    });
    std::fs::write(&cp, body.to_string()).unwrap();
    let (o, sum) = import_into(&dump, &url, &["--checkpoint", cp.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        strings(&sum["keys"]["search_indexes"]["replaced"]),
        ["idx", "jidx"],
        "{sum}"
    );
    assert_same_indexes(&s, &target, "resume");
    assert_eq!(n_keys(&target), want_keys);
}

/// A 3-primary cluster: the index commands are routed like keys (the index name is their key),
/// so each index is created on the primary that serves its name's slot, where it finds that
/// primary's documents; an alias in another slot than its index is reported, not added.
#[test]
fn import_into_a_cluster_creates_each_index_on_the_primary_of_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((s, dump)) = source(tmp.path()) else {
        return;
    };
    let args = Stack::args(&[Stack::Json, Stack::Search]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let nodes = common::cluster_with(&args);
    let (o, sum) = import_into(&dump, &nodes[0].url(), &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let si = &sum["keys"]["search_indexes"];
    assert_eq!(strings(&si["created"]), ["idx", "jidx"], "{sum}");
    assert_eq!(si["errors"], json!([]), "{sum}");
    // jalias and jidx hash to different slots (3279 and 12010 of 16384)
    assert_eq!(
        si["not_expressible"],
        json!([
            "jidx: alias jalias not added, a cluster holds an alias only in its index's hash slot"
        ]),
        "{sum}"
    );
    let slot_owner = |name: &str| -> usize {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(name)
            .query(&mut nodes[0].conn())
            .unwrap();
        (usize::from(slot) / 5462).min(2)
    };
    let mut placed = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let list: Vec<String> = redis::cmd("FT._LIST").query(&mut n.conn()).unwrap();
        let mut list = list;
        list.sort();
        let want: Vec<&str> = ["idx", "jidx"]
            .into_iter()
            .filter(|x| slot_owner(x) == i)
            .collect();
        assert_eq!(list, want, "FT._LIST on primary {i}");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut n.conn()).unwrap();
        for idx in want {
            placed.push(format!("{idx} on {}", n.url()));
            wait_indexed(n, &[idx]);
            assert_eq!(definition(n, idx), definition(&s, idx), "{idx} on {i}");
            let prefixes: &[&str] = if idx == "idx" {
                &["doc:", "item:"]
            } else {
                &["j:"]
            };
            let mut mine: Vec<String> = keys
                .iter()
                .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
                .cloned()
                .collect();
            mine.sort();
            assert!(!mine.is_empty(), "{idx} on {i}: {keys:?}");
            let q: Vec<Vec<u8>> = [idx, "*", "NOCONTENT", "LIMIT", "0", "1000"]
                .iter()
                .map(|w| w.as_bytes().to_vec())
                .collect();
            let (total, ids) = search(n, &q);
            assert_eq!(total as usize, ids.len());
            assert_eq!(ids, mine, "{idx} on primary {i} finds its own documents");
        }
    }
    placed.sort();
    let mut said = strings(&si["placed"]);
    said.sort();
    assert_eq!(said, placed, "{sum}");
}

/// A `PHONETIC` field (the dump holds only the flag, not the matcher) is recreated as one: the
/// target matches the same sound-alike names, which a field without it would not. An index
/// created `SKIPINITIALSCAN` is created so, after the keys: it indexes none, and the summary says so.
/// A dump read from stdin is refused on an index conflict before its first key, or replaces.
#[test]
fn a_phonetic_field_is_recreated_with_its_matching_and_skipinitialscan_is_noted() {
    if common::skip_if_no_modules(&[Stack::Search]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = with_modules(&[Stack::Search]);
    for (i, name) in ["jon", "john", "smith", "smyth", "maria", "mary"]
        .iter()
        .enumerate()
    {
        cmd(
            &s,
            &["HSET", &format!("p:{i}"), "name", name, "plain", name],
        );
    }
    cmd(
        &s,
        &[
            "FT.CREATE",
            "pidx",
            "ON",
            "HASH",
            "PREFIX",
            "1",
            "p:",
            "SCHEMA",
            "name",
            "TEXT",
            "PHONETIC",
            "dm:fr",
            "plain",
            "TEXT",
        ],
    );
    // SKIPINITIALSCAN: the documents there before are not indexed, one written after is
    let sidx = "sidx ON HASH PREFIX 1 p: SKIPINITIALSCAN SCHEMA plain TEXT";
    let mut a = vec!["FT.CREATE"];
    a.extend(sidx.split(' '));
    cmd(&s, &a);
    cmd(&s, &["HSET", "p:9", "name", "later", "plain", "later"]);
    wait_indexed(&s, &["pidx", "sidx"]);
    assert_eq!(ft_info(&s, "sidx")["num_docs"], json!(1));
    let dump = s.save_to(tmp.path().join("phonetic.rdb"));
    let target = with_modules(&[Stack::Search]);
    let (o, sum) = import_into(&dump, &target.url(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let si = &sum["keys"]["search_indexes"];
    assert_eq!(strings(&si["created"]), ["pidx", "sidx"], "{sum}");
    assert_eq!(si["not_expressible"], json!([]), "{sum}");
    wait_indexed(&target, &["pidx", "sidx"]);
    for idx in ["pidx", "sidx"] {
        assert_eq!(definition(&target, idx), definition(&s, idx), "{idx}");
    }
    // created after the keys, SKIPINITIALSCAN indexes none of them: said, not hidden
    assert_eq!(ft_info(&target, "sidx")["num_docs"], json!(0));
    let notes = si["notes"].as_array().unwrap();
    assert!(
        notes.len() == 1
            && notes[0]
                .as_str()
                .unwrap()
                .starts_with("sidx: SKIPINITIALSCAN"),
        "{sum}"
    );
    let t = text(&o);
    assert!(
        t.contains("search index note: sidx: SKIPINITIALSCAN"),
        "{t}"
    );
    let q = |w: &str| -> Vec<Vec<u8>> {
        ["pidx", w, "NOCONTENT"]
            .iter()
            .map(|w| w.as_bytes().to_vec())
            .collect()
    };
    for w in ["@name:jon", "@name:smith", "@plain:jon"] {
        assert_eq!(search(&target, &q(w)), search(&s, &q(w)), "{w}");
    }
    // sound-alikes found through the name field only
    assert_eq!(search(&target, &q("@name:smith")).0, 2);
    assert_eq!(search(&target, &q("@plain:smith")).0, 1);

    // a streamed dump (stdin) meets its indexes as it reads them, before its first key: refused
    // there with nothing written, or replaced under --replace
    delete_all_keys(&target);
    let url = target.url();
    let stdin_import = |extra: &[&str]| {
        let mut args = vec!["import", "-", "--target", &url];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_rdbkit"))
            .args(&args)
            .env("RDBKIT_STATE_DIR", tmp.path())
            .stdin(std::fs::File::open(&dump).unwrap())
            .output()
            .unwrap()
    };
    let o = stdin_import(&[]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("search index \"pidx\" exists on"), "{t}");
    let n: u64 = redis::cmd("DBSIZE").query(&mut target.conn()).unwrap();
    assert_eq!(n, 0, "a refused import wrote keys: {t}");
    let o = stdin_import(&["--replace"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("search indexes dropped without their documents and created anew: "),
        "{t}"
    );
    let n: u64 = redis::cmd("DBSIZE").query(&mut target.conn()).unwrap();
    assert_eq!(n, 7);
    wait_indexed(&target, &["pidx"]);
    assert_eq!(search(&target, &q("@name:smith")).0, 2);
}
