//! Per-key decisions and encoding: which keys go, how (RESTORE or commands), with which options.
//! Runs on the decoder thread and hands finished batches to the connections.

use super::batch::{self, Batch, KeyMode, Resp};
use super::config::ImportConfig;
use super::config::Mode;
use super::config::Skip;
use super::shared::Shared;
use super::target::TargetInfo;
use crate::commands::{entry_commands, CommandOptions, JsonWrite, Losses};
use crate::model::{Entry, Value};
use crate::payload;

/// Batches are cut at this many bytes or keys.
const BATCH_BYTES: usize = 256 << 10;
const BATCH_KEYS: usize = 512;

/// Module type name → module name in `MODULE LIST`, for the modules commonly found in dumps.
/// Every data type of the modules in [`KNOWN_MODULES`] is listed here.
fn module_for_type(type_name: &str, valkey_target: bool) -> Option<&'static str> {
    Some(match type_name {
        // FalkorDB / RedisGraph register three types
        "graphdata" | "graphmeta" | "graphalas" => "graph",
        // RedisJSON is `ReJSON`; valkey-json (module `json`) reads the same type
        "ReJSON-RL" if valkey_target => "json",
        "ReJSON-RL" => "rejson",
        // RedisBloom; valkey-bloom is also named `bf` but has only its own type `bloomfltr`
        "MBbloom--" | "MBbloomCF" | "CMSk-TYPE" | "TopK-TYPE" | "TDIS-TYPE" if !valkey_target => {
            "bf"
        }
        "bloomfltr" if valkey_target => "bf",
        "TSDB-TYPE" => "timeseries",
        "ft_index0" | "ft_invidx" => "search",
        "vectorset" => "vectorset",
        _ => return None,
    })
}

/// Modules (lower-case `MODULE LIST` names) whose data types [`module_for_type`] lists in full: a
/// module type it does not know cannot belong to them. RediSearch is not one (its type list is
/// not pinned down), nor is any module not named here.
const KNOWN_MODULES: &[&str] = &["graph", "rejson", "json", "bf", "timeseries", "vectorset"];

/// True when a target with these modules (lower-case names) lacks module type `type_name`.
/// A type of a known module needs that module; any other type can only come from a loaded module
/// outside [`KNOWN_MODULES`] (a target with none of those lacks it for certain).
pub(crate) fn module_type_missing(
    type_name: &str,
    modules: &[String],
    valkey_target: bool,
) -> bool {
    match module_for_type(type_name, valkey_target) {
        Some(module) => !modules.iter().any(|m| m == module),
        None => modules.iter().all(|m| KNOWN_MODULES.contains(&m.as_str())),
    }
}

/// `(db, key) → exists on the target`, for `--skip-existing` keys written with commands.
pub(crate) type ExistsCheck<'s> = Box<dyn FnMut(u64, &[u8]) -> bool + 's>;

/// Decides and encodes keys.
pub(crate) struct Planner<'s> {
    pub cfg: &'s ImportConfig,
    pub target: &'s TargetInfo,
    pub shared: &'s Shared,
    pub dump_version: u16,
    pub dump_valkey: bool,
    pub now_ms: i64,
    /// Keys ending at or before this dump offset were acknowledged in an earlier run.
    pub resume_from: u64,
    /// This run resumes an earlier one (keys are written with REPLACE).
    pub resuming: bool,
    /// Existence check for `--skip-existing` keys written with commands: (db, key) → exists.
    pub exists: Option<ExistsCheck<'s>>,
    /// What the commands written could not carry (field TTLs dropped, inexact streams…).
    pub losses: Losses,
    resp: Resp,
    cmd_opts: CommandOptions,
    scratch: Vec<u8>,
}

