//! The processes the supervisor knows, their machines, spawn ids and log files, and the last
//! line each one's child wrote on its error stream.

use crate::core::state::{Machine, ProcessState};
use crate::io::logs::ChildLog;
use common::config::{Program, Stream};
use common::names::Selector;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

/// One process (an instance of a program).
pub struct Proc {
    /// Its program's config.
    pub program: Rc<Program>,
    /// Instance number.
    pub instance: u32,
    /// `web:0` or `web`.
    pub name: String,
    /// The state machine.
    pub m: Machine,
    /// The live child's spawn id.
    pub spawn_id: Option<u64>,
    /// Write end of the live child's stdin (non-blocking).
    pub stdin: Option<std::fs::File>,
    /// The PTY of a live `pty: true` child.
    pub pty: Option<crate::attach::Pty>,
    /// The exit status to send attached clients once the last output is read.
    pub pending_exit: Option<i32>,
    /// stdout and stderr logs.
    pub logs: [ChildLog; 2],
    /// When the state last changed (wall clock, for `status`).
    pub changed_at: SystemTime,
    /// The last line of the live (or last) child's error stream.
    pub err_line: LastLine,
}

impl Proc {
    /// Notes output the child wrote on `stream`: the error stream's lines are kept for
    /// [`Proc::quick_exit_description`]. That is stderr, or stdout when it carries stderr too
    /// (`redirect_stderr`, or a PTY, whose one stream is logged as stdout).
    pub fn note_output(&mut self, stream: Stream, bytes: &[u8]) {
        if stream == Stream::Stderr || self.program.redirect_stderr || self.program.pty {
            self.err_line.feed(bytes);
        }
    }

    /// What `status` says of a process that exited too quickly (BACKOFF, FATAL) with no spawn
    /// error: supervisord's words, with the last line its child wrote on its error stream when
    /// there is one (`Exited too quickly: nginx: [emerg] bind() to 0.0.0.0:80 failed (98:
    /// Address already in use)`).
    pub fn quick_exit_description(&self) -> String {
        // differs from supervisord: it only points at the log.
        match self.err_line.text() {
            Some(line) => format!("Exited too quickly: {line}"),
            None => "Exited too quickly (process log may have details)".to_owned(),
        }
    }
}

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

/// Every process and the programs they belong to.
#[derive(Default)]
pub struct Registry {
    /// The processes by slot; a slot is never reused, so a stale reference finds nothing.
    pub procs: BTreeMap<usize, Proc>,
    /// The current config of each program.
    pub programs: BTreeMap<String, Rc<Program>>,
    next_slot: usize,
    childlogdir: PathBuf,
    by_spawn: HashMap<u64, usize>,
    by_token: HashMap<u64, usize>,
    next_token: u64,
}

/// A selected process and whether it was named on its own (`web:1`), where a refusal is an
/// error rather than a skip (DESIGN §7).
pub type Target = (usize, bool);

impl Registry {
    /// A registry of every instance of `programs`, all STOPPED.
    pub fn new(programs: Vec<Program>, childlogdir: &Path) -> Self {
        let mut r = Registry { childlogdir: childlogdir.to_path_buf(), ..Registry::default() };
        for p in programs {
            r.add_program(p);
        }
        r
    }

    /// Adds a program and its instances (STOPPED); returns their slots.
    pub fn add_program(&mut self, p: Program) -> Vec<usize> {
        let p = Rc::new(p);
        self.programs.insert(p.name.clone(), Rc::clone(&p));
        p.instances().map(|i| self.add_instance(&p, i)).collect()
    }

    /// Adds one STOPPED instance of `p`; returns its slot.
    pub fn add_instance(&mut self, p: &Rc<Program>, instance: u32) -> usize {
        let slot = self.next_slot;
        self.next_slot += 1;
        let proc = Proc {
            name: p.process_name(instance).to_string(),
            program: Rc::clone(p),
            instance,
            m: Machine::default(),
            spawn_id: None,
            stdin: None,
            pty: None,
            pending_exit: None,
            logs: [ChildLog::default(), ChildLog::default()],
            changed_at: SystemTime::now(),
            err_line: LastLine::default(),
        };
        self.procs.insert(slot, proc);
        self.set_program(slot, Rc::clone(p));
        slot
    }

