//! Keys and values equal the expected-output files that the source projects ship beside their
//! dumps (HDT3213/rdb JSON and CSV, rdb-rs JSON, librdb data-level JSON, redis-rdb-cli
//! `all.rdb.{jsonl,key,count}`): parsing each format and comparing it with our decode.

use crate::common::corpus::*;
use crate::corpus::pairs::*;
use crate::corpus::values::*;
use rdbkit::Value;
use serde_json::Value as J;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub(crate) fn parse_expected(
    root: &Path,
    file: &str,
    format: Format,
    ours: &Decoded<'_>,
) -> Result<(Vec<Want>, WantExtra), String> {
    let bytes = std::fs::read(root.join(file)).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&bytes);
    let mut extra = WantExtra::default();
    let mut wants = Vec::new();
    // Our databases in the order they first hold a key (rdb-rs and librdb's unflattened form
    // write one object per such database).
    let mut dbs: Vec<u64> = Vec::new();
    for r in &ours.entries {
        if !dbs.contains(&r.db) {
            dbs.push(r.db);
        }
    }
    match format {
        Format::HdtJson => {
            let j: J = serde_json::from_str(&text).map_err(|e| format!("bad JSON: {e}"))?;
            for rec in j.as_array().ok_or("not an array")? {
                match rec["type"].as_str() {
                    Some("aux") => extra.aux.push((
                        json_str(&rec["key"])?.to_string(),
                        json_str(&rec["value"])?.to_string(),
                    )),
                    Some("functions") => extra
                        .functions
                        .get_or_insert_with(Vec::new)
                        .push(json_str(&rec["functionsLua"])?.to_string()),
                    _ => wants.push(Want {
                        db: rec["db"].as_u64(),
                        key: json_str(&rec["key"])?.to_string(),
                        ttl: WantTtl::Ms(match rec.get("expiration") {
                            Some(s) => Some(
                                parse_rfc3339_ms(json_str(s)?).ok_or(format!("bad time {s}"))?,
                            ),
                            None => None,
                        }),
                        value: WantValue::Hdt(rec.clone()),
                    }),
                }
            }
            extra.ordered = true;
        }
        Format::HdtCsv => {
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next().ok_or("empty CSV")?.split(',').collect();
            let col = |n: &str| {
                header
                    .iter()
                    .position(|h| *h == n)
                    .ok_or(format!("no column {n}"))
            };
            let (cdb, ckey, ctype, ccount, cexp) = (
                col("database")?,
                col("key")?,
                col("type")?,
                col("element_count")?,
                col("expiration")?,
            );
            for line in lines.filter(|l| !l.is_empty()) {
                if line.contains('"') {
                    return Err(format!("quoted CSV field in {line:?}: extend the parser"));
                }
                let f: Vec<&str> = line.split(',').collect();
                let type_name = f[ctype].to_string();
                let elements = match type_name.as_str() {
                    "string" | "stream" => None, // HDT3213 prints 0 for these
                    _ => Some(
                        f[ccount]
                            .parse()
                            .map_err(|_| format!("bad count in {line:?}"))?,
                    ),
                };
                wants.push(Want {
                    db: Some(f[cdb].parse().map_err(|_| format!("bad db in {line:?}"))?),
                    key: f[ckey].to_string(),
                    ttl: WantTtl::Secs(match f[cexp] {
                        "" => None,
                        t => Some(parse_rfc3339_ms(t).ok_or(format!("bad time {t}"))? / 1000),
                    }),
                    value: WantValue::Meta {
                        type_name,
                        elements,
                    },
                });
            }
            extra.ordered = true;
        }
        Format::RdbRsJson => {
            let j: J = serde_json::from_str(&text).map_err(|e| format!("bad JSON: {e}"))?;
            let per_db = j.as_array().ok_or("not an array")?;
            if per_db.len() != dbs.len() {
                return Err(format!(
                    "{} database objects, we have keys in {dbs:?}",
                    per_db.len()
                ));
            }
            for (obj, db) in per_db.iter().zip(&dbs) {
                for (k, v) in obj.as_object().ok_or("not an object")? {
                    wants.push(Want {
                        db: Some(*db),
                        key: k.clone(),
                        ttl: WantTtl::Unknown,
                        value: WantValue::Json(v.clone()),
                    });
                }
            }
        }
        Format::LibrdbJson => {
            let t = text.trim();
            // A fragment of an object's members (flatten), or an array of per-db objects.
            let j: J = if t.starts_with('[') {
                serde_json::from_str(t)
            } else {
                serde_json::from_str(&format!("{{{t}}}"))
            }
            .map_err(|e| format!("bad JSON: {e}"))?;
            let objects: Vec<(Option<u64>, &serde_json::Map<String, J>)> = match &j {
                J::Array(a) => {
                    if a.len() != dbs.len() {
                        return Err(format!(
                            "{} database objects, we have keys in {dbs:?}",
                            a.len()
                        ));
                    }
                    a.iter()
                        .zip(&dbs)
                        .map(|(o, db)| Ok((Some(*db), o.as_object().ok_or("not an object")?)))
                        .collect::<Result<_, String>>()?
                }
                J::Object(o) => vec![(None, o)],
                _ => return Err("neither an object nor an array".into()),
            };
            for (db, obj) in objects {
                for (k, v) in obj {
                    match k.as_str() {
                        "__aux__" => {
                            for (ak, av) in v.as_object().ok_or("__aux__ is not an object")? {
                                extra.aux.push((ak.clone(), json_str(av)?.to_string()));
                            }
                        }
                        "__func__" => {
                            extra.functions = Some(
                                v.as_object()
                                    .ok_or("__func__ is not an object")?
                                    .values()
                                    .map(|f| json_str(f).map(str::to_string))
                                    .collect::<Result<_, _>>()?,
                            )
                        }
                        "__dbsize__" => {
                            extra.dbsize = Some((
                                v["size"].as_u64().ok_or("__dbsize__.size")?,
                                v["expires"].as_u64().ok_or("__dbsize__.expires")?,
                            ))
                        }
                        "__slotinfo__" => {
                            extra.slotinfo = Some((
                                v["slotId"].as_u64().ok_or("slotId")?,
                                v["slotSize"].as_u64().ok_or("slotSize")?,
                                v["slotSExpiresSize"].as_u64().ok_or("slotSExpiresSize")?,
                            ))
                        }
                        _ => wants.push(Want {
                            db,
                            key: k.clone(),
                            ttl: WantTtl::Unknown,
                            value: WantValue::Json(v.clone()),
                        }),
                    }
                }
            }
        }
        Format::RdbCliJsonl | Format::RdbCliKeys => {
            // all.rdb.key and all.rdb.jsonl list the same keys line by line; the JSON of stream and
            // module records has \x escapes that are not JSON, so those keep only their key.
            let keys_file = std::fs::read(root.join(file.replace(".jsonl", ".key")))
                .map_err(|e| e.to_string())?;
            let keys: Vec<String> = String::from_utf8_lossy(&keys_file)
                .lines()
                .map(|l| {
                    l.strip_prefix('"')
                        .and_then(|l| l.strip_suffix('"'))
                        .unwrap_or(l)
                        .to_string()
                })
                .collect();
            let lines: Vec<&str> = text.lines().collect();
            if format == Format::RdbCliJsonl && lines.len() != keys.len() {
                return Err(format!(
                    "{} JSON lines, {} keys in all.rdb.key",
                    lines.len(),
                    keys.len()
                ));
            }
            for (i, key) in keys.into_iter().enumerate() {
                let (db, value) = match (format, lines.get(i).map(|l| serde_json::from_str::<J>(l)))
                {
                    (Format::RdbCliJsonl, Some(Ok(rec))) => {
                        if rec["key"].as_str() != Some(key.as_str()) {
                            return Err(format!(
                                "line {i}: key {} vs all.rdb.key {key:?}",
                                rec["key"]
                            ));
                        }
                        (rec["db"].as_u64(), WantValue::Json(rec["value"].clone()))
                    }
                    // not JSON: redis-rdb-cli writes \x escapes for stream and module records
                    (Format::RdbCliJsonl, _) => (None, WantValue::KeyOnly),
                    _ => (None, WantValue::KeyOnly),
                };
                wants.push(Want {
                    db,
                    key,
                    ttl: WantTtl::Unknown,
                    value,
                });
            }
            extra.ordered = true;
        }
        Format::RdbCliCount => {
            let mut lines = text.lines();
            let names: Vec<&str> = lines.next().ok_or("empty")?.split(',').collect();
            let counts: Vec<u64> = lines
                .next()
                .ok_or("no counts")?
                .split(',')
                .map(|n| n.trim().parse().map_err(|_| format!("bad count {n:?}")))
                .collect::<Result<_, _>>()?;
            extra.counts = Some(
                names
                    .iter()
                    .zip(counts)
                    .map(|(n, c)| (n.to_string(), c))
                    .collect(),
            );
        }
    }
    Ok((wants, extra))
}

