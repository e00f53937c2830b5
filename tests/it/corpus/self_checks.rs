//! The checks are not vacuous: unit checks of the parsing helpers, and a changed value, a wrong
//! dump or a wrong TTL is reported by the comparisons.

use crate::common::corpus::*;
use crate::corpus::expected::*;
use crate::corpus::pairs::*;
use crate::corpus::values::*;
use rdbkit::{Elem, Value};
use serde_json::Value as J;
use std::collections::BTreeMap;

/// Unit checks of the helpers above.
#[test]
fn helpers() {
    assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339_ms("2022-12-25T18:11:12.573+08:00"),
        Some(1_671_963_072_573)
    );
    assert_eq!(
        parse_rfc3339_ms("2022-02-18T06:15:29.18+08:00"),
        Some(1_645_136_129_180)
    );
    assert_eq!(parse_dbsize("db0=228;db1=9;db2=1").unwrap().len(), 3);
    assert_eq!(parse_dbsize("empty"), Some(BTreeMap::new()));
    assert!(Enc::Latin1.eq(b"\xea\x03", "\u{ea}\u{3}"));
    assert!(Enc::Lossy.eq(b"a\xffb", "a\u{fffd}b"));
    assert!(!Enc::Lossy.eq(b"ab", "ac"));
}

/// The comparisons are not vacuous: a changed value, a wrong dump or a wrong TTL is reported.
#[test]
fn comparisons_detect_differences() {
    use rdbkit::HashField;
    use serde_json::json;
    let e = |s: &'static str| Elem::from(s.as_bytes());
    let list = Value::List(vec![e("a"), Elem::Int(7)]);
    assert!(cmp_json(Enc::Lossy, &list, &json!(["a", "7"])).is_ok());
    assert!(
        cmp_json(Enc::Lossy, &list, &json!(["7", "a"])).is_err(),
        "list order"
    );
    assert!(cmp_json(Enc::Lossy, &list, &json!(["a"])).is_err());
    let set = Value::Set(vec![e("a"), Elem::Int(7)]);
    assert!(cmp_json(Enc::Lossy, &set, &json!(["7", "a"])).is_ok());
    assert!(cmp_json(Enc::Lossy, &set, &json!(["7", "b"])).is_err());
    let hash = Value::Hash(vec![HashField {
        field: e("f"),
        value: e("v"),
        expire_ms: None,
    }]);
    assert!(cmp_json(Enc::Latin1, &hash, &json!({"f": "v"})).is_ok());
    assert!(cmp_json(Enc::Latin1, &hash, &json!({"f": "w"})).is_err());
    assert!(cmp_json(Enc::Latin1, &hash, &json!({"g": "v"})).is_err());
    let zset = Value::SortedSet(vec![(e("m"), 1.5)]);
    assert!(cmp_json(Enc::Latin1, &zset, &json!({"m": "1.5"})).is_ok());
    assert!(cmp_json(Enc::Latin1, &zset, &json!({"m": "1.25"})).is_err());
    assert!(cmp_json(Enc::Lossy, &Value::String(e("x")), &json!("y")).is_err());
    assert!(
        cmp_json(Enc::Lossy, &Value::String(e("x")), &json!(["x"])).is_err(),
        "type"
    );
    assert!(ttl_matches(Some(1_500), WantTtl::Secs(Some(1))));
    assert!(!ttl_matches(Some(1_500), WantTtl::Ms(Some(1_000))));
    assert!(!ttl_matches(None, WantTtl::Ms(Some(1_000))));

    let Some(root) = corpus_root() else {
        return;
    };
    // An HDT3213 record with one value changed.
    let data = std::fs::read(root.join("HDT3213-rdb/memory.rdb")).unwrap();
    let d = decode(&data);
    let recs: J =
        serde_json::from_slice(&std::fs::read(root.join("HDT3213-rdb/memory.json")).unwrap())
            .unwrap();
    let s_rec = recs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "s")
        .unwrap();
    let ours = d.entries.iter().find(|r| r.key == b"s").unwrap();
    assert!(cmp_hdt(ours, s_rec).is_ok());
    let mut changed = s_rec.clone();
    changed["value"] = json!("aaaaaab");
    assert!(cmp_hdt(ours, &changed).is_err());
    // Expected-output files against the wrong dump.
    for (file, rdb, format) in [
        (
            "HDT3213-rdb/hash.json",
            "HDT3213-rdb/hash_as_ziplist.rdb",
            Format::HdtJson,
        ),
        (
            "HDT3213-rdb/memory.csv",
            "HDT3213-rdb/listpack.rdb",
            Format::HdtCsv,
        ),
        (
            "HDT3213-rdb/memory.json",
            "HDT3213-rdb/memory.rdb",
            Format::HdtCsv,
        ),
        (
            "librdb/test/dumps/hash_zl_v6_data.json",
            "librdb/test/dumps/hash_lp_v11.rdb",
            Format::LibrdbJson,
        ),
        (
            "rdb-rs/json/quicklist_with_one_node.json",
            "rdb-rs/linkedlist.rdb",
            Format::RdbRsJson,
        ),
        (
            "rdb-rs/json/intset_16.json",
            "rdb-rs/intset_32.rdb",
            Format::RdbRsJson,
        ),
        (
            "redis-rdb-cli/rct/all.rdb.key",
            "redis-rdb-cli/rdt/dump.rdb",
            Format::RdbCliKeys,
        ),
        (
            "redis-rdb-cli/rct/all.rdb.count",
            "redis-rdb-cli/rdt/34.rdb",
            Format::RdbCliCount,
        ),
    ] {
        let data = std::fs::read(root.join(rdb)).unwrap();
        let d = decode(&data);
        assert!(
            compare_expected(&root, file, format, false, &d).is_err(),
            "{file} matched {rdb}"
        );
    }
    // The same key and value, but expired: the server view drops it.
    let data = std::fs::read(root.join("librdb/test/dumps/set_expired_v11.rdb")).unwrap();
    let (file, d) = ("librdb/test/dumps/set_not_expired.json", decode(&data));
    assert!(compare_expected(&root, file, Format::LibrdbJson, false, &d).is_ok());
    assert!(compare_expected(&root, file, Format::LibrdbJson, true, &d).is_err());
}
