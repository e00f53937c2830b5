//! Key counts per database equal the MANIFEST's `dbsize_incl_expired` (the count a server keeps
//! when it does not drop expired keys), wherever the MANIFEST has one; `Info` agrees.

use crate::common::corpus::*;
use std::collections::{BTreeMap, BTreeSet};

/// Keys per db, as a server that keeps expired keys would count them (empty collections are
/// skipped on load, a repeated key counts once), against the MANIFEST's `dbsize_incl_expired`.
#[test]
fn key_counts_match_manifest_dbsize_incl_expired() {
    let Some(root) = corpus_root() else {
        return;
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for row in manifest(&root) {
        let Some(want) = parse_dbsize(&row.dbsize_incl_expired) else {
            continue;
        };
        let data = std::fs::read(root.join(&row.path)).unwrap();
        let d = decode(&data);
        if d.error.is_some() {
            continue; // corpus_dumps_decode_or_fail_as_classified reports it
        }
        let mut distinct: BTreeMap<u64, BTreeSet<&[u8]>> = BTreeMap::new();
        let mut total = 0;
        for r in d.entries.iter().filter(|r| !r.value.is_empty()) {
            distinct.entry(r.db).or_default().insert(&r.key);
            total += 1;
        }
        let got: BTreeMap<u64, u64> = distinct
            .iter()
            .map(|(db, k)| (*db, k.len() as u64))
            .filter(|(_, n)| *n > 0)
            .collect();
        // Without repeated keys, `Info` (what `rdbkit info` prints) must say the same.
        if total == got.values().sum::<u64>() {
            let info: BTreeMap<u64, u64> = d
                .info
                .dbs
                .iter()
                .map(|(db, s)| (*db, s.keys - s.empty))
                .filter(|(_, n)| *n > 0)
                .collect();
            if info != got {
                failures.push(format!("{}: Info says {info:?}, entries {got:?}", row.path));
            }
        }
        if got != want {
            failures.push(format!(
                "{}: {got:?} keys, MANIFEST dbsize_incl_expired {want:?}",
                row.path
            ));
        }
        checked += 1;
    }
    eprintln!("{checked} dumps: key counts equal dbsize_incl_expired");
    assert!(
        checked > 150,
        "only {checked} rows had a dbsize_incl_expired"
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
