//! Choosing the driver: a pure function of what the host offers and what
//! the policy asks for, so every branch is tested as a table.

use mcp_runner_policy::DriverPref;

use super::DriverKind;
use crate::host::{HostFacts, Platform};

/// The chosen driver and why the better ones were passed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub kind: DriverKind,
    /// One line per kernel driver that could not be used, with the reason.
    pub passed_over: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the policy asks for the {wanted} driver, but {why}")]
pub struct SelectError {
    pub wanted: DriverKind,
    pub why: String,
}

/// Why the cgroupfs driver cannot run here, or `None` if it can.
pub fn cgroupfs_unusable(f: &HostFacts) -> Option<String> {
    if f.platform == Platform::Macos {
        return Some("macOS has no cgroups".into());
    }
    let Some(own) = &f.own_cgroup else {
        return Some("no cgroup v2 hierarchy is mounted".into());
    };
    // Root builds its tree at the top of the hierarchy, under the root
    // cgroup; anyone else under their own, delegated cgroup.
    let (have, place) = if f.euid == 0 {
        (&f.root_controllers, "the cgroup v2 root".to_string())
    } else {
        (&f.own_controllers, format!("the runner's cgroup {own}"))
    };
    let missing: Vec<&str> = ["memory", "pids"].into_iter().filter(|c| !have.iter().any(|h| h == c)).collect();
    if !missing.is_empty() {
        return Some(format!(
            "the {} controller{} not available to {place} (cgroup v1 or a hybrid layout holds {})",
            missing.join(" and "),
            if missing.len() == 1 { " is" } else { "s are" },
            if missing.len() == 1 { "it" } else { "them" },
        ));
    }
    if f.euid != 0 && !f.own_cgroup_writable {
        return Some(format!("the runner's cgroup {own} is not delegated to uid {} (not writable)", f.euid));
    }
    None
}

/// Why the systemd driver cannot run here, or `None` if it can.
pub fn systemd_unusable(f: &HostFacts) -> Option<String> {
    if f.platform == Platform::Macos {
        return Some("macOS has no systemd".into());
    }
    if !f.systemd_booted {
        return Some("systemd is not the init system".into());
    }
    if !(f.root_controllers.iter().any(|c| c == "memory") && f.root_controllers.iter().any(|c| c == "pids")) {
        return Some("systemd does not manage the memory and pids controllers on cgroup v2".into());
    }
    if f.euid != 0 && !f.user_bus {
        return Some("no systemd user manager for this user ($XDG_RUNTIME_DIR/systemd/private)".into());
    }
    None
}

