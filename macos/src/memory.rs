//! How much memory the machine has and how hard it is pressed: the inputs to
//! admission control.
#![allow(unsafe_code)]

#[cfg(target_os = "macos")]
use std::ffi::CStr;
#[cfg(target_os = "macos")]
use std::io;

#[cfg(any(target_os = "macos", test))]
use crate::sys;

/// The system's memory pressure, as the kernel reports it to libdispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PressureLevel {
    Normal,
    Warn,
    Critical,
    /// A value this crate does not know.
    Unknown(u32),
}

impl PressureLevel {
    /// The `DISPATCH_MEMORYPRESSURE_*` value the sysctl answers with: 1, 2, 4.
    #[cfg(any(target_os = "macos", test))]
    fn from_dispatch_level(raw: u32) -> PressureLevel {
        match raw {
            sys::DISPATCH_MEMORYPRESSURE_NORMAL => PressureLevel::Normal,
            sys::DISPATCH_MEMORYPRESSURE_WARN => PressureLevel::Warn,
            sys::DISPATCH_MEMORYPRESSURE_CRITICAL => PressureLevel::Critical,
            other => PressureLevel::Unknown(other),
        }
    }
}

/// The machine's memory, all in bytes (page counts times the kernel's page
/// size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostMemory {
    /// Installed memory (`hw.memsize`).
    pub physical: u64,
    /// The kernel's page size, the unit the counts below were converted from.
    pub page_size: u64,
    /// Free, speculative pages included (`free_count`).
    pub free: u64,
    /// In use and recently touched (`active_count`).
    pub active: u64,
    /// In use but not recently touched, reclaimable first (`inactive_count`).
    pub inactive: u64,
    /// Read ahead from disk and not used yet; already counted in `free`.
    pub speculative: u64,
    /// Purgeable: an owner marked it as discardable (`purgeable_count`).
    pub purgeable: u64,
    /// Occupied by the compressor (`compressor_page_count`): the compressed
    /// size, not the size of what it holds.
    pub compressed: u64,
}

/// The current memory pressure level, read from the
/// `kern.memorystatus_vm_pressure_level` sysctl. Readable without privileges
/// on macOS (the privilege check is compiled only for other Apple systems,
/// bsd/kern/kern_memorystatus_notify.c); hidden from `sysctl -a` but readable
/// by name.
///
/// # References
/// sysctlbyname(3); `DISPATCH_MEMORYPRESSURE_*` in <dispatch/source.h>
#[cfg(target_os = "macos")]
pub fn pressure_level() -> io::Result<PressureLevel> {
    let raw = u32::from_ne_bytes(sysctl_bytes(c"kern.memorystatus_vm_pressure_level")?);
    Ok(PressureLevel::from_dispatch_level(raw))
}

/// The machine's memory and how it is used: `hw.memsize`, and
/// `host_statistics64(HOST_VM_INFO64)` on the host port.
///
/// The kernel answers unprivileged callers from a cache when they ask more
/// than a few (2 to 10) times a second (osfmk/kern/host.c,
/// `rate_limit_host_statistics`): poll no faster than once a second.
///
/// # References
/// host_statistics64 and `struct vm_statistics64` in <mach/vm_statistics.h>,
/// <mach/host_info.h>; host_page_size in <mach/mach_init.h>; sysctl(3) `hw.memsize`
#[cfg(target_os = "macos")]
pub fn host_memory() -> io::Result<HostMemory> {
    let physical = u64::from_ne_bytes(sysctl_bytes(c"hw.memsize")?);
    let host = HostPort::new();

    let mut page_size: libc::vm_size_t = 0;
    // SAFETY: `page_size` is a valid place for the answer; the host port is
    // ours until `host` drops.
    kern_result(unsafe { sys::host_page_size(host.0, &mut page_size) }, "host_page_size")?;

    let mut stats = sys::vm_statistics64_rev1::default();
    let mut count = sys::HOST_VM_INFO64_REV1_COUNT;
    // SAFETY: `stats` is `count` integer_t words long; the kernel writes at
    // most `count` words and lowers `count` to what it wrote.
    let kr = unsafe { libc::host_statistics64(host.0, libc::HOST_VM_INFO64, (&raw mut stats).cast(), &mut count) };
    kern_result(kr, "host_statistics64(HOST_VM_INFO64)")?;
    if count < sys::HOST_VM_INFO64_REV1_COUNT {
        let msg =
            format!("host_statistics64(HOST_VM_INFO64): {count} words, expected {}", sys::HOST_VM_INFO64_REV1_COUNT);
        return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
    }

    let page_size = page_size as u64;
    let bytes = |pages: u32| u64::from(pages) * page_size;
    Ok(HostMemory {
        physical,
        page_size,
        free: bytes(stats.free_count),
        active: bytes(stats.active_count),
        inactive: bytes(stats.inactive_count),
        speculative: bytes(stats.speculative_count),
        purgeable: bytes(stats.purgeable_count),
        compressed: bytes(stats.compressor_page_count),
    })
}

