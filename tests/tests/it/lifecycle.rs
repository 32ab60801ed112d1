//! The transitions of DESIGN §2 on real processes.

use crate::SOON;
use std::time::{Duration, Instant};
use tests::{count_lines, Daemon};

#[test]
fn starting_becomes_running_after_startsecs() {
    let d = Daemon::start("programs:\n  web:\n    command: sleep 1000\n    startsecs: 1\n");
    let t0 = Instant::now();
    let first = d.state("web");
    assert!(first == "STARTING" || t0.elapsed() >= Duration::from_secs(1), "state {first}");
    d.wait_state("web", "RUNNING", SOON);
    d.wait_log("success: 'web' entered RUNNING state, process has stayed up for > than 1 seconds (startsecs)", SOON);
    let row = d.row("web");
    assert!(row["description"].as_str().unwrap().starts_with(&format!("pid {}, uptime 0:00:0", row["pid"])), "{row}");
}

#[test]
fn autostart_false_stays_stopped_until_started_then_stops() {
    let d = Daemon::start("programs:\n  web:\n    command: sleep 1000\n    autostart: false\n    startsecs: 0\n");
    let row = d.row("web");
    assert_eq!(
        (row["state"].as_str(), row["description"].as_str(), row["pid"].is_null()),
        (Some("STOPPED"), Some("Not started"), true)
    );
    let run = d.ctl(&["start", "web"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "web: started\n"), "{run:?}");
    assert_eq!(d.state("web"), "RUNNING");
    let run = d.ctl(&["stop", "web"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "web: stopped\n"), "{run:?}");
    assert_eq!(d.state("web"), "STOPPED");
    d.wait_log("stopped: 'web' (terminated by SIGTERM)", SOON);
}

#[test]
fn exit_from_running_is_exited_with_its_code() {
    let d = Daemon::start(
        "programs:\n  once:\n    command: /bin/sh -c 'sleep 0.3; exit 4'\n    startsecs: 0\n    autorestart: never\n",
    );
    d.wait_state("once", "EXITED", SOON);
    let row = d.row("once");
    assert_eq!(row["exitstatus"], 4);
    assert!(row["pid"].is_null());
    d.wait_log("exited: 'once' (exit status 4; not expected)", SOON);
}

#[test]
fn startretries_is_counted_exactly_then_fatal() {
    let d0 = tests::Scratch::new();
    let counter = d0.path("spawns");
    let yaml = format!(
        "programs:\n  dies:\n    command: /bin/sh -c 'echo x >> {}; exit 1'\n    startretries: 2\n",
        counter.display()
    );
    let d = Daemon::start_in(d0, &yaml);
    d.wait_state("dies", "FATAL", SOON);
    assert_eq!(count_lines(&counter), 3, "startretries 2 means 3 spawns in all");
    d.wait_log("gave up: 'dies' entered FATAL state, too many start retries too quickly", SOON);
    assert_eq!(d.row("dies")["description"], "Exited too quickly (process log may have details)");
}

#[test]
fn early_exit_goes_to_backoff_before_retrying() {
    let d = Daemon::start("programs:\n  flap:\n    command: /bin/sh -c 'exit 1'\n    startretries: 10\n");
    d.wait_state("flap", "BACKOFF", SOON);
    d.wait_log("exited: 'flap' (exit status 1; not expected)", SOON);
    let run = d.ctl(&["stop", "flap"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(d.state("flap"), "STOPPED");
}

#[test]
fn missing_command_is_fatal_with_the_errno_in_status() {
    let d = Daemon::start("programs:\n  ghost:\n    command: /no/such/bin --flag\n    startretries: 0\n");
    d.wait_state("ghost", "FATAL", SOON);
    assert_eq!(d.row("ghost")["description"], "can't find command '/no/such/bin': ENOENT (No such file or directory)");
    d.wait_log("spawnerr: 'ghost': can't find command '/no/such/bin'", SOON);
}

#[test]
fn a_bad_directory_is_reported_with_the_failed_step() {
    let d = Daemon::start(
        "programs:\n  lost:\n    command: /bin/sleep 100\n    directory: /no/such/dir\n    startretries: 0\n",
    );
    d.wait_state("lost", "FATAL", SOON);
    assert_eq!(d.row("lost")["description"], "chdir /no/such/dir: ENOENT (No such file or directory)");
}

#[test]
fn a_process_killed_with_sigkill_is_restarted() {
    let d = Daemon::start("programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n");
    d.wait_state("web", "RUNNING", SOON);
    let old = d.proc_pid("web").unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), nix::sys::signal::Signal::SIGKILL).unwrap();
    tests::wait_until("web restarted with a new pid", SOON, || {
        d.proc_pid("web").is_some_and(|p| p != old) && d.state("web") == "RUNNING"
    });
    d.wait_log("exited: 'web' (terminated by SIGKILL; not expected)", SOON);
}

#[test]
fn fatal_and_backoff_show_the_last_line_of_stderr_cleaned_and_bounded() {
    let s = tests::Scratch::new();
    let long = "x".repeat(300);
    let scripts = [
        ("bind", "echo starting\necho 'nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)' >&2\necho 'on stdout, not shown'\nexit 1\n".to_owned()),
        ("colour", format!("printf 'first\\n\\033[1;31mfatal:\\033[0m\\tbad {long}\\n\\n' >&2\nexit 1\n")),
        ("merged", "echo merged-line\nexit 1\n".to_owned()),
        ("quiet", "echo only-stdout\nexit 1\n".to_owned()),
        ("flap", "echo still failing >&2\nexit 1\n".to_owned()),
    ];
    let mut yaml = String::from("programs:\n");
    for (name, script) in &scripts {
        let path = s.path(&format!("{name}.sh"));
        std::fs::write(&path, script).unwrap();
        let extra = match *name {
            "merged" => "    redirect_stderr: true\n    startretries: 0\n",
            "flap" => "    startretries: 10\n",
            _ => "    startretries: 0\n",
        };
        yaml.push_str(&format!("  {name}:\n    command: /bin/sh {}\n{extra}", path.display()));
    }
    let d = Daemon::start_in(s, &yaml);
    let description = |name: &str| d.row(name)["description"].as_str().unwrap_or_default().to_owned();
    d.wait_state("bind", "FATAL", SOON);
    assert_eq!(
        description("bind"),
        "Exited too quickly: nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)"
    );
    d.wait_state("colour", "FATAL", SOON);
    let shown = description("colour");
    assert!(shown.starts_with("Exited too quickly: fatal: bad xxx"), "{shown:?}");
    let line = shown.strip_prefix("Exited too quickly: ").unwrap();
    assert_eq!(line.chars().count(), 200, "{shown:?}");
    assert!(line.ends_with('…') && !line.chars().any(char::is_control), "{shown:?}");
    d.wait_state("merged", "FATAL", SOON);
    assert_eq!(description("merged"), "Exited too quickly: merged-line");
    d.wait_state("quiet", "FATAL", SOON);
    assert_eq!(description("quiet"), "Exited too quickly (process log may have details)");
    // BACKOFF too (the same row: a retry soon makes it STARTING).
    let mut row = serde_json::Value::Null;
    tests::wait_until("flap in BACKOFF", SOON, || {
        row = d.row("flap");
        row["state"] == "BACKOFF"
    });
    assert_eq!(row["description"], "Exited too quickly: still failing");
}
