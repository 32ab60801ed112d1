//! What the spawner sets up before serving: the config path, fds 0-2, resource limits, the
//! supervisor's identity, log directories owned by it, and the control socket.
//!
//! Every path is reached through [`crate::paths`] (DESIGN §1 rule 5): root creates nothing by a
//! path a less trusted user can change, opens no existing log file, and chowns only through the
//! fd of what it has just made.

use crate::paths::{self, Dir, NewDirs, PathError};
use common::config::{Config, Stream};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::stat::SFlag;
use nix::unistd::{Gid, Group, Uid, User};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The config file to read: `-c`, else `$TASKMASTER_CONFIG`, else `./taskmaster.yaml`, else
/// `/etc/taskmaster/taskmaster.yaml` (DESIGN §7).
///
/// # Errors
/// [`SetupError::NoConfig`]: none of them exists; the message lists what was tried.
pub fn find_config(flag: Option<&Path>) -> Result<PathBuf, SetupError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("TASKMASTER_CONFIG").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let candidates = [PathBuf::from("taskmaster.yaml"), PathBuf::from("/etc/taskmaster/taskmaster.yaml")];
    candidates.iter().find(|p| p.is_file()).cloned().ok_or(SetupError::NoConfig)
}

/// Raises the soft RLIMIT_NOFILE and RLIMIT_NPROC to `minfds` and `minprocs` (and the hard
/// limits too when root), as supervisord does at startup; children inherit them.
///
/// # Errors
/// [`SetupError::AboveHardLimit`], [`SetupError::Getrlimit`] or [`SetupError::Setrlimit`]: the
/// limit could not be raised ("server.minfds 100000 exceeds the hard limit 4096 …").
pub fn raise_limits(config: &Config) -> Result<(), SetupError> {
    for (res, want, key) in [
        (Resource::RLIMIT_NOFILE, config.server.minfds, "minfds"),
        (Resource::RLIMIT_NPROC, config.server.minprocs, "minprocs"),
    ] {
        let (soft, hard) = getrlimit(res).map_err(SetupError::Getrlimit)?;
        if soft >= want {
            continue;
        }
        let is_root = Uid::effective().is_root();
        if want > hard && !is_root {
            return Err(SetupError::AboveHardLimit { key, want, hard });
        }
        setrlimit(res, want, hard.max(want)).map_err(|errno| SetupError::Setrlimit { key, want, errno })?;
    }
    Ok(())
}

/// Raises the soft RLIMIT_NOFILE (never above the hard limit) so that the spawner can keep a
/// copy of every fd it hands the supervisor (issue 16): 4 per process instance of `config` and
/// 64 to spare. Programs inherit the soft limit, as supervisord's children inherit `minfds`; a
/// small config changes nothing. Failures are ignored: spawns then fail with EMFILE, named.
pub fn raise_nofile_for(config: &Config) {
    let instances: u64 = config.programs.iter().map(|p| u64::from(p.numprocs)).sum();
    let want = instances * 4 + 64;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard);
        }
    }
}

/// The uids systemd gives `DynamicUser=` services; the supervisor takes one of them when there
/// is no `taskmaster` user (DESIGN §1 rule 4).
pub const DYNAMIC_UIDS: std::ops::RangeInclusive<u32> = 61184..=65519;

