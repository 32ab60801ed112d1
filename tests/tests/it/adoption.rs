//! The supervisor is disposable (issue 16): killed with SIGKILL, it is replaced by a new one
//! that adopts every program with its pid, state and uptime; an exit that happened meanwhile
//! takes its usual course; the replacement is as confined as the first; a crash loop ends in an
//! orderly stop.

use crate::SOON;
use serde_json::Value;
use std::time::{Duration, Instant};
use tests::{alive, count_lines, proc_status_field, supervisor_pid, wait_until, Daemon};

/// Kills the supervisor with SIGKILL and waits for its replacement to answer `status`; returns
/// the replacement's pid and how long `status` took to answer again.
fn kill_supervisor(d: &Daemon) -> (i32, Duration) {
    let old = supervisor_pid(d);
    let killed_at = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let mut answered = None;
    wait_until("a new supervisor answering status", SOON, || {
        let run = d.ctl(&["status", "--json"]);
        let new = tests::children_of(d.pid()).into_iter().any(|p| p != old && is_supervisor(p));
        if new && serde_json::from_str::<Vec<Value>>(&run.stdout).is_ok() {
            answered = Some(killed_at.elapsed());
        }
        answered.is_some()
    });
    (supervisor_pid(d), answered.unwrap_or_default())
}

fn is_supervisor(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.windows(17).any(|w| w == b"--supervisor-role"))
}

/// A process as `status` shows it: name, state, pid.
type Row = (String, String, Option<i64>);

/// Every process, and its uptime.
fn snapshot(d: &Daemon) -> (Vec<Row>, Vec<u64>) {
    let rows = d.status();
    let keys = rows
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["state"].as_str().unwrap().to_owned(), r["pid"].as_i64()))
        .collect();
    let uptimes = rows.iter().map(|r| r["uptime_s"].as_u64().unwrap_or(0)).collect();
    (keys, uptimes)
}

#[test]
fn killing_the_supervisor_repeatedly_costs_no_program_its_pid_state_or_uptime() {
    let yaml = "programs:\n  sl:\n    command: /bin/sleep 1000\n    numprocs: 17\n    startsecs: 0\n  \
done:\n    command: /bin/true\n    startsecs: 0\n    autorestart: false\n  \
off:\n    command: /bin/sleep 1000\n    autostart: false\n  \
held:\n    command: /bin/sleep 1000\n    startsecs: 0\n";
    let d = Daemon::start(yaml);
    for n in 0..17 {
        d.wait_state(&format!("sl:{n}"), "RUNNING", SOON);
    }
    d.wait_state("done", "EXITED", SOON);
    d.wait_state("held", "RUNNING", SOON);
    assert_eq!(d.ctl(&["stop", "held"]).code, 0);
    // Up for a while, so that a reset uptime would show.
    wait_until("an uptime of 2 s", SOON, || d.row("sl:16")["uptime_s"].as_u64() >= Some(2));
    let (before, up_before) = snapshot(&d);
    assert_eq!(before.len(), 20);
    let mut supervisors = vec![supervisor_pid(&d)];
    for round in 1..=3 {
        let (new, took) = kill_supervisor(&d);
        println!("round {round}: status answered again {took:?} after the kill");
        assert!(!supervisors.contains(&new), "a new supervisor");
        supervisors.push(new);
        let (after, up_after) = snapshot(&d);
        assert_eq!(after, before, "round {round}: same processes, states and pids");
        for ((name, state, _), (b, a)) in before.iter().zip(up_before.iter().zip(&up_after)) {
            if state == "RUNNING" {
                assert!(a >= b && *a >= 2, "{name}: uptime {b} s became {a} s");
            }
        }
        d.wait_log(&format!("restarted as pid {new}, adopted 17 processes (restart {round} since start)"), SOON);
    }
    let version = d.ctl(&["version"]);
    assert!(version.stdout.contains("the supervisor was restarted 3 times since taskmasterd started"), "{version:?}");
    // It still works: the stopped program starts, a running one stops.
    assert_eq!(d.ctl(&["start", "held"]).code, 0);
    assert_eq!(d.ctl(&["stop", "sl:3"]).code, 0);
    assert_eq!(d.state("sl:3"), "STOPPED");
}

