//! The core: decides, does no I/O.
pub mod state;
