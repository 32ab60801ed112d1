//! `taskmasterd -t`: config checking, located errors, the brief's example.

use crate::{fixture, SOON};
use std::process::Command;
use tests::{bin, Daemon, Scratch};

fn check(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(bin("taskmasterd")).arg("-t").arg("-c").arg(path).output().expect("run taskmasterd -t");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn subject_example_passes_check_with_a_line_per_program() {
    let Some(path) = fixture("subject-example.yaml") else { return };
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("nginx: 1 process") && out.contains("/usr/local/bin/nginx -c /etc/nginx/test.conf"), "{out}");
    assert!(out.contains("vogsphere: 8 processes"), "{out}");
    assert!(out.contains("OK, 2 program(s)"), "{out}");
}

#[test]
fn subject_example_runs_into_fatal_with_a_clear_spawn_error() {
    let Some(path) = fixture("subject-example.yaml") else { return };
    let text = std::fs::read_to_string(path).unwrap();
    let d = Daemon::start(&text);
    assert!(d.status().iter().any(|r| r["name"] == "vogsphere:7"));
    // startretries 3: delays of 1 + 2 + 3 seconds, then FATAL.
    d.wait_state("nginx", "FATAL", SOON * 2);
    let row = d.row("nginx");
    assert_eq!(row["description"], "can't find command '/usr/local/bin/nginx': ENOENT (No such file or directory)");
    d.wait_state("vogsphere:0", "FATAL", SOON * 2);
}

#[test]
fn check_spells_values_as_the_config_does_and_quotes_arguments_as_a_shell_would() {
    let s = Scratch::new();
    let path = s.path("t.yaml");
    std::fs::write(
        &path,
        "programs:\n  redis:\n    command: redis-server --save \"\" --dir '/var/lib/my redis'\n    autorestart: onerror\n  cron:\n    command: [\"sh\", \"-c\", \"echo it's $HOME\"]\n    autorestart: true\n    autostart: false\n",
    )
    .unwrap();
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "cron: 1 process, priority 999, manual start, autorestart always: sh -c \"echo it's \"'$HOME'",
            "redis: 1 process, priority 999, autostart, autorestart unexpected: redis-server --save '' --dir '/var/lib/my redis'",
        ],
        "{out}"
    );
    // A shell reads back the words of the config.
    for (line, words) in
        [(lines[0], "[sh][-c][echo it's $HOME]"), (lines[1], "[redis-server][--save][][--dir][/var/lib/my redis]")]
    {
        let printed = line.splitn(3, ": ").nth(2).unwrap();
        let read = Command::new("sh")
            .arg("-c")
            .arg("eval \"set -- $1\"; printf '[%s]' \"$@\"")
            .arg("sh")
            .arg(printed)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&read.stdout), words, "{printed}");
    }
}

#[test]
fn malformed_yaml_reports_file_line_and_column_and_exits_2() {
    let s = Scratch::new();
    let path = s.path("bad.yaml");
    std::fs::write(&path, "programs:\n  web:\n    command: [\"/bin/true\"\n    numprocs: 2\n").unwrap();
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    let prefix = format!("{}:", path.display());
    assert!(err.starts_with(&prefix), "{err}");
    let loc: Vec<&str> = err[prefix.len()..].splitn(3, ':').collect();
    assert!(loc[0].parse::<u32>().unwrap() >= 3 && loc[1].parse::<u32>().unwrap() >= 1, "{err}");
}

#[test]
fn unknown_key_is_located_with_a_did_you_mean_hint() {
    let s = Scratch::new();
    let path = s.path("typo.yaml");
    std::fs::write(&path, "programs:\n  web:\n    command: /bin/true\n    autorestar: true\n").unwrap();
    let (code, _, err) = check(&path);
    assert_eq!(code, 2);
    assert_eq!(
        err.trim(),
        format!("{}:4:5: unknown key 'autorestar' in programs.web (did you mean 'autorestart'?)", path.display())
    );
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let s = Scratch::new();
    let path = s.path("nope.yaml");
    let (code, _, err) = check(&path);
    assert_eq!((code, err.trim()), (2, format!("{}: No such file or directory", path.display()).as_str()));
    let ctl = ctl_with_config(&path);
    assert_eq!(ctl.1.trim(), format!("taskmasterctl: {}: No such file or directory", path.display()));
}

