//! `rdbkit plan` and `rdbkit import --dry-run`: what an import would do to a target, writing
//! nothing (`rdbkit::replay::forecast`), as text or JSON; exit 3 when it would not succeed.

use super::import::ImportArgs;
use super::rates::Estimate;
use super::{Usage, WouldFail};
use anyhow::{bail, Context, Result};
use rdbkit::output::report::{group, human};
use rdbkit::replay::{self, Forecast, Source};
use rdbkit::source::Input;
use serde_json::json;
use std::path::Path;

pub use super::DryRunFormat as Format;

/// Runs `plan` (or `import --dry-run`).
pub fn run(a: &ImportArgs) -> Result<()> {
    super::import::check_slots(a)?;
    if a.follow.follow || a.until.is_some() {
        bail!(Usage(
            "plan (import --dry-run) reads dump files: --follow and --until are not planned".into()
        ));
    }
    for f in &a.files {
        if super::live::is_url(f) {
            bail!(Usage(format!(
                "plan (import --dry-run) reads dump files, not a live server ({}): save its snapshot with rdbkit dump first",
                f.display()
            )));
        }
        if f.as_os_str() != "-" && rdbkit::source::aof::detect(f)?.is_some() {
            bail!(Usage(format!(
                "{}: an AOF is not planned; plan its base (the RDB in appendonlydir) instead",
                f.display()
            )));
        }
    }
    if a.files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        bail!("stdin (-) can be given only once");
    }
    let target = a.target.target()?;
    let mut sources = Vec::new();
    for f in &a.files {
        sources.push(Source {
            name: f.display().to_string(),
            input: Input::open(f).with_context(|| format!("opening {}", f.display()))?,
        });
    }
    let files: Vec<&Path> = a.files.iter().map(|f| f.as_path()).collect();
    // keys that would end up under one name: the import would not succeed (exit 3)
    let cfg = super::import::import_config(a, &files).map_err(|e| {
        if e.chain().any(|c| c.is::<super::Collision>()) {
            WouldFail(format!("the import would not succeed: {e}")).into()
        } else {
            e
        }
    })?;
    let f = replay::forecast(sources, &target, &cfg)?;
    let names: Vec<String> = a.files.iter().map(|f| f.display().to_string()).collect();
    let estimate = super::rates::estimate(
        super::rates::target_kind(&target, f.info.cluster),
        f.primaries.len() as u64,
        f.written(),
        f.payload_bytes,
    );
    let out = match a.format {
        Format::Text => text(&f, &names, estimate.as_ref()),
        Format::Json => {
            serde_json::to_string_pretty(&to_json(&f, &names, estimate.as_ref()))? + "\n"
        }
    };
    print!("{out}");
    if !f.ok() {
        return Err(WouldFail(format!(
            "the import would not succeed: {} (see above)",
            rdbkit::output::count(f.reasons.len() as u64, "reason")
        ))
        .into());
    }
    Ok(())
}

fn server(f: &Forecast) -> String {
    format!(
        "{} {}, RDB {}{}{}",
        if f.info.valkey { "Valkey" } else { "Redis" },
        f.info.version,
        f.info.rdb_version,
        if f.info.cluster { ", cluster" } else { "" },
        if f.info.enterprise {
            ", Enterprise"
        } else {
            ""
        }
    )
}

