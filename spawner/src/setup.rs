//! What the spawner sets up before serving: the config path, fds 0-2, resource limits, log
//! directories owned by the supervisor's user, and the control socket.

use common::config::{Config, Stream};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::{chown, Gid, Group, Uid, User};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The config file to read: `-c`, else `$TASKMASTER_CONFIG`, else `./taskmaster.yaml`, else
/// `/etc/taskmaster/taskmaster.yaml` (DESIGN §7).
///
/// # Errors
/// None of them exists; the message lists what was tried.
pub fn find_config(flag: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("TASKMASTER_CONFIG").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let candidates = [PathBuf::from("taskmaster.yaml"), PathBuf::from("/etc/taskmaster/taskmaster.yaml")];
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        "no config file: give -c FILE or set TASKMASTER_CONFIG (tried ./taskmaster.yaml and /etc/taskmaster/taskmaster.yaml)".to_owned()
    })
}

/// Raises the soft RLIMIT_NOFILE and RLIMIT_NPROC to `minfds` and `minprocs` (and the hard
/// limits too when root), as supervisord does at startup; children inherit them.
///
/// # Errors
/// The limit could not be raised: "minfds 100000 exceeds the hard limit 4096 …".
pub fn raise_limits(config: &Config) -> Result<(), String> {
    for (res, want, key) in [
        (Resource::RLIMIT_NOFILE, config.server.minfds, "minfds"),
        (Resource::RLIMIT_NPROC, config.server.minprocs, "minprocs"),
    ] {
        let (soft, hard) = getrlimit(res).map_err(|e| format!("getrlimit: {e}"))?;
        if soft >= want {
            continue;
        }
        let is_root = Uid::effective().is_root();
        if want > hard && !is_root {
            return Err(format!("server.{key} {want} exceeds the hard limit {hard}; lower it or start as root"));
        }
        setrlimit(res, want, hard.max(want)).map_err(|e| format!("setrlimit {key} {want}: {e}"))?;
    }
    Ok(())
}

/// The user and group the supervisor will run as; `None` when not started as root.
pub fn supervisor_user(config: &Config) -> Result<Option<User>, String> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let name = match &config.server.user {
        Some(u) => u.clone(),
        None if matches!(User::from_name("taskmaster"), Ok(Some(_))) => "taskmaster".into(),
        None => "nobody".into(),
    };
    match User::from_name(&name) {
        Ok(Some(u)) if u.uid.is_root() => {
            Err(format!("server.user '{name}' is root: the supervisor must not run as root"))
        }
        Ok(Some(u)) => Ok(Some(u)),
        _ => Err(format!("server.user: unknown user '{name}'")),
    }
}

fn create_dir_for(dir: &Path, owner: Option<&User>) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d.filter(|p| !p.exists()) {
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
    if let Some(u) = owner {
        for m in missing {
            let _ = chown(&m, Some(u.uid), Some(u.gid));
        }
    }
    Ok(())
}

fn create_file_for(file: &Path, owner: Option<&User>) -> Result<(), String> {
    if file.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
        .map_err(|e| format!("cannot create log file {}: {e}", file.display()))?;
    if let Some(u) = owner {
        chown(file, Some(u.uid), Some(u.gid)).map_err(|e| format!("cannot chown {}: {e}", file.display()))?;
    }
    Ok(())
}

/// Creates the main log file, the child log directory and every configured child log file the
/// supervisor will open, owned by the supervisor's user when the spawner creates them (DESIGN
/// §1): the unprivileged supervisor can then open them. Returns one line per problem; the
/// supervisor reports the files it then cannot open.
pub fn prepare_logs(config: &Config, owner: Option<&User>) -> Vec<String> {
    let mut problems = Vec::new();
    let main_dir = config.server.logfile.parent().unwrap_or(Path::new("/"));
    let mut steps: Vec<Result<(), String>> = vec![
        create_dir_for(main_dir, owner),
        create_file_for(&config.server.logfile, owner),
        create_dir_for(&config.server.childlogdir, owner),
    ];
    for p in &config.programs {
        for stream in [Stream::Stdout, Stream::Stderr] {
            for instance in p.instances() {
                if let Some(f) = p.log_file(stream, instance, &config.server.childlogdir) {
                    steps.push(create_dir_for(f.parent().unwrap_or(Path::new("/")), owner));
                    steps.push(create_file_for(&f, owner));
                }
            }
        }
    }
    for s in steps {
        if let Err(e) = s {
            problems.push(e);
        }
    }
    problems
}

/// Binds the control socket at `socket.path` (creating its directory), refusing when another
/// daemon answers there, then applies `socket.chmod` and `socket.chown`.
///
/// # Errors
/// Another daemon serves the path, or a bind/chmod/chown error, naming the path and errno.
pub fn bind_socket(config: &Config) -> Result<UnixListener, String> {
    let path = &config.socket.path;
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!("another taskmasterd is serving {}", path.display()));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create socket directory {}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(config.socket.chmod))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    if let Some((user, group)) = &config.socket.chown {
        let uid = User::from_name(user)
            .ok()
            .flatten()
            .map(|u| u.uid)
            .ok_or_else(|| format!("socket.chown: unknown user '{user}'"))?;
        let gid: Option<Gid> = match group {
            Some(g) => Some(
                Group::from_name(g)
                    .ok()
                    .flatten()
                    .map(|g| g.gid)
                    .ok_or_else(|| format!("socket.chown: unknown group '{g}'"))?,
            ),
            None => None,
        };
        chown(path, Some(uid), gid).map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
    }
    Ok(listener)
}
