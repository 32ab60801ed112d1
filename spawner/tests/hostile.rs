//! The spawner trusts no one (DESIGN §1, issue 7): this test plays a compromised supervisor and
//! sends the real spawner loop raw hostile messages over its link. Requests outside the rules
//! are refused and answered; malformed, oversize, wrong-version and unknown messages end the link,
//! the spawner kills the supervisor and returns, without crashing.
//!
//! It runs without libtest's harness: the spawner reads SIGCHLD from a signalfd, which needs the
//! signal blocked in the only thread there is.

use common::config::{load::load_str, Context};
use common::proto::spawn::{encode, Event, Link, Request, SignalPurpose, VERSION};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid;
use spawner::link::{signal_fd, Spawner};
use std::os::fd::AsFd;

fn config() -> common::config::Config {
    let ctx = Context { is_root: false, current_user: None, check_users: false, trusted_uid: None };
    let text = "server:\n  logfile: /dev/null\nprograms:\n  web:\n    command: /bin/true\n    numprocs: 2\n    stdout_logfile: NONE\n    stderr_logfile: NONE\n  long:\n    command: /bin/sleep 100\n    stdout_logfile: NONE\n    stderr_logfile: NONE\n";
    load_str(std::path::Path::new("/tmp/hostile/t.yaml"), text, &ctx).expect("config")
}

/// Runs the spawner on a link whose other end gets `messages` (raw datagrams); returns its exit
/// code, every event it sent, and whether the stand-in supervisor was killed.
fn run_against(messages: &[Vec<u8>]) -> (u8, Vec<Event>, bool) {
    let (ours, theirs) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).expect("socketpair");
    let sigfd = signal_fd().expect("signalfd");
    // The spawner under test reaps it (waitpid(-1) on SIGCHLD), as it reaps a real supervisor.
    #[allow(clippy::zombie_processes)]
    let fake = std::process::Command::new("sleep").arg("100").spawn().expect("spawn the stand-in supervisor");
    let pid = Pid::from_raw(fake.id() as i32);
    for m in messages {
        common::sys::send_with_fds(theirs.as_fd(), m, &[]).expect("send");
    }
    let listener = std::fs::File::open("/dev/null").expect("/dev/null").into();
    let code = Spawner::new(config(), Link::new(ours), pid, None, listener, sigfd, false).without_restarts().run();
    let killed = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_err();
    let mut them = Link::new(theirs);
    let flags = nix::fcntl::OFlag::from_bits_truncate(nix::fcntl::fcntl(&them, nix::fcntl::FcntlArg::F_GETFL).unwrap());
    nix::fcntl::fcntl(&them, nix::fcntl::FcntlArg::F_SETFL(flags | nix::fcntl::OFlag::O_NONBLOCK)).unwrap();
    let mut events = Vec::new();
    loop {
        match them.recv::<Event>() {
            Ok((e, _)) => events.push(e),
            Err(e) => {
                if std::env::var_os("HOSTILE_DEBUG").is_some() {
                    println!("stopped reading: {e}");
                }
                break;
            }
        }
    }
    (code, events, killed)
}

fn msg(r: &Request) -> Vec<u8> {
    encode(r).expect("encode")
}

fn check(name: &str, ok: bool, detail: impl std::fmt::Debug) -> bool {
    println!("{} {name}", if ok { "ok  " } else { "FAIL" });
    if !ok {
        println!("     {detail:?}");
    }
    ok
}

