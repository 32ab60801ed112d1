//! Live reload (DESIGN §4): only what changed is touched; a bad file changes nothing; the
//! supervisor never reads the file.

use crate::SOON;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use tests::{alive, children_of, wait_until, Daemon, Scratch};

fn pids(d: &Daemon) -> BTreeMap<String, i32> {
    d.status().into_iter().filter_map(|r| Some((r["name"].as_str()?.to_owned(), r["pid"].as_i64()? as i32))).collect()
}

fn wait_all_running(d: &Daemon, names: &[&str]) {
    for n in names {
        d.wait_state(n, "RUNNING", SOON);
    }
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

const BEFORE: &str = "programs:
  keep:
    command: sleep 1000
    startsecs: 0
  tune:
    command: sleep 1001
    startsecs: 0
    stopwaitsecs: 10
  shape:
    command: sleep 1002
    startsecs: 0
  scale:
    command: sleep 1003
    numprocs: 2
    startsecs: 0
  gone:
    command: sleep 1004
    startsecs: 0
";

const AFTER: &str = "programs:
  keep:
    command: sleep 1000
    startsecs: 0
  tune:
    command: sleep 1001
    startsecs: 0
    stopwaitsecs: 3
  shape:
    command: sleep 2002
    startsecs: 0
  scale:
    command: sleep 1003
    numprocs: 3
    startsecs: 0
  fresh:
    command: sleep 1005
    startsecs: 0
";

#[test]
fn update_touches_only_what_changed() {
    let d = Daemon::start(BEFORE);
    wait_all_running(&d, &["keep", "tune", "shape", "scale:0", "scale:1", "gone"]);
    let before = pids(&d);
    d.rewrite(AFTER);
    let run = d.ctl(&["update"]);
    assert_eq!(run.code, 0, "{run:?}");
    for line in [
        "fresh: added process group",
        "gone: stopped\ngone: removed process group",
        "shape: stopped\nshape: updated process group (command)",
        "scale: updated process group (numprocs)",
        "tune: updated process group (stopwaitsecs)",
    ] {
        assert!(run.stdout.contains(line), "{line:?} missing from:\n{}", run.stdout);
    }
    wait_all_running(&d, &["keep", "tune", "shape", "scale:0", "scale:1", "scale:2", "fresh"]);
    wait_until("gone forgotten", SOON, || !d.status().iter().any(|r| r["name"] == "gone"));
    let after = pids(&d);
    assert_eq!(after["keep"], before["keep"], "unchanged: same pid");
    assert_eq!(after["tune"], before["tune"], "supervision-only change: same pid");
    assert_eq!(
        (after["scale:0"], after["scale:1"]),
        (before["scale:0"], before["scale:1"]),
        "numprocs 2→3 keeps 0 and 1"
    );
    assert_ne!(after["shape"], before["shape"], "command change: restarted");
    assert!(cmdline(after["shape"]).contains("2002"));
    wait_until("the removed program's process gone", SOON, || !alive(before["gone"]));
    d.wait_log("update: shape: changed (command): restarted", SOON);
    // The spawner has nothing but the live processes (and the supervisor) as children.
    let expected = after.len() + 1;
    wait_until("no orphan left by the update", SOON, || children_of(d.pid()).len() == expected);
}

#[test]
fn numprocs_decrease_stops_and_forgets_the_surplus() {
    let d = Daemon::start("programs:\n  w:\n    command: sleep 1000\n    numprocs: 3\n    startsecs: 0\n");
    wait_all_running(&d, &["w:0", "w:1", "w:2"]);
    let before = pids(&d);
    d.rewrite("programs:\n  w:\n    command: sleep 1000\n    numprocs: 1\n    startsecs: 0\n");
    assert_eq!(d.ctl(&["update", "w"]).code, 0);
    wait_until("w:1 and w:2 gone from status", SOON, || d.status().len() == 1);
    let after = pids(&d);
    assert_eq!(after.get("w"), Some(&before["w:0"]), "the kept instance keeps its pid under its new name");
    assert!(!alive(before["w:1"]) && !alive(before["w:2"]));
}

#[test]
fn reread_shows_differences_without_applying_them() {
    let d = Daemon::start("programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n");
    d.wait_state("web", "RUNNING", SOON);
    let pid = d.proc_pid("web").unwrap();
    assert_eq!(d.ctl(&["reread"]).stdout, "No config updates to processes\n");
    d.rewrite("programs:\n  web:\n    command: sleep 1001\n    startsecs: 0\n  db:\n    command: sleep 1000\n");
    let run = d.ctl(&["reread"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "db: added\nweb: changed (command)\n"), "{run:?}");
    let avail = d.ctl(&["avail"]).stdout;
    assert!(avail.contains("db ") && avail.contains(" avail "), "{avail}");
    assert!(avail.lines().any(|l| l.starts_with("web ") && l.contains("in use")), "{avail}");
    assert_eq!(d.proc_pid("web"), Some(pid), "reread applied nothing");
    assert_eq!(d.status().len(), 1);
}

#[test]
fn a_broken_file_changes_nothing_and_update_names_the_location() {
    let d = Daemon::start("programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n");
    d.wait_state("web", "RUNNING", SOON);
    let pid = d.proc_pid("web").unwrap();
    d.rewrite("programs:\n  web:\n    command: sleep 1001\n    startsecs: nope\n");
    let run = d.ctl(&["update"]);
    assert_eq!(run.code, 2, "{run:?}");
    let expected = format!("{}:8:", d.config.display());
    assert!(run.stderr.contains(&expected) && run.stderr.contains("startsecs"), "{run:?}");
    d.signal(Signal::SIGHUP);
    d.wait_log("config error, nothing changed", SOON);
    assert_eq!(d.proc_pid("web"), Some(pid));
    assert_eq!(d.state("web"), "RUNNING");
    // A fixed file applies again.
    d.rewrite("programs:\n  web:\n    command: sleep 1001\n    startsecs: 0\n");
    assert_eq!(d.ctl(&["update"]).code, 0);
    wait_until("web restarted", SOON, || d.proc_pid("web").is_some_and(|p| p != pid));
}

#[test]
fn sighup_bursts_end_in_the_last_content_restarting_once_per_change() {
    let d = Daemon::start("programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n");
    d.wait_state("web", "RUNNING", SOON);
    // Ten SIGHUPs for one change: one restart.
    d.rewrite("programs:\n  web:\n    command: sleep 1001\n    startsecs: 0\n");
    for _ in 0..10 {
        d.signal(Signal::SIGHUP);
    }
    wait_until("the change applied", SOON, || d.proc_pid("web").is_some_and(|p| cmdline(p).contains("1001")));
    d.rewrite("programs:\n  web:\n    command: sleep 1001\n    startsecs: 0\n  marker:\n    command: sleep 1000\n");
    d.signal(Signal::SIGHUP);
    d.wait_state("marker", "RUNNING", SOON);
    assert_eq!(d.log().matches("spawned: 'web'").count(), 2, "{}", d.log());
    // Editing while signalling: the end state is the last content.
    for i in 0..10 {
        d.rewrite(&format!("programs:\n  web:\n    command: sleep {}\n    startsecs: 0\n", 3000 + i));
        d.signal(Signal::SIGHUP);
    }
    wait_until("the last content applied", SOON, || {
        d.proc_pid("web").is_some_and(|p| cmdline(p).contains("3009")) && d.state("web") == "RUNNING"
    });
    wait_until("marker removed", SOON, || d.status().len() == 1);
    wait_until("exactly one web process", SOON, || children_of(d.pid()).len() == 2);
}

#[test]
fn a_reload_while_in_backoff_ends_in_the_new_config() {
    let d = Daemon::start("programs:\n  flap:\n    command: /bin/sh -c 'exit 1'\n    startretries: 100\n  doomed:\n    command: /bin/sh -c 'exit 1'\n    startretries: 100\n");
    d.wait_state("flap", "BACKOFF", SOON);
    d.wait_state("doomed", "BACKOFF", SOON);
    d.rewrite("programs:\n  flap:\n    command: sleep 1000\n    startsecs: 0\n");
    assert_eq!(d.ctl(&["update"]).code, 0);
    d.wait_state("flap", "RUNNING", SOON);
    wait_until("doomed forgotten", SOON, || d.status().len() == 1);
    wait_until("one child besides the supervisor", SOON, || children_of(d.pid()).len() == 2);
}

#[test]
fn reload_restarts_everything_from_the_file() {
    let d = Daemon::start(
        "programs:\n  a:\n    command: sleep 1000\n    startsecs: 0\n  b:\n    command: sleep 1000\n    startsecs: 0\n",
    );
    wait_all_running(&d, &["a", "b"]);
    let before = pids(&d);
    d.rewrite(
        "programs:\n  a:\n    command: sleep 1000\n    startsecs: 0\n  c:\n    command: sleep 1000\n    startsecs: 0\n",
    );
    assert_eq!(d.ctl(&["reload"]).code, 0);
    wait_until("a restarted and c started", SOON, || {
        let p = pids(&d);
        p.get("a").is_some_and(|a| *a != before["a"]) && p.contains_key("c") && !p.contains_key("b")
    });
    wait_all_running(&d, &["a", "c"]);
}

#[test]
fn includes_and_expansion_apply_per_instance() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("conf.d")).unwrap();
    std::fs::write(
        s.path("conf.d/echo.yaml"),
        "programs:\n  echo:\n    command: /bin/sh -c 'echo %(program_name)s-%(process_num)02d; exec sleep 1000'\n    numprocs: 2\n    startsecs: 0\n    stdout_logfile: \"%(here)s/%(program_name)s-%(process_num)d.out\"\n",
    )
    .unwrap();
    let d = Daemon::start_in(s, "include: [\"conf.d/*.yaml\"]\n");
    for (i, want) in [(0, "echo-00"), (1, "echo-01")] {
        let f = d.scratch.path(&format!("conf.d/echo-{i}.out"));
        wait_until(&format!("{} to say {want}", f.display()), SOON, || {
            std::fs::read_to_string(&f).unwrap_or_default().trim() == want
        });
    }
}

