//! `rdbkit import`: replay a dump into a running primary.

use super::summary::{self, ImportReport, KeysReport, TargetReport, TransformReport};
use super::{heading, FieldTtls, FilterArgs, Usage};
use crate::cli::say;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rdbkit::replay::{
    self, ImportConfig, ImportSummary, Mode, Progress, RateLimit, ReplayError, Source, Target,
    TlsOptions,
};
use rdbkit::source::Input;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a control connection to a target (or source) may take to open and to answer.
pub(super) const CONTROL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

mod aof;

/// Write modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// RESTORE where the target can take it, commands otherwise (per key).
    Auto,
    /// RESTORE only.
    Restore,
    /// Plain commands only (module values still use RESTORE).
    Commands,
}

/// Connection options shared by import and verify.
#[derive(Debug, Args)]
#[command(next_help_heading = heading::TARGET)]
pub struct TargetArgs {
    /// Target: redis://[user[:password]@]host:port[/db], rediss://… (TLS),
    /// unix:///path/to/redis.sock[?db=N] (also redis+unix://), or
    /// redis+sentinel://[user[:password]@]host1:26379,host2:26379/master[/db] (also
    /// redis-sentinel://, sentinel://); with --sentinel, redis://[:password@]MASTER[/db] names
    /// the master and the data server's credentials (the password also from REDISCLI_AUTH).
    #[arg(
        long,
        env = "RDBKIT_TARGET",
        hide_env_values = true,
        required_unless_present = "sentinel"
    )]
    pub target: Option<String>,
    /// Sentinels to ask for the primary: host:port entries, or redis://[user:]password@host:port
    /// URLs carrying the sentinel's password (comma or space separated).
    #[arg(long)]
    pub sentinel: Option<String>,
    /// The master name the sentinels monitor (or the host of --target).
    #[arg(long)]
    pub master_name: Option<String>,
    /// Password for the sentinels (not the data server).
    #[arg(long, env = "RDBKIT_SENTINEL_PASSWORD", hide_env_values = true)]
    pub sentinel_password: Option<String>,
    /// ACL user for the data server when using --sentinel.
    #[arg(long)]
    pub user: Option<String>,
    /// CA bundle (PEM) for rediss:// targets.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Do not verify the server certificate (explicit opt-out).
    #[arg(long)]
    pub tls_insecure: bool,
}

impl TargetArgs {
    /// The parsed target, with `REDISCLI_AUTH` as the password when the URL has none. A target
    /// that cannot be parsed is a usage error (exit 2).
    pub fn target(&self) -> Result<Target> {
        let env_pw = std::env::var("REDISCLI_AUTH").ok();
        let usage = |e: replay::ReplayError| anyhow::Error::new(Usage(e.to_string()));
        if let Some(addrs) = &self.sentinel {
            return Target::with_sentinels(
                addrs,
                self.master_name.as_deref(),
                self.target.as_deref(),
                self.user.clone(),
                env_pw,
                self.sentinel_password.clone(),
            )
            .map_err(usage);
        }
        let url = self.target.as_deref().unwrap_or_default();
        if replay::target::is_sentinel_url(url) {
            return Target::parse_sentinel(url, env_pw, self.sentinel_password.clone())
                .map_err(usage);
        }
        let mut t = Target::parse(url, env_pw).map_err(usage)?;
        t.set_tls(TlsOptions {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            insecure: self.tls_insecure,
        });
        Ok(t)
    }
}

