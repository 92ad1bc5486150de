//! Sizes: `"512M"`, `"2G"`, `"25%"`, `"max"`, or a TOML integer of bytes.
//!
//! Every unit is a power of 1024 (`"1G"`, `"1GB"`, `"1GiB"` and `"1g"` are
//! the same 1073741824 bytes) because memory is sold and reported by the
//! kernel in binary units, and because two meanings for "G" in one file
//! would be a trap. A number without a unit is bytes.

use std::fmt;

pub(crate) const EXPECTED_SIZE: &str = r#"expected a size like "512M", "2G", "25%" or "max""#;

/// A fraction of a base, in parts per million so that `"12.5%"` is exact and
/// resolution is integer arithmetic that never rounds above the base.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Percent(u32);

pub(crate) const WHOLE: u32 = 1_000_000;

impl Percent {
    pub(crate) const fn from_ppm(ppm: u32) -> Self {
        Percent(ppm)
    }

    pub(crate) const fn ppm(self) -> u32 {
        self.0
    }

    /// Rounds down, so a percentage never resolves above its base.
    pub(crate) fn of(self, base: u64) -> u64 {
        let part = u128::from(base) * u128::from(self.0) / u128::from(WHOLE);
        u64::try_from(part).unwrap_or(base)
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 10_000;
        let frac = self.0 % 10_000;
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let digits = format!("{frac:04}");
            write!(f, "{whole}.{}%", digits.trim_end_matches('0'))
        }
    }
}

/// A size as written, before the base of a percentage is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Size {
    Bytes(u64),
    Percent(Percent),
    Max,
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Bytes(n) => f.write_str(&format_bytes(*n)),
            Size::Percent(p) => write!(f, "\"{p}\""),
            Size::Max => f.write_str("\"max\""),
        }
    }
}

/// A decimal number split from its unit: `"1.5 GiB"` -> `1`, `5`, `GiB`.
pub(crate) struct Number<'a> {
    pub(crate) int: &'a str,
    pub(crate) frac: &'a str,
    pub(crate) unit: &'a str,
}

/// Digits, an optional fraction, at most one space, then the unit. No sign,
/// no exponent: nothing in a policy is negative or astronomically large.
pub(crate) fn split_number(s: &str) -> Option<Number<'_>> {
    let digits_end = |t: &str| t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let int_end = digits_end(s);
    if int_end == 0 {
        return None;
    }
    let (int, rest) = s.split_at(int_end);
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(after) => {
            let end = digits_end(after);
            if end == 0 {
                return None;
            }
            after.split_at(end)
        }
        None => ("", rest),
    };
    let unit = rest.strip_prefix(' ').unwrap_or(rest);
    Some(Number { int, frac, unit })
}

/// The percentage in `n` (whose unit is `%`), in parts per million, unbounded
/// above because a CPU percentage may exceed 100.
pub(crate) fn percent_ppm(n: &Number<'_>) -> Result<u64, String> {
    if n.frac.len() > 4 {
        return Err("a percentage has at most 4 decimal places".into());
    }
    let too_large = || "percentage too large".to_owned();
    let int: u64 = n.int.parse().map_err(|_| too_large())?;
    let frac: u64 = if n.frac.is_empty() {
        0
    } else {
        let scale = 10u64.pow(4 - n.frac.len() as u32);
        n.frac.parse::<u64>().map_err(|_| too_large())? * scale
    };
    int.checked_mul(10_000).and_then(|v| v.checked_add(frac)).ok_or_else(too_large)
}

fn unit_multiplier(unit: &str) -> Option<u64> {
    if unit.is_empty() || unit.eq_ignore_ascii_case("b") {
        return Some(1);
    }
    let mut chars = unit.chars();
    let power = match chars.next()?.to_ascii_uppercase() {
        'K' => 1,
        'M' => 2,
        'G' => 3,
        'T' => 4,
        _ => return None,
    };
    let suffix = chars.as_str().to_ascii_lowercase();
    matches!(suffix.as_str(), "" | "i" | "b" | "ib").then(|| 1024u64.pow(power))
}

