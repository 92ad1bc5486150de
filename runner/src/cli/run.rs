//! `mcp-runner run`: resolve the budget, pick the driver, spawn the server
//! with inherited stdio, supervise it until nothing of it is left.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use mcp_runner_policy::{DriverPref, Effective, Enforcement, HostMemory, ServerRequest};
use nix::sys::prctl;

use super::args::{DriverArg, RunArgs};
use super::policy_source;
use super::{Failure, OrExit};
use crate::admission;
use crate::driver::cgroupfs::Cgroupfs;
use crate::driver::select::Selection;
use crate::driver::systemd::Systemd;
use crate::driver::userland::Userland;
use crate::driver::{Driver, DriverError, DriverKind, IMPLEMENTED, select};
use crate::exit::{self, Outcome};
use crate::host::HostFacts;
use crate::state::sweep::sweep;
use crate::state::{MARKER_VAR, RunnerRecord, StateDir, marker};
use crate::supervisor::{self, RecordKeeper, Timeouts, handled_signals};
use crate::sys::spawn::{self, SpawnError, SpawnSpec};
use crate::tree::ProcessId;
use crate::tree::procfs::Procfs;
use crate::tree::verdict::TreeLimits;

pub fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let argv: Vec<String> = args.command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let facts = HostFacts::probe();
    let source = policy_source::locate(args.policy.as_deref());
    let policy = policy_source::load(&source).or_exit(exit::USAGE)?;
    let budget = policy
        .resolve(
            &ServerRequest { name: args.name.as_deref(), argv: &argv },
            &HostMemory { physical_bytes: facts.physical_memory },
        )
        .or_exit(exit::USAGE)?;

    let selection = choose_driver(&facts, &budget, args.driver)?;
    for p in &selection.passed_over {
        tracing::info!("not using {p}");
    }

    prctl::set_child_subreaper(true)
        .map_err(|e| anyhow!("PR_SET_CHILD_SUBREAPER failed ({e}): Linux 3.4 or newer is needed to reap orphans"))
        .or_exit(exit::RUNNER_FAILED)?;
    let table = Procfs::snapshot();
    let me = table
        .identity(std::process::id() as i32)
        .context("cannot read /proc/self/stat")
        .or_exit(exit::RUNNER_FAILED)?;
    let session = session_id(args.session, &table);

    // The record is what lets `gc` clean up after a SIGKILLed runner; a
    // server still runs without it, with a warning.
    let state = StateDir::locate().map_err(|e| tracing::warn!("{e}; crash cleanup by `mcp-runner gc` is off")).ok();
    if let Some(dir) = &state {
        for action in sweep(dir, &table) {
            tracing::info!("{}", super::gc::describe(&action));
        }
    }

    // Register before anything is built: a refused server leaves nothing
    // behind, and the record is what later runners count.
    let mut record = RunnerRecord {
        version: 1,
        runner: me,
        session: session.clone(),
        name: args.name.clone(),
        command: argv,
        driver: selection.kind,
        started: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        server: None,
        members: Vec::new(),
        cgroup: None,
        weight: budget.server.weight,
        stats_cgroup: None,
        memory_high: budget.server.limits.memory_high,
        memory_max: budget.server.limits.memory_max,
        pids_max: budget.server.limits.pids_max,
    };
    if let Some(dir) = &state
        && let Err(refusal) = admission::admit(dir, selection.kind, &facts, &budget, &record)
    {
        return Err(refuse(&refusal, args.name.as_deref(), &session));
    }

    let strict = args.driver.is_some_and(|d| d != DriverArg::Auto) || budget.global.driver != DriverPref::Auto;
    let built = build_enforcer(&selection, &facts, &budget, &session, args.name.as_deref(), me, strict);
    let mut enforcer = match built {
        Ok(e) => e,
        Err(f) => {
            if let Some(dir) = &state {
                dir.remove(me);
            }
            return Err(f);
        }
    };

    // The session's share, now that the driver has (re)written the session
    // cgroup's policy values and before the server can allocate anything.
    if let Some(dir) = &state {
        admission::shares::rebalance(dir, enforcer.kind(), &facts, &budget, None);
    }

    // Blocked from here on and taken through the signalfd; the spawner
    // resets the child's mask before exec.
    handled_signals().thread_block().context("cannot block signals").or_exit(exit::RUNNER_FAILED)?;

    let mut spec = SpawnSpec {
        argv: args.command.clone(),
        env: environment(me),
        die_with_parent: true,
        no_core_dumps: true,
        ..SpawnSpec::default()
    };
    if let Err(e) = enforcer.driver().prepare(&mut spec) {
        enforcer.cleanup();
        if let Some(dir) = &state {
            dir.remove(me);
        }
        return Err(e).or_exit(exit::RUNNER_FAILED);
    }
    let started = spawn::spawn(&spec).map_err(|e| spawn_failure(&args.command[0], e)).and_then(|mut child| {
        enforcer.driver().place(&child).or_exit(exit::RUNNER_FAILED)?;
        child.release().map_err(|e| spawn_failure(&args.command[0], e))?;
        Ok(child)
    });
    // The cgroup descriptors are not needed once the child has exec'd.
    drop(spec);
    let child = match started {
        Ok(c) => c,
        Err(f) => {
            // A child that failed before exec has exited; reap it before
            // removing its cgroup.
            let _ = nix::sys::wait::waitpid(None, None);
            enforcer.cleanup();
            if let Some(dir) = &state {
                dir.remove(me);
            }
            return Err(f);
        }
    };
    let server = child.pid;
    tracing::debug!(pid = server.as_raw(), born_in_cgroup = child.born_in_cgroup, "server started");
    let driver = enforcer.driver();
    tracing::info!("{}: {}", driver.kind().enforcement(), driver.describe_limits());

    record.driver = enforcer.driver().kind();
    record.server = Procfs::snapshot().identity(server.as_raw());
    record.cgroup = enforcer.cgroup_path();
    record.stats_cgroup = enforcer.stats_cgroup();
    if record.driver == DriverKind::Userland {
        // The userland driver holds the tree to the tightest level.
        let t = budget.tightest();
        (record.memory_high, record.memory_max, record.pids_max) = (t.memory_high, t.memory_max, t.pids_max);
    }
    let record_kind = record.driver;
    let mut keeper = state.map(|dir| {
        if let Err(e) = dir.write(&record) {
            tracing::warn!("{e}");
        }
        RecordKeeper { dir, record }
    });

    let timeouts = Timeouts { grace: budget.server.grace, kill_timeout: budget.server.kill_timeout };
    let result = supervisor::supervise(enforcer.driver(), server, timeouts, keeper.as_mut());
    enforcer.cleanup();
    if let Some(k) = &keeper {
        k.dir.remove(me);
        admission::shares::rebalance(&k.dir, record_kind, &facts, &budget, Some(&session));
    }
    let ended = result.or_exit(exit::RUNNER_FAILED)?;
    let outcome = Outcome::from_wait(ended.status, ended.breach);
    match outcome {
        Outcome::LimitKilled(b) => tracing::error!("server killed for exceeding a limit: {b}"),
        Outcome::Exited(c) => tracing::info!("server exited with code {c}"),
        Outcome::Signaled(s) => tracing::info!("server died of signal {s}"),
    }
    if ended.orphans_reaped > 0 {
        tracing::debug!("reaped {} orphans", ended.orphans_reaped);
    }
    Ok(outcome.into())
}

