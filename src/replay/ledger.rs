//! The ledger of an import: what became of every key (written, skipped and why, failed, in
//! doubt), the notes for the summary, and the [`ImportSummary`] built from them at the end.

use super::batch::KeyMode;
use super::config::Skip;
use super::keylist::{KeyList, KeyLog};
use super::target::TargetInfo;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Live counters (read by progress displays).
#[derive(Debug, Default)]
pub struct Stats {
    /// Dump bytes decoded.
    pub bytes_read: AtomicU64,
    /// Keys acknowledged, written by RESTORE.
    pub written_restore: AtomicU64,
    /// Keys acknowledged, written by commands.
    pub written_commands: AtomicU64,
    /// Keys skipped for any reason.
    pub skipped: AtomicU64,
    /// Keys that failed.
    pub failed: AtomicU64,
    /// Reconnects.
    pub reconnects: AtomicU64,
    /// Batches that `WAIT` reported as reaching fewer replicas than asked.
    pub unreplicated: AtomicU64,
    /// Keys a cluster node answered MOVED for (followed).
    pub moved: AtomicU64,
    /// Keys a cluster node answered ASK for (followed).
    pub asked: AtomicU64,
    /// Keys sent without an acknowledgement when the import stopped.
    pub in_doubt: AtomicU64,
    /// Sentinel: acknowledged keys given up from the failover rewrite store before a `WAIT`
    /// confirmed them on every replica (a replica was gone or lagging).
    pub unconfirmed: AtomicU64,
    /// RESP bytes of the batches the target acknowledged (what was written, on the wire).
    pub bytes_written: AtomicU64,
    /// Sentinel: times the primary moved (a new primary named by the sentinels) during the run.
    pub failovers: AtomicU64,
}

impl Stats {
    /// Keys acknowledged.
    pub fn written(&self) -> u64 {
        self.written_restore.load(Relaxed) + self.written_commands.load(Relaxed)
    }
}

/// Most per-key reports kept for the summary.
const MAX_REPORTS: usize = 1000;

/// (key, reason) of one list.
type KeyReports = Vec<(Vec<u8>, String)>;

/// What became of every key, shared by the planner and the connections.
pub(crate) struct Ledger {
    /// Live counters (shared with the caller when [`super::ImportConfig::stats`] is given).
    pub(crate) stats: std::sync::Arc<Stats>,
    /// BUSYKEY means "kept under --skip-existing", not a failure.
    skip_existing: bool,
    skipped: Mutex<BTreeMap<Skip, u64>>,
    /// (key, reason) for failed and not-written keys, first [`MAX_REPORTS`] of each list.
    reports: Mutex<[KeyReports; 2]>,
    /// Keys not written for a reported reason.
    not_written: AtomicU64,
    /// The whole lists, when a file was asked for.
    pub(crate) key_log: Option<KeyLog>,
    /// Keys sent but never acknowledged when the import stopped, first [`MAX_REPORTS`].
    in_doubt: Mutex<Vec<Vec<u8>>>,
    notes: Mutex<Vec<String>>,
}

impl Ledger {
    pub(crate) fn new(skip_existing: bool, stats: std::sync::Arc<Stats>) -> Ledger {
        Ledger {
            stats,
            skip_existing,
            skipped: Mutex::default(),
            reports: Mutex::default(),
            not_written: AtomicU64::new(0),
            key_log: None,
            in_doubt: Mutex::default(),
            notes: Mutex::default(),
        }
    }

    fn report(&self, list: KeyList, key: &[u8], why: String) {
        if let Some(log) = &self.key_log {
            log.add(list, key, &why);
        }
        let mut r = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        let r = &mut r[usize::from(list != KeyList::Failed)];
        if r.len() < MAX_REPORTS {
            r.push((key.to_vec(), why));
        }
    }

    /// A key not written, for `why`; `report` names it in the lists (with the message).
    pub(crate) fn skip(&self, why: Skip, report: Option<(&[u8], String)>) {
        *self
            .skipped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(why)
            .or_default() += 1;
        self.stats.skipped.fetch_add(1, Relaxed);
        if let Some((k, msg)) = report {
            self.not_written.fetch_add(1, Relaxed);
            self.report(KeyList::NotWritten, k, msg);
        }
    }

    /// A key the target refused.
    pub(crate) fn fail(&self, key: &[u8], why: String) {
        self.stats.failed.fetch_add(1, Relaxed);
        self.report(KeyList::Failed, key, why);
    }

