//! The report as readable text: the summary's tables ([`Report::to_text`]), CSV rows, and the
//! byte and number display they share.

use super::{KeyRecord, PrefixNode, Report, Totals, EXPIRY_BUCKETS};
use std::fmt::Write as _;

impl Report {
    /// The summary as aligned text tables.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let t = &self.totals;
        let _ = writeln!(
            s,
            "keys: {}   memory: {} ({})   elements: {}   with TTL: {}   (the dump as saved)",
            group(t.keys),
            human(t.memory),
            group(t.memory),
            group(t.elements),
            group(t.expires)
        );
        let now = self.loaded_now();
        let _ = writeln!(
            s,
            "as it would load now: keys: {}   memory: {} ({})   ({} already expired left out)",
            group(now.keys),
            human(now.memory),
            group(now.memory),
            crate::output::count(t.keys - now.keys, "key"),
        );
        let _ = writeln!(
            s,
            "keyspace tables: {}   dump values: {}   (estimates model Redis 8.2; see README \"Memory report\")",
            human(self.keyspace_overhead()),
            human(self.serialized)
        );
        if self.unmodelled.keys > 0 {
            let _ = writeln!(
                s,
                "module values: {} counted at their serialized size ({})",
                crate::output::count(self.unmodelled.keys, "key"),
                human(self.unmodelled.memory)
            );
        }
        let table = |s: &mut String, title: &str, rows: Vec<(String, Totals)>| {
            let w = rows
                .iter()
                .map(|r| r.0.len())
                .max()
                .unwrap_or(0)
                .max(title.len());
            let _ = writeln!(
                s,
                "\n{title:<w$}  {:>12} {:>10}  {:>7}  {:>12}  {:>10}",
                "keys", "memory", "share", "elements", "with TTL"
            );
            for (name, t) in rows {
                let _ = writeln!(
                    s,
                    "{name:<w$}  {:>12} {:>10}  {:>6.1}%  {:>12}  {:>10}",
                    group(t.keys),
                    human(t.memory),
                    pct(t.memory, self.totals.memory),
                    group(t.elements),
                    group(t.expires)
                );
            }
        };
        table(
            &mut s,
            "db",
            self.dbs
                .iter()
                .map(|(k, t)| (format!("db{k}"), *t))
                .collect(),
        );
        table(
            &mut s,
            "type",
            self.types
                .iter()
                .map(|(k, t)| (k.to_string(), *t))
                .collect(),
        );
        table(
            &mut s,
            "encoding",
            self.encodings
                .iter()
                .map(|(k, t)| (k.clone(), *t))
                .collect(),
        );
        table(
            &mut s,
            "expiry",
            EXPIRY_BUCKETS
                .iter()
                .zip(self.expiry.iter())
                .map(|(k, t)| (k.to_string(), *t))
                .collect(),
        );
        let top = |s: &mut String, title: &str, v: Vec<&KeyRecord>| {
            if v.is_empty() {
                return;
            }
            let _ = writeln!(s, "\n{title}");
            let _ = writeln!(
                s,
                "  {:>10} {:>10}  {:<7} {:<11} {:>4}  {:<19}  key",
                "memory", "elements", "type", "encoding", "db", "expires (UTC)"
            );
            for r in v {
                let _ = writeln!(
                    s,
                    "  {:>10} {:>10}  {:<7} {:<11} {:>4}  {:<19}  {}",
                    human(r.memory),
                    group(r.elements),
                    r.value_type.name(),
                    r.encoding,
                    r.db,
                    r.expire_ms
                        .map(|t| crate::output::info::format_utc(t.div_euclid(1000))
                            .replace(" UTC", ""))
                        .unwrap_or_else(|| "-".into()),
                    display_bytes(&r.key)
                );
            }
        };
        top(&mut s, "biggest keys by memory", self.top_by_memory());
        top(&mut s, "biggest keys by elements", self.top_by_elements());
        let _ = writeln!(
            s,
            "\nmemory by prefix (separator {:?}, depth {})",
            display_bytes(&self.opts.separator),
            self.opts.depth
        );
        fn tree(
            s: &mut String,
            n: &PrefixNode,
            path: &[u8],
            sep: &[u8],
            indent: usize,
            total: u64,
        ) {
            let (kids, other) = n.sorted_children(10);
            for (seg, c) in kids {
                let p = [path, seg].concat();
                let mut label = display_bytes(&p);
                if !sep.is_empty() && p.ends_with(sep) {
                    label.push('*');
                }
                let _ = writeln!(
                    s,
                    "  {:>10} {:>6.1}% {:>10} keys  {:indent$}{label}",
                    human(c.memory),
                    pct(c.memory, total),
                    group(c.keys),
                    "",
                );
                tree(s, c, &p, sep, indent + 2, total);
            }
            if let Some((keys, memory)) = other {
                let _ = writeln!(
                    s,
                    "  {:>10} {:>6.1}% {:>10} keys  {:indent$}(other)",
                    human(memory),
                    pct(memory, total),
                    group(keys),
                    "",
                );
            }
        }
        tree(
            &mut s,
            &self.prefixes,
            b"",
            &self.opts.separator,
            0,
            self.totals.memory,
        );
        s
    }
}

/// Bytes as readable text: UTF-8 kept, `\` doubled, control and invalid bytes as `\xNN`.
pub fn display_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(s, "\\x{byte:02x}");
                    }
                }
                c => s.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(s, "\\x{byte:02x}");
        }
    }
    s
}

/// The CSV header matching [`csv_row`].
pub const CSV_HEADER: &str =
    "db,key,type,encoding,rdb_encoding,memory,serialized,elements,largest_element,expire_at_ms\n";

/// One key as a CSV row (RFC 4180 quoting; the key as [`display_bytes`] text).
pub fn csv_row(out: &mut String, r: &KeyRecord) {
    let key = display_bytes(&r.key);
    let _ = write!(out, "{},", r.db);
    if key.contains([',', '"', '\n', '\r']) || key.starts_with(' ') || key.ends_with(' ') {
        let _ = write!(out, "\"{}\"", key.replace('"', "\"\""));
    } else {
        out.push_str(&key);
    }
    let _ = writeln!(
        out,
        ",{},{},{},{},{},{},{},{}",
        r.value_type.name(),
        r.encoding,
        r.rdb_encoding.replace(',', ";"),
        r.memory,
        r.serialized,
        r.elements,
        r.largest_element,
        r.expire_ms.map(|t| t.to_string()).unwrap_or_default()
    );
}

/// `1234567` → `1,234,567`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes with a binary unit: `1.5 MiB`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn pct(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 * 100.0 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ValueType;

    #[test]
    fn text_helpers() {
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(12), "12");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(display_bytes(b"k\\\xff\n"), "k\\\\\\xff\\x0a");
        let mut s = String::new();
        csv_row(
            &mut s,
            &KeyRecord {
                db: 1,
                key: b"a,\"b".to_vec(),
                value_type: ValueType::Hash,
                encoding: "listpack",
                rdb_encoding: "listpack",
                memory: 48,
                serialized: 20,
                elements: 2,
                largest_element: 3,
                expire_ms: Some(5),
            },
        );
        assert_eq!(s, "1,\"a,\"\"b\",hash,listpack,listpack,48,20,2,3,5\n");
    }
}
