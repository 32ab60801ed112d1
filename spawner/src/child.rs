//! Fork to exec. The child runs only async-signal-safe calls, each a named [`Step`], and on
//! failure writes `[step u8, errno i32 BE]` to a close-on-exec pipe the parent reads (EOF means
//! exec succeeded), then `_exit(127)`. Model: sudo-rs's exec error pipe, OpenSSH's check that a
//! dropped uid cannot be regained.
//!
//! Every child (each program and the supervisor) gets SIGKILL as its parent-death signal, set
//! after the credential change (which clears it), so that the spawner's death, even by SIGKILL,
//! leaves none of them running unsupervised (issue 16 item 5). A child whose spawner died before
//! that point (its parent is then another process) exits at once.

use crate::prepare::Prepared;
use crate::sys;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::unistd::{setgid, setgroups, setsid, setuid, Uid};
use nix::unistd::{ForkResult, Pid};
use std::convert::Infallible;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

/// The steps between fork and exec, in order; the one that failed is reported with its errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// setsid(2): own session and process group.
    Setsid = 1,
    /// Default signal actions, empty mask.
    Signals,
    /// Emptying the capability bounding set.
    Bounding,
    /// PR_SET_KEEPCAPS.
    Keepcaps,
    /// setgroups(2).
    Setgroups,
    /// setgid(2).
    Setgid,
    /// setuid(2).
    Setuid,
    /// setuid(0) succeeded after the drop: the drop did not hold.
    RegainRoot,
    /// capset(2) and the ambient raise of the program's capabilities.
    Capabilities,
    /// prctl(PR_SET_PDEATHSIG, SIGKILL).
    ParentDeath,
    /// PR_SET_NO_NEW_PRIVS.
    NoNewPrivs,
    /// umask(2).
    Umask,
    /// chdir(2).
    Chdir,
    /// dup2(2) of stdio.
    Dup2,
    /// ioctl(TIOCSCTTY): the PTY slave as controlling terminal.
    Tiocsctty,
    /// close_range(2).
    CloseRange,
    /// execve(2).
    Execve,
}

impl Step {
    /// The step's name as errors print it.
    pub fn name(self) -> &'static str {
        match self {
            Step::Setsid => "setsid",
            Step::Signals => "sigprocmask",
            Step::Bounding => "prctl PR_CAPBSET_DROP",
            Step::Keepcaps => "prctl PR_SET_KEEPCAPS",
            Step::Capabilities => "capset/ambient capabilities",
            Step::ParentDeath => "prctl PR_SET_PDEATHSIG",
            Step::NoNewPrivs => "prctl PR_SET_NO_NEW_PRIVS",
            Step::Setgroups => "setgroups",
            Step::Setgid => "setgid",
            Step::Setuid => "setuid",
            Step::RegainRoot => "setuid(0) after drop",
            Step::Umask => "umask",
            Step::Chdir => "chdir",
            Step::Dup2 => "dup2",
            Step::Tiocsctty => "ioctl TIOCSCTTY",
            Step::CloseRange => "close_range",
            Step::Execve => "execve",
        }
    }

    /// The step for a reported byte.
    pub fn from_u8(b: u8) -> Option<Step> {
        const ALL: [Step; 17] = [
            Step::Setsid,
            Step::Signals,
            Step::Bounding,
            Step::Keepcaps,
            Step::Setgroups,
            Step::Setgid,
            Step::Setuid,
            Step::RegainRoot,
            Step::Capabilities,
            Step::ParentDeath,
            Step::NoNewPrivs,
            Step::Umask,
            Step::Chdir,
            Step::Dup2,
            Step::Tiocsctty,
            Step::CloseRange,
            Step::Execve,
        ];
        ALL.into_iter().find(|s| *s as u8 == b)
    }
}

/// Runs in the forked child of `parent` (the spawner's pid, taken before the fork): sets it up
/// and execs, or reports the failed step and exits 127.
pub fn exec_child(p: &Prepared, errpipe: BorrowedFd<'_>, parent: Pid) -> ! {
    let Err((step, errno)) = setup_and_exec(p, parent);
    let e = (errno as i32).to_be_bytes();
    sys::write_all(errpipe, &[step as u8, e[0], e[1], e[2], e[3]]);
    sys::exit_now(127)
}

fn setup_and_exec(p: &Prepared, parent: Pid) -> Result<Infallible, (Step, Errno)> {
    setsid().map_err(|e| (Step::Setsid, e))?;
    sys::reset_signals().map_err(|e| (Step::Signals, e))?;
    if let Some(last_cap) = p.drop_bounding {
        sys::drop_bounding_set(last_cap).map_err(|e| (Step::Bounding, e))?;
    }
    if let Some(id) = &p.identity {
        if p.ambient_caps != 0 {
            sys::keep_caps().map_err(|e| (Step::Keepcaps, e))?;
        }
        setgroups(&id.groups).map_err(|e| (Step::Setgroups, e))?;
        setgid(id.gid).map_err(|e| (Step::Setgid, e))?;
        setuid(id.uid).map_err(|e| (Step::Setuid, e))?;
        // With an empty effective set (setuid cleared it), even kept permitted capabilities
        // cannot regain root.
        if !id.uid.is_root() && setuid(Uid::from_raw(0)).is_ok() {
            return Err((Step::RegainRoot, Errno::EPERM));
        }
        if p.ambient_caps != 0 {
            sys::grant_ambient(p.ambient_caps).map_err(|e| (Step::Capabilities, e))?;
        }
    }
    // After the uid change, which clears it (credentials(7)); an exec of a set-user-ID file
    // clears it too.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| (Step::ParentDeath, e))?;
    if nix::unistd::getppid() != parent {
        // The spawner died before the line above: nobody would supervise this child, and nobody
        // reads the error pipe.
        sys::exit_now(127);
    }
    if p.no_new_privs {
        sys::set_no_new_privs().map_err(|e| (Step::NoNewPrivs, e))?;
    }
    if let Some(mask) = p.umask {
        nix::sys::stat::umask(mask);
    }
    if let Some(dir) = &p.directory {
        nix::unistd::chdir(dir.as_c_str()).map_err(|e| (Step::Chdir, e))?;
    }
    // Sources are all above the highest target (`setup::ensure_stdio` keeps fds 0-2 open and
    // `privdrop` moves the supervisor's fds above 10), so no dup2 overwrites a source not yet
    // copied.
    for (fd, target) in &p.child_fds {
        sys::dup2_onto(fd.as_fd(), *target).map_err(|e| (Step::Dup2, e))?;
    }
    if p.controlling_tty {
        sys::set_controlling_tty(0).map_err(|e| (Step::Tiocsctty, e))?;
    }
    let first_free = p.child_fds.iter().map(|(_, t)| *t + 1).max().unwrap_or(3);
    sys::cloexec_from(first_free as u32).map_err(|e| (Step::CloseRange, e))?;
    Err((Step::Execve, sys::execve(&p.exec)))
}

