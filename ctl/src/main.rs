//! `taskmasterctl`: control a running taskmasterd.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    match ctl::run(ctl::cli::Cli::parse()) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprintln!("taskmasterctl: {err}");
            err.exit_code()
        }
    }
}
