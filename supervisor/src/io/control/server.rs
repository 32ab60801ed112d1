//! The control socket (DESIGN §6, §7): accepts connections, reads NDJSON request lines (or an
//! attached client's frames), authenticates with the password worker, and writes answers. What
//! a peer can make the supervisor hold is bounded (`admission.rs` says each bound); a peer
//! learns nothing of the programs before it has authenticated and been given a role. It decides
//! nothing about processes: parsed actions go to the core as [`ServerEvent::Action`], and an
//! attached client's keystrokes to the edge's output side.

use crate::access::AccessCache;
use crate::core::effects::{Peer, TailSource};
use crate::core::ids::{ClientId, Slot};
use crate::io::base::{client_key, Io, KEY_AUTH, KEY_LISTENER};
use crate::io::control::admission::{self, Admission, AuthFailures, Refused, Throttle};
use crate::io::control::auth::{AuthWorker, Check, Gate, Verdict};
use crate::io::control::session::{Deadline, Follower, Session};
use crate::io::pty::LAG_BYTES;
use crate::sys::Source;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::config::raw::LogLevel;
use common::config::SocketConfig;
use common::proto::attach::{take_frame, Frame};
use common::proto::control::{kind, Action, Reply, Request, MAX_LINE};
use serde_json::json;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Most unsent reply bytes kept for one client before it is dropped (8 MiB).
pub const MAX_PENDING: usize = 8 << 20;

/// Connections accepted per wakeup before the loop serves everything else: a peer that
/// reconnects in a loop costs the others one short pause, never the loop.
const ACCEPTS_PER_WAKEUP: usize = 64;

/// How long accepting pauses when the process is out of fds (EMFILE/ENFILE): the listener stays
/// readable while connections wait, so accepting again at once would spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// What a connection asked of the rest of the supervisor.
#[derive(Debug)]
pub enum ServerEvent {
    /// A request for the core (the peer is authenticated).
    Action {
        /// The connection.
        client: ClientId,
        /// Its peer.
        peer: Peer,
        /// The action.
        action: Action,
        /// The request.
        request: Request,
    },
    /// Keystrokes of an attached client for its process.
    Input(Slot, Vec<u8>),
    /// An attached client's new window size.
    Resize(Slot, u16, u16),
    /// A lagging attached client caught up: it needs a redraw.
    Resync(ClientId, Slot),
}

/// The listening socket's state and every connection.
pub struct Server {
    sessions: HashMap<ClientId, Session>,
    next_client: u32,
    socket: SocketConfig,
    /// Uids that are always admin (DESIGN §8; root is too).
    admins: Vec<u32>,
    /// socket.access with its names resolved: accept makes no name-service lookup.
    access: AccessCache,
    admission: Admission,
    auth_failures: AuthFailures,
    auth_worker: Option<AuthWorker>,
    /// Answers to failed authentications held back until their time: (when, client, reply,
    /// close the connection after).
    delayed: Vec<(Instant, ClientId, Reply, bool)>,
    deadlines: BinaryHeap<Reverse<(Instant, ClientId, Deadline)>>,
    /// Unsent output bytes of all clients together, and by uid.
    out_total: usize,
    out_by_uid: HashMap<u32, usize>,
    /// Received, unparsed input bytes of all clients together.
    in_total: usize,
    /// Password checks waiting for their uid's turn.
    auth_gate: Gate,
    /// One log line per peer uid per interval.
    peer_log: Throttle,
    /// Accepting is paused (out of fds) until then.
    accept_resume: Option<Instant>,
    /// An accept failed and the failure was logged; cleared by the next accept that works.
    accept_trouble: bool,
    /// `tail -f` and `maintail -f` clients.
    followers: Vec<Follower>,
    /// What the rest of the supervisor must act on.
    pub events: Vec<ServerEvent>,
}