/// Picks a driver. `implemented` lists the drivers this build has; a driver
/// the host supports but the build lacks is passed over with that reason.
pub fn select(f: &HostFacts, pref: DriverPref, implemented: &[DriverKind]) -> Result<Selection, SelectError> {
    let why_not = |k: DriverKind| -> Option<String> {
        let host = match k {
            DriverKind::Systemd => systemd_unusable(f),
            DriverKind::Cgroupfs => cgroupfs_unusable(f),
            DriverKind::Userland => (f.platform != Platform::Linux).then(|| "it is Linux's (procfs)".to_string()),
            DriverKind::Macos => (f.platform != Platform::Macos).then(|| "it is macOS's (libproc)".to_string()),
        };
        host.or_else(|| (!implemented.contains(&k)).then(|| "this build does not include it yet".to_string()))
    };
    // The supervised driver of each platform answers to `userland`.
    let userland = match f.platform {
        Platform::Linux => DriverKind::Userland,
        Platform::Macos => DriverKind::Macos,
    };
    let forced = match pref {
        DriverPref::Auto => None,
        DriverPref::Systemd => Some(DriverKind::Systemd),
        DriverPref::Cgroupfs => Some(DriverKind::Cgroupfs),
        DriverPref::Userland => Some(userland),
    };
    if let Some(k) = forced {
        return match why_not(k) {
            None => Ok(Selection { kind: k, passed_over: Vec::new() }),
            Some(why) => Err(SelectError { wanted: k, why }),
        };
    }
    let mut passed_over = Vec::new();
    for k in [DriverKind::Systemd, DriverKind::Cgroupfs] {
        match why_not(k) {
            None => return Ok(Selection { kind: k, passed_over }),
            Some(why) => passed_over.push(format!("{k}: {why}")),
        }
    }
    Ok(Selection { kind: userland, passed_over })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_root() -> HostFacts {
        HostFacts {
            cgroup2_mount: Some("/sys/fs/cgroup".into()),
            cgroup2_only: true,
            own_cgroup: Some("/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope".into()),
            own_controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
            own_cgroup_writable: true,
            root_controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
            systemd_booted: true,
            user_bus: true,
            euid: 1000,
            ..HostFacts::default()
        }
    }

    fn hybrid() -> HostFacts {
        HostFacts {
            cgroup2_mount: Some("/sys/fs/cgroup/unified".into()),
            own_cgroup: Some("/".into()),
            own_controllers: vec![],
            own_cgroup_writable: true,
            root_controllers: vec![],
            euid: 0,
            ..HostFacts::default()
        }
    }

    const ALL: &[DriverKind] = &[DriverKind::Systemd, DriverKind::Cgroupfs, DriverKind::Userland];

    #[test]
    fn auto_prefers_systemd_then_cgroupfs_then_userland() {
        assert_eq!(select(&v2_root(), DriverPref::Auto, ALL).map(|s| s.kind), Ok(DriverKind::Systemd));
        let no_systemd = HostFacts { systemd_booted: false, ..v2_root() };
        let s = select(&no_systemd, DriverPref::Auto, ALL).expect("selects");
        assert_eq!(s.kind, DriverKind::Cgroupfs);
        assert_eq!(s.passed_over, vec!["systemd: systemd is not the init system".to_string()]);
        let s = select(&hybrid(), DriverPref::Auto, ALL).expect("selects");
        assert_eq!(s.kind, DriverKind::Userland);
        assert_eq!(s.passed_over.len(), 2);
        assert!(s.passed_over[1].contains("memory and pids controllers are not available"), "{:?}", s.passed_over);
    }

    #[test]
    fn unimplemented_drivers_are_passed_over_with_reason() {
        let s = select(&v2_root(), DriverPref::Auto, &[DriverKind::Userland]).expect("selects");
        assert_eq!(s.kind, DriverKind::Userland);
        assert!(s.passed_over.iter().all(|l| l.ends_with("this build does not include it yet")));
    }

    #[test]
    fn forced_driver_that_cannot_run_is_an_error() {
        let e = select(&hybrid(), DriverPref::Cgroupfs, ALL).expect_err("refused");
        assert_eq!(e.wanted, DriverKind::Cgroupfs);
        assert!(e.to_string().starts_with("the policy asks for the cgroupfs driver, but the memory and pids"));
        assert_eq!(select(&hybrid(), DriverPref::Userland, ALL).map(|s| s.kind), Ok(DriverKind::Userland));
    }

    #[test]
    fn macos_runs_its_own_supervised_driver() {
        let mac = HostFacts { platform: Platform::Macos, euid: 501, ..HostFacts::default() };
        let all = &[DriverKind::Systemd, DriverKind::Cgroupfs, DriverKind::Macos];
        let s = select(&mac, DriverPref::Auto, all).expect("selects");
        assert_eq!(s.kind, DriverKind::Macos);
        assert_eq!(s.passed_over, ["systemd: macOS has no systemd", "cgroupfs: macOS has no cgroups"]);
        assert_eq!(select(&mac, DriverPref::Userland, all).map(|s| s.kind), Ok(DriverKind::Macos));
        let e = select(&mac, DriverPref::Cgroupfs, all).expect_err("refused");
        assert!(e.to_string().ends_with("macOS has no cgroups"), "{e}");
        // A Linux host never picks the macOS driver.
        assert!(select(&v2_root(), DriverPref::Auto, ALL).is_ok_and(|s| s.kind != DriverKind::Macos));
    }

    #[test]
    fn rootless_needs_delegation_and_a_user_bus() {
        let undelegated = HostFacts { own_cgroup_writable: false, systemd_booted: false, ..v2_root() };
        let e = cgroupfs_unusable(&undelegated).expect("unusable");
        assert!(e.contains("not delegated to uid 1000"), "{e}");
        let no_bus = HostFacts { user_bus: false, ..v2_root() };
        assert!(systemd_unusable(&no_bus).is_some());
        let root_no_bus = HostFacts { user_bus: false, euid: 0, ..v2_root() };
        assert_eq!(systemd_unusable(&root_no_bus), None);
    }
}
