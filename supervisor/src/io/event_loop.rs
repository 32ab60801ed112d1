//! The supervisor's one loop (DESIGN §9): epoll over the spawner link, every child output pipe,
//! the control socket and its clients, with the next timer deadline as the timeout. No thread
//! per child, no tick: an idle daemon does not wake. It translates: what arrives on an fd
//! becomes an [`Input`] for the core, or stays in the edge when it is bytes (output, replies);
//! what the core returns is carried out here ([`Edge::carry_out`]).

use crate::core::effects::{Effect, Effects, Followed, Input, SpawnerInput, TailSource};
use crate::core::ids::{ClientId, SpawnId};
use crate::core::{Core, CoreConfig, KeptRecord, LiveChild, Mono};
use crate::io::base::{Io, CLIENT_BIT, KEY_AUTH, KEY_LINK, KEY_LISTENER};
use crate::io::control::server::{Server, ServerEvent};
use crate::io::link::{handshake, LinkError, LinkQueue};
use crate::io::logs::{MainLog, Syslog};
use crate::io::output::{set_nonblocking, Outputs, ReadOutcome, READS_PER_WAKEUP, READ_SIZE};
use crate::io::timers::Timers;
use crate::sys::{adopt_fd, Source, Watcher};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::config::raw::LogLevel;
use common::config::Stream;
use common::proto::control::{ActionResult, Reply};
use common::proto::spawn::{Event as SpawnEvent, FdSet, Link, Message, Request, REPLACE_EXIT};
use common::units::signal_name;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use polling::Events;
use serde_json::json;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::time::{Instant, SystemTime};

/// Inputs after which the heap's free memory is given back once the loop rests (a burst: the
/// start-up's spawns, a `start all` of hundreds of programs).
const TRIM_AFTER_INPUTS: u32 = 256;
/// How long the loop must have rested for that (200 ms): never in the middle of a burst.
const TRIM_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_millis(200);

