//! The report as JSON: the summary ([`Report::to_json`], also embedded by the HTML page), the
//! prefix tree, and one object per key.

use super::{display_bytes, KeyRecord, PrefixNode, Report, Totals, EXPIRY_BUCKETS};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;

impl Totals {
    fn to_json(self) -> Json {
        json!({"keys": self.keys, "memory": self.memory, "elements": self.elements, "expires": self.expires})
    }
}

impl Report {
    /// The prefix tree as JSON: `{"name","keys","memory","children":[…]}`, at most `limit` children
    /// per node (largest first, the rest merged into `(other)`).
    pub fn prefix_json(&self, limit: usize) -> Json {
        fn node(name: &[u8], n: &PrefixNode, limit: usize, sep: &[u8]) -> Json {
            let (kids, other) = n.sorted_children(limit);
            let mut children: Vec<Json> = kids
                .into_iter()
                .map(|(seg, c)| node(&[name, seg].concat(), c, limit, sep))
                .collect();
            if let Some((keys, memory)) = other {
                children.push(json!({"name": "(other)", "prefix": false, "keys": keys,
                    "memory": memory, "children": []}));
            }
            let prefix = name.is_empty() || (!sep.is_empty() && name.ends_with(sep));
            json!({"name": display_bytes(name), "prefix": prefix, "keys": n.keys,
                "memory": n.memory, "children": children})
        }
        node(b"", &self.prefixes, limit, &self.opts.separator)
    }

    /// The summary as JSON (what `--format json` prints and the HTML page embeds).
    pub fn to_json(&self) -> Json {
        fn totals<K: std::fmt::Display>(m: &BTreeMap<K, Totals>) -> serde_json::Map<String, Json> {
            m.iter()
                .map(|(k, t)| (k.to_string(), t.to_json()))
                .collect()
        }
        let dbs: serde_json::Map<String, Json> = self
            .dbs
            .iter()
            .map(|(k, t)| (k.to_string(), t.to_json()))
            .collect();
        let expiry: serde_json::Map<String, Json> = EXPIRY_BUCKETS
            .iter()
            .zip(self.expiry.iter())
            .map(|(k, t)| (k.to_string(), t.to_json()))
            .collect();
        json!({
            "model": "Redis 8.2 (jemalloc), MEMORY USAGE-comparable per key",
            "totals": {
                "keys": self.totals.keys,
                "memory": self.totals.memory,
                "elements": self.totals.elements,
                "expires": self.totals.expires,
                "serialized": self.serialized,
                "keyspace_overhead": self.keyspace_overhead(),
                "module_keys": self.unmodelled.keys,
                "module_memory": self.unmodelled.memory,
            },
            // what a server loading the dump now holds: keys whose TTL has passed left out
            "loaded_now": self.loaded_now().to_json(),
            "dbs": dbs,
            "types": totals(&self.types),
            "encodings": totals(&self.encodings),
            "expiry": expiry,
            "top_by_memory": self.top_by_memory().iter().map(|r| record_json(r)).collect::<Vec<_>>(),
            "top_by_elements": self.top_by_elements().iter().map(|r| record_json(r)).collect::<Vec<_>>(),
            "prefix": {
                "separator": display_bytes(&self.opts.separator),
                "depth": self.opts.depth,
                "tree": self.prefix_json(50),
            },
        })
    }
}

/// One key as a JSON object (`--format jsonl` rows and the top lists).
pub fn record_json(r: &KeyRecord) -> Json {
    let mut o = json!({
        "db": r.db,
        "key": crate::text::bytes_json(&r.key),
        "type": r.value_type.name(),
        "encoding": r.encoding,
        "rdb_encoding": r.rdb_encoding,
        "memory": r.memory,
        "serialized": r.serialized,
        "elements": r.elements,
        "largest_element": r.largest_element,
    });
    if let Some(t) = r.expire_ms {
        o["expire_at_ms"] = t.into();
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON values of bytes (`text::bytes_json`, for keys in reports and summaries) are what
    /// the streaming export writes (`output::json::bytes`), parsed back.
    #[test]
    fn json_keys_follow_the_export_rule() {
        for b in [
            "k é\n\"\\\u{1}".as_bytes(),
            b"k\xff",
            b"",
            b"\xc3",
            "\u{2028}\u{7f}".as_bytes(),
        ] {
            let mut text = Vec::new();
            crate::output::json::bytes(&mut text, b);
            let exported: Json = serde_json::from_slice(&text).unwrap();
            assert_eq!(crate::text::bytes_json(b), exported, "{b:?}");
        }
    }
}
