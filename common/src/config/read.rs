//! Reading the YAML tree (`yaml.rs`) into the raw structs of `raw.rs`, once, reporting every
//! structural problem at the key it is about (a list element at itself) and going on after
//! each, so that one run reports them all: unknown and repeated keys with a "did you mean" hint,
//! missing required keys, a value of the wrong kind (`programs.web.numprocs: expected a whole
//! number, got "two"`). A key whose value is wrong is left out, so `validate.rs` adds no second
//! error about it. Scalars are read by their text, whatever their quoting (`"2"` is a number
//! where a number is expected); what a text means beyond its kind (a umask, a size, a signal) is
//! parsed in `validate.rs`.

use super::diag::{did_you_mean, plain, Diag, Pos};
use super::raw::*;
use super::yaml::{Node, Value};
use crate::names::check_program_name;

/// What of a file to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything: taskmasterd.
    Daemon,
    /// `socket` and `ctl` only, every other key ignored (DESIGN §7: taskmasterctl neither
    /// validates nor expands `programs`).
    Ctl,
}

/// Whether a parsed document is a config: a mapping whose top-level keys are all config
/// sections. Only then may errors quote its values (`diag.rs`).
pub fn is_config(root: Option<&Node>) -> bool {
    match root.map(|n| &n.value) {
        None | Some(Value::Null) => true,
        Some(Value::Map(entries)) => entries.iter().all(|(k, _)| k.scalar().is_some_and(|k| SECTIONS.contains(&k))),
        Some(_) => false,
    }
}

/// Reads a parsed document (`None`: an empty file) into a [`RawFile`], recording every problem
/// in `diag` and going on after each.
pub fn read(root: Option<&Node>, scope: Scope, diag: &mut Diag) -> RawFile {
    diag.allow_quotes(is_config(root));
    let mut r = Reader { diag };
    let mut raw = RawFile::default();
    let Some(root) = root else { return raw };
    if matches!(root.value, Value::Null) {
        return raw;
    }
    let Value::Map(entries) = &root.value else {
        let got = r.diag.got(root.found());
        r.diag.error(root.pos, format!("expected a mapping of config sections ({}), got {got}", SECTIONS.join(", ")));
        return raw;
    };
    for e in r.entries(entries, None, Duplicates::Refuse) {
        match (scope, e.key) {
            (Scope::Daemon, "include") => raw.include = r.strings(&e, "include").map(|v| r.at(&e, v)),
            (Scope::Daemon, "programs") => raw.programs = r.programs(&e),
            (Scope::Daemon, "server") => raw.server = r.section(&e, "server", |r, m| r.server(m)),
            (_, "socket") => raw.socket = r.section(&e, "socket", |r, m| r.socket(m)),
            (_, "ctl") => raw.ctl = r.section(&e, "ctl", |r, m| r.ctl(m)),
            (Scope::Ctl, _) => {}
            (Scope::Daemon, _) => r.unknown(&e, None, &SECTIONS),
        }
    }
    raw
}

/// One entry of a mapping: its key as a string, where the key is, and the value.
struct Entry<'n> {
    key: &'n str,
    pos: Pos,
    value: &'n Node,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Duplicates {
    /// A key given twice is an error here.
    Refuse,
    /// Kept, for the caller to report (program names, whose twins may be in another file).
    Keep,
}

struct Reader<'d> {
    diag: &'d mut Diag,
}

