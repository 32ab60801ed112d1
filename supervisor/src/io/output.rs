//! Program output, the edge's alone: each process's logs, the last line of its error stream,
//! its PTY (terminal model and master) or stdin pipe, and the pipes being read. The core never
//! sees these bytes; it says which process exists ([`Outputs::configure`]), whose fds a spawn
//! brought ([`Outputs::bind`]) and when a process is gone ([`Outputs::forget`]).

use crate::core::effects::StatusRow;
use crate::core::ids::{Slot, SpawnId};
use crate::core::state::ProcessState;
use crate::io::base::{pipe_key, Io};
use crate::io::control::admission::Throttle;
use crate::io::lastline::LastLine;
use crate::io::logs::{ChildLog, Syslog};
use crate::io::pty::Pty;
use crate::sys::Source;
use common::config::{Program, Stream, SyslogTarget};
use common::proto::control::ProcessInfo;
use common::proto::spawn::{ExitStatus, FdSet};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

/// Bytes read from a pipe at a time (DESIGN §9: 64 KiB reads).
pub const READ_SIZE: usize = 64 * 1024;
/// Reads of a busy pipe per wakeup before the loop serves the others (1 MiB).
pub const READS_PER_WAKEUP: usize = 16;
/// A PTY's window size until a client attaches (rows, cols): the spawner opens it so.
const DEFAULT_PTY_SIZE: (u16, u16) = (24, 80);

/// Sets `O_NONBLOCK`.
///
/// # Errors
/// The errno of `fcntl`.
pub fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// One process's output side.
pub struct Output {
    /// Its program's config.
    pub program: Rc<Program>,
    /// `web:0`.
    pub name: String,
    /// stdout and stderr logs.
    pub logs: [ChildLog; 2],
    /// The last line of the live (or last) child's error stream.
    pub err_line: LastLine,
    /// The PTY of a live `pty: true` child.
    pub pty: Option<Pty>,
    /// Write end of the live child's stdin (non-blocking).
    pub stdin: Option<File>,
    /// The exit status to send attached clients once the last output is read.
    pub pending_exit: Option<i32>,
}

/// What a read of a pipe gave.
pub enum ReadOutcome {
    /// `n` bytes of `slot`'s `stream` are in [`Outputs::chunk`].
    Chunk(Slot, Stream, usize),
    /// Nothing more for now.
    Idle,
    /// The pipe closed; attached clients of the slot get this exit status, if known.
    Closed(Option<(Slot, i32)>),
}

/// Every process's output side, by slot.
pub struct Outputs {
    /// Boxed: an `Output` is over 1 KiB and a map keeps spare buckets, so a thousand quiet
    /// programs would otherwise cost the spare buckets' size in full (bench: daemon PSS).
    by_slot: HashMap<Slot, Box<Output>>,
    pipes: HashMap<usize, (Slot, Stream)>,
    by_spawn: HashMap<SpawnId, Slot>,
    childlogdir: PathBuf,
    program_syslog_target: SyslogTarget,
    program_syslog: Option<Syslog>,
    program_syslog_failed: bool,
    /// One log line per process per interval for input it does not take.
    input_log: Throttle,
    buf: Vec<u8>,
}

impl Outputs {
    /// No process yet; child logs go under `childlogdir`.
    pub fn new(childlogdir: PathBuf, program_syslog: SyslogTarget) -> Self {
        Outputs {
            by_slot: HashMap::new(),
            pipes: HashMap::new(),
            by_spawn: HashMap::new(),
            childlogdir,
            program_syslog_target: program_syslog,
            program_syslog: None,
            program_syslog_failed: false,
            input_log: Throttle::default(),
            buf: vec![0; READ_SIZE],
        }
    }

    /// A process exists with this config: its logs follow it (reopened only if their settings
    /// changed).
    pub fn configure(&mut self, slot: Slot, program: Rc<Program>, instance: u32) {
        let o = self.by_slot.entry(slot).or_insert_with(|| {
            Box::new(Output {
                program: Rc::clone(&program),
                name: String::new(),
                logs: [ChildLog::default(), ChildLog::default()],
                err_line: LastLine::default(),
                pty: None,
                stdin: None,
                pending_exit: None,
            })
        });
        o.name = program.process_name(instance).to_string();
        for (idx, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            let s = program.stream(stream);
            let settings = (program.log_file(stream, instance, &self.childlogdir), s.maxbytes, s.backups, s.syslog);
            if o.logs[idx].settings != settings {
                o.logs[idx] = ChildLog::new(settings);
            }
        }
        o.program = program;
    }

    /// A process is gone: its logs close.
    pub fn forget(&mut self, slot: Slot) {
        self.by_slot.remove(&slot);
        self.by_spawn.retain(|_, s| *s != slot);
    }

    /// The output side of `slot`.
    pub fn get(&self, slot: Slot) -> Option<&Output> {
        self.by_slot.get(&slot).map(|o| &**o)
    }

