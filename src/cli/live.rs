//! Live sources on the command line: a `redis://…` (or `rediss://`, `unix://`, Sentinel) URL where
//! a dump file would stand, and `rdbkit dump`, which saves a running server's snapshot.

use super::Usage;
use crate::cli::say;
use anyhow::{bail, Context, Result};
use clap::Args;
use rdbkit::replay::Target;
use rdbkit::source::replica::{Replica, ReplicaOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// True when `arg` names a server rather than a file.
pub fn is_url(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| {
        s.split_once("://").is_some_and(|(scheme, _)| {
            let s = scheme.to_ascii_lowercase();
            matches!(s.as_str(), "redis" | "rediss" | "unix" | "redis+unix")
                || rdbkit::replay::target::is_sentinel_url(&format!("{s}://"))
        })
    })
}

/// The source server parsed from `url`, its password from the URL or `RDBKIT_SOURCE_AUTH`.
pub fn source_target(url: &str) -> Result<Target> {
    let env_pw = std::env::var("RDBKIT_SOURCE_AUTH").ok();
    Target::parse(url, env_pw).map_err(|e| anyhow::Error::new(Usage(format!("source: {e}"))))
}

/// Where to receive from: `source`, or with `from_replica` (a Sentinel source) a replica the
/// sentinels list as up.
pub fn sync_from(source: &Target, from_replica: bool) -> Result<Target> {
    if !from_replica {
        return Ok(source.clone());
    }
    let Some(s) = &source.sentinel else {
        bail!(Usage(
            "--from-replica needs a Sentinel source (redis+sentinel://host:port,…/master)".into()
        ));
    };
    let replicas = s
        .replica_addrs()
        .context("no sentinel answered SENTINEL REPLICAS")?;
    let Some((host, port)) = replicas.into_iter().next() else {
        bail!(
            "--from-replica: the sentinels list no replica of {} that is up",
            s.master
        );
    };
    eprintln!("receiving from the replica {host}:{port}");
    Ok(source.at(host, port))
}

/// Connects to `source` as a replica; with `resume`, asks to continue after that offset.
pub fn connect(source: &Target, rdb_only: bool, resume: Option<(String, u64)>) -> Result<Replica> {
    let t = source.clone();
    let opts = ReplicaOptions {
        name: source.display(),
        rdb_only,
        resume,
        ..Default::default()
    };
    Replica::start(
        move || {
            let t = t.clone();
            async move { t.connect_raw().await.map_err(|e| e.to_string()) }
        },
        opts,
    )
    .map_err(anyhow::Error::new)
}

/// The offset marker (`replay::follow::MARKER_KEY`, db 0) the target holds, if any: what a
/// resumed follow or AOF import has applied.
pub fn read_marker(target: &Target) -> Result<Option<String>> {
    let mut con = target
        .pinned()
        .and_then(|t| t.control(Duration::from_secs(10)))
        .map_err(anyhow::Error::new)?;
    redis::cmd("SELECT").arg(0).query::<()>(&mut con)?;
    redis::cmd("GET")
        .arg(rdbkit::replay::follow::MARKER_KEY)
        .query(&mut con)
        .context("reading the offset marker on the target")
}

/// The target's errors (by code, with samples) and the commands in doubt of a follow.
pub fn print_target_errors(s: &rdbkit::replay::follow::FollowSummary) {
    for (code, n) in &s.errors {
        say!("  target errors {code}: {n}");
    }
    for e in &s.error_samples {
        say!("    {e}");
    }
    if s.in_doubt > 0 {
        say!(
            "  {} commands were sent when a connection broke, without an answer: they may or may not be applied",
            s.in_doubt
        );
    }
}

