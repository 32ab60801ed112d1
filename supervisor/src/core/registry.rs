//! The processes and their programs: state machines, spawn tokens and ids. No fd, no log and no
//! output here: those are the edge's, by slot.

use crate::core::effects::{Effect, Followed, Out};
use crate::core::ids::{Slot, SpawnId, TimerId};
use crate::core::state::{self, Action, Event, Machine, Note, ProcessState, Refusal};
use common::config::Program;
use common::names::Selector;
use common::proto::spawn::{ExitStatus, ProcRecord, Request, SignalPurpose};
use common::units::signal_name;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Instant;

/// One process (an instance of a program).
#[derive(Debug)]
pub struct Proc {
    /// Its program's config.
    pub program: Rc<Program>,
    /// Instance number.
    pub instance: u32,
    /// `web:0` or `web`.
    pub name: String,
    /// The state machine.
    pub m: Machine,
    /// The live child's spawn id.
    pub spawn_id: Option<SpawnId>,
    /// When the state last changed.
    pub changed_at: Instant,
}

/// A selected process and whether it was named on its own (`web:1`), where a refusal is an
/// error rather than a skip (DESIGN §7).
pub type Target = (Slot, bool);

/// A name that selects nothing, or does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    /// `web2: ERROR (no such process)`, as supervisorctl's result line; a name that is not a
    /// process name is answered alike.
    #[error("{0}: ERROR (no such process)")]
    NoSuchProcess(String),
}

/// Every process and the programs they belong to.
#[derive(Debug, Default)]
pub struct Registry {
    /// The processes by slot.
    pub procs: BTreeMap<Slot, Proc>,
    /// The current config of each program.
    pub programs: BTreeMap<String, Rc<Program>>,
    /// The config generation spawns are asked under.
    pub generation: u64,
    next_slot: u64,
    by_spawn: HashMap<SpawnId, Slot>,
    by_token: HashMap<u64, Slot>,
    next_token: u64,
    /// A state changed, or the set of processes did, since [`Registry::take_dirty`].
    dirty: bool,
    /// The clock mapping for the records kept by the spawner; none in tests that build a bare
    /// registry (then nothing is kept).
    pub mono: Option<crate::core::ids::Mono>,
}

/// Whether a process in this state must be kept by the spawner for a new supervisor: its child
/// (or the lack of one) cannot tell it (issue 16).
fn kept(m: &Machine) -> bool {
    use ProcessState::*;
    matches!(m.state, Backoff | Fatal | Exited | Stopping) || (m.state == Stopped && m.ever_started)
}

impl Registry {
    /// Adds a program and its instances (STOPPED); returns their slots.
    pub fn add_program(&mut self, p: Program, now: Instant, out: &mut Out) -> Vec<Slot> {
        let p = Rc::new(p);
        self.programs.insert(p.name.clone(), Rc::clone(&p));
        p.instances().map(|i| self.add_instance(&p, i, now, out)).collect()
    }

    /// Adds one STOPPED instance of `p`; returns its slot.
    pub fn add_instance(&mut self, p: &Rc<Program>, instance: u32, now: Instant, out: &mut Out) -> Slot {
        let slot = Slot(self.next_slot);
        self.next_slot += 1;
        let proc = Proc {
            name: p.process_name(instance).to_string(),
            program: Rc::clone(p),
            instance,
            m: Machine::default(),
            spawn_id: None,
            changed_at: now,
        };
        self.procs.insert(slot, proc);
        self.dirty = true;
        out.push(Effect::Configure { slot, program: Rc::clone(p), instance });
        slot
    }

    /// Gives a process a new config (same program name): its name follows, and its logs (the
    /// edge's).
    pub fn set_program(&mut self, slot: Slot, p: Rc<Program>, out: &mut Out) {
        let Some(proc) = self.procs.get_mut(&slot) else { return };
        proc.name = p.process_name(proc.instance).to_string();
        out.push(Effect::Configure { slot, program: Rc::clone(&p), instance: proc.instance });
        proc.program = p;
    }

    /// Removes a process (it has no live child): its followers end, its logs close.
    pub fn forget(&mut self, slot: Slot, why: &str, out: &mut Out) {
        if self.procs.remove(&slot).is_none() {
            return;
        }
        self.by_token.retain(|_, s| *s != slot);
        self.by_spawn.retain(|_, s| *s != slot);
        self.dirty = true;
        out.push(Effect::EndFollowers(Followed::Proc(slot), why.to_owned()));
        out.push(Effect::Forget(slot));
    }

