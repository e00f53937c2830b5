//! `rdbkit info`: a summary of a dump built by decoding every item and every value.

use crate::decode::module::{self, search};
use crate::error::DecodeError;
use crate::model::{Checksum, Dialect, Encoding, Item, Magic, Producer};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Per-database counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Keys in the dump.
    pub keys: u64,
    /// Keys with a TTL.
    pub expires: u64,
    /// Keys whose TTL had passed when the dump was read (a primary drops them on load).
    pub expired: u64,
    /// Empty collections (Redis skips them on load).
    pub empty: u64,
    /// Keys that are empty or expired (counted once).
    pub dropped: u64,
}

impl DbStats {
    /// Keys a Redis primary keeps when loading this dump now.
    pub fn loadable(&self) -> u64 {
        self.keys - self.dropped
    }
}

/// The totals of one kind of module value (see [`crate::decode::module::ModuleData::counts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleTotals {
    /// Keys holding the kind.
    pub keys: u64,
    /// The module's own size of the values (its `mem_usage`: `BF.INFO` Size and the like).
    pub size: u64,
    /// Counts that add up over keys (`capacity`, `items`, …).
    pub counts: BTreeMap<&'static str, u64>,
}

impl ModuleTotals {
    fn add(&mut self, other: &ModuleTotals) {
        self.keys += other.keys;
        self.size = self.size.saturating_add(other.size);
        for (k, n) in &other.counts {
            let c = self.counts.entry(k).or_default();
            *c = c.saturating_add(*n);
        }
    }
}

/// Everything `rdbkit info` reports.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// `REDIS` or `VALKEY` magic and version.
    pub header: Option<(Magic, u32)>,
    /// Aux fields in file order.
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// Per database.
    pub dbs: BTreeMap<u64, DbStats>,
    /// Keys per RDB type id (names are derived at the end: this is counted per key).
    by_type_id: Vec<u64>,
    valkey: bool,
    /// Reused for decompressing blobs.
    scratch: Vec<u8>,
    /// Keep going past keys whose value is corrupt (`--salvage`).
    pub salvage: bool,
    /// Errors of the keys skipped in salvage mode.
    pub salvaged: Vec<String>,
    /// Total elements over all values.
    pub elements: u64,
    /// Module values per module type name.
    pub modules: BTreeMap<String, u64>,
    /// Totals of the module values rdbkit reads, per kind (`json`, `bloom`, `cuckoo`, `cms`,
    /// `topk`, `tdigest`).
    pub module_values: BTreeMap<&'static str, ModuleTotals>,
    /// Module values of a kind rdbkit reads that could not be read (the error, naming the key and
    /// offset; they stay opaque and are carried as they are).
    pub module_unread: Vec<String>,
    /// Module aux records (`name/encver when`).
    pub module_aux: Vec<String>,
    /// RediSearch index definitions read from its aux record (`ft_index0`).
    pub search_indexes: Vec<crate::decode::module::search::Index>,
    /// RediSearch aux records that could not be read (why; they stay opaque).
    pub search_unread: Vec<String>,
    /// Function library names.
    pub functions: Vec<String>,
    /// SHA1s of cached Lua scripts.
    pub scripts: Vec<String>,
    /// Slot-info records seen.
    pub slot_infos: u64,
    /// Trailer state, once the end was reached.
    pub checksum: Option<Checksum>,
    /// Who wrote the dump.
    pub producer: Option<Producer>,
    /// Keys with LRU idle or LFU frequency.
    pub with_idle: u64,
    /// Keys with LFU frequency.
    pub with_freq: u64,
    /// Keys found more than once in one database (`None`: not checked, for stdin).
    pub duplicates: Option<crate::dups::DuplicateScan>,
    now_ms: i64,
}

pub use crate::commands::library_name;

impl Info {
    /// An empty summary; keys expiring before `now_ms` count as expired.
    pub fn new(now_ms: i64) -> Self {
        Info {
            now_ms,
            by_type_id: vec![0; 256],
            ..Default::default()
        }
    }

