//! Completion of a partial command: actions first, then what each action takes (process and
//! program names asked of the running daemon, signal names, `stdout|stderr`, its options). One
//! logic serves the shell's Tab and the bash, zsh and fish scripts in `completions/`, which
//! run `taskmasterctl --complete -- WORDS… CURRENT` and offer the lines it prints.
//!
//! Asking the daemon is quiet and brief: no password prompt, a reply within [`ASK_TIMEOUT`],
//! and no candidates at all when nobody answers, so a Tab never hangs or prints an error.

use crate::actions;
use crate::cli::Cli;
use crate::client::Client;
use common::proto::control::{Action, AvailInfo, ProcessInfo};
use std::path::Path;
use std::time::Duration;

/// How long a completion waits for the daemon's reply.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Names the daemon knows, as an action takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    /// Process names as `status` prints them (`web` for one instance, `ticker:0`): what `tail`
    /// and `fg` take.
    Processes,
    /// `all`, the programs with several instances and every process name: what `start`,
    /// `stop` … take.
    Names,
    /// `all` and the programs of the config file, added or not (`avail`): what `update` takes.
    Programs,
}

/// The candidates for `cur`, the word being typed, after the action's words `words` (the
/// action first; empty: `cur` is the action). The actions and their options come from their
/// clap definitions ([`actions::command`]); `ask` is called at most once, and only when names
/// are wanted.
pub fn candidates(words: &[String], cur: &str, ask: &mut dyn FnMut(Query) -> Vec<String>) -> Vec<String> {
    let cmd = actions::command();
    let verbs = || cmd.get_subcommands().map(|s| s.get_name().to_owned()).collect::<Vec<_>>();
    let Some((verb, args)) = words.split_first() else {
        return keep(verbs(), cur);
    };
    let Some(sub) = cmd.find_subcommand(verb) else { return Vec::new() };
    let options: Vec<&clap::Arg> = sub.get_arguments().filter(|a| !a.is_positional() && !a.is_hide_set()).collect();
    let takes_value = |w: &str| {
        options.iter().any(|a| {
            a.get_action().takes_values()
                && (a.get_long().is_some_and(|l| w.strip_prefix("--") == Some(l))
                    || a.get_short().is_some_and(|c| w.strip_prefix('-') == Some(c.encode_utf8(&mut [0; 4]))))
        })
    };
    if args.last().is_some_and(|a| takes_value(a)) {
        return Vec::new(); // an option's value: the user's to type
    }
    if cur.starts_with('-') {
        // Each visible option once, by its short name when it has one.
        let names = options
            .iter()
            .filter_map(|a| a.get_short().map(|c| format!("-{c}")).or_else(|| a.get_long().map(|l| format!("--{l}"))))
            .collect();
        return keep(names, cur);
    }
    // The words that are not options (nor an option's value).
    let mut operands = 0;
    let mut skip = false;
    for a in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        skip = takes_value(a);
        operands += usize::from(!a.starts_with('-'));
    }
    let Some(action) = Action::from_name(verb) else {
        // help, quit, exit.
        return if sub.get_arguments().any(|a| a.get_id() == "action") && args.is_empty() {
            keep(verbs(), cur)
        } else {
            Vec::new()
        };
    };
    let choices = match action {
        Action::Status | Action::Start | Action::Stop | Action::Restart | Action::Clear | Action::Pid => {
            ask(Query::Names)
        }
        Action::Signal if operands == 0 => {
            nix::sys::signal::Signal::iterator().map(|s| s.as_str().trim_start_matches("SIG").to_owned()).collect()
        }
        Action::Signal => ask(Query::Names),
        Action::Tail => match operands {
            0 => ask(Query::Processes),
            1 => sub
                .get_arguments()
                .filter(|a| a.is_positional())
                .flat_map(|a| a.get_possible_values())
                .map(|v| v.get_name().to_owned())
                .collect(),
            _ => Vec::new(),
        },
        Action::Attach if operands == 0 => ask(Query::Processes),
        Action::Update => ask(Query::Programs),
        Action::Attach
        | Action::Maintail
        | Action::Avail
        | Action::Reread
        | Action::Reload
        | Action::Shutdown
        | Action::Version
        | Action::Auth => Vec::new(),
    };
    keep(choices, cur)
}

