//! CPU limits: `"150%"` is one and a half CPUs, `"max"` is none.
//!
//! Percent of one CPU rather than a fraction of the machine, so a policy
//! means the same thing on a laptop and on a 64-core server, and maps 1:1 to
//! cgroup `cpu.max` and systemd `CPUQuota=`.

use std::fmt;

use crate::size::{WHOLE, percent_ppm, split_number};

pub(crate) const EXPECTED_CPU: &str = r#"expected a CPU limit like "50%" (half a CPU), "200%" (two CPUs) or "max""#;

/// The period cgroup v2 and systemd use by default.
pub(crate) const PERIOD_US: u64 = 100_000;

/// The kernel refuses a `cpu.max` quota below 1 ms.
const MIN_QUOTA_US: u64 = 1_000;

/// A cgroup v2 `cpu.max` value: at most `quota_us` of CPU time per `period_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuMax {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuMax {
    /// Compares CPU rates across periods without dividing.
    pub(crate) fn exceeds(self, other: CpuMax) -> bool {
        u128::from(self.quota_us) * u128::from(other.period_us)
            > u128::from(other.quota_us) * u128::from(self.period_us)
    }
}

impl fmt::Display for CpuMax {
    /// As a percentage of one CPU, the way it is written in a policy.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let period = u128::from(self.period_us.max(1));
        let hundredths = u128::from(self.quota_us) * 10_000 / period;
        let (whole, frac) = (hundredths / 100, hundredths % 100);
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let digits = format!("{frac:02}");
            write!(f, "{whole}.{}%", digits.trim_end_matches('0'))
        }
    }
}

/// `None` means no CPU limit.
pub(crate) fn parse_cpu(s: &str) -> Result<Option<CpuMax>, String> {
    if s == "max" {
        return Ok(None);
    }
    let n = split_number(s).filter(|n| n.unit == "%").ok_or(EXPECTED_CPU)?;
    let ppm = percent_ppm(&n)?;
    // 100% (WHOLE ppm of one CPU) is one full period of quota.
    let quota_us = u128::from(ppm) * u128::from(PERIOD_US) / u128::from(WHOLE);
    let quota_us = u64::try_from(quota_us).map_err(|_| "percentage too large".to_owned())?;
    if quota_us < MIN_QUOTA_US {
        return Err("the smallest CPU limit the kernel accepts is \"1%\"".into());
    }
    Ok(Some(CpuMax { quota_us, period_us: PERIOD_US }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(quota_us: u64) -> Option<CpuMax> {
        Some(CpuMax { quota_us, period_us: PERIOD_US })
    }

    #[test]
    fn percent_of_one_cpu_becomes_quota_per_period() {
        assert_eq!(parse_cpu("150%"), Ok(cpu(150_000)));
        assert_eq!(parse_cpu("50%"), Ok(cpu(50_000)));
        assert_eq!(parse_cpu("12.5%"), Ok(cpu(12_500)));
        assert_eq!(parse_cpu("1%"), Ok(cpu(1_000)));
        assert_eq!(parse_cpu("max"), Ok(None));
    }

    #[test]
    fn rejects_non_percentages_and_tiny_quotas() {
        for s in ["1.5", "2", "150", "1G", "", "MAX"] {
            assert_eq!(parse_cpu(s), Err(EXPECTED_CPU.to_owned()), "{s:?}");
        }
        assert!(parse_cpu("0.5%").unwrap_err().contains("\"1%\""));
        assert!(parse_cpu("0%").unwrap_err().contains("\"1%\""));
    }

    #[test]
    fn compares_rates_across_periods() {
        let one_cpu = CpuMax { quota_us: 100_000, period_us: 100_000 };
        let half_cpu_long_period = CpuMax { quota_us: 500_000, period_us: 1_000_000 };
        assert!(one_cpu.exceeds(half_cpu_long_period));
        assert!(!half_cpu_long_period.exceeds(one_cpu));
        assert!(!one_cpu.exceeds(one_cpu));
    }

    #[test]
    fn displays_as_percent_of_one_cpu() {
        assert_eq!(cpu(150_000).map(|c| c.to_string()), Some("150%".into()));
        assert_eq!(cpu(12_500).map(|c| c.to_string()), Some("12.5%".into()));
    }
}
