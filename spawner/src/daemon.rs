//! Daemon mode (`-d`, `server.daemon`) and the pidfile, as supervisord's `nodaemon=false`:
//! fork, setsid, fork again, /dev/null stdio, chdir. The first process waits on a pipe until the
//! daemon says it serves (exit 0), or until it exits after printing its error (exit 1), so
//! `taskmasterd -d` fails visibly when startup fails.

use crate::paths::{self, Dir, NewDirs, PathError};
use crate::sys;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::{FileStat, SFlag};
use nix::unistd::ForkResult;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The daemon's line back to the process that started it.
pub struct Report(OwnedFd);

/// Detaches: only the grandchild returns; the original process exits 0 once the grandchild
/// reports [`Report::ready`], 1 if it exits first.
///
/// # Errors
/// `pipe2`, `fork` or `setsid` failed (in the original process).
pub fn daemonize() -> Result<Report, String> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))?;
    match sys::fork().map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { .. } => {
            drop(w);
            let mut said = Vec::new();
            let _ = File::from(r).read_to_end(&mut said);
            std::process::exit(if said == b"ok" { 0 } else { 1 });
        }
        ForkResult::Child => {}
    }
    drop(r);
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    match sys::fork().map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => Ok(Report(w)),
    }
}

impl Report {
    /// The daemon serves: tell the waiting process, then leave the terminal (stdio to
    /// /dev/null) and change to `directory` (`server.directory`, else `/`).
    ///
    /// # Errors
    /// /dev/null or the directory cannot be opened.
    pub fn ready(self, directory: Option<&Path>) -> Result<(), String> {
        let dir = directory.unwrap_or(Path::new("/"));
        nix::unistd::chdir(dir).map_err(|e| format!("chdir {}: {e}", dir.display()))?;
        let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .map_err(|e| format!("open /dev/null: {e}"))?;
        let _ = File::from(self.0).write_all(b"ok");
        for fd in 0..3 {
            sys::dup2_onto(null.as_fd(), fd).map_err(|e| format!("dup2 /dev/null: {e}"))?;
        }
        Ok(())
    }
}

/// The pidfile, locked (flock) while the daemon lives and removed when dropped.
pub struct PidFile {
    dir: Dir,
    name: OsString,
    _lock: Flock<File>,
}

/// Creates (or reuses) and locks the pidfile at `path` and writes this process's pid in it
/// (DESIGN §1 rule 5): its directory, made root's (0755) when missing, must be secure
/// ([`crate::paths`]; a sticky one such as /tmp will do); the file is opened relative to it
/// with `O_NOFOLLOW`, and must be a regular file of ours with one link.
///
/// # Errors
/// Another process holds the lock ("another taskmasterd (pid 4242) holds …"), the directory or
/// the node is refused, or the file cannot be written; one line naming the path.
pub fn lock_pidfile(path: &Path) -> Result<PidFile, String> {
    let refuse = |e: PathError| format!("pidfile {}: {e}", path.display());
    let (dir_path, name) = paths::split(path).map_err(refuse)?;
    let dir = paths::open_dir(dir_path, Some(&NewDirs { mode: 0o755, owner: None })).map_err(refuse)?;
    dir.require_secure().map_err(refuse)?;
    let me = nix::unistd::geteuid().as_raw();
    let ours = |st: &FileStat| paths::is_kind(st, SFlag::S_IFREG) && st.st_uid == me && st.st_nlink == 1;
    let not_ours = |st: &FileStat| {
        format!(
            "pidfile {}: not a file of ours (type {:o}, owner uid {}, {} links): remove it",
            path.display(),
            st.st_mode & SFlag::S_IFMT.bits(),
            st.st_uid,
            st.st_nlink
        )
    };
    // Look before opening, so that nothing another user placed there is ever opened.
    if let Some(st) = paths::stat_in(&dir, name).map_err(refuse)? {
        if !ours(&st) {
            return Err(not_ours(&st));
        }
    }
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NONBLOCK;
    let fd = paths::open_in(&dir, name, flags, 0o644).map_err(refuse)?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| format!("cannot stat pidfile {}: {e}", path.display()))?;
    if !ours(&st) {
        return Err(not_ours(&st));
    }
    let mut lock = match Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut f, _)) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            return Err(format!("another taskmasterd (pid {}) holds {}", pid.trim(), path.display()));
        }
    };
    lock.set_len(0).map_err(|e| format!("cannot write pidfile {}: {e}", path.display()))?;
    lock.rewind()
        .and_then(|()| writeln!(lock, "{}", std::process::id()))
        .map_err(|e| format!("cannot write pidfile {}: {e}", path.display()))?;
    Ok(PidFile { dir, name: name.to_owned(), _lock: lock })
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = nix::unistd::unlinkat(self.dir.fd(), self.name.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}
