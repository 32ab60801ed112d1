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

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
    }
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
}

fn absolute_path(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    }
}

fn read(path: &Path) -> Result<(PathBuf, String), ConfigError> {
    let file = absolute_path(path);
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok((file, text)),
        Err(e) => Err(ConfigError::single(&file, 0, 0, format!("cannot read config: {e}"))),
    }
}

/// Loads and validates the daemon's config file.
///
/// # Errors
/// The file cannot be read, is not YAML of the right shape, or fails validation; every error
/// names file:line:col.
pub fn load(path: &Path, ctx: &Context) -> Result<Config, ConfigError> {
    let (file, text) = read(path)?;
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
            match read(&path) {
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
    let (file, text) = read(path)?;
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
fn yaml_error(file: &Path, e: &serde_yaml_ng::Error) -> ConfigError {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut msg = e.to_string();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    let (path, body) = match msg.split_once(": ") {
        Some((p, b)) if !p.contains(' ') => (Some(p.to_owned()), b.to_owned()),
        _ => (None, msg.clone()),
    };
    let body = match body.strip_prefix("unknown field `") {
        Some(rest) => {
            let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let hint = candidates
                .iter()
                .map(|c| (strsim::jaro_winkler(key, c), *c))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, c)| format!(" (did you mean '{c}'?)"))
                .unwrap_or_default();
            let place = path.as_deref().map(|p| format!(" in {p}")).unwrap_or_default();
            format!("unknown key '{key}'{place}{hint}")
        }
        None => match path {
            Some(p) => format!("{p}: {}", body.replace('`', "'")),
            None => body.replace('`', "'"),
        },
    };
    ConfigError::single(file, line, column, body)
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
        Context { is_root: true, current_user: Some("root".into()), check_users: false }
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
        let ctx = Context { is_root: false, current_user: Some("alice".into()), check_users: false };
        let e = load_str(Path::new("/t.yaml"), "programs:\n  w:\n    command: x\n    user: bob\n", &ctx).unwrap_err();
        assert!(e.to_string().contains("programs.w.user: 'bob' needs taskmasterd to start as root"), "{e}");
    }
}
