//! The policy as written: one typed struct per section.
//!
//! Every field is optional and keeps its position. "Not written" must stay
//! distinguishable from "written with the built-in value" until resolution,
//! because a server entry inherits from `[defaults]` only what it does not
//! set itself, and because a built-in default and a written value are
//! treated differently when they conflict with a parent (see `resolve`).

use std::path::PathBuf;
use std::time::Duration;

use crate::account::Account;
use crate::budget::{DriverPref, Enforcement, ServerRequest, Share};
use crate::cpu::CpuMax;
use crate::glob::Glob;
use crate::located::{Located, Location};
use crate::size::{Percent, Size};

/// Optional value with its position.
pub(crate) type Opt<T> = Option<Located<T>>;

/// A count where `None` is `"max"`.
pub(crate) type Count<T> = Option<T>;

/// Keys shared by every level of the hierarchy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LimitKeys {
    pub(crate) memory_max: Opt<Size>,
    pub(crate) memory_high: Opt<Size>,
    pub(crate) swap_max: Opt<Size>,
    pub(crate) pids_max: Opt<Count<u64>>,
    pub(crate) cpu_max: Opt<Option<CpuMax>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GlobalKeys {
    pub(crate) limits: LimitKeys,
    pub(crate) max_servers: Opt<Count<u32>>,
    pub(crate) max_sessions: Opt<Count<u32>>,
    pub(crate) driver: Opt<DriverPref>,
    pub(crate) cgroup_root: Opt<PathBuf>,
    pub(crate) admission_wait: Opt<Duration>,
    /// `Size::Bytes(0)` disables the check; never `Size::Max`.
    pub(crate) min_headroom: Opt<Size>,
    /// Inner `None` is `"max"`.
    pub(crate) max_pressure: Opt<Option<Percent>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionKeys {
    pub(crate) limits: LimitKeys,
    pub(crate) max_servers: Opt<Count<u32>>,
    /// Never `Size::Max` or 0.
    pub(crate) floor: Opt<Size>,
}

/// `[defaults]`, and the overrides of one `[server.NAME]` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ServerKeys {
    pub(crate) limits: LimitKeys,
    pub(crate) grace: Opt<Duration>,
    pub(crate) kill_timeout: Opt<Duration>,
    pub(crate) sample_interval: Opt<Duration>,
    /// Inner `None` is `"never"`.
    pub(crate) throttle_timeout: Opt<Option<Duration>>,
    pub(crate) require: Opt<Enforcement>,
    pub(crate) share: Opt<Share>,
    pub(crate) idle_timeout: Opt<Duration>,
    pub(crate) max_instances: Opt<Count<u32>>,
    pub(crate) weight: Opt<u32>,
    pub(crate) no_new_privs: Opt<bool>,
    pub(crate) drop_capabilities: Opt<bool>,
    pub(crate) user: Opt<Account>,
    pub(crate) group: Opt<Account>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) at: Location,
    pub(crate) keys: ServerKeys,
    pub(crate) patterns: Vec<Located<Glob>>,
}

impl Entry {
    pub(crate) fn label(&self) -> String {
        entry_label(&self.name)
    }
}

