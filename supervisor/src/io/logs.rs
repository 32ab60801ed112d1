//! The main log and the child log files. Writes what it is given; decides nothing.
//!
//! Files rotate at `maxbytes` into `.1` … `.N` (as supervisord's `logfile_maxbytes` and
//! `logfile_backups`): a write is split exactly at the limit, the files are renamed, the rest
//! goes to a fresh file, so no byte is lost, doubled or reordered. A file that cannot be opened
//! or written is reported once at ERROR and its output is dropped while the pipe keeps being
//! drained, so a child never blocks on a full pipe because of a log problem.

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
    size: u64,
    max_bytes: u64,
    backups: u32,
    /// Why the file cannot be written, once it failed (shown in `status`).
    pub failure: Option<String>,
}

impl RotatingFile {
    /// A file at `path`, opened on first write.
    pub fn new(path: PathBuf, max_bytes: u64, backups: u32) -> Self {
        RotatingFile { path, dir: std::cell::OnceCell::new(), file: None, size: 0, max_bytes, backups, failure: None }
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
            if let Err(e) = self.ensure_open() {
                let why = match crate::io::confine::outside_note(&self.path) {
                    Some(note) if e.kind() == io::ErrorKind::PermissionDenied => format!(" ({note})"),
                    _ => String::new(),
                };
                return self.fail(format!("cannot open {}: {e}{why}", self.path.display()));
            }
            if self.max_bytes > 0 && self.size >= self.max_bytes {
                if let Err(e) = self.rotate() {
                    let dir = self.path.parent().unwrap_or(Path::new("/")).display().to_string();
                    return self.fail(format!(
                        "cannot rotate {}: {e} (the supervisor's user needs write access to {dir})",
                        self.path.display()
                    ));
                }
                continue;
            }
            let room = if self.max_bytes > 0 { (self.max_bytes - self.size) as usize } else { bytes.len() };
            let n = room.min(bytes.len());
            let f = self.file.as_mut()?;
            if let Err(e) = f.write_all(&bytes[..n]) {
                return self.fail(format!("cannot write {}: {e}", self.path.display()));
            }
            self.size += n as u64;
            bytes = &bytes[n..];
        }
        None
    }

    fn ensure_open(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            let f = self.open_in_dir(&self.name(0), OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT)?;
            self.size = f.metadata()?.len();
            self.file = Some(f);
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.backups == 0 {
            if let Some(f) = &self.file {
                f.set_len(0)?;
            }
            self.size = 0;
            return Ok(());
        }
        self.file = None;
        for n in (0..self.backups).rev() {
            let (from, to) = (self.name(n), self.name(n + 1));
            let dir = self.dir()?;
            match nix::fcntl::renameat(dir, from.as_os_str(), dir, to.as_os_str()) {
                Err(nix::errno::Errno::ENOENT) if n > 0 => {}
                other => other?,
            }
        }
        self.ensure_open()
    }

    fn fail(&mut self, msg: String) -> Option<String> {
        self.file = None;
        self.failure = Some(msg.clone());
        Some(msg)
    }

    /// Closes the file so the next write reopens it by name (SIGUSR2), and forgets a failure.
    pub fn reopen(&mut self) {
        self.file = None;
        self.failure = None;
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
    partial: Vec<u8>,
}

impl ChildLog {
    /// A stream logged to `path` (rotating as given), or only kept in memory when `None`.
    pub fn new(settings: ChildLogSettings) -> Self {
        let (path, max_bytes, backups, syslog) = settings.clone();
        ChildLog {
            settings,
            file: path.map(|p| RotatingFile::new(p, max_bytes, backups)),
            recent: Tail::default(),
            syslog,
            partial: Vec::new(),
        }
    }

    /// Why the file cannot be written, if it failed.
    pub fn failure(&self) -> Option<&str> {
        self.file.as_ref().and_then(|f| f.failure.as_deref())
    }

    /// Records output: file, memory, and (when enabled) complete lines to `syslog`. Returns an
    /// error text to log, the first time the file fails.
    pub fn write(&mut self, bytes: &[u8], tag: &str, syslog: Option<&mut Syslog>) -> Option<String> {
        self.recent.push(bytes);
        if let (true, Some(s)) = (self.syslog, syslog) {
            self.partial.extend_from_slice(bytes);
            while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                if let Some(e) = s.send(LogLevel::Info, Some(tag), &text) {
                    return Some(e);
                }
            }
            if self.partial.len() > 8192 {
                let text = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                s.send(LogLevel::Info, Some(tag), &text);
            }
        }
        self.file.as_mut().and_then(|f| f.write(bytes))
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

    #[test]
    fn the_tail_keeps_the_last_bytes() {
        let mut t = Tail::default();
        t.push(&vec![b'a'; TAIL_BYTES]);
        t.push(b"xyz");
        assert_eq!(t.len(), TAIL_BYTES);
        assert_eq!(t.last(4), b"axyz");
    }
}
