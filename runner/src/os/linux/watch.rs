//! Waiting for a runner record to go: inotify on the state directory.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::sys::poll::{Events, PollSet};

/// Wakes when a record is removed from (or renamed out of) a directory.
pub struct RecordWatch(Inotify);

impl RecordWatch {
    /// `None` if the directory cannot be watched: the caller polls instead.
    pub fn new(dir: &Path) -> Option<RecordWatch> {
        let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
        ino.add_watch(dir, AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM).ok()?;
        Some(RecordWatch(ino))
    }

    /// Waits up to `timeout` for a removal, then drains what was queued.
    pub fn wait(&mut self, timeout: Duration) {
        let mut set = PollSet::new();
        set.add(self.0.as_fd(), Events::IN);
        let _ = set.wait(Some(timeout));
        drop(set);
        while let Ok(events) = self.0.read_events() {
            if events.is_empty() {
                break;
            }
        }
    }
}
