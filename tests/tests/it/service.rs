//! Running as a system service: sd_notify readiness and status, journald priorities.

use crate::SOON;
use nix::sys::signal::Signal;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use tests::{wait_until, Daemon, Scratch};

/// Collects notify datagrams until `done` holds for what was received.
fn receive(sock: &UnixDatagram, got: &mut Vec<String>, what: &str, done: impl Fn(&[String]) -> bool) {
    let mut buf = [0u8; 4096];
    wait_until(what, SOON, || {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        done(got)
    });
}

#[test]
fn sd_notify_says_ready_reloading_status_watchdog_and_stopping() {
    let s = Scratch::new();
    let path = s.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let env_out = s.path("env.out");
    let yaml = format!(
        "programs:\n  p:\n    command: /bin/sh -c 'echo \"notify=$NOTIFY_SOCKET watchdog=$WATCHDOG_USEC\"; exec sleep 1000'\n    startsecs: 0\n    stdout_logfile: {}\n",
        env_out.display()
    );
    let path_s = path.display().to_string();
    let mut d = Daemon::start_env(s, "", &yaml, &[("NOTIFY_SOCKET", &path_s), ("WATCHDOG_USEC", "400000")]);
    let mut got = Vec::new();
    receive(&sock, &mut got, "READY=1", |g| g.iter().any(|m| m.lines().any(|l| l == "READY=1")));
    receive(&sock, &mut got, "STATUS=1 running", |g| g.iter().any(|m| m.contains("STATUS=1 running")));
    receive(&sock, &mut got, "WATCHDOG=1", |g| g.iter().any(|m| m.contains("WATCHDOG=1")));
    // The programs (and the supervisor) never see the service manager's variables.
    wait_until("the program's environment", SOON, || {
        std::fs::read_to_string(&env_out).unwrap_or_default().contains("notify= watchdog=\n")
    });
    got.clear();
    d.signal(Signal::SIGHUP);
    receive(&sock, &mut got, "RELOADING=1 with MONOTONIC_USEC, then READY=1", |g| {
        let reload = g.iter().position(|m| m.contains("RELOADING=1") && m.contains("MONOTONIC_USEC="));
        reload
            .is_some_and(|i| g[i + 1..].iter().chain(std::iter::once(&g[i])).any(|m| m.lines().any(|l| l == "READY=1")))
    });
    got.clear();
    d.signal(Signal::SIGTERM);
    receive(&sock, &mut got, "STOPPING=1", |g| g.iter().any(|m| m.contains("STOPPING=1")));
    assert_eq!(d.wait_exit(SOON), 0);
}

#[test]
fn under_journald_the_main_log_carries_priorities_and_no_timestamp() {
    let d = Daemon::start_env(
        Scratch::new(),
        "",
        "programs:\n  p:\n    command: /bin/sh -c 'exit 3'\n    startsecs: 0\n    autorestart: never\n",
        &[("JOURNAL_STREAM", "auto")],
    );
    d.wait_state("p", "EXITED", SOON);
    wait_until("journal lines on stderr", SOON, || d.stderr().contains("<4>exited: 'p' (exit status 3; not expected)"));
    let err = d.stderr();
    assert!(err.lines().any(|l| l.starts_with("<6>spawned: 'p' with pid")), "{err}");
    assert!(!err.lines().any(|l| l.starts_with("20")), "a timestamped line on journald's stream: {err}");
    // The file log keeps its timestamps.
    assert!(d.log().lines().any(|l| l.starts_with("20") && l.contains("INFO spawned: 'p'")));
}

/// Kills a pid when dropped (a daemon is not our child: clean up by pid, never by name).
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if tests::alive(self.0) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
        }
    }
}

#[test]
fn daemon_mode_detaches_writes_a_locked_pidfile_and_cleans_up() {
    let s = Scratch::new();
    let (pidfile, sock, cfg) = (s.path("run/tm.pid"), s.path("tm.sock"), s.path("tm.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "server:\n  logfile: {}\n  pidfile: {}\n  daemon: true\nsocket:\n  path: {}\nprograms:\n  p:\n    command: sleep 1000\n    startsecs: 0\n",
            s.path("log/tm.log").display(),
            pidfile.display(),
            sock.display()
        ),
    )
    .unwrap();
    let start = || std::process::Command::new(tests::bin("taskmasterd")).arg("-c").arg(&cfg).output().unwrap();
    let out = start();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Serving when the starting command returns.
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let _guard = KillOnDrop(pid);
    assert!(tests::alive(pid));
    assert!(std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .starts_with(tests::bin("taskmasterd").as_os_str().as_encoded_bytes()));
    assert_ne!(tests::ppid(pid), Some(std::process::id() as i32), "not detached");
    let ctl = |args: &[&str]| {
        std::process::Command::new(tests::bin("taskmasterctl")).arg("-s").arg(&sock).args(args).output().unwrap()
    };
    wait_until("p RUNNING", SOON, || String::from_utf8_lossy(&ctl(&["status", "p"]).stdout).contains("RUNNING"));
    // A second start is refused, daemon or not, and says why.
    for extra in [&[][..], &["-n"][..]] {
        let out =
            std::process::Command::new(tests::bin("taskmasterd")).args(extra).arg("-c").arg(&cfg).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("another taskmasterd (pid {pid}) holds {}", pidfile.display())), "{err}");
    }
    // Another pidfile, same socket: refused too.
    let cfg2 = s.path("tm2.yaml");
    std::fs::write(&cfg2, std::fs::read_to_string(&cfg).unwrap().replace("run/tm.pid", "run/other.pid")).unwrap();
    let out = std::process::Command::new(tests::bin("taskmasterd")).arg("-c").arg(&cfg2).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another taskmasterd is serving"), "{out:?}");
    // Shutdown removes the pidfile and the socket.
    assert!(ctl(&["shutdown"]).status.success());
    wait_until("the daemon gone", SOON, || !tests::alive(pid));
    assert!(!pidfile.exists() && !sock.exists());
}