/// The plan as text: the verdict and its reasons first.
fn text(f: &Forecast, names: &[String], estimate: Option<&Estimate>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "plan: import of {} into {} ({})",
        names.join(", "),
        f.target,
        server(f)
    );
    if f.ok() {
        let _ = writeln!(s, "verdict: the import would succeed as configured");
    } else {
        let _ = writeln!(s, "verdict: the import would NOT succeed:");
        for r in &f.reasons {
            let _ = writeln!(s, "  - {r}");
        }
    }
    let by_commands: u64 = f.commands.values().sum();
    let _ = writeln!(
        s,
        "keys: {} read, {} to write ({} by RESTORE, {} by commands), {} skipped, {} failing",
        group(f.keys_read),
        group(f.written()),
        group(f.restore),
        group(by_commands),
        group(f.skipped.values().sum()),
        group(f.failed)
    );
    for (why, n) in &f.commands {
        let _ = writeln!(s, "by commands: {} ({})", group(*n), why.name());
    }
    for (why, n) in &f.skipped {
        let _ = writeln!(s, "skipped: {} ({why})", group(*n));
    }
    for p in &f.primaries {
        let _ = writeln!(
            s,
            "primary {}: {} keys, about {} (+ {} keyspace tables)",
            p.address,
            group(p.keys),
            human(p.memory),
            human(p.keyspace)
        );
        let limit = if p.maxmemory == 0 {
            "no maxmemory".to_string()
        } else {
            format!(
                "maxmemory {} ({}), {} free",
                human(p.maxmemory),
                p.policy,
                human(p.maxmemory.saturating_sub(p.used_memory))
            )
        };
        let _ = writeln!(s, "  memory: {} in use, {limit}", human(p.used_memory));
        for db in &p.dbs {
            let now = p.db_keys.get(db).copied().unwrap_or(0);
            if now > 0 {
                let _ = writeln!(
                    s,
                    "  db{db}: holds {} keys now; keys of the dump already there (all databases): {}",
                    group(now),
                    group(p.existing)
                );
            }
        }
        for n in &p.limits_notes {
            let _ = writeln!(s, "  model: {n}");
        }
    }
    if !f.libraries.is_empty() {
        let _ = writeln!(s, "function libraries: {}", f.libraries.join(", "));
    }
    if !f.search_indexes.is_empty() {
        let _ = writeln!(
            s,
            "search indexes (FT.CREATE after the keys): {}",
            f.search_indexes.join(", ")
        );
    }
    for n in &f.notes {
        let _ = writeln!(s, "note: {n}");
    }
    for (kind, key, why) in &f.listed {
        let _ = writeln!(s, "{kind}: {key}: {why}");
    }
    match estimate {
        None => {
            let _ = writeln!(
                s,
                "estimated duration: none (no import measured on this machine)"
            );
        }
        Some(e) => {
            let r = &e.record;
            let _ = writeln!(
                s,
                "estimated duration: {} ({} keys at {} keys/s, {} of payload at {}/s: the {} bound it), at the rates of the import of {} into a {} target of {} ({}, rdbkit {}) recorded in {}",
                duration(e.seconds),
                group(e.keys),
                group(r.keys_per_s.round() as u64),
                human(e.payload_bytes),
                human(r.payload_bytes_per_s as u64),
                e.bound_by,
                r.date,
                r.target_kind,
                match r.primaries {
                    1 => "1 primary".to_string(),
                    n => format!("{n} primaries"),
                },
                r.server,
                r.rdbkit,
                e.file.display()
            );
        }
    }
    s
}

/// `0.25 s`, `12.3 s`, and hours and minutes beyond a minute: `4000.0 s (1 h 6 min)`.
fn duration(secs: f64) -> String {
    if secs < 1.0 {
        return format!("{secs:.2} s");
    }
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let m = (secs / 60.0).round() as u64;
    match m / 60 {
        0 => format!("{secs:.1} s ({m} min)"),
        h => format!("{secs:.1} s ({h} h {} min)", m % 60),
    }
}

/// The plan as one JSON object.
fn to_json(f: &Forecast, names: &[String], estimate: Option<&Estimate>) -> serde_json::Value {
    let primaries: Vec<_> = f
        .primaries
        .iter()
        .map(|p| {
            let dbs: serde_json::Map<String, serde_json::Value> = p
                .dbs
                .iter()
                .map(|db| {
                    (
                        db.to_string(),
                        json!({"keys_now": p.db_keys.get(db).copied().unwrap_or(0)}),
                    )
                })
                .collect();
            json!({
                "address": p.address,
                "keys": p.keys,
                "memory": p.memory,
                "keyspace_tables": p.keyspace,
                "need": p.need(),
                "used_memory": p.used_memory,
                "maxmemory": p.maxmemory,
                "maxmemory_policy": p.policy,
                "databases": dbs,
                "existing_keys": p.existing,
            })
        })
        .collect();
    json!({
        "dumps": names,
        "target": f.target,
        "server": {
            "name": if f.info.valkey { "valkey" } else { "redis" },
            "version": f.info.version,
            "rdb_version": f.info.rdb_version,
            "cluster": f.info.cluster,
            "modules": f.info.modules,
        },
        "ok": f.ok(),
        "reasons": f.reasons,
        "keys": {
            "read": f.keys_read,
            "written": f.written(),
            "restore": f.restore,
            "commands": f.commands.iter().map(|(k, v)| (k.name().to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "skipped": f.skipped,
            "failed": f.failed,
        },
        "payload_bytes": f.payload_bytes,
        "primaries": primaries,
        "function_libraries": f.libraries,
        "search_indexes": f.search_indexes,
        "listed": f.listed.iter().map(|(kind, key, why)| json!({"kind": kind, "key": key, "why": why})).collect::<Vec<_>>(),
        "notes": f.notes,
        "estimated_duration_s": estimate.map(|e| e.seconds),
        "estimate": estimate,
    })
}
