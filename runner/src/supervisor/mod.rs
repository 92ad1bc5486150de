//! The supervision loop, shaped like tini's: wait for one event (a signal, a
//! session hang-up, a deadline), act on it, reap, repeat until the runner
//! has no child left.
//!
//! Everything runs on the main thread, which is also the thread that forked
//! the server: the parent-death signal fires when the forking *thread* exits,
//! so the runner has no other threads.

pub mod events;
pub mod machine;
pub mod reaper;
pub mod terminate;

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::WaitStatus;

use crate::driver::Driver;
use crate::state::{RunnerRecord, StateDir};
use crate::sys::Pid;
use crate::tree::verdict::Breach;
use events::{Event, EventSource};
use machine::Supervision;
use reaper::{Children, Reaper};
use terminate::CloseReason;

/// The signals the runner takes through its signalfd. They are blocked
/// before the server is spawned; the child's mask is reset before exec.
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set
}

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("failed to wait for events: {0}")]
    Events(std::io::Error),
    #[error("waitpid failed: {0}")]
    Wait(Errno),
    #[error("the server's exit status was lost (no child left, none recorded)")]
    StatusLost,
}

/// How supervision ended.
#[derive(Debug)]
pub struct Ended {
    pub status: WaitStatus,
    /// The limit the tree was killed for, if any.
    pub breach: Option<Breach>,
    /// Why teardown began, if the runner started it.
    pub reason: Option<CloseReason>,
    pub orphans_reaped: u64,
}

/// Timing of the teardown stages (from the policy).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub grace: Duration,
    pub kill_timeout: Duration,
}

/// Keeps the runner record's member list current.
pub struct RecordKeeper {
    pub dir: StateDir,
    pub record: RunnerRecord,
}

/// Supervises `server` and its tree until nothing of it is left, shaped
/// like tini's loop: reap, decide, wait for one event, repeat.
pub fn supervise(
    driver: &mut dyn Driver,
    server: Pid,
    timeouts: Timeouts,
    mut keeper: Option<&mut RecordKeeper>,
    events: &mut dyn EventSource,
) -> Result<Ended, SuperviseError> {
    let mut sup = Supervision::new(driver, timeouts, Instant::now());
    let mut reaper = Reaper::new(server);
    if events.client_gone_at_start() {
        sup.request(CloseReason::ClientGone);
    }
    loop {
        let children = reaper.reap().map_err(SuperviseError::Wait)?;
        sup.on_reaped(reaper.main_status, driver);
        // No child left: with a subreaper that is the whole tree. Without
        // one (macOS), members adopted by init must be gone too.
        if children == Children::None && driver.escaped_alive() == 0 {
            break;
        }
        let deadline = sup.step(Instant::now(), driver, keeper.as_deref_mut());
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let driver_fds = driver.event_fds();
        let happened = events.wait(timeout, &driver_fds).map_err(SuperviseError::Events)?;
        drop(driver_fds);
        for event in happened {
            match event {
                Event::Child => {}
                Event::Signal(sig) => sup.request(CloseReason::Signal(sig)),
                Event::Closed(reason) => sup.request(reason),
                Event::DriverWake => sup.sample_now(Instant::now()),
            }
        }
    }
    let status = reaper.main_status.ok_or(SuperviseError::StatusLost)?;
    Ok(Ended { status, breach: sup.breach(), reason: sup.reason(), orphans_reaped: reaper.orphans_reaped })
}
