//! The spawner link (DESIGN §1): datagrams on a SOCK_SEQPACKET socketpair, each an 8-byte header
//! `{version u16, tag u16, len u32}` (big-endian) and a payload of at most `MAX_MSG - 8` bytes.
//!
//! Payloads are JSON with unknown fields refused, except config chunks, which are raw bytes. The
//! header's tag must match the payload's variant; an unknown tag, a wrong version, a wrong
//! length or an fd count that does not fit the message is a [`ProtoError`] and ends the link.
//! The model is OpenBSD's imsg: fixed size, typed, and the privileged side trusts nothing.

use crate::config::model::Server;
use crate::config::{Program, SocketConfig};
use crate::sys::{recv_with_fds, send_with_fds};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Protocol version; both sides must say the same in their `Hello`.
pub const VERSION: u16 = 1;
/// Largest datagram in bytes, header included.
pub const MAX_MSG: usize = 16 * 1024;
/// Header length in bytes.
pub const HEADER: usize = 8;
/// Most fds one message may carry (stdin, stdout, stderr).
pub const MAX_FDS: usize = 3;
/// Longest `STATUS=` text a `Notify` may carry, in bytes.
pub const MAX_STATUS: usize = 200;
/// The supervisor's exit status asking the spawner for a replacement (EX_TEMPFAIL): a re-read
/// config names log directories its Landlock rules, fixed at start, do not cover. The spawner
/// prepares the config's log paths as at start and starts a new supervisor at once, confined
/// to the new directories; it is not counted as a death.
pub const REPLACE_EXIT: u8 = 75;

/// What may go wrong on the link. Every variant ends it.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The socket failed.
    #[error("link I/O: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the link.
    #[error("link closed by peer")]
    Closed,
    /// Shorter than a header, or `len` disagrees with the datagram.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Larger than `MAX_MSG`, or its fds did not fit.
    #[error("message too large or truncated")]
    Truncated,
    /// The header's version is not ours.
    #[error("protocol version {0}, expected {VERSION}")]
    Version(u16),
    /// A tag this side does not know.
    #[error("unknown message tag {0}")]
    UnknownTag(u16),
    /// Fds came with a message that takes none, or too many.
    #[error("message tag {tag} carries {got} fds, expected {expected}")]
    FdCount {
        /// The message's tag.
        tag: u16,
        /// Fds expected.
        expected: usize,
        /// Fds received.
        got: usize,
    },
}

/// Supervisor -> spawner. Each request names a program and an instance, or a spawn id; the
/// spawner looks everything else up in its own config (DESIGN §1 rule 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Request {
    /// First message: the supervisor's protocol version.
    Hello {
        /// Must equal [`VERSION`].
        version: u16,
    },
    /// Fork and exec one instance of a program.
    Spawn {
        /// Echoed in the answer, to match it.
        token: u64,
        /// Program name, a key of the spawner's config.
        program: String,
        /// Instance number, within the program's range.
        instance: u32,
        /// Config generation the supervisor believes in; a stale one is refused.
        generation: u64,
    },
    /// Re-read and validate the config file (the supervisor never reads it); answered by the
    /// new config and its plan, or by `ConfigRejected`. Nothing changes until `Commit`.
    Reread {
        /// Echoed in the answer.
        token: u64,
    },
    /// Make the last re-read config current for these programs (all when empty): later spawns
    /// of them use it.
    Commit {
        /// The generation the re-read announced.
        generation: u64,
        /// Programs to take from it; empty: all of it.
        programs: Vec<String>,
    },
    /// Tell the service manager (sd_notify) about the daemon; the spawner, systemd's main pid,
    /// sends it when `NOTIFY_SOCKET` is set.
    Notify {
        /// `READY=1`.
        ready: bool,
        /// `RELOADING=1` with `MONOTONIC_USEC`.
        reloading: bool,
        /// `STOPPING=1`.
        stopping: bool,
        /// `WATCHDOG=1`.
        watchdog: bool,
        /// `STATUS=…`, one line of at most [`MAX_STATUS`] printable characters.
        status: Option<String>,
    },
    /// Keep (or, with `None`, forget) what a new supervisor needs to know of one process that
    /// its live children cannot tell (issue 16): BACKOFF, FATAL, EXITED, STOPPED after a run,
    /// STOPPING. The spawner only stores it, bounded by its own config's programs and
    /// instances, and hands it back at a supervisor restart ([`Event::Remembered`]).
    Remember {
        /// Program name, a key of the spawner's config.
        program: String,
        /// Instance number, within the program's range.
        instance: u32,
        /// The record; `None` forgets it (the process is starting or running again).
        record: Option<ProcRecord>,
    },
    /// The supervisor has acted on a child's [`Event::Exited`]: the spawner may forget the
    /// child and close its copies of the fds. Until then the child stays in the inventory, so
    /// an exit that a dying supervisor received but never acted on reaches the next one.
    ExitSeen {
        /// The child.
        spawn_id: u64,
    },
    /// Deliver a signal to a live child the spawner forked (DESIGN §1 rule 2).
    Signal {
        /// The child.
        spawn_id: u64,
        /// Signal number.
        signal: i32,
        /// Why: the spawner decides from it whether the process group gets it.
        purpose: SignalPurpose,
    },
}

