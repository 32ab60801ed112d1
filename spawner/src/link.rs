//! The spawner's loop: one poll over the signalfd and the link to the supervisor. Requests are
//! answered as the link's state permits (OpenSSH monitor style); any protocol error ends the
//! link, and with it the supervisor.
//!
//! The supervisor is disposable (issue 16): when it dies for any reason but an orderly exit, the
//! spawner starts a new one exactly as it started the first (same uid, same confinement, same
//! control socket) and hands it the inventory: every child not reported ended, with the
//! spawner's copies of its fds, the process records the last supervisor asked it to keep, then
//! the exits and signals that arrived meanwhile. The first restarts are immediate, later ones
//! back off up to 1 s apart ([`restart_delay`]); after [`CRASH_LOOP_DEATHS`] deaths within
//! [`CRASH_LOOP_WINDOW`] the spawner stops every program in priority order and exits 1, so the
//! service manager's `Restart=` takes over.

use crate::children::{Child, Children};
use crate::leftovers::Leftovers;
use crate::prepare::{self, ParentEnds};
use crate::setup::SupervisorUser;
use crate::{child, dispatch, privdrop};
use common::config::model::Server;
use common::config::{self, Config, ReloadPlan};
use common::proto::spawn::{
    config_events, ConfigItem, Event, ExitStatus, FdSet, Link, ProcRecord, ProtoError, Request, MAX_ITEM, REPLACE_EXIT,
    VERSION,
};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// Supervisor deaths within [`CRASH_LOOP_WINDOW`] that end taskmasterd (issue 16: 10).
pub const CRASH_LOOP_DEATHS: usize = 10;
/// The window in which [`CRASH_LOOP_DEATHS`] deaths end taskmasterd (60 s).
pub const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(60);
/// The longest wait before a new supervisor is started (1 s).
pub const MAX_RESTART_DELAY: Duration = Duration::from_secs(1);

/// Deaths count towards the restart delay for this long (10 s): a supervisor that dies now and
/// then is restarted at once.
pub const BACKOFF_WINDOW: Duration = Duration::from_secs(10);

/// How long to wait before starting a new supervisor after the `deaths`-th death within
/// [`BACKOFF_WINDOW`]: none for the first two, then 100 ms doubling up to
/// [`MAX_RESTART_DELAY`].
pub fn restart_delay(deaths: usize) -> Duration {
    match deaths {
        0..=2 => Duration::ZERO,
        n => (Duration::from_millis(100) * (1u32 << (n - 3).min(8))).min(MAX_RESTART_DELAY),
    }
}

/// The signals the spawner receives through its signalfd; blocked before the first fork.
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP, Signal::SIGUSR2] {
        set.add(s);
    }
    set
}

/// What the link permits next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    AwaitHello,
    Ready,
}

/// The serving spawner.
pub struct Spawner {
    config: Config,
    generation: u64,
    /// The last re-read config, waiting for `Commit`, and its generation.
    candidate: Option<(u64, Config)>,
    last_generation: u64,
    link: Link,
    state: LinkState,
    children: Children,
    /// What dead programs left behind, ended before their exits are reported.
    leftovers: Leftovers,
    supervisor: Pid,
    /// The supervisor's user (as root), which no program may have; each new supervisor runs
    /// as it.
    supervisor_user: Option<SupervisorUser>,
    supervisor_status: Option<ExitStatus>,
    /// The listening control socket, handed to each supervisor; connections made while none
    /// runs wait in its backlog.
    listener: OwnedFd,
    /// Supervisors started after the first.
    restarts: u32,
    /// When supervisors died, within [`CRASH_LOOP_WINDOW`].
    deaths: VecDeque<Instant>,
    /// The last supervisor that died: pid and how.
    previous: Option<(i32, ExitStatus)>,
    /// When to start the next supervisor.
    restart_at: Option<Instant>,
    /// Process records kept for the next supervisor, by program and instance.
    records: HashMap<(String, u32), ProcRecord>,
    /// Signals for the daemon that arrived while no supervisor was ready.
    held_signals: Vec<i32>,
    /// The supervisor died too often: every program is being stopped.
    crash_loop: bool,
    /// Start a new supervisor when one dies (off only in tests that play the supervisor).
    restart_supervisor: bool,
    /// taskmasterd was asked to stop (TERM, INT, QUIT): a supervisor that dies now is not
    /// replaced; what it left is stopped here.
    stop_requested: bool,
    /// Stop serving now: no supervisor runs and none will.
    exit_now: bool,
    /// The pid of an earlier taskmasterd that did not exit in order (from the pidfile).
    unclean_predecessor: Option<i32>,
    sigfd: SignalFd,
    base_env: Vec<(String, String)>,
    as_root: bool,
    log_to_stderr: bool,
    link_open: bool,
    /// The supervisor's stdout/stderr pipe, copied to ours.
    relay: Option<crate::privdrop::StderrRelay>,
}

