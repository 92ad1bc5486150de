//! Policy resolution on any host: a policy that loads resolves to budgets
//! that keep the hierarchy (no level above the nearest limit over it,
//! memory_high under memory_max, the floor under the session's cap), and
//! `policy check`'s report agrees with what each server gets at run time.
//!
//! Input: 8 bytes of physical memory (little endian), then the policy text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_runner_policy::{CpuMax, Effective, HostMemory, Limits, ServerRequest, from_str};

fuzz_target!(|data: &[u8]| {
    let Some((memory, text)) = data.split_first_chunk::<8>() else { return };
    let host = HostMemory { physical_bytes: u64::from_le_bytes(*memory) };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let Ok(policy) = from_str(text, "fuzz.toml") else { return };

    let argvs: [Vec<String>; 3] = [
        vec![],
        words(&["npx", "-y", "@modelcontextprotocol/server-github"]),
        words(&["uvx", "mcp-server-fetch", "--flag"]),
    ];
    for name in [None, Some("github"), Some("fetch"), Some("")] {
        for argv in &argvs {
            let request = ServerRequest { name, argv };
            match policy.resolve(&request, &host) {
                Ok(e) => check(&e),
                Err(error) => assert!(!error.diagnostics().is_empty()),
            }
        }
    }

    let Ok(report) = policy.report(&host) else { return };
    let _ = report.to_string();
    for server in &report.servers {
        // [defaults] can only be asked for by a command no pattern matches.
        let Some(name) = server.budget.entry.as_deref() else { continue };
        let request = ServerRequest { name: Some(name), argv: &argvs[0] };
        let e = policy.resolve(&request, &host).expect("the report resolved every entry");
        assert_eq!(e.server, server.budget, "[server.{name}]: run time and report differ");
        assert_eq!(e.session, report.session);
        assert_eq!(e.global, report.global);
    }
});

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| (*s).to_owned()).collect()
}

/// Whether `a` allows more CPU than `b`, across periods.
fn cpu_above(a: CpuMax, b: CpuMax) -> bool {
    u128::from(a.quota_us) * u128::from(b.period_us) > u128::from(b.quota_us) * u128::from(a.period_us)
}

/// One limit of a level.
type Get = fn(&Limits) -> Option<u64>;

fn check(e: &Effective) {
    let levels = [("global", &e.global.limits), ("session", &e.session.limits), ("server", &e.server.limits)];
    let keys: [(&str, Get); 3] =
        [("memory_max", |l| l.memory_max), ("swap_max", |l| l.swap_max), ("pids_max", |l| l.pids_max)];
    for (key, get) in keys {
        let mut ceiling: Option<(&str, u64)> = None;
        for (level, limits) in levels {
            let Some(value) = get(limits) else { continue };
            if let Some((above, limit)) = ceiling {
                assert!(value <= limit, "{level} {key} {value} above {above} {limit}: {e:#?}");
            }
            ceiling = Some((level, value));
        }
    }
    let mut cpu_ceiling = None;
    for (level, limits) in levels {
        let Some(cpu) = limits.cpu_max else { continue };
        if let Some(limit) = cpu_ceiling {
            assert!(!cpu_above(cpu, limit), "{level} cpu_max {cpu} above {limit}: {e:#?}");
        }
        cpu_ceiling = Some(cpu);
    }
    for (level, limits) in levels {
        if let (Some(high), Some(max)) = (limits.memory_high, limits.memory_max) {
            assert!(high <= max, "{level} memory_high {high} above memory_max {max}: {e:#?}");
        }
    }
    let session_cap = e.session.limits.memory_max.or(e.global.limits.memory_max);
    if let Some(cap) = session_cap {
        assert!(e.session.floor <= cap, "floor {} above the session's cap {cap}: {e:#?}", e.session.floor);
        assert!(e.global.min_headroom <= cap, "min_headroom {} above {cap}: {e:#?}", e.global.min_headroom);
    }
    assert!(e.server.weight > 0);
}
