//! taskmasterd(8): clap_mangen's NAME, SYNOPSIS, DESCRIPTION and OPTIONS, then sections of our
//! own (SIGNALS, EXIT STATUS, ENVIRONMENT, FILES, SEE ALSO), which a `clap::Command` cannot
//! describe.

use std::io::Write;

/// The sections after OPTIONS, in roff.
const SECTIONS: &str = r#".SH SIGNALS
Send them to taskmasterd as started (the spawner: the pid in the pidfile, and what
.B taskmasterctl pid
prints).
.TP
.BR TERM ", " INT ", " QUIT
Stop every program in priority order (the highest priority number first; each gets its
stopsignal, then SIGKILL after its stopwaitsecs), then exit 0, as
.B taskmasterctl shutdown
does.
.TP
.B HUP
Re-read the config file and apply what changed, as
.B taskmasterctl update
does: an added program starts, a removed one stops, a changed one restarts, the others keep
running. A file with errors changes nothing; the main log names every error.
.TP
.B USR2
Reopen every log file, after an external rotation (logrotate); a missing file is created again
where the supervisor can write.
.SH "EXIT STATUS"
.TP
.B 0
Stopped by a signal above or by
.BR "taskmasterctl shutdown" ;
with
.BR \-t ,
the config is valid.
.TP
.B 1
A runtime failure: the socket cannot be bound, another taskmasterd holds the pidfile, the
supervisor cannot be started.
.TP
.B 2
A usage or config error (every error is printed, with file:line:column).
.SH ENVIRONMENT
.TP
.B TASKMASTER_CONFIG
The config file when
.B \-c
is not given.
.TP
.BR NOTIFY_SOCKET ", " WATCHDOG_USEC ", " WATCHDOG_PID
Set by systemd for a Type=notify service: taskmasterd reports there when it is ready, reloading
or stopping, with a status line (12 running, 1 fatal), and pings the watchdog. Neither the
supervisor nor the programs see them.
.TP
.B JOURNAL_STREAM
When it names taskmasterd's stderr (systemd sets it so), the main log copied to stderr carries
syslog priorities for the journal instead of timestamps.
.PP
A program gets taskmasterd's environment (without the variables above for the service
manager), then server.environment, then HOME, USER and LOGNAME of its
.B user
when it has one, then its own
.BR environment ,
TERM=xterm\-256color on a pseudo\-terminal that has no TERM, and TASKMASTER_ENABLED=1,
TASKMASTER_PROGRAM, TASKMASTER_PROCESS_NAME (web:0), TASKMASTER_INSTANCE and
TASKMASTER_SERVER_URL (unix:///path of the control socket, which
.B taskmasterctl \-s
takes).
.SH FILES
.TP
.IR ./taskmaster.yaml ", " /etc/taskmaster/taskmaster.yaml
The config files tried, in this order, without
.B \-c
or TASKMASTER_CONFIG.
.TP
.I /run/taskmaster/taskmaster.sock
The control socket when root starts taskmasterd (socket.path); for another user
$XDG_RUNTIME_DIR/taskmaster.sock, else /tmp/taskmaster\-UID.sock.
.TP
.IR taskmasterd.log ", " taskmasterd.pid
The main log (server.logfile) and the pidfile (server.pidfile), beside the config file unless
set; each program's AUTO logs go to server.childlogdir (default: the main log's directory) as
NAME\-stdout.log and NAME\-stderr.log.
.TP
.I /var/log/taskmaster/
The log directory of the system service, owned by the taskmaster user (made by
systemd\-tmpfiles).
.TP
.IR taskmasterd.service ", " sysusers.d/taskmaster.conf ", " tmpfiles.d/taskmaster.conf
The systemd unit (Type=notify), the taskmaster user and the log directory, under
/usr/lib or /usr/local/lib as installed.
.SH "SEE ALSO"
.BR taskmasterctl (1),
.BR taskmaster.yaml (5),
.BR systemd.service (5),
.BR sysusers.d (5),
.BR tmpfiles.d (5),
.BR supervisord (1)
"#;

/// Writes the whole page for `cmd` (the taskmasterd command) in `section` to `w`.
///
/// # Errors
/// Writing to `w` failed.
pub fn render(cmd: clap::Command, section: &str, w: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd).section(section);
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    w.write_all(SECTIONS.as_bytes())?;
    man.render_version_section(w)
}
