//! What resolution produces: plain numbers the runner hands to its drivers.
//!
//! These types carry no source positions and no percentages: by the time a
//! budget exists, every relative value has been turned into bytes for one
//! host and every rule between levels has been checked.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::account::Account;
use crate::cpu::CpuMax;
use crate::diag::Diagnostic;
use crate::located::Location;

/// The host facts resolution needs; the runner measures them, tests invent them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostMemory {
    pub physical_bytes: u64,
}

/// Who is asking: the `--name` the client passed and the command to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerRequest<'a> {
    pub name: Option<&'a str>,
    pub argv: &'a [String],
}

/// Limits of one level of the hierarchy. `None` means this level sets no
/// limit of its own (its ancestors' still apply); memory is in bytes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Limits {
    pub memory_high: Option<u64>,
    pub memory_max: Option<u64>,
    pub swap_max: Option<u64>,
    pub pids_max: Option<u64>,
    pub cpu_max: Option<CpuMax>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GlobalBudget {
    pub limits: Limits,
    pub max_servers: Option<u32>,
    pub max_sessions: Option<u32>,
    pub driver: DriverPref,
    pub cgroup_root: Option<PathBuf>,
    /// How long a spawn that a cap refuses may wait for room before it is refused.
    pub admission_wait: Duration,
    /// Free memory a new server needs under the session's and the global
    /// memory_max, in bytes; 0: no check.
    pub min_headroom: u64,
    /// Memory pressure (PSI `some avg10` of the global cgroup, percent)
    /// above which no new server is admitted; `None` for `"max"`.
    pub max_pressure: Option<f64>,
}

/// `max_pressure` is parsed from a percentage in `(0, 100]` and never NaN,
/// so equality is total.
impl Eq for GlobalBudget {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionBudget {
    pub limits: Limits,
    pub max_servers: Option<u32>,
    /// The least memory_max a session's share of the global memory_max may
    /// shrink to, in bytes; never above this level's memory_max.
    pub floor: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBudget {
    /// The `[server.NAME]` entry that matched, `None` for `[defaults]`.
    pub entry: Option<String>,
    pub limits: Limits,
    pub grace: Duration,
    pub kill_timeout: Duration,
    pub sample_interval: Duration,
    /// `None` for `"never"`.
    pub throttle_timeout: Option<Duration>,
    pub require: Enforcement,
    pub share: Share,
    /// How long a shared server stays up after its last client left.
    pub idle_timeout: Duration,
    pub max_instances: Option<u32>,
    /// This server's weight; a session's weight is the sum of its live
    /// servers' weights (see [`session_shares`](crate::session_shares)).
    pub weight: u32,
    pub privileges: Privileges,
}

/// What the server keeps of the runner's privileges, as the policy wrote
/// it. `None` means not written: the runner chooses, by whether it runs as
/// root (see the runner's `privileges` module). Each key is inherited from
/// `[defaults]` on its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Privileges {
    /// `PR_SET_NO_NEW_PRIVS` before exec: no setuid bit or file capability
    /// can raise the server's privileges.
    pub no_new_privs: Option<Setting<bool>>,
    /// Clear the capability bounding set and every capability set.
    pub drop_capabilities: Option<Setting<bool>>,
    /// Run the server as this user (the runner must be root).
    pub user: Option<Setting<Account>>,
    /// Run the server with this group (default: the user's own).
    pub group: Option<Setting<Account>>,
}

/// A value the runner can only check on the host that runs the server
/// (a user name to look up, a key the platform cannot apply), kept with
/// where it was written so that those errors point into the file too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    /// The policy file (its origin).
    pub origin: String,
    pub location: Option<Location>,
}

impl<T> Setting<T> {
    /// An error about this value: `file:line:col: message`.
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic { origin: self.origin.clone(), location: self.location, message: message.into() }
    }
}

/// The budget of one server at every level of the hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub global: GlobalBudget,
    pub session: SessionBudget,
    pub server: ServerBudget,
}

