//! Feature probes for `doctor` and driver selection: ask the kernel, don't
//! guess from the version string.
#![allow(unsafe_code)]

use std::io;

/// Whether the kernel knows `clone3` (Linux >= 5.3, and not filtered by a
/// seccomp profile that answers ENOSYS, as Docker's default profile does).
pub fn clone3_available() -> bool {
    // SAFETY: a null argument with size 0 is rejected by the kernel with
    // EINVAL before it reads anything; an unknown syscall gives ENOSYS. No
    // process is created in either case.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
    let err = io::Error::last_os_error();
    rc == -1 && err.raw_os_error() != Some(libc::ENOSYS) && err.raw_os_error() != Some(libc::EPERM)
}
