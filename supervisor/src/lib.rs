//! The supervisor: all policy, no privilege (DESIGN §1). Re-executed by the spawner as
//! `taskmasterd --supervisor-role`, already running as `server.user` when started as root. It
//! never reads the config file and never forks a supervised program: it receives the parsed
//! config and each child's fds from the spawner over the link, and asks it for spawns and
//! signals.
//!
//! `state.rs` decides (pure), `event_loop.rs` moves bytes and events, `logs.rs` writes,
//! `control.rs` serves taskmasterctl, `registry.rs` holds the processes, `confine.rs` bounds
//! what a compromised supervisor could do, `sys.rs` is mechanism.

pub mod access;
pub mod attach;
pub mod control;
pub mod core;
pub mod event_loop;
pub mod io;
pub mod registry;
pub mod reload;

#[allow(unsafe_code)] // the crate's one exception; each call has its SAFETY note.
pub mod sys;

use std::process::ExitCode;

/// Runs the supervisor role with the spawner link at `link_fd` and the listening control socket
/// at `listen_fd`. Exit code 0 after an orderly shutdown, 1 when the spawner link failed or
/// the supervisor could not be confined.
pub fn run_role(link_fd: i32, listen_fd: i32) -> ExitCode {
    // Before anything else: until this, a process of our uid could trace us.
    if let Err(e) = io::confine::make_non_dumpable() {
        eprintln!("taskmasterd[supervisor]: {e}");
        return ExitCode::from(1);
    }
    match event_loop::start(link_fd, listen_fd) {
        Ok(sup) => ExitCode::from(sup.run()),
        Err(e) => {
            eprintln!("taskmasterd[supervisor]: {e}");
            ExitCode::from(1)
        }
    }
}