impl<'s> Planner<'s> {
    pub fn new(
        cfg: &'s ImportConfig,
        target: &'s TargetInfo,
        shared: &'s Shared,
        now_ms: i64,
        resume_from: u64,
    ) -> Self {
        let cmd_opts = KeyRules {
            cfg,
            target,
            dump_version: 0,
            dump_valkey: false,
            now_ms,
        }
        .command_options();
        Planner {
            cfg,
            target,
            shared,
            dump_version: 0,
            dump_valkey: false,
            now_ms,
            resume_from,
            resuming: resume_from > 0,
            exists: None,
            losses: Losses::default(),
            resp: Resp::default(),
            cmd_opts,
            scratch: Vec::new(),
        }
    }

    /// The rules this planner decides by (the same [`KeyRules`] `plan` and the dry run use).
    fn rules(&self) -> KeyRules<'s> {
        KeyRules {
            cfg: self.cfg,
            target: self.target,
            dump_version: self.dump_version,
            dump_valkey: self.dump_valkey,
            now_ms: self.now_ms,
        }
    }

    /// Plans one entry into `batch` (`selected`: what [`select`] said of it). `Ok(false)` when
    /// the key is skipped.
    pub fn plan(
        &mut self,
        e: &Entry<'_>,
        batch: &mut Batch,
        selected: bool,
    ) -> Result<bool, crate::DecodeError> {
        let end = e.value_offset + e.raw.len() as u64;
        if end <= self.resume_from {
            self.shared.ledger.skip(Skip::Checkpoint, None);
            return Ok(false);
        }
        let replace = self.cfg.replace || self.resuming;
        let rules = self.rules();
        match rules.decide(e, selected)? {
            Decision::Skip(why, report) => {
                self.shared
                    .ledger
                    .skip(why, report.as_ref().map(|r| (&e.key[..], r.clone())));
                return Ok(false);
            }
            Decision::Fail(why) => {
                self.shared.ledger.fail(&e.key, why);
                return Ok(false);
            }
            Decision::Restore { version, module } => {
                if module && replace {
                    // never `RESTORE … REPLACE` a module value (it crashes FalkorDB 4.16's graphs)
                    let mut one = Resp::default();
                    restore(&mut one, e, version, false);
                    batch
                        .write_key(&e.key, KeyMode::Restore, 4, true, |r| {
                            batch::replace_atomically(r, &e.key, &one.buf)
                        })
                        .module = true;
                } else {
                    batch
                        .write_key(&e.key, KeyMode::Restore, 1, replace, |r| {
                            restore(r, e, version, replace)
                        })
                        .module = module;
                }
            }
            Decision::Commands {
                restore_version, ..
            } => {
                let mut v = e.value_in(&mut self.scratch)?;
                match rules.check_value(&mut v) {
                    Some(Decision::Skip(why, _)) => {
                        self.shared.ledger.skip(why, None);
                        return Ok(false);
                    }
                    Some(Decision::Fail(why)) => {
                        self.shared.ledger.fail(&e.key, why);
                        return Ok(false);
                    }
                    _ => {}
                }
                if self.cfg.skip_existing {
                    // commands would append to an existing key: ask first (RESTORE answers BUSYKEY)
                    if let Some(check) = self.exists.as_mut() {
                        if check(batch.db, &e.key) {
                            self.shared.ledger.skip(Skip::Existing, None);
                            return Ok(false);
                        }
                    }
                }
                let mut n = 0;
                if replace {
                    // commands append to what exists: start from a clean key
                    self.resp.cmd(&[b"DEL", &e.key]);
                    n += 1;
                }
                rules.per_key_options(&mut self.cmd_opts, restore_version);
                match entry_commands(&mut self.resp, e, &v, &self.cmd_opts, &mut self.losses) {
                    Ok(c) => n += c,
                    Err(why) => {
                        self.resp.buf.clear();
                        self.shared
                            .ledger
                            .skip(Skip::Unrepresentable, Some((&e.key, why.to_string())));
                        return Ok(false);
                    }
                }
                batch.push_key(&e.key, KeyMode::Commands, n as u32, &mut self.resp, replace);
            }
        }
        batch.end_offset = end;
        Ok(true)
    }

    /// True when the batch should be sent now.
    pub fn batch_full(batch: &Batch) -> bool {
        batch.bytes.len() >= BATCH_BYTES || batch.keys.len() >= BATCH_KEYS
    }
}

