//! Command-line interface: argument parsing and the subcommands. `main.rs` only maps the outcome to
//! an exit code.

pub mod diff;
pub mod docs;
pub mod export;
pub mod import;
pub mod info;
pub mod live;
pub mod metrics;
pub mod plan;
pub mod rates;
pub mod report;
pub mod rewrite;
pub mod source_mode;
pub mod summary;
pub mod verify;

use clap::{Args, Parser, Subcommand};
use rdbkit::filter::Filter;
use rdbkit::source;
use rdbkit::ValueType;
use std::path::PathBuf;

/// rdbkit: inspect, export and replay Redis / Valkey / Redis Enterprise RDB dumps.
#[derive(Debug, Parser)]
#[command(name = "rdbkit", version, about, propagate_version = true)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarise a dump: producer, version, aux fields, keys per db/type/encoding, checksum.
    Info(info::InfoArgs),
    /// Write every key as JSON lines or as RESP commands for `redis-cli --pipe`.
    Export(export::ExportArgs),
    /// Replay a dump into a running Redis primary (RESTORE of the raw values, commands as fallback).
    Import(Box<import::ImportArgs>),
    /// Show what an import would do to a target, writing nothing: keys and memory per primary
    /// against maxmemory, keys going by commands, values the target cannot hold, conflicts.
    /// Takes import's options; exit 3 when the import would not succeed (`import --dry-run`).
    Plan(Box<import::ImportArgs>),
    /// Check that a target holds every key of a dump (ordinary commands only, no DEBUG).
    Verify(verify::VerifyArgs),
    /// Memory report: estimated memory per key, biggest keys, totals, expiry, memory by prefix.
    Report(report::ReportArgs),
    /// Write a new dump holding only the selected keys (records copied byte for byte).
    Filter(rewrite::FilterCmdArgs),
    /// Write one dump per cluster shard, keys placed by hash slot.
    Split(rewrite::SplitArgs),
    /// Save a running server's snapshot to a file, received as a replica receives it.
    Dump(live::DumpArgs),
    /// Compare two datasets (dumps, AOF bases, live servers) key by key: one JSON line per
    /// difference; exit 0 when equal, 1 when they differ, 2 on error.
    Diff(diff::DiffArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff) on stdout: `rdbkit man > rdbkit.1`.
    Man,
}

/// Set when stdout carries the JSON summary (`--summary-json -`): the text summary then goes to
/// stderr.
static TEXT_TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sends the text summary to stderr from now on (`--summary-json -` has stdout).
pub fn text_to_stderr() {
    TEXT_TO_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Prints one line of the text summary: on stdout, or on stderr under `--summary-json -`.
pub fn say_line(line: std::fmt::Arguments<'_>) {
    if TEXT_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// `println!` for the text summary of `import` and `verify` ([`say_line`]).
macro_rules! say {
    ($($t:tt)*) => {
        $crate::cli::say_line(format_args!($($t)*))
    };
}
pub(crate) use say;

/// Output of the dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DryRunFormat {
    /// Readable text.
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// A mistake in how rdbkit was called that clap could not see (e.g. a `--target` that is not a
/// URL): exits 2, like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The exit code of a command that failed with `e`: 2 for a usage error, 3 when `plan` says the
/// import would not succeed, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<Usage>()) {
        2
    } else if e.chain().any(|c| c.is::<WouldFail>()) {
        3
    } else {
        1
    }
}

/// The command ran, and its answer is "no" (`plan`: the import would not succeed): exits 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WouldFail(pub String);

/// The headings `--help` groups options under, by concern; a command's headings appear in the
/// order of its first option under each.
pub mod heading {
    /// Where the data comes from and how it is read.
    pub const SOURCE: &str = "Source";
    /// Where it goes (URL, Sentinel, TLS).
    pub const TARGET: &str = "Target";
    /// Keys the target already holds.
    pub const CONFLICTS: &str = "Conflicts";
    /// Which keys.
    pub const FILTERS: &str = "Filters";
    /// What is changed on the way (names, databases, TTLs).
    pub const TRANSFORMS: &str = "Transforms";
    /// How keys are written: paths, connections, limits.
    pub const WRITING: &str = "Writing";
    /// Checkpoints.
    pub const RESUME: &str = "Resume";
    /// Following a live source's writes.
    pub const FOLLOW: &str = "Follow";
    /// How values are compared.
    pub const CHECKING: &str = "Checking";
    /// What is printed or written.
    pub const OUTPUT: &str = "Output";
}

