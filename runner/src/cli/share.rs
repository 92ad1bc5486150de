//! The command line's side of sharing: `run` of a shared server becomes a
//! relay to the pool host (starting one if needed), and the hidden
//! `pool-host` command is that host.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::process::{Command, ExitCode, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use clap::ValueEnum;
use mcp_runner_policy::{Effective, Share};

use super::args::{PoolHostArgs, RunArgs};
use super::{Failure, OrExit, policy_source, run};
use crate::exit;
use crate::host::HostFacts;
use crate::os;
use crate::pool::files::PoolFiles;
use crate::pool::host::{self, Claimed, HostConfig, Launch};
use crate::pool::key::{KeyParts, PoolKey};
use crate::pool::mux::Sharing;
use crate::pool::relay::{self, HostCommand, RelayEnd};
use crate::pool::wire::{self, Hello};
use crate::state::StateDir;

/// Variables that concern the runner, not the server: they do not split a
/// pool (the shared server runs in session "shared" whatever the relay's).
const NOT_IN_KEY: [&str; 2] = ["MCP_RUNNER_SESSION", "MCP_RUNNER_LOG"];

/// `run` of a server the policy shares: relays to its pool and returns the
/// exit code, or `None` when this run must get its own server after all
/// (not shared, an instance of a pool itself, no state directory, or a
/// host that will not take it), saying why.
pub fn try_relay(args: &RunArgs, budget: &Effective) -> Option<Result<ExitCode, Failure>> {
    if budget.server.share == Share::Never || args.pool_instance.is_some() {
        return None;
    }
    let dir = match StateDir::locate() {
        Ok(d) => d,
        Err(e) if e.is_unsafe() => return Some(Err(anyhow!(e)).or_exit(exit::RUNNER_FAILED)),
        Err(e) => {
            tracing::warn!("cannot share this server ({e}): it runs unshared");
            return None;
        }
    };
    relay_to_pool(args, budget, &dir).transpose()
}

/// The relay's exit code; `None` when the pool's host refused this run
/// (its key differs behind the same id, or the hello is too large): the
/// run then gets its own server.
fn relay_to_pool(args: &RunArgs, budget: &Effective, dir: &StateDir) -> Result<Option<ExitCode>, Failure> {
    let key = pool_key(args, budget).or_exit(exit::RUNNER_FAILED)?;
    // The client's end is the session's end, even if its pipes live on.
    let client = os::watch_client().or_exit(exit::RUNNER_FAILED)?;
    let table = os::Procs::snapshot();
    let me = table
        .identity(std::process::id() as i32)
        .context("cannot read the runner's own process entry")
        .or_exit(exit::RUNNER_FAILED)?;
    let session = run::session_id(args.session.clone(), &table);
    let since = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let hello = Hello { version: wire::VERSION, key: wire::hex(key.as_bytes()), session, runner: me, since };
    let program = own_exe()?;
    let mut host_args = vec![OsString::from("pool-host")];
    host_args.extend(forwarded_with_command(args));
    let stream = match relay::connect(dir, &key, &hello, &HostCommand { program: &program, args: host_args }) {
        Ok(s) => s,
        Err(e) if e.is_refusal() => {
            tracing::warn!("{e}: this server runs unshared");
            return Ok(None);
        }
        Err(e) => return Err(anyhow!(e)).or_exit(exit::RUNNER_FAILED),
    };
    tracing::info!(
        "shared server: relaying to pool {} (log: {})",
        key.id(),
        dir.path().join(PoolFiles::new(&key.id()).log()).display()
    );
    match relay::relay(stream, client.as_ref().map(AsFd::as_fd)).or_exit(exit::RUNNER_FAILED)? {
        RelayEnd::ClientClosed => Ok(Some(ExitCode::SUCCESS)),
        RelayEnd::HostClosed => Err(anyhow!(
            "the shared server's pool host closed the connection: the server ended or its host died (log: {})",
            dir.path().join(PoolFiles::new(&key.id()).log()).display()
        ))
        .or_exit(exit::RUNNER_FAILED),
    }
}

/// The options a relay passes on to the host and the host to its
/// instances: the ones that choose the server and its budget.
fn forwarded(args: &RunArgs) -> Vec<OsString> {
    let mut out = Vec::new();
    if let Some(name) = &args.name {
        out.push(OsString::from(format!("--name={name}")));
    }
    if let Some(policy) = &args.policy {
        out.push("--policy".into());
        out.push(policy.clone().into_os_string());
    }
    if let Some(d) = driver_name(args) {
        out.push("--driver".into());
        out.push(d.into());
    }
    out
}

/// [`forwarded`], then `--` and the server's command.
fn forwarded_with_command(args: &RunArgs) -> Vec<OsString> {
    let mut out = forwarded(args);
    out.push("--".into());
    out.extend(args.command.iter().cloned());
    out
}

