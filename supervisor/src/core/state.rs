//! supervisord's process state machine (DESIGN §2) as a pure function
//! `step(machine, program, event, now) -> (machine, actions)`. No clock (time arrives as `now`),
//! no fd, no log write: the event loop carries out the actions. Model: s6-supervise's table.

use common::config::{AutoRestart, Program};
use common::proto::spawn::{ExitStatus, SignalPurpose};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// supervisord's states, as supervisorctl prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// Not running, by request or never started.
    Stopped,
    /// Spawned, not yet up for `startsecs`.
    Starting,
    /// Up for at least `startsecs`.
    Running,
    /// Exited too quickly; a retry is scheduled.
    Backoff,
    /// Stop signal sent, waiting for the exit.
    Stopping,
    /// Exited from RUNNING and not restarted.
    Exited,
    /// Too many failed starts: given up.
    Fatal,
    /// Never used by taskmaster; kept because supervisorctl users know it.
    Unknown,
}

impl ProcessState {
    /// As supervisorctl spells it: `RUNNING`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Stopped => "STOPPED",
            ProcessState::Starting => "STARTING",
            ProcessState::Running => "RUNNING",
            ProcessState::Backoff => "BACKOFF",
            ProcessState::Stopping => "STOPPING",
            ProcessState::Exited => "EXITED",
            ProcessState::Fatal => "FATAL",
            ProcessState::Unknown => "UNKNOWN",
        }
    }

    /// A process may exist in this state (supervisord's RUNNING_STATES plus STOPPING).
    pub fn may_have_process(self) -> bool {
        matches!(self, ProcessState::Starting | ProcessState::Running | ProcessState::Stopping)
    }
}

/// Timers a process arms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// `startsecs` after the spawn: STARTING -> RUNNING.
    StartSecs,
    /// Backoff delay over: BACKOFF -> STARTING.
    Retry,
    /// `stopwaitsecs` after the stop signal: SIGKILL.
    StopKill,
}

/// What happens to a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `start`, autostart, or a restart's second half.
    Start,
    /// `stop`, shutdown, or a restart's first half.
    Stop,
    /// The spawner forked and exec'd it.
    Spawned {
        /// Its pid.
        pid: Pid,
    },
    /// The spawner could not start it; the text names the step and errno.
    SpawnFailed(String),
    /// It ended.
    Exited(ExitStatus),
    /// A timer it armed fired.
    Timer(TimerKind),
}

/// What the event loop must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Ask the spawner for a new instance.
    Spawn,
    /// Ask the spawner to signal the live process.
    Signal(nix::sys::signal::Signal, SignalPurpose),
    /// Fire `Timer(kind)` at this instant (a state change cancels earlier timers).
    Arm(TimerKind, Instant),
    /// Write a line to the main log.
    Log(Note),
}

/// Main log lines, worded as supervisord's (DESIGN §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// `spawned: 'web' with pid 4242`.
    Spawned(Pid),
    /// `spawnerr: …`.
    SpawnErr(String),
    /// `success: 'web' entered RUNNING state, process has stayed up for > than N seconds (startsecs)`.
    Success(u64),
    /// `exited: 'web' (exit status 3; not expected)`.
    Exited(ExitStatus, bool),
    /// `gave up: 'web' entered FATAL state, too many start retries too quickly`.
    GaveUp,
    /// `killing 'web' (4242) with SIGKILL`.
    Killing(Pid),
    /// `stopped: 'web' (terminated by SIGTERM)`.
    Stopped(ExitStatus),
}

/// Why a user's start or stop is refused (supervisorctl's wording).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `ERROR (already started)`.
    AlreadyStarted,
    /// `ERROR (not running)`.
    NotRunning,
}

impl Refusal {
    /// The supervisorctl text.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::AlreadyStarted => "ERROR (already started)",
            Refusal::NotRunning => "ERROR (not running)",
        }
    }
}

/// The state of one process and what the machine remembers about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Current state.
    pub state: ProcessState,
    /// Failed starts in a row (supervisord's `backoff`); reset on RUNNING and on a user start.
    pub backoff: u32,
    /// The live process, once spawned.
    pub pid: Option<Pid>,
    /// When the live process was spawned.
    pub started_at: Option<Instant>,
    /// How the last process ended.
    pub last_exit: Option<ExitStatus>,
    /// The last spawn error, kept for `status` until the next start.
    pub spawnerr: Option<String>,
    /// Ever asked to start (STOPPED shows "Not started" until then).
    pub ever_started: bool,
    /// Bumped on every state change; a timer armed under another epoch is stale.
    pub epoch: u64,
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            state: ProcessState::Stopped,
            backoff: 0,
            pid: None,
            started_at: None,
            last_exit: None,
            spawnerr: None,
            ever_started: false,
            epoch: 0,
        }
    }
}

