//! `rdbkit verify`: check that a target holds every key of a dump.

use super::import::TargetArgs;
use super::{heading, FilterArgs, InputArgs};
use crate::cli::say;
use anyhow::{bail, Context, Result};
use clap::Args;
use rdbkit::output::count;
use rdbkit::replay::verify::{verify, VerifyConfig};
use rdbkit::source::Input;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What `verify` (or `diff`, named by `cmd`) can check of an AOF: its RDB base, when no write was
/// recorded after it. Its state after recorded writes is not computed offline, so a check of it
/// could not be exact: refused with what to do instead.
pub(crate) fn aof_base(aof: &rdbkit::source::aof::Aof, cmd: &str) -> Result<std::path::PathBuf> {
    let scan = rdbkit::source::aof::scan(aof, None)?;
    let plain = ["SELECT", "MULTI", "EXEC"];
    let writes: u64 = scan
        .commands
        .iter()
        .filter(|(n, _)| !plain.contains(&n.as_str()))
        .map(|(_, c)| c)
        .sum();
    match aof.rdb_base() {
        Some(b) if writes == 0 => {
            eprintln!(
                "{}: no write recorded after the base: {cmd} reads the base {}",
                aof.path.display(),
                b.name()
            );
            Ok(b.path.clone())
        }
        base => bail!(
            "{}: {cmd} compares a dump's keys, and this AOF's keys are {} after {writes} recorded commands, which rdbkit does not compute offline: a check could not be exact. Start a server on a copy of the AOF and compare the two (DEBUG DIGEST){}",
            aof.path.display(),
            if base.is_some() { "its base" } else { "nothing" },
            base.map(|b| format!(", or {cmd} the base alone ({})", b.path.display()))
                .unwrap_or_default()
        ),
    }
}

/// Arguments of `rdbkit verify`, grouped in `--help` as import's are.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    dups: super::DuplicateArgs,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Source-to-target database mapping, as given to import.
    #[arg(long, value_parser = super::import::parse_db_map, help_heading = heading::TRANSFORMS)]
    db_map: Option<BTreeMap<u64, u64>>,
    #[command(flatten)]
    transform: super::TransformArgs,
    /// Allowed key expiry difference in milliseconds.
    #[arg(long, default_value_t = 2000, help_heading = heading::CHECKING)]
    ttl_tolerance_ms: i64,
    /// Pipelined connections per primary.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256), help_heading = heading::CHECKING)]
    connections: u16,
    /// Most reply bytes (as expected from the dump) in flight per connection.
    #[arg(long, default_value_t = VerifyConfig::default().window_bytes, help_heading = heading::CHECKING)]
    window_bytes: usize,
    /// Seconds without a reply before a connection is considered dead.
    #[arg(long, default_value_t = 30, help_heading = heading::CHECKING)]
    timeout: u64,
    /// Check only N keys chosen at random among those the filters keep (a fast answer on a huge
    /// target); the dump is read once more first to count them.
    #[arg(long, value_name = "N", help_heading = heading::CHECKING)]
    sample: Option<u64>,
    /// Seed of the --sample choice (default: from the clock); the same seed and dump choose the
    /// same keys.
    #[arg(long, value_name = "SEED", requires = "sample", help_heading = heading::CHECKING)]
    seed: Option<u64>,
    /// Result as text (MISMATCH lines and a summary) or as one JSON object on stdout.
    #[arg(long, value_enum, default_value = "text", help_heading = heading::OUTPUT)]
    format: VerifyFormat,
    /// Also write the result (counts, the first differences, the target, timings, exit status)
    /// to FILE as one JSON document, written whole (temporary file, then rename) also when the
    /// check fails.
    #[arg(long, value_name = "FILE", help_heading = heading::OUTPUT)]
    summary_json: Option<PathBuf>,
}

/// `verify --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFormat {
    /// MISMATCH lines and a summary.
    Text,
    /// One JSON object.
    Json,
}

