//! Shared by every taskmaster crate: the config model (parsing, defaults, validation), the two
//! protocols (spawner link, control socket), process names and unit parsing.
//!
//! `common` holds no process state and trusts nothing it parses: every decoder here bounds its
//! input and reports a located error instead of panicking.

pub mod config;
pub mod names;
pub mod proto;
pub mod units;

#[allow(unsafe_code)] // the crate's one exception: SCM_RIGHTS needs `from_raw_fd`.
pub mod sys;

/// The version `taskmasterd --version` and `taskmasterctl version` print.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
