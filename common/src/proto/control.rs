//! The control protocol (DESIGN §6): NDJSON over the UNIX socket, one object a line, at most
//! [`MAX_LINE`] bytes a line.

use serde::{Deserialize, Serialize};

/// Longest line either side accepts, in bytes (1 MiB).
pub const MAX_LINE: usize = 1 << 20;

/// A request: `{"id": 7, "action": "stop", "names": ["web"], "args": {}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Chosen by the client, echoed in the reply.
    pub id: u64,
    /// The action: `status`, `start`, `stop`, `restart`, `signal`, `pid`, `avail`, `shutdown`,
    /// `version`.
    pub action: String,
    /// Process or program names, or `all`.
    #[serde(default)]
    pub names: Vec<String>,
    /// Action arguments (`signal`: `{"signal": "HUP"}`).
    #[serde(default)]
    pub args: serde_json::Map<String, serde_json::Value>,
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
