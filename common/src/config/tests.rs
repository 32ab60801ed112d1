//! Every kind of config error, located at its key (a list element at itself) by the parser's
//! marks, in the user's words: one table, one line per mistake.

use super::load::{load_ctl, load_str};
use super::validate::Context;
use std::path::Path;

fn ctx() -> Context {
    Context { is_root: true, current_user: Some("root".into()), check_users: true, trusted_uid: None }
}

/// The errors of `text` as `/etc/t.yaml`, without the file name: `line:col: message` lines.
fn errors(text: &str) -> Vec<String> {
    let e = load_str(Path::new("/etc/t.yaml"), text, &ctx()).expect_err(text).to_string();
    e.lines().map(|l| l.strip_prefix("/etc/t.yaml:").unwrap_or(l).to_owned()).collect()
}

const WEB: &str = "programs:\n  web:\n    command: x\n";

#[test]
fn every_kind_of_error_is_located_at_its_key_or_value() {
    let table: &[(&str, &str)] = &[
        // Unknown keys, with a hint when one is close.
        ("programs:\n  web:\n    command: x\n    autorestar: true\n", "4:5: unknown key 'autorestar' in programs.web (did you mean 'autorestart'?)"),
        ("server:\n  logfle: x\n", "2:3: unknown key 'logfle' in server (did you mean 'logfile'?)"),
        ("socket:\n  acess: []\n", "2:3: unknown key 'acess' in socket (did you mean 'access'?)"),
        ("ctl:\n  promt: x\n", "2:3: unknown key 'promt' in ctl (did you mean 'prompt'?)"),
        ("program:\n  a: {}\n", "1:1: unknown key 'program' (did you mean 'programs'?)"),
        ("programs:\n  web:\n    command: x\n    [a]: 1\n", "4:5: a key in programs.web must be a plain word, not a list"),
        // Missing and repeated keys.
        ("programs:\n  web:\n    numprocs: 1\n", "2:3: programs.web: missing key 'command' (or 'cmd'): every program needs one"),
        ("programs:\n  web:\n", "2:3: programs.web: missing key 'command' (or 'cmd'): every program needs one"),
        ("programs:\n  web:\n    command: x\n    command: y\n", "4:5: duplicate key 'command' in programs.web (first at 3:5)"),
        ("programs:\n  web:\n    command: x\n    cmd: y\n", "4:5: duplicate key 'cmd' in programs.web: 'command' is set at 3:5"),
        ("programs:\n  web:\n    command: x\n  web:\n    command: y\n", "4:3: program 'web' is defined twice: first at /etc/t.yaml:2:3"),
        // Values of the wrong kind, in the user's words.
        ("programs:\n  web:\n    command: x\n    numprocs: two\n", "4:5: programs.web.numprocs: expected a whole number, got \"two\""),
        ("programs:\n  web:\n    command: x\n    numprocs: -1\n", "4:5: programs.web.numprocs: expected a whole number up to 4294967295, got \"-1\""),
        ("programs:\n  web:\n    command: x\n    priority: 99999999999\n", "4:5: programs.web.priority: expected a whole number from -2147483648 to 2147483647, got \"99999999999\""),
        ("programs:\n  web:\n    command: x\n    startsecs: 1.5\n", "4:5: programs.web.startsecs: expected a whole number, got \"1.5\""),
        ("programs:\n  web:\n    command: x\n    autostart: maybe\n", "4:5: programs.web.autostart: expected true or false, got \"maybe\""),
        ("programs:\n  web:\n    command: x\n    user: [a]\n", "4:5: programs.web.user: expected a string, got a list"),
        ("programs:\n  web:\n    command: x\n    environment: A=1\n", "4:5: programs.web.environment: expected a mapping (indented 'key: value' lines or {key: value}), got \"A=1\""),
        ("programs:\n  web:\n    command: x\n    environment:\n      A: [1]\n", "5:7: programs.web.environment.A: expected a value (a string, a number or a boolean), got a list"),
        ("programs:\n  web:\n    command: x\n    capabilities: net_raw\n", "4:5: programs.web.capabilities: expected a list such as [a, b], got \"net_raw\""),
        ("programs:\n  web:\n    command: {a: b}\n", "3:5: programs.web.command: expected a command line or a list of arguments, got a mapping"),
        ("programs: [web]\n", "1:1: programs: expected a mapping (indented 'key: value' lines or {key: value}), got a list"),
        ("programs:\n  web: x\n", "2:3: programs.web: expected a mapping of program settings, got \"x\""),
        ("- a\n", "1:1: expected a mapping of config sections (include, server, socket, ctl, programs), got a list"),
        // List elements are located at themselves.
        ("programs:\n  web:\n    command: x\n    exitcodes: [0, 300]\n", "4:20: programs.web.exitcodes[1]: expected an exit code from 0 to 255, got \"300\""),
        ("programs:\n  web:\n    command: x\n    exitcodes: 0,x\n", "4:5: programs.web.exitcodes: expected exit codes from 0 to 255, got \"0,x\""),
        ("programs:\n  web:\n    command: [x, {a: 1}]\n", "3:18: programs.web.command[1]: expected a string, got a mapping"),
        ("programs:\n  web:\n    command: x\n    user: nobody\n    capabilities:\n      - net_raw\n      - CAP_NOPE\n", "7:9: programs.web.capabilities: unknown capability 'CAP_NOPE'"),
        // Meanings: signals, modes, sizes, levels, policies, facilities.
        ("programs:\n  web:\n    command: x\n    stopsignal: NOPE\n", "4:5: programs.web.stopsignal: unknown signal 'NOPE'"),
        ("programs:\n  web:\n    command: x\n    umask: 099\n", "4:5: programs.web.umask: expected an octal mode such as 022, got \"099\""),
        ("programs:\n  web:\n    command: x\n    stdout_logfile_maxbytes: lots\n", "4:5: programs.web.stdout_logfile_maxbytes: expected a size such as 50MB (a number with an optional KB, MB or GB), got \"lots\""),
        ("programs:\n  web:\n    command: x\n    autorestart: sometimes\n", "4:5: programs.web.autorestart: expected always, never or unexpected, got \"sometimes\""),
        ("programs:\n  web:\n    command: x\n    stdout: ''\n", "4:5: programs.web.stdout_logfile: empty log path: use NONE to discard output"),
        ("programs:\n  web:\n    command: ''\n", "3:5: programs.web.command: empty command"),
        ("programs:\n  web:\n    command: \"a 'b\"\n", "3:5: programs.web.command: unbalanced quotes or a trailing '\\' in \"a 'b\": quote as a shell would"),
        ("programs:\n  web:\n    command: x\n    numprocs: 0\n", "4:5: programs.web.numprocs: must be at least 1"),
        ("server:\n  loglevel: loud\n", "2:3: server.loglevel: expected debug, info, warn, error or critical, got \"loud\""),
        ("server:\n  syslog: sometimes\n", "2:3: server.syslog: expected true, false or a mapping of facility, ident and socket, got \"sometimes\""),
        ("server:\n  syslog: {facility: kitchen}\n", "2:12: server.syslog.facility: expected a syslog facility such as daemon or local0, got \"kitchen\""),
        ("socket:\n  chmod: rwx\n", "2:3: socket.chmod: expected an octal mode such as 0700, got \"rwx\""),
        // Users and variables.
        ("programs:\n  web:\n    command: x\n    user: no-such-user-tm\n", "4:5: programs.web.user: unknown user 'no-such-user-tm'"),
        ("server:\n  user: no-such-user-tm\n", "2:3: server.user: unknown user 'no-such-user-tm'"),
        ("programs:\n  web:\n    command: x %(ENV_NO_SUCH_TM_VAR)s\n", "3:5: programs.web.command: undefined variable %(ENV_NO_SUCH_TM_VAR)s"),
        ("programs:\n  web:\n    command: x\n    environment:\n      A: 1\n      B: '%(ENV_NO_SUCH_TM_VAR)s'\n", "6:7: programs.web.environment.B: undefined variable %(ENV_NO_SUCH_TM_VAR)s"),
        ("server:\n  logfile: '%(here)s/%(oops'\n", "2:3: server.logfile: unclosed '%(': write %% for a literal %"),
        // socket.access: each error at its own rule, or at the key of the rule it is about.
        ("socket:\n  access:\n    - {user: root, role: admin}\n    - viewer\n", "4:7: socket.access[1]: expected a rule such as {user: alice, role: operator}, got \"viewer\""),
        ("socket:\n  access:\n    - {user: root, role: admin}\n    - user: root\n", "4:7: socket.access[1]: missing key 'role' (viewer, operator or admin)"),
        ("socket:\n  access:\n    - {user: root, role: admin}\n    - {user: root, group: root, role: admin}\n", "4:7: socket.access[1]: give exactly one of 'user' or 'group'"),
        ("socket:\n  access:\n    - {user: root, role: admin}\n    - {group: no-such-group-tm, role: viewer}\n", "4:8: socket.access[1].group: unknown group 'no-such-group-tm'"),
        ("socket:\n  access:\n    - user: root\n      role: boss\n", "4:7: socket.access[0].role: expected viewer, operator or admin, got \"boss\""),
        ("socket:\n  access:\n    - {user: root, role: admin, programs: [web, '[x']}\n", "3:49: socket.access[0].programs[1]: bad program glob '[x'"),
        ("socket:\n  access:\n    - {user: root, role: admin, colour: red}\n", "3:33: unknown key 'colour' in socket.access[0]"),
        ("socket:\n  auth:\n    username: ops\n", "2:3: socket.auth: missing key 'password_hash'"),
        ("socket:\n  auth:\n    username: ops\n    password_hash: hunter2\n", "4:5: socket.auth.password_hash: not a password hash: make one with `taskmasterd --hash-password`"),
        // Includes.
        ("include: conf.d/*.yaml\n", "1:1: include: expected a list such as [a, b], got \"conf.d/*.yaml\""),
        ("include: ['[']\n", "1:11: include[0]: bad glob '[': invalid range pattern"),
        // The YAML itself: the parser's mark, nothing quoted.
        ("programs:\n  web:\n    command: echo SECRET: x\n", "3:25: mapping values are not allowed in this context (a value that holds ': ' must be put in quotes)"),
        ("a: 1\n---\nb: 2\n", "2:1: a second YAML document ('---'): a config file holds one"),
        ("programs: !secret {}\n", "1:11: a config uses no YAML tags other than '!!map', '!!seq' and their kin"),
        ("programs:\n  web: *nope\n", "2:8: an alias names an anchor not defined before it"),
    ];
    let mut failures = Vec::new();
    for (text, want) in table {
        let got = errors(text);
        if got != [*want] {
            failures.push(format!("{text:?}\n  want {want}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn flow_style_is_located_by_column() {
    let got = errors("programs: {web: {command: x, numprocs: two}, api: {cmd: y, pty: [1]}}\n");
    assert_eq!(
        got,
        [
            "1:30: programs.web.numprocs: expected a whole number, got \"two\"",
            "1:60: programs.api.pty: expected true or false, got a list"
        ]
    );
}

#[test]
fn anchors_and_aliases_work_and_errors_point_at_what_was_written() {
    let text = "programs:\n  a: &base\n    command: x\n    numprocs: 2\n    environment: &env {A: 1}\n  b:\n    command: *cmd_missing\n";
    assert_eq!(errors(text), ["7:14: an alias names an anchor not defined before it"]);
    let c = load_str(
        Path::new("/etc/t.yaml"),
        "programs:\n  a: &base\n    command: &cmd /bin/echo hi\n    numprocs: 2\n  b: *base\n  c:\n    command: *cmd\n",
        &ctx(),
    )
    .unwrap();
    let summary: Vec<(&str, u32, &[String])> =
        c.programs.iter().map(|p| (p.name.as_str(), p.numprocs, p.command.as_slice())).collect();
    let hi = ["/bin/echo".to_owned(), "hi".to_owned()];
    assert_eq!(summary, [("a", 2, &hi[..]), ("b", 2, &hi[..]), ("c", 1, &hi[..])]);
    // A mistake inside an anchor is reported for each program that uses it, at the anchor's key.
    let got = errors("programs:\n  a: &base\n    command: x\n    numprocs: two\n  b: *base\n");
    assert_eq!(
        got,
        [
            "4:5: programs.a.numprocs: expected a whole number, got \"two\"",
            "4:5: programs.b.numprocs: expected a whole number, got \"two\""
        ]
    );
}

#[test]
fn includes_are_located_in_their_own_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    let inc = dir.path().join("conf.d/a.yaml");
    std::fs::write(&inc, "server:\n  user: x\nprograms:\n  a:\n    command: x\n    numprocs: two\n").unwrap();
    let main = dir.path().join("main.yaml");
    let e = load_str(&main, "include: [conf.d/*.yaml]\nprograms:\n  b:\n    numprocs: 1\n", &ctx()).unwrap_err();
    let lines: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
    let (i, m) = (inc.display(), main.display());
    assert_eq!(
        lines,
        [
            format!("{i}:1:1: 'server' is not allowed in an included file: it may define only programs"),
            format!("{i}:6:5: programs.a.numprocs: expected a whole number, got \"two\""),
            format!("{m}:3:3: programs.b: missing key 'command' (or 'cmd'): every program needs one"),
        ]
    );
}

#[test]
fn the_ctl_reads_socket_and_ctl_through_the_same_parser() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t.yaml");
    // Mistakes outside socket and ctl are not the ctl's business.
    std::fs::write(&f, "socket:\n  path: s.sock\nctl:\n  prompt: tm\nprograms:\n  web:\n    numprocs: two\n").unwrap();
    let (socket, ctl) = load_ctl(&f).unwrap();
    assert_eq!((socket.path, ctl.prompt.as_str()), (dir.path().join("s.sock"), "tm"));
    // A syntax error is the daemon's error, word for word; so is a mistake in socket.
    for text in ["programs:\n  web:\n    command: echo a: b\n", "socket:\n  chmod: [1]\n"] {
        std::fs::write(&f, text).unwrap();
        let daemon = super::load::load(&f, &ctx()).unwrap_err().to_string();
        let ctl = load_ctl(&f).unwrap_err().to_string();
        assert_eq!(ctl, daemon);
    }
}

#[test]
fn every_listed_key_is_read() {
    use super::raw::{ACCESS_KEYS, AUTH_KEYS, CTL_KEYS, PROGRAM_KEYS, SERVER_KEYS, SOCKET_KEYS};
    let yaml = |section: &str| format!("{WEB}{section}");
    let mut texts = Vec::new();
    for k in PROGRAM_KEYS {
        texts.push(format!("programs:\n  web:\n    {k}: ~\n"));
    }
    for k in SERVER_KEYS {
        texts.push(yaml(&format!("server:\n  {k}: ~\n")));
    }
    for k in SOCKET_KEYS {
        texts.push(yaml(&format!("socket:\n  {k}: ~\n")));
    }
    for k in ACCESS_KEYS {
        texts.push(yaml(&format!("socket:\n  access:\n    - {{{k}: ~}}\n")));
    }
    for k in AUTH_KEYS {
        texts.push(yaml(&format!("socket:\n  auth: {{{k}: ~}}\n")));
    }
    for k in CTL_KEYS {
        texts.push(yaml(&format!("ctl:\n  {k}: ~\n")));
    }
    for text in texts {
        if let Err(e) = load_str(Path::new("/etc/t.yaml"), &text, &ctx()) {
            assert!(!e.to_string().contains("unknown key"), "{text:?}: {e}");
        }
    }
}
