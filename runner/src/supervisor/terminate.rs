//! How a server tree is taken down: a pure function from the reason to a
//! list of stages, so the order and the timeouts are tested as a table and
//! the event loop only executes it.

use std::fmt;
use std::time::Duration;

use crate::sys::Signal;
use crate::tree::verdict::Breach;

/// Why the supervisor is tearing the tree down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed (or hung up) the server's stdin: the MCP stdio
    /// transport's own way to end a session.
    StdinClosed,
    /// The client closed its end of the server's stdout.
    StdoutClosed,
    /// The process that started the runner (the client) exited.
    ClientGone,
    /// The runner received SIGTERM, SIGINT or SIGHUP.
    Signal(Signal),
    /// The server's main process exited; what it left behind goes.
    ServerExited,
    /// A limit was exceeded.
    Limit(Breach),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::StdinClosed => f.write_str("the client closed stdin"),
            CloseReason::StdoutClosed => f.write_str("the client closed stdout"),
            CloseReason::ClientGone => f.write_str("the client process exited"),
            CloseReason::Signal(s) => write!(f, "the runner received {s}"),
            CloseReason::ServerExited => f.write_str("the server exited"),
            CloseReason::Limit(b) => write!(f, "{b}"),
        }
    }
}

/// One stage: optionally signal every process of the tree, then give it
/// `wait` to disappear before the next stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    pub signal: Option<Signal>,
    pub wait: Duration,
}

/// The stages for `reason`. The last stage is always SIGKILL, which the
/// supervisor repeats until the tree is empty (a process forked between the
/// walk and the kill is caught on the next pass).
///
/// | reason                     | stages                                       |
/// |----------------------------|----------------------------------------------|
/// | stdin/stdout closed, client gone | wait `grace`, SIGTERM, wait `kill_timeout`, SIGKILL |
/// | signal, server exited      | SIGTERM, wait `kill_timeout`, SIGKILL        |
/// | limit exceeded             | SIGKILL                                      |
///
/// A closed stdin asks the server to exit by itself (MCP stdio shutdown), so
/// it gets the grace period; a signal to the runner is already the request to
/// terminate, and leftovers of an exited server have no one to wait for. A
/// tree over its limit is killed at once, as the kernel's OOM killer would.
pub fn plan(reason: CloseReason, grace: Duration, kill_timeout: Duration) -> Vec<Stage> {
    let term = Stage { signal: Some(Signal::SIGTERM), wait: kill_timeout };
    let kill = Stage { signal: Some(Signal::SIGKILL), wait: Duration::ZERO };
    let mut stages = match reason {
        CloseReason::StdinClosed | CloseReason::StdoutClosed | CloseReason::ClientGone => {
            vec![Stage { signal: None, wait: grace }, term, kill]
        }
        CloseReason::Signal(_) | CloseReason::ServerExited => vec![term, kill],
        CloseReason::Limit(_) => vec![kill],
    };
    // A zero wait makes the stage pointless for a signal-less stage, and a
    // zero kill_timeout means "SIGKILL at once".
    stages.retain(|s| s.signal.is_some() || !s.wait.is_zero());
    if kill_timeout.is_zero() {
        stages.retain(|s| s.signal != Some(Signal::SIGTERM));
    }
    stages
}

/// The new plan when another close request arrives during a teardown, or
/// `None` to keep the current one. `term_sent` says whether SIGTERM already
/// went out.
///
/// A signal to the runner cuts a stdin-close grace period short (clients
/// commonly close stdin, wait, then send SIGTERM); a second signal, or a
/// signal after SIGTERM went out, means "now". A limit breach always kills
/// at once.
pub fn escalate(current: CloseReason, new: CloseReason, term_sent: bool, kill_timeout: Duration) -> Option<Vec<Stage>> {
    let now = vec![Stage { signal: Some(Signal::SIGKILL), wait: Duration::ZERO }];
    match new {
        CloseReason::Limit(_) => Some(now),
        CloseReason::Signal(_) if term_sent || matches!(current, CloseReason::Signal(_)) => Some(now),
        CloseReason::Signal(_) => Some(plan(new, Duration::ZERO, kill_timeout)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Duration = Duration::from_secs(3);
    const K: Duration = Duration::from_secs(2);
    fn wait(d: Duration) -> Stage {
        Stage { signal: None, wait: d }
    }
    fn sig(s: Signal, d: Duration) -> Stage {
        Stage { signal: Some(s), wait: d }
    }

    #[test]
    fn plans() {
        use Signal::*;
        let z = Duration::ZERO;
        let breach = Breach::Pids { used: 9, limit: 8 };
        let table: Vec<(CloseReason, Duration, Duration, Vec<Stage>)> = vec![
            (CloseReason::StdinClosed, G, K, vec![wait(G), sig(SIGTERM, K), sig(SIGKILL, z)]),
            (CloseReason::ClientGone, G, K, vec![wait(G), sig(SIGTERM, K), sig(SIGKILL, z)]),
            (CloseReason::StdoutClosed, z, K, vec![sig(SIGTERM, K), sig(SIGKILL, z)]),
            (CloseReason::StdinClosed, G, z, vec![wait(G), sig(SIGKILL, z)]),
            (CloseReason::Signal(SIGTERM), G, K, vec![sig(SIGTERM, K), sig(SIGKILL, z)]),
            (CloseReason::ServerExited, G, K, vec![sig(SIGTERM, K), sig(SIGKILL, z)]),
            (CloseReason::ServerExited, G, z, vec![sig(SIGKILL, z)]),
            (CloseReason::Limit(breach), G, K, vec![sig(SIGKILL, z)]),
        ];
        for (reason, grace, kt, want) in table {
            assert_eq!(plan(reason, grace, kt), want, "{reason:?} grace={grace:?} kill_timeout={kt:?}");
        }
    }

    #[test]
    fn every_plan_ends_in_sigkill() {
        for reason in [CloseReason::StdinClosed, CloseReason::Signal(Signal::SIGHUP), CloseReason::ServerExited] {
            for (g, k) in [(G, K), (Duration::ZERO, Duration::ZERO)] {
                let p = plan(reason, g, k);
                assert_eq!(p.last().and_then(|s| s.signal), Some(Signal::SIGKILL));
            }
        }
    }

    #[test]
    fn escalation() {
        use CloseReason::*;
        let term = Signal(crate::sys::Signal::SIGTERM);
        let int = Signal(crate::sys::Signal::SIGINT);
        let now = Some(vec![sig(crate::sys::Signal::SIGKILL, Duration::ZERO)]);
        let term_then_kill =
            Some(vec![sig(crate::sys::Signal::SIGTERM, K), sig(crate::sys::Signal::SIGKILL, Duration::ZERO)]);
        let b = Limit(Breach::Memory { used: 2, limit: 1 });
        let table = [
            (term, int, false, now.clone()),
            (StdinClosed, term, false, term_then_kill),
            (StdinClosed, term, true, now.clone()),
            (StdinClosed, ClientGone, false, None),
            (ServerExited, StdoutClosed, true, None),
            (StdinClosed, b, false, now.clone()),
        ];
        for (current, new, term_sent, want) in table {
            assert_eq!(escalate(current, new, term_sent, K), want, "{current:?} then {new:?}, term_sent={term_sent}");
        }
    }
}
