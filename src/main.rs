//! The `rdbkit` binary. Exit codes: 0 success, 1 decode or runtime error (message on stderr), 2 usage,
//! 3 `plan` (or `import --dry-run`): the import would not succeed.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let res = match &args.command {
        cli::Command::Info(a) => cli::info::run(a),
        cli::Command::Export(a) => cli::export::run(a),
        // the dry run is the plan (cli::plan builds on cli::import, not the other way)
        cli::Command::Import(a) if a.dry_run => cli::plan::run(a),
        cli::Command::Import(a) => cli::import::run(a),
        cli::Command::Plan(a) => cli::plan::run(a),
        cli::Command::Verify(a) => cli::verify::run(a),
        cli::Command::Report(a) => cli::report::run(a),
        cli::Command::Filter(a) => cli::rewrite::run_filter(a),
        cli::Command::Split(a) => cli::rewrite::run_split(a),
        cli::Command::Dump(a) => cli::live::run_dump(a),
        cli::Command::Completions(a) => cli::docs::completions(a),
        cli::Command::Man => cli::docs::man(),
        // exit 0 equal, 1 different, 2 error (usage or a side that cannot be read)
        cli::Command::Diff(a) => {
            return match cli::diff::run(a) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) if broken_pipe(&e) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("rdbkit: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // a closed pipe (`rdbkit export … | head`) is not a failure
            if broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("rdbkit: {e:#}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}

/// True when `e` is a closed pipe (`rdbkit export … | head`).
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
