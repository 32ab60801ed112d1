//! The last line a child wrote on its error stream, cleaned for `status` (issue 14 item 5).

/// Characters of a line shown in `status` at most ([`LastLine`]).
pub const LAST_LINE_CHARS: usize = 200;

/// Bytes of one line kept while it is written; the rest of a longer line is ignored.
const LINE_BYTES: usize = 1024;

/// The last line with text that one child wrote on a stream: one line, control characters and
/// terminal escape sequences removed, at most [`LAST_LINE_CHARS`] characters. Bounded (about
/// 1 KiB) whatever the child writes, and nothing is allocated until it writes.
#[derive(Debug, Default)]
pub struct LastLine {
    /// The last complete line that had text, cleaned.
    line: String,
    /// The start of the line being written, raw.
    partial: Vec<u8>,
}

impl LastLine {
    /// Takes the next bytes of the stream. A line ends at `\n` or `\r` (a PTY ends lines with
    /// both; a progress bar returns with `\r`).
    pub fn feed(&mut self, bytes: &[u8]) {
        let is_end = |b: &u8| matches!(b, b'\n' | b'\r');
        let (Some(first_end), Some(last_end)) = (bytes.iter().position(is_end), bytes.iter().rposition(is_end)) else {
            return self.keep_partial(bytes);
        };
        // The lines this chunk completes, newest first; the oldest continues `partial`.
        let newest = if first_end < last_end {
            bytes[first_end + 1..last_end].rsplit(is_end).map(clean_line).find(|l| !l.is_empty())
        } else {
            None
        };
        let newest = newest.or_else(|| {
            self.keep_partial(&bytes[..first_end]);
            Some(clean_line(&self.partial)).filter(|l| !l.is_empty())
        });
        if let Some(line) = newest {
            self.line = line;
        }
        self.partial.clear();
        self.keep_partial(&bytes[last_end + 1..]);
    }

    fn keep_partial(&mut self, bytes: &[u8]) {
        let room = LINE_BYTES.saturating_sub(self.partial.len());
        self.partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The last line with text (an unfinished one included), if any.
    pub fn text(&self) -> Option<String> {
        Some(clean_line(&self.partial))
            .filter(|l| !l.is_empty())
            .or_else(|| Some(self.line.clone()).filter(|l| !l.is_empty()))
    }
}

/// `raw` as one line of plain text: escape sequences (CSI, OSC and the other strings, two-byte
/// escapes) and control characters removed, tabs as spaces, trimmed, cut to
/// [`LAST_LINE_CHARS`] characters (the last one `…` when cut).
pub fn clean_line(raw: &[u8]) -> String {
    let raw = &raw[..raw.len().min(LINE_BYTES)];
    let mut plain = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], raw.get(i + 1)) {
            (0x1b, Some(b'[')) => {
                // CSI: parameters and intermediates, up to a final byte 0x40..=0x7e.
                i += 2;
                while i < raw.len() && !(0x40..=0x7e).contains(&raw[i]) {
                    i += 1;
                }
                i += 1;
            }
            (0x1b, Some(b']' | b'P' | b'_' | b'^' | b'X')) => {
                // A string, ended by BEL or ST (ESC \\).
                i += 2;
                while i < raw.len() && raw[i] != 0x07 && !(raw[i] == 0x1b && raw.get(i + 1) == Some(&b'\\')) {
                    i += 1;
                }
                i += if raw.get(i) == Some(&0x1b) { 2 } else { 1 };
            }
            (0x1b, _) => i += 2,
            (b'\t', _) => {
                plain.push(b' ');
                i += 1;
            }
            (b, _) => {
                plain.push(b);
                i += 1;
            }
        }
    }
    let text: String = String::from_utf8_lossy(&plain).chars().filter(|c| !c.is_control()).collect();
    let text = text.trim();
    if text.chars().count() <= LAST_LINE_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(LAST_LINE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(chunks: &[&[u8]]) -> Option<String> {
        let mut l = LastLine::default();
        for c in chunks {
            l.feed(c);
        }
        l.text()
    }

    #[test]
    fn the_last_line_with_text_is_kept_across_chunks() {
        assert_eq!(last(&[]), None);
        assert_eq!(last(&[b"\n\n", b"  \n"]), None);
        assert_eq!(last(&[b"one\ntwo\n"]).as_deref(), Some("two"));
        assert_eq!(last(&[b"one\ntwo\n\n  \n"]).as_deref(), Some("two"), "blank lines do not count");
        assert_eq!(last(&[b"nginx: [em", b"erg] bind() failed\n"]).as_deref(), Some("nginx: [emerg] bind() failed"));
        assert_eq!(last(&[b"first\n", b"unfinished"]).as_deref(), Some("unfinished"), "a line cut by the exit counts");
        assert_eq!(last(&[b"a\n", b"b\r\n", b"\r\n"]).as_deref(), Some("b"));
        assert_eq!(last(&[b"10%\r50%\r100%\r"]).as_deref(), Some("100%"));
        assert_eq!(last(&[b"done\n", b"x", b"\n"]).as_deref(), Some("x"));
        assert_eq!(last(&[b"done\n\x1b[?1049l\x1b[?25h\r\n"]).as_deref(), Some("done"), "escapes alone are no text");
    }

    #[test]
    fn a_line_is_cleaned_and_bounded() {
        assert_eq!(
            clean_line(b"\x1b[1;31merror:\x1b[0m\tbad\x07 \x1b]0;title\x07thing\x1b]52;c;eA==\x1b\\!"),
            "error: bad thing!"
        );
        assert_eq!(clean_line("caf\u{e9} \u{9b}31m".as_bytes()), "caf\u{e9} 31m", "C1 controls go too");
        let long = "x".repeat(5000);
        let cut = clean_line(long.as_bytes());
        assert_eq!(cut.chars().count(), LAST_LINE_CHARS);
        assert!(cut.ends_with('…'));
        let mut l = LastLine::default();
        for _ in 0..100 {
            l.feed(&[b'y'; 4096]);
        }
        assert!(l.partial.len() <= LINE_BYTES, "an endless line stays bounded");
        assert_eq!(l.text().unwrap().chars().count(), LAST_LINE_CHARS);
    }
}
