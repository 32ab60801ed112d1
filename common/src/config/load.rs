//! Reading a config file: YAML parse with located errors and "did you mean" hints, then
//! validation.

use super::model::{Config, CtlConfig, SocketConfig};
use super::raw::{RawCtlView, RawFile};
use super::validate::{self, Context};
use std::fmt;
use std::path::{Path, PathBuf};

/// One config problem at a place in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, one line.
    pub message: String,
}

/// Longest message a [`Located`] prints, in characters: a value quoted from a config (a command
/// of a megabyte) must not turn one error into a megabyte of log.
const MAX_MESSAGE_CHARS: usize = 400;

impl fmt::Display for Located {
    /// `file:line:col: message`, or `file: message` for a problem with the file as a whole (line
    /// 0). Always one line: control characters (in a file name or a quoted value) are escaped, so
    /// an error can neither split a log line nor send a terminal escape sequence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = one_line(&self.file.display().to_string(), usize::MAX);
        let message = one_line(&self.message, MAX_MESSAGE_CHARS);
        if self.line == 0 {
            write!(f, "{file}: {message}")
        } else {
            write!(f, "{file}:{}:{}: {message}", self.line, self.column)
        }
    }
}

/// `s` with its control characters escaped (`\n`, `\u{1b}`), cut to `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every problem found in a config, one line each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, in file order as far as known.
    pub errors: Vec<Located>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn single(file: &Path, line: usize, column: usize, message: String) -> Self {
        ConfigError { errors: vec![Located { file: file.to_path_buf(), line, column, message }] }
    }

    /// One problem with `file` as a whole (printed `file: message`, with no line).
    pub fn whole(file: &Path, message: String) -> Self {
        Self::single(file, 0, 0, message)
    }
}

fn absolute_path(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Largest config or include file read, in bytes (16 MiB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads a config or include file. A symlink is followed (a managed config is often one), but
/// what is checked is the file actually opened (its `fstat`): a regular file, at most
/// [`MAX_FILE_BYTES`], and with `trusted_uid` set (taskmasterd as root, DESIGN §1 rule 5) owned
/// by root or that uid and writable by its owner only. It is opened non-blocking, so a FIFO
/// planted where a file was expected is refused instead of hanging the daemon.
fn read(path: &Path, trusted_uid: Option<u32>) -> Result<(PathBuf, String), ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = absolute_path(path);
    let fail = |message: String| ConfigError::whole(&file, message);
    let opened = std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(&file);
    let f = opened.map_err(|e| fail(format!("cannot read config: {e}")))?;
    let meta = f.metadata().map_err(|e| fail(format!("cannot read config: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(fail("cannot read config: not a regular file".into()));
    }
    if let Some(trusted) = trusted_uid {
        let (owner, mode) = (meta.uid(), meta.mode() & 0o7777);
        if owner != 0 && owner != trusted {
            let name = nix::unistd::User::from_uid(owner.into())
                .ok()
                .flatten()
                .map(|u| format!(" ({})", u.name))
                .unwrap_or_default();
            let who = if trusted == 0 { "root".to_owned() } else { format!("root or uid {trusted}") };
            return Err(fail(format!(
                "refusing a config file owned by uid {owner}{name}, not by {who}; run chown root on it"
            )));
        }
        if mode & 0o022 != 0 {
            return Err(fail(format!(
                "refusing a config file writable by group or others (mode {mode:04o}); run chmod go-w on it"
            )));
        }
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!("cannot read config: larger than {} MiB", MAX_FILE_BYTES >> 20)));
    }
    let mut text = String::new();
    match f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text) {
        Ok(n) if n as u64 > MAX_FILE_BYTES => {
            Err(fail(format!("cannot read config: larger than {} MiB", MAX_FILE_BYTES >> 20)))
        }
        Ok(_) => Ok((file, text)),
        Err(e) => Err(fail(format!("cannot read config: {e}"))),
    }
}