/// Why the spawner cannot set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No `-c`, no `$TASKMASTER_CONFIG`, and neither default file exists.
    #[error(
        "no config file: give -c FILE or set TASKMASTER_CONFIG (tried ./taskmaster.yaml and /etc/taskmaster/taskmaster.yaml)"
    )]
    NoConfig,
    /// getrlimit(2) failed.
    #[error("getrlimit: {0}")]
    Getrlimit(Errno),
    /// `server.minfds` or `server.minprocs` exceeds the hard limit, which only root may raise.
    #[error("server.{key} {want} exceeds the hard limit {hard}; lower it or start as root")]
    AboveHardLimit {
        /// `minfds` or `minprocs`.
        key: &'static str,
        /// The configured minimum.
        want: u64,
        /// The hard limit in force.
        hard: u64,
    },
    /// setrlimit(2) refused the new limits.
    #[error("setrlimit {key} {want}: {errno}")]
    Setrlimit {
        /// `minfds` or `minprocs`.
        key: &'static str,
        /// The configured minimum.
        want: u64,
        /// Its errno.
        errno: Errno,
    },
    /// `server.user` (or `taskmaster`) is uid 0.
    #[error("server.user '{0}' is root: the supervisor must not run as root")]
    RootSupervisor(String),
    /// `server.user` names no user.
    #[error("server.user: unknown user '{0}'")]
    UnknownUser(String),
    /// Every uid of [`DYNAMIC_UIDS`] is taken.
    #[error("no free uid in 61184-65519 for the supervisor: set server.user")]
    NoDynamicUid,
    /// Another daemon answers at the socket path.
    #[error("another taskmasterd is serving {0}")]
    SocketInUse(PathBuf),
    /// Something that is not a socket is where the socket goes.
    #[error("{0} exists and is not a socket: remove it")]
    NotASocket(PathBuf),
    /// A stale socket that root did not make.
    #[error("stale socket {path} belongs to uid {uid}: remove it")]
    ForeignSocket {
        /// The socket path.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// `socket.chown` names no user or group.
    #[error("socket.chown: unknown {kind} '{name}'")]
    UnknownOwner {
        /// "user" or "group".
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// The socket's directory or node was refused or a call on it failed.
    #[error("control socket {path}: {source}")]
    Socket {
        /// `socket.path`.
        path: PathBuf,
        /// Why.
        source: PathError,
    },
}

/// Who the supervisor runs as when taskmasterd starts as root: a uid of its own, with
/// gid = its group and no supplementary group but that one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupervisorUser {
    /// Its uid.
    pub uid: Uid,
    /// Its gid (the user's primary group; for a dynamic uid, the same number).
    pub gid: Gid,
    /// The user name, `None` for a dynamic uid (no passwd entry).
    pub name: Option<String>,
}

/// The supervisor's user; `None` when not started as root. `server.user` if set (checked by
/// the config: never `nobody`, never a program's `user`); else `taskmaster` if that user
/// exists; else a dynamic uid/gid ([`dynamic_uid`]).
///
/// # Errors
/// The user is unknown or root; no dynamic uid is free.
pub fn supervisor_user(config: &Config) -> Result<Option<SupervisorUser>, SetupError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let name = match &config.server.user {
        Some(u) => u.clone(),
        None if matches!(User::from_name("taskmaster"), Ok(Some(_))) => "taskmaster".into(),
        None => return dynamic_uid(&config.socket.path).map(Some),
    };
    match User::from_name(&name) {
        Ok(Some(u)) if u.uid.is_root() => Err(SetupError::RootSupervisor(name)),
        Ok(Some(u)) => Ok(Some(SupervisorUser { uid: u.uid, gid: u.gid, name: Some(name) })),
        _ => Err(SetupError::UnknownUser(name)),
    }
}

/// 64-bit FNV-1a: a hash that stays the same across builds and Rust versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The uids (real, effective, saved, filesystem) of every running process, from /proc.
fn uids_in_use() -> std::collections::HashSet<u32> {
    let mut used = std::collections::HashSet::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if !entry.file_name().as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        if let Some(line) = status.lines().find_map(|l| l.strip_prefix("Uid:")) {
            used.extend(line.split_whitespace().filter_map(|u| u.parse::<u32>().ok()));
        }
    }
    used
}

/// A uid/gid of [`DYNAMIC_UIDS`] for the supervisor, as systemd's `DynamicUser=`: the search
/// starts at a point derived from the control socket path (so that restarting the same config
/// gives the same uid, and its log files stay its own) and takes the first uid with no passwd
/// entry, no group with that gid, and no running process.
///
/// # Errors
/// [`SetupError::NoDynamicUid`] when every one is taken.
pub fn dynamic_uid(socket: &Path) -> Result<SupervisorUser, SetupError> {
    let (first, last) = (*DYNAMIC_UIDS.start(), *DYNAMIC_UIDS.end());
    let span = u64::from(last - first + 1);
    let start = fnv1a(socket.as_os_str().as_encoded_bytes()) % span;
    let busy = uids_in_use();
    (0..span)
        .map(|i| first + ((start + i) % span) as u32)
        .find(|&n| {
            !busy.contains(&n)
                && matches!(User::from_uid(Uid::from_raw(n)), Ok(None))
                && matches!(Group::from_gid(Gid::from_raw(n)), Ok(None))
        })
        .map(|n| SupervisorUser { uid: Uid::from_raw(n), gid: Gid::from_raw(n), name: None })
        .ok_or(SetupError::NoDynamicUid)
}