/// The driver for this server, or a refusal when the policy requires kernel
/// enforcement and none can run.
fn choose_driver(facts: &HostFacts, budget: &Effective, flag: Option<DriverArg>) -> Result<Selection, Failure> {
    let pref = match flag {
        None => budget.global.driver,
        Some(DriverArg::Auto) => DriverPref::Auto,
        Some(DriverArg::Systemd) => DriverPref::Systemd,
        Some(DriverArg::Cgroupfs) => DriverPref::Cgroupfs,
        Some(DriverArg::Userland) => DriverPref::Userland,
    };
    let selection = select::select(facts, pref, IMPLEMENTED).or_exit(exit::REFUSED)?;
    if budget.server.require == Enforcement::Kernel && !selection.kind.is_kernel() {
        let why = if selection.passed_over.is_empty() {
            "the userland driver was forced".to_string()
        } else {
            selection.passed_over.join("; ")
        };
        return Err(anyhow!(
            "refused: the policy requires kernel enforcement for this server (require = \"kernel\"), \
             but no kernel driver can run here ({why}); `mcp-runner doctor` shows how to fix that"
        ))
        .or_exit(exit::REFUSED);
    }
    Ok(selection)
}

/// The userland driver watches one tree, so the tightest limit of the three
/// levels is the one it can hold that tree to.
fn tree_limits(budget: &Effective) -> TreeLimits {
    let l = budget.tightest();
    TreeLimits {
        memory_high: l.memory_high,
        memory_max: l.memory_max,
        pids_max: l.pids_max,
        throttle_timeout: budget.server.throttle_timeout,
    }
}

/// The session: `--session`, else the client process (pid and start time,
/// so two clients that reuse a pid are two sessions).
fn session_id(flag: Option<String>, table: &Procfs) -> String {
    flag.unwrap_or_else(|| {
        let ppid = nix::unistd::getppid().as_raw();
        match table.identity(ppid) {
            Some(ProcessId { pid, start }) => format!("client-{pid}-{start}"),
            None => format!("client-{ppid}"),
        }
    })
}

/// Maps a failed spawn to the shell's exit codes.
fn spawn_failure(program: &OsString, e: SpawnError) -> Failure {
    let code = if e.is_not_found() {
        exit::NOT_FOUND
    } else if e.is_not_executable() {
        exit::CANNOT_EXECUTE
    } else {
        exit::RUNNER_FAILED
    };
    Failure { code, error: anyhow!("cannot run `{}`: {e}", program.to_string_lossy()) }
}