/// `rdbkit dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The server: redis://[user[:password]@]host:port, rediss://…, unix:///path,
    /// redis+sentinel://host:port,…/master (the password also from RDBKIT_SOURCE_AUTH).
    pub source: String,
    /// How the server is read: sync (as a replica; a source that refuses SYNC/PSYNC is read by
    /// scan instead, with a notice) or scan (SCAN + DUMP, not point-in-time).
    #[arg(long, value_enum, default_value = "sync", help_heading = super::heading::SOURCE)]
    pub source_mode: super::source_mode::SourceMode,
    /// Where to write the dump; `-` is stdout; a name ending in `.gz` is compressed.
    #[arg(short, long, help_heading = super::heading::OUTPUT)]
    pub output: PathBuf,
    /// No progress on stderr.
    #[arg(short, long, help_heading = super::heading::OUTPUT)]
    pub quiet: bool,
}

/// Checks an RDB stream as it passes: the magic at the start, and the CRC64 trailer at the end.
struct Checked<W> {
    out: W,
    crc: u64,
    /// The last 8 bytes seen (the trailer once the stream ends), not hashed yet.
    tail: Vec<u8>,
    len: u64,
    head: Vec<u8>,
}

impl<W: Write> Checked<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.head.len() < 9 {
            let n = (9 - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
        }
        self.len += data.len() as u64;
        self.tail.extend_from_slice(data);
        if self.tail.len() > 8 {
            let cut = self.tail.len() - 8;
            self.crc = rdbkit::crc64(self.crc, &self.tail[..cut]);
            self.tail.drain(..cut);
        }
        self.out.write_all(data)
    }

    /// Errors unless the stream is a whole RDB file whose checksum matches.
    fn finish(self, name: &str) -> Result<W> {
        let magic_ok = self.head.starts_with(b"REDIS") || self.head.starts_with(b"VALKEY");
        if !magic_ok {
            bail!(
                "{name} sent a snapshot that is not an RDB file (it starts with {})",
                rdbkit::text::escape_bytes(&self.head)
            );
        }
        let trailer = u64::from_le_bytes(self.tail.as_slice().try_into().unwrap_or([0; 8]));
        if self.tail.len() < 8 {
            bail!("{name} sent a snapshot of only {} bytes", self.len);
        }
        // a server with rdbchecksum no writes a zero trailer
        if trailer != 0 && trailer != self.crc {
            bail!(
                "{name}: the snapshot's CRC64 is {:016x} but its trailer says {trailer:016x}: the transfer was damaged",
                self.crc
            );
        }
        Ok(self.out)
    }
}

