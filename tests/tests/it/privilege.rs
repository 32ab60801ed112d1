//! Privilege separation as root (DESIGN §1 rule 4): children run as their `user`, the
//! supervisor never as root, every child is the spawner's.

use crate::{probe, SOON};
use tests::{proc_status_field, require_root, supervisor_pid, wait_until, Daemon, Scratch};

#[test]
fn a_user_nobody_child_runs_as_uid_65534() {
    require_root!();
    let s = Scratch::new();
    let probe = s.probe(&probe());
    let out = s.path("probe.out");
    let yaml = format!(
        "programs:\n  p:\n    command: {}\n    user: nobody\n    startsecs: 0\n    stdout_logfile: {}\n",
        probe.display(),
        out.display()
    );
    let d = Daemon::start_in(s, &yaml);
    let mut text = String::new();
    wait_until("the probe's report", SOON, || {
        text = std::fs::read_to_string(&out).unwrap_or_default();
        text.ends_with('\n')
    });
    let r: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!((r["uid"].as_u64(), r["euid"].as_u64()), (Some(65534), Some(65534)));
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(r["gid"].as_u64(), Some(u64::from(nobody.gid.as_raw())));
    assert!(!r["groups"].as_array().unwrap().iter().any(|g| g == 0), "root's groups leaked: {r}");
    assert_eq!(r["env"]["USER"], "nobody");
    assert_eq!(r["ppid"], d.pid());
}

#[test]
fn the_supervisor_is_not_root_and_the_spawner_is_the_parent_of_every_child() {
    require_root!();
    let d = Daemon::start("programs:\n  w:\n    command: sleep 1000\n    numprocs: 2\n    startsecs: 0\n");
    let sup = supervisor_pid(&d);
    let uid = proc_status_field(sup, "Uid:").unwrap();
    assert_ne!(uid, "0", "the supervisor runs as root");
    for field in ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:", "CapInh:"] {
        assert_eq!(proc_status_field(sup, field).as_deref(), Some("0000000000000000"), "supervisor {field}");
    }
    assert_eq!(proc_status_field(sup, "NoNewPrivs:").as_deref(), Some("1"));
    let status = std::fs::read_to_string(format!("/proc/{sup}/status")).unwrap();
    let gid = proc_status_field(sup, "Gid:").unwrap();
    let groups: Vec<&str> =
        status.lines().find_map(|l| l.strip_prefix("Groups:")).unwrap().split_whitespace().collect();
    assert_eq!(groups, [gid.as_str()], "the supervisor keeps no supplementary group but its own");
    // The spawner, idle, holds no effective capability but CAP_KILL (the others return only to
    // handle a request; CAP_KILL lets the kernel send its children the parent-death signal).
    wait_until("the spawner idle with CapEff CAP_KILL alone", SOON, || {
        proc_status_field(d.pid(), "CapEff:").as_deref() == Some("0000000000000020")
    });
    for n in ["w:0", "w:1"] {
        d.wait_state(n, "RUNNING", SOON);
        let pid = d.proc_pid(n).unwrap();
        assert_eq!(tests::ppid(pid), Some(d.pid()), "{n} is not the spawner's child");
        assert_ne!(tests::ppid(pid), Some(sup));
    }
    // Still supervised end to end through the unprivileged side.
    assert_eq!(d.ctl(&["restart", "w:1"]).code, 0);
}

#[test]
fn an_unknown_user_is_a_located_config_error() {
    require_root!();
    let s = Scratch::new();
    let path = s.path("u.yaml");
    std::fs::write(&path, "programs:\n  p:\n    command: /bin/true\n    user: no-such-user-tm\n").unwrap();
    let out = std::process::Command::new(tests::bin("taskmasterd")).arg("-t").arg("-c").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim(), format!("{}:4:5: programs.p.user: unknown user 'no-such-user-tm'", path.display()));
}

