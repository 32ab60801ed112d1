//! Who may do what on the control socket (DESIGN §8). Each connection's peer uid and gid come
//! from SO_PEERCRED at accept; `socket.access` rules (user or group, role, optional program
//! globs) then grant roles: viewer < operator < admin. root, the user that started taskmasterd
//! and the supervisor's own user are admin. Without rules every peer that can open the socket
//! is admin, as with supervisord's socket; with rules, a peer that matches none is refused.

use common::config::{AccessRule, Role, Subject};
use common::proto::control::Action;
use nix::unistd::{Gid, Group, Uid, User};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The role an action needs (DESIGN §8). Every action is listed: a new one must be given its
/// role here, never inherit the viewer's by default.
pub fn required_role(action: Action) -> Role {
    match action {
        Action::Auth
        | Action::Status
        | Action::Pid
        | Action::Avail
        | Action::Version
        | Action::Tail
        | Action::Maintail => Role::Viewer,
        Action::Start | Action::Stop | Action::Restart | Action::Signal | Action::Attach | Action::Clear => {
            Role::Operator
        }
        Action::Reread | Action::Update | Action::Reload | Action::Shutdown => Role::Admin,
    }
}

/// The role's name as messages print it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

/// What a peer was granted at accept.
#[derive(Debug, Clone)]
pub enum Grants {
    /// Everything (root, the daemon's users, or no rules configured).
    Admin,
    /// The roles of the rules it matched, each narrowed to some programs (empty: all). An
    /// empty list: no rule matched.
    Rules(Vec<(Role, Vec<glob::Pattern>)>),
}

impl Grants {
    /// The best role for `program`; for an action on no program (`None`: the main log, reload,
    /// shutdown …) only the rules not narrowed to programs count.
    pub fn role_for(&self, program: Option<&str>) -> Option<Role> {
        match self {
            Grants::Admin => Some(Role::Admin),
            Grants::Rules(rules) => rules
                .iter()
                .filter(|(_, globs)| match program {
                    None => globs.is_empty(),
                    Some(p) => globs.is_empty() || globs.iter().any(|g| g.matches(p)),
                })
                .map(|(r, _)| *r)
                .max(),
        }
    }

    /// Whether no rule matched at all.
    pub fn is_nobody(&self) -> bool {
        matches!(self, Grants::Rules(r) if r.is_empty())
    }
}

/// The name-service lookups behind `socket.access` (getpwnam, getgrnam, getpwuid and
/// getgrouplist); a trait so that the cache can be tested without a user database.
pub trait Lookup {
    /// The uid of user `name`; `None` if there is none or the lookup failed.
    fn uid_of(&self, name: &str) -> Option<u32>;
    /// The gid of group `name`; `None` if there is none or the lookup failed.
    fn gid_of(&self, name: &str) -> Option<u32>;
    /// The groups `uid` belongs to in the databases: its primary gid and its supplementary
    /// groups; empty if the uid has no user entry.
    fn groups_of(&self, uid: u32) -> Vec<u32>;
}

/// The system's name service (NSS: /etc/passwd and /etc/group, or whatever nsswitch.conf says).
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Lookup for System {
    fn uid_of(&self, name: &str) -> Option<u32> {
        User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
    }

    fn gid_of(&self, name: &str) -> Option<u32> {
        Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
    }

    fn groups_of(&self, uid: u32) -> Vec<u32> {
        let mut groups = Vec::new();
        if let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) {
            groups.push(user.gid.as_raw());
            if let Ok(name) = std::ffi::CString::new(user.name) {
                let list: Vec<Gid> = nix::unistd::getgrouplist(&name, user.gid).unwrap_or_default();
                groups.extend(list.into_iter().map(Gid::as_raw));
            }
        }
        groups
    }
}

/// The files whose change makes the cache resolve names again.
pub const WATCHED: [&str; 2] = ["/etc/passwd", "/etc/group"];

/// How often at most the watched files are looked at (one `stat` each).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Most uids whose group memberships are kept; past it the memberships are forgotten at once.
const MAX_MEMBERS: usize = 4096;

