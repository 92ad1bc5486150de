//! Process listing and per-process facts from libproc (<libproc.h>,
//! <sys/proc_info.h>): which processes are children or group members of
//! another, who a process is across reparenting, and its memory footprint.
//!
//! A pid that no longer exists gives `Ok(None)` (ESRCH), not an error:
//! processes come and go between a listing and the next call. Zombies (exited,
//! not yet reaped) are still found, by `info` and by `footprint`.
#![allow(unsafe_code)]

#[cfg(target_os = "macos")]
use std::io;

#[cfg(target_os = "macos")]
use crate::sys::{self, PlainC};

/// What `info` reports about one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    /// Effective uid.
    pub uid: u32,
    /// `p_uniqueid`: unlike the pid, never reused while the system runs.
    pub unique_id: u64,
    /// `p_puniqueid`: the parent's `unique_id` at fork or spawn. It does not
    /// change when the process is reparented to launchd, so it still links a
    /// daemonized (`setsid`, double-fork) descendant to the tree it left.
    pub parent_unique_id: u64,
    /// When the process started. `None` when the caller may not read it: the
    /// kernel shows it only to the same effective uid or to root.
    pub start: Option<StartTime>,
    /// Exited but not yet reaped by its parent.
    pub zombie: bool,
    /// The command name, at most `MAXCOMLEN` (16) bytes, decoded lossily.
    pub comm: String,
}

/// A process's start time, as `struct timeval` has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StartTime {
    pub sec: u64,
    pub usec: u64,
}

/// A process's physical footprint, in bytes: the measure jetsam limits are
/// enforced on, which unlike RSS keeps counting memory the compressor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// `ri_phys_footprint`.
    pub current: u64,
    /// `ri_lifetime_max_phys_footprint`: the peak since the process started.
    pub lifetime_max: u64,
}

/// Every process on the system.
///
/// # References
/// proc_listpids(PROC_ALL_PIDS) in <libproc.h>
#[cfg(target_os = "macos")]
pub fn all_pids() -> io::Result<Vec<i32>> {
    list_pids(sys::PROC_ALL_PIDS, 0, "PROC_ALL_PIDS")
}

/// The processes whose parent is `ppid` (or whose original parent is, while
/// a debugger traces them).
///
/// # References
/// proc_listpids(PROC_PPID_ONLY) in <libproc.h>
#[cfg(target_os = "macos")]
pub fn children_of(ppid: i32) -> io::Result<Vec<i32>> {
    list_pids(sys::PROC_PPID_ONLY, ppid as u32, "PROC_PPID_ONLY")
}

/// The members of process group `pgid`.
///
/// # References
/// proc_listpids(PROC_PGRP_ONLY) in <libproc.h>
#[cfg(target_os = "macos")]
pub fn group_members(pgid: i32) -> io::Result<Vec<i32>> {
    list_pids(sys::PROC_PGRP_ONLY, pgid as u32, "PROC_PGRP_ONLY")
}

/// `proc_listpids` into a buffer that grows until the answer fits.
///
/// It returns a byte count, and 0 both for "no match" and for an error
/// (libsyscall/wrappers/libproc/libproc.c), so errno is cleared first to tell
/// them apart. A full buffer may have been cut short: the kernel stops
/// copying when it runs out of room (bsd/kern/proc_info.c, `proc_listpids`).
#[cfg(target_os = "macos")]
fn list_pids(kind: u32, typeinfo: u32, kind_name: &str) -> io::Result<Vec<i32>> {
    let call = || format!("proc_listpids({kind_name}, {typeinfo})");
    // SAFETY: a null buffer with size 0 asks only for the kernel's estimate,
    // (nprocs + 20) * sizeof(int) bytes; nothing is written.
    let estimate = unsafe { libc::proc_listpids(kind, typeinfo, std::ptr::null_mut(), 0) };
    let mut slots = usize::try_from(estimate).unwrap_or(0) / size_of::<i32>();
    slots = slots.max(64);
    loop {
        let mut pids = vec![0i32; slots];
        let bytes = libc::c_int::try_from(slots * size_of::<i32>())
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, format!("{}: too many processes", call())))?;
        clear_errno();
        // SAFETY: `pids` is valid for writes of `bytes` bytes, and the kernel
        // writes at most that many.
        let written = unsafe { libc::proc_listpids(kind, typeinfo, pids.as_mut_ptr().cast(), bytes) };
        if written <= 0 {
            let err = io::Error::last_os_error();
            if written == 0 && err.raw_os_error() == Some(0) {
                return Ok(Vec::new());
            }
            return Err(sys::with_call(err, call()));
        }
        let count = written as usize / size_of::<i32>();
        if count < slots {
            pids.truncate(count);
            return Ok(pids);
        }
        slots *= 2;
    }
}

#[cfg(target_os = "macos")]
fn clear_errno() {
    // SAFETY: __error() returns this thread's errno location, always valid.
    unsafe { *libc::__error() = 0 };
}