/// Runs `dump`.
pub fn run_dump(a: &DumpArgs) -> Result<()> {
    let source = source_target(&a.source)?;
    let name = source.display();
    let to_stdout = a.output.as_os_str() == "-";
    let gz = a.output.extension().is_some_and(|e| e == "gz");
    // written under a temporary name and renamed at the end: an interrupted dump leaves no file
    // that looks whole
    let tmp = a.output.with_file_name(format!(
        ".{}.rdbkit-partial",
        a.output
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("dump")
    ));
    if let Some(primaries) = source
        .cluster_primaries(Duration::from_secs(10))?
        .filter(|p| p.len() > 1)
    {
        let all: Vec<String> = primaries.iter().map(Target::display).collect();
        eprintln!(
            "note: {name} is one node of a cluster of {} primaries ({}): the file holds this node's slots only; dump each primary for the whole cluster (rdbkit import takes a cluster node's URL and reads every primary)",
            primaries.len(),
            all.join(", ")
        );
    }
    let started = Instant::now();
    let opened = super::source_mode::open(a.source_mode, &source, &name, &[], false, || {
        connect(&source, true, None)
    })?;
    // the snapshot, how many of its bytes have arrived, the replica to stop at the end
    let (mut snap, received, replica): (Box<dyn Read>, Box<dyn Fn() -> u64>, _) = match opened {
        Ok(replica) => {
            let progress = replica.progress();
            let snap = Box::new(replica.snapshot());
            (
                snap,
                Box::new(move || progress.snapshot_bytes()),
                Some(replica),
            )
        }
        Err(scan) => {
            let stats = scan.stats.clone();
            (
                Box::new(scan.stream),
                Box::new(move || stats.get().bytes),
                None,
            )
        }
    };
    let file: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        )
    };
    let file: Box<dyn Write> = if gz {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
    };
    let mut out = Checked {
        out: file,
        crc: 0,
        tail: Vec::new(),
        len: 0,
        head: Vec::new(),
    };
    let show = !a.quiet && std::io::stderr().is_terminal();
    let mut last = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let result = (|| -> Result<()> {
        loop {
            let n = snap
                .read(&mut buf)
                .with_context(|| format!("receiving the snapshot from {name}"))?;
            if n == 0 {
                break;
            }
            out.write(&buf[..n]).context("writing the dump")?;
            if !a.quiet && last.elapsed() >= Duration::from_secs(if show { 1 } else { 5 }) {
                last = Instant::now();
                eprintln!(
                    "{} received, {:.0} MB/s",
                    rdbkit::output::report::human(received()),
                    received() as f64 / 1e6 / started.elapsed().as_secs_f64()
                );
            }
        }
        let len = out.len;
        let mut w = out.finish(&name)?;
        w.flush().context("writing the dump")?;
        drop(w);
        if !to_stdout {
            std::fs::rename(&tmp, &a.output)
                .with_context(|| format!("renaming {} to {}", tmp.display(), a.output.display()))?;
        }
        if !a.quiet {
            eprintln!(
                "{} of {name} written to {} in {:.1} s (CRC64 checked)",
                rdbkit::output::report::human(len),
                a.output.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    })();
    if let Some(replica) = replica {
        replica.stop();
    }
    if result.is_err() && !to_stdout {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `--follow` and its cutover options.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = super::heading::FOLLOW)]
pub struct FollowArgs {
    /// After the snapshot, keep applying the source's writes to the target until SIGINT or
    /// SIGTERM; then apply everything up to the source's offset at that moment, print the
    /// summary and exit 0. Needs one source, a server URL.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: on the stop signal, first pause the source's writers for DURATION
    /// (`CLIENT PAUSE <ms> WRITE`, e.g. 10s, 1500ms) so that the drained target is final and
    /// clients can be switched to it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "follow")]
    pub pause_source_writes: Option<Duration>,
    /// With --follow: the longest wait, after the stop signal, for the target to have everything
    /// up to the source's offset.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// With a Sentinel source (redis+sentinel://…): receive the snapshot and the stream from one
    /// of the primary's replicas (as the sentinels list them up) instead of the primary; the
    /// cutover still pauses and reads the primary.
    #[arg(long)]
    pub from_replica: bool,
}

/// `500ms`, `10s`, `2m`, `6h`, `1d`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, ""), |i| s.split_at(i));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (500ms, 10s, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "" | "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        "d" => v * 86400.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// The source's replication offset now (`master_repl_offset`).
fn source_offset(con: &mut redis::Connection) -> Result<u64> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(con)
        .context("INFO replication on the source")?;
    info.lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|v| v.trim().parse().ok())
        .context("the source's INFO replication has no master_repl_offset")
}

/// `--checkpoint` with `--follow`: the replication id and the offset applied.
pub fn save_checkpoint(path: &Path, replid: &str, offset: u64) -> Result<()> {
    let body = serde_json::json!({"follow": {"replid": replid, "offset": offset}});
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{body}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing the checkpoint {}", path.display()))
}