/// Arguments of `rdbkit import`. The options are grouped in `--help` by concern (headings in
/// [`super::heading`]), in this order.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Dumps to import (files, `.gz` files, or `-` for stdin); several are decoded in parallel.
    /// A server URL (redis://, rediss://, unix://, redis+sentinel://) stands for a running
    /// server: its snapshot is received as a replica receives it and streamed into the target
    /// (password from the URL or RDBKIT_SOURCE_AUTH).
    #[arg(required = true)]
    pub(super) files: Vec<PathBuf>,
    /// How a server URL is read: sync (as a replica; a source that refuses SYNC/PSYNC is read
    /// by scan instead, with a notice) or scan (SCAN + DUMP: not point-in-time, no --follow).
    #[arg(long, value_enum, default_value = "sync", help_heading = heading::SOURCE)]
    source_mode: super::source_mode::SourceMode,
    /// Do not verify the CRC64 trailers.
    #[arg(long, help_heading = heading::SOURCE)]
    no_checksum: bool,
    /// With an AOF: apply only the commands recorded up to TIMESTAMP (Unix seconds or RFC 3339,
    /// e.g. 2026-12-05T14:51:43Z): they stop at the first `#TS:` annotation later than it
    /// (`aof-timestamp-enabled yes` writes them).
    #[arg(long, value_name = "TIMESTAMP", value_parser = aof::parse_time, help_heading = heading::SOURCE)]
    pub(super) until: Option<i64>,
    #[command(flatten)]
    dups: super::DuplicateArgs,
    #[command(flatten)]
    pub(super) target: TargetArgs,
    /// Overwrite keys that exist on the target.
    #[arg(long, conflicts_with = "skip_existing", help_heading = heading::CONFLICTS)]
    replace: bool,
    /// Keep keys that exist on the target (counted in the summary).
    #[arg(long, help_heading = heading::CONFLICTS)]
    skip_existing: bool,
    /// Empty the target databases that will be written before importing.
    #[arg(long, help_heading = heading::CONFLICTS)]
    flush_target: bool,
    #[command(flatten)]
    filter: FilterArgs,
    /// Source-to-target database mapping, e.g. 0:5,1:0.
    #[arg(long, value_parser = parse_db_map, help_heading = heading::TRANSFORMS)]
    db_map: Option<BTreeMap<u64, u64>>,
    #[command(flatten)]
    transform: super::TransformArgs,
    /// How keys are written.
    #[arg(long, value_enum, default_value = "auto", help_heading = heading::WRITING)]
    mode: ModeArg,
    /// Keys of modules the target lacks are skipped without failing the run.
    #[arg(long, help_heading = heading::WRITING)]
    skip_modules: bool,
    /// Hash field TTLs on a target without them (before Redis 7.4): refuse the hash, or write
    /// it without them (fields already expired left out; counted in the summary).
    #[arg(long, value_enum, default_value = "refuse", help_heading = heading::WRITING)]
    field_ttls: FieldTtls,
    /// RedisJSON documents on a target without a JSON module: write each as a string holding the
    /// document (`SET`) instead of skipping it as a module the target lacks.
    #[arg(long, help_heading = heading::WRITING)]
    json_as_string: bool,
    /// Throttle: keys per second (`5000`, `20k`) or dump bytes per second (`10MB`, `1GB`).
    #[arg(long, value_parser = parse_rate, help_heading = heading::WRITING)]
    rate_limit: Option<RateLimit>,
    /// Parallel connections (one key's commands always share one).
    #[arg(long, default_value_t = 2, help_heading = heading::WRITING)]
    connections: usize,
    /// Most commands in flight per connection.
    #[arg(long, default_value_t = 20_000, help_heading = heading::WRITING)]
    window_commands: usize,
    /// Most bytes in flight per connection.
    #[arg(long, default_value_t = 16 << 20, help_heading = heading::WRITING)]
    window_bytes: usize,
    /// Most MiB of encoded commands held at once, all connections together (queued, in flight,
    /// kept for a rewrite after failover); a single larger value still goes, alone.
    #[arg(long, default_value_t = replay::DEFAULT_MEMORY_BUDGET >> 20, help_heading = heading::WRITING)]
    buffer_mb: usize,
    /// Seconds without a reply before a connection is considered dead.
    #[arg(long, default_value_t = 30, help_heading = heading::WRITING)]
    timeout: u64,
    /// Reconnect attempts in a row before giving up.
    #[arg(long, default_value_t = 10, help_heading = heading::WRITING)]
    retries: u32,
    /// With Sentinel: acknowledged batches per connection written again after a failover.
    #[arg(long, default_value_t = 256, help_heading = heading::WRITING)]
    rewrite_batches: usize,
    /// After each batch, WAIT until this many replicas have it (acknowledged = replicated).
    #[arg(long, help_heading = heading::WRITING)]
    wait_replicas: Option<u32>,
    /// Timeout of each WAIT, in milliseconds.
    #[arg(long, default_value_t = 1000, help_heading = heading::WRITING)]
    wait_timeout_ms: u64,
    /// Record progress here and resume from it on a rerun.
    #[arg(long, help_heading = heading::RESUME)]
    checkpoint: Option<PathBuf>,
    /// Milliseconds between checkpoint writes.
    #[arg(long, default_value_t = 2000, help_heading = heading::RESUME)]
    checkpoint_interval_ms: u64,
    #[command(flatten)]
    pub(super) follow: super::live::FollowArgs,
    /// Where the whole lists of failed, not-written and in-doubt keys go when there are any (the
    /// summary shows the first few of each); default: a new file in the temporary directory.
    #[arg(long, value_name = "PATH", help_heading = heading::OUTPUT)]
    keys_file: Option<PathBuf>,
    /// No progress output.
    #[arg(short, long, help_heading = heading::OUTPUT)]
    quiet: bool,
    /// Write nothing: read the target and the dumps and print what the import would do (what
    /// `rdbkit plan` prints); exit 3 when it would not succeed.
    #[arg(long, help_heading = heading::OUTPUT)]
    pub dry_run: bool,
    /// Also write the summary (keys written, skipped by reason, failed and in doubt with their
    /// names, commands applied, transforms, timings, target, exit status) to FILE as one JSON
    /// document, written whole (temporary file, then rename) also when the import fails.
    #[arg(long, value_name = "FILE", help_heading = heading::OUTPUT)]
    summary_json: Option<PathBuf>,
    /// Serve the import's counters in the Prometheus text format at http://ADDR/metrics during
    /// the run (e.g. 127.0.0.1:9187): keys and bytes written, skipped, failed, in doubt,
    /// redirections, reconnects, failovers, commands applied and the follow's lag.
    #[arg(long, value_name = "ADDR", help_heading = heading::OUTPUT)]
    metrics: Option<String>,
    /// At the end (success or failure), write the final values of those counters to PATH in the
    /// Prometheus text format, whole (temporary file, then rename): for node_exporter's textfile
    /// collector, as a Kubernetes Job may end before Prometheus scrapes it.
    #[arg(long, value_name = "PATH", help_heading = heading::OUTPUT)]
    metrics_file: Option<PathBuf>,
    /// The dry run's output (`plan`, `import --dry-run`): text or json.
    #[arg(long, value_enum, default_value = "text", help_heading = heading::OUTPUT)]
    pub format: super::DryRunFormat,
}

