//! Who may do what on the control socket (DESIGN §8). Each connection's peer uid and gid come
//! from SO_PEERCRED at accept; `socket.access` rules (user or group, role, optional program
//! globs) then grant roles: viewer < operator < admin. root, the user that started taskmasterd
//! and the supervisor's own user are admin. Without rules every peer that can open the socket
//! is admin, as with supervisord's socket; with rules, a peer that matches none is refused.

use common::config::{AccessRule, Role, Subject};
use common::proto::control::Action;
use nix::unistd::{Gid, Group, Uid, User};

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

/// The groups of a uid: its primary gid, the peer's gid, and its supplementary groups from the
/// group database.
fn groups_of(uid: u32, gid: u32) -> Vec<Gid> {
    let mut groups = vec![Gid::from_raw(gid)];
    if let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) {
        groups.push(user.gid);
        if let Ok(name) = std::ffi::CString::new(user.name) {
            groups.extend(nix::unistd::getgrouplist(&name, user.gid).unwrap_or_default());
        }
    }
    groups
}

/// Grants for a peer. `admins` are the uids that are always admin.
pub fn grants_for(uid: u32, gid: u32, rules: &[AccessRule], admins: &[u32]) -> Grants {
    if rules.is_empty() || uid == 0 || admins.contains(&uid) {
        return Grants::Admin;
    }
    let groups = groups_of(uid, gid);
    let matched = rules
        .iter()
        .filter(|r| match &r.subject {
            Subject::User(name) => User::from_name(name).ok().flatten().is_some_and(|u| u.uid.as_raw() == uid),
            Subject::Group(name) => Group::from_name(name).ok().flatten().is_some_and(|g| groups.contains(&g.gid)),
        })
        .map(|r| (r.role, r.programs.iter().filter_map(|p| glob::Pattern::new(p).ok()).collect()))
        .collect();
    Grants::Rules(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
