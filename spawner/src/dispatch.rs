//! Validation of the supervisor's requests against the spawner's own config and child table
//! (DESIGN §1 rules 1 and 2). It decides and does nothing, so it is tested without processes.

use crate::children::Children;
use common::config::{Config, Program};
use common::proto::spawn::SignalPurpose;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such program in the spawner's config.
    #[error("refused: unknown program '{0}'")]
    UnknownProgram(String),
    /// The instance is outside `numprocs_start .. numprocs_start + numprocs`.
    #[error("refused: instance {instance} of '{program}' is out of range {start}..{end}")]
    InstanceOutOfRange {
        /// Program.
        program: String,
        /// Instance asked for.
        instance: u32,
        /// First valid.
        start: u32,
        /// One past the last valid.
        end: u32,
    },
    /// The request was made against an older config generation.
    #[error("refused: request for config generation {got}, current is {current}")]
    StaleGeneration {
        /// The request's.
        got: u64,
        /// The spawner's.
        current: u64,
    },
    /// The spawn id names no live child of the spawner.
    #[error("refused: no live child with spawn id {0}")]
    UnknownChild(u64),
    /// The instance already has a live (or unreaped) child: a second one would run the same
    /// program twice, as root if its `user` is root (DESIGN §1 rule 6).
    #[error("refused: '{program}' instance {instance} already has a live child (pid {pid})")]
    AlreadyRunning {
        /// Program.
        program: String,
        /// Instance asked for.
        instance: u32,
        /// The live child's pid.
        pid: i32,
    },
    /// Not a signal number.
    #[error("refused: invalid signal number {0}")]
    BadSignal(i32),
}

/// Checks a spawn request; returns the program to run, from the spawner's config.
///
/// # Errors
/// [`Refusal::UnknownProgram`], [`Refusal::InstanceOutOfRange`], [`Refusal::StaleGeneration`],
/// [`Refusal::AlreadyRunning`] when `children` holds a child of that instance not reaped yet.
pub fn check_spawn<'c>(
    config: &'c Config,
    children: &Children,
    generation: u64,
    program: &str,
    instance: u32,
    req_generation: u64,
) -> Result<&'c Program, Refusal> {
    if req_generation != generation {
        return Err(Refusal::StaleGeneration { got: req_generation, current: generation });
    }
    let p = config
        .programs
        .iter()
        .find(|p| p.name == program)
        .ok_or_else(|| Refusal::UnknownProgram(program.to_owned()))?;
    let range = p.instances();
    if !range.contains(&instance) {
        return Err(Refusal::InstanceOutOfRange {
            program: program.to_owned(),
            instance,
            start: range.start,
            end: range.end,
        });
    }
    if let Some((_, pid)) = children.live_instance(program, instance) {
        return Err(Refusal::AlreadyRunning { program: program.to_owned(), instance, pid: pid.as_raw() });
    }
    Ok(p)
}

/// Where a checked signal goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalTarget {
    /// The child's pid.
    pub pid: Pid,
    /// Send to its process group instead (killpg).
    pub group: bool,
    /// The signal.
    pub signal: Signal,
}

/// Checks a signal request: only to a live child, to its group only when its program asked.
///
/// # Errors
/// [`Refusal::UnknownChild`], [`Refusal::BadSignal`].
pub fn check_signal(
    children: &Children,
    spawn_id: u64,
    signal: i32,
    purpose: SignalPurpose,
) -> Result<SignalTarget, Refusal> {
    let signal = Signal::try_from(signal).map_err(|_| Refusal::BadSignal(signal))?;
    let child = children.get(spawn_id).ok_or(Refusal::UnknownChild(spawn_id))?;
    let group = match purpose {
        SignalPurpose::Stop => child.stopasgroup,
        SignalPurpose::Kill => child.killasgroup,
        SignalPurpose::User => false,
    };
    Ok(SignalTarget { pid: child.pid, group, signal })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::Child;
    use common::config::{load::load_str, Context};
    use std::path::Path;

    fn config() -> Config {
        let ctx = Context { is_root: false, current_user: None, check_users: false, trusted_uid: None };
        let text = "programs:\n  web:\n    command: /bin/true\n    numprocs: 2\n    numprocs_start: 5\n    stopasgroup: true\n  db:\n    command: /bin/true\n";
        load_str(Path::new("/t.yaml"), text, &ctx).unwrap()
    }

    #[test]
    fn spawner_refuses_an_unknown_program() {
        assert_eq!(
            check_spawn(&config(), &Children::default(), 1, "evil", 0, 1),
            Err(Refusal::UnknownProgram("evil".into()))
        );
    }

    #[test]
    fn spawner_refuses_an_instance_out_of_range() {
        let (c, none) = (config(), Children::default());
        assert!(check_spawn(&c, &none, 1, "web", 5, 1).is_ok());
        assert!(check_spawn(&c, &none, 1, "web", 6, 1).is_ok());
        for bad in [0, 4, 7, u32::MAX] {
            assert!(
                matches!(check_spawn(&c, &none, 1, "web", bad, 1), Err(Refusal::InstanceOutOfRange { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn spawner_refuses_a_stale_generation() {
        assert_eq!(
            check_spawn(&config(), &Children::default(), 2, "db", 0, 1),
            Err(Refusal::StaleGeneration { got: 1, current: 2 })
        );
    }

    fn web_child(pid: i32, instance: u32) -> Child {
        Child::new(Pid::from_raw(pid), "web", instance, true, true)
    }

    #[test]
    fn spawner_refuses_a_second_child_for_a_live_instance_until_it_is_reaped() {
        let c = config();
        let mut children = Children::default();
        children.insert(web_child(4242, 5));
        assert_eq!(
            check_spawn(&c, &children, 1, "web", 5, 1),
            Err(Refusal::AlreadyRunning { program: "web".into(), instance: 5, pid: 4242 })
        );
        // Another instance of the same program, and another program, are not affected.
        assert!(check_spawn(&c, &children, 1, "web", 6, 1).is_ok());
        assert!(check_spawn(&c, &children, 1, "db", 0, 1).is_ok());
        // Reaped (its `Exited` event follows): the restart is allowed.
        assert!(children.remove_pid(Pid::from_raw(4242), common::proto::spawn::ExitStatus::Code(0)).is_some());
        assert!(check_spawn(&c, &children, 1, "web", 5, 1).is_ok());
    }

    #[test]
    fn spawner_refuses_a_signal_to_a_pid_it_did_not_spawn() {
        let mut children = Children::default();
        let id = children.insert(web_child(4242, 5));
        assert_eq!(check_signal(&children, id + 1, 15, SignalPurpose::Stop), Err(Refusal::UnknownChild(id + 1)));
        assert_eq!(check_signal(&children, 0, 9, SignalPurpose::Kill), Err(Refusal::UnknownChild(0)));
        assert_eq!(check_signal(&children, id, 0, SignalPurpose::User), Err(Refusal::BadSignal(0)));
        assert_eq!(check_signal(&children, id, 999, SignalPurpose::User), Err(Refusal::BadSignal(999)));
        let t = check_signal(&children, id, 15, SignalPurpose::Stop).unwrap();
        assert_eq!((t.pid, t.group), (Pid::from_raw(4242), true));
        assert!(!check_signal(&children, id, 15, SignalPurpose::User).unwrap().group);
    }
}
