//! Reloading (DESIGN §4): `reread`, `update`, `reload`, `avail` and SIGHUP all begin with a
//! re-read by the spawner, which alone reads the file. Re-reads run one at a time, and one that
//! changes processes (`update`, `reload`, SIGHUP) is over only when the stops it caused are done
//! and its starts launched: only then is it answered, with a line per program in supervisorctl's
//! words, and only then does the next one begin, so two are never mixed (issue 14). A burst of
//! SIGHUPs collapses into one re-read after the current one, so the end state is that of the
//! last file content and no process is restarted twice for one change.

use crate::core::effects::{Notify, Out};
use crate::core::ids::ReplyTo;
use crate::core::jobs::{Jobs, Then};
use crate::core::registry::{Registry, Target};
use crate::core::state::ProcessState;
use common::config::{ChangeKind, Program, ReloadPlan};
use common::proto::control::{kind, AvailInfo, Reply};
use common::proto::spawn::{ConfigItem, Request};
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Instant;

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

impl ReloadKind {
    /// Whether it changes processes (the service manager hears RELOADING).
    fn applies(&self) -> bool {
        matches!(self, ReloadKind::Hup | ReloadKind::Update(_) | ReloadKind::Reload)
    }
}

/// One queued re-read and who waits for its answer.
#[derive(Clone, Debug)]
pub struct ReloadRequest {
    kind: ReloadKind,
    reply_to: Option<ReplyTo>,
}

/// A re-read whose changes are being applied: answered with `lines` once no stop of it is left.
#[derive(Debug)]
struct Applying {
    token: u64,
    req: ReloadRequest,
    lines: Vec<String>,
}

/// The re-read queue.
#[derive(Debug, Default)]
pub struct Reloads {
    queue: VecDeque<ReloadRequest>,
    in_flight: Option<(u64, ReloadRequest)>,
    applying: Option<Applying>,
    next_token: u64,
    /// A re-read began being applied since [`Reloads::take_dirty`]: check whether it is over.
    dirty: bool,
}

/// What a re-read needs of the rest of the core.
pub struct Ctx<'a> {
    /// The processes.
    pub reg: &'a mut Registry,
    /// The jobs (and whether the daemon is shutting down).
    pub jobs: &'a mut Jobs,
    /// The time.
    pub now: Instant,
    /// The effects.
    pub out: &'a mut Out,
}

fn answer(out: &mut Out, req: &ReloadRequest, reply: Reply) {
    out.reply(req.reply_to, reply);
}

