//! A pool's files in the state directory, all named after the pool key's
//! id: the socket relays connect to, the lock its host holds for life, the
//! lock relays take to elect a host, the host's log, and the status the
//! host keeps for `status` and `stop`.

use serde::{Deserialize, Serialize};

use crate::state::StateDir;
use crate::tree::ProcessId;

/// The names of one pool's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolFiles {
    id: String,
}

/// Every kind of file a pool has.
const SUFFIXES: [&str; 5] = [".sock", ".lock", ".start", ".log", ".json"];

impl PoolFiles {
    pub fn new(id: &str) -> PoolFiles {
        PoolFiles { id: id.to_owned() }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The Unix socket the host listens on.
    pub fn socket(&self) -> String {
        format!("pool-{}.sock", self.id)
    }

    /// Held by the host for its whole life: at most one host per pool, and
    /// a socket whose lock is free is stale.
    pub fn host_lock(&self) -> String {
        format!("pool-{}.lock", self.id)
    }

    /// Taken by a relay that found no host, while it starts one: fifty
    /// relays starting at once start one host.
    pub fn start_lock(&self) -> String {
        format!("pool-{}.start", self.id)
    }

    /// The host's stderr.
    pub fn log(&self) -> String {
        format!("pool-{}.log", self.id)
    }

    /// The host's [`PoolStatus`].
    pub fn status(&self) -> String {
        format!("pool-{}.json", self.id)
    }

    /// Every file of the pool, for `gc`.
    pub fn all(&self) -> Vec<String> {
        SUFFIXES.iter().map(|s| format!("pool-{}{s}", self.id)).collect()
    }

    /// The pool a state directory entry belongs to, if it is a pool's file.
    pub fn of_name(name: &str) -> Option<PoolFiles> {
        let rest = name.strip_prefix("pool-")?;
        let id = SUFFIXES.iter().find_map(|s| rest.strip_suffix(s))?;
        (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| PoolFiles::new(id))
    }
}

/// The status of every pool host in `dir` (a host that is gone may leave
/// one behind until `gc`: its instances' runners are gone too, so nothing
/// matches it).
pub fn read_statuses(dir: &StateDir) -> Vec<PoolStatus> {
    dir.names(|n| n.starts_with("pool-") && n.ends_with(".json"))
        .iter()
        .filter(|n| PoolFiles::of_name(n).is_some())
        .filter_map(|n| dir.read_file(n).ok().flatten())
        .filter_map(|body| serde_json::from_slice(&body).ok())
        .collect()
}

/// Removes the files of every pool whose host is gone (its lock is free),
/// and returns their ids. A live host's pool is never touched: its lock is
/// held, and the check holds the lock while removing.
pub fn remove_dead(dir: &StateDir) -> Vec<String> {
    let mut ids: Vec<PoolFiles> =
        dir.names(|n| n.starts_with("pool-")).iter().filter_map(|n| PoolFiles::of_name(n)).collect();
    ids.dedup();
    let mut removed = Vec::new();
    for files in ids {
        let Ok(lock) = dir.open_lock(&files.host_lock()) else { continue };
        let Ok(_held) = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock) else { continue };
        for name in files.all() {
            dir.unlink(&name);
        }
        removed.push(files.id().to_owned());
    }
    removed
}

/// What a pool host runs and who it serves, rewritten on every change.
/// Field names are part of the status schema: add fields, never rename.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub version: u32,
    pub pool: String,
    pub host: ProcessId,
    pub name: Option<String>,
    pub command: Vec<String>,
    /// Seconds a server stays up after its last client.
    pub idle_timeout: u64,
    pub instances: Vec<InstanceStatus>,
}

/// One server process of the pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub id: u64,
    /// The runner that supervises it (an ordinary `run` in session "shared").
    pub runner: Option<ProcessId>,
    /// The clients' protocol version and capabilities it was started for.
    pub class: String,
    /// Whether new clients may join it.
    pub shareable: bool,
    pub clients: Vec<ClientStatus>,
    /// Seconds since the epoch when its last client left, if it has none.
    pub idle_since: Option<u64>,
}

/// One relay connected to the pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStatus {
    pub session: String,
    pub runner: ProcessId,
    /// Seconds since the epoch.
    pub since: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_is_a_pool_file() {
        let f = PoolFiles::new("0123456789abcdef");
        for name in f.all() {
            assert_eq!(PoolFiles::of_name(&name), Some(f.clone()), "{name}");
        }
        for other in ["pool-0123.sock", "pool-0123456789abcdeg.sock", "runner-1.json", "pool-0123456789abcdef.tmp"] {
            assert_eq!(PoolFiles::of_name(other), None, "{other}");
        }
    }
}
