//! Opening the state directory so that nobody else can change what it is.
//!
//! A root runner that writes through a name another user can replace
//! overwrites any file on the machine. So the directory is found by walking
//! its path from `/`, one component at a time, each opened with `O_NOFOLLOW`
//! and checked through the descriptor just opened (never by name again); the
//! runner then holds the directory open and does every file operation
//! relative to that descriptor (see [`super::StateDir`]).
//!
//! The rules, for the runner's effective uid E:
//! - every directory from `/` down to the state directory's parent belongs to
//!   root or E, and neither its group nor others may write it, unless it has
//!   the sticky bit (as /tmp does): in a sticky directory nobody else can
//!   rename or remove an entry that root or E own, and the next component of
//!   the path must itself be root's or E's;
//! - a symlink on the way is followed only if root or E own it (it then sits
//!   in a directory that passed these rules); its target is walked the same way;
//! - the state directory itself is a directory, not a symlink, belongs to E,
//!   and neither its group nor others may write it.
//!
//! Missing directories are created 0700. Every directory on the way must be
//! readable by E (it is opened to be checked).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat};

use super::StateError;

/// The most symlinks one walk follows (Linux's own limit for a path).
const MAX_SYMLINKS: usize = 40;

/// Opens `path` as the state directory of `euid`, creating what is missing.
/// Returns the path as walked (symlinks resolved) and the directory's
/// descriptor.
pub(super) fn open_checked(path: &Path, euid: u32) -> Result<(PathBuf, OwnedFd), StateError> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|err| StateError::Open { path: path.to_path_buf(), err })?;
        cwd.join(path)
    };
    let unsafe_dir = |why: String| StateError::Unsafe { path: path.clone(), why };
    let (Some(name), Some(parent)) = (path.file_name(), path.parent()) else {
        return Err(unsafe_dir("it names no directory".into()));
    };

    let root = open("/", dir_flags(), Mode::empty()).map_err(|e| open_err("/", e))?;
    check_ancestor(Path::new("/"), &stat(&root, "/")?, euid).map_err(unsafe_dir)?;
    // The directories walked so far, from `/`: `..` steps back one.
    let mut chain: Vec<(PathBuf, OwnedFd)> = vec![(PathBuf::from("/"), root)];
    let mut todo: VecDeque<OsString> = components(parent);
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            if chain.len() > 1 {
                chain.pop();
            }
            continue;
        }
        let (here, dir) = chain.last().map(|(p, fd)| (p.clone(), fd)).expect("the chain starts at /");
        let next = here.join(&c);
        match open_or_create(dir, &c, &next)? {
            Opened::Dir(fd) => {
                check_ancestor(&next, &stat(&fd, &next)?, euid).map_err(unsafe_dir)?;
                chain.push((next, fd));
            }
            Opened::Symlink(owner) => {
                if owner != 0 && owner != euid {
                    return Err(unsafe_dir(format!("{} is a symlink owned by uid {owner}", next.display())));
                }
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(unsafe_dir(format!("more than {MAX_SYMLINKS} symlinks on the way")));
                }
                let target = PathBuf::from(readlinkat(dir, c.as_os_str()).map_err(|e| open_err(&next, e))?);
                if target.is_absolute() {
                    chain.truncate(1);
                }
                for t in components(&target).into_iter().rev() {
                    todo.push_front(t);
                }
            }
            Opened::NotDir => return Err(unsafe_dir(format!("{} is not a directory", next.display()))),
        }
    }

    let (here, dir) = chain.last().expect("the chain starts at /");
    let walked = here.join(name);
    match open_or_create(dir, name, &walked)? {
        Opened::Dir(fd) => {
            check_final(&stat(&fd, &walked)?, euid).map_err(|why| StateError::Unsafe { path: walked.clone(), why })?;
            Ok((walked, fd))
        }
        Opened::Symlink(_) => Err(StateError::Unsafe { path: walked, why: "it is a symlink".into() }),
        Opened::NotDir => Err(StateError::Unsafe { path: walked, why: "it is not a directory".into() }),
    }
}

/// The flags every directory on the way is opened with.
fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

enum Opened {
    Dir(OwnedFd),
    /// A symlink, and its owner.
    Symlink(u32),
    NotDir,
}

/// Opens the directory `name` in `dir` without following a symlink, making
/// it (0700) if it is missing.
fn open_or_create(dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<Opened, StateError> {
    let mut created = false;
    loop {
        match openat(dir, name, dir_flags(), Mode::empty()) {
            Ok(fd) => return Ok(Opened::Dir(fd)),
            Err(Errno::ENOENT) if !created => {
                match mkdirat(dir, name, Mode::S_IRWXU) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(StateError::CreateDir { path: path.to_path_buf(), err: e.into() }),
                }
                created = true;
            }
            // O_NOFOLLOW on a symlink: ELOOP (ENOTDIR with O_DIRECTORY on
            // some systems); O_DIRECTORY on anything else: ENOTDIR.
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| open_err(path, e))?;
                return Ok(if file_type(&st) == SFlag::S_IFLNK { Opened::Symlink(st.st_uid) } else { Opened::NotDir });
            }
            Err(e) => return Err(open_err(path, e)),
        }
    }
}

/// A directory on the way: root's or `euid`'s, and nobody else may write it
/// unless it is sticky.
fn check_ancestor(path: &Path, st: &FileStat, euid: u32) -> Result<(), String> {
    let owner = st.st_uid;
    if owner != 0 && owner != euid {
        let allowed = if euid == 0 { "not by root".to_string() } else { format!("neither by root nor by uid {euid}") };
        return Err(format!("{} is owned by uid {owner}, {allowed}", path.display()));
    }
    let mode = Mode::from_bits_truncate(st.st_mode);
    if let Some(who) = writable_by_others(mode)
        && !mode.contains(Mode::S_ISVTX)
    {
        return Err(format!("{} is writable by {who} (and not sticky)", path.display()));
    }
    Ok(())
}

