//! `fg` (DESIGN §6, §7): a control connection that asked to `attach` carries binary frames.
//! Program output goes to every attached client as it arrives; their keystrokes go to the
//! program (the PTY master, or the stdin pipe of a pipe program); a resize sets the PTY's window
//! size, which sends the program SIGWINCH. At attach, a PTY program's current screen is redrawn
//! from a terminal model (vt100) of its output, as tmux does.
//!
//! A client whose unsent frames pass the control socket's bound is dropped: a slow client never
//! stalls the program or the other clients.

use crate::event_loop::Supervisor;
use crate::registry::Target;
use common::proto::attach::{take_frame, Frame};
use common::proto::control::{kind, Reply, Request};
use common::proto::spawn::ExitStatus;
use serde_json::json;
use std::io::Write;
use std::num::NonZeroU16;

/// Unsent bytes beyond which an attached client stops getting output until it catches up
/// (1 MiB): a slow terminal never stalls the program or the other clients.
pub const LAG_BYTES: usize = 1 << 20;

/// Output not yet fed to the terminal model, at most (256 KiB): the model catches up when this
/// fills, at attach, and before a resize.
pub const MODEL_BACKLOG: usize = 256 * 1024;

/// The largest window a client may set, in rows and in columns (1000): the terminal model
/// holds rows × cols cells, so a 65535 × 65535 request would cost gigabytes. Larger sizes are
/// clamped, not refused: the program sees at most 1000 × 1000.
pub const MAX_WINDOW: u16 = 1000;

/// A PTY program's side of the terminal.
pub struct Pty {
    /// The master, for keystrokes and window size (the watcher owns the copy it reads).
    pub master: std::fs::File,
    /// What the screen shows now; built from the first output on.
    pub screen: Option<vt100::Parser>,
    /// Output the model has not seen yet.
    backlog: Vec<u8>,
    /// Current window size (rows, cols).
    pub size: (u16, u16),
}

impl Pty {
    /// A PTY at its default size.
    pub fn new(master: std::fs::File, size: (u16, u16)) -> Self {
        Pty { master, screen: None, backlog: Vec::new(), size }
    }

    /// Records output for the terminal model.
    pub fn record(&mut self, bytes: &[u8]) {
        self.backlog.extend_from_slice(bytes);
        if self.backlog.len() >= MODEL_BACKLOG {
            self.catch_up();
        }
    }

    /// Feeds the backlog to the model. A backlog of plain text (no ESC, SO or SI: nothing that
    /// changes a mode, a charset or the cursor beyond the text itself) only matters by its last
    /// screenfuls, so only those are processed; anything else is processed in full. The screen
    /// that results is the same; a flood of text costs a fraction of parsing every byte.
    fn catch_up(&mut self) {
        if self.backlog.is_empty() {
            return;
        }
        let (r, c) = self.size;
        let (nr, nc) = (NonZeroU16::new(r).unwrap_or(NonZeroU16::MIN), NonZeroU16::new(c).unwrap_or(NonZeroU16::MIN));
        let screenful = usize::from(r) * usize::from(c);
        let keep = (4 * screenful).max(32 * 1024);
        let plain = !self.backlog.iter().any(|b| matches!(b, 0x1b | 0x0e | 0x0f));
        let start = if plain && self.backlog.len() > keep {
            // Resume at a line start inside the kept tail, so the cut does not split a line.
            let cut = self.backlog.len() - keep;
            self.backlog[cut..].iter().position(|b| *b == b'\n').map_or(cut, |i| cut + i + 1)
        } else {
            0
        };
        self.screen.get_or_insert_with(|| vt100::Parser::new(nr, nc, 0)).process(&self.backlog[start..]);
        self.backlog.clear();
        if self.backlog.capacity() > MODEL_BACKLOG {
            self.backlog.shrink_to(MODEL_BACKLOG);
        }
    }

    /// Sets the window size of the terminal and of the model, each side clamped to
    /// [`MAX_WINDOW`]; a zero side leaves the size as it is.
    ///
    /// # Errors
    /// The errno of `ioctl(TIOCSWINSZ)`.
    pub fn resize(&mut self, rows: u16, cols: u16) -> std::io::Result<()> {
        let (rows, cols) = (rows.min(MAX_WINDOW), cols.min(MAX_WINDOW));
        let (Some(r), Some(c)) = (NonZeroU16::new(rows), NonZeroU16::new(cols)) else { return Ok(()) };
        self.catch_up();
        crate::sys::set_winsize(&self.master, rows, cols)?;
        self.size = (rows, cols);
        if let Some(p) = &mut self.screen {
            p.set_size(r, c);
        }
        Ok(())
    }

