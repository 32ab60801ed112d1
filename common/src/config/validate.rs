//! Raw file -> model: defaults, absolute paths, and the checks that span keys or need the system
//! (users exist, root-only keys). Every error is located at the key it is about.

use super::expand;
use super::load::{locate, ConfigError, Located};
use super::model::*;
use super::raw::*;
use crate::names::check_program_name;
use crate::proto::spawn::{ConfigItem, MAX_ITEM};
use crate::units;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Facts about the running system that validation depends on.
#[derive(Clone, Debug)]
pub struct Context {
    /// Whether the daemon runs as root (programs may then name another `user`).
    pub is_root: bool,
    /// The invoking user's name, when known (a non-root daemon accepts only this `user`).
    pub current_user: Option<String>,
    /// Whether `user` names must exist in the user database.
    pub check_users: bool,
    /// When set (taskmasterd runs as root), the config file and every included file must be
    /// owned by root or by this uid (the one that started taskmasterd) and be writable by their
    /// owner only (DESIGN §1 rule 5, as sshd's StrictModes on the files themselves); `None`
    /// checks no owner or mode.
    pub trusted_uid: Option<u32>,
}

impl Context {
    /// The context of this process.
    pub fn current() -> Self {
        let uid = nix::unistd::geteuid();
        let current_user = nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name);
        let trusted_uid = uid.is_root().then_some(uid.as_raw());
        Context { is_root: uid.is_root(), current_user, check_users: true, trusted_uid }
    }
}

struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<Located>,
    check_users: bool,
}

impl Checker<'_> {
    fn error(&mut self, path: &[&str], message: String) {
        let (line, column) = locate(self.text, path);
        self.errors.push(Located { file: self.file.to_path_buf(), line, column, message });
    }

    /// Parses an optional scalar at `path`, recording a located error and using `default` when
    /// it does not parse.
    fn value<T>(
        &mut self,
        path: &[&str],
        raw: Option<Scalar>,
        parse: impl Fn(&str) -> Result<T, String>,
        default: T,
    ) -> T {
        match raw.map(|Scalar(s)| parse(&s)) {
            None => default,
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                self.error(path, format!("{}: {e}", path.join(".")));
                default
            }
        }
    }
}

fn signal_number(s: &str) -> Result<i32, String> {
    units::parse_signal(s).map(|s| s as i32)
}

fn absolute(here: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        here.join(p)
    }
}

fn env_list(map: Option<BTreeMap<String, Scalar>>) -> Vec<(String, String)> {
    map.unwrap_or_default().into_iter().map(|(k, Scalar(v))| (k, v)).collect()
}

/// The end of the error for a config item of `len` bytes encoded, over the link's bound.
fn too_large(len: usize) -> String {
    format!("too large to send to the supervisor ({len} bytes encoded, limit {MAX_ITEM})")
}

fn user_exists(name: &str) -> bool {
    matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
}