impl Effective {
    /// The tightest limit of each kind over the three levels. Kernel drivers
    /// apply each level to its own cgroup and get this for free; the
    /// userland driver watches a single process tree and needs it spelled out.
    pub fn tightest(&self) -> Limits {
        let levels = [&self.global.limits, &self.session.limits, &self.server.limits];
        let min_bytes = |get: fn(&Limits) -> Option<u64>| levels.iter().filter_map(|l| get(l)).min();
        Limits {
            memory_high: min_bytes(|l| l.memory_high),
            memory_max: min_bytes(|l| l.memory_max),
            swap_max: min_bytes(|l| l.swap_max),
            pids_max: min_bytes(|l| l.pids_max),
            cpu_max: levels.iter().filter_map(|l| l.cpu_max).reduce(|a, b| if a.exceeds(b) { b } else { a }),
        }
    }
}

/// Declares a closed set of lower-case names with parsing and display, so
/// the file syntax and the messages can never disagree.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub(crate) const NAMES: &'static [&'static str] = &[$($text),+];

            pub(crate) fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum! {
    /// Which enforcement mechanism the runner should prefer.
    DriverPref {
        /// The best one the host supports.
        Auto = "auto",
        Systemd = "systemd",
        Cgroupfs = "cgroupfs",
        /// Measuring and killing from user space; no kernel enforcement.
        Userland = "userland",
    }
}

named_enum! {
    /// Whether a server may run without kernel-enforced limits.
    Enforcement {
        Any = "any",
        /// Refuse to start the server rather than run it unenforced.
        Kernel = "kernel",
    }
}

named_enum! {
    /// Whether sessions may share one instance of a server.
    Share {
        Never = "never",
        Auto = "auto",
        Always = "always",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(quota_us: u64) -> Option<CpuMax> {
        Some(CpuMax { quota_us, period_us: 100_000 })
    }

    fn server(limits: Limits) -> ServerBudget {
        ServerBudget {
            entry: None,
            limits,
            grace: Duration::ZERO,
            kill_timeout: Duration::ZERO,
            sample_interval: Duration::from_millis(500),
            throttle_timeout: None,
            require: Enforcement::Any,
            share: Share::Never,
            idle_timeout: Duration::from_secs(300),
            max_instances: None,
            weight: 1,
            privileges: Privileges::default(),
        }
    }

    #[test]
    fn tightest_takes_the_smallest_set_limit_of_each_kind() {
        let effective = Effective {
            global: GlobalBudget {
                limits: Limits { memory_max: Some(800), pids_max: Some(10), cpu_max: cpu(50_000), ..Limits::default() },
                max_servers: None,
                max_sessions: None,
                driver: DriverPref::Auto,
                cgroup_root: None,
                admission_wait: Duration::ZERO,
                min_headroom: 0,
                max_pressure: None,
            },
            session: SessionBudget {
                limits: Limits { memory_max: Some(400), cpu_max: cpu(150_000), ..Limits::default() },
                max_servers: None,
                floor: 40,
            },
            server: server(Limits {
                memory_high: Some(300),
                swap_max: Some(0),
                pids_max: Some(20),
                ..Limits::default()
            }),
        };
        assert_eq!(
            effective.tightest(),
            Limits {
                memory_high: Some(300),
                memory_max: Some(400),
                swap_max: Some(0),
                pids_max: Some(10),
                cpu_max: cpu(50_000),
            }
        );
    }

    #[test]
    fn names_round_trip() {
        for &name in DriverPref::NAMES {
            assert_eq!(DriverPref::from_name(name).map(|d| d.to_string()), Some(name.into()));
        }
        assert_eq!(Enforcement::from_name("kernel"), Some(Enforcement::Kernel));
        assert_eq!(Share::from_name("Always"), None);
        assert_eq!(Share::Always.to_string(), "always");
    }

    #[test]
    fn a_setting_points_its_errors_at_the_file() {
        let user = Setting {
            value: Account::Name("nobdy".into()),
            origin: "p.toml".into(),
            location: Some(Location { line: 4, column: 8 }),
        };
        assert_eq!(user.error("no user \"nobdy\"").to_string(), "p.toml:4:8: no user \"nobdy\"");
    }
}