fn parse_rate(s: &str) -> Result<RateLimit, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult, bytes) = if let Some(n) = lower.strip_suffix("gb") {
        (n, 1e9, true)
    } else if let Some(n) = lower.strip_suffix("mb") {
        (n, 1e6, true)
    } else if let Some(n) = lower.strip_suffix("kb") {
        (n, 1e3, true)
    } else if let Some(n) = lower.strip_suffix('k') {
        (n, 1e3, false)
    } else if let Some(n) = lower.strip_suffix('m') {
        (n, 1e6, false)
    } else {
        (lower.as_str(), 1.0, false)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad rate {t:?}: use keys/s (5000, 20k) or bytes/s (10MB)"))?;
    if v <= 0.0 {
        return Err("the rate must be positive".into());
    }
    Ok(if bytes {
        RateLimit::Bytes(v * mult)
    } else {
        RateLimit::Keys(v * mult)
    })
}

pub fn parse_db_map(s: &str) -> Result<BTreeMap<u64, u64>, String> {
    s.split(',')
        .map(|pair| {
            let (a, b) = pair
                .split_once(':')
                .ok_or_else(|| format!("{pair:?} is not SRC:DST"))?;
            Ok((
                a.trim().parse().map_err(|_| format!("bad db {a:?}"))?,
                b.trim().parse().map_err(|_| format!("bad db {b:?}"))?,
            ))
        })
        .collect()
}

/// Progress display: a bar on a terminal, a line every few seconds otherwise.
pub fn progress_callback(quiet: bool) -> Box<dyn Fn(&Progress) + Send> {
    if quiet {
        return Box::new(|_| {});
    }
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg} (ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Box::new(move |p: &Progress| {
            if let Some(t) = p.total_bytes {
                bar.set_length(t);
            }
            bar.set_position(p.bytes_read);
            let rate = p.written as f64 / p.elapsed.as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{} keys written, {:.0} keys/s, {} skipped, {} failed",
                p.written, rate, p.skipped, p.failed
            ));
        })
    } else {
        let last = Mutex::new(Instant::now());
        Box::new(move |p: &Progress| {
            let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
            if l.elapsed() >= Duration::from_secs(5) {
                *l = Instant::now();
                let rate = p.written as f64 / p.elapsed.as_secs_f64().max(1e-3);
                eprintln!(
                    "progress: {} bytes read{}, {} keys written ({rate:.0} keys/s), {} skipped, {} failed",
                    p.bytes_read,
                    p.total_bytes.map(|t| format!(" of {t}")).unwrap_or_default(),
                    p.written,
                    p.skipped,
                    p.failed
                );
            }
        })
    }
}