fn uid_of(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

/// Whether `name` is `nobody`, or another name for its uid (or the kernel's overflow uid 65534).
fn is_nobody(name: &str) -> bool {
    let uid = uid_of(name);
    name == "nobody" || uid == Some(65534) || (uid.is_some() && uid == uid_of("nobody"))
}

/// One parsed file: the main config or an included one.
pub struct Source {
    /// Absolute path.
    pub file: std::path::PathBuf,
    /// Its text, to locate errors.
    pub text: String,
    /// What it says.
    pub raw: RawFile,
}

/// Validates the main file (first) and the files it includes. Paths must be absolute.
///
/// # Errors
/// Every problem found, each located at file:line:col.
pub fn validate(sources: Vec<Source>, ctx: &Context) -> Result<Config, ConfigError> {
    let mut sources = sources.into_iter();
    let Some(Source { file: main_file, text: main_text, raw }) = sources.next() else {
        return Err(ConfigError { errors: Vec::new() });
    };
    let file = main_file.as_path();
    let here = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let here_s = here.display().to_string();
    let mut c = Checker { file, text: &main_text, errors: Vec::new(), check_users: ctx.check_users };

    let rs = raw.server.unwrap_or_default();
    let expand_at = |c: &mut Checker<'_>, key: &str, s: &str| match expand::expand_load(s, &here_s, None) {
        Ok(v) => v,
        Err(e) => {
            c.error(&["server", key], format!("server.{key}: {e}"));
            s.to_owned()
        }
    };
    let logfile = absolute(&here, &expand_at(&mut c, "logfile", rs.logfile.as_deref().unwrap_or("taskmasterd.log")));
    let childlogdir = match &rs.childlogdir {
        Some(d) => absolute(&here, &expand_at(&mut c, "childlogdir", d)),
        None => logfile.parent().unwrap_or(&here).to_path_buf(),
    };
    let pidfile = absolute(&here, &expand_at(&mut c, "pidfile", rs.pidfile.as_deref().unwrap_or("taskmasterd.pid")));
    let server_directory = rs.directory.as_deref().map(|d| absolute(&here, &expand_at(&mut c, "directory", d)));
    let server_env: Vec<(String, String)> = env_list(rs.environment)
        .into_iter()
        .map(|(k, v)| {
            let v = expand_at(&mut c, "environment", &v);
            (k, v)
        })
        .collect();
    const FACILITIES: [&str; 20] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "local0",
        "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    ];
    let syslog = match rs.syslog {
        None | Some(RawSyslog::Enabled(false)) => None,
        Some(RawSyslog::Enabled(true)) => Some(SyslogTarget::default()),
        Some(RawSyslog::Detailed { facility, ident, socket }) => {
            let d = SyslogTarget::default();
            let facility = facility.unwrap_or(d.facility).to_ascii_lowercase();
            if !FACILITIES.contains(&facility.trim_start_matches("log_")) {
                c.error(
                    &["server", "syslog", "facility"],
                    format!("server.syslog.facility: unknown facility '{facility}'"),
                );
            }
            Some(SyslogTarget {
                facility,
                ident: ident.unwrap_or(d.ident),
                socket: socket.map_or(d.socket, |s| absolute(&here, &s)),
            })
        }
    };
    if let Some(u) = &rs.user {
        if !ctx.is_root {
            if ctx.current_user.as_deref() != Some(u) {
                c.error(&["server", "user"], format!("server.user '{u}' needs taskmasterd to start as root"));
            }
        } else if ctx.check_users && !user_exists(u) {
            c.error(&["server", "user"], format!("unknown user '{u}'"));
        } else if ctx.check_users && is_nobody(u) {
            // nobody is everybody's: programs run as it, and any of them could trace the
            // supervisor (DESIGN §1 rule 4).
            c.error(&["server", "user"], "server.user must be a user of its own, not nobody".to_owned());
        }
    }
    // The supervisor's user as root (a dynamic uid has no name, so no program can name it).
    let supervisor = match &rs.user {
        _ if !(ctx.is_root && ctx.check_users) => None,
        Some(u) => uid_of(u).map(|uid| (format!("server.user '{u}'"), uid)),
        None => uid_of("taskmaster").map(|uid| ("server.user defaults to 'taskmaster'".to_owned(), uid)),
    };
    let server = Server {
        logfile,
        logfile_maxbytes: c.value(&["server", "logfile_maxbytes"], rs.logfile_maxbytes, units::parse_size, 50 << 20),
        logfile_backups: rs.logfile_backups.unwrap_or(10),
        loglevel: c.value(&["server", "loglevel"], rs.loglevel, LogLevel::parse, LogLevel::Info),
        program_syslog: syslog.clone().unwrap_or_default(),
        syslog,
        pidfile,
        user: rs.user,
        umask: c.value(&["server", "umask"], rs.umask, units::parse_octal, 0o022),
        directory: server_directory,
        environment: server_env,
        daemon: rs.daemon.unwrap_or(false),
        minfds: rs.minfds.unwrap_or(1024),
        minprocs: rs.minprocs.unwrap_or(200),
        childlogdir,
    };

    let socket = socket_config(raw.socket, &here, &mut c);
    let ctl = ctl_config(raw.ctl, &here);
    let len = ConfigItem::server(&server, &socket, false).encode().len();
    if len > MAX_ITEM {
        c.error(&["socket"], format!("the server and socket sections are {}", too_large(len)));
    }

    let mut programs: Vec<Program> = Vec::new();
    let mut origin: Vec<(String, std::path::PathBuf, usize, usize)> = Vec::new();
    let mut add_programs = |c: &mut Checker<'_>, here: &Path, programs_raw: Option<BTreeMap<String, RawProgram>>| {
        for (name, rp) in programs_raw.unwrap_or_default() {
            let (line, col) = locate(c.text, &["programs", &name]);
            if let Err(e) = check_program_name(&name) {
                c.error(&["programs", &name], e);
                continue;
            }
            if let Some((_, f, l, col0)) = origin.iter().find(|o| o.0 == name) {
                let first = format!("{}:{l}:{col0}", f.display());
                c.error(&["programs", &name], format!("program '{name}' is defined twice: first at {first}"));
                continue;
            }
            origin.push((name.clone(), c.file.to_path_buf(), line, col));
            let p = program(&name, rp, here, ctx, c);
            if let (Some((sup, sup_uid)), Some(u)) = (&supervisor, &p.user) {
                if uid_of(u) == Some(*sup_uid) {
                    c.error(&["programs", &name, "user"], format!("programs.{name}.user '{u}' is the supervisor's own user ({sup}); give the program another user"));
                }
            }
            // The spawner sends each program to the supervisor as one bounded item: one that
            // does not fit would be refused there, so it is refused here, where `-t` sees it.
            let len = ConfigItem::program(&p).encode().len();
            if len > MAX_ITEM {
                c.error(&["programs", &name], format!("programs.{name} is {}", too_large(len)));
            }
            programs.push(p);
        }
    };
    add_programs(&mut c, &here, raw.programs);
    let mut errors = std::mem::take(&mut c.errors);
    for inc in sources {
        let inc_here = inc.file.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut ic = Checker { file: &inc.file, text: &inc.text, errors: Vec::new(), check_users: ctx.check_users };
        for (key, present) in [
            ("include", inc.raw.include.is_some()),
            ("server", inc.raw.server.is_some()),
            ("socket", inc.raw.socket.is_some()),
            ("ctl", inc.raw.ctl.is_some()),
        ] {
            if present {
                ic.error(&[key], format!("'{key}' is not allowed in an included file: it may define only programs"));
            }
        }
        add_programs(&mut ic, &inc_here, inc.raw.programs);
        errors.extend(ic.errors);
    }
    c.errors = errors;
    programs.sort_by(|a, b| a.name.cmp(&b.name));

    if c.errors.is_empty() {
        Ok(Config { file: file.to_path_buf(), here, server, socket, ctl, programs })
    } else {
        Err(ConfigError { errors: c.errors })
    }
}

