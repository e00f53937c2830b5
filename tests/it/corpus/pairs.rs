//! Which expected-output file is compared with which dump: the formats, the explicit pairs
//! ([`EXPECTED`]), the files and families skipped with a reason, and the check that every
//! expected-output file in the corpus is either paired or skipped.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

// ---- expected-output parsers

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// HDT3213/rdb `*.json`: an array of typed records.
    HdtJson,
    /// HDT3213/rdb `*.csv` memory report: database,key,type,…,element_count,encoding,expiration.
    HdtCsv,
    /// rdb-rs `json/*.json`: one `{key: value}` object per non-empty database.
    RdbRsJson,
    /// librdb data-level JSON (a fragment: `"key":value,…`, or `[{…},{…}]` per database).
    LibrdbJson,
    /// redis-rdb-cli `all.rdb.jsonl`: one `{"key","value","db","type"}` per line.
    RdbCliJsonl,
    /// redis-rdb-cli `all.rdb.key`: every key in file order, quoted.
    RdbCliKeys,
    /// redis-rdb-cli `all.rdb.count`: keys per type.
    RdbCliCount,
}

/// What an expected-output file holds beyond the keys.
#[derive(Default, Debug)]
pub(crate) struct WantExtra {
    pub(crate) aux: Vec<(String, String)>,
    pub(crate) functions: Option<Vec<String>>,
    pub(crate) dbsize: Option<(u64, u64)>,
    pub(crate) slotinfo: Option<(u64, u64, u64)>,
    /// Keys in exact file order (the order must match ours).
    pub(crate) ordered: bool,
    /// Per-type counts.
    pub(crate) counts: Option<BTreeMap<String, u64>>,
}

pub(crate) struct Expected {
    pub(crate) rdb: &'static str,
    pub(crate) file: &'static str,
    pub(crate) format: Format,
    /// The file shows what a server keeps after loading (expired keys and empty values dropped).
    pub(crate) server_view: bool,
}

pub(crate) const fn exp(rdb: &'static str, file: &'static str, format: Format) -> Expected {
    Expected {
        rdb,
        file,
        format,
        server_view: false,
    }
}

pub(crate) const L: &str = "librdb/test/dumps/";

/// Explicit pairs (HDT3213 `*.json` and rdb-rs `json/*.json` pair with the dump of the same stem
/// automatically). librdb's pairs come from its test/test_rdb_to_json.c and test_rdb_to_redis.c.
pub(crate) const EXPECTED: &[Expected] = &[
    exp(
        "HDT3213-rdb/memory.rdb",
        "HDT3213-rdb/memory.csv",
        Format::HdtCsv,
    ),
    Expected {
        server_view: true, // the report after dropping expired keys
        ..exp(
            "HDT3213-rdb/memory.rdb",
            "HDT3213-rdb/memory_expired.csv",
            Format::HdtCsv,
        )
    },
    exp(
        "HDT3213-rdb/listpack.rdb",
        "HDT3213-rdb/listpack.csv",
        Format::HdtCsv,
    ),
    exp(
        "HDT3213-rdb/set_listpack.rdb",
        "HDT3213-rdb/set_listpack.csv",
        Format::HdtCsv,
    ),
    exp(
        "HDT3213-rdb/stream_listpacks_1.rdb",
        "HDT3213-rdb/stream_listpacks_1.csv",
        Format::HdtCsv,
    ),
    exp(
        "HDT3213-rdb/stream_listpacks_2.rdb",
        "HDT3213-rdb/stream_listpacks_2.csv",
        Format::HdtCsv,
    ),
    exp(
        "librdb/test/dumps/ziplist_v3.rdb",
        "librdb/test/dumps/ziplist_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/plain_list_v6.rdb",
        "librdb/test/dumps/plain_list_v6_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/hash_v3.rdb",
        "librdb/test/dumps/hash_data.json",
        Format::LibrdbJson,
    ),
    // plain_hash_*.json belonged to plain_hash_v3.rdb, since renamed hash_v3.rdb (same content)
    exp(
        "librdb/test/dumps/hash_v3.rdb",
        "librdb/test/dumps/plain_hash_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/hash_with_expire_v12.rdb",
        "librdb/test/dumps/hash_ex_v12_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/hash_zl_v6.rdb",
        "librdb/test/dumps/hash_zl_v6_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/hash_lp_v11.rdb",
        "librdb/test/dumps/hash_lp_v11_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/hash_lp_with_hexpire_v12.rdb",
        "librdb/test/dumps/hash_lp_ex_v12_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/hash_zm_v2.rdb",
        "librdb/test/dumps/hash_zm_v2_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/plain_set_v6.rdb",
        "librdb/test/dumps/plain_set_v6_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/set_is_v11.rdb",
        "librdb/test/dumps/set_is_v11_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/set_lp_v11.rdb",
        "librdb/test/dumps/set_lp_v11_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/plain_zset_2_v11.rdb",
        "librdb/test/dumps/plain_zset_2_v11_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/zset_lp_v11.rdb",
        "librdb/test/dumps/zset_lp_v11_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/zset_zl_v6.rdb",
        "librdb/test/dumps/zset_zl_v6_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/quicklist.rdb",
        "librdb/test/dumps/quicklist_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/quicklist2_v11.rdb",
        "librdb/test/dumps/single_list_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/multiple_lists_strings.rdb",
        "librdb/test/dumps/multiple_lists_strings_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/single_key.rdb",
        "librdb/test/dumps/single_key_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/multiple_dbs.rdb",
        "librdb/test/dumps/multiple_dbs_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/function2.rdb",
        "librdb/test/dumps/function2.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/module.rdb",
        "librdb/test/dumps/module_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/module_aux.rdb",
        "librdb/test/dumps/module_aux_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/string_int_encoded.rdb",
        "librdb/test/dumps/string_int_encoded.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/stream_v11.rdb",
        "librdb/test/dumps/stream_data.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/stream_v11.rdb",
        "librdb/test/dumps/stream_data_with_meta.json",
        Format::LibrdbJson,
    ),
    exp(
        "librdb/test/dumps/cluster_slot_info.rdb",
        "librdb/test/dumps/cluster_slot_info.json",
        Format::LibrdbJson,
    ),
    // test_rdb_to_redis.c: what a server holds after the import
    Expected {
        server_view: true,
        ..exp(
            "librdb/test/dumps/set_expired_v11.rdb",
            "librdb/test/dumps/set_expired.json",
            Format::LibrdbJson,
        )
    },
    Expected {
        server_view: true,
        ..exp(
            "librdb/test/dumps/set_not_expired_v11.rdb",
            "librdb/test/dumps/set_not_expired.json",
            Format::LibrdbJson,
        )
    },
    Expected {
        server_view: true,
        ..exp(
            "librdb/test/dumps/mem_policy_lfu.rdb",
            "librdb/test/dumps/mem_policy_lfu.json",
            Format::LibrdbJson,
        )
    },
    Expected {
        server_view: true,
        ..exp(
            "librdb/test/dumps/mem_policy_lru.rdb",
            "librdb/test/dumps/mem_policy_lru.json",
            Format::LibrdbJson,
        )
    },
    exp(
        "redis-rdb-cli/rct/all.rdb",
        "redis-rdb-cli/rct/all.rdb.jsonl",
        Format::RdbCliJsonl,
    ),
    exp(
        "redis-rdb-cli/rct/all.rdb",
        "redis-rdb-cli/rct/all.rdb.key",
        Format::RdbCliKeys,
    ),
    exp(
        "redis-rdb-cli/rct/all.rdb",
        "redis-rdb-cli/rct/all.rdb.count",
        Format::RdbCliCount,
    ),
];

