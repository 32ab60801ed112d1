//! Several users, one socket (DESIGN §8): socket ownership, roles by peer credentials, program
//! globs. As root, with real users and groups made by the test.

use crate::SOON;
use std::process::Command;
use tests::{bin, require_root, CtlRun, Daemon, Scratch};

fn ensure_group(name: &str) {
    if !Command::new("getent").args(["group", name]).output().unwrap().status.success() {
        assert!(Command::new("groupadd").arg(name).status().unwrap().success(), "groupadd {name}");
    }
}

fn ensure_user(name: &str, groups: &[&str]) -> u32 {
    for g in groups {
        ensure_group(g);
    }
    if !Command::new("getent").args(["passwd", name]).output().unwrap().status.success() {
        let mut cmd = Command::new("useradd");
        cmd.args(["-M", "-N", "-s", "/usr/sbin/nologin"]);
        if !groups.is_empty() {
            cmd.args(["-G", &groups.join(",")]);
        }
        assert!(cmd.arg(name).status().unwrap().success(), "useradd {name}");
    }
    nix::unistd::User::from_name(name).unwrap().unwrap().uid.as_raw()
}

/// taskmasterctl run as `user` (with runuser), from a copy any user can execute.
fn ctl_as(d: &Daemon, user: &str, args: &[&str]) -> CtlRun {
    let ctl = d.scratch.path("taskmasterctl");
    if !ctl.exists() {
        std::fs::copy(bin("taskmasterctl"), &ctl).unwrap();
    }
    Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(&ctl)
        .arg("-s")
        .arg(&d.socket)
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[test]
fn roles_decide_who_may_do_what() {
    require_root!();
    for tool in ["runuser", "useradd", "groupadd"] {
        if !Command::new("sh").arg("-c").arg(format!("command -v {tool}")).status().unwrap().success() {
            tests::skip(&format!("{tool} is not installed"));
            return;
        }
    }
    let viewer = ensure_user("tmt_viewer", &["tmt_sock"]);
    ensure_user("tmt_op", &["tmt_sock"]);
    ensure_user("tmt_boss", &["tmt_sock", "tmt_admins"]);
    let stranger = ensure_user("tmt_stranger", &["tmt_sock"]);
    ensure_user("tmt_outsider", &[]);
    let config = "programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n  db:\n    command: sleep 1000\n    startsecs: 0\n";
    let d = Daemon::start_socket(
        Scratch::new(),
        "  chmod: 0770\n  chown: root:tmt_sock\n  access:\n    - {user: tmt_viewer, role: viewer}\n    - {user: tmt_op, role: operator, programs: [\"web*\"]}\n    - {group: tmt_admins, role: admin}\n",
        config,
    );
    d.wait_state("web", "RUNNING", SOON);
    d.wait_state("db", "RUNNING", SOON);

    // A user outside the socket's group cannot connect at all.
    let out = ctl_as(&d, "tmt_outsider", &["status"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "{out:?}");

    // A viewer sees everything and may tail, but not stop.
    let v = ctl_as(&d, "tmt_viewer", &["status"]);
    assert!(v.code == 0 && v.stdout.contains("web ") && v.stdout.contains("db "), "{v:?}");
    assert_eq!(ctl_as(&d, "tmt_viewer", &["tail", "web"]).code, 0);
    let refused = ctl_as(&d, "tmt_viewer", &["stop", "web"]);
    assert_eq!(refused.code, 4);
    assert_eq!(refused.stderr.trim(), "taskmasterctl: permission denied: viewer may not stop web");
    d.wait_log(&format!("WARN refused uid {viewer}: viewer may not stop web"), SOON);
    assert_eq!(d.state("web"), "RUNNING");

    // An operator scoped to web* restarts web, not db, and sees only web.
    let r = ctl_as(&d, "tmt_op", &["restart", "web"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "web: stopped\nweb: started\n"), "{r:?}");
    let r = ctl_as(&d, "tmt_op", &["restart", "db"]);
    assert_eq!(r.code, 4);
    assert!(r.stderr.contains("has no role for db"), "{r:?}");
    let s = ctl_as(&d, "tmt_op", &["status"]);
    assert!(s.stdout.contains("web ") && !s.stdout.contains("db "), "{s:?}");
    assert_eq!(ctl_as(&d, "tmt_op", &["update"]).code, 4);

    // A peer in the socket's group but in no rule is refused.
    let s = ctl_as(&d, "tmt_stranger", &["status"]);
    assert_eq!(s.code, 4);
    assert!(s.stderr.contains(&format!("uid {stranger} matches no socket.access rule")), "{s:?}");
    // It learns nothing of the programs: a name that does not exist gets the same refusal.
    let s = ctl_as(&d, "tmt_stranger", &["stop", "no-such-program"]);
    assert_eq!(s.code, 4);
    assert!(s.stderr.contains(&format!("uid {stranger} matches no socket.access rule")), "{s:?}");

    // An admin through a group rule may update and shut down.
    assert_eq!(ctl_as(&d, "tmt_boss", &["update"]).code, 0);
    let out = ctl_as(&d, "tmt_boss", &["shutdown"]);
    assert_eq!((out.code, out.stdout.trim()), (0, "Shut down"), "{out:?}");
}

/// `taskmasterctl -s SOCKET -u ops status` with the password `secret-guess`, with no terminal.
fn status_with_a_guess(socket: &std::path::Path) -> CtlRun {
    Command::new("setsid")
        .arg(bin("taskmasterctl"))
        .arg("-s")
        .arg(socket)
        .args(["-u", "ops", "status"])
        .env("TASKMASTER_PASSWORD", "secret-guess")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .into()
}

#[test]
fn password_authentication_accepts_the_right_password_only() {
    use std::process::Stdio;
    let hash = tests::hash_password("s3cret");
    let d = Daemon::start_socket(
        Scratch::new(),
        &format!("  auth:\n    username: ops\n    password_hash: '{hash}'\n"),
        "programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n",
    );
    let ctl = |user: Option<&str>, password: Option<&str>, args: &[&str]| -> CtlRun {
        let mut cmd = Command::new("setsid"); // no controlling terminal: nothing to prompt on
        cmd.arg(bin("taskmasterctl")).arg("-s").arg(&d.socket);
        if let Some(u) = user {
            cmd.args(["-u", u]);
        }
        cmd.args(args).stdin(Stdio::null()).env_remove("TASKMASTER_PASSWORD").env_remove("TASKMASTER_USERNAME");
        if let Some(p) = password {
            cmd.env("TASKMASTER_PASSWORD", p);
        }
        cmd.output().unwrap().into()
    };
    let ok = ctl(Some("ops"), Some("s3cret"), &["pid"]); // not `status`: web may still be STARTING (exit 3)
    assert_eq!(ok.code, 0, "{ok:?}");
    let t0 = std::time::Instant::now();
    let bad = ctl(Some("ops"), Some("guess"), &["status"]);
    assert_eq!(bad.code, 4);
    assert_eq!(bad.stderr.trim(), "taskmasterctl: authentication failed (as 'ops')");
    assert!(t0.elapsed() >= std::time::Duration::from_secs(1), "a failed attempt must be delayed");
    d.wait_log("WARN failed authentication as 'ops' from uid", SOON);
    let wrong_user = ctl(Some("root"), Some("s3cret"), &["status"]);
    assert_eq!(wrong_user.code, 4, "{wrong_user:?}");
    let no_user = ctl(None, Some("s3cret"), &["status"]);
    assert!(no_user.code == 4 && no_user.stderr.contains("-u or TASKMASTER_USERNAME"), "{no_user:?}");
    let no_password = ctl(Some("ops"), None, &["status"]);
    assert!(no_password.code == 4 && no_password.stderr.contains("set TASKMASTER_PASSWORD"), "{no_password:?}");
    // Without authenticating, nothing is answered but the refusal.
    assert_eq!(d.ctl(&["status"]).code, 4);
}

/// A fake daemon at `path`: answers every request with `auth_required`, as a real one with
/// socket.auth does, and returns everything its clients sent until `stop` is set (or 20 s).
fn password_trap(
    listener: std::os::unix::net::UnixListener,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<u8>> {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let Ok((conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5)); // polling accept, bounded by the deadline
                continue;
            };
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = Vec::new();
            let _ = reader.read_until(b'\n', &mut line);
            got.extend_from_slice(&line);
            let _ = (&conn).write_all(
                b"{\"id\":0,\"ok\":false,\"error\":{\"kind\":\"auth_required\",\"message\":\"authentication required\"}}\n",
            );
            let _ = reader.read_to_end(&mut got); // whatever else comes, until EOF or 2 s of silence
        }
        got
    })
}