/// `socket:` with defaults; used by the daemon (checked) and by taskmasterctl.
pub(super) fn socket_config(raw: Option<RawSocket>, here: &Path, c: &mut impl ErrorSink) -> SocketConfig {
    let rs = raw.unwrap_or_default();
    let chown = rs.chown.as_deref().map(|s| match s.split_once(':') {
        Some((u, g)) => (u.to_owned(), Some(g.to_owned())),
        None => (s.to_owned(), None),
    });
    let mut access = Vec::new();
    for (i, rule) in rs.access.unwrap_or_default().into_iter().enumerate() {
        let idx = i.to_string();
        let subject = match (rule.user, rule.group) {
            (Some(u), None) => Subject::User(u),
            (None, Some(g)) => Subject::Group(g),
            _ => {
                c.sink(&["socket", "access"], format!("access rule {idx}: give exactly one of user or group"));
                continue;
            }
        };
        access.push(AccessRule { subject, role: rule.role, programs: rule.programs.unwrap_or_default() });
    }
    for rule in &access {
        let (kind, name, known) = match &rule.subject {
            Subject::User(u) => ("user", u, matches!(nix::unistd::User::from_name(u), Ok(Some(_)))),
            Subject::Group(g) => ("group", g, matches!(nix::unistd::Group::from_name(g), Ok(Some(_)))),
        };
        if !known && c.checks_names() {
            c.sink(&["socket", "access"], format!("socket.access: unknown {kind} '{name}'"));
        }
        for p in &rule.programs {
            if glob::Pattern::new(p).is_err() {
                c.sink(&["socket", "access"], format!("socket.access: bad program glob '{p}'"));
            }
        }
    }
    let chmod = match rs.chmod.map(|Scalar(s)| units::parse_octal(&s)) {
        None => 0o700,
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            c.sink(&["socket", "chmod"], format!("socket.chmod: {e}"));
            0o700
        }
    };
    let auth = rs.auth.map(|a| Auth { username: a.username, password_hash: a.password_hash });
    if let Some(a) = &auth {
        if argon2::password_hash::PasswordHash::new(&a.password_hash).is_err() {
            c.sink(
                &["socket", "auth", "password_hash"],
                "socket.auth.password_hash: not a password hash: make one with `taskmasterd --hash-password`".into(),
            );
        }
    }
    SocketConfig {
        path: rs.path.as_deref().map_or_else(default_socket_path, |p| absolute(here, p)),
        chmod,
        chown,
        access,
        auth,
    }
}

