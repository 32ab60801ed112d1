//! The control socket (DESIGN §6, §8): the server and its sessions, what a peer may make the
//! supervisor hold (`admission`), and the password worker (`auth`).

pub mod admission;
pub mod auth;
pub mod server;
pub mod session;
