//! JSON lines export: one object per key.
//!
//! Byte strings that are valid UTF-8 become JSON strings; any other byte string becomes
//! `{"base64": "…"}` (standard alphabet, padded). The same rule applies to keys, members, fields,
//! values, stream fields and group/consumer names, so the output is lossless. Scores are JSON
//! numbers, except `"inf"` / `"-inf"`, which JSON cannot represent as numbers.
//!
//! The writer is hand-written (no intermediate `serde_json::Value` tree) because export speed is a
//! product goal; the tests parse its output back with `serde_json`.

use crate::model::{Elem, Entry, StreamId, Value};
use base64::Engine as _;
use std::io::Write as _;

/// Appends `b` as a JSON string, or `{"base64":…}` when not UTF-8.
pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => string(out, s),
        Err(_) => {
            out.extend_from_slice(b"{\"base64\":\"");
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(b)
                    .as_bytes(),
            );
            out.extend_from_slice(b"\"}");
        }
    }
}

/// Appends a JSON string literal with the escapes JSON requires.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut last = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&b[last..i]);
                let _ = write!(out, "\\u{c:04x}");
                last = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[last..i]);
        out.extend_from_slice(esc);
        last = i + 1;
    }
    out.extend_from_slice(&b[last..]);
    out.push(b'"');
}

fn elem(out: &mut Vec<u8>, e: &Elem<'_>) {
    match e {
        Elem::Bytes(b) => bytes(out, b),
        Elem::Int(_) => {
            out.push(b'"');
            e.write_to(out);
            out.push(b'"');
        }
    }
}

fn score(out: &mut Vec<u8>, s: f64) {
    if s == f64::INFINITY {
        out.extend_from_slice(b"\"inf\"");
    } else if s == f64::NEG_INFINITY {
        out.extend_from_slice(b"\"-inf\"");
    } else {
        let _ = write!(out, "{s:?}");
    }
}

fn id(out: &mut Vec<u8>, id: StreamId) {
    let _ = write!(out, "\"{}-{}\"", id.ms, id.seq);
}

fn list<'e, I: IntoIterator<Item = &'e Elem<'e>>>(out: &mut Vec<u8>, items: I) {
    out.push(b'[');
    for (i, e) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        elem(out, e);
    }
    out.push(b']');
}

/// Appends one JSON object (no newline) for `entry` with its decoded `value`.
pub fn entry(out: &mut Vec<u8>, entry: &Entry<'_>, value: &Value<'_>) {
    let _ = write!(out, "{{\"db\":{},\"key\":", entry.db);
    bytes(out, &entry.key);
    let _ = write!(out, ",\"type\":\"{}\"", entry.value_type().name());
    if let Some(ms) = entry.expire_ms {
        let _ = write!(out, ",\"expire_at_ms\":{ms}");
    }
    out.extend_from_slice(b",\"value\":");
    match value {
        Value::String(s) => elem(out, s),
        Value::List(v) | Value::Set(v) => list(out, v),
        Value::SortedSet(v) => {
            out.push(b'[');
            for (i, (m, s)) in v.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'[');
                elem(out, m);
                out.push(b',');
                score(out, *s);
                out.push(b']');
            }
            out.push(b']');
        }
        Value::Hash(v) => {
            out.push(b'[');
            for (i, f) in v.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'[');
                elem(out, &f.field);
                out.push(b',');
                elem(out, &f.value);
                if let Some(ms) = f.expire_ms {
                    let _ = write!(out, ",{ms}");
                }
                out.push(b']');
            }
            out.push(b']');
        }
        Value::Stream(s) => {
            out.extend_from_slice(b"{\"entries\":[");
            for (i, e) in s.entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"id\":");
                id(out, e.id);
                out.extend_from_slice(b",\"fields\":[");
                for (j, (f, v)) in e.fields.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.push(b'[');
                    elem(out, f);
                    out.push(b',');
                    elem(out, v);
                    out.push(b']');
                }
                out.extend_from_slice(b"]}");
            }
            let _ = write!(out, "],\"length\":{},\"last_id\":", s.length);
            id(out, s.last_id);
            if let Some(f) = s.first_id {
                out.extend_from_slice(b",\"first_id\":");
                id(out, f);
            }
            if let Some(m) = s.max_deleted_id {
                out.extend_from_slice(b",\"max_deleted_id\":");
                id(out, m);
            }
            if let Some(a) = s.entries_added {
                let _ = write!(out, ",\"entries_added\":{a}");
            }
            out.extend_from_slice(b",\"groups\":[");
            for (i, g) in s.groups.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"name\":");
                bytes(out, &g.name);
                out.extend_from_slice(b",\"last_delivered_id\":");
                id(out, g.last_delivered);
                if let Some(r) = g.entries_read {
                    let _ = write!(out, ",\"entries_read\":{r}");
                }
                out.extend_from_slice(b",\"pending\":[");
                for (j, p) in g.pending.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"id\":");
                    id(out, p.id);
                    let _ = write!(
                        out,
                        ",\"delivery_time\":{},\"delivery_count\":{},\"consumer\":",
                        p.delivery_time, p.delivery_count
                    );
                    match p.consumer.and_then(|c| g.consumers.get(c)) {
                        Some(c) => bytes(out, &c.name),
                        None => out.extend_from_slice(b"null"),
                    }
                    out.push(b'}');
                }
                out.extend_from_slice(b"],\"consumers\":[");
                for (j, c) in g.consumers.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"name\":");
                    bytes(out, &c.name);
                    let _ = write!(
                        out,
                        ",\"seen_time\":{},\"active_time\":{},\"pending\":[",
                        c.seen_time, c.active_time
                    );
                    for (k, p) in c.pending.iter().enumerate() {
                        if k > 0 {
                            out.push(b',');
                        }
                        id(out, *p);
                    }
                    out.extend_from_slice(b"]}");
                }
                out.extend_from_slice(b"]}");
            }
            out.push(b']');
            if let Some(idmp) = &s.idmp {
                let _ = write!(
                    out,
                    ",\"idmp\":{{\"duration\":{},\"max_entries\":{},\"iids_added\":{},\"iids_duplicates\":{},\"producers\":[",
                    idmp.duration, idmp.max_entries, idmp.iids_added, idmp.iids_duplicates
                );
                for (i, p) in idmp.producers.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"pid\":");
                    bytes(out, &p.pid);
                    out.extend_from_slice(b",\"entries\":[");
                    for (j, (iid, sid)) in p.entries.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        out.push(b'[');
                        bytes(out, iid);
                        out.push(b',');
                        id(out, *sid);
                        out.push(b']');
                    }
                    out.extend_from_slice(b"]}");
                }
                out.extend_from_slice(b"]}");
            }
            out.push(b'}');
        }
        Value::Module(m) => {
            out.extend_from_slice(b"{\"module\":");
            string(out, &m.id.name());
            let _ = write!(
                out,
                ",\"encver\":{},\"size\":{}}}",
                m.id.encver(),
                m.body.len()
            );
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_and_binary_uses_base64() {
        let mut out = Vec::new();
        bytes(&mut out, b"a\"b\\c\n\x01\xc3\xa9");
        assert_eq!(
            serde_json::from_slice::<String>(&out).unwrap(),
            "a\"b\\c\n\u{1}é"
        );
        out.clear();
        bytes(&mut out, b"\xff\x00");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["base64"], "/wA=");
    }
}
