//! The integration test harness: run the real `taskmasterd` on a config in a scratch directory,
//! drive it with the real `taskmasterctl`, and wait on conditions with deadlines.
//!
//! The binaries are found beside the test executable (`target/<profile>/`); `cargo test
//! --workspace` builds them, because the spawner and ctl packages have integration tests too.

use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/NAME`, the binary built by this workspace.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo test --workspace` (or `cargo build --workspace`) first",
        path.display()
    );
    path
}

/// Polls `cond` every 10 ms until it holds, or panics after `timeout` naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the tests run as root (some cases need it and skip otherwise).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether the daemon at `sock` answers a request: the spawner binds the socket before the
/// supervisor starts, so a connection alone does not mean that it serves (and is confined).
fn answers(sock: &Path) -> bool {
    use std::io::{BufRead, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if s.write_all(b"{\"id\": 0, \"action\": \"version\"}\n").is_err() {
        return false;
    }
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).is_ok_and(|n| n > 0)
}

/// Says that the current test skips (part of) its work and why: `skipped: REASON`, written to
/// stderr past the test harness's capture, so it shows in the test run's output and a skip never
/// looks like a pass.
pub fn skip(reason: &str) {
    use std::io::Write;
    let name = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(std::io::stderr(), "{name}: skipped: {reason}");
}

/// Skips the current test with a printed reason unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            $crate::skip("this test needs root (it switches users)");
            return;
        }
    };
}