#[test]
fn a_program_that_exits_while_no_supervisor_runs_is_exited_with_its_code_afterwards() {
    let s = tests::Scratch::new();
    let go = s.path("go");
    let yaml = format!(
        "programs:\n  seven:\n    command: /bin/sh -c 'while [ ! -e {} ]; do sleep 0.02; done; exit 7'\n    startsecs: 0\n    autorestart: false\n",
        go.display()
    );
    let d = Daemon::start_in(s, &yaml);
    d.wait_state("seven", "RUNNING", SOON);
    let pid = d.proc_pid("seven").expect("a pid");
    // The supervisor stops reading (SIGSTOP): the exit reaches its socket, not its core; then it
    // dies without having acted on it.
    let sup = nix::unistd::Pid::from_raw(supervisor_pid(&d));
    nix::sys::signal::kill(sup, nix::sys::signal::Signal::SIGSTOP).expect("stop");
    std::fs::write(&go, "").expect("go");
    wait_until("the program to end", SOON, || !alive(pid));
    nix::sys::signal::kill(sup, nix::sys::signal::Signal::SIGKILL).expect("kill");
    d.wait_state("seven", "EXITED", SOON);
    assert_eq!(d.row("seven")["exitstatus"], 7);
    d.wait_log("exited: 'seven' (exit status 7; not expected)", SOON);
    // Exactly once: another restart does not act on it again.
    kill_supervisor(&d);
    assert_eq!(d.state("seven"), "EXITED");
    assert_eq!(d.log().matches("exited: 'seven'").count(), 1, "{}", d.log());
}

#[test]
fn a_pty_program_survives_and_its_later_output_is_logged() {
    let yaml = "programs:\n  term:\n    command: /bin/sh -c 'trap \"echo HUP >> /dev/stderr\" HUP; i=0; while true; do i=$((i+1)); echo line $i; sleep 0.05; done'\n    pty: true\n    startsecs: 0\n";
    let d = Daemon::start(yaml);
    d.wait_state("term", "RUNNING", SOON);
    let pid = d.proc_pid("term");
    let log = d.log_path("term-stdout.log");
    let log = if log.exists() { log } else { find_log(&d, "term") };
    wait_until("output in the log", SOON, || count_lines(&log) >= 3);
    kill_supervisor(&d);
    let lines_then = count_lines(&log);
    wait_until("output logged by the new supervisor", SOON, || count_lines(&log) >= lines_then + 10);
    assert_eq!(d.proc_pid("term"), pid, "the same process, never hung up");
    assert_eq!(d.state("term"), "RUNNING");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("HUP"), "the program got SIGHUP:\n{text}");
}

/// The AUTO log file of a program's stdout in the daemon's log directory.
fn find_log(d: &Daemon, name: &str) -> std::path::PathBuf {
    let dir = d.log_path("");
    let mut found = None;
    wait_until("the program's log file", SOON, || {
        found =
            std::fs::read_dir(&dir).ok().into_iter().flatten().flatten().map(|e| e.path()).find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{name}-stdout")))
            });
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn the_replacement_supervisor_is_exactly_as_unprivileged_and_confined_as_the_first() {
    let d = Daemon::start("programs:\n  sl:\n    command: /bin/sleep 1000\n    startsecs: 0\n");
    d.wait_state("sl", "RUNNING", SOON);
    let fields =
        ["Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:"];
    let of = |pid: i32| -> Vec<String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        fields.iter().map(|f| status.lines().find(|l| l.starts_with(f)).unwrap_or("").to_owned()).collect()
    };
    let first = supervisor_pid(&d);
    let before = of(first);
    let (second, _) = kill_supervisor(&d);
    assert_ne!(first, second);
    assert_eq!(of(second), before);
    assert_eq!(proc_status_field(second, "Seccomp:").as_deref(), Some("2"));
    let log = d.log();
    let lines: Vec<&str> = log.lines().filter_map(|l| l.split_once(" confinement: ").map(|(_, c)| c)).collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert_eq!(lines[0], lines[1], "the same confinement");
}

