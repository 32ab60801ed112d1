//! The core's timers, by deadline: the loop sleeps until the first (STYLE §2.7).

use crate::core::ids::TimerId;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Armed timers; a stale one is handed back all the same (the core checks its epoch).
#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, TimerId)>>,
    seq: u64,
}

impl Timers {
    /// Arms `id` for `at`.
    pub fn arm(&mut self, at: Instant, id: TimerId) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, id)));
    }

    /// The first deadline.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next timer due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerId> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse((_, _, id))| id),
            _ => None,
        }
    }
}
