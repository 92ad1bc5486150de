//! Log levels (2025-11-25 `server/utilities/logging.mdx`, `LoggingLevel`):
//! the syslog severities of RFC 5424 section 6.2.1, most verbose first.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

const NAMES: [(&str, Level); 8] = [
    ("debug", Level::Debug),
    ("info", Level::Info),
    ("notice", Level::Notice),
    ("warning", Level::Warning),
    ("error", Level::Error),
    ("critical", Level::Critical),
    ("alert", Level::Alert),
    ("emergency", Level::Emergency),
];

impl Level {
    pub fn parse(name: &str) -> Option<Level> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
    }

    pub fn name(self) -> &'static str {
        NAMES.iter().find(|(_, l)| *l == self).map_or("debug", |(n, _)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_rfc5424_order() {
        let all: Vec<Level> = NAMES.iter().map(|(n, _)| Level::parse(n).expect("known")).collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert!(all.iter().all(|l| Level::parse(l.name()) == Some(*l)));
        assert_eq!(Level::parse("DEBUG"), None);
        assert_eq!(Level::parse("warn"), None);
    }
}