    /// `keys` acknowledged keys leave the failover rewrite store unconfirmed.
    pub(crate) fn unconfirmed(&self, keys: usize) {
        self.stats.unconfirmed.fetch_add(keys as u64, Relaxed);
    }

    /// A line for the summary's notes.
    pub(crate) fn note(&self, n: String) {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).push(n);
    }

    /// Every reply of one key arrived; `err` is the first error among them.
    pub(crate) fn settle(&self, key: &[u8], mode: KeyMode, err: Option<&str>) {
        match err {
            None => match mode {
                KeyMode::Restore => self.stats.written_restore.fetch_add(1, Relaxed),
                KeyMode::Commands => self.stats.written_commands.fetch_add(1, Relaxed),
            },
            Some(e) if self.skip_existing && e.starts_with("BUSYKEY") => {
                self.skip(Skip::Existing, None);
                0
            }
            Some(e) => {
                self.fail(key, e.to_string());
                0
            }
        };
    }

    /// A key was sent and the import stopped before the target acknowledged it: it may or may
    /// not be there.
    pub(crate) fn in_doubt(&self, key: &[u8]) {
        self.stats.in_doubt.fetch_add(1, Relaxed);
        if let Some(log) = &self.key_log {
            log.add(KeyList::InDoubt, key, "");
        }
        let mut d = self.in_doubt.lock().unwrap_or_else(|e| e.into_inner());
        if d.len() < MAX_REPORTS {
            d.push(key.to_vec());
        }
    }

    /// The summary of the run: the counters and lists as they stand, with what only the
    /// importer knows (`target`, `code`, `module_aux`, `elapsed`, `skip_modules`).
    pub(crate) fn summary(
        &self,
        target: TargetInfo,
        code: CodeReport,
        module_aux_unrestored: Vec<String>,
        elapsed: Duration,
        skip_modules: bool,
        primaries: usize,
    ) -> ImportSummary {
        let s = &self.stats;
        if s.unconfirmed.load(Relaxed) > 0 {
            self.note(format!(
                "{} acknowledged keys could not be confirmed on every replica (WAIT) before they left the failover rewrite store; a later failover may have lost them: run verify",
                s.unconfirmed.load(Relaxed)
            ));
        }
        if s.unreplicated.load(Relaxed) > 0 {
            self.note(format!(
                "{} batches reached fewer replicas than --wait-replicas asked within the timeout",
                s.unreplicated.load(Relaxed)
            ));
        }
        let skipped = self
            .skipped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.name(), *v))
            .collect();
        let [failures, reports] = self
            .reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let keys_file = match self.key_log.as_ref().map(KeyLog::finish) {
            Some(Ok(path)) => path,
            Some(Err(e)) => {
                self.note(format!("the key lists could not be written: {e}"));
                None
            }
            None => None,
        };
        let notes = self.notes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let in_doubt = self
            .in_doubt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        ImportSummary {
            in_doubt,
            in_doubt_total: s.in_doubt.load(Relaxed),
            target,
            written_restore: s.written_restore.load(Relaxed),
            written_commands: s.written_commands.load(Relaxed),
            skipped,
            failed: s.failed.load(Relaxed),
            failures,
            reports,
            reported_total: self.not_written.load(Relaxed),
            keys_file,
            code,
            module_aux_unrestored,
            reconnects: s.reconnects.load(Relaxed),
            bytes: s.bytes_read.load(Relaxed),
            bytes_written: s.bytes_written.load(Relaxed),
            primaries,
            elapsed,
            notes,
            skip_modules,
            search: SearchReport::default(),
        }
    }
}

/// What happened to the dump's code, for the summary (library names). `--summary-json` writes it
/// as it is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(serde::Serialize))]
pub struct CodeReport {
    /// Libraries loaded (on at least one primary).
    pub loaded: Vec<String>,
    /// Libraries already on the target with the same code.
    pub present: Vec<String>,
    /// Libraries whose other version on the target was replaced.
    pub replaced: Vec<String>,
    /// Libraries whose other version on the target was kept (`--skip-existing`).
    pub kept: Vec<String>,
    /// Scripts loaded (each on every primary).
    pub scripts: u64,
    /// Libraries or scripts that could not be loaded, with the reason.
    pub errors: Vec<String>,
}

impl CodeReport {
    pub(super) fn add(list: &mut Vec<String>, name: &str) {
        add_once(list, name)
    }
}

