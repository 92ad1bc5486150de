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
use crate::driver::enforcer::{Enforcer, Placement};
use crate::driver::select::Selection;
use crate::driver::{IMPLEMENTED, levels, select};
use crate::exit::{self, Outcome};
use crate::host::HostFacts;
use crate::state::sweep::sweep;
use crate::state::{MARKER_VAR, RunnerRecord, StateDir, marker};
use crate::supervisor::{self, RecordKeeper, Timeouts, handled_signals};
use crate::sys::spawn::{self, SpawnError, SpawnSpec};
use crate::tree::ProcessId;
use crate::tree::procfs::Procfs;

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
        for action in sweep(dir, &table, &|kind| levels::for_kind(kind, &facts, &budget)) {
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
        && let Err(refusal) =
            admission::admit(dir, &*levels::for_kind(selection.kind, &facts, &budget), &budget, &record)
    {
        return Err(refuse(&refusal, args.name.as_deref(), &session));
    }

    let strict = args.driver.is_some_and(|d| d != DriverArg::Auto) || budget.global.driver != DriverPref::Auto;
    let placement = Placement { session: &session, name: args.name.as_deref(), runner: me };
    let mut enforcer = match Enforcer::build(&selection, &facts, &budget, &placement, strict) {
        Ok(e) => e,
        Err(e) => {
            if let Some(dir) = &state {
                dir.remove(me);
            }
            let code = if e.kernel_required { exit::REFUSED } else { exit::RUNNER_FAILED };
            return Err(anyhow!("{e:#}")).or_exit(code);
        }
    };
    let levels = enforcer.levels(&facts, &budget);

    // The session's share, now that the driver has (re)written the session
    // cgroup's policy values and before the server can allocate anything.
    if let Some(dir) = &state {
        admission::shares::rebalance(dir, &*levels, &budget, None);
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
    (record.memory_high, record.memory_max, record.pids_max) = enforcer.recorded_limits(&budget);
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
        admission::shares::rebalance(&k.dir, &*levels, &budget, Some(&session));
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
