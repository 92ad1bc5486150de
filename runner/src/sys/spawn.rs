//! Spawning the server: `clone3` (or `fork`), a fixed list of steps in the
//! child, then `execve`.
//!
//! The runner has its own spawner rather than `std::process::Command`
//! because it needs three things std cannot give:
//! - `CLONE_INTO_CGROUP`: the child is born in its cgroup leaf, so not one
//!   page or instruction of the server is charged or runs outside its
//!   budget (and there is no migration to race with);
//! - `CLONE_PIDFD`: a pidfd from the first instant, not opened after the
//!   fact;
//! - a gate: the child can wait before `exec` until the parent has placed
//!   it (the systemd driver moves it into a transient scope first), while
//!   `Command::spawn` blocks until `exec` has happened.
//!
//! Where `clone3` is refused (kernels < 5.3, or a seccomp profile such as
//! Docker's default that answers ENOSYS/EPERM) it falls back to `fork`, and
//! the child joins its cgroup by writing "0" to `cgroup.procs` before exec,
//! a path that is also immune to the kernel's kill_seq bug (linux.md §2.2).
//!
//! The child runs only async-signal-safe system calls: everything it needs
//! (paths, argv, envp) is built before the clone, and it never allocates,
//! locks or returns. Failures are reported to the parent through a
//! close-on-exec pipe as (step, errno), the way std reports exec errors.
//!
//! Only stdin, stdout and stderr reach the server: right before exec the
//! child marks every other descriptor close-on-exec (or closes it), so
//! nothing the client left open for the runner leaks into the server.
//!
//! The child then gives up what [`Credentials`] says, in the only order
//! that works: the capability bounding set first (that needs CAP_SETPCAP,
//! which the change of user takes away), then the supplementary groups,
//! the group and the user, then every capability left, then no_new_privs.
//! The parent-death signal is armed after the change of user, which clears
//! it (prctl(2)). Ids change by raw system calls: glibc's `setuid` would
//! try to broadcast the change to threads that exist only in the parent.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::unistd::{AccessFlags, access};

use super::pidfd::PidFd;
use super::{Pid, Signal};

/// `CLONE_INTO_CGROUP` as a u64. The `libc` crate's constant is a `c_int`
/// that overflows to 0 on glibc targets, which silently spawns the child in
/// the parent's cgroup (linux.md §2.2, experiment T1).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const CLONE_PIDFD: u64 = libc::CLONE_PIDFD as u64;

/// What to start and how. Built by the caller and the driver before the
/// spawn; nothing here is touched by the child except through the plan.
#[derive(Debug, Default)]
pub struct SpawnSpec {
    /// The command as given (`argv[0]` is searched in `PATH` when it has no
    /// slash, like execvp).
    pub argv: Vec<OsString>,
    /// The complete environment, `KEY=VALUE`.
    pub env: Vec<OsString>,
    /// The cgroup directory to be born in (CLONE_INTO_CGROUP).
    pub cgroup_dir: Option<OwnedFd>,
    /// Its `cgroup.procs`, for the fork fallback.
    pub cgroup_procs: Option<OwnedFd>,
    /// SIGKILL the child when the runner dies.
    pub die_with_parent: bool,
    /// RLIMIT_CORE 0: a crashing multi-gigabyte server would write its core
    /// to the user's disk right when memory is tight.
    pub no_core_dumps: bool,
    /// Hold the child before exec until [`Child::release`].
    pub gated: bool,
    /// The privileges the child gives up before exec.
    pub credentials: Credentials,
}

/// What the server gives up before exec (see the module docs for the
/// order). The default gives up nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Clear the capability bounding set (needs CAP_SETPCAP), then the
    /// permitted, effective, inheritable and ambient sets: a server that
    /// stays uid 0 execs with no capabilities and cannot regain them.
    pub drop_capabilities: bool,
    /// Switch to this identity (needs CAP_SETGID, and CAP_SETUID for a uid).
    pub identity: Option<Identity>,
    /// `PR_SET_NO_NEW_PRIVS`: no setuid bit or file capability raises the
    /// privileges of the server or anything it execs.
    pub no_new_privs: bool,
}

