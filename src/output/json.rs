//! JSON lines export: one object per key.
//!
//! Byte strings that are valid UTF-8 become JSON strings; any other byte string becomes
//! `{"base64": "…"}` (standard alphabet, padded). The same rule applies to keys, members, fields,
//! values, stream fields and group/consumer names, so the output is lossless. Scores are JSON
//! numbers, except `"inf"` / `"-inf"`, which JSON cannot represent as numbers.
//!
//! The writer is hand-written (no intermediate `serde_json::Value` tree) because export speed is a
//! product goal; the tests parse its output back with `serde_json`.

use crate::decode::module::ModuleData;
use crate::model::{Elem, Entry, StreamId, Value};
use base64::Engine as _;
use std::io::Write as _;

/// Appends `b` as a JSON string, or `{"base64":…}` when not UTF-8.
pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    let start = out.len();
    // one pass escapes and notes non-ASCII bytes; only then is UTF-8 validity checked (export
    // profiles on D1 had `from_utf8` + escaping as two passes at ~40% of the time)
    if escaped(out, b) && std::str::from_utf8(b).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"{\"base64\":\"");
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(b)
                .as_bytes(),
        );
        out.extend_from_slice(b"\"}");
    }
}

/// Appends a JSON string literal with the escapes JSON requires.
pub fn string(out: &mut Vec<u8>, s: &str) {
    escaped(out, s.as_bytes());
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte of the result is set where the byte of `w` needs a look before JSON takes it
/// verbatim: bytes >= 0x80, bytes < 0x20, `"` and `\\`. (Bytes above a flagged one may be flagged
/// too, by borrows; callers only use "any flag set", and then look byte by byte.)
#[inline]
fn special(w: u64) -> u64 {
    let lt20 = w.wrapping_sub(0x20 * LO) & !w;
    let q = w ^ (u64::from(b'"') * LO);
    let bs = w ^ (u64::from(b'\\') * LO);
    (w | lt20 | (q.wrapping_sub(LO) & !q) | (bs.wrapping_sub(LO) & !bs)) & HI
}

#[inline]
fn word(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Length of the prefix of `b` that JSON takes verbatim without a look at UTF-8: printable ASCII
/// other than `"` and `\\`. Checks 32 bytes per step, without branches inside a step (D2's 1 MiB
/// strings went from 1.7 to ~10 GB/s against a byte loop with four branches per word).
#[inline]
fn plain_len(b: &[u8]) -> usize {
    let mut i = 0;
    for c in b.chunks_exact(32) {
        if special(word(&c[..8]))
            | special(word(&c[8..16]))
            | special(word(&c[16..24]))
            | special(word(&c[24..]))
            != 0
        {
            break;
        }
        i += 32;
    }
    for c in b[i..].chunks_exact(8) {
        if special(word(c)) != 0 {
            break;
        }
        i += 8;
    }
    // fewer than 8 bytes left after clean words: one more word check covers them, overlapping
    // bytes already checked (or padded with plain ones when the string is that short)
    if b.len() - i < 8 && i < b.len() {
        let last = match b.len().checked_sub(8) {
            Some(from) => word(&b[from..]),
            None => {
                let mut pad = [b'a'; 8];
                pad[..b.len()].copy_from_slice(b);
                word(&pad)
            }
        };
        if special(last) == 0 {
            return b.len();
        }
    }
    while i < b.len() && matches!(b[i], 0x20..=0x7f) && b[i] != b'"' && b[i] != b'\\' {
        i += 1;
    }
    i
}

/// Appends `b` as a JSON string literal, escaping what JSON requires and copying the rest
/// (including any non-ASCII bytes) as is. Returns true when `b` has non-ASCII bytes, i.e. when
/// the caller must still check that it is UTF-8.
fn escaped(out: &mut Vec<u8>, b: &[u8]) -> bool {
    out.reserve(b.len() + 2);
    out.push(b'"');
    let (mut i, mut last, mut non_ascii) = (0, 0, false);
    loop {
        i += plain_len(&b[i..]);
        let Some(&c) = b.get(i) else { break };
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&b[last..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 15)]);
                i += 1;
                last = i;
                continue;
            }
            _ => {
                non_ascii = true;
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[last..i]);
        out.extend_from_slice(esc);
        i += 1;
        last = i;
    }
    out.extend_from_slice(&b[last..]);
    out.push(b'"');
    non_ascii
}

