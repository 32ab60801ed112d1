//! `taskmasterctl fg NAME` (DESIGN §7): attach this terminal to a program, like `tmux attach`.
//!
//! A one-line hint on stderr names the detach keys first (`attached to vim; detach with
//! Ctrl-]`; `-q` hides it). On a PTY program the terminal goes to raw mode, so every key
//! (Ctrl-C, Ctrl-Z, arrows …) reaches the program, and, like tmux, the client works on the
//! alternate screen, so the shell's screen is untouched; the window size is sent at attach and on
//! every SIGWINCH; the detach keys (Ctrl-] by default) leave it running. A PTY program needs a
//! terminal for stdin: without one `fg` refuses (exit 2) rather than pour escape codes into a
//! file. On a pipe program the terminal stays in line mode: each line typed goes to the
//! program's stdin, and Ctrl-D or the detach keys end the session, the detach keys at once:
//! they are made extra line ends (VEOL, VEOL2), so the kernel hands them over without Enter.
//!
//! Whatever ends the session (detach, the program's exit, the daemon going away, or
//! SIGTERM/SIGHUP/SIGINT/SIGQUIT to taskmasterctl), the terminal is restored exactly: every mode
//! the program turned on is turned off ([`crate::modes`] says which and how they are learnt),
//! the alternate screen is left, and the termios settings are put back. When the program exits,
//! taskmasterctl exits with its status (its exit code, or 128 + the signal number) and says how
//! it ended as the main log does: `[vim terminated by SIGTERM]`, `[q exited with status 3]`.
//!
//! Everything the program prints passes through [`crate::sanitize::Sanitizer`] on its way to the
//! terminal, the redraw at attach included: a program cannot write the operator's clipboard
//! (OSC 52), set the title, or make the terminal answer a query, while colours, cursor movement and
//! the modes full-screen programs use pass unchanged.

use crate::client::Client;
use crate::exit::{CtlError, Outcome};
use crate::modes::Modes;
use crate::sanitize::Sanitizer;
use common::proto::attach::{take_frame, Frame};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, SpecialCharacterIndices, Termios};
use serde_json::{json, Map};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

/// Switches the terminal to the alternate screen (saving the cursor and clearing it), as tmux
/// does at attach.
const ENTER_ALTERNATE_SCREEN: &[u8] = b"\x1b[?1049h";

/// Leaves the alternate screen: the shell's screen comes back with the cursor where it was.
const LEAVE_ALTERNATE_SCREEN: &[u8] = b"\x1b[?1049l";

/// Parses `--detach-keys`: comma-separated keys, each `ctrl-X` or one character
/// (`ctrl-]`, `ctrl-p,ctrl-q`), as docker's option of the same name.
///
/// # Errors
/// A key that is neither.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, CtlError> {
    s.split(',')
        .map(|k| {
            let k = k.trim();
            match k.strip_prefix("ctrl-").map(str::as_bytes) {
                Some([c]) if (0x40..0x80).contains(&c.to_ascii_uppercase()) => Ok(c.to_ascii_uppercase() & 0x1f),
                None if k.len() == 1 => Ok(k.as_bytes()[0]),
                _ => Err(CtlError::Usage(format!("--detach-keys: '{k}' is not a key (use ctrl-X or one character)"))),
            }
        })
        .collect()
}

/// The detach keys as the hint names them: `Ctrl-]`, `Ctrl-P Ctrl-Q`, `x`.
pub fn describe_keys(keys: &[u8]) -> String {
    let name = |k: u8| match k {
        0x00..=0x1f => format!("Ctrl-{}", char::from(k | 0x40)),
        0x7f => "Ctrl-?".to_owned(),
        _ => char::from(k).to_string(),
    };
    keys.iter().map(|&k| name(k)).collect::<Vec<_>>().join(" ")
}

/// The terminal's settings, put back as they were when dropped.
struct TermiosGuard<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> TermiosGuard<'a> {
    fn get(fd: BorrowedFd<'a>) -> Result<(Self, Termios), CtlError> {
        let saved =
            termios::tcgetattr(fd).map_err(|e| CtlError::Failed(format!("cannot read the terminal settings: {e}")))?;
        Ok((TermiosGuard { fd, saved: saved.clone() }, saved))
    }

    fn set(self, t: &Termios) -> Result<Self, CtlError> {
        termios::tcsetattr(self.fd, SetArg::TCSANOW, t)
            .map_err(|e| CtlError::Failed(format!("cannot set the terminal mode: {e}")))?;
        Ok(self)
    }

    /// Raw mode: every key goes to the program (a PTY program).
    fn raw(fd: BorrowedFd<'a>) -> Result<Self, CtlError> {
        let (guard, mut t) = Self::get(fd)?;
        termios::cfmakeraw(&mut t);
        guard.set(&t)
    }

    /// Line mode kept (editing, echo, Ctrl-D), with the first and the last detach key as extra
    /// line ends (VEOL, VEOL2): a read returns as soon as they are typed, so they act without
    /// Enter (a pipe program).
    fn line(fd: BorrowedFd<'a>, keys: &[u8]) -> Result<Self, CtlError> {
        let (guard, mut t) = Self::get(fd)?;
        if let (Some(&first), Some(&last)) = (keys.first(), keys.last()) {
            t.control_chars[SpecialCharacterIndices::VEOL as usize] = first;
            t.control_chars[SpecialCharacterIndices::VEOL2 as usize] = last;
        }
        guard.set(&t)
    }
}

