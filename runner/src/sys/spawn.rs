//! Layers that run in the forked child between `fork` and `exec`, one
//! concern each (after process-wrap's wrappers): a driver adds the ones it
//! needs to the `Command`, in order.
//!
//! Code here runs in a copy of a process where only async-signal-safe calls
//! are allowed: `prctl`, `getppid`, `setrlimit`, `write` are; allocation and
//! locks are not. Everything the hooks need is computed before the fork, and
//! an `io::Error` built from a raw errno does not allocate.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::getppid;

use super::{Pid, Signal};

/// The child gets SIGKILL when the runner dies, and refuses to start if the
/// runner already died before the request took effect (prctl(2): no signal
/// is sent if the parent is already gone).
///
/// The parent-death signal fires when the *thread* that forked exits, so the
/// caller must spawn from a thread that lives as long as the supervision:
/// the runner spawns from its main thread, its only thread.
pub fn die_with_parent(cmd: &mut Command, parent: Pid) {
    let hook = move || -> io::Result<()> {
        prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
        if getppid() != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: prctl and getppid are async-signal-safe; nothing allocates.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// No core dumps: a crashing multi-gigabyte server would write one to the
/// user's disk right when memory is tight.
pub fn no_core_dumps(cmd: &mut Command) {
    let hook = || setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(io::Error::from);
    // SAFETY: setrlimit is async-signal-safe; nothing allocates.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Moves the child into the cgroup whose `cgroup.procs` is open as `procs`
/// (writing "0" means "the writer itself"), before exec: no instruction of
/// the server runs outside its budget. The descriptor must stay open until
/// the spawn returns; it is close-on-exec, so the server never holds it.
///
/// This is the fallback for CLONE_INTO_CGROUP, and is immune to the kernel's
/// cgroup.kill/kill_seq bug (research: linux.md §2.2, T7).
pub fn join_cgroup(cmd: &mut Command, procs: &OwnedFd) {
    let fd = procs.as_raw_fd();
    let hook = move || -> io::Result<()> {
        // SAFETY: the caller keeps `procs` open across the spawn, and the
        // child's descriptor table is a copy of the parent's at fork.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        nix::unistd::write(fd, b"0").map(|_| ()).map_err(io::Error::from)
    };
    // SAFETY: write is async-signal-safe; nothing allocates.
    unsafe {
        cmd.pre_exec(hook);
    }
}
