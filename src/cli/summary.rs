//! The summary of `import` (and `verify`) as one value: the text summary is printed from it and
//! `--summary-json FILE` writes it as JSON, so the two cannot say different things.

use crate::cli::say;
use anyhow::{Context, Result};
use rdbkit::output::count;
use rdbkit::replay::{ImportSummary, Target};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

/// A key: in JSON as `export` writes keys (a string when UTF-8, else `{"base64": …}`), in text
/// quoted with `\xNN` escapes.
#[derive(Debug, Clone)]
pub struct Key(pub Vec<u8>);

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        match std::str::from_utf8(&self.0) {
            Ok(k) => s.serialize_str(k),
            Err(_) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(
                    "base64",
                    &base64::engine::general_purpose::STANDARD.encode(&self.0),
                )?;
                m.end()
            }
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rdbkit::text::escape_bytes(&self.0))
    }
}

/// A key and why it is listed.
#[derive(Debug, Clone, Serialize)]
pub struct KeyReason {
    /// The key.
    pub key: Key,
    /// Why (the target's error, or the reason it was not written).
    pub reason: String,
}

/// Where the import wrote.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// The target, its password masked.
    pub url: String,
    /// `Redis` or `Valkey`.
    pub server: &'static str,
    /// Its version.
    pub version: String,
    /// The RDB version it reads.
    pub rdb_version: u16,
    /// Redis Enterprise.
    pub enterprise: bool,
}

/// What became of the keys of the dumps (or of a live source's snapshot, or an AOF's base).
#[derive(Debug, Clone, Serialize)]
pub struct KeysReport {
    /// Keys written (acknowledged by the target).
    pub written: u64,
    /// Of which by `RESTORE`.
    pub written_restore: u64,
    /// Of which by commands.
    pub written_commands: u64,
    /// Keys not written, per reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Keys the target refused.
    pub failed: u64,
    /// The first of them (all in `keys_file`), with the target's error.
    pub failed_keys: Vec<KeyReason>,
    /// Keys not written for a reported reason (module missing, not representable…).
    pub not_written: u64,
    /// The first of them (all in `keys_file`), with the reason.
    pub not_written_keys: Vec<KeyReason>,
    /// Keys sent and never acknowledged: they may or may not be on the target.
    pub in_doubt: u64,
    /// The first of them (all in `keys_file`).
    pub in_doubt_keys: Vec<Key>,
    /// The file holding the whole lists, when there is one.
    pub keys_file: Option<PathBuf>,
    /// Dump bytes read.
    pub bytes_read: u64,
    /// RESP bytes of the batches the target acknowledged (the payload written).
    pub bytes_written: u64,
    /// Seconds the import of the keys took.
    pub elapsed_s: f64,
    /// Function libraries and scripts.
    pub functions: rdbkit::replay::CodeReport,
    /// Module aux data not restored, one line per module.
    pub module_aux_unrestored: Vec<String>,
    /// The dump's search indexes, recreated on a target with the search module.
    pub search_indexes: rdbkit::replay::search::SearchReport,
    /// Reconnects of the data connections.
    pub reconnects: u64,
    /// Notes (assumed limits, failovers, redirections…).
    pub notes: Vec<String>,
}

/// What the transforms changed.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TransformReport {
    /// Keys written under a new name (`--rename`).
    pub renamed: u64,
    /// Key TTLs moved (`--ttl-shift`).
    pub ttl_shifted: u64,
    /// Key TTLs shortened (`--ttl-max`).
    pub ttl_capped: u64,
    /// Key TTLs removed (`--drop-ttl`).
    pub ttl_dropped: u64,
    /// Keys left out, expiring soon (`--skip-expiring-within`).
    pub skipped_expiring: u64,
    /// The same, as the text summary says it.
    pub lines: Vec<String>,
}

impl TransformReport {
    /// From the import's counts.
    pub fn from_counts(c: &rdbkit::transform::TransformCounts) -> TransformReport {
        TransformReport {
            renamed: c.renamed.load(Relaxed),
            ttl_shifted: c.ttl_shifted.load(Relaxed),
            ttl_capped: c.ttl_capped.load(Relaxed),
            ttl_dropped: c.ttl_dropped.load(Relaxed),
            skipped_expiring: c.skipped_expiring.load(Relaxed),
            lines: c.describe(),
        }
    }
}

