//! `rdbkit info`.

use super::{now_ms, InputArgs};
use anyhow::{Context, Result};
use clap::Args;
use rdbkit::output::info::Info;
use rdbkit::source::Input;
use std::io::Write;

/// Arguments of `rdbkit info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Continue past keys whose value is corrupt (where the record framing allows), report them,
    /// and summarise the readable keys; a framing error still stops, after printing what was read.
    #[arg(long)]
    salvage: bool,
}

/// Runs `info`.
pub fn run(a: &InfoArgs) -> Result<()> {
    let input = Input::open(&a.input.file)
        .with_context(|| format!("opening {}", a.input.file.display()))?;
    let mut info = Info::new(now_ms());
    info.salvage = a.salvage;
    let res = input.decode(!a.input.no_checksum, |item, _| info.add(&item));
    let stopped = match res {
        Ok(producer) => {
            info.producer = Some(producer);
            None
        }
        // salvage: show what was readable before the framing broke, then fail
        Err(e) if a.salvage => Some(e),
        Err(e) => return Err(e.into()),
    };
    let out = if a.json {
        serde_json::to_string_pretty(&info.to_json())? + "\n"
    } else {
        info.to_text()
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    if let Some(e) = stopped {
        anyhow::bail!("decoding stopped (the keys above were readable): {e}");
    }
    if !info.salvaged.is_empty() {
        anyhow::bail!("{} corrupt values were skipped", info.salvaged.len());
    }
    Ok(())
}
