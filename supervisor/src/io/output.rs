//! Program output, the edge's alone: each process's logs, the last line of its error stream,
//! its PTY (terminal model and master) or stdin pipe, and the pipes being read. The core never
//! sees these bytes; it says which process exists ([`Outputs::configure`]), whose fds a spawn
//! brought ([`Outputs::bind`]) and when a process is gone ([`Outputs::forget`]).
//!
//! **How bytes move (issue 16: no byte lost or doubled when the supervisor is killed).** A
//! program's pipe is read a chunk (at most [`READ_SIZE`]) at a time. When its stream has a log
//! file that takes writes, the chunk never passes through our memory on its way to the file:
//! 1. `splice(2)` moves the bytes waiting in the program's pipe into the log file
//!    ([`RotatingFile::splice_from`], which rotates at `maxbytes` as a write does). The kernel
//!    consumes from the pipe only the bytes that reached the file;
//! 2. when anything needs the bytes — a `tail -f` follower or an attached client, the last
//!    stderr line, a terminal model, syslog lines — each piece is read back from the file
//!    (`pread`, from the page cache) into the buffer, and the recent tail in memory gets it too.
//!    When nothing does (a program's stdout logged to a file, nobody watching: the common
//!    case), nothing is read back: the bytes never enter the supervisor, and the memory tail
//!    starts over after that gap (`tail` then reads the file). The copy is exactly the bytes that reached
//!    the file, by construction: a short splice (the file filled up or failed) hands out those
//!    bytes and no others, and the rest stays in the pipe for the next read.
//!
//! So a supervisor killed at any instant (SIGKILL, the OOM killer) leaves every byte either in
//! the pipe, which the spawner keeps open and the next supervisor drains first, or in the file,
//! which that supervisor appends to at its real size: the file loses and doubles nothing. What a
//! kill can cost is the copy of the chunk in flight (up to 64 KiB): followers, attached clients,
//! syslog and the in-memory tail may miss it.
//!
//! Why not `tee(2)` into a scratch pipe for the copy, then splice: measured on tmpfs (1 GiB
//! through a pipe), tee + splice + read cost the reader about 15% more CPU than splice + pread
//! (the pages the pipes share cannot be recycled by the writer, and both pipes' locks are
//! taken), and reading back gives the file's bytes themselves. Against `read` + `write`, splice
//! costs about 15% more in the reader: it holds the pipe's lock while it writes the file.
//!
//! The other streams are read with `read(2)` into the buffer and then written, as before: a
//! stream without a file (`NONE`, syslog only), a file that failed (reported once, its bytes
//! dropped until SIGUSR2), refused `splice` or cannot be read back (opened write-only; reported
//! once).
//!
//! A PTY master is not a pipe, so its output takes one more step: `splice(2)` moves it from the
//! terminal into a holding pipe the spawner created with the PTY and keeps open (`FdSet::hold`),
//! and the holding pipe is then moved on as any pipe, what waits in it first. A kill leaves the
//! bytes in the terminal, the holding pipe or the file; the next supervisor drains the holding
//! pipe before the terminal. Only a PTY handed over without one (never, from this spawner) is
//! read and written.
//!
//! [`RotatingFile::splice_from`]: crate::io::logs::RotatingFile::splice_from

use crate::core::effects::StatusRow;
use crate::core::ids::{Slot, SpawnId};
use crate::core::state::ProcessState;
use crate::io::base::{pipe_key, Io};
use crate::io::control::admission::Throttle;
use crate::io::lastline::LastLine;
use crate::io::logs::{ChildLog, FileTrouble, PipeEnd, Spliced, Syslog};
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
/// What a log line says when output is copied through our memory instead of moved by the kernel.
const NO_SPLICE: &str = "output goes to the log files through read(2) and write(2), so a supervisor killed \
                         meanwhile may lose the chunk being copied";

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
    /// The PTY of a live `pty: true` child; boxed (its terminal model is over half a KiB), so
    /// that a thousand pipe programs do not each carry the room for one.
    pub pty: Option<Box<Pty>>,
    /// Write end of the live child's stdin (non-blocking).
    pub stdin: Option<File>,
    /// The exit status to send attached clients once the last output is read.
    pub pending_exit: Option<i32>,
}