/// `ctl:` with defaults.
pub(super) fn ctl_config(raw: Option<RawCtl>, here: &Path) -> CtlConfig {
    let rc = raw.unwrap_or_default();
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    let history_file = match rc.history_file {
        Some(p) if p.starts_with("~/") => home.join(&p[2..]),
        Some(p) => absolute(here, &p),
        None => home.join(".taskmaster_history"),
    };
    CtlConfig { prompt: rc.prompt.unwrap_or_else(|| "taskmaster".into()), history_file }
}

/// Where located errors go: the daemon collects them, taskmasterctl ignores them.
pub(super) trait ErrorSink {
    fn sink(&mut self, path: &[&str], message: String);
    /// Whether user and group names must exist.
    fn checks_names(&self) -> bool {
        false
    }
}

impl ErrorSink for Checker<'_> {
    fn sink(&mut self, path: &[&str], message: String) {
        self.error(path, message);
    }
    fn checks_names(&self) -> bool {
        self.check_users
    }
}

/// Discards errors (taskmasterctl reads only what it can).
pub(super) struct Ignore;

impl ErrorSink for Ignore {
    fn sink(&mut self, _: &[&str], _: String) {}
}

fn program(name: &str, rp: RawProgram, here: &Path, ctx: &Context, c: &mut Checker<'_>) -> Program {
    let at = |key: &'static str| ["programs", name, key];
    let here_s = here.display().to_string();
    let expand_at = |c: &mut Checker<'_>, key: &'static str, s: &str| match expand::expand_load(s, &here_s, Some(name))
    {
        Ok(v) => v,
        Err(e) => {
            c.error(&at(key), format!("programs.{name}.{key}: {e}"));
            s.to_owned()
        }
    };
    let command = match rp.command {
        Some(Command(argv)) if !argv.is_empty() && !argv[0].is_empty() => {
            argv.iter().map(|a| expand_at(c, "command", a)).collect()
        }
        Some(_) => {
            c.error(&at("command"), format!("programs.{name}.command: empty command"));
            Vec::new()
        }
        None => {
            c.error(
                &["programs", name],
                format!("programs.{name}: missing key 'command' (or 'cmd'): every program needs one"),
            );
            Vec::new()
        }
    };
    let numprocs = rp.numprocs.unwrap_or(1);
    if numprocs == 0 {
        c.error(&at("numprocs"), format!("programs.{name}.numprocs: must be at least 1"));
    }
    if let Some(u) = &rp.user {
        if !ctx.is_root {
            if ctx.current_user.as_deref() != Some(u.as_str()) {
                let me = ctx.current_user.as_deref().unwrap_or("another user");
                c.error(
                    &at("user"),
                    format!("programs.{name}.user: '{u}' needs taskmasterd to start as root (it runs as {me})"),
                );
            }
        } else if ctx.check_users && !user_exists(u) {
            c.error(&at("user"), format!("programs.{name}.user: unknown user '{u}'"));
        }
    }
    let pty = rp.pty.unwrap_or(false);
    let capabilities: Vec<String> = rp
        .capabilities
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            let up = c.to_ascii_uppercase();
            if up.starts_with("CAP_") {
                up
            } else {
                format!("CAP_{up}")
            }
        })
        .collect();
    for cap in &capabilities {
        if <caps::Capability as std::str::FromStr>::from_str(cap).is_err() {
            c.error(&at("capabilities"), format!("programs.{name}.capabilities: unknown capability '{cap}'"));
        }
    }
    if !capabilities.is_empty() {
        if !ctx.is_root {
            c.error(
                &at("capabilities"),
                format!("programs.{name}.capabilities: granting capabilities needs taskmasterd to start as root"),
            );
        } else if rp.user.as_deref().is_none_or(|u| u == "root") {
            c.error(&at("capabilities"), format!("programs.{name}.capabilities: give the program a non-root `user`: root holds every capability already"));
        }
    }
    let (stdout_syslog, stderr_syslog) = (rp.stdout_syslog.unwrap_or(false), rp.stderr_syslog.unwrap_or(false));
    let directory = rp.directory.as_deref().map(|d| absolute(here, &expand_at(c, "directory", d)));
    let environment: Vec<(String, String)> = env_list(rp.environment)
        .into_iter()
        .map(|(k, v)| {
            let v = expand_at(c, "environment", &v);
            (k, v)
        })
        .collect();
    let mut stream =
        |target: Option<LogPath>, key: &'static str, maxbytes: Option<Scalar>, backups: Option<u32>, syslog: bool| {
            StreamLog {
                target: match target.unwrap_or(LogPath::Auto) {
                    LogPath::Auto => LogTarget::Auto,
                    LogPath::None => LogTarget::None,
                    LogPath::Path(p) => {
                        let path_key = if key.starts_with("stdout") { "stdout_logfile" } else { "stderr_logfile" };
                        LogTarget::File(absolute(here, &expand_at(c, path_key, &p)))
                    }
                },
                maxbytes: c.value(&at(key), maxbytes, units::parse_size, 50 << 20),
                backups: backups.unwrap_or(10),
                syslog,
            }
        };
    let stdout = stream(
        rp.stdout_logfile,
        "stdout_logfile_maxbytes",
        rp.stdout_logfile_maxbytes,
        rp.stdout_logfile_backups,
        stdout_syslog,
    );
    let stderr = stream(
        rp.stderr_logfile,
        "stderr_logfile_maxbytes",
        rp.stderr_logfile_maxbytes,
        rp.stderr_logfile_backups,
        stderr_syslog,
    );
    let stopasgroup = rp.stopasgroup.unwrap_or(false);
    Program {
        name: name.to_owned(),
        command,
        numprocs,
        numprocs_start: rp.numprocs_start.unwrap_or(0),
        priority: rp.priority.unwrap_or(999),
        autostart: rp.autostart.unwrap_or(true),
        autorestart: c.value(&at("autorestart"), rp.autorestart, AutoRestart::parse, AutoRestart::Unexpected),
        exitcodes: rp.exitcodes.map_or_else(|| vec![0], |e| e.0),
        startsecs: rp.startsecs.unwrap_or(1),
        startretries: rp.startretries.unwrap_or(3),
        stopsignal: c.value(&at("stopsignal"), rp.stopsignal, signal_number, Signal::SIGTERM as i32),
        stopwaitsecs: rp.stopwaitsecs.unwrap_or(10),
        stopasgroup,
        killasgroup: stopasgroup || rp.killasgroup.unwrap_or(false),
        user: rp.user,
        directory,
        umask: rp.umask.is_some().then(|| c.value(&at("umask"), rp.umask, units::parse_octal, 0o022)),
        environment,
        stdout,
        stderr,
        redirect_stderr: rp.redirect_stderr.unwrap_or(false),
        pty,
        capabilities,
    }
}
