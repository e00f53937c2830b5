//! The dry run of an import (`rdbkit plan`, `rdbkit import --dry-run`): what the import would do
//! to this target, found without writing anything.
//!
//! The target is read (`INFO`, `CONFIG GET` of its memory limits and encoding thresholds,
//! `MODULE LIST`, the cluster layout, `FUNCTION LIST`), the dumps are decoded once, and each key
//! goes through the importer's own rules ([`KeyRules`], the function its planner decides by):
//! skipped, failed, `RESTORE`d or written by commands, and why. Per target primary the keys are
//! counted and their memory projected with the report's model ([`Limits::estimate`]) under the
//! primary's own thresholds, against its `maxmemory` and current use. Keys of the dump that the
//! target already holds are counted exactly by pipelined `EXISTS` (batches of
//! [`EXISTS_BATCH`] keys: memory stays bounded whatever the dump's size), only in databases
//! that hold keys.

use super::code;
use super::config::{ImportConfig, Skip};
use super::error::{in_dump, redis_err, ReplayError};
use super::plan::{ByCommands, Decision, KeyRules};
use super::preflight::cluster_layout;
use super::produce::Source;
use super::target::{Target, TargetInfo};
use crate::commands::{entry_commands, Losses, Resp};
use crate::model::Item;
use crate::output::report::memory::{keyspace_overhead, Limits};
use std::collections::BTreeMap;
use std::time::Duration;

/// Keys asked per `EXISTS` pipeline.
pub const EXISTS_BATCH: usize = 1000;

/// Keys listed per kind of problem.
const LISTED: usize = 5;

/// What one target primary would receive, and what it has.
#[derive(Debug, Clone, Default)]
pub struct PrimaryForecast {
    /// The primary's address (password masked).
    pub address: String,
    /// Keys of the dump it would receive.
    pub keys: u64,
    /// Of those, keys with a TTL.
    pub expires: u64,
    /// Projected memory of those keys (the report's model, `MEMORY USAGE`-comparable).
    pub memory: u64,
    /// The keyspace tables' growth for them (buckets of the main and expires tables).
    pub keyspace: u64,
    /// `used_memory` now.
    pub used_memory: u64,
    /// `used_memory_startup` (what an empty server uses).
    pub used_memory_startup: u64,
    /// `maxmemory` (0: no limit).
    pub maxmemory: u64,
    /// `maxmemory-policy`.
    pub policy: String,
    /// Keys the primary holds now, per database (`INFO keyspace`).
    pub db_keys: BTreeMap<u64, u64>,
    /// The databases the dump's keys would go to.
    pub dbs: std::collections::BTreeSet<u64>,
    /// Keys of the dump that it already holds (`EXISTS`).
    pub existing: u64,
    /// Its encoding thresholds (`CONFIG GET`).
    pub limits: Limits,
    /// Thresholds the model cannot follow (e.g. `list-max-listpack-size` as a count).
    pub limits_notes: Vec<String>,
}

impl PrimaryForecast {
    /// The memory the import needs on this primary: the keys and the keyspace tables' growth.
    pub fn need(&self) -> u64 {
        self.memory + self.keyspace
    }
}

