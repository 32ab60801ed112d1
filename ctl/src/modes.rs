//! The terminal modes a program under `fg` turns on, and the bytes that turn them off again
//! (DESIGN §7): like tmux, `fg` hands the terminal back as it found it, whether the session ends
//! by a detach, the program's exit, the daemon going away or a signal to taskmasterctl.
//!
//! **Where the modes are learnt.** The ctl tracks them from the very bytes it writes to its
//! terminal, rather than asking the supervisor's terminal model: only the ctl knows what reached
//! its terminal (the sanitizer removed some sequences; a lagging client skipped output and got a
//! redraw); it must restore when the daemon is gone or while it is being terminated, with no one
//! to ask; and the model (vt100) knows neither focus events, origin mode, autowrap, the scroll
//! region, charsets nor the keyboard protocols. No second parser: [`crate::sanitize::Sanitizer`]
//! already reads every sequence, and hands each one it lets through to [`Modes`], which records
//! it and writes it (or, for the alternate screen, what replaces it).
//!
//! **What is tracked**, each as the last value the program set (a mode set then reset is left
//! alone; one the program never touched keeps the operator's setting):
//! - DEC private modes whose default is known ([`DEC_MODES`]): cursor keys (`?1`), 132 columns
//!   (`?3`), reverse video (`?5`), origin (`?6`), autowrap (`?7`), autorepeat (`?8`), mouse
//!   reporting (`?9`, `?1000`–`?1003`) and its encodings (`?1005`, `?1006`, `?1015`, `?1016`),
//!   focus events (`?1004`), cursor visibility (`?25`), reverse wraparound (`?45`), numeric keypad
//!   (`?66`), left/right margins (`?69`), bracketed paste (`?2004`), synchronized output
//!   (`?2026`), theme and resize reports (`?2031`, `?2048`); XTRESTORE (`CSI ? Pm r`) may set any
//!   of them to a value we cannot see, so it marks them to be reset;
//! - ANSI modes: keyboard lock (`2`), insert (`4`), newline (`20`);
//! - the application keypad (`ESC =` / `ESC >`), SGR attributes, the scroll region (DECSTBM), the
//!   cursor style (DECSCUSR), the G0 charset and the locking shifts (SO, LS2, LS3), `ESC % @`
//!   (leaving UTF-8), xterm's modifyOtherKeys family (`CSI > Pp ; Pv m`) and the kitty keyboard
//!   protocol (`CSI > u` pushes, `CSI < u` pops, `CSI = u` sets). A cursor restore (DECRC,
//!   SCORC, `?1048l`) brings back attributes, origin mode and charsets saved earlier: they are
//!   then reset whatever they were.
//!
//! [`Modes::restore`] writes the reset of each, and RIS (`ESC c`) from the program becomes the
//! same reset and a clear (a real RIS would also leave the alternate screen).
//!
//! **The alternate screen.** When the ctl owns it (`fg` on a PTY program, stdout a terminal:
//! the client switches to it at attach and leaves it at the end), the program's own switches
//! (`?47`, `?1047`, `?1049`) must not take the operator's terminal back to its main screen while
//! attached, where the program would draw over the shell's screen. Each is replaced by what it
//! does to the screen the program sees: a clear, with `?1049` also saving (`h`) or restoring
//! (`l`) the cursor. The program's main-screen contents are not kept, so after a full-screen
//! program returns to its main screen (vim quitting to a shell) the screen is blank until the
//! program draws again. // differs from tmux, which redraws it from its own model.
//! Without a PTY the ctl keeps the main screen, and the switches pass and are tracked like any
//! mode.

use std::collections::BTreeMap;

