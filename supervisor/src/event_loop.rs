//! The supervisor's one loop (DESIGN §9): epoll over the spawner link, every child output pipe,
//! the control socket and its clients, with the next timer deadline as the timeout. No thread
//! per child, no tick: an idle daemon does not wake.

use crate::control::{Client, Job};
use crate::core::state::{self, Action, Event, Note, ProcessState, Refusal, TimerKind};
use crate::io::logs::MainLog;
use crate::registry::Registry;
use crate::sys::{adopt_fd, Source, Watcher};
use common::config::raw::LogLevel;
use common::config::{Program, SocketConfig, Stream};
use common::proto::spawn::{
    ConfigAssembler, ConfigItem, Event as SpawnEvent, ExitStatus, Link, ProtoError, Request, SignalPurpose, VERSION,
};
use common::units::signal_name;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::Signal;
use polling::Events;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

/// Key of the spawner link.
pub const KEY_LINK: usize = 0;
/// Key of the listening socket.
pub const KEY_LISTENER: usize = 1;
/// Key of the password worker's wake-up socket.
pub const KEY_AUTH: usize = 1 << 61;
const CLIENT_BIT: usize = 1 << 62;

/// Key of a child's output pipe.
fn pipe_key(spawn_id: u64, stream: Stream) -> usize {
    2 + (spawn_id as usize) * 2 + usize::from(stream == Stream::Stderr)
}

/// Key of a control client.
pub fn client_key(id: u32) -> usize {
    CLIENT_BIT | id as usize
}

/// A timer: fires `kind` for `slot` at `at`, unless the process changed state since (`epoch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    seq: u64,
    slot: usize,
    kind: TimerKind,
    epoch: u64,
}

/// Bytes read from a pipe at a time (DESIGN §9: 64 KiB reads).
const READ_SIZE: usize = 64 * 1024;
/// Reads of a busy pipe per wakeup before the loop serves the others (1 MiB).
const READS_PER_WAKEUP: usize = 16;
/// A PTY's window size until a client attaches (rows, cols): the spawner opens it so.
const DEFAULT_PTY_SIZE: (u16, u16) = (24, 80);

/// What the supervisor asks the spawner to tell the service manager (sd_notify).
#[derive(Debug, Default)]
pub struct Notify {
    /// `READY=1`.
    pub ready: bool,
    /// `RELOADING=1`.
    pub reloading: bool,
    /// `STOPPING=1`.
    pub stopping: bool,
    /// `WATCHDOG=1`.
    pub watchdog: bool,
    /// `STATUS=…`.
    pub status: Option<String>,
}

