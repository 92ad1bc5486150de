//! `mcp-runner doctor`: what this host offers, which driver runs and why,
//! and for everything missing the step that fixes it.

use std::fmt::Write as _;
use std::process::ExitCode;

use mcp_runner_policy::DriverPref;

use super::Failure;
use crate::driver::{IMPLEMENTED, select};
use crate::host::{HostFacts, Platform};

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
    match f.platform {
        Platform::Linux => linux_report(f),
        Platform::Macos => macos_report(f),
    }
}

/// The driver line and the drivers passed over.
fn driver_lines(f: &HostFacts, out: &mut String) {
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
}

/// What macOS offers an unprivileged user, and what it cannot enforce.
fn macos_report(f: &HostFacts) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<16} {v}");
    };
    line("platform", format!("macOS (Darwin {})", f.kernel));
    line(
        "jetsam at spawn",
        if f.jetsam {
            "yes: memory_max is a fatal kernel limit on the server's main process (posix_spawnattr_setjetsam_ext, a private API)".into()
        } else {
            "no: posix_spawnattr_setjetsam_ext is missing; the footprint poll alone enforces memory_max".into()
        },
    );
    line(
        "memory pressure",
        match f.pressure_level {
            Some(1) => "normal".into(),
            Some(2) => "warn".into(),
            Some(4) => "critical".into(),
            Some(n) => format!("unknown level {n}"),
            None => "unreadable (kern.memorystatus_vm_pressure_level): admission counts free memory only".into(),
        },
    );
    line(
        "subreaper",
        "none on macOS: launchd adopts orphans; the runner follows them by lineage and kills them".into(),
    );
    line("uid", f.euid.to_string());
    let _ = writeln!(out);
    driver_lines(f, &mut out);
    let _ = writeln!(
        out,
        "\nwhat macOS cannot enforce (cgroups can, on Linux):\n\
         \x20 - memory_max binds the kernel only for the main process until it execs (jetsam); the rest of the\n\
         \x20   tree is held by a footprint poll every sample_interval and can overshoot between two polls\n\
         \x20 - memory_high does not throttle: it warns, and the throttle_timeout rule kills a tree that stays above it\n\
         \x20 - pids_max counts processes, not threads; cpu_max is not enforced\n\
         \x20 - session and global caps hold at admission (the user's runners' footprints summed), not as a kernel cap\n\
         \x20 - a SIGKILLed runner's tree is swept by its crash guard within moments, not at once\n\
         nothing here needs root, and System Integrity Protection does not affect it"
    );
    out
}

fn linux_report(f: &HostFacts) -> String {
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
    driver_lines(f, &mut out);
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
    fn a_mac_is_told_what_it_gets_and_what_it_does_not() {
        let f = HostFacts {
            platform: Platform::Macos,
            kernel: "24.1.0".into(),
            euid: 501,
            jetsam: true,
            pressure_level: Some(2),
            ..HostFacts::default()
        };
        let r = report(&f);
        assert!(r.contains("driver: macos (userland enforcement)"), "{r}");
        assert!(r.contains("not cgroupfs: macOS has no cgroups"), "{r}");
        assert!(r.contains("memory pressure  warn"), "{r}");
        assert!(r.contains("jetsam at spawn  yes"), "{r}");
        assert!(r.contains("can overshoot between two polls"), "{r}");
        assert!(!r.contains("cgroup_no_v1"), "no Linux boot advice on a Mac: {r}");
        let no_jetsam = report(&HostFacts { jetsam: false, pressure_level: None, ..f });
        assert!(no_jetsam.contains("the footprint poll alone enforces memory_max"), "{no_jetsam}");
        assert!(no_jetsam.contains("unreadable"), "{no_jetsam}");
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
