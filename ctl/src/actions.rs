//! The actions, parsed from words (command line or shell line) and carried out over a client.
//! One parser serves both, so the shell and the command line accept the same words.

use crate::client::Client;
use crate::exit::{CtlError, Outcome};
use crate::render;
use crate::sanitize::Sanitizer;
use common::proto::control::{ActionResult, AvailInfo, ProcessInfo};
use serde_json::{json, Map, Value};

/// Every action and its one-line help, in `help` order.
pub const ACTIONS: &[(&str, &str, &str)] = &[
    (
        "status",
        "status [--json] [NAME…]",
        "Show the state of every process, or of the named ones (exit 3 if one is not RUNNING).",
    ),
    ("start", "start NAME…|all", "Start processes; waits until they are RUNNING or have failed."),
    ("stop", "stop NAME…|all", "Stop processes, highest priority number first; waits until they have exited."),
    ("restart", "restart NAME…|all", "Stop, then start processes."),
    ("signal", "signal SIG NAME…|all", "Send a signal (TERM, HUP, USR1, 9 …) to running processes."),
    ("pid", "pid [NAME…|all]", "Print the daemon's pid, or the named processes' pids, one a line (0: not running)."),
    (
        "tail",
        "tail [-f] [-BYTES] NAME [stdout|stderr]",
        "Print the last bytes a process wrote (1600 by default); -f keeps following until Ctrl-C or Ctrl-D.",
    ),
    ("maintail", "maintail [-f] [-BYTES]", "Print the end of the daemon's main log; -f keeps following."),
    ("clear", "clear NAME…|all", "Empty the log files of processes (they keep running)."),
    (
        "fg",
        "fg [-q] [--detach-keys KEYS] NAME",
        "Attach this terminal to a program (its full screen with pty: true, else its lines); Ctrl-] detaches and leaves it running (-q: no hint); if the program ends, exits with its status.",
    ),
    ("avail", "avail", "List the programs in the config file: in use, avail (not added yet) or removed."),
    ("reread", "reread", "Re-read the config file and show what changed, without applying it."),
    (
        "update",
        "update [NAME…]",
        "Apply the config file's changes (to the named programs only); untouched processes keep running.",
    ),
    ("reload", "reload", "Stop every program, then start again from the config file."),
    ("shutdown", "shutdown", "Stop every program in priority order, then end the daemon."),
    ("version", "version", "Print the daemon's version."),
    ("help", "help [ACTION]", "Show the actions, or one action's usage."),
    ("quit", "quit", "Leave the shell (also: exit, Ctrl-D)."),
    ("exit", "exit", "Leave the shell."),
];

/// A parsed action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `status [--json] [NAME…]`.
    Status {
        /// Print JSON.
        json: bool,
        /// Names; empty: all.
        names: Vec<String>,
    },
    /// `start`, `stop`, `restart` with names.
    Control {
        /// The action word.
        verb: String,
        /// Names.
        names: Vec<String>,
    },
    /// `signal SIG NAME…`.
    Signal {
        /// Signal as typed.
        signal: String,
        /// Names.
        names: Vec<String>,
    },
    /// `pid [NAME…]`.
    Pid(Vec<String>),
    /// `tail` / `maintail`.
    Tail {
        /// `maintail`.
        main: bool,
        /// `-f`.
        follow: bool,
        /// `-BYTES`.
        bytes: u64,
        /// The process (tail only).
        name: Option<String>,
        /// `stdout` or `stderr`.
        stream: String,
    },
    /// `clear NAME…`.
    Clear(Vec<String>),
    /// `fg [-q] [--detach-keys KEYS] NAME`.
    Fg {
        /// The process.
        name: String,
        /// The detach sequence.
        keys: Vec<u8>,
        /// `-q`: no hint at attach.
        quiet: bool,
    },
    /// `avail`.
    Avail,
    /// `reread`, `update [NAME…]`, `reload`: answered by lines to print.
    Reload {
        /// The action word.
        verb: String,
        /// Names (update only).
        names: Vec<String>,
    },
    /// `shutdown`.
    Shutdown,
    /// `version`.
    Version,
    /// `help [ACTION]`.
    Help(Option<String>),
    /// `quit` / `exit`.
    Quit,
}

fn usage(verb: &str) -> String {
    ACTIONS.iter().find(|a| a.0 == verb).map_or_else(|| verb.to_owned(), |a| a.1.to_owned())
}