/// Keys that would end up under one name, found before anything is written: a `--rename` that
/// makes two keys one, a key held by several inputs of one import. `import` exits 1, `plan` 3
/// (the import would not succeed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Collision(pub String);

/// Input options shared by the subcommands that read a dump.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// The dump: a file (mapped), a `.gz` file (streamed), or `-` for stdin.
    pub file: PathBuf,
    /// Do not verify the CRC64 trailer.
    #[arg(long, help_heading = heading::SOURCE)]
    pub no_checksum: bool,
}

/// Parallelism options of the subcommands that decode every value (`info`, `export`).
#[derive(Debug, Args)]
#[command(next_help_heading = heading::SOURCE)]
pub struct ThreadArgs {
    /// Threads decoding and formatting values, for mapped files (default: the number of CPUs);
    /// 1 decodes in the main thread only. Streamed input (stdin, `.gz`) is decoded in one thread.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Input bytes per work unit handed to a thread (for tests of the ordering).
    #[arg(long, hide = true, value_name = "BYTES", default_value_t = rdbkit::source::DEFAULT_CHUNK_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_bytes: u64,
}

impl ThreadArgs {
    /// The library's chunking options.
    pub fn options(&self, verify_checksum: bool) -> rdbkit::source::ChunkOptions {
        rdbkit::source::ChunkOptions {
            verify_checksum,
            threads: self
                .threads
                .map_or_else(rdbkit::source::default_threads, usize::from),
            chunk_bytes: self.chunk_bytes,
            ..Default::default()
        }
    }
}

/// Key selection options shared by export, import and reports.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = heading::FILTERS)]
pub struct FilterArgs {
    /// Only these databases (repeatable).
    #[arg(long = "db", value_name = "N")]
    pub dbs: Vec<u64>,
    /// Only keys matching this Redis glob (repeatable; `\xNN` escapes allowed).
    #[arg(long = "key", value_name = "GLOB")]
    pub keys: Vec<String>,
    /// Only values of this type: string, list, set, zset, hash, stream, module (repeatable).
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    pub types: Vec<ValueType>,
    /// Only keys whose cluster hash slot (CRC16 of the key or its {hash tag}; with --rename, of
    /// the new name) is in RANGE: `A-B`, a slot `N`, or `i/n`, the i-th (0-based) of n equal
    /// parts of 0-16383 (repeatable). Several processes, each with its own part (and
    /// --checkpoint), share one import.
    #[arg(long = "slots", value_name = "RANGE", value_parser = rdbkit::cluster::parse_slot_range)]
    pub slots: Vec<(u16, u16)>,
}

/// Transforms of the keys written (import, export): see `rdbkit::transform`.
#[derive(Debug, Args, Default, Clone)]
pub struct TransformArgs {
    /// Write keys matching FROM under TO: `'old:*=new:*'` (repeatable, the first that matches
    /// wins; `*` is the only wildcard, each `*` of TO is what the `*` of the same rank matched;
    /// `\xNN` escapes allowed). `--key` and `--drop-ttl` read the dump's names. Two keys renamed
    /// onto one name are refused before anything is written.
    #[arg(long, value_name = "FROM=TO", help_heading = heading::TRANSFORMS)]
    pub rename: Vec<String>,
    /// Move every key TTL by this much (`6h`: the dump is six hours old and its keys should
    /// expire as they would have; `-30m` moves them earlier). Units ms, s, m, h, d.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = parse_signed_ms, help_heading = heading::TRANSFORMS)]
    pub ttl_shift: Option<i64>,
    /// A key TTL ends at most this long from now (keys without a TTL keep none).
    #[arg(long, value_name = "DURATION", value_parser = parse_ms, help_heading = heading::TRANSFORMS)]
    pub ttl_max: Option<i64>,
    /// Leave out keys whose TTL ends within this long from now (counted in the summary).
    #[arg(long, value_name = "DURATION", value_parser = parse_ms, help_heading = heading::TRANSFORMS)]
    pub skip_expiring_within: Option<i64>,
    /// Keys matching this glob (the dump's names) are written without their TTL (repeatable).
    #[arg(long, value_name = "GLOB", help_heading = heading::TRANSFORMS)]
    pub drop_ttl: Vec<String>,
}

