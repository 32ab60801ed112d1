//! The supervisor: all policy, no privilege (DESIGN §1). Re-executed by the spawner as
//! `taskmasterd --supervisor-role`, already running as `server.user` when started as root. It
//! never reads the config file and never forks a supervised program: it receives the parsed
//! config and each child's fds from the spawner over the link, and asks it for spawns and
//! signals.
//!
//! Two halves (issue 13, STYLE §2.6b): `core/` decides and does nothing: `Core::handle(input,
//! now) -> effects`, with the state machine (`core/state.rs`), the registry, the jobs and the
//! re-read queue, no clock, no fd and no output byte; `Core::restore` rebuilds it from the
//! spawner's inventory. `io/` does and decides nothing: it owns every fd (poll loop, spawner
//! link, control server and sessions, attach relays, log writers, confinement at start) and
//! translates between fds and the core's inputs and effects. `access.rs` (roles, shared by
//! both) and `sys.rs` (mechanism, the crate's only raw calls) are leaves. The modules import
//! one another in one direction only: `io` → `core` → `access`, `sys`.
//!
//! What it trusts: the spawner (its parent) for the config and the children's fds; nothing
//! from a control client but what its peer credentials and `socket.access` grant.

pub mod access;
pub mod core;
pub mod io;

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
    match io::event_loop::start(link_fd, listen_fd) {
        Ok(edge) => ExitCode::from(edge.run()),
        Err(e) => {
            eprintln!("taskmasterd[supervisor]: {e}");
            ExitCode::from(1)
        }
    }
}
