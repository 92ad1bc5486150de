//! The one list of every C struct, constant and prototype this crate's FFI
//! relies on, with the size, alignment, field offsets and values it expects.
//!
//! Three checks hang off this list:
//!
//! * at compile time, every entry is asserted against its Rust declaration
//!   (`size_of`, `align_of`, `offset_of!`, the constant's value): this
//!   crate's own declarations on every platform, `libc`'s when compiling for
//!   macOS (which the Apple-target `cargo check` does from Linux);
//! * a unit test does the same at run time and reports what it covered;
//! * `ci/macos-layout` turns the list into C `_Static_assert`s (the
//!   `layout-c` example) and compiles them against the macOS SDK headers that
//!   zig ships, for `aarch64-macos` and `x86_64-macos`.
//!
//! So a number here is right for the Rust side by construction and for the
//! C side by the SDK. Items Apple keeps private ([`Origin::Private`]) have no
//! header to be checked against: their values come from XNU's source at
//! [`XNU_TAG`], and only a run on a Mac can confirm them.

/// The XNU release that private items were transcribed from (macOS 15.x).
pub const XNU_TAG: &str = "xnu-11417.101.15";

/// Where the C side of an entry is declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// In the public macOS SDK, in this header (as `#include <...>` names it).
    Sdk(&'static str),
    /// Private to Apple and absent from the SDK; transcribed from this XNU
    /// source file at [`XNU_TAG`].
    Private(&'static str),
}

/// Whose Rust declaration an entry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Declared by this crate: checked on every platform.
    Own,
    /// Taken from the `libc` crate, which declares it for Apple targets only:
    /// checked when compiling for macOS.
    Libc,
}

/// How much of a C struct the Rust struct covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// All of it: `sizeof` equals this.
    Whole(usize),
    /// A leading part of a struct that grows with each macOS release: the
    /// Rust struct is `size` bytes and ends where C field `next_field` begins.
    Prefix { size: usize, next_field: &'static str },
}

impl Extent {
    /// The size of the Rust struct.
    pub const fn size(self) -> usize {
        match self {
            Extent::Whole(size) | Extent::Prefix { size, .. } => size,
        }
    }
}

/// One field of a [`StructLayout`]: the C (and Rust) field name and its offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
}

/// The layout a `#[repr(C)]` struct must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructLayout {
    /// As C spells the type, e.g. `struct kevent`.
    pub c_type: &'static str,
    /// The Rust type, e.g. `libc::kevent`.
    pub rust: &'static str,
    pub binding: Binding,
    pub origin: Origin,
    pub extent: Extent,
    pub align: usize,
    /// The fields the FFI reads or writes (all of them for this crate's own
    /// structs).
    pub fields: &'static [Field],
    /// For a private struct: its declaration as XNU has it, so the C check
    /// can at least compare the Rust layout with the Apple ABI's layout of
    /// that declaration.
    pub c_decl: Option<&'static str>,
}

/// The value a C macro must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Constant {
    pub c_name: &'static str,
    /// The Rust item, e.g. `sys::PROC_PPID_ONLY` or `libc::EVFILT_PROC`.
    pub rust: &'static str,
    pub binding: Binding,
    pub origin: Origin,
    pub value: i64,
}

/// The C type of a function or variable this crate declares itself (in
/// `sys.rs`), as a pointer type: `int (*)(int)` for a function, `int *` for
/// a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prototype {
    pub c_name: &'static str,
    pub c_pointer_type: &'static str,
    pub origin: Origin,
}

/// Expands to the Rust path of an item given its binding.
macro_rules! rust_path {
    (own $name:ident) => {
        crate::sys::$name
    };
    (libc $name:ident) => {
        libc::$name
    };
}

macro_rules! binding {
    (own) => {
        Binding::Own
    };
    (libc) => {
        Binding::Libc
    };
}

macro_rules! module {
    (own) => {
        "sys::"
    };
    (libc) => {
        "libc::"
    };
}

/// Compile-time check of one entry, only where its Rust declaration exists.
macro_rules! when_declared {
    (own, $item:item) => {
        $item
    };
    (libc, $item:item) => {
        #[cfg(target_os = "macos")]
        $item
    };
}