/// Numeric ids, looked up before the spawn: the child cannot ask NSS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// `None`: keep the user, change only the group.
    pub uid: Option<u32>,
    pub gid: u32,
    /// The supplementary groups, replacing the runner's (empty: none).
    pub groups: Vec<u32>,
}

impl SpawnSpec {
    /// A server's spec: dies with the runner, no core dumps.
    pub fn new(argv: Vec<OsString>, env: Vec<OsString>) -> SpawnSpec {
        SpawnSpec { argv, env, die_with_parent: true, no_core_dumps: true, ..SpawnSpec::default() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("command not found: {0}")]
    NotFound(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("cannot execute {path}: {err}")]
    Exec { path: String, err: Errno },
    #[error("the child failed to {step} before exec: {err}")]
    Setup { step: &'static str, err: Errno },
    #[error("the runner's parent exited while the server was starting")]
    ParentGone,
    #[error("fork failed: {0}")]
    Fork(Errno),
    #[error("argument or environment contains a NUL byte")]
    Nul,
    #[error("failed to create a pipe: {0}")]
    Pipe(Errno),
}

impl SpawnError {
    /// The shell's convention: 127 not found, 126 found but not executable.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SpawnError::NotFound(_)) || matches!(self, SpawnError::Exec { err: Errno::ENOENT, .. })
    }
    pub fn is_not_executable(&self) -> bool {
        matches!(self, SpawnError::PermissionDenied(_))
            || matches!(self, SpawnError::Exec { err: Errno::EACCES | Errno::ENOEXEC | Errno::EPERM, .. })
    }
}

/// The child's steps, in order; the number is what it reports on failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Step {
    SignalMask = 1,
    DeathSignal = 2,
    ParentGone = 3,
    CoreLimit = 4,
    JoinCgroup = 5,
    Exec = 6,
    BoundingSet = 7,
    Groups = 8,
    Gid = 9,
    Uid = 10,
    Capabilities = 11,
    NoNewPrivs = 12,
}

impl Step {
    const ALL: [Step; 12] = [
        Step::SignalMask,
        Step::DeathSignal,
        Step::ParentGone,
        Step::CoreLimit,
        Step::JoinCgroup,
        Step::Exec,
        Step::BoundingSet,
        Step::Groups,
        Step::Gid,
        Step::Uid,
        Step::Capabilities,
        Step::NoNewPrivs,
    ];
    fn from_u8(b: u8) -> Option<Step> {
        Step::ALL.into_iter().find(|s| *s as u8 == b)
    }
    fn describe(self) -> &'static str {
        match self {
            Step::SignalMask => "reset its signal mask",
            Step::DeathSignal => "set its parent-death signal",
            Step::ParentGone => "find its parent",
            Step::CoreLimit => "disable core dumps",
            Step::JoinCgroup => "join its cgroup",
            Step::Exec => "exec",
            Step::BoundingSet => "clear its capability bounding set",
            Step::Groups => "set its supplementary groups",
            Step::Gid => "change its group",
            Step::Uid => "change its user",
            Step::Capabilities => "clear its capabilities",
            Step::NoNewPrivs => "set no_new_privs",
        }
    }
}

/// A started child.
#[derive(Debug)]
pub struct Child {
    pub pid: Pid,
    gate: Option<OwnedFd>,
    status: Option<OwnedFd>,
    path: String,
}

impl Child {
    /// Opens the gate (if any), then waits until the child has exec'd or
    /// failed. Returns the child's error if it did not reach the server.
    pub fn release(&mut self) -> Result<(), SpawnError> {
        if let Some(gate) = self.gate.take() {
            // One byte means "go"; closing without it means "abort".
            let _ = nix::unistd::write(&gate, b"1");
        }
        let Some(status) = self.status.take() else { return Ok(()) };
        let mut buf = [0u8; 5];
        let mut got = 0;
        while got < buf.len() {
            match nix::unistd::read(&status, &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(SpawnError::Pipe(e)),
            }
        }
        if got == 0 {
            // EOF: the close-on-exec pipe closed because exec succeeded.
            return Ok(());
        }
        let err = Errno::from_raw(i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]));
        Err(match Step::from_u8(buf[0]) {
            Some(Step::Exec) => SpawnError::Exec { path: self.path.clone(), err },
            Some(Step::ParentGone) => SpawnError::ParentGone,
            Some(step) => SpawnError::Setup { step: step.describe(), err },
            None => SpawnError::Setup { step: "start", err },
        })
    }
}

