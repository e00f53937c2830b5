//! `rdbkit export`: JSON lines or RESP commands.

use super::{FilterArgs, InputArgs};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use rdbkit::output::json;
use rdbkit::output::resp::{entry_commands, CommandOptions, Resp};
use rdbkit::source::Input;
use rdbkit::Item;
use std::io::Write;
use std::path::PathBuf;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per key.
    Jsonl,
    /// RESP commands for `redis-cli --pipe`.
    Resp,
}

/// Arguments of `rdbkit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Write here instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Flush the output buffer beyond this size.
const FLUSH_AT: usize = 1 << 20;

/// Runs `export`.
pub fn run(a: &ExportArgs) -> Result<()> {
    let input = Input::open(&a.input.file)
        .with_context(|| format!("opening {}", a.input.file.display()))?;
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let filter = a.filter.to_filter();
    let mut resp = Resp::default();
    let mut opts = CommandOptions::default();
    let mut current_db: Option<u64> = None;
    let mut scratch = Vec::new();
    let (mut keys, mut empty, mut commands) = (0u64, 0u64, 0u64);
    input.decode(!a.input.no_checksum, |item, _| -> Result<()> {
        match item {
            Item::Header { version, .. } => {
                opts.restore_version = version.min(u32::from(u16::MAX)) as u16
            }
            Item::Entry(e) if filter.matches(&e) => {
                let v = e.value_in(&mut scratch)?;
                keys += 1;
                match a.format {
                    Format::Jsonl => {
                        json::entry(&mut resp.buf, &e, &v);
                        resp.buf.push(b'\n');
                    }
                    Format::Resp => {
                        if v.is_empty() {
                            // Redis skips empty collections on load; there is no command for them
                            empty += 1;
                        } else {
                            if current_db != Some(e.db) {
                                resp.begin(2);
                                resp.arg(b"SELECT");
                                resp.arg_int(e.db as i64);
                                current_db = Some(e.db);
                                commands += 1;
                            }
                            commands += entry_commands(&mut resp, &e, &v, &opts).map_err(|err| {
                                anyhow::anyhow!(
                                    "key {}: {err}",
                                    rdbkit::model::escape_bytes(&e.key)
                                )
                            })? as u64;
                        }
                    }
                }
            }
            Item::Function { code } if a.format == Format::Resp && filter.is_empty() => {
                resp.cmd(&[b"FUNCTION", b"LOAD", b"REPLACE", &code]);
                commands += 1;
            }
            Item::Script { body, .. } if a.format == Format::Resp && filter.is_empty() => {
                resp.cmd(&[b"SCRIPT", b"LOAD", &body]);
                commands += 1;
            }
            _ => {}
        }
        if resp.buf.len() >= FLUSH_AT {
            out.write_all(&resp.buf)?;
            resp.buf.clear();
        }
        Ok(())
    })?;
    out.write_all(&resp.buf)?;
    out.flush()?;
    match a.format {
        Format::Jsonl => eprintln!("exported {keys} keys"),
        Format::Resp => eprintln!(
            "exported {keys} keys as {commands} commands ({empty} empty collections skipped)"
        ),
    }
    Ok(())
}