/// The choices that start with `cur`, each once, in their order.
fn keep(choices: Vec<String>, cur: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in choices {
        if c.starts_with(cur) && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Asks the daemon at `socket` for names, quietly: an empty list when it does not answer within
/// [`ASK_TIMEOUT`], refuses, or wants a password the environment does not hold.
pub fn ask(socket: &Path, query: Query) -> Vec<String> {
    let Ok(mut client) = Client::connect(socket) else { return Vec::new() };
    if client.set_timeout(Some(ASK_TIMEOUT)).is_err() {
        return Vec::new();
    }
    let mut names = Vec::new();
    if query != Query::Processes {
        names.push("all".to_owned());
    }
    if query == Query::Programs {
        let Ok(data) = client.call(Action::Avail, &[], serde_json::Map::new()) else { return Vec::new() };
        let rows: Vec<AvailInfo> = serde_json::from_value(data).unwrap_or_default();
        names.extend(rows.into_iter().map(|r| r.name));
        return names;
    }
    let Ok(data) = client.call(Action::Status, &[], serde_json::Map::new()) else { return Vec::new() };
    let rows: Vec<ProcessInfo> = serde_json::from_value(data).unwrap_or_default();
    for r in rows {
        if query == Query::Names && r.name != r.program && !names.contains(&r.program) {
            names.push(r.program.clone());
        }
        names.push(r.name);
    }
    names
}

/// `taskmasterctl --complete -- WORDS… CURRENT`: the candidates for CURRENT, the options
/// before the action included (`-s`, `-c` and `-u` also choose the daemon asked). The value of
/// `-c`, `-s` or `-u` itself is the shell's to complete (a file, a user): nothing is printed.
pub fn command_line(words: &[String]) -> Vec<String> {
    use clap::{CommandFactory, Parser};
    let (cur, before) = match words.split_last() {
        Some((cur, before)) => (cur.as_str(), before),
        None => ("", &[][..]),
    };
    let Ok(cli) = Cli::try_parse_from(std::iter::once("taskmasterctl").chain(before.iter().map(String::as_str))) else {
        return Vec::new();
    };
    if cli.action.is_empty() && cur.starts_with('-') {
        let mut cmd = Cli::command();
        cmd.build();
        let options = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_positional())
            .flat_map(|a| {
                let long = a.get_long().map(|l| format!("--{l}"));
                let short = a.get_short().map(|s| format!("-{s}"));
                long.into_iter().chain(short)
            })
            .collect();
        return keep(options, cur);
    }
    crate::client::set_no_prompt();
    let mut ask_daemon = |query| match crate::prepare(&cli) {
        Ok(settings) => ask(&settings.socket, query),
        Err(_) => Vec::new(),
    };
    candidates(&cli.action, cur, &mut ask_daemon)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn complete(line: &str, cur: &str) -> Vec<String> {
        let mut ask = |q: Query| match q {
            Query::Processes => words("web ticker:0 ticker:1"),
            Query::Names => words("all web ticker ticker:0 ticker:1"),
            Query::Programs => words("all web ticker new"),
        };
        candidates(&words(line), cur, &mut ask)
    }

    #[test]
    fn each_action_completes_what_it_takes() {
        assert_eq!(complete("", "sta"), ["status", "start"]);
        assert_eq!(complete("help", "re"), ["restart", "reread", "reload"]);
        assert_eq!(complete("stop", "ti"), ["ticker", "ticker:0", "ticker:1"]);
        assert_eq!(complete("stop web", ""), words("all web ticker ticker:0 ticker:1"));
        assert_eq!(complete("status", "--"), ["--json"]);
        assert!(complete("signal", "US").contains(&"USR1".to_owned()));
        assert_eq!(complete("signal HUP", "w"), ["web"]);
        assert_eq!(complete("tail -f", ""), words("web ticker:0 ticker:1"));
        assert_eq!(complete("tail web", "std"), ["stdout", "stderr"]);
        assert_eq!(complete("tail web stdout", ""), Vec::<String>::new());
        assert_eq!(complete("fg", "-"), ["-q", "--detach-keys"]);
        assert_eq!(complete("fg --detach-keys", ""), Vec::<String>::new());
        assert_eq!(complete("fg --detach-keys ctrl-p", "t"), ["ticker:0", "ticker:1"]);
        assert_eq!(complete("fg web", ""), Vec::<String>::new());
        assert_eq!(complete("update", "n"), ["new"]);
        assert_eq!(complete("version", ""), Vec::<String>::new());
    }

    #[test]
    fn the_command_line_offers_visible_options_only() {
        let opts = command_line(&words("--"));
        assert!(opts.contains(&"--serverurl".to_owned()) && opts.contains(&"--help".to_owned()), "{opts:?}");
        assert!(!opts.iter().any(|o| o == "--generate-docs" || o == "--complete"), "{opts:?}");
        assert_eq!(command_line(&words("-s /nonexistent.sock sto")), ["stop"]);
        assert!(command_line(&words("-s /nonexistent.sock stop w")).is_empty());
    }
}