/// The state of one process that its child cannot show, as the supervisor asked the spawner
/// to keep it ([`Request::Remember`]); times are CLOCK_MONOTONIC nanoseconds
/// ([`crate::units::monotonic_ns`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcRecord {
    /// supervisord's state name: `BACKOFF`, `FATAL`, `EXITED`, `STOPPED`, `STOPPING`.
    pub state: String,
    /// Failed starts in a row (supervisord's backoff count).
    pub backoff: u32,
    /// How the last process ended.
    pub last_exit: Option<ExitStatus>,
    /// The last spawn error, shown by `status`.
    pub spawnerr: Option<String>,
    /// The process was ever started.
    pub ever_started: bool,
    /// When the state was entered, CLOCK_MONOTONIC nanoseconds.
    pub changed_ns: u64,
}

/// Why a signal is sent; it decides whether the whole process group receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalPurpose {
    /// The stop signal: to the group when the program has `stopasgroup`.
    Stop,
    /// SIGKILL after `stopwaitsecs`: to the group when the program has `killasgroup`.
    Kill,
    /// `taskmasterctl signal`: the process only.
    User,
}

/// How a child ended, from `waitpid(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// `exit(code)`.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

impl std::fmt::Display for ExitStatus {
    /// `exit status 3`, `signal SIGKILL`: how the spawner's and the supervisor's lines say it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit status {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {}", crate::units::signal_name(*s)),
        }
    }
}

/// Which stdio fds a `Spawned` carries, in this order: stdin, stdout, stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdSet {
    /// The write end of the child's stdin pipe.
    pub stdin: bool,
    /// The read end of the child's stdout pipe (stdout+stderr when redirected).
    pub stdout: bool,
    /// The read end of the child's stderr pipe.
    pub stderr: bool,
    /// The child runs on a pseudo-terminal: the first fd is its master (output and input).
    pub pty: bool,
    /// With `pty`: the master is followed by a holding pipe's read and write ends, through
    /// which the supervisor moves the terminal's output by splice(2) (issue 16).
    #[serde(default)]
    pub hold: bool,
}

impl FdSet {
    /// Number of fds carried.
    pub fn count(&self) -> usize {
        if self.pty {
            return if self.hold { 3 } else { 1 };
        }
        [self.stdin, self.stdout, self.stderr].iter().filter(|b| **b).count()
    }
}