/// What a read of a pipe gave.
pub enum ReadOutcome {
    /// `n` bytes of `slot`'s `stream` are in [`Outputs::chunk`].
    Chunk(Slot, Stream, usize),
    /// `n` bytes went into their log file, and nobody watches them.
    Filed(usize),
    /// Nothing more for now.
    Idle,
    /// The pipe closed; attached clients of the slot get this exit status, if known.
    Closed(Option<(Slot, i32)>),
}

/// A pipe being read: whose stream it carries.
#[derive(Clone)]
struct Watched {
    slot: Slot,
    stream: Stream,
    /// Read with `read(2)` only: a PTY master without a holding pipe.
    read_only: bool,
    /// A PTY master's holding pipe: the terminal's output is spliced into it, then moved on
    /// from it as from any pipe (module doc).
    hold: Option<Rc<Hold>>,
}

/// The holding pipe of a PTY program (the spawner keeps its copies of both ends).
struct Hold {
    r: File,
    w: File,
}

/// Where a chunk is taken from: the pipe the watcher holds at a key, or a holding pipe.
enum Origin<'h> {
    Watcher(usize),
    Hold(&'h File),
}

/// The pipe `from` names.
fn origin<'a>(io: &'a mut Io, from: &Origin<'a>) -> Option<&'a File> {
    match from {
        Origin::Watcher(key) => match io.w.get_mut(*key) {
            Some(Source::Pipe(pipe)) => Some(&*pipe),
            _ => None,
        },
        Origin::Hold(f) => Some(f),
    }
}

/// What one move from a pipe gave.
enum Pumped {
    /// `n` bytes are in the buffer.
    Chunk(usize),
    /// `n` bytes went into the log file and nobody needs them from the buffer.
    Filed(usize),
    /// Nothing waits now.
    Empty,
    /// No writer is left and nothing waits.
    Closed,
}

/// Every process's output side, by slot.
pub struct Outputs {
    /// Boxed: an `Output` is over 1 KiB and a map keeps spare buckets, so a thousand quiet
    /// programs would otherwise cost the spare buckets' size in full (bench: daemon PSS).
    by_slot: HashMap<Slot, Box<Output>>,
    pipes: HashMap<usize, Watched>,
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