/// The state directory itself: `euid`'s, and nobody else may write it.
fn check_final(st: &FileStat, euid: u32) -> Result<(), String> {
    let owner = st.st_uid;
    if owner != euid {
        return Err(format!("it is owned by uid {owner}, not by uid {euid} (another user may have created it first)"));
    }
    match writable_by_others(Mode::from_bits_truncate(st.st_mode)) {
        Some(who) => Err(format!("it is writable by {who}")),
        None => Ok(()),
    }
}

fn writable_by_others(mode: Mode) -> Option<&'static str> {
    match (mode.contains(Mode::S_IWGRP), mode.contains(Mode::S_IWOTH)) {
        (_, true) => Some("others"),
        (true, false) => Some("its group"),
        (false, false) => None,
    }
}

pub(super) fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

fn stat(fd: &OwnedFd, path: impl AsRef<Path>) -> Result<FileStat, StateError> {
    fstat(fd).map_err(|e| open_err(path, e))
}

fn open_err(path: impl AsRef<Path>, e: Errno) -> StateError {
    StateError::Open { path: path.as_ref().to_path_buf(), err: e.into() }
}

/// The names to walk for `path`: `..` kept, `/` and `.` dropped.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn euid() -> u32 {
        nix::unistd::Uid::effective().as_raw()
    }

    fn scratch(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("mcp-runner-dir-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir(&p).expect("mkdir scratch");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod scratch");
        p
    }

    fn why(r: Result<(PathBuf, OwnedFd), StateError>) -> String {
        match r {
            Err(StateError::Unsafe { why, .. }) => why,
            Err(e) => panic!("not refused as unsafe: {e}"),
            Ok((p, _)) => panic!("{} accepted", p.display()),
        }
    }

    #[test]
    fn creates_missing_directories_private() {
        let s = scratch("create");
        let (walked, _fd) = open_checked(&s.join("a/b/state"), euid()).expect("opened");
        assert_eq!(walked, s.join("a/b/state"));
        for p in ["a", "a/b", "a/b/state"] {
            let mode = fs::metadata(s.join(p)).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{p}");
        }
        fs::remove_dir_all(&s).ok();
    }

    #[test]
    fn issue_9_an_ancestor_others_may_write_is_refused_unless_sticky() {
        // See: issue 9, finding 1
        let s = scratch("ancestor");
        let shared = s.join("shared");
        fs::create_dir(&shared).expect("mkdir");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).expect("chmod");
        let w = why(open_checked(&shared.join("state"), euid()));
        assert!(w.contains(&format!("{} is writable by others", shared.display())), "{w}");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o775)).expect("chmod");
        let w = why(open_checked(&shared.join("state"), euid()));
        assert!(w.contains("writable by its group"), "{w}");
        // Sticky, like /tmp: nobody else can move what is ours.
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).expect("chmod");
        open_checked(&shared.join("state"), euid()).expect("a sticky ancestor is fine");
        fs::remove_dir_all(&s).ok();
    }

    #[test]
    fn issue_9_a_symlinked_state_dir_is_refused() {
        // See: issue 9, finding 1
        let s = scratch("final-link");
        fs::create_dir(s.join("real")).expect("mkdir");
        symlink(s.join("real"), s.join("state")).expect("symlink");
        assert_eq!(why(open_checked(&s.join("state"), euid())), "it is a symlink");
        fs::write(s.join("file"), "").expect("write");
        assert_eq!(why(open_checked(&s.join("file"), euid())), "it is not a directory");
        fs::remove_dir_all(&s).ok();
    }

    #[test]
    fn a_trusted_symlink_on_the_way_is_followed() {
        // macOS: /var -> private/var, /tmp -> private/tmp.
        let s = scratch("link");
        fs::create_dir(s.join("real")).expect("mkdir");
        symlink("real", s.join("link")).expect("symlink");
        let (walked, _fd) = open_checked(&s.join("link/state"), euid()).expect("opened");
        assert_eq!(walked, s.join("real/state"));
        let (walked, _fd) = open_checked(&s.join("real/../link/./state"), euid()).expect("opened");
        assert_eq!(walked, s.join("real/state"));
        fs::remove_dir_all(&s).ok();
    }

    #[test]
    fn issue_9_other_users_directories_and_symlinks_are_refused() {
        // See: issue 9, finding 1 (needs root to hand files to another uid)
        if euid() != 0 {
            eprintln!("SKIPPED: chown to another uid needs root");
            return;
        }
        let s = scratch("owners");
        let theirs = s.join("theirs");
        fs::create_dir(&theirs).expect("mkdir");
        std::os::unix::fs::chown(&theirs, Some(65534), None).expect("chown");
        let w = why(open_checked(&theirs.join("state"), 0));
        assert!(w.contains(&format!("{} is owned by uid 65534", theirs.display())), "{w}");
        let w = why(open_checked(&theirs, 0));
        assert!(w.starts_with("it is owned by uid 65534, not by uid 0"), "{w}");

        fs::create_dir(s.join("real")).expect("mkdir");
        symlink(s.join("real"), s.join("link")).expect("symlink");
        std::os::unix::fs::lchown(s.join("link"), Some(65534), None).expect("lchown");
        let w = why(open_checked(&s.join("link/state"), 0));
        assert!(w.contains("is a symlink owned by uid 65534"), "{w}");
        fs::remove_dir_all(&s).ok();
    }
}
