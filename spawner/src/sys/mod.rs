//! Mechanism only: the raw calls the spawner needs that nix cannot offer safely. No config, no
//! logging. Every function is async-signal-safe unless its doc says otherwise, so `child.rs` may
//! call them between fork and exec.

use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{ForkResult, Pid};
use std::ffi::{c_char, CStr};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Forks the spawner; cheap because it stays small and single-threaded (DESIGN §9).
///
/// # Errors
/// The errno of `fork(2)` (EAGAIN at RLIMIT_NPROC, ENOMEM).
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: the spawner never starts a thread (`cli::run` checks it before the first fork), so
    // the child has no lock held by another thread and may run the async-signal-safe code of
    // `child.rs` until it execs.
    unsafe { nix::unistd::fork() }
}

/// `struct clone_args` of clone3(2) up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, 88 bytes); declared
/// here because the kernel's layout is fixed and libc's differs between targets.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3's flag: the child starts in the cgroup given by `cgroup` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks the spawner as [`fork`] does, the child starting in the cgroup whose directory is open
/// at `cgroup` (clone3 with CLONE_INTO_CGROUP): nothing is migrated afterwards, which would take
/// the kernel's global cgroup lock for an RCU grace period (about 5 ms a process, measured).
///
/// # Errors
/// The errno of `clone3(2)`: ENOSYS, E2BIG or EINVAL before Linux 5.7, EACCES or EPERM when the
/// cgroup is not ours to use, EAGAIN at RLIMIT_NPROC. No child exists then.
pub fn fork_into_cgroup(cgroup: BorrowedFd<'_>) -> nix::Result<ForkResult> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: as for `fork` above: the spawner is single-threaded, and without CLONE_VM the
    // child gets a copy of the address space and returns here on its own copy of the stack.
    // glibc's fork handlers do not run and the child's thread descriptor keeps the parent's
    // thread id: the child calls no pthread function, only the async-signal-safe raw calls of
    // `child.rs`, until it execs or `_exit`s. `args` is valid for the call and sized as passed.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match r {
        r if r < 0 => Err(Errno::last()),
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent { child: Pid::from_raw(pid as i32) }),
    }
}

/// Argument and environment vectors for `execve`, as NULL-terminated pointer arrays built before
/// the fork (building them after would allocate in the child).
pub struct ExecVectors {
    path: std::ffi::CString,
    _strings: Vec<std::ffi::CString>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
}

impl ExecVectors {
    /// Builds the vectors; allocates, so call it before fork.
    pub fn new(path: std::ffi::CString, argv: Vec<std::ffi::CString>, env: Vec<std::ffi::CString>) -> Self {
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|s| s.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp: Vec<*const c_char> = env.iter().map(|s| s.as_ptr()).collect();
        envp.push(std::ptr::null());
        let mut strings = argv;
        strings.extend(env);
        // The pointers stay valid: a CString's heap buffer does not move when the CString does.
        ExecVectors { path, _strings: strings, argv: argv_ptrs, envp }
    }

    /// The program path.
    pub fn path(&self) -> &CStr {
        &self.path
    }
}

/// Replaces the process image; returns only on failure.
pub fn execve(v: &ExecVectors) -> Errno {
    // SAFETY: `path`, `argv` and `envp` are NUL-terminated strings and NULL-terminated pointer
    // arrays owned by `v`, alive for the call; execve does not return on success.
    unsafe { libc::execve(v.path.as_ptr(), v.argv.as_ptr(), v.envp.as_ptr()) };
    Errno::last()
}

/// Writes all of `bytes` to `fd` with raw `write(2)`, retrying EINTR; errors are ignored (it is
/// used to report a failure from the child, which then exits anyway).
pub fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable buffer of `bytes.len()` bytes; `fd` is open.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        match n {
            n if n > 0 => bytes = &bytes[n as usize..],
            -1 if Errno::last() == Errno::EINTR => continue,
            _ => return,
        }
    }
}

