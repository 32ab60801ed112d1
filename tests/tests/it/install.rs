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
