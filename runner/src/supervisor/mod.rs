//! The supervision loop, shaped like tini's: wait for one event (a signal, a
//! session hang-up, a deadline), act on it, reap, repeat until the runner
//! has no child left.
//!
//! Everything runs on the main thread, which is also the thread that forked
//! the server: the parent-death signal fires when the forking *thread* exits,
//! so the runner has no other threads.

pub mod reaper;
pub mod session;
pub mod terminate;

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::WaitStatus;

use crate::driver::Driver;
use crate::state::{RunnerRecord, StateDir};
use crate::sys::Pid;
use crate::sys::poll::{Events, PollSet};
use crate::tree::verdict::{Breach, Verdict};
use reaper::{Children, Reaper};
use session::{FdState, SessionWatch, classify};
use terminate::{CloseReason, Stage, escalate, plan};

/// The signals the runner takes through its signalfd. They are blocked
/// before the server is spawned; the child's mask is reset before exec.
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set
}

/// How often a SIGKILL is repeated while the tree still has members: a
/// process forked between a walk and the kill is caught on the next pass.
/// Reaping does not wait for it (SIGCHLD wakes the loop), so the pass can
/// be spaced: each one walks what is left of the tree.
const KILL_RETRY: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("failed to set up the signal descriptor: {0}")]
    SignalFd(Errno),
    #[error("poll failed: {0}")]
    Poll(std::io::Error),
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

/// A teardown in progress: the stages left and when the current wait ends.
struct Teardown {
    reason: CloseReason,
    stages: VecDeque<Stage>,
    waiting_until: Option<Instant>,
    term_sent: bool,
    kill_sent: bool,
}

impl Teardown {
    fn new(reason: CloseReason, stages: Vec<Stage>) -> Teardown {
        Teardown { reason, stages: stages.into(), waiting_until: None, term_sent: false, kill_sent: false }
    }

    fn replace(&mut self, stages: Vec<Stage>) {
        self.stages = stages.into();
        self.waiting_until = None;
    }

    /// Runs every stage that is due; after the final SIGKILL, repeats it
    /// every [`KILL_RETRY`] until the supervisor sees no child left.
    fn advance(&mut self, now: Instant, driver: &mut dyn Driver) {
        loop {
            if let Some(until) = self.waiting_until {
                if now < until {
                    return;
                }
                self.waiting_until = None;
            }
            let Some(stage) = self.stages.pop_front() else {
                if self.kill_sent {
                    driver.signal_all(Signal::SIGKILL);
                    self.waiting_until = Some(now + KILL_RETRY);
                }
                return;
            };
            if let Some(signal) = stage.signal {
                let n = driver.signal_all(signal);
                tracing::info!("sent {signal} to {n} process{}", if n == 1 { "" } else { "es" });
                self.term_sent |= signal == Signal::SIGTERM;
                self.kill_sent |= signal == Signal::SIGKILL;
            }
            if !stage.wait.is_zero() {
                self.waiting_until = Some(now + stage.wait);
            }
        }
    }
}