/// A file's identity and version: device, inode, size and mtime (s, ns); `None`: missing.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// One `socket.access` rule with its name resolved and its globs compiled.
#[derive(Debug, Clone)]
struct Resolved {
    /// A user rule's uid, or a group rule's gid; `None`: the name did not resolve (matches
    /// nobody).
    id: Option<u32>,
    group: bool,
    role: Role,
    globs: Vec<glob::Pattern>,
}

/// `socket.access` resolved once, so that accepting a connection makes no name-service lookup
/// in the common case (issue 13): the rules' uids and gids are resolved on first use, and each
/// peer uid's group memberships on its first connection. All of it is forgotten when
/// /etc/passwd or /etc/group change (their device, inode, size or mtime; looked at no more than
/// once per [`CHECK_EVERY`]) or on [`AccessCache::invalidate`] (SIGHUP), and resolved again on
/// the next connection. Grants are those [`grants_for`] gives with fresh lookups.
#[derive(Debug)]
pub struct AccessCache<L: Lookup = System> {
    rules: Vec<AccessRule>,
    admins: Vec<u32>,
    lookup: L,
    watched: Vec<PathBuf>,
    stamps: Vec<Stamp>,
    checked: Option<Instant>,
    resolved: Option<Vec<Resolved>>,
    members: HashMap<u32, Vec<u32>>,
}

impl AccessCache<System> {
    /// A cache of `rules` for the system's name service, watching [`WATCHED`]. `admins` are the
    /// uids that are always admin.
    pub fn new(rules: Vec<AccessRule>, admins: Vec<u32>) -> Self {
        Self::with_lookup(rules, admins, System, WATCHED.iter().map(PathBuf::from).collect())
    }
}

impl<L: Lookup> AccessCache<L> {
    /// A cache of `rules` resolved by `lookup`, refreshed when a file of `watched` changes.
    pub fn with_lookup(rules: Vec<AccessRule>, admins: Vec<u32>, lookup: L, watched: Vec<PathBuf>) -> Self {
        AccessCache {
            rules,
            admins,
            lookup,
            watched,
            stamps: Vec::new(),
            checked: None,
            resolved: None,
            members: HashMap::new(),
        }
    }

    /// Forgets every resolved name and membership (SIGHUP: the name service may have changed
    /// where no watched file shows it, e.g. LDAP or systemd-userdb).
    pub fn invalidate(&mut self) {
        self.resolved = None;
        self.members.clear();
    }

    /// Grants for a peer with uid `uid` and gid `gid`, accepted at `now`.
    pub fn grants(&mut self, uid: u32, gid: u32, now: Instant) -> Grants {
        if self.rules.is_empty() || uid == 0 || self.admins.contains(&uid) {
            return Grants::Admin;
        }
        self.check_files(now);
        let lookup = &self.lookup;
        let rules = &self.rules;
        let resolved = self.resolved.get_or_insert_with(|| {
            rules
                .iter()
                .map(|r| {
                    let (id, group) = match &r.subject {
                        Subject::User(name) => (lookup.uid_of(name), false),
                        Subject::Group(name) => (lookup.gid_of(name), true),
                    };
                    let globs = r.programs.iter().filter_map(|p| glob::Pattern::new(p).ok()).collect();
                    Resolved { id, group, role: r.role, globs }
                })
                .collect()
        });
        let groups = if resolved.iter().any(|r| r.group && r.id.is_some()) {
            if self.members.len() >= MAX_MEMBERS && !self.members.contains_key(&uid) {
                self.members.clear();
            }
            self.members.entry(uid).or_insert_with(|| lookup.groups_of(uid)).as_slice()
        } else {
            &[]
        };
        let matched = resolved
            .iter()
            .filter(|r| r.id.is_some_and(|id| if r.group { id == gid || groups.contains(&id) } else { id == uid }))
            .map(|r| (r.role, r.globs.clone()))
            .collect();
        Grants::Rules(matched)
    }

    /// Stats the watched files if [`CHECK_EVERY`] has passed; forgets what was resolved if one
    /// of them changed.
    fn check_files(&mut self, now: Instant) {
        if self.checked.is_some_and(|at| now < at + CHECK_EVERY) {
            return;
        }
        self.checked = Some(now);
        let stamps: Vec<Stamp> = self.watched.iter().map(|p| stamp(p)).collect();
        if stamps != self.stamps {
            self.stamps = stamps;
            self.invalidate();
        }
    }
}

