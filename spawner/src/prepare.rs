//! Turns a `Program` instance into everything its child needs, built before fork: the resolved
//! executable, argv and envp, ids and groups, umask, directory and stdio fds (the child's ends
//! given to the program's user). Nothing here runs in the child.

use crate::sys::ExecVectors;
use common::config::{Config, Program, Stream};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid, User};
use std::ffi::{CString, OsStr};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The identity the child switches to (as root only).
#[derive(Debug, Clone)]
pub struct Identity {
    /// Target uid.
    pub uid: Uid,
    /// Target gid (the user's primary group).
    pub gid: Gid,
    /// Supplementary groups (from the group database, as initgroups would set).
    pub groups: Vec<Gid>,
}

/// What the child needs to become the program.
pub struct Prepared {
    /// Executable, argv and envp.
    pub exec: ExecVectors,
    /// Identity to drop to, if any.
    pub identity: Option<Identity>,
    /// umask to set, if configured.
    pub umask: Option<Mode>,
    /// Directory to chdir to, if configured.
    pub directory: Option<CString>,
    /// The child's fds 0, 1, 2, then any further fds with the number each must have.
    pub child_fds: Vec<(OwnedFd, i32)>,
    /// Make fd 0 (a PTY slave) the controlling terminal (TIOCSCTTY) after setsid.
    pub controlling_tty: bool,
    /// Capabilities (bit N: capability N) made ambient for a non-root user, as the program's
    /// `capabilities` say; 0 for none.
    pub ambient_caps: u64,
    /// Empty the bounding set up to this capability number before dropping root (the
    /// supervisor).
    pub drop_bounding: Option<u32>,
    /// Set no_new_privs before exec (the supervisor).
    pub no_new_privs: bool,
    /// The directory of the instance's own cgroup, opened (close-on-exec): the child is forked
    /// into it (see `leftovers.rs`). Never set for the supervisor.
    pub cgroup: Option<OwnedFd>,
}

/// The supervisor's ends of the pipes (or the PTY master, as `stdout`), sent up with `Spawned`.
pub struct ParentEnds {
    /// `stdout` is a PTY master.
    pub pty: bool,
    /// Write end of stdin.
    pub stdin: Option<OwnedFd>,
    /// Read end of stdout.
    pub stdout: Option<OwnedFd>,
    /// Read end of stderr.
    pub stderr: Option<OwnedFd>,
    /// For a PTY: the holding pipe (read end, write end) the supervisor moves the master's
    /// output through with splice(2), so that output it took from the terminal survives its
    /// death in a pipe the spawner keeps (issue 16).
    pub hold: Option<(OwnedFd, OwnedFd)>,
}

/// Why a spawn could not be prepared; becomes the `SpawnFailed` text.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The command was not found (as supervisord's "can't find command").
    #[error("can't find command '{0}': {errno:?} ({desc})", errno = .1, desc = .1.desc())]
    NotFound(String, nix::errno::Errno),
    /// The command exists but is not an executable file.
    #[error("command '{0}' is not executable: EACCES (Permission denied)")]
    NotExecutable(String),
    /// The user vanished since the config was checked.
    #[error("unknown user '{0}'")]
    UnknownUser(String),
    /// A string holds a NUL byte.
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    /// A system call failed.
    #[error("{step}: {errno} ({desc})", desc = errno.desc())]
    Sys {
        /// What was being done.
        step: &'static str,
        /// errno.
        errno: nix::errno::Errno,
    },
}

impl PrepareError {
    /// The step that failed, when a system call did: `find command` for a command not found,
    /// else the call's name.
    pub fn step(&self) -> Option<&'static str> {
        match self {
            PrepareError::NotFound(..) | PrepareError::NotExecutable(_) => Some("find command"),
            PrepareError::Sys { step, .. } => Some(step),
            PrepareError::UnknownUser(_) | PrepareError::Nul(_) => None,
        }
    }

    /// The errno of that step.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            PrepareError::NotFound(_, errno) | PrepareError::Sys { errno, .. } => Some(*errno),
            PrepareError::NotExecutable(_) => Some(nix::errno::Errno::EACCES),
            PrepareError::UnknownUser(_) | PrepareError::Nul(_) => None,
        }
    }
}

