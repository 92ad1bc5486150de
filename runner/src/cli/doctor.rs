//! `mcp-runner doctor`: what this host offers, which driver runs and why,
//! and for everything missing the step that fixes it.

use std::fmt::Write as _;
use std::process::ExitCode;

use mcp_runner_policy::DriverPref;

use super::Failure;
use crate::driver::{IMPLEMENTED, select};
use crate::host::HostFacts;

pub fn doctor() -> Result<ExitCode, Failure> {
    let mut facts = HostFacts::probe();
    facts.systemd_version = crate::host::systemd_version();
    print!("{}", report(&facts));
    Ok(ExitCode::SUCCESS)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The whole report, as text: a pure function of the facts.
pub fn report(f: &HostFacts) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<16} {v}");
    };
    line("kernel", f.kernel.clone());
    line(
        "cgroup v2",
        match &f.cgroup2_mount {
            None => "not mounted".into(),
            Some(m) if f.cgroup2_only => format!("{} (the only hierarchy)", m.display()),
            Some(m) => format!("{} (hybrid: cgroup v1 hierarchies are mounted too)", m.display()),
        },
    );
    line("own cgroup", f.own_cgroup.clone().unwrap_or_else(|| "-".into()));
    line("controllers", if f.own_controllers.is_empty() { "none".into() } else { f.own_controllers.join(" ") });
    line("delegated", yes(f.own_cgroup_writable).into());
    line(
        "systemd",
        match (f.systemd_booted, f.systemd_version) {
            (false, _) => "not the init system".into(),
            (true, Some(v)) => format!("{v}, user bus {}", yes(f.user_bus)),
            (true, None) => format!("running, version unknown, user bus {}", yes(f.user_bus)),
        },
    );
    line("PSI", yes(f.psi).into());
    line("pidfd", yes(f.pidfd).into());
    line("clone3", yes(f.clone3).into());
    line("proc children", yes(f.proc_children).into());
    line("uid", f.euid.to_string());

    let _ = writeln!(out);
    match select::select(f, DriverPref::Auto, IMPLEMENTED) {
        Ok(s) => {
            let _ = writeln!(out, "driver: {} ({})", s.kind, s.kind.enforcement());
            for p in &s.passed_over {
                let _ = writeln!(out, "  not {p}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "driver: none: {e}");
        }
    }
    let fixes = fixes(f);
    if !fixes.is_empty() {
        let _ = writeln!(out, "\nto get kernel enforcement:");
        for fix in fixes {
            let _ = writeln!(out, "  - {fix}");
        }
    }
    out
}

/// The steps that would make a kernel driver usable here.
pub fn fixes(f: &HostFacts) -> Vec<String> {
    let mut out = Vec::new();
    let memory_on_v2 = f.root_controllers.iter().any(|c| c == "memory");
    if f.cgroup2_mount.is_none() || !memory_on_v2 {
        out.push(
            "boot with cgroup v2 only: add `systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all` to the kernel \
             command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)"
                .into(),
        );
    } else if !f.own_cgroup_writable && f.euid != 0 {
        out.push(
            "run the runner in a delegated scope: `systemd-run --user --scope -p Delegate=yes mcp-runner run ...`, \
             or install the slice with `mcp-runner systemd install --user`"
                .into(),
        );
    }
    if !f.psi {
        out.push("enable pressure stall information: boot with `psi=1` (admission control uses it)".into());
    }
    if !f.pidfd {
        out.push("use Linux 5.3 or newer (pidfd_open)".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_host_gets_the_boot_fix() {
        let f = HostFacts {
            kernel: "6.18".into(),
            cgroup2_mount: Some("/sys/fs/cgroup/unified".into()),
            own_cgroup: Some("/".into()),
            pidfd: true,
            psi: true,
            ..HostFacts::default()
        };
        let r = report(&f);
        assert!(r.contains("hybrid"), "{r}");
        assert!(r.contains("driver: userland (userland enforcement)"), "{r}");
        assert!(r.contains("cgroup_no_v1=all"), "{r}");
    }

    #[test]
    fn rootless_undelegated_gets_the_scope_fix() {
        let f = HostFacts {
            cgroup2_mount: Some("/sys/fs/cgroup".into()),
            cgroup2_only: true,
            root_controllers: vec!["memory".into(), "pids".into()],
            euid: 1000,
            pidfd: true,
            psi: true,
            ..HostFacts::default()
        };
        let fx = fixes(&f);
        assert_eq!(fx.len(), 1, "{fx:?}");
        assert!(fx[0].contains("Delegate=yes"));
    }

    #[test]
    fn a_good_host_needs_no_fix() {
        let f = HostFacts {
            cgroup2_mount: Some("/sys/fs/cgroup".into()),
            cgroup2_only: true,
            root_controllers: vec!["memory".into(), "pids".into()],
            own_cgroup_writable: true,
            pidfd: true,
            psi: true,
            ..HostFacts::default()
        };
        assert!(fixes(&f).is_empty());
    }
}
