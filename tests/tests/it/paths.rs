//! Root opens no path that a less trusted user can change (DESIGN §1 rule 5, STYLE 2.11b): a
//! symlink planted where a log file, the pidfile or the control socket goes never makes root
//! create, open, truncate or chown its target, at start, on SIGUSR2 or on a reload. As root,
//! with a real unprivileged user made by the test.

use crate::SOON;
use nix::sys::signal::Signal;
use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tests::{ensure_user, proc_status_field, require_root, run_daemon_to_exit, supervisor_pid, Daemon, Scratch};

/// The unprivileged user who plants symlinks.
const PLANTER: &str = "tmt_planter";

/// What the symlinks point at: a root-only directory holding a root-only file.
struct Secret {
    dir: PathBuf,
}

impl Secret {
    const CONTENT: &'static str = "precious root data\n";

    fn new(s: &Scratch) -> Secret {
        let dir = s.path("secret-dir");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(dir.join("precious"), Self::CONTENT).unwrap();
        std::fs::set_permissions(dir.join("precious"), std::fs::Permissions::from_mode(0o600)).unwrap();
        Secret { dir }
    }

    /// Where a dangling symlink points: it must never come to exist.
    fn dangling(&self) -> PathBuf {
        self.dir.join("created-by-root")
    }

    /// An existing root file: its content, owner and mode must never change.
    fn precious(&self) -> PathBuf {
        self.dir.join("precious")
    }

    fn assert_untouched(&self, when: &str) {
        assert!(
            std::fs::symlink_metadata(self.dangling()).is_err(),
            "{when}: root created {} through a planted symlink",
            self.dangling().display()
        );
        let meta = std::fs::metadata(self.precious()).unwrap();
        assert_eq!(std::fs::read_to_string(self.precious()).unwrap(), Self::CONTENT, "{when}: precious was written");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{when}: precious was chowned");
        assert_eq!(meta.mode() & 0o7777, 0o600, "{when}: precious was chmodded");
        let dir = std::fs::metadata(&self.dir).unwrap();
        assert_eq!((dir.uid(), dir.mode() & 0o7777), (0, 0o700), "{when}: the secret directory changed");
    }
}

/// A directory owned by `uid` with `mode`.
fn dir_of(path: &Path, uid: u32, mode: u32) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_path_buf()
}

/// `link -> target`, owned by `uid` as if that user had made it.
fn plant(link: &Path, target: &Path, uid: u32) {
    let _ = std::fs::remove_file(link);
    symlink(target, link).unwrap();
    lchown(link, Some(uid), None).unwrap();
}

/// The uid of the less trusted user who plants links (created if need be), or `None` (the
/// test skips, saying why) when useradd is not installed.
fn planter() -> Option<u32> {
    let ok = std::process::Command::new("sh").args(["-c", "command -v useradd"]).status().is_ok_and(|s| s.success());
    if !ok {
        tests::skip("useradd is not installed");
        return None;
    }
    Some(ensure_user(PLANTER).uid.as_raw())
}

#[test]
fn planted_log_symlinks_survive_start_sigusr2_update_and_reload_with_their_targets_untouched() {
    require_root!();
    let Some(planter) = planter() else { return };
    let s = Scratch::new();
    let secret = Secret::new(&s);
    // A log directory that a program's user may write (a less trusted user plants links there).
    let user_logs = dir_of(&s.path("user-logs"), planter, 0o755);
    plant(&user_logs.join("app.log"), &secret.dangling(), planter);
    plant(&user_logs.join("other.log"), &secret.precious(), planter);
    let chatty = "/bin/sh -c 'echo hello; exec sleep 1000'";
    let log = s.path("log");
    let programs = format!(
        "programs:\n  ua:\n    command: {chatty}\n    startsecs: 0\n    stdout_logfile: {ua}\n  \
         ub:\n    command: {chatty}\n    startsecs: 0\n    stdout_logfile: {ub}\n  \
         ca:\n    command: {chatty}\n    startsecs: 0\n    stdout_logfile: {ca}\n  \
         cb:\n    command: {chatty}\n    startsecs: 0\n    stdout_logfile: {cb}\n",
        ua = user_logs.join("app.log").display(),
        ub = user_logs.join("other.log").display(),
        ca = log.join("app.log").display(),
        cb = log.join("other.log").display(),
    );
    let d = Daemon::start_in(s, &programs);
    for p in ["ua", "ub", "ca", "cb"] {
        d.wait_state(p, "RUNNING", SOON);
    }
    secret.assert_untouched("at start");

    // The supervisor's user owns the child log directory: it plants links there too.
    let sup_uid: u32 = proc_status_field(supervisor_pid(&d), "Uid:").unwrap().parse().unwrap();
    assert_eq!(std::fs::metadata(&log).unwrap().uid(), sup_uid, "the log directory is the supervisor's");
    plant(&log.join("app.log"), &secret.dangling(), sup_uid);
    plant(&log.join("other.log"), &secret.precious(), sup_uid);

    d.signal(Signal::SIGUSR2);
    d.wait_log("received SIGUSR2", SOON);
    secret.assert_untouched("after SIGUSR2");

    // A changed config, applied by update: the spawner commits it (then spawns 'late').
    d.rewrite(&format!("{programs}  late:\n    command: sleep 1000\n    startsecs: 0\n"));
    assert_eq!(d.ctl(&["update"]).code, 0);
    d.wait_state("late", "RUNNING", SOON);
    secret.assert_untouched("after update");

    assert_eq!(d.ctl(&["reload"]).code, 0);
    for p in ["ua", "ub", "ca", "cb", "late"] {
        d.wait_state(p, "RUNNING", SOON);
    }
    secret.assert_untouched("after reload");

    // Still serving, and saying what it could not open.
    for p in ["ua", "ub"] {
        let desc = d.row(p)["description"].as_str().unwrap_or_default().to_owned();
        assert!(desc.contains("(log: cannot open"), "{p}: {desc}");
    }
    assert!(std::fs::symlink_metadata(user_logs.join("app.log")).unwrap().file_type().is_symlink());
}

