//! `taskmasterd`: picks the role from argv and links the two libraries that play them. As
//! started, it is the privileged spawner (`spawner::cli`); with `--supervisor-role` (as the
//! spawner re-executes it, DESIGN §1) it is the unprivileged supervisor (`supervisor::run_role`).
//! The spawner library does not depend on the supervisor's: only this crate sees both.
//!
//! The two one-shot commands that are neither role live here too: `--hash-password` (an argon2
//! hash for socket.auth.password_hash) and `--generate-docs DIR` (the man page, for
//! `make install`). Both are flags of the spawner's clap `Cli`, so help, the man page and
//! completions keep describing one command line.
//!
//! It trusts its argv as the spawner does: the first argument alone selects the supervisor role.

#![forbid(unsafe_code)]

use clap::{CommandFactory, Parser};
use spawner::cli::Cli;
use spawner::{man, paths, privdrop};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == privdrop::SUPERVISOR_ROLE) {
        return supervisor::run_role(privdrop::LINK_FD, privdrop::LISTEN_FD);
    }
    let cli = Cli::parse();
    spawner::sys::ensure_stdio();
    if let Some(dir) = &cli.generate_docs {
        return match generate_docs(Cli::command(), "taskmasterd", "8", dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("taskmasterd: cannot write docs into {}: {e}", dir.display());
                ExitCode::from(1)
            }
        };
    }
    if cli.hash_password {
        return match hash_password() {
            Ok(h) => {
                println!("{h}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("taskmasterd: {e}");
                ExitCode::from(1)
            }
        };
    }
    spawner::cli::run(cli)
}

/// Writes `DIR/man/NAME.SECTION` ([`spawner::man`]) for a command; the shell completions are
/// files of their own, in the repository's `completions/`. Directories and files are made as
/// [`spawner::paths`] makes them (no symlink followed but trusted ones, files opened with
/// `O_NOFOLLOW`): `make install` may run it as root.
///
/// # Errors
/// A directory or file cannot be made or written.
fn generate_docs(cmd: clap::Command, name: &str, section: &str, dir: &Path) -> std::io::Result<()> {
    use nix::fcntl::OFlag;
    let new = paths::NewDirs { mode: 0o755, owner: None };
    let man_dir = paths::open_dir(&dir.join("man"), Some(&new)).map_err(std::io::Error::other)?;
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC;
    let page = paths::open_in(&man_dir, format!("{name}.{section}").as_ref(), flags, 0o644)
        .map(std::fs::File::from)
        .map_err(std::io::Error::other)?;
    let mut page = std::io::BufWriter::new(page);
    man::render(cmd, section, &mut page)?;
    std::io::Write::flush(&mut page)
}

/// Why `--hash-password` made no hash.
#[derive(Debug, thiserror::Error)]
enum HashError {
    /// The terminal or stdin could not be read.
    #[error("cannot read the password: {0}")]
    Read(#[from] std::io::Error),
    /// The two entries on a terminal differ.
    #[error("the two passwords differ")]
    Differ,
    /// The password read is empty.
    #[error("empty password")]
    Empty,
    /// argon2 refused to hash (it does not for a non-empty password and a generated salt).
    #[error("argon2: {0}")]
    Argon2(argon2::password_hash::Error),
}

/// Reads a password (twice, without echo, on a terminal; else one line of stdin) and returns its
/// argon2id hash in PHC format, with a random salt.
///
/// # Errors
/// Reading failed, the two entries differ, or the password is empty ([`HashError`]).
fn hash_password() -> Result<String, HashError> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let password = if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        let a = rpassword::prompt_password("Password: ")?;
        let b = rpassword::prompt_password("Again: ")?;
        if a != b {
            return Err(HashError::Differ);
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        return Err(HashError::Empty);
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(HashError::Argon2)
}
