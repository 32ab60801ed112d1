//! Starting the supervisor: the spawner forks, the child drops to `server.user` (as root) and
//! re-executes `taskmasterd --supervisor-role` with the link at fd 3 and the control socket at
//! fd 4 (DESIGN §1 rule 4). It runs in its own session, so a Ctrl-C on the terminal reaches only
//! the spawner, which then asks the supervisor for an orderly shutdown.

use crate::child;
use crate::prepare::{Identity, Prepared};
use crate::setup::SupervisorUser;
use crate::sys::ExecVectors;
use nix::unistd::Pid;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// The argument that selects the supervisor role of the taskmasterd binary.
pub const SUPERVISOR_ROLE: &str = "--supervisor-role";
/// The supervisor's end of the spawner link.
pub const LINK_FD: i32 = 3;
/// The listening control socket.
pub const LISTEN_FD: i32 = 4;

fn high_dup(fd: &OwnedFd) -> Result<OwnedFd, String> {
    crate::sys::dup_above(fd.as_fd(), 10).map_err(|e| format!("fcntl F_DUPFD_CLOEXEC: {e}"))
}

/// The highest capability number of this kernel (/proc/sys/kernel/cap_last_cap), 40 when it
/// cannot be read.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

/// Forks and execs the supervisor as `user` (uid, gid and groups [gid]; or as the current user
/// when `None`).
///
/// # Errors
/// The exec path cannot be found, or a step of the fork/drop/exec failed (named, with errno).
pub fn start_supervisor(link: &OwnedFd, listener: &OwnedFd, user: Option<&SupervisorUser>) -> Result<Pid, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find our own executable: {e}"))?;
    let path = CString::new(exe.as_os_str().as_bytes()).map_err(|_| "executable path has a NUL byte".to_owned())?;
    let argv = vec![CString::new("taskmasterd").unwrap_or_default(), CString::new(SUPERVISOR_ROLE).unwrap_or_default()];
    let env = crate::link::inherited_env()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let stdio = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().map_err(|e| format!("dup stdio: {e}"));
    let prepared = Prepared {
        exec: ExecVectors::new(path, argv, env),
        identity: user.map(|u| Identity { uid: u.uid, gid: u.gid, groups: vec![u.gid] }),
        umask: None,
        directory: None,
        child_fds: vec![
            (stdio(std::io::stdin().as_fd())?, 0),
            (stdio(std::io::stdout().as_fd())?, 1),
            (stdio(std::io::stderr().as_fd())?, 2),
            (high_dup(link)?, LINK_FD),
            (high_dup(listener)?, LISTEN_FD),
        ],
        controlling_tty: false,
        ambient_caps: 0,
        // As root: no capability can ever come back to the supervisor (DESIGN §1 rule 4).
        drop_bounding: user.map(|_| last_cap()),
        no_new_privs: true,
    };
    child::spawn(&prepared, &exe.display().to_string(), None).map_err(|e| format!("cannot start the supervisor: {e}"))
}
