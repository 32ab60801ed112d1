//! The validated config: every default applied, every path absolute, every value typed.

use super::raw::{AutoRestart, LogLevel, Role};
use crate::names::ProcessName;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A whole validated config (DESIGN §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The main config file, absolute.
    pub file: PathBuf,
    /// Its directory: what relative paths resolve against (`%(here)s`).
    pub here: PathBuf,
    /// `server:`.
    pub server: Server,
    /// `socket:`.
    pub socket: SocketConfig,
    /// `ctl:`.
    pub ctl: CtlConfig,
    /// `programs:`, sorted by name.
    pub programs: Vec<Program>,
}

/// `server:` with defaults applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Server {
    /// Main log file (default `taskmasterd.log` beside the config).
    pub logfile: PathBuf,
    /// Bytes before the main log rotates (default 50 MiB).
    pub logfile_maxbytes: u64,
    /// Rotated main logs kept (default 10).
    pub logfile_backups: u32,
    /// Lowest level written (default info).
    pub loglevel: LogLevel,
    /// Syslog target of the main log, if any.
    pub syslog: Option<SyslogTarget>,
    /// Where program lines go when a program sets `stdout_syslog`/`stderr_syslog`: the same
    /// facility and socket as `syslog`, or the defaults.
    pub program_syslog: SyslogTarget,
    /// Pid file (default `taskmasterd.pid` beside the config).
    pub pidfile: PathBuf,
    /// User the supervisor runs as when started as root (default `taskmaster` if that user exists,
    /// else a dynamic uid; never `nobody` nor a program's `user`).
    pub user: Option<String>,
    /// The daemon's umask (default 0o022).
    pub umask: u32,
    /// Directory the daemon changes to when it detaches.
    pub directory: Option<PathBuf>,
    /// Variables added to every child's environment.
    pub environment: Vec<(String, String)>,
    /// Detach from the terminal (`-d`).
    pub daemon: bool,
    /// RLIMIT_NOFILE the spawner raises its soft limit to, as supervisord's `minfds` (default 1024).
    pub minfds: u64,
    /// RLIMIT_NPROC the spawner raises its soft limit to, as supervisord's `minprocs` (default 200).
    pub minprocs: u64,
    /// Directory of `AUTO` child logs (default: the main log's directory).
    pub childlogdir: PathBuf,
}

/// A local syslog destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyslogTarget {
    /// Facility name (`daemon`, `local0` …).
    pub facility: String,
    /// Tag of the main log's lines (program lines are tagged with the process name).
    pub ident: String,
    /// The syslog daemon's socket (default `/dev/log`).
    pub socket: PathBuf,
}

impl Default for SyslogTarget {
    fn default() -> Self {
        SyslogTarget { facility: "daemon".into(), ident: "taskmasterd".into(), socket: PathBuf::from("/dev/log") }
    }
}

/// `socket:` with defaults applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SocketConfig {
    /// Socket path.
    pub path: PathBuf,
    /// Socket file mode (default 0o700).
    pub chmod: u32,
    /// Owner and optional group given to the socket file.
    pub chown: Option<(String, Option<String>)>,
    /// Access rules (DESIGN §8); empty: every peer that can connect is admin.
    pub access: Vec<AccessRule>,
    /// Password authentication, if configured.
    pub auth: Option<Auth>,
}

/// One `socket.access` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessRule {
    /// Whom it matches.
    pub subject: Subject,
    /// What they may do.
    pub role: Role,
    /// Program globs the rule is narrowed to; empty: every program.
    pub programs: Vec<String>,
}

/// The subject of an access rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Subject {
    /// A user name.
    User(String),
    /// A group name.
    Group(String),
}

/// `socket.auth`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    /// The user name clients present.
    pub username: String,
    /// The argon2 PHC hash of the password.
    pub password_hash: String,
}

/// `ctl:` with defaults applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CtlConfig {
    /// Shell prompt without the trailing `> ` (default `taskmaster`).
    pub prompt: String,
    /// Shell history file (default `~/.taskmaster_history`).
    pub history_file: PathBuf,
}

/// Where one stream of a program goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogTarget {
    /// Discarded: the child gets /dev/null and no pipe exists.
    None,
    /// `{childlogdir}/{process}-{stream}.log`, one file per instance.
    Auto,
    /// This file (absolute).
    File(PathBuf),
}

/// Logging of one stream (stdout or stderr) of a program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamLog {
    /// Where it goes.
    pub target: LogTarget,
    /// Bytes before rotation (default 50 MiB; 0: never rotate).
    pub maxbytes: u64,
    /// Rotated files kept (default 10).
    pub backups: u32,
    /// Also send lines to syslog.
    pub syslog: bool,
}