impl TransformArgs {
    /// The library's transform.
    pub fn to_transform(&self) -> anyhow::Result<rdbkit::transform::Transform> {
        let renames = self
            .rename
            .iter()
            .map(|r| rdbkit::transform::Rename::from_bytes(&unescape(r)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| anyhow::anyhow!(Usage(e)))?;
        Ok(rdbkit::transform::Transform {
            renames,
            ttl_shift_ms: self.ttl_shift.unwrap_or(0),
            ttl_max_ms: self.ttl_max,
            skip_expiring_within_ms: self.skip_expiring_within,
            drop_ttl: self.drop_ttl.iter().map(|g| unescape(g)).collect(),
        })
    }

    /// Refuses the transforms where they are not applied (`what`: an AOF's commands exported).
    pub fn refuse_for(&self, what: &str) -> anyhow::Result<()> {
        if self.to_transform()?.is_identity() {
            return Ok(());
        }
        anyhow::bail!(Usage(format!(
            "--rename and the TTL transforms apply to a dump's keys, not to {what}: rdbkit would write the commands' keys under their old names and TTLs"
        )))
    }

    /// Refuses the TTL transforms where they are not applied (`what`: an AOF's commands, a
    /// follow); `--rename` applies to commands too.
    pub fn refuse_ttl_for(&self, what: &str) -> anyhow::Result<()> {
        let ttl_only = rdbkit::transform::Transform {
            renames: Vec::new(),
            ..self.to_transform()?
        };
        if ttl_only.is_identity() {
            return Ok(());
        }
        anyhow::bail!(Usage(format!(
            "the TTL transforms (--ttl-shift, --ttl-max, --skip-expiring-within, --drop-ttl) apply to a dump's keys, not to {what}: the commands set TTLs of their own (--rename applies to both)"
        )))
    }
}

/// Checks, before anything is written, that `--rename` sends no two selected keys of `path` to
/// one name; the error names them.
pub fn check_renames(
    path: &std::path::Path,
    filter: &Filter,
    t: &rdbkit::transform::Transform,
) -> anyhow::Result<()> {
    if t.renames.is_empty() || path.as_os_str() == "-" {
        return Ok(());
    }
    let found = rdbkit::dups::scan_names(
        || source::Input::open(path),
        |e| {
            filter
                .selects(e)
                .then(|| t.name(&e.key))
                .filter(|n| filter.in_slots(n))
        },
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if found.duplicates.is_empty() {
        return Ok(());
    }
    let esc = rdbkit::text::escape_bytes;
    let list: Vec<String> = found
        .duplicates
        .iter()
        .take(10)
        .map(|d| {
            let from: Vec<String> = d
                .sources
                .iter()
                .zip(&d.offsets)
                .map(|(s, o)| format!("{} (offset 0x{o:x})", esc(s)))
                .collect();
            format!("db {}: {} from {}", d.db, esc(&d.key), from.join(" and "))
        })
        .collect();
    anyhow::bail!(Collision(format!(
        "{}: --rename gives {} the name of another key (nothing was written):\n  {}{}",
        path.display(),
        rdbkit::text::count(found.duplicates.len() as u64, "key"),
        list.join("\n  "),
        if found.duplicates.len() > 10 {
            "\n  …"
        } else {
            ""
        }
    )))
}

/// A duration in milliseconds (`500ms`, `10s`, `2m`, `6h`, `1d`, or seconds).
fn parse_ms(s: &str) -> Result<i64, String> {
    let d = live::parse_duration(s)?;
    i64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too long"))
}

/// [`parse_ms`], negative with a leading `-`.
fn parse_signed_ms(s: &str) -> Result<i64, String> {
    match s.trim().strip_prefix('-') {
        Some(rest) => parse_ms(rest).map(|v| -v),
        None => parse_ms(s),
    }
}

fn parse_type(s: &str) -> Result<ValueType, String> {
    ValueType::from_name(s).ok_or_else(|| {
        format!("unknown type {s:?} (string, list, set, zset, hash, stream, module)")
    })
}

impl FilterArgs {
    /// Builds the library filter.
    pub fn to_filter(&self) -> Filter {
        Filter {
            dbs: self.dbs.clone(),
            keys: self.keys.iter().map(|k| unescape(k)).collect(),
            types: self.types.clone(),
            duplicates: None,
            sample: None,
            slots: (!self.slots.is_empty())
                .then(|| std::sync::Arc::new(rdbkit::cluster::SlotSet::from_ranges(&self.slots))),
        }
    }
}

impl FilterArgs {
    /// Builds the library filter for the dump at `path`, after checking it for duplicate keys
    /// ([`check_duplicates`]: an error when some are found and no copy is chosen).
    pub fn to_filter_for(
        &self,
        path: &std::path::Path,
        dups: &DuplicateArgs,
    ) -> anyhow::Result<Filter> {
        let mut f = self.to_filter();
        f.duplicates = check_duplicates(path, dups.duplicates)?;
        Ok(f)
    }
}

/// Turns `\xNN` escapes into bytes so binary keys can be typed; other text is kept as is.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let Some(v) = b
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Current Unix time in milliseconds, or `$RDBKIT_NOW_MS` when set (a fixed clock for
/// reproducible `info`, `export` and `report` output; tests/it/golden.rs uses it). A value that is
/// not an integer is reported on stderr and ignored.
pub fn now_ms() -> i64 {
    if let Some(v) = std::env::var_os("RDBKIT_NOW_MS") {
        match v.to_str().and_then(|s| s.trim().parse::<i64>().ok()) {
            Some(ms) => return ms,
            None => {
                eprintln!("rdbkit: ignoring RDBKIT_NOW_MS={v:?}: not an integer of milliseconds")
            }
        }
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `--field-ttls`: what to do with hash field TTLs a target cannot hold (before Redis 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FieldTtls {
    /// Refuse such hashes (reported per key; the run fails).
    #[default]
    Refuse,
    /// Write them without their field TTLs, leaving out fields already expired (counted).
    Drop,
}

/// Which copy of a duplicated key to use (`--duplicates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DupChoice {
    /// The first copy in file order.
    First,
    /// The last copy in file order.
    Last,
}

/// The duplicate-key option shared by every command that reads keys.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = heading::SOURCE)]
pub struct DuplicateArgs {
    /// A key found twice in one database makes the dump invalid (Redis refuses to load it); this
    /// chooses the copy to use instead: `first` or `last` in file order.
    #[arg(long, value_enum, value_name = "first|last")]
    pub duplicates: Option<DupChoice>,
}

/// How many duplicated keys an error or a report lists.
pub const DUPLICATES_LISTED: usize = 10;

/// Lists the first duplicated keys, one a line, and how many more there are.
pub fn list_duplicates(found: &rdbkit::dups::DuplicateScan) -> String {
    let mut s = String::new();
    for d in found.duplicates.iter().take(DUPLICATES_LISTED) {
        s.push_str(&format!("  {d}\n"));
    }
    if found.duplicates.len() > DUPLICATES_LISTED {
        s.push_str(&format!(
            "  … and {} more\n",
            found.duplicates.len() - DUPLICATES_LISTED
        ));
    }
    s
}

/// Looks for keys that appear more than once in one database of `path` (a pass over the dump
/// before the command's own). None found: `None`. Found and no copy chosen: an error naming them
/// (Redis refuses such a dump). Found and a copy chosen: the copies to leave out, for the
/// [`Filter`]. Stdin cannot be read twice: it is not checked (`import` says so).
pub fn check_duplicates(
    path: &std::path::Path,
    choice: Option<DupChoice>,
) -> anyhow::Result<Option<std::sync::Arc<rdbkit::dups::DuplicateSelection>>> {
    use rdbkit::dups::{scan, DuplicatePolicy, DuplicateSelection};
    if path.as_os_str() == "-" {
        if choice == Some(DupChoice::Last) {
            anyhow::bail!(
                "--duplicates last needs the dump as a file: stdin cannot be read twice to find \
                 the last copy"
            );
        }
        return Ok(None);
    }
    let found = scan(|| source::Input::open(path))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if found.duplicates.is_empty() {
        return Ok(None);
    }
    let policy = match choice {
        None => anyhow::bail!(
            "{}: {} in one database ({} extra {}); Redis refuses such a dump (\"RDB has \
             duplicated key\"):\n{}choose a copy with --duplicates first or --duplicates last",
            path.display(),
            rdbkit::dups::count_keys(found.duplicates.len()),
            found.extra_copies(),
            if found.extra_copies() == 1 {
                "copy"
            } else {
                "copies"
            },
            list_duplicates(&found)
        ),
        Some(DupChoice::First) => DuplicatePolicy::First,
        Some(DupChoice::Last) => DuplicatePolicy::Last,
    };
    let sel = DuplicateSelection::new(&found, policy);
    eprintln!(
        "{}: {} in one database; using the {} copy ({} left out)",
        path.display(),
        rdbkit::dups::count_keys(found.duplicates.len()),
        if policy == DuplicatePolicy::First {
            "first"
        } else {
            "last"
        },
        sel.dropped()
    );
    Ok(Some(std::sync::Arc::new(sel)))
}
