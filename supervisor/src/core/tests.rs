//! Table tests of the core: no process, no fd, no clock (time is a base instant plus offsets).

use super::*;
use crate::access::Grants;
use common::config::load::load_str;
use common::config::{diff, Config, Context};
use common::proto::spawn::{ConfigItem, ExitStatus, FdSet};

const SEC: Duration = Duration::from_secs(1);

fn load(programs: &str) -> Config {
    let ctx = Context { is_root: false, current_user: None, check_users: false, trusted_uid: None };
    load_str(std::path::Path::new("/t.yaml"), &format!("programs:\n{programs}"), &ctx).unwrap()
}

fn config(programs: &str) -> CoreConfig {
    CoreConfig {
        programs: load(programs).programs,
        generation: 1,
        spawner_pid: Pid::from_raw(100),
        notify: false,
        watchdog: None,
        mono: mono(),
        restarts: 0,
    }
}

/// One clock mapping for every core of a test (CLOCK_MONOTONIC's values are made up).
fn mono() -> Mono {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    Mono { at: *BASE.get_or_init(Instant::now), ns: 1_000_000_000_000 }
}

fn admin() -> Peer {
    Peer { uid: 0, grants: Grants::Admin }
}

/// A core and a clock that only moves when a test says so.
struct Sim {
    core: Core,
    now: Instant,
    next_spawn: u64,
    next_req: u64,
    /// Every effect so far, in order.
    log: Effects,
}

impl Sim {
    fn new(programs: &str) -> Sim {
        let t0 = Instant::now();
        let (core, log) = Core::new(config(programs), t0);
        Sim { core, now: t0, next_spawn: 0, next_req: 0, log }
    }

    fn feed(&mut self, input: Input) -> Effects {
        let fx = self.core.handle(input, self.now);
        self.log.extend(fx.iter().map(clone_effect));
        fx
    }

    fn ask(&mut self, peer: Peer, action: Action, names: &[&str]) -> Effects {
        self.next_req += 1;
        let request = Request {
            id: self.next_req,
            action: action.as_str().into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            args: Default::default(),
        };
        self.feed(Input::Control { client: ClientId(1), peer, action, request })
    }

    fn state(&self, name: &str) -> ProcessState {
        let reg = self.core.registry();
        reg.procs.values().find(|p| p.name == name).map(|p| p.m.state).unwrap_or_else(|| panic!("no {name}"))
    }

    fn spawn_id(&self, name: &str) -> SpawnId {
        let reg = self.core.registry();
        reg.procs
            .values()
            .find(|p| p.name == name)
            .and_then(|p| p.spawn_id)
            .unwrap_or_else(|| panic!("{name}: no child"))
    }

    /// Answers every spawn request in `fx` with a child.
    fn spawn_all(&mut self, fx: &Effects) -> Effects {
        let mut out = Vec::new();
        for (token, _, _) in spawns(fx) {
            self.next_spawn += 1;
            let spawned = SpawnerInput::Spawned {
                token,
                spawn_id: SpawnId(self.next_spawn),
                pid: Pid::from_raw(1000 + self.next_spawn as i32),
                fds: FdSet { stdin: false, stdout: false, stderr: false, pty: false, hold: false },
                fds_received: true,
            };
            out.extend(self.feed(Input::Spawner(spawned)));
        }
        out
    }

    fn exit(&mut self, name: &str, status: ExitStatus) -> Effects {
        let spawn_id = self.spawn_id(name);
        self.feed(Input::Spawner(SpawnerInput::Exited { spawn_id, status }))
    }

    /// Moves the clock and fires the timers armed so far that are due.
    fn advance(&mut self, by: Duration) -> Effects {
        self.now += by;
        let due: Vec<TimerId> = self
            .log
            .iter()
            .filter_map(|e| match e {
                Effect::Arm(at, id) if *at <= self.now => Some(*id),
                _ => None,
            })
            .collect();
        self.log.retain(|e| !matches!(e, Effect::Arm(at, _) if *at <= self.now));
        due.into_iter().flat_map(|id| self.feed(Input::Timer(id))).collect()
    }