/// Why the supervisor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An fd the spawner should have left at exec is not open.
    #[error("{what} fd {fd}: {source}")]
    Inherited {
        /// Which one.
        what: &'static str,
        /// Its number.
        fd: i32,
        /// The errno.
        source: std::io::Error,
    },
    /// The link or the handshake failed.
    #[error("{0}")]
    Link(#[from] LinkError),
    /// An fd could not be set up or watched.
    #[error("{what}: {source}")]
    Setup {
        /// What was being done.
        what: &'static str,
        /// The errno.
        source: std::io::Error,
    },
    /// The supervisor could not be confined.
    #[error("{0}")]
    Confine(#[from] crate::io::confine::ConfineError),
}

fn setup(what: &'static str) -> impl FnOnce(std::io::Error) -> StartError {
    move |source| StartError::Setup { what, source }
}

/// The edge: every fd, and the core it feeds.
pub struct Edge {
    io: Io,
    core: Core,
    server: Server,
    outputs: Outputs,
    link: LinkQueue,
    timers: Timers,
    spawner_pid: i32,
    /// The fds of the spawn being decided on, until the core binds them (or they close).
    arrived: Option<(SpawnId, FdSet, Vec<OwnedFd>)>,
    /// The fds of adopted children until the core binds them (issue 16).
    adopted: AdoptedFds,
    /// The main log's first line after a supervisor restart.
    restart_note: Option<String>,
    /// A line after the first: the previous taskmasterd did not exit in order.
    unclean_note: Option<String>,
    /// A log file a re-read named outside this supervisor's confinement: once the re-read is
    /// applied, it exits for a replacement confined to it ([`REPLACE_EXIT`]).
    replace_for: Option<std::path::PathBuf>,
    /// Inputs handled since the heap's free memory was last given back.
    fed_since_trim: u32,
    exit_code: Option<u8>,
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

/// Receives the hello and the config from the spawner (blocking), confines the process, then
/// builds the edge and its core.
///
/// # Errors
/// The inherited fds are missing, the handshake failed, or confinement failed.
pub fn start(link_fd: i32, listen_fd: i32) -> Result<Edge, StartError> {
    let link_owned =
        adopt_fd(link_fd).map_err(|source| StartError::Inherited { what: "spawner link", fd: link_fd, source })?;
    let listen_owned = adopt_fd(listen_fd).map_err(|source| StartError::Inherited {
        what: "control socket",
        fd: listen_fd,
        source,
    })?;
    let mut link = Link::new(link_owned);
    let hs = handshake(&mut link)?;
    let nofile = raise_fd_limit();
    set_nonblocking(&link).map_err(setup("spawner link"))?;
    let listener = UnixListener::from(listen_owned);
    listener.set_nonblocking(true).map_err(setup("control socket"))?;
    let mut w = Watcher::new().map_err(setup("epoll"))?;
    w.insert(KEY_LINK, Source::Link(link)).map_err(setup("epoll"))?;
    w.insert(KEY_LISTENER, Source::Listener(listener)).map_err(setup("epoll"))?;
    let server = &hs.server;
    let mut log = MainLog::open(
        server.logfile.clone(),
        server.logfile_maxbytes,
        server.logfile_backups,
        server.loglevel,
        hs.to_stderr,
        hs.journal,
    );
    if let Some(target) = &server.syslog {
        match Syslog::connect(target) {
            Ok(s) => log.set_syslog(s),
            Err(e) => log.error(&format!("server.syslog: {e}; logging to the file only")),
        }
    }
    // Everything that needed more than the log directories is done (DESIGN §1 rule 4).
    let confinement = crate::io::confine::confine(&crate::io::confine::LogDirs::of(server, &hs.programs))?;
    log.info(&format!("confinement: {confinement}"));
    let outputs = Outputs::new(server.childlogdir.clone(), server.program_syslog.clone());
    let admins = vec![hs.owner_uid, nix::unistd::geteuid().as_raw()];
    let now = Instant::now();
    let mono = Mono { at: now, ns: common::units::monotonic_ns() };
    let config = CoreConfig {
        programs: hs.programs,
        generation: hs.generation,
        spawner_pid: Pid::from_raw(hs.spawner_pid),
        notify: hs.notify,
        watchdog: hs.watchdog,
        mono,
        restarts: hs.restarts,
    };
    let mut adopted = AdoptedFds::new();
    let mut unclean = None;
    let (core, fx, restart_note) = match hs.previous {
        None => {
            let (core, fx) = Core::new(config, now);
            unclean = hs.unclean_predecessor.map(|pid| {
                format!(
                    "the previous taskmasterd (pid {pid}) did not exit in order (killed?): its programs were \
                     ended by their parent-death signal (SIGKILL), without their stop signal"
                )
            });
            (core, fx, None)
        }
        Some(previous) => {
            let (core, fx, fds, note) = restore(config, previous, hs.restarts, hs.adopted, hs.records, now, &mut log);
            adopted = fds;
            (core, fx, Some(note))
        }
    };
    let mut edge = Edge {
        io: Io { w, log },
        core,
        server: Server::new(hs.socket, admins, nofile),
        outputs,
        link: LinkQueue::default(),
        timers: Timers::default(),
        spawner_pid: hs.spawner_pid,
        arrived: None,
        adopted,
        restart_note,
        unclean_note: unclean,
        replace_for: None,
        fed_since_trim: 0,
        exit_code: None,
    };
    edge.carry_out(fx, now);
    Ok(edge)
}

/// The fds of adopted children by spawn id, until the core binds them.
type AdoptedFds = std::collections::HashMap<SpawnId, (FdSet, Vec<OwnedFd>)>;

/// The core of a supervisor that replaces one that died or asked to be replaced (issue 16):
/// rebuilt from the spawner's inventory and kept records ([`Core::restore`]). Returns it, its
/// effects, the adopted children's fds and the main log's first line (`supervisor (pid N) died
/// (signal SIGKILL); restarted as pid M, adopted K processes (restart R since start)`).
fn restore(
    config: CoreConfig,
    (pid, status): (i32, common::proto::spawn::ExitStatus),
    restarts: u32,
    children: Vec<crate::io::link::Adopted>,
    records: Vec<(String, u32, common::proto::spawn::ProcRecord)>,
    now: Instant,
    log: &mut MainLog,
) -> (Core, Effects, AdoptedFds, String) {
    let mut fds = AdoptedFds::new();
    let mut inventory = Vec::new();
    for a in children {
        inventory.push(LiveChild {
            program: a.program,
            instance: a.instance,
            spawn_id: SpawnId(a.spawn_id),
            pid: Pid::from_raw(a.pid),
            started_ns: a.started_ns,
            generation: a.generation,
            ended: a.ended,
        });
        if a.fds.len() >= a.set.count() {
            fds.insert(SpawnId(a.spawn_id), (a.set, a.fds));
        } else {
            log.error(&format!("pid {}: its fds could not be received; its output is lost", a.pid));
        }
    }
    let records: Vec<KeptRecord> =
        records.into_iter().map(|(program, instance, record)| KeptRecord { program, instance, record }).collect();
    let live = inventory.iter().filter(|c| !c.ended).count();
    let me = std::process::id();
    let note = if status == common::proto::spawn::ExitStatus::Code(i32::from(REPLACE_EXIT)) {
        format!(
            "supervisor (pid {pid}) replaced by pid {me}, confined to the re-read config's log directories; adopted {live} processes (restart {restarts} since start)"
        )
    } else {
        format!(
            "supervisor (pid {pid}) died ({status}); restarted as pid {me}, adopted {live} processes (restart {restarts} since start)"
        )
    };
    let (core, fx) = Core::restore(config, &inventory, &records, now);
    (core, fx, fds, note)
}

impl Edge {
    /// Starts the autostart programs and serves until shutdown. Returns the exit code.
    pub fn run(mut self) -> u8 {
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map_or_else(|| nix::unistd::geteuid().to_string(), |u| u.name);
        match self.restart_note.take() {
            Some(note) => self.io.log.warn(&note),
            None => self.io.log.info(&format!(
                "taskmasterd {} started with pid {}; supervisor pid {} as user {user}; control socket {}",
                common::VERSION,
                self.spawner_pid,
                std::process::id(),
                self.server.path().display()
            )),
        }
        if let Some(note) = self.unclean_note.take() {
            self.io.log.warn(&note);
        }
        // Children that no process took (killed as strangers) close their fds.
        self.adopted.clear();
        self.feed(Input::Boot, Instant::now());
        let mut events = Events::new();
        while self.exit_code.is_none() {
            let next = self.timers.next().into_iter().chain(self.server.next_due(Instant::now())).min();
            let mut timeout = next.map(|at| at.saturating_duration_since(Instant::now()));
            let burst = self.fed_since_trim >= TRIM_AFTER_INPUTS;
            if burst {
                // Wake once the burst is over, to hand its memory back.
                timeout = Some(timeout.map_or(TRIM_IF_IDLE_FOR, |t| t.min(TRIM_IF_IDLE_FOR)));
            }
            events.clear();
            if let Err(e) = self.io.w.wait(&mut events, timeout) {
                self.io.log.log(LogLevel::Critical, &format!("epoll_wait: {e}"));
                return 1;
            }
            if burst && events.is_empty() {
                crate::sys::release_free_heap();
                self.fed_since_trim = 0;
            }
            let now = Instant::now();
            for ev in events.iter() {
                self.on_ready(ev.key, ev.readable, ev.writable, now);
                self.drain_server_events(now);
            }
            let now = Instant::now();
            while let Some(id) = self.timers.pop_due(now) {
                self.feed(Input::Timer(id), now);
            }
            self.server.on_time(&mut self.io, now);
            self.drain_server_events(now);
            self.server.feed_main_followers(&mut self.io);
            if let (Some(path), true, None) = (&self.replace_for, self.core.reloads_idle(), self.exit_code) {
                self.io.log.info(&format!(
                    "{} is outside this supervisor's confinement; a new supervisor confined to it takes over",
                    path.display()
                ));
                self.exit_code = Some(REPLACE_EXIT);
            }
        }
        self.server.feed_main_followers(&mut self.io);
        if self.exit_code != Some(REPLACE_EXIT) {
            // Replaced, followers reconnect by themselves (they see the connection close).
            self.server.end_followers(&mut self.io, |_| true, "taskmasterd is shutting down");
        }
        self.server.flush_all(&mut self.io);
        let code = self.exit_code.unwrap_or(0);
        if code == 0 {
            self.io.log.info("taskmasterd exiting: every program is stopped");
        }
        code
    }

    /// Hands an input to the core and carries out its decision.
    fn feed(&mut self, input: Input, now: Instant) {
        self.fed_since_trim += 1;
        let fx = self.core.handle(input, now);
        self.carry_out(fx, now);
    }

    fn on_ready(&mut self, key: usize, readable: bool, writable: bool, now: Instant) {
        match key {
            KEY_LINK => {
                if writable {
                    if let Err(e) = self.link.flush(&mut self.io.w) {
                        self.link_failed(&e);
                    }
                }
                if readable {
                    self.on_link(now);
                }
            }
            KEY_LISTENER => self.server.accept(&mut self.io, now),
            KEY_AUTH => self.server.on_auth_verdicts(&mut self.io, now),
            k if k & CLIENT_BIT != 0 => {
                self.server.on_ready(&mut self.io, ClientId((k & !CLIENT_BIT) as u32), readable, writable, now)
            }
            k => self.on_pipe(k),
        }
    }

    /// Acts on what the control server gathered: requests go to the core (then the rest of
    /// that client's input is read), keystrokes and window sizes to the program.
    fn drain_server_events(&mut self, now: Instant) {
        loop {
            let events = std::mem::take(&mut self.server.events);
            if events.is_empty() {
                return;
            }
            for ev in events {
                match ev {
                    ServerEvent::Action { client, peer, action, request } => {
                        self.feed(Input::Control { client, peer, action, request }, now);
                        self.server.process_input(&mut self.io, client, now);
                    }
                    ServerEvent::Input(slot, bytes) => self.outputs.write_input(&mut self.io, slot, &bytes),
                    ServerEvent::Resize(slot, rows, cols) => {
                        if let Some(pty) = self.outputs.get_mut(slot).and_then(|o| o.pty.as_mut()) {
                            let _ = pty.resize(rows, cols);
                        }
                    }
                    ServerEvent::Resync(client, slot) => {
                        // A lagging client caught up: redraw its screen from the model (PTY), or
                        // say that it missed output (pipe).
                        let catch_up = match self.outputs.get_mut(slot).and_then(|o| o.pty.as_mut()) {
                            Some(pty) => pty.redraw(),
                            None => b"\r\n[taskmaster: output skipped while this terminal was behind]\r\n".to_vec(),
                        };
                        self.server.send_frame_data(&mut self.io, client, &catch_up);
                    }
                }
            }
        }
    }

    /// Reads what a child wrote, up to [`READS_PER_WAKEUP`] chunks of 64 KiB, and hands each to
    /// its log (in `Outputs`), its `tail -f` followers and its attached clients.
    fn on_pipe(&mut self, key: usize) {
        for _ in 0..READS_PER_WAKEUP {
            let server = &self.server;
            match self.outputs.read(&mut self.io, key, |slot, stream| server.watches(slot, stream)) {
                ReadOutcome::Chunk(slot, stream, n) => {
                    let bytes = self.outputs.chunk(n);
                    if self.server.has_followers() {
                        self.server.feed_followers(&mut self.io, TailSource::Proc(slot, stream), bytes);
                    }
                    self.server.feed_attached(&mut self.io, slot, bytes);
                    if n < READ_SIZE {
                        return;
                    }
                }
                ReadOutcome::Filed(n) if n < READ_SIZE => return,
                ReadOutcome::Filed(_) => {}
                ReadOutcome::Idle => return,
                ReadOutcome::Closed(end) => {
                    if let Some((slot, status)) = end {
                        self.server.end_attached(&mut self.io, slot, status);
                    }
                    return;
                }
            }
        }
    }

    fn link_failed(&mut self, why: &LinkError) {
        self.io.log.log(LogLevel::Critical, &format!("cannot reach the spawner: {why}; exiting"));
        self.exit_code = Some(1);
    }

    fn on_link(&mut self, now: Instant) {
        loop {
            match self.link.recv(&mut self.io.w) {
                Ok(Some((ev, fds))) => self.on_spawner_event(ev, fds, now),
                Ok(None) => return,
                Err(e) => {
                    let line = match e {
                        // The spawner never closes the link first: it died, and its programs
                        // with it (child.rs gives each SIGKILL as parent-death signal).
                        LinkError::Recv(common::proto::spawn::ProtoError::Closed) => format!(
                            "the spawner (pid {}) is gone; every program was sent SIGKILL by the kernel (parent-death signal); exiting",
                            self.spawner_pid
                        ),
                        e => format!("spawner link: {e}; exiting"),
                    };
                    self.io.log.log(LogLevel::Critical, &line);
                    drop(self.io.w.remove(KEY_LINK));
                    self.exit_code = Some(1);
                    return;
                }
            }
        }
    }

    fn on_spawner_event(&mut self, ev: SpawnEvent, fds: Vec<OwnedFd>, now: Instant) {
        let input = match ev {
            SpawnEvent::Spawned { token, spawn_id, pid, fds: set } => {
                let fds_received = fds.len() >= set.count();
                let spawn_id = SpawnId(spawn_id);
                if fds_received {
                    self.arrived = Some((spawn_id, set, fds));
                }
                SpawnerInput::Spawned { token, spawn_id, pid: Pid::from_raw(pid), fds: set, fds_received }
            }
            SpawnEvent::SpawnFailed { token, error, .. } => SpawnerInput::SpawnFailed { token, error },
            SpawnEvent::Exited { spawn_id, status } => {
                let id = SpawnId(spawn_id);
                // Attached clients hear of the exit once the last output is read.
                if let Some((slot, Some(code))) = self.outputs.exited(id, status) {
                    self.server.end_attached(&mut self.io, slot, code);
                }
                self.feed(Input::Spawner(SpawnerInput::Exited { spawn_id: id, status }), now);
                // Acted on (the restart, if any, is asked for already): the spawner may forget it.
                if let Err(e) = self.link.send(&mut self.io.w, &Request::ExitSeen { spawn_id }) {
                    self.link_failed(&e);
                }
                return;
            }
            SpawnEvent::SignalFailed { spawn_id, error } => {
                SpawnerInput::SignalFailed { spawn_id: SpawnId(spawn_id), error }
            }
            SpawnEvent::DaemonSignal { signal } => match Signal::try_from(signal) {
                Ok(sig) => {
                    if sig == Signal::SIGHUP {
                        self.server.refresh_access();
                    }
                    return self.feed(Input::Signal(sig), now);
                }
                Err(_) => return self.io.log.warn(&format!("ignoring forwarded signal {}", signal_name(signal))),
            },
            SpawnEvent::ConfigChunk { more, data } => {
                if let Err(e) = self.link.assembler.push(more, &data) {
                    self.io.log.error(&format!("config from the spawner: {e}"));
                }
                return;
            }
            SpawnEvent::ConfigEnd { generation, token } => {
                let items = self.link.assembler.finish().map_err(|e| e.to_string());
                SpawnerInput::Config { generation, token, items }
            }
            SpawnEvent::ConfigRejected { token, error } => SpawnerInput::ConfigRejected { token, error },
            other => {
                if other.fd_count() > fds.len() {
                    return self.io.log.error(&format!("a message from the spawner lost its fds: {other:?}"));
                }
                return self.io.log.error(&format!("unexpected message from the spawner: {other:?}"));
            }
        };
        self.feed(Input::Spawner(input), now);
        // Fds no process took close here.
        self.arrived = None;
    }

    /// Carries out the core's decisions, in order.
    fn carry_out(&mut self, fx: Effects, now: Instant) {
        for effect in fx {
            self.carry_out_one(effect, now);
        }
    }

    fn carry_out_one(&mut self, effect: Effect, now: Instant) {
        let io = &mut self.io;
        match effect {
            Effect::Spawner(req) => {
                if let Err(e) = self.link.send(&mut io.w, &req) {
                    self.link_failed(&e);
                }
            }
            Effect::Reply(client, reply) => self.server.reply(io, client, &reply),
            Effect::Log(level, text) => io.log.log(level, &text),
            Effect::PeerLog { uid, text } => self.server.peer_log(io, uid, &text, now),
            Effect::Close(client) => {
                self.server.flush(io, client);
                self.server.drop_client(io, client);
            }
            Effect::Arm(at, id) => self.timers.arm(at, id),
            Effect::Notify(n) => {
                let req = Request::Notify {
                    ready: n.ready,
                    reloading: n.reloading,
                    stopping: n.stopping,
                    watchdog: n.watchdog,
                    status: n.status,
                };
                if let Err(e) = self.link.send(&mut io.w, &req) {
                    self.link_failed(&e);
                }
            }
            Effect::Configure { slot, program, instance } => {
                self.outputs.configure(slot, program, instance);
                if let (None, Some(path)) = (&self.replace_for, self.outputs.outside(slot)) {
                    self.replace_for = Some(path.to_path_buf());
                }
            }
            Effect::Forget(slot) => self.outputs.forget(slot),
            Effect::BindOutput { spawn_id, slot } => {
                if let Some((set, fds)) = self.adopted.remove(&spawn_id) {
                    self.outputs.bind(io, spawn_id, slot, set, fds);
                } else if let Some((id, set, fds)) = self.arrived.take() {
                    if id == spawn_id {
                        self.outputs.bind(io, spawn_id, slot, set, fds);
                    }
                }
            }
            Effect::EndFollowers(which, message) => {
                let matches = |s: &TailSource| match (which, s) {
                    (Followed::Proc(slot), TailSource::Proc(sl, _)) => *sl == slot,
                    (Followed::AllProcs, TailSource::Proc(..)) => true,
                    (_, TailSource::Main) => false,
                };
                self.server.end_followers(io, matches, &message);
            }
            Effect::Tail { to, source, bytes, follow } => {
                let data = match source {
                    TailSource::Main => {
                        let recent = &io.log.recent;
                        if recent.len() >= bytes {
                            recent.last(bytes)
                        } else {
                            io.log.file().read_tail(bytes)
                        }
                    }
                    TailSource::Proc(slot, stream) => self
                        .outputs
                        .get(slot)
                        .map(|o| o.logs[usize::from(stream == Stream::Stderr)].tail(bytes))
                        .unwrap_or_default(),
                };
                self.server.reply(io, to.client, &Reply::ok(to.id, json!({ "data": B64.encode(&data) })));
                if follow {
                    self.server.follow(to.client, to.id, source);
                }
            }
            Effect::ClearLogs { to, slots } => {
                let mut results = Vec::new();
                for (slot, name) in slots {
                    let Some(o) = self.outputs.get_mut(slot) else { continue };
                    let mut ok = true;
                    for l in &mut o.logs {
                        l.recent.clear();
                        if let Some(Err(e)) = l.file.as_mut().map(|f| f.clear()) {
                            ok = false;
                            io.log.error(&format!("'{name}': cannot clear its log: {e}"));
                        }
                    }
                    let message = if ok { "cleared" } else { "ERROR (cannot clear its log)" };
                    results.push(ActionResult { name, ok, message: message.to_owned() });
                }
                self.server.reply(io, to.client, &Reply::ok(to.id, json!(results)));
            }
            Effect::Attach { to, slot, name, rows, cols } => {
                let is_pty = self.outputs.get(slot).is_some_and(|o| o.pty.is_some());
                self.server.reply(io, to.client, &Reply::ok(to.id, json!({ "name": name, "pty": is_pty })));
                self.server.set_attached(to.client, slot, name.clone());
                io.log.info(&format!("client {} attached to '{name}'", to.client));
                if let Some(pty) = self.outputs.get_mut(slot).and_then(|o| o.pty.as_mut()) {
                    if rows > 0 && cols > 0 {
                        if let Err(e) = pty.resize(rows, cols) {
                            io.log.warn(&format!("'{name}': cannot set the window size: {e}"));
                        }
                    }
                    let redraw = pty.redraw();
                    self.server.send_frame_data(io, to.client, &redraw);
                }
            }
            Effect::Status(to, rows) => {
                let wall = SystemTime::now();
                let infos: Vec<_> = rows.iter().map(|r| self.outputs.render(r, now, wall)).collect();
                self.server.reply(io, to.client, &Reply::ok(to.id, json!(infos)));
            }
            Effect::ReopenLogs => {
                io.log.reopen();
                self.outputs.reopen();
            }
            Effect::Exit(code) => self.exit_code = Some(code),
        }
    }
}
