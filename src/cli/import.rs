//! `rdbkit import`: replay a dump into a running primary.

use super::{FieldTtls, FilterArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rdbkit::replay::{
    self, ImportConfig, Mode, Progress, RateLimit, Source, Summary, Target, TlsOptions,
};
use rdbkit::source::Input;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
pub struct TargetArgs {
    /// Target: redis://[user[:password]@]host:port[/db], rediss://…, or
    /// redis+sentinel://[user[:password]@]host1:26379,host2:26379/master[/db]
    /// (the data server's password also from REDISCLI_AUTH).
    #[arg(
        long,
        env = "RDBKIT_TARGET",
        hide_env_values = true,
        required_unless_present = "sentinel"
    )]
    pub target: Option<String>,
    /// Sentinels (host:port,host:port) to ask for the primary, instead of --target.
    #[arg(long, requires = "master_name", conflicts_with = "target")]
    pub sentinel: Option<String>,
    /// The master name the sentinels monitor.
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
    /// The parsed target, with `REDISCLI_AUTH` as the password when the URL has none.
    pub fn target(&self) -> Result<Target> {
        let env_pw = std::env::var("REDISCLI_AUTH").ok();
        if let Some(addrs) = &self.sentinel {
            let name = self.master_name.as_deref().unwrap_or_default();
            let mut url = String::from("redis+sentinel://");
            if let Some(u) = &self.user {
                url.push_str(u);
                url.push('@');
            }
            url.push_str(&format!("{addrs}/{name}"));
            return Ok(Target::parse_sentinel(
                &url,
                env_pw,
                self.sentinel_password.clone(),
            )?);
        }
        let url = self.target.as_deref().unwrap_or_default();
        if url.starts_with("redis+sentinel://") {
            return Ok(Target::parse_sentinel(
                url,
                env_pw,
                self.sentinel_password.clone(),
            )?);
        }
        let mut t = Target::parse(url, env_pw)?;
        t.set_tls(TlsOptions {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            insecure: self.tls_insecure,
        });
        Ok(t)
    }
}