/// Grants for a peer, with fresh lookups (what [`AccessCache::grants`] answers from its cache).
/// `admins` are the uids that are always admin.
pub fn grants_for(uid: u32, gid: u32, rules: &[AccessRule], admins: &[u32]) -> Grants {
    AccessCache::new(rules.to_vec(), admins.to_vec()).grants(uid, gid, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_the_role_design_gives_it() {
        // DESIGN §8: viewer (status, tail, maintail, pid, avail), operator (+ start, stop,
        // restart, signal, fg, clear), admin (+ reread, update, reload, shutdown); `version` and
        // `auth` need no more than a viewer.
        let expected = |a: Action| match a.as_str() {
            "status" | "tail" | "maintail" | "pid" | "avail" | "version" | "auth" => Role::Viewer,
            "start" | "stop" | "restart" | "signal" | "attach" | "clear" => Role::Operator,
            "reread" | "update" | "reload" | "shutdown" => Role::Admin,
            other => panic!("action {other} has no role in DESIGN §8"),
        };
        for a in Action::ALL {
            assert_eq!(required_role(a), expected(a), "{a}");
        }
    }

    #[test]
    fn roles_are_narrowed_by_program_globs() {
        let g =
            Grants::Rules(vec![(Role::Viewer, vec![]), (Role::Operator, vec![glob::Pattern::new("web*").unwrap()])]);
        assert_eq!(g.role_for(Some("web2")), Some(Role::Operator));
        assert_eq!(g.role_for(Some("db")), Some(Role::Viewer));
        assert_eq!(g.role_for(None), Some(Role::Viewer));
        let scoped = Grants::Rules(vec![(Role::Admin, vec![glob::Pattern::new("web").unwrap()])]);
        assert_eq!(scoped.role_for(None), None, "a rule narrowed to programs grants nothing global");
        assert!(Grants::Rules(vec![]).is_nobody());
        assert_eq!(required_role(Action::Stop), Role::Operator);
        assert_eq!(required_role(Action::Update), Role::Admin);
        assert_eq!(required_role(Action::Tail), Role::Viewer);
        assert_eq!(Action::from_name("fg"), Some(Action::Attach));
        assert!(Action::ALL.iter().all(|a| Action::from_name(a.as_str()) == Some(*a)));
    }

    #[test]
    fn root_and_listed_admins_are_admin_and_no_rules_means_admin() {
        let rules = vec![AccessRule { subject: Subject::User("nobody".into()), role: Role::Viewer, programs: vec![] }];
        assert!(matches!(grants_for(0, 0, &rules, &[]), Grants::Admin));
        assert!(matches!(grants_for(4321, 4321, &rules, &[4321]), Grants::Admin));
        assert!(matches!(grants_for(4321, 4321, &[], &[]), Grants::Admin));
        assert!(grants_for(4321, 4321, &rules, &[]).is_nobody());
        assert_eq!(grants_for(65534, 65534, &rules, &[]).role_for(Some("x")), Some(Role::Viewer));
    }

    /// A name service from a table, counting its lookups.
    #[derive(Default)]
    struct Fake {
        users: std::cell::RefCell<HashMap<String, u32>>,
        groups: std::cell::RefCell<HashMap<String, u32>>,
        members: std::cell::RefCell<HashMap<u32, Vec<u32>>>,
        lookups: std::cell::Cell<usize>,
    }

    impl Lookup for &Fake {
        fn uid_of(&self, name: &str) -> Option<u32> {
            self.lookups.set(self.lookups.get() + 1);
            self.users.borrow().get(name).copied()
        }
        fn gid_of(&self, name: &str) -> Option<u32> {
            self.lookups.set(self.lookups.get() + 1);
            self.groups.borrow().get(name).copied()
        }
        fn groups_of(&self, uid: u32) -> Vec<u32> {
            self.lookups.set(self.lookups.get() + 1);
            self.members.borrow().get(&uid).cloned().unwrap_or_default()
        }
    }

    #[test]
    fn the_cache_resolves_once_and_again_when_passwd_or_group_change() {
        let dir = tempfile::tempdir().unwrap();
        let (passwd, group) = (dir.path().join("passwd"), dir.path().join("group"));
        std::fs::write(&passwd, "alice:x:1000:1000::/:/bin/sh\n").unwrap();
        std::fs::write(&group, "ops:x:2000:\n").unwrap();
        let fake = Fake::default();
        fake.users.borrow_mut().insert("alice".into(), 1000);
        fake.groups.borrow_mut().insert("ops".into(), 2000);
        fake.members.borrow_mut().insert(1001, vec![1001, 2000]);
        let rules = vec![
            AccessRule { subject: Subject::User("alice".into()), role: Role::Operator, programs: vec![] },
            AccessRule { subject: Subject::Group("ops".into()), role: Role::Viewer, programs: vec!["web*".into()] },
        ];
        let mut cache = AccessCache::with_lookup(rules, vec![42], &fake, vec![passwd.clone(), group.clone()]);
        let t0 = Instant::now();
        // Admins and root need no lookup at all.
        assert!(matches!(cache.grants(0, 0, t0), Grants::Admin));
        assert!(matches!(cache.grants(42, 42, t0), Grants::Admin));
        assert_eq!(fake.lookups.get(), 0);

        assert_eq!(cache.grants(1000, 1000, t0).role_for(None), Some(Role::Operator));
        assert_eq!(cache.grants(1001, 1001, t0).role_for(Some("web1")), Some(Role::Viewer));
        assert!(cache.grants(1002, 1002, t0).is_nobody());
        // By the peer's gid alone, as SO_PEERCRED reports it.
        assert_eq!(cache.grants(1003, 2000, t0).role_for(Some("web")), Some(Role::Viewer));
        let first = fake.lookups.get();
        assert_eq!(first, 2 + 4, "the two rules once, then each new uid's groups once");

        // The common case: known peers, unchanged files: no lookup, even after the check interval.
        for t in [t0, t0 + Duration::from_millis(500), t0 + Duration::from_secs(5)] {
            assert_eq!(cache.grants(1000, 1000, t).role_for(None), Some(Role::Operator));
            assert_eq!(cache.grants(1001, 1001, t).role_for(Some("web1")), Some(Role::Viewer));
        }
        assert_eq!(fake.lookups.get(), first);

        // The database changes: alice is now uid 1002, 1001 has left ops.
        fake.users.borrow_mut().insert("alice".into(), 1002);
        fake.members.borrow_mut().insert(1001, vec![1001]);
        std::fs::write(&passwd, "alice:x:1002:1000::/:/bin/sh\n").unwrap();
        std::fs::write(&group, "ops:x:2000:\n").unwrap();
        // Within a second of the last look at the files, the old answers stand.
        let t1 = t0 + Duration::from_millis(5500);
        assert_eq!(cache.grants(1000, 1000, t1).role_for(None), Some(Role::Operator));
        assert_eq!(fake.lookups.get(), first);
        // Then the change is seen and everything is resolved again.
        let t2 = t0 + Duration::from_secs(7);
        assert!(cache.grants(1000, 1000, t2).is_nobody());
        assert_eq!(cache.grants(1002, 1002, t2).role_for(None), Some(Role::Operator));
        assert!(cache.grants(1001, 1001, t2).is_nobody());
        let second = fake.lookups.get();
        assert!(second > first);
        assert!(cache.grants(1001, 1001, t2 + Duration::from_secs(3)).is_nobody());
        assert_eq!(fake.lookups.get(), second);

        // A replaced file (a new inode, as useradd's rename does) is a change too.
        std::fs::remove_file(&group).unwrap();
        std::fs::write(&group, "ops:x:2000:\n").unwrap();
        fake.members.borrow_mut().insert(1001, vec![1001, 2000]);
        let t3 = t2 + Duration::from_secs(10);
        assert_eq!(cache.grants(1001, 1001, t3).role_for(Some("web1")), Some(Role::Viewer));
        assert!(fake.lookups.get() > second);

        // SIGHUP forgets everything without any file change.
        let third = fake.lookups.get();
        cache.invalidate();
        assert_eq!(cache.grants(1001, 1001, t3).role_for(Some("web1")), Some(Role::Viewer));
        assert!(fake.lookups.get() > third);
    }
}