/// The DEC private modes tracked, each with its usual power-on value (`true`: set).
pub const DEC_MODES: &[(u16, bool)] = &[
    (1, false),    // DECCKM: application cursor keys
    (3, false),    // DECCOLM: 132 columns
    (5, false),    // DECSCNM: reverse video
    (6, false),    // DECOM: origin mode
    (7, true),     // DECAWM: autowrap
    (8, true),     // DECARM: autorepeat
    (9, false),    // X10 mouse reporting
    (25, true),    // DECTCEM: cursor visible
    (45, false),   // reverse wraparound
    (47, false),   // alternate screen (when the ctl does not own it)
    (66, false),   // DECNKM: application keypad
    (69, false),   // DECLRMM: left and right margins
    (1000, false), // mouse: press and release
    (1001, false), // mouse: highlight tracking
    (1002, false), // mouse: button motion
    (1003, false), // mouse: any motion
    (1004, false), // focus in and out events
    (1005, false), // mouse encoding: UTF-8
    (1006, false), // mouse encoding: SGR
    (1015, false), // mouse encoding: urxvt
    (1016, false), // mouse encoding: SGR pixels
    (1047, false), // alternate screen (when the ctl does not own it)
    (1049, false), // alternate screen with saved cursor (when the ctl does not own it)
    (2004, false), // bracketed paste
    (2026, false), // synchronized output: a terminal left in it stops showing anything
    (2031, false), // colour theme change reports
    (2048, false), // in-band window resize reports
];

/// The ANSI modes tracked (`CSI Pm h/l`), all reset at power-on: KAM, IRM, LNM.
const ANSI_MODES: &[u16] = &[2, 4, 20];

/// The alternate screen modes, replaced when the ctl owns the alternate screen.
const ALT_SCREEN: &[u16] = &[47, 1047, 1049];

/// The most kitty keyboard pushes counted (the protocol's stack is smaller than this anyway).
const MAX_KITTY_PUSHES: u16 = 1024;

/// Modes a program turned on; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct Modes {
    /// The ctl switched its terminal to the alternate screen: the program's switches are replaced.
    own_alternate_screen: bool,
    /// DEC private modes: the last value set, for those of [`DEC_MODES`] the program touched.
    dec: BTreeMap<u16, bool>,
    /// ANSI modes: the last value set.
    ansi: BTreeMap<u16, bool>,
    /// Application keypad (`ESC =`).
    keypad: bool,
    /// SGR attributes other than a plain reset were set.
    sgr: bool,
    /// A scroll region (DECSTBM with parameters) was set.
    region: bool,
    /// A cursor style other than the default was set.
    cursor_style: bool,
    /// G0 designated to something other than ASCII.
    g0: bool,
    /// GL is not G0 (SO, LS2 or LS3).
    shifted: bool,
    /// `ESC % @` left UTF-8.
    not_utf8: bool,
    /// xterm key modifier resources (`CSI > Pp ; Pv m`) set, by resource number.
    modify_keys: BTreeMap<u16, ()>,
    /// Kitty keyboard flags pushed and not popped.
    kitty_pushes: u16,
    /// Kitty keyboard flags set (`CSI = … u`) with nothing of ours pushed.
    kitty_set: bool,
}

/// The numeric parameters of a CSI sequence's body (private marker and intermediates removed):
/// `None` for an empty one; the first of colon-separated sub-parameters.
fn params(body: &[u8]) -> Vec<Option<u16>> {
    let digits: Vec<u8> = body.iter().copied().filter(|b| (0x30..=0x3b).contains(b)).collect();
    if digits.is_empty() {
        return Vec::new();
    }
    digits
        .split(|b| *b == b';')
        .map(|p| {
            let first = p.split(|b| *b == b':').next().unwrap_or_default();
            std::str::from_utf8(first).ok().filter(|s| !s.is_empty()).map(|s| s.parse().unwrap_or(u16::MAX))
        })
        .collect()
}

impl Modes {
    /// Nothing turned on yet. `own_alternate_screen`: the ctl put its terminal on the alternate
    /// screen, so the program's switches are replaced (see the module docs).
    pub fn new(own_alternate_screen: bool) -> Self {
        Modes { own_alternate_screen, ..Modes::default() }
    }

    /// A C0 control that passed: SO and SI change the charset in use.
    pub fn control(&mut self, b: u8) {
        match b {
            0x0e => self.shifted = true,
            0x0f => self.shifted = false,
            _ => {}
        }
    }

