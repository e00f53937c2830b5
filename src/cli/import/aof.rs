//! `rdbkit import` of an AOF: the RDB base imported as a dump, then the commands applied in order
//! by the follow applier (`replay::follow`), from a finite stream of files instead of a replica.

use super::{finish, follow_config, import_config, progress_callback, ImportArgs};
use crate::cli::say;
use crate::cli::Usage;
use anyhow::{bail, Context, Result};
use rdbkit::output::info::format_utc;
use rdbkit::replay::follow::{self, FollowConfig, FollowProgress};
use rdbkit::replay::keyset::{key_hash, KeyRecorder, KeySet, Ours};
use rdbkit::replay::{self, Source, Target};
use rdbkit::source::aof::{self, Aof, AofCommands, Scan};
use rdbkit::source::replica::ReplicaProgress;
use rdbkit::source::Input;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `--until`: Unix seconds, or an RFC 3339 time (`2026-12-05T14:51:43Z`, `…+02:00`; a space
/// for the `T` and fractions of a second allowed, the fraction ignored).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    let bad =
        || format!("{t:?} is not a time: give Unix seconds or RFC 3339 (2026-12-05T14:51:43Z)");
    let b = t.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        t.get(r).and_then(|v| v.parse().ok()).ok_or_else(bad)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let mut rest = &t[19..];
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        rest = &f[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let v = num(t.len() - 5..t.len() - 3)? * 3600 + num(t.len() - 2..t.len())? * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return Err(bad()),
    };
    // days from civil (Howard Hinnant's algorithm)
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Ok(days * 86400 + h * 3600 + mi * 60 + se - offset)
}

/// The checkpoint of the command part: `{"aof": {"id": …, "offset": …, "at": "<file> offset <n>"}}`.
fn save_checkpoint(path: &Path, aof: &Aof, offset: u64) -> Result<()> {
    let body = serde_json::json!({"aof": {
        "id": aof.id(),
        "offset": offset,
        "at": aof.describe(offset),
    }});
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{body}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing the checkpoint {}", path.display()))
}

/// Where a rerun continues the commands: the target's marker (exact: written with the commands
/// it covers), else the checkpoint's offset. `None` when the checkpoint is absent or is the base
/// import's own (the base is then resumed by the dump import).
fn resume_point(path: &Path, aof: &Aof, target: &Target) -> Result<Option<u64>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a checkpoint", path.display()))?;
    let c = &v["aof"];
    if c.is_null() {
        return Ok(None);
    }
    let (Some(id), Some(offset)) = (c["id"].as_str(), c["offset"].as_u64()) else {
        bail!("{} is not a checkpoint of an AOF import", path.display());
    };
    if id != aof.id() {
        bail!(
            "{} is the checkpoint of another AOF ({id}; this one is {}): give another file",
            path.display(),
            aof.id()
        );
    }
    let marker = crate::cli::live::read_marker(target)?;
    Ok(Some(
        marker
            .as_deref()
            .and_then(|m| m.split_once(' '))
            .filter(|(m, _)| *m == id)
            .and_then(|(_, o)| o.parse().ok())
            .unwrap_or(offset),
    ))
}

/// What the target holds where the commands will write, checked before anything is written (the
/// base's own databases are checked again by its import). Commands apply onto what is there
/// (`RPUSH` adds to a list the target held), so: emptied with `--flush-target`; with `--replace`
/// each key the commands touch that is not the base's is deleted at its first command (see
/// `replay::keyset`); refused otherwise. `--skip-existing` is refused when anything is there:
/// kept keys that the commands also change can be neither left alone nor changed exactly.
fn check_target(a: &ImportArgs, target: &Target, aof: &Aof, scan: &Scan) -> Result<()> {
    let mapped = |db: &u64| match (&a.db_map, target.db) {
        (Some(m), _) => m.get(db).copied().unwrap_or(*db),
        (None, Some(t)) => t,
        (None, None) => *db,
    };
    let dbs: std::collections::BTreeSet<u64> = scan.dbs.iter().map(mapped).collect();
    let mut full = Vec::new();
    for (node, mut con) in target.primaries(super::CONTROL_TIMEOUT)? {
        // with a base, any database may be written: --skip-existing looks at all of them
        let look: Vec<u64> = if a.skip_existing && aof.rdb_base().is_some() {
            rdbkit::replay::target::keyspace(&mut con)?
                .into_iter()
                .map(|(db, _)| db)
                .collect()
        } else {
            dbs.iter().copied().collect()
        };
        for db in look {
            redis::cmd("SELECT").arg(db).query::<()>(&mut con)?;
            if a.flush_target && dbs.contains(&db) {
                redis::cmd("FLUSHDB").query::<()>(&mut con)?;
                continue;
            }
            let n: u64 = redis::cmd("DBSIZE").query(&mut con)?;
            if n > 0 {
                full.push(format!("{} db {db}: {n} keys", node.display()));
            }
        }
    }
    if full.is_empty() || (a.replace && !a.skip_existing) {
        return Ok(());
    }
    if a.skip_existing {
        bail!(
            "--skip-existing cannot import an AOF into a target that holds keys ({}): the commands would change the kept keys, or be left out, and neither makes the target equal the AOF; use --replace (the AOF's keys replace the target's) or --flush-target; nothing was written",
            full.join(", ")
        );
    }
    bail!(
        "refusing to apply the AOF's commands onto what the target holds ({}): commands such as RPUSH or INCR would add to the target's values; use --replace (each key the AOF touches is replaced) or --flush-target (those databases are emptied first); nothing was written",
        full.join(", ")
    )
}

