//! The C declarations this crate needs and `libc` 0.2 does not provide, or
//! provides in a shape that does not fit.
//!
//! Every struct and constant here has an entry in [`crate::layout`], which a
//! unit test checks against these declarations and `ci/macos-layout` checks
//! against Apple's SDK headers. Items Apple keeps private (not in the SDK) are
//! transcribed from XNU (tag xnu-11417.101.15) and marked as such there.
//!
//! The structs and constants compile on every platform so the layout test runs
//! on Linux; the function declarations exist only on macOS.
#![allow(unsafe_code)]
// Names follow the C headers, so a reader can grep the SDK for them.
#![allow(non_camel_case_types)]

// ---------------------------------------------------------------------------
// libproc: <sys/proc_info.h> (public) and bsd/sys/proc_info_private.h (private)

/// `proc_listpids(PROC_ALL_PIDS, 0, ...)`: every process. <sys/proc_info.h>
pub(crate) const PROC_ALL_PIDS: u32 = 1;
/// `proc_listpids(PROC_PGRP_ONLY, pgid, ...)`: members of one process group.
pub(crate) const PROC_PGRP_ONLY: u32 = 2;
/// `proc_listpids(PROC_PPID_ONLY, ppid, ...)`: children of one process.
pub(crate) const PROC_PPID_ONLY: u32 = 6;

/// `proc_pidinfo` flavor returning [`proc_uniqidentifierinfo`]. Private
/// (bsd/sys/proc_info_private.h), but readable for any user's process
/// (bsd/kern/proc_info.c, `proc_pidinfo`: `NO_CHECK_SAME_USER`).
pub(crate) const PROC_PIDUNIQIDENTIFIERINFO: libc::c_int = 17;

/// `struct proc_uniqidentifierinfo`, bsd/sys/proc_info_private.h. The header
/// says "This structure is API" and asserts its size (56); it used to be in
/// the public <sys/proc_info.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct proc_uniqidentifierinfo {
    /// UUID of the main executable.
    pub(crate) p_uuid: [u8; 16],
    /// 64-bit identifier of this process, never reused while the system runs.
    pub(crate) p_uniqueid: u64,
    /// `p_uniqueid` of the parent at fork/spawn time; not changed when the
    /// process is reparented to launchd (bsd/sys/proc_internal.h).
    pub(crate) p_puniqueid: u64,
    pub(crate) p_idversion: i32,
    pub(crate) p_orig_ppidversion: i32,
    pub(crate) p_reserve2: u64,
    pub(crate) p_reserve3: u64,
}

// ---------------------------------------------------------------------------
// posix_spawn jetsam attributes: bsd/sys/spawn_internal.h (private)

/// The limit is fatal (SIGKILL) while the process is active.
pub(crate) const POSIX_SPAWN_JETSAM_MEMLIMIT_ACTIVE_FATAL: libc::c_short = 0x04;
/// The limit is fatal (SIGKILL) while the process is inactive.
pub(crate) const POSIX_SPAWN_JETSAM_MEMLIMIT_INACTIVE_FATAL: libc::c_short = 0x08;

/// `int posix_spawnattr_setjetsam_ext(posix_spawnattr_t *attr, short flags,
/// int priority, int memlimit_active, int memlimit_inactive)`, private SPI
/// from libsyscall/wrappers/spawn/spawn_private.h (macOS 10.11+). It is
/// looked up at run time with `dlsym`, never linked.
#[cfg(target_os = "macos")]
pub(crate) type posix_spawnattr_setjetsam_ext_fn = unsafe extern "C" fn(
    attr: *mut libc::posix_spawnattr_t,
    flags: libc::c_short,
    priority: libc::c_int,
    memlimit_active: libc::c_int,
    memlimit_inactive: libc::c_int,
) -> libc::c_int;

// ---------------------------------------------------------------------------
// Memory pressure: <dispatch/source.h>

/// Values of the `kern.memorystatus_vm_pressure_level` sysctl. The kernel
/// converts its internal level to these dispatch levels before answering
/// (bsd/kern/kern_memorystatus_notify.c,
/// `convert_internal_pressure_level_to_dispatch_level`).
pub(crate) const DISPATCH_MEMORYPRESSURE_NORMAL: u32 = 0x01;
pub(crate) const DISPATCH_MEMORYPRESSURE_WARN: u32 = 0x02;
pub(crate) const DISPATCH_MEMORYPRESSURE_CRITICAL: u32 = 0x04;

// ---------------------------------------------------------------------------
// Mach host statistics: <mach/vm_statistics.h>, <mach/host_info.h>

