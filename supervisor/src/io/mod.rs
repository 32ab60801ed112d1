//! The edge: every fd the supervisor holds, and nothing it decides (STYLE §2.6b). It turns what
//! arrives on an fd into an input for the core (`crate::core`) and carries out the effects the
//! core returns; program output never leaves it (logs, `tail -f`, attach relays).
//!
//! Module order, with no cycle: `base` (the watcher, the main log, fd keys), `logs`, `pty`,
//! `lastline`, `timers` and `confine` are leaves; `link` talks to the spawner; `output` owns
//! each process's output side; `control` serves taskmasterctl; `event_loop` holds them all and
//! is the only one that knows the core.

pub mod base;
pub mod confine;
pub mod control;
pub mod event_loop;
pub mod lastline;
pub mod link;
pub mod logs;
pub mod output;
pub mod pty;
pub mod timers;
