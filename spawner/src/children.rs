//! The children the spawner forked and has not reaped yet. A zombie keeps its pid until it is
//! reaped here, so a signal sent to a pid found in this table cannot hit a reused pid (DESIGN §1
//! rule 2).

use common::proto::spawn::ExitStatus;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;

/// One live (or zombie, unreaped) child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    /// Its pid, also its process group id (the child calls setsid).
    pub pid: Pid,
    /// The program it runs.
    pub program: String,
    /// The instance.
    pub instance: u32,
    /// Whether the stop signal goes to its process group (from the config it was spawned under).
    pub stopasgroup: bool,
    /// Whether SIGKILL goes to its process group.
    pub killasgroup: bool,
    /// Whether what it leaves in its process group (and cgroup) is ended when it exits, before
    /// its exit is reported (`leftovers.rs`).
    pub cleanupgroup: bool,
}

/// What a reap found.
#[derive(Debug, Default)]
pub struct Reaped {
    /// Supervised children that ended: (spawn id, status).
    pub exited: Vec<(u64, ExitStatus)>,
    /// Pids reaped that were not in the table (the supervisor process).
    pub others: Vec<(Pid, ExitStatus)>,
}

/// The table, keyed by spawn id.
#[derive(Debug, Default)]
pub struct Children {
    by_id: HashMap<u64, Child>,
    by_pid: HashMap<Pid, u64>,
    next_id: u64,
}

impl Children {
    /// Records a new child and returns its spawn id (never reused).
    pub fn insert(&mut self, child: Child) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.by_pid.insert(child.pid, id);
        self.by_id.insert(id, child);
        id
    }

    /// The child with this spawn id, if not reaped yet.
    pub fn get(&self, spawn_id: u64) -> Option<&Child> {
        self.by_id.get(&spawn_id)
    }

    /// How many are live.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The live (or zombie, unreaped) child running this instance of `program`, if any: its
    /// spawn id and pid. A child leaves the table only when reaped, just before its `Exited`
    /// event is sent, so a restart after that event finds none.
    pub fn live_instance(&self, program: &str, instance: u32) -> Option<(u64, Pid)> {
        self.by_id.iter().find(|(_, c)| c.program == program && c.instance == instance).map(|(id, c)| (*id, c.pid))
    }

    /// Forgets the child with this pid, once reaped; returns its spawn id, `None` for a pid the
    /// table does not hold (the supervisor process).
    pub(crate) fn remove_pid(&mut self, pid: Pid) -> Option<u64> {
        let id = self.by_pid.remove(&pid)?;
        self.by_id.remove(&id);
        Some(id)
    }

    /// Every live child's pid.
    pub fn pids(&self) -> Vec<Pid> {
        self.by_id.values().map(|c| c.pid).collect()
    }

    /// Reaps every ended child without blocking (`waitpid(-1, WNOHANG)` until none is left: exits
    /// that arrived as one SIGCHLD are all collected).
    pub fn reap(&mut self) -> Reaped {
        let mut out = Reaped::default();
        loop {
            let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitStatus::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, ExitStatus::Signal(sig as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => return out,
                Ok(_) => continue, // stopped/continued: not an exit
            };
            match self.remove_pid(pid) {
                Some(id) => out.exited.push((id, status)),
                None => out.others.push((pid, status)),
            }
        }
    }
}
