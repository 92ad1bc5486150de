//! Starting a server with `posix_spawnp`, in its own process group, with a
//! clean signal state, only the descriptors it should have, and optionally a
//! fatal jetsam memory limit.
//!
//! The jetsam limit uses `posix_spawnattr_setjetsam_ext`, private SPI from
//! libsyscall/wrappers/spawn/spawn_private.h. It is resolved with `dlsym` at
//! run time, so a macOS without it still spawns, and the caller learns which
//! happened from [`JetsamStatus`]. The kernel applies the limit to the spawned
//! image only: forks of it start without one, and an `execve` drops it
//! (bsd/kern/kern_fork.c, `forkproc`; bsd/kern/kern_exec.c).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::{error, fmt, io};

#[cfg(target_os = "macos")]
use crate::sys;

/// What to start, and how.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpawnRequest {
    /// The program. Without a slash it is looked up in the `PATH` of the
    /// calling process, not in `env` (posix_spawnp(3)).
    pub program: CString,
    /// The whole argument vector, `argv[0]` included.
    pub argv: Vec<CString>,
    /// The whole environment, as `KEY=VALUE` entries.
    pub env: Vec<CString>,
    /// Descriptors beyond 0, 1 and 2 the child keeps under the same numbers,
    /// e.g. the write end of a death pipe; they may be close-on-exec in the
    /// caller (the child's copy loses the flag). Every other descriptor is
    /// closed in the child. 0, 1 and 2 are always passed on, so they must be
    /// open: the spawn fails with EBADF otherwise (bsd/kern/kern_exec.c,
    /// `PSFA_INHERIT`).
    pub inherit: Vec<i32>,
    /// A fatal memory limit, in MiB, on the child's physical footprint: the
    /// kernel SIGKILLs it when it crosses the limit. `None` for no limit.
    pub jetsam_limit_mb: Option<u32>,
}

/// A started child. The caller owns it: nothing here waits for or kills it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spawned {
    /// Its pid, which is also its process group id.
    pub pid: i32,
    pub jetsam: JetsamStatus,
}

/// Whether the child got the jetsam limit [`SpawnRequest`] asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JetsamStatus {
    /// No limit was asked for.
    NotRequested,
    /// The child runs with a fatal limit of `mb` MiB (active and inactive).
    Set { mb: u32 },
    /// This macOS has no `posix_spawnattr_setjetsam_ext`: the child runs
    /// without a limit.
    Unavailable,
    /// Setting the limit failed with this errno, or `posix_spawnp` did with
    /// the limit and then succeeded without it: the child runs without a
    /// limit.
    Refused(i32),
}

/// What kind of failure a [`SpawnError`] is, as a shell would tell them apart
/// for its exit status (127 for not found, 126 for not executable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnErrorKind {
    /// ENOENT: the program is not there, or not in any `PATH` directory.
    NotFound,
    /// The program is there but cannot be run: EACCES, ENOEXEC, EPERM,
    /// EISDIR, ENOTDIR, or one of Darwin's EBADEXEC, EBADARCH, ESHLIBVERS,
    /// EBADMACHO.
    NotExecutable,
    /// Anything else (out of memory, argument list too long, a bad inherited
    /// descriptor, ...).
    Other,
}

/// Failure to start a program.
#[derive(Debug)]
pub struct SpawnError {
    kind: SpawnErrorKind,
    program: String,
    error: io::Error,
}

impl SpawnError {
    pub fn kind(&self) -> SpawnErrorKind {
        self.kind
    }

    /// The underlying error; from `posix_spawnp` it carries the raw errno.
    pub fn io_error(&self) -> &io::Error {
        &self.error
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot start {}: {}", self.program, self.error)
    }
}

impl error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        Some(&self.error)
    }
}

