//! The actions, parsed by clap from words (command line or shell line) and carried out over a
//! client. One definition ([`Action`], a clap subcommand each) serves the one-shot command, the
//! shell, `help`, `--help`, the man page and completion, so they accept and show the same words.

use crate::client::Client;
use crate::exit::{CtlError, Outcome};
use crate::render;
use crate::sanitize::Sanitizer;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};
use common::proto::control::{self, ActionResult, AvailInfo, ProcessInfo};
use serde_json::{json, Map, Value};

/// A parsed action with its arguments. Each variant is a clap subcommand: its name is the
/// action's word, `about` its one line of help and `override_usage` the usage `help` shows.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum Action {
    /// `status [--json] [NAME…]`.
    #[command(
        disable_help_flag = true,
        args_override_self = true,
        override_usage = "status [--json] [NAME…]",
        about = "Show the state of every process, or of the named ones (exit 3 if one is not RUNNING)."
    )]
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Names; empty: all.
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// `start NAME…|all`.
    #[command(
        disable_help_flag = true,
        override_usage = "start NAME…|all",
        about = "Start processes; waits until they are RUNNING or have failed."
    )]
    Start(Names),
    /// `stop NAME…|all`.
    #[command(
        disable_help_flag = true,
        override_usage = "stop NAME…|all",
        about = "Stop processes, highest priority number first; waits until they have exited."
    )]
    Stop(Names),
    /// `restart NAME…|all`.
    #[command(disable_help_flag = true, override_usage = "restart NAME…|all", about = "Stop, then start processes.")]
    Restart(Names),
    /// `signal SIG NAME…|all`.
    #[command(
        disable_help_flag = true,
        override_usage = "signal SIG NAME…|all",
        about = "Send a signal (TERM, HUP, USR1, 9 …) to running processes."
    )]
    Signal {
        /// The signal as typed (checked, sent as typed).
        #[arg(value_name = "SIG", value_parser = signal_arg, allow_hyphen_values = true)]
        signal: String,
        /// Names.
        #[arg(value_name = "NAME", required = true, allow_hyphen_values = true, trailing_var_arg = true)]
        names: Vec<String>,
    },
    /// `pid [NAME…|all]`.
    #[command(
        disable_help_flag = true,
        override_usage = "pid [NAME…|all]",
        about = "Print the daemon's pid, or the named processes' pids, one a line (0: not running)."
    )]
    Pid {
        /// Names; empty: the daemon's pid.
        #[arg(value_name = "NAME", allow_hyphen_values = true, trailing_var_arg = true)]
        names: Vec<String>,
    },
    /// `tail [-f] [-BYTES] NAME [stdout|stderr]`.
    #[command(
        disable_help_flag = true,
        args_override_self = true,
        override_usage = "tail [-f] [-BYTES] NAME [stdout|stderr]",
        about = "Print the last bytes a process wrote (1600 by default); -f keeps following until Ctrl-C or Ctrl-D."
    )]
    Tail {
        /// `-f`: keep following.
        #[arg(short = 'f')]
        follow: bool,
        /// `-BYTES`, in bytes.
        #[arg(long = BYTES, hide = true, default_value_t = 1600)]
        bytes: u64,
        /// The process.
        #[arg(value_name = "NAME")]
        name: String,
        /// `stdout` or `stderr`.
        #[arg(value_name = "STREAM", value_parser = ["stdout", "stderr"], default_value = "stdout")]
        stream: String,
    },
    /// `maintail [-f] [-BYTES]`.
    #[command(
        disable_help_flag = true,
        args_override_self = true,
        override_usage = "maintail [-f] [-BYTES]",
        about = "Print the end of the daemon's main log; -f keeps following."
    )]
    Maintail {
        /// `-f`: keep following.
        #[arg(short = 'f')]
        follow: bool,
        /// `-BYTES`, in bytes.
        #[arg(long = BYTES, hide = true, default_value_t = 1600)]
        bytes: u64,
    },
    /// `clear NAME…|all`.
    #[command(
        disable_help_flag = true,
        override_usage = "clear NAME…|all",
        about = "Empty the log files of processes (they keep running)."
    )]
    Clear(Names),
    /// `fg [-q] [--detach-keys KEYS] NAME`.
    #[command(
        disable_help_flag = true,
        args_override_self = true,
        override_usage = "fg [-q] [--detach-keys KEYS] NAME",
        about = "Attach this terminal to a program (its full screen with pty: true, else its lines); Ctrl-] detaches and leaves it running (-q: no hint); if the program ends, exits with its status."
    )]
    Fg {
        /// `-q`: no hint at attach.
        #[arg(short = 'q', long = "quiet")]
        quiet: bool,
        /// The detach sequence.
        #[arg(long = "detach-keys", value_name = "KEYS", value_parser = detach_keys_arg, default_value = "ctrl-]")]
        keys: DetachKeys,
        /// The process.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// `avail`.
    #[command(
        disable_help_flag = true,
        override_usage = "avail",
        about = "List the programs in the config file: in use, avail (not added yet) or removed."
    )]
    Avail,
    /// `reread`.
    #[command(
        disable_help_flag = true,
        override_usage = "reread",
        about = "Re-read the config file and show what changed, without applying it."
    )]
    Reread,
    /// `update [NAME…]`.
    #[command(
        disable_help_flag = true,
        override_usage = "update [NAME…]",
        about = "Apply the config file's changes (to the named programs only); untouched processes keep running."
    )]
    Update {
        /// Programs; empty: all.
        #[arg(value_name = "NAME", allow_hyphen_values = true, trailing_var_arg = true)]
        names: Vec<String>,
    },
    /// `reload`.
    #[command(
        disable_help_flag = true,
        override_usage = "reload",
        about = "Stop every program, then start again from the config file."
    )]
    Reload,
    /// `shutdown`.
    #[command(
        disable_help_flag = true,
        override_usage = "shutdown",
        about = "Stop every program in priority order, then end the daemon."
    )]
    Shutdown,
    /// `version`.
    #[command(disable_help_flag = true, override_usage = "version", about = "Print the daemon's version.")]
    Version,
    /// `help [ACTION]`.
    #[command(
        disable_help_flag = true,
        override_usage = "help [ACTION]",
        about = "Show the actions, or one action's usage."
    )]
    Help {
        /// The action to explain; none: all.
        #[arg(value_name = "ACTION")]
        action: Option<String>,
    },
    /// `quit`.
    #[command(disable_help_flag = true, override_usage = "quit", about = "Leave the shell (also: exit, Ctrl-D).")]
    Quit,
    /// `exit`.
    #[command(disable_help_flag = true, override_usage = "exit", about = "Leave the shell.")]
    Exit,
}