impl Server {
    /// A server for `socket`, whose connection caps follow the fd limit `nofile`.
    pub fn new(socket: SocketConfig, admins: Vec<u32>, nofile: u64) -> Self {
        Server {
            sessions: HashMap::new(),
            next_client: 0,
            access: AccessCache::new(socket.access.clone(), admins.clone()),
            socket,
            admins,
            admission: Admission::new(admission::Limits::for_fd_limit(nofile)),
            auth_failures: AuthFailures::default(),
            auth_worker: None,
            delayed: Vec::new(),
            deadlines: BinaryHeap::new(),
            out_total: 0,
            out_by_uid: HashMap::new(),
            in_total: 0,
            auth_gate: Gate::default(),
            peer_log: Throttle::default(),
            accept_resume: None,
            accept_trouble: false,
            followers: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Resolves socket.access's users and groups again on the next connection (SIGHUP: the name
    /// service may have changed where /etc/passwd and /etc/group do not show it).
    pub fn refresh_access(&mut self) {
        self.access.invalidate();
    }

    /// The control socket's path, for the start line.
    pub fn path(&self) -> &std::path::Path {
        &self.socket.path
    }

    /// The next instant something is due (a deadline, a delayed answer, a held password
    /// check, accepting again).
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        let deadline = self.deadlines.peek().map(|Reverse((at, _, _))| *at);
        let check = self.auth_gate.next(|uid| self.auth_failures.ready_at(uid, now));
        deadline.into_iter().chain(self.delayed.iter().map(|d| d.0)).chain(check).chain(self.accept_resume).min()
    }

    /// Does what is due at `now`: delayed answers, deadlines, accepting again.
    pub fn on_time(&mut self, io: &mut Io, now: Instant) {
        if !self.delayed.is_empty() {
            self.send_delayed(io, now);
        }
        self.fire_deadlines(io, now);
        self.release_checks(io, now);
        if self.accept_resume.is_some_and(|at| at <= now) {
            self.accept_resume = None;
            let _ = io.w.interest(KEY_LISTENER, true, false);
        }
    }

    /// Accepts waiting connections (at most [`ACCEPTS_PER_WAKEUP`]), keeping those the caps
    /// allow (`admission.rs`).
    pub fn accept(&mut self, io: &mut Io, now: Instant) {
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let accepted = match io.w.get_mut(KEY_LISTENER) {
                Some(Source::Listener(l)) => l.accept(),
                _ => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    self.accept_trouble = false;
                    self.admit(io, stream, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE, ENFILE, ENOMEM …: the waiting connections stay queued; accepting
                    // pauses instead of spinning, and the episode is logged once.
                    if !std::mem::replace(&mut self.accept_trouble, true) {
                        io.log.warn(&format!(
                            "accept on the control socket: {e}; pausing new connections ({} held)",
                            self.admission.total()
                        ));
                    }
                    let _ = io.w.interest(KEY_LISTENER, false, false);
                    self.accept_resume = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, io: &mut Io, stream: std::os::unix::net::UnixStream, now: Instant) {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(cred) = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials) else {
            io.log.warn("control connection without peer credentials: refused");
            return;
        };
        let uid = cred.uid();
        let grants = self.access.grants(uid, cred.gid(), now);
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
                io.log.warn(&format!("refusing control connections from uid {uid}: too many connections ({held})"));
            }
            // One line, if the socket takes it at once; then the connection closes.
            let reply = Reply::err(0, kind::UNAVAILABLE, why.message(limits));
            let mut line = serde_json::to_vec(&reply).unwrap_or_default();
            line.push(b'\n');
            let _ = (&stream).write(&line);
            return;
        }
        self.next_client = self.next_client.wrapping_add(1);
        let id = ClientId(self.next_client);
        if io.w.insert(client_key(id), Source::Client(stream)).is_err() {
            self.admission.release(uid);
            return;
        }
        let authenticated = self.socket.auth.is_none();
        self.sessions.insert(id, Session::new(uid, grants, authenticated));
        if !authenticated {
            self.deadlines.push(Reverse((now + admission::UNAUTHENTICATED_DEADLINE, id, Deadline::Authenticate)));
        }
    }