fn main() {
    let hello = msg(&Request::Hello { version: VERSION });
    let mut results = Vec::new();

    // Requests outside the rules are refused and answered and the link lives on; then a commit
    // the spawner never offered ends it (last: unread datagrams would reset the connection).
    let (code, events, killed) = run_against(&[
        hello.clone(),
        msg(&Request::Spawn { token: 1, program: "evil".into(), instance: 0, generation: 1 }),
        msg(&Request::Spawn { token: 2, program: "web".into(), instance: 7, generation: 1 }),
        msg(&Request::Spawn { token: 3, program: "web".into(), instance: 0, generation: 99 }),
        msg(&Request::Signal { spawn_id: 12345, signal: 9, purpose: SignalPurpose::Kill }),
        msg(&Request::Commit { generation: 5, programs: vec![] }),
    ]);
    let refused = |token: u64, needle: &str| {
        events
            .iter()
            .any(|e| matches!(e, Event::SpawnFailed { token: t, error, .. } if *t == token && error.contains(needle)))
    };
    results.push(check("an unknown program is refused", refused(1, "refused: unknown program 'evil'"), &events));
    results.push(check("an instance out of range is refused", refused(2, "out of range"), &events));
    results.push(check("a stale generation is refused", refused(3, "generation"), &events));
    results.push(check(
        "a signal to a pid it did not spawn is refused",
        events
            .iter()
            .any(|e| matches!(e, Event::SignalFailed { spawn_id: 12345, error } if error.contains("no live child"))),
        &events,
    ));
    results.push(check(
        "a commit without a re-read ends the link, the supervisor is killed",
        code == 1 && killed,
        (code, killed),
    ));
    results.push(check("nothing was spawned", !events.iter().any(|e| matches!(e, Event::Spawned { .. })), &events));

    // A tampered supervisor asks three times for the same instance: one child runs, the other
    // two requests are refused (DESIGN §1 rule 6), never forked.
    let spawn_long = |token| msg(&Request::Spawn { token, program: "long".into(), instance: 0, generation: 1 });
    let (_, events, _) = run_against(&[
        hello.clone(),
        spawn_long(10),
        spawn_long(11),
        spawn_long(12),
        msg(&Request::Commit { generation: 5, programs: vec![] }),
    ]);
    let spawned: Vec<i32> =
        events.iter().filter_map(|e| if let Event::Spawned { pid, .. } = e { Some(*pid) } else { None }).collect();
    let refused = |token: u64| {
        events.iter().any(|e| {
            matches!(e, Event::SpawnFailed { token: t, error, .. }
                if *t == token && error.contains("refused: 'long' instance 0 already has a live child"))
        })
    };
    results.push(check(
        "a second and a third spawn of a live instance are refused",
        refused(11) && refused(12),
        &events,
    ));
    results.push(check("exactly one child was forked for the instance", spawned.len() == 1, &events));

    // Each of these ends the link at once, before anything is done.
    let mut wrong_version = hello.clone();
    wrong_version[1] ^= 0x7f;
    let mut oversize = hello.clone();
    oversize.extend(std::iter::repeat_n(b' ', common::proto::spawn::MAX_MSG));
    let mut unknown_tag = hello.clone();
    unknown_tag[3] = 77;
    let mut lying_length = hello.clone();
    lying_length[7] = lying_length[7].wrapping_add(3);
    let mut extra_field = hello[..8].to_vec();
    let payload = br#"{"Hello":{"version":1,"root":true}}"#;
    extra_field[4..8].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    extra_field.extend_from_slice(payload);
    let spawn_before_hello = msg(&Request::Spawn { token: 1, program: "web".into(), instance: 0, generation: 1 });
    let event_as_request = encode(&Event::DaemonSignal { signal: 15 }).unwrap();
    for (name, bad) in [
        ("a wrong version", wrong_version),
        ("an oversize message", oversize),
        ("an unknown tag", unknown_tag),
        ("a lying length", lying_length),
        ("an unknown field", extra_field),
        ("a spawn before hello", spawn_before_hello),
        ("an event sent as a request", event_as_request),
        ("a truncated header", hello[..5].to_vec()),
    ] {
        let (code, events, killed) = run_against(&[bad]);
        let nothing_done = !events.iter().any(|e| matches!(e, Event::Spawned { .. } | Event::Hello { .. }));
        results.push(check(
            &format!("{name} ends the link, nothing done"),
            code == 1 && killed && nothing_done,
            (code, killed, &events),
        ));
    }
    let failed = results.iter().filter(|ok| !**ok).count();
    println!("{} passed, {failed} failed", results.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
