//! taskmasterctl: the one-shot command line and the interactive shell (DESIGN §7). It knows
//! the daemon only through the control protocol (DESIGN §6) and reads only the `socket` and
//! `ctl` sections of a config file.
//!
//! It trusts neither the programs nor whoever listens at the socket path. Program output bound
//! for the operator's terminal (`fg` always; `tail` and `maintail` when stdout is a terminal)
//! goes through [`sanitize`], which removes the escape sequences that write the clipboard, set
//! the title or query the terminal; `tail` into a file or a pipe keeps the exact bytes. A
//! password is sent only to a socket owned by, and served by a process of, root, the ctl's own
//! user or the config's `socket.chown` owner ([`client`]).
#![forbid(unsafe_code)]

pub mod actions;
pub mod cli;
pub mod client;
pub mod complete;
pub mod exit;
pub mod fg;
pub mod man;
pub mod modes;
pub mod render;
pub mod sanitize;
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
    if let Some(dir) = &cli.generate_docs {
        generate_docs(dir).map_err(|e| CtlError::Failed(format!("cannot write docs into {}: {e}", dir.display())))?;
        return Ok(Outcome::Ok);
    }
    if cli.complete {
        for candidate in complete::command_line(&cli.action) {
            outln!("{candidate}");
        }
        return Ok(Outcome::Ok);
    }
    let settings = prepare(&cli)?;
    let mut outcome = Outcome::Ok;
    if !cli.action.is_empty() {
        outcome = match actions::parse(&cli.action)? {
            actions::Action::Help { action } => {
                out!("{}", actions::help(action.as_deref())?);
                Outcome::Ok
            }
            actions::Action::Quit | actions::Action::Exit => Outcome::Ok,
            action => actions::execute(&settings.socket, &action)?,
        };
    }
    if cli.action.is_empty() || cli.interactive {
        return shell::run(&settings);
    }
    Ok(outcome)
}

/// Reads the settings ([`cli::settings`]) and tells the client whom to authenticate as and
/// which socket owner to trust with a password.
///
/// # Errors
/// As [`cli::settings`].
pub fn prepare(cli: &cli::Cli) -> Result<cli::Settings, CtlError> {
    let settings = cli::settings(cli)?;
    let username = cli
        .username
        .clone()
        .or_else(|| std::env::var("TASKMASTER_USERNAME").ok().filter(|u| !u.is_empty()))
        .or_else(|| settings.auth_username.clone());
    client::set_username(username);
    client::set_socket_owner(settings.socket_owner.clone());
    Ok(settings)
}

/// Writes taskmasterctl(1), with every action, into `dir/man/` for `make install` (the shell
/// completions are files of their own, in the repository's `completions/`).
///
/// # Errors
/// A file cannot be written.
pub fn generate_docs(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let mut page = std::io::BufWriter::new(std::fs::File::create(man.join("taskmasterctl.1"))?);
    man::render(cli::Cli::command(), &mut page)?;
    std::io::Write::flush(&mut page)
}