#[cfg(target_os = "macos")]
impl SpawnError {
    fn new(program: &CString, error: io::Error) -> SpawnError {
        let kind = match error.raw_os_error() {
            Some(libc::ENOENT) => SpawnErrorKind::NotFound,
            Some(
                libc::EACCES
                | libc::ENOEXEC
                | libc::EPERM
                | libc::EISDIR
                | libc::ENOTDIR
                | libc::EBADEXEC
                | libc::EBADARCH
                | libc::ESHLIBVERS
                | libc::EBADMACHO,
            ) => SpawnErrorKind::NotExecutable,
            _ => SpawnErrorKind::Other,
        };
        SpawnError { kind, program: program.to_string_lossy().into_owned(), error }
    }
}

/// The jetsam flags and priority research settled on: both limits fatal (the
/// default is a soft high-water mark), priority -1 for "leave the default
/// band" (bsd/kern/kern_memorystatus.c, `memorystatus_set_priority`).
#[cfg(target_os = "macos")]
const JETSAM_FLAGS: libc::c_short =
    sys::POSIX_SPAWN_JETSAM_MEMLIMIT_ACTIVE_FATAL | sys::POSIX_SPAWN_JETSAM_MEMLIMIT_INACTIVE_FATAL;
#[cfg(target_os = "macos")]
const JETSAM_PRIORITY_DEFAULT: libc::c_int = -1;