/// Why a child did not reach its program: the fork failed, or the child reported the step
/// that failed and its errno. Each keeps the step and errno typed up to the `SpawnFailed` event.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// pipe2(2) or fork(2) failed in the parent.
    #[error("{call}: {errno:?} ({desc})", desc = errno.desc())]
    Parent {
        /// `pipe2` or `fork`.
        call: &'static str,
        /// Its errno.
        errno: Errno,
    },
    /// The child ended before exec without writing its whole report.
    #[error("child failed before exec without a complete report")]
    Incomplete,
    /// The child reported `step` failing with `errno`. `what` is the step as the message
    /// names it: `execve /usr/bin/x`, `chdir /srv`, `setuid`.
    #[error("{what}: {errno:?} ({desc})", desc = errno.desc())]
    Child {
        /// The step that failed (`None`: a byte this build does not know).
        step: Option<Step>,
        /// Its errno.
        errno: Errno,
        /// The step as the message names it.
        what: String,
    },
}

impl SpawnError {
    /// The name of the step that failed (`fork`, `execve`, `chdir` …), if known.
    pub fn step(&self) -> Option<&'static str> {
        match self {
            SpawnError::Parent { call, .. } => Some(call),
            SpawnError::Child { step, .. } => step.map(Step::name),
            SpawnError::Incomplete => None,
        }
    }

    /// The errno of the failed step, if any.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            SpawnError::Parent { errno, .. } | SpawnError::Child { errno, .. } => Some(*errno),
            SpawnError::Incomplete => None,
        }
    }
}

/// Forks a child that becomes `p`, and waits until it has exec'd (the error pipe reads EOF) or
/// failed (5 bytes; the child is then reaped here). Returns its pid.
///
/// # Errors
/// [`SpawnError`]: "fork: EAGAIN …", or the failed step as [`describe_failure`] words it.
pub fn spawn(p: &Prepared, command: &str, directory: Option<&str>) -> Result<Pid, SpawnError> {
    let (err_r, err_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| SpawnError::Parent { call: "pipe2", errno })?;
    let parent = sys::getpid();
    // Into the instance's cgroup (leftovers.rs) where it has one. Best effort: where clone3
    // cannot, a plain fork, and the process group alone finds what the program leaves behind.
    let forked = match &p.cgroup {
        Some(cgroup) => sys::fork_into_cgroup(cgroup.as_fd()).or_else(|_| sys::fork()),
        None => sys::fork(),
    };
    match forked.map_err(|errno| SpawnError::Parent { call: "fork", errno })? {
        ForkResult::Child => exec_child(p, err_w.as_fd(), parent),
        ForkResult::Parent { child } => {
            drop(err_w);
            let mut buf = [0u8; 5];
            let mut got = 0;
            let mut file = std::fs::File::from(err_r);
            while got < buf.len() {
                match file.read(&mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            if got == 0 {
                return Ok(child);
            }
            let _ = nix::sys::wait::waitpid(child, None);
            if got < buf.len() {
                return Err(SpawnError::Incomplete);
            }
            Err(describe_failure(&buf, command, directory))
        }
    }
}

/// Decodes the 5 bytes a failed child wrote; the error displays as
/// "chdir /srv: ENOENT (No such file or directory)".
pub fn describe_failure(bytes: &[u8; 5], command: &str, directory: Option<&str>) -> SpawnError {
    let step = Step::from_u8(bytes[0]);
    let errno = Errno::from_raw(i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]));
    let what = match (step, directory) {
        (Some(Step::Execve), _) => format!("execve {command}"),
        (Some(Step::Chdir), Some(d)) => format!("chdir {d}"),
        (Some(s), _) => s.name().to_owned(),
        (None, _) => "unknown step".to_owned(),
    };
    SpawnError::Child { step, errno, what }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_childs_failure_keeps_its_step_and_errno() {
        let e = (Errno::ENOENT as i32).to_be_bytes();
        let failure = describe_failure(&[Step::Chdir as u8, e[0], e[1], e[2], e[3]], "/bin/x", Some("/srv"));
        assert_eq!(failure.to_string(), "chdir /srv: ENOENT (No such file or directory)");
        assert_eq!((failure.step(), failure.errno()), (Some("chdir"), Some(Errno::ENOENT)));
        let failure = describe_failure(&[Step::Execve as u8, e[0], e[1], e[2], e[3]], "/bin/x", None);
        assert_eq!(failure.to_string(), "execve /bin/x: ENOENT (No such file or directory)");
        assert_eq!(failure.step(), Some("execve"));
    }
}