#[test]
fn a_supervisor_killed_in_a_tight_loop_ends_in_an_orderly_stop_and_a_non_zero_exit() {
    let s = tests::Scratch::new();
    let order = s.path("order");
    let prog = |name: &str, priority: u32| {
        format!(
            "  {name}:\n    command: /bin/sh -c 'trap \"echo {name} >> {}; exit 0\" TERM; while true; do sleep 0.05; done'\n    priority: {priority}\n    startsecs: 0\n",
            order.display()
        )
    };
    let yaml = format!("programs:\n{}{}", prog("first", 1), prog("last", 50));
    let mut d = Daemon::start_in(s, &yaml);
    d.wait_state("first", "RUNNING", SOON);
    d.wait_state("last", "RUNNING", SOON);
    let pids = [d.proc_pid("first").unwrap(), d.proc_pid("last").unwrap()];
    let spawner = d.pid();
    let mut killed = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(spawner) && tests::ppid(spawner).is_some() && Instant::now() < deadline {
        for p in tests::children_of(spawner).into_iter().filter(|p| is_supervisor(*p)) {
            if killed.insert(p) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
            }
        }
        if proc_status_field(spawner, "State:").as_deref() == Some("Z") {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let code = d.wait_exit(SOON);
    assert_ne!(code, 0, "a crash loop is a failure for the service manager");
    assert_eq!(killed.len(), 10, "ten supervisors died");
    assert!(d.stderr().contains("10 deaths within 60 s; stopping every program and exiting"), "{}", d.stderr());
    for pid in pids {
        assert!(!alive(pid), "program {pid} stopped");
    }
    assert_eq!(std::fs::read_to_string(&order).unwrap_or_default(), "last\nfirst\n", "highest priority number first");
}

#[test]
fn fg_attaches_again_by_itself_when_the_supervisor_is_replaced() {
    let d = Daemon::start("programs:\n  cat:\n    command: cat\n    pty: true\n    startsecs: 0\n");
    d.wait_state("cat", "RUNNING", SOON);
    let pid = d.proc_pid("cat");
    let mut s = crate::fg::fg(&d, "cat", &[]);
    s.expect("\x1b[2J");
    s.send(b"before\r");
    s.expect("before\r\nbefore\r\n");
    let mark = s.mark();
    kill_supervisor(&d);
    s.expect_after(mark, "[taskmaster: the supervisor was restarted; attached again]");
    s.send(b"after\r");
    s.expect("after\r\nafter\r\n");
    s.send(b"\x1d");
    assert!(s.wait().success(), "detached normally");
    assert_eq!(d.proc_pid("cat"), pid, "the program never noticed");
}

#[test]
fn tail_f_follows_on_across_a_supervisor_restart() {
    let yaml = "programs:\n  tick:\n    command: /bin/sh -c 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.02; done'\n    startsecs: 0\n";
    let d = Daemon::start(yaml);
    d.wait_state("tick", "RUNNING", SOON);
    let out = d.scratch.path("followed");
    let err = d.scratch.path("followed.err");
    let mut follower = std::process::Command::new(tests::bin("taskmasterctl"))
        .arg("-s")
        .arg(&d.socket)
        .args(["tail", "-f", "tick"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("taskmasterctl tail -f");
    let last = |path: &std::path::Path| -> u64 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines().filter_map(|l| l.strip_prefix("tick ")?.parse().ok()).max().unwrap_or(0)
    };
    wait_until("followed output", SOON, || last(&out) >= 5);
    kill_supervisor(&d);
    let at_kill = last(&out);
    wait_until("output followed from the new supervisor", SOON, || last(&out) >= at_kill + 20);
    let _ = follower.kill();
    let _ = follower.wait();
    let note = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(note.contains("following again"), "{note}");
}

#[test]
fn a_one_shot_command_whose_supervisor_dies_is_sent_once_more() {
    // `stop` waits for a program that ignores SIGTERM; the supervisor dies meanwhile. The ctl
    // says so and asks the new supervisor, which carries the stop through (the record kept
    // STOPPING, the kill timer is armed again).
    let yaml = "programs:\n  stubborn:\n    command: /bin/sh -c 'trap \"\" TERM; while true; do sleep 0.05; done'\n    startsecs: 0\n    stopwaitsecs: 3\n";
    let d = Daemon::start(yaml);
    d.wait_state("stubborn", "RUNNING", SOON);
    let pid = d.proc_pid("stubborn").unwrap();
    let stop = std::process::Command::new(tests::bin("taskmasterctl"))
        .arg("-s")
        .arg(&d.socket)
        .args(["stop", "stubborn"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("taskmasterctl stop");
    d.wait_state("stubborn", "STOPPING", SOON);
    kill_supervisor(&d);
    let out = stop.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("closed by the daemon; trying again"), "{stderr}");
    d.wait_state("stubborn", "STOPPED", SOON);
    assert!(!alive(pid), "killed after stopwaitsecs by the new supervisor");
    d.wait_log("killing 'stubborn'", SOON);
}

/// Runs `seq 1 N` (on a PTY with `pty`), kills the supervisor 4 times while it writes, and
/// returns its log once complete and what the program wrote (`line_end` after each number).
fn sequence_across_four_kills(n: u64, pty: bool, line_end: &str) -> (String, String) {
    let s = tests::Scratch::new();
    let log = s.path("seq.log");
    let yaml = format!(
        "programs:\n  seq:\n    command: seq 1 {n}\n    pty: {pty}\n    autostart: false\n    startsecs: 0\n    autorestart: false\n    stdout_logfile: {}\n    stdout_logfile_maxbytes: 0\n",
        log.display()
    );
    let d = Daemon::start_in(s, &yaml);
    assert_eq!(d.ctl(&["start", "seq"]).code, 0);
    let mut during = 0;
    for _ in 0..4 {
        during += usize::from(d.state("seq") == "RUNNING");
        kill_supervisor(&d);
    }
    d.wait_state("seq", "EXITED", SOON);
    let want: String = (1..=n).map(|i| format!("{i}{line_end}")).collect();
    wait_until("the whole sequence in the log", SOON, || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() >= want.len() as u64)
    });
    println!("{during} of 4 kills while the program was writing");
    (std::fs::read_to_string(&log).expect("the log"), want)
}

#[test]
fn a_numbered_sequence_written_across_four_kills_is_in_its_log_exactly_once() {
    const N: u64 = 3_000_000;
    let (got, want) = sequence_across_four_kills(N, false, "\n");
    if got != want {
        let mut seen = std::collections::HashMap::new();
        for l in got.lines() {
            *seen.entry(l).or_insert(0u32) += 1;
        }
        let lost = (1..=N).filter(|i| !seen.contains_key(i.to_string().as_str())).count();
        let doubled: u32 = seen.values().map(|c| c - 1).sum();
        panic!("{lost} lines lost, {doubled} doubled ({} bytes of {})", got.len(), want.len());
    }
}

/// The bytes of `path` and its backups `.1` … `.backups`.
fn logged_bytes(path: &std::path::Path, backups: u32) -> u64 {
    let size = |p: String| std::fs::metadata(p).map_or(0, |m| m.len());
    (1..=backups).map(|n| size(format!("{}.{n}", path.display()))).sum::<u64>() + size(path.display().to_string())
}

#[test]
fn a_full_speed_writer_across_kills_in_mid_move_leaves_every_line_once_through_rotations() {
    // `cat` of a file keeps the pipe full: each supervisor is always moving bytes when it is
    // killed, now and then while it rotates.
    const LINES: u64 = 6_000_000;
    const MAXBYTES: u64 = 1 << 20;
    let s = tests::Scratch::new();
    let input = s.path("numbers");
    let want: Vec<u8> = (1..=LINES).flat_map(|i| format!("{i:08}\n").into_bytes()).collect();
    std::fs::write(&input, &want).expect("the input");
    let log = s.path("fast/out.log");
    let yaml = format!(
        "programs:\n  fast:\n    command: cat {}\n    autostart: false\n    startsecs: 0\n    autorestart: false\n    \
         stdout_logfile: {}\n    stdout_logfile_maxbytes: {MAXBYTES}\n    stdout_logfile_backups: 100\n",
        input.display(),
        log.display()
    );
    let d = Daemon::start_in(s, &yaml);
    assert_eq!(d.ctl(&["start", "fast"]).code, 0);
    let total = want.len() as u64;
    let mut mid_stream = 0;
    for k in 1..=5 {
        wait_until("the log to grow", SOON * 3, || logged_bytes(&log, 100) >= total * k / 6);
        mid_stream += usize::from(logged_bytes(&log, 100) < total);
        kill_supervisor(&d);
    }
    d.wait_state("fast", "EXITED", SOON);
    // Not `wait_until`: when bytes were lost the files never reach the total, and the
    // comparison below says how many.
    let deadline = Instant::now() + SOON;
    while logged_bytes(&log, 100) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut got = Vec::new();
    let backups = (1..=100).filter(|n| std::path::Path::new(&format!("{}.{n}", log.display())).exists()).count();
    for n in (1..=backups).rev() {
        let part = std::fs::read(format!("{}.{n}", log.display())).expect("a backup (no gap in the numbers)");
        assert_eq!(part.len() as u64, MAXBYTES, "backup {n} is not exactly maxbytes");
        got.extend(part);
    }
    got.extend(std::fs::read(&log).expect("the log"));
    if got != want {
        let first = got.chunks(9).zip(want.chunks(9)).position(|(a, b)| a != b);
        panic!("{} bytes logged of {}; first wrong line: {first:?}", got.len(), want.len());
    }
    println!("{mid_stream} of 5 kills while bytes were still in flight; {backups} backups");
}

#[test]
fn a_pty_programs_output_across_four_kills_is_in_its_log_exactly_once() {
    // The terminal's output moves through a holding pipe the spawner keeps (splice), so a kill
    // between taking bytes from the terminal and logging them loses nothing either. The
    // terminal turns each newline into CR LF.
    let (got, want) = sequence_across_four_kills(400_000, true, "\r\n");
    assert!(got == want, "{} bytes logged of {}", got.len(), want.len());
}