/// The process names an action takes: one at least (or `all`), passed as typed.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct Names {
    /// Names.
    #[arg(value_name = "NAME", required = true, allow_hyphen_values = true, trailing_var_arg = true)]
    pub names: Vec<String>,
}

/// `fg --detach-keys`: the bytes that detach (Ctrl-] by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetachKeys(pub Vec<u8>);

/// The hidden long option that carries supervisorctl's `-BYTES` (`tail -1600 web`): a word
/// `-N` is handed to clap as `--bytes=N` by [`parse`], for the actions that have it.
const BYTES: &str = "bytes";

/// One line of actions: what clap parses, the action's word first (no program name).
#[derive(Debug, Parser)]
#[command(
    name = "taskmasterctl",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true,
    subcommand_required = true
)]
struct Line {
    #[command(subcommand)]
    action: Action,
}

/// `signal`'s SIG: a signal this system has, kept as typed.
fn signal_arg(s: &str) -> Result<String, CtlError> {
    common::units::parse_signal(s).map_err(|e| CtlError::Usage(format!("signal: {e}")))?;
    Ok(s.to_owned())
}

fn detach_keys_arg(s: &str) -> Result<DetachKeys, CtlError> {
    crate::fg::parse_detach_keys(s).map(DetachKeys)
}

/// The clap definition of every action, as subcommands, in `help` order.
pub fn command() -> clap::Command {
    let mut cmd = Line::command();
    cmd.build();
    cmd
}

/// An action's usage (`status [--json] [NAME…]`), from its definition.
pub fn usage(sub: &clap::Command) -> String {
    let text = sub.clone().render_usage().to_string();
    text.strip_prefix("Usage: ").unwrap_or(&text).trim_end().to_owned()
}

/// An action's one line of help, from its definition.
pub fn about(sub: &clap::Command) -> String {
    sub.get_about().map(ToString::to_string).unwrap_or_default()
}