/// Run-time counterpart of `when_declared!`, for the unit tests.
#[cfg(test)]
macro_rules! push_if_declared {
    (own, $found:ident, $entry:expr) => {
        $found.push($entry);
    };
    (libc, $found:ident, $entry:expr) => {
        #[cfg(target_os = "macos")]
        $found.push($entry);
    };
}

macro_rules! structs {
    ($(
        $binding:ident $name:ident => $c_type:literal, $origin:expr, $extent:expr, align $align:literal,
        decl $decl:expr, { $($field:ident: $offset:literal),* $(,)? }
    );* $(;)?) => {
        /// Every C struct whose layout the FFI relies on.
        pub const STRUCTS: &[StructLayout] = &[$(
            StructLayout {
                c_type: $c_type,
                rust: concat!(module!($binding), stringify!($name)),
                binding: binding!($binding),
                origin: $origin,
                extent: $extent,
                align: $align,
                fields: &[$(Field { name: stringify!($field), offset: $offset }),*],
                c_decl: $decl,
            },
        )*];

        $(when_declared!($binding, const _: () = {
            type T = rust_path!($binding $name);
            assert!(size_of::<T>() == Extent::size($extent), concat!("size of ", $c_type));
            assert!(align_of::<T>() == $align, concat!("alignment of ", $c_type));
            $(assert!(
                core::mem::offset_of!(T, $field) == $offset,
                concat!("offset of ", $c_type, ".", stringify!($field))
            );)*
        };);)*

        /// The Rust side of every entry declared on this platform:
        /// (C type, size, alignment, field offsets).
        #[cfg(test)]
        #[allow(clippy::vec_init_then_push)] // some pushes are cfg'd out
        fn rust_structs() -> Vec<(&'static str, usize, usize, Vec<(&'static str, usize)>)> {
            let mut found = Vec::new();
            $(push_if_declared!($binding, found, (
                $c_type,
                size_of::<rust_path!($binding $name)>(),
                align_of::<rust_path!($binding $name)>(),
                vec![$((stringify!($field), core::mem::offset_of!(rust_path!($binding $name), $field))),*],
            ));)*
            found
        }
    };
}

macro_rules! constants {
    ($($binding:ident $name:ident = $value:literal, $origin:expr;)*) => {
        /// Every C constant the FFI passes to or compares with the OS.
        pub const CONSTANTS: &[Constant] = &[$(
            Constant {
                c_name: stringify!($name),
                rust: concat!(module!($binding), stringify!($name)),
                binding: binding!($binding),
                origin: $origin,
                value: $value,
            },
        )*];

        $(when_declared!($binding, const _: () = assert!(
            rust_path!($binding $name) as i64 == $value,
            concat!("value of ", stringify!($name))
        ););)*

        /// The Rust value of every entry declared on this platform.
        #[cfg(test)]
        #[allow(clippy::vec_init_then_push)] // some pushes are cfg'd out
        fn rust_constants() -> Vec<(&'static str, i64)> {
            #[allow(unused_mut)]
            let mut found = Vec::new();
            $(push_if_declared!($binding, found, (stringify!($name), rust_path!($binding $name) as i64));)*
            found
        }
    };
}

/// The declaration of `struct proc_uniqidentifierinfo` in XNU's
/// bsd/sys/proc_info_private.h.
const PROC_UNIQIDENTIFIERINFO_DECL: &str = "\
struct proc_uniqidentifierinfo {
\tuint8_t  p_uuid[16];
\tuint64_t p_uniqueid;
\tuint64_t p_puniqueid;
\tint32_t  p_idversion;
\tint32_t  p_orig_ppidversion;
\tuint64_t p_reserve2;
\tuint64_t p_reserve3;
};";

const PROC_INFO: Origin = Origin::Sdk("sys/proc_info.h");
const EVENT: Origin = Origin::Sdk("sys/event.h");
const SPAWN: Origin = Origin::Sdk("spawn.h");
const ERRNO: Origin = Origin::Sdk("errno.h");

