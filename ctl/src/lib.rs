//! taskmasterctl: the one-shot command line and the interactive shell (DESIGN §7). It knows
//! the daemon only through the control protocol (DESIGN §6) and reads only the `socket` and
//! `ctl` sections of a config file.
#![forbid(unsafe_code)]

pub mod actions;
pub mod cli;
pub mod client;
pub mod exit;
pub mod fg;
pub mod render;
pub mod shell;

use exit::{CtlError, Outcome};

/// `print!` that ignores a closed stdout (`taskmasterctl status | head` must not panic).
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

/// `println!` that ignores a closed stdout.
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// Runs one command line: the action, then the shell when asked (`-i`) or when no action is
/// given.
///
/// # Errors
/// Any [`CtlError`]; `main` prints it and exits with its code.
pub fn run(cli: cli::Cli) -> Result<Outcome, CtlError> {
    let settings = cli::settings(&cli)?;
    let mut outcome = Outcome::Ok;
    if !cli.action.is_empty() {
        outcome = match actions::parse(&cli.action)? {
            actions::Action::Help(a) => {
                out!("{}", actions::help(a.as_deref())?);
                Outcome::Ok
            }
            actions::Action::Quit => Outcome::Ok,
            action => actions::execute(&settings.socket, &action)?,
        };
    }
    if cli.action.is_empty() || cli.interactive {
        return shell::run(&settings);
    }
    Ok(outcome)
}
