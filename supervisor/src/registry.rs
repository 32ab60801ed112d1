//! The processes the supervisor knows, their machines, spawn ids and log files.

use crate::logs::ChildLog;
use crate::state::{Machine, ProcessState};
use common::config::{Program, Stream};
use common::names::Selector;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

/// One process (an instance of a program).
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
    pub spawn_id: Option<u64>,
    /// Write end of the live child's stdin (non-blocking).
    pub stdin: Option<std::fs::File>,
    /// The PTY of a live `pty: true` child.
    pub pty: Option<crate::attach::Pty>,
    /// The exit status to send attached clients once the last output is read.
    pub pending_exit: Option<i32>,
    /// stdout and stderr logs.
    pub logs: [ChildLog; 2],
    /// When the state last changed (wall clock, for `status`).
    pub changed_at: SystemTime,
}

/// Every process and the programs they belong to.
#[derive(Default)]
pub struct Registry {
    /// The processes by slot; a slot is never reused, so a stale reference finds nothing.
    pub procs: BTreeMap<usize, Proc>,
    /// The current config of each program.
    pub programs: BTreeMap<String, Rc<Program>>,
    next_slot: usize,
    childlogdir: PathBuf,
    by_spawn: HashMap<u64, usize>,
    by_token: HashMap<u64, usize>,
    next_token: u64,
}

/// A selected process and whether it was named on its own (`web:1`), where a refusal is an
/// error rather than a skip (DESIGN §7).
pub type Target = (usize, bool);

impl Registry {
    /// A registry of every instance of `programs`, all STOPPED.
    pub fn new(programs: Vec<Program>, childlogdir: &Path) -> Self {
        let mut r = Registry { childlogdir: childlogdir.to_path_buf(), ..Registry::default() };
        for p in programs {
            r.add_program(p);
        }
        r
    }

    /// Adds a program and its instances (STOPPED); returns their slots.
    pub fn add_program(&mut self, p: Program) -> Vec<usize> {
        let p = Rc::new(p);
        self.programs.insert(p.name.clone(), Rc::clone(&p));
        p.instances().map(|i| self.add_instance(&p, i)).collect()
    }

    /// Adds one STOPPED instance of `p`; returns its slot.
    pub fn add_instance(&mut self, p: &Rc<Program>, instance: u32) -> usize {
        let slot = self.next_slot;
        self.next_slot += 1;
        let proc = Proc {
            name: p.process_name(instance).to_string(),
            program: Rc::clone(p),
            instance,
            m: Machine::default(),
            spawn_id: None,
            stdin: None,
            pty: None,
            pending_exit: None,
            logs: [ChildLog::default(), ChildLog::default()],
            changed_at: SystemTime::now(),
        };
        self.procs.insert(slot, proc);
        self.set_program(slot, Rc::clone(p));
        slot
    }

    /// Gives a process a new config (same program name): its name and log paths follow.
    pub fn set_program(&mut self, slot: usize, p: Rc<Program>) {
        let dir = self.childlogdir.clone();
        let Some(proc) = self.procs.get_mut(&slot) else { return };
        proc.name = p.process_name(proc.instance).to_string();
        for (idx, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            let s = p.stream(stream);
            let settings = (p.log_file(stream, proc.instance, &dir), s.maxbytes, s.backups, s.syslog);
            if proc.logs[idx].settings != settings {
                proc.logs[idx] = ChildLog::new(settings);
            }
        }
        proc.program = p;
    }

    /// Removes a process (it must have no live child).
    pub fn forget(&mut self, slot: usize) {
        self.procs.remove(&slot);
        self.by_token.retain(|_, s| *s != slot);
        self.by_spawn.retain(|_, s| *s != slot);
    }

    /// The process in a slot, if it still exists.
    pub fn get(&self, slot: usize) -> Option<&Proc> {
        self.procs.get(&slot)
    }

    /// Every slot in `status` order: program name, then instance.
    pub fn ordered(&self) -> Vec<usize> {
        let mut slots: Vec<usize> = self.procs.keys().copied().collect();
        slots.sort_by(|a, b| {
            let (pa, pb) = (&self.procs[a], &self.procs[b]);
            (&pa.program.name, pa.instance).cmp(&(&pb.program.name, pb.instance))
        });
        slots
    }

    /// The slots of one program, by instance.
    pub fn slots_of(&self, program: &str) -> Vec<usize> {
        self.ordered().into_iter().filter(|s| self.procs[s].program.name == program).collect()
    }

    /// Resolves names (`all`, `web`, `web:*`, `web:1`) to slots, deduplicated, in `status`
    /// order. An empty list selects nothing.
    ///
    /// # Errors
    /// The first name that matches nothing: "no such process: web2".
    pub fn select(&self, names: &[String]) -> Result<Vec<Target>, String> {
        let mut out: Vec<Target> = Vec::new();
        for name in names {
            let sel = Selector::parse(name)?;
            let mut matched = false;
            for slot in self.ordered() {
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
                return Err(format!("no such process: {name}"));
            }
        }
        let order = self.ordered();
        out.sort_by_key(|t| order.iter().position(|s| *s == t.0));
        Ok(out)
    }

    /// A new token for a spawn request of `slot`.
    pub fn token_for(&mut self, slot: usize) -> u64 {
        self.next_token += 1;
        self.by_token.insert(self.next_token, slot);
        self.next_token
    }

    /// The slot a spawn answer is for.
    pub fn take_token(&mut self, token: u64) -> Option<usize> {
        self.by_token.remove(&token)
    }

    /// Records the live child of `slot`.
    pub fn bind_spawn(&mut self, slot: usize, spawn_id: u64) {
        self.by_spawn.insert(spawn_id, slot);
        if let Some(p) = self.procs.get_mut(&slot) {
            p.spawn_id = Some(spawn_id);
        }
    }

    /// The slot whose child has this spawn id; forgets the id (the child was reaped).
    pub fn take_spawn(&mut self, spawn_id: u64) -> Option<usize> {
        let slot = self.by_spawn.remove(&spawn_id)?;
        let proc = self.procs.get_mut(&slot)?;
        if proc.spawn_id == Some(spawn_id) {
            proc.spawn_id = None;
            proc.stdin = None;
            proc.pty = None;
        }
        Some(slot)
    }

    /// The slot of a live spawn id, without forgetting it.
    pub fn slot_of_spawn(&self, spawn_id: u64) -> Option<usize> {
        self.by_spawn.get(&spawn_id).copied()
    }

    /// Counts by state, for the log.
    pub fn count(&self, state: ProcessState) -> usize {
        self.procs.values().filter(|p| p.m.state == state).count()
    }
}
