//! Budget -> systemd unit properties: pure translation, no I/O (youki's
//! systemd controllers work the same way). The same values are written
//! into the installed `mcp-runner.slice` file and sent as transient unit
//! properties, so both carry one meaning.

use mcp_runner_policy::{CpuMax, Limits};

use super::dbus::PropValue;

/// systemd's "infinity" for the `t` resource properties.
pub const INFINITY: u64 = u64::MAX;

fn bytes(v: Option<u64>) -> u64 {
    v.unwrap_or(INFINITY)
}

/// CPUQuotaPerSecUSec: CPU time allowed per second of wall time.
pub fn cpu_quota_per_sec_usec(cpu: Option<CpuMax>) -> u64 {
    match cpu {
        Some(c) if c.period_us > 0 => c.quota_us.saturating_mul(1_000_000) / c.period_us,
        _ => INFINITY,
    }
}

/// The resource-control properties of one budget level, in a fixed order.
pub fn limit_properties(l: &Limits) -> Vec<(&'static str, PropValue)> {
    vec![
        ("MemoryAccounting", PropValue::Bool(true)),
        ("TasksAccounting", PropValue::Bool(true)),
        ("MemoryMax", PropValue::U64(bytes(l.memory_max))),
        ("MemoryHigh", PropValue::U64(bytes(l.memory_high))),
        ("MemorySwapMax", PropValue::U64(bytes(l.swap_max))),
        ("TasksMax", PropValue::U64(l.pids_max.unwrap_or(INFINITY))),
        ("CPUQuotaPerSecUSec", PropValue::U64(cpu_quota_per_sec_usec(l.cpu_max))),
    ]
}

/// The `[Slice]` section of a unit file for the same limits.
pub fn slice_section(l: &Limits) -> String {
    let size = |v: Option<u64>| v.map_or_else(|| "infinity".to_string(), |b| b.to_string());
    let mut out = String::from("[Slice]\nMemoryAccounting=yes\nTasksAccounting=yes\n");
    out.push_str(&format!("MemoryMax={}\n", size(l.memory_max)));
    out.push_str(&format!("MemoryHigh={}\n", size(l.memory_high)));
    out.push_str(&format!("MemorySwapMax={}\n", size(l.swap_max)));
    out.push_str(&format!("TasksMax={}\n", l.pids_max.map_or_else(|| "infinity".to_string(), |p| p.to_string())));
    if let Some(c) = l.cpu_max {
        // CPUQuota= is a percentage of one CPU.
        out.push_str(&format!("CPUQuota={}%\n", c.quota_us.saturating_mul(100) / c.period_us.max(1)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_is_infinity() {
        let props = limit_properties(&Limits::default());
        for (name, v) in &props[2..] {
            assert_eq!(*v, PropValue::U64(INFINITY), "{name}");
        }
    }

    #[test]
    fn values() {
        let l = Limits {
            memory_high: Some(80 << 20),
            memory_max: Some(100 << 20),
            swap_max: Some(0),
            pids_max: Some(64),
            cpu_max: Some(CpuMax { quota_us: 150_000, period_us: 100_000 }),
        };
        let props = limit_properties(&l);
        assert!(props.contains(&("MemoryMax", PropValue::U64(100 << 20))));
        assert!(props.contains(&("MemorySwapMax", PropValue::U64(0))));
        assert!(props.contains(&("TasksMax", PropValue::U64(64))));
        assert!(props.contains(&("CPUQuotaPerSecUSec", PropValue::U64(1_500_000))));
        let section = slice_section(&l);
        assert!(section.contains("MemoryMax=104857600\n"), "{section}");
        assert!(section.contains("CPUQuota=150%\n"), "{section}");
        assert!(slice_section(&Limits::default()).contains("TasksMax=infinity\n"));
    }
}
