//! Password checks off the event loop (issue 12): argon2 costs tens of milliseconds of CPU and
//! ~19 MiB by design, so one worker thread does it, fed through a bounded queue, and the loop
//! only sees results. The worker wakes the loop through a socketpair the loop watches.
//!
//! The thread starts on the first `auth` (a daemon without `socket.auth` never has it). It holds
//! no fd but its end of the wake-up pair and touches no supervisor state.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

/// Password checks that may wait for the worker; more are answered "busy" at once.
pub const QUEUE: usize = 16;

/// One password to check.
pub struct Check {
    /// The control client that asked.
    pub client: u32,
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
                let verdict = Verdict { client: check.client, id: check.id, ok: check.user_ok && password_ok };
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

/// Empties the loop's end of the wake-up pair.
pub fn drain_wakeups(mut wake: &UnixStream) {
    let mut buf = [0u8; 256];
    while matches!(wake.read(&mut buf), Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_worker_answers_each_check_and_wakes_the_loop() {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        let hash = argon2::Argon2::default().hash_password(b"right", &salt).unwrap().to_string();
        let (w, wake) = AuthWorker::start().unwrap();
        for (id, (user_ok, pw)) in [(true, "right"), (true, "wrong"), (false, "right")].into_iter().enumerate() {
            w.submit(Check { client: 1, id: id as u64, user_ok, password: pw.into(), hash: hash.clone() })
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