/// A finished taskmasterctl run.
#[derive(Debug)]
pub struct CtlRun {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for CtlRun {
    fn from(o: Output) -> Self {
        CtlRun {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A scratch directory readable by every user (the supervisor runs as a user of its own).
pub struct Scratch {
    /// The directory.
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// A new directory, mode 0755.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("tm-test-").tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        Scratch { dir }
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Copies the probe binary into the directory (so that any user can run it) and returns
    /// its path.
    pub fn probe(&self, probe: &Path) -> PathBuf {
        let dest = self.path("probe");
        if !dest.exists() {
            fs::copy(probe, &dest).expect("copy probe");
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).expect("chmod probe");
        }
        dest
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// A running taskmasterd, shut down (then killed if need be) when dropped.
pub struct Daemon {
    /// The scratch directory holding its config, socket and logs.
    pub scratch: Scratch,
    /// The config file.
    pub config: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
    server_extra: String,
    socket_extra: String,
    child: Option<Child>,
}

impl Daemon {
    /// Writes `programs_yaml` (the `programs:` section body and anything else, as YAML text
    /// placed after a generated `server:` and `socket:` section) and starts taskmasterd on it,
    /// waiting until its socket answers.
    pub fn start(yaml: &str) -> Daemon {
        Self::start_in(Scratch::new(), yaml)
    }

    /// As [`Daemon::start`], in a given scratch directory.
    pub fn start_in(scratch: Scratch, yaml: &str) -> Daemon {
        Self::start_full(scratch, "", yaml)
    }

    /// As [`Daemon::start_in`], with `server_extra` (indented YAML lines) added to `server:`.
    pub fn start_full(scratch: Scratch, server_extra: &str, yaml: &str) -> Daemon {
        Self::start_env(scratch, server_extra, yaml, &[])
    }

    /// As [`Daemon::start_full`], with environment variables for taskmasterd
    /// (`JOURNAL_STREAM=auto` becomes the `DEVICE:INODE` of its stderr file, as systemd sets it;
    /// a leading `("-i", "")` pair starts it with only `PATH` and the variables given, as `env -i`).
    pub fn start_env(scratch: Scratch, server_extra: &str, yaml: &str, env: &[(&str, &str)]) -> Daemon {
        Self::launch(scratch, server_extra, "", yaml, env)
    }

    /// As [`Daemon::start_in`], with taskmasterd's RLIMIT_NOFILE soft and hard limits set to
    /// `nofile` (as a service manager would), so that it cannot raise them.
    pub fn start_with_nofile(scratch: Scratch, socket_extra: &str, yaml: &str, nofile: u64) -> Daemon {
        Self::launch_with(scratch, "", socket_extra, yaml, &[], Some(nofile))
    }

    fn launch(scratch: Scratch, server_extra: &str, socket_extra: &str, yaml: &str, env: &[(&str, &str)]) -> Daemon {
        Self::launch_with(scratch, server_extra, socket_extra, yaml, env, None)
    }

    fn launch_with(
        scratch: Scratch,
        server_extra: &str,
        socket_extra: &str,
        yaml: &str,
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Daemon {
        use std::os::unix::fs::MetadataExt;
        let config = scratch.path("taskmaster.yaml");
        let socket = scratch.path("tm.sock");
        let stderr = fs::File::create(scratch.path("stderr.txt")).expect("stderr file");
        let meta = stderr.metadata().expect("stat stderr file");
        let mut cmd = Command::new(bin("taskmasterd"));
        for (k, v) in env {
            match (*k, *v) {
                ("JOURNAL_STREAM", "auto") => cmd.env(k, format!("{}:{}", meta.dev(), meta.ino())),
                ("-i", _) => cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()),
                _ => cmd.env(k, v),
            };
        }
        cmd.arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .process_group(0);
        if let Some(n) = nofile {
            // prlimit(1) sets the limits and execs taskmasterd in the same process.
            let mut limited = Command::new("prlimit");
            limited.arg(format!("--nofile={n}:{n}")).arg("--").arg(bin("taskmasterd"));
            limited.args(cmd.get_args());
            limited.stdin(Stdio::null()).stdout(Stdio::null()).process_group(0);
            limited.stderr(Stdio::from(
                fs::File::options().append(true).open(scratch.path("stderr.txt")).expect("stderr file"),
            ));
            cmd = limited;
        }
        let mut d = Daemon {
            scratch,
            config,
            socket,
            server_extra: server_extra.to_owned(),
            socket_extra: socket_extra.to_owned(),
            child: None,
        };
        d.rewrite(yaml);
        d.child = Some(cmd.spawn().expect("spawn taskmasterd"));
        let sock = d.socket.clone();
        let started = Instant::now();
        loop {
            if answers(&sock) {
                break;
            }
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("taskmasterd exited at start ({status}): {}", d.stderr());
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "taskmasterd did not serve its socket in 10 s: {}",
                d.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }

    /// Starts taskmasterd with `socket_extra` (indented YAML lines) added to `socket:`.
    pub fn start_socket(scratch: Scratch, socket_extra: &str, yaml: &str) -> Daemon {
        Self::launch(scratch, "", socket_extra, yaml, &[])
    }

    /// Replaces the config with `yaml` (after the generated `server:` and `socket:` sections),
    /// atomically: a re-read never sees a half-written file.
    pub fn rewrite(&self, yaml: &str) {
        let text = format!(
            "server:\n  logfile: {}\n{}socket:\n  path: {}\n{}{yaml}",
            self.log_path("taskmasterd.log").display(),
            self.server_extra,
            self.socket.display(),
            self.socket_extra
        );
        let tmp = self.scratch.path("taskmaster.yaml.tmp");
        fs::write(&tmp, text).expect("write config");
        fs::rename(&tmp, &self.config).expect("rename config");
    }

    /// The spawner's pid (taskmasterd as started).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// What taskmasterd printed on stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.scratch.path("stderr.txt")).unwrap_or_default()
    }

    /// A file in the log directory (`log/` of the scratch directory, created by taskmasterd for
    /// the supervisor's user): the main log and the AUTO child logs.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.scratch.path("log").join(name)
    }

    /// The main log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path("taskmasterd.log")).unwrap_or_default()
    }

    /// Runs taskmasterctl with these arguments against this daemon.
    pub fn ctl(&self, args: &[&str]) -> CtlRun {
        Command::new(bin("taskmasterctl"))
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run taskmasterctl")
            .into()
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> Vec<Value> {
        let run = self.ctl(&["status", "--json"]);
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("status --json: {e}: {run:?}"))
    }

    /// The row of one process.
    pub fn row(&self, name: &str) -> Value {
        self.status().into_iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no process {name} in status"))
    }

    /// The state of one process; empty when it is not (or not yet) in `status`.
    pub fn state(&self, name: &str) -> String {
        self.status()
            .into_iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r["state"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The pid of one process, if it has one.
    pub fn proc_pid(&self, name: &str) -> Option<i32> {
        self.row(name)["pid"].as_i64().map(|p| p as i32)
    }

    /// Waits until `name` is in `state`.
    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) {
        let what = format!("{name} to be {state}");
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.state(name);
            if last == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what} (it is {last}); log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the main log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal to taskmasterd (the spawner).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill taskmasterd");
    }

    /// Waits for taskmasterd to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let mut child = self.child.take().expect("daemon already waited for");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("taskmasterd did not exit within {timeout:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Runs `taskmasterd ARGS` expecting it to stop by itself within 10 s (a refused start), and
/// returns its exit code and stderr; kills it and panics when it keeps running.
pub fn run_daemon_to_exit(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let err = tempfile::NamedTempFile::new().expect("stderr file");
    let mut child = Command::new(bin("taskmasterd"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err.reopen().expect("reopen stderr file")))
        .process_group(0)
        .spawn()
        .expect("spawn taskmasterd");
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            // Started after all: shut it down in order (its programs with it), then fail.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let stop_deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < stop_deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("taskmasterd kept running; stderr: {}", fs::read_to_string(err.path()).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (code, fs::read_to_string(err.path()).unwrap_or_default())
}

/// Whether a pid is alive (not reaped; a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// The parent pid of a process, from /proc.
pub fn ppid(pid: i32) -> Option<i32> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()
}

/// A `Uid:` or `CapEff:`-style field of /proc/PID/status, first value.
pub fn proc_status_field(pid: i32, field: &str) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix(field).map(|v| v.split_whitespace().next().unwrap_or("").to_owned()))
}

/// Creates the system user `name` (useradd -M -N, no login shell) unless it exists, and returns
/// it. For root-only tests; panics when useradd fails.
pub fn ensure_user(name: &str) -> nix::unistd::User {
    if !matches!(nix::unistd::User::from_name(name), Ok(Some(_))) {
        let ok = Command::new("useradd")
            .args(["-M", "-N", "-s", "/usr/sbin/nologin", name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "useradd {name}");
    }
    nix::unistd::User::from_name(name).expect("getpwnam").expect("the user just added")
}

/// The pid of a daemon's supervisor (its child running `--supervisor-role`), waited for.
pub fn supervisor_pid(d: &Daemon) -> i32 {
    let mut found = None;
    wait_until("the supervisor process", Duration::from_secs(10), || {
        found = children_of(d.pid()).into_iter().find(|p| {
            fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.windows(17).any(|w| w == b"--supervisor-role"))
        });
        found.is_some()
    });
    found.unwrap_or_default()
}

/// Pids of the direct children of `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() {
                if ppid(p) == Some(pid) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Counts the lines of a file (0 when it does not exist).
pub fn count_lines(path: &Path) -> usize {
    fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

/// A command run on a pseudo-terminal that the test holds, as a person at a terminal would run
/// it: the test reads the screen from the master and types into it.
pub struct PtySession {
    /// The master side.
    pub master: fs::File,
    /// The slave's path (`/dev/pts/N`), for `stty -F`.
    pub slave_path: PathBuf,
    _slave: std::os::fd::OwnedFd,
    /// The command.
    pub child: Child,
    /// Everything read from the screen so far.
    pub seen: String,
    /// `stty -g` of the terminal before the command started.
    pub initial_stty: String,
}

impl PtySession {
    /// Runs `args[0] args[1..]` with the PTY (rows × cols) as stdin, stdout, stderr and
    /// controlling terminal (through `setsid -c`).
    pub fn spawn(args: &[&std::ffi::OsStr], rows: u16, cols: u16) -> Self {
        let ws = nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
        let slave_path = nix::unistd::ttyname(&pty.slave).expect("ttyname");
        let out = Command::new("stty").arg("-F").arg(&slave_path).arg("-g").output().expect("stty");
        let initial_stty = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let dup = |f: &std::os::fd::OwnedFd| Stdio::from(f.try_clone().expect("dup"));
        let child = Command::new("setsid")
            .arg("-c")
            .args(args)
            .stdin(dup(&pty.slave))
            .stdout(dup(&pty.slave))
            .stderr(dup(&pty.slave))
            .env("TERM", "xterm")
            .spawn()
            .expect("spawn on the pty");
        PtySession {
            master: fs::File::from(pty.master),
            slave_path,
            _slave: pty.slave,
            child,
            seen: String::new(),
            initial_stty,
        }
    }

    fn read_some(&mut self, wait_ms: u16) {
        use std::io::Read;
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(self.master.as_fd(), nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(wait_ms)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 16384];
            if let Ok(n) = self.master.read(&mut buf) {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    }

    /// Reads the screen until `needle` appears after what [`PtySession::mark`] returned (0: from
    /// the start), or panics after 10 s showing the screen.
    pub fn expect_after(&mut self, from: usize, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.seen[from.min(self.seen.len())..].contains(needle) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} on the screen; it shows: {:?}",
                &self.seen[from.min(self.seen.len())..]
            );
            self.read_some(50);
        }
    }

    /// Reads until `needle` appears anywhere.
    pub fn expect(&mut self, needle: &str) {
        self.expect_after(0, needle);
    }

    /// Where the screen is now, for [`PtySession::expect_after`].
    pub fn mark(&self) -> usize {
        self.seen.len()
    }

    /// Types bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.master.write_all(bytes).expect("write to the pty");
    }

    /// Waits for the command to exit, reading the screen meanwhile.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.read_some(0);
                return s;
            }
            assert!(Instant::now() < deadline, "the command did not exit; screen: {:?}", self.seen);
            self.read_some(20);
        }
    }

    /// `stty ARGS` run on this terminal (`-F` the slave), returning its output.
    pub fn stty(&self, args: &[&str]) -> String {
        let out = Command::new("stty").arg("-F").arg(&self.slave_path).args(args).output().expect("stty");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[allow(unsafe_code)] // the harness's one raw call, with its SAFETY note.
mod sys;
pub use sys::landlock_abi;

/// `taskmasterd --hash-password` of `password`: an argon2id PHC string for `socket.auth`.
pub fn hash_password(password: &str) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut hasher = Command::new(bin("taskmasterd"))
        .arg("--hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    hasher.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = hasher.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    hash
}
