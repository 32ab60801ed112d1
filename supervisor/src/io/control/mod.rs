//! The control socket.
pub mod admission;
pub mod auth;
