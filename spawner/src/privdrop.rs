//! Starting the supervisor: the spawner forks, the child drops to `server.user` (as root) and
//! re-executes `taskmasterd --supervisor-role` with the link at fd 3 and the control socket at
//! fd 4 (DESIGN §1 rule 4). It runs in its own session, so a Ctrl-C on the terminal reaches only
//! the spawner, which then asks the supervisor for an orderly shutdown.
//!
//! Its stdio is never the terminal taskmasterd was started from (a compromised supervisor could
//! otherwise `TIOCSTI` keystrokes into the operator's shell, or read the terminal): stdin is
//! /dev/null, stdout and stderr a pipe whose read end the spawner copies to its own stderr
//! ([`StderrRelay`]), so the foreground main log and journald's priorities still reach the
//! terminal or the journal. Whether that stderr is journald's stream is decided here
//! ([`stderr_is_journal`]) and told to the supervisor in the hello.

use crate::child;
use crate::prepare::{Identity, Prepared};
use crate::setup::SupervisorUser;
use crate::sys::ExecVectors;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

/// The argument that selects the supervisor role of the taskmasterd binary.
pub const SUPERVISOR_ROLE: &str = "--supervisor-role";
/// The supervisor's end of the spawner link.
pub const LINK_FD: i32 = 3;
/// The listening control socket.
pub const LISTEN_FD: i32 = 4;

/// Why the supervisor could not be started; each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Our own executable, to re-execute, cannot be found (`/proc/self/exe`).
    #[error("cannot find our own executable: {0}")]
    Exe(std::io::Error),
    /// The executable's path holds a NUL byte, so execve(2) cannot take it.
    #[error("executable path has a NUL byte")]
    ExeNul,
    /// /dev/null, the supervisor's stdin, cannot be opened.
    #[error("cannot open /dev/null: {0}")]
    DevNull(Errno),
    /// A system call of the preparation failed: `pipe2`, `fcntl F_DUPFD_CLOEXEC`,
    /// `fcntl O_NONBLOCK`.
    #[error("{call}: {errno}")]
    Sys {
        /// The call, as the message names it.
        call: &'static str,
        /// Its errno.
        errno: Errno,
    },
    /// The fork, or a step of the child before exec (setuid, execve …), failed: the step and
    /// errno are kept.
    #[error("cannot start the supervisor: {0}")]
    Spawn(#[source] child::SpawnError),
    /// Our stderr cannot be duplicated for the relay.
    #[error("dup stderr: {0}")]
    DupStderr(std::io::Error),
}

/// `fd` duplicated at 10 or above, close-on-exec, so that placing the child's fds 0-4 cannot
/// overwrite it.
///
/// # Errors
/// [`StartError::Sys`] with the errno of `fcntl(F_DUPFD_CLOEXEC)`.
fn high_dup(fd: &OwnedFd) -> Result<OwnedFd, StartError> {
    crate::sys::dup_above(fd.as_fd(), 10).map_err(|errno| StartError::Sys { call: "fcntl F_DUPFD_CLOEXEC", errno })
}

/// The highest capability number of this kernel (/proc/sys/kernel/cap_last_cap), 40 when it
/// cannot be read.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