/// `--driver` as the user wrote it.
fn driver_name(args: &RunArgs) -> Option<String> {
    args.driver.and_then(|d| d.to_possible_value()).map(|v| v.get_name().to_owned())
}

/// This runner's own executable, for the host and its instances.
fn own_exe() -> Result<std::path::PathBuf, Failure> {
    std::env::current_exe().context("cannot find the runner's own executable").or_exit(exit::RUNNER_FAILED)
}

/// The pool key of this run: see `pool::key`.
fn pool_key(args: &RunArgs, budget: &Effective) -> anyhow::Result<PoolKey> {
    let env: Vec<(OsString, OsString)> =
        std::env::vars_os().filter(|(k, _)| !NOT_IN_KEY.iter().any(|n| k == n)).collect();
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    Ok(PoolKey::new(&KeyParts {
        argv: &args.command,
        env: &env,
        cwd: &cwd,
        uid: nix::unistd::Uid::effective().as_raw(),
        gid: nix::unistd::Gid::effective().as_raw(),
        budget,
        driver: driver_name(args).as_deref(),
    }))
}

/// `mcp-runner pool-host`: the first stage starts the detached second
/// stage and exits; the second stage claims the pool and serves it. Its
/// stdout is the starting relay's pipe until it listens: it says "ready",
/// "busy" (another host has the pool) or why it cannot, then lets go.
pub fn pool_host(a: PoolHostArgs) -> Result<ExitCode, Failure> {
    // Whatever the first relay inherited from its client without
    // close-on-exec must not live on in the pool, nor reach its servers.
    os::cloexec_inherited();
    if !a.detached {
        let program = own_exe()?;
        let mut args = vec![OsString::from("pool-host"), OsString::from("--detached")];
        args.extend(forwarded_with_command(&a.run));
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the pool host")
            .or_exit(exit::RUNNER_FAILED)?;
        return Ok(ExitCode::SUCCESS);
    }
    match serve(&a.run) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(f) => {
            // Before "ready", the starting relay reads this.
            say(&format!("{:#}", f.error));
            Err(f)
        }
    }
}

fn serve(args: &RunArgs) -> Result<(), Failure> {
    // A session of its own: no signal meant for the first client's group
    // or terminal reaches the pool.
    let _ = nix::unistd::setsid();
    let facts = HostFacts::probe();
    let budget = policy_source::server_budget(
        args.name.as_deref(),
        args.policy.as_deref(),
        &args.command,
        facts.physical_memory,
    )
    .or_exit(exit::USAGE)?;
    let key = pool_key(args, &budget).or_exit(exit::RUNNER_FAILED)?;
    let dir = StateDir::locate().or_exit(exit::RUNNER_FAILED)?;
    let files = PoolFiles::new(&key.id());
    let (listener, _lock) = match host::claim(&dir, &files).or_exit(exit::RUNNER_FAILED)? {
        Claimed::Busy => {
            say("busy");
            return Ok(());
        }
        Claimed::Listening { listener, _lock } => (listener, _lock),
    };
    // Opened once the pool is ours: a host that finds the pool busy must
    // not touch the running host's log. It keeps the last runs (the relay's
    // errors point to it) up to 1 MiB.
    let log = dir.open_log(&files.log(), 1 << 20).or_exit(exit::RUNNER_FAILED)?;
    nix::unistd::dup2_stderr(log.as_fd()).context("cannot log to the pool's log").or_exit(exit::RUNNER_FAILED)?;
    say("ready");
    let null = std::fs::File::options().read(true).write(true).open("/dev/null").or_exit(exit::RUNNER_FAILED)?;
    nix::unistd::dup2_stdout(null.as_fd()).context("cannot let go of the relay's pipe").or_exit(exit::RUNNER_FAILED)?;
    let me = os::Procs::snapshot()
        .identity(std::process::id() as i32)
        .context("cannot read the host's own process entry")
        .or_exit(exit::RUNNER_FAILED)?;
    let program = own_exe()?;
    let mut run_args = vec![OsString::from("run"), OsString::from("--session"), OsString::from("shared")];
    run_args.extend(forwarded(args));
    let sharing = if budget.server.share == Share::Auto { Sharing::Auto } else { Sharing::Always };
    tracing::info!(
        "pool {} host {} serving `{}`",
        key.id(),
        me.pid,
        args.command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    );
    let cfg = HostConfig {
        key,
        sharing,
        idle_timeout: budget.server.idle_timeout,
        grace: budget.server.grace,
        launch: Launch { program, run_args, command: args.command.clone() },
        name: args.name.clone(),
        me,
    };
    host::serve(&dir, listener, cfg).context("the pool host failed").or_exit(exit::RUNNER_FAILED)
}

/// One line on stdout, raw (the relay waits for it).
fn say(line: &str) {
    let out = std::io::stdout();
    let _ = nix::unistd::write(out.as_fd(), format!("{line}\n").as_bytes());
}