/// A send right to the host port. `mach_host_self` adds a user reference on
/// every call, so each one is dropped again (mach_port_deallocate(3)).
#[cfg(target_os = "macos")]
struct HostPort(libc::mach_port_t);

#[cfg(target_os = "macos")]
impl HostPort {
    fn new() -> HostPort {
        HostPort(sys::mach_host_self())
    }
}

#[cfg(target_os = "macos")]
impl Drop for HostPort {
    fn drop(&mut self) {
        // SAFETY: libsystem set `mach_task_self_` before `main`, and this
        // drops the one reference `mach_host_self` gave us, once.
        unsafe { sys::mach_port_deallocate(sys::mach_task_self_, self.0) };
    }
}

#[cfg(target_os = "macos")]
fn kern_result(kr: libc::kern_return_t, call: &str) -> io::Result<()> {
    if kr == libc::KERN_SUCCESS { Ok(()) } else { Err(io::Error::other(format!("{call}: kern_return_t {kr}"))) }
}

/// A fixed-size sysctl value, read by name. A value of another size is an
/// error rather than a partial read.
#[cfg(target_os = "macos")]
fn sysctl_bytes<const N: usize>(name: &CStr) -> io::Result<[u8; N]> {
    let mut value = [0u8; N];
    let mut len = N;
    // SAFETY: `name` is NUL-terminated; `value` has room for `len` bytes and
    // the kernel writes at most that many, storing the real length in `len`;
    // no new value is set.
    let rc = unsafe { libc::sysctlbyname(name.as_ptr(), value.as_mut_ptr().cast(), &mut len, std::ptr::null_mut(), 0) };
    let call = || format!("sysctlbyname({})", name.to_string_lossy());
    if rc != 0 {
        return Err(sys::with_call(io::Error::last_os_error(), call()));
    }
    if len != N {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: {len} bytes, expected {N}", call())));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_levels_are_the_dispatch_values() {
        assert_eq!(PressureLevel::from_dispatch_level(1), PressureLevel::Normal);
        assert_eq!(PressureLevel::from_dispatch_level(2), PressureLevel::Warn);
        assert_eq!(PressureLevel::from_dispatch_level(4), PressureLevel::Critical);
    }

    #[test]
    fn other_pressure_values_are_unknown() {
        for raw in [0, 3, 8, u32::MAX] {
            assert_eq!(PressureLevel::from_dispatch_level(raw), PressureLevel::Unknown(raw));
        }
    }
}

/// Run on a Mac only: these ask the real kernel.
#[cfg(all(test, target_os = "macos"))]
mod macos_tests {
    use super::*;

    #[test]
    fn the_pressure_level_is_known() {
        let level = pressure_level().expect("pressure_level");
        assert!(!matches!(level, PressureLevel::Unknown(_)), "{level:?}");
    }

    #[test]
    fn host_memory_adds_up() {
        let mem = host_memory().expect("host_memory");
        assert!(mem.physical > 0);
        assert!(mem.page_size == 4096 || mem.page_size == 16384, "page size {}", mem.page_size);
        assert!(mem.free + mem.active + mem.inactive <= mem.physical, "{mem:?}");
        assert!(mem.speculative <= mem.free, "{mem:?}");
        assert!(mem.compressed < mem.physical, "{mem:?}");
    }
}
