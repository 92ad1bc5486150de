//! Crash safety without a parent-death signal. macOS cannot make the
//! server die with the runner, so every runner starts a guard: a detached
//! `mcp-runner gc --after-eof FD` that holds the read end of a pipe whose
//! only write end the runner holds (close-on-exec, so the server never has
//! it). When the runner exits, however it exits, the pipe reaches end of
//! file and the guard runs the crash sweep: a SIGKILLed runner's record is
//! still there, and its server's lineage (by unique id, through
//! reparenting) is killed. After a clean exit the record is gone and the
//! sweep finds nothing of it.
//!
//! The guard must not be the runner's child (the runner's supervision ends
//! only when it has no child left), so it is started twice removed: the
//! runner starts `gc --after-eof FD --detach`, which starts the real guard
//! and exits at once; launchd adopts the guard.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use mcp_runner_macos::spawn::{SpawnRequest, spawn};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};

/// The runner's end of the guard's pipe: dropping it (or dying) wakes the
/// guard.
pub struct Guard {
    _write: OwnedFd,
}

impl Guard {
    pub fn start() -> io::Result<Guard> {
        let (read, write) = nix::unistd::pipe()?;
        fcntl(&write, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        fcntl(&read, FcntlArg::F_SETFD(FdFlag::empty()))?;
        let exe = std::env::current_exe()?;
        let fd = read.as_raw_fd().to_string();
        // std reaps nothing here: the runner's reaper collects this
        // short-lived child like any other.
        let _intermediate = Command::new(exe)
            .args(["gc", "--after-eof", &fd, "--detach"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        drop(read);
        Ok(Guard { _write: write })
    }
}

/// `gc --after-eof FD --detach`: starts the real guard with `fd` and only
/// `fd` passed on, and returns (the caller exits).
pub fn detach_guard(fd: i32) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let c = |s: &[u8]| CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let program = c(exe.as_os_str().as_bytes())?;
    let env = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            c(&kv)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let request = SpawnRequest {
        argv: vec![program.clone(), c(b"gc")?, c(b"--after-eof")?, c(fd.to_string().as_bytes())?],
        program,
        env,
        inherit: vec![fd],
        jetsam_limit_mb: None,
    };
    spawn(&request).map(|_| ()).map_err(|e| io::Error::other(e.to_string()))
}
