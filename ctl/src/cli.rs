//! The command line (clap) and where the socket is found.

use crate::exit::CtlError;
use clap::Parser;
use common::config::{self, CtlConfig};
use std::path::{Path, PathBuf};

/// `taskmasterctl`: control a running taskmasterd.
#[derive(Debug, Parser)]
#[command(name = "taskmasterctl", version = common::VERSION, about = "Control taskmasterd: status, start, stop, fg and the other actions below (no action: an interactive shell)", after_help = crate::actions::summary())]
pub struct Cli {
    /// Config file to read the socket path and shell settings from (default: $TASKMASTER_CONFIG, ./taskmaster.yaml, /etc/taskmaster/taskmaster.yaml).
    #[arg(short = 'c', long = "configuration", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Control socket: a path, or supervisorctl's unix:///path (no config file is read then,
    /// unless -c names one).
    #[arg(short = 's', long = "serverurl", value_name = "SOCKET", value_parser = server_url)]
    pub socket: Option<PathBuf>,
    /// User name for socket.auth (default: $TASKMASTER_USERNAME, then the config's
    /// socket.auth.username); the password comes from $TASKMASTER_PASSWORD or a prompt.
    #[arg(short = 'u', long = "username", value_name = "USER")]
    pub username: Option<String>,
    /// Start the interactive shell after running the action.
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Write the man page into DIR/man (used by `make install`).
    #[arg(long, hide = true, value_name = "DIR")]
    pub generate_docs: Option<PathBuf>,
    /// Print the completions of the last of ACTION's words, one a line, given the words before
    /// it (the shell completion scripts call this; it asks the daemon quietly, briefly, or not
    /// at all).
    #[arg(long, hide = true)]
    pub complete: bool,
    /// The action and its arguments; see `taskmasterctl help`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ACTION")]
    pub action: Vec<String>,
}

/// Where to connect and how the shell looks.
pub struct Settings {
    /// Control socket.
    pub socket: PathBuf,
    /// socket.auth.username of the config file, if any.
    pub auth_username: Option<String>,
    /// The user of the config file's socket.chown, if any: a socket it owns may get a password.
    pub socket_owner: Option<String>,
    /// Shell settings.
    pub ctl: CtlConfig,
}

/// Reads the settings: the socket from `-s`, else from the config file's `socket.path`, else the
/// default path; the shell settings from the config file's `ctl` section.
///
/// # Errors
/// A config file named with `-c` or `TASKMASTER_CONFIG` cannot be read or is not YAML.
pub fn settings(cli: &Cli) -> Result<Settings, CtlError> {
    let named = cli
        .config
        .clone()
        .or_else(|| std::env::var_os("TASKMASTER_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from));
    let file = match named {
        Some(p) => Some(p),
        None => [Path::new("taskmaster.yaml"), Path::new("/etc/taskmaster/taskmaster.yaml")]
            .into_iter()
            .find(|p| p.exists())
            .map(Path::to_path_buf),
    };
    // -s without -c reads no file (DESIGN §7): a broken ./taskmaster.yaml cannot stop it.
    let file = file.filter(|_| cli.socket.is_none() || cli.config.is_some());
    let (socket, ctl, auth_username, socket_owner) = match file {
        Some(f) => {
            let (socket, ctl) = config::load_ctl(&f).map_err(|e| CtlError::Config(e.to_string()))?;
            let auth_username = socket.auth.map(|a| a.username);
            (socket.path, ctl, auth_username, socket.chown.map(|(user, _)| user))
        }
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
            (
                config::default_socket_path(),
                CtlConfig { prompt: "taskmaster".into(), history_file: home.join(".taskmaster_history") },
                None,
                None,
            )
        }
    };
    Ok(Settings { socket: cli.socket.clone().unwrap_or(socket), ctl, auth_username, socket_owner })
}

/// Why `-s`'s value names no socket (clap prints it, exit 2).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerUrlError {
    /// A URL of another scheme than `unix://` (`http://` …).
    #[error("'{0}://' is not served: give the socket's path, or unix:///path")]
    Scheme(String),
    /// An empty path.
    #[error("an empty socket path")]
    Empty,
}

/// `-s`'s value: a socket path, or supervisorctl's `unix:///path` form. An `http://` URL (or any
/// other scheme) is refused: the daemon serves its UNIX socket only.
///
/// # Errors
/// [`ServerUrlError`]: a URL of another scheme, or an empty path.
pub fn server_url(value: &str) -> Result<PathBuf, ServerUrlError> {
    let path = match value.split_once("://") {
        Some(("unix", path)) => path,
        Some((scheme, _)) if !scheme.is_empty() && !scheme.contains('/') => {
            return Err(ServerUrlError::Scheme(scheme.to_owned()));
        }
        _ => value,
    };
    if path.is_empty() {
        return Err(ServerUrlError::Empty);
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_url_is_a_path_or_a_unix_url() {
        assert_eq!(server_url("/run/tm.sock"), Ok(PathBuf::from("/run/tm.sock")));
        assert_eq!(server_url("unix:///run/tm.sock"), Ok(PathBuf::from("/run/tm.sock")));
        assert_eq!(server_url("unix://tm.sock"), Ok(PathBuf::from("tm.sock")));
        assert_eq!(server_url("./a://b"), Ok(PathBuf::from("./a://b")));
        assert!(server_url("http://localhost:9001").is_err());
        assert!(server_url("unix://").is_err());
    }
}