#[test]
fn capabilities_are_granted_to_the_programs_that_name_them_and_no_other() {
    require_root!();
    let s = Scratch::new();
    let probe = s.probe(&probe());
    let (with, without) = (s.path("with.out"), s.path("without.out"));
    // A privileged port nothing listens on now (a web server may hold 80).
    let port = (600..1024)
        .rev()
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024");
    let yaml = format!(
        "programs:\n  with:\n    command: {p} bind 127.0.0.1:{port}\n    user: nobody\n    capabilities: [CAP_NET_BIND_SERVICE]\n    startsecs: 0\n    autorestart: never\n    stdout_logfile: {w}\n  \
         without:\n    command: {p} bind 127.0.0.2:{port}\n    user: nobody\n    startsecs: 0\n    autorestart: never\n    startretries: 0\n    stdout_logfile: {wo}\n",
        p = probe.display(),
        w = with.display(),
        wo = without.display()
    );
    let d = Daemon::start_in(s, &yaml);
    let said = |f: &std::path::Path| std::fs::read_to_string(f).unwrap_or_default();
    wait_until(&format!("the capable program bound port {port}"), SOON, || {
        assert!(!said(&with).contains("cannot bind"), "{}", said(&with));
        said(&with).contains(&format!("bound 127.0.0.1:{port}"))
    });
    wait_until("the other refused", SOON, || said(&without).contains(&format!("cannot bind 127.0.0.2:{port}")));
    assert!(std::fs::read_to_string(&without).unwrap().contains("Permission denied"));
    let pid = d.proc_pid("with").unwrap();
    assert_eq!(proc_status_field(pid, "Uid:").as_deref(), Some("65534"));
    assert_eq!(proc_status_field(pid, "CapAmb:").as_deref(), Some("0000000000000400"), "CAP_NET_BIND_SERVICE only");
    assert_eq!(proc_status_field(pid, "CapEff:").as_deref(), Some("0000000000000400"));
}

#[test]
fn without_a_taskmaster_user_the_supervisor_gets_a_dynamic_uid_of_its_own_and_keeps_it() {
    require_root!();
    if matches!(nix::unistd::User::from_name("taskmaster"), Ok(Some(_))) {
        tests::skip("this machine has a `taskmaster` user, which the supervisor then runs as");
        return;
    }
    let yaml = "programs:\n  p:\n    command: /bin/sh -c 'echo hello-dynamic; exec sleep 1000'\n    startsecs: 0\n";
    let mut d = Daemon::start(yaml);
    let sup = supervisor_pid(&d);
    let uid: u32 = proc_status_field(sup, "Uid:").unwrap().parse().unwrap();
    assert!((61184..=65519).contains(&uid), "supervisor uid {uid} is not a dynamic one");
    assert_eq!(proc_status_field(sup, "Gid:").unwrap(), uid.to_string(), "gid = uid");
    assert!(nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).unwrap().is_none(), "a passwd entry");
    d.wait_state("p", "RUNNING", SOON);
    wait_until("p's output in its log", SOON, || d.ctl(&["tail", "p"]).stdout == "hello-dynamic\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(d.log_path("p-stdout.log")).unwrap().uid(), uid, "the log is the supervisor's");
    // Restarting the same config (same socket path) gives the same uid: its files stay its own.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(SOON), 0);
    let scratch = std::mem::take(&mut d.scratch);
    let again = Daemon::start_in(scratch, yaml);
    let uid_again = proc_status_field(supervisor_pid(&again), "Uid:").unwrap();
    assert_eq!(uid_again, uid.to_string());
    again.wait_state("p", "RUNNING", SOON);
}

/// `taskmasterd -c CONFIG` on `yaml` (after a generated server and socket section), expected to
/// be refused: its exit code and stderr.
fn refused(s: &Scratch, server_extra: &str, yaml: &str) -> (i32, String, std::path::PathBuf) {
    let config = s.path("tm.yaml");
    let text = format!(
        "server:\n  logfile: {}\n{server_extra}socket:\n  path: {}\n{yaml}",
        s.path("log/taskmasterd.log").display(),
        s.path("tm.sock").display()
    );
    std::fs::write(&config, text).unwrap();
    let (code, err) = tests::run_daemon_to_exit(&["-c".as_ref(), config.as_os_str()]);
    (code, err, config)
}