/// Loads and validates the daemon's config file.
///
/// # Errors
/// The file cannot be read, is not YAML of the right shape, or fails validation; every error
/// names file:line:col.
pub fn load(path: &Path, ctx: &Context) -> Result<Config, ConfigError> {
    let (file, text) = read(path, ctx.trusted_uid)?;
    load_str(&file, &text, ctx)
}

/// Validates config text as if read from `file` (absolute), with the files it includes.
///
/// # Errors
/// As [`load`].
pub fn load_str(file: &Path, text: &str, ctx: &Context) -> Result<Config, ConfigError> {
    let (raw, mut errors) = parse_all(file, text);
    let mut sources = Vec::new();
    let here = file.parent().unwrap_or(Path::new("/"));
    for pattern in raw.include.clone().unwrap_or_default() {
        let full =
            if Path::new(&pattern).is_absolute() { pattern.clone() } else { here.join(&pattern).display().to_string() };
        let (line, column) = locate(text, &["include"]);
        let paths = match glob::glob(&full) {
            Ok(p) => p,
            Err(e) => {
                errors.push(Located {
                    file: file.to_path_buf(),
                    line,
                    column,
                    message: format!("include: bad glob '{pattern}': {e}"),
                });
                continue;
            }
        };
        let mut matched: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p != file).collect();
        matched.sort();
        for path in matched {
            match read(&path, ctx.trusted_uid) {
                Ok((f, t)) => {
                    let (raw, errs) = parse_all(&f, &t);
                    errors.extend(errs);
                    sources.push(validate::Source { file: f, text: t, raw });
                }
                Err(e) => errors.extend(e.errors),
            }
        }
    }
    let main = validate::Source { file: file.to_path_buf(), text: text.to_owned(), raw };
    sources.insert(0, main);
    match validate::validate(sources, ctx) {
        Ok(c) if errors.is_empty() => Ok(c),
        Ok(_) => Err(ConfigError { errors }),
        Err(e) => {
            errors.extend(e.errors);
            errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
            errors.dedup();
            Err(ConfigError { errors })
        }
    }
}

/// Most syntax errors reported for one file: a file that is not a config at all (an include glob
/// that catches a data file) gives one line of errors, not one per line of its content.
const MAX_PARSE_ERRORS: usize = 20;

