//! `taskmasterctl fg NAME` (DESIGN §7): attach this terminal to a program, like `tmux attach`.
//!
//! On a PTY program the terminal goes to raw mode, so every key (Ctrl-C, Ctrl-Z, arrows …)
//! reaches the program; the window size is sent at attach and on every SIGWINCH; the detach keys
//! (Ctrl-] by default) leave it running. On a pipe program the terminal stays in line mode: each
//! line typed goes to the program's stdin, and Ctrl-D or the detach keys end the session. The
//! terminal is restored exactly whatever ends the session: detach, the program's exit, the
//! daemon going away, or SIGTERM/SIGHUP/SIGINT/SIGQUIT to taskmasterctl.
//!
//! Everything the program prints passes through [`crate::sanitize::Sanitizer`] on its way to the
//! terminal, the redraw at attach included: a program cannot write the operator's clipboard
//! (OSC 52), set the title, or make the terminal answer a query, while colours, cursor movement and
//! the modes full-screen programs use pass unchanged.

use crate::client::Client;
use crate::exit::{CtlError, Outcome};
use crate::sanitize::Sanitizer;
use common::proto::attach::{take_frame, Frame};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use serde_json::{json, Map};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

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

/// Puts the terminal back as it was when dropped.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> Result<Self, CtlError> {
        let saved =
            termios::tcgetattr(fd).map_err(|e| CtlError::Failed(format!("cannot read the terminal settings: {e}")))?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw)
            .map_err(|e| CtlError::Failed(format!("cannot set raw mode: {e}")))?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
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

/// How a session ended.
enum End {
    Detached,
    Exited(i32),
    DaemonGone,
}

/// Attaches to `name` until detach, the program's exit or the daemon going away.
///
/// # Errors
/// The attach was refused (not running, unknown name), or the terminal could not be set up.
pub fn run(mut client: Client, name: &str, detach_keys: &[u8]) -> Result<Outcome, CtlError> {
    let stdin = std::io::stdin();
    let is_tty = nix::unistd::isatty(&stdin).unwrap_or(false);
    let (rows, cols) = if is_tty { window_size() } else { (0, 0) };
    let mut args = Map::new();
    args.insert("rows".into(), json!(rows));
    args.insert("cols".into(), json!(cols));
    let data = client.call("attach", &[name.to_owned()], args)?;
    let pty = data.get("pty").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let shown = data.get("name").and_then(serde_json::Value::as_str).unwrap_or(name).to_owned();
    let (mut sock, mut inbuf) = client.into_parts();

    let mut set = SigSet::empty();
    for s in [Signal::SIGWINCH, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT] {
        set.add(s);
    }
    let old = set.thread_swap_mask(SigmaskHow::SIG_BLOCK).map_err(|e| CtlError::Failed(format!("sigprocmask: {e}")))?;
    let _mask = MaskGuard(old);
    let mut sigfd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| CtlError::Failed(format!("signalfd: {e}")))?;
    let raw = if pty && is_tty { Some(RawMode::enter(stdin.as_fd())?) } else { None };

    let end = session(&mut sock, &mut inbuf, &mut sigfd, &mut Detector { keys: detach_keys.to_vec(), matched: 0 });
    drop(raw);
    let mut err = std::io::stderr();
    match end {
        Ok(End::Detached) => {
            let _ = writeln!(err, "\n[detached from {shown}]");
            Ok(Outcome::Ok)
        }
        Ok(End::Exited(status)) => {
            let _ = writeln!(err, "\n[{shown} exited with status {status}]");
            Ok(Outcome::Ok)
        }
        Ok(End::DaemonGone) => {
            Err(CtlError::Unreachable(format!("[taskmasterd went away; {shown} is no longer attached]")))
        }
        Err(e) => Err(e),
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
) -> Result<End, CtlError> {
    let mut stdout = std::io::stdout();
    let mut sanitizer = Sanitizer::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Frames already received.
        loop {
            match take_frame(inbuf) {
                Ok(Some(Frame::Data(d))) => {
                    let _ = stdout.write_all(&sanitizer.filter(&d));
                    let _ = stdout.flush();
                }
                Ok(Some(Frame::Exit(status))) => return Ok(End::Exited(status)),
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
