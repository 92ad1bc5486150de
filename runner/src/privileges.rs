//! What the server keeps of the runner's privileges: the policy's
//! `no_new_privs`, `drop_capabilities`, `user` and `group`, decided against
//! what the runner is and what its platform can do. A pure function with a
//! table test; looking up names is the platform's (`os::creds`), the system
//! calls are the spawner's, in the child right before exec.
//!
//! The rules:
//! - Not written, `no_new_privs` and `drop_capabilities` are on when the
//!   runner runs as root and off otherwise. As root they are what stands
//!   between an MCP server (code from a registry, driven by a model) and the
//!   whole machine; as a user they would cost setuid helpers (sudo, snaps,
//!   rootless containers' newuidmap, fusermount) for little gain, so a user
//!   opts in by writing `no_new_privs = true`.
//! - Written, a key is obeyed. A key that asks for less privilege than the
//!   runner can take away (`user` without root, `drop_capabilities = true`
//!   without CAP_SETPCAP, either flag on macOS) refuses the start: a server
//!   never runs with more privilege than its policy allows.
//! - `false` can always be obeyed: it asks for nothing.

use mcp_runner_policy::{Account, Diagnostic, Privileges, Setting};

/// What the runner is, and what its platform offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The runner's effective uid.
    pub euid: u32,
    /// Linux capabilities and no_new_privs exist (not on macOS).
    pub linux: bool,
    /// The bounding set can be cleared: CAP_SETPCAP is in the runner's
    /// effective set, or the bounding set is empty already.
    pub can_clear_bounding_set: bool,
}

impl Facts {
    fn root(&self) -> bool {
        self.euid == 0
    }
}

/// What the child gives up before exec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub no_new_privs: bool,
    pub drop_capabilities: bool,
    /// Looked up on the host before the spawn (`os::creds`).
    pub user: Option<Setting<Account>>,
    pub group: Option<Setting<Account>>,
    /// What a default could not do here, for a warning on stderr.
    pub notes: Vec<String>,
}

/// The policy asks for less privilege than the runner can take away here;
/// nothing is spawned.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct Refusal(pub Vec<Diagnostic>);

