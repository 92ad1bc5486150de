//! The supervision state machine: events in, driver actions out. It owns
//! the teardown in progress, the limit verdicts and the sampling clock; it
//! does no I/O of its own (the driver measures and signals, the event
//! source waits), so it is tested with a fake driver and a fake clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use super::terminate::{CloseReason, Stage, escalate, plan};
use super::{RecordKeeper, Timeouts};
use crate::driver::Driver;
use crate::tree::verdict::{Breach, Verdict};

/// How often a SIGKILL is repeated while the tree still has members: a
/// process forked between a walk and the kill is caught on the next pass.
/// Reaping does not wait for it (SIGCHLD wakes the loop), so the pass can
/// be spaced: each one walks what is left of the tree.
pub const KILL_RETRY: Duration = Duration::from_millis(50);

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
    /// every [`KILL_RETRY`] until the supervisor sees no member left.
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
            } else if stage.signal == Some(Signal::SIGKILL) {
                // The repeat comes one retry later, not in the same pass.
                self.waiting_until = Some(now + KILL_RETRY);
            }
        }
    }
}

/// Everything the supervisor decides, between two waits for events.
pub struct Supervision {
    start: Instant,
    timeouts: Timeouts,
    interval: Option<Duration>,
    next_sample: Option<Instant>,
    teardown: Option<Teardown>,
    breach: Option<Breach>,
    judged_death: bool,
}

impl Supervision {
    pub fn new(driver: &dyn Driver, timeouts: Timeouts, start: Instant) -> Supervision {
        let interval = driver.sample_interval();
        Supervision {
            start,
            timeouts,
            interval,
            next_sample: interval.map(|_| start),
            teardown: None,
            breach: None,
            judged_death: false,
        }
    }

    /// The session asks for the end (or the end comes sooner).
    pub fn request(&mut self, reason: CloseReason) {
        match &mut self.teardown {
            None => {
                tracing::info!("closing: {reason}");
                let stages = plan(reason, self.timeouts.grace, self.timeouts.kill_timeout);
                self.teardown = Some(Teardown::new(reason, stages));
            }
            Some(t) => {
                if let Some(stages) = escalate(t.reason, reason, t.term_sent, self.timeouts.kill_timeout) {
                    tracing::info!("closing sooner: {reason}");
                    t.replace(stages);
                    t.reason = reason;
                }
            }
        }
    }

    /// The driver's events (an OOM kill, throttling) want a verdict now.
    pub fn sample_now(&mut self, now: Instant) {
        self.next_sample = Some(now);
    }

    /// After reaping: `main` is the server's status once it was reaped.
    pub fn on_reaped(&mut self, main: Option<WaitStatus>, driver: &mut dyn Driver) {
        // A server killed by SIGKILL may have been the kernel's OOM victim:
        // SIGCHLD often arrives before the memory.events wake, and once a
        // teardown starts, or the tree is gone, nothing samples any more.
        // Judge once more now, before deciding anything.
        if self.breach.is_none()
            && !self.judged_death
            && let Some(WaitStatus::Signaled(_, Signal::SIGKILL, _)) = main
        {
            self.judged_death = true;
            if let Verdict::Exceeded(b) = driver.check(self.start.elapsed()) {
                tracing::error!("server killed: {b} ({})", driver.kind().enforcement());
                self.breach = Some(b);
            }
        }
        if main.is_none() {
            return;
        }
        match &self.teardown {
            None => self.request(CloseReason::ServerExited),
            // The server left during a teardown: what it left behind gets
            // SIGTERM now, even if SIGTERM already went out. A SIGTERM sent
            // while the server was exiting can miss its children: they were
            // being reparented and were in neither child list. Once the
            // server is reaped, this pass reaches them all.
            Some(t) if !t.kill_sent && t.reason != CloseReason::ServerExited => {
                let stages = plan(CloseReason::ServerExited, self.timeouts.grace, self.timeouts.kill_timeout);
                self.teardown = Some(Teardown::new(CloseReason::ServerExited, stages));
            }
            Some(_) => {}
        }
    }

