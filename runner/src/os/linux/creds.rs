//! The server's credentials on Linux: what the runner is able to give up
//! (from `/proc/self/status`), and the ids the policy's names stand for,
//! looked up in the user and group databases before the spawn (the child,
//! which may not allocate, cannot ask NSS).

use std::ffi::{CString, OsString};

use mcp_runner_policy::{Account, Diagnostic, Setting};
use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

use crate::privileges::{Facts, Plan};
use crate::sys::spawn::{Credentials, Identity, SpawnSpec};

/// `CAP_SETPCAP` (linux/capability.h): clearing the bounding set needs it.
const CAP_SETPCAP: u32 = 8;

/// What this runner is and can give up.
pub fn facts() -> Facts {
    let status = std::fs::read_to_string("/proc/self/status").ok();
    Facts {
        euid: nix::unistd::geteuid().as_raw(),
        linux: true,
        // Unreadable: assume it can; if not, the child names the step that failed.
        can_clear_bounding_set: status.as_deref().is_none_or(can_clear_bounding_set),
    }
}

/// From `/proc/self/status`: `CapEff` holds CAP_SETPCAP, or `CapBnd` is
/// empty already (nothing to clear).
fn can_clear_bounding_set(status: &str) -> bool {
    let set = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    set("CapEff:").is_some_and(|eff| eff & (1 << CAP_SETPCAP) != 0) || set("CapBnd:") == Some(0)
}

/// The credentials a server is spawned with, resolved to numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerCreds {
    credentials: Credentials,
    /// `HOME`, `USER` and `LOGNAME` of the user the server runs as, as `su`
    /// and systemd's `User=` set them.
    env: Vec<(&'static str, OsString)>,
}

impl ServerCreds {
    /// One line for the log: what the server gives up.
    pub fn describe(&self) -> String {
        let c = &self.credentials;
        let mut parts = Vec::new();
        if let Some(id) = &c.identity {
            let uid = id.uid.map_or_else(|| "the runner's uid".to_owned(), |u| format!("uid {u}"));
            parts.push(format!("{uid}, gid {}, groups {:?}", id.gid, id.groups));
        }
        if c.drop_capabilities {
            parts.push("no capabilities".into());
        }
        if c.no_new_privs {
            parts.push("no_new_privs".into());
        }
        if parts.is_empty() { "the runner's privileges".into() } else { parts.join(", ") }
    }
}

/// A user or group the host cannot resolve; nothing is spawned.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredsError(Diagnostic);

/// Turns the plan's names into ids. A user without a group gets its own
/// primary group; either way a named user gets its supplementary groups
/// (`getgrouplist`, as `initgroups` would), and root's are dropped.
pub fn resolve(plan: &Plan) -> Result<ServerCreds, CredsError> {
    let user = plan.user.as_ref().map(lookup_user).transpose()?;
    let gid = plan.group.as_ref().map(lookup_group).transpose()?;
    let identity = match (user, gid) {
        (None, None) => None,
        (None, Some(gid)) => Some((Identity { uid: None, gid, groups: Vec::new() }, None)),
        (Some((setting, uid, entry)), gid) => {
            let gid = match (gid, &entry) {
                (Some(gid), _) => gid,
                (None, Some(user)) => user.gid.as_raw(),
                (None, None) => {
                    return Err(CredsError(setting.error(format!(
                        "uid {uid} has no entry in the user database, so no group of its own; set group as well"
                    ))));
                }
            };
            let groups = match &entry {
                Some(user) => supplementary(setting, user, gid)?,
                None => Vec::new(),
            };
            Some((Identity { uid: Some(uid), gid, groups }, entry))
        }
    };
    let env = match identity.as_ref().and_then(|(_, entry)| entry.as_ref()) {
        Some(user) => vec![
            ("HOME", user.dir.clone().into_os_string()),
            ("USER", OsString::from(&user.name)),
            ("LOGNAME", OsString::from(&user.name)),
        ],
        None => Vec::new(),
    };
    let credentials = Credentials {
        drop_capabilities: plan.drop_capabilities,
        identity: identity.map(|(id, _)| id),
        no_new_privs: plan.no_new_privs,
    };
    Ok(ServerCreds { credentials, env })
}

/// Puts the credentials into the spec, and the user's `HOME`, `USER` and
/// `LOGNAME` into its environment in place of the runner's.
pub fn apply(creds: &ServerCreds, spec: &mut SpawnSpec) {
    spec.credentials = creds.credentials.clone();
    for (key, value) in &creds.env {
        let prefix = format!("{key}=");
        spec.env.retain(|kv| !kv.as_encoded_bytes().starts_with(prefix.as_bytes()));
        let mut kv = OsString::from(prefix);
        kv.push(value);
        spec.env.push(kv);
    }
}

/// The uid, and the database entry if there is one (a numeric uid need not
/// have one).
fn lookup_user(s: &Setting<Account>) -> Result<(&Setting<Account>, u32, Option<User>), CredsError> {
    match &s.value {
        Account::Id(uid) => {
            let entry = User::from_uid(Uid::from_raw(*uid))
                .map_err(|e| CredsError(s.error(format!("cannot look up uid {uid}: {e}"))))?;
            Ok((s, *uid, entry))
        }
        Account::Name(name) => match User::from_name(name) {
            Ok(Some(user)) => Ok((s, user.uid.as_raw(), Some(user))),
            Ok(None) => Err(CredsError(s.error(format!("no user \"{name}\" on this host")))),
            Err(e) => Err(CredsError(s.error(format!("cannot look up user \"{name}\": {e}")))),
        },
    }
}

