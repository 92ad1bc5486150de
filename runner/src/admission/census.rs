//! What is running now, from the runner records of live runners.

use std::collections::{BTreeMap, BTreeSet};

use crate::state::RunnerRecord;

/// Counts the caps are checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub servers: u64,
    pub sessions: BTreeSet<String>,
    /// Live servers per `--name`.
    pub instances: BTreeMap<String, u64>,
    /// Live servers per session.
    pub per_session: BTreeMap<String, u64>,
    /// The sum of the live servers' weights per session.
    pub session_weights: BTreeMap<String, u64>,
}

impl Census {
    /// Counts `records`, which must be the live runners only.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a RunnerRecord>) -> Census {
        let mut c = Census::default();
        for r in records {
            c.servers += 1;
            c.sessions.insert(r.session.clone());
            if let Some(name) = &r.name {
                *c.instances.entry(name.clone()).or_default() += 1;
            }
            *c.per_session.entry(r.session.clone()).or_default() += 1;
            *c.session_weights.entry(r.session.clone()).or_default() += u64::from(r.weight.max(1));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::record;

    #[test]
    fn counts() {
        let mut a = record(1);
        a.session = "s1".into();
        let mut b = record(2);
        b.session = "s1".into();
        b.weight = 3;
        let mut c = record(3);
        c.session = "s2".into();
        c.name = Some("other".into());
        let census = Census::of([&a, &b, &c]);
        assert_eq!(census.servers, 3);
        assert_eq!(census.sessions.len(), 2);
        assert_eq!(census.instances.get("github"), Some(&2));
        assert_eq!(census.per_session.get("s1"), Some(&2));
        assert_eq!(census.session_weights.get("s1"), Some(&4));
    }
}
