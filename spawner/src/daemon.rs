//! Daemon mode (`-d`, `server.daemon`) and the pidfile, as supervisord's `nodaemon=false`:
//! fork, setsid, fork again, /dev/null stdio, chdir. The first process waits on a pipe until the
//! daemon says it serves (exit 0), or until it exits after printing its error (exit 1), so
//! `taskmasterd -d` fails visibly when startup fails.

use crate::paths::{self, Dir, NewDirs, PathError};
use crate::sys;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::{FileStat, SFlag};
use nix::unistd::ForkResult;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Why daemon mode or the pidfile failed; each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A system call of detaching failed: `pipe2`, `fork`, `setsid`, `open /dev/null`,
    /// `dup2 /dev/null`.
    #[error("{call}: {errno}")]
    Sys {
        /// The call, as the message names it.
        call: &'static str,
        /// Its errno.
        errno: Errno,
    },
    /// `server.directory` (or `/`) cannot be entered.
    #[error("chdir {}: {errno}", dir.display())]
    Chdir {
        /// The directory.
        dir: PathBuf,
        /// The errno of chdir(2).
        errno: Errno,
    },
    /// The pidfile's directory or node was refused, or a call on it failed ([`crate::paths`]).
    #[error("pidfile {}: {source}", path.display())]
    Path {
        /// `server.pidfile`.
        path: PathBuf,
        /// Why.
        source: PathError,
    },
    /// Something not ours is at the pidfile's path: not a regular file, another owner, or
    /// several links.
    #[error(
        "pidfile {}: not a file of ours (type {kind:o}, owner uid {uid}, {links} links): remove it",
        path.display()
    )]
    NotOurs {
        /// `server.pidfile`.
        path: PathBuf,
        /// Its file type bits (`st_mode & S_IFMT`).
        kind: u32,
        /// Its owner.
        uid: u32,
        /// Its link count.
        links: u64,
    },
    /// fstat(2) on the opened pidfile failed.
    #[error("cannot stat pidfile {}: {errno}", path.display())]
    Stat {
        /// `server.pidfile`.
        path: PathBuf,
        /// Its errno.
        errno: Errno,
    },
    /// Another process holds the pidfile's lock: another taskmasterd runs with this config.
    #[error("another taskmasterd (pid {pid}) holds {}", path.display())]
    Held {
        /// What the pidfile says (trimmed; may be empty).
        pid: String,
        /// `server.pidfile`.
        path: PathBuf,
    },
    /// Truncating or writing our pid failed.
    #[error("cannot write pidfile {}: {source}", path.display())]
    Write {
        /// `server.pidfile`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The daemon's line back to the process that started it.
pub struct Report(OwnedFd);

/// Detaches: only the grandchild returns; the original process exits 0 once the grandchild
/// reports [`Report::ready`], 1 if it exits first.
///
/// # Errors
/// [`DaemonError::Sys`]: `pipe2`, `fork` or `setsid` failed (in the original process).
pub fn daemonize() -> Result<Report, DaemonError> {
    let sys = |call| move |errno| DaemonError::Sys { call, errno };
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe2"))?;
    match sys::fork().map_err(sys("fork"))? {
        ForkResult::Parent { .. } => {
            drop(w);
            let mut said = Vec::new();
            let _ = File::from(r).read_to_end(&mut said);
            std::process::exit(if said == b"ok" { 0 } else { 1 });
        }
        ForkResult::Child => {}
    }
    drop(r);
    nix::unistd::setsid().map_err(sys("setsid"))?;
    match sys::fork().map_err(sys("fork"))? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => Ok(Report(w)),
    }
}

impl Report {
    /// The daemon serves: tell the waiting process, then leave the terminal (stdio to
    /// /dev/null) and change to `directory` (`server.directory`, else `/`).
    ///
    /// # Errors
    /// [`DaemonError::Chdir`] or [`DaemonError::Sys`]: /dev/null or the directory cannot be opened.
    pub fn ready(self, directory: Option<&Path>) -> Result<(), DaemonError> {
        let dir = directory.unwrap_or(Path::new("/"));
        nix::unistd::chdir(dir).map_err(|errno| DaemonError::Chdir { dir: dir.to_path_buf(), errno })?;
        let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .map_err(|errno| DaemonError::Sys { call: "open /dev/null", errno })?;
        let _ = File::from(self.0).write_all(b"ok");
        for fd in 0..3 {
            sys::dup2_onto(null.as_fd(), fd).map_err(|errno| DaemonError::Sys { call: "dup2 /dev/null", errno })?;
        }
        Ok(())
    }
}

