//! The only I/O of `wrap`: reading the config, saving the backup beside it,
//! and replacing the config atomically.

use std::fs::{self, File, FileType, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

/// Appended to the config's path to name its backup.
pub const BACKUP_SUFFIX: &str = ".mcp-runner.bak";

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: no such file", .path.display())]
    NotFound { path: PathBuf },
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

pub fn read(path: &Path) -> Result<String, FileError> {
    fs::read_to_string(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => FileError::NotFound { path: path.to_path_buf() },
        _ => io_error("read", path)(e),
    })
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

/// Saves `original`, the config's text as read, to the backup path unless
/// a backup is there already: that one holds the config from before the
/// first wrap and must not be replaced by a wrapped one. Returns whether it
/// created the backup. Only a regular file counts as an earlier backup;
/// anything else there is [`FileError::NotABackup`].
pub fn ensure_backup(config: &Path, original: &str) -> Result<bool, FileError> {
    let backup = backup_path(config);
    let like = Likeness::of(config)?;
    // `create_new` (O_CREAT | O_EXCL): an existing file is never truncated,
    // even by a race, and a symlink there, even a dangling one, is never
    // followed: the open fails as if a file were there.
    let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&backup) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return match not_a_backup(&backup) {
                Some(e) => Err(e),
                None => Ok(false),
            };
        }
        Err(e) => return Err(io_error("create", &backup)(e)),
    };
    if let Err(e) = write_all_synced(&mut file, &backup, original, like) {
        let _ = fs::remove_file(&backup);
        return Err(e);
    }
    Ok(true)
}

/// Replaces the config with `text` through a temporary file and a rename,
/// so that a client never reads half a config. The file keeps its owner
/// and permissions (configs hold tokens in `env`); a symlinked config (a
/// dotfiles repository) stays a symlink and its target is replaced.
pub fn write_atomic(config: &Path, text: &str) -> Result<(), FileError> {
    let target = fs::canonicalize(config).map_err(io_error("resolve", config))?;
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(io_error("replace", config)(io::Error::other("not a file path")));
    };
    let like = Likeness::of(&target)?;
    let tmp = dir.join(format!(".{}.mcp-runner-{}.tmp", name.to_string_lossy(), std::process::id()));
    // 0600 until the content is complete and the final mode set.
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io_error("create", &tmp))?;
    let written = write_all_synced(&mut file, &tmp, text, like);
    let renamed = written.and_then(|()| fs::rename(&tmp, &target).map_err(io_error("replace", &target)));
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
    fn of(path: &Path) -> Result<Likeness, FileError> {
        let meta = fs::metadata(path).map_err(io_error("stat", path))?;
        Ok(Likeness { uid: meta.uid(), gid: meta.gid(), mode: meta.permissions().mode() & 0o7777 })
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
            let e = ensure_backup(&config, "{}").expect_err(what);
            assert!(matches!(&e, FileError::NotABackup { what: w, .. } if *w == what), "{e}");
            assert!(e.to_string().starts_with(&format!("{} is {what}, not a backup", backup.display())), "{e}");
            let e = read_backup(&backup).expect_err(what);
            assert!(matches!(&e, FileError::NotABackup { what: w, .. } if *w == what), "{e}");
            // Nothing was followed or created.
            assert!(fs::read_to_string(&planted).map_or(true, |t| t == "not mine"));
            let _ = fs::remove_file(&backup).or_else(|_| fs::remove_dir(&backup));
            let _ = fs::remove_file(&planted);
        }
        fs::write(&backup, "earlier").expect("regular backup");
        assert!(!ensure_backup(&config, "{}").expect("kept"));
        assert_eq!(read_backup(&backup).expect("read").as_deref(), Some("earlier"));
        fs::remove_file(&backup).expect("rm");
        assert_eq!(read_backup(&backup).expect("none"), None);
        assert!(ensure_backup(&config, "{}").expect("created"));
    }
}