/// What to do after the import stopped for `cause`: advice that fits it, or none when the
/// message already says it.
fn advice(cause: &ReplayError, checkpoint: Option<&Path>) -> Option<String> {
    let resume = match checkpoint {
        Some(p) => format!(
            "rerun the same command (--checkpoint {}) to resume after the acknowledged keys",
            p.display()
        ),
        None => "rerun with --replace to write every key again".to_string(),
    };
    let fatal = |prefix: &str| matches!(cause, ReplayError::Fatal { message, .. } if message.starts_with(prefix));
    Some(match cause {
        ReplayError::Dump { .. } => {
            "the keys before that offset were written (see the summary above); a rerun cannot mend a damaged file: import an intact copy of the dump".into()
        }
        _ if fatal("OOM") => format!(
            "the target is out of memory: free memory on it or raise its maxmemory (CONFIG SET maxmemory …), then {resume}"
        ),
        _ if fatal("READONLY") => format!(
            "the target is a replica now: point --target at the primary (or use --sentinel), then {resume}"
        ),
        _ if fatal("LOADING") => {
            format!("the target is still loading its data: wait until it is done, then {resume}")
        }
        _ if fatal("MISCONF") => format!(
            "the target cannot persist its data (MISCONF): fix its disk or save settings, then {resume}"
        ),
        ReplayError::Conflict(_)
        | ReplayError::Config(_)
        | ReplayError::Auth(_)
        | ReplayError::Checkpoint(_) => return None,
        _ => resume,
    })
}

/// `rdbkit-import-<unix seconds>-<pid>.keys.tsv` in the temporary directory.
fn default_keys_file() -> PathBuf {
    std::env::temp_dir().join(format!(
        "rdbkit-import-{}-{}.keys.tsv",
        super::now_ms() / 1000,
        std::process::id()
    ))
}

/// How `--follow` applies the source's writes, from the import's options.
fn follow_config(a: &ImportArgs, target: &Target, replid: &str) -> replay::follow::FollowConfig {
    replay::follow::FollowConfig {
        db_map: a.db_map.clone().unwrap_or_default(),
        dbs: a.filter.dbs.clone(),
        keys: a.filter.to_filter().keys,
        target_db: target.db,
        reply_timeout: Duration::from_secs(a.timeout.max(1)),
        window_commands: a.window_commands.max(1),
        until: Default::default(),
        abort: Default::default(),
        marker: a
            .checkpoint
            .as_ref()
            .map(|_| replay::follow::MARKER_KEY.to_string()),
        replid: replid.to_string(),
        start_offset: 0,
        replace_foreign: None,
        renames: a
            .transform
            .to_transform()
            .map(|t| t.renames)
            .unwrap_or_default(),
    }
}

/// `--follow` writes whatever databases the source's later commands name, not only the
/// snapshot's (which the import checks): every database the follow may write (those of `--db`,
/// mapped, or all) is emptied under `--flush-target`, and must be empty otherwise.
fn follow_databases(a: &ImportArgs, target: &Target) -> Result<()> {
    let may_write = |db: u64| {
        a.filter.dbs.is_empty()
            || a.filter.dbs.iter().any(|d| {
                let to = match (&a.db_map, target.db) {
                    (Some(m), _) => m.get(d).copied().unwrap_or(*d),
                    (None, Some(t)) => t,
                    (None, None) => *d,
                };
                to == db
            })
    };
    let mut held = Vec::new();
    for (node, mut con) in target.primaries(CONTROL_TIMEOUT)? {
        for (db, keys) in replay::target::keyspace(&mut con)? {
            if !may_write(db) {
                continue;
            }
            if a.flush_target {
                redis::cmd("SELECT").arg(db).query::<()>(&mut con)?;
                redis::cmd("FLUSHDB").query::<()>(&mut con)?;
            } else {
                let n = rdbkit::text::count(keys, "key");
                held.push(format!("{} db{db} ({n})", node.display()));
            }
        }
    }
    if !held.is_empty() {
        bail!(replay::ReplayError::Conflict(format!(
            "refusing to follow into a target that holds keys: {}; the source's commands may write any database and would apply onto them; use --replace (the source's keys replace the target's) or --flush-target (those databases emptied first), or --db to choose the databases (nothing was written)",
            held.join(", ")
        )));
    }
    Ok(())
}