/// Parses the words of one command (the action's word first).
///
/// # Errors
/// [`CtlError::Usage`], one line: `unknown action 'x'; try 'help'`, `usage: stop NAME…|all`,
/// or what an argument's check says (`signal: unknown signal 'NOPE'`).
pub fn parse(words: &[String]) -> Result<Action, CtlError> {
    let Some(verb) = words.first() else {
        return Err(CtlError::Usage("no action given; try 'help'".into()));
    };
    let cmd = command();
    let Some(sub) = cmd.find_subcommand(verb) else {
        return Err(CtlError::Usage(format!("unknown action '{verb}'; try 'help'")));
    };
    let has_bytes = sub.get_arguments().any(|a| a.get_id() == BYTES);
    let words = words.iter().map(|w| match w.strip_prefix('-') {
        Some(n) if has_bytes && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => format!("--{BYTES}={n}"),
        _ => w.clone(),
    });
    let err = match Line::try_parse_from(words) {
        Ok(line) => return Ok(line.action),
        Err(err) => err,
    };
    let bad_usage = || CtlError::Usage(format!("usage: {}", usage(sub)));
    Err(match err.kind() {
        ErrorKind::ValueValidation => match std::error::Error::source(&err) {
            Some(why) => CtlError::Usage(why.to_string()),
            None => bad_usage(),
        },
        // status names an option it does not know.
        ErrorKind::UnknownArgument if control::Action::from_name(verb) == Some(control::Action::Status) => {
            match err.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(bad)) if bad.starts_with('-') => {
                    CtlError::Usage(format!("{verb}: unknown option '{bad}'; usage: {}", usage(sub)))
                }
                _ => bad_usage(),
            }
        }
        _ => bad_usage(),
    })
}

/// The text of `help`: every action with its usage and one line of help (also the end of
/// `taskmasterctl --help`).
pub fn summary() -> String {
    let mut out = String::from("Actions (NAME is a process like web:0, a program like web, or all):\n");
    let cmd = command();
    let rows: Vec<(String, String)> = cmd.get_subcommands().map(|s| (usage(s), about(s))).collect();
    let width = rows.iter().map(|(u, _)| u.chars().count()).max().unwrap_or(0);
    for (u, h) in rows {
        out.push_str(&format!("  {u:<width$}  {h}\n"));
    }
    out
}

