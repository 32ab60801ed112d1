//! The test probe (STYLE §2.11): prints one JSON line describing the process as it sees itself
//! (uid, gid, groups, umask, cwd, environment, parent), then sleeps until killed, or exits with
//! the code given as its first argument.
//!
//! `probe --ptrace PID` is an attacker instead: it tries to trace PID and to read its
//! environment and memory, and prints what each attempt got (`"ok"` or the errno's name).

use std::collections::BTreeMap;

/// `probe flood SOCKET N`: opens N connections to a UNIX socket (raising its own fd limit to the
/// hard limit first), each sending the start of a request line that never ends, then prints
/// `{"connected": C, "refused": R}` (R: connect failed) and holds them until stdin closes.
fn flood(path: &str, n: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    use std::io::{Read, Write};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..n {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(mut s) => {
                let _ = s.set_nonblocking(true);
                let _ = s.write(b"{\"id\": 1, \"action\": \"sta");
                held.push(s);
            }
            Err(_) => refused += 1,
        }
    }
    println!("{}", serde_json::json!({ "connected": held.len(), "refused": refused }));
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// `"ok"`, or the errno's name (`"EACCES"`).
fn outcome<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("{:?}", nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))),
    }
}

/// Tries what a hostile process of the same uid would do to `pid`: PTRACE_ATTACH (then detaches
/// when it worked), read /proc/PID/environ and /proc/PID/mem.
fn attack(pid: i32) -> serde_json::Value {
    let target = nix::unistd::Pid::from_raw(pid);
    let ptrace = match nix::sys::ptrace::attach(target) {
        Ok(()) => {
            let _ = nix::sys::wait::waitpid(target, Some(nix::sys::wait::WaitPidFlag::__WALL));
            let _ = nix::sys::ptrace::detach(target, None);
            "ok".to_owned()
        }
        Err(e) => format!("{e:?}"),
    };
    let environ = outcome(std::fs::read(format!("/proc/{pid}/environ")));
    let mem = outcome(std::fs::File::open(format!("/proc/{pid}/mem")));
    serde_json::json!({
        "uid": nix::unistd::getuid().as_raw(),
        "gid": nix::unistd::getgid().as_raw(),
        "ptrace": ptrace,
        "environ": environ,
        "mem": mem,
    })
}

/// `probe sigint`: blocks SIGINT, prints `armed`, then `got-int N` for the Nth SIGINT it takes
/// with sigwait; with no child process and no handler, no signal can be lost between two.
fn count_sigints() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.thread_block().expect("block SIGINT");
    println!("armed");
    for n in 1.. {
        if set.wait().is_ok() {
            println!("got-int {n}");
        }
    }
}

/// `probe follow SOCKET NAME N`: opens N `tail -f NAME` connections that never read, prints
/// `{"following": N}` and holds them until stdin closes.
fn follow_without_reading(path: &str, name: &str, n: usize) {
    use std::io::{Read, Write};
    let mut held = Vec::new();
    for _ in 0..n {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) {
            let req = serde_json::json!({ "id": 1, "action": "tail", "names": [name], "args": { "follow": true, "bytes": 0 } });
            let _ = s.write_all(format!("{req}\n").as_bytes());
            held.push(s);
        }
    }
    println!("{}", serde_json::json!({ "following": held.len() }));
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// `probe spam SOCKET C L`: C connections one after the other, each sending L `status` lines at
/// once and reading replies until the daemon closes it (or 1 s passes without a reply); prints `{"replies": R}`.
fn spam(path: &str, connections: usize, lines: usize) {
    use std::io::{BufRead, Write};
    let mut replies = 0;
    let request: String = (0..lines).map(|i| format!("{{\"id\": {i}, \"action\": \"status\"}}\n")).collect();
    for _ in 0..connections {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else { continue };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(1)));
        let _ = s.write_all(request.as_bytes());
        let mut r = std::io::BufReader::new(s);
        let mut line = String::new();
        while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
            replies += 1;
            line.clear();
        }
    }
    println!("{}", serde_json::json!({ "replies": replies }));
}

/// `probe winch`: blocks SIGWINCH, prints `armed`, then runs `stty size` on its terminal for
/// each SIGWINCH it takes with sigwait (none is lost between two).
fn report_window_sizes() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGWINCH);
    set.thread_block().expect("block SIGWINCH");
    println!("armed");
    loop {
        if set.wait().is_ok() {
            let _ = std::process::Command::new("stty").arg("size").status();
        }
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("winch") {
        return report_window_sizes();
    }
    if std::env::args().nth(1).as_deref() == Some("spam") {
        let arg = |i| std::env::args().nth(i).unwrap_or_default();
        return spam(&arg(2), arg(3).parse().unwrap_or(0), arg(4).parse().unwrap_or(0));
    }
    if std::env::args().nth(1).as_deref() == Some("follow") {
        let arg = |i| std::env::args().nth(i).unwrap_or_default();
        return follow_without_reading(&arg(2), &arg(3), arg(4).parse().unwrap_or(0));
    }
    if std::env::args().nth(1).as_deref() == Some("sigint") {
        return count_sigints();
    }
    if std::env::args().nth(1).as_deref() == Some("--ptrace") {
        let pid = std::env::args().nth(2).and_then(|p| p.parse().ok()).unwrap_or(0);
        println!("{}", attack(pid));
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("flood") {
        let path = std::env::args().nth(2).unwrap_or_default();
        let n = std::env::args().nth(3).and_then(|n| n.parse().ok()).unwrap_or(0);
        return flood(&path, n);
    }
    // `probe bind ADDR`: try to listen on ADDR, print the result, then wait.
    if std::env::args().nth(1).as_deref() == Some("bind") {
        let addr = std::env::args().nth(2).unwrap_or_default();
        match std::net::TcpListener::bind(&addr) {
            Ok(_l) => {
                println!("bound {addr}");
                loop {
                    std::thread::park();
                }
            }
            Err(e) => {
                println!("cannot bind {addr}: {e}");
                std::process::exit(1);
            }
        }
    }
    let mask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    nix::sys::stat::umask(mask);
    let groups: Vec<u32> = nix::unistd::getgroups().unwrap_or_default().into_iter().map(|g| g.as_raw()).collect();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let report = serde_json::json!({
        "pid": std::process::id(),
        "ppid": nix::unistd::getppid().as_raw(),
        "uid": nix::unistd::getuid().as_raw(),
        "euid": nix::unistd::geteuid().as_raw(),
        "gid": nix::unistd::getgid().as_raw(),
        "groups": groups,
        "umask": mask.bits(),
        "cwd": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        "env": env,
        "sid": nix::unistd::getsid(None).map(|p| p.as_raw()).unwrap_or(0),
    });
    println!("{report}");
    if let Some(code) = std::env::args().nth(1).and_then(|a| a.parse::<i32>().ok()) {
        std::process::exit(code);
    }
    loop {
        std::thread::park();
    }
}
