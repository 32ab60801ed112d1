//! How root reaches a path without letting a less trusted user redirect it (DESIGN §1 rule 5,
//! STYLE 2.11b), as OpenSSH's monitor and sudo-rs do: a path is walked one component at a time
//! from `/`, each opened relative to its parent's fd with `O_NOFOLLOW`, so that what is checked is
//! what is used; files and directories are then created relative to the last fd, and chowned
//! through their own fd, never by path.
//!
//! The rules:
//! - **Trusted owners** are root and the uid taskmasterd started as (the same when root).
//! - **A secure directory** is owned by a trusted uid and is not writable by group or other,
//!   unless it is sticky (as `/tmp`: others may add entries there but not rename or remove ours).
//!   A path is secure when `/` and every directory on the way to it are.
//! - **A symlink** on the way is followed only when it is owned by a trusted uid and sits in a
//!   secure path (as `/var/run -> /run`); any other is refused, naming it. At most 40 are followed.
//! - **Missing directories** are made with `mkdirat`, root-only (0700) until the whole chain
//!   exists, each checked through its new fd to be the empty directory just made, then given
//!   their final mode and owner with `fchmod`/`fchown` on that fd, deepest first.

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{fchown, Gid, Uid};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one walk before giving up, as the kernel's ELOOP limit.
const MAX_SYMLINKS: u32 = 40;

/// Why root would not use a path, or could not.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// A system call failed on `path`.
    #[error("{path}: {step}: {errno}")]
    Sys {
        /// The path (as far as the walk got).
        path: PathBuf,
        /// The call: "open", "mkdir", "fchown" …
        step: &'static str,
        /// Its errno.
        errno: Errno,
    },
    /// A symlink root will not follow.
    #[error("{path} is a symbolic link {why}: not followed")]
    UntrustedSymlink {
        /// The link.
        path: PathBuf,
        /// "owned by uid 1001" or "in a directory others can write".
        why: String,
    },
    /// A component that should be a directory is something else.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The component.
        path: PathBuf,
    },
    /// More than 40 symlinks.
    #[error("{path}: too many levels of symbolic links")]
    Loop {
        /// The path being walked.
        path: PathBuf,
    },
    /// A directory just made was replaced before it could be opened.
    #[error("{path} changed while it was being created")]
    Raced {
        /// The directory.
        path: PathBuf,
    },
    /// A directory (or one above it) that a less trusted user can change.
    #[error("{path} is writable by a less trusted user ({why})")]
    Insecure {
        /// The directory.
        path: PathBuf,
        /// "owned by uid 1001", "mode 0777".
        why: String,
    },
}

/// Whether root may trust what `uid` owns: root and the uid taskmasterd runs as.
pub fn is_trusted(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// Why the directory described by `st` is not secure, if it is not: owned by an untrusted uid,
/// or writable by group/other without the sticky bit.
fn insecurity(st: &FileStat) -> Option<String> {
    let mode = st.st_mode & 0o7777;
    if !is_trusted(st.st_uid) {
        Some(format!("owned by uid {}", st.st_uid))
    } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        Some(format!("mode {mode:04o}"))
    } else {
        None
    }
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Whether `st` is a node of this file type.
pub fn is_kind(st: &FileStat, k: SFlag) -> bool {
    kind(st) == k
}

/// Mode and owner of the directories [`open_dir`] creates.
#[derive(Clone, Copy, Debug)]
pub struct NewDirs {
    /// Their final mode (0750 for log directories, 0755 for the socket's).
    pub mode: u32,
    /// Their final owner and group; `None`: this process's.
    pub owner: Option<(Uid, Gid)>,
}

/// A directory reached by [`open_dir`].
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    stat: FileStat,
    insecure: Option<(PathBuf, String)>,
}

impl Dir {
    /// Its fd (`O_PATH` for an existing directory): use it as the `dirfd` of `*at` calls.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The path it was reached by (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its owner and mode, as they were when reached (or made).
    pub fn stat(&self) -> &FileStat {
        &self.stat
    }

    /// `Ok` when it and every directory above it are secure (see the module's rules).
    ///
    /// # Errors
    /// [`PathError::Insecure`] naming the first directory that is not.
    pub fn require_secure(&self) -> Result<(), PathError> {
        match &self.insecure {
            None => Ok(()),
            Some((path, why)) => Err(PathError::Insecure { path: path.clone(), why: why.clone() }),
        }
    }
}

