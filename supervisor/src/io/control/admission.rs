//! What a control-socket peer can make the supervisor hold, and for how long (DESIGN §6:
//! "every resource a peer can make the supervisor hold is bounded"). Decides and does nothing:
//! the server asks it whether to keep a connection, how long a partial line or an
//! unauthenticated connection may live, whether a buffer may grow, and how long a failed
//! password's answer waits.
//!
//! The bounds, each with the rule for when it is reached:
//! - connections: [`Limits::max_clients`] in all, of which [`ADMIN_ROOM`] are kept for root and
//!   admins, and at most [`Limits::max_per_uid`] for one non-admin uid; past it a new connection is
//!   closed at once (after one short error line), with one WARN per uid and episode;
//! - a partial request line lives at most [`PARTIAL_LINE_DEADLINE`], and is at most
//!   `MAX_LINE` bytes (1 MiB, `common::proto::control`);
//! - a connection that has not authenticated (with `socket.auth`) lives at most
//!   [`UNAUTHENTICATED_DEADLINE`];
//! - unsent output: at most `MAX_PENDING` bytes a client (8 MiB, `control.rs`) and
//!   [`OUTPUT_BUDGET`] for all clients together; received, unparsed input: [`INPUT_BUDGET`] for all
//!   clients together, of which at most [`OUTPUT_PER_UID`] for one non-admin uid. Past the
//!   global budget the client holding the most is dropped, past a uid's share that uid's client;
//!   received, unparsed input: [`INPUT_BUDGET`] for all clients together, past which the client
//!   holding the most is dropped;
//! - failed authentications: three close a connection, and each failure of a uid doubles the
//!   wait before its answer (1 s, 2 s, 4 s … at most [`MAX_AUTH_DELAY`]), forgotten after
//!   [`AUTH_MEMORY`] without failure. A uid has one password check running at a time, and none
//!   before its wait is over, so parallel connections guess no faster than one. A correct
//!   password is delayed only by its own uid's recent failures, never by another uid's;
//! - main log lines a peer causes (refusals, dropped clients, undelivered input): one per uid
//!   (or process) per [`LOG_INTERVAL`], with a count of those left out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Connections always left for root and admins, above what other peers may take.
pub const ADMIN_ROOM: usize = 16;
/// Most connections one non-admin uid may hold at once.
pub const PER_UID: usize = 64;
/// Seconds a request line may stay incomplete (10 s): a peer that opens a line and never ends it
/// is dropped.
pub const PARTIAL_LINE_DEADLINE: Duration = Duration::from_secs(10);
/// Seconds a connection may stay open without authenticating when `socket.auth` is set (30 s).
pub const UNAUTHENTICATED_DEADLINE: Duration = Duration::from_secs(30);
/// Bytes of unsent output held for all clients together (64 MiB).
pub const OUTPUT_BUDGET: usize = 64 << 20;
/// Bytes of unsent output held for one non-admin uid's clients together (16 MiB): a viewer's
/// followers that never read cannot take the budget root's clients need.
pub const OUTPUT_PER_UID: usize = 16 << 20;
/// Bytes of received, not yet parsed input held for all clients together (32 MiB).
pub const INPUT_BUDGET: usize = 32 << 20;
/// At most one WARN line a peer (or a process) can cause per this interval (10 s); the lines
/// left out meanwhile are counted in the next one.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Failed authentications on one connection before it is closed (DESIGN §6).
pub const MAX_AUTH_FAILURES: u32 = 3;
/// The wait before answering a uid's first failed authentication (1 s); it doubles with each
/// further failure of that uid.
pub const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);
/// The longest wait before answering a failed authentication (32 s).
pub const MAX_AUTH_DELAY: Duration = Duration::from_secs(32);
/// How long a uid's failures are remembered after its last one (10 min).
pub const AUTH_MEMORY: Duration = Duration::from_secs(600);

/// The connection bounds derived from the supervisor's fd limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections in all, admins included.
    pub max_clients: usize,
    /// Most connections of one non-admin uid.
    pub max_per_uid: usize,
}

