//! `make install` into a staging root: every file in place, the unit verified by systemd, the
//! man pages rendered by man(1).

use std::path::{Path, PathBuf};
use std::process::Command;
use tests::{bin, is_root, Scratch};

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn make_install_puts_every_file_in_place_and_systemd_and_man_accept_them() {
    for tool in ["make", "man", "systemd-analyze", "systemd-sysusers", "systemd-tmpfiles"] {
        if !have(tool) {
            tests::skip(&format!("{tool} is not installed (.ci/run installs it)"));
            return;
        }
    }
    let s = Scratch::new();
    let stage = s.path("stage");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let built = bin("taskmasterd").parent().unwrap().to_path_buf();
    let (ok, _, err) = run(Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(workspace)
        .arg("install")
        .arg(format!("DESTDIR={}", stage.display()))
        .arg("PREFIX=/usr")
        .arg("NO_BUILD=1")
        .arg(format!("TARGET={}", built.display()))
        .arg(format!("GEN={}", s.path("gen").display())));
    assert!(ok, "make install failed: {err}");
    let p = |rel: &str| -> PathBuf { stage.join(rel) };
    for f in [
        "usr/bin/taskmasterd",
        "usr/bin/taskmasterctl",
        "usr/lib/systemd/system/taskmasterd.service",
        "usr/lib/sysusers.d/taskmaster.conf",
        "usr/lib/tmpfiles.d/taskmaster.conf",
        "etc/taskmaster/taskmaster.yaml",
        "usr/share/man/man8/taskmasterd.8",
        "usr/share/man/man1/taskmasterctl.1",
        "usr/share/man/man5/taskmaster.yaml.5",
        "usr/share/bash-completion/completions/taskmasterd",
        "usr/share/bash-completion/completions/taskmasterctl",
        "usr/share/zsh/site-functions/_taskmasterd",
        "usr/share/zsh/site-functions/_taskmasterctl",
        "usr/share/fish/vendor_completions.d/taskmasterd.fish",
        "usr/share/fish/vendor_completions.d/taskmasterctl.fish",
    ] {
        assert!(p(f).is_file(), "{f} is missing");
    }
    assert!(run(Command::new(p("usr/bin/taskmasterctl")).arg("--version")).0);
    let unit = std::fs::read_to_string(p("usr/lib/systemd/system/taskmasterd.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/taskmasterd --nodaemon -c /etc/taskmaster/taskmaster.yaml"), "{unit}");
    assert!(
        unit.contains("Type=notify")
            && unit.contains("KillMode=mixed")
            && unit.contains("ExecReload=/bin/kill -HUP $MAINPID")
    );

    // man -l renders each page; taskmasterctl(1) documents the actions.
    for (page, needle) in [
        ("usr/share/man/man8/taskmasterd.8", "--check-config"),
        ("usr/share/man/man1/taskmasterctl.1", "--detach-keys"),
        ("usr/share/man/man5/taskmaster.yaml.5", "stopwaitsecs"),
    ] {
        let (ok, out, err) =
            run(Command::new("man").arg("-l").arg(p(page)).env("MANPAGER", "cat").env("MANWIDTH", "100"));
        assert!(ok && out.contains("NAME") && out.contains(needle), "man -l {page}: {err}\n{out}");
    }

    // systemd-analyze verify: the unit as installed, its binaries and man pages found in the stage.
    let staged_unit = s.path("taskmasterd.service");
    std::fs::write(&staged_unit, unit.replace("/usr/bin/", &format!("{}/", p("usr/bin").display()))).unwrap();
    let (ok, out, err) =
        run(Command::new("systemd-analyze").arg("verify").arg(&staged_unit).env("MANPATH", p("usr/share/man")));
    assert!(ok && err.trim().is_empty(), "systemd-analyze verify: {out}{err}");
    let sysusers = p("usr/lib/sysusers.d/taskmaster.conf");
    let (ok, _, err) = run(Command::new("systemd-sysusers").arg("--dry-run").arg(&sysusers));
    assert!(ok, "systemd-sysusers --dry-run: {err}");
    for f in ["taskmasterd", "taskmasterctl"] {
        assert!(
            run(Command::new("bash").arg("-n").arg(p(&format!("usr/share/bash-completion/completions/{f}")))).0,
            "bash completion of {f}"
        );
    }
    if !is_root() {
        tests::skip("the tmpfiles step: creating a taskmaster-owned directory needs root");
        return;
    }
    // In the stage: the user sysusers makes, then the log directory tmpfiles makes for it.
    assert!(run(Command::new("systemd-sysusers").arg(format!("--root={}", stage.display())).arg(&sysusers)).0);
    let (ok, _, err) = run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", stage.display()))
        .arg("--create")
        .arg(p("usr/lib/tmpfiles.d/taskmaster.conf")));
    assert!(ok, "systemd-tmpfiles: {err}");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(p("var/log/taskmaster")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
    let passwd = std::fs::read_to_string(p("etc/passwd")).unwrap();
    let uid: u32 = passwd
        .lines()
        .find(|l| l.starts_with("taskmaster:"))
        .and_then(|l| l.split(':').nth(2))
        .and_then(|u| u.parse().ok())
        .expect("taskmaster in the staged passwd");
    assert_eq!(meta.uid(), uid);
}