#[test]
fn server_user_nobody_is_refused() {
    require_root!();
    let s = Scratch::new();
    let (code, err, config) = refused(&s, "  user: nobody\n", "programs:\n  p:\n    command: sleep 1000\n");
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim(), format!("{}:3:3: server.user must be a user of its own, not nobody", config.display()));
}

#[test]
fn a_program_running_as_the_supervisors_user_is_refused_at_start_and_at_update() {
    require_root!();
    if !std::process::Command::new("sh").args(["-c", "command -v useradd"]).status().is_ok_and(|s| s.success()) {
        tests::skip("useradd is not installed");
        return;
    }
    tests::ensure_user("tmt_super");
    let s = Scratch::new();
    let web = "programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n    user: tmt_super\n";
    let (code, err, config) = refused(&s, "  user: tmt_super\n", web);
    assert_eq!(code, 2, "{err}");
    let expected = "programs.web.user 'tmt_super' is the supervisor's own user (server.user 'tmt_super'); give the program another user";
    assert_eq!(err.trim(), format!("{}:10:5: {expected}", config.display()));
    // Accepted with another user; then an update that makes them equal changes nothing.
    let d = Daemon::start_full(Scratch::new(), "  user: tmt_super\n", &web.replace("tmt_super", "nobody"));
    d.wait_state("web", "RUNNING", SOON);
    let pid = d.proc_pid("web");
    d.rewrite(web);
    let run = d.ctl(&["update"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(expected) || run.stderr.contains(expected), "{run:?}");
    assert_eq!(d.proc_pid("web"), pid);
}

// The supervisor's confinement (DESIGN §1 rule 4, issue 12 finding 2): non-dumpable, seccomp,
// Landlock, and stdio that is never the terminal taskmasterd was started from. As root and as a
// normal user alike.

#[test]
fn the_supervisor_runs_under_a_seccomp_filter_with_no_new_privs() {
    let d = Daemon::start("programs:\n  w:\n    command: sleep 1000\n    startsecs: 0\n");
    let sup = supervisor_pid(&d);
    assert_eq!(proc_status_field(sup, "Seccomp:").as_deref(), Some("2"), "seccomp filter mode");
    assert_eq!(proc_status_field(sup, "NoNewPrivs:").as_deref(), Some("1"));
    // Still supervising end to end under the filter.
    d.wait_state("w", "RUNNING", SOON);
    assert_eq!(d.ctl(&["restart", "w"]).code, 0);
    d.wait_state("w", "RUNNING", SOON);
}

#[test]
fn a_process_of_the_supervisors_uid_can_neither_trace_it_nor_read_its_memory_or_environment() {
    use std::os::unix::process::CommandExt;
    let s = Scratch::new();
    let probe = s.probe(&probe());
    let d = Daemon::start_in(s, "programs:\n  w:\n    command: sleep 1000\n    startsecs: 0\n");
    let sup = supervisor_pid(&d);
    let uid: u32 = proc_status_field(sup, "Uid:").unwrap().parse().unwrap();
    let gid: u32 = proc_status_field(sup, "Gid:").unwrap().parse().unwrap();
    let mut attacker = std::process::Command::new(&probe);
    attacker.arg("--ptrace").arg(sup.to_string());
    if tests::is_root() {
        attacker.uid(uid).gid(gid);
    }
    let out = attacker.output().unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("probe --ptrace: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!((r["uid"].as_u64(), r["gid"].as_u64()), (Some(u64::from(uid)), Some(u64::from(gid))), "{r}");
    assert_eq!(r["ptrace"], "EPERM", "{r}");
    assert_eq!(r["environ"], "EACCES", "{r}");
    assert_eq!(r["mem"], "EACCES", "{r}");
    assert!(tests::alive(sup), "the supervisor survived the attempts");
    d.wait_state("w", "RUNNING", SOON);
    assert_eq!(d.ctl(&["status"]).code, 0);
}

#[test]
fn started_on_a_terminal_the_supervisor_holds_no_terminal_yet_its_log_shows_there() {
    use std::ffi::OsStr;
    let s = Scratch::new();
    let cfg = s.path("tm.yaml");
    let sock = s.path("tm.sock");
    std::fs::write(
        &cfg,
        format!(
            "server:\n  logfile: {}\nsocket:\n  path: {}\nprograms:\n  p:\n    command: sleep 1000\n    startsecs: 0\n",
            s.path("log/tm.log").display(),
            sock.display()
        ),
    )
    .unwrap();
    let daemon = tests::bin("taskmasterd");
    let mut term =
        tests::PtySession::spawn(&[daemon.as_os_str(), OsStr::new("-n"), OsStr::new("-c"), cfg.as_os_str()], 24, 200);
    term.expect("INFO spawned: 'p' with pid");
    term.expect("INFO confinement: non-dumpable, seccomp (");
    let spawner = term.child.id() as i32;
    let mut sup = None;
    wait_until("the supervisor process", SOON, || {
        sup = tests::children_of(spawner).into_iter().find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.windows(17).any(|w| w == b"--supervisor-role"))
        });
        sup.is_some()
    });
    let sup = sup.unwrap();
    if tests::is_root() {
        for fd in 0..3 {
            let target = std::fs::read_link(format!("/proc/{sup}/fd/{fd}")).unwrap();
            let t = target.to_string_lossy();
            assert!(!t.starts_with("/dev/pts/") && !t.starts_with("/dev/tty"), "supervisor fd {fd} is a terminal: {t}");
        }
        assert_eq!(std::fs::read_link(format!("/proc/{sup}/fd/0")).unwrap(), std::path::Path::new("/dev/null"));
    } else {
        // Its own uid cannot even look: the supervisor is non-dumpable.
        let err = std::fs::read_link(format!("/proc/{sup}/fd/0")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
        eprintln!("note: the supervisor's fds can only be inspected as root");
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(spawner), nix::sys::signal::Signal::SIGTERM).unwrap();
    let mark = term.mark();
    assert!(term.wait().success(), "{}", term.seen);
    // The supervisor's last words still reach the terminal, relayed by the spawner.
    if !term.seen[mark..].contains("taskmasterd exiting") {
        term.expect_after(mark, "taskmasterd exiting");
    }
}

