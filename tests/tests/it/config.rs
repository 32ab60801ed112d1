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
    let (code, _, err) = check(&s.path("nope.yaml"));
    assert_eq!(code, 2);
    assert!(err.contains("nope.yaml") && err.contains("cannot read config"), "{err}");
}