    /// The process in a slot, if it still exists.
    pub fn get(&self, slot: Slot) -> Option<&Proc> {
        self.procs.get(&slot)
    }

    /// Whether something changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Every slot in `status` order: program name, then instance.
    pub fn ordered(&self) -> Vec<Slot> {
        let mut slots: Vec<Slot> = self.procs.keys().copied().collect();
        slots.sort_by(|a, b| {
            let (pa, pb) = (&self.procs[a], &self.procs[b]);
            (&pa.program.name, pa.instance).cmp(&(&pb.program.name, pb.instance))
        });
        slots
    }

    /// The slots of one program, by instance.
    pub fn slots_of(&self, program: &str) -> Vec<Slot> {
        self.ordered().into_iter().filter(|s| self.procs[s].program.name == program).collect()
    }

    /// Resolves names (`all`, `web`, `web:*`, `web:1`) to slots, deduplicated, in `status`
    /// order. An empty list selects nothing.
    ///
    /// # Errors
    /// The first name that matches nothing, or does not parse.
    pub fn select(&self, names: &[String]) -> Result<Vec<Target>, SelectError> {
        let order = self.ordered();
        let mut out: Vec<Target> = Vec::new();
        for name in names {
            let sel = Selector::parse(name).map_err(|_| SelectError::NoSuchProcess(name.clone()))?;
            let mut matched = false;
            for &slot in &order {
                let p = &self.procs[&slot];
                let hit = match &sel {
                    Selector::All => Some(false),
                    Selector::Program(prog) if p.program.name == *prog => {
                        Some(p.program.numprocs == 1 && !name.ends_with(":*"))
                    }
                    Selector::Process(prog, n) if p.program.name == *prog && p.instance == *n => Some(true),
                    _ => None,
                };
                if let Some(explicit) = hit {
                    matched = true;
                    match out.iter_mut().find(|(s, _)| *s == slot) {
                        Some(t) => t.1 |= explicit,
                        None => out.push((slot, explicit)),
                    }
                }
            }
            if !matched && sel != Selector::All {
                return Err(SelectError::NoSuchProcess(name.clone()));
            }
        }
        out.sort_by_key(|t| order.iter().position(|s| *s == t.0));
        Ok(out)
    }

    /// The slot a spawn answer is for.
    pub fn take_token(&mut self, token: u64) -> Option<Slot> {
        self.by_token.remove(&token)
    }

    /// Records the live child of `slot`.
    pub fn bind_spawn(&mut self, slot: Slot, spawn_id: SpawnId) {
        self.by_spawn.insert(spawn_id, slot);
        if let Some(p) = self.procs.get_mut(&slot) {
            p.spawn_id = Some(spawn_id);
        }
    }

    /// The slot whose child has this spawn id; forgets the id (the child was reaped).
    pub fn take_spawn(&mut self, spawn_id: SpawnId) -> Option<Slot> {
        let slot = self.by_spawn.remove(&spawn_id)?;
        let proc = self.procs.get_mut(&slot)?;
        if proc.spawn_id == Some(spawn_id) {
            proc.spawn_id = None;
        }
        Some(slot)
    }

    /// The slot of a live spawn id, without forgetting it.
    pub fn slot_of_spawn(&self, spawn_id: SpawnId) -> Option<Slot> {
        self.by_spawn.get(&spawn_id).copied()
    }

    /// Counts by state.
    pub fn count(&self, state: ProcessState) -> usize {
        self.procs.values().filter(|p| p.m.state == state).count()
    }

    /// `12 running, 1 fatal`: the processes by state, for the service manager's STATUS.
    pub fn summary(&self) -> String {
        use ProcessState::*;
        let parts: Vec<String> = [Running, Starting, Backoff, Stopping, Exited, Fatal, Stopped]
            .iter()
            .filter_map(|s| {
                let n = self.count(*s);
                (n > 0).then(|| format!("{n} {}", s.as_str().to_lowercase()))
            })
            .collect();
        if parts.is_empty() {
            "no programs".into()
        } else {
            parts.join(", ")
        }
    }