enum Step {
    Parent,
    Name(OsString),
}

fn steps_of(path: &Path) -> (bool, VecDeque<Step>) {
    let mut absolute = false;
    let mut steps = VecDeque::new();
    for c in path.components() {
        match c {
            Component::RootDir => absolute = true,
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => steps.push_back(Step::Parent),
            Component::Normal(n) => steps.push_back(Step::Name(n.to_owned())),
        }
    }
    (absolute, steps)
}

struct Level {
    fd: OwnedFd,
    stat: FileStat,
    insecure: Option<(PathBuf, String)>,
}

fn sys(path: &Path, step: &'static str) -> impl FnOnce(Errno) -> PathError {
    let path = path.to_path_buf();
    move |errno| PathError::Sys { path, step, errno }
}

fn open_root() -> Result<Level, PathError> {
    let root = Path::new("/");
    let fd = nix::fcntl::open(root, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(sys(root, "open"))?;
    let stat = fstat(&fd).map_err(sys(root, "fstat"))?;
    let insecure = insecurity(&stat).map(|why| (root.to_path_buf(), why));
    Ok(Level { fd, stat, insecure })
}

/// Whether the directory open at `fd` has no entry (read through /proc/self/fd, which names
/// that very directory; false when /proc cannot be read). Link counts cannot tell: btrfs gives
/// every directory one link, and files do not count.
fn is_empty_dir(fd: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd())).is_ok_and(|mut d| d.next().is_none())
}

