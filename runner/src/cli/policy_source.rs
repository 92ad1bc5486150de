//! Where the policy comes from, in order: `--policy`, `$MCP_RUNNER_POLICY`,
//! `$XDG_CONFIG_HOME/mcp-runner/policy.toml` (or `~/.config/...`),
//! `/etc/mcp-runner/policy.toml`, then the built-in defaults. A file named
//! explicitly must exist; the default locations are used only if present.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use mcp_runner_policy::{self as policy, Policy, PolicyError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Builtin,
}

/// Picks the policy source. `env` and `home` are parameters so the order is
/// testable without touching the process environment.
///
/// Variables are read as `OsString`: on Unix a path is bytes, and a
/// non-UTF-8 `MCP_RUNNER_POLICY` is a path like any other, not a variable
/// to skip (skipping it ran the built-in defaults instead of the file the
/// user named, or of the error that it is missing).
pub fn locate_with(flag: Option<&Path>, env: impl Fn(&str) -> Option<OsString>) -> Source {
    if let Some(p) = flag {
        return Source::File(p.to_path_buf());
    }
    if let Some(p) = env("MCP_RUNNER_POLICY").filter(|p| !p.is_empty()) {
        return Source::File(PathBuf::from(p));
    }
    let config_home = env("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")));
    let candidates = config_home
        .map(|c| c.join("mcp-runner/policy.toml"))
        .into_iter()
        .chain([PathBuf::from("/etc/mcp-runner/policy.toml")]);
    for c in candidates {
        if c.is_file() {
            return Source::File(c);
        }
    }
    Source::Builtin
}

pub fn locate(flag: Option<&Path>) -> Source {
    locate_with(flag, |k| std::env::var_os(k))
}

pub fn load(source: &Source) -> Result<Policy, PolicyError> {
    match source {
        Source::File(p) => policy::load(p),
        Source::Builtin => Ok(policy::builtin()),
    }
}

/// The global and session levels as the user's policy sets them, for the
/// commands that look at every runner (`status`, `gc`): a policy that no
/// longer loads must not hide what runs, so the built-in one stands in.
pub fn levels_budget(physical_memory: u64) -> Result<mcp_runner_policy::Effective, PolicyError> {
    let request = mcp_runner_policy::ServerRequest { name: None, argv: &[] };
    let memory = mcp_runner_policy::HostMemory { physical_bytes: physical_memory };
    match load(&locate(None)).and_then(|p| p.resolve(&request, &memory)) {
        Ok(b) => Ok(b),
        Err(_) => policy::builtin().resolve(&request, &memory),
    }
}

/// The budget of the server `run` was asked for: the policy `run` would
/// use, resolved for its name and command line on this host. Shared by
/// `run` and the pool host (which must resolve it exactly as its relays do).
pub fn server_budget(
    name: Option<&str>,
    policy: Option<&Path>,
    command: &[OsString],
    physical_memory: u64,
) -> Result<mcp_runner_policy::Effective, PolicyError> {
    let argv: Vec<String> = command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    load(&locate(policy)).and_then(|p| {
        p.resolve(
            &mcp_runner_policy::ServerRequest { name, argv: &argv },
            &mcp_runner_policy::HostMemory { physical_bytes: physical_memory },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env<'a>(m: &'a HashMap<&str, String>) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| m.get(k).map(OsString::from)
    }

    #[test]
    fn order() {
        let dir = std::env::temp_dir().join(format!("mcp-runner-src-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("mcp-runner")).expect("mkdir");
        let user = dir.join("mcp-runner/policy.toml");
        std::fs::write(&user, "").expect("write");
        let mut m = HashMap::new();
        m.insert("XDG_CONFIG_HOME", dir.display().to_string());
        assert_eq!(locate_with(None, env(&m)), Source::File(user.clone()));
        m.insert("MCP_RUNNER_POLICY", "/from/env.toml".into());
        assert_eq!(locate_with(None, env(&m)), Source::File("/from/env.toml".into()));
        assert_eq!(locate_with(Some(Path::new("/flag.toml")), env(&m)), Source::File("/flag.toml".into()));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn issue_9_non_utf8_variables_are_paths() {
        // See: issue 9, finding 7
        use std::os::unix::ffi::OsStrExt;
        let latin1 = std::ffi::OsStr::from_bytes(b"/etc/caf\xe9.toml").to_owned();
        let env = |k: &str| (k == "MCP_RUNNER_POLICY").then(|| latin1.clone());
        assert_eq!(locate_with(None, env), Source::File(PathBuf::from(&latin1)));
        let config = std::ffi::OsStr::from_bytes(b"/nonexistent/\xff").to_owned();
        let env = |k: &str| (k == "XDG_CONFIG_HOME").then(|| config.clone());
        // An unusable config home falls through to the next candidates, not to a panic.
        if !Path::new("/etc/mcp-runner/policy.toml").exists() {
            assert_eq!(locate_with(None, env), Source::Builtin);
        }
    }

    #[test]
    fn missing_default_files_mean_builtin() {
        let m: HashMap<&str, String> = [("HOME", "/nonexistent-home".to_string())].into();
        // /etc/mcp-runner/policy.toml does not exist on a test machine.
        if !Path::new("/etc/mcp-runner/policy.toml").exists() {
            assert_eq!(locate_with(None, env(&m)), Source::Builtin);
        }
    }
}
