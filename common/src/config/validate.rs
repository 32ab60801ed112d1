//! Raw file -> model: defaults, absolute paths, the meaning of scalars (sizes, modes, signals,
//! levels), and the checks that span keys or need the system (users exist, root-only keys).
//! Every error is located at the key it is about (a list element at itself), by the position
//! the YAML parser gave it.

use super::diag::{ConfigError, Diag, Found, Pos};
use super::expand::{self, ExpandError};
use super::model::*;
use super::raw::*;
use crate::proto::spawn::{ConfigItem, MAX_ITEM};
use crate::units;
use nix::sys::signal::Signal;
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

/// Where the checks of one file put their errors, and whether names must exist.
pub(super) struct Checker<'a> {
    diag: &'a mut Diag,
    check_users: bool,
}

impl Checker<'_> {
    fn error(&mut self, at: Pos, message: String) {
        self.diag.error(at, message);
    }

    /// The meaning of an optional scalar, parsed by `parse`; when it does not parse, a located
    /// "{path}: expected {expected}, got …" and `default`.
    fn value<T>(
        &mut self,
        path: &str,
        raw: Option<Spanned<String>>,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
        default: T,
    ) -> T {
        let Some(raw) = raw else { return default };
        match parse(&raw.value) {
            Some(v) => v,
            None => {
                let got = self.diag.got(Found::Scalar(&raw.value));
                self.error(raw.pos, format!("{path}: expected {expected}, got {got}"));
                default
            }
        }
    }

    /// `s` with `%(…)s` expanded; on error, a located "{path}: …" and `s` unchanged.
    fn expand(&mut self, path: &str, s: &Spanned<String>, here: &str, program: Option<&str>) -> String {
        match expand::expand_load(&s.value, here, program) {
            Ok(v) => v,
            Err(e) => {
                let message = match &e {
                    ExpandError::Undefined(r) | ExpandError::NoFormat(r) if self.diag.quote(r).is_none() => {
                        "a %(…) reference is undefined or lacks its format (s or d)".to_owned()
                    }
                    _ => e.to_string(),
                };
                self.error(s.pos, format!("{path}: {message}"));
                s.value.clone()
            }
        }
    }
}

const SIZE: &str = "a size such as 50MB (a number with an optional KB, MB or GB)";
const OCTAL: &str = "an octal mode such as 022";

fn size(s: &str) -> Option<u64> {
    units::parse_size(s).ok()
}

fn octal(s: &str) -> Option<u32> {
    units::parse_octal(s).ok()
}

fn absolute(here: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        here.join(p)
    }
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
    /// What it says.
    pub raw: RawFile,
    /// Its problems so far (from parsing), and where the checks add theirs.
    pub diag: Diag,
}

