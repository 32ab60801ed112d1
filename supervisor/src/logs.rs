//! The main log and the child log files. Writes what it is given; decides nothing.
//!
//! A log file that cannot be opened or written is reported once at ERROR, and the output that
//! would go there is dropped while its pipe keeps being drained, so a child never blocks on a
//! full pipe because of a log problem.

use crate::sys::local_time;
use common::config::raw::LogLevel;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

/// `2026-11-22 14:03:07,123`, local time, as supervisord stamps its log.
pub fn timestamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = local_time(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02},{ms:03}")
}

/// The daemon's main log (DESIGN §5), also copied to stderr in the foreground.
pub struct MainLog {
    path: PathBuf,
    file: Option<File>,
    level: LogLevel,
    to_stderr: bool,
}

impl MainLog {
    /// Opens `path` for appending; a failure is reported on stderr and the log continues there.
    pub fn open(path: PathBuf, level: LogLevel, to_stderr: bool) -> Self {
        let mut log = MainLog { path, file: None, level, to_stderr };
        log.reopen();
        log
    }

    /// Closes and reopens the file (SIGUSR2, for an external logrotate).
    pub fn reopen(&mut self) {
        self.file = match OpenOptions::new().append(true).create(true).open(&self.path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("taskmasterd: cannot open main log {}: {e}", self.path.display());
                None
            }
        };
    }

    /// Writes one line at `level` if the configured level lets it through.
    pub fn log(&mut self, level: LogLevel, msg: &str) {
        if level < self.level {
            return;
        }
        let line = format!("{} {} {msg}\n", timestamp(SystemTime::now()), level.as_str());
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_all(line.as_bytes()) {
                eprintln!("taskmasterd: cannot write main log {}: {e}", self.path.display());
                self.file = None;
            }
        }
        if self.to_stderr {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
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

/// One stream's log file of one process, opened on first output.
#[derive(Debug, Default)]
pub struct ChildLog {
    /// The file; `None` when the stream is discarded or redirected.
    pub path: Option<PathBuf>,
    file: Option<File>,
    /// Why the file cannot be written, once it failed (shown in `status`).
    pub failure: Option<String>,
}

impl ChildLog {
    /// A log writing to `path`.
    pub fn new(path: Option<PathBuf>) -> Self {
        ChildLog { path, file: None, failure: None }
    }

    /// Appends `bytes`. Returns the error text the first time writing fails (to be logged).
    pub fn write(&mut self, bytes: &[u8]) -> Option<String> {
        let path = self.path.as_ref()?;
        if self.failure.is_some() {
            return None;
        }
        if self.file.is_none() {
            match OpenOptions::new().append(true).create(true).open(path) {
                Ok(f) => self.file = Some(f),
                Err(e) => return self.fail(format!("cannot open {}: {e}", path.display())),
            }
        }
        let f = self.file.as_mut()?;
        match f.write_all(bytes) {
            Ok(()) => None,
            Err(e) => {
                let msg = format!("cannot write {}: {e}", path.display());
                self.fail(msg)
            }
        }
    }

    fn fail(&mut self, msg: String) -> Option<String> {
        self.file = None;
        self.failure = Some(msg.clone());
        Some(msg)
    }

    /// Closes the file so the next write reopens it (SIGUSR2), and forgets a past failure.
    pub fn reopen(&mut self) {
        self.file = None;
        self.failure = None;
    }
}