/// Whether `user` may create entries in the directory described by `st`, by its mode bits (the
/// supervisor's only group is its own).
fn writable_by(st: &nix::sys::stat::FileStat, user: &SupervisorUser) -> bool {
    let mode = st.st_mode;
    (st.st_uid == user.uid.as_raw() && mode & 0o300 == 0o300)
        || (st.st_gid == user.gid.as_raw() && mode & 0o030 == 0o030)
        || mode & 0o003 == 0o003
}

/// Prepares, at start only, what the unprivileged supervisor cannot make itself (DESIGN §1
/// rules 4-5): the main log's directory, `childlogdir` and the directories of the programs' log
/// files when missing (mode 0750, owned by `owner`), and, as root, each log file whose directory
/// `owner` cannot write, when that directory is secure ([`crate::paths`]): made with
/// `O_CREAT|O_EXCL|O_NOFOLLOW` (mode 0640) and chowned through its fd. An existing file is left
/// alone: the supervisor opens its own files, and reopens them on SIGUSR2. Returns one line per
/// problem; the supervisor then reports the files it cannot open.
pub fn prepare_logs(config: &Config, owner: Option<&SupervisorUser>) -> Vec<String> {
    let mut files = vec![config.server.logfile.clone()];
    for p in &config.programs {
        for stream in [Stream::Stdout, Stream::Stderr] {
            for instance in p.instances() {
                files.extend(p.log_file(stream, instance, &config.server.childlogdir));
            }
        }
    }
    let mut dirs: BTreeMap<PathBuf, Option<Dir>> = BTreeMap::new();
    dirs.insert(config.server.childlogdir.clone(), None);
    for f in &files {
        dirs.insert(f.parent().unwrap_or(Path::new("/")).to_path_buf(), None);
    }
    let spec = NewDirs { mode: 0o750, owner: owner.map(|u| (u.uid, u.gid)) };
    let mut problems = Vec::new();
    for (path, dir) in &mut dirs {
        match paths::open_dir(path, Some(&spec)) {
            Ok(d) => *dir = Some(d),
            Err(e) => problems.push(format!("cannot prepare log directory {}: {e}", path.display())),
        }
    }
    // Not root: the supervisor is this user and opens its own files.
    let Some(owner) = owner else { return problems };
    files.sort();
    files.dedup();
    for file in &files {
        let Ok((dir_path, name)) = paths::split(file) else { continue };
        let Some(Some(dir)) = dirs.get(dir_path) else { continue };
        if writable_by(dir.stat(), owner) {
            continue;
        }
        if let Err(e) = dir.require_secure() {
            problems.push(format!(
                "not creating log file {} as root: {e}; give the supervisor's user a log directory of its own",
                file.display()
            ));
            continue;
        }
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        match paths::open_in(dir, name, flags, 0o640) {
            Ok(fd) => {
                if let Err(e) = nix::unistd::fchown(&fd, Some(owner.uid), Some(owner.gid)) {
                    problems.push(format!("cannot give log file {} to the supervisor: fchown: {e}", file.display()));
                }
            }
            // An existing file (or link) is never opened or chowned by root.
            Err(PathError::Sys { errno: Errno::EEXIST, .. }) => {}
            Err(e) => problems.push(format!("cannot create log file {}: {e}", file.display())),
        }
    }
    problems
}

/// Where the control socket lives, to remove it at exit by its directory's fd.
pub struct SocketNode {
    dir: Dir,
    name: OsString,
}

