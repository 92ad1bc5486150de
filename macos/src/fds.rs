//! Descriptors a process inherited without close-on-exec.
#![allow(unsafe_code)]

/// Marks every descriptor above 2 close-on-exec: each one listed in
/// `/dev/fd` (macOS has no close_range).
///
/// # References
/// fcntl(2), fd(4)
#[cfg(target_os = "macos")]
pub fn cloexec_inherited() {
    let Ok(entries) = std::fs::read_dir("/dev/fd") else { return };
    let fds: Vec<i32> =
        entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter(|&fd| fd > 2).collect();
    for fd in fds {
        // SAFETY: F_SETFD only sets the descriptor's flags; a number that
        // is not open (the listing's own descriptor, closed by now) fails
        // with EBADF and changes nothing.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}