    /// Runs what is due at `now`: a sample and its verdict (until teardown
    /// begins), then the teardown's stages. Returns when to wake next.
    pub fn step(
        &mut self,
        now: Instant,
        driver: &mut dyn Driver,
        keeper: Option<&mut RecordKeeper>,
    ) -> Option<Instant> {
        if self.teardown.is_none()
            && let (Some(due), Some(every)) = (self.next_sample, self.interval)
            && now >= due
        {
            self.next_sample = Some(now + every);
            self.judge(driver.check(now - self.start), driver);
            if let Some(k) = keeper
                && k.record.members != driver.members()
            {
                k.record.members = driver.members().to_vec();
                if let Err(e) = k.dir.write(&k.record) {
                    tracing::warn!("{e}");
                }
            }
        }
        if let Some(t) = self.teardown.as_mut() {
            t.advance(now, driver);
        }
        [self.next_sample.filter(|_| self.teardown.is_none()), self.teardown.as_ref().and_then(|t| t.waiting_until)]
            .into_iter()
            .flatten()
            .min()
    }

    fn judge(&mut self, verdict: Verdict, driver: &dyn Driver) {
        match verdict {
            Verdict::Exceeded(b) => {
                tracing::error!("server killed: {b} ({})", driver.kind().enforcement());
                self.breach = Some(b);
                self.request(CloseReason::Limit(b));
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
    }

    /// The limit the tree was killed for, if any.
    pub fn breach(&self) -> Option<Breach> {
        self.breach
    }

    /// Why teardown began, if the runner started it.
    pub fn reason(&self) -> Option<CloseReason> {
        self.teardown.as_ref().map(|t| t.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{DriverError, DriverKind};
    use crate::os::spawn::{Child, SpawnSpec};
    use crate::tree::ProcessId;

    /// A driver that records what it is told and answers scripted verdicts.
    #[derive(Default)]
    struct FakeDriver {
        signals: Vec<Signal>,
        verdicts: VecDeque<Verdict>,
        checks: usize,
    }

    impl Driver for FakeDriver {
        fn kind(&self) -> DriverKind {
            DriverKind::Userland
        }
        fn prepare(&mut self, _spec: &mut SpawnSpec) -> Result<(), DriverError> {
            Ok(())
        }
        fn place(&mut self, _child: &Child) -> Result<(), DriverError> {
            Ok(())
        }
        fn sample_interval(&self) -> Option<Duration> {
            Some(Duration::from_millis(500))
        }
        fn check(&mut self, _now: Duration) -> Verdict {
            self.checks += 1;
            self.verdicts.pop_front().unwrap_or(Verdict::Within)
        }
        fn signal_all(&mut self, signal: Signal) -> usize {
            self.signals.push(signal);
            1
        }
        fn members(&self) -> &[ProcessId] {
            &[]
        }
        fn describe_limits(&self) -> String {
            String::new()
        }
    }

    const GRACE: Duration = Duration::from_secs(3);
    const KILL_TIMEOUT: Duration = Duration::from_secs(2);

    fn machine(driver: &FakeDriver, t0: Instant) -> Supervision {
        Supervision::new(driver, Timeouts { grace: GRACE, kill_timeout: KILL_TIMEOUT }, t0)
    }

    #[test]
    fn stdin_close_waits_grace_then_term_then_kill_repeated() {
        let (t0, mut d) = (Instant::now(), FakeDriver::default());
        let mut m = machine(&d, t0);
        m.step(t0, &mut d, None);
        m.request(CloseReason::StdinClosed);
        assert_eq!(m.step(t0, &mut d, None), Some(t0 + GRACE));
        assert!(d.signals.is_empty(), "nothing during the grace period");
        assert_eq!(m.step(t0 + GRACE, &mut d, None), Some(t0 + GRACE + KILL_TIMEOUT));
        assert_eq!(d.signals, [Signal::SIGTERM]);
        let killed_at = t0 + GRACE + KILL_TIMEOUT;
        assert_eq!(m.step(killed_at, &mut d, None), Some(killed_at + KILL_RETRY));
        m.step(killed_at + KILL_RETRY, &mut d, None);
        assert_eq!(d.signals, [Signal::SIGTERM, Signal::SIGKILL, Signal::SIGKILL], "SIGKILL repeats");
        assert_eq!(m.reason(), Some(CloseReason::StdinClosed));
    }

    #[test]
    fn a_signal_cuts_the_grace_short_and_a_second_kills() {
        let (t0, mut d) = (Instant::now(), FakeDriver::default());
        let mut m = machine(&d, t0);
        m.request(CloseReason::StdinClosed);
        m.step(t0, &mut d, None);
        m.request(CloseReason::Signal(Signal::SIGTERM));
        m.step(t0 + Duration::from_millis(10), &mut d, None);
        assert_eq!(d.signals, [Signal::SIGTERM], "SIGTERM at once, not after the grace");
        m.request(CloseReason::Signal(Signal::SIGTERM));
        m.step(t0 + Duration::from_millis(20), &mut d, None);
        assert_eq!(d.signals, [Signal::SIGTERM, Signal::SIGKILL]);
    }

    #[test]
    fn a_breach_kills_at_once_and_is_reported() {
        let (t0, mut d) = (Instant::now(), FakeDriver::default());
        let breach = Breach::Pids { used: 40, limit: 32 };
        d.verdicts.push_back(Verdict::Exceeded(breach));
        let mut m = machine(&d, t0);
        m.step(t0, &mut d, None);
        assert_eq!(d.signals, [Signal::SIGKILL]);
        assert_eq!(m.breach(), Some(breach));
        assert_eq!(m.reason(), Some(CloseReason::Limit(breach)));
    }

    #[test]
    fn sampling_stops_once_teardown_begins() {
        let (t0, mut d) = (Instant::now(), FakeDriver::default());
        let mut m = machine(&d, t0);
        assert_eq!(m.step(t0, &mut d, None), Some(t0 + Duration::from_millis(500)));
        m.request(CloseReason::Signal(Signal::SIGINT));
        m.step(t0 + Duration::from_secs(1), &mut d, None);
        assert_eq!(d.checks, 1, "no verdict during a teardown");
    }

    #[test]
    fn a_sigkilled_server_is_judged_once_before_anything_else() {
        let (t0, mut d) = (Instant::now(), FakeDriver::default());
        let breach = Breach::Memory { used: 200, limit: 100 };
        d.verdicts.push_back(Verdict::Exceeded(breach));
        let mut m = machine(&d, t0);
        let killed = WaitStatus::Signaled(crate::sys::Pid::from_raw(42), Signal::SIGKILL, false);
        m.on_reaped(Some(killed), &mut d);
        m.on_reaped(Some(killed), &mut d);
        assert_eq!(d.checks, 1);
        assert_eq!(m.breach(), Some(breach), "the kernel's OOM kill is attributed to the limit");
    }

    #[test]
    fn leftovers_of_an_exited_server_get_sigterm_at_once() {
        let (t0, mut d) = (Instant::now(), FakeDriver::default());
        let mut m = machine(&d, t0);
        m.on_reaped(Some(WaitStatus::Exited(crate::sys::Pid::from_raw(42), 0)), &mut d);
        m.step(t0, &mut d, None);
        assert_eq!(d.signals, [Signal::SIGTERM]);
        assert_eq!(m.reason(), Some(CloseReason::ServerExited));
    }

    #[test]
    fn a_server_exiting_during_the_grace_replans_for_its_leftovers() {
        let (t0, mut d) = (Instant::now(), FakeDriver::default());
        let mut m = machine(&d, t0);
        m.request(CloseReason::StdinClosed);
        m.step(t0, &mut d, None);
        m.on_reaped(Some(WaitStatus::Exited(crate::sys::Pid::from_raw(42), 0)), &mut d);
        m.step(t0 + Duration::from_millis(5), &mut d, None);
        assert_eq!(d.signals, [Signal::SIGTERM], "leftovers do not wait out the grace");
    }
}
