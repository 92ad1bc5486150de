//! The built-in defaults: what the runner enforces with no policy file.
//!
//! Memory is given in percentages so the same defaults fit an 8 GB and a
//! 64 GB machine; the reasoning behind each number is in the crate docs
//! ("Why these defaults").

use std::time::Duration;

use crate::budget::{DriverPref, Enforcement, Share};
use crate::cpu::CpuMax;
use crate::size::{Percent, Size};

const fn pct(whole: u32) -> Size {
    Size::Percent(Percent::from_ppm(whole * 10_000))
}

/// One level's limit keys, as they would be written.
pub(crate) struct LimitDefaults {
    pub(crate) memory_max: Size,
    pub(crate) memory_high: Size,
    pub(crate) swap_max: Size,
    pub(crate) pids_max: Option<u64>,
    pub(crate) cpu_max: Option<CpuMax>,
}

pub(crate) const GLOBAL: LimitDefaults = LimitDefaults {
    memory_max: pct(50),
    memory_high: pct(90),
    swap_max: Size::Max,
    pids_max: Some(8192),
    cpu_max: None,
};
pub(crate) const GLOBAL_MAX_SERVERS: Option<u32> = Some(64);
pub(crate) const GLOBAL_MAX_SESSIONS: Option<u32> = Some(16);
pub(crate) const DRIVER: DriverPref = DriverPref::Auto;
/// Long enough for a moment to pass (a pressure spike, a runner on its way
/// out: a waiting spawn is judged again on every try), short enough that a
/// spawn that will not fit is still refused clearly within seconds, which
/// a client can report; waiting on a spawn that may never fit is worse.
pub(crate) const ADMISSION_WAIT: Duration = Duration::from_secs(3);
/// Room for a typical Node server (~50-150 MB) to start without pushing
/// its session or everything into reclaim.
pub(crate) const MIN_HEADROOM: Size = Size::Bytes(64 << 20);
/// Past 40% of the time stalled on memory, the machine is already
/// thrashing; another server would make it worse for every session. (The
/// runner judges the last second when the 10 s average is over it.)
pub(crate) const MAX_PRESSURE: Option<Percent> = Some(Percent::from_ppm(40 * 10_000));

pub(crate) const SESSION: LimitDefaults = LimitDefaults {
    memory_max: pct(50),
    memory_high: pct(90),
    swap_max: Size::Max,
    pids_max: Some(4096),
    cpu_max: None,
};
pub(crate) const SESSION_MAX_SERVERS: Option<u32> = Some(32);
/// However many sessions share the global cap, each keeps a tenth of it:
/// enough for a handful of typical servers.
pub(crate) const SESSION_FLOOR: Size = pct(10);

pub(crate) const SERVER: LimitDefaults = LimitDefaults {
    memory_max: pct(50),
    memory_high: pct(80),
    swap_max: Size::Bytes(0),
    pids_max: Some(1024),
    cpu_max: None,
};
pub(crate) const GRACE: Duration = Duration::from_secs(3);
pub(crate) const KILL_TIMEOUT: Duration = Duration::from_secs(2);
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
pub(crate) const THROTTLE_TIMEOUT: Option<Duration> = Some(Duration::from_secs(60));
pub(crate) const REQUIRE: Enforcement = Enforcement::Any;
pub(crate) const SHARE: Share = Share::Never;
/// A shared server outlives its last client by this much: a client that
/// restarts (or the next agent run) finds it warm, and an idle server
/// does not hold its memory for long.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
pub(crate) const MAX_INSTANCES: Option<u32> = None;
pub(crate) const WEIGHT: u32 = 1;
// `no_new_privs`, `drop_capabilities`, `user` and `group` have no built-in
// value: not written, the runner decides by whether it runs as root (both
// flags on as root, off otherwise; no change of user).

/// The userland driver samples memory; faster than this costs more CPU
/// than the servers it watches.
pub(crate) const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);