impl Limits {
    /// Bounds for a process whose soft RLIMIT_NOFILE is `nofile`: clients may take a quarter
    /// of it (between 32 and 4096); the rest is for programs' pipes, log files and the
    /// supervisor itself, so a connection flood never leaves it without an fd for a spawn.
    pub fn for_fd_limit(nofile: u64) -> Self {
        let max_clients = usize::try_from(nofile / 4).unwrap_or(usize::MAX).clamp(2 * ADMIN_ROOM, 4096);
        Limits { max_clients, max_per_uid: PER_UID.min(max_clients - ADMIN_ROOM) }
    }
}

/// Why a connection is not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every slot but the admins' room is taken.
    Full,
    /// This uid holds its share already.
    PerUid,
    /// Even the admins' room is taken.
    AdminsFull,
}

impl Refused {
    /// The one line the peer is told before the connection closes.
    pub fn message(self, limits: Limits) -> String {
        match self {
            Refused::Full => format!("too many connections ({}); try again later", limits.max_clients - ADMIN_ROOM),
            Refused::PerUid => format!("too many connections from your uid ({})", limits.max_per_uid),
            Refused::AdminsFull => format!("too many connections ({})", limits.max_clients),
        }
    }
}

/// Counts connections by uid and decides who may connect.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    total: usize,
    by_uid: HashMap<u32, usize>,
    /// Uids refused since their count was last under the cap: one WARN per episode.
    warned: Vec<u32>,
}

impl Admission {
    /// No connection yet.
    pub fn new(limits: Limits) -> Self {
        Admission { limits, total: 0, by_uid: HashMap::new(), warned: Vec::new() }
    }

    /// The bounds in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes a slot for a new connection of `uid` (`admin`: root or an admin, who may use the
    /// room kept for them and have no per-uid cap).
    ///
    /// # Errors
    /// [`Refused`] when the caps are reached; the caller closes the connection.
    pub fn admit(&mut self, uid: u32, admin: bool) -> Result<(), Refused> {
        let held = self.by_uid.get(&uid).copied().unwrap_or(0);
        if admin {
            if self.total >= self.limits.max_clients {
                return Err(Refused::AdminsFull);
            }
        } else if held >= self.limits.max_per_uid {
            return Err(Refused::PerUid);
        } else if self.total >= self.limits.max_clients - ADMIN_ROOM {
            return Err(Refused::Full);
        }
        self.total += 1;
        *self.by_uid.entry(uid).or_default() += 1;
        Ok(())
    }

    /// Whether a refusal of `uid` is the first of its episode (to be logged).
    pub fn first_refusal(&mut self, uid: u32) -> bool {
        if self.warned.contains(&uid) {
            return false;
        }
        self.warned.push(uid);
        true
    }

    /// Gives back the slot of a closed connection of `uid`.
    pub fn release(&mut self, uid: u32) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_uid.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                self.by_uid.remove(&uid);
            }
        }
        // Under its cap again: its next refusal starts a new episode.
        let total = self.total;
        let (limits, by_uid) = (self.limits, &self.by_uid);
        self.warned.retain(|u| {
            by_uid.get(u).copied().unwrap_or(0) >= limits.max_per_uid || total >= limits.max_clients - ADMIN_ROOM
        });
    }

    /// Connections held now.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// Failed authentications by uid, for the delay before their answers.
#[derive(Debug, Default)]
pub struct AuthFailures {
    by_uid: HashMap<u32, (u32, Instant)>,
}

impl AuthFailures {
    /// Records a failure of `uid` at `now`; returns how long its answer waits:
    /// [`AUTH_FAILURE_DELAY`] doubled for each earlier failure still remembered, at most
    /// [`MAX_AUTH_DELAY`].
    pub fn fail(&mut self, uid: u32, now: Instant) -> Duration {
        self.by_uid.retain(|_, (_, last)| now.saturating_duration_since(*last) < AUTH_MEMORY);
        let entry = self.by_uid.entry(uid).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let doublings = (entry.0 - 1).min(16);
        AUTH_FAILURE_DELAY.saturating_mul(1 << doublings).min(MAX_AUTH_DELAY)
    }

    /// Forgets `uid`'s failures (it authenticated).
    pub fn succeed(&mut self, uid: u32) {
        self.by_uid.remove(&uid);
    }

    /// When `uid` may have its next password checked: its last failure plus the wait that
    /// failure was given (now when it has none remembered).
    pub fn ready_at(&self, uid: u32, now: Instant) -> Instant {
        match self.by_uid.get(&uid) {
            Some((n, last)) if now.saturating_duration_since(*last) < AUTH_MEMORY => {
                *last + AUTH_FAILURE_DELAY.saturating_mul(1 << (n - 1).min(16)).min(MAX_AUTH_DELAY)
            }
            _ => now,
        }
    }
}

