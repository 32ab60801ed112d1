//! The difference between two configs, as DESIGN §4 acts on it: which programs were added,
//! removed, or changed, and whether a change reshapes the process (restart), only scales it
//! (numprocs) or only touches supervision (applied in place).

use super::model::{Config, Program};
use serde::{Deserialize, Serialize};

/// How a changed program is brought in line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// Something that shapes the process changed (command, user, env, directory, umask, log
    /// paths …): its instances are restarted.
    Reshape,
    /// Only `numprocs` (and perhaps supervision settings): instances are added or removed, the
    /// rest untouched.
    Scale,
    /// Only supervision settings (autorestart, exitcodes, stopwaitsecs, priority …): applied in
    /// place, nothing restarted.
    Supervision,
}

/// One changed program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramChange {
    /// Program name.
    pub name: String,
    /// What the change requires.
    pub kind: ChangeKind,
    /// The keys that differ, in config order: `["command", "stopwaitsecs"]`.
    pub fields: Vec<String>,
}

/// What a reload does (DESIGN §4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadPlan {
    /// Programs only in the new config.
    pub added: Vec<String>,
    /// Programs only in the old config.
    pub removed: Vec<String>,
    /// Programs in both that differ.
    pub changed: Vec<ProgramChange>,
    /// `server`/`socket` keys that differ; they take effect only when taskmasterd restarts.
    pub server_fields: Vec<String>,
}

impl ReloadPlan {
    /// Whether nothing differs for programs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Keeps only the programs named (an empty list keeps all).
    pub fn only(mut self, names: &[String]) -> Self {
        if names.is_empty() || names.iter().any(|n| n == "all") {
            return self;
        }
        self.added.retain(|n| names.contains(n));
        self.removed.retain(|n| names.contains(n));
        self.changed.retain(|c| names.contains(&c.name));
        self
    }

    /// `reread`'s lines: `web: changed (command)`, `db: added`, `old: removed`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in &self.added {
            out.push(format!("{n}: added"));
        }
        for c in &self.changed {
            out.push(format!("{}: changed ({})", c.name, c.fields.join(", ")));
        }
        for n in &self.removed {
            out.push(format!("{n}: removed"));
        }
        if !self.server_fields.is_empty() {
            out.push(format!(
                "server: changed ({}); takes effect when taskmasterd restarts",
                self.server_fields.join(", ")
            ));
        }
        out
    }
}

macro_rules! compare {
    ($out:ident, $a:ident, $b:ident, $($field:ident).+ => $name:expr) => {
        if $a.$($field).+ != $b.$($field).+ {
            $out.push($name);
        }
    };
}

/// The keys of a program that shape its process.
fn shape_fields(a: &Program, b: &Program) -> Vec<&'static str> {
    let mut out = Vec::new();
    compare!(out, a, b, command => "command");
    compare!(out, a, b, numprocs_start => "numprocs_start");
    compare!(out, a, b, user => "user");
    compare!(out, a, b, directory => "directory");
    compare!(out, a, b, umask => "umask");
    compare!(out, a, b, environment => "environment");
    compare!(out, a, b, stdout.target => "stdout_logfile");
    compare!(out, a, b, stderr.target => "stderr_logfile");
    compare!(out, a, b, redirect_stderr => "redirect_stderr");
    compare!(out, a, b, pty => "pty");
    compare!(out, a, b, capabilities => "capabilities");
    out
}

/// The keys of a program that only change how it is supervised.
fn supervision_fields(a: &Program, b: &Program) -> Vec<&'static str> {
    let mut out = Vec::new();
    compare!(out, a, b, priority => "priority");
    compare!(out, a, b, autostart => "autostart");
    compare!(out, a, b, autorestart => "autorestart");
    compare!(out, a, b, exitcodes => "exitcodes");
    compare!(out, a, b, startsecs => "startsecs");
    compare!(out, a, b, startretries => "startretries");
    compare!(out, a, b, stopsignal => "stopsignal");
    compare!(out, a, b, stopwaitsecs => "stopwaitsecs");
    compare!(out, a, b, stopasgroup => "stopasgroup");
    compare!(out, a, b, killasgroup => "killasgroup");
    compare!(out, a, b, stdout.maxbytes => "stdout_logfile_maxbytes");
    compare!(out, a, b, stdout.backups => "stdout_logfile_backups");
    compare!(out, a, b, stdout.syslog => "stdout_syslog");
    compare!(out, a, b, stderr.maxbytes => "stderr_logfile_maxbytes");
    compare!(out, a, b, stderr.backups => "stderr_logfile_backups");
    compare!(out, a, b, stderr.syslog => "stderr_syslog");
    out
}

