//! The interactive shell: rustyline line editing, a persistent history file, and Tab completion
//! of actions and of what each takes ([`crate::complete`]: the process names the daemon
//! reports …). As readline does, a unique completion appends a space, and a second Tab lists
//! the candidates when there are several.

use crate::actions::{self, Action};
use crate::cli::Settings;
use crate::complete;
use crate::exit::{CtlError, Outcome};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};
use std::path::PathBuf;

/// Completes the word under the cursor with [`complete::candidates`].
pub struct ShellHelper {
    socket: PathBuf,
}

/// The candidates for `word`, each with a trailing space when it is the only one.
pub fn complete_word(word: &str, choices: &[String]) -> Vec<Pair> {
    let hits: Vec<&String> = choices.iter().filter(|c| c.starts_with(word)).collect();
    let unique = hits.len() == 1;
    hits.into_iter()
        .map(|c| Pair { display: c.clone(), replacement: if unique { format!("{c} ") } else { c.clone() } })
        .collect()
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let words = shlex::split(&before[..start])
            .unwrap_or_else(|| before[..start].split_whitespace().map(str::to_owned).collect());
        let choices = complete::candidates(&words, word, &mut |query| complete::ask(&self.socket, query));
        Ok((start, complete_word(word, &choices)))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// Runs the shell until `quit`, `exit` or Ctrl-D. Each command opens its own connection, so the
/// shell survives a daemon restart.
///
/// # Errors
/// The line editor cannot start (no terminal capabilities at all).
pub fn run(settings: &Settings) -> Result<Outcome, CtlError> {
    // As readline: Tab completes the common prefix, a second Tab lists the candidates.
    let config = Config::builder().completion_type(CompletionType::List).build();
    let mut editor: Editor<ShellHelper, FileHistory> =
        Editor::with_config(config).map_err(|e| CtlError::Failed(format!("cannot start the shell: {e}")))?;
    editor.set_helper(Some(ShellHelper { socket: settings.socket.clone() }));
    let _ = editor.load_history(&settings.ctl.history_file);
    let prompt = format!("{}> ", settings.ctl.prompt);
    loop {
        match editor.readline(&prompt) {
            Ok(line) => {
                let words = match shlex::split(&line) {
                    Some(w) => w,
                    None => {
                        eprintln!("*** unbalanced quotes");
                        continue;
                    }
                };
                if words.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                match actions::parse(&words) {
                    Ok(Action::Quit | Action::Exit) => break,
                    Ok(Action::Help { action }) => match actions::help(action.as_deref()) {
                        Ok(text) => crate::out!("{text}"),
                        Err(e) => eprintln!("*** {e}"),
                    },
                    Ok(action) => match actions::execute(&settings.socket, &action) {
                        Err(e @ CtlError::NoSuchProcess(_)) => crate::outln!("{e}"),
                        Err(e) => eprintln!("*** {e}"),
                        Ok(_) => {}
                    },
                    Err(e) => eprintln!("*** {e}"),
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CtlError::Failed(format!("shell: {e}"))),
        }
    }
    if let Some(dir) = settings.ctl.history_file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = editor.save_history(&settings.ctl.history_file);
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unique_completion_appends_a_space() {
        let choices: Vec<String> = ["status", "start", "stop"].iter().map(|s| s.to_string()).collect();
        let one = complete_word("sto", &choices);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].replacement, "stop ");
        let two = complete_word("sta", &choices);
        assert_eq!(two.iter().map(|p| p.replacement.as_str()).collect::<Vec<_>>(), ["status", "start"]);
    }
}
