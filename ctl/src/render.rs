//! Output formats, as supervisorctl prints them.

use common::proto::control::{ActionResult, AvailInfo, ProcessInfo};

/// `web:0                            RUNNING   pid 4242, uptime 0:01:07` (supervisorctl's
/// `%-32s %-10s%s`, the name column widened for longer names).
pub fn status(rows: &[ProcessInfo]) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(32);
    let mut out = String::new();
    for r in rows {
        out.push_str(format!("{:<width$} {:<10}{}", r.name, r.state, r.description).trim_end());
        out.push('\n');
    }
    out
}

/// `web:0: started`, `web:1: ERROR (already started)`.
pub fn results(rows: &[ActionResult]) -> String {
    rows.iter().map(|r| format!("{}: {}\n", r.name, r.message)).collect()
}

/// `web                              in use    auto      999:999`.
pub fn avail(rows: &[AvailInfo]) -> String {
    rows.iter()
        .map(|r| {
            format!(
                "{:<32} {:<9} {:<9} {}:{}\n",
                r.name,
                r.state,
                if r.autostart { "auto" } else { "manual" },
                r.priority,
                r.priority
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_aligned_like_supervisorctl() {
        let row = ProcessInfo {
            name: "web:0".into(),
            program: "web".into(),
            instance: 0,
            state: "RUNNING".into(),
            pid: Some(4242),
            uptime_s: 67,
            exitstatus: None,
            description: "pid 4242, uptime 0:01:07".into(),
            pty: false,
        };
        assert_eq!(status(&[row]), "web:0                            RUNNING   pid 4242, uptime 0:01:07\n");
    }
}
