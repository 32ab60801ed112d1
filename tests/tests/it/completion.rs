//! The shell completions of `completions/`: the bash one run in a real bash, as bash runs it
//! (COMP_WORDS, COMP_CWORD, COMP_LINE, COMP_POINT), against a running daemon; the zsh and fish
//! ones parsed, and fish's run, when those shells are installed.

use crate::SOON;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tests::{bin, Daemon};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("completions").join(name)
}

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

/// What `script`'s function `func` proposes for `line` (the cursor at its end), with
/// COMP_WORDS split as bash splits them (at blanks, and around `:`, in COMP_WORDBREAKS).
fn bash_complete(script: &Path, func: &str, line: &str) -> Vec<String> {
    let driver = format!(
        r#"source "$1" || exit 9
COMP_LINE=$2
COMP_POINT=${{#COMP_LINE}}
read -ra COMP_WORDS <<<"${{COMP_LINE//:/ : }}"
[[ -z $COMP_LINE || $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
{func}
printf '%s\n' "${{COMPREPLY[@]}}""#
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &driver, "bash"])
        .arg(script)
        .arg(line)
        .env_remove("TASKMASTER_CONFIG")
        .output()
        .expect("run bash");
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[test]
fn bash_completes_actions_then_the_daemons_names_and_never_hidden_flags() {
    let d = Daemon::start("programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n  ticker:\n    command: sleep 1000\n    numprocs: 2\n    startsecs: 0\n");
    d.wait_state("ticker:1", "RUNNING", SOON);
    let ctl = bin("taskmasterctl");
    let bash = script("taskmasterctl.bash");
    let complete = |rest: &str| bash_complete(&bash, "_taskmasterctl", &format!("{} {rest}", ctl.display()));
    let sock = d.socket.display();

    assert_eq!(complete("sta"), ["status", "start"]);
    let names = complete(&format!("-s {sock} stop "));
    for n in ["all", "web", "ticker", "ticker:0", "ticker:1"] {
        assert!(names.iter().any(|c| c == n), "stop offers {n}: {names:?}");
    }
    assert_eq!(complete(&format!("-s unix://{sock} stop w")), ["web"]);
    // bash replaces what follows the colon.
    assert_eq!(complete(&format!("-s {sock} restart ticker:")), ["0", "1"]);
    assert_eq!(complete(&format!("-s {sock} tail web std")), ["stdout", "stderr"]);
    assert_eq!(complete(&format!("-s {sock} fg t")), ["ticker:0", "ticker:1"]);
    assert_eq!(complete(&format!("-s {}", d.socket.with_extension("so").display())), [sock.to_string()]);
    let options = complete("-");
    assert!(options.iter().any(|o| o == "--serverurl") && options.iter().any(|o| o == "-s"), "{options:?}");
    assert!(!options.iter().any(|o| o == "--generate-docs" || o == "--complete"), "hidden flags: {options:?}");

    // No daemon: nothing, at once.
    let started = Instant::now();
    assert!(complete(&format!("-s {} stop ", d.scratch.path("none.sock").display())).is_empty());
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());

    let options = bash_complete(&script("taskmasterd.bash"), "_taskmasterd", "taskmasterd -");
    assert!(options.iter().any(|o| o == "--check-config"), "{options:?}");
    assert!(!options.iter().any(|o| o == "--generate-docs"), "hidden flags: {options:?}");
}

#[test]
fn every_script_offers_every_visible_option_and_no_hidden_one() {
    // taskmasterctl's bash and zsh scripts ask taskmasterctl for its options (as for the rest):
    // bash is asked here; the other scripts list them.
    for (binary, scripts) in [
        ("taskmasterd", &["taskmasterd.bash", "_taskmasterd", "taskmasterd.fish"][..]),
        ("taskmasterctl", &["taskmasterctl.fish"][..]),
    ] {
        let help = Command::new(bin(binary)).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        let options: Vec<&str> = help
            .lines()
            .take_while(|l| !l.starts_with("Actions"))
            .flat_map(str::split_whitespace)
            .filter_map(|w| w.strip_prefix("--"))
            .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
            .filter(|w| !w.is_empty())
            .collect();
        assert!(options.contains(&"help") && options.len() > 3, "{binary} --help: {options:?}");
        if binary == "taskmasterctl" {
            let line = format!("{} -", bin(binary).display());
            let offered = bash_complete(&script("taskmasterctl.bash"), "_taskmasterctl", &line);
            for o in &options {
                assert!(offered.contains(&format!("--{o}")), "bash does not offer --{o}: {offered:?}");
            }
        }
        for s in scripts {
            let text = std::fs::read_to_string(script(s)).unwrap();
            for o in &options {
                // bash and zsh spell `--name`; fish `-l name`.
                assert!(text.contains(&format!("--{o}")) || text.contains(&format!("-l {o}")), "{s} lacks --{o}");
            }
            assert!(!text.contains("generate-docs"), "{s} offers a hidden flag");
        }
    }
}

#[test]
fn zsh_and_fish_read_their_scripts_and_fish_completes_names() {
    for (shell, scripts) in
        [("zsh", ["_taskmasterd", "_taskmasterctl"]), ("fish", ["taskmasterd.fish", "taskmasterctl.fish"])]
    {
        if !have(shell) {
            tests::skip(&format!("{shell} is not installed (.ci/run installs it)"));
            continue;
        }
        for s in scripts {
            let out = Command::new(shell).arg("-n").arg(script(s)).output().unwrap();
            assert!(out.status.success(), "{shell} -n {s}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    if !have("fish") {
        return;
    }
    let d = Daemon::start("programs:\n  web:\n    command: sleep 1000\n    startsecs: 0\n");
    let dir = bin("taskmasterctl").parent().unwrap().to_path_buf();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let line = format!("taskmasterctl -s {} stop ", d.socket.display());
    let out = Command::new("fish")
        .arg("--no-config")
        .arg("-c")
        .arg("source $argv[1]; complete -C $argv[2]")
        .arg(script("taskmasterctl.fish"))
        .arg(&line)
        .env("PATH", path)
        .env_remove("TASKMASTER_CONFIG")
        .output()
        .unwrap();
    let offered = String::from_utf8_lossy(&out.stdout);
    let offered: Vec<&str> = offered.lines().map(|l| l.split('\t').next().unwrap_or_default()).collect();
    assert!(offered.contains(&"web") && offered.contains(&"all"), "fish offers {offered:?}");
}
