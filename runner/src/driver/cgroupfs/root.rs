//! Finding and preparing the delegated parent under which GLOBAL lives.
//!
//! - Root: `<cgroup2 mount>/mcp-runner`; the root cgroup may hold processes
//!   and still enable controllers.
//! - A normal user inside a delegated cgroup (a `Delegate=yes` scope or
//!   service, a container with its own cgroup namespace): GLOBAL goes under
//!   that cgroup. The kernel's no-internal-process rule forbids enabling
//!   controllers in a cgroup that holds processes, so everything in it (the
//!   runner, maybe the client) first moves into `supervisor/`, the way
//!   systemd's CGROUP_DELEGATION.md and podman do it.
//! - `cgroup_root` in the policy names GLOBAL directly.

use std::path::{Path, PathBuf};

use crate::cgroup::fs::{CgroupDir, CgroupIoError};
use crate::host::{HostFacts, cgroup::join};

/// The controllers the runner enables, in this order; cpu is optional.
pub const REQUIRED: &[&str] = &["memory", "pids"];
pub const OPTIONAL: &[&str] = &["cpu"];

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("no cgroup v2 hierarchy is mounted")]
    NoCgroup2,
    #[error("cgroup_root {0} is not inside the cgroup v2 mount {1}")]
    OutsideMount(PathBuf, PathBuf),
    #[error("the runner's own cgroup is unknown (/proc/self/cgroup has no 0:: line)")]
    NoOwnCgroup,
    #[error("{dir} still holds processes after moving them to supervisor/: {pids:?}")]
    CannotEvacuate { dir: PathBuf, pids: Vec<i32> },
    #[error(
        "controller `{controller}` is not available in {dir}; delegate it (systemd: Delegate=memory pids cpu) or use the systemd driver"
    )]
    Missing { controller: String, dir: PathBuf },
    #[error(transparent)]
    Io(#[from] CgroupIoError),
}

/// GLOBAL's directory and its parent.
pub fn locate(facts: &HostFacts, configured: Option<&Path>) -> Result<(CgroupDir, CgroupDir), RootError> {
    let mount = facts.cgroup2_mount.clone().ok_or(RootError::NoCgroup2)?;
    let global = match configured {
        Some(p) if !p.starts_with(&mount) => return Err(RootError::OutsideMount(p.to_path_buf(), mount)),
        Some(p) => p.to_path_buf(),
        None if facts.euid == 0 => mount.join("mcp-runner"),
        None => join(&mount, facts.own_cgroup.as_deref().ok_or(RootError::NoOwnCgroup)?).join("mcp-runner"),
    };
    let parent = global.parent().map(Path::to_path_buf).unwrap_or(mount);
    Ok((CgroupDir::new(parent), CgroupDir::new(global)))
}

