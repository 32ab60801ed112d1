//! What a dead program leaves behind is ended before its exit is reported (issue 16 item 6,
//! DESIGN §5): when a program's main process exits, the rest of its process group (the child
//! called setsid, so the group id is its pid) and of its cgroup, where one is delegated, gets
//! SIGTERM (and SIGCONT), then SIGKILL after the program's `stopwaitsecs`, and only once both are
//! empty does the spawner send `Exited`. The supervisor restarts a program only after that
//! event, so a crashed nginx master's workers no longer hold its port while the next one starts.
//! A program with `cleanupgroup: false` is not watched: its exit is reported at once, and what it
//! left keeps running, as under supervisord.
//!
//! **cgroup v2.** Where the spawner can make a directory in its own cgroup2 cgroup (root, or a
//! cgroup delegated to its user, as systemd's `Delegate=yes` does), it makes
//! `<own cgroup>/taskmasterd.<pid>/` at start and, before each fork, `<program>.<instance>/` in
//! it; the child is forked straight into it (clone3 with CLONE_INTO_CGROUP, `sys.rs`: moving it
//! after the fork would cost a global kernel lock, about 5 ms a spawn; where clone3 refuses, a
//! plain fork and the process group alone). A process that leaves the group (setsid, setpgid) stays
//! in the cgroup: the SIGTERM phase signals each pid of `cgroup.procs`, the SIGKILL phase writes
//! `cgroup.kill`, and the cgroup is empty when `cgroup.events` says `populated 0`; it is then
//! removed. The supervisor is never put in a program's cgroup. Elsewhere the process group alone
//! is used.
//!
//! **Emptiness.** A group is empty when `killpg(pgid, 0)` fails with ESRCH and the cgroup is not
//! populated. The spawner is a child subreaper (`cli.rs`), so the orphans of a program are its
//! children and their zombies are reaped by its loop (`Children::reap` puts them in `others`):
//! a zombie still counts as a member until reaped, which this ensures. Groups being ended are
//! checked every [`CHECK_INTERVAL`]; a group still not empty [`KILL_GRACE`] after SIGKILL (a
//! process stuck in the kernel, a zombie whose parent outside the group never reaps it) is given
//! up and its exit reported, so that one unkillable process cannot hold a program down forever.
//!
//! **Signals while an exit is held.** The supervisor still believes the program alive and may stop
//! it: a `Signal` for a held spawn id goes to what is left of it, the group (and cgroup). The
//! group id cannot have been reused while one member is left (the kernel keeps a pid allocated
//! while it names a group); once the group is empty the next check reports the exit.

use common::proto::spawn::ExitStatus;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a group being ended is checked for emptiness (50 ms).
pub const CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// How long after SIGKILL a group that is still not empty is given up and its exit reported (5 s).
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// What one child may leave behind: its process group and, where used, its cgroup.
#[derive(Debug)]
struct Group {
    pgid: Pid,
    cgroup: Option<CgroupName>,
    /// The program's `stopwaitsecs` (from the config the child was spawned under).
    stopwait: Duration,
}

/// An exit held back while its group is ended.
#[derive(Debug)]
struct Ending {
    spawn_id: u64,
    status: ExitStatus,
    group: Group,
    /// When SIGKILL goes to what is left.
    kill_at: Instant,
    /// When SIGKILL went, if it did.
    killed_at: Option<Instant>,
    /// The next emptiness check.
    next_check: Instant,
}

/// The groups of the live children that have `cleanupgroup`, and the exits held back while the
/// groups of dead ones are ended.
#[derive(Debug, Default)]
pub struct Leftovers {
    tree: Option<CgroupTree>,
    watched: HashMap<u64, Group>,
    ending: Vec<Ending>,
    /// The spawner is leaving: every group is killed at once, without waiting `stopwaitsecs`.
    hurry: bool,
}

impl Leftovers {
    /// Finds out whether programs can get cgroups of their own (see the module doc) and returns
    /// the table with the one line the spawner prints at start saying which mechanism is used.
    /// Never fails: the process group is the fallback.
    pub fn detect() -> (Leftovers, String) {
        match CgroupTree::create() {
            Ok(tree) => {
                let line = format!(
                    "a dead program's leftovers are found by its cgroup (cgroup v2, under {}) and its process group",
                    tree.path.display()
                );
                (Leftovers { tree: Some(tree), ..Leftovers::default() }, line)
            }
            Err(why) => {
                let line = format!("a dead program's leftovers are found by its process group (no cgroup v2: {why})");
                (Leftovers::default(), line)
            }
        }
    }