    /// Drops the clients whose partial line or authentication is overdue.
    fn fire_deadlines(&mut self, io: &mut Io, now: Instant) {
        while let Some(Reverse((at, client, what))) = self.deadlines.peek().copied() {
            if at > now {
                return;
            }
            self.deadlines.pop();
            let Some(c) = self.sessions.get(&client) else { continue };
            let why = match what {
                Deadline::PartialLine
                    if c.partial_since.is_some_and(|t| t + admission::PARTIAL_LINE_DEADLINE <= now) =>
                {
                    "request line not completed in time"
                }
                Deadline::Authenticate if !c.authenticated => "not authenticated in time",
                _ => continue,
            };
            self.reply(io, client, &Reply::err(0, kind::BAD_REQUEST, why));
            self.flush(io, client);
            self.drop_client(io, client);
        }
    }

    /// Closes a connection.
    pub fn drop_client(&mut self, io: &mut Io, id: ClientId) {
        self.followers.retain(|f| f.client != id);
        if let Some(c) = self.sessions.remove(&id) {
            self.out_total -= c.outbuf.len();
            if let Some(u) = self.out_by_uid.get_mut(&c.uid) {
                *u -= c.outbuf.len();
                if *u == 0 {
                    self.out_by_uid.remove(&c.uid);
                }
            }
            self.in_total -= c.in_counted;
            self.admission.release(c.uid);
            self.auth_gate.forget_client(id.0);
        }
        drop(io.w.remove(client_key(id)));
    }

