//! taskmasterd's command line (DESIGN §7) and the spawner's start-up sequence.

use crate::link::{signal_fd, Spawner};
use crate::{privdrop, setup, sys};
use clap::Parser;
use common::config::{self, AutoRestart, Config};
use common::proto::spawn::Link;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;

/// `taskmasterd`: keep the configured programs running.
#[derive(Debug, Parser)]
#[command(name = "taskmasterd", version = common::VERSION, about = "Supervise the programs of a taskmaster config (privilege-separated, supervisord-compatible)")]
pub struct Cli {
    /// Config file (default: $TASKMASTER_CONFIG, ./taskmaster.yaml, /etc/taskmaster/taskmaster.yaml).
    #[arg(short = 'c', long = "configuration", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Stay in the foreground and log to stderr too (the default), even if server.daemon is set.
    #[arg(short = 'n', long = "nodaemon", conflicts_with = "daemon")]
    pub nodaemon: bool,
    /// Detach from the terminal (double fork, setsid, /dev/null stdio), as server.daemon.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Check the config, print one line per program, and exit (0 valid, 2 invalid).
    #[arg(short = 't', long = "check-config")]
    pub check: bool,
    /// Read a password (without echo on a terminal, else one line of stdin) and print its argon2
    /// hash for socket.auth.password_hash.
    // Answered by the taskmasterd crate (its main.rs), not by [`run`].
    #[arg(long = "hash-password")]
    pub hash_password: bool,
    /// Write the man page into DIR/man (used by `make install`).
    // Answered by the taskmasterd crate (its main.rs), not by [`run`].
    #[arg(long, hide = true, value_name = "DIR")]
    pub generate_docs: Option<PathBuf>,
}

/// `-t`'s report: one line per program, then the file and the count. Values are spelled as the
/// config spells them (`autorestart unexpected`) and the command is quoted as a shell would
/// (`redis-server --save ''`), so that what is printed can be pasted back.
fn summary(c: &Config) -> String {
    let mut out = String::new();
    for p in &c.programs {
        let procs = if p.numprocs == 1 { "1 process".to_owned() } else { format!("{} processes", p.numprocs) };
        let user = p.user.as_deref().map(|u| format!(", user {u}")).unwrap_or_default();
        let autorestart = match p.autorestart {
            AutoRestart::Always => "always",
            AutoRestart::Never => "never",
            AutoRestart::Unexpected => "unexpected",
        };
        out.push_str(&format!(
            "{}: {procs}, priority {}, {}, autorestart {autorestart}{user}: {}\n",
            p.name,
            p.priority,
            if p.autostart { "autostart" } else { "manual start" },
            shell_words(&p.command)
        ));
    }
    out.push_str(&format!("{}: OK, {} program(s)\n", c.file.display(), c.programs.len()));
    out
}

/// `words` joined and quoted as a POSIX shell would read them back (shlex's quoting); a word
/// holding a NUL byte, which no shell can quote, is shown as `\0`.
fn shell_words(words: &[String]) -> String {
    let quoted = words.iter().map(|w| match shlex::try_quote(w) {
        Ok(q) => q.into_owned(),
        Err(_) => shlex::try_quote(&w.replace('\0', "\\0")).map_or_else(|_| w.clone(), |q| q.into_owned()),
    });
    quoted.collect::<Vec<_>>().join(" ")
}

/// Runs the spawner role of taskmasterd (the taskmasterd crate has answered `--hash-password` and
/// `--generate-docs` before); returns its exit code (0 ok, 1 runtime failure, 2 usage or config error).
pub fn run(cli: Cli) -> ExitCode {
    sys::ensure_stdio();
    if cli.hash_password || cli.generate_docs.is_some() {
        // The taskmasterd crate answers these two before it calls run (they need no spawner).
        eprintln!("taskmasterd: --hash-password and --generate-docs are answered by the taskmasterd binary");
        return ExitCode::from(2);
    }
    let path = match setup::find_config(cli.config.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("taskmasterd: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match config::load(&path, &config::Context::current()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        print!("{}", summary(&config));
        return ExitCode::SUCCESS;
    }
    let daemon = !cli.nodaemon && (cli.daemon || config.server.daemon);
    match serve(config, daemon) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("taskmasterd: {e}");
            ExitCode::from(1)
        }
    }
}

/// Why taskmasterd could not start serving; each message is one line, printed after
/// `taskmasterd: `.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    /// A thread was started before the spawner forks (a bug: forking then could deadlock the child).
    #[error("the spawner must be single-threaded to fork safely")]
    Threaded,
    /// Daemon mode or the pidfile failed.
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    /// Limits, the supervisor's user or the control socket could not be set up.
    #[error(transparent)]
    Setup(#[from] setup::SetupError),
    /// The supervisor could not be started.
    #[error(transparent)]
    Start(#[from] privdrop::StartError),
    /// `socketpair` (the link), `signalfd` or `prctl` failed.
    #[error("{call}: {errno}")]
    Sys {
        /// The call.
        call: &'static str,
        /// Its errno.
        errno: nix::errno::Errno,
    },
}

/// Starts serving `config`: daemon mode, pidfile, limits, log directories, the control socket,
/// the supervisor, then the spawner's loop. Returns the loop's exit code.
///
/// # Errors
/// [`ServeError`]: any step before the loop runs.
fn serve(config: Config, daemon: bool) -> Result<u8, ServeError> {
    if !sys::is_single_threaded() {
        return Err(ServeError::Threaded);
    }
    let report = if daemon { Some(crate::daemon::daemonize()?) } else { None };
    // The orphans of a program (its background children, once their parent has died) become
    // ours, so that leftovers.rs can end them and the loop reaps them (not inherited by a fork:
    // hence after daemonize).
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|errno| ServeError::Sys { call: "prctl PR_SET_CHILD_SUBREAPER", errno })?;
    let pidfile = crate::daemon::lock_pidfile(&config.server.pidfile)?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(config.server.umask as libc::mode_t));
    setup::raise_limits(&config)?;
    setup::raise_nofile_for(&config);
    let user = setup::supervisor_user(&config)?;
    for problem in setup::prepare_logs(&config, user.as_ref()) {
        eprintln!("taskmasterd: {problem}");
    }
    let (listener, socket_node) = setup::bind_socket(&config)?;
    let listener: OwnedFd = listener.into();
    let result = (|| {
        if let Some(r) = report {
            r.ready(config.server.directory.as_deref())?;
        }
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|errno| ServeError::Sys { call: "socketpair", errno })?;
        let sigfd = signal_fd().map_err(|errno| ServeError::Sys { call: "signalfd", errno })?;
        let (supervisor, relay) = privdrop::start_supervisor(&theirs, &listener, user.as_ref())?;
        drop(theirs);
        // The listener stays open here too: a supervisor that replaces a dead one gets it.
        let spawner = Spawner::new(config, Link::new(ours), supervisor, user, listener, sigfd, !daemon);
        Ok(spawner.with_relay(relay).after_unclean_exit(pidfile.stale).run())
    })();
    socket_node.remove();
    result
}
