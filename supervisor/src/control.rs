//! The control socket (DESIGN §6, §7): NDJSON requests from taskmasterctl, answered at once or,
//! for `start`, `stop`, `restart` and `shutdown`, when the processes have settled (a job).
//!
//! A malformed line gets an error reply and the connection lives. What a peer can make the
//! supervisor hold is bounded (`admission.rs` says each bound): connections overall and per uid,
//! a partial line's lifetime, an unauthenticated connection's lifetime, unsent output per client
//! ([`MAX_PENDING`]) and for all clients. A peer learns nothing of the programs before it has
//! authenticated and been given a role.

use crate::core::state::{Event, ProcessState};
use crate::event_loop::{client_key, Supervisor, KEY_AUTH, KEY_LISTENER};
use crate::io::control::admission::{self, Refused};
use crate::io::control::auth::{AuthWorker, Check, Verdict};
use crate::registry::Target;
use crate::reload::ReloadKind;
use crate::sys::Source;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::config::Stream;
use common::proto::control::{kind, Action, ActionResult, ProcessInfo, Reply, Request, MAX_LINE};
use common::proto::spawn::{ExitStatus, Request as SpawnRequest, SignalPurpose};
use common::units::parse_signal;
use serde_json::json;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant, SystemTime};

/// Most unsent reply bytes kept for one client before it is dropped (8 MiB).
pub const MAX_PENDING: usize = 8 << 20;

/// Connections accepted per wakeup before the loop serves everything else: a peer that
/// reconnects in a loop costs the others one short pause, never the loop.
const ACCEPTS_PER_WAKEUP: usize = 64;

/// How long accepting pauses when the process is out of fds (EMFILE/ENFILE): the listener stays
/// readable while connections wait, so accepting again at once would spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// Most bytes of a `tail` or `maintail` answer (512 KiB; as base64 it still fits one line).
/// Larger requests are clamped: the bytes are read from the end of the files, never whole.
pub const MAX_TAIL_BYTES: usize = 512 * 1024;

/// What a client deadline checks when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deadline {
    /// The request line begun at that time must be complete.
    PartialLine,
    /// The connection must have authenticated.
    Authenticate,
}

/// One connection's buffers (its socket lives in the watcher).
#[derive(Default)]
pub struct Client {
    pub(crate) inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// The process this connection is attached to (`fg`): it then carries frames, not lines.
    pub(crate) attached: Option<usize>,
    /// Output was withheld from this attached client while it lagged; it gets a redraw once
    /// its queue drains.
    pub(crate) behind: bool,
    /// The peer's uid (SO_PEERCRED).
    pub(crate) uid: u32,
    /// What the peer may do.
    pub(crate) grants: Option<crate::access::Grants>,
    /// The peer passed socket.auth (always true without it).
    pub(crate) authenticated: bool,
    /// Failed authentications on this connection.
    failures: u32,
    /// A password check (or the wait before its failure's answer) is under way: nothing more
    /// is read or parsed from this connection until it is answered.
    auth_pending: bool,
    /// When the incomplete line now in `inbuf` was begun.
    partial_since: Option<Instant>,
    /// The username of the pending password check, as given (printable, at most 64 chars).
    auth_user: String,
}

impl Client {
    /// Bytes queued and not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.outbuf.len()
    }
}

/// What a `-f` client follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowSource {
    /// The main log (`maintail -f`).
    Main,
    /// One stream of one process (`tail -f`).
    Proc(usize, Stream),
}

/// A client following a stream: every new chunk goes to it as `{"id", "stream": {"data"}}`
/// (base64), and `{"id", "end": true, "message"}` closes it.
pub struct Follower {
    /// The client.
    pub client: u32,
    /// Its request id.
    pub id: u64,
    /// What it follows.
    pub source: FollowSource,
}

/// What a stop job does once every target has stopped.
pub enum Then {
    /// Reply with the results.
    Reply,
    /// Start these (restart's second half), then reply.
    Start(Vec<Target>),
    /// End the daemon (shutdown).
    Exit,
    /// Forget these processes (removed by a reload).
    Forget(Vec<usize>),
    /// Forget every process and start again from these programs (`reload`).
    Rebuild(Vec<common::config::Program>),
}

/// A request whose reply waits for processes to settle.
pub enum Job {
    /// Stopping in descending priority, one priority group at a time (DESIGN §2).
    Stop {
        /// (client, request id) to answer, if any.
        reply_to: Option<(u32, u64)>,
        /// Groups not signalled yet, highest priority first.
        groups: VecDeque<Vec<Target>>,
        /// The group being stopped.
        current: Vec<usize>,
        /// Results so far.
        results: Vec<ActionResult>,
        /// What follows.
        then: Then,
        /// The re-read being applied that this stop is part of.
        reload: Option<u64>,
    },
    /// Waiting for started processes to leave STARTING.
    Start {
        /// (client, request id) to answer, if any.
        reply_to: Option<(u32, u64)>,
        /// Processes still STARTING.
        pending: Vec<usize>,
        /// Results so far.
        results: Vec<ActionResult>,
    },
}

