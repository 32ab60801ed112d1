//! The identities that cross the supervisor's modules, each its own type so that a slot never
//! lands where a spawn id or a client belongs (STYLE §2.3).

use crate::core::state::TimerKind;
use std::fmt;
use std::time::{Duration, Instant};

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

/// One instant both as an `Instant` and as CLOCK_MONOTONIC nanoseconds, taken once by the edge:
/// the core converts between the two without reading a clock. On Linux `Instant` is that clock,
/// so the conversion is exact.
#[derive(Debug, Clone, Copy)]
pub struct Mono {
    /// The instant.
    pub at: Instant,
    /// The same instant in CLOCK_MONOTONIC nanoseconds.
    pub ns: u64,
}

impl Mono {
    /// `t` in CLOCK_MONOTONIC nanoseconds.
    pub fn ns_of(&self, t: Instant) -> u64 {
        match t.checked_duration_since(self.at) {
            Some(after) => self.ns.saturating_add(after.as_nanos() as u64),
            None => self.ns.saturating_sub(self.at.duration_since(t).as_nanos() as u64),
        }
    }

    /// The `Instant` of CLOCK_MONOTONIC nanoseconds `ns` (clamped to what `Instant` can hold).
    pub fn instant_of(&self, ns: u64) -> Instant {
        if ns >= self.ns {
            self.at + Duration::from_nanos(ns - self.ns)
        } else {
            self.at.checked_sub(Duration::from_nanos(self.ns - ns)).unwrap_or(self.at)
        }
    }
}