/// Finds the program like execvp: a name with a slash is used as given,
/// otherwise the first executable match in `path_var` wins; a match that
/// exists but cannot be executed is remembered for the error.
pub fn resolve_program(program: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, SpawnError> {
    let shown = program.to_string_lossy().into_owned();
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let path_var = path_var.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    let mut denied = false;
    for dir in std::env::split_paths(path_var) {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        let candidate = dir.join(program);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() => {
                if access(&candidate, AccessFlags::X_OK).is_ok() {
                    return Ok(candidate);
                }
                denied = true;
            }
            _ => {}
        }
    }
    Err(if denied { SpawnError::PermissionDenied(shown) } else { SpawnError::NotFound(shown) })
}

/// Everything the child touches, prepared before the clone.
struct ChildPlan {
    path: CString,
    /// Own the strings the pointer arrays below point into.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    parent: libc::pid_t,
    die_with_parent: bool,
    no_core_dumps: bool,
    drop_capabilities: bool,
    /// `(uid, gid)`; `uid` -1 keeps the user.
    ids: Option<(libc::uid_t, libc::gid_t)>,
    groups: Vec<libc::gid_t>,
    no_new_privs: bool,
    /// Set after the clone: whether the child must join by cgroup.procs.
    procs_fd: RawFd,
    gate_fd: RawFd,
    /// The gate's write end: the child's inherited copy must be closed, or
    /// the parent closing its own could never produce EOF.
    gate_write_fd: RawFd,
    status_fd: RawFd,
}

fn cstring(s: &OsStr) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes()).map_err(|_| SpawnError::Nul)
}

/// A close-on-exec pipe.
fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)
}

/// Starts the child. Unless `spec.gated`, waits for its exec (or failure).
pub fn spawn(spec: &SpawnSpec) -> Result<Child, SpawnError> {
    let program = spec.argv.first().ok_or(SpawnError::NotFound(String::new()))?;
    let path_var = spec.env.iter().find_map(|kv| kv.as_bytes().strip_prefix(b"PATH=")).map(OsStr::from_bytes);
    let path = resolve_program(program, path_var)?;
    let argv = spec.argv.iter().map(|a| cstring(a)).collect::<Result<Vec<_>, _>>()?;
    let envp = spec.env.iter().map(|e| cstring(e)).collect::<Result<Vec<_>, _>>()?;
    let (status_r, status_w) = pipe()?;
    let gate = if spec.gated { Some(pipe()?) } else { None };
    let mut plan = ChildPlan {
        path: cstring(path.as_os_str())?,
        argv_ptrs: argv.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect(),
        envp_ptrs: envp.iter().map(|e| e.as_ptr()).chain([std::ptr::null()]).collect(),
        _argv: argv,
        _envp: envp,
        parent: std::process::id() as libc::pid_t,
        die_with_parent: spec.die_with_parent,
        no_core_dumps: spec.no_core_dumps,
        drop_capabilities: spec.credentials.drop_capabilities,
        ids: spec.credentials.identity.as_ref().map(|i| (i.uid.unwrap_or(libc::uid_t::MAX), i.gid)),
        groups: spec.credentials.identity.as_ref().map(|i| i.groups.clone()).unwrap_or_default(),
        no_new_privs: spec.credentials.no_new_privs,
        procs_fd: -1,
        gate_fd: gate.as_ref().map_or(-1, |(r, _)| r.as_raw_fd()),
        gate_write_fd: gate.as_ref().map_or(-1, |(_, w)| w.as_raw_fd()),
        status_fd: status_w.as_raw_fd(),
    };

    let cgroup = spec.cgroup_dir.as_ref().map(|fd| fd.as_raw_fd());
    let (pid, born_in_cgroup) = match clone3(cgroup) {
        Clone3::Child => run_child(&plan),
        // The supervisor signals through pidfds it opens per process (exact
        // kills of every member), so clone3's own is not kept.
        Clone3::Parent { pid, pidfd } => {
            drop(pidfd);
            (pid, cgroup.is_some())
        }
        Clone3::Unavailable => {
            plan.procs_fd = spec.cgroup_procs.as_ref().map_or(-1, |fd| fd.as_raw_fd());
            // SAFETY: the runner is single-threaded (see supervisor), so the
            // child may run anything async-signal-safe; it only runs
            // run_child, which never returns.
            match unsafe { libc::fork() } {
                -1 => return Err(SpawnError::Fork(Errno::last())),
                0 => run_child(&plan),
                pid => (Pid::from_raw(pid), false),
            }
        }
    };
    drop(status_w);
    tracing::debug!(pid = pid.as_raw(), born_in_cgroup, "spawned");
    let mut child = Child { pid, gate: gate.map(|(_, w)| w), status: Some(status_r), path: path.display().to_string() };
    if !spec.gated {
        child.release()?;
    }
    Ok(child)
}