/// Appends `name` unless `list` holds it (a library or an index is named once, however many
/// primaries it went to).
fn add_once(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

/// What became of the dump's search indexes on a target with the search module, for the summary
/// (index names; each once, however many primaries). `--summary-json` writes it as it is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(serde::Serialize))]
pub struct SearchReport {
    /// Indexes created by `FT.CREATE`.
    pub created: Vec<String>,
    /// Indexes of the same name dropped (without their documents) and created anew (`--replace`,
    /// `--flush-target`, a resumed import).
    pub replaced: Vec<String>,
    /// Indexes (and aliases, as `alias NAME`) of the same name kept as the target has them
    /// (`--skip-existing`).
    pub kept: Vec<String>,
    /// What the target cannot be given, `index: what`: an index `FT.CREATE` cannot express
    /// part of (not created), an alias a cluster cannot hold beside its index (not added).
    pub not_expressible: Vec<String>,
    /// On a cluster: `index on primary` (each index on the primary of its name's slot).
    pub placed: Vec<String>,
    /// What else differs from the dump's server (`SKIPINITIALSCAN` indexes).
    pub notes: Vec<String>,
    /// Commands the target refused: `index on primary: command: error`.
    pub errors: Vec<String>,
}

impl SearchReport {
    pub(super) fn add(list: &mut Vec<String>, name: &str) {
        add_once(list, name)
    }

    /// Nothing to say.
    pub fn is_empty(&self) -> bool {
        *self == SearchReport::default()
    }
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// The target's description.
    pub target: TargetInfo,
    /// Keys written by RESTORE.
    pub written_restore: u64,
    /// Keys written by commands.
    pub written_commands: u64,
    /// Skipped keys per reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Keys that failed.
    pub failed: u64,
    /// (key, reason) for failed keys, the first 1000 (`crate::text::escape_bytes` shows a key).
    pub failures: Vec<(Vec<u8>, String)>,
    /// (key, reason) for keys not written for a reported reason (module missing, not
    /// representable…), the first 1000.
    pub reports: Vec<(Vec<u8>, String)>,
    /// How many keys were not written for a reported reason.
    pub reported_total: u64,
    /// The file holding the whole lists (failed, not written, in doubt), when there is one.
    pub keys_file: Option<PathBuf>,
    /// Function libraries and scripts: loaded, already there, replaced, kept, failed.
    pub code: CodeReport,
    /// Module aux data that was not restored: one line per module (or per record that the
    /// target refused).
    pub module_aux_unrestored: Vec<String>,
    /// Reconnects during the run.
    pub reconnects: u64,
    /// Dump bytes read.
    pub bytes: u64,
    /// RESP bytes of the batches the target acknowledged (the payload written).
    pub bytes_written: u64,
    /// Primaries written to (1, or a cluster's at the start).
    pub primaries: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Notes (assumed limits, reconnects…).
    pub notes: Vec<String>,
    /// Keys whose module is missing are tolerated.
    pub skip_modules: bool,
    /// Keys sent whose acknowledgement never came (the import stopped): they may or may not be
    /// on the target. The first 1000.
    pub in_doubt: Vec<Vec<u8>>,
    /// How many keys were in doubt.
    pub in_doubt_total: u64,
    /// The dump's search indexes recreated on a target with the search module.
    pub search: SearchReport,
}

impl ImportSummary {
    /// Keys written.
    pub fn written(&self) -> u64 {
        self.written_restore + self.written_commands
    }

    /// True when nothing was lost: no failures, nothing unrepresentable, and no module keys
    /// skipped unless `--skip-modules` said so.
    pub fn is_success(&self) -> bool {
        let get = |s: Skip| self.skipped.get(s.name()).copied().unwrap_or(0);
        self.failed == 0
            && self.code.errors.is_empty()
            && self.search.errors.is_empty()
            && self.in_doubt_total == 0
            && get(Skip::Unrepresentable) == 0
            && (self.skip_modules || get(Skip::ModuleMissing) == 0)
    }
}

/// Progress snapshot for displays.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Dump bytes decoded.
    pub bytes_read: u64,
    /// Dump size when known.
    pub total_bytes: Option<u64>,
    /// Keys acknowledged.
    pub written: u64,
    /// Keys skipped.
    pub skipped: u64,
    /// Keys failed.
    pub failed: u64,
    /// Since start.
    pub elapsed: Duration,
}
