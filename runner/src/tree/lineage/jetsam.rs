//! Which members the kernel's own memory limit still covers.
//!
//! A jetsam limit set at spawn (`posix_spawnattr_setjetsam_ext`) covers
//! exactly one image: fork children start without one and `execve` drops
//! it (research §1.6). So `npx` → `node`, `#!/usr/bin/env` trampolines and
//! every worker run without a kernel limit, and the footprint poll
//! ([`super::accounting`]) is all that holds them. The model says which is
//! which, so a breach report can say whether the kernel or the poll was
//! expected to act.
//!
//! It learns of execs from NOTE_EXEC. A missed event leaves it believing
//! in a limit that is gone; nothing depends on that belief, since the poll
//! runs over every member either way.

use super::{Identity, Lineage};

/// The one image a spawn-time limit covers, until it execs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JetsamCover {
    covered: Option<Identity>,
}

impl JetsamCover {
    /// The server was spawned with a limit.
    pub fn spawned(server: Identity) -> JetsamCover {
        JetsamCover { covered: Some(server) }
    }

    /// No limit was set, or setting it failed.
    pub fn none() -> JetsamCover {
        JetsamCover { covered: None }
    }

    /// NOTE_EXEC on `pid`: its new image runs without the limit.
    pub fn on_exec(&mut self, pid: i32) {
        if self.covered.is_some_and(|id| id.pid == pid) {
            self.covered = None;
        }
    }

    /// Whether the kernel would kill `id` at its own limit.
    pub fn covers(&self, id: Identity) -> bool {
        self.covered == Some(id)
    }

    /// Live members only the footprint poll protects.
    pub fn uncovered(&self, lineage: &Lineage) -> Vec<Identity> {
        lineage.live().into_iter().filter(|id| !self.covers(*id)).collect()
    }
}
