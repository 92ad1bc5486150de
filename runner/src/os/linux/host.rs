//! What a Linux machine offers: cgroup v2 and its controllers, delegation,
//! systemd, PSI, pidfd, clone3.

use std::fs;
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, Uid, access};

use crate::host::{HostFacts, Platform, cgroup, physical_memory};
use crate::sys::{Pid, pidfd::PidFd, probe};

/// What this Linux machine offers.
pub fn probe_host() -> HostFacts {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = cgroup::parse_mountinfo(&mountinfo);
    let cgroup2_mount = mounts.cgroup2.clone();
    let own_cgroup = fs::read_to_string("/proc/self/cgroup").ok().and_then(|t| cgroup::parse_proc_cgroup(&t));
    let own_dir = match (&cgroup2_mount, &own_cgroup) {
        (Some(m), Some(p)) => Some(cgroup::join(m, p)),
        _ => None,
    };
    let controllers = |dir: &Path| {
        fs::read_to_string(dir.join("cgroup.controllers"))
            .map(|t| t.split_ascii_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let euid = Uid::effective().as_raw();
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    HostFacts {
        platform: Platform::Linux,
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default(),
        cgroup2_only: mounts.cgroup2.is_some() && !mounts.has_v1,
        own_controllers: own_dir.as_deref().map(controllers).unwrap_or_default(),
        own_cgroup_writable: own_dir.as_deref().is_some_and(|d| {
            access(&d.join("cgroup.procs"), AccessFlags::W_OK).is_ok()
                && access(&d.join("cgroup.subtree_control"), AccessFlags::W_OK).is_ok()
        }),
        root_controllers: cgroup2_mount.as_deref().map(controllers).unwrap_or_default(),
        cgroup2_mount,
        own_cgroup,
        systemd_booted: Path::new("/run/systemd/system").is_dir(),
        // Asking costs a fork and exec of systemctl: only doctor asks.
        systemd_version: None,
        user_bus: runtime_dir.is_some_and(|d| d.join("systemd/private").exists() || d.join("bus").exists()),
        euid,
        psi: fs::read_to_string("/proc/pressure/memory").is_ok(),
        pidfd: PidFd::open(Pid::this()).is_ok(),
        clone3: probe::clone3_available(),
        proc_children: Path::new(&format!("/proc/self/task/{}/children", std::process::id())).exists(),
        physical_memory: physical_memory(),
        jetsam: false,
        pressure_level: None,
    }
}
