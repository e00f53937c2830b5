//! `rdbkit verify`: check that a target holds every key of a dump.

use super::import::TargetArgs;
use super::{FilterArgs, InputArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use rdbkit::output::count;
use rdbkit::replay::verify::{verify, VerifyConfig};
use rdbkit::source::Input;
use std::collections::BTreeMap;
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

/// Arguments of `rdbkit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    target: TargetArgs,
    /// Source-to-target database mapping, as given to import.
    #[arg(long, value_parser = super::import::parse_db_map)]
    db_map: Option<BTreeMap<u64, u64>>,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    dups: super::DuplicateArgs,
    #[command(flatten)]
    transform: super::TransformArgs,
    /// Allowed key expiry difference in milliseconds.
    #[arg(long, default_value_t = 2000)]
    ttl_tolerance_ms: i64,
    /// Pipelined connections per primary.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    connections: u16,
    /// Most reply bytes (as expected from the dump) in flight per connection.
    #[arg(long, default_value_t = VerifyConfig::default().window_bytes)]
    window_bytes: usize,
    /// Seconds without a reply before a connection is considered dead.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

/// Runs `verify`.
pub fn run(a: &VerifyArgs) -> Result<()> {
    let target = a.target.target()?;
    let file = match rdbkit::source::aof::detect(&a.input.file)? {
        Some(aof) => aof_base(&aof, "verify")?,
        None => a.input.file.clone(),
    };
    let input = Input::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let cfg = VerifyConfig {
        filter: a.filter.to_filter_for(&file, &a.dups)?,
        db_map: a.db_map.clone().unwrap_or_default(),
        ttl_tolerance_ms: a.ttl_tolerance_ms,
        verify_checksum: !a.input.no_checksum,
        connections: usize::from(a.connections),
        window_bytes: a.window_bytes.max(1),
        timeout: Duration::from_secs(a.timeout.max(1)),
        transform: a.transform.to_transform()?,
        ..VerifyConfig::default()
    };
    let r = verify(input, &target, &cfg).with_context(|| file.display().to_string())?;
    for (k, why) in &r.mismatches {
        println!("MISMATCH {k}: {why}");
    }
    for m in &r.library_mismatches {
        println!("MISMATCH {m}");
    }
    println!(
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
    println!(
        "compared by DUMP payload: {} equal, {} with another payload read again by elements",
        count(r.by_dump, "key"),
        r.read_again
    );
    println!(
        "verified: {} equal, {} differ, {} not compared (filtered, expiring or empty)",
        count(r.matched as u64, "key"),
        r.mismatched,
        r.skipped
    );
    if r.libraries > 0 {
        println!(
            "function libraries: {} of the dump checked on {} primar{}, {} missing or different",
            r.libraries,
            r.primaries,
            if r.primaries == 1 { "y" } else { "ies" },
            r.library_mismatches.len()
        );
    }
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
