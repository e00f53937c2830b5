//! `--source-mode`: how a live source (a server URL where a dump file would stand) is read. `sync`
//! takes its snapshot over the replication protocol (`src/cli/live.rs`); `scan` reads it by `SCAN`
//! + `DUMP` (`rdbkit::source::scan`), for servers that refuse `SYNC`/`PSYNC`.

use super::Usage;
use crate::cli::say;
use anyhow::{bail, Result};
use clap::ValueEnum;
use rdbkit::replay::Target;
use rdbkit::source::replica::ReplicaError;
use rdbkit::source::scan::{scan_stream, ScanOptions, ScanStatsHandle, ScanStream};
use rdbkit::source::Input;

/// How a live source is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum SourceMode {
    /// As a replica (`PSYNC`); a source that refuses it is read by scan instead, with a notice.
    #[default]
    Sync,
    /// `SCAN` + pipelined `DUMP`/`PEXPIRETIME`: no `SYNC` needed, not point-in-time, no --follow.
    Scan,
}

/// A live source read by scan: its stream and a handle on its counts.
pub struct ScanSource {
    /// The synthesized dump.
    pub stream: ScanStream,
    /// Keys read, vanished, returned twice.
    pub stats: ScanStatsHandle,
}

impl ScanSource {
    /// The stream as an importer's input.
    pub fn input(self) -> Input {
        Input::Stream(Box::new(self.stream))
    }
}

/// Usage error for `--source-mode scan --follow`.
pub fn check_follow(mode: SourceMode, follow: bool) -> Result<()> {
    if mode == SourceMode::Scan && follow {
        bail!(Usage(
            "--source-mode scan cannot --follow: following needs the source's replication stream, which a scan does not read; use --source-mode sync, or import without --follow".into()
        ));
    }
    Ok(())
}

/// Starts reading `source` (its name, password masked, is `name`) by scan, only the databases in
/// `dbs` when it is not empty.
pub fn scan_input(source: &Target, name: &str, dbs: &[u64]) -> Result<ScanSource> {
    let client = source
        .pinned()
        .and_then(|t| t.client())
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let opts = ScanOptions {
        dbs: (!dbs.is_empty()).then(|| dbs.to_vec()),
        ..ScanOptions::default()
    };
    let stream = scan_stream(client, opts).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let server = stream.server();
    let keys: u64 = server.databases.iter().map(|d| d.1).sum();
    eprintln!(
        "{name}: reading {} ({keys} keys in {} databases) by SCAN + DUMP: not a point-in-time \
         snapshot, keys written during the scan may or may not be seen",
        if server.valkey {
            format!("Valkey {}", server.version)
        } else {
            format!("Redis {}", server.version)
        },
        server.databases.len()
    );
    Ok(ScanSource {
        stats: stream.stats_handle(),
        stream,
    })
}

/// `Some(reply)` when `err` is the source refusing to serve a replica (SYNC/PSYNC renamed away,
/// denied by an ACL, a managed service): a case for scan mode.
pub fn sync_refused(err: &anyhow::Error) -> Option<String> {
    match err.downcast_ref::<ReplicaError>()? {
        ReplicaError::Refused { reply, .. } => Some(reply.clone()),
        _ => None,
    }
}

/// Reads `source` in `mode`: `connect` (the replication client) unless the mode is scan or the
/// source refuses replicas; then by scan, after a notice. `Err` for `--follow` without a
/// replication stream.
pub fn open<R>(
    mode: SourceMode,
    source: &Target,
    name: &str,
    dbs: &[u64],
    follow: bool,
    connect: impl FnOnce() -> Result<R>,
) -> Result<Result<R, ScanSource>> {
    if mode == SourceMode::Scan {
        return Ok(Err(scan_input(source, name, dbs)?));
    }
    match connect() {
        Ok(r) => Ok(Ok(r)),
        Err(e) => match sync_refused(&e) {
            Some(reply) if follow => bail!(
                "{name} refuses to serve a replica ({reply}), and --follow needs its replication stream: without --follow the import reads it by SCAN + DUMP (--source-mode scan)"
            ),
            Some(reply) => {
                eprintln!(
                    "notice: {name} refuses to serve a replica ({reply}): reading it by SCAN + DUMP instead (--source-mode scan)"
                );
                Ok(Err(scan_input(source, name, dbs)?))
            }
            None => Err(e),
        },
    }
}

/// The summary line of a scan.
pub fn print_stats(name: &str, stats: &ScanStatsHandle) {
    let s = stats.get();
    let mut line = format!("{name}: {} keys read by scan", s.keys);
    if s.vanished > 0 {
        line.push_str(&format!(
            ", {} gone between SCAN and DUMP (deleted or expired meanwhile: not written)",
            s.vanished
        ));
    }
    if s.duplicates > 0 {
        line.push_str(&format!(
            ", {} returned twice by SCAN (written once)",
            s.duplicates
        ));
    }
    if s.reconnects > 0 {
        line.push_str(&format!(", {} reconnections", s.reconnects));
    }
    say!("{line}");
}