/// Parses the words of one command.
///
/// # Errors
/// [`CtlError::Usage`] naming the action's usage.
pub fn parse(words: &[String]) -> Result<Action, CtlError> {
    let Some((verb, rest)) = words.split_first() else {
        return Err(CtlError::Usage("no action given; try 'help'".into()));
    };
    let rest = rest.to_vec();
    let need_names = |rest: &Vec<String>| {
        if rest.is_empty() {
            Err(CtlError::Usage(format!("usage: {}", usage(verb))))
        } else {
            Ok(rest.clone())
        }
    };
    let no_args =
        |a: Action| if rest.is_empty() { Ok(a) } else { Err(CtlError::Usage(format!("usage: {}", usage(verb)))) };
    match verb.as_str() {
        "status" => {
            let json = rest.iter().any(|w| w == "--json");
            let names: Vec<String> = rest.iter().filter(|w| *w != "--json").cloned().collect();
            if let Some(bad) = names.iter().find(|w| w.starts_with('-')) {
                return Err(CtlError::Usage(format!("status: unknown option '{bad}'; usage: {}", usage("status"))));
            }
            Ok(Action::Status { json, names })
        }
        "start" | "stop" | "restart" => Ok(Action::Control { verb: verb.clone(), names: need_names(&rest)? }),
        "signal" => match rest.split_first() {
            Some((sig, names)) if !names.is_empty() => {
                common::units::parse_signal(sig).map_err(|e| CtlError::Usage(format!("signal: {e}")))?;
                Ok(Action::Signal { signal: sig.clone(), names: names.to_vec() })
            }
            _ => Err(CtlError::Usage(format!("usage: {}", usage("signal")))),
        },
        "pid" => Ok(Action::Pid(rest)),
        "avail" => no_args(Action::Avail),
        "reread" | "reload" => no_args(Action::Reload { verb: verb.clone(), names: Vec::new() }),
        "update" => Ok(Action::Reload { verb: verb.clone(), names: rest.clone() }),
        "shutdown" => no_args(Action::Shutdown),
        "version" => no_args(Action::Version),
        "help" => Ok(Action::Help(rest.first().cloned())),
        "quit" | "exit" => no_args(Action::Quit),
        "tail" | "maintail" => parse_tail(verb == "maintail", &rest),
        "clear" => Ok(Action::Clear(need_names(&rest)?)),
        "fg" => parse_fg(&rest),
        other => Err(CtlError::Usage(format!("unknown action '{other}'; try 'help'"))),
    }
}

fn parse_fg(rest: &[String]) -> Result<Action, CtlError> {
    let bad = || CtlError::Usage(format!("usage: {}", usage("fg")));
    let mut keys = vec![0x1d];
    let mut name = None;
    let mut quiet = false;
    let mut it = rest.iter();
    while let Some(w) = it.next() {
        if let Some(v) = w.strip_prefix("--detach-keys=") {
            keys = crate::fg::parse_detach_keys(v)?;
        } else if w == "--detach-keys" {
            keys = crate::fg::parse_detach_keys(it.next().ok_or_else(bad)?)?;
        } else if w == "-q" || w == "--quiet" {
            quiet = true;
        } else if name.is_none() && !w.starts_with('-') {
            name = Some(w.clone());
        } else {
            return Err(bad());
        }
    }
    Ok(Action::Fg { name: name.ok_or_else(bad)?, keys, quiet })
}

fn parse_tail(main: bool, rest: &[String]) -> Result<Action, CtlError> {
    let verb = if main { "maintail" } else { "tail" };
    let bad = || CtlError::Usage(format!("usage: {}", usage(verb)));
    let (mut follow, mut bytes, mut words) = (false, 1600, Vec::new());
    for w in rest {
        match w.strip_prefix('-') {
            Some("f") => follow = true,
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                bytes = n.parse().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => words.push(w.clone()),
        }
    }
    let (name, stream) = match (main, words.as_slice()) {
        (true, []) => (None, "stdout".to_owned()),
        (false, [n]) => (Some(n.clone()), "stdout".to_owned()),
        (false, [n, s]) if s == "stdout" || s == "stderr" => (Some(n.clone()), s.clone()),
        _ => return Err(bad()),
    };
    Ok(Action::Tail { main, follow, bytes, name, stream })
}

