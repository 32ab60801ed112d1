//! One connection to the daemon's control socket.

use crate::exit::CtlError;
use common::proto::control::{kind, Reply, Request};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// A connected client.
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// [`CtlError::Unreachable`]: "cannot connect to /run/taskmaster/taskmaster.sock: …".
    pub fn connect(path: &Path) -> Result<Self, CtlError> {
        let stream = UnixStream::connect(path).map_err(|e| {
            CtlError::Unreachable(format!("cannot connect to {}: {e} (is taskmasterd running?)", path.display()))
        })?;
        let writer = stream.try_clone().map_err(|e| CtlError::Unreachable(format!("{}: {e}", path.display())))?;
        Ok(Client { path: path.to_path_buf(), reader: BufReader::new(stream), writer, next_id: 0 })
    }

    /// Sends a request and waits for its reply.
    ///
    /// # Errors
    /// The connection failed ([`CtlError::Unreachable`]); the daemon refused the request for
    /// permissions ([`CtlError::Unreachable`]) or otherwise ([`CtlError::Failed`]).
    pub fn call(
        &mut self,
        action: &str,
        names: &[String],
        args: serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, CtlError> {
        self.next_id += 1;
        let req = Request { id: self.next_id, action: action.to_owned(), names: names.to_vec(), args };
        let mut line = serde_json::to_vec(&req).map_err(|e| CtlError::Failed(e.to_string()))?;
        line.push(b'\n');
        let lost =
            |e: std::io::Error| CtlError::Unreachable(format!("connection to {} lost: {e}", self.path.display()));
        self.writer.write_all(&line).map_err(lost)?;
        loop {
            let mut buf = String::new();
            let n = self
                .reader
                .read_line(&mut buf)
                .map_err(|e| CtlError::Unreachable(format!("connection to {} lost: {e}", self.path.display())))?;
            if n == 0 {
                return Err(CtlError::Unreachable(format!(
                    "connection to {} closed by the daemon",
                    self.path.display()
                )));
            }
            let reply: Reply = serde_json::from_str(&buf)
                .map_err(|e| CtlError::Failed(format!("unreadable reply from the daemon: {e}")))?;
            if reply.id != req.id && reply.id != 0 {
                continue;
            }
            if reply.ok {
                return Ok(reply.data.unwrap_or(serde_json::Value::Null));
            }
            let err = reply.error.unwrap_or_else(|| common::proto::control::ErrorBody {
                kind: kind::FAILED.into(),
                message: "failed".into(),
            });
            return Err(match err.kind.as_str() {
                kind::PERMISSION_DENIED => CtlError::Unreachable(err.message),
                kind::CONFIG_ERROR => CtlError::Config(err.message),
                _ => CtlError::Failed(err.message),
            });
        }
    }
}