/// Duplicates `fd` onto the number `target` (dup2(2)); the copy is left open, without
/// close-on-exec, and owned by nobody: it is meant for fds 0-2 just before execve.
///
/// # Errors
/// The errno of `dup2`.
pub fn dup2_onto(fd: BorrowedFd<'_>, target: i32) -> Result<(), Errno> {
    // SAFETY: dup2 takes plain integers; the new fd `target` is deliberately not wrapped in an
    // owner, since the exec'd program inherits it.
    let r = unsafe { libc::dup2(fd.as_raw_fd(), target) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Ends the process at once with `_exit(2)`: no atexit handlers, no stdio flush.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// Marks every fd from `first` up close-on-exec (`close_range(2)` with CLOSE_RANGE_CLOEXEC).
///
/// # Errors
/// The errno of `close_range` (ENOSYS before Linux 5.11).
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range only changes fd flags; it takes plain integers.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Restores every catchable signal's default action and unblocks all signals, so the child does
/// not inherit the spawner's blocked set or Rust's ignored SIGPIPE (both survive execve).
///
/// # Errors
/// The errno of `sigaction` or `sigprocmask`.
pub fn reset_signals() -> Result<(), Errno> {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: installing SIG_DFL runs no handler code, so no handler can observe a half-set
        // state; sigaction is async-signal-safe.
        unsafe { sigaction(sig, &default) }?;
    }
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// Whether this process has more than one thread (from /proc/self/status). Not
/// async-signal-safe: call it before forking.
pub fn is_single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim() == "1")))
        .unwrap_or(true)
}

/// The pid of this process.
pub fn getpid() -> Pid {
    nix::unistd::getpid()
}

/// Opens /dev/null on any of fds 0, 1, 2 that is closed, so that no pipe the spawner creates
/// later lands on a stdio number. Not async-signal-safe; call it at startup.
pub fn ensure_stdio() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only reads the flags of an fd number; it touches no memory.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            if let Ok(null) = nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDWR, nix::sys::stat::Mode::empty()) {
                // It took the lowest free number, `fd`, which must stay open for good.
                std::mem::forget::<std::os::fd::OwnedFd>(null);
            }
        }
    }
}

/// Duplicates `fd` to the lowest free number >= `min`, close-on-exec (F_DUPFD_CLOEXEC).
///
/// # Errors
/// The errno of `fcntl`.
pub fn dup_above(fd: BorrowedFd<'_>, min: i32) -> Result<std::os::fd::OwnedFd, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC takes plain integers and returns a new fd nobody else owns.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `r` was just created by fcntl for us alone.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(r) })
}

/// Makes the terminal open on `fd` the controlling terminal of this session leader
/// (ioctl TIOCSCTTY). Async-signal-safe.
///
/// # Errors
/// The errno of `ioctl` (EPERM when not a session leader).
pub fn set_controlling_tty(fd: i32) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal); no memory is passed.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: the prctl options used here (CAPBSET_DROP, SET_NO_NEW_PRIVS, SET_KEEPCAPS,
    // CAP_AMBIENT) take integer arguments only; prctl is async-signal-safe.
    let r = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Empties the capability bounding set (caps 0 ..= `last_cap`, from
/// /proc/sys/kernel/cap_last_cap): nothing this process or its children exec can ever hold a
/// capability again. Needs CAP_SETPCAP, so call it before dropping root.
///
/// # Errors
/// The errno of `prctl(PR_CAPBSET_DROP)`.
pub fn drop_bounding_set(last_cap: u32) -> Result<(), Errno> {
    for cap in 0..=last_cap {
        prctl(libc::PR_CAPBSET_DROP, cap.into(), 0)?;
    }
    Ok(())
}

/// Sets no_new_privs: no exec can grant privileges again (setuid binaries, file capabilities).
///
/// # Errors
/// The errno of `prctl(PR_SET_NO_NEW_PRIVS)`.
pub fn set_no_new_privs() -> Result<(), Errno> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)
}

/// Keeps the permitted capabilities across the coming setuid (PR_SET_KEEPCAPS), so that some of
/// them can be made ambient after it.
///
/// # Errors
/// The errno of `prctl(PR_SET_KEEPCAPS)`.
pub fn keep_caps() -> Result<(), Errno> {
    prctl(libc::PR_SET_KEEPCAPS, 1, 0)
}

/// Sets this process's effective, permitted and inheritable capability sets to `mask` (bit N:
/// capability N) with capset(2), then raises each of them in the ambient set, so they survive
/// exec as a non-root user.
///
/// # Errors
/// The errno of `capset` or `prctl(PR_CAP_AMBIENT_RAISE)`.
pub fn grant_ambient(mask: u64) -> Result<(), Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header { version: 0x2008_0522, pid: 0 }; // _LINUX_CAPABILITY_VERSION_3
    let (lo, hi) = (mask as u32, (mask >> 32) as u32);
    let data = [
        Data { effective: lo, permitted: lo, inheritable: lo },
        Data { effective: hi, permitted: hi, inheritable: hi },
    ];
    // SAFETY: capset reads one header and two data structs through valid pointers to locals
    // laid out as the kernel's (repr(C), version 3); it is a plain syscall, async-signal-safe.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    if r < 0 {
        return Err(Errno::last());
    }
    for cap in (0..64u64).filter(|c| mask & (1 << c) != 0) {
        prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong, cap as libc::c_ulong)?;
    }
    Ok(())
}
