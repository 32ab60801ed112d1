//! One control connection's state (its socket lives in the watcher), and the `tail -f`
//! followers.

use crate::access::Grants;
use crate::core::effects::TailSource;
use crate::core::ids::{ClientId, Slot};
use std::collections::VecDeque;
use std::time::Instant;

/// One connection's buffers and standing.
pub struct Session {
    /// Received bytes not yet parsed.
    pub inbuf: Vec<u8>,
    /// Bytes to write, front first: a cursor, so a partial write moves no byte.
    pub outbuf: VecDeque<u8>,
    /// The process this connection is attached to (`fg`), and its name: it then carries
    /// frames, not lines.
    pub attached: Option<(Slot, String)>,
    /// Output was withheld from this attached client while it lagged; it gets a redraw once
    /// its queue drains.
    pub behind: bool,
    /// The peer's uid (SO_PEERCRED).
    pub uid: u32,
    /// What the peer may do.
    pub grants: Grants,
    /// The peer passed socket.auth (always true without it).
    pub authenticated: bool,
    /// Failed authentications on this connection.
    pub failures: u32,
    /// A password check (or the wait before its failure's answer) is under way: nothing more
    /// is read or parsed from this connection until it is answered.
    pub auth_pending: bool,
    /// When the incomplete line now in `inbuf` was begun.
    pub partial_since: Option<Instant>,
    /// How much of `inbuf` is known to hold no newline (each byte is scanned once).
    pub scanned: usize,
    /// The bytes of `inbuf` counted in the server's input total.
    pub in_counted: usize,
    /// The username of the pending password check, as given (printable, at most 64 chars).
    pub auth_user: String,
}

impl Session {
    /// A new connection of `uid`.
    pub fn new(uid: u32, grants: Grants, authenticated: bool) -> Self {
        Session {
            inbuf: Vec::new(),
            outbuf: VecDeque::new(),
            attached: None,
            behind: false,
            uid,
            grants,
            authenticated,
            failures: 0,
            auth_pending: false,
            partial_since: None,
            scanned: 0,
            in_counted: 0,
            auth_user: String::new(),
        }
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.outbuf.len()
    }
}

/// A client following a stream: every new chunk goes to it as `{"id", "stream": {"data"}}`
/// (base64), and `{"id", "end": true, "message"}` closes it.
#[derive(Clone, Copy, Debug)]
pub struct Follower {
    /// The client.
    pub client: ClientId,
    /// Its request id.
    pub id: u64,
    /// What it follows.
    pub source: TailSource,
}

/// What a client deadline checks when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deadline {
    /// The request line begun at that time must be complete.
    PartialLine,
    /// The connection must have authenticated.
    Authenticate,
}
