//! The supervisor's confinement (DESIGN §1 rule 4): what a compromised supervisor could still
//! do is bounded by the kernel, not by our code.
//!
//! Three layers, applied in this order:
//! 1. **Non-dumpable** ([`make_non_dumpable`]), the first thing `run_role` does after the exec:
//!    no process of the supervisor's uid can `ptrace` it or read its `/proc/PID/environ`,
//!    `mem` or `fd/` (they belong to root while the flag is off), and no core file is written.
//! 2. **Landlock** (best effort, the `landlock` crate, rights of ABI 1 to 7 as the kernel has
//!    them): read-write beneath the log directories only — the main log's directory,
//!    `server.childlogdir` and the directory of every program's log file in the config received
//!    at start —, read-only access to what NSS, the time zone and the dynamic loader read
//!    (found by running the test suite under strace: `/etc/passwd`, `/etc/group`,
//!    `/etc/nsswitch.conf`, `/etc/ld.so.cache`, `/etc/localtime`, `/usr/share/zoneinfo`,
//!    `/lib*`, `/usr/lib*`, the userdb directories, `/proc/self`, …), `/dev/null` read-write.
//!    Signals and abstract UNIX sockets are scoped to the supervisor itself (ABI 6). Connecting
//!    to a pathname UNIX socket (syslog's `/dev/log`, nscd, systemd's userdb) is not a
//!    filesystem access Landlock controls before ABI 9, whose `RESOLVE_UNIX` right we do not
//!    request until it can be tested, so those keep working.
//!    Landlock rules cannot grow: a reload that adds a log file in a directory outside these is
//!    refused by the kernel; [`outside_note`] lets the log say so, and restarting taskmasterd
//!    (a new supervisor) is the remedy. This limitation is documented.
//! 3. **seccomp-bpf** (the `seccompiler` crate): an allowlist of the [`syscall_count`] system
//!    calls the supervisor makes, found with `strace -f` over the whole test suite (epoll,
//!    the control socket and SCM_RIGHTS, logs and rotation, `tail`, `clear`, PTY window sizes,
//!    NSS lookups, syslog) plus what Rust's std and glibc need for a worker thread, a channel,
//!    a panic and an abort. A few are narrowed by argument: `socket`/`socketpair` to
//!    `AF_UNIX`, `ioctl` to non-blocking/close-on-exec/`FIONREAD`/window sizes/`TCGETS` (so
//!    never `TIOCSTI`), `clone` to threads (`CLONE_THREAD`), `prctl` to thread names and
//!    read-only queries, `prlimit64` to the supervisor itself, `tgkill` to its own threads.
//!    `execve`, `fork`, `ptrace`, `bind`, `listen`, `kill`, `mount`, `setuid`… are not on it.
//!
//! **The mismatch action is `ENOSYS`**, not a kill: the supervisor holds every program's
//! output and state, and its death stops them all (the spawner then stops the leftovers), so a
//! call we forgot to list must fail that one call — logged where the code logs the error — and
//! not take down the service. `ENOSYS` rather than `EPERM` because it is what libraries treat as
//! "this kernel lacks the call" and fall back from: glibc's `pthread_create` retries `clone3`
//! as `clone` (whose flags, unlike `clone3`'s, a filter can check, which is why `clone3` is
//! deliberately left off), `statx` falls back to `fstatat`, rustix's `epoll_pwait2` to
//! `epoll_pwait`. A hostile supervisor gains nothing from the error number. The price is that a
//! forgotten call degrades silently instead of loudly; the test suite, run confined, is the
//! check. A system call from another architecture's table (x32 on x86_64) is killed by
//! seccompiler's architecture check.
//!
//! Order at start-up: non-dumpable at once; the handshake with the spawner, the control socket
//! and the main log's syslog connection; then Landlock, then seccomp (Landlock's own calls are
//! not on the allowlist). Both apply to the calling thread and to the threads it creates later,
//! so the supervisor must still be single-threaded when [`confine`] runs.

