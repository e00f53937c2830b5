//! `rdbkit info` on an AOF: the base (what `info` says of a dump) and the command part.

use super::{fail_if_incomplete, summarise, InfoArgs};
use anyhow::Result;
use rdbkit::output::info::format_utc;
use rdbkit::source::aof::{self, Aof, Role, Scan};
use serde_json::json;
use std::fmt::Write as _;
use std::io::Write as _;

/// Runs `info` on an AOF.
pub fn run(a: &InfoArgs, aof: &Aof) -> Result<()> {
    let scan = aof::scan(aof, None)?;
    let base = match aof.rdb_base() {
        Some(b) => Some(summarise(a, &b.path)?),
        None => None,
    };
    let out = if a.json {
        let v = json!({
            "aof": to_json(aof, &scan),
            "base": base.as_ref().map(|(i, _)| i.to_json()),
        });
        serde_json::to_string_pretty(&v)? + "\n"
    } else {
        let mut t = to_text(aof, &scan);
        if let Some((info, _)) = &base {
            t.push_str("base (RDB):\n");
            for l in info.to_text().lines() {
                let _ = writeln!(t, "  {l}");
            }
        }
        t
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    match base {
        Some((info, stopped)) => fail_if_incomplete(a, &info, stopped),
        None => Ok(()),
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Base => "base",
        Role::Incr => "incr",
    }
}

fn when(ts: Option<i64>) -> String {
    ts.map_or_else(
        || "none (aof-timestamp-enabled no)".into(),
        |t| format!("{} ({t})", format_utc(t)),
    )
}

/// The text form of the command part.
pub fn to_text(aof: &Aof, s: &Scan) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "aof:           {}{}",
        aof.path.display(),
        aof.manifest
            .as_ref()
            .map(|m| format!(
                " (manifest {})",
                m.file_name().unwrap_or_default().to_string_lossy()
            ))
            .unwrap_or_else(|| " (a single file)".into())
    );
    let _ = writeln!(t, "files:");
    for f in &s.files {
        let name = f.path.file_name().unwrap_or_default().to_string_lossy();
        let rdb = match f.rdb_end {
            Some(e) if e >= f.len => "RDB, ".to_string(),
            Some(e) => format!("RDB preamble of {e} bytes, "),
            None => String::new(),
        };
        let _ = writeln!(
            t,
            "  {} {name}: {} bytes, {rdb}{} commands",
            role(f.role),
            f.len,
            f.commands
        );
    }
    for h in &aof.history {
        let _ = writeln!(t, "  hist {h}: not loaded (a rewrite's leftover)");
    }
    let names: Vec<String> = s.commands.iter().map(|(n, c)| format!("{n} {c}")).collect();
    let _ = writeln!(t, "commands:      {} ({})", s.total(), names.join(", "));
    let dbs: Vec<String> = s.dbs.iter().map(u64::to_string).collect();
    let _ = writeln!(
        t,
        "databases:     {}",
        if dbs.is_empty() {
            "none".into()
        } else {
            dbs.join(", ")
        }
    );
    let _ = writeln!(t, "first #TS:     {}", when(s.first_ts));
    let _ = writeln!(t, "last #TS:      {}", when(s.last_ts));
    match &s.dropped {
        None => {
            let _ = writeln!(t, "truncated tail: no");
        }
        Some(d) => {
            let _ = writeln!(t, "truncated tail: yes: {d}");
        }
    }
    t
}

/// The JSON form of the command part.
pub fn to_json(aof: &Aof, s: &Scan) -> serde_json::Value {
    json!({
        "path": aof.path.display().to_string(),
        "manifest": aof.manifest.as_ref().map(|m| m.display().to_string()),
        "files": s.files.iter().map(|f| json!({
            "path": f.path.display().to_string(),
            "role": role(f.role),
            "bytes": f.len,
            "rdb_bytes": f.rdb_end,
            "commands": f.commands,
        })).collect::<Vec<_>>(),
        "history": aof.history,
        "commands": s.total(),
        "commands_by_name": s.commands,
        "databases": s.dbs,
        "first_ts": s.first_ts,
        "last_ts": s.last_ts,
        "truncated": s.dropped.as_ref().map(|d| json!({
            "path": d.path.display().to_string(),
            "offset": d.offset,
            "bytes": d.bytes,
            "what": d.what,
        })),
    })
}