/// The dry run's findings.
#[derive(Debug, Clone)]
pub struct Forecast {
    /// The target as given (password masked).
    pub target: String,
    /// What the target is and supports.
    pub info: TargetInfo,
    /// Per primary (one, or a cluster's).
    pub primaries: Vec<PrimaryForecast>,
    /// Keys read from the dumps.
    pub keys_read: u64,
    /// Bytes of the dumps (when known).
    pub dump_bytes: u64,
    /// RESP bytes of the keys' commands (`RESTORE`, or the plain commands) that would be
    /// written: what the import counts as its payload written, less `SELECT`s and `WAIT`s.
    pub payload_bytes: u64,
    /// Keys that would go by `RESTORE`.
    pub restore: u64,
    /// Keys that would go by commands, per reason.
    pub commands: BTreeMap<ByCommands, u64>,
    /// Keys that would not be written, per reason ([`Skip::name`]).
    pub skipped: BTreeMap<&'static str, u64>,
    /// Keys that would fail.
    pub failed: u64,
    /// The first keys of each kind of problem: `(kind, key, why)`.
    pub listed: Vec<(String, String, String)>,
    /// What the commands written could not carry.
    pub losses: Losses,
    /// The dump's function libraries.
    pub libraries: Vec<String>,
    /// The dump's search indexes that the import would create by `FT.CREATE` after the keys (a
    /// target with the search module and without `RESTOREMODAUX`).
    pub search_indexes: Vec<String>,
    /// Why the import would not succeed as configured (empty: it would).
    pub reasons: Vec<String>,
    /// What else the import would do or meet.
    pub notes: Vec<String>,
}

impl Forecast {
    /// True when the import would succeed as configured.
    pub fn ok(&self) -> bool {
        self.reasons.is_empty()
    }

    /// Keys that would be written.
    pub fn written(&self) -> u64 {
        self.restore + self.commands.values().sum::<u64>()
    }

    fn list(&mut self, kind: &str, key: &[u8], why: &str) {
        if self.listed.iter().filter(|l| l.0 == kind).count() < LISTED {
            self.listed.push((
                kind.to_string(),
                crate::text::escape_bytes(key),
                why.to_string(),
            ));
        }
    }
}