/// The selection (`--db`, `--key`, `--type`, on the dump's own names; `--slots` on the name
/// written), then the transforms (`--rename`, `--ttl-*`) on a selected key: whether `e` is
/// selected, or `Err(Skip::OutsideSlots)` / `Err(Skip::ExpiringSoon)` when `--slots` /
/// `--skip-expiring-within` leaves it out (`Err(Skip::CopyInOtherInput)` for the copy of a key
/// that another input (`input`: its index) also holds and whose copy wins). The importer's producer
/// and the dry run both start with it.
pub fn select(
    cfg: &ImportConfig,
    input: usize,
    e: &mut Entry<'_>,
    now_ms: i64,
) -> Result<bool, Skip> {
    if cfg
        .other_input_copies
        .as_ref()
        .is_some_and(|c| c.contains(&(input, e.offset)))
    {
        return Err(Skip::CopyInOtherInput);
    }
    let selected = cfg.filter.selects(e);
    // `--slots` takes the slot of the name written (before the transforms count anything)
    if selected && !cfg.filter.in_slots(&cfg.transform.name(&e.key)) {
        return Err(Skip::OutsideSlots);
    }
    if selected && !cfg.transform.is_identity() && !cfg.transform.apply(e, now_ms, &cfg.transformed)
    {
        return Err(Skip::ExpiringSoon);
    }
    Ok(selected)
}

/// Why a key goes by plain commands rather than `RESTORE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ByCommands {
    /// `--mode commands`.
    Asked,
    /// The target cannot `RESTORE` the key's type or encoding (its RDB version is older than
    /// the dump's type, or it is Valkey and the type is Redis's, or the other way round).
    TypeUnreadable,
    /// The `RESTORE` payload exceeds the target's `proto-max-bulk-len`: commands go in chunks.
    PayloadTooBig,
    /// A hash with fields whose TTL has passed: loading drops them, `RESTORE` would keep them.
    ExpiredFields,
    /// A RedisJSON document for a Valkey target (`JSON.SET`), or for a target without a JSON
    /// module (`--json-as-string`).
    JsonDocument,
}

impl ByCommands {
    /// Why, for summaries.
    pub fn name(&self) -> &'static str {
        match self {
            ByCommands::Asked => "--mode commands",
            ByCommands::TypeUnreadable => "the target cannot RESTORE the type or encoding",
            ByCommands::PayloadTooBig => "RESTORE payload over the target's proto-max-bulk-len",
            ByCommands::ExpiredFields => "hash with fields whose TTL has passed",
            ByCommands::JsonDocument => {
                "JSON document: JSON.SET on Valkey, a string with --json-as-string"
            }
        }
    }
}

/// How one key of the dump is written, or why it is not: what [`KeyRules::decide`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not written, for this reason (with a per-key report for some).
    Skip(Skip, Option<String>),
    /// Cannot be written: the key fails the import, for this reason.
    Fail(String),
    /// `RESTORE` with a payload of this footer version.
    Restore {
        /// Footer version of the payload.
        version: u16,
        /// A module value.
        module: bool,
    },
    /// Plain commands (the value must pass [`KeyRules::check_value`] too).
    Commands {
        /// Why not `RESTORE`.
        why: ByCommands,
        /// The footer version with which the target could `RESTORE` it, if any.
        restore_version: Option<u16>,
    },
}

/// The rules that decide, key by key, what an import does: skip, fail, `RESTORE` or commands.
/// One place for the importer's `Planner` and the dry run (`rdbkit plan`), so that the plan
/// says what the import will do.
#[derive(Debug, Clone, Copy)]
pub struct KeyRules<'s> {
    /// The import's options.
    pub cfg: &'s ImportConfig,
    /// What the target supports.
    pub target: &'s TargetInfo,
    /// RDB version of the dump.
    pub dump_version: u16,
    /// The dump was written by Valkey.
    pub dump_valkey: bool,
    /// Now, Unix ms (keys expired by then are skipped).
    pub now_ms: i64,
}

