//! What this host offers: cgroup v2, controllers, delegation, systemd, PSI,
//! pidfd, clone3. Probed once; every decision is made from [`HostFacts`] by
//! pure functions, and parsers take strings so they are tested without the
//! real files.

pub mod cgroup;

use std::fs;
use std::path::{Path, PathBuf};

/// The operating system family, for the drivers it can run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Platform {
    #[default]
    Linux,
    Macos,
}

/// Everything driver selection and `doctor` need to know.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub platform: Platform,
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
    /// macOS: `posix_spawnattr_setjetsam_ext` was found (a private API).
    pub jetsam: bool,
    /// macOS: `kern.memorystatus_vm_pressure_level` (1 normal, 2 warn, 4
    /// critical), if readable.
    pub pressure_level: Option<u32>,
}

impl HostFacts {
    /// Probes this machine (the platform's own probe, see `os`).
    pub fn probe() -> HostFacts {
        crate::os::probe_host()
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