/// Forks and execs the supervisor as `user` (uid, gid and groups [gid]; or as the current user
/// when `None`), with stdin
/// /dev/null and stdout/stderr the write end of a pipe. Returns its pid and the relay of that
/// pipe to our stderr.
///
/// # Errors
/// [`StartError`]: the exec path cannot be found, /dev/null or the pipe cannot be opened, or a
/// step of the fork/drop/exec failed (named, with errno).
pub fn start_supervisor(
    link: &OwnedFd,
    listener: &OwnedFd,
    user: Option<&SupervisorUser>,
) -> Result<(Pid, StderrRelay), StartError> {
    let exe = std::env::current_exe().map_err(StartError::Exe)?;
    let path = CString::new(exe.as_os_str().as_bytes()).map_err(|_| StartError::ExeNul)?;
    let argv = vec![CString::new("taskmasterd").unwrap_or_default(), CString::new(SUPERVISOR_ROLE).unwrap_or_default()];
    let env = crate::link::inherited_env()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .map_err(StartError::DevNull)?;
    let (relay_r, relay_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| StartError::Sys { call: "pipe2", errno })?;
    let prepared = Prepared {
        exec: ExecVectors::new(path, argv, env),
        identity: user.map(|u| Identity { uid: u.uid, gid: u.gid, groups: vec![u.gid] }),
        umask: None,
        directory: None,
        child_fds: vec![
            (high_dup(&null)?, 0),
            (high_dup(&relay_w)?, 1),
            (high_dup(&relay_w)?, 2),
            (high_dup(link)?, LINK_FD),
            (high_dup(listener)?, LISTEN_FD),
        ],
        controlling_tty: false,
        ambient_caps: 0,
        // As root: no capability can ever come back to the supervisor (DESIGN §1 rule 4).
        drop_bounding: user.map(|_| last_cap()),
        no_new_privs: true,
        // The supervisor stays in the spawner's own cgroup, never in a program's.
        cgroup: None,
    };
    let pid = child::spawn(&prepared, &exe.display().to_string(), None).map_err(StartError::Spawn)?;
    // `prepared` (with its copies of the write end) drops here: the supervisor holds the only
    // one, so the relay reads EOF when it exits.
    drop(prepared);
    drop(relay_w);
    let out = std::io::stderr().as_fd().try_clone_to_owned().map_err(StartError::DupStderr)?;
    let relay = StderrRelay::new(relay_r, out).map_err(|errno| StartError::Sys { call: "fcntl O_NONBLOCK", errno })?;
    Ok((pid, relay))
}

/// Whether our stderr is journald's stream: `JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd)
/// names the file stderr is (sd_journal_stream_fd(3) says to compare both).
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else { return false };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino),
        Err(_) => false,
    }
}

/// Copies what the supervisor writes on its stdout and stderr (a pipe) to the spawner's stderr,
/// without ever blocking the spawner's loop: the pipe is read non-blocking, and our stderr —
/// which may be a terminal stopped with Ctrl-S, a full pipe or journald's socket, shared with
/// the shell so we may not make it non-blocking — is written only when poll says it can take
/// more, [`RELAY_CHUNK`] bytes at a time. At most [`RELAY_MAX_PENDING`] bytes wait; beyond that
/// the supervisor's newest output is dropped (the main log file has it all), counted, and the
/// count is reported once stderr drains, so a stuck terminal can never stall the supervisor.
pub struct StderrRelay {
    pipe: OwnedFd,
    /// A duplicate of our stderr (same open file, so same terminal, file or journal stream).
    out: OwnedFd,
    pending: Vec<u8>,
    dropped: u64,
    /// The last bytes read were dropped in the middle of a line: drop up to its end too.
    skipping: bool,
    eof: bool,
    /// Our stderr failed (EPIPE, EIO): everything is discarded from then on.
    broken: bool,
}

/// Bytes waiting for stderr at most (64 KiB).
pub const RELAY_MAX_PENDING: usize = 64 * 1024;
/// Bytes written to stderr per readiness (PIPE_BUF: a pipe that polls writable takes them).
pub const RELAY_CHUNK: usize = 4096;
/// How long the relay waits at the supervisor's exit for the last bytes to reach stderr.
pub const RELAY_DRAIN: Duration = Duration::from_secs(2);

/// What poll said about the relay's two fds.
#[derive(Clone, Copy, Debug, Default)]
pub struct RelayReady {
    /// The pipe has data or EOF.
    pub readable: bool,
    /// Our stderr takes more.
    pub writable: bool,
}