impl KeyRules<'_> {
    /// Can the target RESTORE this type, and with which footer version?
    fn restore_version(&self, e: &Entry<'_>) -> Option<u16> {
        self.target.restore_version(
            e.type_id,
            e.meta.is_some(),
            self.dump_version,
            self.dump_valkey,
        )
    }

    /// True when the target has a module that holds RedisJSON documents.
    fn has_json(&self) -> bool {
        !module_type_missing(
            crate::decode::module::json::TYPE_NAME,
            &self.target.modules,
            self.target.valkey,
        )
    }

    /// Why a RedisJSON document that rdbkit reads goes by commands rather than `RESTORE`: `--mode
    /// commands` or a Valkey target (valkey-json) with a JSON module (then `JSON.SET`), or a
    /// target without one under `--json-as-string` (a string holding the document). `None`: by
    /// `RESTORE` like any module value (or skipped as a module the target lacks).
    fn json_by_commands(&self, v: &Value<'_>) -> Option<ByCommands> {
        let Value::Module(m) = v else { return None };
        if m.id.name() != crate::decode::module::json::TYPE_NAME
            || !matches!(
                crate::decode::module::decode(m),
                Ok(Some(crate::decode::module::ModuleData::Json(_)))
            )
        {
            return None;
        }
        if !self.has_json() {
            self.cfg.json_as_string.then_some(ByCommands::JsonDocument)
        } else if self.cfg.mode == Mode::Commands {
            Some(ByCommands::Asked)
        } else if self.target.valkey {
            Some(ByCommands::JsonDocument)
        } else {
            None
        }
    }

    fn module_missing(&self, v: &Value<'_>) -> Option<String> {
        let Value::Module(m) = v else { return None };
        let name = m.id.name();
        module_type_missing(&name, &self.target.modules, self.target.valkey).then_some(name)
    }

    /// What becomes of `e` (`selected`: what [`select`] said of it): skipped (filter, expired, module missing, empty), failed (the target
    /// cannot take it), `RESTORE`d, or written by commands (then [`KeyRules::check_value`] on its
    /// decoded value has the last word).
    pub fn decide(&self, e: &Entry<'_>, selected: bool) -> Result<Decision, crate::DecodeError> {
        if !selected {
            return Ok(Decision::Skip(Skip::Filtered, None));
        }
        if e.is_expired_at(self.now_ms) {
            return Ok(Decision::Skip(Skip::Expired, None));
        }
        let json = if e.encoding() == crate::model::Encoding::Module2 {
            self.json_by_commands(&e.value()?)
        } else {
            None
        };
        // a JSON document written by commands goes the way of any other value
        let module = e.encoding() == crate::model::Encoding::Module2 && json.is_none();
        let restore_ver = self.restore_version(e);
        let payload_len = payload::len_for_entry(e) as u64;
        let fits = payload_len + 1024 <= self.target.bulk_limit;
        // A primary loading the dump drops hash fields whose TTL has passed; RESTORE keeps them
        // (until expiry reclaims them). Such hashes go by commands, without those fields.
        let expired_fields = e.encoding().has_field_ttls() && self.has_expired_field(e)?;
        let by_commands = match self.cfg.mode {
            _ if json.is_some() => json,
            _ if module => None,
            Mode::Restore => None,
            Mode::Commands => Some(ByCommands::Asked),
            Mode::Auto if restore_ver.is_none() => Some(ByCommands::TypeUnreadable),
            Mode::Auto if !fits => Some(ByCommands::PayloadTooBig),
            Mode::Auto if expired_fields => Some(ByCommands::ExpiredFields),
            Mode::Auto => None,
        };
        if module {
            if let Some(name) = self.module_missing(&e.value()?) {
                let hint = if name == crate::decode::module::json::TYPE_NAME {
                    " (--json-as-string writes documents as strings)"
                } else {
                    ""
                };
                return Ok(Decision::Skip(
                    Skip::ModuleMissing,
                    Some(format!("module type {name} not loaded on the target{hint}")),
                ));
            }
        }
        if let Some(why) = by_commands {
            return Ok(Decision::Commands {
                why,
                restore_version: restore_ver,
            });
        }
        if self.empty_collection(e)? {
            return Ok(Decision::Skip(Skip::Empty, None));
        }
        let Some(version) =
            restore_ver.or(module.then_some(self.dump_version.min(self.target.rdb_version)))
        else {
            return Ok(Decision::Fail(format!(
                "the target (RDB {}) cannot RESTORE type {}",
                self.target.rdb_version, e.type_id
            )));
        };
        if !fits {
            return Ok(Decision::Fail(too_big(
                "its RESTORE payload",
                payload_len,
                self.target.bulk_limit,
            )));
        }
        Ok(Decision::Restore { version, module })
    }

    /// For a key written by commands, its decoded value: a string or element longer than the
    /// target's `proto-max-bulk-len` fails it, an empty one is skipped, and a hash loses the
    /// fields whose TTL has passed (skipped as expired when none is left). `None`: write it.
    pub fn check_value(&self, v: &mut Value<'_>) -> Option<Decision> {
        // commands split a large value, but no server holds a string (or an element) longer
        // than its proto-max-bulk-len: say so instead of sending what it will refuse
        if let Some(size) = largest_part(v) {
            if size > self.target.bulk_limit {
                return Some(Decision::Fail(too_big(
                    "a value",
                    size,
                    self.target.bulk_limit,
                )));
            }
        }
        if v.is_empty() {
            return Some(Decision::Skip(Skip::Empty, None));
        }
        if let Value::Hash(fields) = v {
            fields.retain(|f| f.expire_ms.is_none_or(|ms| ms > self.now_ms));
            if fields.is_empty() {
                return Some(Decision::Skip(Skip::Expired, None));
            }
        }
        None
    }

    /// The command options for the whole import (per key, [`KeyRules::per_key_options`]).
    pub fn command_options(&self) -> CommandOptions {
        CommandOptions {
            drop_field_ttls: self.cfg.drop_field_ttls,
            now_ms: self.now_ms,
            // JSON documents reach the commands only to be written by them (`decide`)
            json: if self.has_json() || !self.cfg.json_as_string {
                JsonWrite::Set
            } else {
                JsonWrite::String
            },
            ..self.target.command_options()
        }
    }

    /// Sets the options that depend on the key: whether and how the target could RESTORE it.
    pub fn per_key_options(&self, o: &mut CommandOptions, restore_version: Option<u16>) {
        o.restore_version =
            restore_version.unwrap_or(self.dump_version.min(self.target.rdb_version));
        o.can_restore = restore_version.is_some();
    }

    fn has_expired_field(&self, e: &Entry<'_>) -> Result<bool, crate::DecodeError> {
        Ok(match e.value()? {
            Value::Hash(f) => f
                .iter()
                .any(|f| f.expire_ms.is_some_and(|ms| ms <= self.now_ms)),
            _ => false,
        })
    }

    /// Empty collections: Redis drops them on load and RESTORE refuses them. Only tiny values can
    /// be empty, so only those are decoded here.
    fn empty_collection(&self, e: &Entry<'_>) -> Result<bool, crate::DecodeError> {
        let collection = !matches!(
            e.value_type(),
            crate::ValueType::String | crate::ValueType::Stream | crate::ValueType::Module
        );
        Ok(collection
            && e.raw.len() <= 64
            && crate::decode::value::may_be_empty(e.encoding(), e.raw)
            && e.value()?.is_empty())
    }
}

