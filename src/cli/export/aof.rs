//! `rdbkit export` of an AOF: the base as a dump's export, then (RESP) the recorded commands.

use super::{export_dump, output, ExportArgs, Format};
use anyhow::{bail, Result};
use rdbkit::replay::follow::absolute_ttl;
use rdbkit::source::aof::{self, Aof, AofCommands};
use rdbkit::source::resp::{write_resp, CommandSource};
use std::io::Write;

/// Runs `export` on an AOF.
pub fn run(a: &ExportArgs, aof: &Aof) -> Result<()> {
    let f = &a.filter;
    if !f.dbs.is_empty()
        || !f.keys.is_empty()
        || !f.types.is_empty()
        || !f.slots.is_empty()
        || a.size.min_size.is_some()
    {
        bail!(crate::cli::Usage(
            "--db, --key, --type, --slots and --min-size select keys of a dump; an AOF's recorded commands are exported as they are: export it without them (or import it with --db/--key)".into()
        ));
    }
    let scan = aof::scan(aof, None)?;
    match (a.format, aof.rdb_base()) {
        (Format::Jsonl, None) => bail!(
            "{}: the AOF's base is commands (aof-use-rdb-preamble no): there are no keys to write as JSON lines; use --format resp",
            aof.path.display()
        ),
        (Format::Jsonl, Some(b)) => {
            export_dump(a, &b.path)?;
            eprintln!(
                "note: the JSON lines are the AOF's base ({}) only: its {} recorded commands are not folded into them (--format resp exports them after the base)",
                b.name(),
                scan.total()
            );
            return Ok(());
        }
        (Format::Resp, Some(b)) => export_dump(a, &b.path)?,
        (Format::Resp, None) => drop(output(a, false)?),
    }
    if let Some(d) = &scan.dropped {
        eprintln!("note: {d}");
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, output(a, true)?);
    let mut cmds = AofCommands::open(aof, aof.commands_start(), scan.end)?;
    let mut buf = Vec::new();
    let mut n = 0u64;
    while let Some(c) = cmds.next_aof_command()? {
        // relative expirations from the time they were recorded (or now), as import does
        let now = cmds.recorded_at_ms().unwrap_or_else(crate::cli::now_ms);
        buf.clear();
        write_resp(&absolute_ttl(c, now), &mut buf);
        out.write_all(&buf)?;
        n += 1;
    }
    out.flush()?;
    eprintln!(
        "exported the AOF's {n} recorded commands after its base (each file's own SELECT 0 included)"
    );
    Ok(())
}
