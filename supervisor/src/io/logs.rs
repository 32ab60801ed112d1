//! The main log and the child log files. Writes what it is given; decides nothing.
//!
//! Files rotate at `maxbytes` into `.1` … `.N` (as supervisord's `logfile_maxbytes` and
//! `logfile_backups`): a write is split exactly at the limit, the files are renamed, the rest
//! goes to a fresh file, so no byte is lost, doubled or reordered. A file that cannot be opened
//! or written is reported once at ERROR and its output is dropped while the pipe keeps being
//! drained, so a child never blocks on a full pipe because of a log problem.
//!
//! **A supervisor killed at any instant costs a log file nothing** (issue 16). Program output
//! reaches its file by `splice(2)` from the program's pipe, and is read back from the file for
//! the rest of the supervisor ([`RotatingFile::splice_from`]; the whole path: `output.rs`): the
//! kernel takes from the pipe only what it put in the file, so each byte is in one of them,
//! never both, never neither. Files are opened without `O_APPEND` (`splice` refuses it) and
//! every write or splice starts at the file's real end, asked of the kernel each time
//! (`lseek(SEEK_END)`), so a new supervisor continues where the killed one stopped, rotates
//! from the real size, and two streams configured to one file (nothing forbids it) still
//! interleave without overwriting each other. A rotation cut short leaves a gap in the backups'
//! numbers that the next rotation closes, in order (`rotate`). Streams that cannot use `splice`
//! (no file, a failed file) are written with `write(2)` after being read: there a kill between
//! the two loses that chunk. A PTY's output reaches here through a holding pipe (`output.rs`).

use crate::sys::local_time;
use common::config::raw::LogLevel;
use common::config::SyslogTarget;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

/// Bytes of recent output kept in memory per stream, for `tail` (64 KiB).
pub const TAIL_BYTES: usize = 64 * 1024;

/// `2026-11-22 14:03:07,123`, local time, as supervisord stamps its log.
pub fn timestamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = local_time(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02},{ms:03}")
}

/// A log file that rotates at `max_bytes` (0: never) keeping `backups` old files (0: truncate in
/// place).
///
/// Its directory is opened once, at the first use, and every later open, rotation, `clear` and
/// `tail` works relative to that directory fd with `O_NOFOLLOW|O_NONBLOCK` and a check that the
/// file is a regular one: a program's user who can write the log directory or one above it
/// cannot point the log at another file the supervisor may write (a symlink, a swapped
/// directory) nor stall the loop with a FIFO.
#[derive(Debug)]
pub struct RotatingFile {
    /// The file.
    pub path: PathBuf,
    dir: std::cell::OnceCell<OwnedFd>,
    file: Option<File>,
    max_bytes: u64,
    backups: u32,
    /// Why the file cannot be written, once it failed (shown in `status`).
    pub failure: Option<String>,
    /// `splice(2)` into the file, or reading it back, was refused: it takes bytes through
    /// `write(2)` only, until [`RotatingFile::reopen`].
    no_splice: bool,
    /// The open file can be read (for the copy of what is spliced into it).
    readable: bool,
    /// The last splice filled the file to `max_bytes`: it rotates once more bytes wait.
    full: bool,
}

/// What [`RotatingFile::splice_from`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spliced {
    /// Bytes moved from the pipe into the file (they left the pipe).
    pub moved: usize,
    /// Of those, bytes read back into the copy (all unless a read back failed; then `trouble`
    /// says so, and the others are in the file only).
    pub copied: usize,
    /// The pipe ran dry: empty for now, or empty with no writer left.
    pub end: Option<PipeEnd>,
    /// Why the file stopped taking bytes, the first time.
    pub trouble: Option<FileTrouble>,
}

/// How a pipe ran dry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeEnd {
    /// Nothing to read for now (`EAGAIN`).
    Empty,
    /// Nothing to read and no writer left: the end of the stream.
    Closed,
}

/// Whether `pipe` ran dry (None: bytes are waiting, or its state is unknown), asked of
/// `poll(2)` without waiting: readable with no `POLLIN` means `POLLHUP`, the writers are gone.
fn pipe_end(pipe: BorrowedFd<'_>) -> Option<PipeEnd> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(pipe, PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).ok()?;
    let revents = fds[0].revents().unwrap_or(PollFlags::empty());
    if revents.contains(PollFlags::POLLIN) {
        None
    } else if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
        Some(PipeEnd::Closed)
    } else {
        Some(PipeEnd::Empty)
    }
}

