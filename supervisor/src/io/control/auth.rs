//! Password checks off the event loop (issue 12): argon2 costs tens of milliseconds of CPU and
//! ~19 MiB by design, so one worker thread does it, fed through a bounded queue, and the loop
//! only sees results. The worker wakes the loop through a socketpair the loop watches.
//!
//! The thread starts on the first `auth` (a daemon without `socket.auth` never has it). It holds
//! no fd but its end of the wake-up pair and touches no supervisor state.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Instant;

/// Password checks that may wait for the worker; more are answered "busy" at once.
pub const QUEUE: usize = 16;

/// One password to check.
pub struct Check {
    /// The control client that asked.
    pub client: u32,
    /// Its peer's uid.
    pub uid: u32,
    /// Its request id.
    pub id: u64,
    /// The username it gave matched `socket.auth.username` (checked on the loop).
    pub user_ok: bool,
    /// The password it gave.
    pub password: String,
    /// `socket.auth.password_hash` (PHC string).
    pub hash: String,
}

/// The answer to a [`Check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The control client that asked.
    pub client: u32,
    /// Its peer's uid.
    pub uid: u32,
    /// Its request id.
    pub id: u64,
    /// Username and password were right.
    pub ok: bool,
}

/// The worker, seen from the loop.
pub struct AuthWorker {
    jobs: SyncSender<Check>,
    verdicts: Receiver<Verdict>,
}