/// Makes `dir` able to give its children controllers: moves its processes
/// into `dir/supervisor` if it holds any (unless it is the root cgroup),
/// then enables the controllers. Returns the controllers enabled.
pub fn enable_controllers(dir: &CgroupDir, is_root_cgroup: bool) -> Result<Vec<String>, RootError> {
    let available = dir.read("cgroup.controllers")?;
    let available: Vec<&str> = available.split_ascii_whitespace().collect();
    if let Some(missing) = REQUIRED.iter().find(|c| !available.contains(c)) {
        return Err(RootError::Missing { controller: missing.to_string(), dir: dir.path().to_path_buf() });
    }
    let wanted: Vec<&str> = REQUIRED.iter().chain(OPTIONAL).copied().filter(|c| available.contains(c)).collect();
    let enabled = dir.read("cgroup.subtree_control").unwrap_or_default();
    if wanted.iter().all(|c| enabled.split_ascii_whitespace().any(|e| e == *c)) {
        return Ok(wanted.iter().map(|c| c.to_string()).collect());
    }
    if !is_root_cgroup {
        evacuate(dir)?;
    }
    let line = wanted.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
    // A process that forked into `dir` between the move and the write makes
    // it EBUSY: move again and retry a few times.
    let mut last = None;
    for _ in 0..5 {
        match dir.write("cgroup.subtree_control", &line) {
            Ok(()) => return Ok(wanted.iter().map(|c| c.to_string()).collect()),
            Err(e) if e.errno() == Some(nix::errno::Errno::EBUSY as i32) && !is_root_cgroup => {
                evacuate(dir)?;
                last = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.map_or_else(|| RootError::CannotEvacuate { dir: dir.path().to_path_buf(), pids: Vec::new() }, Into::into))
}

/// Moves every process of `dir` into `dir/supervisor`.
fn evacuate(dir: &CgroupDir) -> Result<(), RootError> {
    let procs = dir.procs()?;
    if procs.is_empty() {
        return Ok(());
    }
    let supervisor = dir.child("supervisor");
    supervisor.create()?;
    for _ in 0..5 {
        for pid in dir.procs()? {
            // ESRCH: it exited meanwhile, which is just as good.
            if let Err(e) = supervisor.write("cgroup.procs", &pid.to_string())
                && e.errno() != Some(nix::errno::Errno::ESRCH as i32)
            {
                return Err(e.into());
            }
        }
        if dir.procs()?.is_empty() {
            tracing::info!(
                "moved the processes of {} into supervisor/ (no-internal-process rule)",
                dir.path().display()
            );
            return Ok(());
        }
    }
    Err(RootError::CannotEvacuate { dir: dir.path().to_path_buf(), pids: dir.procs()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(euid: u32) -> HostFacts {
        HostFacts {
            cgroup2_mount: Some("/sys/fs/cgroup".into()),
            own_cgroup: Some("/user.slice/u.service/app.slice/x.scope".into()),
            euid,
            ..HostFacts::default()
        }
    }

    #[test]
    fn locations() {
        let (p, g) = locate(&facts(0), None).expect("root");
        assert_eq!(g.path(), Path::new("/sys/fs/cgroup/mcp-runner"));
        assert_eq!(p.path(), Path::new("/sys/fs/cgroup"));
        let (p, g) = locate(&facts(1000), None).expect("user");
        assert_eq!(g.path(), Path::new("/sys/fs/cgroup/user.slice/u.service/app.slice/x.scope/mcp-runner"));
        assert_eq!(p.path(), Path::new("/sys/fs/cgroup/user.slice/u.service/app.slice/x.scope"));
        let (_, g) = locate(&facts(1000), Some(Path::new("/sys/fs/cgroup/my/mcp"))).expect("configured");
        assert_eq!(g.path(), Path::new("/sys/fs/cgroup/my/mcp"));
        assert!(matches!(locate(&facts(0), Some(Path::new("/tmp/x"))), Err(RootError::OutsideMount(..))));
        let none = HostFacts { cgroup2_mount: None, ..facts(0) };
        assert!(matches!(locate(&none, None), Err(RootError::NoCgroup2)));
    }

    #[test]
    fn missing_required_controller_is_named() {
        let d = crate::cgroup::fs::tests::fixture("ctl", &[("cgroup.controllers", "cpu pids\n")]);
        let e = enable_controllers(&d, true).expect_err("no memory");
        assert!(e.to_string().starts_with("controller `memory` is not available in"), "{e}");
        std::fs::remove_dir_all(d.path()).ok();
    }

    #[test]
    fn already_enabled_is_a_no_op() {
        let d = crate::cgroup::fs::tests::fixture(
            "ctl2",
            &[("cgroup.controllers", "cpu io memory pids\n"), ("cgroup.subtree_control", "cpu memory pids\n")],
        );
        assert_eq!(enable_controllers(&d, false).expect("ok"), vec!["memory", "pids", "cpu"]);
        std::fs::remove_dir_all(d.path()).ok();
    }
}
