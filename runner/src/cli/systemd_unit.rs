//! `mcp-runner systemd install|uninstall [--user|--system]`: "enable as a
//! systemd slice". The installed `mcp-runner.slice` carries the policy's
//! global cap, so it holds even for servers started by hand with
//! `systemd-run --slice=mcp-runner.slice`, and survives runner restarts.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use mcp_runner_policy::{HostMemory, ServerRequest};

use super::{Failure, OrExit, policy_source};
use crate::driver::systemd::{properties, units};
use crate::exit;
use crate::host;

/// Which manager the slice is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    User,
    System,
}

/// The first line of every file this command writes: uninstall removes
/// only files that carry it.
const HEADER: &str = "# Written by `mcp-runner systemd install`; `mcp-runner systemd uninstall` removes it.";

pub fn default_manager() -> Manager {
    if nix::unistd::Uid::effective().is_root() { Manager::System } else { Manager::User }
}

/// Where the unit file goes.
pub fn unit_dir(manager: Manager, env: impl Fn(&str) -> Option<String>) -> Result<PathBuf, anyhow::Error> {
    match manager {
        Manager::System => Ok(PathBuf::from("/etc/systemd/system")),
        Manager::User => env("XDG_CONFIG_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|c| c.join("systemd/user"))
            .ok_or_else(|| anyhow!("neither XDG_CONFIG_HOME nor HOME is set")),
    }
}

/// The unit file for a global budget: a pure function of its inputs.
pub fn unit_file(origin: &str, limits: &mcp_runner_policy::Limits) -> String {
    format!(
        "{HEADER}\n# Global cap from {origin}; percentages were resolved for this machine at install time.\n\
         [Unit]\nDescription=MCP servers run by mcp-runner (global cap)\n\n{}",
        properties::slice_section(limits)
    )
}

pub fn install(manager: Manager) -> Result<ExitCode, Failure> {
    let source = policy_source::locate(None);
    let policy = policy_source::load(&source).or_exit(exit::USAGE)?;
    let budget = policy
        .resolve(&ServerRequest { name: None, argv: &[] }, &HostMemory { physical_bytes: host::physical_memory() })
        .or_exit(exit::USAGE)?;
    let dir = unit_dir(manager, |k| std::env::var(k).ok()).or_exit(exit::RUNNER_FAILED)?;
    let path = dir.join(units::GLOBAL_SLICE);
    let body = unit_file(policy.origin(), &budget.global.limits);
    match std::fs::read_to_string(&path) {
        Ok(old) if old == body => {
            println!("{} is already installed and up to date", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        Ok(old) if !old.starts_with(HEADER) => {
            return Err(anyhow!("{} exists and was not written by mcp-runner; left alone", path.display()))
                .or_exit(exit::RUNNER_FAILED);
        }
        _ => {}
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .or_exit(exit::RUNNER_FAILED)?;
    write_atomic(&path, &body)
        .with_context(|| format!("cannot write {}", path.display()))
        .or_exit(exit::RUNNER_FAILED)?;
    println!("installed {}", path.display());
    print!("{}", properties::slice_section(&budget.global.limits));
    reload(manager);
    apply_to_loaded_slice(manager, &path, &budget.global.limits);
    Ok(ExitCode::SUCCESS)
}

pub fn uninstall(manager: Manager) -> Result<ExitCode, Failure> {
    let dir = unit_dir(manager, |k| std::env::var(k).ok()).or_exit(exit::RUNNER_FAILED)?;
    let path = dir.join(units::GLOBAL_SLICE);
    match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            println!("{} is not installed", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())).or_exit(exit::RUNNER_FAILED),
        Ok(text) if !text.starts_with(HEADER) => {
            return Err(anyhow!("{} was not written by mcp-runner; left alone", path.display()))
                .or_exit(exit::RUNNER_FAILED);
        }
        Ok(_) => {}
    }
    std::fs::remove_file(&path)
        .with_context(|| format!("cannot remove {}", path.display()))
        .or_exit(exit::RUNNER_FAILED)?;
    println!("removed {}", path.display());
    reload(manager);
    Ok(ExitCode::SUCCESS)
}

fn write_atomic(path: &Path, body: &str) -> io::Result<()> {
    let tmp = path.with_extension("slice.tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

fn systemctl(manager: Manager) -> std::process::Command {
    let mut cmd = std::process::Command::new("systemctl");
    if manager == Manager::User {
        cmd.arg("--user");
    }
    cmd
}

/// Asks the manager to reload its unit files, through systemctl, whose
/// timeout (twice systemd's default) leaves room for slow generators. (Our
/// own client once lost Reload replies here: systemd had not read the call,
/// which came in one read with the client's BEGIN; see
/// `dbus::Connection::authenticate`.) Without a reachable manager the file
/// is still in place; say how to finish by hand.
fn reload(manager: Manager) {
    let user = if manager == Manager::User { "--user " } else { "" };
    match systemctl(manager).arg("daemon-reload").status() {
        Ok(s) if s.success() => println!("systemd reloaded"),
        Ok(s) => eprintln!("mcp-runner: warn: systemctl {user}daemon-reload failed ({s}); run it yourself"),
        Err(e) => eprintln!("mcp-runner: warn: could not run systemctl ({e}); run `systemctl {user}daemon-reload`"),
    }
}

/// A transient mcp-runner.slice that a runner created before the install
/// takes precedence over the file until it stops (which needs every
/// server in it gone): give it the installed cap now, at runtime.
fn apply_to_loaded_slice(manager: Manager, file: &Path, limits: &mcp_runner_policy::Limits) {
    let Ok(out) = systemctl(manager).args(["show", "-P", "FragmentPath", units::GLOBAL_SLICE]).output() else {
        return;
    };
    let fragment = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if fragment.is_empty() || Path::new(&fragment) == file {
        return;
    }
    let mut cmd = systemctl(manager);
    cmd.args(["set-property", "--runtime", units::GLOBAL_SLICE]);
    for line in properties::slice_section(limits).lines().skip(1) {
        cmd.arg(line);
    }
    match cmd.status() {
        Ok(s) if s.success() => println!(
            "{} is running as a transient unit ({fragment}): the cap was applied to it now; the installed file \
             takes over when it stops",
            units::GLOBAL_SLICE
        ),
        _ => eprintln!(
            "mcp-runner: warn: {} is running as a transient unit ({fragment}); the installed cap takes effect \
             once it stops (no server running) or after a reboot",
            units::GLOBAL_SLICE
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_dirs() {
        let env = |m: &'static [(&'static str, &'static str)]| {
            move |k: &str| m.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(unit_dir(Manager::System, env(&[])).expect("system"), PathBuf::from("/etc/systemd/system"));
        assert_eq!(
            unit_dir(Manager::User, env(&[("HOME", "/home/u")])).expect("user"),
            PathBuf::from("/home/u/.config/systemd/user")
        );
        assert_eq!(
            unit_dir(Manager::User, env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/cfg")])).expect("user"),
            PathBuf::from("/cfg/systemd/user")
        );
        assert!(unit_dir(Manager::User, env(&[])).is_err());
    }

    #[test]
    fn file_starts_with_the_header_uninstall_looks_for() {
        let f = unit_file(
            "built-in defaults",
            &mcp_runner_policy::Limits { memory_max: Some(1 << 30), ..Default::default() },
        );
        assert!(f.starts_with(HEADER));
        assert!(f.contains("[Slice]\n"));
        assert!(f.contains("MemoryMax=1073741824\n"));
    }
}