/// One log line per key (a uid, a process) per [`LOG_INTERVAL`].
#[derive(Debug, Default)]
pub struct Throttle {
    by_key: HashMap<u64, (Instant, u64)>,
}

impl Throttle {
    /// Whether a line about `key` may be written now: `Some(n)` with the number of lines left
    /// out since the last one, or `None` to leave this one out (it is counted).
    pub fn allow(&mut self, key: u64, now: Instant) -> Option<u64> {
        if self.by_key.len() > 4096 {
            self.by_key.retain(|_, (at, _)| now.saturating_duration_since(*at) < LOG_INTERVAL);
        }
        match self.by_key.get_mut(&key) {
            Some((at, skipped)) if now.saturating_duration_since(*at) < LOG_INTERVAL => {
                *skipped += 1;
                None
            }
            Some((at, skipped)) => {
                *at = now;
                Some(std::mem::take(skipped))
            }
            None => {
                self.by_key.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_leave_most_fds_to_programs_and_room_for_admins() {
        let l = Limits::for_fd_limit(1024);
        assert_eq!(l, Limits { max_clients: 256, max_per_uid: 64 });
        let tiny = Limits::for_fd_limit(20);
        assert_eq!(tiny.max_clients, 2 * ADMIN_ROOM);
        assert_eq!(tiny.max_per_uid, ADMIN_ROOM);
        assert_eq!(Limits::for_fd_limit(1 << 20).max_clients, 4096);
    }

    #[test]
    fn one_uid_gets_its_share_and_admins_always_get_in() {
        let limits = Limits { max_clients: 40, max_per_uid: 10 };
        let mut a = Admission::new(limits);
        for _ in 0..10 {
            a.admit(1000, false).unwrap();
        }
        assert_eq!(a.admit(1000, false), Err(Refused::PerUid));
        assert!(a.first_refusal(1000));
        assert!(!a.first_refusal(1000), "one warning per episode");
        for uid in 2000..2014 {
            a.admit(uid, false).unwrap();
        }
        // 24 held, 40 - 16 = 24 for non-admins: full for them, not for root.
        assert_eq!(a.admit(3000, false), Err(Refused::Full));
        for _ in 0..ADMIN_ROOM {
            a.admit(0, true).unwrap();
        }
        assert_eq!(a.admit(0, true), Err(Refused::AdminsFull));
        a.release(1000);
        assert_eq!(a.total(), 39);
        a.admit(1000, false).unwrap_err(); // still full overall
        for _ in 0..ADMIN_ROOM {
            a.release(0);
        }
        a.admit(1000, false).unwrap();
        assert!(a.first_refusal(1000), "a new episode after it went under its cap");
    }

    #[test]
    fn a_peer_gets_one_log_line_per_interval_and_the_rest_are_counted() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.allow(7, t0), Some(0));
        for i in 1..=5 {
            assert_eq!(t.allow(7, t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.allow(8, t0), Some(0), "another key has its own interval");
        assert_eq!(t.allow(7, t0 + LOG_INTERVAL), Some(5));
    }

    #[test]
    fn a_uid_that_failed_waits_before_its_next_check() {
        let mut f = AuthFailures::default();
        let t = Instant::now();
        assert_eq!(f.ready_at(7, t), t);
        f.fail(7, t);
        assert_eq!(f.ready_at(7, t), t + Duration::from_secs(1));
        f.fail(7, t);
        assert_eq!(f.ready_at(7, t), t + Duration::from_secs(2));
        assert_eq!(f.ready_at(8, t), t, "other uids are not delayed");
    }

    #[test]
    fn failed_authentications_wait_longer_per_uid_and_are_forgotten() {
        let mut f = AuthFailures::default();
        let t = Instant::now();
        let waits: Vec<u64> = (0..8).map(|i| f.fail(7, t + Duration::from_secs(i)).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 32, 32]);
        assert_eq!(f.fail(8, t).as_secs(), 1, "another uid starts at 1 s");
        f.succeed(7);
        assert_eq!(f.fail(7, t).as_secs(), 1);
        assert_eq!(f.fail(7, t + AUTH_MEMORY + Duration::from_secs(60)).as_secs(), 1, "forgotten after a while");
    }
}
