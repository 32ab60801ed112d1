//! The command line (clap) and where the socket is found.

use crate::exit::CtlError;
use clap::Parser;
use common::config::{self, CtlConfig};
use std::path::{Path, PathBuf};

/// `taskmasterctl`: control a running taskmasterd.
#[derive(Debug, Parser)]
#[command(name = "taskmasterctl", version = common::VERSION, about = "Control taskmasterd: status, start, stop … (no action: an interactive shell)")]
pub struct Cli {
    /// Config file to read the socket path and shell settings from (default: $TASKMASTER_CONFIG, ./taskmaster.yaml, /etc/taskmaster/taskmaster.yaml).
    #[arg(short = 'c', long = "configuration", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Control socket path (overrides the config).
    #[arg(short = 's', long = "serverurl", value_name = "SOCKET")]
    pub socket: Option<PathBuf>,
    /// User name for socket.auth (default: $TASKMASTER_USERNAME, then the config's
    /// socket.auth.username); the password comes from $TASKMASTER_PASSWORD or a prompt.
    #[arg(short = 'u', long = "username", value_name = "USER")]
    pub username: Option<String>,
    /// Start the interactive shell after running the action.
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Write the man page and shell completions into DIR (used by `make install`).
    #[arg(long, hide = true, value_name = "DIR")]
    pub generate_docs: Option<PathBuf>,
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
