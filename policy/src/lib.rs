//! Policy files for mcp-runner: what budget each MCP server gets.
//!
//! A policy is a TOML file with four kinds of sections: `[global]` caps
//! every server of every session together, `[session]` is the slice each
//! client process gets, `[defaults]` applies to every server, and
//! `[server.NAME]` overrides it for one server, matched by `--name` or by
//! `match` patterns over the command line.
//!
//! Loading ([`load`], [`from_str`]) checks everything that does not depend
//! on the host; [`Policy::resolve`] turns percentages into bytes for one
//! host and checks the rest. Every error names `file:line:column` and what
//! would be valid, and all errors of a file are reported together.
//!
//! Parsing takes strings and budget math takes numbers; the only I/O is the
//! file read in [`load`], so everything else is tested without a host.
//!
//! # Rules worth knowing
//!
//! - A memory percentage is of the nearest limited `memory_max` above the
//!   section (physical memory at the top); `memory_high` as a percentage is
//!   of its own section's `memory_max` first. Percentages round down, so
//!   they never exceed their base.
//! - A value written in the file that breaks the hierarchy (a server above
//!   its session, `memory_high` above `memory_max`) is an error, never
//!   clamped. A *built-in* default above a limit the user wrote is lowered
//!   to it instead: writing `pids_max = 500` in `[global]` should not
//!   require restating every level below.
//! - `None` in [`Limits`] means "no limit of this level's own": the levels
//!   above still apply. [`Effective::tightest`] folds them for drivers that
//!   have no hierarchy.
//! - `[session] floor` and `[global] min_headroom` must fit under the
//!   session's memory_max (the global one if the session has none), by the
//!   same rule: written above it is an error, a built-in is lowered to it.
//! - With several sessions live, [`session_shares`] splits the global
//!   memory_max between them by weight, within `[floor, session
//!   memory_max]`; [`session_high`] scales memory_high to a share.
//! - The privilege keys (`no_new_privs`, `drop_capabilities`, `user`,
//!   `group`) are checked for type and spelling here. Whether they can be
//!   applied (the runner is root, the name exists, the platform has them)
//!   is the runner's question on the host; each comes as a [`Setting`] with
//!   its position, so those errors point into the file as well.
//!
//! # Why these defaults
//!
//! Sized for a 16-32 GB laptop running about a dozen configured servers in
//! a few clients at once. All MCP servers together get at most half of
//! physical memory, so the desktop stays usable whatever they do; a session
//! gets half of that (two runaway clients cannot starve a third), and one
//! server half of its session: 2 GiB on 16 GB, over ten times what a
//! typical Node server (~150 MB) uses, yet a leak is stopped long before
//! it matters. Servers get no swap, so a leak ends in a clean kill instead
//! of a thrashing machine, and a server pinned at `memory_high` for 60 s is
//! killed rather than left hanging its client. Counts (1024 pids per
//! server, 32 servers per session, 64 in all, 16 sessions) stop fork bombs
//! and respawn loops while staying far above normal use. A new server is
//! admitted with 64 MiB free under its session's and the global
//! memory_max and memory pressure under 40%, and refused at once otherwise:
//! a client is better served by a clear refusal than by a hung spawn.

#![forbid(unsafe_code)]

mod account;
mod budget;
mod builtin;
mod cpu;
mod decode;
mod diag;
mod duration;
mod glob;
mod located;
mod report;
mod resolve;
mod schema;
mod shares;
mod size;

use std::path::Path;

pub use account::Account;
pub use budget::{
    DriverPref, Effective, Enforcement, GlobalBudget, HostMemory, Limits, Privileges, ServerBudget, ServerRequest,
    SessionBudget, Setting, Share,
};
pub use cpu::CpuMax;
pub use diag::{Diagnostic, PolicyError};
pub use located::Location;
pub use report::{Report, ServerReport};
pub use shares::{session_high, session_shares};
pub use size::format_bytes;

use resolve::Resolver;
use schema::PolicyFile;

const BUILTIN_ORIGIN: &str = "built-in defaults";

/// A policy that passed every check that does not depend on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    origin: String,
    file: PolicyFile,
}

/// Parses and checks a policy; `origin` prefixes every error (usually a path).
pub fn from_str(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    let file = decode::decode(text, origin).map_err(PolicyError::new)?;
    let problems = resolve::check(&file, origin);
    if !problems.is_empty() {
        return Err(PolicyError::new(problems));
    }
    Ok(Policy { origin: origin.to_owned(), file })
}