#[test]
fn the_main_log_says_what_confinement_is_in_force() {
    let d = Daemon::start("programs:\n  w:\n    command: sleep 1000\n    startsecs: 0\n");
    d.wait_log("confinement: non-dumpable, seccomp (", SOON);
    let log = d.log();
    let line = log.lines().find(|l| l.contains("confinement:")).unwrap();
    assert!(line.contains(" INFO confinement: non-dumpable, seccomp ("), "{line}");
    match tests::landlock_abi() {
        0 => assert!(line.contains("landlock unavailable: "), "{line}"),
        abi => assert!(line.ends_with(&format!("landlock ABI {} (enforced)", abi.min(7))), "{line}"),
    }
}

#[test]
fn under_landlock_a_reload_that_names_a_new_log_directory_gets_a_supervisor_confined_to_it() {
    if tests::landlock_abi() == 0 {
        tests::skip("the kernel has no Landlock");
        return;
    }
    let s = Scratch::new();
    let known = s.path("known");
    std::fs::create_dir(&known).unwrap();
    let first = format!(
        "programs:\n  a:\n    command: /bin/sh -c 'echo a-out; exec sleep 1000'\n    startsecs: 0\n    stdout_logfile: {}\n",
        known.join("a.log").display()
    );
    let d = Daemon::start_in(s, &first);
    wait_until("a's output", SOON, || std::fs::read_to_string(known.join("a.log")).unwrap_or_default() == "a-out\n");
    let (first_supervisor, a_pid) = (supervisor_pid(&d), d.proc_pid("a"));
    // Root prepares log files at start only: a file first named by a reload is the
    // supervisor's to create, in a directory it may write.
    let outside = d.scratch.path("new");
    std::fs::create_dir(&outside).unwrap();
    if tests::is_root() {
        let sup = supervisor_pid(&d);
        let id = |f: &str| proc_status_field(sup, f).unwrap().parse::<u32>().unwrap();
        for dir in [&known, &outside] {
            std::os::unix::fs::chown(dir, Some(id("Uid:")), Some(id("Gid:"))).unwrap();
        }
    }
    // And one that does not exist: taskmasterd makes it for the supervisor, as at start.
    let made = d.scratch.path("made");
    let second = format!(
        "{first}  \
         auto:\n    command: /bin/sh -c 'echo auto-out; exec sleep 1000'\n    startsecs: 0\n  \
         known2:\n    command: /bin/sh -c 'echo known2-out; exec sleep 1000'\n    startsecs: 0\n    stdout_logfile: {}\n  \
         far:\n    command: /bin/sh -c 'echo far-out; exec sleep 1000'\n    startsecs: 0\n    stdout_logfile: {}\n  \
         made:\n    command: /bin/sh -c 'echo made-out; exec sleep 1000'\n    startsecs: 0\n    stdout_logfile: {}\n",
        known.join("k2.log").display(),
        outside.join("far.log").display(),
        made.join("m.log").display()
    );
    d.rewrite(&second);
    let run = d.ctl(&["update"]);
    assert_eq!(run.code, 0, "{run:?}");
    // Beneath childlogdir (AUTO) and beneath a directory known at start: logged.
    wait_until("auto's output in childlogdir", SOON, || {
        std::fs::read_to_string(d.log_path("auto-stdout.log")).unwrap_or_default() == "auto-out\n"
    });
    wait_until("known2's output", SOON, || {
        std::fs::read_to_string(known.join("k2.log")).unwrap_or_default() == "known2-out\n"
    });
    // A directory the supervisor was not confined to: the supervisor hands over to one confined
    // to it, which logs the program's output from the start, no byte lost.
    wait_until("far's output", SOON, || {
        std::fs::read_to_string(outside.join("far.log")).unwrap_or_default() == "far-out\n"
    });
    wait_until("made's output", SOON, || {
        std::fs::read_to_string(made.join("m.log")).unwrap_or_default() == "made-out\n"
    });
    d.wait_log("a new supervisor confined to it takes over", SOON);
    d.wait_log("replaced by pid", SOON);
    assert!(!d.log().contains("Permission denied"), "{}", d.log());
    assert_ne!(supervisor_pid(&d), first_supervisor, "a new supervisor");
    assert_eq!(d.proc_pid("a"), a_pid, "the others keep running");
    d.wait_state("far", "RUNNING", SOON);
}

