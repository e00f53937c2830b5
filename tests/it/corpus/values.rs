//! Comparing one decoded value with what an expected-output file says about it: how each tool
//! renders bytes ([`Enc`]), the parsed expectation ([`Want`]), and the per-format comparisons
//! (plain JSON shapes, librdb stream metadata, HDT3213 typed records, RFC 3339 times).

use crate::common::corpus::*;
use rdbkit::{Elem, Value};
use serde_json::Value as J;
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------------
// Expected-output files
// ---------------------------------------------------------------------------------------------

/// How a tool renders bytes that are not printable text.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Enc {
    /// One char per byte, `\u00XX` (librdb's PLAIN JSON encoding).
    Latin1,
    /// Valid UTF-8 as is, every other byte as the char of the same number (rdb-rs).
    Utf8OrLatin1,
    /// Invalid UTF-8 replaced by U+FFFD (Go's encoding/json, Java strings).
    Lossy,
}

impl Enc {
    /// Our bytes and the tool's text are the same string.
    pub(crate) fn eq(self, ours: &[u8], theirs: &str) -> bool {
        if std::str::from_utf8(ours).is_ok_and(|s| s == theirs) {
            return true;
        }
        match self {
            Enc::Latin1 => {
                theirs.chars().count() == ours.len()
                    && theirs
                        .chars()
                        .zip(ours)
                        .all(|(c, &b)| c as u32 == u32::from(b))
            }
            Enc::Utf8OrLatin1 => utf8_or_latin1(ours) == theirs,
            Enc::Lossy => {
                let strip = |s: &str| s.replace('\u{fffd}', "");
                strip(&String::from_utf8_lossy(ours)) == strip(theirs)
            }
        }
    }

    /// A canonical key for multiset matching (equal keys ⇔ `eq`, for the texts these tools write).
    pub(crate) fn norm_ours(self, ours: &[u8]) -> String {
        match self {
            Enc::Latin1 => match std::str::from_utf8(ours) {
                Ok(s) if s.is_ascii() => s.to_string(),
                _ => ours.iter().map(|&b| char::from(b)).collect(),
            },
            Enc::Utf8OrLatin1 => utf8_or_latin1(ours),
            Enc::Lossy => String::from_utf8_lossy(ours).replace('\u{fffd}', ""),
        }
    }

    pub(crate) fn norm_theirs(self, theirs: &str) -> String {
        match self {
            Enc::Latin1 | Enc::Utf8OrLatin1 => theirs.to_string(),
            Enc::Lossy => theirs.replace('\u{fffd}', ""),
        }
    }
}

pub(crate) fn utf8_or_latin1(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        s.push_str(chunk.valid());
        s.extend(chunk.invalid().iter().map(|&c| char::from(c)));
    }
    s
}

pub(crate) fn elem(e: &Elem<'_>) -> Vec<u8> {
    e.to_bytes().into_owned()
}