/// Parses a whole file. When that fails, parses each top-level section and each program on its
/// own, so that one run reports every error it can find (`taskmasterd -t`), each at its line;
/// the errors then come with what did parse, to be validated too.
fn parse_all(file: &Path, text: &str) -> (RawFile, Vec<Located>) {
    if text.trim().is_empty() {
        return (RawFile::default(), Vec::new());
    }
    let first = match serde_yaml_ng::from_str::<RawFile>(text) {
        Ok(raw) => return (raw, Vec::new()),
        Err(e) => yaml_error(file, &e),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut errors = Vec::new();
    let mut partial = RawFile::default();
    for (start, end) in blocks(&lines, 0, lines.len(), 0) {
        let is_programs = lines[start].trim_end().trim_end_matches(':').trim() == "programs"
            && lines[start].trim_end().ends_with(':');
        let children = if is_programs { child_blocks(&lines, start + 1, end) } else { Vec::new() };
        if children.is_empty() {
            let sub = lines[start..end].join("\n");
            match serde_yaml_ng::from_str::<RawFile>(&sub) {
                Ok(raw) => merge(&mut partial, raw),
                Err(e) => errors.extend(shift(yaml_error(file, &e), start)),
            }
        } else {
            for (cs, ce) in children {
                let sub = format!("programs:\n{}", lines[cs..ce].join("\n"));
                match serde_yaml_ng::from_str::<RawFile>(&sub) {
                    Ok(raw) => merge(&mut partial, raw),
                    Err(e) => errors.extend(shift(yaml_error(file, &e), cs - 1)),
                }
            }
        }
    }
    if errors.is_empty() {
        return (RawFile::default(), first.errors);
    }
    if errors.len() > MAX_PARSE_ERRORS {
        let more = errors.len() - MAX_PARSE_ERRORS;
        errors.truncate(MAX_PARSE_ERRORS);
        errors.push(Located {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("{more} more syntax errors not shown: is this a taskmaster config file?"),
        });
    }
    (partial, errors)
}

fn merge(into: &mut RawFile, from: RawFile) {
    into.include = into.include.take().or(from.include);
    into.server = into.server.take().or(from.server);
    into.socket = into.socket.take().or(from.socket);
    into.ctl = into.ctl.take().or(from.ctl);
    if let Some(p) = from.programs {
        into.programs.get_or_insert_with(Default::default).extend(p);
    }
}

/// Moves errors of a sub-document whose first line is line `offset` (0-based) of the file.
fn shift(e: ConfigError, offset: usize) -> Vec<Located> {
    e.errors
        .into_iter()
        .map(|mut l| {
            if l.line > 0 {
                l.line += offset;
            }
            l
        })
        .collect()
}

fn indent_of(line: &str) -> Option<usize> {
    let t = line.trim_start();
    (!t.is_empty() && !t.starts_with('#')).then(|| line.len() - t.len())
}

/// Blocks of lines in `from..to` that start at indentation `indent`: `(start, end)` pairs.
fn blocks(lines: &[&str], from: usize, to: usize, indent: usize) -> Vec<(usize, usize)> {
    let starts: Vec<usize> = (from..to).filter(|&i| indent_of(lines[i]) == Some(indent)).collect();
    starts.iter().enumerate().map(|(k, &s)| (s, starts.get(k + 1).copied().unwrap_or(to))).collect()
}

/// The entries of a mapping whose body is `from..to`, at the body's own indentation.
fn child_blocks(lines: &[&str], from: usize, to: usize) -> Vec<(usize, usize)> {
    match (from..to).find_map(|i| indent_of(lines[i])) {
        Some(ind) if ind > 0 => blocks(lines, from, to, ind),
        _ => Vec::new(),
    }
}

/// What taskmasterctl needs from a config file: the socket and ctl sections, without checking
/// anything else in the file.
///
/// # Errors
/// The file cannot be read or is not YAML.
pub fn load_ctl(path: &Path) -> Result<(SocketConfig, CtlConfig), ConfigError> {
    let (file, text) = read(path, None)?;
    let view: RawCtlView = if text.trim().is_empty() {
        RawCtlView::default()
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| yaml_error(&file, &e))?
    };
    let here = file.parent().unwrap_or(Path::new("/"));
    Ok((validate::socket_config(view.socket, here, &mut validate::Ignore), validate::ctl_config(view.ctl, here)))
}