/// `[server.github]`, quoting the name the way TOML would need it.
pub(crate) fn entry_label(name: &str) -> String {
    let bare = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { format!("[server.{name}]") } else { format!("[server.{name:?}]") }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PolicyFile {
    pub(crate) global: GlobalKeys,
    pub(crate) session: SessionKeys,
    pub(crate) defaults: ServerKeys,
    /// In file order, which decides between entries whose patterns overlap.
    pub(crate) entries: Vec<Entry>,
}

impl PolicyFile {
    /// An entry named like the request wins; otherwise the first entry, in
    /// file order, with a pattern matching the command line.
    pub(crate) fn entry_for(&self, req: &ServerRequest<'_>) -> Option<&Entry> {
        let named = req.name.and_then(|name| self.entries.iter().find(|e| e.name == name));
        if named.is_some() {
            return named;
        }
        let command_line = req.argv.join(" ");
        self.entries.iter().find(|e| e.patterns.iter().any(|p| p.value.matches(&command_line)))
    }
}

pub(crate) const SECTIONS: &[&str] = &["global", "session", "defaults", "server"];

pub(crate) const GLOBAL_KEYS: &[&str] = &[
    "memory_max",
    "memory_high",
    "swap_max",
    "pids_max",
    "cpu_max",
    "max_servers",
    "max_sessions",
    "driver",
    "cgroup_root",
    "admission_wait",
    "min_headroom",
    "max_pressure",
];
pub(crate) const SESSION_KEYS: &[&str] =
    &["memory_max", "memory_high", "swap_max", "pids_max", "cpu_max", "max_servers", "floor"];
pub(crate) const DEFAULTS_KEYS: &[&str] = &[
    "memory_max",
    "memory_high",
    "swap_max",
    "pids_max",
    "cpu_max",
    "grace",
    "kill_timeout",
    "sample_interval",
    "throttle_timeout",
    "require",
    "share",
    "idle_timeout",
    "max_instances",
    "weight",
    "no_new_privs",
    "drop_capabilities",
    "user",
    "group",
];
pub(crate) const SERVER_KEYS: &[&str] = &[
    "memory_max",
    "memory_high",
    "swap_max",
    "pids_max",
    "cpu_max",
    "grace",
    "kill_timeout",
    "sample_interval",
    "throttle_timeout",
    "require",
    "share",
    "idle_timeout",
    "max_instances",
    "weight",
    "no_new_privs",
    "drop_capabilities",
    "user",
    "group",
    "match",
];

/// Where a key is valid, for "it belongs in [global]" hints.
pub(crate) fn sections_with_key(key: &str) -> Vec<&'static str> {
    [
        ("[global]", GLOBAL_KEYS),
        ("[session]", SESSION_KEYS),
        ("[defaults]", DEFAULTS_KEYS),
        ("[server.NAME]", SERVER_KEYS),
    ]
    .into_iter()
    .filter(|(_, keys)| keys.contains(&key))
    .map(|(section, _)| section)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, patterns: &[&str]) -> Entry {
        let at = Location { line: 1, column: 1 };
        Entry {
            name: name.into(),
            at,
            keys: ServerKeys::default(),
            patterns: patterns.iter().map(|p| Located::new(Glob::new(p), at)).collect(),
        }
    }

    fn matched<'f>(file: &'f PolicyFile, name: Option<&str>, argv: &[&str]) -> Option<&'f str> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let req = ServerRequest { name, argv: &argv };
        file.entry_for(&req).map(|e| e.name.as_str())
    }

    fn file() -> PolicyFile {
        PolicyFile {
            entries: vec![
                entry("github", &["npx * @modelcontextprotocol/server-github*"]),
                entry("node-any", &["node *", "npx *"]),
                entry("fs", &["npx * @modelcontextprotocol/server-filesystem *"]),
            ],
            ..PolicyFile::default()
        }
    }

    #[test]
    fn name_wins_over_patterns() {
        let f = file();
        assert_eq!(matched(&f, Some("fs"), &["node", "x.js"]), Some("fs"));
    }

    #[test]
    fn unknown_name_falls_back_to_patterns() {
        let f = file();
        assert_eq!(matched(&f, Some("nope"), &["node", "x.js"]), Some("node-any"));
    }

    #[test]
    fn first_matching_entry_in_file_order_wins() {
        let f = file();
        let argv = ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/tmp"];
        assert_eq!(matched(&f, None, &argv), Some("node-any"));
        let argv = ["npx", "-y", "@modelcontextprotocol/server-github"];
        assert_eq!(matched(&f, None, &argv), Some("github"));
    }

    #[test]
    fn patterns_see_argv_joined_with_single_spaces() {
        let f = PolicyFile { entries: vec![entry("spaced", &["uvx mcp-server-fetch --x"])], ..PolicyFile::default() };
        assert_eq!(matched(&f, None, &["uvx", "mcp-server-fetch", "--x"]), Some("spaced"));
        assert_eq!(matched(&f, None, &["uvx", "mcp-server-fetch"]), None);
    }

    #[test]
    fn no_match_means_defaults() {
        assert_eq!(matched(&file(), None, &["python3", "srv.py"]), None);
        assert_eq!(matched(&file(), None, &[]), None);
    }

    #[test]
    fn labels_quote_names_toml_would_quote() {
        assert_eq!(entry_label("github"), "[server.github]");
        assert_eq!(entry_label("my-srv_2"), "[server.my-srv_2]");
        assert_eq!(entry_label("my server"), "[server.\"my server\"]");
        assert_eq!(entry_label("a.b"), "[server.\"a.b\"]");
    }

    #[test]
    fn key_lists_are_consistent() {
        assert_eq!(&SERVER_KEYS[..DEFAULTS_KEYS.len()], DEFAULTS_KEYS);
        assert_eq!(&DEFAULTS_KEYS[..5], &SESSION_KEYS[..5]);
        assert_eq!(&GLOBAL_KEYS[..6], &SESSION_KEYS[..6]);
        assert_eq!(sections_with_key("max_sessions"), ["[global]"]);
        for key in ["admission_wait", "min_headroom", "max_pressure"] {
            assert_eq!(sections_with_key(key), ["[global]"], "{key}");
        }
        assert_eq!(sections_with_key("floor"), ["[session]"]);
        assert_eq!(sections_with_key("weight"), ["[defaults]", "[server.NAME]"]);
        assert_eq!(sections_with_key("match"), ["[server.NAME]"]);
        for key in ["no_new_privs", "drop_capabilities", "user", "group"] {
            assert_eq!(sections_with_key(key), ["[defaults]", "[server.NAME]"], "{key}");
        }
        assert_eq!(sections_with_key("memory_max").len(), 4);
    }
}