/// The program's `stopsignal` (validated by the config, so SIGTERM only if it were not a signal).
fn stop_signal(p: &Program) -> nix::sys::signal::Signal {
    nix::sys::signal::Signal::try_from(p.stopsignal).unwrap_or(nix::sys::signal::Signal::SIGTERM)
}

/// Whether an exit status is one of `exitcodes` (a signal never is).
pub fn is_expected(p: &Program, status: ExitStatus) -> bool {
    matches!(status, ExitStatus::Code(c) if p.exitcodes.contains(&c))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Applies `event` to `m`. `restart_allowed` is false during shutdown, so no exit restarts.
///
/// # Errors
/// A user `Start` or `Stop` that the state does not permit.
pub fn step(
    m: &Machine,
    p: &Program,
    event: Event,
    now: Instant,
    restart_allowed: bool,
) -> Result<(Machine, Vec<Action>), Refusal> {
    use Action::*;
    use ProcessState::*;
    let mut n = m.clone();
    let mut acts = Vec::new();
    let begin_start = |n: &mut Machine, acts: &mut Vec<Action>| {
        n.state = Starting;
        n.pid = None;
        n.started_at = None;
        n.ever_started = true;
        acts.push(Spawn);
    };
    let failed_start = |n: &mut Machine, acts: &mut Vec<Action>| {
        n.backoff += 1;
        if n.backoff > p.startretries {
            n.state = Fatal;
            acts.push(Log(Note::GaveUp));
        } else {
            n.state = Backoff;
            acts.push(Arm(TimerKind::Retry, now + secs(u64::from(n.backoff))));
        }
    };
    let begin_stop = |n: &mut Machine, acts: &mut Vec<Action>| {
        n.state = Stopping;
        if n.pid.is_some() {
            acts.push(Signal(stop_signal(p), SignalPurpose::Stop));
            acts.push(Arm(TimerKind::StopKill, now + secs(p.stopwaitsecs)));
        }
    };
    match (m.state, event) {
        (Stopped | Exited | Fatal | Backoff | Unknown, Event::Start) => {
            n.backoff = 0;
            n.spawnerr = None;
            begin_start(&mut n, &mut acts);
        }
        (Starting | Running | Stopping, Event::Start) => return Err(Refusal::AlreadyStarted),
        (Starting | Running, Event::Stop) => begin_stop(&mut n, &mut acts),
        (Backoff, Event::Stop) => n.state = Stopped,
        (Stopped | Exited | Fatal | Stopping | Unknown, Event::Stop) => return Err(Refusal::NotRunning),

        (Starting, Event::Spawned { pid }) => {
            n.pid = Some(pid);
            n.started_at = Some(now);
            acts.push(Log(Note::Spawned(pid)));
            if p.startsecs == 0 {
                n.state = Running;
                n.backoff = 0;
                acts.push(Log(Note::Success(0)));
            } else {
                acts.push(Arm(TimerKind::StartSecs, now + secs(p.startsecs)));
            }
        }
        (Stopping, Event::Spawned { pid }) => {
            // Stop was asked while the spawn was on its way: stop it now.
            n.pid = Some(pid);
            n.started_at = Some(now);
            acts.push(Log(Note::Spawned(pid)));
            begin_stop(&mut n, &mut acts);
        }
        (Stopped | Running | Backoff | Exited | Fatal | Unknown, Event::Spawned { pid }) => {
            // Not asked for in this state: do not let it run unsupervised.
            n.pid = Some(pid);
            acts.push(Signal(nix::sys::signal::Signal::SIGKILL, SignalPurpose::Kill));
        }

        (Starting, Event::SpawnFailed(err)) => {
            n.spawnerr = Some(err.clone());
            acts.push(Log(Note::SpawnErr(err)));
            failed_start(&mut n, &mut acts);
        }
        (Stopping, Event::SpawnFailed(err)) => {
            n.spawnerr = Some(err.clone());
            acts.push(Log(Note::SpawnErr(err)));
            n.state = Stopped;
        }
        (Stopped | Running | Backoff | Exited | Fatal | Unknown, Event::SpawnFailed(err)) => {
            acts.push(Log(Note::SpawnErr(err)))
        }

        (Starting, Event::Exited(status)) => {
            n.pid = None;
            n.last_exit = Some(status);
            acts.push(Log(Note::Exited(status, false)));
            failed_start(&mut n, &mut acts);
        }
        (Running, Event::Exited(status)) => {
            n.pid = None;
            n.last_exit = Some(status);
            let expected = is_expected(p, status);
            acts.push(Log(Note::Exited(status, expected)));
            n.state = Exited;
            let restart = match p.autorestart {
                AutoRestart::Always => true,
                AutoRestart::Never => false,
                AutoRestart::Unexpected => !expected,
            };
            if restart && restart_allowed {
                begin_start(&mut n, &mut acts);
            }
        }
        (Stopping, Event::Exited(status)) => {
            n.pid = None;
            n.last_exit = Some(status);
            n.state = Stopped;
            acts.push(Log(Note::Stopped(status)));
        }
        (Stopped | Backoff | Exited | Fatal | Unknown, Event::Exited(status)) => {
            n.pid = None;
            n.last_exit = Some(status);
        }

        (Starting, Event::Timer(TimerKind::StartSecs)) => {
            n.state = Running;
            n.backoff = 0;
            acts.push(Log(Note::Success(p.startsecs)));
        }
        (Backoff, Event::Timer(TimerKind::Retry)) => {
            n.spawnerr = None;
            begin_start(&mut n, &mut acts);
        }
        (Stopping, Event::Timer(TimerKind::StopKill)) => {
            if let Some(pid) = n.pid {
                acts.push(Log(Note::Killing(pid)));
                acts.push(Signal(nix::sys::signal::Signal::SIGKILL, SignalPurpose::Kill));
            }
        }
        (Stopped | Starting | Running | Backoff | Stopping | Exited | Fatal | Unknown, Event::Timer(_)) => {}
    }
    if n.state != m.state {
        n.epoch = m.epoch + 1;
    }
    Ok((n, acts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::{load::load_str, Context};
    use ProcessState::*;

    fn program(extra: &str) -> Program {
        let ctx = Context { is_root: false, current_user: None, check_users: false, trusted_uid: None };
        let text = format!("programs:\n  web:\n    command: /bin/true\n{extra}");
        load_str(std::path::Path::new("/t.yaml"), &text, &ctx).unwrap().programs.remove(0)
    }

    fn run(m: &Machine, p: &Program, e: Event, now: Instant) -> (Machine, Vec<Action>) {
        step(m, p, e, now, true).unwrap()
    }

    #[test]
    fn start_spawn_startsecs_running() {
        let p = program("    startsecs: 2\n");
        let t = Instant::now();
        let (m, a) = run(&Machine::default(), &p, Event::Start, t);
        assert_eq!((m.state, a), (Starting, vec![Action::Spawn]));
        let (m, a) = run(&m, &p, Event::Spawned { pid: Pid::from_raw(42) }, t);
        assert_eq!(
            a,
            vec![Action::Log(Note::Spawned(Pid::from_raw(42))), Action::Arm(TimerKind::StartSecs, t + secs(2))]
        );
        let (m, a) = run(&m, &p, Event::Timer(TimerKind::StartSecs), t + secs(2));
        assert_eq!((m.state, a), (Running, vec![Action::Log(Note::Success(2))]));
    }

    #[test]
    fn startsecs_zero_is_running_at_once() {
        let p = program("    startsecs: 0\n");
        let (m, _) = run(&Machine::default(), &p, Event::Start, Instant::now());
        let (m, _) = run(&m, &p, Event::Spawned { pid: Pid::from_raw(1) }, Instant::now());
        assert_eq!(m.state, Running);
    }

    #[test]
    fn early_exits_back_off_one_two_three_seconds_then_fatal() {
        let p = program("    startretries: 3\n");
        let t = Instant::now();
        let mut m = run(&Machine::default(), &p, Event::Start, t).0;
        let mut spawns = 1;
        for delay in 1..=3 {
            m = run(&m, &p, Event::Spawned { pid: Pid::from_raw(7) }, t).0;
            let (n, a) = run(&m, &p, Event::Exited(ExitStatus::Code(1)), t);
            assert_eq!(n.state, Backoff);
            assert!(a.contains(&Action::Arm(TimerKind::Retry, t + secs(delay))), "{a:?}");
            let (n, a) = run(&n, &p, Event::Timer(TimerKind::Retry), t);
            assert_eq!((n.state, a), (Starting, vec![Action::Spawn]));
            spawns += 1;
            m = n;
        }
        m = run(&m, &p, Event::Spawned { pid: Pid::from_raw(7) }, t).0;
        let (m, a) = run(&m, &p, Event::Exited(ExitStatus::Code(1)), t);
        assert_eq!(m.state, Fatal);
        assert!(a.contains(&Action::Log(Note::GaveUp)));
        assert_eq!(spawns, 4, "startretries + 1 spawns in all");
    }

    #[test]
    fn spawn_errors_count_as_failed_starts() {
        let p = program("    startretries: 0\n");
        let m = run(&Machine::default(), &p, Event::Start, Instant::now()).0;
        let (m, _) = run(&m, &p, Event::SpawnFailed("can't find command 'x'".into()), Instant::now());
        assert_eq!(m.state, Fatal);
        assert_eq!(m.spawnerr.as_deref(), Some("can't find command 'x'"));
    }

    fn running(p: &Program) -> Machine {
        let t = Instant::now();
        let m = run(&Machine::default(), p, Event::Start, t).0;
        let m = run(&m, p, Event::Spawned { pid: Pid::from_raw(9) }, t).0;
        run(&m, p, Event::Timer(TimerKind::StartSecs), t).0
    }

    #[test]
    fn autorestart_matrix() {
        use ExitStatus::*;
        let cases = [
            ("always", Code(0), true),
            ("always", Code(3), true),
            ("never", Code(3), false),
            ("never", Signal(9), false),
            ("unexpected", Code(0), false),
            ("unexpected", Code(2), false),
            ("unexpected", Code(3), true),
            ("unexpected", Signal(9), true),
        ];
        for (policy, status, restarts) in cases {
            let p = program(&format!("    autorestart: {policy}\n    exitcodes: [0, 2]\n"));
            let (m, a) = run(&running(&p), &p, Event::Exited(status), Instant::now());
            assert_eq!(m.state == Starting, restarts, "{policy} {status:?}");
            assert_eq!(a.contains(&Action::Spawn), restarts);
            if !restarts {
                assert_eq!(m.state, Exited);
            }
            let expected = matches!(status, Code(0 | 2));
            assert_eq!(a[0], Action::Log(Note::Exited(status, expected)));
        }
    }

    #[test]
    fn no_restart_during_shutdown() {
        let p = program("    autorestart: always\n");
        let (m, _) = step(&running(&p), &p, Event::Exited(ExitStatus::Code(1)), Instant::now(), false).unwrap();
        assert_eq!(m.state, Exited);
    }

    #[test]
    fn stop_signals_then_kills_after_stopwaitsecs() {
        let p = program("    stopsignal: USR1\n    stopwaitsecs: 5\n");
        let t = Instant::now();
        let (m, a) = run(&running(&p), &p, Event::Stop, t);
        assert_eq!(m.state, Stopping);
        assert_eq!(
            a,
            vec![
                Action::Signal(nix::sys::signal::Signal::SIGUSR1, SignalPurpose::Stop),
                Action::Arm(TimerKind::StopKill, t + secs(5))
            ]
        );
        let (m, a) = run(&m, &p, Event::Timer(TimerKind::StopKill), t + secs(5));
        assert_eq!(
            a,
            vec![
                Action::Log(Note::Killing(Pid::from_raw(9))),
                Action::Signal(nix::sys::signal::Signal::SIGKILL, SignalPurpose::Kill)
            ]
        );
        let (m, a) = run(&m, &p, Event::Exited(ExitStatus::Signal(9)), t);
        assert_eq!((m.state, a), (Stopped, vec![Action::Log(Note::Stopped(ExitStatus::Signal(9)))]));
    }

    #[test]
    fn refusals_and_backoff_stop() {
        let p = program("");
        assert_eq!(step(&Machine::default(), &p, Event::Stop, Instant::now(), true), Err(Refusal::NotRunning));
        assert_eq!(step(&running(&p), &p, Event::Start, Instant::now(), true), Err(Refusal::AlreadyStarted));
        let m = Machine { state: Backoff, ..Machine::default() };
        assert_eq!(run(&m, &p, Event::Stop, Instant::now()).0.state, Stopped);
    }

    #[test]
    fn stop_before_the_spawn_answer_stops_the_new_process() {
        let p = program("");
        let t = Instant::now();
        let m = run(&Machine::default(), &p, Event::Start, t).0;
        let (m, a) = run(&m, &p, Event::Stop, t);
        assert_eq!((m.state, a), (Stopping, vec![]));
        let (m, a) = run(&m, &p, Event::Spawned { pid: Pid::from_raw(5) }, t);
        assert_eq!(m.state, Stopping);
        assert!(a.contains(&Action::Signal(nix::sys::signal::Signal::SIGTERM, SignalPurpose::Stop)));
    }

    #[test]
    fn every_state_change_bumps_the_epoch() {
        let p = program("");
        let m = Machine::default();
        let (n, _) = run(&m, &p, Event::Start, Instant::now());
        assert_eq!(n.epoch, m.epoch + 1);
        let (o, _) = run(&n, &p, Event::Spawned { pid: Pid::from_raw(1) }, Instant::now());
        assert_eq!(o.epoch, n.epoch);
    }
}
