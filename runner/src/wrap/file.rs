//! The only I/O of `wrap`: reading the config, saving the backup beside it,
//! and replacing the config atomically if it is still the version that was
//! read. [`ConfigFile`] is the [`Store`] that `edit` runs on.

use std::fs::{self, File, FileType, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use super::edit::Store;

/// Appended to the config's path to name its backup.
pub const BACKUP_SUFFIX: &str = ".mcp-runner.bak";

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: no such file", .path.display())]
    NotFound { path: PathBuf },
    /// The config is no longer the version that was read: replacing it
    /// would lose another program's write. Nothing was written.
    #[error("{} changed while wrap was editing it", .path.display())]
    Changed { path: PathBuf },
    /// Only a regular file at the backup name is a backup. Anything else is
    /// left alone, never followed, and named.
    #[error(
        "{} is {what}, not a backup: only a regular file there is the backup of an earlier run; \
         move it away and run wrap again",
        .path.display()
    )]
    NotABackup { path: PathBuf, what: &'static str },
    /// `sudo mcp-runner wrap` must not leave the user's config owned by
    /// root: a file that cannot be given the config's owner is not written.
    #[error("failed to give {} the owner of the config (uid {uid}, gid {gid})", .path.display())]
    Owner {
        path: PathBuf,
        uid: u32,
        gid: u32,
        #[source]
        source: io::Error,
    },
    #[error("failed to {op} {}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FileError {
    let path = path.to_path_buf();
    move |source| FileError::Io { op, path, source }
}

pub fn backup_path(config: &Path) -> PathBuf {
    let mut name = config.as_os_str().to_owned();
    name.push(BACKUP_SUFFIX);
    PathBuf::from(name)
}

/// Which version of a file is at a path: a rewrite in place changes the
/// size or the times, a replacement by rename the inode, a chmod or chown
/// the change time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The version of the config that was read, and what a file written in its
/// place takes from it.
#[derive(Clone, Copy, Debug)]
pub struct Version {
    stamp: Stamp,
    like: Likeness,
}

/// The config's text and its version, both from the one open file: the
/// version is taken before the text, so a write during the read shows too.
pub fn read(path: &Path) -> Result<(String, Version), FileError> {
    let not_found = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => FileError::NotFound { path: path.to_path_buf() },
        _ => io_error("read", path)(e),
    };
    let mut file = File::open(path).map_err(not_found)?;
    let meta = file.metadata().map_err(io_error("stat", path))?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io_error("read", path))?;
    Ok((text, Version { stamp: Stamp::of(&meta), like: Likeness::of(&meta) }))
}

/// The backup's text, or `None` if there is none. A symlink at the backup
/// name is not followed (`O_NOFOLLOW`), and a FIFO does not block the open
/// (`O_NONBLOCK`): anything but a regular file is [`FileError::NotABackup`].
pub fn read_backup(backup: &Path) -> Result<Option<String>, FileError> {
    let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
    let mut file = match OpenOptions::new().read(true).custom_flags(flags.bits()).open(backup) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(not_a_backup(backup).unwrap_or_else(|| io_error("open", backup)(e))),
    };
    let kind = file.metadata().map_err(io_error("stat", backup))?.file_type();
    if !kind.is_file() {
        return Err(FileError::NotABackup { path: backup.to_path_buf(), what: describe(kind) });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io_error("read", backup))?;
    Ok(Some(text))
}

/// [`FileError::NotABackup`] if something other than a regular file is at
/// `backup` (looked at with `lstat`: a symlink is a symlink, dangling or not).
fn not_a_backup(backup: &Path) -> Option<FileError> {
    let kind = fs::symlink_metadata(backup).ok()?.file_type();
    (!kind.is_file()).then(|| FileError::NotABackup { path: backup.to_path_buf(), what: describe(kind) })
}

