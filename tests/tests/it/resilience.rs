//! What is left when a part dies (issue 16): the spawner's death leaves no program and no
//! supervisor running (item 5), and what a dead program leaves behind is ended before it is
//! restarted (item 6, `cleanupgroup`).

use crate::SOON;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};
use tests::{alive, ppid, require_root, supervisor_pid, wait_until, Daemon, Scratch};

/// A process as it was seen: its pid and its start time (field 22 of /proc/PID/stat, in clock
/// ticks since boot), so that a pid reused by a new process is not mistaken for it.
#[derive(Clone, Copy, Debug)]
struct Seen {
    pid: i32,
    start: u64,
}

fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.split_whitespace().nth(19)?.parse().ok()
}

impl Seen {
    fn now(pid: i32) -> Seen {
        Seen { pid, start: start_time(pid).unwrap_or_else(|| panic!("pid {pid} is not running")) }
    }

    /// Gone for good: reaped, not merely dead (a zombie is still there).
    fn vanished(self) -> bool {
        start_time(self.pid) != Some(self.start)
    }

    /// Its state letter and parent, for messages.
    fn describe(self) -> String {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").split_whitespace().next().unwrap_or("?").to_owned();
        format!("pid {} (state {state}, parent {:?})", self.pid, ppid(self.pid))
    }
}

/// Kills the pids read from a file when dropped: what a test leaves on purpose
/// (`cleanupgroup: false`), or a failing one, does not outlive it. Declared after the daemon, so
/// that it drops first, while the file in the daemon's scratch directory still exists.
struct KillListed(std::path::PathBuf);

