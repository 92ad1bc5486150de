//! String parsers for the cgroup files the probe reads.

use std::path::{Path, PathBuf};

/// What /proc/self/mountinfo says about cgroups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    pub cgroup2: Option<PathBuf>,
    pub has_v1: bool,
}

/// Finds the cgroup2 mount point and whether any v1 hierarchy is mounted.
/// mountinfo(5): the filesystem type follows the " - " separator.
pub fn parse_mountinfo(text: &str) -> CgroupMounts {
    let mut m = CgroupMounts::default();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let fstype = right.split_ascii_whitespace().next().unwrap_or("");
        let mount_point = left.split_ascii_whitespace().nth(4);
        match (fstype, mount_point) {
            ("cgroup2", Some(mp)) if m.cgroup2.is_none() => m.cgroup2 = Some(PathBuf::from(unescape(mp))),
            ("cgroup", _) => m.has_v1 = true,
            _ => {}
        }
    }
    m
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// The cgroup v2 path from /proc/self/cgroup (the `0::PATH` line).
pub fn parse_proc_cgroup(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_string)
}

/// `mount` + a cgroup path that starts with `/`.
pub fn join(mount: &Path, cgroup: &str) -> PathBuf {
    mount.join(cgroup.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_layout() {
        let t = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                 32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                 40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.cgroup2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert!(m.has_v1);
    }

    #[test]
    fn unified_layout() {
        let t = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(parse_mountinfo(t), CgroupMounts { cgroup2: Some(PathBuf::from("/sys/fs/cgroup")), has_v1: false });
    }

    #[test]
    fn proc_self_cgroup() {
        let t = "12:memory:/x\n1:name=systemd:/\n0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(parse_proc_cgroup(t).as_deref(), Some("/user.slice/user-1000.slice/session-2.scope"));
        assert_eq!(parse_proc_cgroup("4:memory:/x\n"), None);
    }

    #[test]
    fn join_paths() {
        assert_eq!(join(Path::new("/sys/fs/cgroup"), "/"), PathBuf::from("/sys/fs/cgroup/"));
        assert_eq!(join(Path::new("/sys/fs/cgroup"), "/a/b"), PathBuf::from("/sys/fs/cgroup/a/b"));
    }
}