impl Drop for TermiosGuard<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// The client's screen while attached: program output reaches it through the sanitizer and,
/// on a terminal, the mode tracker. When dropped, every mode the program turned on is turned
/// off and the alternate screen left (on a terminal).
struct Display {
    sanitizer: Sanitizer,
    /// Stdout is a terminal: modes are tracked and restored.
    tty: bool,
    /// The client switched to the alternate screen (a PTY program on a terminal).
    alternate: bool,
    /// Restored already.
    done: bool,
}

impl Display {
    /// Starts showing a program's output; `alternate`: switch to the alternate screen first.
    fn new(tty: bool, alternate: bool) -> Self {
        let alternate = tty && alternate;
        let sanitizer = if tty { Sanitizer::with_modes(Modes::new(alternate)) } else { Sanitizer::new() };
        let mut d = Display { sanitizer, tty, alternate, done: false };
        if alternate {
            d.emit(ENTER_ALTERNATE_SCREEN);
        }
        d
    }

    fn emit(&mut self, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    /// Shows program output.
    fn show(&mut self, data: &[u8]) {
        let clean = self.sanitizer.filter(data);
        self.emit(&clean);
    }

    /// Turns off the modes the program turned on and leaves the alternate screen; once.
    fn restore(&mut self) {
        if std::mem::replace(&mut self.done, true) || !self.tty {
            return;
        }
        let modes = self.sanitizer.modes();
        let mut bytes = modes.map(Modes::restore).unwrap_or_default();
        if self.alternate {
            bytes.extend_from_slice(LEAVE_ALTERNATE_SCREEN);
            // Leaving restores the attributes saved at attach, but some terminals (and the
            // vt100 model) keep one saved set for both screens, which a program's DECSC on the
            // alternate screen overwrites: reset them once more on the shell's screen.
            if modes.is_some_and(Modes::attributes_set) {
                bytes.extend_from_slice(b"\x1b[m");
            }
        }
        self.emit(&bytes);
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Restores the signal mask when dropped (the shell goes on after `fg`).
struct MaskGuard(SigSet);

impl Drop for MaskGuard {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.0), None);
    }
}

/// Finds the detach sequence in typed bytes, across reads.
struct Detector {
    keys: Vec<u8>,
    matched: usize,
}

impl Detector {
    /// Splits `input` into bytes to forward, and whether the sequence completed.
    fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                    if self.keys.len() == 1 {
                        return (out, true);
                    }
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

fn window_size() -> (u16, u16) {
    terminal_size::terminal_size_of(std::io::stdin()).map_or((0, 0), |(w, h)| (h.0, w.0))
}

/// How the attached program ended, from an `exit` frame: its exit code, or the signal that
/// killed it (sent as minus its number; see `common::proto::attach::EXIT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProgramEnd {
    /// It exited with this code.
    Exited(i32),
    /// This signal killed it.
    Killed(i32),
}

impl ProgramEnd {
    fn from_frame(status: i32) -> Self {
        if status < 0 {
            ProgramEnd::Killed(status.saturating_neg())
        } else {
            ProgramEnd::Exited(status)
        }
    }

    /// The status a shell would report: the exit code, or 128 + the signal number.
    fn exit_status(self) -> u8 {
        let status = match self {
            ProgramEnd::Exited(code) => code,
            ProgramEnd::Killed(sig) => sig.saturating_add(128),
        };
        u8::try_from(status.clamp(0, 255)).unwrap_or(u8::MAX)
    }

    /// `[q exited with status 3]`, `[vim terminated by SIGTERM]`: the main log's words.
    fn describe(self, name: &str) -> String {
        match self {
            ProgramEnd::Exited(code) => format!("[{name} exited with status {code}]"),
            ProgramEnd::Killed(sig) => format!("[{name} terminated by {}]", common::units::signal_name(sig)),
        }
    }
}

/// How a session ended.
enum End {
    Detached,
    Exited(ProgramEnd),
    DaemonGone,
}