/// A control connection's `INFO section` as `field → value`.
fn info_fields(
    con: &mut redis::Connection,
    section: &str,
) -> Result<BTreeMap<String, String>, ReplayError> {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query(con)
        .map_err(redis_err("INFO"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// `CONFIG GET pattern` as `name → value` (a server that refuses `CONFIG`: none).
fn config_get(con: &mut redis::Connection, pattern: &str) -> BTreeMap<String, String> {
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(pattern)
        .query(con)
        .unwrap_or_default();
    v.chunks(2)
        .filter_map(|p| Some((p.first()?.clone(), p.get(1)?.clone())))
        .collect()
}

/// The encoding thresholds of a server's configuration (`*-max-listpack-*`, or the
/// `*-max-ziplist-*` names of Redis 6.2, `*-max-intset-*`), as the memory model takes them; and
/// what the model cannot follow.
pub fn limits_from_config(cfg: &BTreeMap<String, String>) -> (Limits, Vec<String>) {
    let mut l = Limits::default();
    let mut notes = Vec::new();
    let get = |names: &[&str]| -> Option<i64> {
        names
            .iter()
            .find_map(|n| cfg.get(*n).and_then(|v| v.parse().ok()))
    };
    let set = |field: &mut usize, names: &[&str]| {
        if let Some(v) = get(names).filter(|v| *v >= 0) {
            *field = v as usize;
        }
    };
    set(
        &mut l.hash_entries,
        &["hash-max-listpack-entries", "hash-max-ziplist-entries"],
    );
    set(
        &mut l.hash_value,
        &["hash-max-listpack-value", "hash-max-ziplist-value"],
    );
    set(&mut l.set_intset_entries, &["set-max-intset-entries"]);
    set(&mut l.set_entries, &["set-max-listpack-entries"]);
    set(&mut l.set_value, &["set-max-listpack-value"]);
    set(
        &mut l.zset_entries,
        &["zset-max-listpack-entries", "zset-max-ziplist-entries"],
    );
    set(
        &mut l.zset_value,
        &["zset-max-listpack-value", "zset-max-ziplist-value"],
    );
    match get(&["list-max-listpack-size", "list-max-ziplist-size"]) {
        Some(v @ -5..=-1) => l.list_node_bytes = 4096 << (-v - 1),
        Some(v) if v > 0 => notes.push(format!(
            "list-max-listpack-size {v} (a count of elements) is modelled as 8 KiB nodes"
        )),
        _ => {}
    }
    (l, notes)
}

/// What one primary has: memory, limits, thresholds, and the keys of its databases.
fn read_primary(t: &Target, timeout: Duration) -> Result<PrimaryForecast, ReplayError> {
    let mut con = t.control(timeout)?;
    let mem = info_fields(&mut con, "memory")?;
    let num = |k: &str| mem.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut cfg = BTreeMap::new();
    // one pattern per CONFIG GET: Redis 6.2 takes only one
    for p in [
        "maxmemory",
        "maxmemory-policy",
        "*-max-listpack-*",
        "*-max-ziplist-*",
        "*-max-intset-*",
    ] {
        cfg.extend(config_get(&mut con, p));
    }
    let (limits, limits_notes) = limits_from_config(&cfg);
    let db_keys = super::target::keyspace(&mut con)?.into_iter().collect();
    Ok(PrimaryForecast {
        address: t.display(),
        used_memory: num("used_memory"),
        used_memory_startup: num("used_memory_startup"),
        maxmemory: cfg
            .get("maxmemory")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| num("maxmemory")),
        policy: cfg
            .get("maxmemory-policy")
            .cloned()
            .or_else(|| mem.get("maxmemory_policy").cloned())
            .unwrap_or_default(),
        db_keys,
        limits,
        limits_notes,
        ..Default::default()
    })
}

/// Keys waiting for their `EXISTS`, per primary: one database at a time, at most
/// [`EXISTS_BATCH`] keys.
struct ExistsQueue {
    con: redis::Connection,
    cluster: bool,
    db: u64,
    keys: Vec<Vec<u8>>,
    found: u64,
}

impl ExistsQueue {
    fn push(&mut self, db: u64, key: &[u8]) -> Result<(), ReplayError> {
        if db != self.db || self.keys.len() >= EXISTS_BATCH {
            self.flush()?;
            self.db = db;
        }
        self.keys.push(key.to_vec());
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ReplayError> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        if !self.cluster {
            p.cmd("SELECT").arg(self.db).ignore();
        }
        for k in &self.keys {
            p.cmd("EXISTS").arg(k);
        }
        let n: Vec<u64> = p.query(&mut self.con).map_err(redis_err("EXISTS"))?;
        self.found += n.iter().sum::<u64>();
        self.keys.clear();
        Ok(())
    }
}

/// Reads `target` and decodes `sources` as `import` would with `cfg`, writing nothing.
pub fn forecast(
    sources: Vec<Source>,
    target: &Target,
    cfg: &ImportConfig,
) -> Result<Forecast, ReplayError> {
    let limit = cfg.conn.reply_timeout;
    let rt = super::runtime()?;
    let pinned = target.pinned()?;
    let info = super::probe(&rt, target, &pinned.client()?, limit)?;
    drop(rt);
    let mut f = Forecast {
        target: target.display(),
        info: info.clone(),
        primaries: Vec::new(),
        keys_read: 0,
        dump_bytes: 0,
        payload_bytes: 0,
        restore: 0,
        commands: BTreeMap::new(),
        skipped: BTreeMap::new(),
        failed: 0,
        listed: Vec::new(),
        losses: Losses::default(),
        libraries: Vec::new(),
        search_indexes: Vec::new(),
        reasons: Vec::new(),
        notes: Vec::new(),
    };
    let (slots, nodes) = if info.cluster {
        match cluster_layout(&mut pinned.control(limit)?, &pinned) {
            Ok((slots, nodes)) => (Some(slots), nodes),
            Err(ReplayError::Config(why)) => {
                f.reasons.push(why);
                return Ok(f);
            }
            Err(e) => return Err(e),
        }
    } else {
        (None, vec![pinned.clone()])
    };
    for n in &nodes {
        f.primaries.push(read_primary(n, limit)?);
    }
    if info.bulk_limit_assumed {
        f.notes.push(
            "the target refused CONFIG GET proto-max-bulk-len; the 512 MB default is assumed"
                .into(),
        );
    }
    // EXISTS only where a database the dump reaches holds keys (found as the keys come)
    let mut queues: Vec<Option<ExistsQueue>> = (0..nodes.len()).map(|_| None).collect();
    let mut code = code::Code::default();
    let mut indexes = Vec::new();
    let mut module_aux: BTreeMap<String, u64> = BTreeMap::new();
    let mut other_db_keys: BTreeMap<u64, u64> = BTreeMap::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut scratch = Vec::new();
    let mut resp = Resp::default();
    for (input, s) in sources.into_iter().enumerate() {
        let len = s.input.len_hint();
        f.dump_bytes += len.unwrap_or(0);
        let mut rules = KeyRules {
            cfg,
            target: &info,
            dump_version: 0,
            dump_valkey: false,
            now_ms: now,
        };
        let mut opts = rules.command_options();
        let res = s
            .input
            .decode(cfg.verify_checksum, |item, _| -> Result<(), ReplayError> {
                let e = match item {
                    Item::Header { magic, version } => {
                        rules.dump_version = version.min(u32::from(u16::MAX)) as u16;
                        rules.dump_valkey = magic == crate::Magic::Valkey;
                        return Ok(());
                    }
                    Item::Function { code: c } => {
                        code.add_library(&c);
                        return Ok(());
                    }
                    Item::Script { body, .. } => {
                        code.add_script(&body);
                        return Ok(());
                    }
                    Item::ModuleAux { ref id, .. } => {
                        if let Some(Ok(v)) = crate::decode::module::search::of_item(&item) {
                            super::search::merge(&mut indexes, v);
                        }
                        *module_aux.entry(id.name()).or_default() += 1;
                        return Ok(());
                    }
                    Item::Entry(e) => e,
                    _ => return Ok(()),
                };
                f.keys_read += 1;
                let mut e = e;
                let decision = match super::plan::select(cfg, input, &mut e, now) {
                    Ok(selected) => rules.decide(&e, selected)?,
                    Err(skip) => Decision::Skip(skip, None),
                };
                let mut v = match &decision {
                    Decision::Restore { .. } | Decision::Commands { .. } => {
                        e.value_in(&mut scratch)?
                    }
                    _ => crate::Value::String(crate::Elem::Int(0)),
                };
                let decision = match decision {
                    Decision::Commands { .. } => rules.check_value(&mut v).unwrap_or(decision),
                    d => d,
                };
                match decision {
                    Decision::Skip(why, report) => {
                        *f.skipped.entry(why.name()).or_default() += 1;
                        if let Some(r) = report {
                            f.list(why.name(), &e.key, &r);
                        }
                        return Ok(());
                    }
                    Decision::Fail(why) => {
                        f.failed += 1;
                        f.list("failed", &e.key, &why);
                        return Ok(());
                    }
                    Decision::Restore { version, .. } => {
                        f.restore += 1;
                        super::plan::restore(&mut resp, &e, version, cfg.replace);
                        f.payload_bytes += resp.buf.len() as u64;
                        resp.buf.clear();
                    }
                    Decision::Commands {
                        why,
                        restore_version,
                    } => {
                        rules.per_key_options(&mut opts, restore_version);
                        let written = entry_commands(&mut resp, &e, &v, &opts, &mut f.losses);
                        let bytes = resp.buf.len() as u64;
                        resp.buf.clear();
                        if let Err(why) = written {
                            let skip = Skip::Unrepresentable;
                            *f.skipped.entry(skip.name()).or_default() += 1;
                            f.list(skip.name(), &e.key, &why.to_string());
                            return Ok(());
                        }
                        *f.commands.entry(why).or_default() += 1;
                        f.payload_bytes += bytes;
                    }
                }
                let db = target
                    .db
                    .filter(|_| cfg.db_map.is_empty())
                    .unwrap_or_else(|| cfg.db_map.get(&e.db).copied().unwrap_or(e.db));
                if slots.is_some() && db != 0 {
                    *other_db_keys.entry(e.db).or_default() += 1;
                    return Ok(());
                }
                let i = match &slots {
                    Some(map) => {
                        usize::from(map[usize::from(crate::cluster::key_hash_slot(&e.key))])
                    }
                    None => 0,
                };
                let p = &mut f.primaries[i];
                p.keys += 1;
                p.expires += u64::from(e.expire_ms.is_some());
                p.memory += p.limits.estimate(&e, &v).bytes;
                p.dbs.insert(db);
                if p.db_keys.get(&db).is_some_and(|n| *n > 0) {
                    if queues[i].is_none() {
                        queues[i] = Some(ExistsQueue {
                            con: nodes[i].control(limit)?,
                            cluster: slots.is_some(),
                            db,
                            keys: Vec::new(),
                            found: 0,
                        });
                    }
                    if let Some(q) = queues[i].as_mut() {
                        q.push(db, &e.key)?;
                    }
                }
                Ok(())
            });
        res.map_err(|e| in_dump(e, &s.name, len))?;
    }
    for (i, q) in queues.iter_mut().enumerate() {
        if let Some(q) = q {
            q.flush()?;
            f.primaries[i].existing = q.found;
        }
    }
    for p in &mut f.primaries {
        p.keyspace = keyspace_overhead(p.keys, p.expires);
        // the databases the dump does not reach are not the import's business
    }
    judge(
        &mut f,
        cfg,
        &code,
        &nodes,
        &other_db_keys,
        &module_aux,
        limit,
    )?;
    let at = super::search::Primaries {
        nodes: &nodes,
        slots: slots.as_deref(),
    };
    judge_search(&mut f, cfg, &indexes, at, limit)?;
    Ok(f)
}

/// The search indexes a target with the search module would get, and the same conflicts the
/// import refuses up front.
fn judge_search(
    f: &mut Forecast,
    cfg: &ImportConfig,
    indexes: &[crate::decode::module::search::Index],
    nodes: super::search::Primaries<'_>,
    limit: Duration,
) -> Result<(), ReplayError> {
    if indexes.is_empty() || !super::search::recreates(&f.info) {
        return Ok(());
    }
    for i in indexes {
        match i.create_args() {
            Ok(_) => f.search_indexes.push(i.name.clone()),
            Err(why) => f.notes.push(format!(
                "search index {} would not be created, FT.CREATE cannot express: {}",
                i.name,
                why.join("; ")
            )),
        }
    }
    let creatable: Vec<_> = indexes
        .iter()
        .filter(|i| f.search_indexes.contains(&i.name))
        .cloned()
        .collect();
    f.reasons.extend(
        super::search::conflicts(&creatable, nodes, cfg, false, limit)?
            .into_iter()
            .map(|c| {
                format!("{c}: use --replace to drop it (its documents stay) and create the dump's, or --skip-existing to keep it")
            }),
    );
    Ok(())
}

/// The reasons and notes, from what was counted.
fn judge(
    f: &mut Forecast,
    cfg: &ImportConfig,
    code: &code::Code,
    nodes: &[Target],
    other_db_keys: &BTreeMap<u64, u64>,
    module_aux: &BTreeMap<String, u64>,
    limit: Duration,
) -> Result<(), ReplayError> {
    let count = crate::text::count;
    for (db, n) in other_db_keys {
        f.reasons.push(format!(
            "a Redis Cluster has only db 0; the dump has {} in db {db}: fold them with --db-map {db}:0",
            count(*n, "key")
        ));
    }
    if f.failed > 0 {
        f.reasons.push(format!(
            "{} cannot be written (listed below)",
            count(f.failed, "key")
        ));
    }
    let skipped = |s: Skip| f.skipped.get(s.name()).copied().unwrap_or(0);
    let (unrepresentable, modules) = (skipped(Skip::Unrepresentable), skipped(Skip::ModuleMissing));
    if unrepresentable > 0 {
        f.reasons.push(format!(
            "{} the target cannot hold (hash field TTLs before Redis 7.4 / Valkey 9): --field-ttls drop writes them without their field TTLs",
            count(unrepresentable, "value")
        ));
    }
    if modules > 0 && !cfg.skip_modules {
        f.reasons.push(format!(
            "{} of modules the target lacks: --skip-modules leaves them out and lets the import succeed",
            count(modules, "key")
        ));
    } else if modules > 0 {
        f.notes.push(format!(
            "{} of modules the target lacks left out (--skip-modules)",
            count(modules, "key")
        ));
    }
    for line in f.losses.describe() {
        f.notes.push(line);
    }
    for line in cfg.transformed.describe() {
        f.notes.push(format!("transformed: {line}"));
    }
    for (m, n) in module_aux {
        if !f.info.enterprise {
            f.notes.push(format!(
                "module aux: {m}: {} of module-wide data not restored (only Redis Enterprise can load it)",
                count(*n, "aux record")
            ));
        }
    }
    // keys already on the target: the import refuses a database that holds keys unless told
    for p in &f.primaries {
        let busy = p.dbs.iter().filter_map(|db| Some((db, p.db_keys.get(db)?)));
        for (db, n) in busy.filter(|(_, n)| **n > 0) {
            let of_dump = if p.existing > 0 {
                format!(", {} of them keys of the dump", p.existing)
            } else {
                ", none of them a key of the dump".into()
            };
            let what = format!(
                "db{db} on {} holds {}{of_dump}",
                p.address,
                count(*n, "key")
            );
            if cfg.flush_target {
                f.notes
                    .push(format!("{what}: --flush-target empties it first"));
            } else if cfg.replace {
                f.notes.push(format!("{what}: --replace overwrites them"));
            } else if cfg.skip_existing {
                f.notes
                    .push(format!("{what}: --skip-existing keeps the target's copies"));
            } else {
                f.reasons.push(format!(
                    "{what}: the import refuses a non-empty database; use --replace to overwrite, --skip-existing to keep the target's keys, or --flush-target to empty it first"
                ));
            }
        }
    }
    // function libraries: the same conflicts the import refuses up front
    f.libraries = code.libraries.iter().map(|l| l.name.clone()).collect();
    if !code.libraries.is_empty() {
        if f.info.has_functions() {
            f.reasons.extend(
                code::conflicts(code, nodes, cfg, limit)?
                    .into_iter()
                    .map(|c| {
                        format!("{c}: use --replace to replace it or --skip-existing to keep it")
                    }),
            );
        } else {
            f.reasons.push(format!(
                "the dump holds {} and the target ({}) has no FUNCTION LOAD",
                count(code.libraries.len() as u64, "function library"),
                f.info.version
            ));
        }
    }
    // memory, per primary
    for p in &f.primaries {
        if p.maxmemory == 0 {
            continue;
        }
        // --flush-target empties the databases the dump reaches: when no other holds keys, the
        // server then uses about what an empty one does
        let others = p
            .db_keys
            .iter()
            .any(|(db, n)| *n > 0 && !p.dbs.contains(db));
        let base = if cfg.flush_target && !others {
            p.used_memory_startup
        } else {
            p.used_memory
        };
        let free = p.maxmemory.saturating_sub(base);
        if p.need() > free {
            let consequence = if p.policy == "noeviction" || p.policy.is_empty() {
                "the import would stop with OOM".to_string()
            } else {
                format!(
                    "the server would evict keys to make room (maxmemory-policy {}): data would be lost",
                    p.policy
                )
            };
            f.reasons.push(format!(
                "{}: the dump's keys need about {} and {} of maxmemory {} is free ({} in use): short by {}; {consequence}",
                p.address,
                human(p.need()),
                human(free),
                human(p.maxmemory),
                human(base),
                human(p.need() - free),
            ));
        }
    }
    Ok(())
}

fn human(n: u64) -> String {
    crate::output::report::human(n)
}
