//! Every MANIFEST row decodes completely — or, for the rows no server here loads, behaves as the
//! table [`NOT_LOADABLE`] says: dumps of a known format decode, the corrupt / bad-checksum /
//! future-version / pre-release ones fail with a `DecodeError` that names an offset. A row that no
//! server loads and that the table does not classify fails the test, so nothing is accepted silently.

use crate::common::corpus::*;
use rdbkit::{Producer, Value};
use std::collections::HashMap;
use std::fmt::Write as _;

// ---------------------------------------------------------------------------------------------
// Rows that no server here loads: what each must do
// ---------------------------------------------------------------------------------------------

/// Why no server here loads a dump (checked against the MANIFEST columns, so a row cannot be
/// filed under the wrong reason by accident).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Valkey 9 (`VALKEY080` magic).
    Valkey9,
    /// RDB 13 (Redis 8.6): newer than 8.2.
    Rdb13,
    /// Redis Enterprise-only opcodes.
    Enterprise,
    /// Module data for a module none of the servers has (the value stays opaque).
    MissingModule,
    /// FUNCTION_PRE_GA records (7.0-rc format; Redis 7.0 GA still loads them, 8.2 does not).
    PreGaFunction,
    /// redis-rdb-cli output that repeats keys (servers refuse duplicate keys).
    DuplicateKeys,
    /// Corrupt on purpose (the source repository's corruption tests).
    Corrupt,
    /// A wrong CRC64 on purpose.
    BadChecksum,
    /// A version number from the future on purpose.
    FutureVersion,
    /// Unknown type ids on purpose (behind a version we refuse first).
    UnknownTypes,
    /// The 4.0-RC module format (type 6): not self-delimiting, every server refuses it.
    PreGaModule,
}

impl Class {
    /// Does the MANIFEST row support this classification?
    pub(crate) fn fits(self, r: &Row) -> bool {
        let n = r.notes.to_lowercase();
        match self {
            Class::Valkey9 => r.magic == "VALKEY" && r.rdb_version == "80",
            Class::Rdb13 => r.rdb_version == "13",
            Class::Enterprise => n.contains("enterprise"),
            Class::MissingModule => n.contains("module") && r.loads_82.contains("module"),
            Class::PreGaFunction => r.opcodes.contains("FUNCTION_PRE_GA"),
            Class::DuplicateKeys => r.loads_82.contains("duplicated key"),
            Class::Corrupt => n.contains("corrupt-on-purpose"),
            Class::BadChecksum => n.contains("bad checksum on purpose"),
            Class::FutureVersion => {
                n.contains("future") || r.rdb_version.parse::<u32>().is_ok_and(|v| v > 80)
            }
            Class::UnknownTypes => n.contains("unknown type"),
            Class::PreGaModule => r.loads_82.contains("Pre-release module format"),
        }
    }
}