    /// An escape sequence that passed: `seq` is ESC and its intermediates, `last` its final
    /// byte. Writes it, or what replaces it, to `out`.
    pub fn escape(&mut self, seq: &[u8], last: u8, out: &mut Vec<u8>) {
        match (&seq[1..], last) {
            ([], b'=') => self.keypad = true,
            ([], b'>') => self.keypad = false,
            ([], b'n' | b'o') => self.shifted = true,
            ([], b'8') => self.restored_cursor(),
            ([], b'c') => {
                // RIS: everything back to its default. The ctl's own reset does the same, and
                // keeps the alternate screen when the ctl owns it.
                let own = self.own_alternate_screen;
                out.extend_from_slice(&self.restore());
                *self = Modes::new(own);
                if own {
                    out.extend_from_slice(b"\x1b[H\x1b[2J");
                    return;
                }
            }
            ([b'('], f) => self.g0 = f != b'B',
            ([b'%'], b'@') => self.not_utf8 = true,
            ([b'%'], b'G') => self.not_utf8 = false,
            _ => {}
        }
        out.extend_from_slice(seq);
        out.push(last);
    }

    /// A CSI sequence that passed: `seq` is `ESC [` and its parameter and intermediate bytes,
    /// `last` its final byte. Writes it, or what replaces it, to `out`.
    pub fn csi(&mut self, seq: &[u8], last: u8, out: &mut Vec<u8>) {
        let body = &seq[2..];
        let private = body.first().copied().filter(|p| (0x3c..=0x3f).contains(p));
        let intermediates: Vec<u8> = body.iter().copied().filter(|b| (0x20..=0x2f).contains(b)).collect();
        let ps = params(body);
        match (private, intermediates.as_slice(), last) {
            (Some(b'?'), [], b'h' | b'l') => return self.dec_modes(&ps, last == b'h', seq, out),
            (Some(b'?'), [], b'r') => {
                // XTRESTORE: the saved values are unknown to us; reset them all at the end.
                for &(mode, default) in DEC_MODES {
                    if ps.is_empty() || ps.contains(&Some(mode)) {
                        self.dec.insert(mode, !default);
                    }
                }
            }
            (None, [], b'h' | b'l') => {
                for p in ps.iter().flatten().filter(|p| ANSI_MODES.contains(p)) {
                    self.ansi.insert(*p, last == b'h');
                }
            }
            (None, [], b'm') => self.sgr = !ps.iter().all(|p| matches!(p, None | Some(0))),
            (None, [], b'r') => self.region = !ps.iter().all(Option::is_none),
            (None, [], b'u') => self.restored_cursor(), // SCORC
            (None, [b' '], b'q') => self.cursor_style = !ps.iter().all(|p| matches!(p, None | Some(0))),
            (Some(b'>'), [], b'm') => match ps.as_slice() {
                [] => self.modify_keys.clear(),
                [Some(resource)] | [Some(resource), None] => {
                    self.modify_keys.remove(resource);
                }
                [resource, ..] => {
                    self.modify_keys.insert(resource.unwrap_or(0), ());
                }
            },
            (Some(b'>'), [], b'u') => self.kitty_pushes = (self.kitty_pushes + 1).min(MAX_KITTY_PUSHES),
            (Some(b'<'), [], b'u') => {
                let n = ps.first().copied().flatten().unwrap_or(1).max(1);
                self.kitty_pushes = self.kitty_pushes.saturating_sub(n);
            }
            (Some(b'='), [], b'u') if self.kitty_pushes == 0 => self.kitty_set = true,
            _ => {}
        }
        out.extend_from_slice(seq);
        out.push(last);
    }