#[test]
fn the_ctl_sends_no_password_to_a_socket_owned_by_someone_else() {
    require_root!();
    for tool in ["useradd", "setsid"] {
        if !Command::new("sh").arg("-c").arg(format!("command -v {tool}")).status().unwrap().success() {
            tests::skip(&format!("{tool} is not installed"));
            return;
        }
    }
    let mallory = ensure_user("tmt_mallory", &[]);
    let s = Scratch::new();
    let path = s.path("tm.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::os::unix::fs::chown(&path, Some(mallory), None).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trap = password_trap(listener, stop.clone());
    let out = status_with_a_guess(&path);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let got = String::from_utf8_lossy(&trap.join().unwrap()).into_owned();
    assert!(!got.contains("secret-guess"), "the password reached the listener: {got:?}");
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        format!(
            "taskmasterctl: refusing to send a password to {}: it is owned by uid {mallory} (tmt_mallory), not root, you, or socket.chown's owner",
            path.display()
        )
    );
}

#[test]
fn the_ctl_sends_no_password_to_a_daemon_run_by_someone_else_even_on_a_root_owned_file() {
    use std::os::unix::process::CommandExt;
    require_root!();
    let mallory = ensure_user("tmt_mallory", &[]);
    let mallory_gid = nix::unistd::User::from_uid(mallory.into()).unwrap().unwrap().gid.as_raw();
    // Mallory's own taskmasterd, with socket.auth, in a directory of hers.
    let s = Scratch::new();
    let dir = s.path("mallory");
    std::fs::create_dir(&dir).unwrap();
    let daemon = dir.join("taskmasterd");
    std::fs::copy(bin("taskmasterd"), &daemon).unwrap();
    let (config, socket, log) = (dir.join("tm.yaml"), dir.join("tm.sock"), dir.join("main.log"));
    let hash = tests::hash_password("mallory's");
    std::fs::write(
        &config,
        format!(
            "server:\n  logfile: {}\nsocket:\n  path: {}\n  auth:\n    username: ops\n    password_hash: '{hash}'\nprograms: {{}}\n",
            log.display(),
            socket.display()
        ),
    )
    .unwrap();
    for p in [&dir, &daemon, &config] {
        std::os::unix::fs::chown(p, Some(mallory), Some(mallory_gid)).unwrap();
    }
    /// Mallory's daemon, stopped (SIGTERM, then waited for) however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.0.wait();
        }
    }
    let child = Command::new(&daemon)
        .arg("-c")
        .arg(&config)
        .uid(mallory)
        .gid(mallory_gid)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = Stop(child);
    tests::wait_until("mallory's daemon serving", SOON, || std::os::unix::net::UnixStream::connect(&socket).is_ok());
    // The file now looks like root's; the process behind it is still mallory's.
    std::os::unix::fs::chown(&socket, Some(0), Some(0)).unwrap();
    let out = status_with_a_guess(&socket);
    drop(child);
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        format!(
            "taskmasterctl: refusing to send a password to {}: the process serving it runs as uid {mallory} (tmt_mallory), not root, you, or socket.chown's owner",
            socket.display()
        )
    );
    let main_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!main_log.contains("authentication"), "a password attempt reached mallory's daemon: {main_log}");
}

