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
            eprintln!("skipped: {tool} is not installed");
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

#[test]
fn password_authentication_accepts_the_right_password_only() {
    use std::io::Write;
    use std::process::Stdio;
    let mut hasher = Command::new(bin("taskmasterd"))
        .arg("--hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    hasher.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = hasher.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
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
    let ok = ctl(Some("ops"), Some("s3cret"), &["status", "web"]);
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