fn lookup_group(s: &Setting<Account>) -> Result<u32, CredsError> {
    match &s.value {
        Account::Id(gid) => Ok(*gid),
        Account::Name(name) => match Group::from_name(name) {
            Ok(Some(group)) => Ok(group.gid.as_raw()),
            Ok(None) => Err(CredsError(s.error(format!("no group \"{name}\" on this host")))),
            Err(e) => Err(CredsError(s.error(format!("cannot look up group \"{name}\": {e}")))),
        },
    }
}

/// The user's groups with `gid` among them, sorted, each once.
fn supplementary(s: &Setting<Account>, user: &User, gid: u32) -> Result<Vec<u32>, CredsError> {
    let name = CString::new(user.name.as_bytes())
        .map_err(|_| CredsError(s.error(format!("user name {:?} holds a NUL byte", user.name))))?;
    let groups = getgrouplist(&name, Gid::from_raw(gid))
        .map_err(|e| CredsError(s.error(format!("cannot list the groups of \"{}\": {e}", user.name))))?;
    let mut groups: Vec<u32> = groups.into_iter().map(Gid::as_raw).collect();
    groups.sort_unstable();
    groups.dedup();
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_runner_policy::Location;

    fn set(value: Account) -> Option<Setting<Account>> {
        Some(Setting { value, origin: "p.toml".into(), location: Some(Location { line: 2, column: 8 }) })
    }

    fn plan(user: Option<Setting<Account>>, group: Option<Setting<Account>>) -> Plan {
        Plan { user, group, ..Plan::default() }
    }

    #[test]
    fn issue_9_bounding_set_clearable_from_status() {
        // See: issue 9, finding 6
        let status = |eff: &str, bnd: &str| format!("Name:\tx\nCapEff:\t{eff}\nCapBnd:\t{bnd}\n");
        assert!(can_clear_bounding_set(&status("000001ffffffffff", "000001ffffffffff")));
        assert!(can_clear_bounding_set(&status("0000000000000100", "0000000000000400")));
        assert!(!can_clear_bounding_set(&status("0000000000000000", "000001ffffffffff")));
        assert!(can_clear_bounding_set(&status("0000000000000000", "0000000000000000")));
        assert!(!can_clear_bounding_set("garbage"));
    }

    #[test]
    fn issue_9_names_resolve_to_ids_and_the_users_environment() {
        // See: issue 9, finding 6
        let Ok(Some(root)) = User::from_uid(Uid::from_raw(0)) else {
            eprintln!("skipped: no entry for uid 0");
            return;
        };
        let creds = resolve(&plan(set(Account::Name(root.name.clone())), None)).expect("root resolves");
        let id = creds.credentials.identity.clone().expect("identity");
        assert_eq!((id.uid, id.gid), (Some(0), root.gid.as_raw()));
        assert!(id.groups.contains(&root.gid.as_raw()), "{id:?}");
        let mut spec = SpawnSpec { env: vec!["HOME=/elsewhere".into(), "PATH=/bin".into()], ..SpawnSpec::default() };
        apply(&creds, &mut spec);
        let home = format!("HOME={}", root.dir.display());
        assert!(spec.env.iter().any(|kv| *kv == *home), "{:?}", spec.env);
        assert!(!spec.env.iter().any(|kv| kv == "HOME=/elsewhere"), "{:?}", spec.env);
        assert!(spec.env.iter().any(|kv| kv == "PATH=/bin"));
        assert_eq!(spec.credentials.identity, Some(id));
    }

    #[test]
    fn issue_9_numbers_are_used_as_given() {
        // See: issue 9, finding 6
        let creds = resolve(&plan(None, set(Account::Id(4343)))).expect("a bare gid");
        assert_eq!(creds.credentials.identity, Some(Identity { uid: None, gid: 4343, groups: Vec::new() }));
        assert!(creds.env.is_empty());
        // A uid with no entry has no group of its own: the policy must name one.
        let lonely = 3_999_999_999;
        if let Ok(None) = User::from_uid(Uid::from_raw(lonely)) {
            let e = resolve(&plan(set(Account::Id(lonely)), None)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "p.toml:2:8: uid {lonely} has no entry in the user database, so no group of its own; set \
                     group as well"
                )
            );
            let creds = resolve(&plan(set(Account::Id(lonely)), set(Account::Id(7)))).expect("with a group");
            assert_eq!(creds.credentials.identity, Some(Identity { uid: Some(lonely), gid: 7, groups: Vec::new() }));
        }
    }

    #[test]
    fn issue_9_unknown_names_point_at_the_policy() {
        // See: issue 9, finding 6
        let e = resolve(&plan(set(Account::Name("no-such-user-mcp".into())), None)).unwrap_err();
        assert_eq!(e.to_string(), "p.toml:2:8: no user \"no-such-user-mcp\" on this host");
        let e = resolve(&plan(None, set(Account::Name("no-such-group-mcp".into())))).unwrap_err();
        assert_eq!(e.to_string(), "p.toml:2:8: no group \"no-such-group-mcp\" on this host");
    }

    #[test]
    fn issue_9_nothing_asked_nothing_changed() {
        // See: issue 9, finding 6
        let creds = resolve(&Plan::default()).expect("resolve");
        assert_eq!(creds, ServerCreds::default());
        assert_eq!(creds.describe(), "the runner's privileges");
    }
}