impl Reloads {
    /// No re-read waits, is in flight or is being applied.
    pub fn idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_none() && self.applying.is_none()
    }

    /// Whether a re-read began being applied since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Queues a re-read; a SIGHUP already waiting absorbs another.
    pub fn request(&mut self, kind: ReloadKind, reply_to: Option<ReplyTo>, cx: Ctx<'_>) {
        if kind == ReloadKind::Hup && self.queue.iter().any(|r| r.kind == ReloadKind::Hup) {
            return;
        }
        self.queue.push_back(ReloadRequest { kind, reply_to });
        self.next(cx.jobs.shutting_down, cx.out);
    }

    fn next(&mut self, shutting_down: bool, out: &mut Out) {
        if self.in_flight.is_some() || self.applying.is_some() || shutting_down {
            return;
        }
        let Some(req) = self.queue.pop_front() else { return };
        if req.kind.applies() {
            out.notify(Notify { reloading: true, status: Some("reloading the config".into()), ..Notify::default() });
        }
        self.next_token += 1;
        let token = self.next_token;
        self.in_flight = Some((token, req));
        out.spawner(Request::Reread { token });
    }

    fn take_in_flight(&mut self, token: u64, out: &mut Out) -> Option<ReloadRequest> {
        match self.in_flight.take() {
            Some((t, req)) if t == token => Some(req),
            other => {
                self.in_flight = other;
                out.error(format!("spawner answered unknown re-read {token}"));
                None
            }
        }
    }

    /// The token of the re-read being applied, if one is.
    pub fn applying(&self) -> Option<u64> {
        self.applying.as_ref().map(|a| a.token)
    }

    /// The re-read being applied is done: answer it and begin the next one.
    pub fn finish(&mut self, reg: &Registry, shutting_down: bool, out: &mut Out) {
        let Some(Applying { req, lines, .. }) = self.applying.take() else { return };
        if req.kind.applies() {
            out.notify(Notify { ready: true, status: Some(reg.summary()), ..Notify::default() });
        }
        answer(out, &req, Reply::ok(0, json!({ "lines": lines })));
        self.next(shutting_down, out);
    }

    /// The spawner found errors in the file: nothing changes.
    pub fn rejected(&mut self, token: u64, error: String, cx: Ctx<'_>) {
        let Some(req) = self.take_in_flight(token, cx.out) else { return };
        if req.kind.applies() {
            cx.out.notify(Notify { ready: true, status: Some(cx.reg.summary()), ..Notify::default() });
        }
        for line in error.lines() {
            cx.out.error(format!("config error, nothing changed: {line}"));
        }
        answer(cx.out, &req, Reply::err(0, kind::CONFIG_ERROR, error));
        self.next(cx.jobs.shutting_down, cx.out);
    }

    /// The re-read config is complete: act on it as the request asked.
    pub fn config(&mut self, generation: u64, token: Option<u64>, items: Result<Vec<ConfigItem>, String>, cx: Ctx<'_>) {
        let Some(token) = token else {
            return cx.out.error("spawner sent an unrequested config; ignored");
        };
        let Some(req) = self.take_in_flight(token, cx.out) else { return };
        let items = match items {
            Ok(items) => items,
            Err(e) => {
                let error = format!("the re-read config did not decode, nothing changed: {e}");
                cx.out.error(error.clone());
                answer(cx.out, &req, Reply::err(0, kind::CONFIG_ERROR, error));
                return self.next(cx.jobs.shutting_down, cx.out);
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
        let Ctx { reg, jobs, now, out } = cx;
        match req.kind.clone() {
            ReloadKind::Reread => {
                let lines = if plan.is_empty() && plan.server_fields.is_empty() {
                    vec!["No config updates to processes".to_owned()]
                } else {
                    plan.describe()
                };
                answer(out, &req, Reply::ok(0, json!({ "lines": lines })));
            }
            ReloadKind::Avail => answer(out, &req, Reply::ok(0, json!(avail(reg, &programs)))),
            ReloadKind::Reload => {
                out.spawner(Request::Commit { generation, programs: Vec::new() });
                reg.generation = generation;
                out.info("reload: stopping every program, then starting again from the config file");
                let all = reg.ordered().into_iter().map(|s| (s, false)).collect();
                jobs.stop(reg, all, Then::Rebuild(programs.into_values().collect()), None, Some(token));
                return self.apply_then_answer(token, req, vec!["Restarted taskmasterd".to_owned()]);
            }
            ReloadKind::Hup | ReloadKind::Update(_) => {
                let names = match &req.kind {
                    ReloadKind::Update(n) => n.clone(),
                    _ => Vec::new(),
                };
                if let Some(bad) =
                    names.iter().find(|n| *n != "all" && !programs.contains_key(*n) && !reg.programs.contains_key(*n))
                {
                    let msg = format!("{bad}: ERROR (no such program)");
                    answer(out, &req, Reply::err(0, kind::NO_SUCH_PROCESS, msg));
                    return self.next(jobs.shutting_down, out);
                }
                let plan = plan.only(&names);
                for f in &plan.server_fields {
                    out.warn(format!("server.{f} changed: it takes effect when taskmasterd restarts"));
                }
                if plan.is_empty() {
                    out.info("config re-read: no changes to programs");
                    let lines = vec!["No config updates to processes".to_owned()];
                    answer(out, &req, Reply::ok(0, json!({ "lines": lines })));
                    out.notify(Notify { ready: true, status: Some(reg.summary()), ..Notify::default() });
                } else {
                    let commit = if names.iter().any(|n| n == "all") { Vec::new() } else { names };
                    out.spawner(Request::Commit { generation, programs: commit });
                    reg.generation = generation;
                    let lines = apply_plan(&plan, programs, token, Ctx { reg, jobs, now, out });
                    return self.apply_then_answer(token, req, lines);
                }
            }
        }
        self.next(jobs.shutting_down, out);
    }

    /// Waits for the stops of re-read `token` before answering it with `lines`.
    fn apply_then_answer(&mut self, token: u64, req: ReloadRequest, lines: Vec<String>) {
        self.applying = Some(Applying { token, req, lines });
        self.dirty = true; // checked once this input is handled, even with no job at all
    }
}

/// `avail`'s rows: the file's programs (in use or not) and those the file no longer has.
fn avail(reg: &Registry, programs: &BTreeMap<String, Program>) -> Vec<AvailInfo> {
    let row = |p: &Program, state: &str| AvailInfo {
        name: p.name.clone(),
        state: state.into(),
        autostart: p.autostart,
        priority: p.priority,
        numprocs: p.numprocs,
    };
    let mut rows: Vec<AvailInfo> = programs
        .values()
        .map(|p| row(p, if reg.programs.contains_key(&p.name) { "in use" } else { "avail" }))
        .collect();
    for p in reg.programs.values().filter(|p| !programs.contains_key(&p.name)) {
        rows.push(row(p, "removed"));
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// Brings the processes in line with `plan` (DESIGN §4) as part of re-read `token`; logs
/// one line per program and returns the answer's lines, in supervisorctl's words:
/// `db: added process group`, `gone: stopped` then `gone: removed process group`, `web:
/// stopped` then `web: updated process group (command)` for a restart, `tune: updated
/// process group (stopwaitsecs)` for a change applied in place.
fn apply_plan(plan: &ReloadPlan, mut new: BTreeMap<String, Program>, token: u64, cx: Ctx<'_>) -> Vec<String> {
    let Ctx { reg, jobs, now, out } = cx;
    let mut lines = Vec::new();
    let mut answer = Vec::new();
    let mut start: Vec<Target> = Vec::new();
    let mut restart: Vec<Target> = Vec::new();
    let mut forget: Vec<Target> = Vec::new();
    let alive = |reg: &Registry, t: &Target| reg.get(t.0).is_some_and(|p| p.m.state.may_have_process());
    for name in &plan.removed {
        let slots = reg.slots_of(name);
        if slots.iter().any(|s| alive(reg, &(*s, false))) {
            answer.push(format!("{name}: stopped"));
        }
        forget.extend(slots.into_iter().map(|s| (s, false)));
        reg.programs.remove(name);
        lines.push(format!("{name}: removed"));
        answer.push(format!("{name}: removed process group"));
    }
    for name in &plan.added {
        let Some(p) = new.remove(name) else { continue };
        let autostart = p.autostart;
        let slots = reg.add_program(p, now, out);
        if autostart {
            start.extend(slots.into_iter().map(|s| (s, false)));
        }
        lines.push(format!("{name}: added"));
        answer.push(format!("{name}: added process group"));
    }
    for change in &plan.changed {
        let Some(p) = new.remove(&change.name) else { continue };
        let p = Rc::new(p);
        reg.programs.insert(p.name.clone(), Rc::clone(&p));
        let range = p.instances();
        let mut kept = Vec::new();
        let (restarts_before, forgets_before) = (restart.len(), forget.len());
        for slot in reg.slots_of(&p.name) {
            let Some(proc) = reg.get(slot) else { continue };
            let (instance, state, ever) = (proc.instance, proc.m.state, proc.m.ever_started);
            if !range.contains(&instance) {
                forget.push((slot, false));
                continue;
            }
            kept.push(instance);
            reg.set_program(slot, Rc::clone(&p), out);
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
            let slot = reg.add_instance(&p, instance, now, out);
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
        if restart[restarts_before..].iter().chain(&forget[forgets_before..]).any(|t| alive(reg, t)) {
            answer.push(format!("{}: stopped", change.name));
        }
        answer.push(format!("{}: updated process group ({fields})", change.name));
    }
    for line in &lines {
        out.info(format!("update: {line}"));
    }
    if !forget.is_empty() {
        let slots = forget.iter().map(|t| t.0).collect();
        jobs.stop(reg, forget, Then::Forget(slots), None, Some(token));
    }
    if !restart.is_empty() {
        jobs.stop(reg, restart.clone(), Then::Start(restart), None, Some(token));
    }
    if !start.is_empty() {
        jobs.start(reg, start, None, now, out);
    }
    answer
}