    /// Escape codes that redraw the current screen on a client's terminal.
    pub fn redraw(&mut self) -> Vec<u8> {
        self.catch_up();
        let mut out = b"\x1b[H\x1b[2J".to_vec();
        if let Some(p) = &self.screen {
            out.extend_from_slice(p.screen().state_formatted().as_bytes());
        }
        out
    }
}

/// The status an `exit` frame carries: the exit code, or minus the signal number, so the
/// client can name the signal as the main log does (`common::proto::attach::EXIT`).
pub fn exit_code(status: ExitStatus) -> i32 {
    match status {
        ExitStatus::Code(c) => c,
        ExitStatus::Signal(s) => -s,
    }
}

impl Supervisor {
    /// Handles `attach`: one running process; args `rows`, `cols` (the client's window).
    pub(crate) fn attach(&mut self, client: u32, req: &Request, targets: &[Target]) {
        let id = req.id;
        let [(slot, _)] = targets else {
            // `fg ticker`: name the processes to choose from.
            let names: Vec<&str> =
                targets.iter().filter_map(|(s, _)| self.registry.get(*s)).map(|p| p.name.as_str()).collect();
            let has = if names.is_empty() { "no process".to_owned() } else { names.join(", ") };
            let msg = format!("fg needs one process: {} has {has}", req.names.join(" "));
            return self.reply(client, &Reply::err(id, kind::BAD_REQUEST, msg));
        };
        let slot = *slot;
        let Some(p) = self.registry.get(slot) else { return };
        if p.spawn_id.is_none() || !p.m.state.may_have_process() {
            let msg = format!("{}: ERROR (not running)", p.name);
            return self.reply(client, &Reply::err(id, kind::FAILED, msg));
        }
        let name = p.name.clone();
        let is_pty = p.pty.is_some();
        // Pty::resize clamps to MAX_WINDOW; a value past u16 is clamped first, never wrapped.
        let side = |k: &str| {
            req.args.get(k).and_then(serde_json::Value::as_u64).map_or(0, |v| v.min(u64::from(MAX_WINDOW)) as u16)
        };
        let (rows, cols) = (side("rows"), side("cols"));
        self.reply(client, &Reply::ok(id, json!({ "name": name, "pty": is_pty })));
        if let Some(c) = self.clients.get_mut(&client) {
            c.attached = Some(slot);
        }
        self.log.info(&format!("client {client} attached to '{name}'"));
        let Some(p) = self.registry.procs.get_mut(&slot) else { return };
        if let Some(pty) = &mut p.pty {
            if rows > 0 && cols > 0 {
                if let Err(e) = pty.resize(rows, cols) {
                    let msg = format!("'{name}': cannot set the window size: {e}");
                    self.log.warn(&msg);
                }
            }
            let redraw = pty.redraw();
            self.send_frame_data(client, &redraw);
        }
        // Input the client sent right behind its request.
        self.on_attached_input(client);
    }

