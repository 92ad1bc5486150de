//! The memory controller: memory.high (throttle), memory.max (the stop),
//! memory.swap.max, memory.oom.group, and the counters the runner reports.

use mcp_runner_policy::Limits;

use super::fs::{CgroupDir, CgroupIoError, keyed, limit_value};

pub const HIGH: &str = "memory.high";
pub const MAX: &str = "memory.max";
pub const SWAP_MAX: &str = "memory.swap.max";
pub const OOM_GROUP: &str = "memory.oom.group";
pub const CURRENT: &str = "memory.current";
pub const PEAK: &str = "memory.peak";
pub const SWAP_CURRENT: &str = "memory.swap.current";
pub const EVENTS: &str = "memory.events";
/// Pressure stall information (Linux >= 4.20).
pub const PRESSURE: &str = "memory.pressure";
/// Events of this cgroup's own limits only: tells which level of the
/// hierarchy hit its memory.max.
pub const EVENTS_LOCAL: &str = "memory.events.local";

/// Writes the memory limits. Order matters: the hard limit goes first so
/// that lowering both never leaves a window with high above max, and
/// oom.group last, once the leaf is fully configured.
pub fn apply(dir: &CgroupDir, limits: &Limits, leaf: bool) -> Result<(), CgroupIoError> {
    dir.write(MAX, &limit_value(limits.memory_max))?;
    dir.write(HIGH, &limit_value(limits.memory_high))?;
    // memory.swap.max exists only with swap accounting (CONFIG_SWAP and
    // not `swapaccount=0`); without it there is no swap to limit.
    if dir.file(SWAP_MAX).exists() {
        dir.write(SWAP_MAX, &limit_value(limits.swap_max))?;
    }
    if leaf {
        // An OOM kill takes the whole server, not one worker of it: a half
        // dead MCP server keeps the session hanging.
        dir.write(OOM_GROUP, "1")?;
    }
    Ok(())
}

/// memory.events counters (hierarchical).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryEvents {
    pub high: u64,
    pub max: u64,
    pub oom: u64,
    pub oom_kill: u64,
}

pub fn parse_events(text: &str) -> MemoryEvents {
    MemoryEvents {
        high: keyed(text, "high").unwrap_or(0),
        max: keyed(text, "max").unwrap_or(0),
        oom: keyed(text, "oom").unwrap_or(0),
        oom_kill: keyed(text, "oom_kill").unwrap_or(0),
    }
}

pub fn events(dir: &CgroupDir) -> Result<MemoryEvents, CgroupIoError> {
    Ok(parse_events(&dir.read(EVENTS)?))
}

/// `some avg10` of a PSI file: the share of the last ~10 s in which at
/// least one task stalled on memory, in percent.
pub fn some_avg10(text: &str) -> Option<f64> {
    psi_some(text).map(|s| s.avg10)
}

/// The `some` line of a PSI file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PsiSome {
    /// Percent of the last ~10 s with at least one task stalled: a
    /// decaying average, updated every 2 s, that takes 10 s and more to
    /// forget a stall.
    pub avg10: f64,
    /// Microseconds stalled since the cgroup was made: read twice, it says
    /// how much of the time in between was stalled.
    pub total_us: u64,
}

/// `some avg10=A avg60=B avg300=C total=T`.
pub fn psi_some(text: &str) -> Option<PsiSome> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    let field = |key: &str| line.split_ascii_whitespace().find_map(|kv| kv.strip_prefix(key));
    Some(PsiSome { avg10: field("avg10=")?.parse().ok()?, total_us: field("total=")?.parse().ok()? })
}

/// How often this cgroup's own memory.max invoked the OOM killer
/// (memory.events.local `oom`, raised right before the kill).
pub fn local_ooms(dir: &CgroupDir) -> u64 {
    dir.read(EVENTS_LOCAL).map(|t| parse_events(&t).oom).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::fs::tests::fixture;

    #[test]
    fn events_parse_by_key() {
        let e = parse_events("low 0\nhigh 273\nmax 35\noom 1\noom_kill 2\noom_group_kill 1\nsock_throttled 0\n");
        assert_eq!(e, MemoryEvents { high: 273, max: 35, oom: 1, oom_kill: 2 });
        assert_eq!(parse_events(""), MemoryEvents::default());
    }

    #[test]
    fn psi_some_avg10() {
        let t = "some avg10=43.55 avg60=9.12 avg300=1.95 total=7129749\nfull avg10=40.00 avg60=9.12 avg300=1.95 total=7129749\n";
        assert_eq!(some_avg10(t), Some(43.55));
        assert_eq!(some_avg10("full avg10=1.00 avg60=0 avg300=0 total=0\n"), None);
        assert_eq!(some_avg10(""), None);
        assert_eq!(psi_some(t), Some(PsiSome { avg10: 43.55, total_us: 7129749 }));
        assert_eq!(psi_some("some avg10=1.00 avg60=0 avg300=0\n"), None, "no total");
        assert_eq!(psi_some("some avg10=x avg60=0 avg300=0 total=1\n"), None);
    }

    #[test]
    fn apply_writes_leaf_files() {
        let d = fixture(
            "mem",
            &[("memory.max", "max"), ("memory.high", "max"), ("memory.swap.max", "max"), ("memory.oom.group", "0")],
        );
        let l =
            Limits { memory_high: Some(80 << 20), memory_max: Some(100 << 20), swap_max: Some(0), ..Limits::default() };
        apply(&d, &l, true).expect("applies");
        assert_eq!(d.read("memory.max").expect("read"), (100u64 << 20).to_string());
        assert_eq!(d.read("memory.high").expect("read"), (80u64 << 20).to_string());
        assert_eq!(d.read("memory.swap.max").expect("read"), "0");
        assert_eq!(d.read("memory.oom.group").expect("read"), "1");
        apply(&d, &Limits::default(), false).expect("applies");
        assert_eq!(d.read("memory.max").expect("read"), "max");
        std::fs::remove_dir_all(d.path()).ok();
    }
}
