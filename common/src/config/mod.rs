//! The config file of DESIGN §3: `raw` (the YAML as written) -> `validate` -> `model`, read by
//! `load`.

pub mod diff;
pub mod expand;
pub mod load;
pub mod model;
pub mod raw;
pub mod validate;

pub use diff::{diff, ChangeKind, ProgramChange, ReloadPlan};
pub use load::{load, load_ctl, ConfigError};
pub use model::*;
pub use raw::{AutoRestart, LogLevel, Role};
pub use validate::Context;
