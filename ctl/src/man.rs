//! taskmasterctl(1): clap_mangen's NAME, SYNOPSIS, DESCRIPTION and OPTIONS, then sections of
//! our own: ACTIONS (one tagged paragraph each, so that a wrapped line keeps its indentation),
//! EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO.

use std::io::Write;

/// The sections after OPTIONS that do not depend on the actions.
const TAIL: &str = r#".SH "EXIT STATUS"
.TP
.B 0
The action succeeded.
.TP
.B 1
An action failed for some process (an unknown name included).
.TP
.B 2
A usage or config error.
.TP
.B 3
.B status
found a selected process not RUNNING.
.TP
.B 4
The daemon cannot be reached, or refused access.
.PP
When the program
.B fg
is attached to ends, taskmasterctl exits with its status (128 + the signal number when it was
killed).
.SH ENVIRONMENT
.TP
.B TASKMASTER_CONFIG
The config file when
.B \-c
is not given (not read with
.BR \-s ).
.TP
.B TASKMASTER_USERNAME
The user name for socket.auth when
.B \-u
is not given (else the config's socket.auth.username).
.TP
.B TASKMASTER_PASSWORD
The password for socket.auth; without it, taskmasterctl asks on the terminal, without echo.
.TP
.B XDG_RUNTIME_DIR
A user's default socket is $XDG_RUNTIME_DIR/taskmaster.sock.
.SH FILES
.TP
.IR ./taskmaster.yaml ", " /etc/taskmaster/taskmaster.yaml
The config files tried, in this order, when neither
.BR \-c ,
.B \-s
nor TASKMASTER_CONFIG is given; only their socket and ctl sections are read.
.TP
.I /run/taskmaster/taskmaster.sock
root's default control socket; another user's is $XDG_RUNTIME_DIR/taskmaster.sock, else
/tmp/taskmaster\-UID.sock.
.TP
.I ~/.taskmaster_history
The shell's history (ctl.history_file).
.SH "SEE ALSO"
.BR taskmasterd (8),
.BR taskmaster.yaml (5),
.BR supervisorctl (1)
"#;

/// `text` as roff text: backslashes and hyphens escaped, other characters than ASCII named
/// (`\[u2026]`), so that groff reads it whatever its input encoding.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            c if c.is_ascii() => out.push(c),
            c => out.push_str(&format!("\\[u{:04X}]", u32::from(c))),
        }
    }
    if out.starts_with(['.', '\'']) {
        out.insert_str(0, "\\&");
    }
    out
}

/// The ACTIONS section: each usage as a tag, the action's word in bold, its help below.
fn actions_section() -> String {
    let mut out = String::from(
        ".SH ACTIONS\nNAME is a process (web:0), a program (web: all its instances) or\n.BR all .\n\
         Without an action, taskmasterctl opens an interactive shell that takes the same actions.\n",
    );
    for sub in crate::actions::command().get_subcommands() {
        let (verb, usage) = (sub.get_name(), crate::actions::usage(sub));
        let args = usage.strip_prefix(verb).unwrap_or(&usage);
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR{}\n{}\n",
            escape(verb),
            escape(args),
            escape(&crate::actions::about(sub))
        ));
    }
    out
}

/// Writes the whole page for `cmd` (the taskmasterctl command) to `w`.
///
/// # Errors
/// Writing to `w` failed.
pub fn render(cmd: clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd).section("1");
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    w.write_all(actions_section().as_bytes())?;
    w.write_all(TAIL.as_bytes())?;
    man.render_version_section(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_text_is_escaped() {
        assert_eq!(escape("tail [-f] NAME…"), "tail [\\-f] NAME\\[u2026]");
        assert_eq!(escape(".x\\y"), "\\&.x\\ey");
    }
}