/// Where a `--follow` rerun continues: the checkpoint's replication id, and the offset the
/// target's marker records (exact: written with the commands it covers), else the checkpoint's.
/// `None` when there is no checkpoint yet.
pub fn resume_point(path: &Path, target: &Target) -> Result<Option<(String, u64)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a checkpoint", path.display()))?;
    let f = &v["follow"];
    let (Some(replid), Some(offset)) = (f["replid"].as_str(), f["offset"].as_u64()) else {
        bail!(
            "{} is a checkpoint of a dump import, not of --follow: give another file",
            path.display()
        );
    };
    let marker = read_marker(target)?;
    let at = marker
        .as_deref()
        .and_then(|m| m.split_once(' '))
        .filter(|(id, _)| *id == replid)
        .and_then(|(_, o)| o.parse().ok())
        .unwrap_or(offset);
    Ok(Some((replid.to_string(), at)))
}

/// Follows the source after its snapshot was imported, until a signal and the drain.
pub fn follow(
    args: &FollowArgs,
    replica: Replica,
    source: &Target,
    target: Target,
    cfg: &rdbkit::replay::follow::FollowConfig,
    checkpoint: Option<&Path>,
    report: &mut Option<super::summary::CommandsReport>,
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::{Arc, Mutex};
    cfg.until.store(u64::MAX, Relaxed);
    let progress = replica.progress();
    let name = source.display();
    eprintln!(
        "following {name} from offset {} into {}: stop with Ctrl-C or SIGTERM (the target then receives everything up to the source's offset at that moment)",
        progress.applied_offset(),
        target.display()
    );
    let finished = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(Mutex::new(None::<(Instant, u64, Option<Duration>)>));
    let watcher = {
        let (finished, stop, until, abort) = (
            finished.clone(),
            stop.clone(),
            cfg.until.clone(),
            cfg.abort.clone(),
        );
        let (src, pause, drain) = (source.clone(), args.pause_source_writes, args.drain_timeout);
        std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let signalled = rt.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                loop {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => return Ok::<bool, anyhow::Error>(true),
                        _ = term.recv() => return Ok(true),
                        _ = tick.tick() => if finished.load(Relaxed) { return Ok(false) },
                    }
                }
            })?;
            if !signalled {
                return Ok(());
            }
            let t0 = Instant::now();
            // a Sentinel source: the primary it names now (writes happen there)
            let mut con = src
                .pinned()
                .and_then(|t| t.control(Duration::from_secs(10)))
                .map_err(anyhow::Error::new)?;
            if let Some(p) = pause {
                redis::cmd("CLIENT")
                    .arg("PAUSE")
                    .arg(p.as_millis() as u64)
                    .arg("WRITE")
                    .query::<()>(&mut con)
                    .context("CLIENT PAUSE … WRITE on the source")?;
            }
            let offset = source_offset(&mut con)?;
            *stop.lock().unwrap_or_else(|e| e.into_inner()) = Some((t0, offset, pause));
            until.store(offset, Relaxed);
            eprintln!("stopping: applying the source's writes up to offset {offset} (a second signal stops at once)");
            let deadline = t0 + drain;
            rt.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                loop {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => break,
                        _ = term.recv() => break,
                        _ = tick.tick() => {
                            if finished.load(Relaxed) { return Ok::<(), anyhow::Error>(()) }
                            if Instant::now() >= deadline { break }
                        }
                    }
                }
                abort.store(true, Relaxed);
                Ok(())
            })
        })
    };
    let quiet_progress: Box<dyn Fn(&rdbkit::replay::follow::FollowProgress) + Send> = {
        // called by the follow's dispatcher task alone: a Cell, no lock in async code
        let last = std::cell::Cell::new(Instant::now());
        let every = if std::io::stderr().is_terminal() {
            1
        } else {
            5
        };
        let caught_up = std::cell::Cell::new(Instant::now());
        let metrics = super::metrics::counters();
        let source = progress.clone();
        Box::new(move |p| {
            if let Some(m) = metrics {
                m.follow.update(p, &caught_up);
                m.follow
                    .source_reconnects
                    .store(source.reconnects(), Relaxed);
            }
            if last.get().elapsed() >= Duration::from_secs(every) {
                last.set(Instant::now());
                eprintln!(
                    "following: {} commands applied, source offset {} applied, lag {} bytes",
                    p.commands,
                    p.applied_offset,
                    p.received_offset.saturating_sub(p.applied_offset)
                );
            }
        })
    };
    let replid = replica.kind().replid().to_string();
    let result = rdbkit::replay::follow::follow(
        replica.commands(),
        progress.clone(),
        target,
        cfg.clone(),
        quiet_progress,
    );
    finished.store(true, Relaxed);
    let target_final = Instant::now();
    replica.stop();
    let watched = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("the signal watcher panicked"))?;
    let s = result.map_err(anyhow::Error::new)?;
    if let Some(m) = super::metrics::counters() {
        // the last values, also those after the last progress report
        let f = &m.follow;
        f.commands.store(s.commands, Relaxed);
        f.applied_offset.store(s.applied_offset, Relaxed);
        f.reconnects.store(s.reconnects, Relaxed);
        f.failovers.store(s.failovers, Relaxed);
        f.source_reconnects.store(progress.reconnects(), Relaxed);
    }
    let mut commands = super::summary::CommandsReport::from_follow(&s);
    commands.source_reconnects = progress.reconnects();
    *report = Some(commands);
    if let Some(p) = checkpoint {
        save_checkpoint(p, &replid, s.applied_offset)?;
    }
    say!(
        "followed: {} commands applied ({} in MULTI blocks: {}), {} left out by --db/--key, in {:.1} s",
        s.commands,
        s.blocks,
        if s.blocks > 0 {
            "applied whole"
        } else {
            "none"
        },
        s.skipped,
        s.elapsed.as_secs_f64()
    );
    print_target_errors(&s);
    say!("source: {replid}:{} applied", s.applied_offset);
    if progress.peak_spilled() > 0 {
        say!(
            "  the target was slower than the source for a while: up to {:.1} MB of the source's stream waited in a temporary file",
            progress.peak_spilled() as f64 / 1e6
        );
    }
    match progress.reconnects() {
        0 => {}
        n => say!(
            "  the link to the source broke {n} time{} and was continued by partial resync",
            if n == 1 { "" } else { "s" }
        ),
    }
    for n in &s.notes {
        say!("  note: {n}");
    }
    watched?;
    let stop = *stop.lock().unwrap_or_else(|e| e.into_inner());
    match stop {
        Some((t0, offset, pause)) if s.applied_offset >= offset => {
            let window = target_final.duration_since(t0);
            say!(
                "cutover: the target had every write up to the source's offset {offset} {} ms after the stop signal",
                window.as_millis()
            );
            if let Some(p) = pause {
                let left = p.saturating_sub(t0.elapsed());
                say!(
                    "the source's writers stay paused for {:.1} s more: switch the clients to the target now",
                    left.as_secs_f64()
                );
            }
        }
        Some((_, offset, _)) => bail!(
            "stopped before the target had every write: applied up to offset {} of the source's {offset} (drain timeout or a second signal)",
            s.applied_offset
        ),
        None if progress.stream_lost() => bail!(
            "the source can no longer continue its stream after offset {} (restarted, or its backlog moved on): a new full snapshot is needed; {}",
            s.applied_offset,
            match checkpoint {
                Some(p) => format!("rerun with --checkpoint {} and --flush-target (or --replace, which keeps the keys deleted on the source meanwhile)", p.display()),
                None => "rerun with --flush-target (or --replace, which keeps the keys deleted on the source meanwhile)".to_string(),
            }
        ),
        None => bail!(
            "the source's stream ended before a stop signal (applied up to offset {}): the source closed the connection or was restarted; {}",
            s.applied_offset,
            match checkpoint {
                Some(p) => format!("rerun the same command (--checkpoint {}) to continue", p.display()),
                None => "with --checkpoint FILE a rerun continues where this one stopped".to_string(),
            }
        ),
    }
    if !s.is_success() {
        bail!("not every command was applied (see the summary above)");
    }
    Ok(())
}
