//! taskmasterctl: output formats, exit codes (DESIGN §7), and the interactive shell.

use crate::SOON;
use std::ffi::OsStr;
use std::process::Command;
use tests::{bin, Daemon, PtySession, Scratch};

#[test]
fn exit_codes_0_1_2_3_4() {
    let d = Daemon::start("programs:\n  up:\n    command: sleep 1000\n    startsecs: 0\n  down:\n    command: sleep 1000\n    autostart: false\n");
    d.wait_state("up", "RUNNING", SOON);
    assert_eq!(d.ctl(&["status", "up"]).code, 0);
    let all = d.ctl(&["status"]);
    assert_eq!(all.code, 3, "a selected process not RUNNING: {all:?}");
    let unknown = d.ctl(&["stop", "nosuch"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert_eq!(unknown.stdout, "nosuch: ERROR (no such process)\n", "as supervisorctl prints it: {unknown:?}");
    let refused = d.ctl(&["stop", "down"]);
    assert_eq!((refused.code, refused.stdout.as_str()), (1, "down: ERROR (not running)\n"));
    let again = d.ctl(&["start", "up"]);
    assert_eq!((again.code, again.stdout.as_str()), (1, "up: ERROR (already started)\n"));
    assert_eq!(d.ctl(&["stop"]).code, 2);
    assert_eq!(d.ctl(&["frobnicate"]).code, 2);
    let s = Scratch::new();
    let gone = Command::new(bin("taskmasterctl")).arg("-s").arg(s.path("none.sock")).arg("status").output().unwrap();
    assert_eq!(gone.status.code(), Some(4));
    let err = String::from_utf8_lossy(&gone.stderr);
    assert!(err.starts_with(&format!("taskmasterctl: cannot connect to {}:", s.path("none.sock").display())), "{err}");
}

#[test]
fn all_skips_processes_already_in_the_wanted_state() {
    let d = Daemon::start("programs:\n  up:\n    command: sleep 1000\n    startsecs: 0\n  down:\n    command: sleep 1000\n    autostart: false\n");
    d.wait_state("up", "RUNNING", SOON);
    let run = d.ctl(&["start", "all"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "down: started\n"), "{run:?}");
}

#[test]
fn status_pid_signal_avail_version() {
    let d = Daemon::start("programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n    priority: 5\n");
    d.wait_state("web", "RUNNING", SOON);
    let status = d.ctl(&["status"]).stdout;
    let pid = d.proc_pid("web").unwrap();
    assert!(status.starts_with(&format!("{:<32} RUNNING   pid {pid}, uptime 0:00:", "web")), "{status:?}");
    let row = d.row("web");
    for field in ["name", "program", "instance", "state", "pid", "uptime_s", "exitstatus", "description"] {
        assert!(row.get(field).is_some(), "status --json lacks {field}: {row}");
    }
    assert_eq!(d.ctl(&["pid"]).stdout.trim(), d.pid().to_string());
    assert_eq!(d.ctl(&["pid", "web"]).stdout.trim(), pid.to_string());
    assert_eq!(d.ctl(&["avail"]).stdout, format!("{:<32} in use    auto      5:5\n", "web"));
    assert_eq!(d.ctl(&["version"]).stdout.trim(), env!("CARGO_PKG_VERSION"));
    let run = d.ctl(&["signal", "KILL", "web"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "web: signalled\n"));
    d.wait_log("exited: 'web' (terminated by SIGKILL; not expected)", SOON);
}

#[test]
fn pid_all_prints_one_pid_a_line_as_supervisorctl_does() {
    let d = Daemon::start("programs:\n  a:\n    command: sleep 1000\n    startsecs: 0\n  b:\n    command: sleep 1000\n    numprocs: 2\n    startsecs: 0\n  c:\n    command: sleep 1000\n    autostart: false\n");
    for n in ["a", "b:0", "b:1"] {
        d.wait_state(n, "RUNNING", SOON);
    }
    // In `status` order, 0 for a process without one (supervisorctl 4's `pid all`).
    let want: String = ["a", "b:0", "b:1"].iter().map(|n| format!("{}\n", d.proc_pid(n).unwrap())).collect();
    let run = d.ctl(&["pid", "all"]);
    assert_eq!((run.code, run.stdout), (0, format!("{want}0\n")));
    let run = d.ctl(&["pid", "b"]);
    assert_eq!(run.stdout, want.lines().skip(1).map(|l| format!("{l}\n")).collect::<String>());
}

#[test]
fn the_shell_completes_with_tab_runs_actions_and_keeps_history() {
    let d = Daemon::start("programs:\n  webserver:\n    command: sleep 1000\n    startsecs: 0\n");
    d.wait_state("webserver", "RUNNING", SOON);
    let history = d.scratch.path("history");
    let cfg = d.scratch.path("ctl.yaml");
    std::fs::write(
        &cfg,
        format!(
            "socket:\n  path: {}\nctl:\n  prompt: tm-test\n  history_file: {}\n",
            d.socket.display(),
            history.display()
        ),
    )
    .unwrap();
    let ctl = bin("taskmasterctl");
    let mut s = PtySession::spawn(&[ctl.as_os_str(), OsStr::new("-c"), cfg.as_os_str()], 24, 80);
    s.expect("tm-test> ");
    // "stat<Tab>" completes the action, "webs<Tab>" the process name, each with a space.
    s.send(b"stat\t");
    s.expect("status ");
    s.send(b"webs\t");
    s.expect("webserver ");
    s.send(b"\r");
    s.expect("RUNNING   pid");
    s.send(b"quit\r");
    assert!(s.wait().success());
    let hist = std::fs::read_to_string(&history).unwrap_or_default();
    assert!(hist.contains("status webserver"), "history file: {hist:?}");
}

#[test]
fn with_s_no_config_file_is_read_and_the_socket_may_be_a_unix_url() {
    let d = Daemon::start("programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n");
    d.wait_state("web", "RUNNING", SOON);
    // A broken ./taskmaster.yaml and $TASKMASTER_CONFIG: -s must not read them.
    let here = d.scratch.path("here");
    std::fs::create_dir(&here).unwrap();
    std::fs::write(here.join("taskmaster.yaml"), "programs: [broken\n").unwrap();
    let ctl = |args: &[&OsStr], config_env: bool| -> tests::CtlRun {
        let mut cmd = Command::new(bin("taskmasterctl"));
        cmd.args(args).current_dir(&here).stdin(std::process::Stdio::null());
        if config_env {
            cmd.env("TASKMASTER_CONFIG", here.join("taskmaster.yaml"));
        } else {
            cmd.env_remove("TASKMASTER_CONFIG");
        }
        cmd.output().unwrap().into()
    };
    let broken = ctl(&[OsStr::new("status")], false);
    assert_eq!(broken.code, 2, "the file is read without -s: {broken:?}");
    let url = format!("unix://{}", d.socket.display());
    for (args, env) in [
        (vec![OsStr::new("-s"), d.socket.as_os_str(), OsStr::new("status")], false),
        (vec![OsStr::new("-s"), OsStr::new(&url), OsStr::new("status")], false),
        (vec![OsStr::new("--serverurl"), OsStr::new(&url), OsStr::new("status")], true),
        (vec![OsStr::new(&format!("--serverurl={url}")), OsStr::new("status")], true),
    ] {
        let run = ctl(&args, env);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(run.stdout.starts_with("web "), "{args:?}: {run:?}");
    }
    let http = ctl(&[OsStr::new("-s"), OsStr::new("http://127.0.0.1:9001"), OsStr::new("status")], false);
    assert_eq!(http.code, 2, "{http:?}");
    assert!(http.stderr.contains("unix:///path"), "{http:?}");
}

#[test]
fn fg_on_a_program_with_several_instances_names_them() {
    let d = Daemon::start("programs:\n  ticker:\n    command: sleep 1000\n    numprocs: 2\n    startsecs: 0\n");
    d.wait_state("ticker:1", "RUNNING", SOON);
    let run = d.ctl(&["fg", "ticker"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stderr, "taskmasterctl: fg needs one process: ticker has ticker:0, ticker:1\n");
    let run = d.ctl(&["fg", "nosuch"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, "nosuch: ERROR (no such process)\n"), "{run:?}");
}

#[test]
fn help_lists_every_action_with_one_line_each() {
    let long = Command::new(bin("taskmasterctl")).arg("--help").output().unwrap();
    let short = Command::new(bin("taskmasterctl")).arg("-h").output().unwrap();
    let help = Command::new(bin("taskmasterctl")).arg("help").output().unwrap();
    let (long, short, help) = (
        String::from_utf8_lossy(&long.stdout),
        String::from_utf8_lossy(&short.stdout),
        String::from_utf8_lossy(&help.stdout),
    );
    assert!(long.ends_with(&*help) && short.ends_with(&*help), "--help ends with what help prints:\n{long}");
    let actions: Vec<&str> = help.lines().skip(1).map(|l| l.split_whitespace().next().unwrap_or_default()).collect();
    for a in ["status", "start", "stop", "restart", "signal", "pid", "tail", "maintail", "clear", "fg", "avail"] {
        assert!(actions.contains(&a), "help lacks {a}: {help}");
    }
    assert_eq!(actions.len(), help.lines().count() - 1, "one line each: {help}");
}

#[test]
fn tab_in_the_shell_lists_the_candidates_as_readline_does() {
    let d = Daemon::start("programs:\n  webserver:\n    command: sleep 1000\n    startsecs: 0\n");
    let ctl = bin("taskmasterctl");
    // No config file with -s: the history goes to $HOME/.taskmaster_history, here the scratch's.
    let home = format!("HOME={}", d.scratch.dir.path().display());
    let args = [OsStr::new("env"), OsStr::new(&home), ctl.as_os_str(), OsStr::new("-s"), d.socket.as_os_str()];
    let mut s = PtySession::spawn(&args, 24, 80);
    s.expect("taskmaster> ");
    // Two matches: the first Tab completes what they share, the second lists them; the line
    // is then drawn again as it was.
    let m = s.mark();
    s.send(b"sta\t\t");
    s.expect_after(m, "status");
    s.expect_after(m, "start");
    s.expect_after(m, "taskmaster> sta");
    s.send(b"tus\r");
    s.expect("RUNNING");
    s.send(b"quit\r");
    assert!(s.wait().success());
}
