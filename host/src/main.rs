//! The `clauderon` binary: parses arguments, builds the runtime, maps errors to exit codes
//! (0 ok, 1 failure, 2 usage).

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use clauderon::cli::{Cli, EXIT_FAILURE, EXIT_USAGE, exit_code_for};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The daemon logs its lifecycle by default; commands stay quiet.
    let default_level = if cli.command.is_foreground_daemon() {
        "info"
    } else {
        "warn"
    };
    let filter =
        EnvFilter::try_from_env("CLAUDERON_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(cli.run());
    // Do not wait for blocked readers (attach's stdin thread) or lingering tasks.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code_for(&e))
        }
    }
}