/// Prints one spawner line to stderr (under systemd, the journal). The supervisor owns the main
/// log; the spawner speaks only when something is wrong.
fn say(msg: &str) {
    eprintln!("taskmasterd[spawner]: {msg}");
}

impl Spawner {
    /// A spawner serving `link`, whose supervisor has pid `supervisor`.
    /// `supervisor_user` is the user the supervisor runs as when it was dropped to one (as
    /// root): no program may be spawned with its uid, and a new supervisor runs as it.
    /// `listener` is the control socket, handed to every new supervisor.
    pub fn new(
        config: Config,
        link: Link,
        supervisor: Pid,
        supervisor_user: Option<SupervisorUser>,
        listener: OwnedFd,
        sigfd: SignalFd,
        log_to_stderr: bool,
    ) -> Self {
        let base_env = inherited_env()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
            .collect();
        let (leftovers, mechanism) = Leftovers::detect();
        say(&mechanism);
        Spawner {
            config,
            generation: 1,
            candidate: None,
            last_generation: 1,
            link,
            state: LinkState::AwaitHello,
            children: Children::default(),
            leftovers,
            supervisor,
            supervisor_user,
            supervisor_status: None,
            listener,
            restarts: 0,
            deaths: VecDeque::new(),
            previous: None,
            restart_at: None,
            records: HashMap::new(),
            held_signals: Vec::new(),
            crash_loop: false,
            restart_supervisor: true,
            stop_requested: false,
            exit_now: false,
            unclean_predecessor: None,
            sigfd,
            base_env,
            as_root: nix::unistd::geteuid().is_root(),
            log_to_stderr,
            link_open: true,
            relay: None,
        }
    }

    /// Never starts a new supervisor: when this one dies, every program is stopped and `run`
    /// returns (for tests in which the test plays the supervisor).
    pub fn without_restarts(mut self) -> Self {
        self.restart_supervisor = false;
        self
    }

    /// Tells the first supervisor that an earlier taskmasterd with pid `pid` (from the pidfile)
    /// did not exit in order, so that the main log records it: killed with SIGKILL, it could
    /// not say so itself, and its supervisor died with it (parent-death signal).
    pub fn after_unclean_exit(mut self, pid: Option<i32>) -> Self {
        self.unclean_predecessor = pid;
        self
    }

