//! The spawner: taskmasterd's only privileged code (DESIGN §1).
//!
//! It reads the config itself, binds the control socket, prepares log directories, re-executes
//! itself as the unprivileged supervisor, then serves that supervisor's requests: fork and exec a
//! configured program instance, deliver a signal to a child it forked and has not reaped. It
//! trusts nothing the supervisor sends: a request names a program and an instance (or a spawn id)
//! and everything else comes from the spawner's own parsed config (`dispatch.rs`).
//!
//! Files: `link.rs` (the loop), `dispatch.rs` (validation), `prepare.rs` (a `Program` into what
//! the child needs, built before fork), `child.rs` (fork to exec, async-signal-safe only),
//! `children.rs` (pids, reaping), `leftovers.rs` (ending what a dead program left before its
//! exit is reported), `privdrop.rs` (the supervisor's identity), `setup.rs` (socket,
//! directories, limits, the supervisor's uid), `paths.rs` (reaching a path as root without
//! following what others can change), `man.rs` (taskmasterd(8)), `sys/` (every raw call, each
//! wrapped once in a safe function).
//!
//! It does not link the supervisor's code: the `taskmasterd` crate picks the role from argv and
//! links both libraries, and answers `--hash-password` and `--generate-docs` itself.

pub mod child;
pub mod children;
pub mod cli;
pub mod daemon;
pub mod dispatch;
pub mod leftovers;
pub mod link;
pub mod man;
pub mod paths;
pub mod prepare;
pub mod privdrop;
pub mod setup;

#[allow(unsafe_code)] // the crate's one exception; each call has its SAFETY note.
pub mod sys;