/// Parses the string form of a size.
pub(crate) fn parse_size(s: &str) -> Result<Size, String> {
    if s == "max" {
        return Ok(Size::Max);
    }
    let n = split_number(s).ok_or(EXPECTED_SIZE)?;
    if n.unit == "%" {
        let ppm = percent_ppm(&n)?;
        return match u32::try_from(ppm) {
            Ok(ppm) if ppm > 0 && ppm <= WHOLE => Ok(Size::Percent(Percent(ppm))),
            _ => Err("a percentage must be above 0% and at most 100%".into()),
        };
    }
    let mult = unit_multiplier(n.unit).ok_or(EXPECTED_SIZE)?;
    if mult == 1 && !n.frac.is_empty() {
        return Err(r#"a number of bytes must be whole; use a unit for fractions, like "1.5G""#.into());
    }
    if n.frac.len() > 9 {
        return Err("a size has at most 9 decimal places".into());
    }
    let too_large = || "too large: a size must fit in 64 bits (16 EiB)".to_owned();
    let int: u128 = n.int.parse().map_err(|_| too_large())?;
    let frac_bytes = if n.frac.is_empty() {
        0
    } else {
        let frac: u128 = n.frac.parse().map_err(|_| too_large())?;
        frac * u128::from(mult) / 10u128.pow(n.frac.len() as u32)
    };
    int.checked_mul(u128::from(mult))
        .and_then(|b| b.checked_add(frac_bytes))
        .and_then(|b| u64::try_from(b).ok())
        .map(Size::Bytes)
        .ok_or_else(too_large)
}

/// Human-readable binary size with about three significant digits:
/// `"512 MiB"`, `"1.5 GiB"`, `"8.0 GiB"`, `"100 B"`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = if value >= 99.95 { format!("{value:.0}") } else { format!("{value:.1}") };
    // Rounding can carry into the next unit: 1023.7 MiB is "1.0 GiB".
    if text == "1024" && unit < UNITS.len() - 1 {
        return format!("1.0 {}", UNITS[unit + 1]);
    }
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    const KI: u64 = 1024;
    const MI: u64 = KI * 1024;
    const GI: u64 = MI * 1024;

    fn bytes(s: &str) -> u64 {
        match parse_size(s) {
            Ok(Size::Bytes(b)) => b,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn every_unit_spelling_is_binary() {
        for s in ["1G", "1g", "1GB", "1Gb", "1GiB", "1gib", "1Gi", "1 GiB"] {
            assert_eq!(bytes(s), GI, "{s}");
        }
        assert_eq!(bytes("512M"), 512 * MI);
        assert_eq!(bytes("512MB"), 512 * MI);
        assert_eq!(bytes("4K"), 4 * KI);
        assert_eq!(bytes("2T"), 2 * GI * KI);
    }

    #[test]
    fn bare_numbers_and_b_are_bytes() {
        assert_eq!(bytes("0"), 0);
        assert_eq!(bytes("4096"), 4096);
        assert_eq!(bytes("512B"), 512);
    }

    #[test]
    fn fractions_need_a_unit_and_round_down() {
        assert_eq!(bytes("1.5G"), GI + GI / 2);
        assert_eq!(bytes("0.1K"), 102);
        assert!(parse_size("1.5").unwrap_err().contains("whole"));
        assert!(parse_size("1.5B").unwrap_err().contains("whole"));
    }

    #[test]
    fn rejects_anything_ambiguous() {
        for s in
            ["", "G", "12Q", "1.G", ".5G", "-1G", "+1G", "1e9", " 1G", "1G ", "1  G", "1KiBB", "1iB", "MAX", "1,5G"]
        {
            assert_eq!(parse_size(s), Err(EXPECTED_SIZE.to_owned()), "{s:?}");
        }
    }

    #[test]
    fn rejects_sizes_beyond_64_bits() {
        assert!(parse_size("16777216T").unwrap_err().contains("64 bits"));
        assert!(parse_size("99999999999999999999999").unwrap_err().contains("64 bits"));
        assert_eq!(bytes("16777215T"), 16_777_215 * 1024 * GI);
    }

    #[test]
    fn percentages_are_above_zero_and_at_most_100() {
        assert_eq!(parse_size("25%"), Ok(Size::Percent(Percent(250_000))));
        assert_eq!(parse_size("12.5%"), Ok(Size::Percent(Percent(125_000))));
        assert_eq!(parse_size("100%"), Ok(Size::Percent(Percent(WHOLE))));
        assert_eq!(parse_size("0.0001%"), Ok(Size::Percent(Percent(1))));
        for s in ["0%", "0.0%", "100.01%", "250%"] {
            assert!(parse_size(s).unwrap_err().contains("at most 100%"), "{s}");
        }
        assert!(parse_size("1.00001%").unwrap_err().contains("4 decimal"));
    }

    #[test]
    fn max_is_unlimited() {
        assert_eq!(parse_size("max"), Ok(Size::Max));
    }

    #[test]
    fn percent_of_rounds_down_and_never_exceeds_base() {
        assert_eq!(Percent(500_000).of(3), 1);
        assert_eq!(Percent(WHOLE).of(u64::MAX), u64::MAX);
        assert_eq!(Percent(333_333).of(100), 33);
    }

    #[test]
    fn percent_displays_as_written() {
        assert_eq!(Percent(500_000).to_string(), "50%");
        assert_eq!(Percent(125_000).to_string(), "12.5%");
        assert_eq!(Percent(1).to_string(), "0.0001%");
    }

    #[test]
    fn formats_with_three_significant_digits() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(512 * MI), "512 MiB");
        assert_eq!(format_bytes(GI + GI / 2), "1.5 GiB");
        assert_eq!(format_bytes(8 * GI), "8.0 GiB");
        assert_eq!(format_bytes(1024 * MI - 1), "1.0 GiB");
        assert_eq!(format_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn formatted_sizes_parse_back() {
        for n in [512 * MI, GI + GI / 2, 8 * GI, 100] {
            assert_eq!(bytes(&format_bytes(n)), n);
        }
    }
}
