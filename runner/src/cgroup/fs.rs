//! cgroupfs file access. Every error names the operation and the path
//! ("failed to write 1 to /sys/fs/cgroup/x/cgroup.kill: Permission denied"),
//! and a failed write to a controller file says which controller is missing
//! instead of a bare errno.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupIoError {
    #[error("failed to read {path}: {err}")]
    Read { path: PathBuf, err: io::Error },
    #[error("failed to write {data} to {path}: {err}")]
    Write { path: PathBuf, data: String, err: io::Error },
    #[error("failed to create cgroup {path}: {err}")]
    Mkdir { path: PathBuf, err: io::Error },
    #[error("failed to remove cgroup {path}: {err}")]
    Rmdir { path: PathBuf, err: io::Error },
    #[error("controller `{controller}` is not available in {dir} (not enabled by its parent, or not delegated)")]
    MissingController { controller: String, dir: PathBuf },
    /// The controller is there and refused the write: a value out of its
    /// range (EINVAL), a busy state (EBUSY), a file its owner keeps (EACCES).
    #[error("failed to write {data} to {path}: {err} (the `{controller}` controller refused it)")]
    Refused { controller: String, path: PathBuf, data: String, err: io::Error },
}

impl CgroupIoError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            CgroupIoError::Read { err, .. }
            | CgroupIoError::Write { err, .. }
            | CgroupIoError::Mkdir { err, .. }
            | CgroupIoError::Rmdir { err, .. }
            | CgroupIoError::Refused { err, .. } => err.raw_os_error(),
            CgroupIoError::MissingController { .. } => None,
        }
    }
}

/// One cgroup directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupDir {
    path: PathBuf,
}

impl CgroupDir {
    pub fn new(path: impl Into<PathBuf>) -> CgroupDir {
        CgroupDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn child(&self, name: &str) -> CgroupDir {
        CgroupDir { path: self.path.join(name) }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Whether this is a cgroup directory (or, in tests, a plain one).
    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    pub fn read(&self, name: &str) -> Result<String, CgroupIoError> {
        let path = self.file(name);
        fs::read_to_string(&path).map_err(|err| CgroupIoError::Read { path, err })
    }

    /// Writes `data` in one `write(2)`: cgroupfs parses each write whole, so
    /// "+memory +pids" must not be split.
    pub fn write(&self, name: &str, data: &str) -> Result<(), CgroupIoError> {
        let path = self.file(name);
        match fs::write(&path, data) {
            Ok(()) => Ok(()),
            Err(err) => Err(self.diagnose(name, data, err)),
        }
    }

    /// Replaces a raw ENOENT/EACCES/EPERM on a controller file with the
    /// reason: the controller is not enabled for this cgroup. Any other
    /// failed write to a controller file names the controller.
    fn diagnose(&self, name: &str, data: &str, err: io::Error) -> CgroupIoError {
        let controller = name.split('.').next().unwrap_or("");
        let is_controller_file = !matches!(controller, "cgroup" | "");
        if !is_controller_file {
            return CgroupIoError::Write { path: self.file(name), data: data.to_string(), err };
        }
        let suspicious = matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied);
        if suspicious {
            let enabled = self.read("cgroup.controllers").unwrap_or_default();
            if !enabled.split_ascii_whitespace().any(|c| c == controller) {
                return CgroupIoError::MissingController { controller: controller.to_string(), dir: self.path.clone() };
            }
        }
        CgroupIoError::Refused {
            controller: controller.to_string(),
            path: self.file(name),
            data: data.to_string(),
            err,
        }
    }

    /// Creates the directory; an existing one is fine.
    pub fn create(&self) -> Result<(), CgroupIoError> {
        match fs::create_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(err) => Err(CgroupIoError::Mkdir { path: self.path.clone(), err }),
        }
    }

    /// Creates the directory, failing if it exists: a server leaf must be
    /// fresh (a leaf that saw `cgroup.kill` SIGKILLs every later
    /// CLONE_INTO_CGROUP child on kernels with b69bb476dee9 and without
    /// 8e3599202166).
    pub fn create_new(&self) -> Result<(), CgroupIoError> {
        fs::create_dir(&self.path).map_err(|err| CgroupIoError::Mkdir { path: self.path.clone(), err })
    }

    pub fn remove(&self) -> Result<(), CgroupIoError> {
        fs::remove_dir(&self.path).map_err(|err| CgroupIoError::Rmdir { path: self.path.clone(), err })
    }

