//! `rdbkit diff A B`: one JSON line per difference between two datasets, each a dump, the RDB
//! base of an AOF, or a live server. The comparison is [`rdbkit::diff`]; this opens the sides
//! (again for each pass) and prints.

use super::live;
use super::source_mode::SourceMode;
use super::{heading, FilterArgs};
use anyhow::{Context, Result};
use clap::Args;
use rdbkit::diff::{diff, DiffOptions, DiffSummary, Difference};
use rdbkit::source::replica::Replica;
use rdbkit::source::Input;
use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `rdbkit diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first dataset: a dump file (`.gz` too), an AOF whose RDB base holds everything, or a
    /// server URL (redis://, rediss://, unix://, redis+sentinel://; the password also from
    /// RDBKIT_SOURCE_AUTH).
    pub a: PathBuf,
    /// The second dataset, as A.
    pub b: PathBuf,
    /// Do not verify the CRC64 trailers.
    #[arg(long, help_heading = heading::SOURCE)]
    pub no_checksum: bool,
    /// How a server side is read: sync (as a replica, a point-in-time snapshot; a source that
    /// refuses SYNC/PSYNC is read by scan instead) or scan (SCAN + DUMP, not point-in-time).
    #[arg(long, value_enum, default_value = "sync", help_heading = heading::SOURCE)]
    pub source_mode: SourceMode,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Key TTLs and hash field TTLs that differ by at most this much are equal (e.g. 2s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = live::parse_duration, help_heading = heading::CHECKING)]
    pub ttl_tolerance: Duration,
    /// Write the differences here instead of stdout.
    #[arg(short, long, help_heading = heading::OUTPUT)]
    pub output: Option<PathBuf>,
}

/// One side: a file, or a server read again for each pass.
enum Side {
    File(PathBuf),
    Live {
        target: Box<rdbkit::replay::Target>,
        name: String,
        /// The replica of the pass under way (sync mode), stopped when the next pass opens.
        replica: RefCell<Option<Replica>>,
    },
}

impl Side {
    fn new(arg: &Path) -> Result<Side> {
        if arg.as_os_str() == "-" {
            anyhow::bail!(super::Usage(
                "diff reads each side more than once, which stdin cannot be: give a file".into()
            ));
        }
        if live::is_url(arg) {
            let target = live::source_target(&arg.to_string_lossy())?;
            let name = target.display();
            return Ok(Side::Live {
                target: Box::new(target),
                name,
                replica: RefCell::new(None),
            });
        }
        if let Some(aof) = rdbkit::source::aof::detect(arg)? {
            return Ok(Side::File(super::verify::aof_base(&aof, "diff")?));
        }
        Ok(Side::File(arg.to_path_buf()))
    }

    fn name(&self) -> String {
        match self {
            Side::File(p) => p.display().to_string(),
            Side::Live { name, .. } => name.clone(),
        }
    }

    fn open(&self, mode: SourceMode, dbs: &[u64]) -> std::io::Result<Input> {
        match self {
            // streamed, not mapped: the pages of a mapped dump would stay resident and count
            // in the process's memory, while a stream keeps a bounded window
            Side::File(p) => {
                let f = std::fs::File::open(p)?;
                if f.metadata()?.is_dir() {
                    return Input::open(p);
                }
                Ok(Input::from_reader(Box::new(f)))
            }
            Side::Live {
                target,
                name,
                replica,
            } => {
                if let Some(r) = replica.borrow_mut().take() {
                    r.stop();
                }
                let opened = super::source_mode::open(mode, target, name, dbs, false, || {
                    live::connect(target, true, None)
                })
                .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
                Ok(match opened {
                    Ok(r) => {
                        let snap = r.snapshot();
                        *replica.borrow_mut() = Some(r);
                        Input::Stream(Box::new(snap))
                    }
                    Err(scan) => scan.input(),
                })
            }
        }
    }

    fn is_live(&self) -> bool {
        matches!(self, Side::Live { .. })
    }

    fn close(&self) {
        if let Side::Live { replica, .. } = self {
            if let Some(r) = replica.borrow_mut().take() {
                r.stop();
            }
        }
    }
}

/// Runs `diff`: `Ok(true)` when A and B hold the same keys, `Ok(false)` when they differ.
pub fn run(a: &DiffArgs) -> Result<bool> {
    let (side_a, side_b) = (Side::new(&a.a)?, Side::new(&a.b)?);
    let (name_a, name_b) = (side_a.name(), side_b.name());
    // A is read twice or more, B once plus once per round of second looks: a server (read again
    // for each pass) goes on the B side when the other side is a file
    let swap = side_a.is_live() && !side_b.is_live();
    let (first, second) = if swap {
        (&side_b, &side_a)
    } else {
        (&side_a, &side_b)
    };
    let opts = DiffOptions {
        ttl_tolerance_ms: i64::try_from(a.ttl_tolerance.as_millis()).unwrap_or(i64::MAX),
        now_ms: super::now_ms(),
        verify_checksum: !a.no_checksum,
        filter: a.filter.to_filter(),
        ..DiffOptions::default()
    };
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut line = Vec::new();
    let dbs = &a.filter.dbs;
    let res = diff(
        &mut || first.open(a.source_mode, dbs),
        &mut || second.open(a.source_mode, dbs),
        &opts,
        &mut |d: &Difference| {
            line.clear();
            let d = if swap { d.clone().flipped() } else { d.clone() };
            d.to_json(&mut line);
            line.push(b'\n');
            out.write_all(&line)
        },
    );
    side_a.close();
    side_b.close();
    out.flush().context("writing the differences")?;
    let sum = res
        .map_err(|e| match e {
            rdbkit::diff::DiffError::Write(e) => anyhow::Error::from(e),
            e => anyhow::Error::from(e),
        })
        .map(|s| if swap { s.flipped() } else { s })
        .with_context(|| format!("diff {name_a} {name_b}"))?;
    eprintln!("{}", summary_line(&sum, &name_a, &name_b));
    Ok(sum.differences() == 0)
}

/// The summary on stderr.
fn summary_line(s: &DiffSummary, a: &str, b: &str) -> String {
    use rdbkit::text::count;
    let kinds = ["missing", "extra", "type", "value", "ttl", "field_ttl"]
        .iter()
        .map(|k| format!("{} {k}", s.by_kind.get(k).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut line = format!(
        "diff: A {a}: {}, B {b}: {}; {} equal; {} ({kinds})",
        count(s.a_keys, "key"),
        count(s.b_keys, "key"),
        count(s.equal, "key"),
        count(s.differences(), "difference"),
    );
    line.push_str(&format!(
        "\ndiff: key index {} in memory; {} passes over A, {} over B; {} compared element by element",
        rdbkit::output::report::human(s.index_bytes),
        s.passes.0,
        s.passes.1,
        count(s.detailed, "key")
    ));
    if s.modules_by_bytes > 0 {
        line.push_str(&format!(
            "\ndiff: {} of one module type whose serialized bytes differ, not counted as differences (a module can serialize an equal value differently); compare them with the module's own commands",
            count(s.modules_by_bytes, "module value")
        ));
    }
    if s.collisions > 0 {
        line.push_str(&format!(
            "; {} with colliding key hashes compared by whole key",
            count(s.collisions, "key")
        ));
    }
    if s.undetailed > 0 {
        line.push_str(&format!(
            "; {} reported without their first differing element (over the memory budget)",
            count(s.undetailed, "key")
        ));
    }
    line
}