/// The longest string a value holds: the string itself, or its largest element (streams and
/// modules: `None`).
fn largest_part(v: &Value<'_>) -> Option<u64> {
    let len = |e: &crate::model::Elem<'_>| match e {
        crate::model::Elem::Bytes(b) => b.len() as u64,
        crate::model::Elem::Int(_) => 20,
    };
    match v {
        Value::String(s) => Some(len(s)),
        Value::List(l) | Value::Set(l) => l.iter().map(len).max(),
        Value::SortedSet(z) => z.iter().map(|(m, _)| len(m)).max(),
        Value::Hash(h) => h.iter().map(|f| len(&f.field).max(len(&f.value))).max(),
        Value::Stream(_) | Value::Module(_) => None,
    }
}

/// The report for a key the target's `proto-max-bulk-len` keeps out.
fn too_big(what: &str, size: u64, limit: u64) -> String {
    // RESTORE's payload must fit with the command's other arguments; round up to whole MiB
    let need_mb = (size + 1024).div_ceil(1 << 20);
    format!(
        "{what} is {size} bytes, more than the target's proto-max-bulk-len ({limit}): raise the target's proto-max-bulk-len for it (CONFIG SET proto-max-bulk-len {need_mb}mb), then import this key again"
    )
}

/// `RESTORE key ttl payload [ABSTTL] [IDLETIME s | FREQ f] [REPLACE]`, the payload built in place.
pub(super) fn restore(r: &mut Resp, e: &Entry<'_>, ver: u16, replace: bool) {
    let extra = usize::from(e.expire_ms.is_some())
        + usize::from(replace)
        + if e.idle.is_some() || e.freq.is_some() {
            2
        } else {
            0
        };
    // one allocation for the whole command: growing by doubling would copy a large payload
    // several times (perf showed `finish_grow` memmove at 12% of a D2 import's CPU)
    let len = payload::len_for_entry(e);
    r.buf.reserve(len + e.key.len() + 160);
    r.begin(4 + extra);
    r.arg(b"RESTORE");
    r.arg(&e.key);
    r.arg_int(e.expire_ms.unwrap_or(0));
    // the payload is written straight into the request buffer: type, raw bytes, footer
    r.buf.push(b'$');
    r.buf
        .extend_from_slice(crate::text::itoa_buf(len as i64).as_slice());
    r.buf.extend_from_slice(b"\r\n");
    payload::write(&mut r.buf, e.meta, e.type_id, e.raw, ver);
    r.buf.extend_from_slice(b"\r\n");
    if e.expire_ms.is_some() {
        r.arg(b"ABSTTL");
    }
    if let Some(idle) = e.idle {
        r.arg(b"IDLETIME");
        r.arg_int(idle.min(i64::MAX as u64) as i64);
    } else if let Some(f) = e.freq {
        r.arg(b"FREQ");
        r.arg_int(i64::from(f));
    }
    if replace {
        r.arg(b"REPLACE");
    }
}

