//! The edge: does I/O.
pub mod confine;
pub mod control;
pub mod logs;