    /// The connection's socket is ready.
    pub fn on_ready(&mut self, io: &mut Io, id: ClientId, readable: bool, writable: bool, now: Instant) {
        if writable {
            self.flush(io, id);
        }
        if !readable || self.sessions.get(&id).is_none_or(|c| c.auth_pending) {
            return;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = match io.w.get_mut(client_key(id)) {
            Some(Source::Client(s)) => s.read(&mut chunk),
            _ => return,
        };
        match n {
            Ok(0) => return self.drop_client(io, id),
            Ok(n) => {
                // Past the budget for all clients' unparsed input, the one holding the most goes.
                while self.in_total + n > admission::INPUT_BUDGET {
                    let Some(biggest) = self.sessions.iter().max_by_key(|(_, c)| c.inbuf.len()).map(|(k, _)| *k) else {
                        break;
                    };
                    self.drop_unread(io, biggest, now);
                    if biggest == id {
                        return;
                    }
                }
                let Some(c) = self.sessions.get_mut(&id) else { return };
                c.inbuf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => return,
            Err(_) => return self.drop_client(io, id),
        }
        self.account_input(id);
        self.process_input(io, id, now);
    }

    /// Brings the input total up to date with `id`'s buffer.
    fn account_input(&mut self, id: ClientId) {
        let Some(c) = self.sessions.get_mut(&id) else { return };
        self.in_total = self.in_total - c.in_counted + c.inbuf.len();
        c.in_counted = c.inbuf.len();
    }

    /// Parses and handles the complete lines a client sent (or its frames, once attached),
    /// unless a password check of it is pending; an incomplete line starts its deadline.
    pub fn process_input(&mut self, io: &mut Io, id: ClientId, now: Instant) {
        self.process_lines(io, id, now);
        self.account_input(id);
    }

    fn process_lines(&mut self, io: &mut Io, id: ClientId, now: Instant) {
        loop {
            let Some(c) = self.sessions.get_mut(&id) else { return };
            if c.auth_pending {
                return;
            }
            if c.attached.is_some() {
                c.partial_since = None;
                return self.on_attached_input(io, id);
            }
            let from = c.scanned.min(c.inbuf.len());
            let Some(pos) = c.inbuf[from..].iter().position(|b| *b == b'\n').map(|p| from + p) else {
                c.scanned = c.inbuf.len();
                if c.inbuf.len() > MAX_LINE {
                    self.reply(io, id, &Reply::err(0, kind::BAD_REQUEST, "request line longer than 1 MiB"));
                    self.drop_client(io, id);
                } else if c.inbuf.is_empty() {
                    c.partial_since = None;
                } else if c.partial_since.is_none() {
                    c.partial_since = Some(now);
                    self.deadlines.push(Reverse((now + admission::PARTIAL_LINE_DEADLINE, id, Deadline::PartialLine)));
                }
                return;
            };
            c.partial_since = None;
            c.scanned = 0;
            let line: Vec<u8> = c.inbuf.drain(..=pos).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Request>(line) {
                Ok(req) => self.request(io, id, req, now),
                Err(e) => self.reply(io, id, &Reply::err(0, kind::BAD_REQUEST, format!("malformed request: {e}"))),
            }
            // The core answers a request before the next line is read, so answers keep the
            // order of the requests, and an `attach` turns the rest of the input into frames.
            // The edge resumes this loop once the core has answered.
            if matches!(self.events.last(), Some(ServerEvent::Action { .. })) {
                return;
            }
        }
    }

    /// A request line: `auth` is answered here; the others go to the core once the peer has
    /// authenticated.
    fn request(&mut self, io: &mut Io, client: ClientId, req: Request, now: Instant) {
        let id = req.id;
        let Some(action) = req.action() else {
            let msg = format!("unknown action '{}'", req.action.escape_debug());
            return self.reply(io, client, &Reply::err(id, kind::UNKNOWN_ACTION, msg));
        };
        io.log.log(LogLevel::Debug, &format!("control: {action} {:?}", req.names));
        // Nothing about the programs, not even whether a name exists, before the peer has
        // authenticated and been given a role.
        if action == Action::Auth {
            return self.authenticate(io, client, &req, now);
        }
        let Some(c) = self.sessions.get(&client) else { return };
        if !c.authenticated {
            return self.reply(io, client, &Reply::err(id, kind::AUTH_REQUIRED, "authentication required"));
        }
        let peer = Peer { uid: c.uid, grants: c.grants.clone() };
        self.events.push(ServerEvent::Action { client, peer, action, request: req });
    }

    /// Answers a client.
    pub fn reply(&mut self, io: &mut Io, id: ClientId, reply: &Reply) {
        let line = serde_json::to_vec(reply).unwrap_or_default();
        self.send_line(io, id, line);
    }

    fn send_line(&mut self, io: &mut Io, id: ClientId, mut line: Vec<u8>) {
        line.push(b'\n');
        self.send_shared(io, id, &[Rc::from(line)]);
    }

    /// Queues bytes for a client and writes what the socket takes; drops a client whose queue
    /// passes [`MAX_PENDING`], or that would take the clients' unsent output together past
    /// [`admission::OUTPUT_BUDGET`].
    pub fn send_bytes(&mut self, io: &mut Io, id: ClientId, bytes: &[u8]) {
        self.send_shared(io, id, &[Rc::from(bytes)]);
    }

    /// Queues `segments`, one message, for a client without copying them (they may be queued
    /// for other clients too), and writes what the socket takes. Each client is charged every
    /// byte it holds, shared or not, against [`MAX_PENDING`], [`admission::OUTPUT_PER_UID`]
    /// and [`admission::OUTPUT_BUDGET`], as [`Server::send_bytes`] does.
    fn send_shared(&mut self, io: &mut Io, id: ClientId, segments: &[Rc<[u8]>]) {
        let Some(c) = self.sessions.get(&id) else { return };
        let len: usize = segments.iter().map(|s| s.len()).sum();
        let uid = c.uid;
        let uid_total = self.out_by_uid.get(&uid).copied().unwrap_or(0);
        let capped = !self.admins.contains(&uid) && uid != 0;
        if c.outbuf.len() + len > MAX_PENDING || (capped && uid_total + len > admission::OUTPUT_PER_UID) {
            return self.drop_unread(io, id, Instant::now());
        }
        // Past the global budget, the client holding the most goes first (whoever writes).
        while self.out_total + len > admission::OUTPUT_BUDGET {
            let Some(biggest) = self.sessions.iter().max_by_key(|(_, c)| c.outbuf.len()).map(|(k, _)| *k) else {
                break;
            };
            self.drop_unread(io, biggest, Instant::now());
            if biggest == id {
                return;
            }
        }
        let Some(c) = self.sessions.get_mut(&id) else { return };
        for s in segments {
            c.outbuf.push(Rc::clone(s));
        }
        self.out_total += len;
        *self.out_by_uid.entry(uid).or_default() += len;
        self.flush(io, id);
    }

    /// Drops a client that does not read what it asked for; logged once per uid per interval.
    fn drop_unread(&mut self, io: &mut Io, id: ClientId, now: Instant) {
        let (uid, held) = self.sessions.get(&id).map_or((0, 0), |c| (c.uid, c.outbuf.len()));
        if let Some(left_out) = self.peer_log.allow(u64::from(uid), now) {
            let more =
                if left_out > 0 { format!(" ({left_out} more lines of this uid not logged)") } else { String::new() };
            io.log.warn(&format!(
                "dropping control client {id} of uid {uid}: it does not read its replies ({held} bytes unsent){more}"
            ));
        }
        self.drop_client(io, id);
    }

    /// Logs a refusal of a peer's request: one WARN line per uid per `admission::LOG_INTERVAL`,
    /// so a peer cannot flood the main log with refusals.
    pub fn peer_log(&mut self, io: &mut Io, uid: u32, text: &str, now: Instant) {
        if let Some(left_out) = self.peer_log.allow(u64::from(uid), now) {
            let more = if left_out > 0 {
                format!(" ({left_out} more refusals of this uid not logged)")
            } else {
                String::new()
            };
            io.log.warn(&format!("{text}{more}"));
        }
    }

    /// Writes what the client's socket takes.
    pub fn flush(&mut self, io: &mut Io, id: ClientId) {
        let Some(c) = self.sessions.get_mut(&id) else { return };
        let Some(Source::Client(s)) = io.w.get_mut(client_key(id)) else { return };
        while !c.outbuf.is_empty() {
            match s.write_vectored(&c.outbuf.slices()) {
                Ok(0) => break,
                Ok(n) => {
                    c.outbuf.consume(n);
                    self.out_total -= n;
                    if let Some(u) = self.out_by_uid.get_mut(&c.uid) {
                        *u -= n;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.drop_client(io, id),
            }
        }
        let pending = !c.outbuf.is_empty();
        // A client whose password is being checked is not read until it is answered.
        let _ = io.w.interest(client_key(id), !c.auth_pending, pending);
        if !pending && c.behind {
            c.behind = false;
            if let Some((slot, _)) = &c.attached {
                self.events.push(ServerEvent::Resync(id, *slot));
            }
        }
    }

    /// Best effort before exit: one more write for every client with replies pending.
    pub fn flush_all(&mut self, io: &mut Io) {
        let ids: Vec<ClientId> = self.sessions.keys().copied().collect();
        for id in ids {
            self.flush(io, id);
        }
    }

    // ---- tail -f ----

    /// Starts following `source` for a client's request `id`.
    pub fn follow(&mut self, client: ClientId, id: u64, source: TailSource) {
        let prefix = format!("{{\"id\":{id},\"stream\":{{\"data\":\"");
        self.followers.push(Follower { client, id, source, prefix: Rc::from(prefix.into_bytes()) });
    }

    /// Whether a client follows `slot`'s `stream` (`tail -f`) or is attached to `slot` (`fg`):
    /// its output must then be read into memory, not only moved into its log file.
    pub fn watches(&self, slot: Slot, stream: common::config::Stream) -> bool {
        self.followers.iter().any(|f| f.source == TailSource::Proc(slot, stream))
            || self.sessions.values().any(|c| c.attached.as_ref().is_some_and(|a| a.0 == slot))
    }

    /// Whether anyone follows anything.
    pub fn has_followers(&self) -> bool {
        !self.followers.is_empty()
    }

    /// Sends `bytes` to the followers of `source` (base64), each as the line
    /// `{"id":N,"stream":{"data":"…"}}`: the base64 and the line's end are encoded once and
    /// shared by every follower's queue; only the small prefix with its request id is its own.
    pub fn feed_followers(&mut self, io: &mut Io, source: TailSource, bytes: &[u8]) {
        if !self.followers.iter().any(|f| f.source == source) {
            return;
        }
        let body = stream_line_body(bytes);
        let targets: Vec<(ClientId, Rc<[u8]>)> =
            self.followers.iter().filter(|f| f.source == source).map(|f| (f.client, Rc::clone(&f.prefix))).collect();
        for (client, prefix) in targets {
            self.send_shared(io, client, &[prefix, Rc::clone(&body)]);
        }
    }

    /// Sends the main log lines written since the last call to `maintail -f` clients.
    pub fn feed_main_followers(&mut self, io: &mut Io) {
        let fresh = io.log.take_fresh();
        if !fresh.is_empty() {
            self.feed_followers(io, TailSource::Main, &fresh);
        }
    }

    /// Ends, with `message`, every follow whose source matches.
    pub fn end_followers(&mut self, io: &mut Io, matches: impl Fn(&TailSource) -> bool, message: &str) {
        if self.followers.is_empty() {
            return;
        }
        let (ended, kept): (Vec<Follower>, Vec<Follower>) =
            std::mem::take(&mut self.followers).into_iter().partition(|f| matches(&f.source));
        self.followers = kept;
        for f in ended {
            let line = serde_json::to_vec(&json!({ "id": f.id, "end": true, "message": message })).unwrap_or_default();
            self.send_line(io, f.client, line);
        }
    }

    // ---- attach relay ----

    /// Marks a client attached to `slot` (its ok reply was sent).
    pub fn set_attached(&mut self, client: ClientId, slot: Slot, name: String) {
        if let Some(c) = self.sessions.get_mut(&client) {
            c.attached = Some((slot, name));
        }
    }

    /// Reads the frames an attached client sent.
    fn on_attached_input(&mut self, io: &mut Io, client: ClientId) {
        loop {
            let Some(c) = self.sessions.get_mut(&client) else { return };
            let Some((slot, _)) = c.attached else { return };
            let frame = match take_frame(&mut c.inbuf) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => {
                    io.log.warn(&format!("client {client}: {e}; dropping it"));
                    return self.drop_client(io, client);
                }
            };
            match frame {
                Frame::Data(bytes) => self.events.push(ServerEvent::Input(slot, bytes)),
                Frame::Resize { rows, cols } => self.events.push(ServerEvent::Resize(slot, rows, cols)),
                Frame::Detach => {
                    let name = c.attached.as_ref().map(|a| a.1.clone()).unwrap_or_default();
                    io.log.info(&format!("client {client} detached from '{name}'"));
                    self.flush(io, client);
                    return self.drop_client(io, client);
                }
                Frame::Exit(_) => {
                    io.log.warn(&format!("client {client} sent an exit frame; dropping it"));
                    return self.drop_client(io, client);
                }
            }
        }
    }

    /// Sends bytes to one client as data frames.
    pub fn send_frame_data(&mut self, io: &mut Io, client: ClientId, bytes: &[u8]) {
        for frame in data_frames(bytes) {
            self.send_shared(io, client, &[frame]);
        }
    }

    /// Sends program output to the clients attached to `slot`: its data frames are encoded once
    /// and shared by every client's queue. A client more than [`LAG_BYTES`] behind gets nothing
    /// more until it has caught up, then a redraw.
    pub fn feed_attached(&mut self, io: &mut Io, slot: Slot, bytes: &[u8]) {
        let mut clients = Vec::new();
        for (id, c) in self.sessions.iter_mut().filter(|(_, c)| c.attached.as_ref().is_some_and(|a| a.0 == slot)) {
            if c.behind || c.pending() > LAG_BYTES {
                c.behind = true;
            } else {
                clients.push(*id);
            }
        }
        if clients.is_empty() {
            return;
        }
        let frames = data_frames(bytes);
        for c in clients {
            for frame in &frames {
                self.send_shared(io, c, std::slice::from_ref(frame));
            }
        }
    }

    /// Ends every attach to `slot` with an `exit` frame.
    pub fn end_attached(&mut self, io: &mut Io, slot: Slot, status: i32) {
        let clients: Vec<ClientId> = self
            .sessions
            .iter()
            .filter(|(_, c)| c.attached.as_ref().is_some_and(|a| a.0 == slot))
            .map(|(id, _)| *id)
            .collect();
        for c in clients {
            self.send_bytes(io, c, &Frame::Exit(status).encode());
            self.flush(io, c);
            self.drop_client(io, c);
        }
    }

    // ---- authentication ----

    /// `auth` (socket.auth): the username is compared here and the password checked by argon2
    /// on the worker thread (`auth.rs`), never on the loop. The check runs when its uid's turn
    /// comes (`auth::Gate`: one at a time, none before the uid's wait after a failure is over);
    /// nothing more is read from the connection until it is answered. A full worker queue is
    /// answered `unavailable` at once.
    fn authenticate(&mut self, io: &mut Io, client: ClientId, req: &Request, now: Instant) {
        let Some(auth) = self.socket.auth.clone() else {
            return self.reply(io, client, &Reply::ok(req.id, json!({ "authenticated": true })));
        };
        let Some(c) = self.sessions.get_mut(&client) else { return };
        let arg = |k: &str| req.args.get(k).and_then(serde_json::Value::as_str).unwrap_or("").to_owned();
        // Logged at a failure: printable and short, so a peer cannot forge log lines.
        c.auth_user = arg("username").chars().take(64).map(|ch| if ch.is_control() { '?' } else { ch }).collect();
        let check = Check {
            client: client.0,
            uid: c.uid,
            id: req.id,
            user_ok: arg("username") == auth.username,
            password: arg("password"),
            hash: auth.password_hash,
        };
        self.set_auth_pending(io, client, true);
        let ready = self.auth_failures.ready_at(check.uid, now) <= now;
        if let Some(check) = self.auth_gate.offer(check, ready) {
            self.run_check(io, check);
        }
    }

    /// Hands a check the gate let through to the worker (started on first use).
    fn run_check(&mut self, io: &mut Io, check: Check) {
        let (client, id, uid) = (ClientId(check.client), check.id, check.uid);
        if self.auth_worker.is_none() {
            match AuthWorker::start() {
                Ok((worker, wake)) => {
                    if let Err(e) = io.w.insert(KEY_AUTH, Source::Wake(wake)) {
                        io.log.error(&format!("cannot watch the password worker: {e}"));
                    }
                    self.auth_worker = Some(worker);
                }
                Err(e) => io.log.error(&format!("cannot start the password worker: {e}")),
            }
        }
        let queued = self.auth_worker.as_ref().is_some_and(|w| w.submit(check).is_ok());
        if !queued {
            self.auth_gate.done(uid);
            self.set_auth_pending(io, client, false);
            let reply = Reply::err(id, kind::UNAVAILABLE, "passwords cannot be checked now; try again");
            self.reply(io, client, &reply);
        }
    }

    /// Runs the held password checks whose turn has come.
    fn release_checks(&mut self, io: &mut Io, now: Instant) {
        if self.auth_gate.is_empty() {
            return;
        }
        let failures = &self.auth_failures;
        for check in self.auth_gate.release(now, |uid| failures.ready_at(uid, now)) {
            self.run_check(io, check);
        }
    }

    /// Stops or resumes reading a client while its password is checked.
    fn set_auth_pending(&mut self, io: &mut Io, client: ClientId, pending: bool) {
        let Some(c) = self.sessions.get_mut(&client) else { return };
        c.auth_pending = pending;
        let out = c.pending() > 0;
        let _ = io.w.interest(client_key(client), !pending, out);
    }

    /// The password worker has answered: a success is answered at once; a failure is logged and
    /// answered after the uid's delay (`admission::AuthFailures`), and the third on one
    /// connection closes it. The connection stays unread until then.
    pub fn on_auth_verdicts(&mut self, io: &mut Io, now: Instant) {
        if let Some(Source::Wake(w)) = io.w.get_mut(KEY_AUTH) {
            crate::io::control::auth::drain_wakeups(w);
        }
        let verdicts = self.auth_worker.as_ref().map(AuthWorker::verdicts).unwrap_or_default();
        for Verdict { client, uid, id, ok } in verdicts {
            self.auth_gate.done(uid);
            let client = ClientId(client);
            let Some(c) = self.sessions.get_mut(&client) else { continue };
            let uid = c.uid;
            if ok {
                c.authenticated = true;
                self.auth_failures.succeed(uid);
                self.reply(io, client, &Reply::ok(id, json!({ "authenticated": true })));
                self.set_auth_pending(io, client, false);
                self.process_input(io, client, now);
                continue;
            }
            c.failures += 1;
            let (failures, user) = (c.failures, std::mem::take(&mut c.auth_user));
            let wait = self.auth_failures.fail(uid, now);
            io.log.warn(&format!(
                "failed authentication as '{user}' from uid {uid} (attempt {failures} on this connection; answered in {} s)",
                wait.as_secs()
            ));
            let reply = Reply::err(id, kind::PERMISSION_DENIED, "authentication failed");
            self.delayed.push((now + wait, client, reply, failures >= admission::MAX_AUTH_FAILURES));
        }
        self.release_checks(io, now);
    }

    /// Sends the delayed answers to failed authentications that are due, closing a connection
    /// at its third failure and reading the others again.
    fn send_delayed(&mut self, io: &mut Io, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed).into_iter().partition(|d| d.0 <= now);
        self.delayed = later;
        for (_, client, reply, close) in due {
            self.reply(io, client, &reply);
            if close {
                self.flush(io, client);
                self.drop_client(io, client);
            } else {
                self.set_auth_pending(io, client, false);
                self.process_input(io, client, now);
            }
        }
    }
}

/// `bytes` as attach data frames (`[kind][len][payload]`, at most
/// [`common::proto::attach::MAX_PAYLOAD`] bytes of payload each), ready to share.
fn data_frames(bytes: &[u8]) -> Vec<Rc<[u8]>> {
    bytes
        .chunks(common::proto::attach::MAX_PAYLOAD)
        .map(|chunk| {
            let mut frame = Vec::with_capacity(chunk.len() + 5);
            Frame::encode_data(chunk, &mut frame);
            Rc::from(frame)
        })
        .collect()
}

/// The part of a `tail -f` stream line after its follower's prefix: `bytes` in base64 (whose
/// alphabet needs no JSON escape), then `"}}` and the newline.
fn stream_line_body(bytes: &[u8]) -> Rc<[u8]> {
    let mut body = String::with_capacity(bytes.len().div_ceil(3) * 4 + 4);
    B64.encode_string(bytes, &mut body);
    body.push_str("\"}}\n");
    Rc::from(body.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::control::session::OutQueue;

    #[test]
    fn a_follower_line_is_the_json_it_replaces() {
        for (id, bytes) in [(0u64, &b""[..]), (7, b"hello\n"), (u64::MAX, b"\x00\xff\"\\ \xe2\x82")] {
            let prefix = format!("{{\"id\":{id},\"stream\":{{\"data\":\"");
            let mut line = prefix.into_bytes();
            line.extend_from_slice(&stream_line_body(bytes));
            let mut want = serde_json::to_vec(&json!({ "id": id, "stream": { "data": B64.encode(bytes) } })).unwrap();
            want.push(b'\n');
            assert_eq!(line, want);
        }
    }

    #[test]
    fn data_frames_split_at_the_payload_limit() {
        let max = common::proto::attach::MAX_PAYLOAD;
        let bytes = vec![b'x'; max + 3];
        let frames = data_frames(&bytes);
        assert_eq!(frames.iter().map(|f| f.len()).collect::<Vec<_>>(), [max + 5, 8]);
        let mut want = Vec::new();
        Frame::encode_data(&bytes[..max], &mut want);
        assert_eq!(&*frames[0], &want[..]);
    }

    #[test]
    fn the_queue_is_a_cursor_over_shared_segments() {
        let shared: Rc<[u8]> = Rc::from(&b"abcdef"[..]);
        let (mut a, mut b) = (OutQueue::default(), OutQueue::default());
        for q in [&mut a, &mut b] {
            q.push(Rc::clone(&shared));
            q.push(Rc::from(&b""[..]));
            q.push(Rc::from(&b"gh"[..]));
        }
        assert_eq!(Rc::strong_count(&shared), 3);
        assert_eq!((a.len(), b.len()), (8, 8));
        a.consume(4);
        let flat = |q: &OutQueue| q.slices().iter().flat_map(|s| s.to_vec()).collect::<Vec<u8>>();
        assert_eq!((a.len(), flat(&a)), (4, b"efgh".to_vec()));
        a.consume(3);
        assert_eq!(flat(&a), b"h");
        assert_eq!(Rc::strong_count(&shared), 2);
        a.consume(1);
        assert!(a.is_empty() && a.slices().is_empty());
        assert_eq!(flat(&b), b"abcdefgh");
    }
}
