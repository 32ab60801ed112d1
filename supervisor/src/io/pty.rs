//! A PTY program's side of `fg` (DESIGN §6, §7): the master for keystrokes and window sizes,
//! and a terminal model (vt100) of its output, from which an attaching client's screen is
//! redrawn, as tmux does. The relay itself is the control session's (`control/server.rs`).

use common::proto::spawn::ExitStatus;
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