/// Decides the plan, or every reason the policy cannot be obeyed here.
pub fn plan(p: &Privileges, facts: &Facts) -> Result<Plan, Refusal> {
    let mut refusals = Vec::new();
    let mut notes = Vec::new();

    let no_new_privs = match &p.no_new_privs {
        None => facts.linux && facts.root(),
        Some(s) if s.value && !facts.linux => {
            refusals.push(s.error(
                "no_new_privs = true: macOS has nothing like it, so the server could gain privileges \
                 through setuid programs; remove the key where the runner runs on macOS",
            ));
            false
        }
        Some(s) => s.value,
    };

    let drop_capabilities = match &p.drop_capabilities {
        None if !facts.linux || !facts.root() => false,
        None if facts.can_clear_bounding_set => true,
        None => {
            // Switching user clears the capabilities anyway; staying root
            // with the bounding set, an exec gives them all back.
            if p.user.is_none() {
                notes.push(
                    "the server runs as root with the runner's capability bounding set: the runner \
                     lacks CAP_SETPCAP to clear it (give it CAP_SETPCAP, set user to run the server \
                     unprivileged, or drop_capabilities = false to say this is intended)"
                        .to_owned(),
                );
            }
            false
        }
        Some(s) if !s.value => false,
        Some(s) if !facts.linux => {
            refusals.push(s.error(
                "drop_capabilities = true: macOS has no capabilities to drop, and a server started \
                 by root keeps all of root's power there; remove the key, or run the runner as an \
                 unprivileged user",
            ));
            false
        }
        Some(s) if !facts.root() => {
            refusals.push(s.error(format!(
                "drop_capabilities = true needs the runner to run as root (it runs as uid {}): a \
                 non-root runner's servers start with no capabilities, and no_new_privs = true keeps \
                 them from gaining any",
                facts.euid
            )));
            false
        }
        Some(s) if !facts.can_clear_bounding_set => {
            refusals.push(s.error(
                "drop_capabilities = true, but the runner lacks CAP_SETPCAP, which clearing the \
                 capability bounding set needs; give the runner CAP_SETPCAP, or set user to run the \
                 server unprivileged",
            ));
            false
        }
        Some(_) => true,
    };

    for (key, setting) in [("user", &p.user), ("group", &p.group)] {
        let Some(s) = setting else { continue };
        if !facts.linux {
            refusals.push(
                s.error(format!("{key} \"{}\": starting a server as another {key} is not supported on macOS", s.value)),
            );
        } else if !facts.root() {
            refusals.push(s.error(format!(
                "{key} \"{}\" needs the runner to run as root (it runs as uid {}); remove it, or \
                 start the runner as root",
                s.value, facts.euid
            )));
        }
    }

    if !refusals.is_empty() {
        return Err(Refusal(refusals));
    }
    Ok(Plan { no_new_privs, drop_capabilities, user: p.user.clone(), group: p.group.clone(), notes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_runner_policy::Location;

    fn set<T>(value: T, line: usize) -> Option<Setting<T>> {
        Some(Setting { value, origin: "p.toml".into(), location: Some(Location { line, column: 1 }) })
    }

    const ROOT: Facts = Facts { euid: 0, linux: true, can_clear_bounding_set: true };
    const ROOT_NO_SETPCAP: Facts = Facts { can_clear_bounding_set: false, ..ROOT };
    const USER: Facts = Facts { euid: 1000, linux: true, can_clear_bounding_set: false };
    const MAC_ROOT: Facts = Facts { euid: 0, linux: false, can_clear_bounding_set: false };
    const MAC_USER: Facts = Facts { euid: 501, linux: false, can_clear_bounding_set: false };

    /// (no_new_privs, drop_capabilities) of a plan, or the refusal's text.
    fn decide(p: &Privileges, facts: &Facts) -> Result<(bool, bool), String> {
        plan(p, facts).map(|p| (p.no_new_privs, p.drop_capabilities)).map_err(|e| e.to_string())
    }

    #[test]
    fn issue_9_defaults_depend_on_root() {
        // See: issue 9, finding 6
        let none = Privileges::default();
        let table = [
            (ROOT, Ok((true, true))),
            (ROOT_NO_SETPCAP, Ok((true, false))),
            (USER, Ok((false, false))),
            (MAC_ROOT, Ok((false, false))),
            (MAC_USER, Ok((false, false))),
        ];
        for (facts, expected) in table {
            assert_eq!(decide(&none, &facts), expected, "{facts:?}");
        }
        assert!(plan(&none, &ROOT).unwrap().notes.is_empty());
        let notes = plan(&none, &ROOT_NO_SETPCAP).unwrap().notes;
        assert!(notes.len() == 1 && notes[0].contains("lacks CAP_SETPCAP"), "{notes:?}");
        let as_nobody = Privileges { user: set(Account::Name("nobody".into()), 2), ..Privileges::default() };
        assert!(plan(&as_nobody, &ROOT_NO_SETPCAP).unwrap().notes.is_empty());
    }

    #[test]
    fn issue_9_written_values_are_obeyed() {
        // See: issue 9, finding 6
        let p = |nnp, caps| Privileges {
            no_new_privs: set(nnp, 2),
            drop_capabilities: set(caps, 3),
            ..Privileges::default()
        };
        let table = [
            (p(false, false), ROOT, Ok((false, false))),
            (p(true, true), ROOT, Ok((true, true))),
            (p(true, false), USER, Ok((true, false))),
            (p(false, false), USER, Ok((false, false))),
            (p(false, false), MAC_ROOT, Ok((false, false))),
            (p(false, false), ROOT_NO_SETPCAP, Ok((false, false))),
        ];
        for (privileges, facts, expected) in table {
            assert_eq!(decide(&privileges, &facts), expected, "{privileges:?} {facts:?}");
        }
        let plan = plan(&p(false, false), &ROOT_NO_SETPCAP).unwrap();
        assert!(plan.notes.is_empty(), "written false is intended: {plan:?}");
    }

    #[test]
    fn issue_9_what_cannot_be_obeyed_refuses_with_the_place() {
        // See: issue 9, finding 6
        let caps = Privileges { drop_capabilities: set(true, 3), ..Privileges::default() };
        let e = decide(&caps, &USER).unwrap_err();
        assert!(
            e.starts_with("p.toml:3:1: drop_capabilities = true needs the runner to run as root (it runs as uid 1000)"),
            "{e}"
        );
        let e = decide(&caps, &ROOT_NO_SETPCAP).unwrap_err();
        assert!(e.starts_with("p.toml:3:1: drop_capabilities = true, but the runner lacks CAP_SETPCAP"), "{e}");
        let e = decide(&caps, &MAC_ROOT).unwrap_err();
        assert!(e.starts_with("p.toml:3:1: drop_capabilities = true: macOS has no capabilities to drop"), "{e}");
        let nnp = Privileges { no_new_privs: set(true, 2), ..Privileges::default() };
        let e = decide(&nnp, &MAC_USER).unwrap_err();
        assert!(e.starts_with("p.toml:2:1: no_new_privs = true: macOS has nothing like it"), "{e}");

        let ids = Privileges {
            user: set(Account::Name("nobody".into()), 4),
            group: set(Account::Id(65534), 5),
            ..Privileges::default()
        };
        assert_eq!(
            decide(&ids, &USER).unwrap_err(),
            "p.toml:4:1: user \"nobody\" needs the runner to run as root (it runs as uid 1000); remove it, or \
             start the runner as root\n\
             p.toml:5:1: group \"65534\" needs the runner to run as root (it runs as uid 1000); remove it, or \
             start the runner as root"
        );
        let e = decide(&ids, &MAC_ROOT).unwrap_err();
        assert!(
            e.starts_with("p.toml:4:1: user \"nobody\": starting a server as another user is not supported on macOS"),
            "{e}"
        );
        let plan = plan(&ids, &ROOT).unwrap();
        assert_eq!((plan.user, plan.group), (ids.user.clone(), ids.group.clone()));
    }
}