    /// `CSI ? Pm h` (`set`) or `l`: records each mode; replaces the alternate screen switches
    /// when the ctl owns the alternate screen, writing the others one by one.
    fn dec_modes(&mut self, ps: &[Option<u16>], set: bool, seq: &[u8], out: &mut Vec<u8>) {
        for p in ps.iter().flatten() {
            if *p == 1048 && !set {
                self.restored_cursor();
            }
            if DEC_MODES.iter().any(|(m, _)| m == p) && !(self.own_alternate_screen && ALT_SCREEN.contains(p)) {
                self.dec.insert(*p, set);
            }
        }
        let replaced = |p: &Option<u16>| p.is_some_and(|p| ALT_SCREEN.contains(&p));
        if !self.own_alternate_screen || !ps.iter().any(replaced) {
            out.extend_from_slice(seq);
            out.push(if set { b'h' } else { b'l' });
            return;
        }
        for p in ps.iter().flatten() {
            match (*p, set) {
                (1049, true) => out.extend_from_slice(b"\x1b7\x1b[2J"),
                (1049, false) => {
                    out.extend_from_slice(b"\x1b[2J\x1b8");
                    self.restored_cursor();
                }
                (47 | 1047, _) => out.extend_from_slice(b"\x1b[2J"),
                (other, _) => out.extend_from_slice(format!("\x1b[?{other}{}", if set { 'h' } else { 'l' }).as_bytes()),
            }
        }
    }

    /// A cursor restore brings back saved attributes, origin mode and charsets we did not track
    /// at the time: reset them at the end, whatever they are.
    fn restored_cursor(&mut self) {
        self.sgr = true;
        self.g0 = true;
        self.shifted = true;
        self.dec.insert(6, true);
    }

    /// Whether the program set SGR attributes (colours, bold …) that are not reset.
    pub fn attributes_set(&self) -> bool {
        self.sgr
    }

