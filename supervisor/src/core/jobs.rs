//! Requests whose answer waits for processes to settle (DESIGN §2, §7): start waits for its
//! processes to leave STARTING; stop signals one priority group at a time, highest first, and
//! moves to the next once every process of the group has stopped; restart is a stop then a
//! start; shutdown is a stop of everything, then an exit. A stop that is part of a re-read
//! carries its token, so the re-read is answered only once its stops are done.

use crate::core::effects::{Effect, Out};
use crate::core::ids::{ReplyTo, Slot};
use crate::core::registry::{Registry, Target};
use crate::core::state::{Event, ProcessState};
use common::config::Program;
use common::proto::control::{ActionResult, Reply};
use serde_json::json;
use std::collections::VecDeque;
use std::time::Instant;

/// What a stop job does once every target has stopped.
#[derive(Debug)]
pub enum Then {
    /// Reply with the results.
    Reply,
    /// Start these (restart's second half), then reply.
    Start(Vec<Target>),
    /// End the daemon (shutdown).
    Exit,
    /// Forget these processes (removed by a reload).
    Forget(Vec<Slot>),
    /// Forget every process and start again from these programs (`reload`).
    Rebuild(Vec<Program>),
}

/// A request whose reply waits for processes to settle.
#[derive(Debug)]
pub enum Job {
    /// Stopping in descending priority, one priority group at a time (DESIGN §2).
    Stop {
        /// Who to answer, if anyone.
        reply_to: Option<ReplyTo>,
        /// Groups not signalled yet, highest priority first.
        groups: VecDeque<Vec<Target>>,
        /// The group being stopped.
        current: Vec<Slot>,
        /// Results so far.
        results: Vec<ActionResult>,
        /// What follows.
        then: Then,
        /// The re-read being applied that this stop is part of.
        reload: Option<u64>,
    },
    /// Waiting for started processes to leave STARTING.
    Start {
        /// Who to answer, if anyone.
        reply_to: Option<ReplyTo>,
        /// Processes still STARTING.
        pending: Vec<Slot>,
        /// Results so far.
        results: Vec<ActionResult>,
    },
}

/// One line of a job's answer.
pub fn result(name: &str, ok: bool, message: &str) -> ActionResult {
    ActionResult { name: name.to_owned(), ok, message: message.to_owned() }
}

/// The jobs under way.
#[derive(Debug, Default)]
pub struct Jobs {
    list: Vec<Job>,
    dirty: bool,
    /// Stopping everything: no exit restarts a process, no re-read begins.
    pub shutting_down: bool,
    /// `shutdown` requests, answered once every program has stopped.
    pub shutdown_waiters: Vec<ReplyTo>,
}

impl Jobs {
    /// Whether a job was added since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Whether a stop of re-read `token` is under way.
    pub fn stops_of_reload(&self, token: u64) -> bool {
        self.list.iter().any(|j| matches!(j, Job::Stop { reload: Some(t), .. } if *t == token))
    }

    /// Starts `targets` in ascending priority; answers when none is STARTING any more.
    pub fn start(
        &mut self,
        reg: &mut Registry,
        targets: Vec<Target>,
        reply_to: Option<ReplyTo>,
        now: Instant,
        out: &mut Out,
    ) {
        self.start_with(reg, targets, reply_to, Vec::new(), now, out);
    }

    fn start_with(
        &mut self,
        reg: &mut Registry,
        mut targets: Vec<Target>,
        reply_to: Option<ReplyTo>,
        mut results: Vec<ActionResult>,
        now: Instant,
        out: &mut Out,
    ) {
        targets.sort_by_key(|(s, _)| (reg.get(*s).map_or(0, |p| p.program.priority), *s));
        let mut pending = Vec::new();
        for (slot, explicit) in targets {
            let Some(name) = reg.get(slot).map(|p| p.name.clone()) else { continue };
            match reg.apply(slot, Event::Start, now, !self.shutting_down, out) {
                Ok(()) => pending.push(slot),
                Err(refusal) if explicit => results.push(result(&name, false, refusal.message())),
                Err(_) => {}
            }
        }
        self.list.push(Job::Start { reply_to, pending, results });
        self.dirty = true;
    }