fn describe(kind: FileType) -> &'static str {
    if kind.is_symlink() {
        "a symlink"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// The identity of a file this run created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &fs::Metadata) -> FileId {
        FileId { dev: meta.dev(), ino: meta.ino() }
    }
}

/// Saves `original`, the config's text as read, to the backup path unless
/// a backup is there already: that one holds the config from before the
/// first wrap and must not be replaced by a wrapped one. Returns the
/// backup it created, if it did. Only a regular file counts as an earlier
/// backup; anything else there is [`FileError::NotABackup`].
pub fn ensure_backup(config: &Path, original: &str, read: &Version) -> Result<Option<FileId>, FileError> {
    let backup = backup_path(config);
    // `create_new` (O_CREAT | O_EXCL): an existing file is never truncated,
    // even by a race, and a symlink there, even a dangling one, is never
    // followed: the open fails as if a file were there.
    let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&backup) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let kind = fs::symlink_metadata(&backup).map_err(io_error("stat", &backup))?.file_type();
            if kind.is_file() {
                return Ok(None);
            }
            return Err(FileError::NotABackup { path: backup, what: describe(kind) });
        }
        Err(e) => return Err(io_error("create", &backup)(e)),
    };
    let written = write_all_synced(&mut file, &backup, original, read.like)
        .and_then(|()| file.metadata().map_err(io_error("stat", &backup)));
    match written {
        Ok(meta) => Ok(Some(FileId::of(&meta))),
        Err(e) => {
            let _ = fs::remove_file(&backup);
            Err(e)
        }
    }
}

/// Removes the backup `created` if it is still the file at the backup
/// path: whatever else is there now is not this run's to remove.
pub fn discard_backup(config: &Path, created: FileId) -> Result<(), FileError> {
    let backup = backup_path(config);
    let meta = match fs::symlink_metadata(&backup) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("stat", &backup)(e)),
    };
    if FileId::of(&meta) != created {
        return Ok(());
    }
    fs::remove_file(&backup).map_err(io_error("remove", &backup))
}

/// Whether the config at `path` is still the version `read`.
pub fn is_current(path: &Path, read: &Version) -> Result<bool, FileError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Stamp::of(&meta) == read.stamp),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("stat", path)(e)),
    }
}