    /// Gives a process a new config (same program name): its name and log paths follow.
    pub fn set_program(&mut self, slot: usize, p: Rc<Program>) {
        let dir = self.childlogdir.clone();
        let Some(proc) = self.procs.get_mut(&slot) else { return };
        proc.name = p.process_name(proc.instance).to_string();
        for (idx, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            let s = p.stream(stream);
            let settings = (p.log_file(stream, proc.instance, &dir), s.maxbytes, s.backups, s.syslog);
            if proc.logs[idx].settings != settings {
                proc.logs[idx] = ChildLog::new(settings);
            }
        }
        proc.program = p;
    }

    /// Removes a process (it must have no live child).
    pub fn forget(&mut self, slot: usize) {
        self.procs.remove(&slot);
        self.by_token.retain(|_, s| *s != slot);
        self.by_spawn.retain(|_, s| *s != slot);
    }

    /// The process in a slot, if it still exists.
    pub fn get(&self, slot: usize) -> Option<&Proc> {
        self.procs.get(&slot)
    }

    /// Every slot in `status` order: program name, then instance.
    pub fn ordered(&self) -> Vec<usize> {
        let mut slots: Vec<usize> = self.procs.keys().copied().collect();
        slots.sort_by(|a, b| {
            let (pa, pb) = (&self.procs[a], &self.procs[b]);
            (&pa.program.name, pa.instance).cmp(&(&pb.program.name, pb.instance))
        });
        slots
    }

    /// The slots of one program, by instance.
    pub fn slots_of(&self, program: &str) -> Vec<usize> {
        self.ordered().into_iter().filter(|s| self.procs[s].program.name == program).collect()
    }

    /// Resolves names (`all`, `web`, `web:*`, `web:1`) to slots, deduplicated, in `status`
    /// order. An empty list selects nothing.
    ///
    /// # Errors
    /// The first name that matches nothing: "no such process: web2".
    pub fn select(&self, names: &[String]) -> Result<Vec<Target>, String> {
        let mut out: Vec<Target> = Vec::new();
        for name in names {
            let sel = Selector::parse(name)?;
            let mut matched = false;
            for slot in self.ordered() {
                let p = &self.procs[&slot];
                let hit = match &sel {
                    Selector::All => Some(false),
                    Selector::Program(prog) if p.program.name == *prog => {
                        Some(p.program.numprocs == 1 && !name.ends_with(":*"))
                    }
                    Selector::Process(prog, n) if p.program.name == *prog && p.instance == *n => Some(true),
                    _ => None,
                };
                if let Some(explicit) = hit {
                    matched = true;
                    match out.iter_mut().find(|(s, _)| *s == slot) {
                        Some(t) => t.1 |= explicit,
                        None => out.push((slot, explicit)),
                    }
                }
            }
            if !matched && sel != Selector::All {
                return Err(format!("no such process: {name}"));
            }
        }
        let order = self.ordered();
        out.sort_by_key(|t| order.iter().position(|s| *s == t.0));
        Ok(out)
    }

    /// A new token for a spawn request of `slot`.
    pub fn token_for(&mut self, slot: usize) -> u64 {
        self.next_token += 1;
        self.by_token.insert(self.next_token, slot);
        self.next_token
    }

    /// The slot a spawn answer is for.
    pub fn take_token(&mut self, token: u64) -> Option<usize> {
        self.by_token.remove(&token)
    }

    /// Records the live child of `slot`; the last line of its error stream starts empty.
    pub fn bind_spawn(&mut self, slot: usize, spawn_id: u64) {
        self.by_spawn.insert(spawn_id, slot);
        if let Some(p) = self.procs.get_mut(&slot) {
            p.spawn_id = Some(spawn_id);
            p.err_line = LastLine::default();
        }
    }

    /// The slot whose child has this spawn id; forgets the id (the child was reaped).
    pub fn take_spawn(&mut self, spawn_id: u64) -> Option<usize> {
        let slot = self.by_spawn.remove(&spawn_id)?;
        let proc = self.procs.get_mut(&slot)?;
        if proc.spawn_id == Some(spawn_id) {
            proc.spawn_id = None;
            proc.stdin = None;
            proc.pty = None;
        }
        Some(slot)
    }

    /// The slot of a live spawn id, without forgetting it.
    pub fn slot_of_spawn(&self, spawn_id: u64) -> Option<usize> {
        self.by_spawn.get(&spawn_id).copied()
    }

    /// Counts by state, for the log.
    pub fn count(&self, state: ProcessState) -> usize {
        self.procs.values().filter(|p| p.m.state == state).count()
    }
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