/// Why a [`RotatingFile`] did not take every byte it was given (to be logged once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileTrouble {
    /// The file cannot be opened, rotated or written: `cannot write /var/log/web.log: No space
    /// left on device (os error 28)`. Recorded as [`RotatingFile::failure`]: the stream's bytes
    /// are dropped from the file until [`RotatingFile::reopen`].
    Failed(String),
    /// `splice(2)` into the file was refused (`EINVAL`: a file system without it; `ENOSYS`: not
    /// permitted: `cannot splice into /var/log/web.log: EINVAL: Invalid argument`), or the file
    /// cannot be read back (`cannot read /var/log/web.log back: it is open for writing only`).
    /// The file keeps taking bytes, through `write(2)`.
    NoSplice(String),
}

impl RotatingFile {
    /// A file at `path`, opened on first write.
    pub fn new(path: PathBuf, max_bytes: u64, backups: u32) -> Self {
        RotatingFile {
            path,
            dir: std::cell::OnceCell::new(),
            file: None,
            max_bytes,
            backups,
            failure: None,
            no_splice: false,
            readable: false,
            full: false,
        }
    }

    /// The log directory's fd, opened (as configured, once) on first use.
    fn dir(&self) -> io::Result<BorrowedFd<'_>> {
        if self.dir.get().is_none() {
            let parent = match self.path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            let _ = self.dir.set(nix::fcntl::open(parent, flags, Mode::empty())?);
        }
        self.dir.get().map(|d| d.as_fd()).ok_or_else(|| io::Error::other("log directory not open"))
    }

    /// `name` (the file or one of its backups) in the log directory, opened with `flags` plus
    /// `O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC`; refused unless it is a regular file.
    fn open_in_dir(&self, name: &OsStr, flags: OFlag) -> io::Result<File> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(self.dir()?, name, flags, Mode::from_bits_truncate(0o666))?;
        let file = File::from(fd);
        if !file.metadata()?.file_type().is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(file)
    }

    /// The file name of the log, or of its backup `n` (0: the log itself).
    fn name(&self, n: u32) -> OsString {
        let base = self.path.file_name().unwrap_or(self.path.as_os_str()).to_owned();
        match n {
            0 => base,
            n => {
                let mut s = base;
                s.push(format!(".{n}"));
                s
            }
        }
    }

    /// Appends all of `bytes`, rotating as often as the limit requires. Returns the error text the
    /// first time writing fails (to be logged); later failures are silent until [`reopen`].
    ///
    /// [`reopen`]: RotatingFile::reopen
    pub fn write(&mut self, mut bytes: &[u8]) -> Option<String> {
        if self.failure.is_some() {
            return None;
        }
        while !bytes.is_empty() {
            let room = match self.make_room() {
                Ok((room, _)) => room,
                Err(msg) => return self.fail(msg),
            };
            let n = room.min(bytes.len());
            let f = self.file.as_mut()?;
            if let Err(e) = f.write_all(&bytes[..n]) {
                return self.fail(format!("cannot write {}: {e}", self.path.display()));
            }
            bytes = &bytes[n..];
        }
        None
    }

    /// Whether [`RotatingFile::splice_from`] can be tried: the file has not failed and has not
    /// refused `splice(2)` or reading back.
    pub fn takes_splice(&self) -> bool {
        self.failure.is_none() && !self.no_splice
    }

    /// Moves the bytes waiting in `pipe` (at most `copy.len()`) to the end of the file with
    /// `splice(2)`, rotating exactly as [`RotatingFile::write`] does (at most the room left is
    /// moved, the files rotate, the rest follows), and, with `read_back`, reads each piece back
    /// from the file into `copy` (`pread`, from the page cache) before the next; without it
    /// (nobody needs the bytes but the file) `copy` only bounds the move. The kernel removes from the pipe
    /// only the bytes that reached the file, so a process killed at any instant leaves each byte
    /// in one place: in the pipe or in the file. `pipe` must be non-blocking.
    ///
    /// A closed file is opened, and a full one rotated, only when the pipe holds bytes (asked of
    /// `poll`): a wakeup for a pipe that closed without more output creates no file and leaves
    /// no empty one behind, as with [`RotatingFile::write`].
    ///
    /// # Errors
    /// None returned: [`Spliced::trouble`] says, once, why the file stopped taking bytes (it then
    /// takes no more splices, and the bytes left in the pipe are for the caller to read).
    pub fn splice_from(&mut self, pipe: BorrowedFd<'_>, copy: &mut [u8], read_back: bool) -> Spliced {
        use nix::errno::Errno;
        use nix::fcntl::{splice, SpliceFFlags};
        use std::os::unix::fs::FileExt;
        let mut s = Spliced { moved: 0, copied: 0, end: None, trouble: None };
        while s.moved < copy.len() && self.takes_splice() {
            if self.file.is_none() || self.full {
                s.end = pipe_end(pipe);
                if s.end.is_some() {
                    break;
                }
            }
            let (room, offset) = match self.make_room() {
                Ok(at) => at,
                Err(msg) => {
                    s.trouble = self.fail(msg).map(FileTrouble::Failed);
                    break;
                }
            };
            if read_back && !self.readable {
                self.no_splice = true;
                let msg = format!("cannot read {} back: it is open for writing only", self.path.display());
                s.trouble = Some(FileTrouble::NoSplice(msg));
                break;
            }
            let Some(f) = &self.file else { break };
            let want = room.min(copy.len() - s.moved);
            // No offset: the file's own, which `make_room` just set to the end.
            let n = match splice(pipe, None, f, None, want, SpliceFFlags::SPLICE_F_NONBLOCK) {
                Ok(0) => {
                    s.end = Some(PipeEnd::Closed);
                    break;
                }
                Ok(n) => n,
                Err(Errno::EAGAIN) => {
                    s.end = Some(PipeEnd::Empty);
                    break;
                }
                Err(Errno::EINTR) => continue,
                Err(e @ (Errno::EINVAL | Errno::ENOSYS)) => {
                    self.no_splice = true;
                    s.trouble = Some(FileTrouble::NoSplice(format!("cannot splice into {}: {e}", self.path.display())));
                    break;
                }
                Err(e) => {
                    let msg = format!("cannot write {}: {}", self.path.display(), io::Error::from(e));
                    s.trouble = self.fail(msg).map(FileTrouble::Failed);
                    break;
                }
            };
            s.moved += n;
            self.full = n == room;
            if read_back {
                if let Err(e) = f.read_exact_at(&mut copy[s.copied..s.moved], offset) {
                    self.no_splice = true;
                    s.trouble = Some(FileTrouble::NoSplice(format!("cannot read {} back: {e}", self.path.display())));
                    break;
                }
                s.copied = s.moved;
            }
            if n < want {
                break; // the pipe held no more for now: do not ask again for an EAGAIN
            }
        }
        s
    }

    /// Opens the file when closed, puts its offset at its end and rotates it when full. Returns
    /// how many bytes fit before the next rotation and the end's offset, or the failure's text.
    ///
    /// The end is asked of the kernel (`lseek(SEEK_END)`) before each write, not remembered:
    /// the file has no `O_APPEND` (`splice` refuses it), and its real size is what counts when
    /// another [`RotatingFile`] writes the same file (two streams configured to one path), after
    /// logrotate's `copytruncate`, and after a supervisor killed mid-write was replaced.
    fn make_room(&mut self) -> Result<(usize, u64), String> {
        loop {
            if let Err(e) = self.ensure_open() {
                let why = match crate::io::confine::outside_note(&self.path) {
                    Some(note) if e.kind() == io::ErrorKind::PermissionDenied => format!(" ({note})"),
                    _ => String::new(),
                };
                return Err(format!("cannot open {}: {e}{why}", self.path.display()));
            }
            let Some(f) = self.file.as_mut() else { return Err(format!("cannot open {}", self.path.display())) };
            let size = f.seek(SeekFrom::End(0)).map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
            if self.max_bytes == 0 {
                return Ok((usize::MAX, size));
            }
            if size < self.max_bytes {
                return Ok((usize::try_from(self.max_bytes - size).unwrap_or(usize::MAX), size));
            }
            if let Err(e) = self.rotate() {
                let dir = self.path.parent().unwrap_or(Path::new("/")).display().to_string();
                return Err(format!(
                    "cannot rotate {}: {e} (the supervisor's user needs write access to {dir})",
                    self.path.display()
                ));
            }
        }
    }

    /// Opens the file for reading and writing (splices are read back), or for writing only when
    /// the supervisor may not read it.
    fn ensure_open(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            let f = match self.open_in_dir(&self.name(0), OFlag::O_RDWR | OFlag::O_CREAT) {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    self.open_in_dir(&self.name(0), OFlag::O_WRONLY | OFlag::O_CREAT).map(|f| (f, false))
                }
                other => other.map(|f| (f, true)),
            }?;
            (self.file, self.readable) = (Some(f.0), f.1);
        }
        Ok(())
    }

    /// Shifts the backups up by one (`.N` dropped) and the file to `.1`, then opens a new file.
    ///
    /// Each rename is atomic, and a supervisor killed between two of them leaves a gap in the
    /// numbers (`.3` moved to `.4`, `.2` not yet to `.3`). So the backups present are renumbered
    /// by rank, not by name: the k-th newest becomes `.k+1`. Those with no gap below them move up,
    /// oldest first; those above a gap move down (or stay), newest first; no rename ever replaces
    /// a backup but the oldest one beyond `backups`. A gap is closed at the next rotation and
    /// the backups keep their order through any number of kills.
    fn rotate(&mut self) -> io::Result<()> {
        if self.backups == 0 {
            if let Some(f) = &self.file {
                f.set_len(0)?;
            }
            return Ok(());
        }
        self.file = None;
        let dir = self.dir()?;
        let present = (1..=self.backups).filter(|n| {
            nix::sys::stat::fstatat(dir, self.name(*n).as_os_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
        });
        let moves: Vec<(u32, u32)> = present.zip(2..).collect();
        let rename =
            |from: u32, to: u32| nix::fcntl::renameat(dir, self.name(from).as_os_str(), dir, self.name(to).as_os_str());
        for &(from, to) in moves.iter().rev().filter(|(from, to)| to > from && *to <= self.backups) {
            rename(from, to)?;
        }
        for &(from, to) in moves.iter().filter(|(from, to)| to < from) {
            rename(from, to)?;
        }
        rename(0, 1)?;
        self.ensure_open()
    }

    fn fail(&mut self, msg: String) -> Option<String> {
        self.file = None;
        self.failure = Some(msg.clone());
        Some(msg)
    }

    /// Closes the file so the next write reopens it by name (SIGUSR2), and forgets a failure
    /// (and a refused `splice`: the new file may be elsewhere).
    pub fn reopen(&mut self) {
        self.file = None;
        self.failure = None;
        self.no_splice = false;
    }

    /// Empties the file and removes its backups (`taskmasterctl clear`).
    ///
    /// # Errors
    /// The file cannot be truncated.
    pub fn clear(&mut self) -> io::Result<()> {
        for n in 1..=self.backups.max(1) {
            let name = self.name(n);
            let _ = nix::unistd::unlinkat(self.dir()?, name.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        self.file = None;
        self.failure = None;
        match self.open_in_dir(&self.name(0), OFlag::O_WRONLY | OFlag::O_TRUNC) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The last `n` bytes written, read from the file and as many backups as needed (only
    /// those bytes are read: each file from its end).
    pub fn read_tail(&self, n: usize) -> Vec<u8> {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut want = n;
        for k in 0..=self.backups {
            if want == 0 {
                break;
            }
            let Ok(mut f) = self.open_in_dir(&self.name(k), OFlag::O_RDONLY) else { break };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0) as usize;
            let take = want.min(len);
            let mut buf = vec![0; take];
            if f.seek(SeekFrom::Start((len - take) as u64)).is_err() || f.read_exact(&mut buf).is_err() {
                break;
            }
            want -= take;
            parts.push(buf);
        }
        parts.into_iter().rev().flatten().collect()
    }
}

/// The last bytes of a stream, in memory; allocated on first output.
#[derive(Debug, Default)]
pub struct Tail {
    buf: VecDeque<u8>,
}

impl Tail {
    /// Keeps the last [`TAIL_BYTES`] of everything pushed.
    pub fn push(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
        let excess = (self.buf.len() + bytes.len()).saturating_sub(TAIL_BYTES);
        self.buf.drain(..excess);
        self.buf.extend(bytes);
    }

    /// The last `n` bytes held (fewer if fewer are held).
    pub fn last(&self, n: usize) -> Vec<u8> {
        self.buf.iter().skip(self.buf.len().saturating_sub(n)).copied().collect()
    }

    /// How many bytes are held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.buf = VecDeque::new();
    }
}

/// The local syslog cannot be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach syslog at {}: {reason}", path.display())]
pub struct SyslogError {
    /// The socket tried.
    pub path: PathBuf,
    /// What the syslog crate said.
    pub reason: String,
}

/// A connection to the local syslog, through the `syslog` crate (RFC 3164 over a UNIX socket).
pub struct Syslog {
    logger: syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>,
    failed: bool,
}

impl Syslog {
    /// Connects to `target.socket`.
    ///
    /// # Errors
    /// The socket cannot be reached: "cannot reach syslog at /dev/log: …".
    pub fn connect(target: &SyslogTarget) -> Result<Self, SyslogError> {
        let facility = syslog::Facility::from_str(&target.facility).unwrap_or(syslog::Facility::LOG_DAEMON);
        let formatter =
            syslog::Formatter3164 { facility, hostname: None, process: target.ident.clone(), pid: std::process::id() };
        syslog::unix_custom(formatter, &target.socket)
            .map(|logger| Syslog { logger, failed: false })
            .map_err(|e| SyslogError { path: target.socket.clone(), reason: e.to_string() })
    }

    /// Sends one message tagged `tag` (None: the configured ident) at `level`. Returns the error
    /// text the first time sending fails.
    pub fn send(&mut self, level: LogLevel, tag: Option<&str>, msg: &str) -> Option<String> {
        let ident = std::mem::take(&mut self.logger.formatter.process);
        if let Some(t) = tag {
            self.logger.formatter.process = t.to_owned();
        } else {
            self.logger.formatter.process = ident.clone();
        }
        let r = match level {
            LogLevel::Debug => self.logger.debug(msg),
            LogLevel::Info => self.logger.info(msg),
            LogLevel::Warn => self.logger.warning(msg),
            LogLevel::Error => self.logger.err(msg),
            LogLevel::Critical => self.logger.crit(msg),
        };
        self.logger.formatter.process = ident;
        match r {
            Ok(()) => {
                self.failed = false;
                None
            }
            Err(e) if !self.failed => {
                self.failed = true;
                Some(format!("syslog: {e}"))
            }
            Err(_) => None,
        }
    }
}

/// The syslog priority of a level (journald reads `<N>` prefixes): debug 7 … critical 2.
pub fn syslog_priority(level: LogLevel) -> u8 {
    match level {
        LogLevel::Debug => 7,
        LogLevel::Info => 6,
        LogLevel::Warn => 4,
        LogLevel::Error => 3,
        LogLevel::Critical => 2,
    }
}

/// The daemon's main log (DESIGN §5), also copied to stderr in the foreground and to syslog
/// when configured. Lines logged since the last [`MainLog::take_fresh`] are kept for
/// `maintail -f`.
pub struct MainLog {
    file: RotatingFile,
    level: LogLevel,
    to_stderr: bool,
    /// stderr is journald's stream: lines carry `<N>` priorities and no timestamp.
    journal: bool,
    /// Recent lines, for `maintail`.
    pub recent: Tail,
    fresh: Vec<u8>,
    syslog: Option<Syslog>,
}

impl MainLog {
    /// The main log at `path`, rotating at `max_bytes` with `backups` kept, copied to stderr when
    /// `to_stderr`, or in journald's form when `journal` (the spawner's stderr, to which it
    /// relays ours, is journald's stream).
    pub fn open(path: PathBuf, max_bytes: u64, backups: u32, level: LogLevel, to_stderr: bool, journal: bool) -> Self {
        MainLog {
            file: RotatingFile::new(path, max_bytes, backups),
            level,
            to_stderr,
            journal,
            recent: Tail::default(),
            fresh: Vec::new(),
            syslog: None,
        }
    }

    /// Also sends every line to syslog.
    pub fn set_syslog(&mut self, s: Syslog) {
        self.syslog = Some(s);
    }

    /// Closes and reopens the file (SIGUSR2, for an external logrotate).
    pub fn reopen(&mut self) {
        self.file.reopen();
    }

    /// The main log file.
    pub fn file(&self) -> &RotatingFile {
        &self.file
    }

    /// Writes one line at `level` if the configured level lets it through.
    pub fn log(&mut self, level: LogLevel, msg: &str) {
        if level < self.level {
            return;
        }
        let line = format!("{} {} {msg}\n", timestamp(SystemTime::now()), level.as_str());
        if let Some(err) = self.file.write(line.as_bytes()) {
            eprintln!("taskmasterd: main log: {err}");
        }
        if self.journal {
            let _ = io::stderr().write_all(format!("<{}>{msg}\n", syslog_priority(level)).as_bytes());
        } else if self.to_stderr {
            let _ = io::stderr().write_all(line.as_bytes());
        }
        if let Some(err) = self.syslog.as_mut().and_then(|s| s.send(level, None, msg)) {
            eprintln!("taskmasterd: main log: {err}");
        }
        self.recent.push(line.as_bytes());
        self.fresh.extend_from_slice(line.as_bytes());
    }

    /// Lines written since the last call.
    pub fn take_fresh(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.fresh)
    }

    /// `log(Info, …)`.
    pub fn info(&mut self, msg: &str) {
        self.log(LogLevel::Info, msg);
    }

    /// `log(Warn, …)`.
    pub fn warn(&mut self, msg: &str) {
        self.log(LogLevel::Warn, msg);
    }

    /// `log(Error, …)`.
    pub fn error(&mut self, msg: &str) {
        self.log(LogLevel::Error, msg);
    }
}

/// What a [`ChildLog`] was made from: path, maxbytes, backups, syslog.
pub type ChildLogSettings = (Option<PathBuf>, u64, u32, bool);

/// One stream of one process: its file (if any), its recent bytes, and its syslog lines.
#[derive(Default)]
pub struct ChildLog {
    /// What it was made from; a reload that changes it makes a new one.
    pub settings: ChildLogSettings,
    /// The file; `None` when the stream is discarded or redirected.
    pub file: Option<RotatingFile>,
    /// Recent bytes, for `tail`.
    pub recent: Tail,
    /// Send complete lines to syslog.
    pub syslog: bool,
    /// The file is outside the directories the supervisor is confined to (a re-read added it):
    /// its pipe is left unread for the supervisor that replaces this one (`output.rs`).
    pub outside: bool,
    partial: Vec<u8>,
}

impl ChildLog {
    /// A stream logged to `path` (rotating as given), or only kept in memory when `None`.
    pub fn new(settings: ChildLogSettings) -> Self {
        let (path, max_bytes, backups, syslog) = settings.clone();
        let outside = path.as_deref().is_some_and(|p| !crate::io::confine::covers(p));
        ChildLog {
            settings,
            file: path.map(|p| RotatingFile::new(p, max_bytes, backups)),
            recent: Tail::default(),
            syslog,
            outside,
            partial: Vec::new(),
        }
    }

    /// Why the file cannot be written, if it failed.
    pub fn failure(&self) -> Option<&str> {
        self.file.as_ref().and_then(|f| f.failure.as_deref())
    }

    /// Records output: the file, memory, and (when enabled) complete lines to `syslog`. The
    /// first `filed` bytes are already in the file ([`RotatingFile::splice_from`] moved them);
    /// the rest are written to it first, before the copies. Returns an error text to log, the
    /// first time the file (or else syslog) fails.
    pub fn write(&mut self, bytes: &[u8], filed: usize, tag: &str, syslog: Option<&mut Syslog>) -> Option<String> {
        let mut error = self.file.as_mut().and_then(|f| f.write(&bytes[filed.min(bytes.len())..]));
        self.recent.push(bytes);
        if let (true, Some(s)) = (self.syslog, syslog) {
            self.partial.extend_from_slice(bytes);
            while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                if let Some(e) = s.send(LogLevel::Info, Some(tag), &text) {
                    error = error.or(Some(e));
                }
            }
            if self.partial.len() > 8192 {
                let text = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                s.send(LogLevel::Info, Some(tag), &text);
            }
        }
        error
    }

    /// The last `n` bytes: from memory when it holds them, else from the files.
    pub fn tail(&self, n: usize) -> Vec<u8> {
        match &self.file {
            Some(f) if self.recent.len() < n && f.failure.is_none() => {
                let from_files = f.read_tail(n);
                if from_files.len() >= self.recent.len() {
                    from_files
                } else {
                    self.recent.last(n)
                }
            }
            _ => self.recent.last(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `path.N`.
    fn backup(path: &Path, n: u32) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    #[test]
    fn a_log_stays_in_its_directory_when_the_path_is_swapped_and_refuses_a_fifo() {
        let root = tempfile::tempdir().unwrap();
        let (logs, elsewhere) = (root.path().join("logs"), root.path().join("elsewhere"));
        std::fs::create_dir(&logs).unwrap();
        std::fs::create_dir(&elsewhere).unwrap();
        let mut f = RotatingFile::new(logs.join("app.log"), 0, 2);
        assert!(f.write(b"one\n").is_none());
        // A user who can write above the log directory swaps it for a link elsewhere.
        std::fs::rename(&logs, root.path().join("logs.old")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &logs).unwrap();
        f.reopen();
        assert!(f.write(b"two\n").is_none());
        assert_eq!(std::fs::read(root.path().join("logs.old/app.log")).unwrap(), b"one\ntwo\n");
        assert!(!elsewhere.join("app.log").exists(), "the log followed the swapped path");
        // A FIFO planted as a backup never blocks a tail.
        nix::unistd::mkfifo(&root.path().join("logs.old/app.log.1"), Mode::from_bits_truncate(0o666)).unwrap();
        assert_eq!(f.read_tail(100), b"one\ntwo\n");
    }

    #[test]
    fn rotation_splits_at_the_limit_and_keeps_n_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let mut f = RotatingFile::new(path.clone(), 10, 2);
        assert_eq!(f.write(b"0123456789abcdefghij0123"), None);
        assert_eq!(std::fs::read(&path).unwrap(), b"0123");
        assert_eq!(std::fs::read(backup(&path, 1)).unwrap(), b"abcdefghij");
        assert_eq!(std::fs::read(backup(&path, 2)).unwrap(), b"0123456789");
        f.write(b"456789XYZ");
        assert!(!backup(&path, 3).exists(), "backups beyond N are not kept");
        assert_eq!(std::fs::read(&path).unwrap(), b"XYZ");
        assert_eq!(f.read_tail(13), b"0123456789XYZ");
    }

    #[test]
    fn zero_backups_truncate_in_place_and_zero_maxbytes_never_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = RotatingFile::new(path.clone(), 4, 0);
        f.write(b"abcdef");
        assert_eq!(std::fs::read(&path).unwrap(), b"ef");
        assert!(!backup(&path, 1).exists());
        let p2 = dir.path().join("b.log");
        let mut g = RotatingFile::new(p2.clone(), 0, 3);
        g.write(&[b'x'; 10_000]);
        assert_eq!(std::fs::metadata(&p2).unwrap().len(), 10_000);
    }

    /// A pipe holding `bytes` (its reader non-blocking, as the supervisor's are).
    fn pipe_with(bytes: &[u8]) -> (OwnedFd, File) {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        crate::io::output::set_nonblocking(&r).unwrap();
        let mut w = File::from(w);
        w.write_all(bytes).unwrap();
        (r, w)
    }

    /// What is left in a pipe.
    fn left_in(r: &OwnedFd) -> Vec<u8> {
        let mut left = vec![0; 1 << 16];
        let n = nix::unistd::read(r, &mut left).unwrap_or(0);
        left.truncate(n);
        left
    }

    /// Splices what `r` holds (at most `max` bytes) into `f`; returns what it did and the copy.
    fn splice(f: &mut RotatingFile, r: &OwnedFd, max: usize) -> (Spliced, Vec<u8>) {
        let mut copy = vec![0; max];
        let s = f.splice_from(r.as_fd(), &mut copy, true);
        copy.truncate(s.copied);
        (s, copy)
    }

    #[test]
    fn splice_moves_bytes_from_the_pipe_rotating_at_the_exact_limit_and_the_copy_is_what_moved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let mut f = RotatingFile::new(path.clone(), 10, 2);
        let (r, w) = pipe_with(b"0123456789abcdefghij0123+rest");
        assert!(f.takes_splice());
        let (s, copy) = splice(&mut f, &r, 24);
        assert_eq!(s, Spliced { moved: 24, copied: 24, end: None, trouble: None });
        assert_eq!(copy, b"0123456789abcdefghij0123");
        assert_eq!(std::fs::read(&path).unwrap(), b"0123");
        assert_eq!(std::fs::read(backup(&path, 1)).unwrap(), b"abcdefghij");
        assert_eq!(std::fs::read(backup(&path, 2)).unwrap(), b"0123456789");
        // At most the copy's size moved; the rest waits in the pipe.
        assert_eq!(left_in(&r), b"+rest");
        // A write and a splice continue each other.
        assert_eq!(f.write(b"45"), None);
        (&w).write_all(b"6789XYZ").unwrap();
        let (s, copy) = splice(&mut f, &r, 100);
        assert_eq!((s.moved, s.copied, copy.as_slice()), (7, 7, &b"6789XYZ"[..]));
        assert_eq!(std::fs::read(&path).unwrap(), b"XYZ");
        assert_eq!(std::fs::read(backup(&path, 1)).unwrap(), b"0123456789");
        assert!(!backup(&path, 3).exists());
        // An empty pipe, then a closed one.
        let (s, _) = splice(&mut f, &r, 100);
        assert_eq!((s.moved, s.end), (0, Some(PipeEnd::Empty)));
        drop(w);
        let (s, _) = splice(&mut f, &r, 100);
        assert_eq!((s.moved, s.end), (0, Some(PipeEnd::Closed)));
    }

    #[test]
    fn a_pipe_that_closes_without_output_creates_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quiet.log");
        let mut f = RotatingFile::new(path.clone(), 0, 0);
        let (r, w) = pipe_with(b"");
        assert_eq!(splice(&mut f, &r, 10).0.end, Some(PipeEnd::Empty));
        drop(w);
        assert_eq!(splice(&mut f, &r, 10).0.end, Some(PipeEnd::Closed));
        assert!(!path.exists());
    }

    #[test]
    fn a_file_that_cannot_be_opened_takes_nothing_from_the_pipe_and_says_why_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::new(dir.path().join("missing/out.log"), 0, 0);
        let (r, _w) = pipe_with(b"kept");
        let (s, _) = splice(&mut f, &r, 4);
        assert_eq!((s.moved, s.copied, s.end), (0, 0, None));
        match s.trouble {
            Some(FileTrouble::Failed(msg)) => assert!(msg.starts_with("cannot open "), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(!f.takes_splice() && f.failure.is_some());
        assert_eq!(splice(&mut f, &r, 4).0, Spliced { moved: 0, copied: 0, end: None, trouble: None }, "said once");
        assert_eq!(left_in(&r), b"kept", "the bytes stay in the pipe for the caller to read");
    }

    #[test]
    fn a_file_the_supervisor_may_only_write_is_written_not_spliced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wo.log");
        std::fs::write(&path, "").unwrap();
        let mut f = RotatingFile::new(path.clone(), 0, 0);
        // Opened write-only, as `ensure_open` falls back to when reading is refused (by the
        // file's mode; root is not refused, so the state is set here).
        f.file = Some(f.open_in_dir(OsStr::new("wo.log"), OFlag::O_WRONLY).unwrap());
        f.readable = false;
        let (r, _w) = pipe_with(b"abc");
        let (s, _) = splice(&mut f, &r, 10);
        assert_eq!((s.moved, s.copied), (0, 0));
        assert!(matches!(s.trouble, Some(FileTrouble::NoSplice(ref m)) if m.contains("back")), "{s:?}");
        assert!(!f.takes_splice() && f.failure.is_none());
        assert_eq!(left_in(&r), b"abc");
        assert_eq!(f.write(b"abc"), None);
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
    }

    #[test]
    fn two_files_on_one_path_and_a_truncation_behind_our_back_keep_writing_at_the_real_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("both.log");
        // stdout and stderr of one program configured to the same file.
        let (mut out, mut err) = (RotatingFile::new(path.clone(), 0, 0), RotatingFile::new(path.clone(), 0, 0));
        assert_eq!(out.write(b"one\n"), None);
        let (r, _w) = pipe_with(b"two\n");
        assert_eq!(splice(&mut err, &r, 4).1, b"two\n");
        assert_eq!(out.write(b"three\n"), None);
        let (r, _w) = pipe_with(b"four\n");
        assert_eq!(splice(&mut out, &r, 5).1, b"four\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\nthree\nfour\n");
        // logrotate's copytruncate empties the file: the next bytes start at 0, no hole.
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
        assert_eq!(err.write(b"five\n"), None);
        assert_eq!(std::fs::read(&path).unwrap(), b"five\n");
    }

    #[test]
    fn a_child_log_writes_only_the_bytes_not_yet_in_its_file_and_keeps_them_all_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = ChildLog::new((Some(path.clone()), 0, 0, false));
        let (r, _w) = pipe_with(b"abc");
        assert_eq!(splice(log.file.as_mut().unwrap(), &r, 3).1, b"abc");
        assert_eq!(log.write(b"abcdef", 3, "c", None), None);
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdef");
        assert_eq!(log.recent.last(100), b"abcdef");
    }

    #[test]
    fn a_rotation_cut_short_by_a_kill_leaves_a_gap_that_the_next_one_closes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.log");
        // Killed mid-rotation: `.4` was moved to `.5` and `.3` not yet to `.4`.
        for (n, text) in [(1, "e"), (2, "d"), (3, "c"), (5, "b"), (6, "a")] {
            std::fs::write(backup(&path, n), text).unwrap();
        }
        std::fs::write(&path, "fffff").unwrap();
        let mut f = RotatingFile::new(path.clone(), 5, 6);
        assert_eq!(f.write(b"g"), None);
        let names: Vec<String> = (1..=6).map(|n| std::fs::read_to_string(backup(&path, n)).unwrap()).collect();
        assert_eq!(names, ["fffff", "e", "d", "c", "b", "a"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"g");
        // Full: the oldest goes, the rest shift.
        assert_eq!(f.write(b"hhhhi"), None);
        let names: Vec<String> = (1..=6).map(|n| std::fs::read_to_string(backup(&path, n)).unwrap()).collect();
        assert_eq!(names, ["ghhhh", "fffff", "e", "d", "c", "b"]);
        assert!(!backup(&path, 7).exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"i");
    }

    #[test]
    fn the_tail_keeps_the_last_bytes() {
        let mut t = Tail::default();
        t.push(&vec![b'a'; TAIL_BYTES]);
        t.push(b"xyz");
        assert_eq!(t.len(), TAIL_BYTES);
        assert_eq!(t.last(4), b"axyz");
    }
}