use common::config::{Program, Server, Stream};
use landlock::{
    Access, AccessFs, CompatLevel, Compatible, LandlockStatus, PathBeneath, PathFd, RestrictionStatus, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The Landlock ABI whose rights we request: the newest one this code was tested on.
const LANDLOCK_ABI: ABI = ABI::V7;

/// Why the supervisor could not be confined; it then refuses to serve.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// `prctl(PR_SET_DUMPABLE, 0)` failed.
    #[error("cannot make the supervisor non-dumpable: {0}")]
    NonDumpable(#[source] nix::Error),
    /// The filter could not be built (an architecture seccompiler does not know).
    #[error("cannot build the seccomp filter: {0}")]
    Filter(#[source] seccompiler::BackendError),
    /// The kernel refused the filter.
    #[error("cannot install the seccomp filter: {0}")]
    Seccomp(#[source] seccompiler::Error),
}

/// Makes this process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`): from now on only root (with
/// `CAP_SYS_PTRACE`) can trace it or read its memory, environment and fds through /proc.
/// `execve` would undo it, and the supervisor never execs.
///
/// # Errors
/// [`ConfineError::NonDumpable`] with the errno.
pub fn make_non_dumpable() -> Result<(), ConfineError> {
    crate::sys::set_non_dumpable().map_err(ConfineError::NonDumpable)
}

/// The directories beneath which the supervisor writes: every log file's directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogDirs(pub Vec<PathBuf>);

impl LogDirs {
    /// The main log's directory, `childlogdir`, and the directory of each program's stdout and
    /// stderr file for every instance (`%(process_num)d` expanded), without duplicates.
    pub fn of(server: &Server, programs: &[Program]) -> Self {
        let mut dirs =
            vec![server.logfile.parent().unwrap_or(Path::new("/")).to_path_buf(), server.childlogdir.clone()];
        for p in programs {
            for stream in [Stream::Stdout, Stream::Stderr] {
                for instance in p.instances() {
                    if let Some(f) = p.log_file(stream, instance, &server.childlogdir) {
                        dirs.push(f.parent().unwrap_or(Path::new("/")).to_path_buf());
                    }
                }
            }
        }
        dirs.sort();
        dirs.dedup();
        LogDirs(dirs)
    }

    /// Whether `path` is lexically beneath one of the directories.
    pub fn contains(&self, path: &Path) -> bool {
        self.0.iter().any(|d| path.starts_with(d))
    }
}

/// What Landlock did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Landlock {
    /// The ruleset is in force with the rights of this ABI (the lower of the kernel's and
    /// [`LANDLOCK_ABI`]); `full` when every right requested is enforced.
    Enforced {
        /// ABI version of the rights in force.
        abi: i32,
        /// Every requested right is enforced.
        full: bool,
    },
    /// Not in force, and why.
    Unavailable(String),
}

/// The confinement in force, as the main log reports it at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confinement {
    /// System calls on the seccomp allowlist.
    pub syscalls: usize,
    /// Landlock's outcome.
    pub landlock: Landlock,
}

impl fmt::Display for Confinement {
    /// `non-dumpable, seccomp (N syscalls), landlock ABI 7 (enforced)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "non-dumpable, seccomp ({} syscalls), ", self.syscalls)?;
        match &self.landlock {
            Landlock::Enforced { abi, full: true } => write!(f, "landlock ABI {abi} (enforced)"),
            Landlock::Enforced { abi, full: false } => write!(f, "landlock ABI {abi} (partially enforced)"),
            Landlock::Unavailable(why) => write!(f, "landlock unavailable: {why}"),
        }
    }
}

/// The log directories Landlock confined us to, once it is in force.
static CONFINED_TO: OnceLock<LogDirs> = OnceLock::new();

/// Why opening `path` was refused, when the reason is the confinement: Landlock is in force and
/// `path` is outside the log directories known at start. For the error text of a log file that
/// cannot be opened with `EACCES`.
pub fn outside_note(path: &Path) -> Option<&'static str> {
    let dirs = CONFINED_TO.get()?;
    (!dirs.contains(path)).then_some(
        "outside the log directories the supervisor was confined to at start; it is replaced by one confined to them",
    )
}

/// Whether the supervisor's confinement lets it write `path` (always, without Landlock).
pub fn covers(path: &Path) -> bool {
    outside_note(path).is_none()
}

