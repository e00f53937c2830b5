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
}

/// Runs `info`.
pub fn run(a: &InfoArgs) -> Result<()> {
    let input = Input::open(&a.input.file)
        .with_context(|| format!("opening {}", a.input.file.display()))?;
    let mut info = Info::new(now_ms());
    let producer = input.decode(!a.input.no_checksum, |item, _| info.add(&item))?;
    info.producer = Some(producer);
    let out = if a.json {
        serde_json::to_string_pretty(&info.to_json())? + "\n"
    } else {
        info.to_text()
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}