pub(crate) fn scores_equal(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

pub(crate) fn parse_score(s: &str) -> Option<f64> {
    match s {
        "inf" | "+inf" | "Infinity" => Some(f64::INFINITY),
        "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// What an expected-output file says about one key's TTL.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WantTtl {
    /// The format does not say.
    Unknown,
    /// Milliseconds (or none).
    Ms(Option<i64>),
    /// Whole seconds (or none).
    Secs(Option<i64>),
}

/// One key as an expected-output file describes it.
#[derive(Debug)]
pub(crate) struct Want {
    pub(crate) db: Option<u64>,
    pub(crate) key: String,
    pub(crate) value: WantValue,
    pub(crate) ttl: WantTtl,
}

#[derive(Debug)]
pub(crate) enum WantValue {
    /// A JSON value, read according to our value's type (formats whose JSON shapes are ambiguous).
    Json(J),
    /// HDT3213's typed JSON record.
    Hdt(J),
    /// A CSV row: the type name and the element count (None where the tool prints 0 for
    /// strings and streams).
    Meta {
        type_name: String,
        elements: Option<u64>,
    },
    /// The file shows the key but not a value that can be compared.
    KeyOnly,
}

pub(crate) fn type_name(v: &Value<'_>) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::List(_) => "list",
        Value::Set(_) => "set",
        Value::SortedSet(_) => "zset",
        Value::Hash(_) => "hash",
        Value::Stream(_) => "stream",
        Value::Module(_) => "module",
    }
}

pub(crate) fn json_str(j: &J) -> Result<&str, String> {
    j.as_str()
        .ok_or_else(|| format!("expected a JSON string, found {j}"))
}

/// The element counts of ours and the file's are equal.
fn same_len(ours: &[Vec<u8>], theirs: &[&str], what: &str) -> Result<(), String> {
    if ours.len() == theirs.len() {
        return Ok(());
    }
    Err(format!(
        "{what}: {} elements, file has {}",
        ours.len(),
        theirs.len()
    ))
}

/// Two multisets of strings are equal (ours as bytes, theirs as the tool's text).
pub(crate) fn same_multiset(
    enc: Enc,
    ours: &[Vec<u8>],
    theirs: &[&str],
    what: &str,
) -> Result<(), String> {
    same_len(ours, theirs, what)?;
    let mut a: Vec<String> = ours.iter().map(|b| enc.norm_ours(b)).collect();
    let mut b: Vec<String> = theirs.iter().map(|s| enc.norm_theirs(s)).collect();
    a.sort();
    b.sort();
    match a.iter().zip(&b).find(|(x, y)| x != y) {
        Some((x, y)) => Err(format!("{what}: {x:?} vs file {y:?}")),
        None => Ok(()),
    }
}

pub(crate) fn same_sequence(
    enc: Enc,
    ours: &[Vec<u8>],
    theirs: &[&str],
    what: &str,
) -> Result<(), String> {
    same_len(ours, theirs, what)?;
    for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
        if !enc.eq(o, t) {
            return Err(format!(
                "{what}[{i}]: {:?} vs file {t:?}",
                String::from_utf8_lossy(o)
            ));
        }
    }
    Ok(())
}

/// `field → value` pairs against a JSON object. A JSON object holds each name once, so where
/// ours repeats a field (stream entries may: HDT3213-rdb/stream_listpacks_1.rdb, key "test", has
/// fields `k`, `k`) the last value stands for it, as in the tools' maps.
pub(crate) fn same_pairs(
    enc: Enc,
    ours: &[(Vec<u8>, Vec<u8>)],
    theirs: &serde_json::Map<String, J>,
    what: &str,
) -> Result<(), String> {
    let mut last: HashMap<&[u8], usize> = HashMap::new();
    for (i, (f, _)) in ours.iter().enumerate() {
        last.insert(f, i);
    }
    let ours: Vec<Vec<u8>> = ours
        .iter()
        .enumerate()
        .filter(|(i, (f, _))| last[f.as_slice()] == *i)
        .map(|(_, (f, v))| [f.as_slice(), b"\x00=\x00", v.as_slice()].concat())
        .collect();
    let theirs_owned: Vec<String> = theirs
        .iter()
        .map(|(f, v)| Ok(format!("{f}\u{0}=\u{0}{}", json_str(v)?)))
        .collect::<Result<_, String>>()?;
    let t: Vec<&str> = theirs_owned.iter().map(String::as_str).collect();
    same_multiset(enc, &ours, &t, what)
}

