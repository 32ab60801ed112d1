//! One connection to the daemon's control socket.
//!
//! A password (socket.auth) goes only to a socket whose file and whose listening process both
//! belong to root, to the ctl's own user, or to the user of the config's `socket.chown`: anyone
//! else who managed to bind the path (a stale socket directory, a `-s` path in a shared
//! directory) would be collecting passwords. The check runs when the daemon asks for a password,
//! before the password is read or sent.

use crate::exit::CtlError;
use common::proto::control::{kind, Action, Reply, Request};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

static USERNAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
static SOCKET_OWNER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
static CREDENTIALS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
static NO_PROMPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The user name to present when the daemon asks for socket.auth (from `-u`,
/// `TASKMASTER_USERNAME` or the config); set once per process.
pub fn set_username(user: Option<String>) {
    let _ = USERNAME.set(user);
}

/// The user of the config's `socket.chown` (None without a config file or without chown),
/// trusted to own the socket a password is sent to; set once per process.
pub fn set_socket_owner(user: Option<String>) {
    let _ = SOCKET_OWNER.set(user);
}

/// Never ask for a password on the terminal (shell completion runs behind the user's back):
/// without `TASKMASTER_PASSWORD`, a daemon that wants one is left unanswered.
pub fn set_no_prompt() {
    NO_PROMPT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Why a socket must not get a password: a uid that is not root, ours, or socket.chown's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Untrusted {
    /// The socket file (lstat) is owned by this uid.
    FileOwner(u32),
    /// The process that listens on it (SO_PEERCRED) runs as this uid.
    Peer(u32),
}

/// The first of the socket file's owner and the listening process's uid that is not in
/// `trusted`, if any.
fn untrusted(file_uid: u32, peer_uid: u32, trusted: &[u32]) -> Option<Untrusted> {
    if !trusted.contains(&file_uid) {
        Some(Untrusted::FileOwner(file_uid))
    } else if !trusted.contains(&peer_uid) {
        Some(Untrusted::Peer(peer_uid))
    } else {
        None
    }
}

/// `uid 1234 (mallory)`, or `uid 1234` for a uid with no name.
fn describe_uid(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// The user name and password for socket.auth, obtained once per process (the shell asks once):
/// the password from `TASKMASTER_PASSWORD`, else read without echo from the terminal.
fn credentials() -> Result<&'static (String, String), CtlError> {
    if let Some(c) = CREDENTIALS.get() {
        return Ok(c);
    }
    let user = USERNAME.get().cloned().flatten().ok_or_else(|| {
        CtlError::Unreachable("the daemon asks for a password: give a user name with -u or TASKMASTER_USERNAME".into())
    })?;
    let password = match std::env::var("TASKMASTER_PASSWORD") {
        Ok(p) => p,
        Err(_) if NO_PROMPT.load(std::sync::atomic::Ordering::Relaxed) => {
            return Err(CtlError::Unreachable("the daemon asks for a password: set TASKMASTER_PASSWORD".into()))
        }
        Err(_) => rpassword::prompt_password(format!("Password for {user}: ")).map_err(|_| {
            CtlError::Unreachable(
                "the daemon asks for a password: set TASKMASTER_PASSWORD (there is no terminal to ask on)".into(),
            )
        })?,
    };
    Ok(CREDENTIALS.get_or_init(|| (user, password)))
}

/// What ended a followed stream.
pub type StreamEnd = Option<String>;

/// How long a lost connection is tried again before giving up (5 s): the spawner starts a new
/// supervisor at once, and the socket keeps accepting meanwhile (issue 16).
pub const RECONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

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

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connects again after the connection was lost (the supervisor was restarted), trying for
    /// up to [`RECONNECT_WAIT`]; a password is asked for again by the next call, as needed.
    ///
    /// # Errors
    /// [`CtlError::Unreachable`]: no daemon answers at the path within that time.
    pub fn reconnect(&mut self) -> Result<(), CtlError> {
        let deadline = std::time::Instant::now() + RECONNECT_WAIT;
        loop {
            match Client::connect(&self.path) {
                Ok(fresh) => {
                    *self = fresh;
                    return Ok(());
                }
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }

    /// Gives up a read that waits longer than `timeout` (None: wait as long as it takes), so
    /// that a daemon that does not answer cannot hang shell completion.
    ///
    /// # Errors
    /// The socket refuses the option (it does not, for a connected UNIX socket).
    pub fn set_timeout(&self, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
        self.writer.set_read_timeout(timeout)?;
        self.writer.set_write_timeout(timeout)
    }

    /// Sends a request and waits for its reply.
    ///
    /// # Errors
    /// The connection failed ([`CtlError::Unreachable`]); the daemon refused the request for
    /// permissions ([`CtlError::Unreachable`]) or otherwise ([`CtlError::Failed`]).
    pub fn call(
        &mut self,
        action: Action,
        names: &[String],
        args: serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, CtlError> {
        match self.call_authenticated(action, names, args.clone()) {
            // The supervisor died with the request (issue 16): once more, on a new connection.
            Err(CtlError::Lost(why)) => {
                eprintln!("taskmasterctl: {why}; trying again");
                self.reconnect()?;
                self.call_authenticated(action, names, args)
            }
            other => other,
        }
    }

    fn call_authenticated(
        &mut self,
        action: Action,
        names: &[String],
        args: serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, CtlError> {
        match self.call_once(action, names, args.clone()) {
            Err(CtlError::AuthRequired) => {
                self.check_password_recipient()?;
                let (user, password) = credentials()?;
                let mut creds = serde_json::Map::new();
                creds.insert("username".into(), serde_json::Value::String(user.clone()));
                creds.insert("password".into(), serde_json::Value::String(password.clone()));
                match self.call_once(Action::Auth, &[], creds) {
                    Ok(_) => self.call_once(action, names, args),
                    Err(CtlError::Unreachable(m) | CtlError::Failed(m)) => {
                        Err(CtlError::Unreachable(format!("{m} (as '{user}')")))
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Refuses to go on unless the socket file (lstat, not following a symlink) and the process
    /// listening on the connected socket (SO_PEERCRED) both belong to root, to us, or to the
    /// config's `socket.chown` user.
    ///
    /// # Errors
    /// [`CtlError::Unreachable`] (exit 4): "refusing to send a password to PATH: it is owned by
    /// uid 1234 (mallory), not root, you, or socket.chown's owner", or the same naming the
    /// listening process, or saying that the owner cannot be checked.
    fn check_password_recipient(&self) -> Result<(), CtlError> {
        use std::os::unix::fs::MetadataExt;
        let refuse = |why: String| {
            CtlError::Unreachable(format!("refusing to send a password to {}: {why}", self.path.display()))
        };
        let file_uid =
            std::fs::symlink_metadata(&self.path).map_err(|e| refuse(format!("cannot check who owns it: {e}")))?.uid();
        let peer_uid = nix::sys::socket::getsockopt(&self.writer, nix::sys::socket::sockopt::PeerCredentials)
            .map_err(|e| refuse(format!("cannot check who serves it: {e}")))?
            .uid();
        let mut trusted = vec![0, nix::unistd::getuid().as_raw(), nix::unistd::geteuid().as_raw()];
        if let Some(Some(name)) = SOCKET_OWNER.get() {
            if let Ok(Some(u)) = nix::unistd::User::from_name(name) {
                trusted.push(u.uid.as_raw());
            }
        }
        let not_trusted = "not root, you, or socket.chown's owner";
        match untrusted(file_uid, peer_uid, &trusted) {
            None => Ok(()),
            Some(Untrusted::FileOwner(uid)) => {
                Err(refuse(format!("it is owned by {}, {not_trusted}", describe_uid(uid))))
            }
            Some(Untrusted::Peer(uid)) => {
                Err(refuse(format!("the process serving it runs as {}, {not_trusted}", describe_uid(uid))))
            }
        }
    }

    fn call_once(
        &mut self,
        action: Action,
        names: &[String],
        args: serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, CtlError> {
        self.next_id += 1;
        let req = Request { id: self.next_id, action: action.as_str().to_owned(), names: names.to_vec(), args };
        let mut line = serde_json::to_vec(&req).map_err(|e| CtlError::Failed(e.to_string()))?;
        line.push(b'\n');
        let lost = |e: std::io::Error| CtlError::Lost(format!("connection to {} lost: {e}", self.path.display()));
        self.writer.write_all(&line).map_err(lost)?;
        loop {
            let mut buf = String::new();
            let n = self
                .reader
                .read_line(&mut buf)
                .map_err(|e| CtlError::Lost(format!("connection to {} lost: {e}", self.path.display())))?;
            if n == 0 {
                return Err(CtlError::Lost(format!("connection to {} closed by the daemon", self.path.display())));
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
                kind::PERMISSION_DENIED | kind::UNAVAILABLE => CtlError::Unreachable(err.message),
                kind::CONFIG_ERROR => CtlError::Config(err.message),
                kind::AUTH_REQUIRED => CtlError::AuthRequired,
                kind::NO_SUCH_PROCESS => CtlError::NoSuchProcess(err.message),
                _ => CtlError::Failed(err.message),
            });
        }
    }

    /// Follows the stream of the last request: calls `on_chunk` with each chunk's base64 data
    /// until the daemon ends it (returns its message), the user types Ctrl-D on a terminal stdin
    /// (`watch_stdin`; returns `None`), or the connection closes.
    ///
    /// # Errors
    /// The connection closed: [`CtlError::Lost`] (the caller may follow again on a new one).
    pub fn follow(
        &mut self,
        watch_stdin: bool,
        mut on_chunk: impl FnMut(&str) -> Result<(), CtlError>,
    ) -> Result<StreamEnd, CtlError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let gone = || CtlError::Lost(format!("the daemon went away ({} closed)", self.path.display()));
        loop {
            if self.reader.buffer().is_empty() && watch_stdin {
                let stdin = std::io::stdin();
                let sock = self.writer.as_fd();
                let mut fds = [PollFd::new(sock, PollFlags::POLLIN), PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
                if poll(&mut fds, PollTimeout::NONE).is_err() {
                    continue;
                }
                if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                    let mut buf = [0u8; 256];
                    match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
                        Ok(0) => return Ok(None), // Ctrl-D
                        _ => continue,            // typed input is not for us
                    }
                }
            }
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return Err(gone()),
                Ok(_) => {}
            }
            let v: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| CtlError::Failed(format!("unreadable stream from the daemon: {e}")))?;
            if v.get("end").and_then(serde_json::Value::as_bool) == Some(true) {
                return Ok(Some(
                    v.get("message").and_then(serde_json::Value::as_str).unwrap_or("stream ended").to_owned(),
                ));
            }
            if let Some(data) = v.get("stream").and_then(|s| s.get("data")).and_then(serde_json::Value::as_str) {
                on_chunk(data)?;
            }
        }
    }

    /// The connection and any bytes already read past the last reply (an attach stream's
    /// first frames).
    pub fn into_parts(self) -> (UnixStream, Vec<u8>) {
        let leftover = self.reader.buffer().to_vec();
        (self.writer, leftover)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_goes_only_where_file_and_listener_are_trusted() {
        let trusted = [0, 1000, 990];
        assert_eq!(untrusted(0, 0, &trusted), None);
        assert_eq!(untrusted(990, 0, &trusted), None); // socket.chown's owner, served by root
        assert_eq!(untrusted(1000, 1000, &trusted), None); // our own unprivileged daemon
        assert_eq!(untrusted(1234, 0, &trusted), Some(Untrusted::FileOwner(1234)));
        assert_eq!(untrusted(0, 1234, &trusted), Some(Untrusted::Peer(1234)));
        assert_eq!(untrusted(1234, 4321, &trusted), Some(Untrusted::FileOwner(1234)));
    }
}
