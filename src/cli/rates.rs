//! The rates this machine's imports measured, kept so that `plan` (and `import --dry-run`) can
//! estimate how long an import would take: `$RDBKIT_STATE_DIR/rates.json`, else
//! `$XDG_STATE_HOME/rdbkit/rates.json`, else `~/.local/state/rdbkit/rates.json`.
//!
//! Each import whose keys were written to the end appends one [`Rate`]; the last [`KEPT`] are
//! kept. The file is written whole (temporary file, then rename). A file that cannot be read or
//! written is a warning on stderr, never a failure of the import.

use rdbkit::replay::{ImportSummary, Target};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Records kept in the file.
pub const KEPT: usize = 20;

/// One import's measured rates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rate {
    /// When it ended, `YYYY-MM-DD HH:MM:SS UTC`.
    pub date: String,
    /// The same, in Unix seconds.
    pub unix_time: i64,
    /// The rdbkit version that measured it.
    pub rdbkit: String,
    /// `standalone`, `sentinel` or `cluster`.
    pub target_kind: String,
    /// Primaries written to.
    pub primaries: u64,
    /// The target's server and version (`Redis 8.2.1`).
    pub server: String,
    /// Keys written.
    pub keys: u64,
    /// Of which by `RESTORE`.
    pub keys_restore: u64,
    /// Of which by commands.
    pub keys_commands: u64,
    /// RESP bytes the target acknowledged (the payload written).
    pub payload_bytes: u64,
    /// Dump bytes read.
    pub dump_bytes: u64,
    /// Seconds the import of the keys took (wall time).
    pub elapsed_s: f64,
    /// `keys / elapsed_s`.
    pub keys_per_s: f64,
    /// `payload_bytes / elapsed_s`.
    pub payload_bytes_per_s: f64,
}

/// The file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RatesFile {
    /// Oldest first.
    records: Vec<Rate>,
}

/// The state file, when a directory for it is known.
pub fn path() -> Option<PathBuf> {
    let dir = match std::env::var_os("RDBKIT_STATE_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        // $XDG_STATE_HOME, else ~/.local/state (dirs: None where neither applies, e.g. macOS)
        None => dirs::state_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join(".local/state")))?
            .join("rdbkit"),
    };
    Some(dir.join("rates.json"))
}

/// `standalone`, `sentinel` or `cluster`.
pub fn target_kind(target: &Target, cluster: bool) -> &'static str {
    if cluster {
        "cluster"
    } else if target.sentinel.is_some() {
        "sentinel"
    } else {
        "standalone"
    }
}

/// The records of `path`; `Err` says why they cannot be read (a missing file is no record).
fn read(path: &Path) -> Result<Vec<Rate>, String> {
    match std::fs::read(path) {
        Ok(body) => serde_json::from_slice::<RatesFile>(&body)
            .map(|f| f.records)
            .map_err(|e| format!("not a rates file ({e})")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// Appends the rates of a finished import `s` into `target` to the state file. Nothing is
/// recorded for an import that wrote no key; every failure is a warning.
pub fn record(s: &ImportSummary, target: &Target) {
    let secs = s.elapsed.as_secs_f64();
    if s.written() == 0 || secs <= 0.0 {
        return;
    }
    let Some(path) = path() else {
        eprintln!("rdbkit: warning: no state directory (set RDBKIT_STATE_DIR): this import's rate is not recorded");
        return;
    };
    let now = super::now_ms() / 1000;
    let rate = Rate {
        date: rdbkit::output::info::format_utc(now),
        unix_time: now,
        rdbkit: env!("CARGO_PKG_VERSION").to_string(),
        target_kind: target_kind(target, s.target.cluster).to_string(),
        primaries: s.primaries as u64,
        server: format!(
            "{} {}",
            if s.target.valkey { "Valkey" } else { "Redis" },
            s.target.version
        ),
        keys: s.written(),
        keys_restore: s.written_restore,
        keys_commands: s.written_commands,
        payload_bytes: s.bytes_written,
        dump_bytes: s.bytes,
        elapsed_s: secs,
        keys_per_s: s.written() as f64 / secs,
        payload_bytes_per_s: s.bytes_written as f64 / secs,
    };
    let mut records = read(&path).unwrap_or_else(|why| {
        eprintln!(
            "rdbkit: warning: {}: {why}; starting it anew with this import's rate",
            path.display()
        );
        Vec::new()
    });
    records.push(rate);
    let drop = records.len().saturating_sub(KEPT);
    records.drain(..drop);
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            let body = serde_json::to_vec_pretty(&RatesFile { records })?;
            super::summary::write_atomically(&path, &body, "the rates file")
        });
    if let Err(e) = written {
        eprintln!(
            "rdbkit: warning: this import's rate is not recorded: {}: {e:#}",
            path.display()
        );
    }
}

/// What an import would take, at a recorded rate.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Seconds: the longer of `keys / keys_per_s` and `payload_bytes / payload_bytes_per_s`.
    pub seconds: f64,
    /// Keys the plan would write.
    pub keys: u64,
    /// RESP bytes the plan would write.
    pub payload_bytes: u64,
    /// `keys` or `bytes`: which of the two gave `seconds`.
    pub bound_by: &'static str,
    /// The record whose rates were used.
    pub record: Rate,
    /// The file it is in.
    pub file: PathBuf,
}

/// The estimate for an import of `keys` keys and `payload_bytes` bytes into a target of `kind`
/// with `primaries` primaries, from the most relevant record: the latest of the same kind and
/// number of primaries, else the latest of the same kind, else the latest. `None` when no import
/// was recorded (a file that cannot be read is a warning).
pub fn estimate(kind: &str, primaries: u64, keys: u64, payload_bytes: u64) -> Option<Estimate> {
    let file = path()?;
    let records = read(&file)
        .map_err(|why| eprintln!("rdbkit: warning: {}: {why}", file.display()))
        .ok()?;
    let usable = |r: &&Rate| {
        [r.keys_per_s, r.payload_bytes_per_s]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
    };
    let latest =
        |ok: &dyn Fn(&Rate) -> bool| records.iter().rev().filter(usable).find(|r| ok(r)).cloned();
    let record = latest(&|r| r.target_kind == kind && r.primaries == primaries)
        .or_else(|| latest(&|r| r.target_kind == kind))
        .or_else(|| latest(&|_| true))?;
    let by_keys = keys as f64 / record.keys_per_s;
    let by_bytes = payload_bytes as f64 / record.payload_bytes_per_s;
    let (seconds, bound_by) = if by_bytes > by_keys {
        (by_bytes, "bytes")
    } else {
        (by_keys, "keys")
    };
    Some(Estimate {
        seconds,
        keys,
        payload_bytes,
        bound_by,
        record,
        file,
    })
}