pub(crate) fn same_zset(
    enc: Enc,
    ours: &[(Elem<'_>, f64)],
    theirs: &[(String, f64)],
    what: &str,
) -> Result<(), String> {
    if ours.len() != theirs.len() {
        return Err(format!(
            "{what}: {} members, file has {}",
            ours.len(),
            theirs.len()
        ));
    }
    let mut a: Vec<(String, f64)> = ours
        .iter()
        .map(|(m, s)| (enc.norm_ours(&elem(m)), *s))
        .collect();
    let mut b: Vec<(String, f64)> = theirs
        .iter()
        .map(|(m, s)| (enc.norm_theirs(m), *s))
        .collect();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    for (x, y) in a.iter().zip(&b) {
        if x.0 != y.0 || !scores_equal(x.1, y.1) {
            return Err(format!("{what}: {x:?} vs file {y:?}"));
        }
    }
    Ok(())
}

pub(crate) fn hash_pairs(v: &[rdbkit::HashField<'_>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.iter().map(|f| (elem(&f.field), elem(&f.value))).collect()
}

/// Compares our value with a JSON value whose shape is read by our type (rdb-rs, librdb,
/// redis-rdb-cli): string → string, array → list (ordered) or set, object → hash or zset
/// (member → score as text or number), streams in librdb's `{"entries":[{id, items}]}` form.
pub(crate) fn cmp_json(enc: Enc, ours: &Value<'_>, j: &J) -> Result<(), String> {
    match (ours, j) {
        (Value::String(e), J::String(s)) => enc
            .eq(&elem(e), s)
            .then_some(())
            .ok_or_else(|| format!("{:?} vs file {s:?}", String::from_utf8_lossy(&elem(e)))),
        (Value::Module(m), J::String(s)) => {
            // librdb writes "<Content of Module 'test__rdb'. Occupies …>" at the data level
            if s.contains(&format!("Module '{}'", m.id.name())) {
                Ok(())
            } else {
                Err(format!("module {} vs file {s:?}", m.id.name()))
            }
        }
        (Value::List(v), J::Array(a)) | (Value::Set(v), J::Array(a)) => {
            let o: Vec<Vec<u8>> = v.iter().map(elem).collect();
            let t: Vec<&str> = a.iter().map(json_str).collect::<Result<_, _>>()?;
            if matches!(ours, Value::List(_)) {
                same_sequence(enc, &o, &t, "list")
            } else {
                same_multiset(enc, &o, &t, "set")
            }
        }
        (Value::Hash(h), J::Object(m)) => same_pairs(enc, &hash_pairs(h), m, "hash"),
        (Value::SortedSet(z), J::Object(m)) => {
            let t: Vec<(String, f64)> = m
                .iter()
                .map(|(k, v)| {
                    let s = match v {
                        J::Number(n) => n.as_f64(),
                        J::String(s) => parse_score(s),
                        _ => None,
                    };
                    s.map(|s| (k.clone(), s))
                        .ok_or_else(|| format!("score of {k:?} is {v}"))
                })
                .collect::<Result<_, _>>()?;
            same_zset(enc, z, &t, "zset")
        }
        (Value::Stream(s), J::Object(m)) => {
            let entries = m
                .get("entries")
                .and_then(J::as_array)
                .ok_or("stream without \"entries\"")?;
            if entries.len() != s.entries.len() {
                return Err(format!(
                    "stream: {} entries, file has {}",
                    s.entries.len(),
                    entries.len()
                ));
            }
            for (e, w) in s.entries.iter().zip(entries) {
                if w["id"].as_str() != Some(e.id.to_string().as_str()) {
                    return Err(format!("stream entry {} vs file {}", e.id, w["id"]));
                }
                let items = w["items"].as_object().ok_or("entry without items")?;
                let pairs: Vec<(Vec<u8>, Vec<u8>)> =
                    e.fields.iter().map(|(f, v)| (elem(f), elem(v))).collect();
                same_pairs(enc, &pairs, items, &format!("stream entry {}", e.id))?;
            }
            cmp_librdb_stream_meta(s, m)
        }
        _ => Err(format!("a {} vs file {j}", type_name(ours))),
    }
}

/// librdb's `includeStreamMeta` fields.
pub(crate) fn cmp_librdb_stream_meta(
    s: &rdbkit::Stream<'_>,
    m: &serde_json::Map<String, J>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut num = |k: &str, ours: Option<u64>| {
        if let Some(w) = m.get(k) {
            if w.as_u64() != ours {
                problems.push(format!("{k}: {ours:?} vs file {w}"));
            }
        }
    };
    num("length", Some(s.length));
    num("entriesAdded", s.entries_added);
    let mut id = |k: &str, ours: Option<rdbkit::StreamId>| {
        if let Some(w) = m.get(k) {
            if w.as_str() != ours.map(|i| i.to_string()).as_deref() {
                problems.push(format!("{k}: {ours:?} vs file {w}"));
            }
        }
    };
    id("firstID", s.first_id);
    id("lastID", Some(s.last_id));
    id("maxDelEntryID", s.max_deleted_id);
    if let Some(groups) = m.get("groups").and_then(J::as_array) {
        if groups.len() != s.groups.len() {
            problems.push(format!(
                "{} groups vs file {}",
                s.groups.len(),
                groups.len()
            ));
        }
        for (g, w) in s.groups.iter().zip(groups) {
            let name = String::from_utf8_lossy(&g.name);
            let pel: Vec<String> = g
                .pending
                .iter()
                .map(|p| format!("{} {} {}", p.id, p.delivery_time, p.delivery_count))
                .collect();
            let wpel: Vec<String> = w["pending"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{} {} {}",
                        p["id"].as_str().unwrap_or("?"),
                        p["sent"],
                        p["count"]
                    )
                })
                .collect();
            let consumers: Vec<String> = g
                .consumers
                .iter()
                .map(|c| {
                    let ids: Vec<String> = c.pending.iter().map(|i| i.to_string()).collect();
                    format!(
                        "{} {} {} {:?}",
                        String::from_utf8_lossy(&c.name),
                        c.active_time,
                        c.seen_time,
                        ids
                    )
                })
                .collect();
            let wconsumers: Vec<String> = w["consumers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let ids: Vec<String> = c["pending"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| p["id"].as_str().unwrap_or("?").to_string())
                        .collect();
                    format!(
                        "{} {} {} {:?}",
                        c["name"].as_str().unwrap_or("?"),
                        c["activeTime"],
                        c["seenTime"],
                        ids
                    )
                })
                .collect();
            if w["name"].as_str() != Some(&name)
                || w["lastid"].as_str() != Some(g.last_delivered.to_string().as_str())
                || w["entriesRead"].as_u64() != g.entries_read
                || pel != wpel
                || consumers != wconsumers
            {
                problems.push(format!(
                    "group {name}: ours {} {:?} {pel:?} {consumers:?}, file {w}",
                    g.last_delivered, g.entries_read
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// HDT3213/rdb's JSON record for one key.
pub(crate) fn cmp_hdt(ours: &Rec<'_>, j: &J) -> Result<(), String> {
    let enc = Enc::Lossy;
    let want_type = j["type"].as_str().unwrap_or("?");
    if want_type != type_name(&ours.value) {
        return Err(format!(
            "type {} vs file {want_type}",
            type_name(&ours.value)
        ));
    }
    match &ours.value {
        Value::String(_) => cmp_json(enc, &ours.value, &j["value"]),
        Value::List(_) => cmp_json(enc, &ours.value, &j["values"]),
        Value::Set(_) => cmp_json(enc, &ours.value, &j["members"]),
        Value::Hash(h) => {
            let m = j["hash"].as_object().ok_or("hash without \"hash\"")?;
            same_pairs(enc, &hash_pairs(h), m, "hash")?;
            // field TTLs: "expire": {field: ms, 0 = none}
            if let Some(exp) = j.get("expire").and_then(J::as_object) {
                let ours: Vec<(Vec<u8>, Vec<u8>)> = h
                    .iter()
                    .map(|f| {
                        (
                            elem(&f.field),
                            f.expire_ms.unwrap_or(0).to_string().into_bytes(),
                        )
                    })
                    .collect();
                let theirs: serde_json::Map<String, J> = exp
                    .iter()
                    .map(|(k, v)| (k.clone(), J::String(v.to_string())))
                    .collect();
                same_pairs(enc, &ours, &theirs, "hash field TTLs")?;
            } else if h.iter().any(|f| f.expire_ms.is_some()) {
                return Err("field TTLs the file does not show".into());
            }
            Ok(())
        }
        Value::SortedSet(z) => {
            let t: Vec<(String, f64)> = j["entries"]
                .as_array()
                .ok_or("zset without \"entries\"")?
                .iter()
                .map(|e| {
                    Ok((
                        json_str(&e["member"])?.to_string(),
                        e["score"].as_f64().ok_or("score is not a number")?,
                    ))
                })
                .collect::<Result<_, String>>()?;
            same_zset(enc, z, &t, "zset")
        }
        Value::Stream(s) => {
            // nodes → msgs; deleted ones are tombstones, not entries
            let mut msgs = Vec::new();
            for node in j["entries"].as_array().into_iter().flatten() {
                for m in node["msgs"].as_array().into_iter().flatten() {
                    if m["deleted"].as_bool() != Some(true) {
                        msgs.push(m);
                    }
                }
            }
            if msgs.len() != s.entries.len() {
                return Err(format!(
                    "stream: {} entries, file has {}",
                    s.entries.len(),
                    msgs.len()
                ));
            }
            for (e, m) in s.entries.iter().zip(&msgs) {
                if m["id"].as_str() != Some(e.id.to_string().as_str()) {
                    return Err(format!("stream entry {} vs file {}", e.id, m["id"]));
                }
                let pairs: Vec<(Vec<u8>, Vec<u8>)> =
                    e.fields.iter().map(|(f, v)| (elem(f), elem(v))).collect();
                let fields = m["fields"].as_object().ok_or("msg without fields")?;
                same_pairs(enc, &pairs, fields, &format!("stream entry {}", e.id))?;
            }
            let mut problems = Vec::new();
            let mut chk = |k: &str, ours: String| {
                if let Some(w) = j.get(k) {
                    let w = w
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| w.to_string());
                    if w != ours {
                        problems.push(format!("{k}: {ours} vs file {w}"));
                    }
                }
            };
            chk("len", s.length.to_string());
            chk("lastId", s.last_id.to_string());
            chk(
                "firstId",
                s.first_id.map(|i| i.to_string()).unwrap_or_default(),
            );
            chk(
                "maxDeletedId",
                s.max_deleted_id.map(|i| i.to_string()).unwrap_or_default(),
            );
            chk(
                "addedEntriesCount",
                s.entries_added.map(|n| n.to_string()).unwrap_or_default(),
            );
            let groups = j
                .get("groups")
                .and_then(J::as_array)
                .cloned()
                .unwrap_or_default();
            if groups.len() != s.groups.len() {
                problems.push(format!(
                    "{} groups, file has {}",
                    s.groups.len(),
                    groups.len()
                ));
            }
            for (g, w) in s.groups.iter().zip(&groups) {
                let ours = format!(
                    "{} {} {:?} {:?} {:?}",
                    String::from_utf8_lossy(&g.name),
                    g.last_delivered,
                    g.entries_read,
                    g.pending
                        .iter()
                        .map(|p| (p.id.to_string(), p.delivery_time, p.delivery_count))
                        .collect::<Vec<_>>(),
                    g.consumers
                        .iter()
                        .map(|c| (
                            String::from_utf8_lossy(&c.name).into_owned(),
                            c.seen_time,
                            c.active_time,
                            c.pending.iter().map(|i| i.to_string()).collect::<Vec<_>>()
                        ))
                        .collect::<Vec<_>>()
                );
                let theirs = format!(
                    "{} {} {:?} {:?} {:?}",
                    w["name"].as_str().unwrap_or("?"),
                    w["lastId"].as_str().unwrap_or("?"),
                    w["entriesRead"].as_u64(),
                    w["pending"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| (
                            p["id"].as_str().unwrap_or("?").to_string(),
                            p["deliveryTime"].as_i64().unwrap_or(-1),
                            p["deliveryCount"].as_u64().unwrap_or(0)
                        ))
                        .collect::<Vec<_>>(),
                    w["consumers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| (
                            c["name"].as_str().unwrap_or("?").to_string(),
                            c["seenTime"].as_i64().unwrap_or(-1),
                            c["activeTime"]
                                .as_i64()
                                .unwrap_or(c["seenTime"].as_i64().unwrap_or(-1)),
                            c["pending"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|i| i.as_str().unwrap_or("?").to_string())
                                .collect::<Vec<_>>()
                        ))
                        .collect::<Vec<_>>()
                );
                if ours != theirs {
                    problems.push(format!("group: ours {ours}, file {theirs}"));
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        }
        Value::Module(_) => Ok(()),
    }
}

/// `2022-12-25T18:11:12.573+08:00` → Unix ms.
pub(crate) fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let (date, rest) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, mo, da) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (time, offset_s) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else {
        let i = rest.rfind(['+', '-'])?;
        let (t, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (
            t,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, mi, se) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let ms = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}")[..3].parse::<i64>().ok()?
    };
    // days from civil (Howard Hinnant)
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(((days * 86400 + h * 3600 + mi * 60 + se) - offset_s) * 1000 + ms)
}
