//! What the supervisor waits for, whatever the platform delivers it with
//! (signalfd and poll on Linux, kqueue on macOS).

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::terminate::CloseReason;

/// One thing that happened while the supervisor waited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A child changed state: reap.
    Child,
    /// SIGTERM, SIGINT or SIGHUP reached the runner.
    Signal(Signal),
    /// The session ended: stdin or stdout closed, or the client is gone.
    Closed(CloseReason),
    /// A driver descriptor fired (the kernel reported an OOM kill or
    /// throttling): judge at once.
    DriverWake,
}

/// The platform's way of waiting for [`Event`]s.
pub trait EventSource {
    /// The client was already gone when the watch was set up.
    fn client_gone_at_start(&self) -> bool;

    /// Waits until something happens or `timeout` passes (`None`: no
    /// timeout). `driver_fds` are the driver's event descriptors.
    fn wait(&mut self, timeout: Option<Duration>, driver_fds: &[BorrowedFd<'_>]) -> io::Result<Vec<Event>>;
}