    /// Re-reads the config into `programs` as the spawner would answer `update`/`reload`.
    fn reread(&mut self, fx: &Effects, programs: &str, generation: u64) -> Effects {
        let token = fx
            .iter()
            .find_map(|e| match e {
                Effect::Spawner(SpawnRequest::Reread { token }) => Some(*token),
                _ => None,
            })
            .expect("a re-read request");
        let old =
            Config { programs: self.core.registry().programs.values().map(|p| (**p).clone()).collect(), ..load("") };
        let new = load(programs);
        let plan = diff(&old, &new);
        let mut items: Vec<ConfigItem> = new.programs.into_iter().map(|p| ConfigItem::Program(Box::new(p))).collect();
        items.push(ConfigItem::Plan(plan));
        self.feed(Input::Spawner(SpawnerInput::Config { generation, token: Some(token), items: Ok(items) }))
    }
}

fn clone_effect(e: &Effect) -> Effect {
    match e {
        Effect::Arm(at, id) => Effect::Arm(*at, *id),
        Effect::Reply(c, r) => Effect::Reply(*c, r.clone()),
        Effect::Spawner(r) => Effect::Spawner(r.clone()),
        Effect::Log(l, t) => Effect::Log(*l, t.clone()),
        Effect::PeerLog { uid, text } => Effect::PeerLog { uid: *uid, text: text.clone() },
        other => Effect::Log(LogLevel::Debug, format!("{other:?}")),
    }
}

use common::config::raw::LogLevel;

fn spawns(fx: &Effects) -> Vec<(u64, String, u32)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Spawner(SpawnRequest::Spawn { token, program, instance, .. }) => {
                Some((*token, program.clone(), *instance))
            }
            _ => None,
        })
        .collect()
}

fn signals(fx: &Effects) -> Vec<(SpawnId, i32)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Spawner(SpawnRequest::Signal { spawn_id, signal, .. }) => Some((SpawnId(*spawn_id), *signal)),
            _ => None,
        })
        .collect()
}