/// Arguments of `rdbkit import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Dumps to import (files, `.gz` files, or `-` for stdin); several are decoded in parallel.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Do not verify the CRC64 trailers.
    #[arg(long)]
    no_checksum: bool,
    /// Throttle: keys per second (`5000`, `20k`) or dump bytes per second (`10MB`, `1GB`).
    #[arg(long, value_parser = parse_rate)]
    rate_limit: Option<RateLimit>,
    #[command(flatten)]
    target: TargetArgs,
    /// How keys are written.
    #[arg(long, value_enum, default_value = "auto")]
    mode: ModeArg,
    /// Overwrite keys that exist on the target.
    #[arg(long, conflicts_with = "skip_existing")]
    replace: bool,
    /// Keep keys that exist on the target (counted in the summary).
    #[arg(long)]
    skip_existing: bool,
    /// Empty the target databases that will be written before importing.
    #[arg(long)]
    flush_target: bool,
    /// Keys of modules the target lacks are skipped without failing the run.
    #[arg(long)]
    skip_modules: bool,
    /// Hash field TTLs on a target without them (before Redis 7.4): refuse the hash, or write
    /// it without them (fields already expired left out; counted in the summary).
    #[arg(long, value_enum, default_value = "refuse")]
    field_ttls: FieldTtls,
    /// Source-to-target database mapping, e.g. 0:5,1:0.
    #[arg(long, value_parser = parse_db_map)]
    db_map: Option<BTreeMap<u64, u64>>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Parallel connections (one key's commands always share one).
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Most commands in flight per connection.
    #[arg(long, default_value_t = 20_000)]
    window_commands: usize,
    /// Most bytes in flight per connection.
    #[arg(long, default_value_t = 16 << 20)]
    window_bytes: usize,
    /// Most MiB of encoded commands held at once, all connections together (queued, in flight,
    /// kept for a rewrite after failover); a single larger value still goes, alone.
    #[arg(long, default_value_t = replay::DEFAULT_MEMORY_BUDGET >> 20)]
    buffer_mb: usize,
    /// Seconds without a reply before a connection is considered dead.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Reconnect attempts in a row before giving up.
    #[arg(long, default_value_t = 10)]
    retries: u32,
    /// Record progress here and resume from it on a rerun.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// With Sentinel: acknowledged batches per connection written again after a failover.
    #[arg(long, default_value_t = 256)]
    rewrite_batches: usize,
    /// After each batch, WAIT until this many replicas have it (acknowledged = replicated).
    #[arg(long)]
    wait_replicas: Option<u32>,
    /// Timeout of each WAIT, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    wait_timeout_ms: u64,
    /// Milliseconds between checkpoint writes.
    #[arg(long, default_value_t = 2000)]
    checkpoint_interval_ms: u64,
    /// No progress output.
    #[arg(short, long)]
    quiet: bool,
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

/// Prints the final summary.
pub fn print_summary(s: &Summary) {
    let secs = s.elapsed.as_secs_f64();
    println!(
        "target: {} {} (RDB {}){}",
        if s.target.valkey { "Valkey" } else { "Redis" },
        s.target.version,
        s.target.rdb_version,
        if s.target.enterprise {
            ", Enterprise"
        } else {
            ""
        }
    );
    println!(
        "written: {} keys ({} by RESTORE, {} by commands) in {secs:.2}s, {:.0} keys/s, {:.1} MB/s of dump",
        s.written(),
        s.written_restore,
        s.written_commands,
        s.written() as f64 / secs.max(1e-9),
        s.bytes as f64 / 1e6 / secs.max(1e-9)
    );
    for (why, n) in &s.skipped {
        println!("skipped: {n} ({why})");
    }
    if s.functions + s.scripts > 0 {
        println!(
            "functions loaded: {}, scripts loaded: {}",
            s.functions, s.scripts
        );
    }
    for m in &s.module_aux_unrestored {
        println!("module aux not restored: {m}");
    }
    if s.reconnects > 0 {
        println!("reconnects: {}", s.reconnects);
    }
    for n in &s.notes {
        println!("note: {n}");
    }
    if s.failed > 0 {
        println!("failed: {} keys", s.failed);
    }
    for (k, why) in s.reports.iter().take(20) {
        println!("  {k}: {why}");
    }
    if s.reports.len() > 20 {
        println!("  … and {} more", s.reports.len() - 20);
    }
    if s.in_doubt_total > 0 {
        println!(
            "in doubt: {} keys were sent but never acknowledged; they may or may not be on the target:",
            s.in_doubt_total
        );
        for k in &s.in_doubt {
            println!("  {k}");
        }
        if s.in_doubt_total > s.in_doubt.len() as u64 {
            println!(
                "  … and {} more",
                s.in_doubt_total - s.in_doubt.len() as u64
            );
        }
    }
}

/// Runs `import`.
pub fn run(a: &ImportArgs) -> Result<()> {
    let target = a.target.target()?;
    if a.files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        bail!("stdin (-) can be given only once");
    }
    let sources = a
        .files
        .iter()
        .map(|f| {
            Ok(Source {
                name: f.display().to_string(),
                input: Input::open(f).with_context(|| format!("opening {}", f.display()))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let cfg = ImportConfig {
        filter: a.filter.to_filter(),
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
        checkpoint: a.checkpoint.clone(),
        checkpoint_interval: Duration::from_millis(a.checkpoint_interval_ms.max(10)),
        verify_checksum: !a.no_checksum,
        rate_limit: a.rate_limit,
        memory_budget: a.buffer_mb.max(1) << 20,
    };
    let resume_hint = match &a.checkpoint {
        Some(p) => format!("rerun with --checkpoint {} to resume", p.display()),
        None => "rerun with --replace to write every key again".to_string(),
    };
    let summary = match replay::import(sources, target, cfg, progress_callback(a.quiet)) {
        Ok(s) => s,
        Err(replay::ReplayError::Interrupted { cause, summary }) => {
            print_summary(&summary);
            bail!("the import stopped: {cause}; {resume_hint}");
        }
        Err(e) => return Err(e.into()),
    };
    print_summary(&summary);
    if !summary.is_success() {
        bail!("not every key was written (see the summary above)");
    }
    Ok(())
}