enum Clone3 {
    Child,
    Parent { pid: Pid, pidfd: PidFd },
    Unavailable,
}

/// The kernel's `struct clone_args` (linux/sched.h), version 2 (88 bytes,
/// with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3 without CLONE_VM and without a stack behaves like fork: the child
/// runs on a copy of the parent's stack and returns here with 0.
fn clone3(cgroup: Option<RawFd>) -> Clone3 {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD | cgroup.map_or(0, |_| CLONE_INTO_CGROUP),
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed; `pidfd`
    // outlives the call. Without CLONE_VM the child gets its own copy of
    // memory, so both sides continue on their own stack.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, size_of::<CloneArgs>()) };
    match rc {
        0 => Clone3::Child,
        pid if pid > 0 => Clone3::Parent {
            pid: Pid::from_raw(pid as i32),
            // SAFETY: CLONE_PIDFD stored a new descriptor that we own.
            pidfd: PidFd::from_owned(unsafe { OwnedFd::from_raw_fd(pidfd) }),
        },
        _ => {
            let err = Errno::last();
            tracing::debug!("clone3 unavailable ({err}); falling back to fork");
            Clone3::Unavailable
        }
    }
}

/// The child side. Only raw, async-signal-safe calls; never returns.
fn run_child(plan: &ChildPlan) -> ! {
    // SAFETY (whole function): every call is a thin system call wrapper on
    // memory prepared before the clone; on any failure the child reports
    // through the status pipe and _exits without unwinding or running
    // destructors.
    unsafe {
        let fail = |step: Step| -> ! {
            let errno = *libc::__errno_location();
            let mut msg = [0u8; 5];
            msg[0] = step as u8;
            msg[1..].copy_from_slice(&errno.to_ne_bytes());
            libc::write(plan.status_fd, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        };
        // The runner blocks the signals it takes through a signalfd and
        // ignores SIGPIPE; the server must start with neither.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            fail(Step::SignalMask);
        }
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let die_with_parent = || {
            if prctl(libc::PR_SET_PDEATHSIG, Signal::SIGKILL as libc::c_ulong) != 0 {
                fail(Step::DeathSignal);
            }
            // prctl(2): if the parent already died, no signal will come.
            if libc::getppid() != plan.parent {
                *libc::__errno_location() = libc::ESRCH;
                fail(Step::ParentGone);
            }
        };
        if plan.die_with_parent {
            die_with_parent();
        }
        if plan.no_core_dumps {
            let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::setrlimit(libc::RLIMIT_CORE, &zero) != 0 {
                fail(Step::CoreLimit);
            }
        }
        if plan.procs_fd >= 0 && libc::write(plan.procs_fd, b"0".as_ptr().cast(), 1) != 1 {
            fail(Step::JoinCgroup);
        }
        if plan.gate_fd >= 0 {
            libc::close(plan.gate_write_fd);
            let mut go = 0u8;
            // EOF without the byte: the parent gave up on this spawn.
            if libc::read(plan.gate_fd, (&mut go as *mut u8).cast(), 1) != 1 {
                libc::_exit(127);
            }
        }
        if plan.drop_capabilities
            && let Err(step) = clear_bounding_set()
        {
            fail(step);
        }
        if let Some((uid, gid)) = plan.ids {
            if let Err(step) = switch_identity(uid, gid, &plan.groups) {
                fail(step);
            }
            // A new effective uid or gid clears the parent-death signal.
            if plan.die_with_parent {
                die_with_parent();
            }
        }
        if plan.drop_capabilities
            && let Err(step) = clear_capabilities()
        {
            fail(step);
        }
        if plan.no_new_privs && prctl(libc::PR_SET_NO_NEW_PRIVS, 1) != 0 {
            fail(Step::NoNewPrivs);
        }
        close_inherited(plan.status_fd);
        libc::execve(plan.path.as_ptr(), plan.argv_ptrs.as_ptr(), plan.envp_ptrs.as_ptr());
        fail(Step::Exec)
    }
}

