//! The spawner link seen from the edge: the handshake, then requests sent in order (queued while
//! the socket is full: a thousand spawns at once overflow its buffer) and events received with
//! their fds.

use crate::io::base::KEY_LINK;
use crate::sys::{Source, Watcher};
use common::config::model::Server;
use common::config::{Program, SocketConfig};
use common::proto::spawn::{
    encode, ConfigAssembler, ConfigItem, Event as SpawnEvent, ExitStatus, FdSet, Link, Message, ProcRecord, ProtoError,
    Request, VERSION,
};
use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// Why the link failed; the supervisor exits.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A request did not encode.
    #[error("{0}")]
    Encode(ProtoError),
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A message did not decode, or the link closed.
    #[error("{0}")]
    Recv(ProtoError),
    /// The handshake went wrong.
    #[error("handshake: {0}")]
    Handshake(String),
}

/// What the handshake told the supervisor.
pub struct Handshake {
    /// The spawner's pid.
    pub spawner_pid: i32,
    /// The uid that started taskmasterd.
    pub owner_uid: u32,
    /// A service manager listens.
    pub notify: bool,
    /// Half the watchdog interval.
    pub watchdog: Option<Duration>,
    /// stderr is journald's stream.
    pub journal: bool,
    /// The config generation.
    pub generation: u64,
    /// The server section.
    pub server: Server,
    /// The control socket's settings.
    pub socket: SocketConfig,
    /// Log to stderr too (foreground).
    pub to_stderr: bool,
    /// Every program.
    pub programs: Vec<Program>,
    /// Supervisors started before this one.
    pub restarts: u32,
    /// The supervisor this one replaces (pid, how it ended); `None` for the first.
    pub previous: Option<(i32, ExitStatus)>,
    /// An earlier taskmasterd that did not exit in order (its pid, from the pidfile).
    pub unclean_predecessor: Option<i32>,
    /// The children this one takes over (issue 16), with the spawner's copies of their fds.
    pub adopted: Vec<Adopted>,
    /// The process records the previous supervisor kept: program, instance, record.
    pub records: Vec<(String, u32, ProcRecord)>,
}

/// A child the spawner forked for a previous supervisor, as the inventory lists it.
pub struct Adopted {
    /// Its spawn id.
    pub spawn_id: u64,
    /// Its program.
    pub program: String,
    /// Its instance.
    pub instance: u32,
    /// Its pid.
    pub pid: i32,
    /// The config generation it was spawned under.
    pub generation: u64,
    /// When it was spawned, CLOCK_MONOTONIC nanoseconds.
    pub started_ns: u64,
    /// Which fds `fds` holds.
    pub set: FdSet,
    /// The fds; fewer than `set` says when the kernel could not install them all.
    pub fds: Vec<OwnedFd>,
    /// It has ended; its `Exited` follows the inventory.
    pub ended: bool,
}

