//! Headroom and pressure where the kernel can tell: the global and session
//! cgroups of the kernel drivers, or the whole machine for the userland
//! driver (free memory and /proc/pressure/memory).

use std::path::PathBuf;

use mcp_runner_policy::Effective;

use super::decide::Measured;
use crate::driver::DriverKind;
use crate::driver::cgroupfs::fs::CgroupDir;
use crate::driver::cgroupfs::{hierarchy, memory, root};
use crate::driver::systemd::units;
use crate::host::HostFacts;

/// The global and session cgroup directories a driver uses, if any.
pub fn levels(
    kind: DriverKind,
    facts: &HostFacts,
    budget: &Effective,
    session: &str,
) -> Option<(CgroupDir, CgroupDir)> {
    match kind {
        DriverKind::Cgroupfs => {
            let (_, global) = root::locate(facts, budget.global.cgroup_root.as_deref()).ok()?;
            let session = global.child(&hierarchy::session_name(session));
            Some((global, session))
        }
        DriverKind::Systemd => {
            // mcp-runner.slice nests under mcp.slice (a dash means nesting);
            // a user manager's slices live under its own cgroup.
            let mount = facts.cgroup2_mount.clone()?;
            let base = if facts.euid == 0 {
                mount
            } else {
                let own = facts.own_cgroup.as_deref()?;
                let user = own.find("/user@").and_then(|i| own[i..].find(".service").map(|j| &own[..i + j + 8]))?;
                crate::host::cgroup::join(&mount, user)
            };
            let global = CgroupDir::new(base.join("mcp.slice").join(units::GLOBAL_SLICE));
            let session = global.child(&units::session_slice(session));
            Some((global, session))
        }
        DriverKind::Userland => None,
    }
}

/// Free bytes under a cgroup's memory.max (or `cap` if it does not exist
/// yet: a session's first server finds its whole budget free).
fn free_under(dir: &CgroupDir, cap: Option<u64>) -> Option<(u64, u64, String)> {
    let place = dir.path().display().to_string();
    if !dir.exists() {
        return cap.map(|c| (c, c, place));
    }
    let max = dir.read_u64(memory::MAX).ok().flatten().or(cap)?;
    let current = dir.read_u64(memory::CURRENT).ok().flatten().unwrap_or(0);
    Some((max.saturating_sub(current), max, place))
}

pub fn measure(kind: DriverKind, facts: &HostFacts, budget: &Effective, session: &str) -> Measured {
    match levels(kind, facts, budget, session) {
        Some((global, session_dir)) => Measured {
            session_free: free_under(&session_dir, budget.session.limits.memory_max),
            global_free: free_under(&global, budget.global.limits.memory_max),
            pressure: global
                .read(memory::PRESSURE)
                .ok()
                .and_then(|t| memory::some_avg10(&t))
                .map(|p| (p, global.path().display().to_string())),
        },
        None => Measured {
            session_free: None,
            global_free: mem_available().map(|(free, total)| (free, total, "/proc/meminfo (MemAvailable)".into())),
            pressure: std::fs::read_to_string("/proc/pressure/memory")
                .ok()
                .and_then(|t| memory::some_avg10(&t))
                .map(|p| (p, "/proc/pressure/memory".to_string())),
        },
    }
}

/// (MemAvailable, MemTotal) in bytes.
fn mem_available() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        Some(line.split_ascii_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    Some((field("MemAvailable:")?, field("MemTotal:")?))
}

/// Where the global cgroup would be, for `status` totals.
pub fn global_dir(kind: DriverKind, facts: &HostFacts, budget: &Effective) -> Option<PathBuf> {
    levels(kind, facts, budget, "_").map(|(g, _)| g.path().to_path_buf())
}
