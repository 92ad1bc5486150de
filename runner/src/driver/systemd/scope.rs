//! The systemd driver's per-server part: the transient scope, its limits,
//! the gate, the watch on its cgroup.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Duration;

use mcp_runner_policy::{Effective, Limits};

use super::dbus::systemd as manager;
use super::dbus::{Connection, DbusError, PropValue};
use super::properties;
use super::units;
use crate::cgroup::fs::{CgroupDir, CgroupIoError};
use crate::driver::cgroupfs::watch::LeafWatch;
use crate::driver::{Driver, DriverError, DriverKind};
use crate::host::{HostFacts, cgroup};
use crate::os::kill::signal_descendants;
use crate::sys::Signal;
use crate::sys::spawn::{Child, SpawnSpec};
use crate::tree::ProcessId;
use crate::tree::verdict::Verdict;

const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
/// Manager calls answer in milliseconds on real machines and in a few
/// seconds in the emulated test guest; a hung manager must not hold a
/// client's server start for long.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("systemd manager: {0}")]
    Dbus(#[from] DbusError),
    #[error("systemd could not start {unit}: the job ended with \"{result}\"")]
    Job { unit: String, result: String },
    #[error("no systemd manager socket for this user ($XDG_RUNTIME_DIR is not set)")]
    NoRuntimeDir,
    #[error("cannot find the cgroup of the server's scope: {0}")]
    Cgroup(String),
    #[error(transparent)]
    Io(#[from] CgroupIoError),
}

/// systemd's private socket: peer to peer with the manager, no bus daemon
/// needed (systemctl uses it the same way).
pub fn manager_socket(euid: u32) -> Result<PathBuf, SystemdError> {
    if euid == 0 {
        return Ok(PathBuf::from("/run/systemd/private"));
    }
    let dir = std::env::var_os("XDG_RUNTIME_DIR").ok_or(SystemdError::NoRuntimeDir)?;
    Ok(PathBuf::from(dir).join("systemd/private"))
}

/// Connects to the manager. No `Subscribe`: on the private socket systemd
/// sends every signal (JobRemoved included) to every connection anyway.
/// (A Subscribe once went unanswered in the guest after a daemon-reload:
/// the first call of a connection, read by systemd together with the
/// client's BEGIN, which `Connection::authenticate` no longer allows.)
pub fn connect(euid: u32) -> Result<Connection, SystemdError> {
    Ok(Connection::connect(manager_socket(euid)?, CALL_TIMEOUT)?)
}

/// Starts a transient unit and waits for its job. `Ok(false)` if a unit of
/// that name already exists (an installed slice, or another runner's).
fn start(conn: &mut Connection, unit: &str, props: &[(&str, PropValue)]) -> Result<bool, SystemdError> {
    let job = match manager::start_transient_unit(conn, unit, "fail", props, CALL_TIMEOUT) {
        Ok(job) => job,
        Err(DbusError::Remote { name, .. }) if name == UNIT_EXISTS => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    match manager::wait_job(conn, &job, CALL_TIMEOUT)?.as_str() {
        "done" => Ok(true),
        other => Err(SystemdError::Job { unit: unit.to_string(), result: other.to_string() }),
    }
}

fn slice_props(description: &str, limits: &Limits) -> Vec<(&'static str, PropValue)> {
    let mut props = vec![("Description", PropValue::Str(description.to_string()))];
    props.extend(properties::limit_properties(limits));
    props
}

/// One server's units and, once placed, its cgroup under watch.
pub struct Systemd {
    /// Open only until the server is placed: systemd sends every signal to
    /// every private connection, and an idle runner must not make it queue
    /// them for hours.
    conn: Option<Connection>,
    mount: PathBuf,
    session_slice: String,
    runner_scope: String,
    server_scope: String,
    limits: Limits,
    session_memory_max: Option<u64>,
    throttle_timeout: Option<Duration>,
    kill_timeout: Duration,
    interval: Duration,
    runner: ProcessId,
    watch: Option<LeafWatch>,
}

impl Systemd {
    /// Ensures the global and session slices and moves the runner into its
    /// own scope; the server's scope comes with [`Driver::place`].
    pub fn setup(
        facts: &HostFacts,
        budget: &Effective,
        session: &str,
        name: Option<&str>,
        runner: ProcessId,
    ) -> Result<Systemd, SystemdError> {
        let mount = facts.cgroup2_mount.clone().ok_or_else(|| SystemdError::Cgroup("no cgroup2 mount".into()))?;
        let mut conn = connect(facts.euid)?;
        let session_slice = units::session_slice(session);
        if start(&mut conn, units::GLOBAL_SLICE, &slice_props("MCP servers (mcp-runner)", &budget.global.limits))? {
            tracing::info!("created {} with the policy's global cap", units::GLOBAL_SLICE);
        }
        start(&mut conn, &session_slice, &slice_props("MCP servers of one session", &budget.session.limits))?;
        let runner_scope = units::runner_scope(runner);
        let me = u32::try_from(runner.pid).map_err(|_| SystemdError::Cgroup("negative pid".into()))?;
        start(
            &mut conn,
            &runner_scope,
            &[
                ("Description", PropValue::Str("mcp-runner supervisor".into())),
                ("PIDs", PropValue::U32s(vec![me])),
                ("CollectMode", PropValue::Str("inactive-or-failed".into())),
            ],
        )?;
        Ok(Systemd {
            conn: Some(conn),
            mount,
            session_slice,
            runner_scope,
            server_scope: units::server_scope(name, runner),
            limits: budget.server.limits.clone(),
            session_memory_max: budget.session.limits.memory_max,
            throttle_timeout: budget.server.throttle_timeout,
            kill_timeout: budget.server.kill_timeout,
            interval: budget.server.sample_interval,
            runner,
            watch: None,
        })
    }

    /// The server scope's cgroup directory.
    pub fn cgroup(&self) -> Option<PathBuf> {
        self.watch.as_ref().map(|w| w.leaf().path().to_path_buf())
    }

    fn place_server(&mut self, pid: u32) -> Result<(), SystemdError> {
        let mut conn = self.conn.take().ok_or_else(|| SystemdError::Cgroup("already placed".into()))?;
        let mut props = vec![
            ("Description", PropValue::Str(format!("MCP server ({})", self.server_scope))),
            ("PIDs", PropValue::U32s(vec![pid])),
            ("Slice", PropValue::Str(self.session_slice.clone())),
            ("BindsTo", PropValue::Strs(vec![self.runner_scope.clone()])),
            ("After", PropValue::Strs(vec![self.runner_scope.clone()])),
            ("CollectMode", PropValue::Str("inactive-or-failed".into())),
            ("TimeoutStopUSec", PropValue::U64(self.kill_timeout.as_micros().min(u64::MAX as u128) as u64)),
        ];
        props.extend(properties::limit_properties(&self.limits));
        start(&mut conn, &self.server_scope, &props)?;
        drop(conn);
        let text =
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|e| SystemdError::Cgroup(e.to_string()))?;
        let path = cgroup::parse_proc_cgroup(&text).ok_or_else(|| SystemdError::Cgroup(text.clone()))?;
        let leaf = CgroupDir::new(cgroup::join(&self.mount, &path));
        let session = leaf.path().parent().map(CgroupDir::new).ok_or_else(|| SystemdError::Cgroup(path.clone()))?;
        self.watch =
            Some(LeafWatch::new(leaf, session, self.limits.clone(), self.session_memory_max, self.throttle_timeout)?);
        Ok(())
    }
}

impl Driver for Systemd {
    fn kind(&self) -> DriverKind {
        DriverKind::Systemd
    }

    fn prepare(&mut self, spec: &mut SpawnSpec) -> Result<(), DriverError> {
        spec.gated = true;
        Ok(())
    }

    fn place(&mut self, child: &Child) -> Result<(), DriverError> {
        let pid = u32::try_from(child.pid.as_raw()).map_err(|_| SystemdError::Cgroup("negative pid".into()))?;
        Ok(self.place_server(pid)?)
    }

    fn sample_interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn event_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.watch.iter().map(|w| w.event_fd()).collect()
    }

    fn check(&mut self, now: Duration) -> Verdict {
        self.watch.as_mut().map_or(Verdict::Within, |w| w.check(now))
    }

    fn signal_all(&mut self, signal: Signal) -> usize {
        // systemd owns the scope's cgroup (no cgroup.kill from us); every
        // process of it is the runner's descendant, and the pidfd walk
        // reaches them all.
        signal_descendants(self.runner.pid, signal)
    }

    fn members(&self) -> &[ProcessId] {
        self.watch.as_ref().map_or(&[], |w| w.members())
    }

    fn describe_limits(&self) -> String {
        let limits = self.watch.as_ref().map_or_else(|| "(not placed yet)".to_string(), |w| w.describe());
        format!("{}, unit {} in {}", limits, self.server_scope, self.session_slice)
    }
}