impl Drop for KillListed {
    fn drop(&mut self) {
        for pid in listed(&self.0) {
            if alive(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// The pids written to `file`, one a line.
fn listed(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// The `n`th pid written to `file` (from 1), waited for.
fn nth_listed(file: &Path, n: usize) -> i32 {
    wait_until(&format!("pid #{n} in {}", file.display()), SOON, || listed(file).len() >= n);
    listed(file)[n - 1]
}

/// The session id of a process (field 6 of /proc/PID/stat).
fn session(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.split_whitespace().nth(3)?.parse().ok()
}

/// Waits until `name` runs with another pid than `old`, and returns it.
fn next_pid(d: &Daemon, name: &str, old: i32, timeout: Duration) -> i32 {
    let mut new = None;
    wait_until(&format!("{name} restarted with a new pid"), timeout, || {
        new = d.proc_pid(name).filter(|p| *p != old && *p != 0);
        new.is_some()
    });
    new.unwrap_or_default()
}

/// A daemon running `web` as `/bin/sh -c 'BACKGROUND & echo $! >> PIDS; exec sleep 1000'` with
/// the program keys `keys` (indented YAML lines): the daemon, the file listing the background
/// pids, and the guard that kills what it lists at the end.
fn web_with_background(background: &str, keys: &str) -> (Daemon, std::path::PathBuf, KillListed) {
    let s = Scratch::new();
    let pids = s.path("bg.pids");
    let yaml = format!(
        "programs:\n  web:\n    command: /bin/sh -c '{background} & echo $! >> {}; exec sleep 1000'\n{keys}",
        pids.display()
    );
    let d = Daemon::start_in(s, &yaml);
    let cleanup = KillListed(pids.clone());
    (d, pids, cleanup)
}

#[test]
fn killing_the_spawner_with_sigkill_leaves_no_program_and_no_supervisor() {
    let mut yaml = String::from(
        "programs:\n  sleeper:\n    command: sleep 1000\n    startsecs: 0\n  \
         trapper:\n    command: /bin/sh -c 'trap \"echo ignored\" TERM; while :; do sleep 0.2; done'\n    startsecs: 0\n",
    );
    let mut names = vec!["sleeper", "trapper"];
    if tests::is_root() {
        yaml.push_str("  other:\n    command: sleep 1000\n    user: nobody\n    startsecs: 0\n");
        names.push("other");
    } else {
        tests::skip("the program running as another user needs root; the other two are checked");
    }
    let mut d = Daemon::start(&yaml);
    for n in &names {
        d.wait_state(n, "RUNNING", SOON);
    }
    let mut seen: Vec<(String, Seen)> =
        names.iter().map(|n| (n.to_string(), Seen::now(d.proc_pid(n).unwrap()))).collect();
    seen.push(("the supervisor".into(), Seen::now(supervisor_pid(&d))));
    let spawner = d.pid();
    d.signal(Signal::SIGKILL);
    assert_eq!(d.wait_exit(SOON), -1, "taskmasterd was not killed");
    let deadline = Instant::now() + SOON;
    while Instant::now() < deadline && !seen.iter().all(|(_, s)| s.vanished()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    for (what, s) in &seen {
        assert!(s.vanished(), "{what} survived the spawner {spawner}: {}", s.describe());
    }
    // Nothing survived to log it; the next taskmasterd on this config finds the pidfile the
    // killed one left and says so in the main log.
    let scratch = std::mem::replace(&mut d.scratch, tests::Scratch::new());
    let again = Daemon::start_in(scratch, &yaml);
    again.wait_log(&format!("the previous taskmasterd (pid {spawner}) did not exit in order"), SOON);
}

#[test]
fn a_dead_programs_background_child_is_ended_before_its_restart() {
    let (d, pids, _cleanup) =
        web_with_background("sleep 1000", "    startsecs: 0\n    autorestart: true\n    stopwaitsecs: 30\n");
    d.wait_state("web", "RUNNING", SOON);
    let main = d.proc_pid("web").unwrap();
    let bg = Seen::now(nth_listed(&pids, 1));
    assert_eq!(ppid(bg.pid), Some(main), "the background sleep is the program's child");
    kill(Pid::from_raw(main), Signal::SIGKILL).unwrap();
    let t0 = Instant::now();
    next_pid(&d, "web", main, SOON);
    // Reported only once the group was empty: already reaped when the next one started.
    assert!(bg.vanished(), "the old background child is still there at the restart: {}", bg.describe());
    // SIGTERM was enough: no wait for the 30 s of stopwaitsecs.
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    d.wait_log("exited: 'web' (terminated by SIGKILL; not expected)", SOON);
    let second = Seen::now(nth_listed(&pids, 2));
    assert!(!second.vanished(), "the new instance's background child runs");
}

#[test]
fn with_cleanupgroup_false_a_dead_programs_background_child_survives_its_restart() {
    let (d, pids, _cleanup) =
        web_with_background("sleep 1000", "    startsecs: 0\n    autorestart: true\n    cleanupgroup: false\n");
    d.wait_state("web", "RUNNING", SOON);
    let main = d.proc_pid("web").unwrap();
    let bg = Seen::now(nth_listed(&pids, 1));
    kill(Pid::from_raw(main), Signal::SIGKILL).unwrap();
    next_pid(&d, "web", main, SOON);
    nth_listed(&pids, 2);
    assert!(alive(bg.pid) && !bg.vanished(), "the old background child was ended: {}", bg.describe());
    // An orphan of a program is the spawner's (a child subreaper), and reaped by it quietly.
    assert_eq!(ppid(bg.pid), Some(d.pid()), "the orphan was not re-parented to the spawner");
    kill(Pid::from_raw(bg.pid), Signal::SIGKILL).unwrap();
    wait_until("the orphan reaped by the spawner", SOON, || bg.vanished());
    d.wait_state("web", "RUNNING", SOON);
    assert_eq!(d.log().matches("exited: 'web'").count(), 1, "the orphan's end counted as the program's:\n{}", d.log());
}

#[test]
fn a_leftover_that_ignores_sigterm_is_killed_after_stopwaitsecs() {
    let (d, pids, _cleanup) = web_with_background(
        "(trap \"\" TERM; exec sleep 1000)",
        "    startsecs: 0\n    autorestart: true\n    stopwaitsecs: 1\n",
    );
    d.wait_state("web", "RUNNING", SOON);
    let main = d.proc_pid("web").unwrap();
    let bg = Seen::now(nth_listed(&pids, 1));
    let t0 = Instant::now();
    kill(Pid::from_raw(main), Signal::SIGKILL).unwrap();
    next_pid(&d, "web", main, SOON);
    assert!(bg.vanished(), "the stubborn leftover is still there at the restart: {}", bg.describe());
    assert!(t0.elapsed() >= Duration::from_secs(1), "restarted before stopwaitsecs: {:?}", t0.elapsed());
}

#[test]
fn a_leftover_that_left_the_process_group_is_ended_through_the_programs_cgroup() {
    // setsid(1) from a background job (not a group leader) calls setsid itself and execs: the pid
    // written is the sleep's, in a session and group of its own.
    let (d, pids, _cleanup) =
        web_with_background("setsid sleep 1000", "    startsecs: 0\n    autorestart: true\n    stopwaitsecs: 30\n");
    if !d.stderr().contains("found by its cgroup") {
        let line = d.stderr().lines().find(|l| l.contains("leftovers")).unwrap_or("").to_owned();
        tests::skip(&format!("programs get no cgroup of their own here: {line}"));
        return;
    }
    d.wait_state("web", "RUNNING", SOON);
    let main = d.proc_pid("web").unwrap();
    let bg = Seen::now(nth_listed(&pids, 1));
    wait_until("the leftover in a session of its own", SOON, || session(bg.pid) == Some(bg.pid));
    kill(Pid::from_raw(main), Signal::SIGKILL).unwrap();
    next_pid(&d, "web", main, SOON);
    assert!(bg.vanished(), "the leftover that called setsid is still there at the restart: {}", bg.describe());
}

#[test]
fn stopping_a_program_whose_exit_is_held_signals_what_is_left_of_it() {
    let (d, pids, _cleanup) = web_with_background(
        "(trap \"\" TERM; exec sleep 1000)",
        "    startsecs: 0\n    autorestart: true\n    stopwaitsecs: 2\n",
    );
    d.wait_state("web", "RUNNING", SOON);
    let main = d.proc_pid("web").unwrap();
    let bg = Seen::now(nth_listed(&pids, 1));
    kill(Pid::from_raw(main), Signal::SIGKILL).unwrap();
    // The main process is gone, its exit held: the supervisor still sees it RUNNING and stops it.
    let run = d.ctl(&["stop", "web"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "web: stopped\n"), "{run:?}");
    assert!(bg.vanished(), "{}", bg.describe());
    assert_eq!(d.state("web"), "STOPPED");
    assert!(!d.log().contains("no live child"), "a signal for the held exit was refused:\n{}", d.log());
    assert!(!d.stderr().contains("no live child"), "{}", d.stderr());
}

#[test]
fn orphans_of_a_program_as_root_run_as_its_user_and_are_ended_too() {
    require_root!();
    let s = Scratch::new();
    let pids = s.path("bg.pids");
    std::fs::write(&pids, "").unwrap();
    std::fs::set_permissions(&pids, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let yaml = format!(
        "programs:\n  web:\n    command: /bin/sh -c 'sleep 1000 & echo $! >> {}; exec sleep 1000'\n    user: nobody\n    startsecs: 0\n    autorestart: true\n",
        pids.display()
    );
    let d = Daemon::start_in(s, &yaml);
    let _cleanup = KillListed(pids.clone());
    d.wait_state("web", "RUNNING", SOON);
    let main = d.proc_pid("web").unwrap();
    let bg = Seen::now(nth_listed(&pids, 1));
    assert_eq!(tests::proc_status_field(bg.pid, "Uid:").as_deref(), Some("65534"));
    kill(Pid::from_raw(main), Signal::SIGKILL).unwrap();
    next_pid(&d, "web", main, SOON);
    assert!(bg.vanished(), "{}", bg.describe());
}