/// Reads and checks a policy file; errors are prefixed with its path.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| PolicyError::io(&origin, &e))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => from_str(text, &origin),
        Err(e) => Err(PolicyError::new(vec![Diagnostic {
            location: Some(Location::of_offset(&bytes, e.valid_up_to())),
            origin,
            message: "invalid UTF-8: a policy file must be UTF-8 text".into(),
        }])),
    }
}

/// The policy used when there is no file: the runner must be useful without one.
pub fn builtin() -> Policy {
    Policy { origin: BUILTIN_ORIGIN.to_owned(), file: PolicyFile::default() }
}

impl Policy {
    /// Which file it came from ("built-in defaults" for [`builtin`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The budget of one server on this host, at every level.
    pub fn resolve(&self, req: &ServerRequest<'_>, host: &HostMemory) -> Result<Effective, PolicyError> {
        let mut resolver = Resolver::new(&self.file, &self.origin, Some(host.physical_bytes));
        let effective = resolver.one(self.file.entry_for(req));
        let problems = resolver.into_diagnostics();
        if !problems.is_empty() {
            return Err(PolicyError::new(problems));
        }
        Ok(effective)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The example from the design brief, verbatim.
    pub(crate) const EXAMPLE: &str = r#"
[global]                      # the cap over every server of every session
memory_max = "50%"            # of physical RAM; "max" = no limit
memory_high = "90%"           # a percentage here means: of THIS section's memory_max
swap_max = "max"
pids_max = 8192               # integer or "max"
cpu_max = "max"               # "150%" = 1.5 CPUs (quota 150000 per period 100000 us), or "max"
max_servers = 64              # integer or "max"
max_sessions = 16
driver = "auto"               # auto | systemd | cgroupfs | userland
cgroup_root = "/sys/fs/cgroup/mcp-runner"   # optional absolute path

[session]                     # each session (one client process) gets this slice
memory_max = "50%"            # of the global memory_max (of physical RAM if global is "max")
memory_high = "90%"
swap_max = "max"
pids_max = 4096
cpu_max = "max"
max_servers = 32

[defaults]                    # every server unless its entry overrides
memory_max = "50%"            # of the session memory_max
memory_high = "80%"           # of this memory_max
swap_max = "0"
pids_max = 1024
cpu_max = "max"
grace = "3s"                  # after session close, time for the server to exit by itself
kill_timeout = "2s"           # after SIGTERM, time before SIGKILL
sample_interval = "500ms"     # userland driver: how often the tree's memory is measured
throttle_timeout = "60s"      # how long a server may stay pinned at memory_high; "never" to disable
require = "any"               # any | kernel  (kernel: refuse to start without cgroup enforcement)
share = "never"               # never | auto | always
idle_timeout = "5m"           # a shared server stays up this long after its last client
max_instances = "max"         # at most this many live servers with this name, all sessions together

[server.github]               # an entry, matched by `--name github`
memory_max = "1G"
match = ["npx * @modelcontextprotocol/server-github*"]   # optional: glob patterns over the command line
"#;

    pub(crate) const GIB: u64 = 1 << 30;
    pub(crate) const HOST_16G: HostMemory = HostMemory { physical_bytes: 16 * GIB };

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn scratch_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mcp-runner-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Best effort: the directory goes once the last test using it is done.
    fn discard(path: &std::path::Path) {
        std::fs::remove_file(path).ok();
        if let Some(dir) = path.parent() {
            std::fs::remove_dir(dir).ok();
        }
    }

    #[test]
    fn an_empty_file_is_the_builtin_policy() {
        let empty = from_str("", "empty.toml").unwrap();
        let args = argv(&["node", "x.js"]);
        let req = ServerRequest { name: None, argv: &args };
        assert_eq!(empty.resolve(&req, &HOST_16G).unwrap(), builtin().resolve(&req, &HOST_16G).unwrap());
        assert_eq!(empty.origin(), "empty.toml");
        assert_eq!(builtin().origin(), "built-in defaults");
    }

    #[test]
    fn the_example_spells_out_the_builtin_defaults() {
        let example = from_str(EXAMPLE, "example.toml").unwrap();
        let args = argv(&["python3", "srv.py"]);
        let req = ServerRequest { name: None, argv: &args };
        let mut from_example = example.resolve(&req, &HOST_16G).unwrap();
        let from_builtin = builtin().resolve(&req, &HOST_16G).unwrap();
        assert_eq!(from_example.global.cgroup_root.take(), Some("/sys/fs/cgroup/mcp-runner".into()));
        assert_eq!(from_example, from_builtin);
    }

    #[test]
    fn builtin_budgets_on_a_16_gib_laptop() {
        let args = argv(&["npx", "-y", "some-server"]);
        let req = ServerRequest { name: Some("anything"), argv: &args };
        let e = builtin().resolve(&req, &HOST_16G).unwrap();
        assert_eq!(e.global.limits.memory_max, Some(8 * GIB));
        assert_eq!(e.global.limits.memory_high, Some(8 * GIB * 9 / 10));
        assert_eq!(e.session.limits.memory_max, Some(4 * GIB));
        assert_eq!(e.server.limits.memory_max, Some(2 * GIB));
        assert_eq!(e.server.limits.memory_high, Some(2 * GIB * 8 / 10));
        assert_eq!(e.server.limits.swap_max, Some(0));
        assert_eq!(e.server.limits.pids_max, Some(1024));
        assert_eq!(e.server.limits.cpu_max, None);
        assert_eq!(e.server.entry, None);
        assert_eq!(e.server.throttle_timeout, Some(std::time::Duration::from_secs(60)));
        assert_eq!(e.global.max_sessions, Some(16));
        assert_eq!(e.session.max_servers, Some(32));
        assert_eq!(e.global.driver, DriverPref::Auto);
        assert_eq!(e.server.require, Enforcement::Any);
        assert_eq!(e.server.share, Share::Never);
        assert_eq!(e.global.admission_wait, std::time::Duration::from_secs(3));
        assert_eq!(e.global.min_headroom, 64 << 20);
        assert_eq!(e.global.max_pressure, Some(40.0));
        assert_eq!(e.session.floor, 8 * GIB / 10);
        assert_eq!(e.server.weight, 1);
    }

    #[test]
    fn the_admission_defaults_spelled_out_are_the_builtin_ones() {
        let text = "[global]\nadmission_wait = \"3s\"\nmin_headroom = \"64M\"\nmax_pressure = \"40%\"\n\
                    [session]\nfloor = \"10%\"\n[defaults]\nweight = 1\n";
        let args = argv(&["node", "x.js"]);
        let req = ServerRequest { name: None, argv: &args };
        let spelled = from_str(text, "p.toml").unwrap();
        assert_eq!(spelled.resolve(&req, &HOST_16G).unwrap(), builtin().resolve(&req, &HOST_16G).unwrap());
    }

    #[test]
    fn requests_match_by_name_then_pattern() {
        let policy = from_str(EXAMPLE, "example.toml").unwrap();
        let args = argv(&["npx", "-y", "@modelcontextprotocol/server-github"]);
        let by_pattern = ServerRequest { name: None, argv: &args };
        let e = policy.resolve(&by_pattern, &HOST_16G).unwrap();
        assert_eq!(e.server.entry.as_deref(), Some("github"));
        assert_eq!(e.server.limits.memory_max, Some(GIB));
        assert_eq!(e.server.limits.memory_high, Some(GIB * 8 / 10));

        let other = argv(&["uvx", "mcp-server-fetch"]);
        let by_name = ServerRequest { name: Some("github"), argv: &other };
        let e = policy.resolve(&by_name, &HOST_16G).unwrap();
        assert_eq!(e.server.entry.as_deref(), Some("github"));

        let unmatched = ServerRequest { name: Some("fetch"), argv: &other };
        let e = policy.resolve(&unmatched, &HOST_16G).unwrap();
        assert_eq!(e.server.entry, None);
        assert_eq!(e.server.limits.memory_max, Some(2 * GIB));
    }

    #[test]
    fn load_prefixes_errors_with_the_path() {
        let path = scratch_file("bad.toml", b"[global]\npids_max = \"lots\"\n");
        let err = load(&path).unwrap_err();
        discard(&path);
        assert_eq!(
            err.to_string(),
            format!("{}:2:12: invalid pids_max \"lots\": expected a positive integer or \"max\"", path.display())
        );
    }

    #[test]
    fn load_reads_a_good_file() {
        let path = scratch_file("good.toml", EXAMPLE.as_bytes());
        let policy = load(&path).unwrap();
        discard(&path);
        assert_eq!(policy.origin(), path.display().to_string());
    }

    #[test]
    fn load_reports_a_missing_file_with_its_kind() {
        let path = std::path::Path::new("/nonexistent/mcp-runner/policy.toml");
        let err = load(path).unwrap_err();
        assert_eq!(err.io_error_kind(), Some(std::io::ErrorKind::NotFound));
        assert!(
            err.to_string().starts_with("/nonexistent/mcp-runner/policy.toml: failed to read policy file: "),
            "{err}"
        );
    }

    #[test]
    fn load_points_at_invalid_utf8() {
        let path = scratch_file("latin1.toml", b"[global]\n# caf\xe9\n");
        let err = load(&path).unwrap_err();
        discard(&path);
        assert_eq!(err.to_string(), format!("{}:2:6: invalid UTF-8: a policy file must be UTF-8 text", path.display()));
    }
}