/// Says hello and receives the config (blocking).
///
/// # Errors
/// The link failed or the spawner said something else.
pub fn handshake(link: &mut Link) -> Result<Handshake, LinkError> {
    link.send(&Request::Hello { version: VERSION }, &[]).map_err(LinkError::Encode)?;
    let (mut spawner_pid, mut notify, mut owner_uid, mut watchdog, mut journal) = (0, false, 0, None, false);
    let (mut restarts, mut previous, mut unclean_predecessor) = (0, None, None);
    let mut asm = ConfigAssembler::default();
    let generation = loop {
        match link.recv::<SpawnEvent>().map_err(|e| LinkError::Handshake(e.to_string()))?.0 {
            SpawnEvent::Hello {
                version: VERSION,
                spawner_pid: pid,
                owner_uid: owner,
                notify: n,
                watchdog_usec,
                journal: j,
                restarts: r,
                previous: p,
                unclean_predecessor: u,
            } => {
                unclean_predecessor = u;
                spawner_pid = pid;
                restarts = r;
                previous = p;
                journal = j;
                owner_uid = owner;
                notify = n;
                watchdog = watchdog_usec.filter(|u| *u > 0).map(|u| Duration::from_micros(u) / 2);
            }
            SpawnEvent::ConfigChunk { more, data } => asm.push(more, &data).map_err(LinkError::Recv)?,
            SpawnEvent::ConfigEnd { generation, .. } => break generation,
            other => return Err(LinkError::Handshake(format!("unexpected {other:?}"))),
        }
    };
    let mut server = None;
    let mut programs: Vec<Program> = Vec::new();
    for item in std::mem::take(&mut asm.items) {
        match item {
            ConfigItem::Server { server: s, socket, log_to_stderr } => server = Some((*s, socket, log_to_stderr)),
            ConfigItem::Program(p) => programs.push(*p),
            ConfigItem::Plan(_) => return Err(LinkError::Handshake("a reload plan in the initial config".into())),
        }
    }
    let (server, socket, to_stderr) = server.ok_or(LinkError::Handshake("no server section".into()))?;
    let (mut adopted, mut records) = (Vec::new(), Vec::new());
    if previous.is_some() {
        loop {
            let (event, fds) = link.recv::<SpawnEvent>().map_err(|e| LinkError::Handshake(e.to_string()))?;
            match event {
                SpawnEvent::Adopt { spawn_id, program, instance, pid, generation, started_ns, fds: set, ended } => {
                    adopted.push(Adopted { spawn_id, program, instance, pid, generation, started_ns, set, fds, ended })
                }
                SpawnEvent::Remembered { program, instance, record } => records.push((program, instance, record)),
                SpawnEvent::AdoptEnd { .. } => break,
                other => return Err(LinkError::Handshake(format!("unexpected {:?} in the inventory", other.tag()))),
            }
        }
    }
    Ok(Handshake {
        spawner_pid,
        owner_uid,
        notify,
        watchdog,
        journal,
        generation,
        server,
        socket,
        to_stderr,
        programs,
        restarts,
        previous,
        unclean_predecessor,
        adopted,
        records,
    })
}

/// Requests waiting for room on the link, and the config being received.
#[derive(Default)]
pub struct LinkQueue {
    out: VecDeque<Vec<u8>>,
    /// Chunks of a re-read config being received.
    pub assembler: ConfigAssembler,
}

fn link(w: &mut Watcher) -> Option<&mut Link> {
    match w.get_mut(KEY_LINK) {
        Some(Source::Link(l)) => Some(l),
        _ => None,
    }
}

impl LinkQueue {
    /// Sends a request, or queues it while the link is full; the link is ordered, so queued
    /// requests keep their order.
    ///
    /// # Errors
    /// The request did not encode or the link failed.
    pub fn send(&mut self, w: &mut Watcher, req: &Request) -> Result<(), LinkError> {
        if let Request::Reread { .. } = req {
            // Each re-read is received from a clean decoder, whatever an earlier one left.
            self.assembler = ConfigAssembler::default();
        }
        self.out.push_back(encode(req).map_err(LinkError::Encode)?);
        if self.out.len() == 1 {
            self.flush(w)?;
        }
        Ok(())
    }

    /// Writes what the link takes of the queue.
    ///
    /// # Errors
    /// The link failed.
    pub fn flush(&mut self, w: &mut Watcher) -> Result<(), LinkError> {
        while let Some(front) = self.out.front() {
            let Some(l) = link(w) else { return Err(io::Error::from(io::ErrorKind::NotConnected).into()) };
            match l.send_encoded(front) {
                Ok(()) => {
                    self.out.pop_front();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        w.interest(KEY_LINK, true, !self.out.is_empty())?;
        Ok(())
    }

    /// The next event, `None` when none is waiting.
    ///
    /// # Errors
    /// The link failed or closed.
    pub fn recv(&mut self, w: &mut Watcher) -> Result<Option<(SpawnEvent, Vec<OwnedFd>)>, LinkError> {
        let Some(l) = link(w) else { return Ok(None) };
        match l.recv::<SpawnEvent>() {
            Ok(got) => Ok(Some(got)),
            Err(ProtoError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(LinkError::Recv(e)),
        }
    }
}