/// Expected-output files not compared, and why.
pub(crate) const SKIPPED_EXPECTED: &[(&str, &str)] = &[
    (
        "HDT3213-rdb/memory_regex.json",
        "output filtered by a regex the fixture does not record",
    ),
    (
        "HDT3213-rdb/memory_regex.csv",
        "output filtered by a regex the fixture does not record",
    ),
    (
        "HDT3213-rdb/memory_regex.biggest.csv",
        "filtered by an unrecorded regex, then top-N by HDT's size estimate",
    ),
    (
        "HDT3213-rdb/memory_regex.aof",
        "output filtered by a regex the fixture does not record",
    ),
    (
        "HDT3213-rdb/largest.csv",
        "top-N by HDT3213's own memory-size estimate",
    ),
    (
        "HDT3213-rdb/tree.csv",
        "key-prefix aggregates of HDT3213's memory-size estimate",
    ),
    (
        "HDT3213-rdb/tree2.csv",
        "key-prefix aggregates of HDT3213's memory-size estimate",
    ),
    (
        "HDT3213-rdb/memory.aof",
        "AOF rendering of memory.rdb; memory.json/.csv are compared",
    ),
    (
        "HDT3213-rdb/hash_with_hfe.aof",
        "AOF rendering; hash_with_hfe.json is compared",
    ),
    (
        "HDT3213-rdb/hash_as_listpack_with_hfe.aof",
        "AOF rendering; the .json is compared",
    ),
    (
        "HDT3213-rdb/valkey_hash2_with_hfe.aof",
        "AOF rendering; the .json is compared",
    ),
    (
        "librdb/test/dumps/plain_zset_v6_data.json",
        "its dump plain_zset_v6.rdb is not in the corpus",
    ),
    (
        "librdb/test/dumps/multiple_lists_strings_no_aux.json",
        "librdb filter test (same data as _data.json)",
    ),
    (
        "librdb/test/dumps/multiple_lists_strings_2filters.json",
        "librdb filter test: a key subset",
    ),
    (
        "librdb/test/dumps/multiple_lists_strings_subset_list.json",
        "librdb filter test: a key subset",
    ),
    (
        "librdb/test/dumps/multiple_lists_strings_subset_str.json",
        "librdb filter test at the RAW level",
    ),
    (
        "redis-rdb-cli/rct/all.rdb.json",
        "invalid JSON (\\x escapes for streams/modules); all.rdb.jsonl holds the same records",
    ),
    (
        "redis-rdb-cli/rct/all.rdb.text",
        "lossy text rendering; all.rdb.jsonl is compared",
    ),
    (
        "redis-rdb-cli/rct/all.rdb.keyval",
        "CSV-ish rendering with tool-specific escaping; all.rdb.jsonl is compared",
    ),
    (
        "redis-rdb-cli/rct/all.rdb.resp",
        "RESP commands of the same data; all.rdb.jsonl is compared",
    ),
    (
        "redis-rdb-cli/rct/all.rdb.dump",
        "RESTORE payloads re-encoded by redis-rdb-cli",
    ),
    (
        "redis-rdb-cli/rct/all.rdb.dump7",
        "RESTORE payloads re-encoded by redis-rdb-cli for 7.x",
    ),
    (
        "redis-rdb-cli/rct/all.rdb.diff",
        "redis-rdb-cli diff format (RESTORE payload per key)",
    ),
];

