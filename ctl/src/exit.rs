//! Exit codes (DESIGN §7) and the errors that lead to them.

use std::process::ExitCode;

/// How a command ended, when it did not fail outright.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: an action failed for some process (the daemon said why, already printed).
    ActionFailed,
    /// Exit 3: `status` found a selected process not RUNNING.
    NotRunning,
    /// The program `fg` was attached to ended: exit with its status, as a shell reports it (the
    /// exit code, or 128 + the number of the signal that killed it).
    Program(u8),
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Outcome::Ok => 0,
            Outcome::ActionFailed => 1,
            Outcome::NotRunning => 3,
            Outcome::Program(status) => status,
        })
    }
}

/// Errors a user of taskmasterctl can meet.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Bad words on the command line: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The config file could not be read: exit 2.
    #[error("{0}")]
    Config(String),
    /// The daemon cannot be reached, or refused us: exit 4.
    #[error("{0}")]
    Unreachable(String),
    /// The connection closed before the answer came (the supervisor died, issue 16): exit 4,
    /// after the one retry the client makes on a new connection.
    #[error("{0}")]
    Lost(String),
    /// The daemon refused or failed the action: exit 1.
    #[error("{0}")]
    Failed(String),
    /// A name matches no process or program: exit 1. The daemon's message is supervisorctl's
    /// result line (`nosuch: ERROR (no such process)`), printed as such on stdout, unprefixed.
    #[error("{0}")]
    NoSuchProcess(String),
    /// The daemon wants socket.auth first (handled inside the client; exit 4 if it escapes).
    #[error("authentication required")]
    AuthRequired,
}

impl CtlError {
    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CtlError::Usage(_) | CtlError::Config(_) => 2,
            CtlError::Unreachable(_) | CtlError::Lost(_) | CtlError::AuthRequired => 4,
            CtlError::Failed(_) | CtlError::NoSuchProcess(_) => 1,
        })
    }
}
