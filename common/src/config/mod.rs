//! The config file of DESIGN §3: `yaml` (text to a tree of nodes with the parser's positions)
//! -> `read` (the tree to `raw`, the keys as written) -> `validate` -> `model`, driven by `load`;
//! every problem is a `diag::Located` line, and `diag` imports nothing of the rest.

pub mod diag;
pub mod diff;
pub mod expand;
pub mod load;
pub mod model;
pub mod raw;
pub mod read;
pub mod validate;
pub mod yaml;

pub use diag::{ConfigError, Located};
pub use diff::{diff, ChangeKind, ProgramChange, ReloadPlan};
pub use load::{load, load_ctl};
pub use model::*;
pub use raw::{AutoRestart, LogLevel, Role};
pub use validate::Context;

#[cfg(test)]
mod tests;