    /// The output side of `slot`, to write to.
    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut Output> {
        self.by_slot.get_mut(&slot).map(|o| &mut **o)
    }

    /// Watches the fds a spawn brought for `slot` (`set` says which they are, in order).
    pub fn bind(&mut self, io: &mut Io, spawn_id: SpawnId, slot: Slot, set: FdSet, fds: Vec<OwnedFd>) {
        self.by_spawn.insert(spawn_id, slot);
        let Some(o) = self.by_slot.get_mut(&slot) else { return };
        // The error stream's last line starts empty with each child.
        o.err_line = LastLine::default();
        let mut it = fds.into_iter();
        if set.pty {
            // One fd, the master: the watcher reads output from it, a duplicate takes
            // keystrokes and window sizes.
            let master = it.next().and_then(|fd| {
                let writer = fd.try_clone().ok()?;
                set_nonblocking(&fd).ok()?;
                Some((fd, File::from(writer)))
            });
            if let Some((fd, writer)) = master {
                let key = pipe_key(spawn_id, Stream::Stdout);
                if io.w.insert(key, Source::Pipe(File::from(fd))).is_ok() {
                    self.pipes.insert(key, (slot, Stream::Stdout));
                }
                o.pty = Some(Pty::new(writer, DEFAULT_PTY_SIZE));
            }
        }
        if set.stdin && !set.pty {
            o.stdin = it.next().filter(|fd| set_nonblocking(fd).is_ok()).map(File::from);
        }
        for (present, stream) in [(set.stdout, Stream::Stdout), (set.stderr, Stream::Stderr)] {
            if !present || set.pty {
                continue;
            }
            let Some(fd) = it.next() else { continue };
            let key = pipe_key(spawn_id, stream);
            if set_nonblocking(&fd).is_ok() && io.w.insert(key, Source::Pipe(File::from(fd))).is_ok() {
                self.pipes.insert(key, (slot, stream));
            }
        }
    }

    /// A child was reaped: its stdin and PTY close. Returns its slot and, when its output pipe
    /// is already closed, the status to end attached clients with now (else when the pipe is
    /// drained).
    pub fn exited(&mut self, spawn_id: SpawnId, status: ExitStatus) -> Option<(Slot, Option<i32>)> {
        let slot = self.by_spawn.remove(&spawn_id)?;
        let code = crate::io::pty::exit_code(status);
        let reading = self.pipes.values().any(|(s, st)| *s == slot && *st == Stream::Stdout);
        let o = self.by_slot.get_mut(&slot)?;
        o.stdin = None;
        o.pty = None;
        if reading {
            o.pending_exit = Some(code);
            Some((slot, None))
        } else {
            Some((slot, Some(code)))
        }
    }

    /// Whether `key` is a pipe being read.
    pub fn is_pipe(&self, key: usize) -> bool {
        self.pipes.contains_key(&key)
    }

