//! Program and process names (DESIGN §3): `web` when numprocs is 1, else `web:0`, `web:1` …

use std::fmt;

/// Why a program or process name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or longer than 64 characters; holds the name.
    #[error("program name '{0}' must have 1 to 64 characters")]
    Length(String),
    /// `all`, which addresses every program.
    #[error("'all' is reserved: it addresses every program")]
    Reserved,
    /// A character outside `[A-Za-z0-9_.-]`.
    #[error("program name '{name}' has '{bad}': use letters, digits, '_', '.' or '-'")]
    Character {
        /// The name.
        name: String,
        /// The first character refused.
        bad: char,
    },
    /// What follows `:` in a process name is neither a number nor `*`; holds the whole name.
    #[error("'{0}': the instance after ':' must be a number")]
    Instance(String),
}

/// A process name as `status` prints it: the program name, then `:N` when the program has more
/// than one instance (as supervisord names group members).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessName {
    /// The program's name, the key under `programs:`.
    pub program: String,
    /// The instance number, from `numprocs_start`.
    pub instance: u32,
    /// Whether the name carries `:N` (numprocs > 1).
    pub numbered: bool,
}

impl ProcessName {
    /// The name of instance `instance` of `program`, numbered when `numprocs` > 1.
    pub fn new(program: &str, instance: u32, numprocs: u32) -> Self {
        ProcessName { program: program.to_owned(), instance, numbered: numprocs > 1 }
    }
}

impl fmt::Display for ProcessName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.numbered {
            write!(f, "{}:{}", self.program, self.instance)
        } else {
            f.write_str(&self.program)
        }
    }
}

/// Checks a program name: 1 to 64 characters of `[A-Za-z0-9_.-]`, not `all`.
///
/// # Errors
/// [`NameError`]: the length, `all`, or the first character refused.
pub fn check_program_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > 64 {
        return Err(NameError::Length(name.to_owned()));
    }
    if name == "all" {
        return Err(NameError::Reserved);
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(NameError::Character { name: name.to_owned(), bad: c });
    }
    Ok(())
}

/// What a name given to `start`, `stop` … selects: one process (`web:1`, or `web` when numprocs
/// is 1), every instance of a program (`web`, `web:*`), or everything (`all`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `all`.
    All,
    /// `web` or `web:*`: every instance of the program.
    Program(String),
    /// `web:3`: one instance.
    Process(String, u32),
}

impl Selector {
    /// Parses a name as typed on the command line.
    ///
    /// # Errors
    /// [`NameError::Instance`]: the instance after `:` is not a number or `*`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s == "all" {
            return Ok(Selector::All);
        }
        match s.split_once(':') {
            None => Ok(Selector::Program(s.to_owned())),
            Some((p, "*")) => Ok(Selector::Program(p.to_owned())),
            Some((p, n)) => {
                n.parse().map(|n| Selector::Process(p.to_owned(), n)).map_err(|_| NameError::Instance(s.to_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_only_with_several_instances() {
        assert_eq!(ProcessName::new("web", 0, 1).to_string(), "web");
        assert_eq!(ProcessName::new("web", 3, 4).to_string(), "web:3");
    }

    #[test]
    fn selectors_parse() {
        assert_eq!(Selector::parse("all"), Ok(Selector::All));
        assert_eq!(Selector::parse("web:*"), Ok(Selector::Program("web".into())));
        assert_eq!(Selector::parse("web:2"), Ok(Selector::Process("web".into(), 2)));
        assert!(Selector::parse("web:x").is_err());
        assert!(check_program_name("all").is_err());
        assert_eq!(
            check_program_name("a b").map_err(|e| e.to_string()),
            Err("program name 'a b' has ' ': use letters, digits, '_', '.' or '-'".to_owned())
        );
        assert!(check_program_name("web-1.x_y").is_ok());
    }
}
