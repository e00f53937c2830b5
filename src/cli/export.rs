//! `rdbkit export`: JSON lines or RESP commands. The sink is [`rdbkit::output::export`]; this
//! wires the input to it and its writer to the output.

use super::report::SizeArgs;
use super::{heading, FieldTtls, FilterArgs, InputArgs, ThreadArgs};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use rdbkit::commands::TargetInfo;
use rdbkit::output::count;
use rdbkit::output::export::{ExportError, ExportFormat, ExportTotals, ExportWriter, Exporter};
use rdbkit::output::report::memory::Limits;
use rdbkit::source::Input;
use std::io::Write;
use std::path::{Path, PathBuf};

mod aof;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per key.
    Jsonl,
    /// RESP commands for `redis-cli --pipe`.
    Resp,
}

/// Arguments of `rdbkit export`, grouped in `--help` by concern.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    dups: super::DuplicateArgs,
    #[command(flatten)]
    threads: ThreadArgs,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    size: SizeArgs,
    #[command(flatten)]
    transform: super::TransformArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl", help_heading = heading::OUTPUT)]
    format: Format,
    /// Write here instead of stdout.
    #[arg(short, long, help_heading = heading::OUTPUT)]
    output: Option<PathBuf>,
    /// RESP only: write commands that this server accepts (`6.2`, `7.0`, `7.4`, `8.2`,
    /// `valkey-8.1`, …), with the importer's per-version rules; what it cannot hold is reported
    /// on stderr. Default: the newest Redis.
    #[arg(long, value_name = "RELEASE", value_parser = parse_release, help_heading = heading::OUTPUT)]
    target_version: Option<TargetInfo>,
    /// RESP only: hash field TTLs on a target without them (before Redis 7.4): refuse (the export
    /// fails), or write the hash without them (fields already expired left out; counted).
    #[arg(long, value_enum, default_value = "refuse", help_heading = heading::OUTPUT)]
    field_ttls: FieldTtls,
    /// RESP only: write RedisJSON documents as `SET key <document>` (a string holding the
    /// document) instead of `JSON.SET key $ <document>`, for a target without a JSON module.
    #[arg(long, help_heading = heading::OUTPUT)]
    json_as_string: bool,
}

fn parse_release(s: &str) -> Result<TargetInfo, String> {
    TargetInfo::for_release(s).map_err(|e| e.to_string())
}

/// Runs `export`.
pub fn run(a: &ExportArgs) -> Result<()> {
    if let Some(aof) = rdbkit::source::aof::detect(&a.input.file)? {
        a.transform.refuse_for("an AOF's commands")?;
        return aof::run(a, &aof);
    }
    export_dump(a, &a.input.file)
}

/// The output: `--output` (created) or stdout.
fn output(a: &ExportArgs, append: bool) -> Result<Box<dyn Write>> {
    Ok(match &a.output {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .append(append)
                .truncate(!append)
                .open(p)
                .with_context(|| format!("creating {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    })
}

/// Exports the dump at `file`.
fn export_dump(a: &ExportArgs, file: &Path) -> Result<()> {
    let input = Input::open(file).with_context(|| format!("opening {}", file.display()))?;
    let filter = a.filter.to_filter_for(file, &a.dups)?;
    let transform = a.transform.to_transform()?;
    super::check_renames(file, &filter, &transform)?;
    let out = output(a, false)?;
    let exporter = Exporter {
        transform,
        transformed: Default::default(),
        format: match a.format {
            Format::Jsonl => ExportFormat::Jsonl,
            Format::Resp => ExportFormat::Resp,
        },
        filter,
        min_size: a.size.min_size,
        limits: Limits::default(),
        target: a.target_version.clone(),
        drop_field_ttls: a.field_ttls == FieldTtls::Drop,
        json_as_string: a.json_as_string,
        now_ms: super::now_ms(),
    };
    let mut writer = ExportWriter::new(out);
    let res = input.decode_chunks(a.threads.options(!a.input.no_checksum), &exporter, |p| {
        writer.write(p).map_err(ExportError::Write)
    });
    writer.flush()?;
    res.map_err(|e| match e {
        // the error itself, not its wrapper: a closed pipe is found by its type (main.rs)
        ExportError::Write(e) => anyhow::Error::from(e),
        ExportError::Decode(e) => anyhow::Error::from(e),
        e => anyhow::Error::from(e),
    })
    .with_context(|| file.display().to_string())?;
    let ExportTotals {
        keys,
        empty,
        commands,
        losses,
        functions_skipped,
    } = writer.totals();
    for line in losses.describe() {
        eprintln!("not expressible on the target: {line}");
    }
    for line in exporter.transformed.describe() {
        eprintln!("transformed: {line}");
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
