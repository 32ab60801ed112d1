//! taskmasterctl: output formats, exit codes (DESIGN §7), and the interactive shell.

use crate::SOON;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tests::{bin, Daemon, Scratch};

#[test]
fn exit_codes_0_1_2_3_4() {
    let d = Daemon::start("programs:\n  up:\n    command: sleep 1000\n    startsecs: 0\n  down:\n    command: sleep 1000\n    autostart: false\n");
    d.wait_state("up", "RUNNING", SOON);
    assert_eq!(d.ctl(&["status", "up"]).code, 0);
    let all = d.ctl(&["status"]);
    assert_eq!(all.code, 3, "a selected process not RUNNING: {all:?}");
    let unknown = d.ctl(&["stop", "nosuch"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(unknown.stderr.contains("no such process: nosuch"), "{unknown:?}");
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

/// Reads from the PTY master until `needle` shows up, or panics after 10 s with what was read.
fn read_until(master: &mut std::fs::File, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        assert!(Instant::now() < deadline, "timed out waiting for {needle:?}; screen so far: {seen:?}");
        let mut fds = [nix::poll::PollFd::new(master.as_fd(), nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap_or(0) == 0 {
            continue;
        }
        match master.read(&mut buf) {
            Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[test]
fn the_shell_completes_with_tab_runs_actions_and_keeps_history() {
    let d = Daemon::start("programs:\n  webserver:\n    command: sleep 1000\n    startsecs: 0\n");
    d.wait_state("webserver", "RUNNING", SOON);
    let pty = nix::pty::openpty(None, None).expect("openpty");
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
    let slave = pty.slave;
    let mut child = Command::new(bin("taskmasterctl"))
        .arg("-c")
        .arg(&cfg)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .env("TERM", "xterm")
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let mut seen = String::new();
    read_until(&mut master, &mut seen, "tm-test> ");
    // "stat<Tab>" completes the action, "webs<Tab>" the process name, each with a space.
    master.write_all(b"stat\t").unwrap();
    read_until(&mut master, &mut seen, "status ");
    master.write_all(b"webs\t").unwrap();
    read_until(&mut master, &mut seen, "webserver ");
    master.write_all(b"\r").unwrap();
    read_until(&mut master, &mut seen, "RUNNING   pid");
    master.write_all(b"quit\r").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the shell did not quit; screen: {seen:?}");
        let mut buf = [0u8; 4096];
        let mut fds = [nix::poll::PollFd::new(master.as_fd(), nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u16)).unwrap_or(0) > 0 {
            let _ = master.read(&mut buf);
        }
    };
    assert!(status.success());
    let hist = std::fs::read_to_string(&history).unwrap_or_default();
    assert!(hist.contains("status webserver"), "history file: {hist:?}");
}
