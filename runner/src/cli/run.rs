//! `mcp-runner run`: resolve the budget, pick the driver, spawn the server
//! with inherited stdio, supervise it until nothing of it is left.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use mcp_runner_policy::{DriverPref, Effective, Enforcement};

use super::args::{DriverArg, RunArgs};
use super::policy_source;
use super::{Failure, OrExit};
use crate::admission;
use crate::admission::decide::Refusal;
use crate::driver::enforcer::{Enforcer, Placement};
use crate::driver::levels::{self, Levels};
use crate::driver::select::Selection;
use crate::driver::{IMPLEMENTED, select};
use crate::exit::{self, Outcome};
use crate::fault;
use crate::host::HostFacts;
use crate::os::{
    self,
    spawn::{self, SpawnError, SpawnSpec},
};
use crate::privileges;
use crate::state::sweep::sweep;
use crate::state::{MARKER_VAR, RunnerRecord, StateDir, marker};
use crate::supervisor::{self, RecordKeeper, Timeouts};
use crate::tree::ProcessId;

pub fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let argv: Vec<String> = args.command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let facts = HostFacts::probe();
    let budget = policy_source::server_budget(
        args.name.as_deref(),
        args.policy.as_deref(),
        &args.command,
        facts.physical_memory,
    )
    .or_exit(exit::USAGE)?;
    // A shared server: this run relays to its pool instead of spawning.
    if let Some(shared) = super::share::try_relay(&args, &budget) {
        return shared;
    }

    let selection = choose_driver(&facts, &budget, args.driver)?;
    for p in &selection.passed_over {
        tracing::info!("not using {p}");
    }
    // What the server gives up of the runner's privileges: refused or
    // unresolvable before anything is registered or spawned.
    let plan = privileges::plan(&budget.server.privileges, &os::creds::facts()).or_exit(exit::REFUSED)?;
    for note in &plan.notes {
        tracing::warn!("{note}");
    }
    let creds = os::creds::resolve(&plan).or_exit(exit::USAGE)?;

    os::become_reaper().or_exit(exit::RUNNER_FAILED)?;
    let table = os::Procs::snapshot();
    let me = table
        .identity(std::process::id() as i32)
        .context("cannot read the runner's own process entry")
        .or_exit(exit::RUNNER_FAILED)?;
    let session = match &args.pool_instance {
        Some(_) => "shared".to_owned(),
        None => session_id(args.session, &table),
    };

    // The record is what lets `gc` clean up after a SIGKILLed runner and
    // what admission counts. A directory someone else could change is never
    // used; one that cannot be used refuses the server when the policy has
    // caps (they cannot be checked), and only without caps does the server
    // run without a record, with a warning.
    let state = match StateDir::locate() {
        Ok(dir) => Some(dir),
        Err(e) if e.is_unsafe() => return Err(anyhow!(e)).or_exit(exit::RUNNER_FAILED),
        Err(e) if admission::decide::Caps::from_budget(&budget).any() => {
            return Err(refuse(&Refusal::unavailable(e), args.name.as_deref(), &session));
        }
        Err(e) => {
            tracing::warn!("{e}; the policy sets no caps, so the server runs, but {}", admission::UNCHECKED);
            None
        }
    };
    if let Some(dir) = &state {
        for action in sweep(dir, &table, &|kind| levels::for_kind(kind, &facts, &budget)) {
            tracing::info!("{}", super::gc::describe(&action));
        }
    }

    // Register before anything is built: a refused server leaves nothing
    // behind, and the record is what later runners count.
    let record = RunnerRecord {
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
        pool: args.pool_instance.clone(),
    };
    if let Some(dir) = &state
        && let Err(refusal) =
            admission::admit(dir, &*levels::for_kind(selection.kind, &facts, &budget), &budget, &record)
    {
        return Err(refuse(&refusal, args.name.as_deref(), &session));
    }
    // From here on, every way out removes the record and what the driver
    // built, and gives the session's share back.
    let mut guard = Registered { keeper: state.map(|dir| RecordKeeper { dir, record }), enforcer: None, levels: None };

    fault::point("before-placement");
    let strict = args.driver.is_some_and(|d| d != DriverArg::Auto) || budget.global.driver != DriverPref::Auto;
    let placement = Placement { session: &session, name: args.name.as_deref(), runner: me };
    let enforcer = Enforcer::build(&selection, &facts, &budget, &placement, strict).map_err(|e| {
        let code = if e.kernel_required { exit::REFUSED } else { exit::RUNNER_FAILED };
        Failure { code, error: anyhow!("{e:#}") }
    })?;
    fault::point("after-placement");
    let levels = enforcer.levels(&facts, &budget);
    // The session's share, now that the driver has (re)written the session
    // cgroup's policy values and before the server can allocate anything.
    if let Some(k) = &guard.keeper {
        admission::shares::rebalance(&k.dir, &*levels, &budget, None);
    }
    let enforcer = guard.enforcer.insert(enforcer);
    guard.levels = Some((levels, budget.clone(), session.clone()));

    // The events are set up before the server exists: a signal to the
    // runner while it starts is taken, not lost (and on Linux the handled
    // signals are blocked from here on; the child's mask is reset).
    let mut events =
        os::PlatformEvents::new().context("cannot set up the event source").or_exit(exit::RUNNER_FAILED)?;
    let mut spec = SpawnSpec::new(args.command.clone(), environment(me));
    os::creds::apply(&creds, &mut spec);
    tracing::debug!("the server runs with {}", creds.describe());
    enforcer.driver().prepare(&mut spec).or_exit(exit::RUNNER_FAILED)?;
    let started = spawn::spawn(&spec).map_err(|e| spawn_failure(&args.command[0], e)).and_then(|mut child| {
        enforcer.driver().place(&child).or_exit(exit::RUNNER_FAILED)?;
        child.release().map_err(|e| spawn_failure(&args.command[0], e))?;
        Ok(child)
    });
    // The descriptors the spawn needed are not needed once the child exec'd.
    drop(spec);
    let child = started.inspect_err(|_| {
        // A child that failed before exec has exited; reap it before the
        // guard removes its cgroup.
        let _ = nix::sys::wait::waitpid(None, None);
    })?;
    let server = child.pid;
    fault::point("after-spawn");
    tracing::debug!(pid = server.as_raw(), "server started");
    let driver = enforcer.driver();
    tracing::info!("{}: {}", driver.kind().enforcement(), driver.describe_limits());

    if let Some(k) = guard.keeper.as_mut() {
        let rec = &mut k.record;
        rec.driver = enforcer.kind();
        rec.server = os::Procs::snapshot().identity(server.as_raw());
        rec.cgroup = enforcer.cgroup_path();
        rec.stats_cgroup = enforcer.stats_cgroup();
        (rec.memory_high, rec.memory_max, rec.pids_max) = enforcer.recorded_limits(&budget);
        if let Err(e) = k.dir.write(rec) {
            tracing::warn!("{e}");
        }
    }
    fault::point("after-record");

    let timeouts = Timeouts { grace: budget.server.grace, kill_timeout: budget.server.kill_timeout };
    let ended = supervisor::supervise(enforcer.driver(), server, timeouts, guard.keeper.as_mut(), &mut events)
        .or_exit(exit::RUNNER_FAILED)?;
    drop(guard);
    let outcome = Outcome::from_wait(ended.status, ended.breach);
    match outcome {
        Outcome::LimitKilled(b) => tracing::error!("server killed for exceeding a limit: {b}"),
        Outcome::Exited(c) => tracing::info!("server exited with code {c}"),
        Outcome::Signaled(s) => tracing::info!("server died of signal {s}"),
    }
    if let Some(reason) = ended.reason {
        tracing::debug!("the runner began the teardown: {reason}");
    }
    if ended.orphans_reaped > 0 {
        tracing::debug!("reaped {} orphans", ended.orphans_reaped);
    }
    Ok(outcome.into())
}

/// An admitted runner: its record, the driver once built, and the levels
/// to hand the session's share back to. Dropping it undoes all of that, on
/// every way out of `run`, in order: the driver's places first (the tree
/// is gone by then), then the record, then the shares of who is left.
struct Registered {
    keeper: Option<RecordKeeper>,
    enforcer: Option<Enforcer>,
    levels: Option<(Box<dyn Levels>, Effective, String)>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(e) = &self.enforcer {
            e.cleanup();
        }
        if let Some(k) = &self.keeper {
            k.dir.remove(k.record.runner);
            if let Some((levels, budget, session)) = &self.levels {
                admission::shares::rebalance(&k.dir, &**levels, budget, Some(session));
            }
        }
    }
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
pub(super) fn session_id(flag: Option<String>, table: &os::Procs) -> String {
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