/// Confines the calling thread and every thread it creates afterwards: non-dumpable, Landlock
/// (best effort), then the seccomp allowlist. Call once, single-threaded, after the last set-up
/// step that needs more (see the module doc).
///
/// # Errors
/// [`ConfineError::NonDumpable`], [`ConfineError::Filter`] or [`ConfineError::Seccomp`]: the
/// caller must not serve. Landlock problems are not errors: [`Confinement::landlock`] says them.
pub fn confine(dirs: &LogDirs) -> Result<Confinement, ConfineError> {
    make_non_dumpable()?; // already done at exec by `run_role`; repeated so the report is true
    let landlock = restrict_filesystem(dirs);
    if matches!(landlock, Landlock::Enforced { .. }) {
        let _ = CONFINED_TO.set(dirs.clone());
    }
    let filter = seccomp_filter()?;
    let syscalls = filter.len();
    let program: seccompiler::BpfProgram = build(filter)?;
    seccompiler::apply_filter(&program).map_err(ConfineError::Seccomp)?;
    Ok(Confinement { syscalls, landlock })
}

/// Files and directories the supervisor reads (beneath, for directories), found with strace:
/// the dynamic loader (NSS modules are loaded on the first lookup they serve), NSS, the local
/// time zone, the group-list size, systemd's userdb drop-in directories, /proc/self.
const READ_ONLY: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/ld.so.cache",
    "/etc/ld.so.preload",
    "/etc/localtime",
    "/etc/userdb",
    "/run/userdb",
    "/run/host/userdb",
    "/run/systemd/userdb",
    "/usr/lib/userdb",
    "/usr/local/lib/userdb",
    "/usr/share/zoneinfo",
    "/lib",
    "/lib32",
    "/lib64",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/local/lib",
    "/proc/self",
    "/proc/sys/kernel/ngroups_max",
];

/// Applies the Landlock ruleset; best effort, never an error.
fn restrict_filesystem(dirs: &LogDirs) -> Landlock {
    match try_restrict_filesystem(dirs) {
        Ok(status) => describe(&status),
        Err(e) => Landlock::Unavailable(e.to_string()),
    }
}

fn try_restrict_filesystem(dirs: &LogDirs) -> Result<RestrictionStatus, landlock::RulesetError> {
    let abi = LANDLOCK_ABI;
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let write = read
        | AccessFs::WriteFile
        | AccessFs::RemoveFile
        | AccessFs::MakeReg
        | AccessFs::MakeDir
        | AccessFs::Refer
        | AccessFs::Truncate;
    let mut rules = Vec::new();
    // A path that does not exist (or cannot be opened) gets no rule: nothing beneath it is
    // reachable, which is what a missing directory means anyway. A file gets only the rights
    // that apply to files (the kernel refuses directory rights on one).
    let mut allow = |path: &Path, access: landlock::BitFlags<AccessFs>| {
        if let Ok(fd) = PathFd::new(path) {
            let access = if path.is_dir() { access } else { access & AccessFs::from_file(abi) };
            rules.push(Ok::<_, landlock::RulesetError>(PathBeneath::new(fd, access)));
        }
    };
    for dir in &dirs.0 {
        allow(dir, write);
    }
    for path in READ_ONLY {
        allow(Path::new(path), read);
    }
    allow(Path::new("/dev/null"), AccessFs::ReadFile | AccessFs::WriteFile);
    Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))?
        .scope(Scope::from_all(abi))?
        .create()?
        .add_rules(rules)?
        .restrict_self()
}

fn describe(status: &RestrictionStatus) -> Landlock {
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => (effective_abi as i32).min(LANDLOCK_ABI as i32),
        LandlockStatus::NotEnabled => {
            return Landlock::Unavailable("not enabled in this kernel (see lsm= at boot)".into())
        }
        LandlockStatus::NotImplemented => return Landlock::Unavailable("this kernel does not have it".into()),
    };
    match status.ruleset {
        RulesetStatus::FullyEnforced => Landlock::Enforced { abi, full: true },
        RulesetStatus::PartiallyEnforced => Landlock::Enforced { abi, full: false },
        RulesetStatus::NotEnforced => Landlock::Unavailable("the ruleset was not enforced".into()),
    }
}