/// `--follow --replace`: the keys the target holds before the import, by `SCAN` of every
/// database of every primary, as hashes (8 bytes a key; see `replay::keyset`).
fn held_keys(target: &Target) -> Result<std::collections::HashSet<u64>> {
    let mut held = std::collections::HashSet::new();
    for (node, mut con) in target.primaries(CONTROL_TIMEOUT)? {
        for (db, _) in replay::target::keyspace(&mut con)? {
            redis::cmd("SELECT").arg(db).query::<()>(&mut con)?;
            replay::target::scan_keys(&mut con, |keys| {
                held.extend(keys.iter().map(|k| replay::keyset::key_hash(db, k)))
            })
            .with_context(|| format!("SCAN of {} db {db}", node.display()))?;
        }
    }
    Ok(held)
}

/// The import's configuration from its options; `files` (the dumps that are files) are checked for
/// duplicate keys first.
pub(super) fn import_config(a: &ImportArgs, files: &[&Path]) -> Result<ImportConfig> {
    // duplicate keys are looked for in every file before anything is written
    let mut filter = a.filter.to_filter();
    let mut selection: Option<rdbkit::dups::DuplicateSelection> = None;
    for f in files {
        if f.as_os_str() == "-" {
            eprintln!(
                "note: stdin is read once, so its duplicate keys are not checked; give the dump \
                 as a file to have them checked"
            );
        }
        if let Some(sel) = super::check_duplicates(f, a.dups.duplicates)? {
            selection
                .get_or_insert_with(Default::default)
                .extend((*sel).clone());
        }
    }
    filter.duplicates = selection.map(std::sync::Arc::new);
    let transform = a.transform.to_transform()?;
    for f in files {
        super::check_renames(f, &filter, &transform)?;
    }
    let other_input_copies = if files.len() > 1
        && files.len() == a.files.len()
        && !files.iter().any(|f| f.as_os_str() == "-")
    {
        across_inputs(a, files, &filter, &transform)?
    } else {
        None
    };
    let cfg = ImportConfig {
        transform,
        transformed: Default::default(),
        filter,
        db_map: a.db_map.clone().unwrap_or_default(),
        mode: match a.mode {
            ModeArg::Auto => Mode::Auto,
            ModeArg::Restore => Mode::Restore,
            ModeArg::Commands => Mode::Commands,
        },
        replace: a.replace,
        skip_existing: a.skip_existing,
        flush_target: a.flush_target,
        skip_modules: a.skip_modules,
        drop_field_ttls: a.field_ttls == FieldTtls::Drop,
        json_as_string: a.json_as_string,
        connections: a.connections.max(1),
        conn: replay::ConnConfig {
            window_commands: a.window_commands.max(1),
            window_bytes: a.window_bytes.max(1),
            reply_timeout: Duration::from_secs(a.timeout.max(1)),
            max_attempts: a.retries,
            rewrite_batches: a.rewrite_batches,
            wait_replicas: a
                .wait_replicas
                .map(|n| (n, Duration::from_millis(a.wait_timeout_ms))),
        },
        // with --follow the checkpoint holds the replication offset, not dump offsets
        checkpoint: a.checkpoint.clone().filter(|_| !a.follow.follow),
        checkpoint_interval: Duration::from_millis(a.checkpoint_interval_ms.max(10)),
        verify_checksum: !a.no_checksum,
        rate_limit: a.rate_limit,
        memory_budget: a.buffer_mb.max(1) << 20,
        keys_file: Some(a.keys_file.clone().unwrap_or_else(default_keys_file)),
        record_keys: None,
        stats: super::metrics::counters().map(|c| c.stats.clone()),
        other_input_copies,
    };
    Ok(cfg)
}

/// `(input index, record offset)` of the copies left out of a multi-file import.
type OtherCopies = std::sync::Arc<std::collections::HashSet<(usize, u64)>>;

/// "1 key is" / "3 keys are".
fn keys_are(n: usize) -> String {
    if n == 1 {
        "1 key is".into()
    } else {
        format!("{n} keys are")
    }
}