/// The supervisor.
pub struct Supervisor {
    pub(crate) watcher: Watcher,
    pub(crate) registry: Registry,
    timers: BinaryHeap<Reverse<Timer>>,
    timer_seq: u64,
    pub(crate) log: MainLog,
    pub(crate) generation: u64,
    pub(crate) reloads: crate::reload::Reloads,
    /// Replies held back until their time (failed authentications): (when, client, reply,
    /// close the connection after).
    pub(crate) delayed: Vec<(Instant, u32, common::proto::control::Reply, bool)>,
    /// Connections by uid, and who may connect (`admission.rs`).
    pub(crate) admission: crate::io::control::admission::Admission,
    /// Failed authentications by uid, for the delay of their answers.
    pub(crate) auth_failures: crate::io::control::admission::AuthFailures,
    /// The password worker thread, once the first `auth` arrived.
    pub(crate) auth_worker: Option<crate::io::control::auth::AuthWorker>,
    /// Client deadlines (partial lines, authentication), checked when due.
    pub(crate) deadlines: BinaryHeap<Reverse<(Instant, u32, crate::control::Deadline)>>,
    /// Unsent output bytes of all clients together.
    pub(crate) out_total: usize,
    /// Accepting is paused (out of fds) until then.
    pub(crate) accept_resume: Option<Instant>,
    /// An accept failed and the failure was logged; cleared by the next accept that works.
    pub(crate) accept_trouble: bool,
    /// Requests waiting for room on the spawner link.
    link_out: std::collections::VecDeque<Vec<u8>>,
    pub(crate) spawner_pid: i32,
    pub(crate) clients: HashMap<u32, Client>,
    pub(crate) next_client: u32,
    pub(crate) jobs: Vec<Job>,
    pub(crate) jobs_dirty: bool,
    /// A state or the set of processes changed since STATUS was last computed.
    pub(crate) status_dirty: bool,
    pub(crate) shutting_down: bool,
    /// `shutdown` requests to answer once every program has stopped.
    pub(crate) shutdown_waiters: Vec<(u32, u64)>,
    pub(crate) exit_code: Option<u8>,
    pipes: HashMap<usize, (usize, Stream)>,
    buf: Vec<u8>,
    pub(crate) socket: SocketConfig,
    pub(crate) server: common::config::model::Server,
    /// `tail -f` and `maintail -f` clients.
    pub(crate) followers: Vec<crate::control::Follower>,
    program_syslog: Option<crate::io::logs::Syslog>,
    program_syslog_failed: bool,
    /// A service manager listens (sd_notify through the spawner).
    notify: bool,
    /// Uids that are always admin on the control socket: the one that started taskmasterd and
    /// the supervisor's own (DESIGN §8; root is too).
    pub(crate) admins: Vec<u32>,
    last_status: String,
    /// Watchdog ping interval (half of WATCHDOG_USEC) and the next ping.
    watchdog: Option<(Duration, Instant)>,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (systemd's advice for a daemon that needs
/// many fds: its default soft limit is 1024) and returns the soft limit in force; connection
/// caps are derived from it (`admission.rs`).
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return 1024 };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Receives the hello and the config from the spawner (blocking), then builds the supervisor.
///
/// # Errors
/// The inherited fds are missing, or the handshake failed.
pub fn start(link_fd: i32, listen_fd: i32) -> Result<Supervisor, String> {
    let link_owned = adopt_fd(link_fd).map_err(|e| format!("spawner link fd {link_fd}: {e}"))?;
    let listen_owned = adopt_fd(listen_fd).map_err(|e| format!("control socket fd {listen_fd}: {e}"))?;
    let mut link = Link::new(link_owned);
    link.send(&Request::Hello { version: VERSION }, &[]).map_err(|e| e.to_string())?;
    let mut spawner_pid = 0;
    let mut notify = false;
    let mut owner_uid = 0;
    let mut watchdog = None;
    let mut journal = false;
    let mut asm = ConfigAssembler::default();
    let generation = loop {
        match link.recv::<SpawnEvent>().map_err(|e| format!("handshake: {e}"))?.0 {
            SpawnEvent::Hello {
                version: VERSION,
                spawner_pid: pid,
                owner_uid: owner,
                notify: n,
                watchdog_usec,
                journal: j,
            } => {
                spawner_pid = pid;
                journal = j;
                owner_uid = owner;
                notify = n;
                watchdog = watchdog_usec.filter(|u| *u > 0).map(|u| Duration::from_micros(u) / 2);
            }
            SpawnEvent::ConfigChunk { more, data } => asm.push(more, &data).map_err(|e| e.to_string())?,
            SpawnEvent::ConfigEnd { generation, .. } => break generation,
            other => return Err(format!("handshake: unexpected {other:?}")),
        }
    };
    let mut server = None;
    let mut programs: Vec<Program> = Vec::new();
    for item in asm.items {
        match item {
            ConfigItem::Server { server: s, socket, log_to_stderr } => server = Some((*s, socket, log_to_stderr)),
            ConfigItem::Program(p) => programs.push(*p),
            ConfigItem::Plan(_) => return Err("handshake: a reload plan in the initial config".into()),
        }
    }
    let (server, socket, to_stderr) = server.ok_or("handshake: no server section")?;
    let nofile = raise_fd_limit();
    set_nonblocking(&link).map_err(|e| e.to_string())?;
    let listener = UnixListener::from(listen_owned);
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut watcher = Watcher::new().map_err(|e| format!("epoll: {e}"))?;
    watcher.insert(KEY_LINK, Source::Link(link)).map_err(|e| e.to_string())?;
    watcher.insert(KEY_LISTENER, Source::Listener(listener)).map_err(|e| e.to_string())?;
    let mut log = MainLog::open(
        server.logfile.clone(),
        server.logfile_maxbytes,
        server.logfile_backups,
        server.loglevel,
        to_stderr,
        journal,
    );
    if let Some(target) = &server.syslog {
        match crate::io::logs::Syslog::connect(target) {
            Ok(s) => log.set_syslog(s),
            Err(e) => log.error(&format!("server.syslog: {e}; logging to the file only")),
        }
    }
    // Everything that needed more than the log directories is done (DESIGN §1 rule 4).
    let confinement =
        crate::io::confine::confine(&crate::io::confine::LogDirs::of(&server, &programs)).map_err(|e| e.to_string())?;
    log.info(&format!("confinement: {confinement}"));
    Ok(Supervisor {
        watcher,
        registry: Registry::new(programs, &server.childlogdir),
        timers: BinaryHeap::new(),
        timer_seq: 0,
        log,
        generation,
        reloads: crate::reload::Reloads::default(),
        link_out: std::collections::VecDeque::new(),
        delayed: Vec::new(),
        admission: crate::io::control::admission::Admission::new(crate::io::control::admission::Limits::for_fd_limit(
            nofile,
        )),
        auth_failures: crate::io::control::admission::AuthFailures::default(),
        auth_worker: None,
        deadlines: BinaryHeap::new(),
        out_total: 0,
        accept_resume: None,
        accept_trouble: false,
        spawner_pid,
        clients: HashMap::new(),
        next_client: 0,
        jobs: Vec::new(),
        jobs_dirty: false,
        status_dirty: false,
        shutting_down: false,
        shutdown_waiters: Vec::new(),
        exit_code: None,
        pipes: HashMap::new(),
        buf: vec![0; READ_SIZE],
        socket,
        server,
        followers: Vec::new(),
        program_syslog: None,
        program_syslog_failed: false,
        notify,
        admins: vec![owner_uid, nix::unistd::geteuid().as_raw()],
        last_status: String::new(),
        watchdog: watchdog.map(|every| (every, Instant::now() + every)),
    })
}

impl Supervisor {
    /// Starts the autostart programs and serves until shutdown. Returns the exit code.
    pub fn run(mut self) -> u8 {
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map_or_else(|| nix::unistd::geteuid().to_string(), |u| u.name);
        self.log.info(&format!(
            "taskmasterd {} started with pid {}; supervisor pid {} as user {user}; control socket {}",
            common::VERSION,
            self.spawner_pid,
            std::process::id(),
            self.socket.path.display()
        ));
        let autostart: Vec<(usize, bool)> = self
            .registry
            .ordered()
            .into_iter()
            .filter(|s| self.registry.procs[s].program.autostart)
            .map(|s| (s, false))
            .collect();
        self.start_job(autostart, None);
        self.notify(Notify { ready: true, status: Some(self.summary()), ..Notify::default() });
        let mut events = Events::new();
        while self.exit_code.is_none() {
            let next = self
                .timers
                .peek()
                .map(|Reverse(t)| t.at)
                .into_iter()
                .chain(self.watchdog.map(|w| w.1))
                .chain(self.delayed.iter().map(|d| d.0))
                .chain(self.next_deadline())
                .chain(self.accept_resume)
                .min();
            let timeout = next.map(|at| at.saturating_duration_since(Instant::now()));
            events.clear();
            if let Err(e) = self.watcher.wait(&mut events, timeout) {
                self.log.log(LogLevel::Critical, &format!("epoll_wait: {e}"));
                return 1;
            }
            let now = Instant::now();
            for ev in events.iter() {
                self.on_ready(ev.key, ev.readable, ev.writable, now);
            }
            let now = Instant::now();
            self.fire_timers(now);
            if !self.delayed.is_empty() {
                self.send_delayed(now);
            }
            self.fire_deadlines(now);
            self.resume_accept(now);
            self.progress_jobs();
            self.feed_main_followers();
            self.service_manager_tick(Instant::now());
        }
        self.feed_main_followers();
        self.end_followers(|_| true, "taskmasterd is shutting down");
        self.flush_clients();
        let code = self.exit_code.unwrap_or(0);
        if code == 0 {
            self.log.info("taskmasterd exiting: every program is stopped");
        }
        code
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse(t)) = self.timers.peek().copied() {
            if t.at > now {
                break;
            }
            self.timers.pop();
            if self.registry.procs.get(&t.slot).is_some_and(|p| p.m.epoch == t.epoch) {
                let _ = self.apply(t.slot, Event::Timer(t.kind), now);
            }
        }
    }