/// The architecture's filter target.
fn target_arch() -> Result<seccompiler::TargetArch, ConfineError> {
    std::env::consts::ARCH.try_into().map_err(ConfineError::Filter)
}

fn build(rules: BTreeMap<i64, Vec<SeccompRule>>) -> Result<seccompiler::BpfProgram, ConfineError> {
    let filter =
        SeccompFilter::new(rules, SeccompAction::Errno(libc::ENOSYS as u32), SeccompAction::Allow, target_arch()?)
            .map_err(ConfineError::Filter)?;
    filter.try_into().map_err(ConfineError::Filter)
}

/// How many system calls the allowlist names (for the start-up line and the docs).
pub fn syscall_count() -> usize {
    seccomp_filter().map(|f| f.len()).unwrap_or(0)
}

/// An ioctl request number as a filter value (`Ioctl` is `c_ulong` on glibc, `c_int` on musl).
#[allow(clippy::unnecessary_cast)]
fn request(r: libc::Ioctl) -> u64 {
    r as u64
}

/// `arg == value` on the low 32 bits.
fn arg_eq(arg: u8, value: u64) -> Result<SeccompCondition, ConfineError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value).map_err(ConfineError::Filter)
}

/// One rule per allowed value of one argument.
fn any_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, ConfineError> {
    values.iter().map(|v| SeccompRule::new(vec![arg_eq(arg, *v)?]).map_err(ConfineError::Filter)).collect()
}

/// The allowlist: syscall number → the rules its arguments must match (empty: any arguments).
fn seccomp_filter() -> Result<BTreeMap<i64, Vec<SeccompRule>>, ConfineError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let unrestricted: &[libc::c_long] = &[
        // Memory: the allocator, thread stacks, NSS modules loaded by the dynamic loader.
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_mremap,
        // Files: logs, rotation (rename, unlink), `clear` (truncate), `tail` (seek, read).
        libc::SYS_openat,
        libc::SYS_close,
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_lseek,
        libc::SYS_fstat,
        libc::SYS_newfstatat,
        libc::SYS_statx,
        libc::SYS_fstatfs,
        libc::SYS_ftruncate,
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_renameat2,
        libc::SYS_unlinkat,
        libc::SYS_mkdirat,
        libc::SYS_readlinkat,
        libc::SYS_faccessat,
        libc::SYS_faccessat2,
        libc::SYS_getdents64,
        libc::SYS_fcntl,
        // Program output moved from its pipe to its log file in the kernel (`output.rs`).
        libc::SYS_splice,
        // The control socket, the spawner link (SCM_RIGHTS), syslog, nscd/userdb.
        libc::SYS_connect,
        libc::SYS_accept4,
        libc::SYS_getsockopt,
        libc::SYS_setsockopt,
        libc::SYS_getsockname,
        libc::SYS_getpeername,
        libc::SYS_sendmsg,
        libc::SYS_recvmsg,
        libc::SYS_sendto,
        libc::SYS_recvfrom,
        libc::SYS_shutdown,
        // The event loop (polling: epoll, an eventfd to wake it, a timerfd for timeouts).
        libc::SYS_epoll_create1,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_pwait2,
        libc::SYS_eventfd2,
        libc::SYS_timerfd_create,
        libc::SYS_timerfd_settime,
        libc::SYS_ppoll,
        // Time (the vDSO usually answers without a call).
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_gettimeofday,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        // Who am I.
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_getuid,
        libc::SYS_geteuid,
        libc::SYS_getgid,
        libc::SYS_getegid,
        libc::SYS_getgroups,
        libc::SYS_getrandom,
        // Signals: handlers (std's stack-overflow guard), masks (glibc around NSS and thread
        // creation), their return, the alternate stack of each thread.
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_restart_syscall,
        // Threads: the worker thread and its channel, thread exit, the process's exit.
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_futex,
        libc::SYS_sched_getaffinity,
        libc::SYS_sched_yield,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ];
    for nr in unrestricted.iter().chain(legacy()) {
        rules.insert(*nr, Vec::new());
    }
    let af_unix = libc::AF_UNIX as u64;
    rules.insert(libc::SYS_socket, any_of(0, &[af_unix])?);
    rules.insert(libc::SYS_socketpair, any_of(0, &[af_unix])?);
    rules.insert(
        libc::SYS_ioctl,
        any_of(
            1,
            &[
                request(libc::FIONBIO),
                request(libc::FIOCLEX),
                request(libc::FIONCLEX),
                request(libc::FIONREAD),
                request(libc::TIOCSWINSZ),
                request(libc::TIOCGWINSZ),
                request(libc::TCGETS),
            ],
        )?,
    );
    let thread = libc::CLONE_THREAD as u64;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(thread),
            thread,
        )
        .map_err(ConfineError::Filter)?])
        .map_err(ConfineError::Filter)?],
    );
    rules.insert(
        libc::SYS_prctl,
        any_of(
            0,
            &[
                libc::PR_SET_NAME as u64,
                libc::PR_GET_NAME as u64,
                libc::PR_CAPBSET_READ as u64,
                libc::PR_GET_DUMPABLE as u64,
                libc::PR_SET_VMA as u64,
            ],
        )?,
    );
    // Its own limits only (the soft RLIMIT_NOFILE may be raised up to the hard one).
    rules.insert(libc::SYS_prlimit64, any_of(0, &[0])?);
    // Its own threads only (abort raises SIGABRT with tgkill(getpid(), gettid(), …)).
    rules.insert(libc::SYS_tgkill, any_of(0, &[u64::from(std::process::id())])?);
    Ok(rules)
}