    /// Makes the cgroup of one instance (or finds it left empty by the instance's previous
    /// child) and opens its directory, close-on-exec, to fork the child into. `None` where
    /// cgroups are not used or the directory cannot be made: the process group is then enough.
    pub fn cgroup_for(&self, program: &str, instance: u32) -> Option<(CgroupName, OwnedFd)> {
        let tree = self.tree.as_ref()?;
        // Program names are `[A-Za-z0-9_.-]`, so this is one path component, never `.` or `..`.
        let name = CgroupName(format!("{program}.{instance}"));
        match nix::sys::stat::mkdirat(tree.dir.as_fd(), name.0.as_str(), Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(_) => return None,
        }
        let dir = tree.open(&name, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY).ok()?;
        Some((name, dir))
    }

    /// Watches the child `spawn_id` (pid `pid`, its group id too) of a program with
    /// `cleanupgroup`: its exit will be held until its group and cgroup are empty.
    pub fn watch(&mut self, spawn_id: u64, pid: Pid, cgroup: Option<CgroupName>, stopwait: Duration) {
        self.watched.insert(spawn_id, Group { pgid: pid, cgroup, stopwait });
    }

    /// The main process of `spawn_id` exited with `status` (just reaped). Returns the exit to
    /// report now, or `None` when it is held while the group is ended (SIGTERM sent now).
    pub fn on_exit(&mut self, spawn_id: u64, status: ExitStatus, now: Instant) -> Option<(u64, ExitStatus)> {
        let Some(group) = self.watched.remove(&spawn_id) else { return Some((spawn_id, status)) };
        if self.is_empty(&group) {
            self.remove_cgroup(&group);
            return Some((spawn_id, status));
        }
        let mut ending =
            Ending { spawn_id, status, kill_at: now + group.stopwait, killed_at: None, next_check: now, group };
        if self.hurry {
            self.kill(&mut ending, now);
        } else {
            let _ = self.signal_group(&ending.group, Signal::SIGTERM);
            // A stopped leftover would act on SIGTERM only once continued (as systemd does).
            let _ = self.signal_group(&ending.group, Signal::SIGCONT);
        }
        ending.next_check = (now + CHECK_INTERVAL).min(ending.kill_at);
        self.ending.push(ending);
        None
    }

    /// When [`Leftovers::on_time`] has something to do next: the earliest check or SIGKILL of a
    /// group being ended; `None` when none is.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.ending.iter().map(|e| e.next_check).min()
    }

    /// Whether some exit is held back.
    pub fn is_ending(&self) -> bool {
        !self.ending.is_empty()
    }

    /// Whether the exit of `spawn_id` is held back while its group is ended.
    pub fn holds(&self, spawn_id: u64) -> bool {
        self.ending.iter().any(|e| e.spawn_id == spawn_id)
    }

    /// Checks the groups due at `now`: SIGKILL to those past `stopwaitsecs`; returns the exits
    /// whose group is now empty (or given up, [`KILL_GRACE`] after SIGKILL), to report.
    pub fn on_time(&mut self, now: Instant) -> Vec<(u64, ExitStatus)> {
        let mut ready = Vec::new();
        let mut ending = std::mem::take(&mut self.ending);
        ending.retain_mut(|e| {
            if e.next_check > now {
                return true;
            }
            let gave_up = e.killed_at.is_some_and(|at| now >= at + KILL_GRACE);
            if self.is_empty(&e.group) || gave_up {
                self.remove_cgroup(&e.group);
                ready.push((e.spawn_id, e.status));
                return false;
            }
            if e.killed_at.is_none() && now >= e.kill_at {
                self.kill(e, now);
            }
            e.next_check = match e.killed_at {
                Some(_) => now + CHECK_INTERVAL,
                None => (now + CHECK_INTERVAL).min(e.kill_at),
            };
            true
        });
        self.ending = ending;
        ready
    }

    /// Sends `signal` to what is left of `spawn_id` when its exit is held back (the supervisor
    /// stopping a program it still believes alive); `None` when it is not held.
    ///
    /// # Errors
    /// The errno of `killpg` (ESRCH, an empty group, is not an error).
    pub fn signal(&mut self, spawn_id: u64, signal: Signal) -> Option<Result<(), Errno>> {
        let at = self.ending.iter().position(|e| e.spawn_id == spawn_id)?;
        let result = self.signal_group(&self.ending[at].group, signal);
        if signal == Signal::SIGKILL {
            let e = &mut self.ending[at];
            e.killed_at.get_or_insert(Instant::now());
        }
        Some(result)
    }

    /// The spawner is leaving: SIGKILL to every group being ended and to the groups of the
    /// live watched children (their stop signal and `stopwaitsecs` are past), and to any group
    /// ended from now on.
    pub fn kill_all(&mut self, now: Instant) {
        self.hurry = true;
        for group in self.watched.values() {
            let _ = self.signal_group(group, Signal::SIGKILL);
        }
        let mut ending = std::mem::take(&mut self.ending);
        for e in ending.iter_mut().filter(|e| e.killed_at.is_none()) {
            self.kill(e, now);
            e.next_check = now;
        }
        self.ending = ending;
    }

    fn kill(&self, e: &mut Ending, now: Instant) {
        let _ = self.signal_group(&e.group, Signal::SIGKILL);
        e.killed_at = Some(now);
    }

    /// Whether nothing is left of `group`: no process has its group id, and its cgroup (if any)
    /// is not populated.
    fn is_empty(&self, group: &Group) -> bool {
        let group_gone = killpg(group.pgid, None) == Err(Errno::ESRCH);
        let cgroup_gone = match (&self.tree, &group.cgroup) {
            (Some(tree), Some(name)) => !tree.populated(name),
            _ => true,
        };
        group_gone && cgroup_gone
    }

    /// `signal` to the process group and to each process of the cgroup (SIGKILL: `cgroup.kill`).
    fn signal_group(&self, group: &Group, signal: Signal) -> Result<(), Errno> {
        let result = match killpg(group.pgid, signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(e),
        };
        if let (Some(tree), Some(name)) = (&self.tree, &group.cgroup) {
            tree.signal(name, signal);
        }
        result
    }

    fn remove_cgroup(&self, group: &Group) {
        if let (Some(tree), Some(name)) = (&self.tree, &group.cgroup) {
            tree.remove(name);
        }
    }
}