    /// Whether `slot` has settled stopped (no child, no retry pending); a forgotten slot has.
    pub fn settled_stopped(&self, slot: Slot) -> bool {
        self.get(slot)
            .is_none_or(|p| !p.m.state.may_have_process() && p.m.state != ProcessState::Backoff && p.spawn_id.is_none())
    }

    /// Applies an event to a process and turns the machine's actions into effects.
    /// `restart_allowed` is false during shutdown.
    ///
    /// # Errors
    /// The machine refused a user's start or stop.
    pub fn apply(
        &mut self,
        slot: Slot,
        event: Event,
        now: Instant,
        restart_allowed: bool,
        out: &mut Out,
    ) -> Result<(), Refusal> {
        let Some(proc) = self.procs.get(&slot) else { return Ok(()) };
        let (next, actions) = state::step(&proc.m, &proc.program, event, now, restart_allowed)?;
        let Some(proc) = self.procs.get_mut(&slot) else { return Ok(()) };
        let ended = next.state != proc.m.state
            && matches!(next.state, ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal);
        let remember = next.state != proc.m.state && (kept(&proc.m) || kept(&next));
        if next.state != proc.m.state {
            proc.changed_at = now;
            self.dirty = true;
        }
        proc.m = next;
        if let (true, Some(mono)) = (remember, self.mono) {
            // Before the machine's actions: the spawner must hold the record before a spawn.
            let m = &proc.m;
            let record = kept(m).then(|| ProcRecord {
                state: m.state.as_str().to_owned(),
                backoff: m.backoff,
                last_exit: m.last_exit,
                spawnerr: m.spawnerr.clone(),
                ever_started: m.ever_started,
                changed_ns: mono.ns_of(now),
            });
            out.spawner(Request::Remember { program: proc.program.name.clone(), instance: proc.instance, record });
        }
        if ended {
            let msg = format!("{} is {}", proc.name, proc.m.state.as_str());
            out.push(Effect::EndFollowers(Followed::Proc(slot), msg));
        }
        for action in actions {
            self.act(slot, action, out);
        }
        Ok(())
    }

    fn act(&mut self, slot: Slot, action: Action, out: &mut Out) {
        let Some(proc) = self.procs.get(&slot) else { return };
        match action {
            Action::Spawn => {
                let (program, instance) = (proc.program.name.clone(), proc.instance);
                self.next_token += 1;
                let token = self.next_token;
                self.by_token.insert(token, slot);
                out.spawner(Request::Spawn { token, program, instance, generation: self.generation });
            }
            Action::Signal(signal, purpose) => {
                if let Some(spawn_id) = proc.spawn_id {
                    if purpose == SignalPurpose::Stop {
                        out.info(format!("waiting for '{}' to stop", proc.name));
                    }
                    out.spawner(Request::Signal { spawn_id: spawn_id.0, signal: signal as i32, purpose });
                }
            }
            Action::Arm(kind, at) => {
                out.push(Effect::Arm(at, TimerId::Process { slot, kind, epoch: proc.m.epoch }));
            }
            Action::Log(note) => log_note(&proc.name, note, out),
        }
    }
}

/// The main log line of a note, in supervisord's words (DESIGN §5).
fn log_note(name: &str, note: Note, out: &mut Out) {
    let status = |s: ExitStatus| match s {
        ExitStatus::Code(c) => format!("exit status {c}"),
        ExitStatus::Signal(sig) => format!("terminated by {}", signal_name(sig)),
    };
    match note {
        Note::Spawned(pid) => out.info(format!("spawned: '{name}' with pid {pid}")),
        Note::SpawnErr(e) => out.warn(format!("spawnerr: '{name}': {e}")),
        Note::Success(secs) => out.info(format!(
            "success: '{name}' entered RUNNING state, process has stayed up for > than {secs} seconds (startsecs)"
        )),
        Note::Exited(s, true) => out.info(format!("exited: '{name}' ({}; expected)", status(s))),
        Note::Exited(s, false) => out.warn(format!("exited: '{name}' ({}; not expected)", status(s))),
        Note::GaveUp => out.info(format!("gave up: '{name}' entered FATAL state, too many start retries too quickly")),
        Note::Killing(pid) => out.warn(format!("killing '{name}' ({pid}) with SIGKILL")),
        Note::Stopped(s) => out.info(format!("stopped: '{name}' ({})", status(s))),
    }
}
