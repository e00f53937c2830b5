//! `rdbkit export`: JSON lines or RESP commands.

use super::report::SizeArgs;
use super::{FieldTtls, FilterArgs, InputArgs, ThreadArgs};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use rdbkit::commands::{entry_commands, CommandOptions, Losses, Resp};
use rdbkit::filter::Filter;
use rdbkit::output::report::memory::Limits;
use rdbkit::output::{count, json};
use rdbkit::replay::TargetInfo;
use rdbkit::source::{Chunk, ChunkWorker, Input};
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
    /// RESP only: write commands that this server accepts (`6.2`, `7.0`, `7.4`, `8.2`,
    /// `valkey-8.1`, …), with the importer's per-version rules; what it cannot hold is reported
    /// on stderr. Default: the newest Redis.
    #[arg(long, value_name = "RELEASE", value_parser = parse_release)]
    target_version: Option<TargetInfo>,
    /// RESP only: hash field TTLs on a target without them (before Redis 7.4): refuse (the export
    /// fails), or write the hash without them (fields already expired left out; counted).
    #[arg(long, value_enum, default_value = "refuse")]
    field_ttls: FieldTtls,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    dups: super::DuplicateArgs,
    #[command(flatten)]
    size: SizeArgs,
    #[command(flatten)]
    threads: ThreadArgs,
}

/// The output of a run of consecutive items: formatted bytes and counts. RESP output needs a
/// `SELECT` before the first key whose database differs from the previous key's, which for the
/// first key of a part depends on the parts before it: that `SELECT` is left out and inserted at
/// `select_at` when the part is written, if needed.
#[derive(Debug, Default)]
struct Part {
    resp: Resp,
    keys: u64,
    empty: u64,
    commands: u64,
    /// Database of the first key with commands, and where in `resp.buf` its commands start.
    first_db: Option<(u64, usize)>,
    /// Database of the last key with commands.
    last_db: Option<u64>,
    /// What the commands could not carry to the target.
    losses: Losses,
    /// Function libraries left out: the target has no `FUNCTION LOAD`.
    functions_skipped: u64,
}

fn parse_release(s: &str) -> Result<TargetInfo, String> {
    TargetInfo::for_release(s).map_err(|e| e.to_string())
}

/// Formats chunks of items into [`Part`]s (on worker threads for mapped input).
struct Exporter {
    format: Format,
    filter: Filter,
    min_size: Option<u64>,
    limits: Limits,
    /// `--target-version`: the server the RESP output is for (`None`: the newest Redis).
    target: Option<TargetInfo>,
    drop_field_ttls: bool,
    now_ms: i64,
}

impl Exporter {
    /// Command options for an entry of `type_id` from a dump of RDB `version`.
    fn options(&self, version: Option<u32>, type_id: u8, has_meta: bool) -> CommandOptions {
        let dump_version = version.map_or(CommandOptions::default().restore_version, |v| {
            v.min(u32::from(u16::MAX)) as u16
        });
        let base = CommandOptions {
            drop_field_ttls: self.drop_field_ttls,
            now_ms: self.now_ms,
            ..CommandOptions::default()
        };
        let Some(t) = &self.target else {
            return CommandOptions {
                restore_version: dump_version,
                ..base
            };
        };
        // Valkey's own RDB versions start at 80 (Valkey 8 writes Redis's 11 and its types)
        let restore = t.restore_version(type_id, has_meta, dump_version, dump_version >= 80);
        CommandOptions {
            restore_version: restore.unwrap_or(dump_version.min(t.rdb_version)),
            can_restore: restore.is_some(),
            drop_field_ttls: self.drop_field_ttls,
            now_ms: self.now_ms,
            ..t.command_options()
        }
    }
}

impl ChunkWorker for Exporter {
    /// Scratch for decompressed blobs.
    type State = Vec<u8>;
    type Out = Part;
    type Error = anyhow::Error;

    fn state(&self) -> Vec<u8> {
        Vec::new()
    }

    fn output(&self) -> Part {
        Part::default()
    }