structs! {
    own proc_uniqidentifierinfo => "struct proc_uniqidentifierinfo",
        Origin::Private("bsd/sys/proc_info_private.h"), Extent::Whole(56), align 8,
        decl Some(PROC_UNIQIDENTIFIERINFO_DECL), {
        p_uuid: 0, p_uniqueid: 16, p_puniqueid: 24, p_idversion: 32, p_orig_ppidversion: 36,
        p_reserve2: 40, p_reserve3: 48,
    };
    own vm_statistics64_rev1 => "struct vm_statistics64",
        Origin::Sdk("mach/vm_statistics.h"), Extent::Prefix { size: 152, next_field: "swapped_count" }, align 8,
        decl None, {
        free_count: 0, active_count: 4, inactive_count: 8, wire_count: 12, zero_fill_count: 16,
        reactivations: 24, pageins: 32, pageouts: 40, faults: 48, cow_faults: 56, lookups: 64, hits: 72,
        purges: 80, purgeable_count: 88, speculative_count: 92, decompressions: 96, compressions: 104,
        swapins: 112, swapouts: 120, compressor_page_count: 128, throttled_count: 132,
        external_page_count: 136, internal_page_count: 140, total_uncompressed_pages_in_compressor: 144,
    };
    libc proc_bsdinfo => "struct proc_bsdinfo", PROC_INFO, Extent::Whole(136), align 8, decl None, {
        pbi_flags: 0, pbi_status: 4, pbi_xstatus: 8, pbi_pid: 12, pbi_ppid: 16, pbi_uid: 20, pbi_gid: 24,
        pbi_ruid: 28, pbi_rgid: 32, pbi_svuid: 36, pbi_svgid: 40, rfu_1: 44, pbi_comm: 48, pbi_name: 64,
        pbi_nfiles: 96, pbi_pgid: 100, pbi_pjobc: 104, e_tdev: 108, e_tpgid: 112, pbi_nice: 116,
        pbi_start_tvsec: 120, pbi_start_tvusec: 128,
    };
    // pbsi_rfu (offset 60) is private in libc.
    libc proc_bsdshortinfo => "struct proc_bsdshortinfo", PROC_INFO, Extent::Whole(64), align 4, decl None, {
        pbsi_pid: 0, pbsi_ppid: 4, pbsi_pgid: 8, pbsi_status: 12, pbsi_comm: 16, pbsi_flags: 32,
        pbsi_uid: 36, pbsi_gid: 40, pbsi_ruid: 44, pbsi_rgid: 48, pbsi_svuid: 52, pbsi_svgid: 56,
    };
    libc rusage_info_v4 => "struct rusage_info_v4", Origin::Sdk("sys/resource.h"), Extent::Whole(296), align 8,
        decl None, {
        ri_uuid: 0, ri_resident_size: 64, ri_phys_footprint: 72, ri_lifetime_max_phys_footprint: 240,
        ri_interval_max_phys_footprint: 280, ri_runnable_time: 288,
    };
    libc kevent => "struct kevent", EVENT, Extent::Whole(32), align 4, decl None, {
        ident: 0, filter: 8, flags: 10, fflags: 12, data: 16, udata: 24,
    };
}