/// Validates the main file (first) and the files it includes. Paths must be absolute.
///
/// # Errors
/// Every problem found, in these files' diagnostics or by the checks, each located at
/// file:line:col.
pub fn validate(sources: Vec<Source>, ctx: &Context) -> Result<Config, ConfigError> {
    let mut sources = sources.into_iter();
    let Some(Source { raw, mut diag }) = sources.next() else {
        return Err(ConfigError { errors: Vec::new() });
    };
    let file = diag.file().to_path_buf();
    let here = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let here_s = here.display().to_string();
    let mut c = Checker { diag: &mut diag, check_users: ctx.check_users };

    let rs = raw.server.map(|s| s.value).unwrap_or_default();
    let path_of = |c: &mut Checker<'_>, key: &str, v: &Spanned<String>| {
        absolute(&here, &c.expand(&format!("server.{key}"), v, &here_s, None))
    };
    let logfile = match &rs.logfile {
        Some(v) => path_of(&mut c, "logfile", v),
        None => here.join("taskmasterd.log"),
    };
    let childlogdir = match &rs.childlogdir {
        Some(d) => path_of(&mut c, "childlogdir", d),
        None => logfile.parent().unwrap_or(&here).to_path_buf(),
    };
    let pidfile = match &rs.pidfile {
        Some(v) => path_of(&mut c, "pidfile", v),
        None => here.join("taskmasterd.pid"),
    };
    let server_directory = rs.directory.as_ref().map(|d| path_of(&mut c, "directory", d));
    let server_env: Vec<(String, String)> =
        rs.environment.iter().map(|(k, v)| (k.clone(), c.expand("server.environment", v, &here_s, None))).collect();
    const FACILITIES: [&str; 20] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "local0",
        "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    ];
    let syslog = match rs.syslog.map(|s| s.value) {
        None | Some(RawSyslog::Enabled(false)) => None,
        Some(RawSyslog::Enabled(true)) => Some(SyslogTarget::default()),
        Some(RawSyslog::Detailed { facility, ident, socket }) => {
            let d = SyslogTarget::default();
            let facility = match facility {
                Some(f) => {
                    let name = f.value.to_ascii_lowercase();
                    if !FACILITIES.contains(&name.trim_start_matches("log_")) {
                        let got = c.diag.got(Found::Scalar(&f.value));
                        c.error(
                            f.pos,
                            format!("server.syslog.facility: expected a syslog facility such as daemon or local0, got {got}"),
                        );
                    }
                    name
                }
                None => d.facility,
            };
            Some(SyslogTarget {
                facility,
                ident: ident.map_or(d.ident, |i| i.value),
                socket: socket.map_or(d.socket, |s| absolute(&here, &s.value)),
            })
        }
    };
    if let Some(u) = &rs.user {
        let name = &u.value;
        if !ctx.is_root {
            if ctx.current_user.as_deref() != Some(name) {
                let message = c.diag.named("server.user", name);
                c.error(u.pos, format!("{message} needs taskmasterd to start as root"));
            }
        } else if ctx.check_users && !user_exists(name) {
            let message = c.diag.named("unknown user", name);
            c.error(u.pos, format!("server.user: {message}"));
        } else if ctx.check_users && is_nobody(name) {
            // nobody is everybody's: programs run as it, and any of them could trace the
            // supervisor (DESIGN §1 rule 4).
            c.error(u.pos, "server.user must be a user of its own, not nobody".to_owned());
        }
    }
    // The supervisor's user as root (a dynamic uid has no name, so no program can name it).
    let supervisor = match &rs.user {
        _ if !(ctx.is_root && ctx.check_users) => None,
        Some(u) => uid_of(&u.value).map(|uid| (c.diag.named("server.user", &u.value), uid)),
        None => uid_of("taskmaster").map(|uid| ("server.user defaults to 'taskmaster'".to_owned(), uid)),
    };
    let server = Server {
        logfile,
        logfile_maxbytes: c.value("server.logfile_maxbytes", rs.logfile_maxbytes, size, SIZE, 50 << 20),
        logfile_backups: rs.logfile_backups.map_or(10, |v| v.value),
        loglevel: c.value(
            "server.loglevel",
            rs.loglevel,
            LogLevel::parse,
            "debug, info, warn, error or critical",
            LogLevel::Info,
        ),
        program_syslog: syslog.clone().unwrap_or_default(),
        syslog,
        pidfile,
        user: rs.user.map(|u| u.value),
        umask: c.value("server.umask", rs.umask, octal, OCTAL, 0o022),
        directory: server_directory,
        environment: server_env,
        daemon: rs.daemon.is_some_and(|v| v.value),
        minfds: rs.minfds.map_or(1024, |v| v.value),
        minprocs: rs.minprocs.map_or(200, |v| v.value),
        childlogdir,
    };

    let socket_pos = raw.socket.as_ref().map_or(Pos { line: 1, column: 1 }, |s| s.pos);
    let socket = socket_config(raw.socket.map(|s| s.value), &here, Some(&mut c));
    let ctl = ctl_config(raw.ctl.map(|s| s.value), &here);
    let len = ConfigItem::server(&server, &socket, false).encode().len();
    if len > MAX_ITEM {
        c.error(socket_pos, format!("the server and socket sections are {}", too_large(len)));
    }

    let mut programs: Vec<Program> = Vec::new();
    let mut origin: Vec<(String, PathBuf, Pos)> = Vec::new();
    let mut add_programs = |c: &mut Checker<'_>, here: &Path, programs_raw: Vec<RawProgram>| {
        for rp in programs_raw {
            let name = rp.name.value.clone();
            let at = rp.name.pos;
            if let Some((_, f, first)) = origin.iter().find(|o| o.0 == name) {
                let first = format!("{}:{first}", f.display());
                c.error(at, format!("program '{name}' is defined twice: first at {first}"));
                continue;
            }
            origin.push((name.clone(), c.diag.file().to_path_buf(), at));
            let p = program(&name, rp, here, ctx, c);
            if let (Some((sup, sup_uid)), Some(u)) = (&supervisor, &p.user) {
                if uid_of(u) == Some(*sup_uid) {
                    let who = c.diag.named(&format!("programs.{name}.user"), u);
                    c.error(
                        p.user_pos.unwrap_or(at),
                        format!("{who} is the supervisor's own user ({sup}); give the program another user"),
                    );
                }
            }
            // The spawner sends each program to the supervisor as one bounded item: one that
            // does not fit would be refused there, so it is refused here, where `-t` sees it.
            let len = ConfigItem::program(&p).encode().len();
            if len > MAX_ITEM {
                c.error(at, format!("programs.{name} is {}", too_large(len)));
            }
            programs.push(p.program);
        }
    };
    add_programs(&mut c, &here, raw.programs);
    let mut errors = diag.into_errors();
    for Source { raw: inc, diag: mut inc_diag } in sources {
        let inc_here = inc_diag.file().parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut ic = Checker { diag: &mut inc_diag, check_users: ctx.check_users };
        let include_pos = inc.include.as_ref().map(|s| s.pos);
        for (key, at) in [
            ("include", include_pos),
            ("server", inc.server.as_ref().map(|s| s.pos)),
            ("socket", inc.socket.as_ref().map(|s| s.pos)),
            ("ctl", inc.ctl.as_ref().map(|s| s.pos)),
        ] {
            if let Some(at) = at {
                ic.error(at, format!("'{key}' is not allowed in an included file: it may define only programs"));
            }
        }
        add_programs(&mut ic, &inc_here, inc.programs);
        errors.extend(inc_diag.into_errors());
    }
    programs.sort_by(|a, b| a.name.cmp(&b.name));

    if errors.is_empty() {
        Ok(Config { file, here, server, socket, ctl, programs })
    } else {
        Err(ConfigError::sorted(errors))
    }
}

