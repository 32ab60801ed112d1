//! taskmasterd's command line without a running daemon (this file also makes `cargo test`
//! build the taskmasterd binary that the `tests` package drives).

use std::process::Command;

fn taskmasterd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_taskmasterd"))
}

#[test]
fn version_and_help() {
    let out = taskmasterd().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("taskmasterd {}", env!("CARGO_PKG_VERSION")));
    let out = taskmasterd().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--check-config"));
}

#[test]
fn usage_errors_exit_2() {
    let out = taskmasterd().arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_shipped_example_passes_check() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/taskmaster.yaml");
    let out = taskmasterd().args(["-t", "-c", example]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for p in ["web:", "ticker: 2 processes", "flaky:", "broken:"] {
        assert!(text.contains(p), "{p} missing from:\n{text}");
    }
}