/// The text of `help` or `help ACTION`.
///
/// # Errors
/// [`CtlError::Usage`]: the action is unknown.
pub fn help(action: Option<&str>) -> Result<String, CtlError> {
    match action {
        None => Ok(summary()),
        Some(a) => command()
            .find_subcommand(a)
            .map(|s| format!("{}\n  {}\n", usage(s), about(s)))
            .ok_or_else(|| CtlError::Usage(format!("unknown action '{a}'; try 'help'"))),
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, CtlError> {
    serde_json::from_value(v).map_err(|e| CtlError::Failed(format!("unexpected reply from the daemon: {e}")))
}

/// Connects to the daemon at `socket` and carries out `action`.
///
/// # Errors
/// As [`run`], and [`Client::connect`].
pub fn execute(socket: &std::path::Path, action: &Action) -> Result<Outcome, CtlError> {
    let client = Client::connect(socket)?;
    match action {
        Action::Fg { name, keys, quiet } => crate::fg::run(client, name, &keys.0, *quiet),
        other => run(&mut { client }, other),
    }
}

/// Carries out an action (other than help and quit), printing its output to stdout.
///
/// # Errors
/// As [`Client::call`].
pub fn run(client: &mut Client, action: &Action) -> Result<Outcome, CtlError> {
    use control::Action as Wire;
    match action {
        Action::Status { json, names } => {
            let rows: Vec<ProcessInfo> = decode(client.call(Wire::Status, names, Map::new())?)?;
            if *json {
                crate::outln!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
            } else {
                crate::out!("{}", render::status(&rows));
            }
            Ok(if rows.iter().all(|r| r.state == "RUNNING") { Outcome::Ok } else { Outcome::NotRunning })
        }
        Action::Start(n) => results(client.call(Wire::Start, &n.names, Map::new())?),
        Action::Stop(n) => results(client.call(Wire::Stop, &n.names, Map::new())?),
        Action::Restart(n) => results(client.call(Wire::Restart, &n.names, Map::new())?),
        Action::Signal { signal, names } => {
            let mut args = Map::new();
            args.insert("signal".into(), json!(signal));
            results(client.call(Wire::Signal, names, args)?)
        }
        Action::Pid { names } => {
            let data = client.call(Wire::Pid, names, Map::new())?;
            if names.is_empty() {
                crate::outln!("{}", data.get("pid").cloned().unwrap_or(Value::Null));
                return Ok(Outcome::Ok);
            }
            // As supervisorctl 4's `pid`: one pid a line, in `status` order, 0 for a process
            // with none.
            let rows: Vec<Value> = decode(data)?;
            for r in &rows {
                crate::outln!("{}", r.get("pid").and_then(Value::as_i64).unwrap_or(0));
            }
            Ok(Outcome::Ok)
        }
        Action::Tail { follow, bytes, name, stream } => {
            tail(client, Wire::Tail, *follow, *bytes, std::slice::from_ref(name), stream)
        }
        Action::Maintail { follow, bytes } => tail(client, Wire::Maintail, *follow, *bytes, &[], "stdout"),
        Action::Clear(n) => results(client.call(Wire::Clear, &n.names, Map::new())?),
        Action::Avail => {
            let rows: Vec<AvailInfo> = decode(client.call(Wire::Avail, &[], Map::new())?)?;
            crate::out!("{}", render::avail(&rows));
            Ok(Outcome::Ok)
        }
        Action::Reread => lines(client.call(Wire::Reread, &[], Map::new())?),
        Action::Update { names } => lines(client.call(Wire::Update, names, Map::new())?),
        Action::Reload => lines(client.call(Wire::Reload, &[], Map::new())?),
        Action::Shutdown => {
            client.call(Wire::Shutdown, &[], Map::new())?;
            crate::outln!("Shut down");
            Ok(Outcome::Ok)
        }
        Action::Version => {
            // `{"version", "supervisor_restarts"}`; a bare string from an older daemon.
            let v = client.call(Wire::Version, &[], Map::new())?;
            crate::outln!("{}", v.get("version").unwrap_or(&v).as_str().unwrap_or(""));
            match v.get("supervisor_restarts").and_then(Value::as_u64) {
                Some(0) | None => {}
                Some(1) => crate::outln!("the supervisor was restarted once since taskmasterd started"),
                Some(n) => crate::outln!("the supervisor was restarted {n} times since taskmasterd started"),
            }
            Ok(Outcome::Ok)
        }
        Action::Help { action } => {
            crate::out!("{}", help(action.as_deref())?);
            Ok(Outcome::Ok)
        }
        Action::Quit | Action::Exit => Ok(Outcome::Ok),
        Action::Fg { .. } => Err(CtlError::Usage("fg needs its own connection: use actions::execute".into())),
    }
}

/// `tail` and `maintail`: the end of a log, then, with `follow`, what comes.
fn tail(
    client: &mut Client,
    wire: control::Action,
    follow: bool,
    bytes: u64,
    names: &[String],
    stream: &str,
) -> Result<Outcome, CtlError> {
    let mut args = Map::new();
    args.insert("bytes".into(), json!(bytes));
    args.insert("follow".into(), json!(follow));
    args.insert("stream".into(), json!(stream));
    let data = client.call(wire, names, args.clone())?;
    // On a terminal, escape sequences that could write the clipboard, set the title or
    // query the terminal are removed; into a file or a pipe the bytes stay exact.
    let mut sanitizer = nix::unistd::isatty(std::io::stdout()).unwrap_or(false).then(Sanitizer::new);
    write_b64(data.get("data").and_then(Value::as_str).unwrap_or_default(), sanitizer.as_mut())?;
    if follow {
        let watch_stdin = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
        loop {
            match client.follow(watch_stdin, |chunk| write_b64(chunk, sanitizer.as_mut())) {
                Ok(Some(message)) => eprintln!("taskmasterctl: {message}"),
                Ok(None) => {}
                // The supervisor was restarted (issue 16): follow on from a new connection.
                Err(CtlError::Lost(why)) => {
                    eprintln!("taskmasterctl: {why}; following again");
                    client.reconnect()?;
                    args.insert("bytes".into(), json!(0));
                    client.call(wire, names, args.clone())?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            break;
        }
    }
    Ok(Outcome::Ok)
}

/// `reread`, `update`, `reload`: the lines the daemon answers, printed.
fn lines(data: Value) -> Result<Outcome, CtlError> {
    for line in data.get("lines").and_then(Value::as_array).into_iter().flatten() {
        crate::outln!("{}", line.as_str().unwrap_or_default());
    }
    Ok(Outcome::Ok)
}

/// Writes base64-encoded bytes to stdout, through `sanitizer` when given (stdout is a
/// terminal), else as they are, and flushes.
fn write_b64(data: &str, sanitizer: Option<&mut Sanitizer>) -> Result<(), CtlError> {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| CtlError::Failed(format!("unreadable data from the daemon: {e}")))?;
    if let Some(s) = sanitizer {
        bytes = s.filter(&bytes);
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&bytes);
    let _ = out.flush();
    Ok(())
}

fn results(data: Value) -> Result<Outcome, CtlError> {
    let rows: Vec<ActionResult> = decode(data)?;
    crate::out!("{}", render::results(&rows));
    Ok(if rows.iter().all(|r| r.ok) { Outcome::Ok } else { Outcome::ActionFailed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_actions_and_refuses_bad_usage() {
        let names = |s: &str| Names { names: words(s) };
        assert_eq!(parse(&words("status --json web")).unwrap(), Action::Status { json: true, names: words("web") });
        assert_eq!(parse(&words("stop all")).unwrap(), Action::Stop(names("all")));
        assert!(matches!(parse(&words("stop")), Err(CtlError::Usage(m)) if m == "usage: stop NAME…|all"));
        assert!(
            matches!(parse(&words("signal NOPE web")), Err(CtlError::Usage(m)) if m == "signal: unknown signal 'NOPE'")
        );
        assert!(
            matches!(parse(&words("frobnicate")), Err(CtlError::Usage(m)) if m == "unknown action 'frobnicate'; try 'help'")
        );
        assert!(
            matches!(parse(&words("status -x")), Err(CtlError::Usage(m)) if m == "status: unknown option '-x'; usage: status [--json] [NAME…]")
        );
        assert!(matches!(parse(&words("avail x")), Err(CtlError::Usage(m)) if m == "usage: avail"));
        assert_eq!(
            parse(&words("fg -q --detach-keys ctrl-p,ctrl-q vim")).unwrap(),
            Action::Fg { name: "vim".into(), keys: DetachKeys(vec![0x10, 0x11]), quiet: true }
        );
        assert_eq!(
            parse(&words("fg vim")).unwrap(),
            Action::Fg { name: "vim".into(), keys: DetachKeys(vec![0x1d]), quiet: false }
        );
        assert!(
            matches!(parse(&words("fg --detach-keys=zz vim")), Err(CtlError::Usage(m)) if m.starts_with("--detach-keys: 'zz'"))
        );
        assert_eq!(
            parse(&words("signal HUP web")).unwrap(),
            Action::Signal { signal: "HUP".into(), names: words("web") }
        );
        assert_eq!(parse(&words("stop -x")).unwrap(), Action::Stop(names("-x")), "names are passed as typed");
    }

    #[test]
    fn tail_takes_supervisorctls_byte_count() {
        assert_eq!(
            parse(&words("tail -f -12 web stderr")).unwrap(),
            Action::Tail { follow: true, bytes: 12, name: "web".into(), stream: "stderr".into() }
        );
        assert_eq!(
            parse(&words("tail web -1600")).unwrap(),
            Action::Tail { follow: false, bytes: 1600, name: "web".into(), stream: "stdout".into() }
        );
        assert_eq!(parse(&words("maintail -5")).unwrap(), Action::Maintail { follow: false, bytes: 5 });
        for bad in ["tail", "tail p stdio", "tail -x p", "tail p stderr extra", "maintail p"] {
            let usage = if bad.starts_with("tail") {
                "tail [-f] [-BYTES] NAME [stdout|stderr]"
            } else {
                "maintail [-f] [-BYTES]"
            };
            assert!(matches!(parse(&words(bad)), Err(CtlError::Usage(m)) if m == format!("usage: {usage}")), "{bad}");
        }
    }

    #[test]
    fn help_shows_each_actions_usage_from_its_definition() {
        assert_eq!(help(Some("tail")).unwrap().lines().next(), Some("tail [-f] [-BYTES] NAME [stdout|stderr]"));
        let summary = summary();
        assert_eq!(summary.lines().count(), 1 + command().get_subcommands().count());
        assert!(summary.lines().nth(1).unwrap().starts_with("  status [--json] [NAME…]  "));
    }
}