/// Starts `request.program` with `posix_spawnp`:
///
/// * `POSIX_SPAWN_SETPGROUP` with pgroup 0: the child leads a new process
///   group, so the whole group can be signalled;
/// * `POSIX_SPAWN_CLOEXEC_DEFAULT` plus `posix_spawn_file_actions_addinherit_np`
///   for 0, 1, 2 and `request.inherit`: no other descriptor leaks in, whatever
///   other threads opened without `O_CLOEXEC`;
/// * `POSIX_SPAWN_SETSIGMASK` (empty) and `POSIX_SPAWN_SETSIGDEF` (every
///   signal 1..=31 but SIGKILL and SIGSTOP): the child does not inherit the
///   caller's blocked or ignored signals;
/// * with `jetsam_limit_mb`, `posix_spawnattr_setjetsam_ext(attr,
///   ACTIVE_FATAL | INACTIVE_FATAL, -1, mb, mb)`. If that fails, or the spawn
///   fails with EPERM, EINVAL or ENOTSUP (what a kernel or policy refusing
///   the attribute would answer), the spawn is tried once more without it and
///   [`JetsamStatus::Refused`] says so. XNU 11417 itself ignores failures to
///   apply the limit (bsd/kern/kern_exec.c, `posix_spawn`), so this is a
///   guard for other releases, not an observed behaviour.
///
/// # References
/// posix_spawn(2), posix_spawnattr_setflags(3), posix_spawn_file_actions_addinherit_np(3)
#[cfg(target_os = "macos")]
pub fn spawn(request: &SpawnRequest) -> Result<Spawned, SpawnError> {
    let fail = |error| SpawnError::new(&request.program, error);
    let limit = match request.jetsam_limit_mb {
        None => None,
        Some(mb) => match libc::c_int::try_from(mb) {
            Ok(limit) if limit > 0 => Some((mb, limit)),
            _ => {
                let msg = format!("jetsam limit of {mb} MiB is outside 1..={}", libc::c_int::MAX);
                return Err(fail(io::Error::new(io::ErrorKind::InvalidInput, msg)));
            }
        },
    };
    let files = FileActions::new(&request.inherit).map_err(fail)?;
    let argv = null_terminated(&request.argv);
    let envp = null_terminated(&request.env);
    let run = |attr: &Attr| -> io::Result<i32> {
        let mut pid: libc::pid_t = 0;
        // SAFETY: the program and every argv/envp entry are NUL-terminated
        // strings borrowed from `request`, the arrays end in a null pointer
        // and outlive the call, and `files` and `attr` are initialized.
        let rc = unsafe {
            libc::posix_spawnp(&mut pid, request.program.as_ptr(), &files.0, &attr.0, argv.as_ptr(), envp.as_ptr())
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(pid)
    };
    let run_plain = || Attr::new().and_then(|attr| run(&attr)).map_err(fail);

    let (pid, jetsam) = match limit.map(|limit| (limit, setjetsam_ext())) {
        None => (run_plain()?, JetsamStatus::NotRequested),
        Some((_, None)) => (run_plain()?, JetsamStatus::Unavailable),
        Some(((mb, limit), Some(set))) => {
            let mut attr = Attr::new().map_err(fail)?;
            match attr.set_jetsam(set, limit) {
                Err(errno) => (run_plain()?, JetsamStatus::Refused(errno)),
                Ok(()) => match run(&attr) {
                    Ok(pid) => (pid, JetsamStatus::Set { mb }),
                    Err(err) => match err.raw_os_error() {
                        Some(errno @ (libc::EPERM | libc::EINVAL | libc::ENOTSUP)) => {
                            (run_plain()?, JetsamStatus::Refused(errno))
                        }
                        _ => return Err(fail(err)),
                    },
                },
            }
        }
    };
    Ok(Spawned { pid, jetsam })
}

/// Whether this macOS exports `posix_spawnattr_setjetsam_ext` (a private
/// API): without it no kernel memory limit can be set at spawn.
#[cfg(target_os = "macos")]
pub fn jetsam_available() -> bool {
    setjetsam_ext().is_some()
}

/// `posix_spawnattr_setjetsam_ext` if this libsystem exports it.
#[cfg(target_os = "macos")]
fn setjetsam_ext() -> Option<sys::posix_spawnattr_setjetsam_ext_fn> {
    // SAFETY: RTLD_DEFAULT searches every image already loaded; the name is a
    // NUL-terminated literal.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"posix_spawnattr_setjetsam_ext".as_ptr()) };
    if address.is_null() {
        return None;
    }
    // SAFETY: the symbol is libsystem's posix_spawnattr_setjetsam_ext, whose
    // C prototype (spawn_private.h) the function pointer type spells out.
    Some(unsafe { std::mem::transmute::<*mut libc::c_void, sys::posix_spawnattr_setjetsam_ext_fn>(address) })
}

/// Pointers to `strings`, then a null pointer, as argv and envp must be.
#[cfg(target_os = "macos")]
fn null_terminated(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings.iter().map(|s| s.as_ptr().cast_mut()).chain(std::iter::once(std::ptr::null_mut())).collect()
}

/// A `posix_spawn_file_actions_t` that keeps 0, 1, 2 and the given descriptors.
#[cfg(target_os = "macos")]
struct FileActions(libc::posix_spawn_file_actions_t);

#[cfg(target_os = "macos")]
impl FileActions {
    fn new(inherit: &[i32]) -> io::Result<FileActions> {
        let mut raw: libc::posix_spawn_file_actions_t = std::ptr::null_mut();
        // SAFETY: `raw` is a valid place for init to store the new object.
        check(unsafe { libc::posix_spawn_file_actions_init(&mut raw) }, "posix_spawn_file_actions_init")?;
        let mut actions = FileActions(raw);
        for &fd in [0, 1, 2].iter().chain(inherit) {
            // SAFETY: `actions.0` was initialized above; the descriptor is
            // only recorded here and looked up when the child is made.
            let rc = unsafe { sys::posix_spawn_file_actions_addinherit_np(&mut actions.0, fd) };
            check(rc, format_args!("posix_spawn_file_actions_addinherit_np({fd})"))?;
        }
        Ok(actions)
    }
}

#[cfg(target_os = "macos")]
impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, destroyed only here.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// A `posix_spawnattr_t` with the process group, signal and descriptor
/// settings [`spawn`] documents.
#[cfg(target_os = "macos")]
struct Attr(libc::posix_spawnattr_t);

#[cfg(target_os = "macos")]
impl Attr {
    fn new() -> io::Result<Attr> {
        let mut raw: libc::posix_spawnattr_t = std::ptr::null_mut();
        // SAFETY: `raw` is a valid place for init to store the new object.
        check(unsafe { libc::posix_spawnattr_init(&mut raw) }, "posix_spawnattr_init")?;
        let mut attr = Attr(raw);
        let flags = libc::POSIX_SPAWN_SETPGROUP
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF
            | libc::POSIX_SPAWN_CLOEXEC_DEFAULT;
        // SAFETY: `attr.0` was initialized above; the setter copies the flags.
        let rc = unsafe { libc::posix_spawnattr_setflags(&mut attr.0, flags as libc::c_short) };
        check(rc, "posix_spawnattr_setflags")?;
        // SAFETY: as above; 0 means "the child's own pid".
        check(unsafe { libc::posix_spawnattr_setpgroup(&mut attr.0, 0) }, "posix_spawnattr_setpgroup")?;
        let empty = signal_set(|_| false);
        // SAFETY: as above; the set is copied, not kept.
        check(unsafe { libc::posix_spawnattr_setsigmask(&mut attr.0, &empty) }, "posix_spawnattr_setsigmask")?;
        let catchable = signal_set(|signo| signo != libc::SIGKILL && signo != libc::SIGSTOP);
        // SAFETY: as above; the set is copied, not kept.
        let rc = unsafe { libc::posix_spawnattr_setsigdefault(&mut attr.0, &catchable) };
        check(rc, "posix_spawnattr_setsigdefault")?;
        Ok(attr)
    }

    /// Adds the fatal jetsam limit; `Err` carries the errno it returned.
    fn set_jetsam(&mut self, set: sys::posix_spawnattr_setjetsam_ext_fn, limit_mb: libc::c_int) -> Result<(), i32> {
        // SAFETY: `self.0` is initialized; the function stores the flags,
        // priority and limits in it and nothing else
        // (libsyscall/wrappers/spawn/posix_spawn.c).
        let rc = unsafe { set(&mut self.0, JETSAM_FLAGS, JETSAM_PRIORITY_DEFAULT, limit_mb, limit_mb) };
        if rc == 0 { Ok(()) } else { Err(rc) }
    }
}

#[cfg(target_os = "macos")]
impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, destroyed only here.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

/// The set of signals 1..=31 (Darwin's NSIG is 32) for which `member` holds.
#[cfg(target_os = "macos")]
fn signal_set(member: impl Fn(libc::c_int) -> bool) -> libc::sigset_t {
    let mut set: libc::sigset_t = 0;
    // SAFETY: `set` is a valid sigset_t, which sigemptyset only writes to.
    unsafe { libc::sigemptyset(&mut set) };
    for signo in (1..32).filter(|&signo| member(signo)) {
        // SAFETY: as above, and `signo` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, signo) };
    }
    set
}

/// A posix_spawn* return code (an errno value, not -1) as a Result.
#[cfg(target_os = "macos")]
fn check(rc: libc::c_int, call: impl fmt::Display) -> io::Result<()> {
    if rc == 0 { Ok(()) } else { Err(sys::with_call(io::Error::from_raw_os_error(rc), call)) }
}

/// Run on a Mac only: these start real processes.
#[cfg(all(test, target_os = "macos"))]
mod macos_tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    fn cstrings(items: &[&str]) -> Vec<CString> {
        items.iter().map(|s| CString::new(*s).expect("no NUL")).collect()
    }

    fn sh(script: &str) -> SpawnRequest {
        SpawnRequest {
            program: CString::new("/bin/sh").expect("no NUL"),
            argv: cstrings(&["sh", "-c", script]),
            env: cstrings(&["PATH=/usr/bin:/bin"]),
            ..SpawnRequest::default()
        }
    }

    /// The raw wait status of `pid`.
    fn wait(pid: i32) -> i32 {
        let mut status = 0;
        // SAFETY: `pid` is our unreaped child and `status` a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid, "waitpid: {}", io::Error::last_os_error());
        status
    }

    fn exit_code(status: i32) -> Option<i32> {
        libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
    }

    #[test]
    fn the_child_leads_its_own_process_group() {
        let child = spawn(&sh("exit 3")).expect("spawn");
        assert_eq!(child.jetsam, JetsamStatus::NotRequested);
        let info = crate::proc::info(child.pid).expect("info").expect("child or zombie exists");
        assert_eq!(info.pgid, child.pid);
        assert_eq!(exit_code(wait(child.pid)), Some(3));
    }

    #[test]
    fn only_listed_descriptors_are_inherited() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        for fd in fds {
            // SAFETY: `fd` is open; F_SETFD only changes its flags.
            assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }, 0);
        }
        // SAFETY: pipe just returned these descriptors; nothing else owns them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // Close-on-exec in this process, and inherited all the same.
        let w = write.as_raw_fd();
        let mut request = sh(&format!("echo kept >&{w}"));
        request.inherit = vec![w];
        let child = spawn(&request).expect("spawn");
        assert_eq!(exit_code(wait(child.pid)), Some(0));
        let not_inherited = spawn(&sh(&format!("echo leaked >&{w}"))).expect("spawn");
        assert_ne!(exit_code(wait(not_inherited.pid)), Some(0), "fd {w} leaked into the child");
        drop(write);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut out).expect("read pipe");
        assert_eq!(out, "kept\n");
    }

    #[test]
    fn a_missing_program_is_not_found() {
        let request = SpawnRequest {
            program: CString::new("mcp-runner-no-such-program").expect("no NUL"),
            argv: cstrings(&["mcp-runner-no-such-program"]),
            ..SpawnRequest::default()
        };
        let err = spawn(&request).expect_err("must fail");
        assert_eq!(err.kind(), SpawnErrorKind::NotFound, "{err}");
    }

    #[test]
    fn a_file_without_execute_permission_is_not_executable() {
        let path = std::env::temp_dir().join(format!("mcp-runner-macos-noexec-{}", std::process::id()));
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").expect("write script");
        let program = CString::new(path.to_str().expect("utf-8 temp dir")).expect("no NUL");
        let request = SpawnRequest { argv: vec![program.clone()], program, ..SpawnRequest::default() };
        let err = spawn(&request).expect_err("must fail");
        std::fs::remove_file(&path).expect("remove script");
        assert_eq!(err.kind(), SpawnErrorKind::NotExecutable, "{err}");
    }

    #[test]
    fn a_child_under_its_jetsam_limit_runs() {
        let mut request = sh("exit 0");
        request.jetsam_limit_mb = Some(256);
        let child = spawn(&request).expect("spawn");
        assert_eq!(child.jetsam, JetsamStatus::Set { mb: 256 });
        assert_eq!(exit_code(wait(child.pid)), Some(0));
    }

    /// Research checklist item 1: the kernel SIGKILLs a child that crosses
    /// its fatal limit, and kqueue's exit detail names memorystatus.
    #[test]
    fn a_child_over_its_jetsam_limit_is_killed() {
        use crate::kqueue::{Event, Kqueue, ProcessWatch};
        let request = SpawnRequest {
            program: CString::new("/usr/bin/perl").expect("no NUL"),
            // The pause leaves time to watch it before it allocates.
            argv: cstrings(&["perl", "-e", "sleep 1; my $x = 'a' x (512 * 1024 * 1024); sleep 5; exit 0"]),
            jetsam_limit_mb: Some(64),
            ..SpawnRequest::default()
        };
        let kq = Kqueue::new().expect("kqueue");
        let child = spawn(&request).expect("spawn");
        assert_eq!(child.jetsam, JetsamStatus::Set { mb: 64 });
        assert_eq!(kq.watch_process(child.pid).expect("watch"), ProcessWatch::Watching);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let memory_kill = loop {
            assert!(std::time::Instant::now() < deadline, "no exit event");
            let events = kq.wait(Some(std::time::Duration::from_secs(1))).expect("wait");
            if let Some(Event::Exit { memory_kill, .. }) = events.iter().find(|e| matches!(e, Event::Exit { .. })) {
                break *memory_kill;
            }
        };
        let status = wait(child.pid);
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL, "status {status:#x}");
        assert!(memory_kill, "NOTE_EXIT_DETAIL did not report NOTE_EXIT_MEMORY");
    }

    #[test]
    fn a_zero_jetsam_limit_is_refused_before_spawning() {
        let mut request = sh("exit 0");
        request.jetsam_limit_mb = Some(0);
        let err = spawn(&request).expect_err("must fail");
        assert_eq!(err.io_error().kind(), io::ErrorKind::InvalidInput);
    }
}