/// The record offsets of `n` keys chosen at random (seeded) among the keys of `file` that
/// `filter` keeps (`--slots` of the names `transform` gives), and how many it keeps: 8 bytes per
/// key while choosing.
fn sample(
    file: &std::path::Path,
    filter: &rdbkit::filter::Filter,
    transform: &rdbkit::transform::Transform,
    n: u64,
    seed: u64,
) -> Result<(std::collections::HashSet<u64>, u64)> {
    if file.as_os_str() == "-" {
        bail!(super::Usage(
            "--sample reads the dump twice (to count its keys, then to check the sample), which \
             stdin cannot be: give a file"
                .into()
        ));
    }
    let mut offsets: Vec<u64> = Vec::new();
    Input::open(file)
        .with_context(|| format!("opening {}", file.display()))?
        .decode(false, |item, _| -> Result<(), rdbkit::DecodeError> {
            if let rdbkit::Item::Entry(e) = item {
                if filter.matches_renamed(&e, &transform.name(&e.key)) {
                    offsets.push(e.offset);
                }
            }
            Ok(())
        })
        .with_context(|| file.display().to_string())?;
    let total = offsets.len() as u64;
    // a partial Fisher-Yates shuffle: the first n places hold the sample
    let mut rng = rdbkit::testing::XorShift::with_seed(seed);
    let take = n.min(total) as usize;
    for i in 0..take {
        let j = i + (rng.next_u64() % (offsets.len() - i) as u64) as usize;
        offsets.swap(i, j);
    }
    offsets.truncate(take);
    Ok((offsets.into_iter().collect(), total))
}

/// What `verify` found: printed as text, as JSON (`--format json`) and in `--summary-json`, from
/// this one value.
#[derive(Debug, Serialize)]
pub struct VerifyResult {
    /// Keys compared and equal.
    pub matched: u64,
    /// Keys that differ.
    pub mismatched: u64,
    /// Keys not compared (filtered, expiring or empty).
    pub skipped: u64,
    /// `--sample`: keys checked, of how many, and the seed.
    pub sample: Option<Sample>,
    /// The first differences: the key (database and name, as the text prints it) and why.
    pub mismatches: Vec<Mismatch>,
    /// Function libraries of the dump checked.
    pub libraries: usize,
    /// Primaries they were checked on.
    pub primaries: usize,
    /// Libraries missing or different on a primary.
    pub library_mismatches: Vec<String>,
    /// Keys settled by their `DUMP` payload.
    pub by_dump: u64,
    /// Keys read again element by element.
    pub read_again: u64,
    /// Connections that read keys.
    pub connections: usize,
    /// Read commands sent.
    pub commands: u64,
    /// Batches handed to the connections.
    pub batches: u64,
    /// Keys redirected (MOVED/ASK) and read again.
    pub redirected: u64,
    /// Most reply bytes in flight on one connection.
    pub peak_window_bytes: usize,
}

/// `--sample`'s choice.
#[derive(Debug, Serialize)]
pub struct Sample {
    /// Keys checked.
    pub keys: u64,
    /// Keys the filters keep.
    pub of: u64,
    /// The seed that chose them.
    pub seed: u64,
}

/// One differing key.
#[derive(Debug, Serialize)]
pub struct Mismatch {
    /// `db0 "key"`.
    pub key: String,
    /// What differs.
    pub why: String,
}

/// `verify --summary-json`: the result with the run's outcome.
#[derive(Debug, Serialize)]
struct VerifySummary {
    command: &'static str,
    status: &'static str,
    exit_code: u8,
    error: Option<String>,
    /// The target, its password masked.
    target: Option<String>,
    /// The dump checked.
    source: String,
    elapsed_s: f64,
    #[serde(flatten)]
    result: Option<VerifyResult>,
}

/// Runs `verify`; with `--summary-json`, writes its result there whatever the outcome.
pub fn run(a: &VerifyArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let mut out = VerifySummary {
        command: "verify",
        status: "ok",
        exit_code: 0,
        error: None,
        target: None,
        source: a.input.file.display().to_string(),
        elapsed_s: 0.0,
        result: None,
    };
    if a.summary_json
        .as_deref()
        .is_some_and(super::summary::is_stdout)
    {
        super::text_to_stderr();
    }
    let result = run_verify(a, &mut out.target, &mut out.result);
    if let Some(path) = &a.summary_json {
        out.elapsed_s = started.elapsed().as_secs_f64();
        if let Err(e) = &result {
            out.status = "failed";
            out.exit_code = super::exit_code(e);
            out.error = Some(format!("{e:#}"));
        }
        if let Err(w) = super::summary::write_json(path, &out) {
            match &result {
                Ok(()) => return Err(w),
                Err(_) => eprintln!("rdbkit: {w:#}"),
            }
        }
    }
    result
}

