//! What goes into the core ([`Input`]) and what comes out ([`Effect`]): the whole boundary
//! between deciding and doing. No fd and no output byte crosses it: a spawn answer says which
//! fds arrived, never the fds; program output stays in the edge, which asks the core only for
//! decisions (STYLE §2.6b).

use crate::access::Grants;
use crate::core::ids::{ClientId, ReplyTo, Slot, SpawnId, TimerId};
use common::config::raw::LogLevel;
use common::config::{Program, Stream};
use common::proto::control::{Action, Reply, Request};
use common::proto::spawn::{ConfigItem, ExitStatus, FdSet, Request as SpawnRequest};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::rc::Rc;
use std::time::Instant;

/// Something that happened, for the core to decide on.
#[derive(Debug)]
pub enum Input {
    /// The supervisor is ready to serve: start the autostart programs, tell the service manager.
    Boot,
    /// The spawner said something.
    Spawner(SpawnerInput),
    /// A client asked for something (authenticated already, when `socket.auth` is set; the
    /// access check is the core's).
    Control {
        /// The connection.
        client: ClientId,
        /// Who is at the other end.
        peer: Peer,
        /// The parsed action.
        action: Action,
        /// The request, for its id, names and arguments.
        request: Request,
    },
    /// A timer the core armed is due.
    Timer(TimerId),
    /// taskmasterd received a signal (forwarded by the spawner).
    Signal(Signal),
}

/// A control client's peer, as the edge learned it at accept.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its uid (SO_PEERCRED).
    pub uid: u32,
    /// What it was granted (DESIGN §8).
    pub grants: Grants,
}

/// A message from the spawner, with what arrived but never the fds themselves.
#[derive(Debug)]
pub enum SpawnerInput {
    /// A child was forked and exec'd.
    Spawned {
        /// The spawn request's token.
        token: u64,
        /// The child's id.
        spawn_id: SpawnId,
        /// Its pid.
        pid: Pid,
        /// Which fds the message carried.
        fds: FdSet,
        /// The fds reached the edge (false: the kernel could not install them, EMFILE).
        fds_received: bool,
    },
    /// A spawn failed; the text names the step and errno ("execve /x: ENOENT (…)").
    SpawnFailed {
        /// The spawn request's token.
        token: u64,
        /// The child's failure, in the user's words.
        error: String,
    },
    /// A child was reaped.
    Exited {
        /// Its id.
        spawn_id: SpawnId,
        /// How it ended.
        status: ExitStatus,
    },
    /// A signal could not be delivered.
    SignalFailed {
        /// The child.
        spawn_id: SpawnId,
        /// Why.
        error: String,
    },
    /// A re-read config arrived whole (`items` decoded by the edge, or why not).
    Config {
        /// Its generation.
        generation: u64,
        /// The re-read it answers (`None`: unrequested).
        token: Option<u64>,
        /// The items, or the decoding error.
        items: Result<Vec<ConfigItem>, String>,
    },
    /// A re-read found errors in the file.
    ConfigRejected {
        /// The re-read it answers.
        token: u64,
        /// Every error, one a line.
        error: String,
    },
}

/// What the edge must tell the service manager (sd_notify, through the spawner).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notify {
    /// `READY=1`.
    pub ready: bool,
    /// `RELOADING=1`.
    pub reloading: bool,
    /// `STOPPING=1`.
    pub stopping: bool,
    /// `WATCHDOG=1`.
    pub watchdog: bool,
    /// `STATUS=…`.
    pub status: Option<String>,
}

/// Whose `tail -f` followers to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Followed {
    /// One process's streams.
    Proc(Slot),
    /// Every process's streams (not the main log).
    AllProcs,
}

/// What a `tail` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailSource {
    /// The main log (`maintail`).
    Main,
    /// One stream of one process.
    Proc(Slot, Stream),
}

/// One row of `status`, as the core knows it; the edge adds what it alone knows (the last
/// line of the error stream, log failures, the wall-clock date) and prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRow {
    /// The process.
    pub slot: Slot,
    /// `web:0`.
    pub name: String,
    /// `web`.
    pub program: String,
    /// Instance number.
    pub instance: u32,
    /// Its state.
    pub state: crate::core::state::ProcessState,
    /// The live child's pid.
    pub pid: Option<Pid>,
    /// Seconds up (0 when not alive).
    pub uptime_s: u64,
    /// When the state last changed.
    pub changed_at: Instant,
    /// Ever asked to start.
    pub ever_started: bool,
    /// The last spawn error.
    pub spawnerr: Option<String>,
    /// How the last child ended.
    pub last_exit: Option<ExitStatus>,
    /// A PTY program.
    pub pty: bool,
}