/// `socket:` with defaults; used by the daemon (checked, with `c`) and by taskmasterctl
/// (`None`: nothing checked, nothing reported).
pub(super) fn socket_config(raw: Option<RawSocket>, here: &Path, mut c: Option<&mut Checker<'_>>) -> SocketConfig {
    let rs = raw.unwrap_or_default();
    let chown = rs.chown.map(|s| match s.value.split_once(':') {
        Some((u, g)) => (u.to_owned(), Some(g.to_owned())),
        None => (s.value, None),
    });
    let mut access = Vec::new();
    for rule in rs.access {
        let path = format!("socket.access[{}]", rule.index);
        let subject = match (rule.user, rule.group) {
            (Some(u), None) => Spanned { value: Subject::User(u.value), pos: u.pos },
            (None, Some(g)) => Spanned { value: Subject::Group(g.value), pos: g.pos },
            _ => {
                if let Some(c) = c.as_deref_mut() {
                    c.error(rule.pos, format!("{path}: give exactly one of 'user' or 'group'"));
                }
                continue;
            }
        };
        if let Some(c) = c.as_deref_mut() {
            let (kind, name, known) = match &subject.value {
                Subject::User(u) => ("user", u, matches!(nix::unistd::User::from_name(u), Ok(Some(_)))),
                Subject::Group(g) => ("group", g, matches!(nix::unistd::Group::from_name(g), Ok(Some(_)))),
            };
            if !known && c.check_users {
                let message = c.diag.named(&format!("unknown {kind}"), name);
                c.error(subject.pos, format!("{path}.{kind}: {message}"));
            }
            for (i, p) in rule.programs.iter().enumerate() {
                if glob::Pattern::new(&p.value).is_err() {
                    let message = c.diag.named("bad program glob", &p.value);
                    c.error(p.pos, format!("{path}.programs[{i}]: {message}"));
                }
            }
        }
        let programs = rule.programs.into_iter().map(|p| p.value).collect();
        access.push(AccessRule { subject: subject.value, role: rule.role, programs });
    }
    let chmod = match c.as_deref_mut() {
        Some(c) => c.value("socket.chmod", rs.chmod, octal, "an octal mode such as 0700", 0o700),
        None => rs.chmod.and_then(|m| octal(&m.value)).unwrap_or(0o700),
    };
    let auth = rs.auth.map(|a| {
        let a = a.value;
        if let Some(c) = c {
            if argon2::password_hash::PasswordHash::new(&a.password_hash.value).is_err() {
                c.error(
                    a.password_hash.pos,
                    "socket.auth.password_hash: not a password hash: make one with `taskmasterd --hash-password`"
                        .into(),
                );
            }
        }
        Auth { username: a.username, password_hash: a.password_hash.value }
    });
    SocketConfig {
        path: rs.path.as_ref().map_or_else(default_socket_path, |p| absolute(here, &p.value)),
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
    let history_file = match rc.history_file.map(|h| h.value) {
        Some(p) if p.starts_with("~/") => home.join(&p[2..]),
        Some(p) => absolute(here, &p),
        None => home.join(".taskmaster_history"),
    };
    CtlConfig { prompt: rc.prompt.map_or_else(|| "taskmaster".into(), |p| p.value), history_file }
}

/// A program and where its `user` key is.
struct Checked {
    program: Program,
    user_pos: Option<Pos>,
}

impl std::ops::Deref for Checked {
    type Target = Program;
    fn deref(&self) -> &Program {
        &self.program
    }
}

fn program(name: &str, rp: RawProgram, here: &Path, ctx: &Context, c: &mut Checker<'_>) -> Checked {
    let key = |k: &str| format!("programs.{name}.{k}");
    let here_s = here.display().to_string();
    let expand = |c: &mut Checker<'_>, k: &str, s: &Spanned<String>| c.expand(&key(k), s, &here_s, Some(name));
    let command = match rp.command {
        Some(argv) if !argv.value.is_empty() && !argv.value[0].is_empty() => {
            argv.value.iter().map(|a| expand(c, "command", &Spanned { value: a.clone(), pos: argv.pos })).collect()
        }
        Some(argv) => {
            c.error(argv.pos, format!("{}: empty command", key("command")));
            Vec::new()
        }
        // Reported as missing by raw.rs.
        None => Vec::new(),
    };
    let numprocs = rp.numprocs.as_ref().map_or(1, |n| n.value);
    if let Some(n) = rp.numprocs.as_ref().filter(|n| n.value == 0) {
        c.error(n.pos, format!("{}: must be at least 1", key("numprocs")));
    }
    if let Some(u) = &rp.user {
        if !ctx.is_root {
            if ctx.current_user.as_deref() != Some(u.value.as_str()) {
                let me = ctx.current_user.as_deref().unwrap_or("another user");
                let who = c.diag.quote(&u.value).map(|q| format!("{q} ")).unwrap_or_else(|| "another user ".into());
                c.error(u.pos, format!("{}: {who}needs taskmasterd to start as root (it runs as {me})", key("user")));
            }
        } else if ctx.check_users && !user_exists(&u.value) {
            let message = c.diag.named("unknown user", &u.value);
            c.error(u.pos, format!("{}: {message}", key("user")));
        }
    }
    let pty = rp.pty.is_some_and(|v| v.value);
    let mut capabilities = Vec::new();
    for cap in &rp.capabilities {
        let up = cap.value.to_ascii_uppercase();
        let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
        if <caps::Capability as std::str::FromStr>::from_str(&full).is_err() {
            let message = c.diag.named("unknown capability", &full);
            c.error(cap.pos, format!("{}: {message}", key("capabilities")));
        }
        capabilities.push(full);
    }
    if let Some(first) = rp.capabilities.first() {
        if !ctx.is_root {
            c.error(
                first.pos,
                format!("{}: granting capabilities needs taskmasterd to start as root", key("capabilities")),
            );
        } else if rp.user.as_ref().is_none_or(|u| u.value == "root") {
            c.error(
                first.pos,
                format!(
                    "{}: give the program a non-root `user`: root holds every capability already",
                    key("capabilities")
                ),
            );
        }
    }
    let directory = rp.directory.as_ref().map(|d| absolute(here, &expand(c, "directory", d)));
    let environment: Vec<(String, String)> = rp
        .environment
        .iter()
        .map(|(k, v)| {
            let at = if c.diag.quote(k).is_some() && super::diag::plain(k) {
                format!("environment.{k}")
            } else {
                "environment".to_owned()
            };
            (k.clone(), expand(c, &at, v))
        })
        .collect();
    let stream = |c: &mut Checker<'_>,
                  target: Option<Spanned<LogPath>>,
                  path_key: &str,
                  maxbytes: Option<Spanned<String>>,
                  backups: Option<Spanned<u32>>,
                  syslog: Option<Spanned<bool>>| StreamLog {
        target: match target {
            None => LogTarget::Auto,
            Some(t) => match t.value {
                LogPath::Auto => LogTarget::Auto,
                LogPath::None => LogTarget::None,
                LogPath::Path(p) => {
                    LogTarget::File(absolute(here, &expand(c, path_key, &Spanned { value: p, pos: t.pos })))
                }
            },
        },
        maxbytes: c.value(&key(&format!("{path_key}_maxbytes")), maxbytes, size, SIZE, 50 << 20),
        backups: backups.map_or(10, |b| b.value),
        syslog: syslog.is_some_and(|s| s.value),
    };
    let stdout = stream(
        c,
        rp.stdout_logfile,
        "stdout_logfile",
        rp.stdout_logfile_maxbytes,
        rp.stdout_logfile_backups,
        rp.stdout_syslog,
    );
    let stderr = stream(
        c,
        rp.stderr_logfile,
        "stderr_logfile",
        rp.stderr_logfile_maxbytes,
        rp.stderr_logfile_backups,
        rp.stderr_syslog,
    );
    let stopasgroup = rp.stopasgroup.is_some_and(|v| v.value);
    let signal = |s: &str| units::parse_signal(s).ok().map(|s| s as i32);
    let stopsignal = match rp.stopsignal {
        None => Signal::SIGTERM as i32,
        Some(s) => signal(&s.value).unwrap_or_else(|| {
            let message = c.diag.named("unknown signal", &s.value);
            c.error(s.pos, format!("{}: {message}", key("stopsignal")));
            Signal::SIGTERM as i32
        }),
    };
    let umask = rp.umask.map(|u| c.value(&key("umask"), Some(u), octal, OCTAL, 0o022));
    let user_pos = rp.user.as_ref().map(|u| u.pos);
    let program = Program {
        name: name.to_owned(),
        command,
        numprocs,
        numprocs_start: rp.numprocs_start.map_or(0, |v| v.value),
        priority: rp.priority.map_or(999, |v| v.value),
        autostart: rp.autostart.is_none_or(|v| v.value),
        autorestart: c.value(
            &key("autorestart"),
            rp.autorestart,
            AutoRestart::parse,
            "always, never or unexpected",
            AutoRestart::Unexpected,
        ),
        exitcodes: rp.exitcodes.map_or_else(|| vec![0], |e| e.value),
        startsecs: rp.startsecs.map_or(1, |v| v.value),
        startretries: rp.startretries.map_or(3, |v| v.value),
        stopsignal,
        stopwaitsecs: rp.stopwaitsecs.map_or(10, |v| v.value),
        stopasgroup,
        killasgroup: stopasgroup || rp.killasgroup.is_some_and(|v| v.value),
        cleanupgroup: rp.cleanupgroup.is_none_or(|v| v.value),
        user: rp.user.map(|u| u.value),
        directory,
        umask,
        environment,
        stdout,
        stderr,
        redirect_stderr: rp.redirect_stderr.is_some_and(|v| v.value),
        pty,
        capabilities,
    };
    Checked { program, user_pos }
}
