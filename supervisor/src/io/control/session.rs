//! One control connection's state (its socket lives in the watcher), and the `tail -f`
//! followers.

use crate::access::Grants;
use crate::core::effects::TailSource;
use crate::core::ids::{ClientId, Slot};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::rc::Rc;
use std::time::Instant;

/// One connection's buffers and standing.
pub struct Session {
    /// Received bytes not yet parsed.
    pub inbuf: Vec<u8>,
    /// Bytes to write, front first: shared segments and a cursor, so a partial write moves no
    /// byte and a chunk fanned out to many clients is encoded once.
    pub outbuf: OutQueue,
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
            outbuf: OutQueue::default(),
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

/// A client's unsent output: segments shared between the clients they go to (one program
/// chunk's frame, or the base64 body of a `tail -f` line, is encoded once for all its
/// clients), with a cursor into the front one. [`OutQueue::len`] counts every queued byte of
/// this client, shared or not, so the per-client, per-uid and global budgets see what the
/// client would hold if the bytes were its own.
#[derive(Default)]
pub struct OutQueue {
    segments: VecDeque<Rc<[u8]>>,
    /// Bytes of the front segment already written.
    offset: usize,
    /// Unsent bytes in all (bytes).
    len: usize,
}

/// Segments handed to one `writev` at most.
const MAX_IOVECS: usize = 64;

impl OutQueue {
    /// Unsent bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is left to write.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `segment` (shared, not copied) after the others; an empty one is not kept.
    pub fn push(&mut self, segment: Rc<[u8]>) {
        if segment.is_empty() {
            return;
        }
        self.len += segment.len();
        self.segments.push_back(segment);
    }

    /// The unsent bytes as slices for one vectored write, front first (at most
    /// [`MAX_IOVECS`]).
    pub fn slices(&self) -> Vec<IoSlice<'_>> {
        let mut out = Vec::with_capacity(self.segments.len().min(MAX_IOVECS));
        for (i, seg) in self.segments.iter().take(MAX_IOVECS).enumerate() {
            let from = if i == 0 { self.offset } else { 0 };
            out.push(IoSlice::new(&seg[from..]));
        }
        out
    }

    /// Marks `n` bytes written: whole segments leave the queue, the cursor moves into the next.
    pub fn consume(&mut self, mut n: usize) {
        debug_assert!(n <= self.len);
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.segments.front() else { break };
            let left = front.len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.offset = 0;
            self.segments.pop_front();
        }
    }
}

/// A client following a stream: every new chunk goes to it as `{"id", "stream": {"data"}}`
/// (base64), and `{"id", "end": true, "message"}` closes it.
#[derive(Clone, Debug)]
pub struct Follower {
    /// The client.
    pub client: ClientId,
    /// Its request id.
    pub id: u64,
    /// What it follows.
    pub source: TailSource,
    /// The start of each of its stream lines, `{"id":N,"stream":{"data":"` (made once: the
    /// rest of the line is shared by every follower of the source).
    pub prefix: Rc<[u8]>,
}

/// What a client deadline checks when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deadline {
    /// The request line begun at that time must be complete.
    PartialLine,
    /// The connection must have authenticated.
    Authenticate,
}