/// `prctl(option, arg2, 0, 0, 0)`. The unused arguments go as `c_ulong`:
/// the call is variadic, and some options refuse anything but zero there.
fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> libc::c_int {
    // SAFETY: the options used here take integers only and touch no memory.
    unsafe { libc::prctl(option, arg2, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) }
}

/// Drops every capability still in the bounding set, so that no exec (of
/// root, or of a setuid-root or file-capability program) can raise the
/// server's permitted set again. Needs CAP_SETPCAP, so it runs before the
/// change of user. The numbers run until the kernel knows no more
/// (`PR_CAPBSET_READ` fails with EINVAL past `CAP_LAST_CAP`).
///
/// # References
/// capabilities(7), prctl(2) `PR_CAPBSET_READ`, `PR_CAPBSET_DROP`
fn clear_bounding_set() -> Result<(), Step> {
    for cap in 0..64 {
        match prctl(libc::PR_CAPBSET_READ, cap) {
            1 => {
                if prctl(libc::PR_CAPBSET_DROP, cap) != 0 {
                    return Err(Step::BoundingSet);
                }
            }
            0 => {}
            _ => break,
        }
    }
    Ok(())
}

/// The id system calls: the 32-bit ones where the plain ones take 16-bit ids.
#[cfg(any(target_arch = "x86", target_arch = "arm"))]
mod id_calls {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups32;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid32;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid32;
}
#[cfg(not(any(target_arch = "x86", target_arch = "arm")))]
mod id_calls {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid;
}