impl SocketNode {
    /// Removes the socket, if what is at its name is still a socket this process owns.
    pub fn remove(&self) {
        if let Ok(Some(st)) = paths::stat_in(&self.dir, &self.name) {
            if paths::is_kind(&st, SFlag::S_IFSOCK) && st.st_uid == nix::unistd::geteuid().as_raw() {
                let _ = nix::unistd::unlinkat(
                    self.dir.fd(),
                    self.name.as_os_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
            }
        }
    }
}

/// Runs `f` with the current directory set to `dir`, then returns to the previous one, so that
/// a name is bound exactly in that directory (bind(2) has no `*at` form). The spawner is
/// single-threaded, so no other code sees the change.
fn in_directory<T>(dir: &Dir, f: impl FnOnce() -> T) -> Result<T, PathError> {
    let dot = Path::new(".");
    let sys = |step, errno| PathError::Sys { path: dir.path().to_path_buf(), step, errno };
    let back: OwnedFd =
        nix::fcntl::open(dot, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .map_err(|e| sys("open .", e))?;
    nix::unistd::fchdir(dir.fd()).map_err(|e| sys("fchdir", e))?;
    let out = f();
    nix::unistd::fchdir(&back).map_err(|e| sys("fchdir back", e))?;
    Ok(out)
}

/// Binds the control socket at `socket.path` (DESIGN §1 rule 5): its directory, made root's
/// (0755) when missing, must be secure ([`crate::paths`]; a sticky one such as /tmp will do);
/// a stale socket of ours is replaced, anything else in the way is refused; the socket is born
/// with `socket.chmod` (through the umask) and chowned to `socket.chown` with
/// `fchownat(AT_SYMLINK_NOFOLLOW)` once checked to be the socket just bound.
///
/// # Errors
/// Another daemon serves the path; the directory or the node is refused; a call failed.
pub fn bind_socket(config: &Config) -> Result<(UnixListener, SocketNode), SetupError> {
    let path = &config.socket.path;
    let at = |source| SetupError::Socket { path: path.clone(), source };
    let (dir_path, name) = paths::split(path).map_err(at)?;
    let dir = paths::open_dir(dir_path, Some(&NewDirs { mode: 0o755, owner: None })).map_err(at)?;
    dir.require_secure().map_err(at)?;
    let me = nix::unistd::geteuid().as_raw();
    let bound = in_directory(&dir, || -> Result<UnixListener, SetupError> {
        if let Some(st) = paths::stat_in(&dir, name).map_err(at)? {
            if !paths::is_kind(&st, SFlag::S_IFSOCK) {
                return Err(SetupError::NotASocket(path.clone()));
            }
            if UnixStream::connect(name).is_ok() {
                return Err(SetupError::SocketInUse(path.clone()));
            }
            if !paths::is_trusted(st.st_uid) {
                return Err(SetupError::ForeignSocket { path: path.clone(), uid: st.st_uid });
            }
            nix::unistd::unlinkat(dir.fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                .map_err(|errno| at(PathError::Sys { path: path.clone(), step: "unlink stale socket", errno }))?;
        }
        let mask = nix::sys::stat::Mode::from_bits_truncate(0o777 & !config.socket.chmod);
        let old = nix::sys::stat::umask(mask);
        let bound = UnixListener::bind(name);
        nix::sys::stat::umask(old);
        bound.map_err(|e| {
            at(PathError::Sys {
                path: path.clone(),
                step: "bind",
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            })
        })
    })
    .map_err(at)??;
    let node = SocketNode { dir, name: name.to_owned() };
    if let Some((user, group)) = &config.socket.chown {
        let uid = User::from_name(user)
            .ok()
            .flatten()
            .map(|u| u.uid)
            .ok_or_else(|| SetupError::UnknownOwner { kind: "user", name: user.clone() })?;
        let gid: Option<Gid> = match group {
            Some(g) => Some(
                Group::from_name(g)
                    .ok()
                    .flatten()
                    .map(|g| g.gid)
                    .ok_or_else(|| SetupError::UnknownOwner { kind: "group", name: g.clone() })?,
            ),
            None => None,
        };
        let st = paths::stat_in(&node.dir, name).map_err(at)?;
        if !st.is_some_and(|st| paths::is_kind(&st, SFlag::S_IFSOCK) && st.st_uid == me && st.st_nlink == 1) {
            node.remove();
            return Err(at(PathError::Raced { path: path.clone() }));
        }
        nix::unistd::fchownat(node.dir.fd(), name, Some(uid), gid, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|errno| at(PathError::Sys { path: path.clone(), step: "fchownat", errno }))?;
    }
    Ok((bound, node))
}
