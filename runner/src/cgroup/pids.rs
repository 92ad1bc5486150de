//! The pids controller. pids.max counts tasks (threads), and a zombie stays
//! charged until it is reaped: one more reason the runner reaps at once.

use super::fs::{CgroupDir, CgroupIoError, keyed, limit_value};

pub const MAX: &str = "pids.max";
pub const CURRENT: &str = "pids.current";
pub const EVENTS: &str = "pids.events";

pub fn apply(dir: &CgroupDir, pids_max: Option<u64>) -> Result<(), CgroupIoError> {
    dir.write(MAX, &limit_value(pids_max))
}

/// Forks refused at pids.max in this cgroup or below (0 if unreadable).
pub fn refused_forks_of(dir: &CgroupDir) -> u64 {
    dir.read(EVENTS).ok().and_then(|t| keyed(&t, "max")).unwrap_or(0)
}
