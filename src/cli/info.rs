//! `rdbkit info`.

use super::{now_ms, InputArgs, ThreadArgs};
use anyhow::{Context, Result};
use clap::Args;
use rdbkit::output::info::Info;
use rdbkit::source::{Chunk, ChunkOptions, ChunkWorker, Input};
use rdbkit::DecodeError;
use std::io::Write;
use std::path::Path;

mod aof;
mod shards;

/// Arguments of `rdbkit info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Continue past keys whose value is corrupt (where the record framing allows), report them,
    /// and summarise the readable keys; a framing error still stops, after printing what was read.
    #[arg(long, help_heading = super::heading::SOURCE)]
    salvage: bool,
    #[command(flatten)]
    threads: ThreadArgs,
    /// Check the dumps given as one sharded backup of a cluster: the slot ranges each owns, keys
    /// in slots their dump does not own (orphans of an interrupted reshard), keys in several
    /// dumps; exit 1 when the set is not consistent.
    #[arg(long, help_heading = super::heading::CHECKING)]
    cluster: bool,
    /// Print JSON instead of text.
    #[arg(long, help_heading = super::heading::OUTPUT)]
    json: bool,
    /// More dumps of the sharded backup (with --cluster).
    #[arg(value_name = "MORE", requires = "cluster")]
    more: Vec<std::path::PathBuf>,
}

/// Summarises chunks of items into partial [`Info`]s, merged in file order.
struct InfoWorker {
    now_ms: i64,
    salvage: bool,
}

impl ChunkWorker for InfoWorker {
    type State = ();
    type Out = Info;
    type Error = DecodeError;

    fn state(&self) {}

    fn output(&self) -> Info {
        let mut info = Info::new(self.now_ms);
        info.salvage = self.salvage;
        info
    }

    fn work(&self, _: &mut (), chunk: Chunk<'_, '_>, out: &mut Info) -> Result<(), DecodeError> {
        chunk.items.iter().try_for_each(|(item, _)| out.add(item))
    }
}

/// Input bytes in flight for `info` (see [`ChunkOptions::in_flight_bytes`]): 0.14 s → 0.13 s
/// (median of 7) on the D1 bench dump against the 8 MiB default.
const INFO_IN_FLIGHT_BYTES: u64 = 32 << 20;

/// Runs `info`.
pub fn run(a: &InfoArgs) -> Result<()> {
    if a.cluster {
        let files: Vec<&Path> = std::iter::once(a.input.file.as_path())
            .chain(a.more.iter().map(|p| p.as_path()))
            .collect();
        return shards::run(a, &files);
    }
    if let Some(aof) = rdbkit::source::aof::detect(&a.input.file)? {
        return aof::run(a, &aof);
    }
    let (info, stopped) = summarise(a, &a.input.file)?;
    print(a, &info, stopped)
}

/// The summary of the dump at `file`, and the error that stopped it under `--salvage`.
fn summarise(a: &InfoArgs, file: &Path) -> Result<(Info, Option<DecodeError>)> {
    let input = Input::open(file).with_context(|| format!("opening {}", file.display()))?;
    let worker = InfoWorker {
        now_ms: now_ms(),
        salvage: a.salvage,
    };
    let mut info = worker.output();
    // duplicates are counted and listed, not refused: `info` is how one finds them
    if file.as_os_str() != "-" {
        // a dump that does not decode to its end is checked up to the error, which the pass
        // below reports
        info.duplicates = rdbkit::dups::scan(|| Input::open(file)).ok();
    }
    let opts = ChunkOptions {
        // a chunk's output is a few counters: a deeper queue costs nothing and keeps both workers
        // busy when one is descheduled
        in_flight_bytes: INFO_IN_FLIGHT_BYTES,
        ..a.threads.options(!a.input.no_checksum)
    };
    let res = input.decode_chunks(opts, &worker, |part| {
        info.merge(part);
        Ok(())
    });
    let stopped = match res {
        Ok(producer) => {
            info.producer = Some(producer);
            None
        }
        // salvage: show what was readable before the framing broke, then fail
        Err(e) if a.salvage => Some(e),
        Err(e) => return Err(anyhow::Error::from(e).context(file.display().to_string())),
    };
    Ok((info, stopped))
}

/// Prints `info`, then fails when decoding stopped early or skipped values.
fn print(a: &InfoArgs, info: &Info, stopped: Option<DecodeError>) -> Result<()> {
    let out = if a.json {
        serde_json::to_string_pretty(&info.to_json())? + "\n"
    } else {
        info.to_text()
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    fail_if_incomplete(a, info, stopped)
}

fn fail_if_incomplete(a: &InfoArgs, info: &Info, stopped: Option<DecodeError>) -> Result<()> {
    if let Some(e) = stopped {
        anyhow::bail!(
            "{}: decoding stopped (the keys above were readable): {e}",
            a.input.file.display()
        );
    }
    if !info.salvaged.is_empty() {
        anyhow::bail!("{} corrupt values were skipped", info.salvaged.len());
    }
    Ok(())
}
