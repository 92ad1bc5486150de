//! Durations: a whole number and one unit, `"500ms"`, `"30s"`, `"10m"`, `"1h"`.
//!
//! Whole numbers only: `"1.5s"` is written `"1500ms"`, which keeps parsing
//! exact and leaves a single spelling for each value.

use std::time::Duration;

use crate::size::split_number;

pub(crate) const EXPECTED_DURATION: &str = r#"expected a duration like "500ms", "30s", "10m" or "1h""#;

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let n = split_number(s).ok_or(EXPECTED_DURATION)?;
    let unit_ms: u64 = match n.unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(EXPECTED_DURATION.into()),
    };
    if !n.frac.is_empty() {
        return Err(r#"use a whole number with a smaller unit, like "1500ms""#.into());
    }
    n.int
        .parse::<u64>()
        .ok()
        .and_then(|v| v.checked_mul(unit_ms))
        .map(Duration::from_millis)
        .ok_or_else(|| "too large".to_owned())
}

/// The largest unit that shows the duration exactly: `"90s"`, `"2m"`, `"1500ms"`.
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_owned()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2 s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn rejects_missing_or_unknown_units() {
        for s in ["", "30", "s", "30sec", "1d", "30S", "-1s", "1m30s", "never"] {
            assert_eq!(parse_duration(s), Err(EXPECTED_DURATION.to_owned()), "{s:?}");
        }
    }

    #[test]
    fn rejects_fractions_with_a_hint() {
        assert!(parse_duration("1.5s").unwrap_err().contains("1500ms"));
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(parse_duration("99999999999999999999h"), Err("too large".into()));
        assert_eq!(parse_duration("18446744073709552h"), Err("too large".into()));
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn formatted_durations_parse_back() {
        for ms in [0, 1, 500, 1500, 60_000, 3_600_000, 5_400_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
