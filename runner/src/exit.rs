//! The runner's exit status: what a client, a shell or a test can rely on.
//!
//! | code     | meaning                                                        |
//! |----------|----------------------------------------------------------------|
//! | 0..=255  | the server's own exit code, when it exited by itself           |
//! | 128+N    | the server died of signal N (not one sent for a limit)         |
//! | 2        | usage error or invalid policy: nothing was spawned             |
//! | 122      | refused by policy (e.g. kernel enforcement required, missing)  |
//! | 123      | killed for exceeding a limit; the reason is on stderr          |
//! | 125      | the runner itself failed; the reason is on stderr              |
//! | 126      | the command was found but could not be executed                |
//! | 127      | the command was not found                                      |
//!
//! 126 and 127 follow the shell; 125 follows `env`, `timeout` and podman.
//! A server can of course exit with any of these by itself: a client that
//! needs certainty reads the runner's stderr line.

use std::process::ExitCode;

use nix::sys::wait::WaitStatus;

use crate::tree::verdict::Breach;

pub const USAGE: u8 = 2;
pub const REFUSED: u8 = 122;
pub const LIMIT_KILLED: u8 = 123;
pub const RUNNER_FAILED: u8 = 125;
pub const CANNOT_EXECUTE: u8 = 126;
pub const NOT_FOUND: u8 = 127;

/// How a supervised server ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(u8),
    Signaled(i32),
    LimitKilled(Breach),
}

impl Outcome {
    /// Classifies the main process's wait status. A breach the supervisor
    /// acted on overrides whatever status the kill produced.
    pub fn from_wait(status: WaitStatus, breach: Option<Breach>) -> Outcome {
        if let Some(b) = breach {
            return Outcome::LimitKilled(b);
        }
        match status {
            // The kernel only keeps the low 8 bits of an exit code.
            WaitStatus::Exited(_, code) => Outcome::Exited((code & 0xff) as u8),
            WaitStatus::Signaled(_, sig, _) => Outcome::Signaled(sig as i32),
            // Stopped/continued statuses are never asked for (no WUNTRACED);
            // treat anything else as a runner failure rather than guess.
            _ => Outcome::Exited(RUNNER_FAILED),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Outcome::Exited(c) => c,
            // 128+N as the shell reports it; signal numbers are < 65.
            Outcome::Signaled(n) => 128u8.saturating_add(n.clamp(0, 127) as u8),
            Outcome::LimitKilled(_) => LIMIT_KILLED,
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        ExitCode::from(o.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn codes() {
        let p = Pid::from_raw(1);
        let b = Breach::Pids { used: 2, limit: 1 };
        let table = [
            (WaitStatus::Exited(p, 0), None, 0),
            (WaitStatus::Exited(p, 7), None, 7),
            (WaitStatus::Exited(p, 255), None, 255),
            (WaitStatus::Signaled(p, Signal::SIGTERM, false), None, 143),
            (WaitStatus::Signaled(p, Signal::SIGKILL, true), None, 137),
            (WaitStatus::Signaled(p, Signal::SIGKILL, false), Some(b), LIMIT_KILLED),
            (WaitStatus::Exited(p, 0), Some(b), LIMIT_KILLED),
        ];
        for (status, breach, want) in table {
            assert_eq!(Outcome::from_wait(status, breach).code(), want, "{status:?} {breach:?}");
        }
    }
}