/// Turns serde_yaml's error into ours: location first, serde's backquotes as quotes, and for an
/// unknown key the closest known one.
///
/// It quotes nothing of the file but plain names (a key in a config section, a variant): the
/// file may not be a config at all (`-c /etc/shadow`, an include glob matching a secrets file),
/// and errors reach the main log, which viewers read. A wrong value is described by its kind
/// ("a string"), never quoted; its place is in the location.
fn yaml_error(file: &Path, e: &serde_yaml_ng::Error) -> ConfigError {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut msg = e.to_string();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    // serde_yaml_ng says `path: message`; a path is the file's keys, so it may hold anything.
    const MESSAGES: [&str; 8] = [
        "unknown field `",
        "invalid type: ",
        "invalid value: ",
        "missing field `",
        "duplicate field `",
        "unknown variant `",
        "invalid length ",
        "duplicate entry ",
    ];
    let split = MESSAGES.iter().filter_map(|m| msg.find(&format!(": {m}"))).min();
    let (path, body) = match split {
        Some(i) => (Some(msg[..i].to_owned()), msg[i + 2..].to_owned()),
        None => match msg.split_once(": ") {
            Some((p, b)) if !p.contains(' ') => (Some(p.to_owned()), b.to_owned()),
            _ => (None, msg.clone()),
        },
    };
    // Keys of the path that are not plain names are not quoted either.
    let path = path.map(|p| {
        p.split('.')
            .map(|k| {
                if plain(k.trim_end_matches(|c: char| c.is_ascii_digit() || c == '[' || c == ']')) {
                    k
                } else {
                    "…"
                }
            })
            .collect::<Vec<_>>()
            .join(".")
    });
    let body = match body.strip_prefix("unknown field `") {
        Some(rest) => {
            let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let best = candidates
                .iter()
                .map(|c| (strsim::jaro_winkler(key, c), *c))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, c)| c);
            let hint = best.map(|c| format!(" (did you mean '{c}'?)")).unwrap_or_default();
            match &path {
                Some(p) if plain(key) => format!("unknown key '{key}' in {p}{hint}"),
                Some(p) => format!("unknown key in {p}{hint}"),
                // At the top level of what may not be a config file, a key is quoted only when
                // it is a near miss of a known section.
                None if plain(key) && best.is_some() => format!("unknown key '{key}'{hint}"),
                None if candidates.is_empty() => "unknown top-level key".to_owned(),
                None => format!("unknown top-level key (expected one of {})", candidates.join(", ")),
            }
        }
        None => {
            let body = describe_values(&body);
            match path {
                Some(p) => format!("{p}: {body}"),
                None => body,
            }
        }
    };
    ConfigError::single(file, line, column, body)
}

/// Whether a word of the file may be quoted in an error: a short plain name.
fn plain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// serde's message with the values it quotes from the file replaced by their kind (`invalid
/// type: string "…"` becomes `invalid type: a string`), every other quoted word kept only when
/// [`plain`], backquotes as quotes, and our internal type names (`struct RawFile`) as what they
/// are (`a mapping`).
fn describe_values(body: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = body.strip_prefix(prefix) {
            let (found, expected) = match rest.rfind(", expected ") {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let kind = [
                ("string", "a string"),
                ("integer", "an integer"),
                ("floating point", "a number"),
                ("boolean", "a boolean"),
                ("character", "a character"),
                ("sequence", "a sequence"),
                ("map", "a mapping"),
                ("unit", "null"),
            ]
            .iter()
            .find(|(word, _)| found.starts_with(word))
            .map_or("a value", |(_, kind)| kind);
            return format!("{prefix}{kind}{}", scrub_quotes(expected));
        }
    }
    scrub_quotes(body)
}

/// Quoted words (`` `x` `` or `"x"`) kept, as 'x', when [`plain`], else replaced by `'…'`; our
/// `struct RawX` type names said as `a mapping`.
fn scrub_quotes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '`' && c != '"' {
            out.push(c);
            continue;
        }
        let mut word = String::new();
        let mut escaped = false;
        for w in chars.by_ref() {
            if escaped {
                escaped = false;
            } else if w == '\\' {
                escaped = true;
                continue;
            } else if w == c {
                break;
            }
            word.push(w);
        }
        if plain(&word) {
            out.push_str(&format!("'{word}'"));
        } else {
            out.push_str("'…'");
        }
    }
    while let Some(i) = out.find("struct Raw") {
        let name = i + "struct ".len();
        let end = out[name..].find(|c: char| !c.is_ascii_alphanumeric()).map_or(out.len(), |j| name + j);
        out.replace_range(i..end, "a mapping");
    }
    out
}

