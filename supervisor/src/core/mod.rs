//! The core: everything the supervisor decides, and nothing it does (STYLE §2.6b). It holds the
//! processes ([`registry`]), their state machines ([`state`]), the jobs that wait for them
//! ([`jobs`]) and the re-read queue ([`reload`]); it is driven by [`Core::handle`], which takes
//! one [`Input`] and the time, and returns the [`Effect`]s the edge (`crate::io`) carries out.
//! It reads no clock, holds no fd and never sees a byte of program output, so its tests are
//! tables with no process, no clock and no sleep; and since its whole state is here, a core can
//! be rebuilt from what the spawner knows ([`Core::restore`]).
//!
//! Module order, with no cycle: `ids` and `state` are leaves; `effects` names the boundary;
//! `registry` applies events to machines; `jobs` and `reload` work on the registry; this file
//! routes inputs and answers the control actions.

pub mod effects;
pub mod ids;
pub mod jobs;
pub mod registry;
pub mod reload;
pub mod state;
#[cfg(test)]
mod tests;

use crate::access::{required_role, role_name};
use common::config::{Program, Role, Stream};
use common::proto::control::{kind, Action, Reply, Request};
use common::proto::spawn::{ProcRecord, Request as SpawnRequest, SignalPurpose};
use common::units::{parse_signal, signal_name};
use effects::{Effect, Effects, Input, Notify, Out, Peer, SpawnerInput, StatusRow, TailSource};
pub use ids::Mono;
use ids::{ClientId, ReplyTo, Slot, SpawnId, TimerId};
use jobs::{result, Jobs, Then};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use registry::{Registry, Target};
use reload::{Ctx, ReloadKind, Reloads};
use serde_json::json;
use state::{Event, Machine, ProcessState};
use std::time::{Duration, Instant};

/// Most bytes of a `tail` or `maintail` answer (512 KiB; as base64 it still fits one line).
/// Larger requests are clamped: the bytes are read from the end of the files, never whole.
pub const MAX_TAIL_BYTES: usize = 512 * 1024;

/// What the core starts from: the config the spawner sent and what the handshake said.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Every program, in the file's order.
    pub programs: Vec<Program>,
    /// The config generation.
    pub generation: u64,
    /// The spawner's pid (`taskmasterctl pid`).
    pub spawner_pid: Pid,
    /// A service manager listens (sd_notify).
    pub notify: bool,
    /// How often to ping its watchdog (half of WATCHDOG_USEC).
    pub watchdog: Option<Duration>,
    /// How `Instant`s of this process map to CLOCK_MONOTONIC nanoseconds, the clock the
    /// spawner's inventory and the kept records use.
    pub mono: Mono,
    /// Supervisors started before this one since taskmasterd started (`version` says it).
    pub restarts: u32,
}

/// One live child as the spawner's inventory lists it (for [`Core::restore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveChild {
    /// Its program's name.
    pub program: String,
    /// Its instance.
    pub instance: u32,
    /// Its spawn id.
    pub spawn_id: SpawnId,
    /// Its pid.
    pub pid: Pid,
    /// When it was spawned, CLOCK_MONOTONIC nanoseconds.
    pub started_ns: u64,
    /// The config generation it was spawned under.
    pub generation: u64,
    /// It has ended; its exit follows.
    pub ended: bool,
}

/// A process record the previous supervisor asked the spawner to keep
/// ([`SpawnRequest::Remember`]), for [`Core::restore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptRecord {
    /// Its program.
    pub program: String,
    /// Its instance.
    pub instance: u32,
    /// The record.
    pub record: ProcRecord,
}

/// The supervisor's decisions (see the module doc).
#[derive(Debug)]
pub struct Core {
    reg: Registry,
    jobs: Jobs,
    reloads: Reloads,
    spawner_pid: Pid,
    notify: bool,
    watchdog: Option<Duration>,
    last_status: String,
    /// A state or the set of processes changed since STATUS was last computed.
    status_dirty: bool,
    restarts: u32,
}

