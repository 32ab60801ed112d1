//! Reloading (DESIGN §4): `reread`, `update`, `reload`, `avail` and SIGHUP all begin with a
//! re-read by the spawner, which alone reads the file. Re-reads run one at a time, and one that
//! changes processes (`update`, `reload`, SIGHUP) is over only when the stops it caused are done
//! and its starts launched: only then is it answered, with a line per program in supervisorctl's
//! words, and only then does the next one begin, so two are never mixed (issue 14). A burst of
//! SIGHUPs collapses into one re-read after the current one, so the end state is that of the
//! last file content and no process is restarted twice for one change.

use crate::control::Then;
use crate::core::state::ProcessState;
use crate::event_loop::{Notify, Supervisor};
use crate::registry::Target;
use common::config::{ChangeKind, Program, ReloadPlan};
use common::proto::control::{kind, AvailInfo, Reply};
use common::proto::spawn::{ConfigAssembler, ConfigItem, Request};
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// What a re-read is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadKind {
    /// Show the differences only.
    Reread,
    /// Apply the differences for these programs (all when empty).
    Update(Vec<String>),
    /// SIGHUP: apply every difference.
    Hup,
    /// Stop everything, then start again from the file.
    Reload,
    /// List configured programs and whether they are in use.
    Avail,
}

/// One queued re-read and who waits for its answer.
#[derive(Clone, Debug)]
pub struct ReloadRequest {
    kind: ReloadKind,
    reply_to: Option<(u32, u64)>,
}

/// A re-read whose changes are being applied: answered with `lines` once no stop of it is left.
struct Applying {
    token: u64,
    req: ReloadRequest,
    lines: Vec<String>,
}

/// The re-read queue and the config being received.
#[derive(Default)]
pub struct Reloads {
    queue: VecDeque<ReloadRequest>,
    in_flight: Option<(u64, ReloadRequest)>,
    applying: Option<Applying>,
    next_token: u64,
    /// Chunks of the config being received.
    pub assembler: ConfigAssembler,
}

impl Supervisor {
    /// Queues a re-read; a SIGHUP already waiting absorbs another.
    pub(crate) fn request_reload(&mut self, kind: ReloadKind, reply_to: Option<(u32, u64)>) {
        if kind == ReloadKind::Hup && self.reloads.queue.iter().any(|r| r.kind == ReloadKind::Hup) {
            return;
        }
        self.reloads.queue.push_back(ReloadRequest { kind, reply_to });
        self.next_reload();
    }

    fn next_reload(&mut self) {
        if self.reloads.in_flight.is_some() || self.reloads.applying.is_some() || self.shutting_down {
            return;
        }
        let Some(req) = self.reloads.queue.pop_front() else { return };
        if matches!(req.kind, ReloadKind::Hup | ReloadKind::Update(_) | ReloadKind::Reload) {
            self.notify(Notify { reloading: true, status: Some("reloading the config".into()), ..Notify::default() });
        }
        self.reloads.next_token += 1;
        let token = self.reloads.next_token;
        self.reloads.in_flight = Some((token, req));
        // Each re-read is received from a clean decoder, whatever an earlier one left.
        self.reloads.assembler = ConfigAssembler::default();
        self.send(&Request::Reread { token });
    }

    fn take_in_flight(&mut self, token: u64) -> Option<ReloadRequest> {
        match self.reloads.in_flight.take() {
            Some((t, req)) if t == token => Some(req),
            other => {
                self.reloads.in_flight = other;
                self.log.error(&format!("spawner answered unknown re-read {token}"));
                None
            }
        }
    }

    /// The token of the re-read being applied, if one is.
    pub(crate) fn applying_reload(&self) -> Option<u64> {
        self.reloads.applying.as_ref().map(|a| a.token)
    }

    /// Waits for the stops of re-read `token` before answering it with `lines`.
    fn apply_then_answer(&mut self, token: u64, req: ReloadRequest, lines: Vec<String>) {
        self.reloads.applying = Some(Applying { token, req, lines });
        self.jobs_dirty = true; // checked after this loop iteration, even with no job at all
    }

    /// The re-read being applied is done: answer it and begin the next one.
    pub(crate) fn finish_reload(&mut self) {
        let Some(Applying { req, lines, .. }) = self.reloads.applying.take() else { return };
        if matches!(req.kind, ReloadKind::Hup | ReloadKind::Update(_) | ReloadKind::Reload) {
            let status = Some(self.summary());
            self.notify(Notify { ready: true, status, ..Notify::default() });
        }
        self.answer(&req, Reply::ok(0, json!({ "lines": lines })));
        self.next_reload();
    }