pub(crate) fn ttl_matches(ours: Option<i64>, want: WantTtl) -> bool {
    match want {
        WantTtl::Unknown => true,
        WantTtl::Ms(ms) => ours == ms,
        WantTtl::Secs(s) => ours.map(|ms| ms.div_euclid(1000)) == s,
    }
}

/// Compares one expected-output file with our decode; returns (keys, values) compared.
pub(crate) fn compare_expected(
    root: &Path,
    file: &str,
    format: Format,
    server_view: bool,
    d: &Decoded<'_>,
) -> Result<(usize, usize), String> {
    let enc = match format {
        Format::LibrdbJson => Enc::Latin1,
        Format::RdbRsJson => Enc::Utf8OrLatin1,
        _ => Enc::Lossy,
    };
    let (wants, extra) = parse_expected(root, file, format, d)?;
    let now = now_ms();
    let ours: Vec<&Rec<'_>> = d
        .entries
        .iter()
        .filter(|r| !server_view || !(r.value.is_empty() || r.expire_ms.is_some_and(|e| e <= now)))
        .collect();
    let mut problems: Vec<String> = Vec::new();

    if let Some(counts) = &extra.counts {
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        for r in &ours {
            let t = match &r.value {
                Value::SortedSet(_) => "sortedset",
                v => type_name(v),
            };
            *got.entry(t.to_string()).or_default() += 1;
        }
        got.insert("summary".into(), ours.len() as u64);
        if &got != counts {
            problems.push(format!("counts {got:?} vs file {counts:?}"));
        }
        return if problems.is_empty() {
            Ok((ours.len(), 0))
        } else {
            Err(problems.join("\n"))
        };
    }

    // Match each wanted key to the first unused decoded key with the same name (and db).
    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in ours.iter().enumerate() {
        index.entry(enc.norm_ours(&r.key)).or_default().push(i);
    }
    let mut used = vec![false; ours.len()];
    let mut order = Vec::new();
    let mut values_compared = 0;
    for w in &wants {
        let cands = index
            .get(&enc.norm_theirs(&w.key))
            .cloned()
            .unwrap_or_default();
        let Some(i) = cands.into_iter().find(|&i| {
            !used[i] && w.db.is_none_or(|db| ours[i].db == db) && enc.eq(&ours[i].key, &w.key)
        }) else {
            problems.push(format!(
                "key {:?} (db {:?}) is in the file, not in our decode",
                w.key, w.db
            ));
            continue;
        };
        used[i] = true;
        order.push(i);
        let r = ours[i];
        let res = match &w.value {
            WantValue::Json(j) => cmp_json(enc, &r.value, j),
            WantValue::Hdt(j) => cmp_hdt(r, j),
            WantValue::Meta {
                type_name: t,
                elements,
            } => {
                let n = match &r.value {
                    Value::String(_) | Value::Stream(_) | Value::Module(_) => None,
                    v => Some(v.len() as u64),
                };
                if t != type_name(&r.value) || (elements.is_some() && *elements != n) {
                    Err(format!(
                        "{} with {n:?} elements vs file {t} with {elements:?}",
                        type_name(&r.value)
                    ))
                } else {
                    Ok(())
                }
            }
            WantValue::KeyOnly => Ok(()),
        };
        if !matches!(w.value, WantValue::KeyOnly) {
            values_compared += 1;
        }
        let ttl_ok = ttl_matches(r.expire_ms, w.ttl);
        if let Err(e) = res {
            problems.push(format!("key {:?}: {e}", w.key));
        } else if !ttl_ok {
            problems.push(format!(
                "key {:?}: TTL {:?} vs file {:?}",
                w.key, r.expire_ms, w.ttl
            ));
        }
    }
    for (i, r) in ours.iter().enumerate() {
        if !used[i] {
            problems.push(format!(
                "key {:?} (db {}) decoded, not in the file",
                String::from_utf8_lossy(&r.key),
                r.db
            ));
        }
    }
    if extra.ordered && problems.is_empty() && order.windows(2).any(|w| w[0] > w[1]) {
        problems.push("keys are in another order than in the file".into());
    }
    for (k, v) in &extra.aux {
        if !d.aux.iter().any(|(ak, av)| enc.eq(ak, k) && enc.eq(av, v)) {
            problems.push(format!("aux {k}={v:?} not decoded"));
        }
    }
    if let Some(f) = &extra.functions {
        let ours: Vec<Vec<u8>> = d.functions.clone();
        let theirs: Vec<&str> = f.iter().map(String::as_str).collect();
        if let Err(e) = same_multiset(enc, &ours, &theirs, "functions") {
            problems.push(e);
        }
    }
    if let Some(s) = extra.dbsize {
        if !d.resize_db.contains(&s) {
            problems.push(format!("RESIZEDB {s:?} not decoded ({:?})", d.resize_db));
        }
    }
    if let Some(s) = extra.slotinfo {
        if !d.slot_info.contains(&s) {
            problems.push(format!("SLOT_INFO {s:?} not decoded ({:?})", d.slot_info));
        }
    }
    if problems.is_empty() {
        Ok((wants.len(), values_compared))
    } else {
        Err(problems.join("\n    "))
    }
}