fn cstring(what: &'static str, bytes: &[u8]) -> Result<CString, PrepareError> {
    CString::new(bytes).map_err(|_| PrepareError::Nul(what))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `cmd` as execvp would: as given when it has a `/`, else in each `PATH` directory.
///
/// # Errors
/// [`PrepareError::NotFound`] or [`PrepareError::NotExecutable`].
pub fn resolve_command(cmd: &str, path_var: Option<&OsStr>, directory: Option<&Path>) -> Result<PathBuf, PrepareError> {
    if cmd.contains('/') {
        let p = Path::new(cmd);
        let full = match directory {
            Some(d) if p.is_relative() => d.join(p),
            _ => p.to_path_buf(),
        };
        return match std::fs::metadata(&full) {
            Err(e) => Err(PrepareError::NotFound(
                cmd.to_owned(),
                nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)),
            )),
            Ok(_) if !is_executable(&full) => Err(PrepareError::NotExecutable(cmd.to_owned())),
            Ok(_) => Ok(p.to_path_buf()),
        };
    }
    let path_var = path_var.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(path_var)
        .map(|dir| dir.join(cmd))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| PrepareError::NotFound(cmd.to_owned(), nix::errno::Errno::ENOENT))
}

/// Looks up a user's uid, primary gid and supplementary groups.
///
/// # Errors
/// [`PrepareError::UnknownUser`].
pub fn identity(name: &str) -> Result<(Identity, User), PrepareError> {
    let user = User::from_name(name).ok().flatten().ok_or_else(|| PrepareError::UnknownUser(name.to_owned()))?;
    let cname = cstring("user name", name.as_bytes())?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid).unwrap_or_else(|_| vec![user.gid]);
    Ok((Identity { uid: user.uid, gid: user.gid, groups }, user))
}

/// `TERM` of a PTY program whose environment has none, or an empty one (DESIGN §5): the
/// terminal model `fg` relays through understands what xterm-256color describes, and every
/// terminfo database has it. A configured `environment: {TERM: …}` wins.
pub const DEFAULT_TERM: &str = "xterm-256color";

/// The environment of one instance: the daemon's, then `server.environment`, then the target
/// user's `HOME`/`USER`/`LOGNAME` when switching user (differs from supervisord, which keeps the
/// daemon's), then the program's, then [`DEFAULT_TERM`] for a PTY program left without a
/// `TERM`, then the `TASKMASTER_*` variables (DESIGN §3).
pub fn environment(
    config: &Config,
    p: &Program,
    instance: u32,
    base: &[(String, String)],
    user: Option<&User>,
) -> Vec<(String, String)> {
    fn set(env: &mut Vec<(String, String)>, k: &str, v: String) {
        match env.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k.to_owned(), v)),
        }
    }
    let mut env: Vec<(String, String)> = base.to_vec();
    for (k, v) in &config.server.environment {
        set(&mut env, k, v.clone());
    }
    if let Some(u) = user {
        set(&mut env, "HOME", u.dir.to_string_lossy().into_owned());
        set(&mut env, "USER", u.name.clone());
        set(&mut env, "LOGNAME", u.name.clone());
    }
    for (k, v) in &p.environment {
        set(&mut env, k, v.clone());
    }
    // Under systemd (or `env -i`) taskmasterd has no TERM, and curses programs then refuse to
    // start ("Error opening terminal: unknown").
    if p.pty && !env.iter().any(|(k, v)| k == "TERM" && !v.is_empty()) {
        set(&mut env, "TERM", DEFAULT_TERM.into());
    }
    set(&mut env, "TASKMASTER_ENABLED", "1".into());
    set(&mut env, "TASKMASTER_PROGRAM", p.name.clone());
    set(&mut env, "TASKMASTER_PROCESS_NAME", p.process_name(instance).to_string());
    set(&mut env, "TASKMASTER_INSTANCE", instance.to_string());
    set(&mut env, "TASKMASTER_SERVER_URL", format!("unix://{}", config.socket.path.display()));
    env
}

fn pipe() -> Result<(OwnedFd, OwnedFd), PrepareError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| PrepareError::Sys { step: "pipe2", errno })
}

/// Bytes of pipe buffer asked for an output pipe (F_SETPIPE_SZ): a noisy program then fills
/// 16 reads of 64 KiB per wakeup of the supervisor instead of one. Best effort: the kernel's
/// pipe-max-size may refuse it.
pub const OUTPUT_PIPE_BYTES: i32 = 1 << 20;

fn output_pipe() -> Result<(OwnedFd, OwnedFd), PrepareError> {
    let (r, w) = pipe()?;
    let _ = nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_SETPIPE_SZ(OUTPUT_PIPE_BYTES));
    Ok((r, w))
}