/// Keys held by more than one of the dumps `files` (under the names and databases they are
/// written to): refused before anything is written, naming the key and the files, unless
/// `--replace` (the copy of the last file on the command line is written) or `--skip-existing`
/// (the first file's) says which copy wins; then the other copies, to leave out.
fn across_inputs(
    a: &ImportArgs,
    files: &[&Path],
    filter: &rdbkit::filter::Filter,
    t: &rdbkit::transform::Transform,
) -> Result<Option<OtherCopies>> {
    let db_map = a.db_map.clone().unwrap_or_default();
    let mut opens: Vec<_> = files.iter().map(|f| move || Input::open(f)).collect();
    let found = rdbkit::dups::scan_across(&mut opens, |e| {
        if !filter.selects(e) {
            return None;
        }
        let n = t.name(&e.key);
        filter
            .in_slots(&n)
            .then(|| (db_map.get(&e.db).copied().unwrap_or(e.db), n))
    })?;
    if found.is_empty() {
        return Ok(None);
    }
    let esc = rdbkit::text::escape_bytes;
    let name = |i: usize| files[i].display().to_string();
    if !(a.replace || a.skip_existing) {
        let list: Vec<String> = found
            .iter()
            .take(super::DUPLICATES_LISTED)
            .map(|d| {
                let at: Vec<String> = d
                    .copies
                    .iter()
                    .map(|(f, o)| format!("{} (offset 0x{o:x})", name(*f)))
                    .collect();
                format!("db {} key {} in {}", d.db, esc(&d.key), at.join(" and "))
            })
            .collect();
        bail!(super::Collision(format!(
            "{} in more than one input (nothing was written):\n  {}{}\nsay which copy to write: --replace (the last file's on the command line) or --skip-existing (the first file's)",
            keys_are(found.len()),
            list.join("\n  "),
            if found.len() > super::DUPLICATES_LISTED { "\n  …" } else { "" }
        )));
    }
    let mut drop = std::collections::HashSet::new();
    for d in &found {
        let files_of = d.copies.iter().map(|c| c.0);
        let keep = if a.replace {
            files_of.max()
        } else {
            files_of.min()
        };
        drop.extend(d.copies.iter().filter(|c| Some(c.0) != keep).copied());
    }
    eprintln!(
        "{} in more than one input: writing the copy of the {} file ({} left out)",
        keys_are(found.len()),
        if a.replace {
            "last (--replace)"
        } else {
            "first (--skip-existing)"
        },
        drop.len()
    );
    Ok(Some(std::sync::Arc::new(drop)))
}

/// Prints the keys' summary, and keeps it in `report`.
fn report_keys(s: &ImportSummary, target: &Target, report: &mut ImportReport) {
    let t = TargetReport::new(target, s);
    let keys = KeysReport::new(s);
    keys.print(&t);
    report.target = Some(t);
    report.keys = Some(keys);
}

/// The outcome of a dump import: its summary printed (and kept in `report`), with advice when it
/// stopped.
fn finish(
    result: Result<ImportSummary, ReplayError>,
    shown: &Target,
    checkpoint: Option<&Path>,
    report: &mut ImportReport,
) -> Result<ImportSummary> {
    let summary = match result {
        Ok(s) => s,
        Err(ReplayError::Interrupted { cause, summary }) => {
            report_keys(&summary, shown, report);
            match advice(&cause, checkpoint) {
                Some(advice) => bail!("the import stopped: {cause}; {advice}"),
                None => bail!("the import stopped: {cause}"),
            }
        }
        // found before anything was written (the scan for the target databases)
        Err(e @ ReplayError::Dump { .. }) => {
            bail!("{e}; nothing was written: a rerun cannot mend a damaged file, import an intact copy of the dump")
        }
        Err(e) => return Err(e.into()),
    };
    report_keys(&summary, shown, report);
    // the keys went to the end: this machine's rate, for `plan`'s estimate
    super::rates::record(&summary, shown);
    if !summary.is_success() {
        bail!("not every key was written (see the summary above)");
    }
    Ok(summary)
}

/// `--slots` divides a dump's keys; commands (an AOF's, a follow's) are applied in order and
/// not divided.
fn refuse_slots(a: &ImportArgs, what: &str) -> Result<()> {
    if a.filter.slots.is_empty() {
        return Ok(());
    }
    bail!(Usage(format!(
        "--slots divides a dump's keys between processes, not {what}: they are applied in order by one process"
    )))
}

/// `--slots` with options that reach beyond the process's part: refused (plan and import).
pub(super) fn check_slots(a: &ImportArgs) -> Result<()> {
    if !a.filter.slots.is_empty() && a.flush_target {
        bail!(Usage(
            "--flush-target empties whole databases, and with --slots the other parts' keys are there too: empty the target once before the parts start, or use --replace".into()
        ));
    }
    Ok(())
}

