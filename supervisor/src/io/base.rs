//! What every part of the edge shares: the watcher that owns every fd, the main log, and the
//! keys fds are watched under.

use crate::core::ids::{ClientId, SpawnId};
use crate::io::logs::MainLog;
use crate::sys::Watcher;
use common::config::Stream;

/// The watcher and the main log, lent to each part of the edge in turn.
pub struct Io {
    /// Every fd the supervisor holds but its log files.
    pub w: Watcher,
    /// The main log.
    pub log: MainLog,
}

/// Key of the spawner link.
pub const KEY_LINK: usize = 0;
/// Key of the listening socket.
pub const KEY_LISTENER: usize = 1;
/// Key of the password worker's wake-up socket.
pub const KEY_AUTH: usize = 1 << 61;
/// Set in the key of every control client.
pub const CLIENT_BIT: usize = 1 << 62;

/// Key of a child's output pipe.
pub fn pipe_key(spawn_id: SpawnId, stream: Stream) -> usize {
    2 + (spawn_id.0 as usize) * 2 + usize::from(stream == Stream::Stderr)
}

/// Key of a control client.
pub fn client_key(id: ClientId) -> usize {
    CLIENT_BIT | id.0 as usize
}