/// Walks `path` (made absolute against the current directory) from `/` without following any
/// symlink but trusted ones (module rules), creating missing directories when `create` says
/// how, and returns the directory.
///
/// # Errors
/// A component is missing (with `create` `None`), is not a directory, is an untrusted symlink,
/// or a call failed; a new directory was replaced before it was opened.
pub fn open_dir(path: &Path, create: Option<&NewDirs>) -> Result<Dir, PathError> {
    let (absolute, mut steps) = steps_of(path);
    let shown = path.to_path_buf();
    if !absolute {
        let cwd = std::env::current_dir().map_err(|e| PathError::Sys {
            path: shown.clone(),
            step: "getcwd",
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        let (_, mut before) = steps_of(&cwd);
        before.extend(steps);
        steps = before;
    }
    let mut stack = vec![open_root()?];
    let mut at = PathBuf::from("/");
    let mut links = 0;
    let mut created: Vec<(OwnedFd, PathBuf)> = Vec::new();
    let mut attempts = 0;
    while let Some(step) = steps.pop_front() {
        let name = match step {
            Step::Parent => {
                if stack.len() > 1 {
                    stack.pop();
                    at.pop();
                }
                continue;
            }
            Step::Name(n) => n,
        };
        let here = at.join(&name);
        let parent = stack.last().ok_or(PathError::Loop { path: shown.clone() })?;
        let node =
            openat(&parent.fd, name.as_os_str(), OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty());
        match node {
            Ok(fd) => {
                let stat = fstat(&fd).map_err(sys(&here, "fstat"))?;
                if is_kind(&stat, SFlag::S_IFDIR) {
                    let insecure = parent.insecure.clone().or_else(|| insecurity(&stat).map(|why| (here.clone(), why)));
                    stack.push(Level { fd, stat, insecure });
                    at = here;
                } else if is_kind(&stat, SFlag::S_IFLNK) {
                    if !is_trusted(stat.st_uid) {
                        let why = format!("owned by uid {}", stat.st_uid);
                        return Err(PathError::UntrustedSymlink { path: here, why });
                    }
                    if let Some((dir, _)) = &parent.insecure {
                        let why = format!("in {}, which others can write", dir.display());
                        return Err(PathError::UntrustedSymlink { path: here, why });
                    }
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(PathError::Loop { path: shown });
                    }
                    // An O_PATH fd of the link itself: readlinkat with an empty name reads it.
                    let target = readlinkat(&fd, "").map_err(sys(&here, "readlink"))?;
                    let (target_absolute, mut target_steps) = steps_of(Path::new(&target));
                    if target_absolute {
                        stack.truncate(1);
                        at = PathBuf::from("/");
                    }
                    target_steps.extend(steps);
                    steps = target_steps;
                } else {
                    return Err(PathError::NotADirectory { path: here });
                }
            }
            Err(Errno::ENOENT) if create.is_some() => {
                let spec = create.copied().unwrap_or(NewDirs { mode: 0o755, owner: None });
                match mkdirat(&parent.fd, name.as_os_str(), Mode::S_IRWXU) {
                    Ok(()) => {}
                    // Made meanwhile by someone else: look again at what is there now.
                    Err(Errno::EEXIST) if attempts < 3 => {
                        attempts += 1;
                        steps.push_front(Step::Name(name));
                        continue;
                    }
                    Err(e) => return Err(sys(&here, "mkdir")(e)),
                }
                let fd = openat(
                    &parent.fd,
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|_| PathError::Raced { path: here.clone() })?;
                let stat = fstat(&fd).map_err(sys(&here, "fstat"))?;
                // The directory this process just made, or a stand-in put there by whoever can
                // write the parent: refuse anything but an empty directory of ours.
                let ours =
                    stat.st_uid == nix::unistd::geteuid().as_raw() && (parent.insecure.is_none() || is_empty_dir(&fd));
                if !is_kind(&stat, SFlag::S_IFDIR) || !ours {
                    return Err(PathError::Raced { path: here });
                }
                // As it will be once finished (below): its final mode and owner.
                let mut final_stat = stat;
                final_stat.st_mode = (stat.st_mode & !0o7777) | spec.mode;
                final_stat.st_uid = spec.owner.map_or(stat.st_uid, |(u, _)| u.as_raw());
                final_stat.st_gid = spec.owner.map_or(stat.st_gid, |(_, g)| g.as_raw());
                let insecure =
                    parent.insecure.clone().or_else(|| insecurity(&final_stat).map(|why| (here.clone(), why)));
                created.push((
                    fd.try_clone().map_err(|e| sys(&here, "dup")(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?,
                    here.clone(),
                ));
                stack.push(Level { fd, stat: final_stat, insecure });
                at = here;
            }
            Err(e) => return Err(sys(&here, "open")(e)),
        }
    }
    // Deepest first: each stays root-only until what it contains is finished.
    for (fd, p) in created.iter().rev() {
        fchmod(fd, Mode::from_bits_truncate(create.map_or(0o755, |c| c.mode))).map_err(sys(p, "fchmod"))?;
        if let Some((uid, gid)) = create.and_then(|c| c.owner) {
            fchown(fd, Some(uid), Some(gid)).map_err(sys(p, "fchown"))?;
        }
    }
    let last = stack.pop().ok_or(PathError::Loop { path: shown.clone() })?;
    Ok(Dir { fd: last.fd, path: shown, stat: last.stat, insecure: last.insecure })
}

/// The directory and the last component of `path` (a file to be made or opened in it).
///
/// # Errors
/// [`PathError::NotADirectory`]-like refusal when the path ends in `/`, `.` or `..`.
pub fn split(path: &Path) -> Result<(&Path, &OsStr), PathError> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if !path.as_os_str().as_encoded_bytes().ends_with(b"/") => {
            Ok((if dir.as_os_str().is_empty() { Path::new(".") } else { dir }, name))
        }
        _ => Err(PathError::NotADirectory { path: path.to_path_buf() }),
    }
}

/// Opens `name` in `dir` with `flags | O_NOFOLLOW | O_CLOEXEC` (and `mode` when creating).
///
/// # Errors
/// The errno of `openat` (ELOOP for a symlink, EEXIST with `O_EXCL`), as [`PathError::Sys`].
pub fn open_in(dir: &Dir, name: &OsStr, flags: OFlag, mode: u32) -> Result<OwnedFd, PathError> {
    openat(dir.fd(), name, flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::from_bits_truncate(mode))
        .map_err(|e| PathError::Sys { path: dir.path().join(name), step: "open", errno: e })
}

/// What `name` in `dir` is, without following it; `None` when nothing is there.
///
/// # Errors
/// The errno of `fstatat` other than ENOENT.
pub fn stat_in(dir: &Dir, name: &OsStr) -> Result<Option<FileStat>, PathError> {
    match nix::sys::stat::fstatat(dir.fd(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(PathError::Sys { path: dir.path().join(name), step: "stat", errno: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn base() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("tm-paths-").tempdir().unwrap()
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    const NEW: NewDirs = NewDirs { mode: 0o750, owner: None };

    #[test]
    fn a_missing_chain_is_made_with_its_final_mode_and_is_secure() {
        let b = base();
        let d = open_dir(&b.path().join("a/b/c"), Some(&NEW)).unwrap();
        d.require_secure().unwrap();
        for p in ["a", "a/b", "a/b/c"] {
            assert_eq!(std::fs::metadata(b.path().join(p)).unwrap().mode() & 0o7777, 0o750, "{p}");
        }
        assert!(matches!(open_dir(&b.path().join("x"), None), Err(PathError::Sys { errno: Errno::ENOENT, .. })));
    }

    #[test]
    fn a_trusted_symlink_in_a_secure_directory_is_followed_relative_or_absolute() {
        let b = base();
        std::fs::create_dir(b.path().join("real")).unwrap();
        std::fs::create_dir(b.path().join("a")).unwrap();
        symlink(b.path().join("real"), b.path().join("abs")).unwrap();
        symlink("../real", b.path().join("a/up")).unwrap();
        open_dir(&b.path().join("abs/one"), Some(&NEW)).unwrap();
        open_dir(&b.path().join("a/up/two"), Some(&NEW)).unwrap();
        assert!(b.path().join("real/one").is_dir() && b.path().join("real/two").is_dir());
        // As /var/run -> /run on most systems.
        if std::fs::read_link("/var/run").is_ok() {
            open_dir(Path::new("/var/run"), None).unwrap();
        }
    }

    #[test]
    fn a_symlink_in_a_directory_others_can_write_is_refused() {
        let b = base();
        let open = b.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::create_dir(open.join("real")).unwrap();
        chmod(&open, 0o777);
        symlink(open.join("real"), open.join("link")).unwrap();
        let err = open_dir(&open.join("link/x"), Some(&NEW)).unwrap_err();
        assert!(matches!(err, PathError::UntrustedSymlink { .. }), "{err}");
        assert!(
            err.to_string().contains("link is a symbolic link in ") && std::fs::metadata(open.join("real/x")).is_err(),
            "{err}"
        );
        // The directory itself is reached, and known to be insecure.
        let d = open_dir(&open.join("real"), None).unwrap();
        assert!(matches!(d.require_secure(), Err(PathError::Insecure { .. })));
        // A directory made there is checked through its fd to be the empty one just made.
        let made = open_dir(&open.join("made"), Some(&NEW)).unwrap();
        assert!(made.require_secure().is_err() && open.join("made").is_dir());
    }

    #[test]
    fn sticky_directories_are_secure_and_loops_and_files_are_refused() {
        let b = base();
        let sticky = b.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        chmod(&sticky, 0o1777);
        open_dir(&sticky, None).unwrap().require_secure().unwrap();
        symlink("l2", b.path().join("l1")).unwrap();
        symlink("l1", b.path().join("l2")).unwrap();
        assert!(matches!(open_dir(&b.path().join("l1"), None), Err(PathError::Loop { .. })));
        std::fs::write(b.path().join("file"), "").unwrap();
        assert!(matches!(open_dir(&b.path().join("file/x"), Some(&NEW)), Err(PathError::NotADirectory { .. })));
    }

    #[test]
    fn a_symlink_owned_by_another_user_is_refused_even_in_a_secure_directory() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to give a symlink to another uid");
            return;
        }
        let b = base();
        std::fs::create_dir(b.path().join("real")).unwrap();
        symlink(b.path().join("real"), b.path().join("theirs")).unwrap();
        let (nobody, no_follow) = (Some(Uid::from_raw(65534)), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
        nix::unistd::fchownat(nix::fcntl::AT_FDCWD, &b.path().join("theirs"), nobody, None, no_follow).unwrap();
        let err = open_dir(&b.path().join("theirs"), None).unwrap_err();
        assert!(err.to_string().ends_with("theirs is a symbolic link owned by uid 65534: not followed"), "{err}");
    }
}
