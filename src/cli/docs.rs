//! `rdbkit completions SHELL` and `rdbkit man`: shell completions and a roff man page, both
//! generated from the CLI definition (clap_complete, clap_mangen), so they cannot drift from it.

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use std::io::Write;

/// Arguments of `rdbkit completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script for `a.shell` on stdout.
pub fn completions(a: &CompletionsArgs) -> Result<()> {
    let mut cmd = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cmd, "rdbkit", &mut out);
    out.flush().context("writing the completions")?;
    Ok(())
}

/// Prints the man page (roff) on stdout: rdbkit(1) with a section per subcommand (its synopsis,
/// description and options, as `--help` shows them), in one page.
pub fn man() -> Result<()> {
    let cmd = super::Cli::command();
    let top = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    top.render_title(&mut page)?;
    top.render_name_section(&mut page)?;
    top.render_synopsis_section(&mut page)?;
    top.render_description_section(&mut page)?;
    top.render_options_section(&mut page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        let man = clap_mangen::Man::new(sub.clone().bin_name(format!("rdbkit {name}")));
        let mut part = Vec::new();
        man.render_synopsis_section(&mut part)?;
        man.render_description_section(&mut part)?;
        man.render_options_section(&mut part)?;
        // the subcommand's parts are subsections of its own section
        let part = String::from_utf8_lossy(&part).replace(".SH ", ".SS ");
        writeln!(page, ".SH \"RDBKIT {}\"", name.to_uppercase())?;
        page.extend_from_slice(part.as_bytes());
    }
    top.render_version_section(&mut page)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page)
        .and_then(|()| out.flush())
        .context("writing the man page")?;
    Ok(())
}