/// The server's environment: the runner's own, plus the marker that lets
/// the crash sweep find the server's processes.
fn environment(me: ProcessId) -> Vec<OsString> {
    let mut env: Vec<OsString> = std::env::vars_os()
        .filter(|(k, _)| k != MARKER_VAR)
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect();
    env.push(OsString::from(format!("{MARKER_VAR}={}", marker(me))));
    env
}

/// Builds the selected driver. With `auto`, a kernel driver that fails to
/// set up hands over to the next one (systemd, cgroupfs, userland) with a
/// warning; a forced driver fails instead, and `require = "kernel"` never
/// ends up in userland.
fn build_enforcer(
    selection: &Selection,
    facts: &HostFacts,
    budget: &Effective,
    session: &str,
    name: Option<&str>,
    me: ProcessId,
    strict: bool,
) -> Result<Enforcer, Failure> {
    let kernel_required = budget.server.require == Enforcement::Kernel;
    let mut chain = vec![selection.kind];
    if !strict {
        if selection.kind == DriverKind::Systemd && select::cgroupfs_unusable(facts).is_none() {
            chain.push(DriverKind::Cgroupfs);
        }
        if !kernel_required && selection.kind != DriverKind::Userland {
            chain.push(DriverKind::Userland);
        }
    }
    let mut last = None;
    for kind in chain {
        if let Some(e) = &last {
            tracing::warn!("{e}; trying the {kind} driver");
        }
        let built = match kind {
            DriverKind::Systemd => Systemd::setup(facts, budget, session, name, me)
                .map(|d| Enforcer::Systemd(Box::new(d)))
                .map_err(DriverError::from),
            DriverKind::Cgroupfs => {
                Cgroupfs::setup(facts, budget, session, name, me).map(Enforcer::Cgroupfs).map_err(DriverError::from)
            }
            DriverKind::Userland => {
                Ok(Enforcer::Userland(Userland::new(tree_limits(budget), budget.server.sample_interval)))
            }
        };
        match built {
            Ok(e) => return Ok(e),
            Err(e) => last = Some(e),
        }
    }
    let e = last.map_or_else(|| anyhow!("no driver could be set up"), anyhow::Error::from);
    let code = if kernel_required { exit::REFUSED } else { exit::RUNNER_FAILED };
    let prefix = if kernel_required { "refused: kernel enforcement is required, but " } else { "" };
    Err(anyhow!("{prefix}{e:#}")).or_exit(code)
}

/// The driver this run uses, with what must be undone afterwards.
enum Enforcer {
    Userland(Userland),
    Cgroupfs(Cgroupfs),
    /// Boxed: it holds a D-Bus connection until the server is placed.
    Systemd(Box<Systemd>),
}

impl Enforcer {
    fn driver(&mut self) -> &mut dyn Driver {
        match self {
            Enforcer::Userland(d) => d,
            Enforcer::Cgroupfs(d) => d,
            Enforcer::Systemd(d) => d.as_mut(),
        }
    }

    fn kind(&self) -> DriverKind {
        match self {
            Enforcer::Userland(_) => DriverKind::Userland,
            Enforcer::Cgroupfs(_) => DriverKind::Cgroupfs,
            Enforcer::Systemd(_) => DriverKind::Systemd,
        }
    }

    /// The server's cgroup, whoever made it: status reads its figures.
    fn stats_cgroup(&self) -> Option<std::path::PathBuf> {
        match self {
            Enforcer::Userland(_) => None,
            Enforcer::Cgroupfs(d) => Some(d.leaf().path().to_path_buf()),
            Enforcer::Systemd(d) => d.cgroup(),
        }
    }

    /// The cgroup the crash sweep may kill and remove: only one the runner
    /// made itself. systemd's scopes are systemd's to clean up (BindsTo).
    fn cgroup_path(&self) -> Option<std::path::PathBuf> {
        match self {
            Enforcer::Userland(_) | Enforcer::Systemd(_) => None,
            Enforcer::Cgroupfs(d) => Some(d.leaf().path().to_path_buf()),
        }
    }

    /// Removes what the driver built; runs once the tree is gone.
    fn cleanup(&self) {
        if let Enforcer::Cgroupfs(d) = self {
            d.remove();
        }
    }
}

/// A refused start: the client's first request gets a JSON-RPC error
/// naming the cap (so the client can show it), stderr says the same, and
/// the exit code is 122. Nothing was spawned.
fn refuse(refusal: &admission::decide::Refusal, name: Option<&str>, session: &str) -> Failure {
    // The client sends `initialize` right after starting us; give it a
    // moment, but never hang the client on our account.
    let answered = admission::jsonrpc::answer_first_request(refusal, name, session, Duration::from_secs(10));
    tracing::debug!(answered, "refusal answered on stdout");
    Failure { code: exit::REFUSED, error: anyhow!("refused: {refusal}") }
}