    /// Child cgroup names.
    pub fn children(&self) -> Vec<String> {
        let Ok(dir) = self.path.read_dir() else { return Vec::new() };
        let mut out: Vec<String> = dir
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        out.sort();
        out
    }

    /// Pids in this cgroup (not its descendants).
    pub fn procs(&self) -> Result<Vec<i32>, CgroupIoError> {
        Ok(self.read("cgroup.procs")?.split_ascii_whitespace().filter_map(|p| p.parse().ok()).collect())
    }

    /// Reads a single-value file such as memory.current; "max" is `None`.
    pub fn read_u64(&self, name: &str) -> Result<Option<u64>, CgroupIoError> {
        let text = self.read(name)?;
        let t = text.trim();
        if t == "max" {
            return Ok(None);
        }
        t.parse().map(Some).map_err(|_| CgroupIoError::Read {
            path: self.file(name),
            err: io::Error::new(io::ErrorKind::InvalidData, format!("not a number: {t:?}")),
        })
    }
}

/// Parses a flat keyed file (`memory.events`, `cgroup.events`,
/// `pids.events`): keys may appear in any order and new ones may be added,
/// so values are looked up by key.
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A limit as cgroupfs writes it: a number or "max".
pub fn limit_value(v: Option<u64>) -> String {
    v.map_or_else(|| "max".to_string(), |n| n.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A directory laid out like a cgroup, for tests of the file layer.
    pub fn fixture(tag: &str, files: &[(&str, &str)]) -> CgroupDir {
        let p = std::env::temp_dir().join(format!("mcp-runner-cg-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("mkdir");
        for (name, body) in files {
            fs::write(p.join(name), body).expect("write fixture");
        }
        CgroupDir::new(p)
    }

    #[test]
    fn keyed_files() {
        let ev = "low 0\nhigh 273\nmax 35\noom 1\noom_kill 2\noom_group_kill 1\n";
        assert_eq!(keyed(ev, "oom_kill"), Some(2));
        assert_eq!(keyed(ev, "oom"), Some(1));
        assert_eq!(keyed(ev, "high"), Some(273));
        assert_eq!(keyed(ev, "sock_throttled"), None);
        assert_eq!(keyed("populated 0\nfrozen 0\n", "populated"), Some(0));
    }

    #[test]
    fn missing_controller_is_named() {
        let d = fixture("diag", &[("cgroup.controllers", "cpu pids\n")]);
        let enoent = io::Error::from_raw_os_error(2);
        let e = d.diagnose("memory.max", "100", enoent);
        assert!(matches!(&e, CgroupIoError::MissingController { controller, .. } if controller == "memory"), "{e}");
        assert!(e.to_string().starts_with("controller `memory` is not available in "), "{e}");
        // An enabled controller that refuses is named with the raw error;
        // cgroup.* files keep the raw error alone.
        let e = d.diagnose("pids.max", "5000000", io::Error::from_raw_os_error(22));
        assert!(matches!(e, CgroupIoError::Refused { .. }), "{e}");
        assert!(e.to_string().starts_with("failed to write 5000000 to "), "{e}");
        assert!(
            e.to_string().ends_with("/pids.max: Invalid argument (os error 22) (the `pids` controller refused it)"),
            "{e}"
        );
        assert_eq!(e.errno(), Some(22));
        let e = d.diagnose("cgroup.kill", "1", io::Error::from_raw_os_error(2));
        assert!(matches!(e, CgroupIoError::Write { .. }), "{e}");
        fs::remove_dir_all(d.path()).ok();
    }

    #[test]
    fn write_errors_name_path_and_data() {
        let d = CgroupDir::new("/nonexistent-cgroup-dir");
        let e = d.write("cgroup.kill", "1").expect_err("fails");
        assert_eq!(
            e.to_string(),
            "failed to write 1 to /nonexistent-cgroup-dir/cgroup.kill: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn read_u64_and_max() {
        let d = fixture("u64", &[("memory.max", "max\n"), ("memory.current", "8192\n"), ("bad", "x\n")]);
        assert_eq!(d.read_u64("memory.max").expect("reads"), None);
        assert_eq!(d.read_u64("memory.current").expect("reads"), Some(8192));
        assert!(d.read_u64("bad").is_err());
        fs::remove_dir_all(d.path()).ok();
    }

    #[test]
    fn fresh_leaf_refuses_existing() {
        let d = fixture("fresh", &[]);
        let leaf = d.child("leaf");
        leaf.create_new().expect("first");
        assert!(leaf.create_new().is_err());
        leaf.create().expect("create tolerates existing");
        fs::remove_dir_all(d.path()).ok();
    }
}
