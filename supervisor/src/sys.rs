//! Mechanism with the supervisor's only unsafe code: the poller that owns every fd it watches
//! (so an fd is deleted from epoll before it closes), adopting the fds inherited at exec, and
//! local time for log lines.

use common::proto::spawn::Link;
use polling::{Event, Events, PollMode, Poller};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Something the loop watches.
pub enum Source {
    /// The spawner link.
    Link(Link),
    /// The listening control socket.
    Listener(UnixListener),
    /// A child's stdout or stderr pipe (read end).
    Pipe(File),
    /// A taskmasterctl connection.
    Client(UnixStream),
    /// The password worker's wake-up (`auth.rs`).
    Wake(UnixStream),
}

impl AsFd for Source {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::Link(l) => l.as_fd(),
            Source::Listener(l) => l.as_fd(),
            Source::Pipe(f) => f.as_fd(),
            Source::Client(c) | Source::Wake(c) => c.as_fd(),
        }
    }
}

/// The epoll set and the sources in it, by key; level-triggered, so handlers never re-arm.
pub struct Watcher {
    poller: Poller,
    sources: HashMap<usize, Source>,
}

impl Watcher {
    /// An empty set.
    ///
    /// # Errors
    /// `epoll_create1` failed.
    pub fn new() -> io::Result<Self> {
        Ok(Watcher { poller: Poller::new()?, sources: HashMap::new() })
    }

    /// Watches `source` under `key` for readability.
    ///
    /// # Errors
    /// `epoll_ctl` failed; the source is dropped (closed).
    pub fn insert(&mut self, key: usize, source: Source) -> io::Result<()> {
        // SAFETY: `source` now lives in `self.sources` until `remove`, which deletes it from the
        // poller before dropping it, so epoll never holds a closed fd.
        unsafe { self.poller.add_with_mode(source.as_fd().as_raw_fd(), Event::readable(key), PollMode::Level)? };
        self.sources.insert(key, source);
        Ok(())
    }

    /// Sets what `key` is watched for.
    ///
    /// # Errors
    /// `epoll_ctl` failed.
    pub fn interest(&mut self, key: usize, readable: bool, writable: bool) -> io::Result<()> {
        let Some(source) = self.sources.get(&key) else { return Ok(()) };
        let mut ev = Event::none(key);
        ev.readable = readable;
        ev.writable = writable;
        self.poller.modify_with_mode(source.as_fd(), ev, PollMode::Level)
    }

    /// Stops watching `key` and hands its source back (drop it to close).
    pub fn remove(&mut self, key: usize) -> Option<Source> {
        let source = self.sources.remove(&key)?;
        let _ = self.poller.delete(source.as_fd());
        Some(source)
    }

    /// The source under `key`.
    pub fn get_mut(&mut self, key: usize) -> Option<&mut Source> {
        self.sources.get_mut(&key)
    }

    /// Waits for readiness, at most `timeout` (None: until something is ready).
    ///
    /// # Errors
    /// `epoll_wait` failed (EINTR is retried by `polling`).
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        self.poller.wait(events, timeout)
    }
}

/// Takes ownership of an fd inherited across exec at a fixed number.
///
/// # Errors
/// The fd is not open.
pub fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads flags of an fd number.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the spawner placed this fd here for us at exec and nothing else in this process
    // refers to it; wrapping it once makes it closed once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(&owned, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
    Ok(owned)
}

/// Local broken-down time: (year, month 1-12, day, hour, minute, second, millisecond).
pub fn local_time(t: SystemTime) -> (i32, u32, u32, u32, u32, u32, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as libc::time_t;
    // SAFETY: all-zero bytes are a valid `tm` (plain integers and a null pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: `secs` and `tm` are valid for the call; localtime_r is the thread-safe variant.
    let ok = !unsafe { libc::localtime_r(&secs, &mut tm) }.is_null();
    if !ok {
        return (1970, 1, 1, 0, 0, 0, 0);
    }
    (
        tm.tm_year + 1900,
        (tm.tm_mon + 1) as u32,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
        tm.tm_sec as u32,
        d.subsec_millis(),
    )
}

/// Sets the window size of the terminal whose master is `fd` (ioctl TIOCSWINSZ); the kernel
/// then sends SIGWINCH to the terminal's foreground process group.
///
/// # Errors
/// The errno of `ioctl`.
pub fn set_winsize(fd: &impl AsFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which points to a live local.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Clears the process's dumpable flag (`prctl(PR_SET_DUMPABLE, 0)`, through nix's safe
/// wrapper): /proc/PID files then belong to root, and `ptrace` needs `CAP_SYS_PTRACE`.
///
/// # Errors
/// The errno of `prctl`.
pub fn set_non_dumpable() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)
}

/// Gives the free memory of the heap back to the kernel (glibc's `malloc_trim(0)`). After a
/// burst (a thousand spawns and their answers at start) the allocator keeps what was freed for
/// reuse, and the supervisor's resident memory would keep the burst's peak for good (bench:
/// heap 3.4 → 1.6 MiB with 1000 programs). No-op on other C libraries.
pub fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointer; it walks the allocator's own arenas under their
    // locks and may be called at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