    /// Also relays the supervisor's stdout and stderr to ours (see [`crate::privdrop`]).
    pub fn with_relay(mut self, relay: crate::privdrop::StderrRelay) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Serves until a supervisor exits in order (or they die too often), then stops any child
    /// left. Returns the exit code for taskmasterd: 0 when the supervisor exited 0 and no child
    /// was left behind.
    pub fn run(mut self) -> u8 {
        loop {
            if self.exit_now {
                break;
            }
            if let Some(status) = self.supervisor_status {
                // Its last requests are still in the link: take them first (a record, a stop).
                while self.link_open && self.on_link() {}
                let replace = status == ExitStatus::Code(i32::from(REPLACE_EXIT));
                if replace && self.restart_supervisor && !self.stop_requested {
                    self.on_replace(status);
                } else if status == ExitStatus::Code(0) || !self.on_death(status) {
                    break;
                }
            }
            if self.restart_at.is_some_and(|at| at <= Instant::now()) {
                self.restart();
                continue;
            }
            let link_fd = self.link.as_fd();
            let sig_fd = self.sigfd.as_fd();
            let mut fds = vec![PollFd::new(sig_fd, PollFlags::POLLIN)];
            if self.link_open {
                fds.push(PollFd::new(link_fd, PollFlags::POLLIN));
            }
            let relay_at = fds.len();
            if let Some(relay) = &self.relay {
                fds.extend(relay.poll_fds());
            }
            // Idle without privilege but CAP_KILL: the effective capabilities come back only to
            // handle what arrived (issue 7's least privilege; a no-op when not root).
            lower_privilege();
            let due = [self.restart_at, self.leftovers.next_deadline()].into_iter().flatten().min();
            let polled = poll(&mut fds, poll_timeout(due));
            raise_privilege();
            match polled {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    say(&format!("poll: {e}"));
                    break;
                }
            }
            let sig_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
            let link_ready = self.link_open && fds.get(1).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
            let relay_ready = self.relay.as_ref().map(|r| r.readiness(&fds[relay_at..]));
            if sig_ready {
                self.on_signals();
            }
            if link_ready {
                self.on_link();
            }
            if let (Some(relay), Some(ready)) = (self.relay.as_mut(), relay_ready) {
                relay.pump(ready);
            }
            for (spawn_id, status) in self.leftovers.on_time(Instant::now()) {
                self.deliver_exit(spawn_id, status);
            }
        }
        if let Some(relay) = self.relay.as_mut() {
            relay.drain(crate::privdrop::RELAY_DRAIN);
        }
        let leftover = !self.children.is_empty() || self.leftovers.is_ending();
        if leftover {
            if !self.crash_loop {
                say(&format!("the supervisor is gone; stopping {} child process(es) it left", self.children.len()));
            }
            self.stop_leftovers();
        }
        match self.supervisor_status {
            _ if self.crash_loop => 1,
            Some(ExitStatus::Code(0)) if !leftover => 0,
            // Asked to stop, and what a dead supervisor left was stopped here in order.
            _ if self.stop_requested => 0,
            _ => 1,
        }
    }

    /// A supervisor died (not an orderly exit): schedules a new one, or, after
    /// [`CRASH_LOOP_DEATHS`] deaths within [`CRASH_LOOP_WINDOW`], gives up. Returns whether to
    /// go on serving.
    fn on_death(&mut self, status: ExitStatus) -> bool {
        if let Some(relay) = self.relay.as_mut() {
            // It is gone: what it wrote last is already in the pipe.
            relay.drain(Duration::from_millis(100));
        }
        let now = Instant::now();
        self.deaths.push_back(now);
        while self.deaths.front().is_some_and(|t| now.duration_since(*t) > CRASH_LOOP_WINDOW) {
            self.deaths.pop_front();
        }
        let pid = self.supervisor.as_raw();
        let how = status;
        if !self.restart_supervisor {
            return false;
        }
        if self.stop_requested {
            say(&format!(
                "the supervisor (pid {}) died while taskmasterd was stopping; stopping what it left",
                self.supervisor
            ));
            return false;
        }
        if self.deaths.len() >= CRASH_LOOP_DEATHS {
            say(&format!(
                "the supervisor (pid {pid}) died ({how}): {} deaths within {} s; stopping every program and exiting",
                self.deaths.len(),
                CRASH_LOOP_WINDOW.as_secs()
            ));
            self.crash_loop = true;
            return false;
        }
        let recent = self.deaths.iter().filter(|t| now.duration_since(**t) <= BACKOFF_WINDOW).count();
        let delay = restart_delay(recent);
        say(&format!(
            "the supervisor (pid {pid}) died ({how}); starting a new one{}",
            if delay.is_zero() { String::new() } else { format!(" in {} ms", delay.as_millis()) }
        ));
        self.previous = Some((pid, status));
        // A re-read the dead supervisor did not commit is forgotten; the new one starts from
        // the config in force.
        self.candidate = None;
        self.restart_at = Some(now + delay);
        self.supervisor_status = None;
        self.link_open = false;
        true
    }

    /// The supervisor asked to be replaced ([`REPLACE_EXIT`]: a re-read named log directories
    /// its confinement does not cover): the config's log paths are prepared as at start (so a
    /// new directory gets made for the supervisor's user, securely), and a new supervisor,
    /// confined to them, starts at once. Not a death.
    fn on_replace(&mut self, status: ExitStatus) {
        if let Some(relay) = self.relay.as_mut() {
            relay.drain(Duration::from_millis(100));
        }
        for problem in crate::setup::prepare_logs(&self.config, self.supervisor_user.as_ref()) {
            say(&problem);
        }
        self.previous = Some((self.supervisor.as_raw(), status));
        self.candidate = None;
        self.restart_at = Some(Instant::now());
        self.supervisor_status = None;
        self.link_open = false;
    }

    /// Starts a new supervisor as the first one was started (DESIGN §1 rule 4); it says hello
    /// and receives the config and the inventory. A failure counts as a death.
    fn restart(&mut self) {
        self.restart_at = None;
        let started = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|errno| privdrop::StartError::Sys { call: "socketpair", errno })
            .and_then(|(ours, theirs)| {
                privdrop::start_supervisor(&theirs, &self.listener, self.supervisor_user.as_ref())
                    .map(|(pid, relay)| (ours, pid, relay))
            });
        self.restarts += 1;
        match started {
            Ok((ours, pid, relay)) => {
                self.link = Link::new(ours);
                self.state = LinkState::AwaitHello;
                self.link_open = true;
                self.supervisor = pid;
                self.supervisor_status = None;
                self.relay = Some(relay);
            }
            Err(e) => {
                say(&format!("cannot start a new supervisor: {e}"));
                self.supervisor_status = Some(ExitStatus::Code(1));
            }
        }
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.sigfd.read_signal() {
            let signo = info.ssi_signo as i32;
            let stop = matches!(Signal::try_from(signo), Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT));
            self.stop_requested |= stop;
            if signo == Signal::SIGCHLD as i32 {
                self.reap();
            } else if self.link_open && self.state == LinkState::Ready {
                self.send(&Event::DaemonSignal { signal: signo }, &[]);
            } else if self.previous.is_some() && !stop {
                // A new supervisor is on its way: it gets the signal after the inventory.
                self.held_signals.push(signo);
            } else if stop {
                if self.restart_at.take().is_some() {
                    // No supervisor runs (a new one was due): stop what runs here.
                    self.exit_now = true;
                } else if self.supervisor_status.is_none() {
                    // Not serving yet: end the supervisor; what it left is stopped here.
                    let _ = kill(self.supervisor, Signal::SIGTERM);
                }
            }
        }
    }

    /// Reaps what ended: a child's exit is reported once what it left is ended (`leftovers.rs`);
    /// an orphan of a program (the spawner is their subreaper) is reaped quietly.
    fn reap(&mut self) {
        let reaped = self.children.reap();
        let now = Instant::now();
        for (spawn_id, status) in reaped.exited {
            if let Some((spawn_id, status)) = self.leftovers.on_exit(spawn_id, status, now) {
                self.deliver_exit(spawn_id, status);
            }
        }
        for (pid, status) in reaped.others {
            if pid == self.supervisor && self.supervisor_status.is_none() {
                if status != ExitStatus::Code(0) && !self.restart_supervisor {
                    say(&format!("the supervisor (pid {pid}) ended: {status:?}"));
                }
                self.supervisor_status = Some(status);
            }
        }
    }

    /// Reports a child's end to the supervisor. The child stays in the table, marked ended,
    /// until the supervisor says it acted on it ([`Request::ExitSeen`]): a supervisor that dies
    /// first, or was not ready, leaves it to the next one's inventory, followed by this exit.
    fn deliver_exit(&mut self, spawn_id: u64, status: ExitStatus) {
        if self.serving() {
            self.send(&Event::Exited { spawn_id, status }, &[]);
        }
    }

    /// Whether a live supervisor has said hello on an open link.
    fn serving(&self) -> bool {
        self.link_open && self.state == LinkState::Ready && self.supervisor_status.is_none()
    }

    fn send(&mut self, event: &Event, fds: &[BorrowedFd<'_>]) {
        if !self.link_open || self.supervisor_status.is_some() {
            // It is gone; what it would have been told waits for the next one.
            self.link_open = false;
            return;
        }
        if let Err(e) = self.link.send(event, fds) {
            say(&format!("cannot send to the supervisor: {e}; ending the link"));
            self.end_link();
        }
    }

    fn end_link(&mut self) {
        self.link_open = false;
        if self.supervisor_status.is_none() {
            let _ = kill(self.supervisor, Signal::SIGKILL);
        }
    }

    /// Handles one request; returns whether one was read (false: none waiting, or the link
    /// ended).
    fn on_link(&mut self) -> bool {
        match self.link.recv::<Request>() {
            Ok((request, _no_fds)) => {
                if let Err(e) = self.handle(request) {
                    say(&format!("refusing the supervisor's request: {e}; ending the link"));
                    self.end_link();
                }
                self.link_open
            }
            Err(ProtoError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(ProtoError::Closed) => {
                self.link_open = false;
                false
            }
            Err(e) => {
                say(&format!("protocol error from the supervisor: {e}; ending the link"));
                self.end_link();
                false
            }
        }
    }

    fn handle(&mut self, request: Request) -> Result<(), LinkError> {
        match (self.state, request) {
            (LinkState::AwaitHello, Request::Hello { version: VERSION }) => {
                self.state = LinkState::Ready;
                let notify = std::env::var_os("NOTIFY_SOCKET").is_some();
                let watchdog_usec = sd_notify::watchdog_enabled().map(|d| d.as_micros() as u64);
                self.send(
                    &Event::Hello {
                        version: VERSION,
                        spawner_pid: std::process::id() as i32,
                        owner_uid: nix::unistd::geteuid().as_raw(),
                        notify,
                        watchdog_usec,
                        journal: crate::privdrop::stderr_is_journal(),
                        restarts: self.restarts,
                        previous: self.previous,
                        unclean_predecessor: self.unclean_predecessor,
                    },
                    &[],
                );
                self.send_config();
                if self.previous.is_some() {
                    self.send_inventory();
                }
                Ok(())
            }
            (LinkState::Ready, Request::ExitSeen { spawn_id }) => {
                // Only an ended child may be forgotten: a live one keeps its pid in the table.
                if self.children.get_mut(spawn_id).is_some_and(|c| c.ended.is_some()) {
                    self.children.remove(spawn_id);
                }
                Ok(())
            }
            (LinkState::Ready, Request::Remember { program, instance, record }) => {
                // Kept only for a process of the config (in force or re-read): bounded by it.
                let known =
                    |c: &Config| c.programs.iter().any(|p| p.name == program && p.instances().contains(&instance));
                if known(&self.config) || self.candidate.as_ref().is_some_and(|(_, c)| known(c)) {
                    match record {
                        Some(r) => self.records.insert((program, instance), r),
                        None => self.records.remove(&(program, instance)),
                    };
                }
                Ok(())
            }
            (LinkState::AwaitHello, Request::Hello { version }) => Err(LinkError::Version(version)),
            (LinkState::Ready, Request::Spawn { token, program, instance, generation }) => {
                self.spawn(token, &program, instance, generation);
                Ok(())
            }
            (LinkState::Ready, Request::Reread { token }) => {
                self.reread(token);
                Ok(())
            }
            (LinkState::Ready, Request::Commit { generation, programs }) => self.commit(generation, &programs),
            (LinkState::Ready, Request::Notify { ready, reloading, stopping, watchdog, status }) => {
                notify(ready, reloading, stopping, watchdog, status.as_deref())
            }
            (LinkState::Ready, Request::Signal { spawn_id, signal, purpose }) => {
                // A child whose exit is held while its leftovers are ended: to what is left.
                let held = Signal::try_from(signal).ok().and_then(|s| self.leftovers.signal(spawn_id, s));
                let result = match held {
                    Some(r) => r.map_err(|e| format!("killpg of spawn id {spawn_id}: {e:?} ({})", e.desc())),
                    None => dispatch::check_signal(&self.children, spawn_id, signal, purpose)
                        .map_err(|r| r.to_string())
                        .and_then(|t| {
                            let r = if t.group { killpg(t.pid, t.signal) } else { kill(t.pid, t.signal) };
                            r.map_err(|e| format!("kill {}: {e:?} ({})", t.pid, e.desc()))
                        }),
                };
                if let Err(error) = result {
                    say(&format!("signal {signal} for spawn id {spawn_id}: {error}"));
                    self.send(&Event::SignalFailed { spawn_id, error }, &[]);
                }
                Ok(())
            }
            (state, other) => Err(LinkError::NotPermitted { request: Box::new(other), state }),
        }
    }

    /// Hands a new supervisor what the last one left (issue 16): every child not reported
    /// ended with the spawner's copies of its fds, the kept records, then the exits and
    /// signals no supervisor has heard.
    fn send_inventory(&mut self) {
        if !self.serving() {
            return;
        }
        let mut failed = None;
        let mut adopted = 0u32;
        for (spawn_id, c) in self.children.all() {
            let event = Event::Adopt {
                spawn_id,
                program: c.program.clone(),
                instance: c.instance,
                pid: c.pid.as_raw(),
                generation: c.generation,
                started_ns: c.started_ns,
                fds: c.fdset,
                ended: c.ended.is_some(),
            };
            let fds: Vec<BorrowedFd<'_>> = c.fds.iter().map(|f| f.as_fd()).collect();
            if let Err(e) = self.link.send(&event, &fds) {
                failed = Some(e);
                break;
            }
            adopted += 1;
        }
        if let Some(e) = failed {
            say(&format!("cannot send the inventory to the supervisor: {e}; ending the link"));
            return self.end_link();
        }
        let records: Vec<Event> = self
            .records
            .iter()
            .map(|((program, instance), record)| Event::Remembered {
                program: program.clone(),
                instance: *instance,
                record: record.clone(),
            })
            .collect();
        for event in records {
            self.send(&event, &[]);
        }
        self.send(&Event::AdoptEnd { adopted }, &[]);
        // An exit held while its leftovers are ended is reported when they are (`leftovers.rs`).
        let ended: Vec<(u64, ExitStatus)> = self
            .children
            .all()
            .into_iter()
            .filter(|(id, _)| !self.leftovers.holds(*id))
            .filter_map(|(id, c)| c.ended.map(|s| (id, s)))
            .collect();
        for (spawn_id, status) in ended {
            self.deliver_exit(spawn_id, status);
        }
        for signal in std::mem::take(&mut self.held_signals) {
            self.send(&Event::DaemonSignal { signal }, &[]);
        }
    }

    fn send_config(&mut self) {
        let items = self.config_items(&self.config, None);
        for event in config_events(&items, self.generation, None) {
            self.send(&event, &[]);
        }
    }

    /// What the supervisor is told of `config`: the server and socket sections and every program,
    /// without their environments (it never needs them, so it never sees them), and the plan if
    /// any.
    fn config_items(&self, config: &Config, plan: Option<ReloadPlan>) -> Vec<ConfigItem> {
        let mut items = vec![ConfigItem::server(&config.server, &config.socket, self.log_to_stderr)];
        items.extend(config.programs.iter().map(ConfigItem::program));
        items.extend(plan.map(ConfigItem::Plan));
        items
    }

    /// Re-reads the config file (DESIGN §4: only the spawner reads it) and sends the supervisor
    /// the new config and what changed, or the errors. Nothing runs differently until `Commit`.
    fn reread(&mut self, token: u64) {
        let loaded = config::load(&self.config.file, &config::Context::current()).and_then(|new| {
            let items = self.config_items(&new, Some(config::diff(&self.config, &new)));
            // Validation bounds every program; the plan, a list of names, could still exceed
            // what the supervisor accepts on a huge config: refuse it rather than send it.
            match items.iter().map(|i| i.encode().len()).max() {
                Some(len) if len > MAX_ITEM => Err(changes_too_large(&new.file, len)),
                _ => Ok((new, items)),
            }
        });
        match loaded {
            Err(e) => {
                // One located line each: never a quote of the file (the main log is readable by
                // viewers, and an include may not be a config at all).
                for line in &e.errors {
                    say(&format!("config re-read failed, nothing changed: {line}"));
                }
                self.send(&Event::ConfigRejected { token, error: e.to_string() }, &[]);
            }
            Ok((new, items)) => {
                self.last_generation += 1;
                let generation = self.last_generation;
                self.candidate = Some((generation, new));
                for event in config_events(&items, generation, Some(token)) {
                    self.send(&event, &[]);
                }
            }
        }
    }

    /// Makes the re-read config current for `programs` (all when empty).
    fn commit(&mut self, generation: u64, programs: &[String]) -> Result<(), LinkError> {
        let Some((cand_gen, candidate)) = self.candidate.as_ref() else {
            return Err(LinkError::CommitWithoutReread);
        };
        if *cand_gen != generation {
            return Err(LinkError::CommitGeneration { generation, reread: *cand_gen });
        }
        if programs.is_empty() {
            let (server, socket) = (self.config.server.clone(), self.config.socket.clone());
            let mut next = candidate.clone();
            // server and socket take effect at restart; their environment reaches children now.
            next.server = Server { environment: candidate.server.environment.clone(), ..server };
            next.socket = socket;
            self.config = next;
        } else {
            for name in programs {
                self.config.programs.retain(|p| &p.name != name);
                if let Some(p) = candidate.programs.iter().find(|p| &p.name == name) {
                    self.config.programs.push(p.clone());
                }
            }
            self.config.programs.sort_by(|a, b| a.name.cmp(&b.name));
        }
        self.generation = generation;
        crate::setup::raise_nofile_for(&self.config);
        let config = &self.config;
        self.records.retain(|(program, instance), _| {
            config.programs.iter().any(|p| &p.name == program && p.instances().contains(instance))
        });
        Ok(())
    }

    fn spawn(&mut self, token: u64, program: &str, instance: u32, generation: u64) {
        let result =
            dispatch::check_spawn(&self.config, &self.children, self.generation, program, instance, generation)
                .map_err(|r| {
                    say(&r.to_string());
                    SpawnFailure::Refused(r)
                })
                .and_then(|p| {
                    let (mut prepared, ends) =
                        prepare::prepare(&self.config, p, instance, &self.base_env, self.as_root)?;
                    // The config refuses it, but a re-read may change server.user (which takes
                    // effect at restart) and a program's user together: check the uid in force.
                    let supervisor_uid = self.supervisor_user.as_ref().map(|u| u.uid);
                    if prepared.identity.as_ref().is_some_and(|i| Some(i.uid) == supervisor_uid) {
                        return Err(SpawnFailure::SupervisorUid {
                            program: p.name.clone(),
                            uid: prepared.identity.as_ref().map_or(0, |i| i.uid.as_raw()),
                        });
                    }
                    let (cgroup, dir) =
                        p.cleanupgroup.then(|| self.leftovers.cgroup_for(&p.name, instance)).flatten().unzip();
                    prepared.cgroup = dir;
                    let dir = p.directory.as_ref().map(|d| d.display().to_string());
                    let pid = child::spawn(&prepared, &p.command[0], dir.as_deref())?;
                    let mut child = Child::new(pid, &p.name, instance, p.stopasgroup, p.killasgroup);
                    child.cleanupgroup = p.cleanupgroup;
                    Ok((child, ends, cgroup, Duration::from_secs(p.stopwaitsecs)))
                });
        match result {
            Ok((mut c, ends, cgroup, stopwait)) => {
                let (pid, cleanupgroup) = (c.pid, c.cleanupgroup);
                let ParentEnds { pty, stdin, stdout, stderr, hold } = ends;
                let fds = FdSet {
                    stdin: stdin.is_some(),
                    stdout: stdout.is_some(),
                    stderr: stderr.is_some(),
                    pty,
                    hold: hold.is_some(),
                };
                let (hold_r, hold_w) = hold.unzip();
                // The spawner keeps these, for a supervisor that replaces this one (issue 16).
                c.fds = [stdin, stdout, stderr, hold_r, hold_w].into_iter().flatten().collect();
                c.fdset = fds;
                c.generation = self.generation;
                let spawn_id = self.children.insert(c);
                if cleanupgroup {
                    self.leftovers.watch(spawn_id, pid, cgroup, stopwait);
                }
                let pid = pid.as_raw();
                let sent = match self.children.get_mut(spawn_id) {
                    Some(c) if self.link_open && self.supervisor_status.is_none() => {
                        let borrowed: Vec<BorrowedFd<'_>> = c.fds.iter().map(|f| f.as_fd()).collect();
                        self.link.send(&Event::Spawned { token, spawn_id, pid, fds }, &borrowed)
                    }
                    _ => Ok(()),
                };
                if let Err(e) = sent {
                    say(&format!("cannot send to the supervisor: {e}; ending the link"));
                    self.end_link();
                }
            }
            Err(failure) => {
                let (step, errno) = (failure.step().map(str::to_owned), failure.errno().map(|e| e as i32));
                self.send(&Event::SpawnFailed { token, error: failure.to_string(), step, errno }, &[])
            }
        }
    }

    /// Stops children the supervisor left (it died, or they were left behind), in priority
    /// order as supervisord stops programs (the highest `priority` first): each group gets its
    /// programs' stop signals, then SIGKILL after the group's longest `stopwaitsecs`, before the
    /// next group is stopped; what they leave is ended too (`leftovers.rs`: SIGTERM, then
    /// SIGKILL within the same time).
    fn stop_leftovers(&mut self) {
        let mut groups: std::collections::BTreeMap<std::cmp::Reverse<i32>, Vec<(Pid, Signal, u64)>> =
            std::collections::BTreeMap::new();
        for (_, c) in self.children.live() {
            let p = self.config.programs.iter().find(|p| p.name == c.program);
            let priority = p.map_or(999, |p| p.priority);
            let signal = p.and_then(|p| Signal::try_from(p.stopsignal).ok()).unwrap_or(Signal::SIGTERM);
            let wait = p.map_or(10, |p| p.stopwaitsecs);
            groups.entry(std::cmp::Reverse(priority)).or_default().push((c.pid, signal, wait));
        }
        for (_, group) in groups {
            for (pid, signal, _) in &group {
                // Its process group (it is the leader: setsid), so that the signal comes once.
                if killpg(*pid, *signal).is_err() {
                    let _ = kill(*pid, *signal);
                }
            }
            let wait = group.iter().map(|(_, _, w)| *w).max().unwrap_or(10);
            let deadline = Instant::now() + Duration::from_secs(wait);
            let alive = |children: &Children| {
                group.iter().filter(|(pid, _, _)| children.live().any(|(_, c)| c.pid == *pid)).count()
            };
            while (alive(&self.children) > 0 || self.leftovers.is_ending()) && Instant::now() < deadline {
                let next = self.leftovers.next_deadline().map_or(deadline, |at| at.min(deadline));
                self.wait_and_reap_quietly(next);
            }
            for (pid, _, _) in &group {
                if self.children.live().any(|(_, c)| c.pid == *pid) && killpg(*pid, Signal::SIGKILL).is_err() {
                    let _ = kill(*pid, Signal::SIGKILL);
                }
            }
        }
        self.leftovers.kill_all(Instant::now());
        while !self.children.is_empty() {
            let _ = nix::sys::wait::wait();
            self.reap_quietly();
        }
        // Bounded: a group not empty `KILL_GRACE` after its SIGKILL is given up.
        while let Some(next) = self.leftovers.next_deadline() {
            self.wait_and_reap_quietly(next);
        }
    }

    /// On the way out: waits for a signal until `until`, then reaps and ends leftovers as the
    /// loop would, with nobody left to tell.
    fn wait_and_reap_quietly(&mut self, until: Instant) {
        let mut fds = [PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, poll_timeout(Some(until)));
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
        self.reap_quietly();
    }

    fn reap_quietly(&mut self) {
        let now = Instant::now();
        for (spawn_id, status) in self.children.reap().exited {
            let _ = self.leftovers.on_exit(spawn_id, status, now);
        }
        let _ = self.leftovers.on_time(now);
    }
}

/// The error for a re-read whose list of changes is `len` bytes encoded, over [`MAX_ITEM`].
fn changes_too_large(file: &std::path::Path, len: usize) -> config::ConfigError {
    let message =
        format!("the list of changes is too large to send to the supervisor ({len} bytes encoded, limit {MAX_ITEM})");
    config::ConfigError::whole(file, message)
}

/// A poll timeout until `deadline` (rounded up to the millisecond, so that a wakeup is never
/// early), or none.
fn poll_timeout(deadline: Option<Instant>) -> PollTimeout {
    match deadline {
        None => PollTimeout::NONE,
        Some(at) => {
            let left = at.saturating_duration_since(Instant::now());
            let ms = left.as_micros().div_ceil(1000);
            PollTimeout::from(u16::try_from(ms).unwrap_or(u16::MAX))
        }
    }
}

/// Empties the effective capability set but for CAP_KILL; the permitted set keeps them for
/// later. CAP_KILL stays because the kernel checks the parent-death signal (child.rs) against
/// the credentials of the dying spawner: without it, a spawner killed while idle could not
/// signal a program of another uid, nor the supervisor, and they would outlive it.
fn lower_privilege() {
    let kill_only: caps::CapsHashSet = caps::read(None, caps::CapSet::Permitted)
        .map(|p| p.into_iter().filter(|c| *c == caps::Capability::CAP_KILL).collect())
        .unwrap_or_default();
    let _ = caps::set(None, caps::CapSet::Effective, &kill_only);
}

/// Makes the permitted capabilities effective again.
fn raise_privilege() {
    if let Ok(permitted) = caps::read(None, caps::CapSet::Permitted) {
        let _ = caps::set(None, caps::CapSet::Effective, &permitted);
    }
}

/// Variables for the service manager that neither the supervisor nor the programs may see:
/// the spawner (systemd's main pid) alone talks to it.
pub const SERVICE_MANAGER_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// The daemon's environment as the supervisor and the programs inherit it: without
/// [`SERVICE_MANAGER_VARS`].
pub fn inherited_env() -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
    std::env::vars_os().filter(|(k, _)| !SERVICE_MANAGER_VARS.iter().any(|v| k == v))
}