/// Runs `import`; with `--summary-json`, writes its summary there whatever the outcome.
pub fn run(a: &ImportArgs) -> Result<()> {
    let started = Instant::now();
    if a.summary_json.as_deref().is_some_and(summary::is_stdout) {
        super::text_to_stderr();
    }
    let mut report = ImportReport {
        sources: a
            .files
            .iter()
            .map(|f| match super::live::is_url(f) {
                true => super::live::source_target(&f.to_string_lossy())
                    .map(|t| t.display())
                    .unwrap_or_else(|_| "(a server URL that does not parse)".into()),
                false => f.display().to_string(),
            })
            .collect(),
        ..ImportReport::default()
    };
    let mut result = run_import(a, &mut report);
    if let Some(path) = &a.metrics_file {
        if let Err(w) = super::metrics::write_file(path) {
            match &result {
                Ok(()) => result = Err(w),
                Err(_) => eprintln!("rdbkit: {w:#}"),
            }
        }
    }
    if let Some(path) = &a.summary_json {
        report.elapsed_s = started.elapsed().as_secs_f64();
        if let Err(e) = &result {
            report.status = "failed";
            report.exit_code = super::exit_code(e);
            report.error = Some(format!("{e:#}"));
        }
        if let Err(w) = summary::write_json(path, &report) {
            match &result {
                Ok(()) => return Err(w),
                Err(_) => eprintln!("rdbkit: {w:#}"),
            }
        }
    }
    result
}