/// The pidfile, locked (flock) while the daemon lives and removed when dropped.
pub struct PidFile {
    dir: Dir,
    name: OsString,
    _lock: Flock<File>,
    /// The pid an earlier taskmasterd left in the file: it did not exit in order (an orderly
    /// exit removes the file), e.g. it was killed with SIGKILL.
    pub stale: Option<i32>,
}

/// Creates (or reuses) and locks the pidfile at `path` and writes this process's pid in it
/// (DESIGN §1 rule 5): its directory, made root's (0755) when missing, must be secure
/// ([`crate::paths`]; a sticky one such as /tmp will do); the file is opened relative to it
/// with `O_NOFOLLOW`, and must be a regular file of ours with one link.
///
/// # Errors
/// Another process holds the lock ("another taskmasterd (pid 4242) holds …"), the directory or
/// the node is refused, or the file cannot be written; one line naming the path
/// ([`DaemonError`]).
pub fn lock_pidfile(path: &Path) -> Result<PidFile, DaemonError> {
    let refuse = |source: PathError| DaemonError::Path { path: path.to_path_buf(), source };
    let (dir_path, name) = paths::split(path).map_err(refuse)?;
    let dir = paths::open_dir(dir_path, Some(&NewDirs { mode: 0o755, owner: None })).map_err(refuse)?;
    dir.require_secure().map_err(refuse)?;
    let me = nix::unistd::geteuid().as_raw();
    let ours = |st: &FileStat| paths::is_kind(st, SFlag::S_IFREG) && st.st_uid == me && st.st_nlink == 1;
    let not_ours = |st: &FileStat| DaemonError::NotOurs {
        path: path.to_path_buf(),
        kind: st.st_mode & SFlag::S_IFMT.bits(),
        uid: st.st_uid,
        links: st.st_nlink,
    };
    // Look before opening, so that nothing another user placed there is ever opened.
    if let Some(st) = paths::stat_in(&dir, name).map_err(refuse)? {
        if !ours(&st) {
            return Err(not_ours(&st));
        }
    }
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NONBLOCK;
    let fd = paths::open_in(&dir, name, flags, 0o644).map_err(refuse)?;
    let st = nix::sys::stat::fstat(&fd).map_err(|errno| DaemonError::Stat { path: path.to_path_buf(), errno })?;
    if !ours(&st) {
        return Err(not_ours(&st));
    }
    let mut lock = match Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut f, _)) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            return Err(DaemonError::Held { pid: pid.trim().to_owned(), path: path.to_path_buf() });
        }
    };
    let mut before = String::new();
    let _ = lock.read_to_string(&mut before);
    let stale = before.trim().parse::<i32>().ok().filter(|pid| *pid > 0);
    lock.set_len(0).map_err(|source| DaemonError::Write { path: path.to_path_buf(), source })?;
    lock.rewind()
        .and_then(|()| writeln!(lock, "{}", std::process::id()))
        .map_err(|source| DaemonError::Write { path: path.to_path_buf(), source })?;
    Ok(PidFile { dir, name: name.to_owned(), _lock: lock, stale })
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = nix::unistd::unlinkat(self.dir.fd(), self.name.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::SetupError;

    /// The typed errors print what the `String`s they replaced printed, byte for byte.
    #[test]
    fn messages_are_unchanged() {
        let path = PathBuf::from("/run/t.pid");
        let held = DaemonError::Held { pid: "4242".into(), path: path.clone() };
        assert_eq!(held.to_string(), "another taskmasterd (pid 4242) holds /run/t.pid");
        let not_ours = DaemonError::NotOurs { path, kind: 0o120000, uid: 7, links: 1 };
        assert_eq!(
            not_ours.to_string(),
            "pidfile /run/t.pid: not a file of ours (type 120000, owner uid 7, 1 links): remove it"
        );
        let sys = DaemonError::Sys { call: "fork", errno: Errno::EAGAIN };
        assert_eq!(sys.to_string(), format!("fork: {}", Errno::EAGAIN));
        let limit = SetupError::AboveHardLimit { key: "minfds", want: 100000, hard: 4096 };
        assert_eq!(limit.to_string(), "server.minfds 100000 exceeds the hard limit 4096; lower it or start as root");
        assert_eq!(
            SetupError::NoConfig.to_string(),
            "no config file: give -c FILE or set TASKMASTER_CONFIG (tried ./taskmaster.yaml and /etc/taskmaster/taskmaster.yaml)"
        );
    }
}