/// `taskmasterctl -c path status`: exit code and stderr.
fn ctl_with_config(path: &std::path::Path) -> (i32, String) {
    let out = Command::new(bin("taskmasterctl")).arg("-c").arg(path).arg("status").output().expect("run taskmasterctl");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn check_reports_every_kind_of_mistake_in_one_run_each_at_its_place() {
    let s = Scratch::new();
    let path = s.path("many.yaml");
    let yaml = format!(
        "server:
  loglevel: chatty
  umask: 088
socket:
  path: {}
  access:
    - {{user: root, role: admin}}
    - {{user: no-such-user-tm, role: viewer}}
    - group: root
      role: boss
programs:
  web:
    command: /bin/true
    numprocs: two
    autostart: maybe
    stopsignal: NOPE
    autorestar: true
  api:
    numprocs: 2
    environment:
      TOKEN: \"%(ENV_TM_SURELY_UNSET)s\"
  cron:
    command: /bin/true
    user: no-such-user-tm
    exitcodes: [0, 300]
  flow: {{command: /bin/true, priority: 1.5, pty: [yes]}}
",
        s.path("tm.sock").display()
    );
    std::fs::write(&path, yaml).unwrap();
    let (code, out, err) = check(&path);
    assert_eq!(code, 2, "{out}{err}");
    let cron_user = if nix::unistd::geteuid().is_root() {
        "24:5: programs.cron.user: unknown user 'no-such-user-tm'".to_owned()
    } else {
        let me = nix::unistd::User::from_uid(nix::unistd::geteuid()).unwrap().unwrap().name;
        format!("24:5: programs.cron.user: 'no-such-user-tm' needs taskmasterd to start as root (it runs as {me})")
    };
    let want = [
        "2:3: server.loglevel: expected debug, info, warn, error or critical, got \"chatty\"",
        "3:3: server.umask: expected an octal mode such as 022, got \"088\"",
        "8:8: socket.access[1].user: unknown user 'no-such-user-tm'",
        "10:7: socket.access[2].role: expected viewer, operator or admin, got \"boss\"",
        "14:5: programs.web.numprocs: expected a whole number, got \"two\"",
        "15:5: programs.web.autostart: expected true or false, got \"maybe\"",
        "16:5: programs.web.stopsignal: unknown signal 'NOPE'",
        "17:5: unknown key 'autorestar' in programs.web (did you mean 'autorestart'?)",
        "18:3: programs.api: missing key 'command' (or 'cmd'): every program needs one",
        "21:7: programs.api.environment.TOKEN: undefined variable %(ENV_TM_SURELY_UNSET)s",
        &cron_user,
        "25:20: programs.cron.exitcodes[1]: expected an exit code from 0 to 255, got \"300\"",
        "26:30: programs.flow.priority: expected a whole number, got \"1.5\"",
        "26:45: programs.flow.pty: expected true or false, got a list",
    ];
    let got: Vec<&str> = err.lines().collect();
    let want: Vec<String> = want.iter().map(|w| format!("{}:{w}", path.display())).collect();
    assert_eq!(got, want, "\n{err}");
}

#[test]
fn invalid_yaml_gets_the_same_error_from_taskmasterd_and_taskmasterctl() {
    let s = Scratch::new();
    let path = s.path("colon.yaml");
    // An unquoted ': ' inside a value.
    std::fs::write(&path, "programs:\n  web:\n    command: /bin/sh -c 'echo started: ok; sleep 100'\n").unwrap();
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    let want = format!(
        "{}:3:38: mapping values are not allowed in this context (a value that holds ': ' must be put in quotes)",
        path.display()
    );
    assert_eq!(err.trim(), want);
    let (code, ctl_err) = ctl_with_config(&path);
    assert_eq!((code, ctl_err.trim()), (2, format!("taskmasterctl: {want}").as_str()));
}