#[test]
pub(crate) fn keys_and_values_match_expected_output_files() {
    let Some(root) = corpus_root() else {
        return;
    };
    let pairs = match expected_pairs(&root) {
        Ok(p) => p,
        Err(problems) => panic!("\n{}", problems.join("\n")),
    };
    for (f, why) in SKIPPED_EXPECTED {
        eprintln!("skipped {f}: {why}");
    }
    for (dir, suffix, why) in SKIPPED_FAMILIES {
        eprintln!("skipped {dir}*{suffix}: {why}");
    }
    let mut failures = Vec::new();
    let mut dumps: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for p in &pairs {
        dumps
            .entry(p.rdb.as_str())
            .or_insert_with(|| std::fs::read(root.join(&p.rdb)).unwrap());
    }
    let decoded: BTreeMap<&str, Decoded<'_>> = dumps.iter().map(|(p, d)| (*p, decode(d))).collect();
    let mut values = 0usize;
    for Pair {
        rdb,
        file,
        format,
        server_view,
    } in &pairs
    {
        let d = &decoded[rdb.as_str()];
        if let Some(e) = &d.error {
            failures.push(format!("{file}: {rdb} does not decode: {e}"));
            continue;
        }
        match compare_expected(&root, file, *format, *server_view, d) {
            Ok((k, v)) => {
                values += v;
                eprintln!("{file:<62} {format:<12?} {k:>4} keys, {v:>4} values: equal");
            }
            Err(e) => {
                eprintln!("{file:<62} {format:<12?} MISMATCH");
                failures.push(format!("{file} ({format:?}) vs {rdb}:\n    {e}"));
            }
        }
    }
    eprintln!(
        "{} expected-output files compared against {} dumps ({values} values)",
        pairs.len(),
        decoded.len()
    );
    assert!(
        pairs.len() > 60,
        "only {} expected-output files paired",
        pairs.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
