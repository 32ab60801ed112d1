//! `taskmasterd`: the spawner, or with `--supervisor-role` (as the spawner re-executes it) the
//! unprivileged supervisor.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == spawner::privdrop::SUPERVISOR_ROLE) {
        return supervisor::run_role(spawner::privdrop::LINK_FD, spawner::privdrop::LISTEN_FD);
    }
    spawner::cli::run(spawner::cli::Cli::parse())
}
