//! The cgroupfs driver's levels: `GLOBAL` and `GLOBAL/s-SESSION`, cgroups
//! the runner made itself. The figure readers here serve the systemd
//! driver too, whose slices and scopes are cgroups of the same shape.

use std::path::{Path, PathBuf};

use mcp_runner_policy::Effective;

use super::{hierarchy, root, wait_unpopulated};
use crate::cgroup::fs::{CgroupDir, keyed, limit_value};
use crate::cgroup::{memory, pids};
use crate::driver::levels::{Figures, Levels, Measured, PsiReading};
use crate::host::HostFacts;
use crate::os::kill::kill_marked;
use crate::state::RunnerRecord;
use crate::tree::procfs::Procfs;

pub struct CgroupfsLevels {
    /// `None` when the global cgroup cannot be located (no delegation).
    global: Option<CgroupDir>,
    session_cap: Option<u64>,
    global_cap: Option<u64>,
}

impl CgroupfsLevels {
    pub fn new(facts: &HostFacts, budget: &Effective) -> CgroupfsLevels {
        let usable = crate::driver::select::cgroupfs_unusable(facts).is_none();
        CgroupfsLevels {
            global: usable
                .then(|| root::locate(facts, budget.global.cgroup_root.as_deref()).ok().map(|(_, g)| g))
                .flatten(),
            session_cap: budget.session.limits.memory_max,
            global_cap: budget.global.limits.memory_max,
        }
    }

    fn session(&self, session: &str) -> Option<CgroupDir> {
        self.global.as_ref().map(|g| g.child(&hierarchy::session_name(session)))
    }
}

impl Levels for CgroupfsLevels {
    fn measure(&self, session: &str) -> Measured {
        match (&self.global, self.session(session)) {
            (Some(global), Some(session)) => measure_cgroups(global, &session, self.session_cap, self.global_cap),
            _ => Measured::default(),
        }
    }

    fn pressure(&self) -> Option<PsiReading> {
        self.global.as_ref().and_then(psi_of)
    }

    fn global_place(&self) -> Option<PathBuf> {
        self.global.as_ref().map(|g| g.path().to_path_buf())
    }

    fn global_memory_max(&self) -> Option<u64> {
        self.global.as_ref().and_then(|g| g.read_u64(memory::MAX).ok().flatten())
    }

    fn set_shares(&self, shares: &[(String, Option<u64>)]) {
        for (session, high) in shares {
            let Some(dir) = self.session(session) else { continue };
            if dir.exists()
                && let Err(e) = dir.write(memory::HIGH, &limit_value(*high))
            {
                tracing::warn!("{e}");
            }
        }
    }

    fn release_session(&self, _leaving: &str, _live: &std::collections::BTreeSet<String>) {
        // The last runner of a session removes its cgroup on the way out
        // (Cgroupfs::remove: rmdir fails while another server is in it);
        // nothing is left to release.
    }

    fn figures(&self, rec: &RunnerRecord) -> Figures {
        cgroup_or_tree_figures(rec)
    }

    fn sweep_dead(&self, rec: &RunnerRecord) -> usize {
        // Only a leaf under the global cgroup that carries a leaf name is
        // ours to kill and remove, whatever the record says.
        match (&rec.cgroup, &self.global) {
            (Some(leaf), Some(global)) if is_leaf_of(global.path(), leaf) => {
                sweep_leaf(&CgroupDir::new(leaf)) + kill_marked(rec, &Procfs::snapshot())
            }
            (Some(leaf), _) => {
                tracing::warn!("not sweeping {}: not a leaf of the global cgroup", leaf.display());
                kill_marked(rec, &Procfs::snapshot())
            }
            (None, _) => kill_marked(rec, &Procfs::snapshot()),
        }
    }

    fn sweep_orphans(&self) -> (usize, usize) {
        match &self.global {
            Some(global) if global.exists() => sweep_orphan_leaves(global, &Procfs::snapshot()),
            _ => (0, 0),
        }
    }
}

/// `GLOBAL/SESSION/LEAF` with a leaf name the runner gives.
fn is_leaf_of(global: &Path, leaf: &Path) -> bool {
    let Ok(rest) = leaf.strip_prefix(global) else { return false };
    let parts: Vec<_> = rest.components().collect();
    parts.len() == 2
        && parts.iter().all(|c| matches!(c, std::path::Component::Normal(_)))
        && leaf.file_name().and_then(|n| n.to_str()).and_then(hierarchy::leaf_owner).is_some()
}

/// Headroom of a session cgroup and its global parent.
pub(crate) fn measure_cgroups(
    global: &CgroupDir,
    session: &CgroupDir,
    session_cap: Option<u64>,
    global_cap: Option<u64>,
) -> Measured {
    Measured {
        session_free: free_under(session, session_cap),
        global_free: free_under(global, global_cap),
        pressure: None,
    }
}

/// A cgroup's memory.pressure (`None` before the cgroup exists, or without
/// PSI).
pub(crate) fn psi_of(dir: &CgroupDir) -> Option<PsiReading> {
    let some = dir.read(memory::PRESSURE).ok().and_then(|t| memory::psi_some(&t))?;
    Some(PsiReading { some, place: dir.path().display().to_string() })
}