/// The check itself: the target and the result go into `shown` and `out` as they are known.
fn run_verify(
    a: &VerifyArgs,
    shown: &mut Option<String>,
    out: &mut Option<VerifyResult>,
) -> Result<()> {
    let target = a.target.target()?;
    *shown = Some(target.display());
    let file = match rdbkit::source::aof::detect(&a.input.file)? {
        Some(aof) => aof_base(&aof, "verify")?,
        None => a.input.file.clone(),
    };
    let mut filter = a.filter.to_filter_for(&file, &a.dups)?;
    let mut sampled = None;
    let transform = a.transform.to_transform()?;
    if let Some(n) = a.sample {
        let seed = a.seed.unwrap_or_else(|| super::now_ms() as u64);
        let (chosen, total) = sample(&file, &filter, &transform, n, seed)?;
        sampled = Some((chosen.len() as u64, total, seed));
        filter.sample = Some(std::sync::Arc::new(chosen));
    }
    let input = Input::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let cfg = VerifyConfig {
        filter,
        db_map: a.db_map.clone().unwrap_or_default(),
        ttl_tolerance_ms: a.ttl_tolerance_ms,
        verify_checksum: !a.input.no_checksum,
        connections: usize::from(a.connections),
        window_bytes: a.window_bytes.max(1),
        timeout: Duration::from_secs(a.timeout.max(1)),
        transform,
        ..VerifyConfig::default()
    };
    let r = verify(input, &target, &cfg).with_context(|| file.display().to_string())?;
    let res = VerifyResult {
        matched: r.matched,
        mismatched: r.mismatched,
        skipped: r.skipped,
        sample: sampled.map(|(keys, of, seed)| Sample { keys, of, seed }),
        mismatches: r
            .mismatches
            .iter()
            .map(|(k, why)| Mismatch {
                key: k.clone(),
                why: why.clone(),
            })
            .collect(),
        libraries: r.libraries,
        primaries: r.primaries,
        library_mismatches: r.library_mismatches.clone(),
        by_dump: r.by_dump,
        read_again: r.read_again,
        connections: r.connections,
        commands: r.commands,
        batches: r.batches,
        redirected: r.redirected,
        peak_window_bytes: r.peak_window_bytes,
    };
    if a.format == VerifyFormat::Json {
        say!("{}", serde_json::to_string(&res)?);
    } else {
        print_text(&res);
    }
    let r = out.insert(res);
    match (r.mismatched, r.library_mismatches.len()) {
        (0, 0) => {}
        (0, n) => bail!("{n} function libraries missing or different on the target"),
        (k, 0) => bail!("{} differ", count(k, "key")),
        (k, n) => bail!(
            "{} differ, and {n} function libraries missing or different on the target",
            count(k, "key")
        ),
    }
    Ok(())
}

/// The text result: MISMATCH lines, then the summary.
fn print_text(r: &VerifyResult) {
    if let Some(s) = &r.sample {
        say!(
            "sample: {} of {} keys chosen at random (--seed {})",
            s.keys,
            s.of,
            s.seed
        );
    }
    for m in &r.mismatches {
        say!("MISMATCH {}: {}", m.key, m.why);
    }
    for m in &r.library_mismatches {
        say!("MISMATCH {m}");
    }
    say!(
        "read over {} connections: {} commands in {} batches, at most {} reply bytes in flight per connection{}",
        r.connections,
        r.commands,
        r.batches,
        r.peak_window_bytes,
        if r.redirected > 0 {
            format!(", {} keys redirected (MOVED/ASK) and read again", r.redirected)
        } else {
            String::new()
        }
    );
    say!(
        "compared by DUMP payload: {} equal, {} with another payload read again by elements",
        count(r.by_dump, "key"),
        r.read_again
    );
    say!(
        "verified: {} equal, {} differ, {} not compared (filtered, expiring or empty)",
        count(r.matched, "key"),
        r.mismatched,
        r.skipped
    );
    if r.libraries > 0 {
        say!(
            "function libraries: {} of the dump checked on {} primar{}, {} missing or different",
            r.libraries,
            r.primaries,
            if r.primaries == 1 { "y" } else { "ies" },
            r.library_mismatches.len()
        );
    }
}
