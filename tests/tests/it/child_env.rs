//! What the child sees: umask, directory, environment, session, parent, names.

use crate::{probe, SOON};
use serde_json::Value;
use tests::{wait_until, Daemon, Scratch};

fn probe_report(d: &Daemon, log: &std::path::Path) -> Value {
    let mut line = String::new();
    wait_until("the probe's report", SOON, || {
        line = std::fs::read_to_string(log).unwrap_or_default();
        line.ends_with('\n')
    });
    serde_json::from_str(line.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {line}; log:\n{}", d.log()))
}

#[test]
fn program_sees_its_umask_directory_and_environment() {
    let s = Scratch::new();
    let probe = s.probe(&probe());
    let work = s.path("work");
    std::fs::create_dir(&work).unwrap();
    let out = s.path("probe.out");
    let yaml = format!(
        "programs:\n  p:\n    command: {}\n    umask: 027\n    directory: {}\n    startsecs: 0\n    stdout_logfile: {}\n    env:\n      ANSWER: 42\n      GREETING: \"hello world\"\n",
        probe.display(),
        work.display(),
        out.display()
    );
    let d = Daemon::start_full(s, "  environment:\n    FROM_SERVER: yes\n", &yaml);
    let r = probe_report(&d, &out);
    assert_eq!(r["umask"], 0o027);
    assert_eq!(r["cwd"], work.display().to_string());
    let env = &r["env"];
    assert_eq!(env["ANSWER"], "42");
    assert_eq!(env["GREETING"], "hello world");
    assert_eq!(env["FROM_SERVER"], "yes");
    assert_eq!(env["TASKMASTER_ENABLED"], "1");
    assert_eq!(env["TASKMASTER_PROGRAM"], "p");
    assert_eq!(env["TASKMASTER_PROCESS_NAME"], "p");
    assert_eq!(env["TASKMASTER_INSTANCE"], "0");
    assert_eq!(env["TASKMASTER_SERVER_URL"], format!("unix://{}", d.socket.display()));
    // Its own session, and the spawner (taskmasterd as started) is its parent.
    assert_eq!(r["sid"], r["pid"]);
    assert_eq!(r["ppid"], d.pid());
}

#[test]
fn numprocs_names_instances_from_numprocs_start() {
    let d = Daemon::start("programs:\n  worker:\n    command: sleep 1000\n    numprocs: 3\n    numprocs_start: 5\n    startsecs: 0\n  solo:\n    command: sleep 1000\n    startsecs: 0\n");
    let names: Vec<String> = d.status().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["solo", "worker:5", "worker:6", "worker:7"]);
    let row = d.row("worker:6");
    assert_eq!((row["program"].as_str(), row["instance"].as_i64()), (Some("worker"), Some(6)));
    let run = d.ctl(&["stop", "worker"]);
    assert_eq!(run.stdout, "worker:5: stopped\nworker:6: stopped\nworker:7: stopped\n", "{run:?}");
}

#[test]
fn every_child_is_a_child_of_the_spawner() {
    let d = Daemon::start("programs:\n  w:\n    command: sleep 1000\n    numprocs: 2\n    startsecs: 0\n");
    for n in ["w:0", "w:1"] {
        d.wait_state(n, "RUNNING", SOON);
        assert_eq!(tests::ppid(d.proc_pid(n).unwrap()), Some(d.pid()), "{n}");
    }
}

#[test]
fn a_pty_program_started_without_term_gets_a_usable_one_and_a_configured_term_wins() {
    // taskmasterd with a clean environment, as under systemd: no TERM to inherit.
    let s = Scratch::new();
    let (plain, set) = (s.path("plain.out"), s.path("set.out"));
    let report = "command: /bin/sh -c 'echo \"TERM=[$TERM] cols=$(tput cols)\"; exec sleep 1000'\n    pty: true\n    startsecs: 0";
    let yaml = format!(
        "programs:\n  plain:\n    {report}\n    stdout_logfile: {}\n  set:\n    {report}\n    stdout_logfile: {}\n    environment: {{TERM: screen-256color}}\n",
        plain.display(),
        set.display()
    );
    let d = Daemon::start_env(s, "", &yaml, &[("-i", "")]);
    for (log, want) in [(&plain, "TERM=[xterm-256color] cols=80"), (&set, "TERM=[screen-256color] cols=80")] {
        let mut text = String::new();
        wait_until(&format!("{want} in {}", log.display()), SOON, || {
            text = std::fs::read_to_string(log).unwrap_or_default();
            text.contains("cols=")
        });
        assert!(text.contains(want), "{text:?}; log:\n{}", d.log());
    }
}
