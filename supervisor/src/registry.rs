//! The processes the supervisor knows, their machines, spawn ids and log files.

use crate::logs::ChildLog;
use crate::state::{Machine, ProcessState};
use common::config::{Program, Stream};
use common::names::Selector;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;
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
    /// Write end of the live child's stdin.
    pub stdin: Option<OwnedFd>,
    /// stdout and stderr logs.
    pub logs: [ChildLog; 2],
    /// When the state last changed (wall clock, for `status`).
    pub changed_at: SystemTime,
}

/// Every process, in `status` order (program name, then instance).
#[derive(Default)]
pub struct Registry {
    /// The processes; an index is a slot, stable for the daemon's life.
    pub procs: Vec<Proc>,
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
        let mut programs: Vec<Rc<Program>> = programs.into_iter().map(Rc::new).collect();
        programs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut procs = Vec::new();
        for p in programs {
            for instance in p.instances() {
                let logs = [
                    ChildLog::new(p.log_file(Stream::Stdout, instance, childlogdir)),
                    ChildLog::new(p.log_file(Stream::Stderr, instance, childlogdir)),
                ];
                procs.push(Proc {
                    name: p.process_name(instance).to_string(),
                    program: Rc::clone(&p),
                    instance,
                    m: Machine::default(),
                    spawn_id: None,
                    stdin: None,
                    logs,
                    changed_at: SystemTime::now(),
                });
            }
        }
        Registry { procs, ..Registry::default() }
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
            for (slot, p) in self.procs.iter().enumerate() {
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
        out.sort_by_key(|t| t.0);
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
        self.procs[slot].spawn_id = Some(spawn_id);
    }

    /// The slot whose child has this spawn id; forgets the id (the child was reaped).
    pub fn take_spawn(&mut self, spawn_id: u64) -> Option<usize> {
        let slot = self.by_spawn.remove(&spawn_id)?;
        if self.procs[slot].spawn_id == Some(spawn_id) {
            self.procs[slot].spawn_id = None;
            self.procs[slot].stdin = None;
        }
        Some(slot)
    }

    /// The slot of a live spawn id, without forgetting it.
    pub fn slot_of_spawn(&self, spawn_id: u64) -> Option<usize> {
        self.by_spawn.get(&spawn_id).copied()
    }

    /// Whether any process may still have a live child or a spawn on its way.
    pub fn any_alive(&self) -> bool {
        self.procs.iter().any(|p| p.m.state.may_have_process() || p.spawn_id.is_some())
    }

    /// Counts by state, for the log.
    pub fn count(&self, state: ProcessState) -> usize {
        self.procs.iter().filter(|p| p.m.state == state).count()
    }
}