/// Whole families skipped: (path prefix, suffix, reason).
pub(crate) const SKIPPED_FAMILIES: &[(&str, &str, &str)] = &[
    (
        "librdb/test/dumps/",
        "_raw.json",
        "librdb RAW level: serialized bytes, not data",
    ),
    (
        "librdb/test/dumps/",
        "_struct.json",
        "librdb STRUCT level: ziplist/listpack blobs, not data",
    ),
    (
        "rdb-rs/plain/",
        ".plain",
        "rdb-rs plain-text rendering of the same data as json/",
    ),
    (
        "rdb-rs/protocol/",
        ".protocol",
        "rdb-rs RESP rendering of the same data as json/",
    ),
];

/// Every expected-output file in the directories the corpus README names.
pub(crate) fn expected_output_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut add_dir = |dir: &str, keep: &dyn Fn(&str) -> bool| {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            return;
        };
        for e in rd {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if keep(&name) {
                out.push(format!("{dir}{name}"));
            }
        }
    };
    add_dir("HDT3213-rdb/", &|n| !n.ends_with(".rdb"));
    add_dir("rdb-rs/json/", &|_| true);
    add_dir("rdb-rs/plain/", &|_| true);
    add_dir("rdb-rs/protocol/", &|_| true);
    add_dir(L, &|n| n.ends_with(".json"));
    add_dir("redis-rdb-cli/rct/", &|n| n.starts_with("all.rdb."));
    out.sort();
    out
}

/// A dump and an expected-output file to compare it with.
pub(crate) struct Pair {
    pub(crate) rdb: String,
    pub(crate) file: String,
    pub(crate) format: Format,
    pub(crate) server_view: bool,
}

/// Every expected-output file compared, with its dump.
pub(crate) fn expected_pairs(root: &Path) -> Result<Vec<Pair>, Vec<String>> {
    let skipped: HashMap<&str, &str> = SKIPPED_EXPECTED.iter().copied().collect();
    let mut pairs = Vec::new();
    let mut problems = Vec::new();
    for f in expected_output_files(root) {
        if skipped.contains_key(f.as_str())
            || SKIPPED_FAMILIES
                .iter()
                .any(|(dir, suffix, _)| f.starts_with(dir) && f.ends_with(suffix))
        {
            continue;
        }
        let explicit: Vec<&Expected> = EXPECTED.iter().filter(|e| e.file == f).collect();
        if !explicit.is_empty() {
            for e in explicit {
                pairs.push(Pair {
                    rdb: e.rdb.to_string(),
                    file: f.clone(),
                    format: e.format,
                    server_view: e.server_view,
                });
            }
            continue;
        }
        // HDT3213-rdb/X.json ↔ HDT3213-rdb/X.rdb, rdb-rs/json/X.json ↔ rdb-rs/X.rdb
        let stem = |dir: &str| f.strip_prefix(dir).and_then(|s| s.strip_suffix(".json"));
        let auto = stem("HDT3213-rdb/")
            .map(|s| (format!("HDT3213-rdb/{s}.rdb"), Format::HdtJson))
            .or_else(|| {
                stem("rdb-rs/json/").map(|s| (format!("rdb-rs/{s}.rdb"), Format::RdbRsJson))
            });
        match auto {
            Some((rdb, format)) if root.join(&rdb).is_file() => pairs.push(Pair {
                rdb,
                file: f.clone(),
                format,
                server_view: false,
            }),
            _ => problems.push(format!(
                "{f}: an expected-output file neither compared nor skipped: pair it with its dump in \
                 EXPECTED or give the reason in SKIPPED_EXPECTED (tests/corpus/pairs.rs)"
            )),
        }
    }
    for e in EXPECTED {
        if !root.join(e.file).is_file() || !root.join(e.rdb).is_file() {
            problems.push(format!(
                "EXPECTED names a missing file: {} / {}",
                e.rdb, e.file
            ));
        }
    }
    for (f, _) in SKIPPED_EXPECTED {
        if !root.join(f).is_file() {
            problems.push(format!("SKIPPED_EXPECTED names a missing file: {f}"));
        }
    }
    if problems.is_empty() {
        Ok(pairs)
    } else {
        Err(problems)
    }
}
