//! What taskmasterd trusts in its config (DESIGN §1 rule 5, issue 12 finding 10): as root, a
//! config or include file that another user owns or may write is refused; an error quotes nothing
//! of a file that is not a config; the supervisor never holds `server.environment`.

use crate::SOON;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use tests::{bin, children_of, require_root, wait_until, Daemon, Scratch};

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `taskmasterd -t -c path`: exit code and stderr.
fn check(path: &Path) -> (i32, String) {
    let out = Command::new(bin("taskmasterd")).arg("-t").arg("-c").arg(path).output().expect("run taskmasterd -t");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Starts `taskmasterd -n -c path` and expects it to exit by itself: its exit code and stderr.
/// One that keeps running is stopped and fails the test.
fn start_expecting_exit(path: &Path) -> (i32, String) {
    tests::run_daemon_to_exit(&["-n".as_ref(), "-c".as_ref(), path.as_os_str()])
}

fn minimal_config(s: &Scratch, rest: &str) -> String {
    format!(
        "server:\n  logfile: {}\n  pidfile: {}\nsocket:\n  path: {}\n{rest}",
        s.path("taskmasterd.log").display(),
        s.path("taskmasterd.pid").display(),
        s.path("tm.sock").display()
    )
}

#[test]
fn a_world_writable_config_is_refused_as_root() {
    require_root!();
    let s = Scratch::new();
    let path = s.path("taskmaster.yaml");
    std::fs::write(&path, minimal_config(&s, "programs:\n  web:\n    command: sleep 1000\n")).unwrap();
    chmod(&path, 0o666);
    let want = format!(
        "{}: refusing a config file writable by group or others (mode 0666); run chmod go-w on it",
        path.display()
    );
    let (code, err) = check(&path);
    assert_eq!((code, err.trim()), (2, want.as_str()));
    let (code, err) = start_expecting_exit(&path);
    assert_eq!((code, err.trim()), (2, want.as_str()));
    // Owned by another user, even read-only, it is refused too.
    chmod(&path, 0o644);
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let (code, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    assert!(err.trim().starts_with(&format!("{}: refusing a config file owned by uid 65534", path.display())), "{err}");
}

#[test]
fn a_world_writable_include_with_a_root_program_starts_nothing() {
    require_root!();
    let s = Scratch::new();
    std::fs::create_dir(s.path("conf.d")).unwrap();
    let marker = s.path("ran-as-root");
    let evil = s.path("conf.d/app.yaml");
    std::fs::write(
        &evil,
        format!(
            "programs:\n  evil:\n    command: /bin/sh -c 'touch {}; exec sleep 1000'\n    user: root\n    startsecs: 0\n",
            marker.display()
        ),
    )
    .unwrap();
    chmod(&evil, 0o666);
    let path = s.path("taskmaster.yaml");
    std::fs::write(&path, minimal_config(&s, "include: [\"conf.d/*.yaml\"]\n")).unwrap();
    let want = format!(
        "{}: refusing a config file writable by group or others (mode 0666); run chmod go-w on it",
        evil.display()
    );
    let (code, err) = check(&path);
    assert_eq!((code, err.trim()), (2, want.as_str()));
    let (code, err) = start_expecting_exit(&path);
    assert_eq!((code, err.trim()), (2, want.as_str()));
    assert!(!marker.exists(), "a program of the refused include ran");

    // On a running daemon, a re-read refuses it alike and changes nothing.
    std::fs::remove_file(&evil).unwrap();
    let d = Daemon::start_in(
        s,
        "include: [\"conf.d/*.yaml\"]\nprograms:\n  web:\n    command: sleep 1000\n    startsecs: 0\n",
    );
    d.wait_state("web", "RUNNING", SOON);
    std::fs::write(
        &evil,
        format!(
            "programs:\n  evil:\n    command: /bin/sh -c 'touch {}; exec sleep 1000'\n    user: root\n",
            marker.display()
        ),
    )
    .unwrap();
    chmod(&evil, 0o606);
    let run = d.ctl(&["update"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(&format!("{}: refusing", evil.display())) && run.stderr.contains("(mode 0606)"),
        "{run:?}"
    );
    d.wait_log("config error, nothing changed", SOON);
    assert_eq!(d.status().len(), 1);
    assert!(!marker.exists(), "a program of the refused include ran");
}

#[test]
fn a_secret_file_caught_by_an_include_is_never_quoted() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("conf.d")).unwrap();
    std::fs::write(s.path("conf.d/web.yaml"), "programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n")
        .unwrap();
    let d = Daemon::start_in(s, "include: [\"conf.d/*\"]\n");
    d.wait_state("web", "RUNNING", SOON);
    // Not YAML of a config: a dotenv line, a key with a secret value, a binary line, a
    // shadow-style line and a bare string.
    let secrets = d.scratch.path("conf.d/secrets.env");
    std::fs::write(
        &secrets,
        "API_TOKEN=tm-secret-1\npassword: tm-secret-2\n\u{1}\u{2}tm-secret-3\nroot:$6$tm-secret-4$x:19000:0:99999:7:::\n\"tm-secret-5\"\n",
    )
    .unwrap();
    chmod(&secrets, 0o600);
    let run = d.ctl(&["update"]);
    assert_eq!(run.code, 2, "{run:?}");
    let (code, check_err) = check(&d.config);
    assert_eq!(code, 2, "{check_err}");
    d.wait_log("config error, nothing changed", SOON);
    for (what, text) in
        [("update", &run.stderr), ("-t", &check_err), ("the main log", &d.log()), ("stderr", &d.stderr())]
    {
        assert!(!text.contains("tm-secret"), "{what} quotes the file: {text}");
    }
    // The problem is located where the YAML parser stopped (the `: ` of line 2), one line.
    let prefix = format!("{}:", secrets.display());
    let lines: Vec<&str> = check_err.lines().collect();
    assert_eq!(lines.len(), 1, "{check_err}");
    assert!(lines[0].starts_with(&format!("{prefix}2:9: ")), "{check_err}");
    assert_eq!(d.status().len(), 1);
}

/// Whether `needle` is anywhere in the readable memory of `pid` (as root); panics if nothing
/// could be read, so that a test never passes by reading nothing.
fn memory_contains(pid: i32, needle: &[u8]) -> bool {
    use std::os::unix::fs::FileExt;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut read = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        let path = fields.nth(3).unwrap_or("");
        if !perms.starts_with('r') || path.starts_with('/') || path == "[vvar]" || path == "[vsyscall]" {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (u64::from_str_radix(start, 16).unwrap(), u64::from_str_radix(end, 16).unwrap());
        let mut buf = vec![0; (end - start) as usize];
        let Ok(n) = mem.read_at(&mut buf, start) else { continue };
        read += n;
        if buf[..n].windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    assert!(read > 0, "could not read the memory of {pid}");
    false
}

#[test]
fn server_environment_never_reaches_the_supervisor() {
    require_root!();
    let s = Scratch::new();
    let out = s.path("child.out");
    let yaml = format!(
        // Written to a file of its own: its output would pass through the supervisor.
        "programs:\n  show:\n    command: /bin/sh -c 'echo $TM_SERVER_SECRET > {}; exec sleep 1000'\n    startsecs: 0\n    stdout_logfile: NONE\n",
        out.display()
    );
    let d = Daemon::start_full(s, "  environment:\n    TM_SERVER_SECRET: tm-server-secret-1\n", &yaml);
    wait_until("the program to print its environment", SOON, || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains("tm-server-secret-1"))
    });
    let mut supervisor = None;
    wait_until("the supervisor process", SOON, || {
        supervisor = children_of(d.pid()).into_iter().find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.windows(17).any(|w| w == b"--supervisor-role"))
        });
        supervisor.is_some()
    });
    let supervisor = supervisor.unwrap();
    let environ = std::fs::read(format!("/proc/{supervisor}/environ")).unwrap();
    assert!(!environ.windows(16).any(|w| w == b"TM_SERVER_SECRET"), "in the supervisor's environ");
    assert!(!memory_contains(supervisor, b"tm-server-secret-1"), "in the supervisor's memory");
    // A re-read sends the server section again: still without its environment.
    let text = std::fs::read_to_string(&d.config).unwrap().replace("tm-server-secret-1", "tm-server-secret-2");
    std::fs::write(&d.config, text).unwrap();
    let run = d.ctl(&["update"]);
    assert_eq!(run.code, 0, "{run:?}");
    wait_until("the restarted program to print the new environment", SOON, || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains("tm-server-secret-2"))
    });
    assert!(!memory_contains(supervisor, b"tm-server-secret-2"), "in the supervisor's memory after a re-read");
}
