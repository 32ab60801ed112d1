//! Black-box tests: the real taskmasterd and taskmasterctl on real processes and sockets.
//! One module per capability; each test runs its own daemon in its own scratch directory.

mod access;
mod adoption;
mod child_env;
mod completion;
mod config;
mod ctl;
mod docs;
mod fg;
mod install;
mod lifecycle;
mod logs;
mod paths;
mod peers;
mod privilege;
mod reload;
mod resilience;
mod restart;
mod service;
mod stop;
mod trust;

use std::time::Duration;

/// Generous deadline for anything that should take well under a second.
pub const SOON: Duration = Duration::from_secs(10);

/// The probe binary of this package.
pub fn probe() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_probe"))
}

/// `../shared/fixtures/NAME`, when this checkout has the shared folder beside it.
pub fn fixture(name: &str) -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures").join(name);
    if p.exists() {
        Some(p)
    } else {
        tests::skip(&format!("{} not found (a clone without ../shared has no fixtures)", p.display()));
        None
    }
}
