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
pub mod exit;
pub mod fg;
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
    let settings = cli::settings(&cli)?;
    let username = cli
        .username
        .clone()
        .or_else(|| std::env::var("TASKMASTER_USERNAME").ok().filter(|u| !u.is_empty()))
        .or_else(|| settings.auth_username.clone());
    client::set_username(username);
    client::set_socket_owner(settings.socket_owner.clone());
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

/// Writes taskmasterctl(1), with every action, and its shell completions into `dir` (`man/`,
/// `completions/`), for `make install`.
///
/// # Errors
/// A file cannot be written.
pub fn generate_docs(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let mut actions = String::from("Actions (NAME is a process like web:0, a program like web, or all):\n\n");
    for (_, usage, help) in actions::ACTIONS {
        actions.push_str(&format!("  {usage}\n      {help}\n\n"));
    }
    actions.push_str("Exit status: 0 ok; 1 an action failed; 2 usage or config error; 3 status found a selected process not RUNNING; 4 the daemon cannot be reached or refused access; fg: the program's status when it ends while attached.");
    let mut cmd = cli::Cli::command().after_long_help(actions);
    let man = dir.join("man");
    let comp = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&comp)?;
    let mut page = std::fs::File::create(man.join("taskmasterctl.1"))?;
    clap_mangen::Man::new(cmd.clone()).section("1").render(&mut page)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "taskmasterctl", &comp)?;
    }
    Ok(())
}