/// The revision-1 prefix of `struct vm_statistics64` (<mach/vm_statistics.h>),
/// which every macOS since 10.9 fills in.
///
/// `libc`'s `vm_statistics64` follows a newer SDK than some kernels and a
/// different one than others: the struct grows with each macOS release. The
/// kernel fills in as many revisions as the caller's count allows and lowers
/// the count to match (osfmk/kern/host.c, `vm_stats`), so asking for exactly
/// [`HOST_VM_INFO64_REV1_COUNT`] words is correct on every release.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct vm_statistics64_rev1 {
    /// Free pages, speculative pages included.
    pub(crate) free_count: u32,
    pub(crate) active_count: u32,
    pub(crate) inactive_count: u32,
    pub(crate) wire_count: u32,
    pub(crate) zero_fill_count: u64,
    pub(crate) reactivations: u64,
    pub(crate) pageins: u64,
    pub(crate) pageouts: u64,
    pub(crate) faults: u64,
    pub(crate) cow_faults: u64,
    pub(crate) lookups: u64,
    pub(crate) hits: u64,
    pub(crate) purges: u64,
    pub(crate) purgeable_count: u32,
    /// Already counted in `free_count`.
    pub(crate) speculative_count: u32,
    // added for rev1
    pub(crate) decompressions: u64,
    pub(crate) compressions: u64,
    pub(crate) swapins: u64,
    pub(crate) swapouts: u64,
    /// Pages used by the compressor to hold all compressed data.
    pub(crate) compressor_page_count: u32,
    pub(crate) throttled_count: u32,
    pub(crate) external_page_count: u32,
    pub(crate) internal_page_count: u32,
    pub(crate) total_uncompressed_pages_in_compressor: u64,
}

/// `HOST_VM_INFO64_REV1_COUNT` (<mach/host_info.h>): the size of
/// [`vm_statistics64_rev1`] in `integer_t` words.
pub(crate) const HOST_VM_INFO64_REV1_COUNT: u32 = (size_of::<vm_statistics64_rev1>() / size_of::<libc::c_int>()) as u32;

// ---------------------------------------------------------------------------
// Functions libc does not declare, or declares only as deprecated (its Mach
// items point to the `mach2` crate, which this crate does not depend on).

// SAFETY: each prototype below is checked against the SDK header it comes
// from by ci/macos-layout (see `layout::PROTOTYPES`).
#[cfg(target_os = "macos")]
unsafe extern "C" {
    /// <spawn.h>, macOS 10.7+: with `POSIX_SPAWN_CLOEXEC_DEFAULT`, marks one
    /// descriptor to be inherited by the child unchanged.
    pub(crate) fn posix_spawn_file_actions_addinherit_np(
        actions: *mut libc::posix_spawn_file_actions_t,
        filedes: libc::c_int,
    ) -> libc::c_int;

    /// <mach/mach_init.h>: a send right to the host port. Every call adds a
    /// user reference that `mach_port_deallocate` must drop.
    pub(crate) safe fn mach_host_self() -> libc::mach_port_t;

    /// <mach/mach_init.h>: the task's own port, as the `mach_task_self()`
    /// macro reads it. libsystem sets it in `mach_init` before `main`, and
    /// again only in a fork child before that child runs any other code.
    pub(crate) static mach_task_self_: libc::mach_port_t;

    /// <mach/mach_port.h>: drops one user reference of a port right.
    pub(crate) fn mach_port_deallocate(task: libc::mach_port_t, name: libc::mach_port_t) -> libc::kern_return_t;

    /// <mach/mach_init.h>: the kernel's page size (`vm_kernel_page_size`),
    /// the unit of every count in `vm_statistics64`. It can differ from the
    /// process's own page size (an x86_64 process on Apple silicon sees 4 KiB
    /// pages while the kernel counts 16 KiB ones).
    pub(crate) fn host_page_size(host: libc::mach_port_t, out_page_size: *mut libc::vm_size_t) -> libc::kern_return_t;
}

// ---------------------------------------------------------------------------
// Helpers shared by the FFI modules.

/// A C struct the kernel fills in: integers, arrays of integers and raw
/// pointers only.
///
/// # Safety
///
/// Every bit pattern, all zeros included, must be a valid value of the type,
/// so that it can start zeroed and the kernel may write any bytes into it.
#[cfg(target_os = "macos")]
pub(crate) unsafe trait PlainC: Copy {
    fn zeroed() -> Self {
        // SAFETY: the trait's contract: all zeros is a valid value.
        unsafe { std::mem::zeroed() }
    }
}

// SAFETY: u8 array, u64 and i32 fields only (above).
#[cfg(target_os = "macos")]
unsafe impl PlainC for proc_uniqidentifierinfo {}
// SAFETY: u32/u64 fields and c_char arrays only (<sys/proc_info.h>).
#[cfg(target_os = "macos")]
unsafe impl PlainC for libc::proc_bsdinfo {}
// SAFETY: u32 fields and a c_char array only (<sys/proc_info.h>).
#[cfg(target_os = "macos")]
unsafe impl PlainC for libc::proc_bsdshortinfo {}
// SAFETY: a u8 array and u64 fields only (<sys/resource.h>).
#[cfg(target_os = "macos")]
unsafe impl PlainC for libc::rusage_info_v4 {}
// SAFETY: integers and one raw pointer (`udata`), which may hold any bits.
#[cfg(target_os = "macos")]
unsafe impl PlainC for libc::kevent {}

/// `err` with the failed call named in front of it, e.g.
/// "proc_pidinfo(4242, PROC_PIDTBSDINFO): Operation not permitted (os error 1)".
/// The error kind is kept, so callers can still match on it.
#[cfg(target_os = "macos")]
pub(crate) fn with_call(err: std::io::Error, call: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(err.kind(), format!("{call}: {err}"))
}