    fn answer(&mut self, req: &ReloadRequest, reply: Reply) {
        if let Some((client, id)) = req.reply_to {
            self.reply(client, &Reply { id, ..reply });
        }
    }

    /// The spawner found errors in the file: nothing changes.
    pub(crate) fn on_config_rejected(&mut self, token: u64, error: String) {
        let Some(req) = self.take_in_flight(token) else { return };
        if matches!(req.kind, ReloadKind::Hup | ReloadKind::Update(_) | ReloadKind::Reload) {
            let status = Some(self.summary());
            self.notify(Notify { ready: true, status, ..Notify::default() });
        }
        for line in error.lines() {
            self.log.error(&format!("config error, nothing changed: {line}"));
        }
        self.answer(&req, Reply::err(0, kind::CONFIG_ERROR, error));
        self.next_reload();
    }

    /// The re-read config is complete: act on it as the request asked.
    pub(crate) fn on_config_end(&mut self, generation: u64, token: Option<u64>) {
        let items = self.reloads.assembler.finish();
        let Some(token) = token else {
            self.log.error("spawner sent an unrequested config; ignored");
            return;
        };
        let Some(req) = self.take_in_flight(token) else { return };
        let items = match items {
            Ok(items) => items,
            Err(e) => {
                let error = format!("the re-read config did not decode, nothing changed: {e}");
                self.log.error(&error);
                self.answer(&req, Reply::err(0, kind::CONFIG_ERROR, error));
                return self.next_reload();
            }
        };
        let mut programs: BTreeMap<String, Program> = BTreeMap::new();
        let mut plan = ReloadPlan::default();
        for item in items {
            match item {
                ConfigItem::Program(p) => {
                    programs.insert(p.name.clone(), *p);
                }
                ConfigItem::Plan(p) => plan = p,
                ConfigItem::Server { .. } => {}
            }
        }
        match req.kind.clone() {
            ReloadKind::Reread => {
                let lines = if plan.is_empty() && plan.server_fields.is_empty() {
                    vec!["No config updates to processes".to_owned()]
                } else {
                    plan.describe()
                };
                self.answer(&req, Reply::ok(0, json!({ "lines": lines })));
            }
            ReloadKind::Avail => {
                let mut rows: Vec<AvailInfo> = programs
                    .values()
                    .map(|p| AvailInfo {
                        name: p.name.clone(),
                        state: if self.registry.programs.contains_key(&p.name) { "in use" } else { "avail" }.into(),
                        autostart: p.autostart,
                        priority: p.priority,
                        numprocs: p.numprocs,
                    })
                    .collect();
                for p in self.registry.programs.values().filter(|p| !programs.contains_key(&p.name)) {
                    rows.push(AvailInfo {
                        name: p.name.clone(),
                        state: "removed".into(),
                        autostart: p.autostart,
                        priority: p.priority,
                        numprocs: p.numprocs,
                    });
                }
                rows.sort_by(|a, b| a.name.cmp(&b.name));
                self.answer(&req, Reply::ok(0, json!(rows)));
            }
            ReloadKind::Reload => {
                self.send(&Request::Commit { generation, programs: Vec::new() });
                self.generation = generation;
                self.log.info("reload: stopping every program, then starting again from the config file");
                let all = self.registry.ordered().into_iter().map(|s| (s, false)).collect();
                self.stop_job(all, Then::Rebuild(programs.into_values().collect()), None, Some(token));
                return self.apply_then_answer(token, req, vec!["Restarted taskmasterd".to_owned()]);
            }
            ReloadKind::Hup | ReloadKind::Update(_) => {
                let names = match &req.kind {
                    ReloadKind::Update(n) => n.clone(),
                    _ => Vec::new(),
                };
                if let Some(bad) = names
                    .iter()
                    .find(|n| *n != "all" && !programs.contains_key(*n) && !self.registry.programs.contains_key(*n))
                {
                    let msg = format!("no such program: {bad}");
                    self.answer(&req, Reply::err(0, kind::NO_SUCH_PROCESS, msg));
                    return self.next_reload();
                }
                let plan = plan.only(&names);
                for f in &plan.server_fields {
                    self.log.warn(&format!("server.{f} changed: it takes effect when taskmasterd restarts"));
                }
                if plan.is_empty() {
                    self.log.info("config re-read: no changes to programs");
                    let lines = vec!["No config updates to processes".to_owned()];
                    self.answer(&req, Reply::ok(0, json!({ "lines": lines })));
                    let status = Some(self.summary());
                    self.notify(Notify { ready: true, status, ..Notify::default() });
                } else {
                    let commit = if names.iter().any(|n| n == "all") { Vec::new() } else { names };
                    self.send(&Request::Commit { generation, programs: commit });
                    self.generation = generation;
                    let lines = self.apply_plan(&plan, programs, token);
                    return self.apply_then_answer(token, req, lines);
                }
            }
        }
        self.next_reload();
    }