    /// Reads one chunk of the pipe at `key` and records it (log, last line, terminal model).
    pub fn read(&mut self, io: &mut Io, key: usize) -> ReadOutcome {
        let Some(&(slot, stream)) = self.pipes.get(&key) else { return ReadOutcome::Idle };
        loop {
            let Some(Source::Pipe(f)) = io.w.get_mut(key) else { return ReadOutcome::Idle };
            let n = match f.read(&mut self.buf) {
                Ok(0) => return ReadOutcome::Closed(self.close_pipe(io, key)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Idle,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Closed(self.close_pipe(io, key)), // EIO: a PTY whose child has gone
            };
            self.record(io, slot, stream, n);
            return ReadOutcome::Chunk(slot, stream, n);
        }
    }

    /// The bytes of the last chunk read.
    pub fn chunk(&self, n: usize) -> &[u8] {
        &self.buf[..n]
    }

    fn record(&mut self, io: &mut Io, slot: Slot, stream: Stream, n: usize) {
        let idx = usize::from(stream == Stream::Stderr);
        let wants_syslog = self.by_slot.get(&slot).is_some_and(|o| o.logs[idx].syslog);
        if wants_syslog && self.program_syslog.is_none() && !self.program_syslog_failed {
            match Syslog::connect(&self.program_syslog_target) {
                Ok(s) => self.program_syslog = Some(s),
                Err(e) => {
                    self.program_syslog_failed = true;
                    io.log.error(&format!("stdout_syslog/stderr_syslog: {e}"));
                }
            }
        }
        let Some(o) = self.by_slot.get_mut(&slot) else { return };
        let bytes = &self.buf[..n];
        // The error stream's lines are kept for `status`: stderr, or stdout when it carries
        // stderr too (`redirect_stderr`, or a PTY, whose one stream is logged as stdout).
        if stream == Stream::Stderr || o.program.redirect_stderr || o.program.pty {
            o.err_line.feed(bytes);
        }
        if let Some(pty) = &mut o.pty {
            pty.record(bytes);
        }
        // Borrowed, not copied: this runs for every chunk a program writes.
        if let Some(err) = o.logs[idx].write(bytes, &o.name, self.program_syslog.as_mut()) {
            let msg =
                format!("'{}' {}: {err}; its output is dropped until SIGUSR2 reopens the log", o.name, stream.as_str());
            io.log.error(&msg);
        }
    }

    fn close_pipe(&mut self, io: &mut Io, key: usize) -> Option<(Slot, i32)> {
        let owner = self.pipes.remove(&key);
        drop(io.w.remove(key));
        if let Some((slot, Stream::Stdout)) = owner {
            let status = self.by_slot.get_mut(&slot).and_then(|o| o.pending_exit.take())?;
            return Some((slot, status));
        }
        None
    }

    /// Reopens every child log (SIGUSR2).
    pub fn reopen(&mut self) {
        for o in self.by_slot.values_mut() {
            for l in o.logs.iter_mut().filter_map(|l| l.file.as_mut()) {
                l.reopen();
            }
        }
    }

    /// Keystrokes for the program: to the PTY master, or the stdin pipe. A full terminal or pipe
    /// drops the excess (logged), so the loop never blocks.
    pub fn write_input(&mut self, io: &mut Io, slot: Slot, bytes: &[u8]) {
        let Some(o) = self.by_slot.get_mut(&slot) else { return };
        let result = match (&o.pty, &o.stdin) {
            (Some(pty), _) => (&pty.master).write(bytes),
            (None, Some(stdin)) => (&*stdin).write(bytes),
            (None, None) => Ok(bytes.len()),
        };
        let why = match result {
            Ok(n) if n == bytes.len() => return,
            Ok(n) => format!("is not reading its input: {} bytes dropped", bytes.len() - n),
            Err(e) => format!("input not delivered: {e}"),
        };
        // One line per process per interval: a client typing into a program that does not read
        // must not flood the main log.
        if let Some(left_out) = self.input_log.allow(slot.0, std::time::Instant::now()) {
            let more = if left_out > 0 { format!(" ({left_out} more not logged)") } else { String::new() };
            io.log.warn(&format!("'{}' {why}{more}", o.name));
        }
    }

    /// One row of `status`: the core's row, with the last error line, the log failures and
    /// the date, which the edge alone knows.
    pub fn render(&self, row: &StatusRow, now: Instant, wall: SystemTime) -> ProcessInfo {
        let o = self.by_slot.get(&row.slot);
        let pid = row.pid.map(|p| p.as_raw());
        let mut description = match (row.state, pid) {
            (ProcessState::Running, Some(pid)) => format!("pid {pid}, uptime {}", format_uptime(row.uptime_s)),
            (ProcessState::Starting | ProcessState::Stopping, Some(pid)) => format!("pid {pid}"),
            (ProcessState::Stopped, _) if !row.ever_started => "Not started".into(),
            (ProcessState::Stopped | ProcessState::Exited, _) => {
                let ago = now.saturating_duration_since(row.changed_at);
                format_date(wall.checked_sub(ago).unwrap_or(wall))
            }
            (ProcessState::Fatal | ProcessState::Backoff, _) => row.spawnerr.clone().unwrap_or_else(|| {
                // differs from supervisord: it only points at the log.
                match o.and_then(|o| o.err_line.text()) {
                    Some(line) => format!("Exited too quickly: {line}"),
                    None => "Exited too quickly (process log may have details)".to_owned(),
                }
            }),
            _ => String::new(),
        };
        if row.pty && pid.is_some() {
            description.push_str(" (pty)"); // differs from supervisorctl: fg can attach to it
        }
        for f in o.into_iter().flat_map(|o| o.logs.iter().filter_map(|l| l.failure())) {
            description.push_str(&format!(" (log: {f})"));
        }
        ProcessInfo {
            name: row.name.clone(),
            program: row.program.clone(),
            instance: row.instance,
            state: row.state.as_str().into(),
            pid,
            uptime_s: row.uptime_s,
            exitstatus: match row.last_exit {
                Some(ExitStatus::Code(c)) => Some(c),
                _ => None,
            },
            description: description.trim().to_owned(),
            pty: row.pty,
        }
    }
}

/// `0:01:07`, or `2 days, 3:04:05`, as supervisorctl prints uptime.
pub fn format_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match d {
        0 => format!("{h}:{m:02}:{s:02}"),
        1 => format!("1 day, {h}:{m:02}:{s:02}"),
        _ => format!("{d} days, {h}:{m:02}:{s:02}"),
    }
}

/// `Nov 22 02:03 PM`, as supervisorctl prints when a process stopped or exited.
pub fn format_date(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (_, mo, d, h, mi, _, _) = crate::sys::local_time(t);
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!("{} {d:02} {h12:02}:{mi:02} {ampm}", MONTHS[(mo as usize).saturating_sub(1).min(11)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_printed_as_supervisorctl_does() {
        assert_eq!(format_uptime(67), "0:01:07");
        assert_eq!(format_uptime(3 * 3600 + 4 * 60 + 5), "3:04:05");
        assert_eq!(format_uptime(2 * 86400 + 5), "2 days, 0:00:05");
    }
}