/// The text of `help`: every action with its usage and one line of help (also the end of
/// `taskmasterctl --help`).
pub fn summary() -> String {
    let mut out = String::from("Actions (NAME is a process like web:0, a program like web, or all):\n");
    let width = ACTIONS.iter().map(|a| a.1.chars().count()).max().unwrap_or(0);
    for (_, u, h) in ACTIONS {
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
        Some(a) => ACTIONS
            .iter()
            .find(|x| x.0 == a)
            .map(|(_, u, h)| format!("{u}\n  {h}\n"))
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
        Action::Fg { name, keys, quiet } => crate::fg::run(client, name, keys, *quiet),
        other => run(&mut { client }, other),
    }
}

/// Carries out an action (other than help and quit), printing its output to stdout.
///
/// # Errors
/// As [`Client::call`].
pub fn run(client: &mut Client, action: &Action) -> Result<Outcome, CtlError> {
    match action {
        Action::Status { json, names } => {
            let rows: Vec<ProcessInfo> = decode(client.call("status", names, Map::new())?)?;
            if *json {
                crate::outln!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
            } else {
                crate::out!("{}", render::status(&rows));
            }
            Ok(if rows.iter().all(|r| r.state == "RUNNING") { Outcome::Ok } else { Outcome::NotRunning })
        }
        Action::Control { verb, names } => results(client.call(verb, names, Map::new())?),
        Action::Signal { signal, names } => {
            let mut args = Map::new();
            args.insert("signal".into(), json!(signal));
            results(client.call("signal", names, args)?)
        }
        Action::Pid(names) => {
            let data = client.call("pid", names, Map::new())?;
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
        Action::Tail { main, follow, bytes, name, stream } => {
            let mut args = Map::new();
            args.insert("bytes".into(), json!(bytes));
            args.insert("follow".into(), json!(follow));
            args.insert("stream".into(), json!(stream));
            let names: Vec<String> = name.iter().cloned().collect();
            let data = client.call(if *main { "maintail" } else { "tail" }, &names, args)?;
            // On a terminal, escape sequences that could write the clipboard, set the title or
            // query the terminal are removed; into a file or a pipe the bytes stay exact.
            let mut sanitizer = nix::unistd::isatty(std::io::stdout()).unwrap_or(false).then(Sanitizer::new);
            write_b64(data.get("data").and_then(Value::as_str).unwrap_or_default(), sanitizer.as_mut())?;
            if *follow {
                let watch_stdin = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
                let end = client.follow(watch_stdin, |chunk| write_b64(chunk, sanitizer.as_mut()))?;
                if let Some(message) = end {
                    eprintln!("taskmasterctl: {message}");
                }
            }
            Ok(Outcome::Ok)
        }
        Action::Clear(names) => results(client.call("clear", names, Map::new())?),
        Action::Avail => {
            let rows: Vec<AvailInfo> = decode(client.call("avail", &[], Map::new())?)?;
            crate::out!("{}", render::avail(&rows));
            Ok(Outcome::Ok)
        }
        Action::Reload { verb, names } => {
            let data = client.call(verb, names, Map::new())?;
            for line in data.get("lines").and_then(Value::as_array).into_iter().flatten() {
                crate::outln!("{}", line.as_str().unwrap_or_default());
            }
            Ok(Outcome::Ok)
        }
        Action::Shutdown => {
            client.call("shutdown", &[], Map::new())?;
            crate::outln!("Shut down");
            Ok(Outcome::Ok)
        }
        Action::Version => {
            crate::outln!("{}", client.call("version", &[], Map::new())?.as_str().unwrap_or(""));
            Ok(Outcome::Ok)
        }
        Action::Help(a) => {
            crate::out!("{}", help(a.as_deref())?);
            Ok(Outcome::Ok)
        }
        Action::Quit => Ok(Outcome::Ok),
        Action::Fg { .. } => Err(CtlError::Usage("fg needs its own connection: use actions::execute".into())),
    }
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
        assert_eq!(parse(&words("status --json web")).unwrap(), Action::Status { json: true, names: words("web") });
        assert_eq!(parse(&words("stop all")).unwrap(), Action::Control { verb: "stop".into(), names: words("all") });
        assert!(matches!(parse(&words("stop")), Err(CtlError::Usage(_))));
        assert!(matches!(parse(&words("signal NOPE web")), Err(CtlError::Usage(_))));
        assert!(matches!(parse(&words("frobnicate")), Err(CtlError::Usage(_))));
        assert_eq!(
            parse(&words("fg -q --detach-keys ctrl-p,ctrl-q vim")).unwrap(),
            Action::Fg { name: "vim".into(), keys: vec![0x10, 0x11], quiet: true }
        );
        assert_eq!(
            parse(&words("signal HUP web")).unwrap(),
            Action::Signal { signal: "HUP".into(), names: words("web") }
        );
    }
}