impl Reader<'_> {
    fn at<T>(&self, e: &Entry<'_>, value: T) -> Spanned<T> {
        Spanned { value, pos: e.pos }
    }

    /// A key's name for a message: `'name'` when it is a plain word and the document a config
    /// (or `always`, for a near miss of a known key); else `None`.
    fn key_name(&self, key: &str, always: bool) -> Option<String> {
        (plain(key) && (always || self.diag.quote(key).is_some())).then(|| format!("'{key}'"))
    }

    /// The entries of a mapping whose keys are strings. A key that is not a scalar is reported
    /// and skipped; with [`Duplicates::Refuse`], so is a key given a second time.
    fn entries<'n>(&mut self, entries: &'n [(Node, Node)], path: Option<&str>, dups: Duplicates) -> Vec<Entry<'n>> {
        let mut out: Vec<Entry<'n>> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let Some(key) = k.scalar() else {
                let what = path.map_or_else(|| "at the top level".to_owned(), |p| format!("in {p}"));
                self.diag.error(k.pos, format!("a key {what} must be a plain word, not {}", self.diag.got(k.found())));
                continue;
            };
            if dups == Duplicates::Refuse {
                if let Some(first) = out.iter().find(|e| e.key == key) {
                    let name = self.key_name(key, false).map(|n| format!(" {n}")).unwrap_or_default();
                    let place = path.map(|p| format!(" in {p}")).unwrap_or_default();
                    let first = first.pos;
                    self.diag.error(k.pos, format!("duplicate key{name}{place} (first at {first})"));
                    continue;
                }
            }
            out.push(Entry { key, pos: k.pos, value: v });
        }
        out
    }

    /// Reports an unknown key of the mapping at `path` (`None`: the top level), with the
    /// closest of `known` as a hint.
    fn unknown(&mut self, e: &Entry<'_>, path: Option<&str>, known: &[&str]) {
        let best = did_you_mean(e.key, known);
        let hint = best.map(|c| format!(" (did you mean '{c}'?)")).unwrap_or_default();
        let name = self.key_name(e.key, best.is_some());
        let message = match (path, name) {
            (Some(p), Some(n)) => format!("unknown key {n} in {p}{hint}"),
            (Some(p), None) => format!("unknown key in {p}{hint}"),
            // At the top level of what is then not a config, a key is named only when it is a
            // near miss of a section.
            (None, Some(n)) if best.is_some() => format!("unknown key {n}{hint}"),
            (None, _) => format!("unknown top-level key (expected one of {})", known.join(", ")),
        };
        self.diag.error(e.pos, message);
    }

    /// `expected {what}, got …` for the value of `e`, at its key.
    fn expected(&mut self, e: &Entry<'_>, path: &str, what: &str) {
        let got = self.diag.got(e.value.found());
        self.diag.error(e.pos, format!("{path}: expected {what}, got {got}"));
    }

    /// The mapping under a key, or an error (`None` for null: an empty section).
    fn mapping<'n>(&mut self, e: &Entry<'n>, path: &str) -> Option<&'n [(Node, Node)]> {
        match &e.value.value {
            Value::Map(m) => Some(m),
            Value::Null => None,
            _ => {
                self.expected(e, path, "a mapping (indented 'key: value' lines or {key: value})");
                None
            }
        }
    }

    fn section<T: Default>(
        &mut self,
        e: &Entry<'_>,
        path: &str,
        read: impl FnOnce(&mut Self, &[(Node, Node)]) -> T,
    ) -> Option<Spanned<T>> {
        let value = match &e.value.value {
            Value::Null => T::default(),
            _ => {
                let m = self.mapping(e, path)?;
                read(self, m)
            }
        };
        Some(self.at(e, value))
    }

    /// A scalar's text; null is absent; a list or a mapping is an error.
    fn text(&mut self, e: &Entry<'_>, path: &str, what: &str) -> Option<Spanned<String>> {
        match &e.value.value {
            Value::Scalar(s) => Some(self.at(e, s.clone())),
            Value::Null => None,
            _ => {
                self.expected(e, path, what);
                None
            }
        }
    }

    fn string(&mut self, e: &Entry<'_>, path: &str) -> Option<Spanned<String>> {
        self.text(e, path, "a string")
    }

    /// A whole number of type `T` (`u32`, `u64`, `i32`): decimal digits, or YAML 1.2's `0x`/`0o`.
    fn number<T: TryFrom<i128> + std::fmt::Display + num_bounds::Bounded>(
        &mut self,
        e: &Entry<'_>,
        path: &str,
    ) -> Option<Spanned<T>> {
        let text = self.text(e, path, "a whole number")?;
        match parse_int(&text.value).and_then(|n| T::try_from(n).ok()) {
            Some(v) => Some(self.at(e, v)),
            None => {
                let range = if T::MIN_IS_ZERO {
                    format!("a whole number up to {}", T::max())
                } else {
                    format!("a whole number from {} to {}", T::min(), T::max())
                };
                let what = if parse_int(&text.value).is_some() { range } else { "a whole number".to_owned() };
                self.expected(e, path, &what);
                None
            }
        }
    }

    /// A boolean, as supervisord reads one: true/false, yes/no, on/off, 1/0, in any case.
    fn boolean(&mut self, e: &Entry<'_>, path: &str) -> Option<Spanned<bool>> {
        let text = self.text(e, path, "true or false")?;
        match parse_bool(&text.value) {
            Some(b) => Some(self.at(e, b)),
            None => {
                self.expected(e, path, "true or false");
                None
            }
        }
    }

    /// A list of strings; each element that is not a scalar is reported at itself.
    fn strings(&mut self, e: &Entry<'_>, path: &str) -> Option<Vec<Spanned<String>>> {
        let items = match &e.value.value {
            Value::List(items) => items,
            Value::Null => return None,
            _ => {
                self.expected(e, path, "a list such as [a, b]");
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match &item.value {
                Value::Scalar(s) => out.push(Spanned { value: s.clone(), pos: item.pos }),
                _ => {
                    let got = self.diag.got(item.found());
                    self.diag.error(item.pos, format!("{path}[{i}]: expected a string, got {got}"));
                }
            }
        }
        Some(out)
    }

    /// `NAME: value` pairs, sorted by name (the order the environment is given in); a value
    /// must be a scalar, kept as its text (`ANSWER: 42` is "42").
    fn environment(&mut self, e: &Entry<'_>, path: &str) -> Vec<(String, Spanned<String>)> {
        let Some(m) = self.mapping(e, path) else { return Vec::new() };
        let mut out = Vec::new();
        for var in self.entries(m, Some(path), Duplicates::Refuse) {
            let var_path = match self.key_name(var.key, false) {
                Some(_) => format!("{path}.{}", var.key),
                None => path.to_owned(),
            };
            match &var.value.value {
                Value::Scalar(s) => out.push((var.key.to_owned(), self.at(&var, s.clone()))),
                _ => self.expected(&var, &var_path, "a value (a string, a number or a boolean)"),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn server(&mut self, m: &[(Node, Node)]) -> RawServer {
        let mut s = RawServer::default();
        for e in self.entries(m, Some("server"), Duplicates::Refuse) {
            let p = format!("server.{}", e.key);
            match e.key {
                "logfile" => s.logfile = self.string(&e, &p),
                "logfile_maxbytes" => s.logfile_maxbytes = self.text(&e, &p, "a size such as 50MB"),
                "logfile_backups" => s.logfile_backups = self.number(&e, &p),
                "loglevel" => s.loglevel = self.text(&e, &p, "a log level"),
                "syslog" => s.syslog = self.syslog(&e),
                "pidfile" => s.pidfile = self.string(&e, &p),
                "user" => s.user = self.string(&e, &p),
                "umask" => s.umask = self.text(&e, &p, "an octal mode such as 022"),
                "directory" => s.directory = self.string(&e, &p),
                "environment" | "env" => s.environment = self.environment(&e, &p),
                "daemon" => s.daemon = self.boolean(&e, &p),
                "minfds" => s.minfds = self.number(&e, &p),
                "minprocs" => s.minprocs = self.number(&e, &p),
                "childlogdir" => s.childlogdir = self.string(&e, &p),
                _ => self.unknown(&e, Some("server"), SERVER_KEYS),
            }
        }
        s
    }

    fn syslog(&mut self, e: &Entry<'_>) -> Option<Spanned<RawSyslog>> {
        const WHAT: &str = "true, false or a mapping of facility, ident and socket";
        match &e.value.value {
            Value::Null => None,
            Value::Scalar(s) => match parse_bool(s) {
                Some(b) => Some(self.at(e, RawSyslog::Enabled(b))),
                None => {
                    self.expected(e, "server.syslog", WHAT);
                    None
                }
            },
            Value::Map(m) => {
                let (mut facility, mut ident, mut socket) = (None, None, None);
                for f in self.entries(m, Some("server.syslog"), Duplicates::Refuse) {
                    let p = format!("server.syslog.{}", f.key);
                    match f.key {
                        "facility" => facility = self.string(&f, &p),
                        "ident" => ident = self.string(&f, &p),
                        "socket" => socket = self.string(&f, &p),
                        _ => self.unknown(&f, Some("server.syslog"), SYSLOG_KEYS),
                    }
                }
                Some(self.at(e, RawSyslog::Detailed { facility, ident, socket }))
            }
            Value::List(_) => {
                self.expected(e, "server.syslog", WHAT);
                None
            }
        }
    }

    fn socket(&mut self, m: &[(Node, Node)]) -> RawSocket {
        let mut s = RawSocket::default();
        for e in self.entries(m, Some("socket"), Duplicates::Refuse) {
            let p = format!("socket.{}", e.key);
            match e.key {
                "path" | "file" => s.path = self.string(&e, &p),
                "chmod" => s.chmod = self.text(&e, &p, "an octal mode such as 0700"),
                "chown" => s.chown = self.string(&e, &p),
                "access" => s.access = self.access(&e),
                "auth" => s.auth = self.auth(&e),
                _ => self.unknown(&e, Some("socket"), SOCKET_KEYS),
            }
        }
        s
    }

    /// `socket.access`: each rule is located at itself, each of its keys at that key.
    fn access(&mut self, e: &Entry<'_>) -> Vec<RawAccessRule> {
        let items = match &e.value.value {
            Value::List(items) => items,
            Value::Null => return Vec::new(),
            _ => {
                self.expected(e, "socket.access", "a list of rules such as - {group: ops, role: viewer}");
                return Vec::new();
            }
        };
        let mut rules = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("socket.access[{index}]");
            let Value::Map(m) = &item.value else {
                let got = self.diag.got(item.found());
                self.diag.error(
                    item.pos,
                    format!("{path}: expected a rule such as {{user: alice, role: operator}}, got {got}"),
                );
                continue;
            };
            let (mut user, mut group, mut role, mut programs) = (None, None, None, Vec::new());
            let mut bad_role = false;
            for f in self.entries(m, Some(&path), Duplicates::Refuse) {
                let p = format!("{path}.{}", f.key);
                match f.key {
                    "user" => user = self.string(&f, &p),
                    "group" => group = self.string(&f, &p),
                    "role" => {
                        role = match f.value.scalar().map(Role::parse) {
                            Some(Some(r)) => Some(r),
                            _ => {
                                self.expected(&f, &p, "viewer, operator or admin");
                                bad_role = true;
                                None
                            }
                        }
                    }
                    "programs" => programs = self.strings(&f, &p).unwrap_or_default(),
                    _ => self.unknown(&f, Some(&path), ACCESS_KEYS),
                }
            }
            match role {
                Some(role) => rules.push(RawAccessRule { pos: item.pos, index, user, group, role, programs }),
                None if bad_role => {}
                None => self.diag.error(item.pos, format!("{path}: missing key 'role' (viewer, operator or admin)")),
            }
        }
        rules
    }

    fn auth(&mut self, e: &Entry<'_>) -> Option<Spanned<RawAuth>> {
        let m = self.mapping(e, "socket.auth")?;
        let (mut username, mut hash) = (None, None);
        for f in self.entries(m, Some("socket.auth"), Duplicates::Refuse) {
            let p = format!("socket.auth.{}", f.key);
            match f.key {
                "username" => username = self.string(&f, &p),
                "password_hash" => hash = self.string(&f, &p),
                _ => self.unknown(&f, Some("socket.auth"), AUTH_KEYS),
            }
        }
        match (username, hash) {
            (Some(u), Some(h)) => Some(self.at(e, RawAuth { username: u.value, password_hash: h })),
            (u, h) => {
                let missing = if u.is_none() { "username" } else { "password_hash" };
                if h.is_none() && u.is_none() {
                    self.diag.error(e.pos, "socket.auth: missing keys 'username' and 'password_hash'");
                } else {
                    self.diag.error(e.pos, format!("socket.auth: missing key '{missing}'"));
                }
                None
            }
        }
    }

    fn ctl(&mut self, m: &[(Node, Node)]) -> RawCtl {
        let mut c = RawCtl::default();
        for e in self.entries(m, Some("ctl"), Duplicates::Refuse) {
            let p = format!("ctl.{}", e.key);
            match e.key {
                "prompt" => c.prompt = self.string(&e, &p),
                "history_file" => c.history_file = self.string(&e, &p),
                _ => self.unknown(&e, Some("ctl"), CTL_KEYS),
            }
        }
        c
    }

    fn programs(&mut self, e: &Entry<'_>) -> Vec<RawProgram> {
        let Some(m) = self.mapping(e, "programs") else { return Vec::new() };
        let mut out = Vec::new();
        for p in self.entries(m, Some("programs"), Duplicates::Keep) {
            if check_program_name(p.key).is_err() {
                let name = self.diag.named("invalid program name", p.key);
                self.diag.error(
                    p.pos,
                    format!("programs: {name}: use 1 to 64 letters, digits, '_', '.' or '-' ('all' is reserved)"),
                );
                continue;
            }
            out.push(self.program(&p));
        }
        out
    }

    fn program(&mut self, e: &Entry<'_>) -> RawProgram {
        let name = e.key;
        let path = format!("programs.{name}");
        let mut p = RawProgram { name: self.at(e, name.to_owned()), ..RawProgram::default() };
        let mut has_command = false;
        let entries = match &e.value.value {
            Value::Map(m) => self.entries(m, Some(&path), Duplicates::Refuse),
            Value::Null => Vec::new(),
            _ => {
                self.expected(e, &path, "a mapping of program settings");
                return p;
            }
        };
        let mut seen: Vec<(&str, Pos)> = Vec::new();
        for f in entries {
            let canonical = match f.key {
                "cmd" => "command",
                "starttime" => "startsecs",
                "stoptime" => "stopwaitsecs",
                "workingdir" => "directory",
                "env" => "environment",
                "stdout" => "stdout_logfile",
                "stderr" => "stderr_logfile",
                k => k,
            };
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == canonical) {
                let first = *first;
                self.diag.error(f.pos, format!("duplicate key '{}' in {path}: '{canonical}' is set at {first}", f.key));
                continue;
            }
            let k = format!("{path}.{canonical}");
            match canonical {
                "command" => {
                    has_command = true;
                    p.command = self.command(&f, &k);
                }
                "numprocs" => p.numprocs = self.number(&f, &k),
                "numprocs_start" => p.numprocs_start = self.number(&f, &k),
                "priority" => p.priority = self.number(&f, &k),
                "autostart" => p.autostart = self.boolean(&f, &k),
                "autorestart" => p.autorestart = self.text(&f, &k, "always, never or unexpected"),
                "exitcodes" => p.exitcodes = self.exitcodes(&f, &k),
                "startsecs" => p.startsecs = self.number(&f, &k),
                "startretries" => p.startretries = self.number(&f, &k),
                "stopsignal" => p.stopsignal = self.text(&f, &k, "a signal name or number such as TERM"),
                "stopwaitsecs" => p.stopwaitsecs = self.number(&f, &k),
                "stopasgroup" => p.stopasgroup = self.boolean(&f, &k),
                "killasgroup" => p.killasgroup = self.boolean(&f, &k),
                "cleanupgroup" => p.cleanupgroup = self.boolean(&f, &k),
                "user" => p.user = self.string(&f, &k),
                "directory" => p.directory = self.string(&f, &k),
                "umask" => p.umask = self.text(&f, &k, "an octal mode such as 022"),
                "environment" => p.environment = self.environment(&f, &k),
                "stdout_logfile" => p.stdout_logfile = self.log_path(&f, &k),
                "stderr_logfile" => p.stderr_logfile = self.log_path(&f, &k),
                "redirect_stderr" => p.redirect_stderr = self.boolean(&f, &k),
                "stdout_logfile_maxbytes" => p.stdout_logfile_maxbytes = self.text(&f, &k, "a size such as 50MB"),
                "stderr_logfile_maxbytes" => p.stderr_logfile_maxbytes = self.text(&f, &k, "a size such as 50MB"),
                "stdout_logfile_backups" => p.stdout_logfile_backups = self.number(&f, &k),
                "stderr_logfile_backups" => p.stderr_logfile_backups = self.number(&f, &k),
                "stdout_syslog" => p.stdout_syslog = self.boolean(&f, &k),
                "stderr_syslog" => p.stderr_syslog = self.boolean(&f, &k),
                "pty" => p.pty = self.boolean(&f, &k),
                "capabilities" => p.capabilities = self.strings(&f, &k).unwrap_or_default(),
                _ => {
                    self.unknown(&f, Some(&path), PROGRAM_KEYS);
                    continue;
                }
            }
            seen.push((canonical, f.pos));
        }
        if !has_command {
            self.diag.error(e.pos, format!("{path}: missing key 'command' (or 'cmd'): every program needs one"));
        }
        p
    }

    /// `command`: a string split as a POSIX shell would (no shell is run), or a list of
    /// arguments.
    fn command(&mut self, e: &Entry<'_>, path: &str) -> Option<Spanned<Vec<String>>> {
        match &e.value.value {
            Value::Scalar(s) => match shlex::split(s) {
                Some(argv) => Some(self.at(e, argv)),
                None => {
                    let got = self.diag.got(e.value.found());
                    self.diag.error(
                        e.pos,
                        format!("{path}: unbalanced quotes or a trailing '\\' in {got}: quote as a shell would"),
                    );
                    None
                }
            },
            Value::List(_) => self.strings(e, path).map(|argv| self.at(e, argv.into_iter().map(|a| a.value).collect())),
            Value::Null => Some(self.at(e, Vec::new())),
            Value::Map(_) => {
                self.expected(e, path, "a command line or a list of arguments");
                None
            }
        }
    }

    /// `exitcodes`: one code, codes separated by commas, or a list of codes, each 0 to 255.
    fn exitcodes(&mut self, e: &Entry<'_>, path: &str) -> Option<Spanned<Vec<i32>>> {
        const WHAT: &str = "exit codes from 0 to 255";
        let code = |s: &str| s.trim().parse::<i32>().ok().filter(|c| (0..=255).contains(c));
        match &e.value.value {
            Value::Null => None,
            Value::Scalar(s) => match s.split(',').map(code).collect::<Option<Vec<i32>>>() {
                Some(codes) => Some(self.at(e, codes)),
                None => {
                    self.expected(e, path, WHAT);
                    None
                }
            },
            Value::List(items) => {
                let mut codes = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match item.scalar().and_then(code) {
                        Some(c) => codes.push(c),
                        None => {
                            let got = self.diag.got(item.found());
                            self.diag.error(
                                item.pos,
                                format!("{path}[{i}]: expected an exit code from 0 to 255, got {got}"),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then(|| self.at(e, codes))
            }
            Value::Map(_) => {
                self.expected(e, path, WHAT);
                None
            }
        }
    }

    /// `stdout_logfile`/`stderr_logfile`: a path, `AUTO`, or `NONE`/null.
    fn log_path(&mut self, e: &Entry<'_>, path: &str) -> Option<Spanned<LogPath>> {
        let value = match &e.value.value {
            Value::Null => LogPath::None,
            Value::Scalar(s) => match s.as_str() {
                "NONE" | "none" => LogPath::None,
                "AUTO" | "auto" => LogPath::Auto,
                "" => {
                    self.diag.error(e.pos, format!("{path}: empty log path: use NONE to discard output"));
                    return None;
                }
                _ => LogPath::Path(s.clone()),
            },
            _ => {
                self.expected(e, path, "a path, AUTO or NONE");
                return None;
            }
        };
        Some(self.at(e, value))
    }
}

/// A whole number as YAML 1.2's core schema writes it (`42`, `-1`, `+3`, `0x1F`, `0o17`),
/// leading zeros read as decimal.
fn parse_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let n = if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i128::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -n } else { n })
}

/// A boolean as supervisord's `boolean()` reads one, in any case.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The bounds of the integer types a config holds, for "expected a whole number up to …".
mod num_bounds {
    /// An integer type's range.
    pub trait Bounded {
        /// Whether its minimum is 0.
        const MIN_IS_ZERO: bool;
        /// Its minimum.
        fn min() -> i128;
        /// Its maximum.
        fn max() -> i128;
    }
    macro_rules! bounded {
        ($($t:ty),*) => {$(
            impl Bounded for $t {
                const MIN_IS_ZERO: bool = <$t>::MIN == 0;
                fn min() -> i128 { <$t>::MIN as i128 }
                fn max() -> i128 { <$t>::MAX as i128 }
            }
        )*};
    }
    bounded!(u32, u64, i32);
}
