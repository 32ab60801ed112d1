//! Program and process names (DESIGN §3): `web` when numprocs is 1, else `web:0`, `web:1` …

use std::fmt;

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
/// A sentence saying what is wrong with the name.
pub fn check_program_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("program name '{name}' must have 1 to 64 characters"));
    }
    if name == "all" {
        return Err("'all' is reserved: it addresses every program".into());
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("program name '{name}' has '{c}': use letters, digits, '_', '.' or '-'"));
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
    /// The instance after `:` is not a number or `*`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(Selector::All);
        }
        match s.split_once(':') {
            None => Ok(Selector::Program(s.to_owned())),
            Some((p, "*")) => Ok(Selector::Program(p.to_owned())),
            Some((p, n)) => n
                .parse()
                .map(|n| Selector::Process(p.to_owned(), n))
                .map_err(|_| format!("'{s}': the instance after ':' must be a number")),
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
        assert!(check_program_name("a b").is_err());
        assert!(check_program_name("web-1.x_y").is_ok());
    }
}