    /// Brings the processes in line with `plan` (DESIGN §4) as part of re-read `token`; logs
    /// one line per program and returns the answer's lines, in supervisorctl's words:
    /// `db: added process group`, `gone: stopped` then `gone: removed process group`, `web:
    /// stopped` then `web: updated process group (command)` for a restart, `tune: updated
    /// process group (stopwaitsecs)` for a change applied in place.
    fn apply_plan(&mut self, plan: &ReloadPlan, mut new: BTreeMap<String, Program>, token: u64) -> Vec<String> {
        self.status_dirty = true; // processes may be added or removed without a state change
        let mut lines = Vec::new();
        let mut answer = Vec::new();
        let mut start: Vec<Target> = Vec::new();
        let mut restart: Vec<Target> = Vec::new();
        let mut forget: Vec<Target> = Vec::new();
        for name in &plan.removed {
            let slots = self.registry.slots_of(name);
            if slots.iter().any(|s| self.registry.get(*s).is_some_and(|p| p.m.state.may_have_process())) {
                answer.push(format!("{name}: stopped"));
            }
            forget.extend(slots.into_iter().map(|s| (s, false)));
            self.registry.programs.remove(name);
            lines.push(format!("{name}: removed"));
            answer.push(format!("{name}: removed process group"));
        }
        for name in &plan.added {
            let Some(p) = new.remove(name) else { continue };
            let autostart = p.autostart;
            let slots = self.registry.add_program(p);
            if autostart {
                start.extend(slots.into_iter().map(|s| (s, false)));
            }
            lines.push(format!("{name}: added"));
            answer.push(format!("{name}: added process group"));
        }
        for change in &plan.changed {
            let Some(p) = new.remove(&change.name) else { continue };
            let p = Rc::new(p);
            self.registry.programs.insert(p.name.clone(), Rc::clone(&p));
            let range = p.instances();
            let mut kept = Vec::new();
            let restarts_before = restart.len();
            let forgets_before = forget.len();
            for slot in self.registry.slots_of(&p.name) {
                let Some(proc) = self.registry.get(slot) else { continue };
                let (instance, state, ever) = (proc.instance, proc.m.state, proc.m.ever_started);
                if !range.contains(&instance) {
                    forget.push((slot, false));
                    continue;
                }
                kept.push(instance);
                self.registry.set_program(slot, Rc::clone(&p));
                if change.kind == ChangeKind::Reshape {
                    let active = matches!(
                        state,
                        ProcessState::Starting | ProcessState::Running | ProcessState::Backoff | ProcessState::Stopping
                    );
                    let revive = p.autostart
                        && (matches!(state, ProcessState::Fatal | ProcessState::Exited)
                            || (state == ProcessState::Stopped && !ever));
                    if active || revive {
                        restart.push((slot, false));
                    }
                }
            }
            for instance in range.filter(|i| !kept.contains(i)) {
                let slot = self.registry.add_instance(&p, instance);
                if p.autostart {
                    start.push((slot, false));
                }
            }
            let what = match change.kind {
                ChangeKind::Reshape => "restarted",
                ChangeKind::Scale => "scaled",
                ChangeKind::Supervision => "applied in place",
            };
            let fields = change.fields.join(", ");
            lines.push(format!("{}: changed ({fields}): {what}", change.name));
            let stops = restart[restarts_before..]
                .iter()
                .chain(&forget[forgets_before..])
                .any(|(s, _)| self.registry.get(*s).is_some_and(|p| p.m.state.may_have_process()));
            if stops {
                answer.push(format!("{}: stopped", change.name));
            }
            answer.push(format!("{}: updated process group ({fields})", change.name));
        }
        for line in &lines {
            self.log.info(&format!("update: {line}"));
        }
        if !forget.is_empty() {
            let slots = forget.iter().map(|t| t.0).collect();
            self.stop_job(forget, Then::Forget(slots), None, Some(token));
        }
        if !restart.is_empty() {
            self.stop_job(restart.clone(), Then::Start(restart), None, Some(token));
        }
        if !start.is_empty() {
            self.start_job(start, None);
        }
        answer
    }
}
