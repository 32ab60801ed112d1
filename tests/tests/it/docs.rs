//! The documentation matches the code: README's config example passes `-t`, its action table
//! lists every action, it cites no file a clone lacks; the man pages have their sections; the
//! shipped example starts and its PTY shell can be attached, as README's tour says.

use crate::SOON;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use tests::{bin, Daemon, PtySession, Scratch};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn readme() -> String {
    std::fs::read_to_string(workspace().join("README.md")).unwrap()
}

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

/// The first ```yaml block after the line `heading`.
fn yaml_after(text: &str, heading: &str) -> String {
    let rest = &text[text.find(heading).unwrap_or_else(|| panic!("no {heading:?}"))..];
    let start = rest.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    rest[start..start + rest[start..].find("```").expect("its end")].to_owned()
}

#[test]
fn the_readme_config_example_passes_check_config_and_gives_each_instance_its_port() {
    let yaml = yaml_after(&readme(), "### Writing a config");
    let command = yaml.lines().find(|l| l.trim_start().starts_with("command:")).expect("a command");
    assert!(
        !yaml.contains("numprocs:") || command.contains("%(process_num)"),
        "two instances of one command would share a port: {command}"
    );
    // Whoever runs it: without `user:` keys that name users a normal user cannot be or that a
    // machine may lack (the example leaves them commented out).
    let s = Scratch::new();
    let file = s.path("taskmaster.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = Command::new(bin("taskmasterd")).arg("-t").arg("-c").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "README's example fails -t:\n{err}\n{yaml}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("web: 2 processes"));
}

#[test]
fn the_readme_lists_every_action_and_cites_only_files_a_clone_has() {
    let readme = readme();
    let help = Command::new(bin("taskmasterctl")).arg("help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let table: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    for action in help.lines().skip(1).filter_map(|l| l.split_whitespace().next()) {
        assert!(
            table.iter().any(|row| row.split('|').nth(1).is_some_and(|cell| cell.contains(&format!("`{action}")))),
            "README's action table lacks {action}"
        );
    }
    // Every `something.md` it names, relative to the checkout.
    let cited = readme
        .split(|c: char| !(c.is_ascii_alphanumeric() || "./_-".contains(c)))
        .filter(|w| w.ends_with(".md") && !w.starts_with('/'));
    for f in cited {
        assert!(workspace().join(f).is_file(), "README cites {f}, which a clone does not have");
    }
}

#[test]
fn the_man_pages_have_their_sections_and_keep_indentation_when_wrapped() {
    let s = Scratch::new();
    let gen = s.path("gen");
    for b in ["taskmasterd", "taskmasterctl"] {
        let out = Command::new(bin(b)).arg("--generate-docs").arg(&gen).output().unwrap();
        assert!(out.status.success(), "{b} --generate-docs: {}", String::from_utf8_lossy(&out.stderr));
    }
    let daemon = gen.join("man/taskmasterd.8");
    let ctl = gen.join("man/taskmasterctl.1");
    let page = std::fs::read_to_string(&daemon).unwrap();
    for needle in [
        ".SH SIGNALS",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH \"SEE ALSO\"",
        "TASKMASTER_CONFIG",
        ".B USR2",
    ] {
        assert!(page.contains(needle), "taskmasterd(8) lacks {needle}");
    }
    let page = std::fs::read_to_string(&ctl).unwrap();
    for needle in
        [".SH ACTIONS", ".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH FILES", ".SH \"SEE ALSO\"", "\\fBmaintail\\fR"]
    {
        assert!(page.contains(needle), "taskmasterctl(1) lacks {needle}");
    }
    if have("groff") {
        for p in [&daemon, &ctl] {
            let out = Command::new("groff").args(["-man", "-ww", "-z"]).arg(p).output().unwrap();
            assert!(
                out.stderr.is_empty(),
                "groff warns about {}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if !have("man") {
        tests::skip("man is not installed (.ci/run installs it)");
        return;
    }
    let out = Command::new("man")
        .arg("-l")
        .arg(&ctl)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "60")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // fg's help takes several lines at 60 columns: each indented as its first.
    let lines: Vec<&str> = text.lines().collect();
    let tag = lines.iter().position(|l| l.trim_start().starts_with("fg [")).unwrap_or_else(|| panic!("no fg:\n{text}"));
    let body: Vec<&str> = lines[tag + 1..].iter().take_while(|l| !l.trim().is_empty()).copied().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    assert!(body.len() >= 3, "fg's help is wrapped at 60 columns: {body:?}");
    assert!(body.iter().all(|l| indent(l) == indent(body[0]) && indent(l) > indent(lines[tag])), "{body:#?}");
}

#[test]
fn the_shipped_example_starts_and_its_pty_shell_can_be_attached() {
    let example = std::fs::read_to_string(workspace().join("examples/taskmaster.yaml")).unwrap();
    // Its programs, under the scratch daemon's own server and socket sections.
    let programs = &example[example.find("\nprograms:").expect("programs:") + 1..];
    let d = Daemon::start(programs);
    d.wait_state("shell", "RUNNING", SOON);
    d.wait_state("ticker:1", "RUNNING", SOON);
    assert!(d.ctl(&["status", "shell"]).stdout.contains("(pty)"));
    let pid = d.proc_pid("shell");
    let ctl = bin("taskmasterctl");
    let args = [ctl.as_os_str(), OsStr::new("-s"), d.socket.as_os_str(), OsStr::new("fg"), OsStr::new("shell")];
    let mut s = PtySession::spawn(&args, 24, 80);
    s.expect("attached to shell; detach with Ctrl-]");
    s.expect("shell$ ");
    let m = s.mark();
    s.send(b"echo \"$TASKMASTER_PROCESS_NAME says $((6 * 7))\"\r");
    s.expect_after(m, "shell says 42");
    s.send(b"\x1d");
    assert!(s.wait().success(), "a detach exits 0: {:?}", s.seen);
    assert_eq!(d.state("shell"), "RUNNING");
    assert_eq!(d.proc_pid("shell"), pid, "detached, the shell runs on");
    // `exit` ends it: taskmasterctl says so and exits 0, and the daemon starts a new one.
    let mut s = PtySession::spawn(&args, 24, 80);
    s.expect("shell$ ");
    s.send(b"exit\r");
    assert_eq!(s.wait().code(), Some(0), "{:?}", s.seen);
    s.expect("[shell exited with status 0]");
    tests::wait_until("a new shell", SOON, || d.proc_pid("shell").is_some_and(|p| Some(p) != pid));
}