/// Something the edge must do.
#[derive(Debug)]
pub enum Effect {
    /// Send a request to the spawner (in order).
    Spawner(SpawnRequest),
    /// Answer a client.
    Reply(ClientId, Reply),
    /// Write a line to the main log.
    Log(LogLevel, String),
    /// Write a WARN line about a peer's refusal, at most one per uid per interval (the edge's
    /// throttle), so a peer cannot flood the main log.
    PeerLog {
        /// The peer.
        uid: u32,
        /// The line.
        text: String,
    },
    /// Close the connection once what it was sent is written (best effort).
    Close(ClientId),
    /// Hand `timer` back at `at`.
    Arm(Instant, TimerId),
    /// Tell the service manager.
    Notify(Notify),
    /// A process exists with this config (new, or its config changed): its logs follow.
    Configure {
        /// The process.
        slot: Slot,
        /// Its program's config.
        program: Rc<Program>,
        /// Its instance.
        instance: u32,
    },
    /// A process is gone: close its logs.
    Forget(Slot),
    /// The fds of this spawn belong to `slot`: watch them. A spawn the core does not bind is
    /// killed, and the edge closes its fds.
    BindOutput {
        /// The child.
        spawn_id: SpawnId,
        /// Its process.
        slot: Slot,
    },
    /// End the `tail -f` followers of these streams with `message`.
    EndFollowers(Followed, String),
    /// Answer a `tail` or `maintail` from the log, and keep following it if `follow`.
    Tail {
        /// Who asked.
        to: ReplyTo,
        /// What to read.
        source: TailSource,
        /// Bytes from the end, at most (already clamped).
        bytes: usize,
        /// `-f`.
        follow: bool,
    },
    /// Empty these processes' logs and answer with a result each.
    ClearLogs {
        /// Who asked.
        to: ReplyTo,
        /// The processes, with their names.
        slots: Vec<(Slot, String)>,
    },
    /// Turn the connection into an attach relay to `slot` (its ok reply is the edge's: it
    /// knows whether a PTY is there).
    Attach {
        /// Who asked.
        to: ReplyTo,
        /// The process.
        slot: Slot,
        /// Its name.
        name: String,
        /// The client's window (0: unknown).
        rows: u16,
        /// The client's window (0: unknown).
        cols: u16,
    },
    /// Answer `status` with these rows.
    Status(ReplyTo, Vec<StatusRow>),
    /// Reopen every log file (SIGUSR2).
    ReopenLogs,
    /// Every program has stopped: exit with this code.
    Exit(u8),
}

/// The effects of one input, in order.
pub type Effects = Vec<Effect>;

/// Collects effects while an input is handled.
#[derive(Debug, Default)]
pub struct Out {
    /// What was decided so far.
    pub fx: Effects,
    /// A service manager listens: [`Out::notify`] keeps its notifications.
    pub notify_enabled: bool,
}

impl Out {
    /// Queues an effect.
    pub fn push(&mut self, effect: Effect) {
        self.fx.push(effect);
    }

    /// A main log line.
    pub fn log(&mut self, level: LogLevel, text: impl Into<String>) {
        self.fx.push(Effect::Log(level, text.into()));
    }

    /// An INFO line.
    pub fn info(&mut self, text: impl Into<String>) {
        self.log(LogLevel::Info, text);
    }

    /// A WARN line.
    pub fn warn(&mut self, text: impl Into<String>) {
        self.log(LogLevel::Warn, text);
    }

    /// An ERROR line.
    pub fn error(&mut self, text: impl Into<String>) {
        self.log(LogLevel::Error, text);
    }

    /// A request to the spawner.
    pub fn spawner(&mut self, req: SpawnRequest) {
        self.fx.push(Effect::Spawner(req));
    }

    /// A notification to the service manager, when one listens.
    pub fn notify(&mut self, n: Notify) {
        if self.notify_enabled {
            self.fx.push(Effect::Notify(n));
        }
    }

    /// An answer, if someone waits for it (the id is `to`'s).
    pub fn reply(&mut self, to: Option<ReplyTo>, reply: Reply) {
        if let Some(to) = to {
            self.fx.push(Effect::Reply(to.client, Reply { id: to.id, ..reply }));
        }
    }
}