    /// (encoding, keys) per type id seen (`None`: a type id this dump's dialect does not know).
    fn type_ids(&self) -> impl Iterator<Item = (Option<Encoding>, u64)> + '_ {
        let d = Dialect {
            valkey: self.valkey,
        };
        self.by_type_id
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(move |(t, n)| (Encoding::from_type(t as u8, d), *n))
    }

    /// Keys per logical type (`string`, `hash`, …).
    pub fn types(&self) -> BTreeMap<&'static str, u64> {
        let mut m = BTreeMap::new();
        for (e, n) in self.type_ids() {
            let name = e.map_or("unknown", |e| e.value_type().name());
            *m.entry(name).or_default() += n;
        }
        m
    }

    /// Keys per encoding (`type/encoding`).
    pub fn encodings(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for (e, n) in self.type_ids() {
            let name = e.map_or("unknown", |e| e.value_type().name());
            *m.entry(format!("{name}/{}", e.map_or("unknown", Encoding::name)))
                .or_default() += n;
        }
        m
    }

    /// Adds one item, decoding entry values fully (so a corrupt value is an error here).
    pub fn add(&mut self, item: &Item<'_>) -> Result<(), DecodeError> {
        match item {
            Item::Header { magic, version } => {
                self.header = Some((*magic, *version));
                self.valkey = *magic == Magic::Valkey;
            }
            Item::Aux { key, value } => self.aux.push((key.to_vec(), value.to_vec())),
            Item::Entry(e) => {
                let v = match e.summary_in(&mut self.scratch) {
                    Ok(v) => v,
                    // the record's framing held (its raw span is known), only the value inside
                    // is corrupt: with salvage on, note it and go on with the next key
                    Err(err) if self.salvage => {
                        self.salvaged.push(err.to_string());
                        return Ok(());
                    }
                    Err(err) => return Err(err),
                };
                let (len, empty) = (v.len as u64, v.empty);
                if let Some(id) = v.module {
                    let name = id.name();
                    if module::is_read(&name) {
                        self.add_module_value(e);
                    }
                    *self
                        .modules
                        .entry(format!("{name}/{}", id.encver()))
                        .or_default() += 1;
                }
                let db = self.dbs.entry(e.db).or_default();
                db.keys += 1;
                let expired = e.is_expired_at(self.now_ms);
                if e.expire_ms.is_some() {
                    db.expires += 1;
                }
                if expired {
                    db.expired += 1;
                }
                if empty {
                    db.empty += 1;
                }
                if empty || expired {
                    db.dropped += 1;
                }
                if e.idle.is_some() {
                    self.with_idle += 1;
                }
                if e.freq.is_some() {
                    self.with_freq += 1;
                }
                if let Some(n) = self.by_type_id.get_mut(usize::from(e.type_id)) {
                    *n += 1;
                }
                self.elements += len;
            }
            Item::ModuleAux { id, when, .. } => {
                let w = if *when == 1 { "before" } else { "after" };
                let name = id.name();
                match search::of_item(item) {
                    Some(Ok(mut v)) => self.search_indexes.append(&mut v),
                    Some(Err(e)) => self.search_unread.push(e.to_string()),
                    None => {}
                }
                self.module_aux.push(format!("{name}/{} {w}", id.encver()));
            }
            Item::Function { code } => self
                .functions
                .push(library_name(code).unwrap_or_else(|| "(unnamed)".into())),
            Item::Script { sha1, .. } => self.scripts.push(sha1.clone()),
            Item::SlotInfo { .. } => self.slot_infos += 1,
            Item::Eof { checksum, .. } => self.checksum = Some(*checksum),
            Item::SelectDb { .. } | Item::ResizeDb { .. } | Item::SlotImport { .. } => {}
        }
        Ok(())
    }

    /// Moves the counts and lists of `part` (a summary of the items that follow the ones summarised
    /// here, e.g. one chunk of a parallel decode) into `self`, leaving `part` empty for reuse.
    /// Merging the parts of a dump in file order gives exactly the summary of adding every item to
    /// one `Info`.
    ///
    /// ```
    /// use rdbkit::{Decoder, output::info::Info};
    /// let dump = rdbkit::testing::tiny_dump();
    /// let (mut whole, mut merged) = (Info::new(0), Info::new(0));
    /// for item in Decoder::new(&dump) {
    ///     let item = item?;
    ///     whole.add(&item)?;
    ///     let mut part = Info::new(0);
    ///     part.add(&item)?;
    ///     merged.merge(&mut part);
    /// }
    /// assert_eq!(whole.to_json(), merged.to_json());
    /// # Ok::<(), rdbkit::DecodeError>(())
    /// ```
    pub fn merge(&mut self, part: &mut Info) {
        if let Some(h) = part.header.take() {
            self.header = Some(h);
            self.valkey = part.valkey;
        }
        self.aux.append(&mut part.aux);
        for (db, s) in std::mem::take(&mut part.dbs) {
            let d = self.dbs.entry(db).or_default();
            d.keys += s.keys;
            d.expires += s.expires;
            d.expired += s.expired;
            d.empty += s.empty;
            d.dropped += s.dropped;
        }
        if self.by_type_id.len() < part.by_type_id.len() {
            self.by_type_id.resize(part.by_type_id.len(), 0);
        }
        for (mine, theirs) in self.by_type_id.iter_mut().zip(part.by_type_id.iter_mut()) {
            *mine += std::mem::take(theirs);
        }
        self.salvaged.append(&mut part.salvaged);
        self.elements += std::mem::take(&mut part.elements);
        for (m, n) in std::mem::take(&mut part.modules) {
            *self.modules.entry(m).or_default() += n;
        }
        for (kind, t) in std::mem::take(&mut part.module_values) {
            self.module_values.entry(kind).or_default().add(&t);
        }
        self.module_unread.append(&mut part.module_unread);
        self.module_aux.append(&mut part.module_aux);
        self.search_indexes.append(&mut part.search_indexes);
        self.search_unread.append(&mut part.search_unread);
        self.functions.append(&mut part.functions);
        self.scripts.append(&mut part.scripts);
        self.slot_infos += std::mem::take(&mut part.slot_infos);
        if let Some(c) = part.checksum.take() {
            self.checksum = Some(c);
        }
        if let Some(p) = part.producer.take() {
            self.producer = Some(p);
        }
        self.with_idle += std::mem::take(&mut part.with_idle);
        self.with_freq += std::mem::take(&mut part.with_freq);
    }

    /// Reads a module value of a kind rdbkit decodes and adds it to the totals (module values
    /// are few: decoding them a second time, after the summary, costs nothing measurable).
    fn add_module_value(&mut self, e: &crate::model::Entry<'_>) {
        let read = match e.value_in(&mut self.scratch) {
            Ok(crate::model::Value::Module(m)) => module::decode(&m),
            Ok(_) => return,
            Err(err) => Err(err),
        };
        match read {
            Ok(Some(d)) => {
                let t = self.module_values.entry(d.kind()).or_default();
                t.keys += 1;
                t.size = t.size.saturating_add(d.mem_usage());
                for (k, n) in d.counts() {
                    let c = t.counts.entry(k).or_default();
                    *c = c.saturating_add(n);
                }
            }
            Ok(None) => {}
            Err(err) => self.module_unread.push(err.with_key(&e.key).to_string()),
        }
    }

    fn aux_str(&self, key: &str) -> Option<String> {
        self.aux
            .iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The checksum's state (`verified`, `unchecked`, `absent`, `not_verified`, `not_reached`) and
    /// the CRC64 stored in the file when there is one.
    fn checksum_parts(&self) -> (&'static str, Option<u64>) {
        match self.checksum {
            Some(Checksum::Verified(v)) => ("verified", Some(v)),
            Some(Checksum::Disabled) => ("unchecked", None),
            Some(Checksum::Absent) => ("absent", None),
            Some(Checksum::NotChecked(v)) => ("not_verified", Some(v)),
            None => ("not_reached", None),
        }
    }

    fn checksum_text(&self) -> String {
        match self.checksum {
            Some(Checksum::Verified(v)) => format!("verified ({v:#018x})"),
            Some(Checksum::Disabled) => "unchecked (written with rdbchecksum no)".into(),
            Some(Checksum::Absent) => "none (RDB < 5)".into(),
            Some(Checksum::NotChecked(v)) => format!("not verified ({v:#018x})"),
            None => "end not reached".into(),
        }
    }

    fn ctime(&self) -> Option<String> {
        let secs: i64 = self.aux_str("ctime")?.parse().ok()?;
        Some(format_utc(secs))
    }

    /// Total keys.
    pub fn keys(&self) -> u64 {
        self.dbs.values().map(|d| d.keys).sum()
    }

    /// Machine-readable form.
    pub fn to_json(&self) -> serde_json::Value {
        let aux: serde_json::Map<String, serde_json::Value> = self
            .aux
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned().into(),
                )
            })
            .collect();
        let dbs: serde_json::Map<String, serde_json::Value> = self
            .dbs
            .iter()
            .map(|(db, s)| {
                (
                    db.to_string(),
                    json!({"keys": s.keys, "expires": s.expires, "expired": s.expired, "empty": s.empty, "loadable": s.loadable()}),
                )
            })
            .collect();
        json!({
            "producer": self.producer.map(|p| p.to_string()),
            "magic": self.header.map(|h| if h.0 == Magic::Valkey { "VALKEY" } else { "REDIS" }),
            "rdb_version": self.header.map(|h| h.1),
            "aux": aux,
            "ctime_utc": self.ctime(),
            "keys": self.keys(),
            "dbs": dbs,
            "types": self.types(),
            "encodings": self.encodings(),
            "elements": self.elements,
            "modules": self.modules,
            "module_values": self.module_values.iter().map(|(kind, t)| {
                let mut o = json!({"keys": t.keys, "size": t.size});
                for (k, n) in &t.counts {
                    o[*k] = (*n).into();
                }
                (kind.to_string(), o)
            }).collect::<serde_json::Map<_, _>>(),
            "module_unread": self.module_unread,
            "module_aux": self.module_aux,
            "search_indexes": self.search_indexes.iter().map(search::Index::to_json).collect::<Vec<_>>(),
            "search_unread": self.search_unread,
            "functions": self.functions,
            "scripts": self.scripts,
            "slot_infos": self.slot_infos,
            "keys_with_idle": self.with_idle,
            "keys_with_freq": self.with_freq,
            "checksum": {
                "state": self.checksum_parts().0,
                "value": self.checksum_parts().1.map(|v| format!("{v:#018x}")),
            },
            "salvaged": self.salvaged,
            "duplicates": self.duplicates.as_ref().map(|d| json!({
                "keys": d.duplicates.len(),
                "extra_copies": d.extra_copies(),
                "list": d.duplicates.iter().map(|x| json!({
                    "db": x.db,
                    "key": crate::text::bytes_json(&x.key),
                    "offsets": x.offsets,
                })).collect::<Vec<_>>(),
            })),
        })
    }

    /// Human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if let Some(p) = self.producer {
            let _ = writeln!(s, "producer:      {p}");
        }
        if let Some((m, v)) = self.header {
            let magic = if m == Magic::Valkey {
                "VALKEY"
            } else {
                "REDIS"
            };
            let _ = writeln!(s, "rdb version:   {v} ({magic} magic)");
        }
        for key in BY_NAME {
            if let Some(v) = self.aux_str(key) {
                let _ = writeln!(s, "{:<15}{v}", format!("{key}:"));
            }
        }
        if let Some(t) = self.ctime() {
            let _ = writeln!(s, "ctime:         {t}");
        }
        let _ = writeln!(s, "checksum:      {}", self.checksum_text());
        if !self.salvaged.is_empty() {
            let _ = writeln!(
                s,
                "salvage:       {} corrupt values skipped:",
                self.salvaged.len()
            );
            for e in &self.salvaged {
                let _ = writeln!(s, "  {e}");
            }
        }
        let _ = writeln!(
            s,
            "keys:          {} ({} elements)",
            self.keys(),
            self.elements
        );
        for (db, d) in &self.dbs {
            let _ = writeln!(
                s,
                "  db{db}: keys={} expires={} expired={} empty={} loadable={}",
                d.keys,
                d.expires,
                d.expired,
                d.empty,
                d.loadable()
            );
        }
        match &self.duplicates {
            Some(d) if !d.duplicates.is_empty() => {
                let _ = writeln!(
                    s,
                    "duplicates:    {} in one database ({} extra copies); Redis \
                     refuses this dump (\"RDB has duplicated key\")",
                    crate::dups::count_keys(d.duplicates.len()),
                    d.extra_copies()
                );
                for x in &d.duplicates {
                    let _ = writeln!(s, "  {x}");
                }
            }
            Some(d) if d.stopped_at.is_some() => {
                let _ = writeln!(s, "duplicates:    none before the decode error");
            }
            Some(_) => {
                let _ = writeln!(s, "duplicates:    none");
            }
            None => {
                let _ = writeln!(s, "duplicates:    not checked (stdin is read once)");
            }
        }
        let _ = writeln!(s, "types:");
        for (t, n) in &self.types() {
            let _ = writeln!(s, "  {t:<10} {n}");
        }
        let _ = writeln!(s, "encodings:");
        for (t, n) in &self.encodings() {
            let _ = writeln!(s, "  {t:<40} {n}");
        }
        if !self.modules.is_empty() {
            let mods: Vec<String> = self
                .modules
                .iter()
                .map(|(m, n)| format!("{m} ({})", crate::output::count(*n, "key")))
                .collect();
            let _ = writeln!(s, "modules:       {}", mods.join(", "));
        }
        for (kind, t) in &self.module_values {
            let mut parts = vec![
                crate::output::count(t.keys, "key"),
                format!("size {}", crate::output::report::human(t.size)),
            ];
            parts.extend(t.counts.iter().map(|(k, n)| format!("{k} {n}")));
            let _ = writeln!(s, "  {kind:<10} {}", parts.join(", "));
        }
        for e in &self.module_unread {
            let _ = writeln!(s, "  not read (carried opaque): {e}");
        }
        if !self.module_aux.is_empty() {
            let _ = writeln!(s, "module aux:    {}", self.module_aux.join(", "));
        }
        if !self.search_indexes.is_empty() {
            let _ = writeln!(s, "search indexes: {}", self.search_indexes.len());
            for i in &self.search_indexes {
                s.push_str(&i.to_text());
            }
        }
        for e in &self.search_unread {
            let _ = writeln!(s, "search indexes not read: {e}");
        }
        if !self.functions.is_empty() {
            let _ = writeln!(s, "functions:     {}", self.functions.join(", "));
        }
        if !self.scripts.is_empty() {
            let _ = writeln!(s, "lua scripts:   {}", self.scripts.join(", "));
        }
        if self.with_idle + self.with_freq > 0 {
            let _ = writeln!(
                s,
                "lru/lfu:       idle on {}, freq on {}",
                crate::output::count(self.with_idle, "key"),
                crate::output::count(self.with_freq, "key")
            );
        }
        if self.slot_infos > 0 {
            let _ = writeln!(s, "slot infos:    {}", self.slot_infos);
        }
        let aux_other: Vec<String> = self
            .aux
            .iter()
            // the fields printed above by name are not repeated
            .filter(|(k, _)| {
                let printed = BY_NAME.iter().any(|n| n.as_bytes() == &k[..])
                    || (&k[..] == b"ctime" && self.ctime().is_some());
                !printed
            })
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect();
        if !aux_other.is_empty() {
            let _ = writeln!(s, "aux:           {}", aux_other.join(" "));
        }
        s
    }
}

/// Aux fields that `info` prints on their own line (the `aux:` line lists the others).
const BY_NAME: [&str; 7] = [
    "redis-ver",
    "valkey-ver",
    "redis-bits",
    "used-mem",
    "aof-base",
    "repl-id",
    "repl-offset",
];

/// `YYYY-MM-DD HH:MM:SS UTC` for Unix seconds (civil-from-days, Howard Hinnant's algorithm).
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn library_names() {
        assert_eq!(
            library_name(b"#!lua name=mylib\nredis.register_function(...)").as_deref(),
            Some("mylib")
        );
        assert_eq!(library_name(b"return 1"), None);
    }
}