    /// Whether a log of `slot` is outside the supervisor's confinement (a re-read named it):
    /// the path, for the supervisor to be replaced by one confined to it.
    pub fn outside(&self, slot: Slot) -> Option<&std::path::Path> {
        let o = self.by_slot.get(&slot)?;
        o.logs.iter().find(|l| l.outside).and_then(|l| l.file.as_ref()).map(|f| f.path.as_path())
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
            // The master: the watcher polls it, a duplicate takes keystrokes and window sizes;
            // then the holding pipe its output moves through.
            let master = it.next().and_then(|fd| {
                let writer = fd.try_clone().ok()?;
                set_nonblocking(&fd).ok()?;
                Some((fd, File::from(writer)))
            });
            let hold = match (set.hold, it.next(), it.next()) {
                (true, Some(r), Some(w)) if set_nonblocking(&r).is_ok() && set_nonblocking(&w).is_ok() => {
                    Some(Rc::new(Hold { r: File::from(r), w: File::from(w) }))
                }
                _ => None,
            };
            if let Some((fd, writer)) = master {
                let key = pipe_key(spawn_id, Stream::Stdout);
                if io.w.insert(key, Source::Pipe(File::from(fd))).is_ok() {
                    let read_only = hold.is_none();
                    self.pipes.insert(key, Watched { slot, stream: Stream::Stdout, read_only, hold });
                }
                o.pty = Some(Box::new(Pty::new(writer, DEFAULT_PTY_SIZE)));
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
                self.pipes.insert(key, Watched { slot, stream, read_only: false, hold: None });
            }
        }
    }

    /// A child was reaped: its stdin and PTY close. Returns its slot and, when its output pipe
    /// is already closed, the status to end attached clients with now (else when the pipe is
    /// drained).
    pub fn exited(&mut self, spawn_id: SpawnId, status: ExitStatus) -> Option<(Slot, Option<i32>)> {
        let slot = self.by_spawn.remove(&spawn_id)?;
        let code = crate::io::pty::exit_code(status);
        let reading = self.pipes.values().any(|w| w.slot == slot && w.stream == Stream::Stdout);
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

    /// Reads one chunk of the pipe at `key` and records it (log, last line, terminal model): moved
    /// by the kernel into its log file when it has one, else read and written (module doc). A
    /// PTY master with a holding pipe: what waits in the holding pipe first, then the terminal's
    /// output spliced into it and moved on from there.
    ///
    /// `watched(slot, stream)` says whether a client follows or is attached: only then, or when
    /// the edge itself needs them (the last error line, a terminal model, syslog), are bytes
    /// that went into a file read back; else the chunk is [`ReadOutcome::Filed`].
    pub fn read(&mut self, io: &mut Io, key: usize, watched: impl Fn(Slot, Stream) -> bool) -> ReadOutcome {
        let Some(Watched { slot, stream, read_only, hold }) = self.pipes.get(&key).cloned() else {
            return ReadOutcome::Idle;
        };
        let idx = usize::from(stream == Stream::Stderr);
        if self.by_slot.get(&slot).is_some_and(|o| o.logs[idx].outside) {
            // Left in the pipe (the spawner keeps it) for the supervisor that replaces this one,
            // confined to the new directory; not polled meanwhile.
            let _ = io.w.interest(key, false, false);
            return ReadOutcome::Idle;
        }
        let needed = self.by_slot.get(&slot).is_some_and(|o| {
            stream == Stream::Stderr || o.program.redirect_stderr || o.program.pty || o.logs[idx].syslog
        });
        let read_back = needed || watched(slot, stream);
        let Some(hold) = hold else {
            return match self.pump(io, slot, stream, Origin::Watcher(key), read_only, read_back) {
                Pumped::Chunk(n) => ReadOutcome::Chunk(slot, stream, n),
                Pumped::Filed(n) => ReadOutcome::Filed(n),
                Pumped::Empty => ReadOutcome::Idle,
                Pumped::Closed => ReadOutcome::Closed(self.close_pipe(io, key)),
            };
        };
        loop {
            // Never `Closed`: this side holds the write end.
            match self.pump(io, slot, stream, Origin::Hold(&hold.r), false, read_back) {
                Pumped::Chunk(n) => return ReadOutcome::Chunk(slot, stream, n),
                Pumped::Filed(n) => return ReadOutcome::Filed(n),
                Pumped::Empty | Pumped::Closed => {}
            }
            let Some(Source::Pipe(master)) = io.w.get_mut(key) else { return ReadOutcome::Idle };
            let flags = nix::fcntl::SpliceFFlags::SPLICE_F_NONBLOCK;
            match nix::fcntl::splice(&*master, None, &hold.w, None, READ_SIZE, flags) {
                Ok(0) => return ReadOutcome::Closed(self.close_pipe(io, key)),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return ReadOutcome::Idle,
                // EIO: the terminal's last user has gone (the holding pipe is drained above).
                Err(_) => return ReadOutcome::Closed(self.close_pipe(io, key)),
            }
        }
    }

    /// Moves one chunk from `from` for `slot`'s `stream` and records it.
    fn pump(
        &mut self,
        io: &mut Io,
        slot: Slot,
        stream: Stream,
        from: Origin<'_>,
        read_only: bool,
        read_back: bool,
    ) -> Pumped {
        let Some(pipe) = origin(io, &from) else { return Pumped::Empty };
        let idx = usize::from(stream == Stream::Stderr);
        let o = self.by_slot.get_mut(&slot);
        let file = o.and_then(|o| o.logs[idx].file.as_mut()).filter(|f| f.takes_splice());
        if let (false, Some(file)) = (read_only, file) {
            let Spliced { moved, copied, end, trouble } = file.splice_from(pipe.as_fd(), &mut self.buf, read_back);
            if let Some(t) = trouble {
                self.file_trouble(io, slot, stream, t);
            }
            if copied > 0 {
                self.record(io, slot, stream, copied, copied);
                return Pumped::Chunk(copied);
            }
            if moved > 0 && !read_back {
                // Bytes went to the file only: the in-memory tail would now have a hole, so it
                // starts again (a `tail` reads the file meanwhile).
                if let Some(o) = self.by_slot.get_mut(&slot) {
                    o.logs[usize::from(stream == Stream::Stderr)].recent.clear();
                }
                return Pumped::Filed(moved);
            }
            match end {
                Some(PipeEnd::Empty) if moved == 0 => return Pumped::Empty,
                Some(PipeEnd::Closed) if moved == 0 => return Pumped::Closed,
                // The file stopped taking bytes before any moved (or moved bytes could not be
                // read back: they are in the file only): read on.
                _ => {}
            }
        }
        let Some(pipe) = origin(io, &from) else { return Pumped::Empty };
        loop {
            let n = match (&*pipe).read(&mut self.buf) {
                Ok(0) => return Pumped::Closed,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Pumped::Empty,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Pumped::Closed, // EIO: a PTY whose child has gone
            };
            self.record(io, slot, stream, n, 0);
            return Pumped::Chunk(n);
        }
    }

    /// Logs why a log file did not take a chunk.
    fn file_trouble(&self, io: &mut Io, slot: Slot, stream: Stream, trouble: FileTrouble) {
        let name = self.by_slot.get(&slot).map_or("?", |o| o.name.as_str());
        match trouble {
            FileTrouble::Failed(err) => io.log.error(&format!(
                "'{name}' {}: {err}; its output is dropped until SIGUSR2 reopens the log",
                stream.as_str()
            )),
            FileTrouble::NoSplice(err) => io.log.warn(&format!("'{name}' {}: {err}; its {NO_SPLICE}", stream.as_str())),
        }
    }

    /// The bytes of the last chunk read.
    pub fn chunk(&self, n: usize) -> &[u8] {
        &self.buf[..n]
    }

    /// Hands the chunk of `n` bytes in the buffer, whose first `filed` are in the log file
    /// already, to the file (the rest), the memory tail, syslog, the last line and the terminal
    /// model.
    fn record(&mut self, io: &mut Io, slot: Slot, stream: Stream, n: usize, filed: usize) {
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
        if let Some(err) = o.logs[idx].write(bytes, filed, &o.name, self.program_syslog.as_mut()) {
            let msg =
                format!("'{}' {}: {err}; its output is dropped until SIGUSR2 reopens the log", o.name, stream.as_str());
            io.log.error(&msg);
        }
    }

    fn close_pipe(&mut self, io: &mut Io, key: usize) -> Option<(Slot, i32)> {
        let owner = self.pipes.remove(&key).map(|w| (w.slot, w.stream));
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
    use crate::io::logs::MainLog;
    use crate::sys::Watcher;
    use common::config::raw::LogLevel;
    use common::config::{load::load_str, Context};
    use polling::Events;
    use std::path::Path;
    use std::time::Duration;

    const SLOT: Slot = Slot(1);
    const SPAWN: SpawnId = SpawnId(7);

    /// The edge's output side for one program `p` (its stream keys as `extra` says), reading
    /// `pipe` as its stdout, with its main log in `dir`.
    struct Rig {
        outputs: Outputs,
        io: Io,
        key: usize,
        events: Events,
        dir: PathBuf,
    }

    impl Rig {
        /// Outputs and watcher made as `event_loop::start` makes them; `before_bind` runs in
        /// between (the pump confines itself there).
        fn new(dir: &Path, extra: &str, pipe: OwnedFd, before_bind: impl FnOnce()) -> Rig {
            let ctx = Context { is_root: false, current_user: None, check_users: false, trusted_uid: None };
            let text = format!("programs:\n  p:\n    command: /bin/true\n{extra}");
            let program = load_str(Path::new("/t.yaml"), &text, &ctx).unwrap().programs.remove(0);
            let log = MainLog::open(dir.join("main.log"), 0, 0, LogLevel::Info, false, false);
            let mut io = Io { w: Watcher::new().unwrap(), log };
            let mut outputs = Outputs::new(dir.to_path_buf(), SyslogTarget::default());
            before_bind();
            outputs.configure(SLOT, Rc::new(program), 0);
            let set = FdSet { stdin: false, stdout: true, stderr: false, pty: false, hold: false };
            outputs.bind(&mut io, SPAWN, SLOT, set, vec![pipe]);
            Rig { outputs, io, key: pipe_key(SPAWN, Stream::Stdout), events: Events::new(), dir: dir.to_path_buf() }
        }

        /// Reads until the pipe closes, waiting on the watcher when it is empty; returns the
        /// copy every chunk handed out (what followers and clients get).
        fn drain(&mut self) -> Vec<u8> {
            let mut copy = Vec::new();
            loop {
                match self.outputs.read(&mut self.io, self.key, |_, _| true) {
                    ReadOutcome::Chunk(slot, stream, n) => {
                        assert_eq!((slot, stream), (SLOT, Stream::Stdout));
                        copy.extend_from_slice(self.outputs.chunk(n));
                    }
                    ReadOutcome::Idle => {
                        self.events.clear();
                        self.io.w.wait(&mut self.events, Some(Duration::from_secs(30))).unwrap();
                        assert!(!self.events.is_empty(), "the pipe stayed silent for 30 s");
                    }
                    ReadOutcome::Filed(_) => panic!("watched: every chunk is read back"),
                    ReadOutcome::Closed(_) => return copy,
                }
            }
        }

        fn main_log(&self) -> String {
            std::fs::read_to_string(self.dir.join("main.log")).unwrap_or_default()
        }
    }

    /// A pipe: non-blocking read end (the rig sets it), blocking write end.
    fn pipe() -> (OwnedFd, File) {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        (r, File::from(w))
    }

    /// `00000001\n` … `N\n`: eight digits and a newline a line.
    fn numbered(lines: u64) -> Vec<u8> {
        (1..=lines).flat_map(|i| format!("{i:08}\n").into_bytes()).collect()
    }

    /// `name.N` … `name.1`, `name` in `dir`, concatenated (oldest first), and the numbers and
    /// sizes of the backups (newest first).
    fn log_and_backups(dir: &Path, name: &str) -> (Vec<u8>, Vec<(u32, u64)>) {
        let backups: Vec<(u32, u64)> = (1..1000)
            .filter_map(|n| std::fs::metadata(dir.join(format!("{name}.{n}"))).ok().map(|m| (n, m.len())))
            .collect();
        let mut all = Vec::new();
        for (n, _) in backups.iter().rev() {
            all.extend(std::fs::read(dir.join(format!("{name}.{n}"))).unwrap());
        }
        all.extend(std::fs::read(dir.join(name)).unwrap_or_default());
        (all, backups)
    }

    /// Whether the backups are numbered 1…N with no gap, each `size` bytes.
    fn complete(backups: &[(u32, u64)], size: u64) -> bool {
        backups.iter().zip(1..).all(|(&(n, len), k)| n == k && len == size)
    }

    #[test]
    fn a_stream_nobody_watches_is_only_moved_into_its_file_and_tail_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (r, mut w) = pipe();
        let extra =
            format!("    stdout_logfile: {}\n    stdout_logfile_maxbytes: 0\n", dir.path().join("p.log").display());
        let mut rig = Rig::new(dir.path(), &extra, r, || {});
        let data = numbered(10_000);
        w.write_all(&data[..45_000]).unwrap();
        // Watched: read back, kept in memory.
        let ReadOutcome::Chunk(_, _, n) = rig.outputs.read(&mut rig.io, rig.key, |_, _| true) else {
            panic!("no chunk")
        };
        assert_eq!(n, 45_000);
        w.write_all(&data[45_000..]).unwrap();
        // Nobody watches: moved only, and the memory tail starts over rather than keep a hole.
        let outcome = rig.outputs.read(&mut rig.io, rig.key, |_, _| false);
        assert!(matches!(outcome, ReadOutcome::Filed(n) if n == data.len() - 45_000));
        assert_eq!(std::fs::read(dir.path().join("p.log")).unwrap(), data);
        let log = &rig.outputs.get(SLOT).unwrap().logs[0];
        assert!(log.recent.is_empty());
        assert_eq!(log.tail(100), data[data.len() - 100..].to_vec(), "tail reads the file");
    }

    #[test]
    fn every_byte_reaches_the_file_in_order_rotating_at_the_exact_limit_and_the_copy_equals_it() {
        let dir = tempfile::tempdir().unwrap();
        let (r, mut w) = pipe();
        let extra =
            "    stdout_logfile: %(here)s/x\n    stdout_logfile_maxbytes: 100000\n    stdout_logfile_backups: 60\n";
        let extra = extra.replace("%(here)s/x", &dir.path().join("p.log").display().to_string());
        let mut rig = Rig::new(dir.path(), &extra, r, || {});
        let data = numbered(300_000); // 2.7 MB: 27 rotations
        let sent = data.clone();
        let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
        let copy = rig.drain();
        writer.join().unwrap();
        assert!(copy == data, "the copy for followers differs from what the program wrote");
        let (logged, backups) = log_and_backups(dir.path(), "p.log");
        assert!(logged == data, "the log files differ from what the program wrote");
        assert_eq!(backups.len(), 26);
        assert!(complete(&backups, 100_000), "{backups:?}");
        // The kernel moved them: nothing fell back to read and write.
        let file = rig.outputs.get(SLOT).unwrap().logs[0].file.as_ref().unwrap();
        assert!(file.takes_splice());
        assert!(!rig.main_log().contains("read(2)"), "{}", rig.main_log());
    }

    #[test]
    fn an_empty_pipe_is_idle_and_a_closed_one_is_closed_with_or_without_a_file() {
        for extra in ["", "    stdout_logfile: NONE\n"] {
            let dir = tempfile::tempdir().unwrap();
            let (r, mut w) = pipe();
            let mut rig = Rig::new(dir.path(), extra, r, || {});
            assert!(matches!(rig.outputs.read(&mut rig.io, rig.key, |_, _| true), ReadOutcome::Idle), "{extra}");
            w.write_all(b"x\n").unwrap();
            let ReadOutcome::Chunk(_, _, n) = rig.outputs.read(&mut rig.io, rig.key, |_, _| true) else {
                panic!("no chunk")
            };
            assert_eq!(rig.outputs.chunk(n), b"x\n");
            assert!(matches!(rig.outputs.read(&mut rig.io, rig.key, |_, _| true), ReadOutcome::Idle));
            w.write_all(b"last").unwrap();
            drop(w);
            assert_eq!(rig.drain(), b"last");
            assert!(!rig.outputs.is_pipe(rig.key), "the closed pipe is no longer watched");
            let auto = dir.path().join("p-stdout.log");
            match extra {
                "" => assert_eq!(std::fs::read(&auto).unwrap(), b"x\nlast"),
                _ => assert!(!auto.exists()),
            }
        }
    }

    #[test]
    fn a_log_that_cannot_be_opened_still_drains_the_pipe_and_hands_out_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let (r, mut w) = pipe();
        let path = dir.path().join("missing/p.log");
        let mut rig = Rig::new(dir.path(), &format!("    stdout_logfile: {}\n", path.display()), r, || {});
        w.write_all(b"one\n").unwrap();
        let ReadOutcome::Chunk(_, _, n) = rig.outputs.read(&mut rig.io, rig.key, |_, _| true) else {
            panic!("no chunk")
        };
        assert_eq!(rig.outputs.chunk(n), b"one\n");
        w.write_all(b"two\n").unwrap();
        drop(w);
        assert_eq!(rig.drain(), b"two\n");
        let log = rig.main_log();
        assert_eq!(log.matches("cannot open").count(), 1, "{log}");
        assert!(log.contains("'p' stdout: cannot open") && log.contains("until SIGUSR2"), "{log}");
        assert!(!path.exists());
    }

    #[test]
    fn a_log_that_fails_mid_chunk_keeps_what_reached_it_and_the_copy_still_has_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let (r, mut w) = pipe();
        let path = dir.path().join("p.log");
        // The first rotation fails: a directory (not empty) stands where the backup goes.
        std::fs::create_dir_all(dir.path().join("p.log.1/in")).unwrap();
        let extra = format!(
            "    stdout_logfile: {}\n    stdout_logfile_maxbytes: 10\n    stdout_logfile_backups: 1\n",
            path.display()
        );
        let mut rig = Rig::new(dir.path(), &extra, r, || {});
        w.write_all(b"0123456789abcdefghijklmno").unwrap();
        drop(w);
        assert_eq!(rig.drain(), b"0123456789abcdefghijklmno", "the copy holds every byte, once");
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789", "the file holds what reached it, once");
        let log = rig.main_log();
        assert_eq!(log.matches("cannot rotate").count(), 1, "{log}");
    }

    /// Set to the log directory in the environment of a re-executed test binary that pumps its
    /// stdin into a log as the supervisor does.
    const PUMP: &str = "TASKMASTER_PUMP_DIR";
    const PUMP_TEST: &str =
        "io::output::tests::a_supervisor_killed_at_any_instant_neither_loses_nor_doubles_a_byte_of_its_log";
    const PUMP_LINES: u64 = 2_000_000; // 18 MB
    const PUMP_MAXBYTES: u64 = 256 * 1024;

    /// The pump: confined as the supervisor is, it reads its stdin (a pipe the test writes) into
    /// `dir/p.log` with the real `Outputs`, until the pipe closes.
    fn pump(dir: &Path) {
        let stdin = io::stdin().as_fd().try_clone_to_owned().unwrap();
        let extra = format!(
            "    stdout_logfile: {}\n    stdout_logfile_maxbytes: {PUMP_MAXBYTES}\n    stdout_logfile_backups: 200\n",
            dir.join("p.log").display()
        );
        let dirs = crate::io::confine::LogDirs(vec![dir.to_path_buf()]);
        let mut rig = Rig::new(dir, &extra, stdin, || {
            crate::io::confine::confine(&dirs).unwrap();
        });
        let copied = rig.drain().len();
        println!("pump drained: {copied} bytes copied");
    }

    /// The bytes in `dir/p.log` and its backups.
    fn pumped(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("p.log"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    #[test]
    fn a_supervisor_killed_at_any_instant_neither_loses_nor_doubles_a_byte_of_its_log() {
        if let Some(dir) = std::env::var_os(PUMP) {
            return pump(Path::new(&dir));
        }
        let dir = tempfile::tempdir().unwrap();
        // The program's pipe: the test writes numbered lines at full speed; the read end stays
        // open here while pumps come and go, as the spawner keeps a duplicate.
        // Written at once, so the pipe stays full and each pump is always busy moving bytes.
        let (r, mut w) = pipe();
        let want = numbered(PUMP_LINES);
        let sent = want.clone();
        let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
        let spawn = || {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([PUMP_TEST, "--exact", "--nocapture", "--test-threads=1"])
                .env(PUMP, dir.path())
                .stdin(std::process::Stdio::from(r.try_clone().unwrap()))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
        println!("seed {seed}");
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Six pumps, each SIGKILLed once the files grew by a random amount (up to 1.5 MiB):
        // at a random instant while it moves bytes, so now and then mid-rotation.
        for kill in 0..6 {
            let mut pump = spawn();
            let until = pumped(dir.path()) + 1 + random() % (3 << 19);
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while pumped(dir.path()) < until {
                assert!(std::time::Instant::now() < deadline, "kill {kill}: the log stopped growing at {until}");
                if let Some(status) = pump.try_wait().unwrap() {
                    let out = pump.wait_with_output().unwrap();
                    panic!("pump {kill} ended on its own: {status}: {}", String::from_utf8_lossy(&out.stderr));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            pump.kill().unwrap(); // SIGKILL
            pump.wait().unwrap();
        }
        // The last pump drains the pipe to its end.
        let last = spawn();
        writer.join().unwrap();
        let out = last.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("pump drained"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (logged, backups) = log_and_backups(dir.path(), "p.log");
        if logged != want {
            let lines: Vec<&[u8]> = logged.split(|b| *b == b'\n').collect();
            let first_bad = lines.iter().enumerate().find(|(i, l)| **l != format!("{:08}", i + 1).as_bytes());
            panic!(
                "{} bytes logged, {} written; first wrong line: {:?}",
                logged.len(),
                want.len(),
                first_bad.map(|(i, l)| (i + 1, String::from_utf8_lossy(l)))
            );
        }
        let odd = backups.iter().zip(1..).find(|(&(n, len), k)| n != *k || len != PUMP_MAXBYTES);
        assert!(odd.is_none(), "{} backups; the first with a gap before it or another size: {odd:?}", backups.len());
        let main = std::fs::read_to_string(dir.path().join("main.log")).unwrap_or_default();
        assert!(!main.contains("read(2)"), "a pump fell back to read and write: {main}");
    }

    #[test]
    fn uptime_is_printed_as_supervisorctl_does() {
        assert_eq!(format_uptime(67), "0:01:07");
        assert_eq!(format_uptime(3 * 3600 + 4 * 60 + 5), "3:04:05");
        assert_eq!(format_uptime(2 * 86400 + 5), "2 days, 0:00:05");
    }
}