/// Attaches to `name` until detach, the program's exit or the daemon going away; `quiet` leaves
/// out the hint naming the detach keys.
///
/// # Errors
/// The attach was refused (not running: [`CtlError::Failed`]; unknown name:
/// [`CtlError::NoSuchProcess`]), a PTY program with
/// a stdin that is not a terminal ([`CtlError::Usage`], exit 2), the terminal could not be set
/// up, or the daemon went away ([`CtlError::Unreachable`]).
pub fn run(mut client: Client, name: &str, detach_keys: &[u8], quiet: bool) -> Result<Outcome, CtlError> {
    let stdin = std::io::stdin();
    let stdin_tty = nix::unistd::isatty(&stdin).unwrap_or(false);
    let stdout_tty = nix::unistd::isatty(std::io::stdout()).unwrap_or(false);
    let (rows, cols) = if stdin_tty { window_size() } else { (0, 0) };
    let path = client.path().to_path_buf();
    let data = attach(&mut client, name, rows, cols)?;
    let pty = data.get("pty").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let shown = data.get("name").and_then(serde_json::Value::as_str).unwrap_or(name).to_owned();
    let (mut sock, mut inbuf) = client.into_parts();
    if pty && !stdin_tty {
        let _ = send(&mut sock, &Frame::Detach);
        return Err(CtlError::Usage(format!(
            "fg: {shown} runs on a terminal (pty: true) and stdin is not one; run fg from a terminal"
        )));
    }
    if !quiet {
        let or_eof = if pty { "" } else { " or Ctrl-D" };
        let _ = writeln!(std::io::stderr(), "attached to {shown}; detach with {}{or_eof}", describe_keys(detach_keys));
    }

    let mut set = SigSet::empty();
    for s in [Signal::SIGWINCH, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT] {
        set.add(s);
    }
    let old = set.thread_swap_mask(SigmaskHow::SIG_BLOCK).map_err(|e| CtlError::Failed(format!("sigprocmask: {e}")))?;
    let _mask = MaskGuard(old);
    let mut sigfd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| CtlError::Failed(format!("signalfd: {e}")))?;
    let termios = match (stdin_tty, pty) {
        (true, true) => Some(TermiosGuard::raw(stdin.as_fd())?),
        (true, false) => Some(TermiosGuard::line(stdin.as_fd(), detach_keys)?),
        (false, _) => None,
    };
    let mut display = Display::new(stdout_tty, pty);
    let alternate = display.alternate;

    let mut detector = Detector { keys: detach_keys.to_vec(), matched: 0 };
    let mut reattached = 0;
    let end = loop {
        let end = session(&mut sock, &mut inbuf, &mut sigfd, &mut detector, &mut display);
        // The supervisor was restarted (issue 16): attach again, as the user would, with a
        // notice; the program did not notice anything.
        if matches!(end, Ok(End::DaemonGone)) && reattached < REATTACH_MAX {
            reattached += 1;
            let (rows, cols) = if stdin_tty { window_size() } else { (0, 0) };
            if let Ok(mut c) = wait_connect(&path) {
                if attach(&mut c, name, rows, cols).is_ok() {
                    let _ =
                        write!(std::io::stderr(), "\r\n[taskmaster: the supervisor was restarted; attached again]\r\n");
                    (sock, inbuf) = c.into_parts();
                    continue;
                }
            }
        }
        break end;
    };
    // The modes first, while the terminal is still raw; then termios.
    drop(display);
    drop(termios);
    // Back on the shell's screen, the cursor is where it was at attach, at a line start.
    let nl = if alternate { "" } else { "\n" };
    let mut err = std::io::stderr();
    match end? {
        End::Detached => {
            let _ = writeln!(err, "{nl}[detached from {shown}]");
            Ok(Outcome::Ok)
        }
        End::Exited(how) => {
            let _ = writeln!(err, "{nl}{}", how.describe(&shown));
            Ok(Outcome::Program(how.exit_status()))
        }
        End::DaemonGone => {
            Err(CtlError::Unreachable(format!("[taskmasterd went away; {shown} is no longer attached]")))
        }
    }
}

/// Attaches a new session at most this many times in a row after the daemon went away (a crash
/// loop ends after 10 supervisor deaths anyway).
const REATTACH_MAX: u32 = 10;

/// Asks the daemon to attach this connection to `name` with the terminal's size (0×0: none).
///
/// # Errors
/// The attach was refused, or the connection failed.
fn attach(client: &mut Client, name: &str, rows: u16, cols: u16) -> Result<serde_json::Value, CtlError> {
    let mut args = Map::new();
    args.insert("rows".into(), json!(rows));
    args.insert("cols".into(), json!(cols));
    client.call(common::proto::control::Action::Attach, &[name.to_owned()], args)
}