/// Under `--replace`, on a resume at `from` (what the target held before the first run is no
/// longer known): the keys that are the import's own, the base's (read from it again) and those
/// the commands before `from` touched; any other key is cleared when first written.
fn ours_at(
    a: &ImportArgs,
    aof: &Aof,
    target: &Target,
    from: u64,
    cfg: &FollowConfig,
) -> Result<Ours> {
    let base = match aof.rdb_base() {
        None => KeySet::default(),
        Some(b) => {
            let filter = a.filter.to_filter();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let mut v = Vec::new();
            Input::open(&b.path)
                .with_context(|| format!("opening {}", b.path.display()))?
                .decode(false, |item, _| -> Result<(), rdbkit::DecodeError> {
                    if let rdbkit::Item::Entry(e) = item {
                        if filter.matches(&e) && !e.is_expired_at(now) {
                            let db = target
                                .db
                                .filter(|_| cfg.db_map.is_empty())
                                .unwrap_or_else(|| cfg.db_map.get(&e.db).copied().unwrap_or(e.db));
                            v.push(key_hash(db, &e.key));
                        }
                    }
                    Ok(())
                })
                .with_context(|| format!("reading the keys of {}", b.path.display()))?;
            KeySet::from_hashes(v)
        }
    };
    let start = aof.commands_start();
    let since = if from > start {
        follow::touched_before(AofCommands::open(aof, start, from)?, cfg, from)
            .map_err(|e| anyhow::anyhow!("reading the commands before the resume point: {e}"))?
    } else {
        Default::default()
    };
    Ok(Ours::with_touched(base, since))
}

