//! Config diagnostics: what a problem in a config file looks like to its user.
//!
//! Every problem is one [`Located`] line, `file:line:col: message` (or `file: message` for the
//! file as a whole), in the user's words: `programs.web.numprocs: expected a whole number, got
//! "two"`, never a Rust type name. Positions come from the YAML parser's own marks (`yaml.rs`);
//! nothing searches the text again.
//!
//! How much of the file an error may quote is decided here too (issue 12): a file caught by an
//! `include:` glob may be a secrets file, and errors reach the main log, which viewers read. A
//! value is quoted only when the document is a config (a mapping whose top-level keys are all
//! config sections), only a scalar, at most [`MAX_QUOTED_CHARS`] characters, control characters
//! escaped; anything else is described by its kind ("got a list"). A YAML syntax error quotes
//! nothing.
//!
//! This module depends on nothing else of the config, so loading (`yaml` → `raw` → `validate`,
//! driven by `load`) has no import cycle.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a file, as the YAML parser marked it: 1-based line and column (in characters).
/// Line 0 is the file as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line; 0 for the file as a whole.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Pos {
    /// The file as a whole (printed `file: message`).
    pub const WHOLE: Pos = Pos { line: 0, column: 0 };
}

impl fmt::Display for Pos {
    /// `line:col`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One config problem at a place in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The file.
    pub file: PathBuf,
    /// 1-based line; 0 for a problem with the file as a whole.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, one line.
    pub message: String,
}

/// Longest message a [`Located`] prints, in characters: whatever a message holds, one error
/// stays one short line.
const MAX_MESSAGE_CHARS: usize = 400;

/// Longest value an error quotes, in characters; a longer one is described by its kind.
pub const MAX_QUOTED_CHARS: usize = 40;

impl fmt::Display for Located {
    /// `file:line:col: message`, or `file: message` for a problem with the file as a whole (line
    /// 0). Always one line: control characters (in a file name or a quoted value) are escaped, so
    /// an error can neither split a log line nor send a terminal escape sequence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = one_line(&self.file.display().to_string(), usize::MAX);
        let message = one_line(&self.message, MAX_MESSAGE_CHARS);
        if self.line == 0 {
            write!(f, "{file}: {message}")
        } else {
            write!(f, "{file}:{}:{}: {message}", self.line, self.column)
        }
    }
}

/// `s` with its control characters escaped (`\n`, `\u{1b}`), cut to `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every problem found in a config, one line each, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems.
    pub errors: Vec<Located>,
}

impl fmt::Display for ConfigError {
    /// One [`Located`] line per problem, joined by newlines.
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
    /// One problem with `file` as a whole (printed `file: message`, with no line).
    pub fn whole(file: &Path, message: String) -> Self {
        ConfigError { errors: vec![Located { file: file.to_path_buf(), line: 0, column: 0, message }] }
    }

    /// `file` could not be opened or read: `file: No such file or directory`, the system's
    /// words for the errno, as `cat` says it.
    pub fn io(file: &Path, e: &std::io::Error) -> Self {
        let message = match e.raw_os_error() {
            Some(errno) => nix::errno::Errno::from_raw(errno).desc().to_owned(),
            None => e.to_string(),
        };
        Self::whole(file, message)
    }

    /// Sorts the problems by file and place and drops exact repeats.
    pub fn sorted(mut errors: Vec<Located>) -> Self {
        errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        errors.dedup();
        ConfigError { errors }
    }
}

/// What was found where something else was expected, for "expected …, got …".
#[derive(Clone, Copy, Debug)]
pub enum Found<'a> {
    /// A scalar, with its text.
    Scalar(&'a str),
    /// A sequence.
    List,
    /// A mapping.
    Mapping,
    /// `null`, `~` or nothing.
    Null,
}

/// Collects the problems of one file and decides what they may quote.
#[derive(Debug)]
pub struct Diag {
    file: PathBuf,
    quotes: bool,
    errors: Vec<Located>,
}