#[test]
fn a_password_goes_to_a_socket_chowned_by_the_config_only_when_the_ctl_read_that_config() {
    use std::process::Stdio;
    require_root!();
    let owner = ensure_user("tmt_sockowner", &[]);
    let hash = tests::hash_password("s3cret");
    let d = Daemon::start_socket(
        Scratch::new(),
        &format!("  chown: tmt_sockowner\n  auth:\n    username: ops\n    password_hash: '{hash}'\n"),
        "programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n",
    );
    // Run from an empty directory, so that no ./taskmaster.yaml is read unless named with -c.
    let elsewhere = d.scratch.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let ctl = |config: Option<&std::path::Path>| -> CtlRun {
        let mut cmd = Command::new("setsid");
        cmd.arg(bin("taskmasterctl")).arg("-s").arg(&d.socket);
        if let Some(c) = config {
            cmd.arg("-c").arg(c);
        }
        cmd.args(["-u", "ops", "pid"])
            .env("TASKMASTER_PASSWORD", "s3cret")
            .env_remove("TASKMASTER_CONFIG")
            .current_dir(&elsewhere)
            .stdin(Stdio::null());
        cmd.output().unwrap().into()
    };
    let with_config = ctl(Some(&d.config));
    assert_eq!(with_config.code, 0, "{with_config:?}");
    let blind = ctl(None);
    assert_eq!(blind.code, 4, "{blind:?}");
    assert!(blind.stderr.contains(&format!("it is owned by uid {owner} (tmt_sockowner), not root, you")), "{blind:?}");
}