/// The config keys README.md names: every key of its YAML examples (a program's name is not a
/// key), and in its prose each `section.key` and each `key: value` in backquotes.
fn readme_config_keys(readme: &str) -> std::collections::BTreeSet<String> {
    fn is_key(w: &str) -> bool {
        !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    }
    // `word:` followed by a blank or the end: a key of a block or flow mapping.
    fn keys_in(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for (i, _) in
            text.match_indices(':').filter(|(i, _)| text[i + 1..].starts_with([' ', '\n']) || i + 1 == text.len())
        {
            let start = text[..i].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |s| s + 1);
            if is_key(&text[start..i]) {
                out.push(&text[start..i]);
            }
        }
        out
    }
    let mut keys = std::collections::BTreeSet::new();
    let mut in_yaml = false;
    let mut in_code = false;
    let mut parents: Vec<(usize, String)> = Vec::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_yaml = !in_code && line == "```yaml";
            in_code = !in_code;
            parents.clear();
            continue;
        }
        if in_yaml {
            // Comments and quoted values hold no keys.
            let line = line.split(" #").next().unwrap_or_default();
            let line: String = line.split(['\'', '"']).step_by(2).collect::<Vec<_>>().join("");
            let indent = line.len() - line.trim_start_matches([' ', '-']).len();
            let found = keys_in(&line);
            let Some(first) = found.first() else { continue };
            parents.retain(|(i, _)| *i < indent);
            let program_name = parents.last().is_some_and(|(_, p)| p == "programs");
            for k in &found[usize::from(program_name)..] {
                keys.insert((*k).to_owned());
            }
            parents.push((indent, (*first).to_owned()));
        } else if !in_code {
            // `socket.auth.username`, `server.syslog: true`, `pty: true`; not `exited: 'web'`
            // inside a log line, nor a bare `confinement:`.
            for span in line.split('`').skip(1).step_by(2) {
                let (path, value) = span.split_once(": ").unwrap_or((span, ""));
                match path.split_once('.') {
                    Some((section, rest)) if ["server", "socket", "ctl"].contains(&section) => {
                        keys.extend(rest.split('.').filter(|k| is_key(k)).map(str::to_owned));
                    }
                    None if is_key(path) && !value.is_empty() => {
                        keys.insert(path.to_owned());
                    }
                    _ => {}
                }
            }
        }
    }
    keys
}

#[test]
fn the_config_man_page_documents_every_key_the_readme_mentions() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(workspace.join("README.md")).unwrap();
    let man = std::fs::read_to_string(workspace.join("docs/man/taskmaster.yaml.5")).unwrap().replace("\\-", "-");
    let keys = readme_config_keys(&readme);
    for sure in ["command", "stdout_logfile", "capabilities", "pty", "access", "auth", "password_hash", "syslog"] {
        assert!(keys.contains(sure), "the README's keys were not all found (no {sure}): {keys:?}");
    }
    let words: std::collections::BTreeSet<&str> =
        man.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    let missing: Vec<&String> = keys.iter().filter(|k| !words.contains(k.as_str())).collect();
    assert!(missing.is_empty(), "taskmaster.yaml(5) does not document {missing:?}");
    // The TERM a PTY program gets, and how to choose another.
    for needle in ["TERM=xterm-256color", "environment: {TERM: screen-256color}"] {
        assert!(man.contains(needle), "taskmaster.yaml(5) lacks {needle:?}");
    }
    if have("groff") {
        let (ok, _, err) =
            run(Command::new("groff").args(["-man", "-ww", "-z"]).arg(workspace.join("docs/man/taskmaster.yaml.5")));
        assert!(ok && err.is_empty(), "groff warns about taskmaster.yaml(5): {err}");
    }
}