fn result(name: &str, ok: bool, message: &str) -> ActionResult {
    ActionResult { name: name.to_owned(), ok, message: message.to_owned() }
}

/// `0:01:07`, or `2 days, 3:04:05`, as supervisorctl prints uptime.
pub fn format_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match d {
        0 => format!("{h}:{m:02}:{s:02}"),
        1 => format!("1 day, {h}:{m:02}:{s:02}"),
        _ => format!("{d} days, {h}:{m:02}:{s:02}"),
    }
}

/// `Nov 22 02:03 PM`, as supervisorctl prints when a process stopped or exited.
pub fn format_date(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (_, mo, d, h, mi, _, _) = crate::sys::local_time(t);
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!("{} {d:02} {h12:02}:{mi:02} {ampm}", MONTHS[(mo as usize).saturating_sub(1).min(11)])
}

impl Supervisor {
    /// Accepts waiting connections (at most [`ACCEPTS_PER_WAKEUP`]), keeping those the caps
    /// allow (`admission.rs`).
    pub(crate) fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let accepted = match self.watcher.get_mut(KEY_LISTENER) {
                Some(Source::Listener(l)) => l.accept(),
                _ => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    self.accept_trouble = false;
                    self.admit(stream, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE, ENFILE, ENOMEM …: the waiting connections stay queued; accepting
                    // pauses instead of spinning, and the episode is logged once.
                    if !std::mem::replace(&mut self.accept_trouble, true) {
                        self.log.warn(&format!(
                            "accept on the control socket: {e}; pausing new connections ({} held)",
                            self.admission.total()
                        ));
                    }
                    let _ = self.watcher.interest(KEY_LISTENER, false, false);
                    self.accept_resume = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// Accepts connections again after a pause, when it is due.
    pub(crate) fn resume_accept(&mut self, now: Instant) {
        if self.accept_resume.is_some_and(|at| at <= now) {
            self.accept_resume = None;
            let _ = self.watcher.interest(KEY_LISTENER, true, false);
        }
    }

    fn admit(&mut self, stream: std::os::unix::net::UnixStream, now: Instant) {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(cred) = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials) else {
            self.log.warn("control connection without peer credentials: refused");
            return;
        };
        let uid = cred.uid();
        let grants = crate::access::grants_for(uid, cred.gid(), &self.socket.access, &self.admins);
        // Room is kept for root, the daemon's own uids and those a rule makes admin; without
        // socket.access every peer acts as admin, but is capped like any other.
        let admin = uid == 0
            || self.admins.contains(&uid)
            || (!self.socket.access.is_empty() && grants.role_for(None) == Some(common::config::Role::Admin));
        if let Err(why) = self.admission.admit(uid, admin) {
            let limits = self.admission.limits();
            if self.admission.first_refusal(uid) {
                let held = match why {
                    Refused::PerUid => format!("{} per uid", limits.max_per_uid),
                    Refused::Full | Refused::AdminsFull => format!("{} in all", self.admission.total()),
                };
                self.log.warn(&format!("refusing control connections from uid {uid}: too many connections ({held})"));
            }
            // One line, if the socket takes it at once; then the connection closes.
            let reply = Reply::err(0, kind::UNAVAILABLE, why.message(limits));
            let mut line = serde_json::to_vec(&reply).unwrap_or_default();
            line.push(b'\n');
            let _ = (&stream).write(&line);
            return;
        }
        self.next_client = self.next_client.wrapping_add(1);
        let id = self.next_client;
        if self.watcher.insert(client_key(id), Source::Client(stream)).is_err() {
            self.admission.release(uid);
            return;
        }
        let authenticated = self.socket.auth.is_none();
        self.clients.insert(id, Client { uid, grants: Some(grants), authenticated, ..Client::default() });
        if !authenticated {
            self.arm_deadline(now + admission::UNAUTHENTICATED_DEADLINE, id, Deadline::Authenticate);
        }
    }

    pub(crate) fn arm_deadline(&mut self, at: Instant, client: u32, what: Deadline) {
        self.deadlines.push(std::cmp::Reverse((at, client, what)));
    }

    /// The next client deadline, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|std::cmp::Reverse((at, _, _))| *at)
    }

