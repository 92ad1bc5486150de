//! What a Mac offers: no cgroups and no systemd; physical memory, the
//! memory pressure level and whether the jetsam limit can be set at spawn.

use mcp_runner_macos::memory::{self, PressureLevel};

use crate::host::{HostFacts, Platform};

pub fn probe_host() -> HostFacts {
    let uname = nix::sys::utsname::uname().ok();
    HostFacts {
        platform: Platform::Macos,
        kernel: uname.map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
        euid: nix::unistd::Uid::effective().as_raw(),
        physical_memory: memory::host_memory().map(|m| m.physical).unwrap_or(0),
        jetsam: mcp_runner_macos::spawn::jetsam_available(),
        pressure_level: memory::pressure_level().ok().map(|l| match l {
            PressureLevel::Normal => 1,
            PressureLevel::Warn => 2,
            PressureLevel::Critical => 4,
            PressureLevel::Unknown(n) => n,
        }),
        ..HostFacts::default()
    }
}