#[test]
fn check_reports_every_error_in_one_run() {
    let s = Scratch::new();
    let path = s.path("bad.yaml");
    std::fs::write(&path, "programs:\n  a:\n    command: x\n    autorestar: true\n  b:\n    command: y\n    stopsignal: NOPE\n  c:\n    command: z %(ENV_TM_SURELY_UNDEFINED)s\n").unwrap();
    let out = std::process::Command::new(tests::bin("taskmasterd")).arg("-t").arg("-c").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].contains(":4:5: unknown key 'autorestar'"), "{err}");
    assert!(lines[1].contains(":7:5: programs.b.stopsignal: unknown signal 'NOPE'"), "{err}");
    assert!(lines[2].contains(":9:5: programs.c.command: undefined variable %(ENV_TM_SURELY_UNDEFINED)s"), "{err}");
}

#[test]
fn the_supervisor_never_reads_the_config_file() {
    tests::require_root!();
    let d = Daemon::start("programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n");
    d.wait_state("web", "RUNNING", SOON);
    // Readable by root only: the supervisor (a uid of its own) could not open it, the spawner can.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d.config, std::fs::Permissions::from_mode(0o600)).unwrap();
    d.rewrite("programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n  db:\n    command: sleep 1001\n    startsecs: 0\n");
    std::fs::set_permissions(&d.config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = d.ctl(&["update"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "db: added process group\n"), "{run:?}");
    d.wait_state("db", "RUNNING", SOON);
}

#[test]
fn a_reload_during_starting_or_stopping_leaves_no_orphan_and_no_double_spawn() {
    let d = Daemon::start(
        "programs:\n  slow:\n    command: sleep 1000\n    startsecs: 30\n  \
         stubborn:\n    command: /bin/sh -c 'trap \"\" TERM; while :; do sleep 0.1; done'\n    startsecs: 0\n    stopwaitsecs: 2\n",
    );
    d.wait_state("stubborn", "RUNNING", SOON);
    assert_eq!(d.state("slow"), "STARTING");
    // Put `stubborn` in STOPPING (it ignores SIGTERM for stopwaitsecs), from a second client.
    let ctl = tests::bin("taskmasterctl");
    let mut stopper = std::process::Command::new(ctl)
        .arg("-s")
        .arg(&d.socket)
        .args(["stop", "stubborn"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    d.wait_state("stubborn", "STOPPING", SOON);
    // Change `slow` (STARTING) and remove `stubborn` (STOPPING) at once.
    d.rewrite("programs:\n  slow:\n    command: sleep 1001\n    startsecs: 0\n");
    assert_eq!(d.ctl(&["update"]).code, 0);
    assert!(stopper.wait().unwrap().success());
    d.wait_state("slow", "RUNNING", SOON);
    wait_until("stubborn forgotten", SOON, || d.status().len() == 1);
    let pid = d.proc_pid("slow").unwrap();
    assert!(cmdline(pid).contains("1001"));
    wait_until("only the new slow process and the supervisor remain", SOON, || children_of(d.pid()).len() == 2);
    assert_eq!(d.log().matches("spawned: 'slow'").count(), 2, "{}", d.log());
}

/// Issue 12 finding 8: a program too large for the spawner link (`MAX_ITEM`, 1 MiB an item) used to
/// pass `-t`, then jam the supervisor's config decoder so that every later `update` said nothing
/// changed. It is now a config error everywhere, and the next valid file applies.
#[test]
fn an_oversized_program_is_refused_and_a_later_valid_config_still_applies() {
    const WEB: &str = "programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n";
    let big = format!("  big:\n    command: /bin/echo {}\n    startsecs: 0\n", "x".repeat(1_200_000));
    let d = Daemon::start(WEB);
    d.wait_state("web", "RUNNING", SOON);
    let pid = d.proc_pid("web");
    d.rewrite(&format!("{WEB}{big}"));
    let run = d.ctl(&["update"]);
    assert_eq!(run.code, 2, "{run:?}");
    let err = run.stderr.trim().trim_start_matches("taskmasterctl: ");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("{}:9:3: ", d.config.display())), "{err}");
    assert!(
        err.contains("programs.big is too large to send to the supervisor (") && err.ends_with("limit 1048576)"),
        "{err}"
    );
    assert_eq!(d.proc_pid("web"), pid, "the refused config changed nothing");
    assert_eq!(d.status().len(), 1);
    // The next valid file applies: the link's decoder kept nothing of the refused one.
    d.rewrite(&format!("{WEB}  fresh:\n    command: sleep 1001\n    startsecs: 0\n"));
    let run = d.ctl(&["update"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "fresh: added process group\n"), "{run:?}");
    d.wait_state("fresh", "RUNNING", SOON);
    assert_eq!(d.proc_pid("web"), pid);

    // `taskmasterd -t` says the same, located at the program, and exits 2.
    let s = Scratch::new();
    let path = s.path("taskmaster.yaml");
    std::fs::write(&path, format!("programs:\n{big}")).unwrap();
    let out = std::process::Command::new(tests::bin("taskmasterd")).arg("-t").arg("-c").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let want = format!("{}:2:3: programs.big is too large to send to the supervisor (", path.display());
    assert!(err.starts_with(&want) && err.trim_end().ends_with("bytes encoded, limit 1048576)"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A program that takes about a second to stop after SIGTERM.
fn slow(name: &str, tag: &str) -> String {
    format!(
        "  {name}:\n    command: /bin/sh -c 'trap \"sleep 1; exit 0\" TERM; echo {tag}; while :; do sleep 0.1; done'\n    startsecs: 0\n    stopwaitsecs: 5\n"
    )
}

#[test]
fn update_returns_once_the_changed_programs_old_process_is_gone() {
    let d = Daemon::start(&format!("programs:\n{}{}", slow("a", "one"), slow("b", "one")));
    wait_all_running(&d, &["a", "b"]);
    let before = pids(&d);
    d.rewrite(&format!("programs:\n{}{}", slow("a", "two"), slow("b", "one")));
    let run = d.ctl(&["update"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "a: stopped\na: updated process group (command)\n"), "{run:?}");
    // Answered only after the stop: the old process is already gone (it takes a second).
    assert!(!alive(before["a"]), "update answered before a's old process ended");
    assert!(alive(before["b"]));
    d.wait_state("a", "RUNNING", SOON);
    assert_ne!(pids(&d)["a"], before["a"]);
}

#[test]
fn update_then_reload_at_once_leave_exactly_the_processes_status_shows() {
    use std::io::{BufRead, BufReader, Write};
    let programs = |tag: &str| format!("programs:\n{}{}{}", slow("a", tag), slow("b", "same"), slow("c", tag));
    let d = Daemon::start(&programs("one"));
    wait_all_running(&d, &["a", "b", "c"]);
    d.rewrite(&programs("two"));
    // Both on one connection without waiting, as a script firing them back to back would.
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.write_all(b"{\"id\": 1, \"action\": \"update\"}\n{\"id\": 2, \"action\": \"reload\"}\n").unwrap();
    let mut r = BufReader::new(s);
    let mut replies = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        replies.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
    }
    assert_eq!((replies[0]["id"].as_u64(), replies[0]["ok"].as_bool()), (Some(1), Some(true)), "{replies:?}");
    assert_eq!((replies[1]["id"].as_u64(), replies[1]["ok"].as_bool()), (Some(2), Some(true)), "{replies:?}");
    wait_all_running(&d, &["a", "b", "c"]);
    // The spawner's children are the supervisor and exactly the processes status shows.
    let shown: Vec<i32> = pids(&d).into_values().collect();
    wait_until("only the shown processes alive", SOON, || {
        let mut kids = children_of(d.pid());
        kids.sort_unstable();
        let mut expected = shown.clone();
        expected.push(tests::supervisor_pid(&d));
        expected.sort_unstable();
        kids == expected
    });
    assert!(!d.log().contains("unknown spawn token"), "{}", d.log());
    assert_eq!(d.ctl(&["stop", "all"]).code, 0);
    wait_until("stop all leaves no program", SOON, || children_of(d.pid()).len() == 1);
}