/// Supervises `server` and its tree until nothing of it is left.
pub fn supervise(
    driver: &mut dyn Driver,
    server: Pid,
    timeouts: Timeouts,
    mut keeper: Option<&mut RecordKeeper>,
) -> Result<Ended, SuperviseError> {
    let start = Instant::now();
    let signals = SignalFd::with_flags(&handled_signals(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(SuperviseError::SignalFd)?;
    let mut watch = SessionWatch::new();
    let mut reaper = Reaper::new(server);
    let mut teardown: Option<Teardown> = None;
    let mut breach: Option<Breach> = None;
    let mut judged_death = false;
    let interval = driver.sample_interval();
    let mut next_sample = interval.map(|_| start);

    let request = |teardown: &mut Option<Teardown>, reason: CloseReason| match teardown {
        None => {
            tracing::info!("closing: {reason}");
            *teardown = Some(Teardown::new(reason, plan(reason, timeouts.grace, timeouts.kill_timeout)));
        }
        Some(t) => {
            if let Some(stages) = escalate(t.reason, reason, t.term_sent, timeouts.kill_timeout) {
                tracing::info!("closing sooner: {reason}");
                t.replace(stages);
                t.reason = reason;
            }
        }
    };
    if watch.client_gone_at_start {
        request(&mut teardown, CloseReason::ClientGone);
    }

    loop {
        let children = reaper.reap().map_err(SuperviseError::Wait)?;
        // A server killed by SIGKILL may have been the kernel's OOM victim:
        // SIGCHLD often arrives before the memory.events wake, and once a
        // teardown starts, or the tree is gone, nothing samples any more.
        // Judge once more now, before deciding anything.
        if breach.is_none()
            && !judged_death
            && let Some(WaitStatus::Signaled(_, Signal::SIGKILL, _)) = reaper.main_status
        {
            judged_death = true;
            if let Verdict::Exceeded(b) = driver.check(start.elapsed()) {
                tracing::error!("server killed: {b} ({})", driver.kind().enforcement());
                breach = Some(b);
            }
        }
        if children == Children::None {
            break;
        }
        let now = Instant::now();
        if reaper.main_status.is_some() {
            match &teardown {
                None => request(&mut teardown, CloseReason::ServerExited),
                // The server left during a teardown: what it left behind
                // gets SIGTERM now, even if SIGTERM already went out. A
                // SIGTERM sent while the server was exiting can miss its
                // children: they were being reparented to the runner and
                // were in neither child list. Once the server is reaped,
                // every one of them is the runner's child, so this pass
                // reaches them all.
                Some(t) if !t.kill_sent && t.reason != CloseReason::ServerExited => {
                    let stages = plan(CloseReason::ServerExited, timeouts.grace, timeouts.kill_timeout);
                    teardown = Some(Teardown::new(CloseReason::ServerExited, stages));
                }
                Some(_) => {}
            }
        }

        if teardown.is_none()
            && let (Some(due), Some(every)) = (next_sample, interval)
            && now >= due
        {
            next_sample = Some(now + every);
            match driver.check(now - start) {
                Verdict::Exceeded(b) => {
                    tracing::error!("server killed: {b} ({})", driver.kind().enforcement());
                    breach = Some(b);
                    request(&mut teardown, CloseReason::Limit(b));
                }
                Verdict::EnteredHigh { used, high, level } => tracing::warn!(
                    "memory {} reached memory_high {} ({level}): {}; killed if it stays there past throttle_timeout",
                    mcp_runner_policy::format_bytes(used),
                    mcp_runner_policy::format_bytes(high),
                    if driver.kind().is_kernel() {
                        "the kernel throttles it"
                    } else {
                        "not throttled (userland enforcement)"
                    }
                ),
                Verdict::LeftHigh { used } => {
                    tracing::info!("memory {} is below memory_high again", mcp_runner_policy::format_bytes(used))
                }
                Verdict::Within | Verdict::StillHigh => {}
            }
            if let Some(k) = keeper.as_mut()
                && k.record.members != driver.members()
            {
                k.record.members = driver.members().to_vec();
                if let Err(e) = k.dir.write(&k.record) {
                    tracing::warn!("{e}");
                }
            }
        }

        if let Some(t) = teardown.as_mut() {
            t.advance(now, driver);
        }

        let deadline = [next_sample.filter(|_| teardown.is_none()), teardown.as_ref().and_then(|t| t.waiting_until)]
            .into_iter()
            .flatten()
            .min();
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));

        let mut set = PollSet::new();
        set.add(signals.as_fd(), Events::IN);
        let stdin_at = watch.stdin.as_ref().map(|s| set.add(s.as_fd(), session::STDIN_EVENTS));
        let stdout_at = watch.stdout.as_ref().map(|s| set.add(s.as_fd(), session::STDOUT_EVENTS));
        let client_at = watch.client.as_ref().map(|fd| set.add(fd.as_fd(), Events::IN));
        let driver_fds = driver.event_fds();
        let driver_at: Vec<usize> = driver_fds.iter().map(|fd| set.add(*fd, Events::PRI)).collect();
        set.wait(timeout).map_err(SuperviseError::Poll)?;
        let driver_woke = driver_at.iter().any(|i| !set.revents(*i).is_empty());
        let revents = |i: Option<usize>| i.map_or(Events::NONE, |i| set.revents(i));
        let (stdin_ev, stdout_ev, client_ev) = (revents(stdin_at), revents(stdout_at), revents(client_at));
        drop(set);
        drop(driver_fds);
        if driver_woke {
            // The kernel reported a change (an OOM kill, throttling): judge now.
            next_sample = Some(Instant::now());
        }

        while let Ok(Some(info)) = signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) | Err(_) => {}
                Ok(sig) => request(&mut teardown, CloseReason::Signal(sig)),
            }
        }
        match classify(stdin_ev) {
            FdState::Open => {}
            FdState::Closed => {
                watch.stdin = None;
                request(&mut teardown, CloseReason::StdinClosed);
            }
            FdState::Unwatchable => watch.stdin = None,
        }
        match classify(stdout_ev) {
            FdState::Open => {}
            FdState::Closed => {
                watch.stdout = None;
                request(&mut teardown, CloseReason::StdoutClosed);
            }
            FdState::Unwatchable => watch.stdout = None,
        }
        if !client_ev.is_empty() {
            watch.client = None;
            request(&mut teardown, CloseReason::ClientGone);
        }
    }

    let status = reaper.main_status.ok_or(SuperviseError::StatusLost)?;
    Ok(Ended { status, breach, reason: teardown.map(|t| t.reason), orphans_reaped: reaper.orphans_reaped })
}
