//! The difference between two configs, as DESIGN §4 acts on it: which programs were added,
//! removed, or changed, and whether a change reshapes the process (restart), only scales it
//! (numprocs) or only touches supervision (applied in place).

use super::model::{Config, Program, Stream, StreamLog};
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

/// The keys of `a` and `b` that differ, sorted by what a change to them requires: those that
/// shape the process, `numprocs`, and those that only change how it is supervised, each in
/// config order.
///
/// Every field of [`Program`] and [`StreamLog`] is named in the destructuring below, with no
/// `..`: a field added to either does not compile until it is given a kind here, so no new key
/// can escape reload unnoticed (the test `every_field_has_a_kind` relies on this).
fn changed_fields(a: &Program, b: &Program) -> (Vec<&'static str>, bool, Vec<&'static str>) {
    let Program {
        // The key itself: programs are matched by name, so it never differs here.
        name: _,
        command,
        numprocs,
        numprocs_start,
        priority,
        autostart,
        autorestart,
        exitcodes,
        startsecs,
        startretries,
        stopsignal,
        stopwaitsecs,
        stopasgroup,
        killasgroup,
        cleanupgroup,
        user,
        directory,
        umask,
        environment,
        stdout,
        stderr,
        redirect_stderr,
        pty,
        capabilities,
    } = a;
    let (out_shape, out_supervision) = stream_fields(stdout, &b.stdout, Stream::Stdout);
    let (err_shape, err_supervision) = stream_fields(stderr, &b.stderr, Stream::Stderr);
    let keep = |differs: bool, key: &'static str| differs.then_some(key);
    let shape = [
        keep(*command != b.command, "command"),
        keep(*numprocs_start != b.numprocs_start, "numprocs_start"),
        keep(*user != b.user, "user"),
        keep(*directory != b.directory, "directory"),
        keep(*umask != b.umask, "umask"),
        keep(*environment != b.environment, "environment"),
        out_shape,
        err_shape,
        keep(*redirect_stderr != b.redirect_stderr, "redirect_stderr"),
        keep(*pty != b.pty, "pty"),
        keep(*capabilities != b.capabilities, "capabilities"),
    ];
    let supervision = [
        keep(*priority != b.priority, "priority"),
        keep(*autostart != b.autostart, "autostart"),
        keep(*autorestart != b.autorestart, "autorestart"),
        keep(*exitcodes != b.exitcodes, "exitcodes"),
        keep(*startsecs != b.startsecs, "startsecs"),
        keep(*startretries != b.startretries, "startretries"),
        keep(*stopsignal != b.stopsignal, "stopsignal"),
        keep(*stopwaitsecs != b.stopwaitsecs, "stopwaitsecs"),
        keep(*stopasgroup != b.stopasgroup, "stopasgroup"),
        keep(*killasgroup != b.killasgroup, "killasgroup"),
        // Read by the spawner from the config a child was started under: the running one keeps
        // its setting, the next start takes the new one (as stopasgroup).
        keep(*cleanupgroup != b.cleanupgroup, "cleanupgroup"),
    ];
    let shape = shape.into_iter().flatten().collect();
    let supervision = supervision.into_iter().flatten().chain(out_supervision).chain(err_supervision).collect();
    (shape, *numprocs != b.numprocs, supervision)
}

/// The keys of one stream's log settings that differ: the target shapes the process (its fd),
/// the rest only supervision. Destructured in full for the reason [`changed_fields`] gives.
fn stream_fields(a: &StreamLog, b: &StreamLog, stream: Stream) -> (Option<&'static str>, Vec<&'static str>) {
    let StreamLog { target, maxbytes, backups, syslog } = a;
    let keys = match stream {
        Stream::Stdout => ["stdout_logfile", "stdout_logfile_maxbytes", "stdout_logfile_backups", "stdout_syslog"],
        Stream::Stderr => ["stderr_logfile", "stderr_logfile_maxbytes", "stderr_logfile_backups", "stderr_syslog"],
    };
    let shape = (*target != b.target).then_some(keys[0]);
    let supervision =
        [(*maxbytes != b.maxbytes, keys[1]), (*backups != b.backups, keys[2]), (*syslog != b.syslog, keys[3])];
    (shape, supervision.into_iter().filter(|(d, _)| *d).map(|(_, k)| k).collect())
}

/// Compares two programs of the same name; `None` when they are equal.
pub fn diff_program(old: &Program, new: &Program) -> Option<ProgramChange> {
    let (shape, scale, supervision) = changed_fields(old, new);
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

    /// Every key of a program has a kind: `changed_fields` destructures `Program` and
    /// `StreamLog` with every field named, so adding a field without deciding what its change
    /// requires fails to compile (this test then does not build). Here each key, changed
    /// alone, is reported under its own name.
    #[test]
    fn every_field_has_a_kind() {
        let base = cfg("  a:\n    command: x\n");
        let one = |key: &str, value: &str| {
            let new = cfg(&format!("  a:\n    command: x\n    {key}: {value}\n"));
            diff(&base, &new).changed.into_iter().next().map(|c| (c.kind, c.fields))
        };
        assert_eq!(one("numprocs", "2"), Some((ChangeKind::Scale, vec!["numprocs".to_owned()])));
        assert_eq!(one("stopwaitsecs", "3"), Some((ChangeKind::Supervision, vec!["stopwaitsecs".to_owned()])));
        assert_eq!(one("cleanupgroup", "false"), Some((ChangeKind::Supervision, vec!["cleanupgroup".to_owned()])));
        assert_eq!(
            one("stderr_logfile_maxbytes", "1KB"),
            Some((ChangeKind::Supervision, vec!["stderr_logfile_maxbytes".to_owned()]))
        );
        assert_eq!(one("directory", "/tmp"), Some((ChangeKind::Reshape, vec!["directory".to_owned()])));
        let p = &base.programs[0];
        assert_eq!(changed_fields(p, p), (vec![], false, vec![]));
    }
}