/// Who process `pid` is: ids, lineage, start time and name. `Ok(None)` if
/// it does not exist.
///
/// Two calls: `PROC_PIDUNIQIDENTIFIERINFO` (private flavor, any user's
/// process) and `PROC_PIDTBSDINFO` (same effective uid or root). For another
/// user's process the second falls back to `PROC_PIDT_SHORTBSDINFO` (any
/// user), which lacks the start time. Zombies are included by passing a
/// non-zero `arg` (bsd/kern/proc_info.c, `proc_pidinfo`: `findzomb`).
///
/// The pid could be reused between the two calls; compare `unique_id` with a
/// later call where that matters.
///
/// # References
/// proc_pidinfo in <libproc.h>; `struct proc_bsdinfo`, `struct
/// proc_bsdshortinfo` in <sys/proc_info.h>; `struct proc_uniqidentifierinfo`
/// in XNU's bsd/sys/proc_info_private.h
#[cfg(target_os = "macos")]
pub fn info(pid: i32) -> io::Result<Option<ProcInfo>> {
    let Some(ids) =
        pidinfo::<sys::proc_uniqidentifierinfo>(pid, sys::PROC_PIDUNIQIDENTIFIERINFO, "PROC_PIDUNIQIDENTIFIERINFO")?
    else {
        return Ok(None);
    };
    let info = match pidinfo::<libc::proc_bsdinfo>(pid, libc::PROC_PIDTBSDINFO, "PROC_PIDTBSDINFO") {
        Ok(Some(bsd)) => ProcInfo {
            pid: bsd.pbi_pid as i32,
            ppid: bsd.pbi_ppid as i32,
            pgid: bsd.pbi_pgid as i32,
            uid: bsd.pbi_uid,
            unique_id: ids.p_uniqueid,
            parent_unique_id: ids.p_puniqueid,
            start: Some(StartTime { sec: bsd.pbi_start_tvsec, usec: bsd.pbi_start_tvusec }),
            zombie: bsd.pbi_status == libc::SZOMB,
            comm: comm_to_string(&bsd.pbi_comm),
        },
        Ok(None) => return Ok(None),
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            let Some(short) =
                pidinfo::<libc::proc_bsdshortinfo>(pid, libc::PROC_PIDT_SHORTBSDINFO, "PROC_PIDT_SHORTBSDINFO")?
            else {
                return Ok(None);
            };
            ProcInfo {
                pid: short.pbsi_pid as i32,
                ppid: short.pbsi_ppid as i32,
                pgid: short.pbsi_pgid as i32,
                uid: short.pbsi_uid,
                unique_id: ids.p_uniqueid,
                parent_unique_id: ids.p_puniqueid,
                start: None,
                zombie: short.pbsi_status == libc::SZOMB,
                comm: comm_to_string(&short.pbsi_comm),
            }
        }
        Err(err) => return Err(err),
    };
    Ok(Some(info))
}

/// One `proc_pidinfo` call for a struct-sized flavor. It returns the number of
/// bytes written, or 0 with errno set; anything but the struct's size is
/// refused rather than half-read.
#[cfg(target_os = "macos")]
fn pidinfo<T: PlainC>(pid: i32, flavor: libc::c_int, flavor_name: &str) -> io::Result<Option<T>> {
    let call = || format!("proc_pidinfo({pid}, {flavor_name})");
    let mut value = T::zeroed();
    let size = size_of::<T>() as libc::c_int;
    // SAFETY: `value` is valid for writes of `size` bytes, and `T: PlainC`
    // accepts whatever bytes the kernel writes. arg = 1 includes zombies.
    let written = unsafe { libc::proc_pidinfo(pid, flavor, 1, (&raw mut value).cast(), size) };
    if written == size {
        return Ok(Some(value));
    }
    if written > 0 {
        let msg = format!("{}: returned {written} bytes, expected {size}", call());
        return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        return Ok(None);
    }
    Err(sys::with_call(err, call()))
}

/// The physical footprint of process `pid`, current and peak. `Ok(None)` if
/// it does not exist. Works on zombies, so the final numbers can be read
/// after `NOTE_EXIT` and before reaping. Needs the same effective uid, or
/// root (PermissionDenied otherwise).
///
/// # References
/// proc_pid_rusage(RUSAGE_INFO_V4) in <libproc.h>; `struct rusage_info_v4`
/// in <sys/resource.h>
#[cfg(target_os = "macos")]
pub fn footprint(pid: i32) -> io::Result<Option<Footprint>> {
    let mut usage = libc::rusage_info_v4::zeroed();
    // SAFETY: `usage` is a valid rusage_info_v4, the struct the kernel writes
    // for RUSAGE_INFO_V4. The prototype types the buffer as `rusage_info_t *`
    // (void **), but libproc passes it on as the struct's address.
    let rc = unsafe { libc::proc_pid_rusage(pid, libc::RUSAGE_INFO_V4, (&raw mut usage).cast()) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ESRCH) {
            return Ok(None);
        }
        return Err(sys::with_call(err, format!("proc_pid_rusage({pid}, RUSAGE_INFO_V4)")));
    }
    Ok(Some(Footprint { current: usage.ri_phys_footprint, lifetime_max: usage.ri_lifetime_max_phys_footprint }))
}

