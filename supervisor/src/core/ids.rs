//! The identities that cross the supervisor's modules, each its own type so that a slot never
//! lands where a spawn id or a client belongs (STYLE §2.3).

use crate::core::state::TimerKind;
use std::fmt;

/// One process of the registry (an instance of a program). Never reused while the supervisor
/// lives, so a stale reference (a timer, a job, an answer) finds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(pub u64);

/// One fork, as the spawner numbers it (`common::proto::spawn`): never reused while the
/// spawner lives, so it outlives a supervisor restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpawnId(pub u64);

/// One control connection, numbered by the edge at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u32);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where an answer goes: a client and the id of its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    /// The connection.
    pub client: ClientId,
    /// The request's `id`.
    pub id: u64,
}

/// A timer the core armed; the edge hands it back when it is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerId {
    /// A process timer, stale once the process changed state since (`epoch`).
    Process {
        /// The process.
        slot: Slot,
        /// What fires.
        kind: TimerKind,
        /// The machine's epoch when armed.
        epoch: u64,
    },
    /// The service manager's watchdog ping is due.
    Watchdog,
}