/// Spawner -> supervisor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Event {
    /// Answer to the supervisor's hello.
    Hello {
        /// Must equal [`VERSION`].
        version: u16,
        /// The spawner's pid: the daemon's pid as `taskmasterctl pid` prints it.
        spawner_pid: i32,
        /// The uid that started taskmasterd (admin on the control socket, DESIGN §8).
        owner_uid: u32,
        /// A service manager listens for `Notify` (NOTIFY_SOCKET is set).
        notify: bool,
        /// The service manager's watchdog interval (WATCHDOG_USEC), in microseconds.
        watchdog_usec: Option<u64>,
        /// taskmasterd's stderr is journald's stream (`JOURNAL_STREAM` names it, as
        /// sd_journal_stream_fd(3) says to check): the supervisor's stderr, a pipe the spawner
        /// relays there, gets `<N>` priority prefixes and no timestamps. Decided by the spawner,
        /// since the supervisor's own stderr is never that stream.
        journal: bool,
        /// Supervisors started before this one since taskmasterd started (0: the first).
        restarts: u32,
        /// The supervisor this one replaces: its pid and how it ended. When set, the config is
        /// followed by the inventory ([`Event::Adopt`], [`Event::Remembered`],
        /// [`Event::AdoptEnd`]) and then by the exits and signals that arrived meanwhile.
        previous: Option<(i32, ExitStatus)>,
        /// An earlier taskmasterd with this pid left its pidfile behind: it did not exit in
        /// order (killed with SIGKILL, it could not log it; its programs got the parent-death
        /// signal).
        #[serde(default)]
        unclean_predecessor: Option<i32>,
    },
    /// A piece of a config item (see [`ConfigItem`]); `more` is false on its last piece.
    ConfigChunk {
        /// Another chunk of the same item follows.
        more: bool,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Every item of config generation `generation` has been sent.
    ConfigEnd {
        /// The generation, incremented by each re-read.
        generation: u64,
        /// The `Reread` this answers; `None` for the config sent at start.
        token: Option<u64>,
    },
    /// A re-read found errors; nothing changed.
    ConfigRejected {
        /// The `Reread` this answers.
        token: u64,
        /// Every error, one per line, each with file:line:col.
        error: String,
    },
    /// A child was forked and exec'd; its stdio fds are attached as `fds` says.
    Spawned {
        /// The request's token.
        token: u64,
        /// The child's id for later requests.
        spawn_id: u64,
        /// Its pid.
        pid: i32,
        /// The fds attached.
        fds: FdSet,
    },
    /// The spawn did not happen or exec failed; `error` names the step and errno.
    SpawnFailed {
        /// The request's token.
        token: u64,
        /// One line: "execve /usr/bin/x: ENOENT (No such file or directory)".
        error: String,
        /// The step that failed (`execve`, `chdir`, `setuid`, `fork`, `find command` …), when
        /// one did (not for a refused request).
        #[serde(default)]
        step: Option<String>,
        /// That step's errno.
        #[serde(default)]
        errno: Option<i32>,
    },
    /// A child ended and was reaped.
    Exited {
        /// Its spawn id.
        spawn_id: u64,
        /// How it ended.
        status: ExitStatus,
    },
    /// A `Signal` request could not be carried out.
    SignalFailed {
        /// The child named.
        spawn_id: u64,
        /// Why.
        error: String,
    },
    /// The daemon received this signal (TERM, INT, QUIT, HUP, USR2) and forwards it.
    DaemonSignal {
        /// Signal number.
        signal: i32,
    },
    /// After a supervisor restart: one child the spawner forked and has not reported ended,
    /// with the spawner's duplicates of the fds it handed over (`fds` says which, as in
    /// [`Event::Spawned`]). Its exit, if it happened while no supervisor ran, follows
    /// [`Event::AdoptEnd`] as an [`Event::Exited`].
    Adopt {
        /// Its spawn id.
        spawn_id: u64,
        /// Its program.
        program: String,
        /// Its instance.
        instance: u32,
        /// Its pid.
        pid: i32,
        /// The config generation it was spawned under.
        generation: u64,
        /// When it was spawned, CLOCK_MONOTONIC nanoseconds.
        started_ns: u64,
        /// The fds attached.
        fds: FdSet,
        /// It has ended; its [`Event::Exited`] follows the inventory.
        ended: bool,
    },
    /// After a supervisor restart: a process record the previous supervisor asked to keep.
    Remembered {
        /// Its program.
        program: String,
        /// Its instance.
        instance: u32,
        /// The record.
        record: ProcRecord,
    },
    /// The inventory is complete.
    AdoptEnd {
        /// How many [`Event::Adopt`] were sent.
        adopted: u32,
    },
}

/// What the supervisor is told of the config: the server and socket sections and every program
/// with its environment removed (the supervisor never needs, so never sees, secrets in it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ConfigItem {
    /// `server:` and `socket:` and how the daemon was started.
    Server {
        /// `server:`.
        server: Box<Server>,
        /// `socket:`.
        socket: SocketConfig,
        /// Also log to stderr (foreground).
        log_to_stderr: bool,
    },
    /// One program.
    Program(Box<Program>),
    /// What changed since the current config (re-reads only).
    Plan(crate::config::ReloadPlan),
}

impl ConfigItem {
    /// The server item the supervisor is sent: `server:` without its environment (it reaches
    /// children through the spawner only, so the supervisor never holds its secrets), `socket:`,
    /// and whether the daemon logs to stderr.
    pub fn server(server: &Server, socket: &SocketConfig, log_to_stderr: bool) -> Self {
        let server = Server { environment: Vec::new(), ..server.clone() };
        ConfigItem::Server { server: Box::new(server), socket: socket.clone(), log_to_stderr }
    }