/// Imports the AOF `aof` into `target`.
pub fn run(
    a: &ImportArgs,
    aof: &Aof,
    target: Target,
    report: &mut crate::cli::summary::ImportReport,
) -> Result<()> {
    if a.follow.follow {
        bail!(Usage(
            "--follow follows a live server: an AOF's commands are applied to their end (or to --until) without it".into()
        ));
    }
    if !a.filter.types.is_empty() {
        bail!(Usage(
            "an AOF's commands cannot be filtered by --type (rdbkit cannot tell a command's value type without asking the target): use --db, --key and --db-map".into()
        ));
    }
    let scan = aof::scan(aof, a.until).map_err(|e| anyhow::anyhow!("{e}; nothing was written"))?;
    let base = aof.rdb_base();
    eprintln!(
        "{}: {}{} commands in {} files",
        aof.path.display(),
        base.map(|b| format!("RDB base {}, then ", b.name()))
            .unwrap_or_default(),
        scan.total(),
        aof.parts.len()
    );
    if let Some(d) = &scan.dropped {
        eprintln!("note: {d}");
    }
    match (a.until, scan.cut) {
        (Some(_), Some((t, at))) => eprintln!(
            "--until: the commands stop at the annotation #TS:{t} ({}), {}",
            format_utc(t),
            aof.describe(at)
        ),
        (Some(u), None) => eprintln!(
            "--until {}: the AOF's last annotation is #TS:{} ({}): every command is applied",
            format_utc(u),
            scan.last_ts.unwrap_or_default(),
            format_utc(scan.last_ts.unwrap_or_default())
        ),
        _ => {}
    }
    let ckpt = a.checkpoint.as_deref();
    if ckpt.is_some() && target.primaries(super::CONTROL_TIMEOUT)?.len() > 1 {
        bail!(Usage(
            "--checkpoint with an AOF needs a single primary target (standalone or Sentinel): a cluster has no one place for the offset marker that makes resuming the commands exact".into()
        ));
    }
    let resume = match ckpt {
        Some(p) => resume_point(p, aof, &target)?,
        None => None,
    };
    // a first run (no checkpoint yet) checks the target; a rerun continues onto its own writes
    if ckpt.is_none_or(|p| !p.exists()) {
        check_target(a, &target, aof, &scan)?;
    }
    let recorder = (a.replace && resume.is_none()).then(|| Arc::new(KeyRecorder::default()));
    // a first run knows what the target held; a resume no longer can (see `ours_at`)
    let held = match recorder {
        Some(_) => Some(super::held_keys(&target)?),
        None => None,
    };
    let from = match resume {
        Some(off) => {
            eprintln!("resuming the commands at {}", aof.describe(off));
            off
        }
        None => {
            if let Some(b) = base {
                let mut cfg = import_config(a, &[b.path.as_path()])?;
                cfg.record_keys = recorder.clone();
                let source = Source {
                    name: b.path.display().to_string(),
                    input: Input::open(&b.path)
                        .with_context(|| format!("opening {}", b.path.display()))?,
                };
                eprintln!("importing the base {} into {}", b.name(), target.display());
                let result = replay::import(
                    vec![source],
                    target.clone(),
                    cfg,
                    progress_callback(a.quiet),
                );
                finish(result, &target, ckpt, report)?;
            }
            aof.commands_start()
        }
    };
    if let Some(p) = ckpt {
        save_checkpoint(p, aof, from)?;
    }
    if from >= scan.end {
        say!("commands: none to apply");
        return Ok(());
    }
    let mut cfg = follow_config(a, &target, &aof.id());
    cfg.until = Arc::new(AtomicU64::new(scan.end));
    cfg.start_offset = from;
    if a.replace {
        let ours = match held {
            Some(held) => Ours::foreign(
                recorder
                    .as_deref()
                    .map(KeyRecorder::finish)
                    .unwrap_or_default(),
                held,
            ),
            None => ours_at(a, aof, &target, from, &cfg)?,
        };
        cfg.replace_foreign = Some(Arc::new(Mutex::new(ours)));
    }
    let commands = AofCommands::open(aof, from, scan.end)?;
    let quiet = a.quiet;
    let last = Mutex::new(Instant::now());
    let metrics = crate::cli::metrics::counters();
    let caught_up = std::cell::Cell::new(Instant::now());
    let show: Box<dyn Fn(&FollowProgress) + Send> = Box::new(move |p| {
        if let Some(m) = metrics {
            m.follow.update(p, &caught_up);
        }
        let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
        if !quiet && l.elapsed() >= Duration::from_secs(5) {
            *l = Instant::now();
            eprintln!("commands: {} applied", p.commands);
        }
    });
    let result = follow::follow(
        commands,
        ReplicaProgress::detached(from, scan.end),
        target,
        cfg,
        show,
    );
    let s = result.map_err(|e| {
        let resume = match ckpt {
            Some(p) => format!(
                "rerun the same command (--checkpoint {}) to continue",
                p.display()
            ),
            None => "with --checkpoint FILE a rerun continues where this one stopped".into(),
        };
        anyhow::anyhow!("applying the AOF's commands stopped: {e}; {resume}")
    })?;
    if let Some(m) = crate::cli::metrics::counters() {
        // the last values, also those after the last progress report
        m.follow
            .commands
            .store(s.commands, std::sync::atomic::Ordering::Relaxed);
        m.follow
            .applied_offset
            .store(s.applied_offset, std::sync::atomic::Ordering::Relaxed);
    }
    report.commands = Some(crate::cli::summary::CommandsReport::from_follow(&s));
    if let Some(p) = ckpt {
        save_checkpoint(p, aof, s.applied_offset)?;
    }
    say!(
        "commands: {} applied ({} MULTI blocks applied whole), {} left out by --db/--key, in {:.1} s; applied up to {}",
        s.commands,
        s.blocks,
        s.skipped,
        s.elapsed.as_secs_f64(),
        aof.describe(s.applied_offset)
    );
    crate::cli::live::print_target_errors(&s);
    for n in &s.notes {
        say!("  note: {n}");
    }
    if s.applied_offset < scan.end {
        bail!(
            "stopped before the end: applied up to {} of {}",
            aof.describe(s.applied_offset),
            aof.describe(scan.end)
        );
    }
    if !s.is_success() {
        bail!("not every command was applied (see the summary above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times() {
        assert_eq!(parse_time("1796482303"), Ok(1796482303));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2026-12-05T14:51:43Z"), Ok(1796482303));
        assert_eq!(parse_time("2026-12-05 16:51:43.25+02:00"), Ok(1796482303));
        assert_eq!(parse_time("2000-02-29T00:00:00-01:00"), Ok(951786000));
        assert!(parse_time("2026-13-05T14:51:43Z").is_err());
        assert!(parse_time("yesterday").is_err());
    }
}