fn replies(fx: &Effects) -> Vec<Reply> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Reply(_, r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The `name: message` lines of a job's answer.
fn results(r: &Reply) -> Vec<String> {
    let rows = r.data.as_ref().and_then(|d| d.as_array()).cloned().unwrap_or_default();
    rows.iter().map(|v| format!("{}: {}", v["name"].as_str().unwrap(), v["message"].as_str().unwrap())).collect()
}

/// The lines of a re-read's answer.
fn lines(r: &Reply) -> Vec<String> {
    let l = r.data.as_ref().and_then(|d| d.get("lines")).and_then(|l| l.as_array()).cloned().unwrap_or_default();
    l.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

fn names(fx: &Effects) -> Vec<String> {
    spawns(fx).into_iter().map(|(_, p, _)| p).collect()
}

const TWO: &str = "  low:\n    command: /bin/a\n    priority: 10\n    startsecs: 1\n    autostart: false\n  high:\n    command: /bin/b\n    priority: 20\n    startsecs: 1\n    autostart: false\n";

#[test]
fn start_spawns_in_ascending_priority_and_answers_once_none_is_starting() {
    let mut s = Sim::new(TWO);
    let fx = s.ask(admin(), Action::Start, &["all"]);
    assert_eq!(names(&fx), ["low", "high"], "ascending priority");
    assert!(replies(&fx).is_empty(), "answered only once RUNNING");
    let fx = s.spawn_all(&fx);
    assert!(replies(&fx).is_empty());
    let fx = s.advance(SEC);
    let r = replies(&fx);
    assert_eq!(r.len(), 1);
    assert_eq!(results(&r[0]), ["low: started", "high: started"]);
    assert_eq!(s.state("low"), ProcessState::Running);
    // Starting what runs is refused for a name given on its own.
    let r = replies(&s.ask(admin(), Action::Start, &["low"]));
    assert_eq!(results(&r[0]), ["low: ERROR (already started)"]);
}

#[test]
fn stop_all_stops_one_priority_group_at_a_time_highest_first() {
    let mut s = Sim::new(&TWO.replace("startsecs: 1", "startsecs: 0"));
    let fx = s.ask(admin(), Action::Start, &["all"]);
    s.spawn_all(&fx);
    let (low, high) = (s.spawn_id("low"), s.spawn_id("high"));
    let fx = s.ask(admin(), Action::Stop, &["all"]);
    assert_eq!(signals(&fx), [(high, 15)], "only the highest priority first");
    let fx = s.exit("high", ExitStatus::Signal(15));
    assert_eq!(signals(&fx), [(low, 15)], "then the next group");
    assert!(replies(&fx).is_empty());
    let fx = s.exit("low", ExitStatus::Signal(15));
    assert_eq!(results(&replies(&fx)[0]), ["high: stopped", "low: stopped"]);
    // A process that ignores its stop signal is killed after stopwaitsecs, and the stop succeeds.
    let fx = s.ask(admin(), Action::Start, &["low"]);
    s.spawn_all(&fx);
    let fx = s.ask(admin(), Action::Stop, &["low"]);
    assert_eq!(signals(&fx).len(), 1);
    let fx = s.advance(10 * SEC);
    assert_eq!(signals(&fx), [(s.spawn_id("low"), 9)]);
    let fx = s.exit("low", ExitStatus::Signal(9));
    assert_eq!(results(&replies(&fx)[0]), ["low: stopped"]);
}

#[test]
fn restart_stops_then_starts_and_answers_once_running() {
    let mut s = Sim::new(TWO);
    let fx = s.ask(admin(), Action::Start, &["low"]);
    s.spawn_all(&fx);
    s.advance(SEC);
    let fx = s.ask(admin(), Action::Restart, &["low"]);
    assert_eq!(signals(&fx).len(), 1);
    assert!(spawns(&fx).is_empty(), "no spawn before the old child is gone");
    let fx = s.exit("low", ExitStatus::Signal(15));
    assert_eq!(names(&fx), ["low"]);
    s.spawn_all(&fx);
    let fx = s.advance(SEC);
    assert_eq!(results(&replies(&fx)[0]), ["low: stopped", "low: started"]);
}

/// An update that changes `web`'s command arrives while web is STARTING, STOPPING or in
/// BACKOFF: the old child (if any) is stopped first, one new one is spawned, and the update is
/// answered only once its stops are done.
#[test]
fn an_update_during_starting_stopping_or_backoff_restarts_web_once() {
    let before = "  web:\n    command: /bin/old\n    startsecs: 5\n    startretries: 3\n";
    let after = "  web:\n    command: /bin/new\n    startsecs: 5\n    startretries: 3\n";
    for initial in [ProcessState::Starting, ProcessState::Stopping, ProcessState::Backoff] {
        let mut s = Sim::new(before);
        let fx = s.feed(Input::Boot);
        s.spawn_all(&fx);
        match initial {
            ProcessState::Stopping => {
                s.ask(admin(), Action::Stop, &["web"]);
            }
            ProcessState::Backoff => {
                s.exit("web", ExitStatus::Code(1));
            }
            _ => {}
        }
        assert_eq!(s.state("web"), initial);
        let had_child = initial != ProcessState::Backoff;
        let fx = s.ask(admin(), Action::Update, &[]);
        let fx = s.reread(&fx, after, 2);
        assert!(fx.iter().any(|e| matches!(e, Effect::Spawner(SpawnRequest::Commit { generation: 2, .. }))));
        let fx = if had_child {
            assert!(replies(&fx).is_empty(), "{initial:?}: answered before web stopped");
            assert!(spawns(&fx).is_empty(), "{initial:?}: spawned beside the old child");
            s.exit("web", ExitStatus::Signal(15))
        } else {
            fx
        };
        assert_eq!(spawns(&fx).len(), 1, "{initial:?}: one new child");
        let expected: &[&str] = if had_child {
            &["web: stopped", "web: updated process group (command)"]
        } else {
            &["web: updated process group (command)"]
        };
        // In STOPPING, the user's stop is answered too, first.
        assert_eq!(lines(replies(&fx).last().unwrap()), expected, "{initial:?}");
        assert_eq!(s.state("web"), ProcessState::Starting);
        assert_eq!(s.core.registry().programs["web"].command, load(after).programs[0].command);
    }
}

/// Issue 14 item 1: an `update` then a `reload` (or SIGHUP) arriving at once. The second re-read
/// is sent only once the first is applied and answered, so two plans are never mixed and no
/// hidden duplicate process is left.
#[test]
fn an_update_then_a_reload_are_applied_one_after_the_other() {
    let v1 = "  web:\n    command: /bin/v1\n    startsecs: 0\n";
    let v2 = "  web:\n    command: /bin/v2\n    startsecs: 0\n";
    let mut s = Sim::new(v1);
    let fx = s.feed(Input::Boot);
    s.spawn_all(&fx);
    let update = s.ask(admin(), Action::Update, &[]);
    let reload = s.ask(admin(), Action::Reload, &[]);
    assert!(!reload.iter().any(|e| matches!(e, Effect::Spawner(SpawnRequest::Reread { .. }))), "queued");
    let fx = s.reread(&update, v2, 2);
    assert!(!fx.iter().any(|e| matches!(e, Effect::Spawner(SpawnRequest::Reread { .. }))), "not before applied");
    let fx = s.exit("web", ExitStatus::Signal(15));
    let r = replies(&fx);
    assert_eq!(r.len(), 1, "the update is answered");
    assert_eq!(r[0].id, 1);
    let reread_pos = fx.iter().position(|e| matches!(e, Effect::Spawner(SpawnRequest::Reread { .. })));
    let reply_pos = fx.iter().position(|e| matches!(e, Effect::Reply(..)));
    assert!(reply_pos < reread_pos && reread_pos.is_some(), "the reload's re-read follows the answer");
    s.spawn_all(&fx);
    assert_eq!(s.state("web"), ProcessState::Running);
    let reread =
        s.log.iter().rev().find(|e| matches!(e, Effect::Spawner(SpawnRequest::Reread { .. }))).map(clone_effect);
    let fx = s.reread(&[reread.unwrap()].into_iter().collect(), v2, 3);
    assert!(replies(&fx).is_empty(), "reload waits for its stops");
    let fx = s.exit("web", ExitStatus::Signal(15));
    assert_eq!(lines(&replies(&fx)[0]), ["Restarted taskmasterd"]);
    assert_eq!(spawns(&fx).len(), 1, "one web, started again from the file");
    assert_eq!(s.core.registry().procs.len(), 1, "no hidden duplicate");
}

#[test]
fn a_reload_plan_adds_removes_and_scales() {
    let before = "  a:\n    command: /bin/a\n    startsecs: 0\n  gone:\n    command: /bin/g\n    startsecs: 0\n  n:\n    command: /bin/n\n    numprocs: 3\n    startsecs: 0\n";
    let after = "  a:\n    command: /bin/a\n    startsecs: 0\n  new:\n    command: /bin/x\n    startsecs: 0\n  n:\n    command: /bin/n\n    numprocs: 2\n    startsecs: 0\n";
    let mut s = Sim::new(before);
    let fx = s.feed(Input::Boot);
    s.spawn_all(&fx);
    let a = s.spawn_id("a");
    let fx = s.ask(admin(), Action::Update, &[]);
    let fx = s.reread(&fx, after, 2);
    assert_eq!(names(&fx), ["new"], "added and autostarted");
    let stopped: Vec<SpawnId> = signals(&fx).into_iter().map(|(id, _)| id).collect();
    assert_eq!(stopped.len(), 2, "gone and n:2 stop: {stopped:?}");
    assert!(!stopped.contains(&a), "unchanged: untouched");
    s.exit("gone", ExitStatus::Signal(15));
    let fx = s.exit("n:2", ExitStatus::Signal(15));
    let l = lines(&replies(&fx)[0]);
    assert!(l.contains(&"gone: removed process group".to_owned()), "{l:?}");
    assert!(l.contains(&"new: added process group".to_owned()), "{l:?}");
    assert!(l.contains(&"n: updated process group (numprocs)".to_owned()), "{l:?}");
    let mut left: Vec<String> = s.core.registry().procs.values().map(|p| p.name.clone()).collect();
    left.sort();
    assert_eq!(left, ["a", "n:0", "n:1", "new"]);
    assert_eq!(s.spawn_id("a"), a, "same child");
}

#[test]
fn numprocs_up_starts_only_the_new_instances_and_is_answered_at_once() {
    let before = "  n:\n    command: /bin/n\n    numprocs: 2\n    startsecs: 0\n";
    let after = "  n:\n    command: /bin/n\n    numprocs: 4\n    startsecs: 0\n";
    let mut s = Sim::new(before);
    let fx = s.feed(Input::Boot);
    s.spawn_all(&fx);
    let kept = (s.spawn_id("n:0"), s.spawn_id("n:1"));
    let fx = s.ask(admin(), Action::Update, &[]);
    let fx = s.reread(&fx, after, 2);
    let mut started: Vec<u32> = spawns(&fx).into_iter().map(|(_, _, instance)| instance).collect();
    started.sort();
    assert_eq!(started, [2, 3], "only the new instances start");
    assert!(signals(&fx).is_empty(), "nothing is stopped");
    let l = lines(&replies(&fx)[0]);
    assert_eq!(l, ["n: updated process group (numprocs)"], "nothing to wait for: answered at once");
    assert_eq!((s.spawn_id("n:0"), s.spawn_id("n:1")), kept, "the kept instances keep their child");
}

#[test]
fn restore_binds_live_children_and_kills_strangers() {
    let programs = "  slow:\n    command: /bin/s\n    startsecs: 5\n  quick:\n    command: /bin/q\n    startsecs: 1\n  idle:\n    command: /bin/i\n";
    let t0 = Instant::now();
    let now = t0 + 3 * SEC;
    let child = |program: &str, instance, id, pid, started_at| LiveChild {
        program: program.into(),
        instance,
        spawn_id: SpawnId(id),
        pid: Pid::from_raw(pid),
        started_ns: mono().ns_of(started_at),
        generation: 1,
        ended: false,
    };
    let inventory = [
        child("slow", 0, 7, 70, t0),
        child("quick", 0, 8, 80, t0),
        child("removed", 0, 9, 90, t0),
        child("quick", 1, 10, 100, t0),
    ];
    let (mut core, fx) = Core::restore(config(programs), &inventory, &[], now);
    let state = |c: &Core, n: &str| {
        c.registry().procs.values().find(|p| p.name == n).map(|p| (p.m.state, p.m.pid.map(Pid::as_raw)))
    };
    let table = [
        ("slow", Some((ProcessState::Starting, Some(70)))),
        ("quick", Some((ProcessState::Running, Some(80)))),
        ("idle", Some((ProcessState::Stopped, None))),
    ];
    for (name, want) in table {
        assert_eq!(state(&core, name), want, "{name}");
    }
    assert_eq!(signals(&fx), [(SpawnId(9), 9), (SpawnId(10), 9)], "not in the config: killed");
    assert!(spawns(&fx).is_empty(), "restore starts nothing");
    let binds: Vec<SpawnId> = fx
        .iter()
        .filter_map(|e| if let Effect::BindOutput { spawn_id, .. } = e { Some(*spawn_id) } else { None })
        .collect();
    assert_eq!(binds, [SpawnId(7), SpawnId(8)]);
    let (at, id) = fx.iter().find_map(|e| if let Effect::Arm(at, id) = e { Some((*at, *id)) } else { None }).unwrap();
    assert_eq!(at, t0 + 5 * SEC, "the rest of startsecs");
    core.handle(Input::Timer(id), at);
    assert_eq!(state(&core, "slow"), Some((ProcessState::Running, Some(70))));
    // The restored child's exit takes the usual course: restarted (autorestart unexpected).
    let fx =
        core.handle(Input::Spawner(SpawnerInput::Exited { spawn_id: SpawnId(8), status: ExitStatus::Signal(9) }), at);
    assert_eq!(names(&fx), ["quick"]);
    assert_eq!(core.slot_of_spawn(SpawnId(9)), None);
}

#[test]
fn access_decisions_reach_the_core_as_refusals() {
    let programs = "  web:\n    command: /bin/w\n  db:\n    command: /bin/d\n";
    let viewer = Peer { uid: 1001, grants: Grants::Rules(vec![(Role::Viewer, vec![])]) };
    let web_operator =
        Peer { uid: 1002, grants: Grants::Rules(vec![(Role::Operator, vec![glob::Pattern::new("web").unwrap()])]) };
    let nobody = Peer { uid: 1003, grants: Grants::Rules(vec![]) };
    let table: [(&Peer, Action, &[&str], Option<&str>); 8] = [
        (&viewer, Action::Stop, &["web"], Some("permission denied: viewer may not stop web")),
        (&viewer, Action::Reload, &[], Some("permission denied: viewer may not reload")),
        (&viewer, Action::Pid, &["web"], None),
        (&web_operator, Action::Stop, &["db"], Some("permission denied: uid 1002 has no role for db")),
        (&web_operator, Action::Stop, &["nosuch"], Some("permission denied: uid 1002 has no role for nosuch")),
        (
            &web_operator,
            Action::Shutdown,
            &[],
            Some("permission denied: uid 1002 has no role beyond some programs: shutdown needs one for all"),
        ),
        (&nobody, Action::Status, &[], Some("permission denied: uid 1003 matches no socket.access rule")),
        (&web_operator, Action::Signal, &["web"], Some("signal needs a signal name or number")),
    ];
    for (peer, action, names, refusal) in table {
        let mut s = Sim::new(programs);
        let fx = s.ask(peer.clone(), action, names);
        let r = replies(&fx);
        assert_eq!(r.len(), 1, "{action} {names:?}");
        let message = r[0].error.as_ref().map(|e| e.message.as_str());
        assert_eq!(message, refusal, "{action} {names:?} by uid {}", peer.uid);
        if message.is_some_and(|m| m.starts_with("permission denied")) {
            assert_eq!(r[0].error.as_ref().unwrap().kind, kind::PERMISSION_DENIED);
            let warned = fx.iter().any(
                |e| matches!(e, Effect::PeerLog { uid, text } if *uid == peer.uid && text.starts_with("refused uid")),
            );
            assert!(warned, "the refusal is logged");
            assert!(spawns(&fx).is_empty() && signals(&fx).is_empty(), "nothing was done");
        }
    }
    // status shows a narrowed peer only its programs.
    let mut s = Sim::new(programs);
    let fx = s.ask(web_operator, Action::Status, &[]);
    let rows = fx.iter().find_map(|e| if let Effect::Status(_, rows) = e { Some(rows.clone()) } else { None }).unwrap();
    assert_eq!(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["web"]);
}

#[test]
fn shutdown_stops_everything_then_exits_and_answers() {
    let mut s = Sim::new(&TWO.replace("startsecs: 1", "startsecs: 0"));
    let fx = s.ask(admin(), Action::Start, &["all"]);
    s.spawn_all(&fx);
    let fx = s.ask(admin(), Action::Shutdown, &[]);
    assert_eq!(signals(&fx).len(), 1);
    s.exit("high", ExitStatus::Signal(15));
    let fx = s.exit("low", ExitStatus::Code(0));
    assert!(fx.iter().any(|e| matches!(e, Effect::Exit(0))));
    assert_eq!(replies(&fx)[0].data, Some(json!({ "message": "Shut down" })));
}

/// What a spawner keeps of a core's requests: the records by process, the live children.
#[derive(Default)]
struct Keeper {
    records: std::collections::BTreeMap<(String, u32), ProcRecord>,
}

impl Keeper {
    fn take(&mut self, fx: &Effects) {
        for e in fx {
            if let Effect::Spawner(SpawnRequest::Remember { program, instance, record }) = e {
                match record {
                    Some(r) => self.records.insert((program.clone(), *instance), r.clone()),
                    None => self.records.remove(&(program.clone(), *instance)),
                };
            }
        }
    }

    fn kept(&self) -> Vec<KeptRecord> {
        self.records
            .iter()
            .map(|((program, instance), record)| KeptRecord {
                program: program.clone(),
                instance: *instance,
                record: record.clone(),
            })
            .collect()
    }
}

#[test]
fn a_restored_core_has_every_state_the_dead_one_had() {
    // One process per state, driven by the ordinary inputs; the records the core asks the
    // spawner to keep, and the children it has, rebuild the same states in a new core.
    let programs = "  run:\n    command: /bin/r\n    startsecs: 1\n  starting:\n    command: /bin/s\n    startsecs: 60\n  \
backoff:\n    command: /bin/b\n    startsecs: 5\n    startretries: 3\n  fatal:\n    command: /bin/f\n    startsecs: 5\n    startretries: 0\n  \
exited:\n    command: /bin/e\n    startsecs: 1\n    autorestart: false\n  stopped:\n    command: /bin/o\n    startsecs: 1\n  \
stopping:\n    command: /bin/p\n    startsecs: 1\n    stopwaitsecs: 30\n  idle:\n    command: /bin/i\n    autostart: false\n";
    let mut s = Sim::new(programs);
    let mut keeper = Keeper::default();
    let fx = s.feed(Input::Boot);
    keeper.take(&fx);
    keeper.take(&s.spawn_all(&fx));
    keeper.take(&s.advance(2 * SEC));
    keeper.take(&s.exit("backoff", ExitStatus::Code(1)));
    keeper.take(&s.exit("fatal", ExitStatus::Code(1)));
    keeper.take(&s.exit("exited", ExitStatus::Code(7)));
    keeper.take(&s.ask(admin(), Action::Stop, &["stopped"]));
    keeper.take(&s.exit("stopped", ExitStatus::Signal(15)));
    keeper.take(&s.ask(admin(), Action::Stop, &["stopping"]));
    let want = [
        ("backoff", ProcessState::Backoff),
        ("exited", ProcessState::Exited),
        ("fatal", ProcessState::Fatal),
        ("idle", ProcessState::Stopped),
        ("run", ProcessState::Running),
        ("starting", ProcessState::Starting),
        ("stopped", ProcessState::Stopped),
        ("stopping", ProcessState::Stopping),
    ];
    for (name, state) in want {
        assert_eq!(s.state(name), state, "{name} before");
    }
    // The supervisor dies here; the spawner's inventory lists the children it has.
    let inventory: Vec<LiveChild> = s
        .core
        .registry()
        .procs
        .values()
        .filter_map(|p| {
            Some(LiveChild {
                program: p.program.name.clone(),
                instance: p.instance,
                spawn_id: p.spawn_id?,
                pid: p.m.pid?,
                started_ns: mono().ns_of(p.m.started_at?),
                generation: 1,
                ended: false,
            })
        })
        .collect();
    assert_eq!(inventory.len(), 3, "run, starting, stopping have a child");
    let before: Vec<(String, Option<Pid>, Option<ExitStatus>, u32)> =
        s.core.registry().procs.values().map(|p| (p.name.clone(), p.m.pid, p.m.last_exit, p.m.backoff)).collect();
    let later = s.now + SEC;
    let (core, fx) = Core::restore(config(programs), &inventory, &keeper.kept(), later);
    let mut r = Sim { core, now: later, next_spawn: 100, next_req: 0, log: fx.iter().map(clone_effect).collect() };
    assert!(spawns(&fx).is_empty() && signals(&fx).is_empty(), "restore itself starts and stops nothing");
    for (name, state) in want {
        assert_eq!(r.state(name), state, "{name} restored");
    }
    let after: Vec<(String, Option<Pid>, Option<ExitStatus>, u32)> =
        r.core.registry().procs.values().map(|p| (p.name.clone(), p.m.pid, p.m.last_exit, p.m.backoff)).collect();
    assert_eq!(after, before, "pids, last exits and backoff counts are kept");
    let run = r.core.registry().procs.values().find(|p| p.name == "run").unwrap();
    assert_eq!(run.m.started_at, Some(s.now - 2 * SEC), "uptime is not reset");
    // Boot after a restore starts nothing: every autostart process has a state of its own.
    assert!(spawns(&r.feed(Input::Boot)).is_empty());
    // The timers of the dead core are armed again, at the times they were due.
    let fx = r.advance(SEC);
    assert_eq!(names(&fx), ["backoff"], "BACKOFF retries 1 s after its exit, as before the restart");
    r.spawn_all(&fx);
    let fx = r.advance(29 * SEC);
    assert_eq!(signals(&fx), [(r.spawn_id("stopping"), 9)], "STOPPING is killed after stopwaitsecs");
    let fx = r.advance(30 * SEC);
    assert!(fx.iter().any(|e| matches!(e, Effect::Log(_, t) if t.contains("'starting' entered RUNNING"))));
}

#[test]
fn a_restore_starts_what_the_dead_core_never_started_and_forgets_a_finished_stop() {
    let programs = "  a:\n    command: /bin/a\n  b:\n    command: /bin/b\n";
    // The dead core was stopping `b` when its exit reached it, then died before keeping STOPPED.
    let record = ProcRecord {
        state: "STOPPING".into(),
        backoff: 0,
        last_exit: None,
        spawnerr: None,
        ever_started: true,
        changed_ns: mono().ns_of(Instant::now()),
    };
    let kept = [KeptRecord { program: "b".into(), instance: 0, record }];
    let now = Instant::now();
    let (mut core, _) = Core::restore(config(programs), &[], &kept, now);
    let b = core.registry().procs.values().find(|p| p.name == "b").map(|p| p.m.state);
    assert_eq!(b, Some(ProcessState::Stopped));
    assert_eq!(names(&core.handle(Input::Boot, now)), ["a"], "a was never started: boot starts it");
}

#[test]
fn only_states_a_child_cannot_show_are_kept() {
    let mut s = Sim::new("  w:\n    command: /bin/w\n    startsecs: 1\n    startretries: 1\n");
    let kept = |fx: &Effects| -> Vec<Option<String>> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Spawner(SpawnRequest::Remember { record, .. }) => {
                    Some(record.as_ref().map(|r| r.state.clone()))
                }
                _ => None,
            })
            .collect()
    };
    let fx = s.feed(Input::Boot);
    assert_eq!(kept(&fx), Vec::<Option<String>>::new(), "STARTING: the child shows it");
    assert!(kept(&s.spawn_all(&fx)).is_empty());
    assert!(kept(&s.advance(SEC)).is_empty(), "RUNNING: the child shows it");
    let fx = s.exit("w", ExitStatus::Code(1));
    assert!(kept(&fx).is_empty(), "exited and restarted at once: STARTING again");
    s.spawn_all(&fx);
    let fx = s.exit("w", ExitStatus::Code(1));
    assert_eq!(kept(&fx), [Some("BACKOFF".to_owned())]);
    let fx = s.advance(SEC);
    assert_eq!(kept(&fx), [None], "retrying: forgotten before the spawn request");
    let at = fx.iter().position(|e| matches!(e, Effect::Spawner(SpawnRequest::Remember { .. }))).unwrap();
    let spawn = fx.iter().position(|e| matches!(e, Effect::Spawner(SpawnRequest::Spawn { .. }))).unwrap();
    assert!(at < spawn);
    s.spawn_all(&fx);
    assert_eq!(kept(&s.exit("w", ExitStatus::Code(1))), [Some("FATAL".to_owned())]);
}

