//! The YAML file as written: every key of DESIGN §3 with its aliases, nothing defaulted yet, each
//! value with the position of its key (or, in a list, of itself) for the errors of
//! `validate.rs`. `read.rs` fills these from the YAML tree.

use super::diag::Pos;

/// A value and where its key (or, in a list, the value itself) was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where errors about it point.
    pub pos: Pos,
}

/// A whole config file.
#[derive(Debug, Default)]
pub struct RawFile {
    /// Globs of further files whose `programs` join this one's.
    pub include: Option<Spanned<Vec<Spanned<String>>>>,
    /// The `server:` section, at its key.
    pub server: Option<Spanned<RawServer>>,
    /// The `socket:` section, at its key.
    pub socket: Option<Spanned<RawSocket>>,
    /// The `ctl:` section, at its key.
    pub ctl: Option<Spanned<RawCtl>>,
    /// The `programs:` section, in file order (a name given twice is kept twice, for
    /// `validate.rs` to report with both places).
    pub programs: Vec<RawProgram>,
}

/// `server:` (DESIGN §3), as supervisord's `[supervisord]` section.
#[derive(Debug, Default)]
#[allow(missing_docs)] // each field is the DESIGN §3 key of the same name
pub struct RawServer {
    pub logfile: Option<Spanned<String>>,
    pub logfile_maxbytes: Option<Spanned<String>>,
    pub logfile_backups: Option<Spanned<u32>>,
    pub loglevel: Option<Spanned<String>>,
    pub syslog: Option<Spanned<RawSyslog>>,
    pub pidfile: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub umask: Option<Spanned<String>>,
    pub directory: Option<Spanned<String>>,
    pub environment: Vec<(String, Spanned<String>)>,
    pub daemon: Option<Spanned<bool>>,
    pub minfds: Option<Spanned<u64>>,
    pub minprocs: Option<Spanned<u64>>,
    pub childlogdir: Option<Spanned<String>>,
}

/// `server.syslog`: `true`/`false`, or a table naming facility and ident.
#[derive(Debug)]
pub enum RawSyslog {
    /// `syslog: true`.
    Enabled(bool),
    /// `syslog: {facility: daemon, ident: taskmasterd, socket: /dev/log}`.
    Detailed {
        /// Syslog facility name, `daemon` by default.
        facility: Option<Spanned<String>>,
        /// Syslog ident, `taskmasterd` by default.
        ident: Option<Spanned<String>>,
        /// The local syslog socket, `/dev/log` by default (a taskmaster addition, for hosts
        /// and tests whose syslog listens elsewhere).
        socket: Option<Spanned<String>>,
    },
}

/// `socket:` (DESIGN §3, §8).
#[derive(Debug, Default)]
#[allow(missing_docs)]
pub struct RawSocket {
    pub path: Option<Spanned<String>>,
    pub chmod: Option<Spanned<String>>,
    pub chown: Option<Spanned<String>>,
    pub access: Vec<RawAccessRule>,
    pub auth: Option<Spanned<RawAuth>>,
}

/// One `socket.access` rule, at its own place in the list.
#[derive(Debug)]
#[allow(missing_docs)]
pub struct RawAccessRule {
    /// Where the rule starts.
    pub pos: Pos,
    /// Its index in `socket.access`, from 0.
    pub index: usize,
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub role: Role,
    pub programs: Vec<Spanned<String>>,
}

/// `socket.auth`.
#[derive(Debug)]
#[allow(missing_docs)]
pub struct RawAuth {
    pub username: String,
    pub password_hash: Spanned<String>,
}

/// `ctl:`.
#[derive(Debug, Default)]
#[allow(missing_docs)]
pub struct RawCtl {
    pub prompt: Option<Spanned<String>>,
    pub history_file: Option<Spanned<String>>,
}

/// One `programs.NAME` table, as supervisord's `[program:NAME]` plus the brief's aliases.
#[derive(Debug, Default)]
#[allow(missing_docs)]
pub struct RawProgram {
    /// The key under `programs:`, at its place.
    pub name: Spanned<String>,
    pub command: Option<Spanned<Vec<String>>>,
    pub numprocs: Option<Spanned<u32>>,
    pub numprocs_start: Option<Spanned<u32>>,
    pub priority: Option<Spanned<i32>>,
    pub autostart: Option<Spanned<bool>>,
    pub autorestart: Option<Spanned<String>>,
    pub exitcodes: Option<Spanned<Vec<i32>>>,
    pub startsecs: Option<Spanned<u64>>,
    pub startretries: Option<Spanned<u32>>,
    pub stopsignal: Option<Spanned<String>>,
    pub stopwaitsecs: Option<Spanned<u64>>,
    pub stopasgroup: Option<Spanned<bool>>,
    pub killasgroup: Option<Spanned<bool>>,
    pub cleanupgroup: Option<Spanned<bool>>,
    pub user: Option<Spanned<String>>,
    pub directory: Option<Spanned<String>>,
    pub umask: Option<Spanned<String>>,
    pub environment: Vec<(String, Spanned<String>)>,
    pub stdout_logfile: Option<Spanned<LogPath>>,
    pub stderr_logfile: Option<Spanned<LogPath>>,
    pub redirect_stderr: Option<Spanned<bool>>,
    pub stdout_logfile_maxbytes: Option<Spanned<String>>,
    pub stderr_logfile_maxbytes: Option<Spanned<String>>,
    pub stdout_logfile_backups: Option<Spanned<u32>>,
    pub stderr_logfile_backups: Option<Spanned<u32>>,
    pub stdout_syslog: Option<Spanned<bool>>,
    pub stderr_syslog: Option<Spanned<bool>>,
    pub pty: Option<Spanned<bool>>,
    pub capabilities: Vec<Spanned<String>>,
}