    /// Reads the frames an attached client sent.
    pub(crate) fn on_attached_input(&mut self, client: u32) {
        loop {
            let Some(c) = self.clients.get_mut(&client) else { return };
            let Some(slot) = c.attached else { return };
            let frame = match take_frame(&mut c.inbuf) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => {
                    self.log.warn(&format!("client {client}: {e}; dropping it"));
                    return self.drop_client(client);
                }
            };
            match frame {
                Frame::Data(bytes) => self.write_input(slot, &bytes),
                Frame::Resize { rows, cols } => {
                    if let Some(pty) = self.registry.procs.get_mut(&slot).and_then(|p| p.pty.as_mut()) {
                        let _ = pty.resize(rows, cols);
                    }
                }
                Frame::Detach => {
                    let name = self.registry.get(slot).map(|p| p.name.clone()).unwrap_or_default();
                    self.log.info(&format!("client {client} detached from '{name}'"));
                    self.flush(client);
                    return self.drop_client(client);
                }
                Frame::Exit(_) => {
                    self.log.warn(&format!("client {client} sent an exit frame; dropping it"));
                    return self.drop_client(client);
                }
            }
        }
    }

    /// Keystrokes for the program: to the PTY master, or the stdin pipe. A full terminal or pipe
    /// drops the excess (logged), so the loop never blocks.
    fn write_input(&mut self, slot: usize, bytes: &[u8]) {
        let Some(p) = self.registry.procs.get_mut(&slot) else { return };
        let result = match (&p.pty, &p.stdin) {
            (Some(pty), _) => (&pty.master).write(bytes),
            (None, Some(stdin)) => (&*stdin).write(bytes),
            (None, None) => Ok(bytes.len()),
        };
        let why = match result {
            Ok(n) if n == bytes.len() => return,
            Ok(n) => format!("is not reading its input: {} bytes dropped", bytes.len() - n),
            Err(e) => format!("input not delivered: {e}"),
        };
        // One line per process per interval: a client typing into a program that does not read
        // must not flood the main log.
        let name = p.name.clone();
        if let Some(left_out) = self.input_log.allow(slot as u64, std::time::Instant::now()) {
            let more = if left_out > 0 { format!(" ({left_out} more not logged)") } else { String::new() };
            self.log.warn(&format!("'{name}' {why}{more}"));
        }
    }

    fn send_frame_data(&mut self, client: u32, bytes: &[u8]) {
        for chunk in bytes.chunks(common::proto::attach::MAX_PAYLOAD) {
            let mut frame = Vec::with_capacity(chunk.len() + 5);
            Frame::encode_data(chunk, &mut frame);
            self.send_bytes(client, frame);
        }
    }

    /// Sends program output to the clients attached to `slot`. A client more than
    /// [`LAG_BYTES`] behind gets nothing more until it has caught up, then a redraw.
    pub(crate) fn feed_attached(&mut self, slot: usize, n: usize) {
        let mut clients = Vec::new();
        for (id, c) in self.clients.iter_mut().filter(|(_, c)| c.attached == Some(slot)) {
            if c.behind || c.pending() > LAG_BYTES {
                c.behind = true;
            } else {
                clients.push(*id);
            }
        }
        if clients.is_empty() {
            return;
        }
        let data = self.buf_slice(n).to_vec();
        for c in clients {
            self.send_frame_data(c, &data);
        }
    }

    /// A lagging client has caught up: redraw its screen from the model (PTY), or say that it
    /// missed output (pipe).
    pub(crate) fn resync_attached(&mut self, client: u32) {
        let Some(c) = self.clients.get_mut(&client) else { return };
        c.behind = false;
        let Some(slot) = c.attached else { return };
        let catch_up = match self.registry.procs.get_mut(&slot).and_then(|p| p.pty.as_mut()) {
            Some(pty) => pty.redraw(),
            None => b"\r\n[taskmaster: output skipped while this terminal was behind]\r\n".to_vec(),
        };
        self.send_frame_data(client, &catch_up);
    }

    /// Ends every attach to `slot` with an `exit` frame.
    pub(crate) fn end_attached(&mut self, slot: usize, status: i32) {
        let clients: Vec<u32> =
            self.clients.iter().filter(|(_, c)| c.attached == Some(slot)).map(|(id, _)| *id).collect();
        for c in clients {
            self.send_bytes(c, Frame::Exit(status).encode());
            self.flush(c);
            self.drop_client(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pty() -> Pty {
        Pty::new(tempfile::tempfile().unwrap(), (24, 80))
    }

    #[test]
    fn a_huge_window_is_clamped_and_the_model_stays_small() {
        let real = nix::pty::openpty(None, None).unwrap();
        let mut p = Pty::new(std::fs::File::from(real.master), (24, 80));
        p.record(b"hello");
        p.resize(65535, 65535).unwrap();
        assert_eq!(p.size, (MAX_WINDOW, MAX_WINDOW));
        let screen = p.screen.as_ref().unwrap().screen();
        assert_eq!((screen.size().0.get(), screen.size().1.get()), (MAX_WINDOW, MAX_WINDOW));
        p.resize(0, 80).unwrap();
        assert_eq!(p.size, (MAX_WINDOW, MAX_WINDOW), "a zero side changes nothing");
    }

    #[test]
    fn a_text_flood_leaves_the_same_screen_as_parsing_every_byte() {
        let flood: Vec<u8> = (0..200_000).flat_map(|i| format!("line {i} of the flood\r\n").into_bytes()).collect();
        let mut fast = pty();
        for chunk in flood.chunks(4096) {
            fast.record(chunk);
        }
        let mut exact = vt100::Parser::new(NonZeroU16::new(24).unwrap(), NonZeroU16::new(80).unwrap(), 0);
        exact.process(&flood);
        fast.catch_up();
        assert_eq!(fast.screen.as_ref().unwrap().screen().contents(), exact.screen().contents());
        assert_eq!(fast.screen.as_ref().unwrap().screen().cursor_position(), exact.screen().cursor_position());
    }

    #[test]
    fn output_with_escapes_is_parsed_in_full() {
        let mut p = pty();
        let mut out = b"\x1b[?1049h\x1b[31m".to_vec();
        out.extend(std::iter::repeat_n(b'x', MODEL_BACKLOG));
        p.record(&out);
        let screen = p.screen.as_ref().unwrap().screen();
        assert!(screen.alternate_screen());
        assert_eq!(screen.cell(0, 0).unwrap().fgcolor(), vt100::Color::Idx(1));
    }
}