impl Core {
    /// A core with every process of `config` STOPPED; [`Input::Boot`] starts the autostart
    /// ones. The effects configure the edge's logs of every process.
    pub fn new(config: CoreConfig, now: Instant) -> (Core, Effects) {
        let mut out = Out { notify_enabled: config.notify, ..Out::default() };
        let mut reg = Registry::default();
        reg.mono = Some(config.mono);
        reg.generation = config.generation;
        for p in config.programs {
            reg.add_program(p, now, &mut out);
        }
        reg.take_dirty();
        let core = Core {
            reg,
            jobs: Jobs::default(),
            reloads: Reloads::default(),
            spawner_pid: config.spawner_pid,
            notify: config.notify,
            watchdog: config.watchdog,
            last_status: String::new(),
            status_dirty: false,
            restarts: config.restarts,
        };
        (core, out.fx)
    }

    /// A core rebuilt from the spawner's inventory of children and the records the previous
    /// supervisor kept (a supervisor restarted without loss, issue 16). A child is bound to its
    /// process: RUNNING if it has been up `startsecs` already, else STARTING with the rest of
    /// its `startsecs` armed, or STOPPING (its kill timer re-armed) when the record says it was
    /// being stopped. A process with no child takes its record's state (BACKOFF with its retry
    /// armed at the time it was due, FATAL, EXITED, STOPPED), else it is STOPPED and never
    /// started, so [`Input::Boot`] starts it if autostart (the last supervisor died before
    /// starting it). A child whose program or instance the config no longer has is killed:
    /// nothing may run unsupervised. A child that ended meanwhile is bound like the others; its
    /// `Exited` follows and takes the state machine's usual course, unless a newer child or
    /// record shows the last supervisor acted on it.
    pub fn restore(
        config: CoreConfig,
        inventory: &[LiveChild],
        records: &[KeptRecord],
        now: Instant,
    ) -> (Core, Effects) {
        let mono = config.mono;
        let (mut core, fx) = Core::new(config, now);
        let mut out = Out { fx, notify_enabled: core.notify };
        let slot_of = |core: &Core, program: &str, instance: u32| {
            core.reg.slots_of(program).into_iter().find(|s| core.reg.procs[s].instance == instance)
        };
        let mut kept: std::collections::HashMap<Slot, &ProcRecord> = std::collections::HashMap::new();
        for r in records {
            if let Some(slot) = slot_of(&core, &r.program, r.instance) {
                kept.insert(slot, &r.record);
            }
        }
        // Live children first: an ended child of a process that has a new one, or whose record
        // is newer than its end (BACKOFF, FATAL, EXITED, STOPPED), was already acted on.
        let (live, ended): (Vec<&LiveChild>, Vec<&LiveChild>) = inventory.iter().partition(|c| !c.ended);
        for child in live.into_iter().chain(ended) {
            let slot = slot_of(&core, &child.program, child.instance);
            if child.ended {
                let acted_on = slot.is_none_or(|s| {
                    core.reg.procs[&s].spawn_id.is_some()
                        || kept.get(&s).is_some_and(|r| r.state != ProcessState::Stopping.as_str())
                });
                if acted_on {
                    continue;
                }
            }
            let Some(slot) = slot.filter(|s| core.reg.procs[s].spawn_id.is_none()) else {
                out.warn(format!(
                    "restore: pid {} ({}:{}) is not in the config; killing it",
                    child.pid, child.program, child.instance
                ));
                out.spawner(SpawnRequest::Signal {
                    spawn_id: child.spawn_id.0,
                    signal: Signal::SIGKILL as i32,
                    purpose: SignalPurpose::Kill,
                });
                continue;
            };
            core.reg.bind_spawn(slot, child.spawn_id);
            let record = kept.remove(&slot);
            let Some(p) = core.reg.procs.get_mut(&slot) else { continue };
            let started_at = mono.instant_of(child.started_ns);
            let up_at = started_at + Duration::from_secs(p.program.startsecs);
            let stopping = record.filter(|r| r.state == ProcessState::Stopping.as_str());
            let (state, changed_at, timer) = match stopping {
                Some(r) => {
                    let since = mono.instant_of(r.changed_ns);
                    let kill_at = since + Duration::from_secs(p.program.stopwaitsecs);
                    (ProcessState::Stopping, since, Some((state::TimerKind::StopKill, kill_at)))
                }
                None if up_at <= now => (ProcessState::Running, up_at, None),
                None => (ProcessState::Starting, started_at, Some((state::TimerKind::StartSecs, up_at))),
            };
            p.m = Machine {
                state,
                pid: Some(child.pid),
                started_at: Some(started_at),
                ever_started: true,
                epoch: 1,
                backoff: record.map_or(0, |r| r.backoff),
                last_exit: record.and_then(|r| r.last_exit),
                ..Machine::default()
            };
            p.changed_at = changed_at;
            out.push(Effect::BindOutput { spawn_id: child.spawn_id, slot });
            if let Some((kind, at)) = timer {
                out.push(Effect::Arm(at, TimerId::Process { slot, kind, epoch: 1 }));
            }
        }
        for (slot, r) in kept {
            let Some(p) = core.reg.procs.get_mut(&slot) else { continue };
            let state = match r.state.as_str() {
                "BACKOFF" => ProcessState::Backoff,
                "FATAL" => ProcessState::Fatal,
                "EXITED" => ProcessState::Exited,
                // STOPPING with no child left: its exit reached the last supervisor.
                _ => ProcessState::Stopped,
            };
            let since = mono.instant_of(r.changed_ns);
            p.m = Machine {
                state,
                backoff: r.backoff,
                last_exit: r.last_exit,
                spawnerr: r.spawnerr.clone(),
                ever_started: r.ever_started,
                epoch: 1,
                ..Machine::default()
            };
            p.changed_at = since;
            if state == ProcessState::Backoff {
                let retry_at = since + Duration::from_secs(u64::from(r.backoff));
                out.push(Effect::Arm(retry_at, TimerId::Process { slot, kind: state::TimerKind::Retry, epoch: 1 }));
            }
        }
        core.status_dirty = true;
        (core, out.fx)
    }