/// The x86_64 calls that newer architectures only have in their `*at` or `p*` forms; glibc and
/// std use them there (std's `fs::rename` is `rename`, `remove_file` is `unlink`).
#[cfg(target_arch = "x86_64")]
fn legacy() -> &'static [libc::c_long] {
    &[
        libc::SYS_open,
        libc::SYS_stat,
        libc::SYS_lstat,
        libc::SYS_access,
        libc::SYS_rename,
        libc::SYS_renameat,
        libc::SYS_unlink,
        libc::SYS_mkdir,
        libc::SYS_readlink,
        libc::SYS_poll,
        libc::SYS_epoll_wait,
        libc::SYS_getrlimit,
        libc::SYS_setrlimit,
        libc::SYS_time,
    ]
}

/// None on architectures with only the generic table (aarch64, riscv64).
#[cfg(not(target_arch = "x86_64"))]
fn legacy() -> &'static [libc::c_long] {
    &[]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    /// Set in the environment of the re-executed test binary that confines itself.
    const CHILD: &str = "TASKMASTER_CONFINE_CHILD";

    #[test]
    fn the_allowlist_builds_for_this_architecture_and_leaves_out_what_a_supervisor_never_needs() {
        let rules = seccomp_filter().unwrap();
        assert_eq!(syscall_count(), rules.len());
        for forbidden in [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_clone3,
            libc::SYS_ptrace,
            libc::SYS_kill,
            libc::SYS_bind,
            libc::SYS_listen,
            libc::SYS_setuid,
            libc::SYS_mount,
            libc::SYS_process_vm_writev,
            libc::SYS_landlock_create_ruleset,
            libc::SYS_seccomp,
        ] {
            assert!(!rules.contains_key(&forbidden), "syscall {forbidden} is allowed");
        }
        build(rules).unwrap();
    }

    #[test]
    fn log_dirs_are_each_log_files_directory_once() {
        let d = LogDirs(vec![PathBuf::from("/var/log/tm"), PathBuf::from("/srv/app/logs")]);
        assert!(d.contains(Path::new("/var/log/tm/web-stdout.log")));
        assert!(!d.contains(Path::new("/var/log/other/x.log")));
        assert!(!d.contains(Path::new("/var/log/tmx/x.log")), "a component, not a string prefix");
    }

    /// Runs the confined half of a test in a fresh process (the test binary itself, filtered
    /// to `name`), since confinement cannot be undone; returns its stdout.
    fn run_confined(name: &str) -> String {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    #[test]
    fn after_confinement_a_worker_thread_hashes_and_answers_over_a_channel() {
        if std::env::var_os(CHILD).is_none() {
            let out =
                run_confined("io::confine::tests::after_confinement_a_worker_thread_hashes_and_answers_over_a_channel");
            assert!(out.contains("worker answered: true"), "{out}");
            return;
        }
        use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
        let salt = SaltString::encode_b64(b"taskmaster-test-salt").unwrap();
        let hash = argon2::Argon2::default().hash_password(b"secret", &salt).unwrap().to_string();
        let dir = tempfile::tempdir().unwrap();
        let confinement = confine(&LogDirs(vec![dir.path().to_path_buf()])).unwrap();
        println!("{confinement}");
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        assert!(status.lines().any(|l| l == "Seccomp:\t2"), "{status}");
        // As the lead's authentication worker will: created lazily, after confinement, an mpsc
        // channel for answers and a socket pair to wake the loop.
        let (tx, rx) = std::sync::mpsc::sync_channel::<bool>(4);
        let (mut wake_r, mut wake_w) = UnixStream::pair().unwrap();
        let worker = std::thread::Builder::new()
            .name("auth".into())
            .spawn(move || {
                let parsed = PasswordHash::new(&hash).unwrap();
                let ok = argon2::Argon2::default().verify_password(b"secret", &parsed).is_ok();
                let keys = std::collections::HashMap::<u32, u32>::from([(1, 2)]); // getrandom
                tx.send(ok && keys.len() == 1).unwrap();
                wake_w.write_all(b"!").unwrap();
            })
            .unwrap();
        let mut byte = [0u8; 1];
        wake_r.read_exact(&mut byte).unwrap();
        println!("worker answered: {}", rx.recv().unwrap());
        worker.join().unwrap();
    }

    #[test]
    fn after_confinement_forbidden_calls_fail_with_enosys_and_files_outside_are_refused() {
        if std::env::var_os(CHILD).is_none() {
            let out = run_confined(
                "io::confine::tests::after_confinement_forbidden_calls_fail_with_enosys_and_files_outside_are_refused",
            );
            assert!(out.contains("still alive"), "{out}");
            return;
        }
        let logs = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("secret"), "x").unwrap();
        let c = confine(&LogDirs(vec![logs.path().to_path_buf()])).unwrap();
        // Logs: create, write, rotate (rename), read back, remove, truncate.
        let log = logs.path().join("a.log");
        std::fs::write(&log, "one\n").unwrap();
        std::fs::rename(&log, logs.path().join("a.log.1")).unwrap();
        assert_eq!(std::fs::read_to_string(logs.path().join("a.log.1")).unwrap(), "one\n");
        std::fs::remove_file(logs.path().join("a.log.1")).unwrap();
        std::fs::File::create(&log).unwrap().set_len(0).unwrap();
        // NSS and the clock still work.
        assert!(nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(0)).unwrap().is_some());
        let _ = crate::sys::local_time(std::time::SystemTime::now());
        // A process cannot be created, nor a program executed: one failed call, no kill.
        let spawned = std::process::Command::new("/bin/true").status();
        assert!(spawned.is_err(), "a child process was started under the filter: {spawned:?}");
        let sock = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::empty(),
            None,
        );
        assert_eq!(sock.err(), Some(nix::errno::Errno::ENOSYS), "an AF_INET socket");
        if let Landlock::Enforced { .. } = c.landlock {
            let err = std::fs::read(elsewhere.path().join("secret")).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
            assert!(outside_note(&elsewhere.path().join("secret")).is_some());
            assert!(outside_note(&log).is_none());
        }
        // A panicking thread is only that thread's end.
        let panicked = std::thread::spawn(|| panic!("a worker's bug")).join();
        assert!(panicked.is_err());
        println!("still alive");
    }

    #[test]
    fn after_confinement_an_abort_is_still_sigabrt() {
        if std::env::var_os(CHILD).is_none() {
            use std::os::unix::process::ExitStatusExt;
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "io::confine::tests::after_confinement_an_abort_is_still_sigabrt",
                    "--exact",
                    "--test-threads=1",
                ])
                .env(CHILD, "1")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
            return;
        }
        let logs = tempfile::tempdir().unwrap();
        confine(&LogDirs(vec![logs.path().to_path_buf()])).unwrap();
        std::process::abort();
    }
}