/// A fixed-size C name (`pbi_comm`) up to its first NUL, decoded lossily.
#[cfg(any(target_os = "macos", test))]
fn comm_to_string(comm: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = comm.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c_chars(s: &[u8]) -> Vec<libc::c_char> {
        s.iter().map(|&b| b as libc::c_char).collect()
    }

    #[test]
    fn comm_stops_at_the_first_nul() {
        assert_eq!(comm_to_string(&c_chars(b"node\0\0\0\0garbage\0")), "node");
    }

    #[test]
    fn comm_without_nul_uses_the_whole_array() {
        assert_eq!(comm_to_string(&c_chars(b"0123456789abcdef")), "0123456789abcdef");
    }

    #[test]
    fn comm_with_invalid_utf8_is_decoded_lossily() {
        assert_eq!(comm_to_string(&c_chars(b"a\xffb\0")), "a\u{fffd}b");
    }
}

/// Run on a Mac only: these call the real kernel.
#[cfg(all(test, target_os = "macos"))]
mod macos_tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn me() -> i32 {
        std::process::id() as i32
    }

    #[test]
    fn all_pids_include_this_process_and_launchd() {
        let pids = all_pids().expect("all_pids");
        assert!(pids.contains(&me()));
        assert!(pids.contains(&1));
    }

    #[test]
    fn a_spawned_child_is_listed_under_its_parent_and_group() {
        let mut child = Command::new("/bin/sleep").arg("5").stdin(Stdio::null()).spawn().expect("spawn sleep");
        let pid = child.id() as i32;
        assert!(children_of(me()).expect("children_of").contains(&pid));
        // SAFETY: getpgrp has no preconditions.
        let pgid = unsafe { libc::getpgrp() };
        assert!(group_members(pgid).expect("group_members").contains(&pid));
        let theirs = info(pid).expect("info").expect("child exists");
        let mine = info(me()).expect("info").expect("self exists");
        assert_eq!(theirs.ppid, me());
        assert_eq!(theirs.pgid, pgid);
        assert_eq!(theirs.parent_unique_id, mine.unique_id);
        child.kill().expect("kill");
        child.wait().expect("wait");
    }

    #[test]
    fn a_process_without_children_has_an_empty_list() {
        let mut child = Command::new("/bin/sleep").arg("5").spawn().expect("spawn sleep");
        assert_eq!(children_of(child.id() as i32).expect("children_of"), Vec::<i32>::new());
        child.kill().expect("kill");
        child.wait().expect("wait");
    }

    #[test]
    fn info_about_this_process_matches_the_syscalls() {
        let mine = info(me()).expect("info").expect("self exists");
        assert_eq!(mine.pid, me());
        // SAFETY: getppid, getpgrp and geteuid have no preconditions.
        let (ppid, pgid, euid) = unsafe { (libc::getppid(), libc::getpgrp(), libc::geteuid()) };
        assert_eq!((mine.ppid, mine.pgid, mine.uid), (ppid, pgid, euid));
        assert!(mine.start.is_some());
        assert!(!mine.zombie);
        assert!(mine.unique_id != 0);
        assert!(!mine.comm.is_empty());
    }

    #[test]
    fn a_zombie_is_still_found_and_measured() {
        let mut child = Command::new("/usr/bin/true").spawn().expect("spawn true");
        let pid = child.id() as i32;
        // Poll until it has exited but stay its unreaping parent.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let found = info(pid).expect("info").expect("zombie is still found");
            if found.zombie {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "child never became a zombie");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(footprint(pid).expect("footprint").is_some());
        child.wait().expect("wait");
    }

    /// Research checklist item 4: the parent's unique id outlives reparenting.
    #[test]
    fn the_parent_unique_id_survives_reparenting_to_launchd() {
        use std::io::{BufRead, BufReader};
        // sh starts a background sleep, prints its pid, and exits once its
        // stdin closes, leaving the sleep to launchd.
        let mut child = Command::new("/bin/sh")
            .args(["-c", "/bin/sleep 10 & echo $!; read x"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read pid");
        let grandchild: i32 = line.trim().parse().expect("a pid");
        let sh = info(child.id() as i32).expect("info").expect("sh exists");
        drop(child.stdin.take());
        child.wait().expect("reap sh");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let orphan = loop {
            let found = info(grandchild).expect("info").expect("sleep exists");
            if found.ppid == 1 {
                break found;
            }
            assert!(std::time::Instant::now() < deadline, "sleep was never reparented: {found:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(orphan.parent_unique_id, sh.unique_id);
        // SAFETY: signals the sleep this test started.
        unsafe { libc::kill(grandchild, libc::SIGKILL) };
    }

    #[test]
    fn a_pid_that_does_not_exist_is_none() {
        // Pids on macOS stay below 100000 (PID_MAX 99999).
        assert_eq!(info(999_999).expect("info"), None);
        assert_eq!(footprint(999_999).expect("footprint"), None);
    }

    #[test]
    fn this_process_has_a_footprint() {
        let fp = footprint(me()).expect("footprint").expect("self exists");
        assert!(fp.current > 0);
        assert!(fp.lifetime_max >= fp.current);
    }
}