/// Compares two programs of the same name; `None` when they are equal.
pub fn diff_program(old: &Program, new: &Program) -> Option<ProgramChange> {
    let shape = shape_fields(old, new);
    let scale = old.numprocs != new.numprocs;
    let supervision = supervision_fields(old, new);
    let kind = match (shape.is_empty(), scale, supervision.is_empty()) {
        (true, false, true) => return None,
        (false, _, _) => ChangeKind::Reshape,
        (true, true, _) => ChangeKind::Scale,
        (true, false, false) => ChangeKind::Supervision,
    };
    let mut fields: Vec<String> = shape.into_iter().map(String::from).collect();
    if scale {
        fields.push("numprocs".into());
    }
    fields.extend(supervision.into_iter().map(String::from));
    Some(ProgramChange { name: new.name.clone(), kind, fields })
}

/// The plan that takes `old` to `new`.
pub fn diff(old: &Config, new: &Config) -> ReloadPlan {
    let find = |c: &Config, n: &str| c.programs.iter().find(|p| p.name == n).cloned();
    let mut plan = ReloadPlan::default();
    for p in &new.programs {
        match find(old, &p.name) {
            None => plan.added.push(p.name.clone()),
            Some(o) => plan.changed.extend(diff_program(&o, p)),
        }
    }
    plan.removed = old.programs.iter().filter(|p| find(new, &p.name).is_none()).map(|p| p.name.clone()).collect();
    let (a, b) = (&old.server, &new.server);
    let mut s = Vec::new();
    compare!(s, a, b, logfile => "logfile");
    compare!(s, a, b, logfile_maxbytes => "logfile_maxbytes");
    compare!(s, a, b, logfile_backups => "logfile_backups");
    compare!(s, a, b, loglevel => "loglevel");
    compare!(s, a, b, syslog => "syslog");
    compare!(s, a, b, pidfile => "pidfile");
    compare!(s, a, b, user => "user");
    compare!(s, a, b, umask => "umask");
    compare!(s, a, b, directory => "directory");
    compare!(s, a, b, minfds => "minfds");
    compare!(s, a, b, minprocs => "minprocs");
    compare!(s, a, b, childlogdir => "childlogdir");
    if old.socket != new.socket {
        s.push("socket");
    }
    plan.server_fields = s.into_iter().map(String::from).collect();
    // server.environment reaches every child: it reshapes every program.
    if a.environment != b.environment {
        for p in &new.programs {
            if find(old, &p.name).is_some() {
                match plan.changed.iter_mut().find(|c| c.name == p.name) {
                    Some(c) => {
                        c.kind = ChangeKind::Reshape;
                        c.fields.push("server.environment".into());
                    }
                    None => plan.changed.push(ProgramChange {
                        name: p.name.clone(),
                        kind: ChangeKind::Reshape,
                        fields: vec!["server.environment".into()],
                    }),
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load::load_str, Context};

    fn cfg(programs: &str) -> Config {
        let ctx = Context { is_root: false, current_user: None, check_users: false, trusted_uid: None };
        load_str(std::path::Path::new("/t.yaml"), &format!("programs:\n{programs}"), &ctx).unwrap()
    }

    #[test]
    fn classifies_each_kind_of_change() {
        let old = cfg("  a:\n    command: x\n  b:\n    command: y\n  c:\n    command: z\n  d:\n    command: w\n  gone:\n    command: q\n");
        let new = cfg("  a:\n    command: x2\n  b:\n    command: y\n    numprocs: 3\n  c:\n    command: z\n    stopwaitsecs: 3\n  d:\n    command: w\n  new:\n    command: n\n");
        let plan = diff(&old, &new);
        assert_eq!(plan.added, ["new"]);
        assert_eq!(plan.removed, ["gone"]);
        let kinds: Vec<(&str, ChangeKind)> = plan.changed.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        assert_eq!(kinds, [("a", ChangeKind::Reshape), ("b", ChangeKind::Scale), ("c", ChangeKind::Supervision)]);
        assert_eq!(
            plan.describe(),
            [
                "new: added",
                "a: changed (command)",
                "b: changed (numprocs)",
                "c: changed (stopwaitsecs)",
                "gone: removed"
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn environment_changes_reshape() {
        let old = cfg("  a:\n    command: x\n    env: {A: 1}\n");
        let new = cfg("  a:\n    command: x\n    env: {A: 2}\n    numprocs: 2\n");
        let c = &diff(&old, &new).changed[0];
        assert_eq!(
            (c.kind, c.fields.clone()),
            (ChangeKind::Reshape, vec!["environment".to_owned(), "numprocs".to_owned()])
        );
    }

    #[test]
    fn only_keeps_named_programs() {
        let old = cfg("  a:\n    command: x\n");
        let new = cfg("  a:\n    command: y\n  b:\n    command: z\n");
        let plan = diff(&old, &new).only(&["b".to_owned()]);
        assert_eq!((plan.added.len(), plan.changed.len()), (1, 0));
    }
}
