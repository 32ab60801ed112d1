//! The YAML file as written: every key of DESIGN §3 with its aliases, nothing defaulted yet.
//!
//! Structure only: unknown keys are refused (`deny_unknown_fields`, turned into a "did you mean"
//! hint by `load.rs`) and scalars are kept as the text written. Their meaning (umask, size,
//! signal …) is parsed in `validate.rs`, which locates each error at its key: serde_yaml would
//! place an error raised inside a value at the enclosing mapping.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A whole config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// Globs of further files whose `programs` join this one's.
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// The `server:` section.
    #[serde(default)]
    pub server: Option<RawServer>,
    /// The `socket:` section.
    #[serde(default)]
    pub socket: Option<RawSocket>,
    /// The `ctl:` section.
    #[serde(default)]
    pub ctl: Option<RawCtl>,
    /// The `programs:` section, by name.
    #[serde(default)]
    pub programs: Option<BTreeMap<String, RawProgram>>,
}

/// What taskmasterctl reads of a config file: `socket` and `ctl`, every other key ignored
/// (DESIGN §7: the ctl neither validates nor expands `programs`).
#[derive(Debug, Default, Deserialize)]
pub struct RawCtlView {
    /// The `socket:` section.
    #[serde(default)]
    pub socket: Option<RawSocket>,
    /// The `ctl:` section.
    #[serde(default)]
    pub ctl: Option<RawCtl>,
}

/// `server:` (DESIGN §3), as supervisord's `[supervisord]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // each field is the DESIGN §3 key of the same name
pub struct RawServer {
    pub logfile: Option<String>,
    pub logfile_maxbytes: Option<Scalar>,
    pub logfile_backups: Option<u32>,
    pub loglevel: Option<Scalar>,
    pub syslog: Option<RawSyslog>,
    pub pidfile: Option<String>,
    pub user: Option<String>,
    pub umask: Option<Scalar>,
    pub directory: Option<String>,
    #[serde(alias = "env")]
    pub environment: Option<BTreeMap<String, Scalar>>,
    pub daemon: Option<bool>,
    pub minfds: Option<u64>,
    pub minprocs: Option<u64>,
    pub childlogdir: Option<String>,
}

/// `server.syslog`: `true`/`false`, or a table naming facility and ident.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSyslog {
    /// `syslog: true`.
    Enabled(bool),
    /// `syslog: {facility: daemon, ident: taskmasterd, socket: /dev/log}`.
    Detailed {
        /// Syslog facility name, `daemon` by default.
        facility: Option<String>,
        /// Syslog ident, `taskmasterd` by default.
        ident: Option<String>,
        /// The local syslog socket, `/dev/log` by default (a taskmaster addition, for hosts
        /// and tests whose syslog listens elsewhere).
        socket: Option<String>,
    },
}

/// `socket:` (DESIGN §3, §8).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawSocket {
    #[serde(alias = "file")]
    pub path: Option<String>,
    pub chmod: Option<Scalar>,
    pub chown: Option<String>,
    pub access: Option<Vec<RawAccessRule>>,
    pub auth: Option<RawAuth>,
}

/// One `socket.access` rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawAccessRule {
    pub user: Option<String>,
    pub group: Option<String>,
    pub role: Role,
    pub programs: Option<Vec<String>>,
}

/// `socket.auth`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawAuth {
    pub username: String,
    pub password_hash: String,
}

/// `ctl:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawCtl {
    pub prompt: Option<String>,
    pub history_file: Option<String>,
}

