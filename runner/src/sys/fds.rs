//! Descriptors a process inherited without close-on-exec.
#![allow(unsafe_code)]

/// Marks every descriptor above 2 close-on-exec, so that nothing the
/// process inherited by accident (a client's pipe without `O_CLOEXEC`)
/// reaches the programs it starts: for the pool host, which outlives the
/// relay that started it and starts servers for the pool's whole life.
/// `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)` (Linux 5.11); on older kernels
/// each descriptor listed in `/proc/self/fd`.
///
/// # References
/// close_range(2), fcntl(2)
pub fn cloexec_inherited() {
    // SAFETY: close_range takes three integers and touches no memory; with
    // CLOSE_RANGE_CLOEXEC it only sets a descriptor flag.
    if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) } == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> =
        entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter(|&fd| fd > 2).collect();
    for fd in fds {
        // SAFETY: F_SETFD only sets the descriptor's flags; a number that
        // is not open (the listing's own descriptor, closed by now) fails
        // with EBADF and changes nothing.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}