/// Replaces the config with `text` through a temporary file and a rename,
/// so that a client never reads half a config, if it is still the version
/// `read`: else [`FileError::Changed`], and nothing is written. The file
/// keeps the owner and permissions it had when it was read (configs hold
/// tokens in `env`); a symlinked config (a dotfiles repository) stays a
/// symlink and its target is replaced.
///
/// The version is checked after the new text is on disk, right before the
/// rename: a write by another program between the check and the rename is
/// still lost, but that window is two system calls long, not the whole
/// edit. POSIX has no rename that compares first.
pub fn replace(config: &Path, text: &str, read: &Version) -> Result<(), FileError> {
    let target = fs::canonicalize(config).map_err(io_error("resolve", config))?;
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(io_error("replace", config)(io::Error::other("not a file path")));
    };
    let tmp = dir.join(format!(".{}.mcp-runner-{}.tmp", name.to_string_lossy(), std::process::id()));
    // 0600 until the content is complete and the final mode set.
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io_error("create", &tmp))?;
    let renamed = write_all_synced(&mut file, &tmp, text, read.like)
        .and_then(|()| match fs::symlink_metadata(&target) {
            Ok(now) if Stamp::of(&now) == read.stamp => Ok(()),
            Ok(_) => Err(FileError::Changed { path: config.to_path_buf() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(FileError::Changed { path: config.to_path_buf() }),
            Err(e) => Err(io_error("stat", &target)(e)),
        })
        .and_then(|()| fs::rename(&tmp, &target).map_err(io_error("replace", &target)));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed?;
    // Best effort: make the rename itself durable. The config is already
    // correct for every reader, whatever happens here.
    let _ = File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

/// What a file that replaces the config, or backs it up, takes from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Likeness {
    uid: u32,
    gid: u32,
    mode: u32,
}

impl Likeness {
    fn of(meta: &fs::Metadata) -> Likeness {
        Likeness { uid: meta.uid(), gid: meta.gid(), mode: meta.permissions().mode() & 0o7777 }
    }
}

/// A config on disk and the backup beside it, as `edit` uses them.
pub struct ConfigFile {
    path: PathBuf,
    /// The backup the last `save_backup` created.
    created: Option<FileId>,
}

impl ConfigFile {
    pub fn new(path: &Path) -> ConfigFile {
        ConfigFile { path: path.to_path_buf(), created: None }
    }
}

impl Store for ConfigFile {
    type Version = Version;

    fn read(&mut self) -> Result<(String, Version), FileError> {
        read(&self.path)
    }

    fn is_current(&mut self, version: &Version) -> Result<bool, FileError> {
        is_current(&self.path, version)
    }

    fn read_backup(&mut self) -> Result<Option<String>, FileError> {
        read_backup(&backup_path(&self.path))
    }

    fn save_backup(&mut self, text: &str, version: &Version) -> Result<bool, FileError> {
        self.created = ensure_backup(&self.path, text, version)?;
        Ok(self.created.is_some())
    }

    fn discard_backup(&mut self) -> Result<(), FileError> {
        match self.created.take() {
            Some(created) => discard_backup(&self.path, created),
            None => Ok(()),
        }
    }

    fn replace(&mut self, text: &str, version: &Version) -> Result<(), FileError> {
        replace(&self.path, text, version)
    }
}

/// Gives the new file at `path` the config's owner and mode, then `text`.
fn write_all_synced(file: &mut File, path: &Path, text: &str, like: Likeness) -> Result<(), FileError> {
    // The owner first: a chown clears the set-id bits that the mode sets.
    let meta = file.metadata().map_err(io_error("stat", path))?;
    let uid = (meta.uid() != like.uid).then_some(like.uid);
    let gid = (meta.gid() != like.gid).then_some(like.gid);
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::fchown(&*file, uid, gid).map_err(|source| FileError::Owner {
            path: path.to_path_buf(),
            uid: like.uid,
            gid: like.gid,
            source,
        })?;
    }
    // Set explicitly: the mode given at creation was masked by the umask.
    file.set_permissions(Permissions::from_mode(like.mode)).map_err(io_error("set the mode of", path))?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io_error("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_is_the_config_path_plus_suffix() {
        assert_eq!(backup_path(Path::new("/a/.mcp.json")), PathBuf::from("/a/.mcp.json.mcp-runner.bak"));
    }

    /// A directory for one test, removed afterwards.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("mcp-runner-wrap-file-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir(&dir).expect("scratch dir");
            Scratch(dir)
        }

        /// `config.json` holding `{}`.
        fn config(&self) -> PathBuf {
            let config = self.0.join("config.json");
            fs::write(&config, "{}").expect("config");
            config
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn issue_9_only_a_regular_file_at_the_backup_name_is_an_earlier_backup() {
        // See: issue 9, finding 5
        let dir = Scratch::new("backup-name");
        let config = dir.config();
        let backup = backup_path(&config);
        let planted = dir.0.join("planted");
        let cases: [(&str, &dyn Fn()); 4] = [
            ("a symlink", &|| std::os::unix::fs::symlink(&planted, &backup).expect("dangling symlink")),
            ("a symlink", &|| {
                fs::write(&planted, "not mine").expect("target");
                std::os::unix::fs::symlink(&planted, &backup).expect("symlink to a file")
            }),
            ("a directory", &|| fs::create_dir(&backup).expect("dir")),
            ("a FIFO", &|| nix::unistd::mkfifo(&backup, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo")),
        ];
        for (what, plant) in cases {
            plant();
            let (text, version) = read(&config).expect("read");
            let e = ensure_backup(&config, &text, &version).expect_err(what);
            assert!(matches!(&e, FileError::NotABackup { what: w, .. } if *w == what), "{e}");
            assert!(e.to_string().starts_with(&format!("{} is {what}, not a backup", backup.display())), "{e}");
            let e = read_backup(&backup).expect_err(what);
            assert!(matches!(&e, FileError::NotABackup { what: w, .. } if *w == what), "{e}");
            // Nothing was followed or created.
            assert!(fs::read_to_string(&planted).map_or(true, |t| t == "not mine"));
            let _ = fs::remove_file(&backup).or_else(|_| fs::remove_dir(&backup));
            let _ = fs::remove_file(&planted);
        }
        let (text, version) = read(&config).expect("read");
        fs::write(&backup, "earlier").expect("regular backup");
        assert_eq!(ensure_backup(&config, &text, &version).expect("kept"), None);
        assert_eq!(read_backup(&backup).expect("read").as_deref(), Some("earlier"));
        fs::remove_file(&backup).expect("rm");
        assert_eq!(read_backup(&backup).expect("none"), None);
        assert!(ensure_backup(&config, &text, &version).expect("created").is_some());
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
        names.sort();
        names
    }

    #[test]
    fn issue_9_replace_refuses_a_config_changed_since_it_was_read() {
        // See: issue 9, finding 5
        let dir = Scratch::new("changed");
        let config = dir.config();
        /// Another program's write, as it happens to a config.
        type Rewrite = fn(&Path);
        let rewrites: [(&str, Rewrite); 4] = [
            ("written in place", |p| fs::write(p, "{ }").expect("write")),
            ("replaced by a rename, same bytes", |p| {
                let new = p.with_extension("new");
                fs::write(&new, "{}").expect("write");
                fs::rename(&new, p).expect("rename");
            }),
            ("written in place, same size", |p| {
                fs::write(p, "[]").expect("write");
                let old = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_000_000_001);
                File::options().write(true).open(p).and_then(|f| f.set_modified(old)).expect("set mtime");
            }),
            ("chmod", |p| fs::set_permissions(p, Permissions::from_mode(0o640)).expect("chmod")),
        ];
        for (how, rewrite) in rewrites {
            fs::write(&config, "{}").expect("config");
            let (_, version) = read(&config).expect("read");
            assert!(is_current(&config, &version).expect("stat"), "{how}");
            rewrite(&config);
            let theirs = fs::read(&config).expect("read");
            assert!(!is_current(&config, &version).expect("stat"), "{how}");
            let e = replace(&config, "wrapped", &version).expect_err(how);
            assert!(matches!(e, FileError::Changed { .. }), "{how}: {e}");
            assert_eq!(fs::read(&config).expect("read"), theirs, "{how}: the other write was lost");
            assert_eq!(names_in(&dir.0), ["config.json"], "{how}: a temporary file was left");
        }
        let (_, version) = read(&config).expect("read");
        replace(&config, "wrapped", &version).expect("unchanged, so replaced");
        assert_eq!(fs::read_to_string(&config).expect("read"), "wrapped");
        assert_eq!(names_in(&dir.0), ["config.json"]);
    }

    #[test]
    fn discard_removes_only_the_backup_this_run_created() {
        let dir = Scratch::new("discard");
        let config = dir.config();
        let backup = backup_path(&config);
        let (text, version) = read(&config).expect("read");
        let created = ensure_backup(&config, &text, &version).expect("saved").expect("created");
        // Another file renamed over it (a new inode) is left alone.
        let theirs = dir.0.join("theirs");
        fs::write(&theirs, "theirs").expect("write");
        fs::rename(&theirs, &backup).expect("rename");
        discard_backup(&config, created).expect("discard");
        assert_eq!(fs::read_to_string(&backup).expect("kept"), "theirs");
        fs::remove_file(&backup).expect("rm");
        let created = ensure_backup(&config, &text, &version).expect("saved").expect("created");
        discard_backup(&config, created).expect("discard");
        assert_eq!(names_in(&dir.0), ["config.json"]);
    }
}
