//! The admission decision: a pure function of the census, the caps, the
//! measurements and the request, tested as a table.

use std::fmt;

use mcp_runner_policy::format_bytes;

use super::census::Census;
pub use crate::driver::levels::{Measured, Pressure};

/// The caps from the policy that admission checks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Caps {
    pub max_servers: Option<u32>,
    pub max_sessions: Option<u32>,
    pub session_max_servers: Option<u32>,
    pub max_instances: Option<u32>,
    pub min_headroom: u64,
    pub max_pressure: Option<f64>,
}

impl Caps {
    /// Whether the policy asks admission to check anything at all: any count
    /// cap, a headroom or a pressure limit. Only a policy that checks nothing
    /// may run a server when admission cannot be decided.
    pub fn any(&self) -> bool {
        let Caps { max_servers, max_sessions, session_max_servers, max_instances, min_headroom, max_pressure } = self;
        [max_servers, max_sessions, session_max_servers, max_instances].iter().any(|c| c.is_some())
            || *min_headroom > 0
            || max_pressure.is_some()
    }
}

/// Who asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub session: &'a str,
    pub name: Option<&'a str>,
}

/// Why a server may not start: which cap, how far over.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// The policy key.
    pub cap: &'static str,
    pub current: f64,
    pub limit: f64,
    /// "servers", "bytes", "percent".
    pub unit: &'static str,
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Refusal {
    /// Admission cannot be decided (the state directory, its lock or this
    /// runner's record cannot be used) and the policy has caps to check:
    /// refused rather than started unchecked.
    pub fn unavailable(why: impl fmt::Display) -> Refusal {
        Refusal {
            cap: "state_dir",
            current: 0.0,
            limit: 0.0,
            unit: "none",
            message: format!("admission control is unavailable: {why}"),
        }
    }
}

fn count_refusal(cap: &'static str, what: &str, current: u64, limit: u32) -> Refusal {
    Refusal {
        cap,
        current: current as f64,
        limit: f64::from(limit),
        unit: "servers",
        message: format!("{cap} {limit} reached: {current} {what} already running"),
    }
}