    fn work(&self, scratch: &mut Vec<u8>, chunk: Chunk<'_, '_>, p: &mut Part) -> Result<()> {
        for (item, _) in chunk.items {
            match item {
                Item::Entry(e) if self.filter.matches(e) => {
                    let v = e.value_in(scratch)?;
                    if self
                        .min_size
                        .is_some_and(|min| self.limits.estimate(e, &v).bytes < min)
                    {
                        continue;
                    }
                    p.keys += 1;
                    match self.format {
                        Format::Jsonl => {
                            json::entry(&mut p.resp.buf, e, &v);
                            p.resp.buf.push(b'\n');
                        }
                        // Redis skips empty collections on load; there is no command for them
                        Format::Resp if v.is_empty() => p.empty += 1,
                        Format::Resp => {
                            match p.last_db {
                                None => p.first_db = Some((e.db, p.resp.buf.len())),
                                Some(db) if db != e.db => {
                                    select(&mut p.resp, e.db);
                                    p.commands += 1;
                                }
                                Some(_) => {}
                            }
                            p.last_db = Some(e.db);
                            let opts = self.options(chunk.version, e.type_id, e.meta.is_some());
                            p.commands += entry_commands(&mut p.resp, e, &v, &opts, &mut p.losses)
                                .map_err(|err| {
                                anyhow::anyhow!("key {}: {err}", rdbkit::text::escape_bytes(&e.key))
                            })? as u64;
                        }
                    }
                }
                Item::Function { .. }
                    if self.format == Format::Resp
                        && self.filter.is_empty()
                        && self.target.as_ref().is_some_and(|t| !t.has_functions()) =>
                {
                    p.functions_skipped += 1;
                }
                Item::Function { code }
                    if self.format == Format::Resp && self.filter.is_empty() =>
                {
                    p.resp.cmd(&[b"FUNCTION", b"LOAD", b"REPLACE", code]);
                    p.commands += 1;
                }
                Item::Script { body, .. }
                    if self.format == Format::Resp && self.filter.is_empty() =>
                {
                    p.resp.cmd(&[b"SCRIPT", b"LOAD", body]);
                    p.commands += 1;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn select(resp: &mut Resp, db: u64) {
    resp.begin(2);
    resp.arg(b"SELECT");
    resp.arg_int(db as i64);
}

/// A part's buffer is kept for reuse up to this capacity.
const KEEP_BUFFER: usize = 2 << 20;

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
    let exporter = Exporter {
        format: a.format,
        filter: a.filter.to_filter_for(&a.input.file, &a.dups)?,
        min_size: a.size.min_size,
        limits: Limits::default(),
        target: a.target_version.clone(),
        drop_field_ttls: a.field_ttls == FieldTtls::Drop,
        now_ms: super::now_ms(),
    };
    let mut total = Part::default();
    let mut current_db: Option<u64> = None;
    let mut selects = Resp::default();
    let res = input.decode_chunks(
        a.threads.options(!a.input.no_checksum),
        &exporter,
        |p| -> Result<()> {
            let buf = &p.resp.buf;
            match p.first_db {
                Some((db, at)) if current_db != Some(db) => {
                    selects.buf.clear();
                    select(&mut selects, db);
                    out.write_all(&buf[..at])?;
                    out.write_all(&selects.buf)?;
                    out.write_all(&buf[at..])?;
                    total.commands += 1;
                }
                _ => out.write_all(buf)?,
            }
            if p.last_db.is_some() {
                current_db = p.last_db;
            }
            total.keys += p.keys;
            total.empty += p.empty;
            total.commands += p.commands;
            total.losses.add(&p.losses);
            total.functions_skipped += p.functions_skipped;
            p.resp.buf.clear();
            p.resp.buf.shrink_to(KEEP_BUFFER);
            *p = Part {
                resp: std::mem::take(&mut p.resp),
                ..Part::default()
            };
            Ok(())
        },
    );
    out.flush()?;
    res.with_context(|| a.input.file.display().to_string())?;
    let Part {
        keys,
        empty,
        commands,
        losses,
        functions_skipped,
        ..
    } = total;
    for line in losses.describe() {
        eprintln!("not expressible on the target: {line}");
    }
    if functions_skipped > 0 {
        eprintln!(
            "not expressible on the target: {functions_skipped} function libraries left out \
             (FUNCTION LOAD needs Redis 7.0+)"
        );
    }
    match a.format {
        Format::Jsonl => eprintln!("exported {}", count(keys, "key")),
        Format::Resp => eprintln!(
            "exported {} as {} ({empty} empty collections skipped)",
            count(keys, "key"),
            count(commands, "command")
        ),
    }
    Ok(())
}