/// Commands applied after a snapshot (`--follow`) or after an AOF's base.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CommandsReport {
    /// Commands applied (a `MULTI` block counts its commands).
    pub applied: u64,
    /// `MULTI`/`EXEC` blocks applied whole.
    pub blocks: u64,
    /// Commands left out by `--db`/`--key`.
    pub left_out: u64,
    /// Commands the target answered with an error, by error code.
    pub target_errors: BTreeMap<String, u64>,
    /// The first of those errors.
    pub error_samples: Vec<String>,
    /// Commands sent when a connection broke, never answered.
    pub in_doubt: u64,
    /// The source (or AOF) offset applied at the end.
    pub applied_offset: u64,
    /// Seconds spent applying them.
    pub elapsed_s: f64,
    /// Target connections made anew (Sentinel: after a failover or a broken link).
    pub reconnects: u64,
    /// Times the sentinels named a new primary.
    pub failovers: u64,
    /// Times the link to the live source broke and was continued by partial resync.
    pub source_reconnects: u64,
    /// Notes.
    pub notes: Vec<String>,
}

impl CommandsReport {
    /// From a follow's (or an AOF's commands') summary.
    pub fn from_follow(s: &rdbkit::replay::follow::FollowSummary) -> CommandsReport {
        CommandsReport {
            applied: s.commands,
            blocks: s.blocks,
            left_out: s.skipped,
            target_errors: s.errors.clone(),
            error_samples: s.error_samples.clone(),
            in_doubt: s.in_doubt,
            applied_offset: s.applied_offset,
            elapsed_s: s.elapsed.as_secs_f64(),
            reconnects: s.reconnects,
            failovers: s.failovers,
            source_reconnects: 0,
            notes: s.notes.clone(),
        }
    }
}

/// The whole summary of one `import` run.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// `import`.
    pub command: &'static str,
    /// `ok` or `failed`.
    pub status: &'static str,
    /// The process's exit code.
    pub exit_code: u8,
    /// Why it failed, as printed on stderr.
    pub error: Option<String>,
    /// The inputs as given (URLs with their passwords masked).
    pub sources: Vec<String>,
    /// The target, once it was reached.
    pub target: Option<TargetReport>,
    /// The keys, once the import of keys ran.
    pub keys: Option<KeysReport>,
    /// What the transforms changed.
    pub transforms: TransformReport,
    /// Commands applied after the keys (`--follow`, an AOF).
    pub commands: Option<CommandsReport>,
    /// Seconds from start to end.
    pub elapsed_s: f64,
}

impl Default for ImportReport {
    fn default() -> Self {
        ImportReport {
            command: "import",
            status: "ok",
            exit_code: 0,
            error: None,
            sources: Vec::new(),
            target: None,
            keys: None,
            transforms: TransformReport::default(),
            commands: None,
            elapsed_s: 0.0,
        }
    }
}

/// Keys of each list printed in the text summary; the keys file has them all.
const SHOWN: usize = 5;

impl KeysReport {
    /// The keys' part of a summary.
    pub fn new(s: &ImportSummary) -> KeysReport {
        let c = &s.code;
        let reasons = |l: &[(Vec<u8>, String)]| {
            l.iter()
                .map(|(k, r)| KeyReason {
                    key: Key(k.clone()),
                    reason: r.clone(),
                })
                .collect()
        };
        KeysReport {
            written: s.written(),
            written_restore: s.written_restore,
            written_commands: s.written_commands,
            skipped: s.skipped.clone(),
            failed: s.failed,
            failed_keys: reasons(&s.failures),
            not_written: s.reported_total,
            not_written_keys: reasons(&s.reports),
            in_doubt: s.in_doubt_total,
            in_doubt_keys: s.in_doubt.iter().map(|k| Key(k.clone())).collect(),
            keys_file: s.keys_file.clone(),
            bytes_read: s.bytes,
            bytes_written: s.bytes_written,
            elapsed_s: s.elapsed.as_secs_f64(),
            functions: c.clone(),
            module_aux_unrestored: s.module_aux_unrestored.clone(),
            search_indexes: s.search.clone(),
            reconnects: s.reconnects,
            notes: s.notes.clone(),
        }
    }