/// Sends the supervisor's notification to the service manager, checked first: a status is one
/// line of printable text of at most `MAX_STATUS` bytes.
/// Why a `Spawn` request did not give a child; its text is the `SpawnFailed` error, its step
/// and errno that event's typed fields.
#[derive(Debug, thiserror::Error)]
enum SpawnFailure {
    /// The request does not fit the config or the children (unknown program, stale generation …).
    #[error(transparent)]
    Refused(dispatch::Refusal),
    /// The program would run as the supervisor's own uid.
    #[error("refused: '{program}' would run as the supervisor's own uid {uid}")]
    SupervisorUid {
        /// The program.
        program: String,
        /// The uid.
        uid: u32,
    },
    /// The command, user or a system call of the preparation failed.
    #[error(transparent)]
    Prepare(#[from] prepare::PrepareError),
    /// The fork, or a step of the child before exec, failed.
    #[error(transparent)]
    Child(#[from] child::SpawnError),
}

impl SpawnFailure {
    /// The step that failed, when one did: `execve`, `chdir`, `fork`, `find command` …
    fn step(&self) -> Option<&'static str> {
        match self {
            SpawnFailure::Refused(_) | SpawnFailure::SupervisorUid { .. } => None,
            SpawnFailure::Prepare(e) => e.step(),
            SpawnFailure::Child(e) => e.step(),
        }
    }

    /// The errno of that step.
    fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            SpawnFailure::Refused(_) | SpawnFailure::SupervisorUid { .. } => None,
            SpawnFailure::Prepare(e) => e.errno(),
            SpawnFailure::Child(e) => e.errno(),
        }
    }
}

