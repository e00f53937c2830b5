//! Module values read, not just carried: RedisJSON documents and RedisBloom's five types from a
//! real Redis 8.2 with the Redis Stack modules (tests/it/common `Stack`), compared with the
//! modules' own commands, the memory estimate with `MEMORY USAGE`, and imports into targets
//! with all, some or none of the modules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redis::Value as R;
use serde_json::Value;

use crate::common::{self, rdbkit, text, Server, Stack, Version};

/// Documents of every JSON type, nested and large.
fn documents() -> Vec<(&'static str, String)> {
    let big: Vec<String> = (0..3000)
        .map(|i| {
            format!(
                r#"{{"id":{i},"name":"user {i}","score":{}.5,"tags":["a","b{}"],"ok":{}}}"#,
                i * 7,
                i % 13,
                i % 2 == 0
            )
        })
        .collect();
    vec![
        ("json:null", "null".into()),
        ("json:true", "true".into()),
        ("json:false", "false".into()),
        ("json:int", "42".into()),
        ("json:mid", "-70000".into()),
        ("json:big", "12345678901234".into()),
        ("json:u64", "18446744073709551615".into()),
        ("json:float", "3.25".into()),
        ("json:exp", "1e-7".into()),
        ("json:str", r#""héllo \"quoted\" \\ \n tab\t""#.into()),
        ("json:empty-arr", "[]".into()),
        ("json:empty-obj", "{}".into()),
        (
            "json:nested",
            r#"{"a":{"b":{"c":[1,[2,[3,{"d":null}]],{"e":"f"}]}},"z":-0.5,"y":[true,false],"x":{}}"#
                .into(),
        ),
        ("json:large", format!(r#"{{"users":[{}],"n":3000}}"#, big.join(","))),
    ]
}

/// Redis 8.2 with all three modules, filled by the generator and saved; `None` to skip.
fn source(dir: &Path) -> Option<(Server, PathBuf)> {
    if common::skip_if_no_modules(&Stack::ALL) {
        return None;
    }
    let args = Stack::args(&Stack::ALL);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start_opts(Version::V82, &args);
    let mut c = s.conn();
    let mut q = |args: &[&str]| -> R {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut c)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    for (k, doc) in documents() {
        q(&["JSON.SET", k, "$", &doc]);
    }
    q(&["PEXPIREAT", "json:nested", "4102444800000"]);
    // Bloom: scaling with several sub-filters, non-scaling, a default one
    q(&["BF.RESERVE", "bf:scaling", "0.01", "100", "EXPANSION", "2"]);
    q(&["BF.RESERVE", "bf:fixed", "0.001", "1000", "NONSCALING"]);
    let items: Vec<String> = (0..800).map(|i| format!("item-{i}")).collect();
    let items: Vec<&str> = items.iter().map(String::as_str).collect();
    for chunk in items.chunks(200) {
        let mut a = vec!["BF.MADD", "bf:scaling"];
        a.extend_from_slice(chunk);
        q(&a);
        a[1] = "bf:default";
        q(&a);
    }
    let mut a = vec!["BF.MADD", "bf:fixed"];
    a.extend_from_slice(&items[..300]);
    q(&a);
    // Cuckoo: small, so that it grows several filters; some deletions
    q(&[
        "CF.RESERVE",
        "cf:grow",
        "64",
        "BUCKETSIZE",
        "2",
        "EXPANSION",
        "2",
    ]);
    for i in &items[..400] {
        q(&["CF.ADD", "cf:grow", i]);
    }
    for i in &items[..50] {
        q(&["CF.DEL", "cf:grow", i]);
    }
    q(&["CF.ADD", "cf:default", "x"]);
    // Count-Min, Top-K, t-digest
    q(&["CMS.INITBYDIM", "cms:dim", "300", "4"]);
    q(&["CMS.INITBYPROB", "cms:prob", "0.001", "0.01"]);
    for (i, it) in items[..100].iter().enumerate() {
        let n = (i % 7 + 1).to_string();
        q(&["CMS.INCRBY", "cms:dim", it, &n]);
        q(&["CMS.INCRBY", "cms:prob", it, &n]);
    }
    q(&["TOPK.RESERVE", "topk:a", "10", "100", "5", "0.92"]);
    for (i, it) in items[..60].iter().enumerate() {
        for _ in 0..(i % 9 + 1) {
            q(&["TOPK.ADD", "topk:a", it]);
        }
    }
    q(&["TDIGEST.CREATE", "td:a", "COMPRESSION", "150"]);
    let values: Vec<String> = (0..5000)
        .map(|i| format!("{}", (i * 37 % 1001) as f64 / 3.0))
        .collect();
    for chunk in values.chunks(500) {
        let mut a = vec!["TDIGEST.ADD", "td:a"];
        a.extend(chunk.iter().map(String::as_str));
        q(&a);
    }
    q(&["TDIGEST.CREATE", "td:empty"]);
    // plain keys next to them
    q(&["SET", "plain", "v"]);
    q(&["HSET", "doc:1", "title", "hello world", "n", "5"]);
    let dump = s.save_to(dir.join("modules.rdb"));
    Some((s, dump))
}

fn query(s: &Server, args: &[&str]) -> R {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut s.conn())
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A flat `INFO`-style reply (`name value name value…`) as name → JSON value.
fn info(s: &Server, args: &[&str]) -> BTreeMap<String, Value> {
    let R::Array(v) = query(s, args) else {
        panic!("{args:?}: not an array")
    };
    v.chunks(2)
        .map(|p| {
            let name = match &p[0] {
                R::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                R::SimpleString(s) => s.clone(),
                other => panic!("{other:?}"),
            };
            let val = match &p[1] {
                R::Int(i) => Value::from(*i),
                R::Double(d) => Value::from(*d),
                R::BulkString(b) => {
                    let t = String::from_utf8_lossy(b);
                    t.parse::<f64>()
                        .map_or(Value::from(t.to_string()), Value::from)
                }
                R::SimpleString(t) => t.parse::<f64>().map_or(Value::from(t.clone()), Value::from),
                R::Nil => Value::Null,
                other => panic!("{other:?}"),
            };
            (name, val)
        })
        .collect()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn jsonl(dump: &Path) -> BTreeMap<String, Value> {
    let o = rdbkit(&["export", dump.to_str().unwrap(), "--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["key"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn json_get(s: &Server, key: &str) -> String {
    let v: String = redis::cmd("JSON.GET")
        .arg(key)
        .query(&mut s.conn())
        .unwrap();
    v
}

#[test]
fn decoded_values_match_the_modules_commands_and_memory_usage() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((s, dump)) = source(tmp.path()) else {
        return;
    };
    let keys = jsonl(&dump);
    // documents: the exported value is the document JSON.GET returns, byte for byte
    for (k, _) in documents() {
        let e = &keys[k];
        assert_eq!(e["type"], "json", "{k}: {e}");
        let want: Value = serde_json::from_str(&json_get(&s, k)).unwrap();
        assert_eq!(e["value"], want, "{k}");
    }
    assert_eq!(keys["json:nested"]["expire_at_ms"], 4102444800000u64);
    let params = |k: &str, kind: &str| -> Value {
        let v = &keys[k]["value"];
        assert_eq!(v["kind"], kind, "{k}: {v}");
        v["params"].clone()
    };
    for k in ["bf:scaling", "bf:fixed", "bf:default"] {
        let p = params(k, "bloom");
        let i = info(&s, &["BF.INFO", k]);
        assert_eq!(num(&p["capacity"]), num(&i["Capacity"]), "{k}");
        assert_eq!(num(&p["size"]), num(&i["Size"]), "{k}");
        assert_eq!(num(&p["filters"]), num(&i["Number of filters"]), "{k}");
        assert_eq!(num(&p["items"]), num(&i["Number of items inserted"]), "{k}");
        assert_eq!(p["expansion"].as_f64(), i["Expansion rate"].as_f64(), "{k}");
    }
    assert!(num(&params("bf:scaling", "bloom")["filters"]) >= 3.0);
    assert!(params("bf:fixed", "bloom")["expansion"].is_null());
    for k in ["cf:grow", "cf:default"] {
        let p = params(k, "cuckoo");
        let i = info(&s, &["CF.INFO", k]);
        for (ours, theirs) in [
            ("size", "Size"),
            ("buckets", "Number of buckets"),
            ("filters", "Number of filters"),
            ("items", "Number of items inserted"),
            ("deleted", "Number of items deleted"),
            ("bucket_size", "Bucket size"),
            ("expansion", "Expansion rate"),
            ("max_iterations", "Max iterations"),
        ] {
            assert_eq!(num(&p[ours]), num(&i[theirs]), "{k} {ours}");
        }
    }
    assert!(num(&params("cf:grow", "cuckoo")["filters"]) >= 3.0);
    for k in ["cms:dim", "cms:prob"] {
        let p = params(k, "cms");
        let i = info(&s, &["CMS.INFO", k]);
        for f in ["width", "depth", "count"] {
            assert_eq!(num(&p[f]), num(&i[f]), "{k} {f}");
        }
    }
    let p = params("topk:a", "topk");
    let i = info(&s, &["TOPK.INFO", "topk:a"]);
    for f in ["k", "width", "depth", "decay"] {
        assert_eq!(num(&p[f]), num(&i[f]), "topk {f}");
    }
    // TOPK.LIST WITHCOUNT: item, count, … highest first (ties in heap order)
    let R::Array(list) = query(&s, &["TOPK.LIST", "topk:a", "WITHCOUNT"]) else {
        panic!()
    };
    let theirs: Vec<(String, u64)> = list
        .chunks(2)
        .map(|p| match (&p[0], &p[1]) {
            (R::BulkString(b), R::Int(n)) => (String::from_utf8_lossy(b).into(), *n as u64),
            other => panic!("{other:?}"),
        })
        .collect();
    let ours: Vec<(String, u64)> = p["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().into(), e[1].as_u64().unwrap()))
        .collect();
    assert_eq!(ours.len(), 10);
    assert_eq!(ours, theirs);
    for k in ["td:a", "td:empty"] {
        let p = params(k, "tdigest");
        let i = info(&s, &["TDIGEST.INFO", k]);
        for (ours, theirs) in [
            ("compression", "Compression"),
            ("capacity", "Capacity"),
            ("merged_nodes", "Merged nodes"),
            ("unmerged_nodes", "Unmerged nodes"),
            ("merged_weight", "Merged weight"),
            ("unmerged_weight", "Unmerged weight"),
            ("observations", "Observations"),
            ("total_compressions", "Total compressions"),
        ] {
            assert_eq!(num(&p[ours]), num(&i[theirs]), "{k} {ours}");
        }
    }
    assert_eq!(num(&params("td:a", "tdigest")["observations"]), 5000.0);

    // info totals each kind over its keys: the sums of the modules' own INFO figures
    let o = rdbkit(&["info", dump.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();
    let sum = |cmd: &str, keys: &[&str], field: &str| -> f64 {
        keys.iter().map(|k| num(&info(&s, &[cmd, k])[field])).sum()
    };
    let (bf, cf, cms, td) = (
        ["bf:scaling", "bf:fixed", "bf:default"],
        ["cf:grow", "cf:default"],
        ["cms:dim", "cms:prob"],
        ["td:a", "td:empty"],
    );
    let want = serde_json::json!({
        "bloom": {
            "keys": 3,
            "size": sum("BF.INFO", &bf, "Size"),
            "capacity": sum("BF.INFO", &bf, "Capacity"),
            "items": sum("BF.INFO", &bf, "Number of items inserted"),
            "filters": sum("BF.INFO", &bf, "Number of filters"),
        },
        "cuckoo": {
            "keys": 2,
            "size": sum("CF.INFO", &cf, "Size"),
            "items": sum("CF.INFO", &cf, "Number of items inserted"),
            "deleted": sum("CF.INFO", &cf, "Number of items deleted"),
            "filters": sum("CF.INFO", &cf, "Number of filters"),
        },
        "cms": {
            "keys": 2,
            "count": sum("CMS.INFO", &cms, "count"),
        },
        "topk": {
            "keys": 1,
            "k": 10,
        },
        "tdigest": {
            "keys": 2,
            "size": sum("TDIGEST.INFO", &td, "Memory usage"),
            "observations": sum("TDIGEST.INFO", &td, "Observations"),
            "centroids": sum("TDIGEST.INFO", &td, "Merged nodes") + sum("TDIGEST.INFO", &td, "Unmerged nodes"),
        },
    });
    let mv = &got["module_values"];
    for (kind, fields) in want.as_object().unwrap() {
        for (f, w) in fields.as_object().unwrap() {
            assert_eq!(
                num(&mv[kind][f]),
                num(w),
                "info module_values {kind}.{f}: {mv}"
            );
        }
    }
    assert_eq!(mv["json"]["keys"], documents().len());
    let json_memory: u64 = documents()
        .iter()
        .map(|(k, _)| {
            let n: u64 = redis::cmd("JSON.DEBUG")
                .arg("MEMORY")
                .arg(*k)
                .query(&mut s.conn())
                .unwrap();
            n
        })
        .sum();
    assert_eq!(mv["json"]["size"], json_memory, "JSON.DEBUG MEMORY summed");
    assert_eq!(got["module_unread"], serde_json::json!([]));

    // memory: the report's estimate of the module keys against MEMORY USAGE
    let o = rdbkit(&["report", dump.to_str().unwrap(), "--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o));
    let (mut ours, mut theirs, mut n) = (0u64, 0u64, 0);
    for l in String::from_utf8(o.stdout).unwrap().lines() {
        let r: Value = serde_json::from_str(l).unwrap();
        if r["type"] != "module" {
            continue;
        }
        let key = r["key"].as_str().unwrap();
        assert_ne!(r["encoding"], "module", "{key} not read: {r}");
        let usage: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query(&mut s.conn())
            .unwrap();
        ours += r["memory"].as_u64().unwrap();
        theirs += usage;
        n += 1;
    }
    assert_eq!(n, documents().len() + 10);
    let ratio = ours as f64 / theirs as f64;
    assert!(
        (0.95..=1.05).contains(&ratio),
        "module keys: estimate {ours} vs MEMORY USAGE {theirs} ({ratio:.4})"
    );
}

fn import(dump: &Path, target: &Server, extra: &[&str]) -> std::process::Output {
    let url = target.url();
    let mut args = vec!["import", dump.to_str().unwrap(), "--target", &url];
    args.extend_from_slice(extra);
    rdbkit(&args)
}

fn with_modules(modules: &[Stack]) -> Server {
    let args = Stack::args(modules);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_opts(Version::V82, &args)
}

#[test]
fn imports_into_targets_with_all_some_or_none_of_the_modules() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((s, dump)) = source(tmp.path()) else {
        return;
    };
    let docs = documents();

    // all modules: every value by RESTORE, the same dataset (digest, DUMP bytes of module values)
    let full = with_modules(&Stack::ALL);
    let o = import(&dump, &full, &[]);
    assert!(o.status.success(), "{}", text(&o));
    common::assert_same_dataset(&s, &full);

    // all modules, --mode commands: documents by JSON.SET, read back equal
    let cmds = with_modules(&Stack::ALL);
    let o = import(&dump, &cmds, &["--mode", "commands"]);
    assert!(o.status.success(), "{}", text(&o));
    for (k, _) in &docs {
        assert_eq!(json_get(&cmds, k), json_get(&s, k), "{k}");
    }
    let exp: i64 = redis::cmd("PEXPIRETIME")
        .arg("json:nested")
        .query(&mut cmds.conn())
        .unwrap();
    assert_eq!(exp, 4102444800000);
    common::assert_same_dataset(&s, &cmds);

    // only JSON: documents by RESTORE, RedisBloom values reported as missing
    let json_only = with_modules(&[Stack::Json]);
    let o = import(&dump, &json_only, &[]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("module type MBbloom-- not loaded on the target"),
        "{t}"
    );
    for (k, _) in &docs {
        assert_eq!(json_get(&json_only, k), json_get(&s, k), "{k}");
        let payload = |srv: &Server| -> Vec<u8> {
            redis::cmd("DUMP").arg(*k).query(&mut srv.conn()).unwrap()
        };
        assert_eq!(payload(&json_only), payload(&s), "{k}: not restored as is");
    }
    let n: u64 = redis::cmd("DBSIZE").query(&mut json_only.conn()).unwrap();
    assert_eq!(n as usize, docs.len() + 2);

    // none: without --json-as-string documents are skipped like any module value …
    let none = Server::start(Version::V82);
    let o = import(&dump, &none, &["--skip-modules"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let n: u64 = redis::cmd("DBSIZE").query(&mut none.conn()).unwrap();
    assert_eq!(n, 2, "{t}");
    // … with it, each document is a string holding what JSON.GET returns
    let none = Server::start(Version::V82);
    let o = import(&dump, &none, &["--skip-modules", "--json-as-string"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(&format!("{} JSON documents written as strings", docs.len())),
        "{t}"
    );
    for (k, _) in &docs {
        let v: String = redis::cmd("GET").arg(*k).query(&mut none.conn()).unwrap();
        assert_eq!(v, json_get(&s, k), "{k}");
    }
    let exp: i64 = redis::cmd("PEXPIRETIME")
        .arg("json:nested")
        .query(&mut none.conn())
        .unwrap();
    assert_eq!(exp, 4102444800000);
}

#[test]
fn resp_export_writes_documents_with_json_set_or_as_strings() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((s, dump)) = source(tmp.path()) else {
        return;
    };
    let docs = documents();
    let export = |extra: &[&str]| -> Vec<u8> {
        let mut args = vec![
            "export",
            dump.to_str().unwrap(),
            "--format",
            "resp",
            "--key",
            "json:*",
        ];
        args.extend_from_slice(extra);
        let o = rdbkit(&args);
        assert!(o.status.success(), "{}", text(&o));
        o.stdout
    };
    let resp = export(&[]);
    assert!(!resp.windows(7).any(|w| w == b"RESTORE"));
    let target = with_modules(&[Stack::Json]);
    target.pipe(&resp);
    for (k, _) in &docs {
        assert_eq!(json_get(&target, k), json_get(&s, k), "{k}");
    }
    let plain = Server::start(Version::V82);
    plain.pipe(&export(&["--json-as-string"]));
    for (k, _) in &docs {
        let v: String = redis::cmd("GET").arg(*k).query(&mut plain.conn()).unwrap();
        assert_eq!(v, json_get(&s, k), "{k}");
    }
}
