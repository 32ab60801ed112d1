//! autorestart × exitcodes on real processes (the full matrix is also a unit test of state.rs).

use crate::SOON;
use tests::{count_lines, wait_until, Daemon, Scratch};

#[test]
fn autorestart_against_exitcodes() {
    let s = Scratch::new();
    // (name, autorestart, exit code, restarted?)
    let cases = [
        ("always_ok", "always", 0, true),
        ("never_bad", "never", 3, false),
        ("unexpected_ok", "unexpected", 0, false),
        ("unexpected_listed", "unexpected", 2, false),
        ("unexpected_bad", "unexpected", 3, true),
    ];
    let mut yaml = String::from("programs:\n");
    for (name, policy, code, _) in cases {
        let file = s.path(name);
        yaml.push_str(&format!(
            "  {name}:\n    command: /bin/sh -c 'echo x >> {}; sleep 0.2; exit {code}'\n    autorestart: {policy}\n    exitcodes: [0, 2]\n    startsecs: 0\n",
            file.display()
        ));
    }
    let d = Daemon::start_in(s, &yaml);
    for (name, _, code, restarted) in cases {
        let file = d.scratch.path(name);
        if restarted {
            wait_until(&format!("{name} spawned a second time"), SOON, || count_lines(&file) >= 2);
        } else {
            // EXITED is final: a restart would have left it at once for STARTING.
            d.wait_state(name, "EXITED", SOON);
            assert_eq!(count_lines(&file), 1, "{name}");
            assert_eq!(d.row(name)["exitstatus"], code);
        }
    }
    d.wait_log("exited: 'unexpected_listed' (exit status 2; expected)", SOON);
    d.wait_log("exited: 'never_bad' (exit status 3; not expected)", SOON);
}
