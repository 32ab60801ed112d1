//! Stopping: stop signals, SIGKILL escalation, process groups, priority order, shutdown.

use crate::SOON;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};
use tests::{alive, children_of, wait_until, Daemon};

#[test]
fn a_program_ignoring_sigterm_is_killed_after_stopwaitsecs() {
    let d = Daemon::start("programs:\n  stubborn:\n    command: /bin/sh -c 'trap \"\" TERM; while :; do sleep 0.1; done'\n    startsecs: 0\n    stopwaitsecs: 1\n");
    d.wait_state("stubborn", "RUNNING", SOON);
    let pid = d.proc_pid("stubborn").unwrap();
    let t0 = Instant::now();
    let run = d.ctl(&["stop", "stubborn"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "stubborn: stopped\n"), "{run:?}");
    assert!(t0.elapsed() >= Duration::from_secs(1), "stopped before stopwaitsecs: {:?}", t0.elapsed());
    assert!(!alive(pid));
    d.wait_log(&format!("killing 'stubborn' ({pid}) with SIGKILL"), SOON);
    d.wait_log("stopped: 'stubborn' (terminated by SIGKILL)", SOON);
}

#[test]
fn stopsignal_usr1_is_honoured() {
    let s = tests::Scratch::new();
    let out = s.path("usr1.out");
    let yaml = format!(
        "programs:\n  graceful:\n    command: /bin/sh -c 'trap \"echo got-usr1; exit 0\" USR1; echo armed; while :; do sleep 0.1; done'\n    startsecs: 0\n    stopsignal: USR1\n    stopwaitsecs: 5\n    stdout_logfile: {}\n",
        out.display()
    );
    let d = Daemon::start_in(s, &yaml);
    // Stop only once the trap is set: a USR1 before it would end the shell by the signal.
    wait_until("the USR1 trap set", SOON, || std::fs::read_to_string(&out).unwrap_or_default().contains("armed"));
    assert_eq!(d.ctl(&["stop", "graceful"]).code, 0);
    d.wait_log("stopped: 'graceful' (exit status 0)", SOON);
    wait_until("got-usr1 in the program's stdout log", SOON, || {
        std::fs::read_to_string(&out).unwrap_or_default().contains("got-usr1")
    });
    assert!(!d.log().contains("killing"), "{}", d.log());
}

#[test]
fn stopasgroup_stops_the_whole_process_group() {
    let d = Daemon::start(
        "programs:\n  family:\n    command: /bin/sh -c 'sleep 1000 & wait'\n    startsecs: 0\n    stopasgroup: true\n",
    );
    d.wait_state("family", "RUNNING", SOON);
    let pid = d.proc_pid("family").unwrap();
    wait_until("the shell's sleep child", SOON, || !children_of(pid).is_empty());
    let grandchild = children_of(pid)[0];
    assert_eq!(d.ctl(&["stop", "family"]).code, 0);
    wait_until("the grandchild gone too", SOON, || !alive(grandchild));
}

#[test]
fn programs_start_by_ascending_and_stop_by_descending_priority() {
    let d = Daemon::start(
        "programs:\n  first:\n    command: sleep 1000\n    priority: 1\n    startsecs: 0\n  \
         second:\n    command: /bin/sh -c 'trap \"sleep 0.5; exit 0\" TERM; while :; do sleep 0.1; done'\n    priority: 2\n    startsecs: 0\n  \
         third:\n    command: sleep 1000\n    priority: 3\n    startsecs: 0\n",
    );
    for n in ["first", "second", "third"] {
        d.wait_state(n, "RUNNING", SOON);
    }
    let log = d.log();
    let pos = |needle: &str, log: &str| log.find(needle).unwrap_or_else(|| panic!("{needle} not in log:\n{log}"));
    assert!(
        pos("spawned: 'first'", &log) < pos("spawned: 'second'", &log)
            && pos("spawned: 'second'", &log) < pos("spawned: 'third'", &log),
        "{log}"
    );
    let run = d.ctl(&["stop", "all"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "third: stopped\nsecond: stopped\nfirst: stopped\n");
    let log = d.log();
    // `second` takes 0.5 s to exit: `first` must not be signalled before it is gone.
    assert!(pos("stopped: 'third'", &log) < pos("waiting for 'second' to stop", &log), "{log}");
    assert!(pos("stopped: 'second'", &log) < pos("waiting for 'first' to stop", &log), "{log}");
}

#[test]
fn sigterm_stops_every_program_and_leaves_no_child_behind() {
    let mut d = Daemon::start("programs:\n  a:\n    command: sleep 1000\n    numprocs: 3\n    startsecs: 0\n  b:\n    command: /bin/sh -c 'trap \"\" TERM; sleep 1000'\n    startsecs: 0\n    stopwaitsecs: 1\n");
    for n in ["a:0", "a:1", "a:2", "b"] {
        d.wait_state(n, "RUNNING", SOON);
    }
    let pids: Vec<i32> = ["a:0", "a:1", "a:2", "b"].iter().map(|n| d.proc_pid(n).unwrap()).collect();
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(SOON), 0, "log:\n{}", d.log());
    for p in pids {
        assert!(!alive(p), "pid {p} survived the daemon");
    }
    assert!(!d.socket.exists(), "the socket file was left behind");
    assert!(d.log().contains("received SIGTERM indicating exit request"));
}

#[test]
fn ctl_shutdown_ends_the_daemon_with_exit_0() {
    let mut d = Daemon::start("programs:\n  a:\n    command: sleep 1000\n    startsecs: 0\n");
    d.wait_state("a", "RUNNING", SOON);
    let pid = d.proc_pid("a").unwrap();
    let run = d.ctl(&["shutdown"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "Shut down\n"));
    assert_eq!(d.wait_exit(SOON), 0);
    assert!(!alive(pid));
}

#[test]
fn a_thousand_processes_start_and_stop_together() {
    // A thousand spawn requests at once overflow the spawner link's socket buffer: the
    // supervisor must queue them, not give up.
    let d = Daemon::start("programs:\n  many:\n    command: sleep 100000\n    numprocs: 1000\n    startsecs: 0\n    stdout_logfile: NONE\n    stderr_logfile: NONE\n");
    wait_until("1000 RUNNING", Duration::from_secs(60), || {
        d.status().iter().filter(|r| r["state"] == "RUNNING").count() == 1000
    });
    let pids: Vec<i32> = d.status().iter().filter_map(|r| r["pid"].as_i64()).map(|p| p as i32).collect();
    let run = d.ctl(&["stop", "all"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 1000);
    assert!(pids.iter().all(|p| !alive(*p)));
}

#[test]
fn shutdown_answers_once_every_program_has_stopped() {
    let d = Daemon::start(
        "programs:\n  slow:\n    command: /bin/sh -c 'trap \"sleep 1; exit 0\" TERM; while :; do sleep 0.1; done'\n    startsecs: 0\n    stopwaitsecs: 5\n",
    );
    d.wait_state("slow", "RUNNING", SOON);
    let pid = d.proc_pid("slow").unwrap();
    let out = d.ctl(&["shutdown"]);
    assert_eq!((out.code, out.stdout.trim()), (0, "Shut down"), "{out:?}");
    assert!(!tests::alive(pid), "shutdown answered while 'slow' (pid {pid}) was still stopping");
}