    /// Drops the clients whose partial line or authentication is overdue.
    pub(crate) fn fire_deadlines(&mut self, now: Instant) {
        while let Some(std::cmp::Reverse((at, client, what))) = self.deadlines.peek().copied() {
            if at > now {
                return;
            }
            self.deadlines.pop();
            let Some(c) = self.clients.get(&client) else { continue };
            let why = match what {
                Deadline::PartialLine
                    if c.partial_since.is_some_and(|t| t + admission::PARTIAL_LINE_DEADLINE <= now) =>
                {
                    "request line not completed in time"
                }
                Deadline::Authenticate if !c.authenticated => "not authenticated in time",
                _ => continue,
            };
            self.reply(client, &Reply::err(0, kind::BAD_REQUEST, why));
            self.flush(client);
            self.drop_client(client);
        }
    }

    pub(crate) fn drop_client(&mut self, id: u32) {
        self.followers.retain(|f| f.client != id);
        if let Some(c) = self.clients.remove(&id) {
            self.out_total -= c.outbuf.len();
            self.admission.release(c.uid);
        }
        drop(self.watcher.remove(client_key(id)));
    }

    pub(crate) fn on_client(&mut self, id: u32, readable: bool, writable: bool, now: Instant) {
        if writable {
            self.flush(id);
        }
        if !readable || self.clients.get(&id).is_none_or(|c| c.auth_pending) {
            return;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = match self.watcher.get_mut(client_key(id)) {
            Some(Source::Client(s)) => s.read(&mut chunk),
            _ => return,
        };
        match n {
            Ok(0) => return self.drop_client(id),
            Ok(n) => {
                let Some(c) = self.clients.get_mut(&id) else { return };
                c.inbuf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => return,
            Err(_) => return self.drop_client(id),
        }
        self.process_input(id, now);
    }

    /// Parses and handles the complete lines a client sent (or its frames, once attached),
    /// unless a password check of it is pending; an incomplete line starts its deadline.
    fn process_input(&mut self, id: u32, now: Instant) {
        loop {
            let Some(c) = self.clients.get_mut(&id) else { return };
            if c.auth_pending {
                return;
            }
            if c.attached.is_some() {
                c.partial_since = None;
                return self.on_attached_input(id);
            }
            let Some(pos) = c.inbuf.iter().position(|b| *b == b'\n') else {
                if c.inbuf.len() > MAX_LINE {
                    self.reply(id, &Reply::err(0, kind::BAD_REQUEST, "request line longer than 1 MiB"));
                    self.drop_client(id);
                } else if c.inbuf.is_empty() {
                    c.partial_since = None;
                } else if c.partial_since.is_none() {
                    c.partial_since = Some(now);
                    self.arm_deadline(now + admission::PARTIAL_LINE_DEADLINE, id, Deadline::PartialLine);
                }
                return;
            };
            c.partial_since = None;
            let line: Vec<u8> = c.inbuf.drain(..=pos).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Request>(line) {
                Ok(req) => self.handle(id, req),
                Err(e) => self.reply(id, &Reply::err(0, kind::BAD_REQUEST, format!("malformed request: {e}"))),
            }
        }
    }

    pub(crate) fn reply(&mut self, id: u32, reply: &Reply) {
        let line = serde_json::to_vec(reply).unwrap_or_default();
        self.send_line(id, line);
    }

    fn send_line(&mut self, id: u32, mut line: Vec<u8>) {
        line.push(b'\n');
        self.send_bytes(id, line);
    }

    /// Queues bytes for a client and writes what the socket takes; drops a client whose queue
    /// passes [`MAX_PENDING`], or that would take the clients' unsent output together past
    /// [`admission::OUTPUT_BUDGET`].
    pub(crate) fn send_bytes(&mut self, id: u32, line: Vec<u8>) {
        let Some(c) = self.clients.get_mut(&id) else { return };
        if c.outbuf.len() + line.len() > MAX_PENDING || self.out_total + line.len() > admission::OUTPUT_BUDGET {
            self.log.warn(&format!("dropping control client {id}: it does not read its replies"));
            return self.drop_client(id);
        }
        c.outbuf.extend_from_slice(&line);
        self.out_total += line.len();
        self.flush(id);
    }

    pub(crate) fn flush(&mut self, id: u32) {
        let Some(c) = self.clients.get_mut(&id) else { return };
        let Some(Source::Client(s)) = self.watcher.get_mut(client_key(id)) else { return };
        while !c.outbuf.is_empty() {
            match s.write(&c.outbuf) {
                Ok(0) => break,
                Ok(n) => {
                    c.outbuf.drain(..n);
                    self.out_total -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.drop_client(id),
            }
        }
        let pending = !c.outbuf.is_empty();
        let resync = !pending && c.behind;
        // A client whose password is being checked is not read until it is answered.
        let _ = self.watcher.interest(client_key(id), !c.auth_pending, pending);
        if resync {
            self.resync_attached(id);
        }
    }

    fn send_chunk(&mut self, source: FollowSource, data: &str) {
        let targets: Vec<(u32, u64)> =
            self.followers.iter().filter(|f| f.source == source).map(|f| (f.client, f.id)).collect();
        for (client, id) in targets {
            let line = serde_json::to_vec(&json!({ "id": id, "stream": { "data": data } })).unwrap_or_default();
            self.send_line(client, line);
        }
    }

    /// Sends the first `n` bytes of the read buffer to the followers of `source`.
    pub(crate) fn feed_followers(&mut self, source: FollowSource, n: usize) {
        let data = B64.encode(self.buf_slice(n));
        self.send_chunk(source, &data);
    }

    /// Sends the main log lines written since the last call to `maintail -f` clients.
    pub(crate) fn feed_main_followers(&mut self) {
        let fresh = self.log.take_fresh();
        if fresh.is_empty() || !self.followers.iter().any(|f| f.source == FollowSource::Main) {
            return;
        }
        self.send_chunk(FollowSource::Main, &B64.encode(&fresh));
    }

    /// Ends, with `message`, every follow whose source matches.
    pub(crate) fn end_followers(&mut self, matches: impl Fn(&FollowSource) -> bool, message: &str) {
        let (ended, kept): (Vec<Follower>, Vec<Follower>) =
            std::mem::take(&mut self.followers).into_iter().partition(|f| matches(&f.source));
        self.followers = kept;
        for f in ended {
            let line = serde_json::to_vec(&json!({ "id": f.id, "end": true, "message": message })).unwrap_or_default();
            self.send_line(f.client, line);
        }
    }

    fn tail(&mut self, client: u32, action: Action, req: &Request, targets: &[Target]) {
        let id = req.id;
        let asked = req.args.get("bytes").and_then(serde_json::Value::as_u64).unwrap_or(1600);
        let bytes = usize::try_from(asked).unwrap_or(usize::MAX).min(MAX_TAIL_BYTES);
        let follow = req.args.get("follow").and_then(serde_json::Value::as_bool).unwrap_or(false);
        let (data, source) = if action == Action::Maintail {
            let recent = &self.log.recent;
            let data = if recent.len() >= bytes { recent.last(bytes) } else { self.log.file().read_tail(bytes) };
            (data, FollowSource::Main)
        } else {
            let [(slot, _)] = targets else {
                return self.reply(client, &Reply::err(id, kind::BAD_REQUEST, "tail needs exactly one process name"));
            };
            let stream = match req.args.get("stream").and_then(serde_json::Value::as_str).unwrap_or("stdout") {
                "stdout" => Stream::Stdout,
                "stderr" => Stream::Stderr,
                other => {
                    return self.reply(
                        client,
                        &Reply::err(id, kind::BAD_REQUEST, format!("unknown stream '{other}': stdout or stderr")),
                    )
                }
            };
            let p = &self.registry.procs[slot];
            if stream == Stream::Stderr && p.program.redirect_stderr {
                let msg = format!("{}: stderr is redirected to stdout (redirect_stderr)", p.name);
                return self.reply(client, &Reply::err(id, kind::BAD_REQUEST, msg));
            }
            (p.logs[usize::from(stream == Stream::Stderr)].tail(bytes), FollowSource::Proc(*slot, stream))
        };
        self.reply(client, &Reply::ok(id, json!({ "data": B64.encode(&data) })));
        if follow {
            self.followers.push(Follower { client, id, source });
        }
    }

    fn clear(&mut self, client: u32, id: u64, targets: &[Target]) {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for &(slot, _) in targets {
            let Some(p) = self.registry.procs.get_mut(&slot) else { continue };
            let mut ok = true;
            for l in &mut p.logs {
                l.recent.clear();
                if let Some(Err(e)) = l.file.as_mut().map(|f| f.clear()) {
                    ok = false;
                    errors.push(format!("'{}': cannot clear its log: {e}", p.name));
                }
            }
            results.push(result(&p.name, ok, if ok { "cleared" } else { "ERROR (cannot clear its log)" }));
        }
        for e in errors {
            self.log.error(&e);
        }
        self.reply(client, &Reply::ok(id, json!(results)));
    }

    /// Best effort before exit: one more write for every client with replies pending.
    pub(crate) fn flush_clients(&mut self) {
        let ids: Vec<u32> = self.clients.keys().copied().collect();
        for id in ids {
            self.flush(id);
        }
    }

    fn handle(&mut self, client: u32, req: Request) {
        let id = req.id;
        let Some(action) = req.action() else {
            let msg = format!("unknown action '{}'", req.action.escape_debug());
            return self.reply(client, &Reply::err(id, kind::UNKNOWN_ACTION, msg));
        };
        self.log.log(common::config::raw::LogLevel::Debug, &format!("control: {action} {:?}", req.names));
        // Nothing about the programs, not even whether a name exists, before the peer has
        // authenticated and been given a role.
        if action == Action::Auth {
            return self.authenticate(client, &req);
        }
        let Some(c) = self.clients.get(&client) else { return };
        if !c.authenticated {
            return self.reply(client, &Reply::err(id, kind::AUTH_REQUIRED, "authentication required"));
        }
        if c.grants.as_ref().is_some_and(|g| g.is_nobody()) {
            let why = format!("uid {} matches no socket.access rule", c.uid);
            self.log.warn(&format!("refused uid {}: {why}", c.uid));
            return self.reply(client, &Reply::err(id, kind::PERMISSION_DENIED, format!("permission denied: {why}")));
        }
        let resolve = !req.names.is_empty() && action != Action::Update;
        let targets = if resolve { self.registry.select(&req.names) } else { Ok(Vec::new()) };
        let targets = match targets {
            Ok(t) => t,
            Err(e) => return self.reply(client, &Reply::err(id, kind::NO_SUCH_PROCESS, e)),
        };
        if let Err(why) = self.authorize(client, action, &req, &targets) {
            let uid = self.clients.get(&client).map_or(0, |c| c.uid);
            self.log.warn(&format!("refused uid {uid}: {why}"));
            return self.reply(client, &Reply::err(id, kind::PERMISSION_DENIED, format!("permission denied: {why}")));
        }
        if action.needs_names() && req.names.is_empty() {
            let msg = format!("{action} needs a process name or 'all'");
            return self.reply(client, &Reply::err(id, kind::BAD_REQUEST, msg));
        }
        match action {
            // Answered above, before anything else.
            Action::Auth => {}
            Action::Status => {
                let grants = self.clients.get(&client).and_then(|c| c.grants.clone());
                let visible = |s: &usize| {
                    grants.as_ref().is_none_or(|g| g.role_for(Some(&self.registry.procs[s].program.name)).is_some())
                };
                let slots: Vec<usize> = if req.names.is_empty() {
                    self.registry.ordered().into_iter().filter(visible).collect()
                } else {
                    targets.iter().map(|t| t.0).collect()
                };
                let infos: Vec<ProcessInfo> = slots.into_iter().map(|s| self.info(s)).collect();
                self.reply(client, &Reply::ok(id, json!(infos)));
            }
            Action::Start => self.start_job(targets, Some((client, id))),
            Action::Stop => self.stop_job(targets, Then::Reply, Some((client, id)), None),
            Action::Restart => {
                let again = targets.clone();
                self.stop_job(targets, Then::Start(again), Some((client, id)), None);
            }
            Action::Signal => self.signal(client, id, &req, &targets),
            Action::Pid if req.names.is_empty() => {
                self.reply(client, &Reply::ok(id, json!({ "pid": self.spawner_pid })))
            }
            Action::Pid => {
                let pids: Vec<_> = targets
                    .iter()
                    .map(|(s, _)| {
                        let p = &self.registry.procs[s];
                        json!({ "name": p.name, "pid": p.m.pid.filter(|_| p.m.state.may_have_process()) })
                    })
                    .collect();
                self.reply(client, &Reply::ok(id, json!(pids)));
            }
            Action::Avail => self.request_reload(ReloadKind::Avail, Some((client, id))),
            Action::Reread => self.request_reload(ReloadKind::Reread, Some((client, id))),
            Action::Update => self.request_reload(ReloadKind::Update(req.names.clone()), Some((client, id))),
            Action::Reload => self.request_reload(ReloadKind::Reload, Some((client, id))),
            Action::Shutdown => {
                self.log.info(&format!("shutdown requested by control client {client}"));
                self.begin_shutdown(Some((client, id)));
            }
            Action::Version => self.reply(client, &Reply::ok(id, json!(common::VERSION))),
            Action::Tail | Action::Maintail => self.tail(client, action, &req, &targets),
            Action::Clear => self.clear(client, id, &targets),
            Action::Attach => self.attach(client, &req, &targets),
        }
    }

    /// Checks the client's role for the action on its targets (DESIGN §8): "viewer may not stop
    /// web", or "uid 1001 matches no socket.access rule".
    fn authorize(&self, client: u32, action: Action, req: &Request, targets: &[Target]) -> Result<(), String> {
        use crate::access::{required_role, role_name};
        let Some(c) = self.clients.get(&client) else { return Err("unknown client".into()) };
        let Some(grants) = &c.grants else { return Ok(()) };
        if grants.is_nobody() {
            return Err(format!("uid {} matches no socket.access rule", c.uid));
        }
        let need = required_role(action);
        let on_programs = !targets.is_empty() || (action == Action::Status && req.names.is_empty());
        if !on_programs {
            return match grants.role_for(None) {
                Some(role) if role >= need => Ok(()),
                Some(role) => Err(format!("{} may not {action}", role_name(role))),
                None => Err(format!("uid {} has no role beyond some programs: {action} needs one for all", c.uid)),
            };
        }
        for (slot, _) in targets {
            let p = &self.registry.procs[slot];
            let has = grants.role_for(Some(&p.program.name));
            match has {
                Some(role) if role >= need => {}
                Some(role) => return Err(format!("{} may not {action} {}", role_name(role), p.name)),
                None => return Err(format!("uid {} has no role for {}", c.uid, p.name)),
            }
        }
        Ok(())
    }

    /// `auth` (socket.auth): hands the username check's result and the password to the worker
    /// thread (`auth.rs`), which runs argon2 off the loop; nothing more is read from the
    /// connection until the answer. A full queue is answered `unavailable` at once.
    fn authenticate(&mut self, client: u32, req: &Request) {
        let Some(auth) = self.socket.auth.clone() else {
            return self.reply(client, &Reply::ok(req.id, json!({ "authenticated": true })));
        };
        let arg = |k: &str| req.args.get(k).and_then(serde_json::Value::as_str).unwrap_or("").to_owned();
        let check = Check {
            client,
            id: req.id,
            user_ok: arg("username") == auth.username,
            password: arg("password"),
            hash: auth.password_hash,
        };
        if self.auth_worker.is_none() {
            match AuthWorker::start() {
                Ok((worker, wake)) => {
                    if let Err(e) = self.watcher.insert(KEY_AUTH, Source::Wake(wake)) {
                        self.log.error(&format!("cannot watch the password worker: {e}"));
                    }
                    self.auth_worker = Some(worker);
                }
                Err(e) => {
                    self.log.error(&format!("cannot start the password worker: {e}"));
                    let reply = Reply::err(req.id, kind::UNAVAILABLE, "passwords cannot be checked now");
                    return self.reply(client, &reply);
                }
            }
        }
        let Some(worker) = &self.auth_worker else { return };
        // Logged at a failure: printable and short, so a peer cannot forge log lines.
        let given: String = arg("username").chars().take(64).map(|ch| if ch.is_control() { '?' } else { ch }).collect();
        if worker.submit(check).is_err() {
            let reply = Reply::err(req.id, kind::UNAVAILABLE, "too many password checks waiting; try again");
            return self.reply(client, &reply);
        }
        if let Some(c) = self.clients.get_mut(&client) {
            c.auth_user = given;
        }
        self.set_auth_pending(client, true);
    }

    /// Stops or resumes reading a client while its password is checked.
    fn set_auth_pending(&mut self, client: u32, pending: bool) {
        let Some(c) = self.clients.get_mut(&client) else { return };
        c.auth_pending = pending;
        let out = c.pending() > 0;
        let _ = self.watcher.interest(client_key(client), !pending, out);
    }

    /// The password worker has answered: a success is answered at once; a failure is logged and
    /// answered after the uid's delay (`admission::AuthFailures`), and the third on one
    /// connection closes it. The connection stays unread until then.
    pub(crate) fn on_auth_verdicts(&mut self, now: Instant) {
        if let Some(Source::Wake(w)) = self.watcher.get_mut(KEY_AUTH) {
            crate::io::control::auth::drain_wakeups(w);
        }
        let verdicts = self.auth_worker.as_ref().map(AuthWorker::verdicts).unwrap_or_default();
        for Verdict { client, id, ok } in verdicts {
            let Some(c) = self.clients.get_mut(&client) else { continue };
            let uid = c.uid;
            if ok {
                c.authenticated = true;
                self.auth_failures.succeed(uid);
                self.reply(client, &Reply::ok(id, json!({ "authenticated": true })));
                self.set_auth_pending(client, false);
                self.process_input(client, now);
                continue;
            }
            c.failures += 1;
            let (failures, user) = (c.failures, std::mem::take(&mut c.auth_user));
            let wait = self.auth_failures.fail(uid, now);
            self.log.warn(&format!(
                "failed authentication as '{user}' from uid {uid} (attempt {failures} on this connection; answered in {} s)",
                wait.as_secs()
            ));
            let reply = Reply::err(id, kind::PERMISSION_DENIED, "authentication failed");
            self.delayed.push((now + wait, client, reply, failures >= admission::MAX_AUTH_FAILURES));
        }
    }

    /// Sends the delayed answers to failed authentications that are due, closing a connection
    /// at its third failure and reading the others again.
    pub(crate) fn send_delayed(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed).into_iter().partition(|d| d.0 <= now);
        self.delayed = later;
        for (_, client, reply, close) in due {
            self.reply(client, &reply);
            if close {
                self.flush(client);
                self.drop_client(client);
            } else {
                self.set_auth_pending(client, false);
                self.process_input(client, now);
            }
        }
    }

    fn signal(&mut self, client: u32, id: u64, req: &Request, targets: &[Target]) {
        let sig = match req.args.get("signal") {
            Some(serde_json::Value::String(s)) => parse_signal(s),
            Some(serde_json::Value::Number(n)) => parse_signal(&n.to_string()),
            _ => Err("signal needs a signal name or number".to_owned()),
        };
        let sig = match sig {
            Ok(s) => s as i32,
            Err(e) => return self.reply(client, &Reply::err(id, kind::BAD_REQUEST, e)),
        };
        let mut results = Vec::new();
        for &(slot, explicit) in targets {
            let Some(p) = self.registry.get(slot) else { continue };
            match p.spawn_id.filter(|_| p.m.state.may_have_process()) {
                Some(spawn_id) => {
                    results.push(result(&p.name, true, "signalled"));
                    self.send(&SpawnRequest::Signal { spawn_id, signal: sig, purpose: SignalPurpose::User });
                }
                None if explicit => results.push(result(&p.name, false, "ERROR (not running)")),
                None => {}
            }
        }
        self.reply(client, &Reply::ok(id, json!(results)));
    }

    /// One row of `status`.
    pub(crate) fn info(&self, slot: usize) -> ProcessInfo {
        let p = &self.registry.procs[&slot];
        let alive = p.m.state.may_have_process();
        let pid = p.m.pid.filter(|_| alive);
        let uptime_s =
            p.m.started_at.filter(|_| alive).map_or(0, |t| Instant::now().saturating_duration_since(t).as_secs());
        let mut description = match (p.m.state, pid) {
            (ProcessState::Running, Some(pid)) => format!("pid {pid}, uptime {}", format_uptime(uptime_s)),
            (ProcessState::Starting | ProcessState::Stopping, Some(pid)) => format!("pid {pid}"),
            (ProcessState::Stopped, _) if !p.m.ever_started => "Not started".into(),
            (ProcessState::Stopped | ProcessState::Exited, _) => format_date(p.changed_at),
            (ProcessState::Fatal | ProcessState::Backoff, _) => {
                p.m.spawnerr.clone().unwrap_or_else(|| p.quick_exit_description())
            }
            _ => String::new(),
        };
        if p.program.pty && pid.is_some() {
            description.push_str(" (pty)"); // differs from supervisorctl: fg can attach to it
        }
        for f in p.logs.iter().filter_map(|l| l.failure()) {
            description.push_str(&format!(" (log: {f})"));
        }
        ProcessInfo {
            name: p.name.clone(),
            program: p.program.name.clone(),
            instance: p.instance,
            state: p.m.state.as_str().into(),
            pid,
            uptime_s,
            exitstatus: match p.m.last_exit {
                Some(ExitStatus::Code(c)) => Some(c),
                _ => None,
            },
            description: description.trim().to_owned(),
            pty: p.program.pty,
        }
    }

    /// Starts `targets` in ascending priority; replies when none is STARTING any more.
    pub(crate) fn start_job(&mut self, mut targets: Vec<Target>, reply_to: Option<(u32, u64)>) {
        self.start_job_with(&mut targets, reply_to, Vec::new());
    }

    fn start_job_with(&mut self, targets: &mut [Target], reply_to: Option<(u32, u64)>, mut results: Vec<ActionResult>) {
        let prio = |s: usize| self.registry.get(s).map_or(0, |p| p.program.priority);
        targets.sort_by_key(|(s, _)| (prio(*s), *s));
        let now = Instant::now();
        let mut pending = Vec::new();
        for &(slot, explicit) in targets.iter() {
            let Some(name) = self.registry.get(slot).map(|p| p.name.clone()) else { continue };
            match self.apply(slot, Event::Start, now) {
                Ok(()) => pending.push(slot),
                Err(refusal) if explicit => results.push(result(&name, false, refusal.message())),
                Err(_) => {}
            }
        }
        self.jobs.push(Job::Start { reply_to, pending, results });
        self.jobs_dirty = true;
    }

    /// Stops `targets` in descending priority, one group at a time, then does `then`.
    /// `reload`: the token of the re-read whose application this stop is part of; that
    /// `update` or `reload` is answered, and the next one begun, once its stops are done.
    pub(crate) fn stop_job(
        &mut self,
        mut targets: Vec<Target>,
        then: Then,
        reply_to: Option<(u32, u64)>,
        reload: Option<u64>,
    ) {
        let prio = |s: usize| self.registry.get(s).map_or(0, |p| p.program.priority);
        targets.sort_by_key(|(s, _)| (std::cmp::Reverse(prio(*s)), *s));
        let mut groups: VecDeque<Vec<Target>> = VecDeque::new();
        let mut last = None;
        for t in targets {
            let prio = prio(t.0);
            match groups.back_mut() {
                Some(g) if last == Some(prio) => g.push(t),
                _ => groups.push_back(vec![t]),
            }
            last = Some(prio);
        }
        self.jobs.push(Job::Stop { reply_to, groups, current: Vec::new(), results: Vec::new(), then, reload });
        self.jobs_dirty = true;
    }

    fn settled_stopped(&self, slot: usize) -> bool {
        self.registry
            .get(slot)
            .is_none_or(|p| !p.m.state.may_have_process() && p.m.state != ProcessState::Backoff && p.spawn_id.is_none())
    }

    /// Advances every job until none can move; called after each loop iteration. A re-read
    /// being applied is finished (answered, and the next one begun) once none of its stops is
    /// left.
    pub(crate) fn progress_jobs(&mut self) {
        // Every state change and every job (which may add or forget processes) passes here.
        self.status_dirty |= self.jobs_dirty;
        while self.jobs_dirty {
            self.jobs_dirty = false;
            let jobs = std::mem::take(&mut self.jobs);
            for job in jobs {
                if let Some(job) = self.progress(job) {
                    self.jobs.push(job);
                }
            }
            if let Some(token) = self.applying_reload() {
                if !self.jobs.iter().any(|j| matches!(j, Job::Stop { reload: Some(t), .. } if *t == token)) {
                    self.finish_reload();
                }
            }
        }
    }

    fn progress(&mut self, job: Job) -> Option<Job> {
        match job {
            Job::Start { reply_to, mut pending, mut results } => {
                let mut still = Vec::new();
                for slot in pending.drain(..) {
                    let Some(p) = self.registry.get(slot) else { continue };
                    match p.m.state {
                        ProcessState::Starting => still.push(slot),
                        ProcessState::Running => results.push(result(&p.name, true, "started")),
                        _ if p.m.spawnerr.is_some() => results.push(result(&p.name, false, "ERROR (spawn error)")),
                        _ => results.push(result(&p.name, false, "ERROR (abnormal termination)")),
                    }
                }
                if still.is_empty() {
                    if let Some((client, id)) = reply_to {
                        self.reply(client, &Reply::ok(id, json!(results)));
                    }
                    None
                } else {
                    Some(Job::Start { reply_to, pending: still, results })
                }
            }
            Job::Stop { reply_to, mut groups, mut current, mut results, then, reload } => loop {
                if !current.iter().all(|s| self.settled_stopped(*s)) {
                    return Some(Job::Stop { reply_to, groups, current, results, then, reload });
                }
                for slot in current.drain(..) {
                    if let Some(p) = self.registry.get(slot) {
                        results.push(result(&p.name, true, "stopped"));
                    }
                }
                let Some(group) = groups.pop_front() else {
                    match then {
                        Then::Reply => {
                            if let Some((client, id)) = reply_to {
                                self.reply(client, &Reply::ok(id, json!(results)));
                            }
                        }
                        Then::Start(mut targets) => {
                            // A restart names every target again, so none is refused as explicit.
                            for t in &mut targets {
                                t.1 = false;
                            }
                            self.start_job_with(&mut targets, reply_to, results);
                        }
                        Then::Exit => {
                            // Answered once every program has stopped (DESIGN §7).
                            for (client, id) in std::mem::take(&mut self.shutdown_waiters) {
                                self.reply(client, &Reply::ok(id, json!({ "message": "Shut down" })));
                            }
                            self.exit_code = Some(0);
                        }
                        Then::Forget(slots) => {
                            for slot in slots {
                                self.end_followers(
                                    |s| matches!(s, FollowSource::Proc(sl, _) if *sl == slot),
                                    "the process was removed from the config",
                                );
                                self.registry.forget(slot);
                            }
                        }
                        Then::Rebuild(programs) => {
                            self.end_followers(
                                |s| matches!(s, FollowSource::Proc(..)),
                                "taskmasterd reloaded its config",
                            );
                            for slot in self.registry.ordered() {
                                self.registry.forget(slot);
                            }
                            self.registry.programs.clear();
                            let mut start = Vec::new();
                            for p in programs {
                                let autostart = p.autostart;
                                let slots = self.registry.add_program(p);
                                if autostart {
                                    start.extend(slots.into_iter().map(|s| (s, false)));
                                }
                            }
                            self.start_job(start, None);
                        }
                    }
                    return None;
                };
                let now = Instant::now();
                for (slot, explicit) in group {
                    let Some(p) = self.registry.get(slot) else { continue };
                    let (stopping, name) = (p.m.state == ProcessState::Stopping, p.name.clone());
                    match self.apply(slot, Event::Stop, now) {
                        Ok(()) => current.push(slot),
                        Err(_) if stopping => current.push(slot),
                        Err(refusal) if explicit && matches!(then, Then::Reply) => {
                            results.push(result(&name, false, refusal.message()))
                        }
                        Err(_) => {}
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_printed_as_supervisorctl_does() {
        assert_eq!(format_uptime(67), "0:01:07");
        assert_eq!(format_uptime(3 * 3600 + 4 * 60 + 5), "3:04:05");
        assert_eq!(format_uptime(2 * 86400 + 5), "2 days, 0:00:05");
    }
}