constants! {
    own PROC_ALL_PIDS = 1, PROC_INFO;
    own PROC_PGRP_ONLY = 2, PROC_INFO;
    own PROC_PPID_ONLY = 6, PROC_INFO;
    own PROC_PIDUNIQIDENTIFIERINFO = 17, Origin::Private("bsd/sys/proc_info_private.h");
    own POSIX_SPAWN_JETSAM_MEMLIMIT_ACTIVE_FATAL = 0x04, Origin::Private("bsd/sys/spawn_internal.h");
    own POSIX_SPAWN_JETSAM_MEMLIMIT_INACTIVE_FATAL = 0x08, Origin::Private("bsd/sys/spawn_internal.h");
    own DISPATCH_MEMORYPRESSURE_NORMAL = 0x01, Origin::Sdk("dispatch/dispatch.h");
    own DISPATCH_MEMORYPRESSURE_WARN = 0x02, Origin::Sdk("dispatch/dispatch.h");
    own DISPATCH_MEMORYPRESSURE_CRITICAL = 0x04, Origin::Sdk("dispatch/dispatch.h");
    own HOST_VM_INFO64_REV1_COUNT = 38, Origin::Sdk("mach/host_info.h");
    libc HOST_VM_INFO64 = 4, Origin::Sdk("mach/host_info.h");
    libc KERN_SUCCESS = 0, Origin::Sdk("mach/kern_return.h");
    libc PROC_PIDTBSDINFO = 3, PROC_INFO;
    libc PROC_PIDT_SHORTBSDINFO = 13, PROC_INFO;
    libc SZOMB = 5, Origin::Sdk("sys/proc.h");
    libc MAXCOMLEN = 16, Origin::Sdk("sys/param.h");
    libc RUSAGE_INFO_V4 = 4, Origin::Sdk("sys/resource.h");
    libc EVFILT_READ = -1, EVENT;
    libc EVFILT_PROC = -5, EVENT;
    libc EVFILT_SIGNAL = -6, EVENT;
    libc EV_ADD = 0x0001, EVENT;
    libc EV_RECEIPT = 0x0040, EVENT;
    libc EV_ERROR = 0x4000, EVENT;
    libc EV_EOF = 0x8000, EVENT;
    libc NOTE_EXIT = 0x8000_0000, EVENT;
    libc NOTE_FORK = 0x4000_0000, EVENT;
    libc NOTE_EXEC = 0x2000_0000, EVENT;
    libc NOTE_EXITSTATUS = 0x0400_0000, EVENT;
    libc NOTE_EXIT_DETAIL = 0x0200_0000, EVENT;
    libc NOTE_EXIT_DETAIL_MASK = 0x0007_0000, EVENT;
    libc NOTE_EXIT_MEMORY = 0x0002_0000, EVENT;
    libc NOTE_PDATAMASK = 0x000f_ffff, EVENT;
    libc POSIX_SPAWN_SETPGROUP = 0x0002, SPAWN;
    libc POSIX_SPAWN_SETSIGDEF = 0x0004, SPAWN;
    libc POSIX_SPAWN_SETSIGMASK = 0x0008, SPAWN;
    libc POSIX_SPAWN_CLOEXEC_DEFAULT = 0x4000, SPAWN;
    libc SIGKILL = 9, Origin::Sdk("signal.h");
    libc SIGSTOP = 17, Origin::Sdk("signal.h");
    libc EPERM = 1, ERRNO;
    libc ENOENT = 2, ERRNO;
    libc ESRCH = 3, ERRNO;
    libc EINTR = 4, ERRNO;
    libc ENOEXEC = 8, ERRNO;
    libc EACCES = 13, ERRNO;
    libc ENOTDIR = 20, ERRNO;
    libc EISDIR = 21, ERRNO;
    libc EINVAL = 22, ERRNO;
    libc ENOTSUP = 45, ERRNO;
    libc EBADEXEC = 85, ERRNO;
    libc EBADARCH = 86, ERRNO;
    libc ESHLIBVERS = 87, ERRNO;
    libc EBADMACHO = 88, ERRNO;
}