    fn on_ready(&mut self, key: usize, readable: bool, writable: bool, now: Instant) {
        match key {
            KEY_LINK => {
                if writable {
                    self.flush_link();
                }
                if readable {
                    self.on_link(now);
                }
            }
            KEY_LISTENER => self.accept(now),
            KEY_AUTH => self.on_auth_verdicts(now),
            k if k & CLIENT_BIT != 0 => self.on_client((k & !CLIENT_BIT) as u32, readable, writable, now),
            k => self.on_pipe(k),
        }
    }

    /// Reads what a child wrote, up to [`READS_PER_WAKEUP`] chunks of 64 KiB, and hands each to
    /// its log, its `tail -f` followers, its terminal model and its attached clients.
    fn on_pipe(&mut self, key: usize) {
        let Some(&(slot, stream)) = self.pipes.get(&key) else { return };
        for _ in 0..READS_PER_WAKEUP {
            let Some(Source::Pipe(f)) = self.watcher.get_mut(key) else { return };
            let n = match f.read(&mut self.buf) {
                Ok(0) => return self.close_pipe(key),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.close_pipe(key), // EIO: a PTY whose child has gone
            };
            self.record_output(slot, stream, n);
            if n < READ_SIZE {
                return;
            }
        }
    }

    fn record_output(&mut self, slot: usize, stream: Stream, n: usize) {
        let idx = usize::from(stream == Stream::Stderr);
        let wants_syslog = self.registry.procs.get(&slot).is_some_and(|p| p.logs[idx].syslog);
        if wants_syslog && self.program_syslog.is_none() && !self.program_syslog_failed {
            match crate::io::logs::Syslog::connect(&self.server.program_syslog) {
                Ok(s) => self.program_syslog = Some(s),
                Err(e) => {
                    self.program_syslog_failed = true;
                    self.log.error(&format!("stdout_syslog/stderr_syslog: {e}"));
                }
            }
        }
        let Some(proc) = self.registry.procs.get_mut(&slot) else { return };
        let bytes = &self.buf[..n];
        proc.note_output(stream, bytes);
        if let Some(pty) = &mut proc.pty {
            pty.record(bytes);
        }
        // Borrowed, not copied: this runs for every chunk a program writes.
        if let Some(err) = proc.logs[idx].write(bytes, &proc.name, self.program_syslog.as_mut()) {
            let msg = format!(
                "'{}' {}: {err}; its output is dropped until SIGUSR2 reopens the log",
                proc.name,
                stream.as_str()
            );
            self.log.error(&msg);
        }
        if !self.followers.is_empty() {
            self.feed_followers(crate::control::FollowSource::Proc(slot, stream), n);
        }
        self.feed_attached(slot, n);
    }

