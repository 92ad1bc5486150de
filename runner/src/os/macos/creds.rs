//! The server's credentials on macOS: there is nothing to give up. macOS
//! has no capabilities and no no_new_privs, and `posix_spawn` cannot start
//! a server as another user, so `privileges::plan` refuses a policy that
//! asks for any of it; the server runs with the runner's privileges.

use mcp_runner_policy::Diagnostic;

use super::spawn::SpawnSpec;
use crate::privileges::{Facts, Plan};

/// What this runner is: nothing of Linux's privileges to give up.
pub fn facts() -> Facts {
    Facts { euid: nix::unistd::geteuid().as_raw(), linux: false, can_clear_bounding_set: false }
}

/// Nothing: the server keeps the runner's privileges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerCreds;

impl ServerCreds {
    pub fn describe(&self) -> String {
        "the runner's privileges".into()
    }
}

/// A plan this platform cannot carry out (`plan` refuses one first).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredsError(Diagnostic);

pub fn resolve(plan: &Plan) -> Result<ServerCreds, CredsError> {
    let asked = plan.user.as_ref().or(plan.group.as_ref());
    match asked {
        Some(s) => Err(CredsError(s.error("starting a server as another user or group is not supported on macOS"))),
        None if plan.no_new_privs || plan.drop_capabilities => Err(CredsError(Diagnostic {
            origin: "mcp-runner".into(),
            location: None,
            message: "macOS has no no_new_privs and no capabilities".into(),
        })),
        None => Ok(ServerCreds),
    }
}

pub fn apply(_creds: &ServerCreds, _spec: &mut SpawnSpec) {}