/// Gives a pipe end (or a PTY slave) of the child to the program's user, as a shell's pipes and
/// a login's terminal are its own: the kernel checks the pipe's owner and its 0600 mode when
/// the program reopens `/dev/stdout` (`/proc/self/fd/1`), as nginx's `access_log /dev/stdout`
/// does. A pipe's two ends are one inode, so the supervisor's end changes owner with it; both
/// belong to processes that already hold them open. `group` `None` keeps the group (a PTY
/// slave's is the `tty` group).
fn give_to_user(fd: &OwnedFd, owner: Option<(Uid, Option<Gid>)>) -> Result<(), PrepareError> {
    match owner {
        Some((uid, gid)) => {
            nix::unistd::fchown(fd, Some(uid), gid).map_err(|errno| PrepareError::Sys { step: "fchown", errno })
        }
        None => Ok(()),
    }
}

fn dev_null(flags: OFlag) -> Result<OwnedFd, PrepareError> {
    nix::fcntl::open("/dev/null", flags | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|errno| PrepareError::Sys { step: "open /dev/null", errno })
}

/// Prepares one instance. `base_env` is the daemon's environment at start.
///
/// # Errors
/// Any [`PrepareError`]: the spawn is then reported failed without a fork.
pub fn prepare(
    config: &Config,
    p: &Program,
    instance: u32,
    base_env: &[(String, String)],
    as_root: bool,
) -> Result<(Prepared, ParentEnds), PrepareError> {
    let p = &p.for_instance(instance);
    let (ident, user) = match (&p.user, as_root) {
        (Some(name), true) => {
            let (i, u) = identity(name)?;
            (Some(i), Some(u))
        }
        _ => (None, None),
    };
    let env = environment(config, p, instance, base_env, user.as_ref());
    let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| OsStr::new(v.as_str()));
    let exe = resolve_command(&p.command[0], path_var, p.directory.as_deref())?;
    let argv = p.command.iter().map(|a| cstring("an argument", a.as_bytes())).collect::<Result<Vec<_>, _>>()?;
    let envp = env
        .iter()
        .map(|(k, v)| cstring("an environment variable", format!("{k}={v}").as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let exec = ExecVectors::new(cstring("the command", exe.as_os_str().as_bytes())?, argv, envp);
    let directory = p.directory.as_ref().map(|d| cstring("directory", d.as_os_str().as_bytes())).transpose()?;

    let ambient_caps = capability_mask(&p.capabilities);
    // Only when switching to another user (as root): otherwise the pipes are already the
    // program's user's, the spawner's own.
    let owner = ident.as_ref().map(|i| (i.uid, Some(i.gid)));
    if p.pty {
        return prepare_pty(exec, ident, p, directory, ambient_caps);
    }
    let (stdin_r, stdin_w) = pipe()?;
    give_to_user(&stdin_r, owner)?;
    let logged = |s: Stream| p.log_file(s, instance, &config.server.childlogdir).is_some();
    let (stdout_child, stdout_parent) = if logged(Stream::Stdout) {
        let (r, w) = output_pipe()?;
        give_to_user(&w, owner)?;
        (w, Some(r))
    } else {
        (dev_null(OFlag::O_WRONLY)?, None)
    };
    let (stderr_child, stderr_parent) = if p.redirect_stderr {
        let dup = stdout_child.try_clone().map_err(|e| PrepareError::Sys {
            step: "dup",
            errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        (dup, None)
    } else if logged(Stream::Stderr) {
        let (r, w) = output_pipe()?;
        give_to_user(&w, owner)?;
        (w, Some(r))
    } else {
        (dev_null(OFlag::O_WRONLY)?, None)
    };
    let prepared = Prepared {
        exec,
        identity: ident,
        umask: p.umask.map(|m| Mode::from_bits_truncate(m as libc::mode_t)),
        directory,
        child_fds: vec![(stdin_r, 0), (stdout_child, 1), (stderr_child, 2)],
        controlling_tty: false,
        ambient_caps,
        drop_bounding: None,
        no_new_privs: false,
        cgroup: None,
    };
    let ends =
        ParentEnds { pty: false, stdin: Some(stdin_w), stdout: stdout_parent, stderr: stderr_parent, hold: None };
    Ok((prepared, ends))
}

/// Default window size of a PTY until a client attaches (DESIGN §5): 24 rows, 80 columns.
pub const DEFAULT_WINSIZE: (u16, u16) = (24, 80);

/// The capability bits of `names` (`CAP_NET_BIND_SERVICE` …; the config validated them).
pub fn capability_mask(names: &[String]) -> u64 {
    use std::str::FromStr;
    names
        .iter()
        .filter_map(|n| caps::Capability::from_str(&n.to_ascii_uppercase()).ok())
        .fold(0, |m, c| m | c.bitmask())
}

fn prepare_pty(
    exec: ExecVectors,
    identity: Option<Identity>,
    p: &Program,
    directory: Option<CString>,
    ambient_caps: u64,
) -> Result<(Prepared, ParentEnds), PrepareError> {
    let winsize =
        nix::pty::Winsize { ws_row: DEFAULT_WINSIZE.0, ws_col: DEFAULT_WINSIZE.1, ws_xpixel: 0, ws_ypixel: 0 };
    let pty = nix::pty::openpty(Some(&winsize), None).map_err(|errno| PrepareError::Sys { step: "openpty", errno })?;
    let sys = |step: &'static str| {
        move |e: std::io::Error| PrepareError::Sys {
            step,
            errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        }
    };
    // openpty's fds are not close-on-exec: the master must not leak into the child.
    nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))
        .map_err(|errno| PrepareError::Sys { step: "fcntl", errno })?;
    // The terminal is the program's user's, as login(1) and sshd make it; its group stays.
    give_to_user(&pty.slave, identity.as_ref().map(|i| (i.uid, None)))?;
    let slave1 = pty.slave.try_clone().map_err(sys("dup"))?;
    let slave2 = pty.slave.try_clone().map_err(sys("dup"))?;
    let prepared = Prepared {
        exec,
        identity,
        umask: p.umask.map(|m| Mode::from_bits_truncate(m as libc::mode_t)),
        directory,
        child_fds: vec![(pty.slave, 0), (slave1, 1), (slave2, 2)],
        controlling_tty: true,
        ambient_caps,
        drop_bounding: None,
        no_new_privs: false,
        cgroup: None,
    };
    let hold =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| PrepareError::Sys { step: "pipe2", errno })?;
    Ok((prepared, ParentEnds { pty: true, stdin: None, stdout: Some(pty.master), stderr: None, hold: Some(hold) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(programs: &str) -> Config {
        let ctx = common::config::validate::Context {
            is_root: false,
            current_user: None,
            check_users: false,
            trusted_uid: None,
        };
        common::config::load::load_str(Path::new("/tmp/taskmaster.yaml"), programs, &ctx).unwrap()
    }

    fn term_of(yaml: &str, base: &[(&str, &str)]) -> Option<String> {
        let c = config(yaml);
        let base: Vec<(String, String)> = base.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let env = environment(&c, &c.programs[0], 0, &base, None);
        env.into_iter().find(|(k, _)| k == "TERM").map(|(_, v)| v)
    }

    #[test]
    fn a_pty_program_without_a_term_gets_xterm_256color_and_a_configured_one_wins() {
        let pty = "programs:\n  p:\n    command: vim\n    pty: true\n";
        assert_eq!(term_of(pty, &[]).as_deref(), Some("xterm-256color"));
        assert_eq!(term_of(pty, &[("TERM", "")]).as_deref(), Some("xterm-256color"));
        assert_eq!(term_of(pty, &[("TERM", "linux")]).as_deref(), Some("linux"), "the daemon's own TERM is kept");
        let configured = "programs:\n  p:\n    command: vim\n    pty: true\n    environment: {TERM: screen-256color}\n";
        assert_eq!(term_of(configured, &[("TERM", "linux")]).as_deref(), Some("screen-256color"));
        let pipe = "programs:\n  p:\n    command: cat\n";
        assert_eq!(term_of(pipe, &[]), None, "a program without a PTY gets no TERM of ours");
    }

    #[test]
    fn commands_are_found_in_path_as_execvp_would() {
        assert_eq!(resolve_command("sh", Some(OsStr::new("/nonexistent:/bin")), None).unwrap(), Path::new("/bin/sh"));
        assert!(matches!(
            resolve_command("no-such-cmd-x", None, None),
            Err(PrepareError::NotFound(_, nix::errno::Errno::ENOENT))
        ));
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "data").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(resolve_command(plain.to_str().unwrap(), None, None), Err(PrepareError::NotExecutable(_))));
        assert!(matches!(
            resolve_command("/no/such", None, None),
            Err(PrepareError::NotFound(_, nix::errno::Errno::ENOENT))
        ));
        let e = resolve_command("/x", None, None).unwrap_err();
        assert_eq!(e.to_string(), "can't find command '/x': ENOENT (No such file or directory)");
        assert_eq!((e.step(), e.errno()), (Some("find command"), Some(nix::errno::Errno::ENOENT)));
    }
}