fn int(out: &mut Vec<u8>, v: i64) {
    match v {
        0..=9 => out.push(b'0' + v as u8),
        _ => out.extend_from_slice(crate::text::itoa_buf(v).as_slice()),
    }
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
        out.extend_from_slice(crate::text::f64_buf(s).as_slice());
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
    // written piece by piece: `write!` cost ~4% of D1 export
    out.extend_from_slice(b"{\"db\":");
    match i64::try_from(entry.db) {
        Ok(db) => int(out, db),
        Err(_) => out.extend_from_slice(entry.db.to_string().as_bytes()),
    }
    out.extend_from_slice(b",\"key\":");
    bytes(out, &entry.key);
    // module values that rdbkit reads: a JSON document is written as itself
    let module = match value {
        Value::Module(m) => Some(crate::decode::module::decode(m)),
        _ => None,
    };
    let doc = match &module {
        Some(Ok(Some(ModuleData::Json(d)))) => Some(d),
        _ => None,
    };
    out.extend_from_slice(b",\"type\":\"");
    match doc {
        Some(_) => out.extend_from_slice(b"json"),
        None => out.extend_from_slice(entry.value_type().name().as_bytes()),
    }
    out.push(b'"');
    if let Some(ms) = entry.expire_ms {
        out.extend_from_slice(b",\"expire_at_ms\":");
        int(out, ms);
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
                    out.push(b',');
                    int(out, ms);
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
                match g.known_entries_read() {
                    Some(Some(r)) => {
                        let _ = write!(out, ",\"entries_read\":{r}");
                    }
                    // Redis's "unknown" marker: nil in XINFO, null here
                    Some(None) => out.extend_from_slice(b",\"entries_read\":null"),
                    None => {}
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
        Value::Module(_) if doc.is_some() => {
            out.extend_from_slice(doc.map_or("null", |d| &d.text).as_bytes())
        }
        Value::Module(m) => {
            out.extend_from_slice(b"{\"module\":");
            string(out, &m.id.name());
            let _ = write!(
                out,
                ",\"encver\":{},\"size\":{}",
                m.id.encver(),
                m.body.len()
            );
            match &module {
                Some(Ok(Some(data))) => {
                    out.extend_from_slice(b",\"kind\":");
                    string(out, data.kind());
                    if let Some(p) = data.params() {
                        out.extend_from_slice(b",\"params\":");
                        out.extend_from_slice(p.to_string().as_bytes());
                    }
                }
                Some(Err(e)) => {
                    out.extend_from_slice(b",\"notice\":");
                    string(out, &e.to_string());
                }
                _ => {}
            }
            out.push(b'}');
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
        bytes(&mut out, b"0123456789abcdef\x00\x1f\x7f\"x\\");
        assert_eq!(
            serde_json::from_slice::<String>(&out).unwrap(),
            "0123456789abcdef\u{0}\u{1f}\u{7f}\"x\\"
        );
        assert_eq!(&out[17..35], b"\\u0000\\u001f\x7f\\\"x\\\\");
        out.clear();
        bytes(&mut out, b"\xff\x00");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["base64"], "/wA=");
    }

    /// The writer before the one-pass rewrite: `from_utf8`, then escaping byte by byte.
    fn reference(out: &mut Vec<u8>, b: &[u8]) {
        let Ok(s) = std::str::from_utf8(b) else {
            out.extend_from_slice(b"{\"base64\":\"");
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(b)
                    .as_bytes(),
            );
            out.extend_from_slice(b"\"}");
            return;
        };
        out.push(b'"');
        for &c in s.as_bytes() {
            match c {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0..=0x1f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
                _ => out.push(c),
            }
        }
        out.push(b'"');
    }

    #[test]
    fn plain_text_is_scanned_in_one_step() {
        let alphabet = b"ABCXYZabcxyz0189+/= !#$%&'()*,-.:;<>?@[]^_`{|}~\x7f";
        let text: Vec<u8> = (0..1000).map(|i| alphabet[i % alphabet.len()]).collect();
        assert_eq!(plain_len(&text), text.len());
        for special in [b'"', b'\\', b'\n', 0, 0x1f, 0x80, 0xff] {
            for at in [0, 7, 8, 31, 32, 500, 999] {
                let mut t = text.clone();
                t[at] = special;
                assert_eq!(plain_len(&t), at, "{special:#x} at {at}");
            }
        }
    }

    #[test]
    fn one_pass_writer_matches_the_reference() {
        let alphabet: &[&[u8]] = &[
            b"a",
            b"Z",
            b"0",
            b" ",
            b"~",
            b"\x7f",
            b"\"",
            b"\\",
            b"\n",
            b"\r",
            b"\t",
            b"\x00",
            b"\x1f",
            "é".as_bytes(),
            "€".as_bytes(),
            "😀".as_bytes(),
            b"\xff",
            b"\xc3",
            b"\x80",
        ];
        let mut rng = crate::testing::XorShift::default();
        let mut next = || rng.next_u64();
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            // mostly plain text, sometimes one of the special pieces
            let mut b = Vec::new();
            for _ in 0..len {
                let r = next();
                if r % 8 == 0 {
                    b.extend_from_slice(alphabet[(r >> 8) as usize % alphabet.len()]);
                } else {
                    b.push(b'a' + (r >> 8) as u8 % 26);
                }
            }
            let (mut got, mut want) = (b"x".to_vec(), b"x".to_vec());
            bytes(&mut got, &b);
            reference(&mut want, &b);
            assert_eq!(got, want, "{b:?}");
        }
    }
}