/// Where a stream is logged: `AUTO` (a file in `childlogdir`), `NONE`/null (discarded), or a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogPath {
    /// `AUTO`: `{childlogdir}/{process}-{stream}.log`.
    Auto,
    /// `NONE` or null: the child gets /dev/null.
    None,
    /// A path, relative to the config file's directory.
    Path(String),
}

/// The top-level sections of a config file.
pub const SECTIONS: [&str; 5] = ["include", "server", "socket", "ctl", "programs"];
/// The keys of `server:`.
pub const SERVER_KEYS: &[&str] = &[
    "logfile",
    "logfile_maxbytes",
    "logfile_backups",
    "loglevel",
    "syslog",
    "pidfile",
    "user",
    "umask",
    "directory",
    "environment",
    "env",
    "daemon",
    "minfds",
    "minprocs",
    "childlogdir",
];
/// The keys of `server.syslog` as a table.
pub const SYSLOG_KEYS: &[&str] = &["facility", "ident", "socket"];
/// The keys of `socket:` (`file` is an alias of `path`).
pub const SOCKET_KEYS: &[&str] = &["path", "file", "chmod", "chown", "access", "auth"];
/// The keys of one `socket.access` rule.
pub const ACCESS_KEYS: &[&str] = &["user", "group", "role", "programs"];
/// The keys of `socket.auth`.
pub const AUTH_KEYS: &[&str] = &["username", "password_hash"];
/// The keys of `ctl:`.
pub const CTL_KEYS: &[&str] = &["prompt", "history_file"];
/// The keys of a program, with the brief's aliases.
pub const PROGRAM_KEYS: &[&str] = &[
    "command",
    "cmd",
    "numprocs",
    "numprocs_start",
    "priority",
    "autostart",
    "autorestart",
    "exitcodes",
    "startsecs",
    "starttime",
    "startretries",
    "stopsignal",
    "stopwaitsecs",
    "stoptime",
    "stopasgroup",
    "killasgroup",
    "cleanupgroup",
    "user",
    "directory",
    "workingdir",
    "umask",
    "environment",
    "env",
    "stdout_logfile",
    "stdout",
    "stderr_logfile",
    "stderr",
    "redirect_stderr",
    "stdout_logfile_maxbytes",
    "stderr_logfile_maxbytes",
    "stdout_logfile_backups",
    "stderr_logfile_backups",
    "stdout_syslog",
    "stderr_syslog",
    "pty",
    "capabilities",
];

/// `server.loglevel`, as supervisord's `loglevel` (its `trace`/`blather` are not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum LogLevel {
    /// Everything, including each control request.
    Debug,
    /// Process state changes (the default).
    Info,
    /// Refusals and recoverable trouble.
    Warn,
    /// Failures.
    Error,
    /// Failures that end the daemon.
    Critical,
}

impl LogLevel {
    /// Parses `debug`, `info`, `warn` (`warning`), `error` or `critical`, in any case; `None`
    /// for any other word.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" | "warning" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            "critical" => Some(LogLevel::Critical),
            _ => None,
        }
    }

    /// The name as the main log prints it: `INFO`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERRO",
            LogLevel::Critical => "CRIT",
        }
    }
}

/// A role of `socket.access` (DESIGN §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// status, tail, maintail, pid, avail.
    Viewer,
    /// viewer + start, stop, restart, signal, fg, clear.
    Operator,
    /// operator + reread, update, reload, shutdown.
    Admin,
}

impl Role {
    /// Parses `viewer`, `operator` or `admin`, in any case; `None` for any other word.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// When an exited process is started again, as supervisord's `autorestart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoRestart {
    /// Always (`true`, `always`).
    Always,
    /// Never (`false`, `never`).
    Never,
    /// When the exit code is not in `exitcodes` or a signal killed it (`unexpected`, `onerror`).
    Unexpected,
}

impl AutoRestart {
    /// Parses `always`/`true`/`yes`, `never`/`false`/`no`, `unexpected`/`onerror`, in any case;
    /// `None` for any other word.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "always" | "yes" => Some(AutoRestart::Always),
            "false" | "never" | "no" => Some(AutoRestart::Never),
            "unexpected" | "onerror" => Some(AutoRestart::Unexpected),
            _ => None,
        }
    }
}