/// Which output stream of a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stream {
    /// fd 1.
    Stdout,
    /// fd 2.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One `programs.NAME` with defaults applied (DESIGN §3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// The key under `programs:`.
    pub name: String,
    /// argv; `command[0]` is looked up in PATH when it has no `/`.
    pub command: Vec<String>,
    /// Instances run (default 1).
    pub numprocs: u32,
    /// First instance number (default 0).
    pub numprocs_start: u32,
    /// Start order, ascending; stop order, descending (default 999).
    pub priority: i32,
    /// Started when the daemon starts (default true).
    pub autostart: bool,
    /// Restart policy after an exit from RUNNING (default unexpected).
    pub autorestart: AutoRestart,
    /// Exit codes that count as expected (default [0]).
    pub exitcodes: Vec<i32>,
    /// Seconds a process must stay up to be RUNNING, as supervisord's `startsecs` (default 1).
    pub startsecs: u64,
    /// Failed starts retried before FATAL, as supervisord's `startretries` (default 3).
    pub startretries: u32,
    /// Signal number sent by `stop` (default SIGTERM).
    pub stopsignal: i32,
    /// Seconds between the stop signal and SIGKILL, as supervisord's `stopwaitsecs` (default 10).
    pub stopwaitsecs: u64,
    /// Send the stop signal to the process group.
    pub stopasgroup: bool,
    /// Send SIGKILL to the process group (implied by stopasgroup, as in supervisord).
    pub killasgroup: bool,
    /// When the main process exits, end what is left of its process group (its cgroup where
    /// one is delegated): SIGTERM, then SIGKILL after `stopwaitsecs`, before the exit is
    /// reported and the program restarted (default true; false keeps supervisord's behaviour
    /// of leaving them running). Differs from supervisord, which has no such key.
    pub cleanupgroup: bool,
    /// User to run as (root only).
    pub user: Option<String>,
    /// Working directory (absolute).
    pub directory: Option<PathBuf>,
    /// umask of the child (default: inherited from the daemon).
    pub umask: Option<u32>,
    /// Program environment, added after `server.environment`.
    pub environment: Vec<(String, String)>,
    /// stdout logging.
    pub stdout: StreamLog,
    /// stderr logging (unused when `redirect_stderr`).
    pub stderr: StreamLog,
    /// stderr goes to stdout's pipe.
    pub redirect_stderr: bool,
    /// Run on a pseudo-terminal.
    pub pty: bool,
    /// Ambient capabilities granted to a non-root child.
    pub capabilities: Vec<String>,
}

impl Program {
    /// The instance numbers, `numprocs_start .. numprocs_start + numprocs`.
    pub fn instances(&self) -> std::ops::Range<u32> {
        self.numprocs_start..self.numprocs_start.saturating_add(self.numprocs)
    }

    /// This program as instance `instance` runs it: `%(process_num)d` expanded in the command,
    /// directory, environment and log paths (supervisord's per-process expansion).
    pub fn for_instance(&self, instance: u32) -> Program {
        let x = |s: &str| super::expand::expand_instance(s, instance);
        let mut p = self.clone();
        p.command = p.command.iter().map(|a| x(a)).collect();
        p.directory = p.directory.as_ref().map(|d| PathBuf::from(x(&d.to_string_lossy())));
        p.environment = p.environment.iter().map(|(k, v)| (k.clone(), x(v))).collect();
        for log in [&mut p.stdout, &mut p.stderr] {
            if let LogTarget::File(f) = &log.target {
                log.target = LogTarget::File(PathBuf::from(x(&f.to_string_lossy())));
            }
        }
        p
    }

    /// The process name of one instance.
    pub fn process_name(&self, instance: u32) -> ProcessName {
        ProcessName::new(&self.name, instance, self.numprocs)
    }

    /// The file a stream of one instance is written to; `None` when it is discarded (or, for
    /// stderr, redirected to stdout).
    pub fn log_file(&self, stream: Stream, instance: u32, childlogdir: &std::path::Path) -> Option<PathBuf> {
        let log = match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr if self.redirect_stderr => return None,
            Stream::Stderr => &self.stderr,
        };
        match &log.target {
            LogTarget::None => None,
            LogTarget::File(p) => Some(PathBuf::from(super::expand::expand_instance(&p.to_string_lossy(), instance))),
            LogTarget::Auto => {
                let name = self.process_name(instance).to_string().replace(':', "_");
                Some(childlogdir.join(format!("{name}-{}.log", stream.as_str())))
            }
        }
    }

    /// The stream's log settings.
    pub fn stream(&self, stream: Stream) -> &StreamLog {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }
}

/// The socket path used when none is configured: `/run/taskmaster/taskmaster.sock` for root,
/// else `$XDG_RUNTIME_DIR/taskmaster.sock`, else `/tmp/taskmaster-$UID.sock` (DESIGN §3).
pub fn default_socket_path() -> PathBuf {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/taskmaster/taskmaster.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("taskmaster.sock"),
        _ => PathBuf::from(format!("/tmp/taskmaster-{uid}.sock")),
    }
}