#[test]
fn a_program_running_as_nobody_writes_through_dev_stdout_and_dev_stderr_into_its_logs() {
    require_root!();
    let d = Daemon::start(
        "programs:\n  p:\n    command: sh -c 'echo via-dev-stdout > /dev/stdout; echo via-dev-stderr > /dev/stderr; exec sleep 1000'\n    user: nobody\n    startsecs: 0\n  t:\n    command: sh -c 'echo via-dev-tty-stdout > /dev/stdout; exec sleep 1000'\n    user: nobody\n    pty: true\n    startsecs: 0\n",
    );
    let expected: [(&[&str], &str); 3] = [
        (&["tail", "p"], "via-dev-stdout\n"),
        (&["tail", "p", "stderr"], "via-dev-stderr\n"),
        (&["tail", "t"], "via-dev-tty-stdout\r\n"),
    ];
    for (args, want) in expected {
        wait_until(&format!("{want:?} from `{}`", args.join(" ")), SOON, || d.ctl(args).stdout == want);
    }
    // Both ran as nobody all along.
    for n in ["p", "t"] {
        d.wait_state(n, "RUNNING", SOON);
        assert_eq!(proc_status_field(d.proc_pid(n).unwrap(), "Uid:").as_deref(), Some("65534"), "{n}");
    }
}