    /// The text summary (stdout).
    pub fn print(&self, target: &TargetReport) {
        let secs = self.elapsed_s;
        say!(
            "target: {} ({} {}, RDB {}{})",
            target.url,
            target.server,
            target.version,
            target.rdb_version,
            if target.enterprise {
                ", Enterprise"
            } else {
                ""
            }
        );
        say!(
            "written: {} ({} by RESTORE, {} by commands) in {secs:.2}s, {:.0} keys/s, {:.1} MB/s of dump",
            count(self.written, "key"),
            self.written_restore,
            self.written_commands,
            self.written as f64 / secs.max(1e-9),
            self.bytes_read as f64 / 1e6 / secs.max(1e-9)
        );
        for (why, n) in &self.skipped {
            say!("skipped: {n} ({why})");
        }
        let c = &self.functions;
        let libraries = [
            (&c.loaded, "loaded"),
            (&c.present, "already on the target"),
            (&c.replaced, "replaced"),
            (&c.kept, "kept the target's version (--skip-existing)"),
        ];
        for (names, what) in libraries {
            if !names.is_empty() {
                say!("function libraries {what}: {}", names.join(", "));
            }
        }
        if c.scripts > 0 {
            say!("scripts loaded: {}", c.scripts);
        }
        for e in &c.errors {
            say!("not loaded: {e}");
        }
        for m in &self.module_aux_unrestored {
            say!("module aux: {m}");
        }
        let x = &self.search_indexes;
        let indexes = [
            (&x.created, "created (FT.CREATE)"),
            (
                &x.replaced,
                "dropped without their documents and created anew",
            ),
            (&x.kept, "kept the target's (--skip-existing)"),
        ];
        for (names, what) in indexes {
            if !names.is_empty() {
                say!("search indexes {what}: {}", names.join(", "));
            }
        }
        for n in &x.not_expressible {
            say!("search index {n}");
        }
        if !x.placed.is_empty() {
            say!(
                "search indexes on the cluster: {} (the primary that serves the name's hash slot; without the search coordinator each indexes and searches its own primary's documents only)",
                x.placed.join(", ")
            );
        }
        for e in &x.errors {
            say!("search index not created: {e}");
        }
        for n in &x.notes {
            say!("search index note: {n}");
        }
        if self.reconnects > 0 {
            say!("reconnects: {}", self.reconnects);
        }
        for n in &self.notes {
            say!("note: {n}");
        }
        let file = self
            .keys_file
            .as_ref()
            .map(|p| format!(" (all of them in {})", p.display()))
            .unwrap_or_default();
        let list = |total: u64, keys: &mut dyn Iterator<Item = String>| {
            let mut shown = 0u64;
            for k in keys.take(SHOWN) {
                say!("  {k}");
                shown += 1;
            }
            if total > shown {
                say!("  … and {} more{file}", total - shown);
            }
        };
        if self.failed > 0 {
            say!("failed: {}", count(self.failed, "key"));
            list(
                self.failed,
                &mut self
                    .failed_keys
                    .iter()
                    .map(|k| format!("{}: {}", k.key, k.reason)),
            );
        }
        if self.not_written > 0 {
            say!("not written: {}", count(self.not_written, "key"));
            list(
                self.not_written,
                &mut self
                    .not_written_keys
                    .iter()
                    .map(|k| format!("{}: {}", k.key, k.reason)),
            );
        }
        if self.in_doubt > 0 {
            say!(
                "in doubt: {} sent but never acknowledged; they may or may not be on the target:",
                count(self.in_doubt, "key")
            );
            list(
                self.in_doubt,
                &mut self.in_doubt_keys.iter().map(|k| k.to_string()),
            );
        }
        if let Some(p) = &self.keys_file {
            say!(
                "key lists: {} (one line per key: list, key, reason)",
                p.display()
            );
        }
    }
}

impl TargetReport {
    /// The target as the summary names it.
    pub fn new(target: &Target, s: &ImportSummary) -> TargetReport {
        TargetReport {
            url: target.display(),
            server: if s.target.valkey { "Valkey" } else { "Redis" },
            version: s.target.version.clone(),
            rdb_version: s.target.rdb_version,
            enterprise: s.target.enterprise,
        }
    }
}

/// `--summary-json -`: the document goes to stdout.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Writes `value` as JSON to `path` atomically: a temporary file beside it, then a rename, so a
/// reader never sees half a document. `-` is stdout (the text summary then went to stderr:
/// [`super::text_to_stderr`]).
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut body = serde_json::to_vec_pretty(value).context("encoding the summary")?;
    body.push(b'\n');
    if is_stdout(path) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        return out
            .write_all(&body)
            .and_then(|()| out.flush())
            .context("writing the summary to stdout");
    }
    write_atomically(path, &body, "the summary")
}

/// Writes `body` to `path` whole: a temporary file beside it, then a rename, so a reader never
/// sees half of it; `what` names it in the error.
pub fn write_atomically(path: &Path, body: &[u8], what: &str) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rdbkit".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, body)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("writing {what} {}", path.display()))
}