#[test]
fn an_ended_child_in_the_inventory_is_acted_on_once() {
    // `a`'s end reached the dead core, which restarted it (a new child); `b`'s end reached it and
    // it kept BACKOFF; `c`'s end never reached it. Only `c`'s exit is still to act on.
    let programs = "  a:\n    command: /bin/a\n    startsecs: 0\n  b:\n    command: /bin/b\n    startsecs: 10\n  c:\n    command: /bin/c\n    startsecs: 0\n    autorestart: false\n";
    let now = Instant::now();
    let child = |program: &str, id, ended| LiveChild {
        program: program.into(),
        instance: 0,
        spawn_id: SpawnId(id),
        pid: Pid::from_raw(id as i32 * 10),
        started_ns: mono().ns_of(now) - 5_000_000_000,
        generation: 1,
        ended,
    };
    let inventory = [child("a", 1, true), child("b", 2, true), child("c", 3, true), child("a", 4, false)];
    let backoff = ProcRecord {
        state: "BACKOFF".into(),
        backoff: 1,
        last_exit: Some(ExitStatus::Code(1)),
        spawnerr: None,
        ever_started: true,
        changed_ns: mono().ns_of(now),
    };
    let kept = [KeptRecord { program: "b".into(), instance: 0, record: backoff }];
    let (mut core, fx) = Core::restore(config(programs), &inventory, &kept, now);
    let binds: Vec<SpawnId> = fx
        .iter()
        .filter_map(|e| if let Effect::BindOutput { spawn_id, .. } = e { Some(*spawn_id) } else { None })
        .collect();
    assert_eq!(binds, [SpawnId(4), SpawnId(3)], "the new child of a, and c");
    assert!(signals(&fx).is_empty(), "an ended child is never signalled");
    let state = |c: &Core, n: &str| c.registry().procs.values().find(|p| p.name == n).map(|p| p.m.state).unwrap();
    assert_eq!(state(&core, "b"), ProcessState::Backoff);
    for (id, name) in [(1, "a"), (2, "b")] {
        let exit = SpawnerInput::Exited { spawn_id: SpawnId(id), status: ExitStatus::Code(1) };
        let fx = core.handle(Input::Spawner(exit), now);
        assert!(spawns(&fx).is_empty(), "{name}: already acted on");
    }
    assert_eq!((state(&core, "a"), state(&core, "b")), (ProcessState::Running, ProcessState::Backoff));
    let exit = SpawnerInput::Exited { spawn_id: SpawnId(3), status: ExitStatus::Code(7) };
    core.handle(Input::Spawner(exit), now);
    let c = core.registry().procs.values().find(|p| p.name == "c").unwrap();
    assert_eq!((c.m.state, c.m.last_exit), (ProcessState::Exited, Some(ExitStatus::Code(7))));
}