/// Every function or variable `sys.rs` declares itself, with its C type.
pub const PROTOTYPES: &[Prototype] = &[
    Prototype {
        c_name: "posix_spawn_file_actions_addinherit_np",
        c_pointer_type: "int (*)(posix_spawn_file_actions_t *, int)",
        origin: SPAWN,
    },
    Prototype {
        c_name: "mach_host_self",
        c_pointer_type: "mach_port_t (*)(void)",
        origin: Origin::Sdk("mach/mach_init.h"),
    },
    Prototype { c_name: "mach_task_self_", c_pointer_type: "mach_port_t *", origin: Origin::Sdk("mach/mach_init.h") },
    Prototype {
        c_name: "mach_port_deallocate",
        c_pointer_type: "kern_return_t (*)(ipc_space_t, mach_port_name_t)",
        origin: Origin::Sdk("mach/mach_port.h"),
    },
    Prototype {
        c_name: "host_page_size",
        c_pointer_type: "kern_return_t (*)(host_t, vm_size_t *)",
        origin: Origin::Sdk("mach/mach_init.h"),
    },
    // Looked up with dlsym at run time (spawn.rs); the function pointer type
    // is `sys::posix_spawnattr_setjetsam_ext_fn`.
    Prototype {
        c_name: "posix_spawnattr_setjetsam_ext",
        c_pointer_type: "int (*)(posix_spawnattr_t *, short, int, int, int)",
        origin: Origin::Private("libsyscall/wrappers/spawn/spawn_private.h"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_structs_match_the_table() {
        let rust = rust_structs();
        let mut checked = 0;
        for entry in STRUCTS {
            let Some((_, size, align, fields)) = rust.iter().find(|(c_type, ..)| *c_type == entry.c_type) else {
                // libc declares its structs for Apple targets only.
                assert_eq!(entry.binding, Binding::Libc, "{} has no Rust declaration", entry.c_type);
                continue;
            };
            assert_eq!(*size, entry.extent.size(), "size of {}", entry.c_type);
            assert_eq!(*align, entry.align, "alignment of {}", entry.c_type);
            let expected: Vec<_> = entry.fields.iter().map(|f| (f.name, f.offset)).collect();
            assert_eq!(*fields, expected, "field offsets of {}", entry.c_type);
            checked += 1;
        }
        let own = STRUCTS.iter().filter(|s| s.binding == Binding::Own).count();
        assert!(checked >= own, "only {checked} of {own} own structs were checked");
    }

    #[test]
    fn rust_constants_match_the_table() {
        let rust = rust_constants();
        for entry in CONSTANTS {
            match rust.iter().find(|(name, _)| *name == entry.c_name) {
                Some((_, value)) => assert_eq!(*value, entry.value, "value of {}", entry.c_name),
                None => assert_eq!(entry.binding, Binding::Libc, "{} has no Rust declaration", entry.c_name),
            }
        }
    }

    /// The table is the list of what sys.rs declares: a struct, constant or
    /// foreign item added there without an entry here fails this test.
    #[test]
    fn every_declaration_in_sys_is_listed() {
        let ident = |rest: &str| -> String { rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
        let mut in_extern_block = false;
        let mut seen = 0;
        for line in include_str!("sys.rs").lines() {
            let line = line.trim();
            if line.starts_with("unsafe extern \"C\" {") {
                in_extern_block = true;
            } else if line == "}" {
                in_extern_block = false;
            }
            let rust = |name: String| format!("sys::{name}");
            let listed = if let Some(rest) = line.strip_prefix("pub(crate) const ") {
                let name = rust(ident(rest));
                CONSTANTS.iter().any(|c| c.rust == name)
            } else if let Some(rest) = line.strip_prefix("pub(crate) struct ") {
                let name = rust(ident(rest));
                STRUCTS.iter().any(|s| s.rust == name)
            } else if let Some(rest) = line.strip_prefix("pub(crate) type ") {
                let name = ident(rest);
                PROTOTYPES.iter().any(|p| Some(p.c_name) == name.strip_suffix("_fn"))
            } else if let Some(rest) = line.strip_prefix("pub(crate) ").filter(|_| in_extern_block) {
                let rest = rest.trim_start_matches("safe ").trim_start_matches("fn ").trim_start_matches("static ");
                let name = ident(rest);
                PROTOTYPES.iter().any(|p| p.c_name == name)
            } else {
                continue;
            };
            assert!(listed, "not in layout.rs: {line}");
            seen += 1;
        }
        let listed_own = STRUCTS.iter().filter(|s| s.binding == Binding::Own).count()
            + CONSTANTS.iter().filter(|c| c.binding == Binding::Own).count()
            + PROTOTYPES.len();
        assert_eq!(seen, listed_own, "layout.rs lists an item sys.rs does not declare");
    }

    #[test]
    fn fields_are_listed_in_offset_order_and_inside_the_struct() {
        for entry in STRUCTS {
            let offsets: Vec<_> = entry.fields.iter().map(|f| f.offset).collect();
            assert!(offsets.is_sorted(), "{}: fields out of order", entry.c_type);
            assert!(offsets.iter().all(|&o| o < entry.extent.size()), "{}: field past the end", entry.c_type);
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = STRUCTS.iter().map(|s| s.c_type).collect();
        names.extend(CONSTANTS.iter().map(|c| c.c_name));
        names.extend(PROTOTYPES.iter().map(|p| p.c_name));
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a name is listed twice");
    }

    #[test]
    fn private_structs_carry_their_declaration() {
        for entry in STRUCTS {
            let private = matches!(entry.origin, Origin::Private(_));
            assert_eq!(private, entry.c_decl.is_some(), "{}", entry.c_type);
        }
    }
}