/// Supplementary groups, then the real, effective and saved gid, then (if
/// `uid` is not -1) the uid: groups first, while the runner's CAP_SETGID
/// still holds. Leaving uid 0 clears the permitted, effective and ambient
/// capability sets (capabilities(7)).
///
/// Raw system calls on purpose: glibc's wrappers broadcast an id change to
/// every thread it knows of, and in a child cloned from a multi-threaded
/// parent those threads do not exist. The child has one thread, which is
/// all a raw call changes.
///
/// # References
/// setgroups(2), setresgid(2), setresuid(2)
fn switch_identity(uid: libc::uid_t, gid: libc::gid_t, groups: &[libc::gid_t]) -> Result<(), Step> {
    // SAFETY: `groups` points at `groups.len()` gids that live as long as
    // the call; the other calls take integers only.
    unsafe {
        if libc::syscall(id_calls::SETGROUPS, groups.len(), groups.as_ptr()) != 0 {
            return Err(Step::Groups);
        }
        if libc::syscall(id_calls::SETRESGID, gid, gid, gid) != 0 {
            return Err(Step::Gid);
        }
        if uid != libc::uid_t::MAX && libc::syscall(id_calls::SETRESUID, uid, uid, uid) != 0 {
            return Err(Step::Uid);
        }
    }
    Ok(())
}

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` (linux/capability.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets as two `CapData`.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Empties the ambient, then the effective, permitted and inheritable sets.
/// Lowering is always allowed. A server that stays uid 0 would otherwise
/// keep root's sets until the exec, and the exec gives root the bounding
/// set (cleared before) and what the inheritable set holds (cleared here).
///
/// # References
/// capabilities(7), capset(2), prctl(2) `PR_CAP_AMBIENT_CLEAR_ALL`
fn clear_capabilities() -> Result<(), Step> {
    // EINVAL: a kernel before 4.3 has no ambient set to clear.
    if prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong) != 0
        // SAFETY: reads this thread's errno.
        && unsafe { *libc::__errno_location() } != libc::EINVAL
    {
        return Err(Step::Capabilities);
    }
    let header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let data = [CapData::default(); 2];
    // SAFETY: a version 3 header and the two data structs version 3 reads,
    // both living across the call.
    if unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) } != 0 {
        return Err(Step::Capabilities);
    }
    Ok(())
}

/// Makes sure no descriptor above 2 survives the exec, whatever the client
/// left open without close-on-exec (the runner inherits it, and a forked
/// child would pass it on). `keep`, the status pipe, stays open until the
/// exec so that an exec failure can still be reported; it is close-on-exec
/// already. Async-signal-safe: system calls only, no allocation.
///
/// 1. `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)` (Linux 5.11): every
///    descriptor is marked, and the exec closes them all.
/// 2. `close_range` without the flag (Linux 5.9) around `keep`.
/// 3. Otherwise (older kernels, or a seccomp profile that refuses the call)
///    `close(2)` of every number from 3 up to the descriptor limit.
///
/// # References
/// close_range(2), getrlimit(2)
fn close_inherited(keep: RawFd) {
    const ALL: libc::c_uint = libc::c_uint::MAX;
    if close_range(3, ALL, libc::CLOSE_RANGE_CLOEXEC) {
        return;
    }
    let closed = match libc::c_uint::try_from(keep) {
        Ok(keep) if keep > 3 => close_range(3, keep - 1, 0) && close_range(keep + 1, ALL, 0),
        Ok(3) => close_range(4, ALL, 0),
        _ => close_range(3, ALL, 0),
    };
    if !closed {
        close_up_to_limit(keep);
    }
}

/// `close_range(2)`; false if the kernel refused or lacks it.
fn close_range(first: libc::c_uint, last: libc::c_uint, flags: libc::c_uint) -> bool {
    // SAFETY: close_range takes three integers and touches no memory; the
    // descriptors it closes are the child's own copies.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) == 0 }
}

/// The last resort: `close(2)` on every number from 3 to the descriptor
/// limit but `keep`. The limit is the larger of the soft limit and the hard
/// one (capped at 2^20 closes): a descriptor opened before the soft limit
/// was lowered can sit above it.
fn close_up_to_limit(keep: RawFd) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into `limit`, a local of the right type.
    let top = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_max.min(1 << 20).max(limit.rlim_cur)
    } else {
        1 << 16
    };
    let top = RawFd::try_from(top).unwrap_or(RawFd::MAX);
    for fd in (3..top).filter(|&fd| fd != keep) {
        // SAFETY: closing a number that is not open fails with EBADF and
        // changes nothing; those that are open are the child's own copies.
        unsafe { libc::close(fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{WaitStatus, waitpid};
    use std::path::Path;

    fn env() -> Vec<OsString> {
        std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k;
                kv.push("=");
                kv.push(v);
                kv
            })
            .collect()
    }

    fn spec(argv: &[&str]) -> SpawnSpec {
        SpawnSpec { argv: argv.iter().map(OsString::from).collect(), env: env(), ..SpawnSpec::default() }
    }

    #[test]
    fn runs_a_command_with_a_pidfd() {
        let child = spawn(&spec(&["sh", "-c", "exit 7"])).expect("spawn");
        assert_eq!(waitpid(child.pid, None).expect("wait"), WaitStatus::Exited(child.pid, 7));
    }

    #[test]
    fn not_found_and_not_executable() {
        let e = spawn(&spec(&["definitely-not-a-command-xyz"])).expect_err("missing");
        assert!(e.is_not_found(), "{e}");
        let e = spawn(&spec(&["/etc/passwd"])).expect_err("not executable");
        assert!(e.is_not_executable(), "{e}");
        let e = spawn(&spec(&["/nonexistent/x"])).expect_err("missing path");
        assert!(e.is_not_found(), "{e}");
    }

    #[test]
    fn gate_holds_the_child_until_released() {
        let mut s = spec(&["sh", "-c", "exit 3"]);
        s.gated = true;
        let mut child = spawn(&s).expect("spawn");
        // Held before exec: still alive and not the shell yet.
        assert_eq!(
            waitpid(child.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)).expect("wait"),
            WaitStatus::StillAlive
        );
        child.release().expect("release");
        assert_eq!(waitpid(child.pid, None).expect("wait"), WaitStatus::Exited(child.pid, 3));
    }

    #[test]
    fn dropping_a_gated_child_aborts_it() {
        let mut s = spec(&["sh", "-c", "exit 0"]);
        s.gated = true;
        let child = spawn(&s).expect("spawn");
        let pid = child.pid;
        drop(child);
        assert_eq!(waitpid(pid, None).expect("wait"), WaitStatus::Exited(pid, 127));
    }

    #[test]
    fn signal_mask_is_reset_and_core_dumps_are_off() {
        let mut s = spec(&["sh", "-c", "grep -q '^SigBlk:[[:space:]]*0*$' /proc/self/status && test $(ulimit -c) = 0"]);
        s.no_core_dumps = true;
        let mut blocked = nix::sys::signal::SigSet::empty();
        blocked.add(Signal::SIGTERM);
        let old = blocked.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK).expect("mask");
        let child = spawn(&s);
        old.thread_set_mask().expect("restore");
        let child = child.expect("spawn");
        assert_eq!(waitpid(child.pid, None).expect("wait"), WaitStatus::Exited(child.pid, 0));
    }

    /// A pipe without close-on-exec, as a client that leaks descriptors
    /// hands the runner.
    fn leaky_pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe().expect("pipe")
    }

    #[test]
    fn issue_9_only_stdin_stdout_and_stderr_reach_the_child() {
        // See: issue 9, finding 6
        let (r, w) = leaky_pipe();
        let script = format!("test ! -e /proc/self/fd/{} && test ! -e /proc/self/fd/{}", r.as_raw_fd(), w.as_raw_fd());
        let child = spawn(&spec(&["sh", "-c", &script])).expect("spawn");
        assert_eq!(waitpid(child.pid, None).expect("wait"), WaitStatus::Exited(child.pid, 0));
    }

    #[test]
    fn issue_9_the_fallback_closes_up_to_the_limit_but_keeps_the_status_pipe() {
        // See: issue 9, finding 6
        let (leaked, keep) = leaky_pipe();
        let (leaked, keep) = (leaked.as_raw_fd(), keep.as_raw_fd());
        // SAFETY: the child runs only close(2), fcntl(2) and _exit(2), all
        // async-signal-safe, on its own copies of the descriptors.
        match unsafe { libc::fork() } {
            0 => {
                close_up_to_limit(keep);
                let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
                let ok = !open(leaked) && open(keep) && open(0) && open(2);
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            -1 => panic!("fork: {}", Errno::last()),
            pid => {
                let pid = Pid::from_raw(pid);
                assert_eq!(waitpid(pid, None).expect("wait"), WaitStatus::Exited(pid, 0));
            }
        }
    }

    fn exits_0(s: &SpawnSpec) {
        let child = spawn(s).expect("spawn");
        assert_eq!(waitpid(child.pid, None).expect("wait"), WaitStatus::Exited(child.pid, 0), "{:?}", s.argv);
    }

    #[test]
    fn issue_9_no_new_privs_is_set_when_asked() {
        // See: issue 9, finding 6
        let nnp = |on: &str| format!("grep -q '^NoNewPrivs:[[:space:]]*{on}$' /proc/self/status");
        exits_0(&spec(&["sh", "-c", &nnp("0")]));
        let mut s = spec(&["sh", "-c", &nnp("1")]);
        s.credentials.no_new_privs = true;
        exits_0(&s);
    }

    /// Whether the test runs as root; says why it skips when not.
    fn root() -> bool {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            eprintln!("skipped: needs root (CI runs as root)");
        }
        root
    }

    const NO_CAPS: &str = "grep -q '^CapEff:[[:space:]]*0*$' /proc/self/status \
        && grep -q '^CapPrm:[[:space:]]*0*$' /proc/self/status \
        && grep -q '^CapInh:[[:space:]]*0*$' /proc/self/status \
        && grep -q '^CapBnd:[[:space:]]*0*$' /proc/self/status \
        && grep -q '^CapAmb:[[:space:]]*0*$' /proc/self/status";

    #[test]
    fn issue_9_root_gives_up_every_capability_and_stays_uid_0() {
        // See: issue 9, finding 6
        if !root() {
            return;
        }
        let mut s = spec(&["sh", "-c", &format!("{NO_CAPS} && test \"$(id -u)\" = 0")]);
        s.credentials.drop_capabilities = true;
        exits_0(&s);
    }

    #[test]
    fn issue_9_root_becomes_another_user_with_only_its_groups() {
        // See: issue 9, finding 6
        if !root() {
            return;
        }
        let ids = "test \"$(id -u):$(id -g):$(id -G)\" = '4242:4343:4343 4444' \
            && grep -q '^Uid:[[:space:]]*4242[[:space:]]*4242[[:space:]]*4242[[:space:]]*4242$' /proc/self/status \
            && grep -q '^Gid:[[:space:]]*4343[[:space:]]*4343[[:space:]]*4343[[:space:]]*4343$' /proc/self/status";
        let mut s = spec(&["sh", "-c", &format!("{ids} && {NO_CAPS}")]);
        s.die_with_parent = true;
        s.credentials = Credentials {
            drop_capabilities: true,
            identity: Some(Identity { uid: Some(4242), gid: 4343, groups: vec![4343, 4444] }),
            no_new_privs: true,
        };
        exits_0(&s);
        // A group alone: the user stays, root's supplementary groups go.
        let mut s = spec(&["sh", "-c", "test \"$(id -u):$(id -g):$(id -G)\" = '0:4343:4343'"]);
        s.credentials.identity = Some(Identity { uid: None, gid: 4343, groups: Vec::new() });
        exits_0(&s);
    }

    #[test]
    fn issue_9_a_failed_step_is_reported_by_name() {
        // See: issue 9, finding 6
        if !root() {
            return;
        }
        // More supplementary groups than the kernel takes (NGROUPS_MAX 65536).
        let mut s = spec(&["sh", "-c", "exit 0"]);
        s.credentials.identity = Some(Identity { uid: Some(4242), gid: 4343, groups: vec![4343; 65_537] });
        let e = spawn(&s).expect_err("setgroups must fail");
        assert!(matches!(e, SpawnError::Setup { step: "set its supplementary groups", err: Errno::EINVAL }), "{e}");
        // The failed child stays a zombie until the test binary exits: waiting
        // for "any child" could take another test's.
        assert!(Step::ALL.iter().enumerate().all(|(i, s)| *s as usize == i + 1 && Step::from_u8(*s as u8) == Some(*s)));
    }

    #[test]
    fn path_resolution() {
        let dir = std::env::temp_dir().join(format!("mcp-runner-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let noexec = dir.join("tool");
        std::fs::write(&noexec, "#!/bin/sh\n").expect("write");
        let path = std::env::join_paths([dir.as_path(), Path::new("/bin")]).expect("join");
        let e = resolve_program(OsStr::new("tool"), Some(&path)).expect_err("not executable");
        assert!(matches!(e, SpawnError::PermissionDenied(_)), "{e}");
        assert_eq!(resolve_program(OsStr::new("sh"), Some(&path)).expect("found"), Path::new("/bin/sh"));
        assert_eq!(resolve_program(OsStr::new("./x"), Some(&path)).expect("slash"), Path::new("./x"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
