//! The cpu controller: cpu.max = "QUOTA PERIOD" in microseconds. The
//! controller is optional (Ubuntu 22.04 does not delegate it to users): an
//! unlimited budget without the controller is fine, a limit without it is
//! an error.

use mcp_runner_policy::CpuMax;

use super::fs::{CgroupDir, CgroupIoError};

pub const MAX: &str = "cpu.max";

pub fn value(cpu: Option<CpuMax>) -> String {
    match cpu {
        Some(c) => format!("{} {}", c.quota_us, c.period_us),
        None => "max".to_string(),
    }
}

pub fn apply(dir: &CgroupDir, cpu: Option<CpuMax>) -> Result<(), CgroupIoError> {
    if cpu.is_none() && !dir.file(MAX).exists() {
        return Ok(());
    }
    dir.write(MAX, &value(cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(value(None), "max");
        assert_eq!(value(Some(CpuMax { quota_us: 150_000, period_us: 100_000 })), "150000 100000");
    }
}
