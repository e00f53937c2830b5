//! `rdbkit report`: memory estimates per key, biggest keys, totals, expiry histogram, memory by
//! prefix; as text, CSV, JSON, JSON lines or a self-contained HTML page.

use super::{now_ms, FilterArgs, InputArgs};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use rdbkit::output::report::{self, Report, ReportOptions};
use rdbkit::source::Input;
use rdbkit::Item;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Output formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable tables.
    Text,
    /// One row per key.
    Csv,
    /// The summary as one JSON object.
    Json,
    /// One JSON object per key.
    Jsonl,
    /// A self-contained page with a zoomable treemap and the tables.
    Html,
}

/// `--min-size`: keys whose estimated memory is below it are left out.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = super::heading::FILTERS)]
pub struct SizeArgs {
    /// Only keys whose estimated memory is at least this (bytes; k/m/g suffixes, e.g. 10k, 1.5MB).
    #[arg(long = "min-size", value_name = "SIZE", value_parser = report::parse_size)]
    pub min_size: Option<u64>,
}

/// Arguments of `rdbkit report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    dups: super::DuplicateArgs,
    #[command(flatten)]
    size: SizeArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text", help_heading = super::heading::OUTPUT)]
    format: Format,
    /// Write here instead of stdout.
    #[arg(short, long, help_heading = super::heading::OUTPUT)]
    output: Option<PathBuf>,
    /// How many keys the biggest-keys lists hold.
    #[arg(long, default_value_t = 10, value_name = "N", help_heading = super::heading::OUTPUT)]
    top: usize,
    /// Separator of key segments for the prefix tree.
    #[arg(long, default_value = ":", value_name = "SEP", help_heading = super::heading::OUTPUT)]
    separator: String,
    /// Depth of the prefix tree, in segments.
    #[arg(long, default_value_t = 3, value_name = "N", help_heading = super::heading::OUTPUT)]
    depth: usize,
}

/// Flush the output buffer beyond this size.
const FLUSH_AT: usize = 1 << 20;

/// Runs `report`.
pub fn run(a: &ReportArgs) -> Result<()> {
    let input = Input::open(&a.input.file)
        .with_context(|| format!("opening {}", a.input.file.display()))?;
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let filter = a.filter.to_filter_for(&a.input.file, &a.dups)?;
    let min_size = a.size.min_size.unwrap_or(0);
    let mut rep = Report::new(ReportOptions {
        top: a.top,
        separator: super::unescape(&a.separator),
        depth: a.depth,
        now_ms: now_ms(),
        ..Default::default()
    });
    let mut scratch = Vec::new();
    let mut buf = String::new();
    if a.format == Format::Csv {
        buf.push_str(report::CSV_HEADER);
    }
    input
        .decode(!a.input.no_checksum, |item, _| -> Result<()> {
            let Item::Entry(e) = item else { return Ok(()) };
            if !filter.matches(&e) {
                return Ok(());
            }
            let rec = rep.record(&e, &mut scratch)?;
            if rec.memory < min_size {
                return Ok(());
            }
            rep.add(&rec);
            match a.format {
                Format::Csv => report::csv_row(&mut buf, &rec),
                Format::Jsonl => {
                    buf.push_str(&report::record_json(&rec).to_string());
                    buf.push('\n');
                }
                _ => {}
            }
            if buf.len() >= FLUSH_AT {
                out.write_all(buf.as_bytes())?;
                buf.clear();
            }
            Ok(())
        })
        .with_context(|| a.input.file.display().to_string())?;
    match a.format {
        Format::Csv | Format::Jsonl => {}
        Format::Text => buf = rep.to_text(),
        Format::Json => buf = serde_json::to_string_pretty(&rep.to_json())? + "\n",
        Format::Html => buf = rdbkit::output::html::render(&rep, &title(&a.input.file)),
    }
    out.write_all(buf.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn title(file: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stdin".into());
    format!("rdbkit memory report: {name}")
}