    /// The item the supervisor is sent for `program`: the program without its environment.
    pub fn program(program: &Program) -> Self {
        ConfigItem::Program(Box::new(Program { environment: Vec::new(), ..program.clone() }))
    }

    /// The item's encoded form, the bytes [`config_events`] splits into chunks.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A message type of the link.
pub trait Message: Serialize + DeserializeOwned {
    /// The header tag of this value's variant.
    fn tag(&self) -> u16;
    /// Whether `tag` names a variant of this type.
    fn known_tag(tag: u16) -> bool;
    /// How many fds a message of this value carries.
    fn fd_count(&self) -> usize {
        0
    }
    /// The payload when it is not JSON.
    fn raw_payload(&self) -> Option<Vec<u8>> {
        None
    }
    /// Decodes a payload that is not JSON; `None` for a JSON tag.
    fn from_raw(_tag: u16, _payload: &[u8]) -> Option<Result<Self, ProtoError>> {
        None
    }
}

impl Message for Request {
    fn tag(&self) -> u16 {
        match self {
            Request::Hello { .. } => 1,
            Request::Spawn { .. } => 2,
            Request::Signal { .. } => 3,
            Request::Reread { .. } => 4,
            Request::Commit { .. } => 5,
            Request::Notify { .. } => 6,
            Request::Remember { .. } => 7,
            Request::ExitSeen { .. } => 8,
        }
    }
    fn known_tag(tag: u16) -> bool {
        (1..=8).contains(&tag)
    }
}

const TAG_CONFIG_CHUNK: u16 = 102;

impl Message for Event {
    fn tag(&self) -> u16 {
        match self {
            Event::Hello { .. } => 101,
            Event::ConfigChunk { .. } => TAG_CONFIG_CHUNK,
            Event::ConfigEnd { .. } => 103,
            Event::Spawned { .. } => 104,
            Event::SpawnFailed { .. } => 105,
            Event::Exited { .. } => 106,
            Event::SignalFailed { .. } => 107,
            Event::DaemonSignal { .. } => 108,
            Event::ConfigRejected { .. } => 109,
            Event::Adopt { .. } => 110,
            Event::Remembered { .. } => 111,
            Event::AdoptEnd { .. } => 112,
        }
    }
    fn known_tag(tag: u16) -> bool {
        (101..=112).contains(&tag)
    }
    fn fd_count(&self) -> usize {
        match self {
            Event::Spawned { fds, .. } | Event::Adopt { fds, .. } => fds.count(),
            _ => 0,
        }
    }
    fn raw_payload(&self) -> Option<Vec<u8>> {
        let Event::ConfigChunk { more, data } = self else { return None };
        let mut p = Vec::with_capacity(data.len() + 1);
        p.push(u8::from(*more));
        p.extend_from_slice(data);
        Some(p)
    }
    fn from_raw(tag: u16, payload: &[u8]) -> Option<Result<Self, ProtoError>> {
        if tag != TAG_CONFIG_CHUNK {
            return None;
        }
        Some(match payload.split_first() {
            Some((&more, data)) if more <= 1 => Ok(Event::ConfigChunk { more: more == 1, data: data.to_vec() }),
            _ => Err(ProtoError::Malformed("config chunk without a valid flag byte".into())),
        })
    }
}

/// Encodes a message to one datagram.
///
/// # Errors
/// The payload would exceed [`MAX_MSG`].
pub fn encode<M: Message>(msg: &M) -> Result<Vec<u8>, ProtoError> {
    let tag = msg.tag();
    let payload = match msg.raw_payload() {
        Some(p) => p,
        None => serde_json::to_vec(msg).map_err(|e| ProtoError::Malformed(e.to_string()))?,
    };
    if payload.len() > MAX_MSG - HEADER {
        return Err(ProtoError::Truncated);
    }
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes one datagram of `M` that arrived with `nfds` fds.
///
/// # Errors
/// Any [`ProtoError`] but `Io` and `Closed`.
pub fn decode<M: Message>(bytes: &[u8], nfds: usize) -> Result<M, ProtoError> {
    let msg: M = decode_payload(bytes)?;
    if msg.fd_count() != nfds {
        return Err(ProtoError::FdCount { tag: msg.tag(), expected: msg.fd_count(), got: nfds });
    }
    Ok(msg)
}

/// Decodes one datagram of `M` without checking the fds that came with it.
fn decode_payload<M: Message>(bytes: &[u8]) -> Result<M, ProtoError> {
    if bytes.len() < HEADER {
        return Err(ProtoError::Malformed(format!("{} bytes, shorter than a header", bytes.len())));
    }
    let version = u16::from_be_bytes([bytes[0], bytes[1]]);
    let tag = u16::from_be_bytes([bytes[2], bytes[3]]);
    let len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if version != VERSION {
        return Err(ProtoError::Version(version));
    }
    if !M::known_tag(tag) {
        return Err(ProtoError::UnknownTag(tag));
    }
    let payload = &bytes[HEADER..];
    if payload.len() != len {
        return Err(ProtoError::Malformed(format!("header says {len} bytes, datagram has {}", payload.len())));
    }
    let msg: M = match M::from_raw(tag, payload) {
        Some(m) => m?,
        None => serde_json::from_slice(payload).map_err(|e| ProtoError::Malformed(e.to_string()))?,
    };
    if msg.tag() != tag {
        return Err(ProtoError::Malformed(format!("tag {tag} carries a message of tag {}", msg.tag())));
    }
    Ok(msg)
}

/// One end of the link.
#[derive(Debug)]
pub struct Link {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Link {
    /// Wraps a connected SOCK_SEQPACKET socket.
    pub fn new(fd: OwnedFd) -> Self {
        Link { fd, buf: vec![0; MAX_MSG + 1] }
    }

    /// Sends `msg` with `fds` attached.
    ///
    /// # Errors
    /// Encoding or `sendmsg` failed.
    pub fn send<M: Message>(&self, msg: &M, fds: &[BorrowedFd<'_>]) -> Result<(), ProtoError> {
        let bytes = encode(msg)?;
        send_with_fds(self.fd.as_fd(), &bytes, fds).map_err(ProtoError::Io)
    }

    /// Sends one already [`encode`]d datagram without fds; `Err(WouldBlock)` when the socket is
    /// non-blocking and full.
    ///
    /// # Errors
    /// The errno of `sendmsg`.
    pub fn send_encoded(&self, bytes: &[u8]) -> io::Result<()> {
        send_with_fds(self.fd.as_fd(), bytes, &[])
    }

    /// Receives one message and the fds it carries. `Err(Io(WouldBlock))` when the socket is
    /// non-blocking and empty. The fds are owned before anything is checked, so a refused
    /// message still closes them.
    ///
    /// When the kernel could not install every fd the message carried (MSG_CTRUNC: this
    /// process is out of fds), the message is still returned, with fewer fds than its
    /// [`Message::fd_count`]: that is an error for that one event, which the caller handles,
    /// never a reason to end the link (issue 12).
    ///
    /// # Errors
    /// [`ProtoError::Closed`] at end of stream, or any decoding error.
    pub fn recv<M: Message>(&mut self) -> Result<(M, Vec<OwnedFd>), ProtoError> {
        let r = recv_with_fds(self.fd.as_fd(), &mut self.buf, MAX_FDS)?;
        if r.len == 0 && r.fds.is_empty() && !r.fds_lost {
            return Err(ProtoError::Closed);
        }
        if r.truncated || r.len > MAX_MSG {
            return Err(ProtoError::Truncated);
        }
        if r.fds_lost {
            let msg: M = decode_payload(&self.buf[..r.len])?;
            if r.fds.len() >= msg.fd_count() {
                return Err(ProtoError::FdCount { tag: msg.tag(), expected: msg.fd_count(), got: r.fds.len() });
            }
            return Ok((msg, r.fds));
        }
        let msg = decode::<M>(&self.buf[..r.len], r.fds.len())?;
        Ok((msg, r.fds))
    }
}

impl AsFd for Link {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Splits config items into `ConfigChunk` events of at most `MAX_MSG` bytes each, then the
/// `ConfigEnd` marker.
pub fn config_events(items: &[ConfigItem], generation: u64, token: Option<u64>) -> Vec<Event> {
    let max = (MAX_MSG - HEADER - 1) / 4; // JSON encodes a byte of `data` in up to 4 bytes
    let mut out = Vec::new();
    for item in items {
        let bytes = item.encode();
        let mut chunks = bytes.chunks(max).peekable();
        while let Some(chunk) = chunks.next() {
            out.push(Event::ConfigChunk { more: chunks.peek().is_some(), data: chunk.to_vec() });
        }
    }
    out.push(Event::ConfigEnd { generation, token });
    out
}

/// Reassembles config items from chunks, bounded to [`MAX_ITEM`] bytes an item.
///
/// An error leaves nothing behind (DESIGN §1 rule 6): the partial item and the items of the
/// generation received so far are dropped, the rest of that generation's chunks are ignored, and
/// [`ConfigAssembler::finish`] at its `ConfigEnd` reports the error and starts the next
/// generation from a clean state. A half-received config is never applied.
#[derive(Debug, Default)]
pub struct ConfigAssembler {
    partial: Vec<u8>,
    /// Items completed so far in this generation.
    pub items: Vec<ConfigItem>,
    /// The first error of this generation, if any: its later chunks are dropped.
    failed: Option<String>,
}

/// Largest config item accepted, in bytes of its encoded form (1 MiB). Config validation refuses
/// a program whose item would be larger, so the spawner never sends one.
pub const MAX_ITEM: usize = 1 << 20;

impl ConfigAssembler {
    /// Adds a chunk.
    ///
    /// # Errors
    /// An item over [`MAX_ITEM`] bytes, or one that is not a valid `ConfigItem`; the assembler is
    /// then cleared and ignores chunks until [`ConfigAssembler::finish`].
    pub fn push(&mut self, more: bool, data: &[u8]) -> Result<(), ProtoError> {
        if self.failed.is_some() {
            return Ok(());
        }
        match self.take_chunk(more, data) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.partial = Vec::new();
                self.items = Vec::new();
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn take_chunk(&mut self, more: bool, data: &[u8]) -> Result<(), ProtoError> {
        if self.partial.len() + data.len() > MAX_ITEM {
            return Err(ProtoError::Malformed(format!("config item over {MAX_ITEM} bytes")));
        }
        self.partial.extend_from_slice(data);
        if !more {
            let item = serde_json::from_slice(&self.partial)
                .map_err(|e| ProtoError::Malformed(format!("config item: {e}")))?;
            self.items.push(item);
            self.partial.clear();
        }
        Ok(())
    }

    /// Ends the generation (its `ConfigEnd` arrived): returns its items and leaves the assembler
    /// empty for the next one.
    ///
    /// # Errors
    /// A chunk of this generation failed, or its last item was left unfinished.
    pub fn finish(&mut self) -> Result<Vec<ConfigItem>, ProtoError> {
        let Self { partial, items, failed } = std::mem::take(self);
        match failed {
            Some(e) => Err(ProtoError::Malformed(e)),
            None if !partial.is_empty() => Err(ProtoError::Malformed("config ended inside an item".into())),
            None => Ok(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Request::Spawn { token: 7, program: "web".into(), instance: 1, generation: 1 };
        let b = encode(&r).unwrap();
        assert_eq!(decode::<Request>(&b, 0).unwrap(), r);
        let e = Event::ConfigChunk { more: true, data: b"{\"x\"".to_vec() };
        assert_eq!(decode::<Event>(&encode(&e).unwrap(), 0).unwrap(), e);
    }

    #[test]
    fn hostile_messages_are_refused() {
        let good = encode(&Request::Hello { version: VERSION }).unwrap();
        let mut v = good.clone();
        v[1] = 9;
        assert!(matches!(decode::<Request>(&v, 0), Err(ProtoError::Version(9))));
        let mut t = good.clone();
        t[3] = 99;
        assert!(matches!(decode::<Request>(&t, 0), Err(ProtoError::UnknownTag(99))));
        let mut tag_lie = good.clone();
        tag_lie[3] = 2;
        assert!(matches!(decode::<Request>(&tag_lie, 0), Err(ProtoError::Malformed(_))));
        assert!(matches!(decode::<Request>(&good[..5], 0), Err(ProtoError::Malformed(_))));
        assert!(matches!(decode::<Request>(&good[..good.len() - 1], 0), Err(ProtoError::Malformed(_))));
        assert!(matches!(decode::<Request>(&good, 1), Err(ProtoError::FdCount { .. })));
        let mut extra = good[..HEADER].to_vec();
        let payload = br#"{"Hello":{"version":1,"evil":2}}"#;
        extra[4..8].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        extra.extend_from_slice(payload);
        assert!(decode::<Request>(&extra, 0).is_err());
        // A spawner event is not a request.
        let ev = encode(&Event::DaemonSignal { signal: 15 }).unwrap();
        assert!(matches!(decode::<Request>(&ev, 0), Err(ProtoError::UnknownTag(108))));
    }

    #[test]
    fn config_chunks_reassemble() {
        let mut server = crate::config::load::load_str(
            std::path::Path::new("/x/t.yaml"),
            &format!("programs:\n  a:\n    command: '{}'\n", "y".repeat(40_000)),
            &crate::config::Context { is_root: false, current_user: None, check_users: false, trusted_uid: None },
        )
        .unwrap();
        let prog = server.programs.remove(0);
        let items = vec![ConfigItem::Program(Box::new(prog.clone()))];
        let events = config_events(&items, 3, None);
        assert!(events.len() > 3);
        let mut asm = ConfigAssembler::default();
        for e in &events {
            let e: Event = decode(&encode(e).unwrap(), 0).unwrap();
            match e {
                Event::ConfigChunk { more, data } => asm.push(more, &data).unwrap(),
                Event::ConfigEnd { generation, token } => assert_eq!((generation, token), (3, None)),
                _ => unreachable!(),
            }
        }
        assert_eq!(asm.items, items);
    }

    fn small_item() -> ConfigItem {
        ConfigItem::Plan(crate::config::ReloadPlan { added: vec!["fresh".into()], ..Default::default() })
    }

    /// Feeds `item`'s chunks as `config_events` makes them; returns what `finish` says.
    fn feed(asm: &mut ConfigAssembler, item: &ConfigItem) -> Result<Vec<ConfigItem>, ProtoError> {
        for e in config_events(std::slice::from_ref(item), 1, None) {
            if let Event::ConfigChunk { more, data } = e {
                let _ = asm.push(more, &data);
            }
        }
        asm.finish()
    }

    #[test]
    fn an_oversized_item_leaves_no_state_behind() {
        let mut asm = ConfigAssembler::default();
        let chunk = vec![b'x'; 4096];
        assert!(asm.push(false, &small_item().encode()).is_ok());
        let mut pushed = 0;
        let err = loop {
            match asm.push(true, &chunk) {
                Ok(()) => pushed += chunk.len(),
                Err(e) => break e,
            }
        };
        assert!(pushed <= MAX_ITEM && err.to_string().contains("over 1048576 bytes"), "{err}");
        // The rest of the oversized item and the items after it are dropped, not decoded.
        assert!(asm.push(true, &chunk).is_ok());
        assert!(asm.push(false, b"}").is_ok());
        assert!(asm.push(false, &small_item().encode()).is_ok());
        assert!(asm.items.is_empty() && asm.partial.is_empty());
        assert!(asm.finish().is_err(), "the generation is refused as a whole");
        // The next generation decodes as if nothing had happened.
        assert_eq!(feed(&mut asm, &small_item()).unwrap(), [small_item()]);
    }

    #[test]
    fn a_malformed_item_or_an_unfinished_one_leaves_no_state_behind() {
        let mut asm = ConfigAssembler::default();
        assert!(asm.push(false, b"{not json").is_err());
        assert!(asm.finish().is_err());
        assert_eq!(feed(&mut asm, &small_item()).unwrap(), [small_item()]);
        assert!(asm.push(true, b"{\"Plan\"").is_ok());
        assert!(asm.finish().is_err(), "ConfigEnd inside an item");
        assert_eq!(feed(&mut asm, &small_item()).unwrap(), [small_item()]);
    }

    #[test]
    fn the_supervisor_is_sent_no_environment() {
        let c = crate::config::load::load_str(
            std::path::Path::new("/x/t.yaml"),
            "server:\n  environment: {SERVER_SECRET: s1}\n\
             programs:\n  a:\n    command: x\n    environment: {PROGRAM_SECRET: s2}\n",
            &crate::config::Context { is_root: false, current_user: None, check_users: false, trusted_uid: None },
        )
        .unwrap();
        let server = String::from_utf8(ConfigItem::server(&c.server, &c.socket, false).encode()).unwrap();
        let program = String::from_utf8(ConfigItem::program(&c.programs[0]).encode()).unwrap();
        assert!(!server.contains("SERVER_SECRET") && !server.contains("s1"), "{server}");
        assert!(!program.contains("PROGRAM_SECRET") && !program.contains("s2"), "{program}");
    }
}