/// One `programs.NAME` table, as supervisord's `[program:NAME]` plus the brief's aliases.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawProgram {
    #[serde(alias = "cmd")]
    pub command: Option<Command>,
    pub numprocs: Option<u32>,
    pub numprocs_start: Option<u32>,
    pub priority: Option<i32>,
    pub autostart: Option<bool>,
    pub autorestart: Option<Scalar>,
    pub exitcodes: Option<ExitCodes>,
    #[serde(alias = "starttime")]
    pub startsecs: Option<u64>,
    pub startretries: Option<u32>,
    pub stopsignal: Option<Scalar>,
    #[serde(alias = "stoptime")]
    pub stopwaitsecs: Option<u64>,
    pub stopasgroup: Option<bool>,
    pub killasgroup: Option<bool>,
    pub user: Option<String>,
    #[serde(alias = "workingdir")]
    pub directory: Option<String>,
    pub umask: Option<Scalar>,
    #[serde(alias = "env")]
    pub environment: Option<BTreeMap<String, Scalar>>,
    #[serde(alias = "stdout", default, deserialize_with = "log_path")]
    pub stdout_logfile: Option<LogPath>,
    #[serde(alias = "stderr", default, deserialize_with = "log_path")]
    pub stderr_logfile: Option<LogPath>,
    pub redirect_stderr: Option<bool>,
    pub stdout_logfile_maxbytes: Option<Scalar>,
    pub stderr_logfile_maxbytes: Option<Scalar>,
    pub stdout_logfile_backups: Option<u32>,
    pub stderr_logfile_backups: Option<u32>,
    pub stdout_syslog: Option<bool>,
    pub stderr_syslog: Option<bool>,
    pub pty: Option<bool>,
    pub capabilities: Option<Vec<String>>,
}

/// Reads any YAML scalar as its text: `42`, `true` and `"x"` give "42", "true" and "x".
struct ScalarText;

impl Visitor<'_> for ScalarText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar (string, number or boolean)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(ScalarText)
}

/// A scalar kept as the text it was written with (environment values: `ANSWER: 42` is "42").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar_text(d).map(Scalar)
    }
}

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
    /// Parses `debug`, `info`, `warn` (`warning`), `error` or `critical`.
    ///
    /// # Errors
    /// Any other word.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            "critical" => Ok(LogLevel::Critical),
            _ => Err(format!("invalid loglevel '{s}': expected debug, info, warn, error or critical")),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// status, tail, maintail, pid, avail.
    Viewer,
    /// viewer + start, stop, restart, signal, fg, clear.
    Operator,
    /// operator + reread, update, reload, shutdown.
    Admin,
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
    /// Parses `always`/`true`, `never`/`false`, `unexpected`/`onerror`.
    ///
    /// # Errors
    /// Any other word.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "true" | "always" | "yes" => Ok(AutoRestart::Always),
            "false" | "never" | "no" => Ok(AutoRestart::Never),
            "unexpected" | "onerror" => Ok(AutoRestart::Unexpected),
            _ => Err(format!("invalid autorestart '{s}': expected always, never or unexpected")),
        }
    }
}

/// `exitcodes`: one code or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitCodes(pub Vec<i32>);

impl<'de> Deserialize<'de> for ExitCodes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn code<E: de::Error>(s: &str) -> Result<i32, E> {
            match s.trim().parse::<i32>() {
                Ok(c) if (0..=255).contains(&c) => Ok(c),
                _ => Err(E::custom(format!("invalid exit code '{s}': expected 0 to 255"))),
            }
        }
        impl<'de> Visitor<'de> for V {
            type Value = ExitCodes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an exit code or a list of exit codes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExitCodes, E> {
                code(&v.to_string()).map(|c| ExitCodes(vec![c]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExitCodes, E> {
                code(&v.to_string()).map(|c| ExitCodes(vec![c]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExitCodes, E> {
                v.split(',').map(code).collect::<Result<_, _>>().map(ExitCodes)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ExitCodes, A::Error> {
                let mut out = Vec::new();
                while let Some(Scalar(s)) = seq.next_element::<Scalar>()? {
                    out.push(code(&s)?);
                }
                Ok(ExitCodes(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `command`: a string split as a POSIX shell would (no shell is run), or a list of arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(pub Vec<String>);

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command line string or a list of arguments")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Command, E> {
                shlex::split(v)
                    .map(Command)
                    .ok_or_else(|| E::custom(format!("cannot split command '{v}': unbalanced quotes or trailing '\\'")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
                let mut out = Vec::new();
                while let Some(Scalar(s)) = seq.next_element::<Scalar>()? {
                    out.push(s);
                }
                Ok(Command(out))
            }
        }
        d.deserialize_any(V)
    }
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

fn log_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LogPath>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<LogPath>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a path, AUTO, NONE or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Some(LogPath::None))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Some(LogPath::None))
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            let text = scalar_text(d)?;
            Ok(Some(match text.as_str() {
                "NONE" | "none" => LogPath::None,
                "AUTO" | "auto" => LogPath::Auto,
                "" => return Err(de::Error::custom("empty log path: use NONE to discard output")),
                _ => LogPath::Path(text),
            }))
        }
    }
    d.deserialize_option(V)
}