pub(crate) type Check = fn(&Decoded<'_>) -> Result<(), String>;

pub(crate) fn no_check(_: &Decoded<'_>) -> Result<(), String> {
    Ok(())
}

#[derive(Clone, Copy)]
pub(crate) enum Expect {
    /// Decodes completely with this many keys; `check` looks at details.
    Decodes { keys: usize, check: Check },
    /// Fails with an error whose message starts with `offset <at>` and contains `says`.
    Fails { at: u64, says: &'static str },
}

pub(crate) struct NotLoadable {
    pub(crate) path: &'static str,
    pub(crate) class: Class,
    pub(crate) expect: Expect,
}

pub(crate) const fn decodes(
    path: &'static str,
    class: Class,
    keys: usize,
    check: Check,
) -> NotLoadable {
    NotLoadable {
        path,
        class,
        expect: Expect::Decodes { keys, check },
    }
}

pub(crate) const fn fails(
    path: &'static str,
    class: Class,
    at: u64,
    says: &'static str,
) -> NotLoadable {
    NotLoadable {
        path,
        class,
        expect: Expect::Fails { at, says },
    }
}

pub(crate) fn keys_are(d: &Decoded<'_>, want: &[&str]) -> Result<(), String> {
    let got: Vec<String> = d
        .entries
        .iter()
        .map(|r| String::from_utf8_lossy(&r.key).into_owned())
        .collect();
    (got == want)
        .then_some(())
        .ok_or(format!("keys {got:?}, want {want:?}"))
}

pub(crate) fn modules_are(d: &Decoded<'_>, name: &str) -> Result<(), String> {
    for r in &d.entries {
        if let Value::Module(m) = &r.value {
            if m.id.name() != name {
                return Err(format!("module {} where {name} was expected", m.id.name()));
            }
        }
    }
    Ok(())
}

pub(crate) fn pre_ga_functions(d: &Decoded<'_>, n: usize) -> Result<(), String> {
    if d.functions.len() != n {
        return Err(format!("{} functions, want {n}", d.functions.len()));
    }
    for f in &d.functions {
        if !f.starts_with(b"#!LUA name=") {
            return Err(format!("function code {:?}", String::from_utf8_lossy(f)));
        }
    }
    Ok(())
}

/// Dumps that no server here loads. Keys counts are our decoder's, cross-checked against an
/// independent source wherever one exists (expected-output files, MANIFEST dbsize from 7.0).
pub(crate) const NOT_LOADABLE: &[NotLoadable] = &[
    // ---- known formats: must decode
    decodes(
        "HDT3213-rdb/valkey_cluster_slot_import.rdb",
        Class::Valkey9,
        0,
        |d| {
            (d.slot_imports == 1)
                .then_some(())
                .ok_or("no SLOT_IMPORT item".into())
        },
    ),
    decodes(
        "HDT3213-rdb/valkey_cluster_slot_info.rdb",
        Class::Valkey9,
        1,
        |d| keys_are(d, &["{6ZJ}:fixture"]),
    ),
    decodes(
        "HDT3213-rdb/valkey_hash2_with_hfe.rdb",
        Class::Valkey9,
        1,
        no_check, // HDT3213-rdb/valkey_hash2_with_hfe.json
    ),
    decodes("librdb/test/dumps/stream_v13.rdb", Class::Rdb13, 49, |d| {
        let n = d
            .entries
            .iter()
            .filter(|r| matches!(r.value, Value::Stream(_)))
            .count();
        (n == 49).then_some(()).ok_or(format!("{n} streams"))
    }),
    decodes(
        "librdb/test/dumps/stream_v13_idmp.rdb",
        Class::Rdb13,
        1,
        |d| match &d.entries[0].value {
            Value::Stream(s) if s.idmp.as_ref().is_some_and(|i| i.producers.len() == 2) => Ok(()),
            _ => Err("no IDMP state with 2 producers".into()),
        },
    ),
    decodes(
        "librdb/test/dumps/redis_ent_opcode_ram_lru.rdb",
        Class::Enterprise,
        3,
        |d| {
            if d.producer != Some(Producer::RedisEnterprise) {
                return Err(format!("producer {:?}", d.producer));
            }
            keys_are(d, &["a", "e", "c"])
        },
    ),
    decodes(
        "redis-rdb-tools/redis_40_with_module.rdb",
        Class::MissingModule,
        2,
        |d| modules_are(d, "ReJSON-RL"),
    ),
    decodes("dragonfly/redis_json.rdb", Class::MissingModule, 3, |d| {
        modules_are(d, "ReJSON-RL")
    }),
    decodes(
        "librdb/test/dumps/module.rdb",
        Class::MissingModule,
        1,
        |d| {
            modules_are(d, "test__rdb") // librdb/test/dumps/module_data.json
        },
    ),
    decodes(
        "librdb/test/dumps/module_aux.rdb",
        Class::MissingModule,
        1,
        |d| {
            (d.module_aux == 2)
                .then_some(())
                .ok_or(format!("{} module aux", d.module_aux))
        },
    ),
    decodes(
        "librdb/test/dumps/misc_with_stream.rdb",
        Class::MissingModule,
        12,
        |d| {
            (d.module_aux > 0)
                .then_some(())
                .ok_or("no module aux".into())
        },
    ),
    decodes(
        "redis-replicator/function.rdb",
        Class::PreGaFunction,
        0,
        |d| pre_ga_functions(d, 2),
    ),
    decodes(
        "redis-rdb-cli/rdt/filter1.rdb",
        Class::PreGaFunction,
        1,
        |d| pre_ga_functions(d, 2),
    ),
    // all.rdb: redis-rdb-cli/rct/all.rdb.{jsonl,key,count}; the dbsize check covers the rest
    decodes(
        "redis-rdb-cli/rct/all.rdb",
        Class::DuplicateKeys,
        270,
        |d| pre_ga_functions(d, 2),
    ),
    decodes("redis-rdb-cli/rdt/34.rdb", Class::DuplicateKeys, 90, |d| {
        pre_ga_functions(d, 2)
    }),
    decodes(
        "redis-rdb-cli/rdt/dump.rdb",
        Class::DuplicateKeys,
        270,
        |d| pre_ga_functions(d, 2),
    ),
    decodes(
        "redis-rdb-cli/rdt/filter.rdb",
        Class::DuplicateKeys,
        184,
        |d| pre_ga_functions(d, 2),
    ),
    // ---- must fail cleanly
    fails(
        "redis/corrupt_ziplist.rdb",
        Class::Corrupt,
        0x1ed,
        "ziplist zltail: needs 4 bytes but only 1 remain",
    ),
    fails(
        "librdb/test/dumps/invalid_chksum_v8.rdb",
        Class::BadChecksum,
        0xc9,
        "CRC64 mismatch",
    ),
    fails(
        "librdb/test/dumps/future_v19.rdb",
        Class::FutureVersion,
        0,
        "unsupported RDB version 99",
    ),
    fails(
        "NexCache-SOVEREIGN-NV-RUBIN-4.0/encodings-rdb987.rdb",
        Class::FutureVersion,
        0,
        "unsupported RDB version 987",
    ),
    fails(
        "NexCache-SOVEREIGN-NV-RUBIN-4.0/encodings-rdb75-unknown-types.rdb",
        Class::UnknownTypes,
        0,
        "unsupported RDB version 75",
    ),
    fails(
        "NexCache-SOVEREIGN-NV-RUBIN-4.0/encodings-rdb987-unknown-types.rdb",
        Class::UnknownTypes,
        0,
        "unsupported RDB version 987",
    ),
    fails(
        "redis-replicator/module.rdb",
        Class::PreGaModule,
        0x4e9,
        "unknown type or opcode 6 (0x06): pre-release (4.0 RC) module format",
    ),
];

// ---------------------------------------------------------------------------------------------
// The main test
// ---------------------------------------------------------------------------------------------

#[test]
pub(crate) fn corpus_dumps_decode_or_fail_as_classified() {
    let Some(root) = corpus_root() else {
        return;
    };
    let rows = manifest(&root);
    assert!(
        rows.len() > 100,
        "MANIFEST.tsv has only {} rows",
        rows.len()
    );
    let by_path: HashMap<&str, &Row> = rows.iter().map(|r| (r.path.as_str(), r)).collect();
    let table: HashMap<&str, &NotLoadable> = NOT_LOADABLE.iter().map(|n| (n.path, n)).collect();
    let mut failures: Vec<String> = Vec::new();
    for n in NOT_LOADABLE {
        match by_path.get(n.path) {
            None => failures.push(format!(
                "{}: in NOT_LOADABLE but not in MANIFEST.tsv",
                n.path
            )),
            Some(r) if r.loads_in_82() => failures.push(format!(
                "{}: in NOT_LOADABLE but 8.2 loads it; drop it from the table",
                n.path
            )),
            Some(r) if !n.class.fits(r) => failures.push(format!(
                "{}: classified {:?}, but the MANIFEST says loads_in_8.2={:?} notes={:?}",
                n.path, n.class, r.loads_82, r.notes
            )),
            _ => {}
        }
    }

    let mut report = String::new();
    let (mut n_ok, mut n_failed_as_expected) = (0, 0);
    for row in &rows {
        let data = std::fs::read(root.join(&row.path)).unwrap();
        let d = decode(&data);
        // Every error names where it happened.
        if let Some(e) = &d.error {
            if !e
                .to_string()
                .starts_with(&format!("offset {:#x}", e.offset()))
            {
                failures.push(format!("{}: error without offset: {e}", row.path));
            }
        }
        let class_label;
        if row.loads_in_82() {
            class_label = "8.2 loads it".to_string();
            match &d.error {
                None if d.eof.is_some() => n_ok += 1,
                None => failures.push(format!("{}: no EOF item", row.path)),
                Some(e) => failures.push(format!("{}: 8.2 loads it, we fail: {e}", row.path)),
            }
        } else {
            // A byte-identical copy behaves like the row it copies.
            let lookup = if row.dup_of.is_empty() {
                row.path.as_str()
            } else {
                row.dup_of.as_str()
            };
            let Some(n) = table.get(lookup) else {
                failures.push(format!(
                    "{}: no server loads it (loads_in_8.2={:?}, notes={:?}) and NOT_LOADABLE does \
                     not classify it: add it to NOT_LOADABLE in tests/corpus/classified.rs with what it must do",
                    row.path, row.loads_82, row.notes
                ));
                let _ = writeln!(report, "{:<70} UNCLASSIFIED  {}", row.path, d.outcome());
                continue;
            };
            class_label = format!("{:?}", n.class);
            match (n.expect, &d.error) {
                (Expect::Decodes { keys, check }, None) => {
                    if d.eof.is_none() {
                        failures.push(format!("{}: no EOF item", row.path));
                    } else if d.entries.len() != keys {
                        failures.push(format!(
                            "{}: {} keys, the table says {keys}",
                            row.path,
                            d.entries.len()
                        ));
                    } else if let Err(e) = check(&d) {
                        failures.push(format!("{}: {e}", row.path));
                    } else {
                        n_ok += 1;
                    }
                }
                (Expect::Decodes { .. }, Some(e)) => {
                    failures.push(format!("{}: must decode, fails: {e}", row.path))
                }
                (Expect::Fails { at, says }, Some(e)) => {
                    let msg = e.to_string();
                    if e.offset() != at || !msg.contains(says) {
                        failures.push(format!(
                            "{}: must fail at {at:#x} with {says:?}, fails with: {msg}",
                            row.path
                        ));
                    } else {
                        n_failed_as_expected += 1;
                    }
                }
                (Expect::Fails { at, says }, None) => failures.push(format!(
                    "{}: must fail at {at:#x} with {says:?}, but decodes",
                    row.path
                )),
            }
        }
        let _ = writeln!(
            report,
            "{:<70} {:<14} {}",
            row.path,
            class_label,
            d.outcome()
        );
    }
    eprintln!("{report}");
    eprintln!(
        "{} rows: {n_ok} decode, {n_failed_as_expected} fail as classified, {} problems",
        rows.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
