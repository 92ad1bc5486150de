//! The only I/O of `wrap`: reading the config, saving the backup beside it,
//! and replacing the config atomically.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Appended to the config's path to name its backup.
pub const BACKUP_SUFFIX: &str = ".mcp-runner.bak";

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: no such file", .path.display())]
    NotFound { path: PathBuf },
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

/// The file's text, or `None` if there is no such file.
pub fn read_optional(path: &Path) -> Result<Option<String>, FileError> {
    match read(path) {
        Ok(text) => Ok(Some(text)),
        Err(FileError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Saves `original`, the config's text as read, to the backup path unless
/// a backup is there already: that one holds the config from before the
/// first wrap and must not be replaced by a wrapped one. Returns whether it
/// created the backup.
pub fn ensure_backup(config: &Path, original: &str) -> Result<bool, FileError> {
    let backup = backup_path(config);
    let mode = mode_of(config)?;
    // `create_new`: an existing backup is never truncated, even by a race.
    let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&backup) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io_error("create", &backup)(e)),
    };
    let written = write_all_synced(&mut file, original, mode);
    if let Err(e) = written {
        let _ = fs::remove_file(&backup);
        return Err(io_error("write", &backup)(e));
    }
    Ok(true)
}

/// Replaces the config with `text` through a temporary file and a rename,
/// so that a client never reads half a config. The file keeps its
/// permissions (configs hold tokens in `env`); a symlinked config (a
/// dotfiles repository) stays a symlink and its target is replaced.
pub fn write_atomic(config: &Path, text: &str) -> Result<(), FileError> {
    let target = fs::canonicalize(config).map_err(io_error("resolve", config))?;
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(io_error("replace", config)(io::Error::other("not a file path")));
    };
    let mode = mode_of(&target)?;
    let tmp = dir.join(format!(".{}.mcp-runner-{}.tmp", name.to_string_lossy(), std::process::id()));
    // 0600 until the content is complete and the final mode set.
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io_error("create", &tmp))?;
    let written = write_all_synced(&mut file, text, mode).map_err(io_error("write", &tmp));
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

fn mode_of(path: &Path) -> Result<u32, FileError> {
    let meta = fs::metadata(path).map_err(io_error("stat", path))?;
    Ok(meta.permissions().mode() & 0o7777)
}

fn write_all_synced(file: &mut File, text: &str, mode: u32) -> io::Result<()> {
    // Set explicitly: the mode given at creation was masked by the umask.
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_is_the_config_path_plus_suffix() {
        assert_eq!(backup_path(Path::new("/a/.mcp.json")), PathBuf::from("/a/.mcp.json.mcp-runner.bak"));
    }
}
