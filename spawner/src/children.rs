//! The children the spawner forked and whose end no supervisor has heard of yet. A zombie keeps
//! its pid until it is reaped here, so a signal sent to a pid found in this table cannot hit a
//! reused pid (DESIGN §1 rule 2); a reaped child stays in the table, marked ended and no longer
//! signalled, until its `Exited` event reaches a supervisor (issue 16: a supervisor that died
//! cannot have heard it). Each child keeps the spawner's copies of the fds handed over, so a
//! new supervisor can take over its output, and a PTY never loses its master.

use common::proto::spawn::{ExitStatus, FdSet};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::fd::OwnedFd;

/// One child the supervisor has not heard the end of.
#[derive(Debug)]
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
    /// The config generation it was spawned under.
    pub generation: u64,
    /// When it was spawned, CLOCK_MONOTONIC nanoseconds.
    pub started_ns: u64,
    /// Which fds were handed over with it, in the order of `fds`.
    pub fdset: FdSet,
    /// The spawner's copies of the parent ends handed to the supervisor: stdin's write end,
    /// the output pipes' read ends, or the PTY master. Kept until the end is reported.
    pub fds: Vec<OwnedFd>,
    /// How it ended, once reaped; the pid is then no longer its own.
    pub ended: Option<ExitStatus>,
    /// Whether what it leaves in its process group (and cgroup) is ended when it exits, before
    /// its exit is reported (`leftovers.rs`).
    pub cleanupgroup: bool,
}

impl Child {
    /// A child just forked, with no fds kept yet and not ended.
    pub fn new(pid: Pid, program: &str, instance: u32, stopasgroup: bool, killasgroup: bool) -> Self {
        Child {
            pid,
            program: program.to_owned(),
            instance,
            stopasgroup,
            killasgroup,
            generation: 0,
            started_ns: common::units::monotonic_ns(),
            fdset: FdSet { stdin: false, stdout: false, stderr: false, pty: false, hold: false },
            fds: Vec::new(),
            ended: None,
            cleanupgroup: true,
        }
    }
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

    /// The child with this spawn id, if not reaped yet (a reaped one may not be signalled).
    pub fn get(&self, spawn_id: u64) -> Option<&Child> {
        self.by_id.get(&spawn_id).filter(|c| c.ended.is_none())
    }

    /// The child with this spawn id, reaped or not, to keep its fds.
    pub fn get_mut(&mut self, spawn_id: u64) -> Option<&mut Child> {
        self.by_id.get_mut(&spawn_id)
    }

    /// Forgets a child whose end a supervisor has been told: its fds close.
    pub fn remove(&mut self, spawn_id: u64) -> Option<Child> {
        let child = self.by_id.remove(&spawn_id)?;
        if child.ended.is_none() {
            self.by_pid.remove(&child.pid);
        }
        Some(child)
    }

    /// Every child in the table, reaped or not, by spawn id (the inventory a new supervisor
    /// gets).
    pub fn all(&self) -> Vec<(u64, &Child)> {
        let mut all: Vec<(u64, &Child)> = self.by_id.iter().map(|(id, c)| (*id, c)).collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// How many are live (not reaped).
    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    /// The live (or zombie, unreaped) child running this instance of `program`, if any: its
    /// spawn id and pid. A child counts until it is reaped, which comes before its `Exited`
    /// event is sent, so a restart after that event finds none.
    pub fn live_instance(&self, program: &str, instance: u32) -> Option<(u64, Pid)> {
        self.by_id
            .iter()
            .find(|(_, c)| c.ended.is_none() && c.program == program && c.instance == instance)
            .map(|(id, c)| (*id, c.pid))
    }

    /// Marks the child with this pid ended, once reaped (its pid may be reused from now on);
    /// returns its spawn id, `None` for a pid the table does not hold (the supervisor process).
    pub(crate) fn remove_pid(&mut self, pid: Pid, status: ExitStatus) -> Option<u64> {
        let id = self.by_pid.remove(&pid)?;
        if let Some(c) = self.by_id.get_mut(&id) {
            c.ended = Some(status);
        }
        Some(id)
    }

    /// Every live child's pid.
    pub fn pids(&self) -> Vec<Pid> {
        self.by_pid.keys().copied().collect()
    }

    /// Every live child: spawn id and the child.
    pub fn live(&self) -> impl Iterator<Item = (u64, &Child)> {
        self.by_pid.values().filter_map(|id| self.by_id.get(id).map(|c| (*id, c)))
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
            match self.remove_pid(pid, status) {
                Some(id) => out.exited.push((id, status)),
                None => out.others.push((pid, status)),
            }
        }
    }
}