    /// The first `n` bytes of the read buffer.
    pub(crate) fn buf_slice(&self, n: usize) -> &[u8] {
        &self.buf[..n]
    }

    fn close_pipe(&mut self, key: usize) {
        let owner = self.pipes.remove(&key);
        if let Some((slot, Stream::Stdout)) = owner {
            if let Some(status) = self.registry.procs.get_mut(&slot).and_then(|p| p.pending_exit.take()) {
                self.end_attached(slot, status);
            }
        }
        drop(self.watcher.remove(key));
    }

    fn link(&mut self) -> Option<&mut Link> {
        match self.watcher.get_mut(KEY_LINK) {
            Some(Source::Link(l)) => Some(l),
            _ => None,
        }
    }

    /// Sends a request to the spawner, or queues it while the link is full (a thousand spawns
    /// at once overflow the socket buffer); the queue drains when the link is writable. The
    /// link is ordered, so queued requests keep their order.
    pub(crate) fn send(&mut self, req: &Request) {
        let bytes = match common::proto::spawn::encode(req) {
            Ok(b) => b,
            Err(e) => return self.link_failed(&e.to_string()),
        };
        self.link_out.push_back(bytes);
        if self.link_out.len() == 1 {
            self.flush_link();
        }
    }

    fn flush_link(&mut self) {
        while let Some(front) = self.link_out.front() {
            let result = match self.watcher.get_mut(KEY_LINK) {
                Some(Source::Link(l)) => l.send_encoded(front),
                _ => Err(io::Error::from(io::ErrorKind::NotConnected)),
            };
            match result {
                Ok(()) => {
                    self.link_out.pop_front();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return self.link_failed(&e.to_string()),
            }
        }
        let _ = self.watcher.interest(KEY_LINK, true, !self.link_out.is_empty());
    }

    fn link_failed(&mut self, why: &str) {
        self.log.log(LogLevel::Critical, &format!("cannot reach the spawner: {why}; exiting"));
        self.exit_code = Some(1);
    }

    fn on_link(&mut self, now: Instant) {
        loop {
            let received = match self.link() {
                Some(l) => l.recv::<SpawnEvent>(),
                None => return,
            };
            match received {
                Ok((ev, fds)) if fds.len() < common::proto::spawn::Message::fd_count(&ev) => self.on_fds_lost(ev, now),
                Ok((ev, fds)) => self.on_spawner_event(ev, fds, now),
                Err(ProtoError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.log.log(LogLevel::Critical, &format!("spawner link: {e}; exiting"));
                    drop(self.watcher.remove(KEY_LINK));
                    self.exit_code = Some(1);
                    return;
                }
            }
        }
    }

    fn on_spawner_event(&mut self, ev: SpawnEvent, fds: Vec<OwnedFd>, now: Instant) {
        match ev {
            SpawnEvent::Spawned { token, spawn_id, pid, fds: set } => {
                let Some(slot) = self.registry.take_token(token) else {
                    // A process nobody supervises must not live: end it (its exit is ignored).
                    self.log.error(&format!("spawner answered unknown spawn token {token}; killing pid {pid}"));
                    let kill =
                        Request::Signal { spawn_id, signal: Signal::SIGKILL as i32, purpose: SignalPurpose::Kill };
                    return self.send(&kill);
                };
                self.registry.bind_spawn(slot, spawn_id);
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
                        if self.watcher.insert(key, Source::Pipe(File::from(fd))).is_ok() {
                            self.pipes.insert(key, (slot, Stream::Stdout));
                        }
                        if let Some(p) = self.registry.procs.get_mut(&slot) {
                            p.pty = Some(crate::attach::Pty::new(writer, DEFAULT_PTY_SIZE));
                        }
                    }
                }
                if set.stdin && !set.pty {
                    let stdin = it.next().filter(|fd| set_nonblocking(fd).is_ok()).map(File::from);
                    if let Some(p) = self.registry.procs.get_mut(&slot) {
                        p.stdin = stdin;
                    }
                }
                for (present, stream) in [(set.stdout, Stream::Stdout), (set.stderr, Stream::Stderr)] {
                    if !present || set.pty {
                        continue;
                    }
                    let Some(fd) = it.next() else { continue };
                    let key = pipe_key(spawn_id, stream);
                    if set_nonblocking(&fd).is_ok() && self.watcher.insert(key, Source::Pipe(File::from(fd))).is_ok() {
                        self.pipes.insert(key, (slot, stream));
                    }
                }
                let _ = self.apply(slot, Event::Spawned { pid }, now);
            }
            SpawnEvent::SpawnFailed { token, error } => {
                if let Some(slot) = self.registry.take_token(token) {
                    let _ = self.apply(slot, Event::SpawnFailed(error), now);
                }
            }
            SpawnEvent::Exited { spawn_id, status } => {
                if let Some(slot) = self.registry.take_spawn(spawn_id) {
                    // Attached clients hear of the exit once the last output is read.
                    let code = crate::attach::exit_code(status);
                    if self.pipes.values().any(|(s, st)| *s == slot && *st == Stream::Stdout) {
                        if let Some(p) = self.registry.procs.get_mut(&slot) {
                            p.pending_exit = Some(code);
                        }
                    } else {
                        self.end_attached(slot, code);
                    }
                    let _ = self.apply(slot, Event::Exited(status), now);
                }
            }
            SpawnEvent::SignalFailed { spawn_id, error } => {
                let name = self
                    .registry
                    .slot_of_spawn(spawn_id)
                    .and_then(|s| self.registry.get(s))
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                self.log.warn(&format!("signal to '{name}' failed: {error}"));
            }
            SpawnEvent::DaemonSignal { signal } => self.on_daemon_signal(signal),
            SpawnEvent::ConfigChunk { more, data } => {
                if let Err(e) = self.reloads.assembler.push(more, &data) {
                    self.log.error(&format!("config from the spawner: {e}"));
                }
            }
            SpawnEvent::ConfigEnd { generation, token } => self.on_config_end(generation, token),
            SpawnEvent::ConfigRejected { token, error } => self.on_config_rejected(token, error),
            other => self.log.error(&format!("unexpected message from the spawner: {other:?}")),
        }
    }

    /// The kernel could not give us the fds a message carried (we are out of fds): an error
    /// for that one event. A spawned child whose output nothing can read is killed; its exit
    /// then takes the usual course (BACKOFF and a retry, or a restart).
    fn on_fds_lost(&mut self, ev: SpawnEvent, now: Instant) {
        let SpawnEvent::Spawned { token, spawn_id, pid, .. } = ev else {
            return self.log.error(&format!("a message from the spawner lost its fds: {ev:?}"));
        };
        let Some(slot) = self.registry.take_token(token) else {
            return self.log.error(&format!("spawner answered unknown spawn token {token}"));
        };
        self.registry.bind_spawn(slot, spawn_id);
        let _ = self.apply(slot, Event::Spawned { pid }, now);
        let name = self.registry.get(slot).map(|p| p.name.clone()).unwrap_or_default();
        self.log.error(&format!(
            "'{name}' (pid {pid}): its output fds could not be received (too many open files); killing it"
        ));
        let kill = Request::Signal { spawn_id, signal: Signal::SIGKILL as i32, purpose: SignalPurpose::Kill };
        self.send(&kill);
    }

    fn on_daemon_signal(&mut self, signal: i32) {
        match Signal::try_from(signal) {
            Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => {
                self.log.info(&format!("received {} indicating exit request", signal_name(signal)));
                self.begin_shutdown(None);
            }
            Ok(Signal::SIGUSR2) => {
                self.log.info("received SIGUSR2 indicating log reopen request");
                self.log.reopen();
                for p in self.registry.procs.values_mut() {
                    for l in p.logs.iter_mut().filter_map(|l| l.file.as_mut()) {
                        l.reopen();
                    }
                }
            }
            Ok(Signal::SIGHUP) => {
                self.log.info("received SIGHUP indicating restart request: re-reading the config");
                self.request_reload(crate::reload::ReloadKind::Hup, None);
            }
            _ => self.log.warn(&format!("ignoring forwarded signal {}", signal_name(signal))),
        }
    }

    /// Applies an event to a process and carries out the machine's actions.
    ///
    /// # Errors
    /// The machine refused a user's start or stop.
    pub(crate) fn apply(&mut self, slot: usize, event: Event, now: Instant) -> Result<(), Refusal> {
        let Some(proc) = self.registry.procs.get(&slot) else { return Ok(()) };
        let program = Rc::clone(&proc.program);
        let (next, actions) = state::step(&proc.m, &program, event, now, !self.shutting_down)?;
        let Some(proc) = self.registry.procs.get_mut(&slot) else { return Ok(()) };
        let ended = next.state != proc.m.state
            && matches!(next.state, ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal);
        if next.state != proc.m.state {
            proc.changed_at = SystemTime::now();
            self.jobs_dirty = true;
        }
        let (name, state) = (proc.name.clone(), next.state);
        proc.m = next;
        if ended && !self.followers.is_empty() {
            let msg = format!("{name} is {}", state.as_str());
            self.end_followers(|s| matches!(s, crate::control::FollowSource::Proc(sl, _) if *sl == slot), &msg);
        }
        for action in actions {
            self.act(slot, action);
        }
        Ok(())
    }

    fn act(&mut self, slot: usize, action: Action) {
        let Some(proc) = self.registry.procs.get(&slot) else { return };
        let name = proc.name.clone();
        match action {
            Action::Spawn => {
                let (program, instance) = (proc.program.name.clone(), proc.instance);
                let token = self.registry.token_for(slot);
                let generation = self.generation;
                self.send(&Request::Spawn { token, program, instance, generation });
            }
            Action::Signal(signal, purpose) => {
                if let Some(spawn_id) = proc.spawn_id {
                    if purpose == common::proto::spawn::SignalPurpose::Stop {
                        self.log.info(&format!("waiting for '{name}' to stop"));
                    }
                    self.send(&Request::Signal { spawn_id, signal, purpose });
                }
            }
            Action::Arm(kind, at) => {
                self.timer_seq += 1;
                self.timers.push(Reverse(Timer { at, seq: self.timer_seq, slot, kind, epoch: proc.m.epoch }));
            }
            Action::Log(note) => self.note(&name, note),
        }
    }

    fn note(&mut self, name: &str, note: Note) {
        let status = |s: ExitStatus| match s {
            ExitStatus::Code(c) => format!("exit status {c}"),
            ExitStatus::Signal(sig) => format!("terminated by {}", signal_name(sig)),
        };
        match note {
            Note::Spawned(pid) => self.log.info(&format!("spawned: '{name}' with pid {pid}")),
            Note::SpawnErr(e) => self.log.warn(&format!("spawnerr: '{name}': {e}")),
            Note::Success(secs) => self.log.info(&format!(
                "success: '{name}' entered RUNNING state, process has stayed up for > than {secs} seconds (startsecs)"
            )),
            Note::Exited(s, true) => self.log.info(&format!("exited: '{name}' ({}; expected)", status(s))),
            Note::Exited(s, false) => self.log.warn(&format!("exited: '{name}' ({}; not expected)", status(s))),
            Note::GaveUp => {
                self.log.info(&format!("gave up: '{name}' entered FATAL state, too many start retries too quickly"))
            }
            Note::Killing(pid) => self.log.warn(&format!("killing '{name}' ({pid}) with SIGKILL")),
            Note::Stopped(s) => self.log.info(&format!("stopped: '{name}' ({})", status(s))),
        }
    }

    /// Sends a notification to the service manager, when one listens.
    pub(crate) fn notify(&mut self, n: Notify) {
        if !self.notify {
            return;
        }
        if let Some(s) = &n.status {
            self.last_status = s.clone();
        }
        let Notify { ready, reloading, stopping, watchdog, status } = n;
        self.send(&Request::Notify { ready, reloading, stopping, watchdog, status });
    }

    /// `12 running, 1 fatal`: the processes by state, for the service manager's STATUS.
    pub fn summary(&self) -> String {
        use crate::core::state::ProcessState::*;
        let states = [Running, Starting, Backoff, Stopping, Exited, Fatal, Stopped];
        let parts: Vec<String> = states
            .iter()
            .filter_map(|s| {
                let n = self.registry.count(*s);
                (n > 0).then(|| format!("{n} {}", s.as_str().to_lowercase()))
            })
            .collect();
        if parts.is_empty() {
            "no programs".into()
        } else {
            parts.join(", ")
        }
    }

    /// Keeps the service manager's STATUS current and pings its watchdog when due.
    fn service_manager_tick(&mut self, now: Instant) {
        if !self.notify {
            return;
        }
        // The summary scans every process: only when a state or the set of processes changed,
        // not on every wakeup of a busy loop.
        if std::mem::take(&mut self.status_dirty) {
            let status = self.summary();
            if status != self.last_status {
                self.notify(Notify { status: Some(status), ..Notify::default() });
            }
        }
        if let Some((every, next)) = self.watchdog {
            if now >= next {
                self.watchdog = Some((every, now + every));
                self.notify(Notify { watchdog: true, ..Notify::default() });
            }
        }
    }

    /// Stops everything in priority order, then exits (TERM/INT/QUIT, `shutdown`); a `shutdown`
    /// client (`reply_to`) is answered once every program has stopped.
    pub(crate) fn begin_shutdown(&mut self, reply_to: Option<(u32, u64)>) {
        self.shutdown_waiters.extend(reply_to);
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.notify(Notify { stopping: true, status: Some("stopping every program".into()), ..Notify::default() });
        let all = self.registry.ordered().into_iter().map(|s| (s, false)).collect();
        self.stop_job(all, crate::control::Then::Exit, None, None);
    }
}