/// Free bytes under a cgroup's memory.max (or `cap` if it does not exist
/// yet: a session's first server finds its whole budget free).
fn free_under(dir: &CgroupDir, cap: Option<u64>) -> Option<(u64, u64, String)> {
    let place = dir.path().display().to_string();
    if !dir.exists() {
        return cap.map(|c| (c, c, place));
    }
    let max = dir.read_u64(memory::MAX).ok().flatten().or(cap)?;
    let current = dir.read_u64(memory::CURRENT).ok().flatten().unwrap_or(0);
    Some((max.saturating_sub(current), max, place))
}

/// A server's figures from its cgroup, or from its tree when the cgroup is
/// gone (a server between placement and record, or already torn down).
pub(crate) fn cgroup_or_tree_figures(rec: &RunnerRecord) -> Figures {
    match rec.stats_cgroup.as_ref().map(CgroupDir::new).filter(|d| d.exists()) {
        Some(cg) => cgroup_figures(&cg),
        None => crate::driver::userland::levels::tree_figures(rec),
    }
}

/// The kernel's own counters for one cgroup.
pub(crate) fn cgroup_figures(cg: &CgroupDir) -> Figures {
    let n = |f: &str| cg.read_u64(f).ok().flatten();
    let ev = memory::events(cg).unwrap_or_default();
    Figures {
        memory_current: n(memory::CURRENT).unwrap_or(0),
        memory_peak: n(memory::PEAK),
        swap: n(memory::SWAP_CURRENT),
        memory_max: n(memory::MAX),
        memory_high: n(memory::HIGH),
        pids_max: n(pids::MAX),
        tasks: n(pids::CURRENT),
        processes: cg.procs().map(|p| p.len() as u64).unwrap_or(0),
        throttled: Some(ev.high),
        oom_kills: Some(ev.oom_kill),
        forks_refused: cg.read(pids::EVENTS).ok().and_then(|t| keyed(&t, "max")),
        place: Some(cg.path().display().to_string()),
    }
}

/// Kills everything in a dead runner's leaf and removes it.
pub(crate) fn sweep_leaf(leaf: &CgroupDir) -> usize {
    if !leaf.exists() {
        return 0;
    }
    let mut n = 0;
    // A directory without cgroup.procs is not (or no longer) a cgroup:
    // nothing to kill, only the directory to remove.
    if leaf.file("cgroup.procs").exists() {
        n = leaf.procs().map(|p| p.len()).unwrap_or(0);
        if let Err(e) = leaf.write("cgroup.kill", "1") {
            tracing::warn!("{e}");
        }
    }
    // A task leaves its cgroup when it exits, before its parent (not us)
    // reaps it: populated 0 means rmdir can succeed.
    wait_unpopulated(leaf, std::time::Duration::from_secs(5));
    if let Err(e) = leaf.remove() {
        tracing::warn!("{e}");
    }
    n
}

/// Leaves under the global cgroup whose owner (named in the leaf's name)
/// is gone: a runner that died before it wrote its record leaves no record
/// to sweep by. Empty session cgroups are removed on the way.
pub(crate) fn sweep_orphan_leaves(global: &CgroupDir, table: &Procfs) -> (usize, usize) {
    let (mut leaves, mut killed) = (0, 0);
    for session in global.children() {
        let session = global.child(&session);
        for leaf in session.children() {
            let Some(owner) = hierarchy::leaf_owner(&leaf) else { continue };
            if !table.alive(owner) {
                killed += sweep_leaf(&session.child(&leaf));
                leaves += 1;
            }
        }
        // EBUSY while a live server uses it: fine.
        let _ = session.remove();
    }
    (leaves, killed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::ProcessId;

    #[test]
    fn orphan_leaves_of_dead_owners_are_removed() {
        // A directory tree shaped like the global cgroup (not a real cgroup:
        // rmdir works on plain empty directories too).
        let global = crate::cgroup::fs::tests::fixture("orphans", &[]);
        let table = Procfs::snapshot();
        let me = table.identity(std::process::id() as i32).expect("self");
        let dead = ProcessId { pid: i32::MAX - 3, start: 9 };
        for (session, owner) in [("s-a", dead), ("s-b", me)] {
            std::fs::create_dir_all(global.path().join(session).join(hierarchy::leaf_name(Some("x"), owner)))
                .expect("mkdir");
        }
        let (leaves, killed) = sweep_orphan_leaves(&global, &table);
        assert_eq!((leaves, killed), (1, 0));
        assert!(!global.path().join("s-a").exists(), "empty session of the dead owner removed");
        assert!(global.path().join("s-b").join(hierarchy::leaf_name(Some("x"), me)).exists(), "live leaf kept");
        std::fs::remove_dir_all(global.path()).ok();
    }

    #[test]
    fn only_leaves_under_the_global_cgroup_are_swept() {
        let g = Path::new("/sys/fs/cgroup/mcp-runner");
        let leaf = hierarchy::leaf_name(Some("x"), ProcessId { pid: 42, start: 7 });
        assert!(is_leaf_of(g, &g.join("s-a").join(&leaf)));
        assert!(!is_leaf_of(g, &g.join("s-a")), "a session is not a leaf");
        assert!(!is_leaf_of(g, &g.join("s-a").join("not-a-leaf")), "no owner in the name");
        assert!(!is_leaf_of(g, &Path::new("/sys/fs/cgroup/user.slice").join("s-a").join(&leaf)), "elsewhere");
        assert!(!is_leaf_of(g, &g.join("s-a").join("..").join("..").join(&leaf)), "no dot-dot escape");
    }
}