    /// Decides what `input` means at `now`; returns what the edge must do, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Effects {
        let mut out = Out { notify_enabled: self.notify, ..Out::default() };
        match input {
            Input::Boot => self.boot(now, &mut out),
            Input::Spawner(ev) => self.on_spawner(ev, now, &mut out),
            Input::Control { client, peer, action, request } => {
                self.on_action(client, &peer, action, &request, now, &mut out)
            }
            Input::Timer(id) => self.on_timer(id, now, &mut out),
            Input::Signal(sig) => self.on_signal(sig, now, &mut out),
        }
        self.settle(now, &mut out);
        out.fx
    }

    /// No re-read waits, is in flight or is being applied.
    pub fn reloads_idle(&self) -> bool {
        self.reloads.idle()
    }

    /// The processes, read-only (for the edge's checks and for tests).
    pub fn registry(&self) -> &Registry {
        &self.reg
    }

    /// The slot whose live child has `spawn_id`.
    pub fn slot_of_spawn(&self, spawn_id: SpawnId) -> Option<Slot> {
        self.reg.slot_of_spawn(spawn_id)
    }

    fn boot(&mut self, now: Instant, out: &mut Out) {
        // Never-started processes only: after a restore, the others keep their state.
        let autostart: Vec<Target> = self
            .reg
            .ordered()
            .into_iter()
            .filter(|s| {
                let p = &self.reg.procs[s];
                p.program.autostart && p.m.state == ProcessState::Stopped && !p.m.ever_started && p.spawn_id.is_none()
            })
            .map(|s| (s, false))
            .collect();
        self.jobs.start(&mut self.reg, autostart, None, now, out);
        let n = Notify { ready: true, status: Some(self.reg.summary()), ..Notify::default() };
        out.notify(n);
        if let Some(every) = self.watchdog {
            out.push(Effect::Arm(now + every, TimerId::Watchdog));
        }
    }

    /// Advances the jobs until none can move, finishes a re-read whose stops are done, and
    /// keeps the service manager's STATUS current.
    fn settle(&mut self, now: Instant, out: &mut Out) {
        loop {
            let dirty = self.reg.take_dirty() | self.jobs.take_dirty() | self.reloads.take_dirty();
            if !dirty {
                break;
            }
            self.status_dirty = true;
            self.jobs.progress(&mut self.reg, now, out);
            if let Some(token) = self.reloads.applying() {
                if !self.jobs.stops_of_reload(token) {
                    self.reloads.finish(&self.reg, self.jobs.shutting_down, out);
                }
            }
        }
        if let Some(status) = out.fx.iter().rev().find_map(|e| match e {
            Effect::Notify(Notify { status: Some(s), .. }) => Some(s.clone()),
            _ => None,
        }) {
            self.last_status = status;
        }
        // The summary scans every process: only when a state or the set of processes changed.
        if self.notify && std::mem::take(&mut self.status_dirty) {
            let status = self.reg.summary();
            if status != self.last_status {
                self.last_status = status.clone();
                out.notify(Notify { status: Some(status), ..Notify::default() });
            }
        }
    }

    fn on_timer(&mut self, id: TimerId, now: Instant, out: &mut Out) {
        match id {
            TimerId::Process { slot, kind, epoch } => {
                if self.reg.get(slot).is_some_and(|p| p.m.epoch == epoch) {
                    let _ = self.reg.apply(slot, Event::Timer(kind), now, !self.jobs.shutting_down, out);
                }
            }
            TimerId::Watchdog => {
                out.notify(Notify { watchdog: true, ..Notify::default() });
                if let Some(every) = self.watchdog {
                    out.push(Effect::Arm(now + every, TimerId::Watchdog));
                }
            }
        }
    }

    fn on_spawner(&mut self, ev: SpawnerInput, now: Instant, out: &mut Out) {
        let restart = !self.jobs.shutting_down;
        match ev {
            SpawnerInput::Spawned { token, spawn_id, pid, fds_received, .. } => {
                let Some(slot) = self.reg.take_token(token) else {
                    // A process nobody supervises must not live: end it (its exit is ignored).
                    out.error(format!("spawner answered unknown spawn token {token}; killing pid {pid}"));
                    return kill(spawn_id, out);
                };
                self.reg.bind_spawn(slot, spawn_id);
                if fds_received {
                    out.push(Effect::BindOutput { spawn_id, slot });
                }
                let _ = self.reg.apply(slot, Event::Spawned { pid }, now, restart, out);
                if !fds_received {
                    // Out of fds: a child whose output nothing can read is killed; its exit then
                    // takes the usual course (BACKOFF and a retry, or a restart).
                    let name = self.reg.get(slot).map(|p| p.name.clone()).unwrap_or_default();
                    out.error(format!(
                        "'{name}' (pid {pid}): its output fds could not be received (too many open files); killing it"
                    ));
                    kill(spawn_id, out);
                }
            }
            SpawnerInput::SpawnFailed { token, error } => {
                if let Some(slot) = self.reg.take_token(token) {
                    let _ = self.reg.apply(slot, Event::SpawnFailed(error), now, restart, out);
                }
            }
            SpawnerInput::Exited { spawn_id, status } => {
                if let Some(slot) = self.reg.take_spawn(spawn_id) {
                    let _ = self.reg.apply(slot, Event::Exited(status), now, restart, out);
                }
            }
            SpawnerInput::SignalFailed { spawn_id, error } => {
                let name = self.reg.slot_of_spawn(spawn_id).and_then(|s| self.reg.get(s)).map(|p| p.name.clone());
                out.warn(format!("signal to '{}' failed: {error}", name.unwrap_or_default()));
            }
            SpawnerInput::Config { generation, token, items } => {
                let cx = Ctx { reg: &mut self.reg, jobs: &mut self.jobs, now, out };
                self.reloads.config(generation, token, items, cx);
            }
            SpawnerInput::ConfigRejected { token, error } => {
                let cx = Ctx { reg: &mut self.reg, jobs: &mut self.jobs, now, out };
                self.reloads.rejected(token, error, cx);
            }
        }
    }

    fn on_signal(&mut self, signal: Signal, now: Instant, out: &mut Out) {
        match signal {
            Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => {
                out.info(format!("received {} indicating exit request", signal_name(signal as i32)));
                self.begin_shutdown(None, out);
            }
            Signal::SIGUSR2 => {
                out.info("received SIGUSR2 indicating log reopen request");
                out.push(Effect::ReopenLogs);
            }
            Signal::SIGHUP => {
                out.info("received SIGHUP indicating restart request: re-reading the config");
                let cx = Ctx { reg: &mut self.reg, jobs: &mut self.jobs, now, out };
                self.reloads.request(ReloadKind::Hup, None, cx);
            }
            other => out.warn(format!("ignoring forwarded signal {}", signal_name(other as i32))),
        }
    }

    /// Stops everything in priority order, then exits (TERM/INT/QUIT, `shutdown`); a `shutdown`
    /// client is answered once every program has stopped.
    fn begin_shutdown(&mut self, reply_to: Option<ReplyTo>, out: &mut Out) {
        self.jobs.shutdown_waiters.extend(reply_to);
        if self.jobs.shutting_down {
            return;
        }
        self.jobs.shutting_down = true;
        out.notify(Notify { stopping: true, status: Some("stopping every program".into()), ..Notify::default() });
        let all = self.reg.ordered().into_iter().map(|s| (s, false)).collect();
        self.jobs.stop(&self.reg, all, Then::Exit, None, None);
    }

    /// Answers a control action (DESIGN §6, §7) after the access check (DESIGN §8).
    fn on_action(&mut self, client: ClientId, peer: &Peer, action: Action, req: &Request, now: Instant, out: &mut Out) {
        let to = ReplyTo { client, id: req.id };
        let deny = |out: &mut Out, why: Refusal| {
            out.push(Effect::PeerLog { uid: peer.uid, text: format!("refused uid {}: {why}", peer.uid) });
            out.reply(Some(to), Reply::err(0, kind::PERMISSION_DENIED, format!("permission denied: {why}")));
        };
        if peer.grants.is_nobody() {
            // It may do nothing at all: told once, then the connection closes.
            deny(out, Refusal::Nobody { uid: peer.uid });
            return out.push(Effect::Close(client));
        }
        let grants = &peer.grants;
        // A peer whose rules name some programs learns nothing of the others, not even whether
        // they exist: a name outside its globs is refused before any name is looked up.
        for name in req.names.iter().filter(|n| *n != "all") {
            let program = name.split(':').next().unwrap_or(name);
            if grants.role_for(Some(program)).is_none() {
                return deny(out, Refusal::NoRoleFor { uid: peer.uid, target: name.clone() });
            }
        }
        let resolve = !req.names.is_empty() && action != Action::Update;
        let targets = if resolve { self.reg.select(&req.names) } else { Ok(Vec::new()) };
        let targets = match targets {
            Ok(t) => t,
            Err(e) => return out.reply(Some(to), Reply::err(0, kind::NO_SUCH_PROCESS, e.to_string())),
        };
        if let Err(why) = authorize(&self.reg, peer, action, req, &targets) {
            return deny(out, why);
        }
        if action.needs_names() && req.names.is_empty() {
            let msg = format!("{action} needs a process name or 'all'");
            return out.reply(Some(to), Reply::err(0, kind::BAD_REQUEST, msg));
        }
        match action {
            // The edge answers `auth` before anything else (its worker checks the password).
            Action::Auth => out.reply(Some(to), Reply::ok(0, json!({ "authenticated": true }))),
            Action::Status => {
                let visible = |s: &Slot| grants.role_for(Some(&self.reg.procs[s].program.name)).is_some();
                let slots: Vec<Slot> = if req.names.is_empty() {
                    self.reg.ordered().into_iter().filter(visible).collect()
                } else {
                    targets.iter().map(|t| t.0).collect()
                };
                let rows = slots.into_iter().filter_map(|s| self.status_row(s, now)).collect();
                out.push(Effect::Status(to, rows));
            }
            Action::Start => self.jobs.start(&mut self.reg, targets, Some(to), now, out),
            Action::Stop => self.jobs.stop(&self.reg, targets, Then::Reply, Some(to), None),
            Action::Restart => {
                let again = targets.clone();
                self.jobs.stop(&self.reg, targets, Then::Start(again), Some(to), None);
            }
            Action::Signal => self.signal(to, req, &targets, out),
            Action::Pid if req.names.is_empty() => {
                out.reply(Some(to), Reply::ok(0, json!({ "pid": self.spawner_pid.as_raw() })))
            }
            Action::Pid => {
                let pids: Vec<_> = targets
                    .iter()
                    .map(|(s, _)| {
                        let p = &self.reg.procs[s];
                        json!({ "name": p.name, "pid": p.m.pid.filter(|_| p.m.state.may_have_process()).map(Pid::as_raw) })
                    })
                    .collect();
                out.reply(Some(to), Reply::ok(0, json!(pids)));
            }
            Action::Avail | Action::Reread | Action::Update | Action::Reload => {
                let kind = match action {
                    Action::Avail => ReloadKind::Avail,
                    Action::Reread => ReloadKind::Reread,
                    Action::Update => ReloadKind::Update(req.names.clone()),
                    _ => ReloadKind::Reload,
                };
                let cx = Ctx { reg: &mut self.reg, jobs: &mut self.jobs, now, out };
                self.reloads.request(kind, Some(to), cx);
            }
            Action::Shutdown => {
                out.info(format!("shutdown requested by control client {client}"));
                self.begin_shutdown(Some(to), out);
            }
            Action::Version => {
                let data = json!({ "version": common::VERSION, "supervisor_restarts": self.restarts });
                out.reply(Some(to), Reply::ok(0, data))
            }
            Action::Tail | Action::Maintail => self.tail(to, action, req, &targets, out),
            Action::Clear => {
                let slots =
                    targets.iter().filter_map(|(s, _)| self.reg.get(*s).map(|p| (*s, p.name.clone()))).collect();
                out.push(Effect::ClearLogs { to, slots });
            }
            Action::Attach => self.attach(to, req, &targets, out),
        }
    }

    fn signal(&mut self, to: ReplyTo, req: &Request, targets: &[Target], out: &mut Out) {
        let sig = match req.args.get("signal") {
            Some(serde_json::Value::String(s)) => parse_signal(s).map_err(|e| e.to_string()),
            Some(serde_json::Value::Number(n)) => parse_signal(&n.to_string()).map_err(|e| e.to_string()),
            _ => Err("signal needs a signal name or number".to_owned()),
        };
        let sig = match sig {
            Ok(s) => s as i32,
            Err(e) => return out.reply(Some(to), Reply::err(0, kind::BAD_REQUEST, e)),
        };
        let mut results = Vec::new();
        for &(slot, explicit) in targets {
            let Some(p) = self.reg.get(slot) else { continue };
            match p.spawn_id.filter(|_| p.m.state.may_have_process()) {
                Some(spawn_id) => {
                    results.push(result(&p.name, true, "signalled"));
                    out.spawner(SpawnRequest::Signal {
                        spawn_id: spawn_id.0,
                        signal: sig,
                        purpose: SignalPurpose::User,
                    });
                }
                None if explicit => results.push(result(&p.name, false, "ERROR (not running)")),
                None => {}
            }
        }
        out.reply(Some(to), Reply::ok(0, json!(results)));
    }

    fn tail(&mut self, to: ReplyTo, action: Action, req: &Request, targets: &[Target], out: &mut Out) {
        let asked = req.args.get("bytes").and_then(serde_json::Value::as_u64).unwrap_or(1600);
        let bytes = usize::try_from(asked).unwrap_or(usize::MAX).min(MAX_TAIL_BYTES);
        let follow = req.args.get("follow").and_then(serde_json::Value::as_bool).unwrap_or(false);
        let source = if action == Action::Maintail {
            TailSource::Main
        } else {
            let [(slot, _)] = targets else {
                return out.reply(Some(to), Reply::err(0, kind::BAD_REQUEST, "tail needs exactly one process name"));
            };
            let stream = match req.args.get("stream").and_then(serde_json::Value::as_str).unwrap_or("stdout") {
                "stdout" => Stream::Stdout,
                "stderr" => Stream::Stderr,
                other => {
                    let msg = format!("unknown stream '{other}': stdout or stderr");
                    return out.reply(Some(to), Reply::err(0, kind::BAD_REQUEST, msg));
                }
            };
            let p = &self.reg.procs[slot];
            if stream == Stream::Stderr && p.program.redirect_stderr {
                let msg = format!("{}: stderr is redirected to stdout (redirect_stderr)", p.name);
                return out.reply(Some(to), Reply::err(0, kind::BAD_REQUEST, msg));
            }
            TailSource::Proc(*slot, stream)
        };
        out.push(Effect::Tail { to, source, bytes, follow });
    }

    /// `attach`: one running process; args `rows`, `cols` (the client's window).
    fn attach(&mut self, to: ReplyTo, req: &Request, targets: &[Target], out: &mut Out) {
        let [(slot, _)] = targets else {
            // `fg ticker`: name the processes to choose from.
            let names: Vec<&str> =
                targets.iter().filter_map(|(s, _)| self.reg.get(*s)).map(|p| p.name.as_str()).collect();
            let has = if names.is_empty() { "no process".to_owned() } else { names.join(", ") };
            let msg = format!("fg needs one process: {} has {has}", req.names.join(" "));
            return out.reply(Some(to), Reply::err(0, kind::BAD_REQUEST, msg));
        };
        let Some(p) = self.reg.get(*slot) else { return };
        if p.spawn_id.is_none() || !p.m.state.may_have_process() {
            let msg = format!("{}: ERROR (not running)", p.name);
            return out.reply(Some(to), Reply::err(0, kind::FAILED, msg));
        }
        // The window is clamped by the edge's terminal; a value past u16 is clamped first.
        let side = |k: &str| {
            req.args.get(k).and_then(serde_json::Value::as_u64).map_or(0, |v| v.min(u64::from(u16::MAX)) as u16)
        };
        out.push(Effect::Attach { to, slot: *slot, name: p.name.clone(), rows: side("rows"), cols: side("cols") });
    }

    /// One row of `status`, as the core knows it.
    fn status_row(&self, slot: Slot, now: Instant) -> Option<StatusRow> {
        let p = self.reg.get(slot)?;
        let alive = p.m.state.may_have_process();
        let pid = p.m.pid.filter(|_| alive);
        let uptime_s = p.m.started_at.filter(|_| alive).map_or(0, |t| now.saturating_duration_since(t).as_secs());
        Some(StatusRow {
            slot,
            name: p.name.clone(),
            program: p.program.name.clone(),
            instance: p.instance,
            state: p.m.state,
            pid,
            uptime_s,
            changed_at: p.changed_at,
            ever_started: p.m.ever_started,
            spawnerr: p.m.spawnerr.clone(),
            last_exit: p.m.last_exit,
            pty: p.program.pty,
        })
    }
}