/// The import itself; what its summary says goes into `report` as it is printed.
fn run_import(a: &ImportArgs, report: &mut ImportReport) -> Result<()> {
    if a.metrics.is_some() || a.metrics_file.is_some() {
        super::metrics::install(a.metrics.as_deref())?;
    }
    check_slots(a)?;
    if a.format != super::DryRunFormat::Text {
        bail!(Usage(
            "--format is the output of --dry-run (and of plan)".into()
        ));
    }
    let target = a.target.target()?;
    for f in a.files.iter().filter(|f| !super::live::is_url(f)) {
        if let Some(found) = rdbkit::source::aof::detect(f)? {
            if a.files.len() != 1 {
                bail!(Usage(
                    "an AOF is imported alone: give it (its directory, manifest or file) as the only input".into()
                ));
            }
            a.transform.refuse_ttl_for("an AOF's commands")?;
            refuse_slots(a, "an AOF's commands")?;
            return aof::run(a, &found, target, report);
        }
    }
    if a.until.is_some() {
        bail!(Usage(
            "--until cuts an AOF at a time: give an AOF (its directory, manifest or file) as the only input".into()
        ));
    }
    if a.files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        bail!("stdin (-) can be given only once");
    }
    if a.follow.follow {
        let urls = a.files.iter().filter(|f| super::live::is_url(f)).count();
        if urls != 1 || a.files.len() != 1 {
            bail!(Usage(
                "--follow needs exactly one source, a server URL (redis://…): it applies that server's writes after its snapshot".into()
            ));
        }
        a.transform
            .refuse_ttl_for("the source's writes after its snapshot (--follow)")?;
        refuse_slots(a, "the source's writes after its snapshot (--follow)")?;
        if a.skip_existing {
            bail!(Usage(
                "--skip-existing cannot be combined with --follow: the source's later commands on a kept key would change it (or be left out), and neither leaves the target equal to the source; use --replace (the source's keys replace the target's, also for keys first written after the snapshot) or --flush-target".into()
            ));
        }
        if !a.filter.types.is_empty() {
            bail!(Usage(
                "--follow applies commands, whose value types rdbkit cannot tell without asking the target: use --db, --key and --db-map, or import without --follow".into()
            ));
        }
    }
    super::source_mode::check_follow(a.source_mode, a.follow.follow)?;
    let mut scans = Vec::new();
    let mut live = Vec::new();
    let mut names = Vec::new();
    let mut sources = Vec::new();
    for f in &a.files {
        if super::live::is_url(f) {
            if a.checkpoint.is_some() && !a.follow.follow {
                bail!(Usage(
                    "--checkpoint cannot resume the import of a live source without --follow: a rerun receives a new snapshot; import a saved dump (rdbkit dump) to be able to resume".into()
                ));
            }
            let given = super::live::source_target(&f.to_string_lossy())?;
            // a cluster node's snapshot holds its own slots only: every primary is read
            let shards = match given.cluster_primaries(CONTROL_TIMEOUT)? {
                Some(p) if p.len() > 1 => {
                    if a.follow.follow {
                        bail!(Usage(format!(
                            "{} is one node of a cluster of {} primaries: --follow follows one server's writes, and a cluster's are split over its primaries; import the cluster without --follow (every primary's snapshot is read), or follow each primary into its own target",
                            given.display(),
                            p.len()
                        )));
                    }
                    eprintln!(
                        "{}: a cluster node; reading the snapshot of each of its {} primaries",
                        given.display(),
                        p.len()
                    );
                    p
                }
                _ => vec![given],
            };
            for src in shards {
                let name = src.display();
                let resume = match &a.checkpoint {
                    Some(p) => super::live::resume_point(p, &target)?,
                    None => None,
                };
                let dbs = &a.filter.dbs;
                let from = super::live::sync_from(&src, a.follow.from_replica)?;
                let opened = super::source_mode::open(
                    a.source_mode,
                    &from,
                    &name,
                    dbs,
                    a.follow.follow,
                    || super::live::connect(&from, false, resume.clone()),
                )?;
                let replica = match opened {
                    Ok(replica) => replica,
                    Err(scan) => {
                        scans.push((name.clone(), scan.stats.clone()));
                        sources.push(Source {
                            name: name.clone(),
                            input: scan.input(),
                        });
                        names.push(name);
                        continue;
                    }
                };
                let kind = replica.kind().clone();
                if let rdbkit::source::replica::SyncKind::Continue { replid, offset } = &kind {
                    eprintln!("{name}: continuing {replid} after offset {offset} (partial resync: no snapshot needed)");
                    let cfg_follow = follow_config(a, &target, replid);
                    return super::live::follow(
                        &a.follow,
                        replica,
                        &src,
                        target,
                        &cfg_follow,
                        a.checkpoint.as_deref(),
                        &mut report.commands,
                    );
                }
                if let (Some((id, off)), false) = (&resume, a.replace || a.flush_target) {
                    bail!(
                        "{name} can no longer continue {id} after offset {off} (its backlog has moved on, or it was restarted or failed over): a new full snapshot is needed; rerun with --replace or --flush-target to take it"
                    );
                }
                eprintln!(
                    "{name}: snapshot at replication offset {} of {}",
                    kind.offset(),
                    kind.replid()
                );
                sources.push(Source {
                    name: name.clone(),
                    input: Input::Stream(Box::new(replica.snapshot())),
                });
                names.push(name);
                live.push(replica);
            }
        } else {
            sources.push(Source {
                name: f.display().to_string(),
                input: Input::open(f).with_context(|| format!("opening {}", f.display()))?,
            });
            names.push(f.display().to_string());
        }
    }
    let files: Vec<&Path> = a
        .files
        .iter()
        .filter(|f| !super::live::is_url(f))
        .map(|f| f.as_path())
        .collect();
    let mut cfg = import_config(a, &files)?;
    if a.follow.follow && !a.replace {
        follow_databases(a, &target)?;
    }
    // --follow --replace: the snapshot's keys, so that the stream replaces the target's others
    let recorder = (a.follow.follow && a.replace)
        .then(|| std::sync::Arc::new(replay::keyset::KeyRecorder::default()));
    let held = match recorder {
        Some(_) => Some(held_keys(&target)?),
        None => None,
    };
    cfg.record_keys = recorder.clone();
    eprintln!("importing {} into {}", names.join(", "), target.display());
    let shown = target.clone();
    let follow_target = target.clone();
    let transformed = cfg.transformed.clone();
    let result = replay::import(sources, target, cfg, progress_callback(a.quiet));
    for (name, stats) in &scans {
        super::source_mode::print_stats(name, stats);
    }
    report.transforms = TransformReport::from_counts(&transformed);
    for line in &report.transforms.lines {
        say!("transformed: {line}");
    }
    finish(result, &shown, a.checkpoint.as_deref(), report)?;
    if a.follow.follow {
        let replica = live
            .pop()
            .expect("--follow is checked to have one live source");
        let source = super::live::source_target(&a.files[0].to_string_lossy())?;
        let mut cfg_follow = follow_config(a, &follow_target, replica.kind().replid());
        cfg_follow.replace_foreign = recorder.zip(held).map(|(r, held)| {
            let ours = replay::keyset::Ours::foreign(r.finish(), held);
            std::sync::Arc::new(std::sync::Mutex::new(ours))
        });
        if let Some(p) = &a.checkpoint {
            super::live::save_checkpoint(p, replica.kind().replid(), replica.kind().offset())?;
        }
        return super::live::follow(
            &a.follow,
            replica,
            &source,
            follow_target,
            &cfg_follow,
            a.checkpoint.as_deref(),
            &mut report.commands,
        );
    }
    Ok(())
}