#[cfg(test)]
mod tests {
    use super::module_type_missing;

    fn mods(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn module_types_are_missing_unless_a_loaded_module_may_hold_them() {
        // Redis 8.2 with FalkorDB: MODULE LIST says graph and vectorset
        let falkor = mods(&["graph", "vectorset"]);
        for t in ["graphdata", "graphmeta", "graphalas", "vectorset"] {
            assert!(!module_type_missing(t, &falkor, false), "{t}");
        }
        // KeyDB's and librdb's test modules, RedisJSON, RedisBloom: none of them is loaded
        for t in [
            "test___dt",
            "test__rdb",
            "ReJSON-RL",
            "MBbloom--",
            "TSDB-TYPE",
        ] {
            assert!(module_type_missing(t, &falkor, false), "{t}");
        }
        // no modules at all (open-source Redis 7, Valkey): everything is missing
        assert!(module_type_missing("graphdata", &[], false));
        assert!(module_type_missing("test___dt", &[], true));
        // a module we do not know may hold any unknown type: RESTORE decides
        let other = mods(&["graph", "hellotype"]);
        assert!(!module_type_missing("test___dt", &other, false));
        assert!(module_type_missing("ReJSON-RL", &other, false));
        // valkey-json reads RedisJSON values; valkey-bloom (also `bf`) does not read RedisBloom's
        assert!(!module_type_missing("ReJSON-RL", &mods(&["json"]), true));
        assert!(module_type_missing("MBbloom--", &mods(&["bf"]), true));
        assert!(!module_type_missing("bloomfltr", &mods(&["bf"]), true));
        assert!(!module_type_missing("MBbloom--", &mods(&["bf"]), false));
    }
}
