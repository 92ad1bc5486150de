//! The pool key: what two runs must have in common to share one server.
//!
//! Everything the server could see or be limited by: the resolved
//! executable, the whole argv, the whole environment (secrets included, so
//! two different tokens never share), the working directory, the user and
//! group, the policy entry and every resolved limit, and the driver asked
//! for. The key is kept whole, as bytes: the pool host compares a relay's
//! key with its own byte for byte, and the 64-bit hash only names the
//! pool's files. A hash collision therefore costs a refused connection
//! (the run goes on unshared), never a server shared by mistake.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use mcp_runner_policy::Effective;

use crate::driver::names::fnv1a64;

/// The key of one pool, and the name its files take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolKey {
    bytes: Vec<u8>,
}

/// What the key is made of.
pub struct KeyParts<'a> {
    pub argv: &'a [OsString],
    pub env: &'a [(OsString, OsString)],
    pub cwd: &'a Path,
    pub uid: u32,
    pub gid: u32,
    pub budget: &'a Effective,
    /// `--driver` as given, if it was.
    pub driver: Option<&'a str>,
}

impl PoolKey {
    pub fn new(parts: &KeyParts) -> PoolKey {
        let mut k = Encoder::default();
        k.field(b"v1");
        let program = parts.argv.first().map(OsString::as_os_str).unwrap_or_default();
        k.field(resolve_executable(program, parts.env, parts.cwd).as_os_str().as_bytes());
        k.count(parts.argv.len());
        for a in parts.argv {
            k.field(a.as_bytes());
        }
        // Sorted: the same environment in another order is the same server.
        let mut env: Vec<&(OsString, OsString)> = parts.env.iter().collect();
        env.sort();
        k.count(env.len());
        for (name, value) in env {
            k.field(name.as_bytes());
            k.field(value.as_bytes());
        }
        k.field(parts.cwd.as_os_str().as_bytes());
        k.field(&parts.uid.to_le_bytes());
        k.field(&parts.gid.to_le_bytes());
        // The budget as resolved: every level's limits, the entry, the
        // timeouts. Debug output is the policy crate's own and complete.
        k.field(format!("{:?}", parts.budget).as_bytes());
        k.field(parts.driver.unwrap_or("").as_bytes());
        PoolKey { bytes: k.out }
    }

    /// The key as the wire carries it.
    pub fn from_bytes(bytes: Vec<u8>) -> PoolKey {
        PoolKey { bytes }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The pool's name in the state directory: 16 hex digits.
    pub fn id(&self) -> String {
        format!("{:016x}", fnv1a64(&self.bytes))
    }
}

/// Length-prefixed fields: no two different lists of fields encode alike.
#[derive(Default)]
struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    fn count(&mut self, n: usize) {
        self.out.extend_from_slice(&(n as u64).to_le_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        self.count(bytes.len());
        self.out.extend_from_slice(bytes);
    }
}

/// The file `program` runs: looked up in the run's PATH as execvp would,
/// then made absolute and canonical, so that `node` and `/usr/bin/node` are
/// one server and two `node`s on different PATHs are two. A program that
/// cannot be found keys as written (the spawn will report it).
fn resolve_executable(program: &OsStr, env: &[(OsString, OsString)], cwd: &Path) -> PathBuf {
    let found = if program.as_bytes().contains(&b'/') {
        Some(cwd.join(program))
    } else {
        let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
        std::env::split_paths(&path).map(|dir| cwd.join(dir).join(program)).find(|p| is_executable(p))
    };
    found.and_then(|p| std::fs::canonicalize(p).ok()).unwrap_or_else(|| PathBuf::from(program))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Effective {
        mcp_runner_policy::builtin()
            .resolve(
                &mcp_runner_policy::ServerRequest { name: Some("x"), argv: &["sh".to_owned()] },
                &mcp_runner_policy::HostMemory { physical_bytes: 16 << 30 },
            )
            .expect("the built-in policy resolves")
    }

    fn key(argv: &[&str], env: &[(&str, &str)], cwd: &str) -> PoolKey {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let env: Vec<(OsString, OsString)> = env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        let b = budget();
        PoolKey::new(&KeyParts {
            argv: &argv,
            env: &env,
            cwd: Path::new(cwd),
            uid: 1000,
            gid: 1000,
            budget: &b,
            driver: None,
        })
    }

    #[test]
    fn same_inputs_same_key_and_env_order_does_not_matter() {
        let a = key(&["sh", "-c", "x"], &[("PATH", "/usr/bin:/bin"), ("A", "1")], "/");
        let b = key(&["sh", "-c", "x"], &[("A", "1"), ("PATH", "/usr/bin:/bin")], "/");
        assert_eq!(a, b);
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
    }

    #[test]
    fn a_different_secret_argv_cwd_or_path_is_another_pool() {
        let base = key(&["sh", "x"], &[("PATH", "/usr/bin:/bin"), ("TOKEN", "a")], "/");
        assert_ne!(base, key(&["sh", "x"], &[("PATH", "/usr/bin:/bin"), ("TOKEN", "b")], "/"));
        assert_ne!(base, key(&["sh", "x"], &[("PATH", "/usr/bin:/bin")], "/"));
        assert_ne!(base, key(&["sh", "y"], &[("PATH", "/usr/bin:/bin"), ("TOKEN", "a")], "/"));
        assert_ne!(base, key(&["sh", "x"], &[("PATH", "/usr/bin:/bin"), ("TOKEN", "a")], "/tmp"));
        // Field boundaries count: ["ab", "c"] is not ["a", "bc"].
        assert_ne!(key(&["sh", "ab", "c"], &[], "/"), key(&["sh", "a", "bc"], &[], "/"));
    }

    #[test]
    fn the_program_is_keyed_by_the_file_it_runs() {
        let bare = key(&["sh"], &[("PATH", "/usr/bin:/bin")], "/");
        let sh = std::fs::canonicalize("/bin/sh").expect("/bin/sh exists");
        let full = key(&[sh.to_str().expect("utf-8 path")], &[("PATH", "/usr/bin:/bin")], "/");
        // argv differs ("sh" vs the full path), so the keys differ; but the
        // resolved executable, the second field, is the same file.
        assert_ne!(bare, full);
        assert_eq!(
            resolve_executable(OsStr::new("sh"), &[("PATH".into(), "/usr/bin:/bin".into())], Path::new("/")),
            sh
        );
    }
}