impl StderrRelay {
    /// Relays `pipe` (the read end), which it makes non-blocking, to `out` (our stderr).
    ///
    /// # Errors
    /// The errno of `fcntl`.
    pub fn new(pipe: OwnedFd, out: OwnedFd) -> nix::Result<Self> {
        let flags = OFlag::from_bits_truncate(nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_GETFL)?);
        nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(StderrRelay { pipe, out, pending: Vec::new(), dropped: 0, skipping: false, eof: false, broken: false })
    }

    /// The fds to poll now: the pipe until EOF, our stderr while bytes wait.
    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = Vec::with_capacity(2);
        if !self.eof {
            fds.push(PollFd::new(self.pipe.as_fd(), PollFlags::POLLIN));
        }
        if self.wants_stderr() {
            fds.push(PollFd::new(self.out.as_fd(), PollFlags::POLLOUT));
        }
        fds
    }

    /// Reads the results of a poll over [`StderrRelay::poll_fds`] (the same slice, in order).
    pub fn readiness(&self, fds: &[PollFd<'_>]) -> RelayReady {
        let mut fds = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty()));
        let readable = !self.eof && fds.next().unwrap_or(false);
        let writable = self.wants_stderr() && fds.next().unwrap_or(false);
        RelayReady { readable, writable }
    }

    /// Moves what is ready: reads the pipe (up to 64 KiB), then writes to stderr for as long as
    /// it polls writable (up to 256 KiB), so a stderr that keeps up never loses a byte.
    pub fn pump(&mut self, ready: RelayReady) {
        if ready.readable {
            self.read_pipe();
        }
        if ready.writable {
            self.write_chunk();
            for _ in 0..64 {
                if !self.wants_stderr() || !self.stderr_writable_now() {
                    break;
                }
                self.write_chunk();
            }
        }
    }

    fn stderr_writable_now(&self) -> bool {
        let mut fds = [PollFd::new(self.out.as_fd(), PollFlags::POLLOUT)];
        matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(1..))
    }

    /// At the supervisor's exit: relays what is left, waiting at most `limit` for stderr.
    pub fn drain(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.eof || self.wants_stderr() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut fds = self.poll_fds();
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => break,
            }
            let ready = self.readiness(&fds);
            drop(fds);
            self.pump(ready);
        }
    }

    fn wants_stderr(&self) -> bool {
        !self.broken && (!self.pending.is_empty() || self.dropped > 0)
    }

    fn read_pipe(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..4 {
            match nix::unistd::read(&self.pipe, &mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) if !self.broken => self.keep(&buf[..n]),
                Ok(_) => {}
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.eof = true;
                    return;
                }
            }
        }
    }

    /// Queues `bytes` within the bound, dropping whole lines beyond it (a line cut by the bound
    /// is ended with a newline and the rest of it dropped, so no two lines are ever glued).
    fn keep(&mut self, mut bytes: &[u8]) {
        if self.skipping {
            match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.dropped += i as u64 + 1;
                    bytes = &bytes[i + 1..];
                    self.skipping = false;
                }
                None => {
                    self.dropped += bytes.len() as u64;
                    return;
                }
            }
        }
        // One byte is kept in reserve for the newline that ends a cut line.
        let room = (RELAY_MAX_PENDING - 1).saturating_sub(self.pending.len());
        if bytes.len() <= room {
            self.pending.extend_from_slice(bytes);
            return;
        }
        let fits = bytes[..room].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.pending.extend_from_slice(&bytes[..fits]);
        if self.pending.last().is_some_and(|b| *b != b'\n') {
            self.pending.push(b'\n');
        }
        self.dropped += (bytes.len() - fits) as u64;
        self.skipping = bytes.last() != Some(&b'\n');
    }

    fn write_chunk(&mut self) {
        if self.pending.is_empty() && self.dropped > 0 {
            let note = format!(
                "taskmasterd[spawner]: {} bytes of the supervisor's output were dropped: stderr was not writable\n",
                self.dropped
            );
            self.dropped = 0;
            self.pending.extend_from_slice(note.as_bytes());
        }
        // Whole lines when there are any, so a spawner line never lands inside one of ours.
        let chunk = &self.pending[..self.pending.len().min(RELAY_CHUNK)];
        let end = match chunk.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None => chunk.len(),
        };
        match nix::unistd::write(&self.out, &self.pending[..end]) {
            Ok(n) => {
                self.pending.drain(..n);
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => {
                self.broken = true;
                self.pending = Vec::new();
                self.dropped = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::{fcntl, FcntlArg};

    fn set_nonblocking(fd: &OwnedFd, on: bool) {
        let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).unwrap());
        let flags = if on { flags | OFlag::O_NONBLOCK } else { flags & !OFlag::O_NONBLOCK };
        fcntl(fd, FcntlArg::F_SETFL(flags)).unwrap();
    }

    /// One turn of the spawner's loop for the relay alone, never waiting.
    fn turn(relay: &mut StderrRelay) {
        let mut fds = relay.poll_fds();
        nix::poll::poll(&mut fds, PollTimeout::ZERO).unwrap();
        let ready = relay.readiness(&fds);
        drop(fds);
        relay.pump(ready);
    }

    fn read_all(fd: &OwnedFd) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = nix::unistd::read(fd, &mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn a_stuck_stderr_never_blocks_the_relay_and_costs_at_most_its_bound() {
        let (sup_r, sup_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        // "stderr" is a pipe nobody reads: fill it, then make it blocking again, as a terminal
        // stopped with Ctrl-S would be.
        set_nonblocking(&out_w, true);
        while nix::unistd::write(&out_w, &[b'#'; 4096]).is_ok() {}
        set_nonblocking(&out_w, false);
        set_nonblocking(&out_r, true);
        let mut relay = StderrRelay::new(sup_r, out_w).unwrap();
        // The supervisor writes 1 MiB of lines; the relay keeps reading, never blocking.
        set_nonblocking(&sup_w, true);
        let line = b"2026-11-30 12:00:00,000 INFO a line of the main log\n";
        let mut written = 0;
        while written < 1 << 20 {
            match nix::unistd::write(&sup_w, line) {
                Ok(n) => written += n,
                Err(Errno::EAGAIN) => {}
                Err(e) => panic!("{e}"),
            }
            turn(&mut relay);
            assert!(relay.pending.len() <= RELAY_MAX_PENDING);
        }
        assert!(relay.dropped > 0);
        // The terminal comes back, the supervisor exits: what was kept arrives, whole lines, then
        // the count of what was not.
        let stale = read_all(&out_r);
        assert!(stale.iter().all(|b| *b == b'#'));
        drop(sup_w);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !relay.eof || relay.wants_stderr() {
            assert!(Instant::now() < deadline, "the relay did not drain");
            relay.drain(Duration::from_millis(10));
            got.extend(read_all(&out_r));
        }
        got.extend(read_all(&out_r));
        let text = String::from_utf8(got).unwrap();
        let (kept, note) = text.rsplit_once("taskmasterd[spawner]: ").unwrap();
        assert!(kept.len() >= RELAY_MAX_PENDING - line.len() && kept.len() <= RELAY_MAX_PENDING, "{}", kept.len());
        assert!(kept.lines().all(|l| l.as_bytes() == &line[..line.len() - 1]), "lines were cut");
        assert!(note.ends_with("bytes of the supervisor's output were dropped: stderr was not writable\n"), "{note}");
    }

    #[test]
    fn a_stderr_that_keeps_up_gets_every_byte_in_order() {
        let (sup_r, sup_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let file = tempfile::tempfile().unwrap();
        let mut relay = StderrRelay::new(sup_r, file.try_clone().unwrap().into()).unwrap();
        set_nonblocking(&sup_w, true);
        let mut sent = Vec::new();
        let mut i = 0u32;
        while sent.len() < 1 << 20 {
            let line = format!("{i} no byte of this line is lost\n");
            let mut rest = line.as_bytes();
            while !rest.is_empty() {
                match nix::unistd::write(&sup_w, rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(Errno::EAGAIN) => turn(&mut relay),
                    Err(e) => panic!("{e}"),
                }
            }
            sent.extend_from_slice(line.as_bytes());
            i += 1;
            turn(&mut relay);
        }
        drop(sup_w);
        relay.drain(Duration::from_secs(10));
        assert_eq!(relay.dropped, 0);
        let got = std::fs::read(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file))).unwrap();
        assert!(got == sent, "{} bytes relayed of {}", got.len(), sent.len());
    }
}
