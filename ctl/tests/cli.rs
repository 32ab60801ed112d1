//! taskmasterctl without a daemon (this file also makes `cargo test` build the taskmasterctl
//! binary that the `tests` package drives).

use std::process::Command;

fn ctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_taskmasterctl"));
    c.env_remove("TASKMASTER_CONFIG");
    c
}

#[test]
fn no_daemon_is_exit_4_with_the_socket_named() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("absent.sock");
    let out = ctl().arg("-s").arg(&sock).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot connect to {}", sock.display())), "{err}");
}

#[test]
fn help_needs_no_daemon_and_usage_errors_exit_2() {
    let out = ctl().args(["-s", "/nonexistent.sock", "help"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("status [--json] [NAME…]"));
    assert_eq!(ctl().args(["-s", "/nonexistent.sock", "signal", "HUP"]).output().unwrap().status.code(), Some(2));
}