/// Checks `password` against the argon2 PHC `hash`; the comparison is argon2's, in constant
/// time. A hash that does not parse fails every password.
pub fn verify(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

impl AuthWorker {
    /// Starts the worker thread; returns it and the loop's end of the wake-up pair, readable
    /// when verdicts are waiting (drain it with [`drain_wakeups`]).
    ///
    /// # Errors
    /// The socketpair or the thread could not be created.
    pub fn start() -> io::Result<(AuthWorker, UnixStream)> {
        let (loop_end, worker_end) = UnixStream::pair()?;
        loop_end.set_nonblocking(true)?;
        let (jobs, job_rx) = mpsc::sync_channel::<Check>(QUEUE);
        let (verdict_tx, verdicts) = mpsc::channel();
        std::thread::Builder::new().name("tm-auth".into()).spawn(move || {
            let mut wake = worker_end;
            for check in job_rx {
                // Always run argon2, even for a wrong username: the answer's timing says nothing.
                let password_ok = verify(&check.password, &check.hash);
                let verdict =
                    Verdict { client: check.client, uid: check.uid, id: check.id, ok: check.user_ok && password_ok };
                if verdict_tx.send(verdict).is_err() || wake.write_all(b"!").is_err() {
                    return;
                }
            }
        })?;
        Ok((AuthWorker { jobs, verdicts }, loop_end))
    }

    /// Queues a check.
    ///
    /// # Errors
    /// The queue is full (the check is handed back), or the worker has gone.
    pub fn submit(&self, check: Check) -> Result<(), TrySendError<Check>> {
        self.jobs.try_send(check)
    }

    /// The verdicts ready now.
    pub fn verdicts(&self) -> Vec<Verdict> {
        self.verdicts.try_iter().collect()
    }
}

/// Orders password checks by uid: one check of a uid runs at a time, and none before that uid's
/// wait after a failure is over (`admission::AuthFailures::ready_at`), so connections opened in
/// parallel guess no faster than one. Checks of other uids are never held. Each held check
/// belongs to a connection that is not read meanwhile, so the connection caps bound them.
#[derive(Default)]
pub struct Gate {
    waiting: HashMap<u32, VecDeque<Check>>,
    running: HashSet<u32>,
}

impl Gate {
    /// A check of `uid`: handed back when it may run now (`ready`: the uid's wait is over),
    /// else held.
    pub fn offer(&mut self, check: Check, ready: bool) -> Option<Check> {
        let uid = check.uid;
        if ready && !self.running.contains(&uid) && self.waiting.get(&uid).is_none_or(VecDeque::is_empty) {
            self.running.insert(uid);
            return Some(check);
        }
        self.waiting.entry(uid).or_default().push_back(check);
        None
    }

    /// The running check of `uid` was answered (or could not be queued).
    pub fn done(&mut self, uid: u32) {
        self.running.remove(&uid);
    }

    /// The held checks that may run now, one per uid whose wait (`ready_at`) is over and that
    /// has none running.
    pub fn release(&mut self, now: Instant, ready_at: impl Fn(u32) -> Instant) -> Vec<Check> {
        let mut out = Vec::new();
        for (uid, queue) in &mut self.waiting {
            if !self.running.contains(uid) && ready_at(*uid) <= now {
                if let Some(c) = queue.pop_front() {
                    self.running.insert(*uid);
                    out.push(c);
                }
            }
        }
        self.waiting.retain(|_, q| !q.is_empty());
        out
    }

    /// When the next held check may run, if one is held by a uid with none running.
    pub fn next(&self, ready_at: impl Fn(u32) -> Instant) -> Option<Instant> {
        self.waiting.keys().filter(|u| !self.running.contains(u)).map(|u| ready_at(*u)).min()
    }

    /// Forgets the held checks of a closed connection.
    pub fn forget_client(&mut self, client: u32) {
        for q in self.waiting.values_mut() {
            q.retain(|c| c.client != client);
        }
        self.waiting.retain(|_, q| !q.is_empty());
    }

    /// Whether no check is held.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// Empties the loop's end of the wake-up pair.
pub fn drain_wakeups(mut wake: &UnixStream) {
    let mut buf = [0u8; 256];
    while matches!(wake.read(&mut buf), Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn check(client: u32, uid: u32) -> Check {
        Check { client, uid, id: 1, user_ok: true, password: String::new(), hash: String::new() }
    }

    #[test]
    fn a_uid_has_one_check_running_and_waits_its_turn() {
        let t = Instant::now();
        let mut g = Gate::default();
        assert!(g.offer(check(1, 7), true).is_some(), "the first check runs at once");
        assert!(g.offer(check(2, 7), true).is_none(), "a second of the same uid waits");
        assert!(g.offer(check(3, 8), true).is_some(), "another uid is not held");
        let later = t + Duration::from_secs(2);
        assert!(g.release(t, |_| t).is_empty(), "uid 7 still has one running");
        g.done(7);
        assert_eq!(g.next(|_| later), Some(later));
        assert!(g.release(t, |_| later).is_empty(), "its wait after a failure is not over");
        let now_free = g.release(later, |_| later);
        assert_eq!(now_free.iter().map(|c| c.client).collect::<Vec<_>>(), [2]);
        assert!(g.is_empty());
        g.offer(check(4, 9), false);
        g.forget_client(4);
        assert!(g.is_empty(), "a closed connection's check is dropped");
    }

    #[test]
    fn the_worker_answers_each_check_and_wakes_the_loop() {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        let hash = argon2::Argon2::default().hash_password(b"right", &salt).unwrap().to_string();
        let (w, wake) = AuthWorker::start().unwrap();
        for (id, (user_ok, pw)) in [(true, "right"), (true, "wrong"), (false, "right")].into_iter().enumerate() {
            w.submit(Check { client: 1, uid: 0, id: id as u64, user_ok, password: pw.into(), hash: hash.clone() })
                .unwrap_or_else(|_| panic!("queue"));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        while got.len() < 3 {
            assert!(Instant::now() < deadline, "verdicts: {got:?}");
            let mut fds = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(&wake), nix::poll::PollFlags::POLLIN)];
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(1000u16)).unwrap();
            drain_wakeups(&wake);
            got.extend(w.verdicts());
        }
        let oks: Vec<bool> = got.iter().map(|v| v.ok).collect();
        assert_eq!(oks, [true, false, false]);
    }
}