/// Why the spawner refuses a request of the supervisor and ends the link (DESIGN §1: the
/// privileged side trusts nothing from its child).
#[derive(Debug, thiserror::Error)]
enum LinkError {
    /// The supervisor's hello names another protocol version; holds that version.
    #[error("protocol version {0}, expected {VERSION}")]
    Version(u16),
    /// A request the link's state does not permit (anything before the hello, a second hello).
    #[error("{request:?} is not permitted in state {state:?}")]
    NotPermitted {
        /// The request refused.
        request: Box<Request>,
        /// The state the link was in.
        state: LinkState,
    },
    /// `Commit` with no re-read config waiting.
    #[error("commit without a re-read config")]
    CommitWithoutReread,
    /// `Commit` of another generation than the one re-read.
    #[error("commit of generation {generation}, the re-read one is {reread}")]
    CommitGeneration {
        /// The generation the supervisor asked for.
        generation: u64,
        /// The generation of the re-read config.
        reread: u64,
    },
    /// A `Notify` status longer than `MAX_STATUS` or holding a control character.
    #[error("a notify status that is not one short printable line")]
    NotifyStatus,
}

/// Tells the service manager (sd_notify) what the supervisor reports; a failure to send is
/// logged, not returned.
///
/// # Errors
/// [`LinkError::NotifyStatus`]: the status is not one short printable line.
fn notify(ready: bool, reloading: bool, stopping: bool, watchdog: bool, status: Option<&str>) -> Result<(), LinkError> {
    use sd_notify::NotifyState;
    if let Some(s) = status {
        if s.len() > common::proto::spawn::MAX_STATUS || s.chars().any(char::is_control) {
            return Err(LinkError::NotifyStatus);
        }
    }
    let mut states = Vec::new();
    if reloading {
        states.push(NotifyState::Reloading);
        states.extend(NotifyState::monotonic_usec_now().ok());
    }
    if ready {
        states.push(NotifyState::Ready);
    }
    if stopping {
        states.push(NotifyState::Stopping);
    }
    if watchdog {
        states.push(NotifyState::Watchdog);
    }
    if let Some(s) = status {
        states.push(NotifyState::Status(s));
    }
    if let Err(e) = sd_notify::notify(&states) {
        say(&format!("sd_notify: {e}"));
    }
    Ok(())
}

/// A non-blocking, close-on-exec signalfd for [`handled_signals`], which it blocks.
///
/// # Errors
/// The errno of `sigprocmask` or `signalfd`.
pub fn signal_fd() -> nix::Result<SignalFd> {
    let set = handled_signals();
    set.thread_block()?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_are_immediate_then_back_off_to_one_second() {
        let ms = |n| restart_delay(n).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3), ms(4), ms(5), ms(6), ms(7), ms(50)],
            [0, 0, 0, 100, 200, 400, 800, 1000, 1000]
        );
        // Ten deaths at the longest delays still fit the crash-loop window.
        let worst: Duration = (1..CRASH_LOOP_DEATHS).map(restart_delay).sum();
        assert!(worst < CRASH_LOOP_WINDOW, "{worst:?}");
    }
}