fn kill(spawn_id: SpawnId, out: &mut Out) {
    out.spawner(SpawnRequest::Signal {
        spawn_id: spawn_id.0,
        signal: Signal::SIGKILL as i32,
        purpose: SignalPurpose::Kill,
    });
}

/// Why the access check refused an action (DESIGN §8), in the words the peer is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `uid 1001 matches no socket.access rule`.
    #[error("uid {uid} matches no socket.access rule")]
    Nobody {
        /// The peer.
        uid: u32,
    },
    /// `viewer may not stop web`, or `viewer may not reload`.
    #[error("{} may not {action}{}", role_name(*role), target.as_ref().map(|t| format!(" {t}")).unwrap_or_default())]
    Role {
        /// Its best role.
        role: Role,
        /// The action.
        action: Action,
        /// The process, for an action on processes.
        target: Option<String>,
    },
    /// A peer whose rules all name programs asked for a global action.
    #[error("uid {uid} has no role beyond some programs: {action} needs one for all")]
    NotGlobal {
        /// The peer.
        uid: u32,
        /// The action.
        action: Action,
    },
    /// No rule of the peer covers this process.
    #[error("uid {uid} has no role for {target}")]
    NoRoleFor {
        /// The peer.
        uid: u32,
        /// The process.
        target: String,
    },
}

/// Checks a peer's role for the action on its targets (DESIGN §8).
fn authorize(reg: &Registry, peer: &Peer, action: Action, req: &Request, targets: &[Target]) -> Result<(), Refusal> {
    let (uid, grants) = (peer.uid, &peer.grants);
    let need = required_role(action);
    let on_programs = !targets.is_empty() || (action == Action::Status && req.names.is_empty());
    if !on_programs {
        return match grants.role_for(None) {
            Some(role) if role >= need => Ok(()),
            Some(role) => Err(Refusal::Role { role, action, target: None }),
            None => Err(Refusal::NotGlobal { uid, action }),
        };
    }
    for (slot, _) in targets {
        let p = &reg.procs[slot];
        match grants.role_for(Some(&p.program.name)) {
            Some(role) if role >= need => {}
            Some(role) => return Err(Refusal::Role { role, action, target: Some(p.name.clone()) }),
            None => return Err(Refusal::NoRoleFor { uid, target: p.name.clone() }),
        }
    }
    Ok(())
}