/// Admits the request or names the first cap it would break. Counts first
/// (they are exact), then memory headroom, then pressure.
pub fn admit(census: &Census, caps: &Caps, m: &Measured, req: &Request<'_>) -> Result<(), Refusal> {
    if let Some(limit) = caps.max_servers
        && census.servers >= u64::from(limit)
    {
        return Err(count_refusal("max_servers", "servers are", census.servers, limit));
    }
    let new_session = !census.sessions.contains(req.session);
    if let Some(limit) = caps.max_sessions
        && new_session
        && census.sessions.len() as u64 >= u64::from(limit)
    {
        let mut r = count_refusal("max_sessions", "sessions are", census.sessions.len() as u64, limit);
        r.unit = "sessions";
        return Err(r);
    }
    let in_session = census.per_session.get(req.session).copied().unwrap_or(0);
    if let Some(limit) = caps.session_max_servers
        && in_session >= u64::from(limit)
    {
        let mut r = count_refusal("max_servers", "servers of this session are", in_session, limit);
        r.message = format!(
            "the session's max_servers {limit} reached: {in_session} servers of this session are already running"
        );
        return Err(r);
    }
    if let (Some(limit), Some(name)) = (caps.max_instances, req.name) {
        let n = census.instances.get(name).copied().unwrap_or(0);
        if n >= u64::from(limit) {
            let mut r = count_refusal("max_instances", "", n, limit);
            r.message = format!("max_instances {limit} of '{name}' reached: {n} already running in all sessions");
            return Err(r);
        }
    }
    for (level, measured) in [("session's", &m.session_free), ("global", &m.global_free)] {
        if let Some((free, cap, place)) = measured
            && caps.min_headroom > 0
            && *free < caps.min_headroom
        {
            return Err(Refusal {
                cap: "min_headroom",
                current: *free as f64,
                limit: caps.min_headroom as f64,
                unit: "bytes",
                message: format!(
                    "no room under the {level} memory_max {}: {} free in {place}, min_headroom is {}",
                    format_bytes(*cap),
                    format_bytes(*free),
                    format_bytes(caps.min_headroom)
                ),
            });
        }
    }
    if let (Some(limit), Some(Pressure { percent, source })) = (caps.max_pressure, &m.pressure)
        && *percent > limit
    {
        return Err(Refusal {
            cap: "max_pressure",
            current: *percent,
            limit,
            unit: "percent",
            message: format!("memory pressure {percent:.1}% ({source}) is above max_pressure {limit:.0}%"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(sessions: &[(&str, u64)], instances: &[(&str, u64)]) -> Census {
        let mut c = Census::default();
        for (s, n) in sessions {
            c.sessions.insert(s.to_string());
            c.per_session.insert(s.to_string(), *n);
            c.servers += n;
        }
        for (name, n) in instances {
            c.instances.insert(name.to_string(), *n);
        }
        c
    }

    fn caps() -> Caps {
        Caps {
            max_servers: Some(4),
            max_sessions: Some(2),
            session_max_servers: Some(3),
            max_instances: Some(2),
            min_headroom: 64 << 20,
            max_pressure: Some(40.0),
        }
    }

    #[test]
    fn table() {
        let req = |s: &'static str, n: Option<&'static str>| Request { session: s, name: n };
        let none = Measured::default();
        let tight = Measured { session_free: Some((10 << 20, 1 << 30, "/x".into())), ..Measured::default() };
        let pressed = Measured {
            pressure: Some(Pressure { percent: 57.0, source: "PSI some over the last 1.0 s of /g".into() }),
            ..Measured::default()
        };
        let rows: Vec<(Census, Measured, Request<'_>, Option<&str>)> = vec![
            (census(&[], &[]), none.clone(), req("a", None), None),
            (census(&[("a", 2), ("b", 2)], &[]), none.clone(), req("a", None), Some("max_servers")),
            (census(&[("a", 1), ("b", 1)], &[]), none.clone(), req("c", None), Some("max_sessions")),
            (census(&[("a", 1), ("b", 1)], &[]), none.clone(), req("a", None), None),
            (census(&[("a", 3)], &[]), none.clone(), req("a", None), Some("max_servers")),
            (census(&[("a", 2)], &[("gh", 2)]), none.clone(), req("b", Some("gh")), Some("max_instances")),
            (census(&[("a", 1)], &[("gh", 1)]), none.clone(), req("a", Some("gh")), None),
            (census(&[], &[]), tight, req("a", None), Some("min_headroom")),
            (census(&[], &[]), pressed, req("a", None), Some("max_pressure")),
        ];
        for (i, (c, m, r, want)) in rows.into_iter().enumerate() {
            assert_eq!(admit(&c, &caps(), &m, &r).err().map(|e| e.cap), want, "row {i}");
        }
    }

    #[test]
    fn messages_say_which_cap_and_by_how_much() {
        let c = census(&[("a", 2), ("b", 2)], &[]);
        let e = admit(&c, &caps(), &Measured::default(), &Request { session: "a", name: None }).expect_err("refused");
        assert_eq!(e.to_string(), "max_servers 4 reached: 4 servers are already running");
        assert_eq!((e.current, e.limit), (4.0, 4.0));
        let m = Measured {
            global_free: Some((10 << 20, 8 << 30, "/sys/fs/cgroup/mcp-runner".into())),
            ..Default::default()
        };
        let e = admit(&census(&[], &[]), &caps(), &m, &Request { session: "a", name: None }).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "no room under the global memory_max 8.0 GiB: 10.0 MiB free in /sys/fs/cgroup/mcp-runner, min_headroom is 64.0 MiB"
        );
    }

    /// The refusal names the measure it judged (the driver's words), not
    /// one it did not: the message once said "PSI some avg10" whatever
    /// was read.
    // See: issue 9, finding 9.
    #[test]
    fn issue_9_pressure_refusals_name_their_measure() {
        let m = Measured {
            pressure: Some(Pressure {
                percent: 97.3,
                source: "PSI some over the last 1.0 s of /sys/fs/cgroup/mcp-runner".into(),
            }),
            ..Default::default()
        };
        let e = admit(&census(&[], &[]), &caps(), &m, &Request { session: "a", name: None }).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "memory pressure 97.3% (PSI some over the last 1.0 s of /sys/fs/cgroup/mcp-runner) is above max_pressure 40%"
        );
        assert_eq!((e.cap, e.current, e.limit, e.unit), ("max_pressure", 97.3, 40.0, "percent"));
    }

    #[test]
    fn no_caps_admit_anything() {
        let c = census(&[("a", 1000)], &[("x", 1000)]);
        let m = Measured {
            pressure: Some(Pressure { percent: 99.0, source: "/".into() }),
            session_free: Some((0, 1, "/".into())),
            ..Default::default()
        };
        let caps = Caps::default();
        assert!(!caps.any());
        assert_eq!(admit(&c, &caps, &m, &Request { session: "a", name: Some("x") }), Ok(()));
    }

    #[test]
    fn any_cap_counts() {
        let none = Caps::default();
        let each = [
            Caps { max_servers: Some(1), ..none.clone() },
            Caps { max_sessions: Some(1), ..none.clone() },
            Caps { session_max_servers: Some(1), ..none.clone() },
            Caps { max_instances: Some(1), ..none.clone() },
            Caps { min_headroom: 1, ..none.clone() },
            Caps { max_pressure: Some(40.0), ..none.clone() },
        ];
        for c in each {
            assert!(c.any(), "{c:?}");
        }
    }
}