/// The name of one instance's cgroup, `<program>.<instance>`, under the spawner's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupName(String);

/// Why programs get no cgroup of their own; printed in the start line.
#[derive(Debug, thiserror::Error)]
enum NoCgroup {
    /// /proc/self/cgroup has no `0::` line: no cgroup2 hierarchy.
    #[error("this process is in no cgroup2 hierarchy")]
    NotInV2,
    /// /proc/self/mountinfo lists no cgroup2 mount holding our cgroup.
    #[error("no cgroup2 file system is mounted where our cgroup {0} is")]
    NotMounted(String),
    /// A file of /proc could not be read.
    #[error("{0}: {1}")]
    Proc(&'static str, std::io::Error),
    /// Our own cgroup's `cgroup.procs` is not writable by us: processes cannot be moved out of it.
    #[error("{0} is not delegated to us")]
    NotDelegated(PathBuf),
    /// The tree's directory could not be made or opened.
    #[error("cannot make {0}: {1}")]
    Mkdir(PathBuf, Errno),
}

/// `<own cgroup>/taskmasterd.<pid>`: where this spawner makes its programs' cgroups. Removed,
/// with every empty cgroup in it, when dropped.
#[derive(Debug)]
struct CgroupTree {
    /// The directory, opened; every later access is relative to it.
    dir: OwnedFd,
    /// Its path, for messages and removal.
    path: PathBuf,
}

impl CgroupTree {
    fn create() -> Result<CgroupTree, NoCgroup> {
        let cgroup =
            std::fs::read_to_string("/proc/self/cgroup").map_err(|e| NoCgroup::Proc("/proc/self/cgroup", e))?;
        let own = own_cgroup(&cgroup).ok_or(NoCgroup::NotInV2)?;
        let mountinfo =
            std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| NoCgroup::Proc("/proc/self/mountinfo", e))?;
        let own_dir = cgroup2_dir(&mountinfo, own).ok_or_else(|| NoCgroup::NotMounted(own.to_owned()))?;
        let procs = own_dir.join("cgroup.procs");
        if nix::unistd::access(&procs, nix::unistd::AccessFlags::W_OK).is_err() {
            return Err(NoCgroup::NotDelegated(own_dir));
        }
        remove_stale_trees(&own_dir);
        let path = own_dir.join(format!("taskmasterd.{}", std::process::id()));
        match nix::unistd::mkdir(&path, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(NoCgroup::Mkdir(path, e)),
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let dir = nix::fcntl::open(&path, flags, Mode::empty()).map_err(|e| NoCgroup::Mkdir(path.clone(), e))?;
        Ok(CgroupTree { dir, path })
    }