/// A config at `SCRATCH/tm.yaml` with `server_extra` and a socket at `socket` (default
/// `SCRATCH/tm.sock`).
fn write_config(s: &Scratch, server_extra: &str, socket: Option<&Path>) -> PathBuf {
    let config = s.path("tm.yaml");
    let text = format!(
        "server:\n  logfile: {}\n{server_extra}socket:\n  path: {}\nprograms:\n  p:\n    command: sleep 1000\n",
        s.path("log/taskmasterd.log").display(),
        socket.map_or_else(|| s.path("tm.sock"), Path::to_path_buf).display()
    );
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn a_pidfile_symlink_is_never_followed() {
    require_root!();
    let Some(planter) = planter() else { return };
    let s = Scratch::new();
    let secret = Secret::new(&s);
    // In a directory the planter may write: refused, whatever is there.
    let theirs = dir_of(&s.path("their-run"), planter, 0o755);
    plant(&theirs.join("dangling.pid"), &secret.dangling(), planter);
    plant(&theirs.join("existing.pid"), &secret.precious(), planter);
    // In a sticky world-writable directory (as /tmp): the node itself must be ours.
    let sticky = dir_of(&s.path("sticky"), 0, 0o1777);
    plant(&sticky.join("sticky.pid"), &secret.precious(), planter);
    for pidfile in [theirs.join("dangling.pid"), theirs.join("existing.pid"), sticky.join("sticky.pid")] {
        let config = write_config(&s, &format!("  pidfile: {}\n", pidfile.display()), None);
        let (code, err) = run_daemon_to_exit(&["-c".as_ref(), config.as_os_str()]);
        assert_eq!(code, 1, "{}: {err}", pidfile.display());
        assert!(err.contains(&pidfile.parent().unwrap().display().to_string()), "{}: {err}", pidfile.display());
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        secret.assert_untouched(&format!("pidfile {}", pidfile.display()));
    }
}

#[test]
fn a_socket_directory_a_less_trusted_user_can_write_is_refused() {
    require_root!();
    let Some(planter) = planter() else { return };
    let s = Scratch::new();
    let theirs = dir_of(&s.path("their-run"), planter, 0o755);
    let config = write_config(&s, "", Some(&theirs.join("tm.sock")));
    let (code, err) = run_daemon_to_exit(&["-c".as_ref(), config.as_os_str()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&theirs.display().to_string()) && err.contains("writable"), "{err}");
    assert!(std::fs::symlink_metadata(theirs.join("tm.sock")).is_err(), "a socket was bound there");
}

#[test]
fn the_socket_and_pidfile_may_live_in_a_sticky_directory_and_are_removed_at_exit() {
    require_root!();
    let s = Scratch::new();
    let sticky = dir_of(&s.path("sticky"), 0, 0o1777);
    let (sock, pid) = (sticky.join("tm.sock"), sticky.join("tm.pid"));
    let server = format!("  pidfile: {}\n", pid.display());
    let config = write_config(&s, &server, Some(&sock));
    let mut child = std::process::Command::new(tests::bin("taskmasterd"))
        .arg("-c")
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tests::wait_until("the daemon serves", SOON, || {
        let status =
            std::process::Command::new(tests::bin("taskmasterctl")).arg("-s").arg(&sock).arg("status").output();
        status.is_ok_and(|o| matches!(o.status.code(), Some(0 | 3)))
    });
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o700), "socket owner and socket.chmod");
    assert_eq!(std::fs::read_to_string(&pid).unwrap().trim(), child.id().to_string());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let mut status = None;
    tests::wait_until("taskmasterd to exit", SOON, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success());
    assert!(std::fs::symlink_metadata(&sock).is_err() && std::fs::symlink_metadata(&pid).is_err());
}