impl Diag {
    /// Problems of `file`; nothing is quoted until [`Diag::allow_quotes`].
    pub fn new(file: &Path) -> Self {
        Diag { file: file.to_path_buf(), quotes: false, errors: Vec::new() }
    }

    /// The file the problems are in.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Lets errors quote short scalars: the document was found to be a config.
    pub fn allow_quotes(&mut self, allowed: bool) {
        self.quotes = allowed;
    }

    /// Records a problem at `at`.
    pub fn error(&mut self, at: Pos, message: impl Into<String>) {
        self.errors.push(Located {
            file: self.file.clone(),
            line: at.line,
            column: at.column,
            message: message.into(),
        });
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The problems recorded.
    pub fn into_errors(self) -> Vec<Located> {
        self.errors
    }

    /// `s` as a name in a message, `'s'`, when quoting is allowed and it is short; escaped.
    pub fn quote(&self, s: &str) -> Option<String> {
        self.quotable(s).then(|| format!("'{}'", escape(s)))
    }

    /// `"{what} 's'"` when `s` may be quoted, else `what` alone: `unknown user 'bob'`.
    pub fn named(&self, what: &str, s: &str) -> String {
        match self.quote(s) {
            Some(q) => format!("{what} {q}"),
            None => what.to_owned(),
        }
    }

    /// What was found, as the end of "expected …, got …": `"two"` (a short scalar of a config,
    /// escaped), else its kind: `a string`, `a list`, `a mapping`, `nothing`.
    pub fn got(&self, found: Found<'_>) -> String {
        match found {
            Found::Scalar(s) if self.quotable(s) => format!("\"{}\"", escape(s)),
            Found::Scalar(_) => "a string".to_owned(),
            Found::List => "a list".to_owned(),
            Found::Mapping => "a mapping".to_owned(),
            Found::Null => "nothing".to_owned(),
        }
    }

    fn quotable(&self, s: &str) -> bool {
        self.quotes && s.chars().count() <= MAX_QUOTED_CHARS
    }
}

/// `s` with control characters (`\n`, `\u{1b}`), double quotes and backslashes escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// Whether a key may be named in an error of a document that is not a config: a short plain
/// word, as every key of the schema is.
pub fn plain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The known word closest to `word`, if close enough to be what was meant (Jaro-Winkler over
/// 0.8): `autorestar` gives `autorestart`.
pub fn did_you_mean<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(word, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_short_scalars_of_a_config_escaped() {
        let mut d = Diag::new(Path::new("/t.yaml"));
        assert_eq!(d.got(Found::Scalar("two")), "a string");
        assert_eq!(d.named("unknown user", "bob"), "unknown user");
        d.allow_quotes(true);
        assert_eq!(d.got(Found::Scalar("two")), "\"two\"");
        assert_eq!(d.got(Found::Scalar("a\u{1b}]52\"")), "\"a\\u{1b}]52\\\"\"");
        assert_eq!(d.got(Found::Scalar(&"y".repeat(41))), "a string");
        assert_eq!(d.got(Found::List), "a list");
        assert_eq!(d.named("unknown user", "bob"), "unknown user 'bob'");
    }

    #[test]
    fn a_located_error_is_one_line() {
        let e = Located { file: "/a\nb".into(), line: 3, column: 5, message: "x\u{7}".into() };
        assert_eq!(e.to_string(), "/a\\nb:3:5: x\\u{7}");
        let whole = ConfigError::io(Path::new("/nope"), &std::io::Error::from_raw_os_error(2));
        assert_eq!(whole.to_string(), "/nope: No such file or directory");
    }

    #[test]
    fn hints_the_closest_key() {
        assert_eq!(did_you_mean("autorestar", &["autostart", "autorestart"]), Some("autorestart"));
        assert_eq!(did_you_mean("zzz", &["autostart"]), None);
    }
}