    fn open(&self, name: &CgroupName, file: &str, flags: OFlag) -> nix::Result<OwnedFd> {
        let path = format!("{}/{file}", name.0);
        nix::fcntl::openat(self.dir.as_fd(), path.as_str(), flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
    }

    fn read(&self, name: &CgroupName, file: &str) -> Option<String> {
        let mut text = String::new();
        std::fs::File::from(self.open(name, file, OFlag::O_RDONLY).ok()?).read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// Whether the cgroup (or a descendant) holds a live process (`cgroup.events`); a cgroup
    /// that cannot be read counts as empty.
    fn populated(&self, name: &CgroupName) -> bool {
        self.read(name, "cgroup.events").is_some_and(|t| t.lines().any(|l| l == "populated 1"))
    }

    /// `signal` to every process of the cgroup; SIGKILL through `cgroup.kill` (Linux 5.14),
    /// race-free, else pid by pid.
    fn signal(&self, name: &CgroupName, signal: Signal) {
        if signal == Signal::SIGKILL {
            if let Ok(fd) = self.open(name, "cgroup.kill", OFlag::O_WRONLY) {
                if nix::unistd::write(&fd, b"1").is_ok() {
                    return;
                }
            }
        }
        for pid in self.read(name, "cgroup.procs").unwrap_or_default().lines().filter_map(|l| l.parse().ok()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// Removes an empty cgroup (rmdir); one still populated stays, removed at exit if it can be.
    fn remove(&self, name: &CgroupName) {
        let _ = nix::unistd::unlinkat(self.dir.as_fd(), name.0.as_str(), nix::unistd::UnlinkatFlags::RemoveDir);
    }
}

impl Drop for CgroupTree {
    fn drop(&mut self) {
        remove_tree(&self.path);
    }
}

/// Removes the empty cgroups of a tree, then the tree (best effort: a populated one stays).
fn remove_tree(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            let _ = std::fs::remove_dir(e.path());
        }
    }
    let _ = std::fs::remove_dir(path);
}

/// Removes the trees of spawners that are gone (killed with SIGKILL: nothing removed them), as
/// far as they are empty. A tree whose pid is alive again (reused) is left alone.
fn remove_stale_trees(own_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(own_dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("taskmasterd.")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            remove_tree(&e.path());
        }
    }
}

/// Our cgroup in the cgroup2 hierarchy: the path of the `0::PATH` line of /proc/self/cgroup.
fn own_cgroup(proc_self_cgroup: &str) -> Option<&str> {
    proc_self_cgroup.lines().find_map(|l| l.strip_prefix("0::")).filter(|p| p.starts_with('/'))
}

/// The directory of cgroup `own` (as /proc/self/cgroup names it): the mount point of a cgroup2
/// file system (from /proc/self/mountinfo) whose root holds it, joined with the rest of the path.
fn cgroup2_dir(mountinfo: &str, own: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (fields, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut f = fields.split_whitespace();
        let root = unescape(f.nth(3)?);
        let mount = unescape(f.next()?);
        let rest = if root == "/" { Some(own) } else { own.strip_prefix(root.as_str()) }?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        match rest.trim_start_matches('/') {
            "" => Some(PathBuf::from(mount)),
            rest => Some(Path::new(&mount).join(rest)),
        }
    })
}

/// A mountinfo field with its octal escapes (`\040` for a space) decoded.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |n, b| n.wrapping_mul(8).wrapping_add(b - b'0')));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_cgroup2_path_is_read_from_the_0_line() {
        assert_eq!(
            own_cgroup("12:pids:/x\n0::/system.slice/taskmasterd.service\n"),
            Some("/system.slice/taskmasterd.service")
        );
        assert_eq!(own_cgroup("0::/\n"), Some("/"));
        assert_eq!(own_cgroup("4:memory:/a\n1:name=systemd:/\n"), None, "v1 only");
    }

    #[test]
    fn the_cgroup2_mount_holding_our_cgroup_gives_its_directory() {
        let hybrid = "25 30 0:22 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_dir(hybrid, "/"), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        let unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_dir(unified, "/system.slice/t.service"),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/t.service"))
        );
        // A mount of a subtree (a container's view), with an escaped space in its mount point.
        let sub = "30 23 0:26 /lxc/c1 /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_dir(sub, "/lxc/c1/app"), Some(PathBuf::from("/sys/fs/cgroup x/app")));
        assert_eq!(cgroup2_dir(sub, "/lxc/c10"), None, "a sibling whose name starts the same");
        assert_eq!(cgroup2_dir("25 30 0:22 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", "/"), None);
    }

    #[test]
    fn an_unwatched_exit_is_reported_at_once_and_a_watched_one_when_its_group_is_empty() {
        let mut l = Leftovers::default();
        let now = Instant::now();
        assert_eq!(l.on_exit(1, ExitStatus::Code(3), now), Some((1, ExitStatus::Code(3))));
        // A group id no process has: the exit is reported at once, nothing is held.
        let free = Pid::from_raw(i32::MAX - 7);
        l.watch(2, free, None, Duration::from_secs(10));
        assert_eq!(l.on_exit(2, ExitStatus::Signal(9), now), Some((2, ExitStatus::Signal(9))));
        assert!(!l.is_ending() && l.next_deadline().is_none());
        assert_eq!(l.signal(2, Signal::SIGTERM), None, "not held: the supervisor's signal goes the usual way");
    }
}