    /// The bytes that turn off every mode the program turned on (and back on those it turned
    /// off, as autowrap and the cursor), leaving the alternate screen to the caller. Without the
    /// alternate screen, resetting origin mode or the scroll region homes the cursor: it is then
    /// moved to the bottom line, so what is printed next starts on a line of its own.
    pub fn restore(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.kitty_pushes > 0 {
            out.extend_from_slice(format!("\x1b[<{}u", self.kitty_pushes).as_bytes());
        }
        if self.kitty_set {
            out.extend_from_slice(b"\x1b[=0;1u");
        }
        for resource in self.modify_keys.keys() {
            out.extend_from_slice(format!("\x1b[>{resource}m").as_bytes());
        }
        for (mode, default) in DEC_MODES {
            if self.dec.get(mode).is_some_and(|v| v != default) {
                out.extend_from_slice(format!("\x1b[?{mode}{}", if *default { 'h' } else { 'l' }).as_bytes());
            }
        }
        for (mode, _) in self.ansi.iter().filter(|(_, on)| **on) {
            out.extend_from_slice(format!("\x1b[{mode}l").as_bytes());
        }
        if self.keypad {
            out.extend_from_slice(b"\x1b>");
        }
        if self.cursor_style {
            out.extend_from_slice(b"\x1b[0 q");
        }
        if self.sgr {
            out.extend_from_slice(b"\x1b[m");
        }
        if self.region {
            out.extend_from_slice(b"\x1b[r");
        }
        if self.not_utf8 {
            out.extend_from_slice(b"\x1b%G");
        }
        if self.g0 {
            out.extend_from_slice(b"\x1b(B");
        }
        if self.shifted {
            out.push(0x0f);
        }
        let homed = self.region || [3, 6].iter().any(|m| self.dec.get(m) == Some(&true));
        if homed && !self.own_alternate_screen {
            out.extend_from_slice(b"\x1b[9999;1H");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sanitize::Sanitizer;

    /// What the terminal receives for `input`, and what restores it.
    fn run(own_alt: bool, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut s = Sanitizer::with_modes(Modes::new(own_alt));
        let out = s.filter(input);
        (out, s.modes().map(Modes::restore).unwrap_or_default())
    }

    #[test]
    fn every_mode_turned_on_is_turned_off_and_nothing_else() {
        let (out, restore) = run(
            true,
            b"\x1b[?1000h\x1b[?1002;1006h\x1b[?1004h\x1b[?1h\x1b=\x1b[?2004h\x1b[?25l\x1b[?7l\x1b[5;20r\x1b[1;31mx",
        );
        assert_eq!(
            out,
            b"\x1b[?1000h\x1b[?1002;1006h\x1b[?1004h\x1b[?1h\x1b=\x1b[?2004h\x1b[?25l\x1b[?7l\x1b[5;20r\x1b[1;31mx"
        );
        assert_eq!(
            String::from_utf8(restore).unwrap(),
            "\x1b[?1l\x1b[?7h\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1004l\x1b[?1006l\x1b[?2004l\x1b>\x1b[m\x1b[r"
        );
    }

    #[test]
    fn a_mode_set_back_by_the_program_is_left_alone() {
        let (_, restore) =
            run(true, b"\x1b[?1000h\x1b[?25l\x1b=\x1b[1m\x1b[?1000l\x1b[?25h\x1b>\x1b[0m\x1b[?7l\x1b[?7h");
        assert!(restore.is_empty(), "{:?}", String::from_utf8_lossy(&restore));
        assert!(Modes::new(true).restore().is_empty());
    }

    #[test]
    fn the_programs_alternate_screen_switches_are_replaced_when_the_ctl_owns_it() {
        let (out, restore) = run(true, b"\x1b[?1049hvim\x1b[?1049l\x1b[?1;1049;2004hX\x1b[?47h");
        assert_eq!(out, b"\x1b7\x1b[2Jvim\x1b[2J\x1b8\x1b[?1h\x1b7\x1b[2J\x1b[?2004hX\x1b[2J");
        assert!(!String::from_utf8_lossy(&restore).contains("1049"));
        // Without a PTY the ctl stays on the main screen: the switches pass and are undone.
        let (out, restore) = run(false, b"\x1b[?1049h");
        assert_eq!(out, b"\x1b[?1049h");
        assert_eq!(restore, b"\x1b[?1049l");
    }

    #[test]
    fn a_sequence_split_between_reads_is_tracked_once_whole() {
        let mut s = Sanitizer::with_modes(Modes::new(true));
        let mut out = s.filter(b"\x1b[?10");
        out.extend(s.filter(b"00h\x1b"));
        out.extend(s.filter(b"="));
        assert_eq!(out, b"\x1b[?1000h\x1b=");
        assert_eq!(s.modes().unwrap().restore(), b"\x1b[?1000l\x1b>");
    }

    #[test]
    fn charsets_keyboards_cursor_style_and_restores_are_reset() {
        let (_, restore) = run(true, b"\x1b(0\x0e\x1b[>4;2m\x1b[>1u\x1b[>1u\x1b[<u\x1b[5 q\x1b[4h");
        assert_eq!(String::from_utf8(restore).unwrap(), "\x1b[<1u\x1b[>4m\x1b[4l\x1b[0 q\x1b(B\x0f");
        // DECRC brings back what was saved, unseen: attributes, origin mode and charsets reset.
        let (_, restore) = run(true, b"\x1b8");
        assert_eq!(String::from_utf8(restore).unwrap(), "\x1b[?6l\x1b[m\x1b(B\x0f");
        // XTRESTORE of a mode: reset whatever it restored.
        let (_, restore) = run(true, b"\x1b[?1000r");
        assert_eq!(restore, b"\x1b[?1000l");
    }

    #[test]
    fn ris_resets_in_place_and_keeps_the_alternate_screen() {
        let (out, restore) = run(true, b"\x1b[?1000h\x1bc");
        assert_eq!(out, b"\x1b[?1000h\x1b[?1000l\x1b[H\x1b[2J");
        assert!(restore.is_empty());
        let (out, _) = run(false, b"\x1b[?25l\x1bc");
        assert_eq!(out, b"\x1b[?25l\x1b[?25h\x1bc");
    }

    #[test]
    fn without_the_alternate_screen_a_homing_reset_moves_to_the_bottom_line() {
        let (_, restore) = run(false, b"\x1b[3;9r");
        assert_eq!(restore, b"\x1b[r\x1b[9999;1H");
    }
}