    /// Stops `targets` in descending priority, one group at a time, then does `then`.
    /// `reload`: the token of the re-read whose application this stop is part of.
    pub fn stop(
        &mut self,
        reg: &Registry,
        mut targets: Vec<Target>,
        then: Then,
        reply_to: Option<ReplyTo>,
        reload: Option<u64>,
    ) {
        let prio = |s: Slot| reg.get(s).map_or(0, |p| p.program.priority);
        targets.sort_by_key(|(s, _)| (std::cmp::Reverse(prio(*s)), *s));
        let mut groups: VecDeque<Vec<Target>> = VecDeque::new();
        let mut last = None;
        for t in targets {
            let prio = prio(t.0);
            match groups.back_mut() {
                Some(g) if last == Some(prio) => g.push(t),
                _ => groups.push_back(vec![t]),
            }
            last = Some(prio);
        }
        self.list.push(Job::Stop { reply_to, groups, current: Vec::new(), results: Vec::new(), then, reload });
        self.dirty = true;
    }

    /// Advances every job once.
    pub fn progress(&mut self, reg: &mut Registry, now: Instant, out: &mut Out) {
        for job in std::mem::take(&mut self.list) {
            if let Some(job) = self.progress_one(reg, job, now, out) {
                self.list.push(job);
            }
        }
    }

    fn progress_one(&mut self, reg: &mut Registry, job: Job, now: Instant, out: &mut Out) -> Option<Job> {
        match job {
            Job::Start { reply_to, mut pending, mut results } => {
                let mut still = Vec::new();
                for slot in pending.drain(..) {
                    let Some(p) = reg.get(slot) else { continue };
                    match p.m.state {
                        ProcessState::Starting => still.push(slot),
                        ProcessState::Running => results.push(result(&p.name, true, "started")),
                        _ if p.m.spawnerr.is_some() => results.push(result(&p.name, false, "ERROR (spawn error)")),
                        _ => results.push(result(&p.name, false, "ERROR (abnormal termination)")),
                    }
                }
                if still.is_empty() {
                    out.reply(reply_to, Reply::ok(0, json!(results)));
                    None
                } else {
                    Some(Job::Start { reply_to, pending: still, results })
                }
            }
            Job::Stop { reply_to, mut groups, mut current, mut results, then, reload } => loop {
                if !current.iter().all(|s| reg.settled_stopped(*s)) {
                    return Some(Job::Stop { reply_to, groups, current, results, then, reload });
                }
                for slot in current.drain(..) {
                    if let Some(p) = reg.get(slot) {
                        results.push(result(&p.name, true, "stopped"));
                    }
                }
                let Some(group) = groups.pop_front() else {
                    self.finish_stop(reg, then, reply_to, results, now, out);
                    return None;
                };
                for (slot, explicit) in group {
                    let Some(p) = reg.get(slot) else { continue };
                    let (stopping, name) = (p.m.state == ProcessState::Stopping, p.name.clone());
                    match reg.apply(slot, Event::Stop, now, !self.shutting_down, out) {
                        Ok(()) => current.push(slot),
                        Err(_) if stopping => current.push(slot),
                        Err(refusal) if explicit && matches!(then, Then::Reply) => {
                            results.push(result(&name, false, refusal.message()))
                        }
                        Err(_) => {}
                    }
                }
            },
        }
    }

    fn finish_stop(
        &mut self,
        reg: &mut Registry,
        then: Then,
        reply_to: Option<ReplyTo>,
        results: Vec<ActionResult>,
        now: Instant,
        out: &mut Out,
    ) {
        match then {
            Then::Reply => out.reply(reply_to, Reply::ok(0, json!(results))),
            Then::Start(mut targets) => {
                // A restart names every target again, so none is refused as explicit.
                for t in &mut targets {
                    t.1 = false;
                }
                self.start_with(reg, targets, reply_to, results, now, out);
            }
            Then::Exit => {
                // Answered once every program has stopped (DESIGN §7).
                for to in std::mem::take(&mut self.shutdown_waiters) {
                    out.reply(Some(to), Reply::ok(0, json!({ "message": "Shut down" })));
                }
                out.push(Effect::Exit(0));
            }
            Then::Forget(slots) => {
                for slot in slots {
                    reg.forget(slot, "the process was removed from the config", out);
                }
            }
            Then::Rebuild(programs) => {
                for slot in reg.ordered() {
                    reg.forget(slot, "taskmasterd reloaded its config", out);
                }
                reg.programs.clear();
                let mut start = Vec::new();
                for p in programs {
                    let autostart = p.autostart;
                    let slots = reg.add_program(p, now, out);
                    if autostart {
                        start.extend(slots.into_iter().map(|s| (s, false)));
                    }
                }
                self.start(reg, start, None, now, out);
            }
        }
    }
}