/// Connects to `path`, trying for up to [`crate::client::RECONNECT_WAIT`].
///
/// # Errors
/// [`CtlError::Unreachable`]: nothing answered in that time.
fn wait_connect(path: &std::path::Path) -> Result<Client, CtlError> {
    let deadline = std::time::Instant::now() + crate::client::RECONNECT_WAIT;
    loop {
        match Client::connect(path) {
            Ok(c) => return Ok(c),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

fn send(sock: &mut std::os::unix::net::UnixStream, frame: &Frame) -> Result<(), CtlError> {
    sock.write_all(&frame.encode()).map_err(|e| CtlError::Unreachable(format!("connection lost: {e}")))
}

fn session(
    sock: &mut std::os::unix::net::UnixStream,
    inbuf: &mut Vec<u8>,
    sigfd: &mut SignalFd,
    detector: &mut Detector,
    display: &mut Display,
) -> Result<End, CtlError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Frames already received.
        loop {
            match take_frame(inbuf) {
                Ok(Some(Frame::Data(d))) => display.show(&d),
                Ok(Some(Frame::Exit(status))) => return Ok(End::Exited(ProgramEnd::from_frame(status))),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Err(CtlError::Failed(format!("bad data from the daemon: {e}"))),
            }
        }
        let stdin = std::io::stdin();
        let (sock_ready, stdin_ready, sig_ready) = {
            let mut fds = [
                PollFd::new(sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(CtlError::Failed(format!("poll: {e}"))),
            }
            let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[2]), ready(&fds[1]))
        };
        if sig_ready {
            while let Ok(Some(info)) = sigfd.read_signal() {
                if info.ssi_signo == Signal::SIGWINCH as u32 {
                    let (rows, cols) = window_size();
                    send(sock, &Frame::Resize { rows, cols })?;
                } else {
                    let _ = send(sock, &Frame::Detach);
                    return Ok(End::Detached);
                }
            }
        }
        if stdin_ready {
            let n = std::io::stdin().lock().read(&mut buf).unwrap_or(0);
            if n == 0 {
                // Ctrl-D in line mode, or stdin closed: leave the program and its stdin open.
                send(sock, &Frame::Detach)?;
                return Ok(End::Detached);
            }
            let (forward, detach) = detector.scan(&buf[..n]);
            if !forward.is_empty() {
                send(sock, &Frame::Data(forward))?;
            }
            if detach {
                send(sock, &Frame::Detach)?;
                return Ok(End::Detached);
            }
        }
        if sock_ready {
            match sock.read(&mut buf) {
                Ok(0) | Err(_) => return Ok(End::DaemonGone),
                Ok(n) => inbuf.extend_from_slice(&buf[..n]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(parse_detach_keys("ctrl-]").unwrap(), [0x1d]);
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [0x10, 0x11]);
        assert_eq!(parse_detach_keys("x").unwrap(), b"x");
        assert!(parse_detach_keys("ctrl-").is_err());
    }

    #[test]
    fn the_hint_names_the_keys_as_typed() {
        assert_eq!(describe_keys(&[0x1d]), "Ctrl-]");
        assert_eq!(describe_keys(&parse_detach_keys("ctrl-p,ctrl-q").unwrap()), "Ctrl-P Ctrl-Q");
        assert_eq!(describe_keys(b"x"), "x");
    }

    #[test]
    fn the_exit_status_is_the_programs_and_a_signal_is_named() {
        let code = ProgramEnd::from_frame(7);
        assert_eq!((code.exit_status(), code.describe("q").as_str()), (7, "[q exited with status 7]"));
        let killed = ProgramEnd::from_frame(-15);
        assert_eq!((killed.exit_status(), killed.describe("vim").as_str()), (143, "[vim terminated by SIGTERM]"));
        let big = ProgramEnd::from_frame(143);
        assert_eq!((big.exit_status(), big.describe("j").as_str()), (143, "[j exited with status 143]"));
        assert_eq!(ProgramEnd::from_frame(i32::MIN).exit_status(), 255);
    }

    #[test]
    fn the_detector_finds_a_sequence_across_reads() {
        let mut d = Detector { keys: vec![0x10, 0x11], matched: 0 };
        assert_eq!(d.scan(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(d.scan(b"\x11zz"), (Vec::new(), true));
        let mut d = Detector { keys: vec![0x10, 0x11], matched: 0 };
        assert_eq!(d.scan(b"\x10x"), (b"\x10x".to_vec(), false));
        let mut d = Detector { keys: vec![0x1d], matched: 0 };
        assert_eq!(d.scan(b"ls\x1drest"), (b"ls".to_vec(), true));
    }
}
