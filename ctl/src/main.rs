//! `taskmasterctl`: control a running taskmasterd.

use clap::Parser;
use ctl::exit::CtlError;
use std::process::ExitCode;

fn main() -> ExitCode {
    match ctl::run(ctl::cli::Cli::parse()) {
        Ok(outcome) => outcome.exit_code(),
        // A result line, as supervisorctl prints it: `nosuch: ERROR (no such process)`.
        Err(err @ CtlError::NoSuchProcess(_)) => {
            ctl::outln!("{err}");
            err.exit_code()
        }
        Err(err) => {
            eprintln!("taskmasterctl: {err}");
            err.exit_code()
        }
    }
}
