//! The control protocol (DESIGN §6): NDJSON over the UNIX socket, one object a line, at most
//! [`MAX_LINE`] bytes a line.

use serde::{Deserialize, Serialize};

/// Longest line either side accepts, in bytes (1 MiB).
pub const MAX_LINE: usize = 1 << 20;

/// Every action of the control protocol (DESIGN §6, §7). The wire spells each as its
/// lowercase name ([`Action::as_str`]); `fg` is also read as `attach`. One type for the
/// protocol, the server, the access check and the ctl: a new action must be given a role and a
/// handler wherever actions are matched, since those matches have no fallback arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Present `socket.auth`'s username and password.
    Auth,
    /// supervisorctl's `status`.
    Status,
    /// Start processes.
    Start,
    /// Stop processes.
    Stop,
    /// Stop, then start processes.
    Restart,
    /// Send processes a signal.
    Signal,
    /// The daemon's pid, or processes' pids.
    Pid,
    /// Programs configured and whether they are in use.
    Avail,
    /// Show the config file's changes without applying them.
    Reread,
    /// Apply the config file's changes.
    Update,
    /// Stop everything and start again from the config file.
    Reload,
    /// Stop everything and exit.
    Shutdown,
    /// The daemon's version.
    Version,
    /// The end of a process's log.
    Tail,
    /// The end of the main log.
    Maintail,
    /// Empty processes' logs.
    Clear,
    /// Attach to a process's terminal or stdin (`fg`).
    Attach,
}

impl Action {
    /// Every action, in the order `help` lists them.
    pub const ALL: [Action; 17] = [
        Action::Status,
        Action::Start,
        Action::Stop,
        Action::Restart,
        Action::Signal,
        Action::Pid,
        Action::Tail,
        Action::Maintail,
        Action::Clear,
        Action::Attach,
        Action::Avail,
        Action::Reread,
        Action::Update,
        Action::Reload,
        Action::Shutdown,
        Action::Version,
        Action::Auth,
    ];

    /// The name the wire uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Auth => "auth",
            Action::Status => "status",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Signal => "signal",
            Action::Pid => "pid",
            Action::Avail => "avail",
            Action::Reread => "reread",
            Action::Update => "update",
            Action::Reload => "reload",
            Action::Shutdown => "shutdown",
            Action::Version => "version",
            Action::Tail => "tail",
            Action::Maintail => "maintail",
            Action::Clear => "clear",
            Action::Attach => "attach",
        }
    }

    /// The action a wire name means (`fg` is `attach`), or `None`.
    pub fn from_name(name: &str) -> Option<Action> {
        match name {
            "fg" => Some(Action::Attach),
            _ => Action::ALL.into_iter().find(|a| a.as_str() == name),
        }
    }

    /// Whether the action needs process names (or `all`).
    pub fn needs_names(self) -> bool {
        match self {
            Action::Start
            | Action::Stop
            | Action::Restart
            | Action::Signal
            | Action::Tail
            | Action::Clear
            | Action::Attach => true,
            Action::Auth
            | Action::Status
            | Action::Pid
            | Action::Avail
            | Action::Reread
            | Action::Update
            | Action::Reload
            | Action::Shutdown
            | Action::Version
            | Action::Maintail => false,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request: `{"id": 7, "action": "stop", "names": ["web"], "args": {}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Chosen by the client, echoed in the reply.
    pub id: u64,
    /// The action's wire name ([`Action::as_str`]); kept as text so that an unknown one is
    /// answered `unknown_action` naming it, not refused as a malformed line.
    pub action: String,
    /// Process or program names, or `all`.
    #[serde(default)]
    pub names: Vec<String>,
    /// Action arguments (`signal`: `{"signal": "HUP"}`).
    #[serde(default)]
    pub args: serde_json::Map<String, serde_json::Value>,
}

impl Request {
    /// The action this request names, if this side knows it.
    pub fn action(&self) -> Option<Action> {
        Action::from_name(&self.action)
    }
}

/// A reply: `{"id": 7, "ok": true, "data": …}` or `{"id": 7, "ok": false, "error": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's id (0 when the request could not be read).
    pub id: u64,
    /// Whether the action was carried out.
    pub ok: bool,
    /// The result, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Why not, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable kind, one of the [`kind`] constants.
    pub kind: String,
    /// One line for people.
    pub message: String,
}

/// Error kinds.
pub mod kind {
    /// A name matches no process or program.
    pub const NO_SUCH_PROCESS: &str = "no_such_process";
    /// The line was not a valid request, or its arguments were wrong.
    pub const BAD_REQUEST: &str = "bad_request";
    /// The peer's role does not allow the action.
    pub const PERMISSION_DENIED: &str = "permission_denied";
    /// The action is not known.
    pub const UNKNOWN_ACTION: &str = "unknown_action";
    /// The action was tried and failed.
    pub const FAILED: &str = "failed";
    /// socket.auth is configured and the connection has not authenticated yet.
    pub const AUTH_REQUIRED: &str = "auth_required";
    /// The config file has errors; nothing changed (taskmasterctl exits 2).
    pub const CONFIG_ERROR: &str = "config_error";
    /// The daemon cannot take this now (too many connections, too many password checks
    /// waiting); taskmasterctl exits 4, as when it cannot connect.
    pub const UNAVAILABLE: &str = "unavailable";
}

impl Reply {
    /// A successful reply.
    pub fn ok(id: u64, data: serde_json::Value) -> Self {
        Reply { id, ok: true, data: Some(data), error: None }
    }

    /// A failed reply.
    pub fn err(id: u64, kind: &str, message: impl Into<String>) -> Self {
        Reply { id, ok: false, data: None, error: Some(ErrorBody { kind: kind.into(), message: message.into() }) }
    }
}

/// One row of `status --json` (DESIGN §7): all eight fields, always present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// `web:0`.
    pub name: String,
    /// `web`.
    pub program: String,
    /// `0`.
    pub instance: u32,
    /// As supervisorctl spells it: `RUNNING`.
    pub state: String,
    /// While the process exists (STARTING, RUNNING, STOPPING), else null.
    pub pid: Option<i32>,
    /// Seconds since it started, while it runs; else 0.
    pub uptime_s: u64,
    /// Last exit code, or null (never exited, or killed by a signal).
    pub exitstatus: Option<i32>,
    /// The text column of `status`: `pid 4242, uptime 0:01:07`, and ` (pty)` after it while a
    /// program with a terminal runs (`fg` gives its full screen).
    pub description: String,
    /// The program runs on a terminal (`pty: true`): `fg` attaches to its screen.
    #[serde(default)]
    pub pty: bool,
}

/// The outcome for one process of `start`, `stop`, `restart` or `signal`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    /// Process name.
    pub name: String,
    /// Whether it worked.
    pub ok: bool,
    /// `started`, `stopped`, or the error: `ERROR (already started)`.
    pub message: String,
}

/// One row of `avail`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailInfo {
    /// Program name.
    pub name: String,
    /// `in use`.
    pub state: String,
    /// `auto` or `manual`.
    pub autostart: bool,
    /// Priority.
    pub priority: i32,
    /// Instances.
    pub numprocs: u32,
}
