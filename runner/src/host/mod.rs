//! What this host offers: cgroup v2, controllers, delegation, systemd, PSI,
//! pidfd, clone3. Probed once; every decision is made from [`HostFacts`] by
//! pure functions, and parsers take strings so they are tested without the
//! real files.

pub mod cgroup;

use std::fs;
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, Uid, access};

use crate::sys::{Pid, pidfd::PidFd, probe};

/// Everything driver selection and `doctor` need to know.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub kernel: String,
    /// Where the cgroup v2 hierarchy is mounted, if anywhere.
    pub cgroup2_mount: Option<PathBuf>,
    /// cgroup v2 is the only hierarchy (no v1 controllers mounted).
    pub cgroup2_only: bool,
    /// The runner's own cgroup v2 path (`0::` line of /proc/self/cgroup).
    pub own_cgroup: Option<String>,
    /// Controllers available in the runner's own cgroup.
    pub own_controllers: Vec<String>,
    /// The runner may create child cgroups and move processes there.
    pub own_cgroup_writable: bool,
    /// Controllers of the cgroup v2 root.
    pub root_controllers: Vec<String>,
    pub systemd_booted: bool,
    pub systemd_version: Option<u32>,
    /// This user's systemd manager can be reached (its private socket, or
    /// the session bus).
    pub user_bus: bool,
    pub euid: u32,
    pub psi: bool,
    pub pidfd: bool,
    pub clone3: bool,
    /// `/proc/PID/task/TID/children` exists (cheap tree walks).
    pub proc_children: bool,
    pub physical_memory: u64,
}

impl HostFacts {
    pub fn probe() -> HostFacts {
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
        }
    }
}

/// Physical RAM in bytes from /proc/meminfo (`MemTotal`), 0 if unknown.
pub fn physical_memory() -> u64 {
    fs::read_to_string("/proc/meminfo").ok().and_then(|t| parse_memtotal(&t)).unwrap_or(0)
}

pub fn parse_memtotal(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The running systemd's version, from systemctl rather than D-Bus so that
/// `doctor` works without a reachable manager.
pub fn systemd_version() -> Option<u32> {
    if !Path::new("/run/systemd/system").is_dir() {
        return None;
    }
    let out = std::process::Command::new("systemctl").arg("--version").output().ok()?;
    parse_systemd_version(&String::from_utf8_lossy(&out.stdout))
}

pub fn parse_systemd_version(text: &str) -> Option<u32> {
    text.lines().next()?.split_ascii_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memtotal() {
        assert_eq!(parse_memtotal("MemTotal:       16384 kB\nMemFree: 1 kB\n"), Some(16384 * 1024));
        assert_eq!(parse_memtotal("nothing"), None);
    }

    #[test]
    fn systemd_version_line() {
        assert_eq!(parse_systemd_version("systemd 252 (252.38-1~deb12u1)\n+PAM +AUDIT"), Some(252));
        assert_eq!(parse_systemd_version(""), None);
    }

    #[test]
    fn probe_runs_on_this_host() {
        let f = HostFacts::probe();
        assert!(f.physical_memory > 0);
        assert!(!f.kernel.is_empty());
    }
}