/// Finds the line and column of a key path (`["programs", "web", "user"]`) in block-style YAML,
/// falling back to the deepest ancestor found, then to 1:1.
pub fn locate(text: &str, path: &[&str]) -> (usize, usize) {
    let mut best = (1, 1);
    let mut start = 0;
    let mut parent_indent: Option<usize> = None;
    let lines: Vec<&str> = text.lines().collect();
    'outer: for key in path {
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if i > start && parent_indent.is_some_and(|p| indent <= p) {
                break 'outer;
            }
            let bare = trimmed.trim_start_matches("- ");
            let k = bare.split(':').next().unwrap_or("").trim().trim_matches(|c| c == '"' || c == '\'');
            if k == *key && bare.contains(':') {
                best = (i + 1, indent + 1 + (trimmed.len() - bare.len()));
                start = i + 1;
                parent_indent = Some(indent);
                continue 'outer;
            }
        }
        break;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context { is_root: true, current_user: Some("root".into()), check_users: false, trusted_uid: None }
    }

    fn check(text: &str) -> Result<Config, String> {
        load_str(Path::new("/etc/t.yaml"), text, &ctx()).map_err(|e| e.to_string())
    }

    #[test]
    fn aliases_scalars_and_octal() {
        let c = check(
            "programs:\n  web:\n    cmd: \"/bin/echo 'a b' c\"\n    umask: 022\n    exitcodes: 2\n    starttime: 5\n    stoptime: 3\n    env:\n      ANSWER: 42\n      ON: true\n    stdout: NONE\n    stderr: log/err.log\n    workingdir: /tmp\n    stopsignal: USR1\n    stdout_logfile_maxbytes: 1KB\n",
        )
        .unwrap();
        let p = &c.programs[0];
        assert_eq!(p.command, ["/bin/echo", "a b", "c"]);
        assert_eq!(p.umask, Some(0o22));
        assert_eq!(p.exitcodes, [2]);
        assert_eq!((p.startsecs, p.stopwaitsecs), (5, 3));
        assert_eq!(p.environment, [("ANSWER".into(), "42".into()), ("ON".into(), "true".into())]);
        assert_eq!(p.stdout.target, super::super::model::LogTarget::None);
        assert_eq!(p.stderr.target, super::super::model::LogTarget::File("/etc/log/err.log".into()));
        assert_eq!(p.stopsignal, 10);
        assert_eq!(p.stdout.maxbytes, 1024);
    }

    #[test]
    fn unknown_key_is_located_with_a_hint() {
        let e = check("programs:\n  web:\n    command: x\n    autorestar: true\n").unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:4:5: unknown key 'autorestar'"), "{e}");
        assert!(e.contains("did you mean 'autorestart'?"), "{e}");
    }

    #[test]
    fn bad_values_are_located() {
        let e = check("programs:\n  web:\n    command: x\n    stopsignal: NOPE\n").unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:4:5: programs.web.stopsignal:"), "{e}");
        assert!(e.contains("unknown signal 'NOPE'"), "{e}");
        let e = check("programs:\n  web:\n    command: x\n    umask: 099\n").unwrap_err();
        assert!(e.contains(":4:") && e.contains("invalid octal"), "{e}");
    }

    #[test]
    fn malformed_yaml_reports_line_and_column() {
        let e = check("programs:\n  web:\n    command: [unclosed\n").unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:"), "{e}");
        assert!(!e.starts_with("/etc/t.yaml:0:"), "{e}");
    }

    #[test]
    fn semantic_errors_are_located_at_their_key() {
        let e = check("programs:\n  web:\n    numprocs: 0\n    command: x\n").unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:3:5: programs.web.numprocs"), "{e}");
        let e = check("programs:\n  web:\n    autostart: true\n").unwrap_err();
        assert!(e.contains("missing key 'command'"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = check("programs:\n  w:\n    command: x\n").unwrap();
        let p = &c.programs[0];
        assert_eq!((p.numprocs, p.priority, p.startsecs, p.startretries, p.stopwaitsecs), (1, 999, 1, 3, 10));
        assert_eq!(p.exitcodes, [0]);
        assert_eq!(c.server.logfile, Path::new("/etc/taskmasterd.log"));
        assert_eq!(c.server.childlogdir, Path::new("/etc"));
        assert_eq!(c.socket.chmod, 0o700);
    }

    #[test]
    fn every_error_is_reported_not_only_the_first() {
        let e = check("programs:\n  a:\n    command: x\n    autorestar: true\n  b:\n    command: y\n    numprocs: many\n  c:\n    command: z\n    stopsignal: NOPE\n").unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(lines[0].starts_with("/etc/t.yaml:4:5: unknown key 'autorestar'"), "{e}");
        assert!(lines[1].starts_with("/etc/t.yaml:7:"), "{e}");
        assert!(lines[2].starts_with("/etc/t.yaml:10:5: programs.c.stopsignal"), "{e}");
    }

    #[test]
    fn includes_join_programs_and_refuse_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        std::fs::write(dir.path().join("conf.d/b.yaml"), "programs:\n  b:\n    command: y %(here)s\n").unwrap();
        std::fs::write(dir.path().join("conf.d/a.yaml"), "programs:\n  a2:\n    command: x\n").unwrap();
        let main = dir.path().join("main.yaml");
        let c = load_str(&main, "include: [\"conf.d/*.yaml\"]\nprograms:\n  a:\n    command: x\n", &ctx()).unwrap();
        let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "a2", "b"]);
        assert_eq!(c.programs[2].command, ["y".to_owned(), dir.path().join("conf.d").display().to_string()]);
        std::fs::write(dir.path().join("conf.d/c.yaml"), "programs:\n  a:\n    command: dup\n").unwrap();
        let e = load_str(&main, "include: [\"conf.d/*.yaml\"]\nprograms:\n  a:\n    command: x\n", &ctx())
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml:2:3: program 'a' is defined twice: first at") && e.contains("main.yaml:3:3"), "{e}");
    }

    #[test]
    fn undefined_variables_are_named() {
        let e = check("programs:\n  a:\n    command: x %(ENV_NO_SUCH_TM_VAR)s\n").unwrap_err();
        assert_eq!(e, "/etc/t.yaml:3:5: programs.a.command: undefined variable %(ENV_NO_SUCH_TM_VAR)s");
    }

    #[test]
    fn capabilities_are_checked() {
        let e = check("programs:\n  a:\n    command: x\n    capabilities: [CAP_NOPE]\n    user: nobody\n").unwrap_err();
        assert!(e.contains("unknown capability 'CAP_NOPE'"), "{e}");
        let e = check("programs:\n  a:\n    command: x\n    capabilities: [net_bind_service]\n").unwrap_err();
        assert!(e.contains("give the program a non-root `user`"), "{e}");
        let c =
            check("programs:\n  a:\n    command: x\n    capabilities: [net_bind_service]\n    user: nobody\n").unwrap();
        assert_eq!(c.programs[0].capabilities, ["CAP_NET_BIND_SERVICE"]);
    }

    #[test]
    fn non_root_cannot_name_another_user() {
        let ctx = Context { is_root: false, current_user: Some("alice".into()), check_users: false, trusted_uid: None };
        let e = load_str(Path::new("/t.yaml"), "programs:\n  w:\n    command: x\n    user: bob\n", &ctx).unwrap_err();
        assert!(e.to_string().contains("programs.w.user: 'bob' needs taskmasterd to start as root"), "{e}");
    }

    #[test]
    fn errors_quote_nothing_of_a_file_that_is_not_a_config() {
        for text in [
            "root:$6$SECRETsalt$SECREThash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
            "SECRET_TOKEN=hunter2SECRET\nOTHER=SECRETvalue\n",
            "SECRETKEY: SECRETvalue\n",
            "- SECRETitem\n",
            "\"SECRET quoted\"\n",
            "programs:\n  \"SECRET: name\":\n    command: x\n    bogus: 1\n",
            "programs: SECRETstring\n",
            "programs:\n  a:\n    command: x\n    numprocs: SECRETnum\n",
            "programs:\n  a:\n    command: x\n    autorestart: [SECRETseq]\n",
            "\u{1}\u{2}SECRETbinary\u{7f}",
            "key: [SECRETunclosed\n",
            "@SECRETat\n",
        ] {
            let e = check(text).unwrap_err();
            assert!(!e.contains("SECRET"), "{text:?} gave {e}");
            assert!(e.lines().all(|l| l.starts_with("/etc/t.yaml:") && !l.starts_with("/etc/t.yaml:0:")), "{e}");
        }
        // A near miss of a section is still named, with its hint.
        let e = check("program:\n  a:\n    command: x\n").unwrap_err();
        assert_eq!(e, "/etc/t.yaml:1:1: unknown key 'program' (did you mean 'programs'?)");
    }

    #[test]
    fn an_error_is_one_short_line_whatever_it_quotes() {
        let e = check("programs:\n  a:\n    command: \"x\\n\\u001b]52;c;SECRET\\u0007 'unbalanced\"\n").unwrap_err();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(!e.contains('\u{1b}') && !e.contains('\u{7}') && e.contains("\\u{1b}"), "{e}");
        let e = check(&format!("programs:\n  a:\n    command: \"'{}\"\n", "y".repeat(100_000))).unwrap_err();
        assert!(e.len() < 600 && e.ends_with('…'), "{e}");
    }

    #[test]
    fn config_files_are_checked_on_the_file_opened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let strict = Context { trusted_uid: Some(me), ..ctx() };
        let target = dir.path().join("managed.yaml");
        std::fs::write(&target, "programs:\n  a:\n    command: x\n").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A symlink is followed: the file it leads to is what is checked.
        let link = dir.path().join("taskmaster.yaml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(load(&link, &strict).is_ok());
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o664)).unwrap();
        let e = load(&link, &strict).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: refusing a config file writable by group or others (mode 0664); run chmod go-w on it",
                link.display()
            )
        );
        assert!(load(&link, &ctx()).is_ok(), "not checked when not root");
        // An include is checked alike, and refusing it refuses the config.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let main = dir.path().join("main.yaml");
        std::fs::write(&main, "include: [managed.yaml]\n").unwrap();
        assert_eq!(load(&main, &strict).unwrap().programs.len(), 1);
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o606)).unwrap();
        let e = load(&main, &strict).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: refusing", target.display())) && e.contains("(mode 0606)"), "{e}");
        // Another owner: as root, chown the file away; as a user, trust another uid.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let strict = if me == 0 {
            std::os::unix::fs::chown(&target, Some(65534), None).unwrap();
            strict
        } else {
            Context { trusted_uid: Some(me + 1), ..ctx() }
        };
        let e = load(&link, &strict).unwrap_err().to_string();
        assert!(e.contains("refusing a config file owned by uid ") && e.ends_with("run chown root on it"), "{e}");
    }

    #[test]
    fn a_fifo_or_a_directory_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = load(&fifo, &ctx()).unwrap_err().to_string();
        assert!(e.ends_with("cannot read config: not a regular file"), "{e}");
        let e = load(dir.path(), &ctx()).unwrap_err().to_string();
        assert!(e.ends_with("cannot read config: not a regular file"), "{e}");
    }

    #[test]
    fn a_program_too_large_for_the_link_is_located() {
        let text = format!("programs:\n  small:\n    command: x\n  big:\n    command: x {}\n", "y".repeat(1_100_000));
        let e = check(&text).unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:4:3: programs.big is too large to send to the supervisor ("), "{e}");
        assert!(e.ends_with(" bytes encoded, limit 1048576)") && e.lines().count() == 1, "{e}");
        // The environment stays with the spawner, so it does not count.
        let env = format!("programs:\n  a:\n    command: x\n    environment:\n      BIG: {}\n", "y".repeat(1_100_000));
        assert!(check(&env).is_ok());
    }
}
