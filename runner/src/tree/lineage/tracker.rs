//! Who belongs to the server's tree: adoption by lineage, refusal of
//! recycled pids, and the record of members that escaped.
//!
//! Members are keyed by unique id, never by bare pid. A rescan takes one
//! snapshot of the system and, in one pass whatever the listing order,
//! confirms every member (same pid, same unique id), then adopts
//! transitively:
//!
//! 1. by lineage: the parent unique id is a member's, or the id of a member
//!    that left at the previous rescan (a child forked just before its
//!    parent exited may have missed that rescan's listing);
//! 2. by parent pid, only when the system cannot tell the parent unique id
//!    and the parent's identity was confirmed in the same snapshot;
//! 3. by process group, for the chain a never-seen intermediate broke: in
//!    the server's group, born after the server, and its parent either gone
//!    or pid 1 (where orphans go). The group id must still be held by a
//!    confirmed member: a pid is not reused while a group of that id
//!    exists, so that proves the group is the server's and not a stranger
//!    that got the old leader's pid.
//!
//! NOTE_FORK and NOTE_EXIT only hint: [`Lineage::on_fork`] marks the tree
//! stale, [`Lineage::on_exit`] stops counting the member at once. A missed
//! event costs latency until the next periodic rescan, not correctness.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::{Identity, LineageOs, ProcEntry};

/// Why a process was taken for part of the server's tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// The server, or a member named by a crash-sweep record.
    Seed,
    /// Its parent unique id is a member's.
    Lineage,
    /// Its ppid is a confirmed member and its parent unique id is unknown.
    Parent,
    /// In the server's process group with a lost link (see the module doc).
    Group,
}

/// One process of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// As of the latest rescan.
    pub entry: ProcEntry,
    pub found: Found,
    /// Where it was reparented when first seen outside the tree (its ppid
    /// no longer a member): the supervisor reports these, since on macOS
    /// only lineage still finds them.
    pub escaped_to: Option<i32>,
}

/// What one rescan changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RescanReport {
    pub adopted: Vec<(Identity, Found)>,
    /// Members that are gone.
    pub departed: Vec<Identity>,
    /// Members whose pid now names another process: dropped, never
    /// signalled.
    pub reused: Vec<Identity>,
    /// Members first seen reparented outside the tree, with the new parent.
    pub escaped: Vec<(Identity, i32)>,
}

/// What a crash sweep needs to find a dead runner's tree again.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineageRecord {
    pub root: Identity,
    pub group: Option<i32>,
    pub members: Vec<Identity>,
}

/// The server's tree.
#[derive(Clone, Debug)]
pub struct Lineage {
    root: Identity,
    group: Option<i32>,
    members: BTreeMap<u64, Member>,
    /// Named but not yet confirmed: the seed, or a record's members.
    expected: BTreeMap<u64, Identity>,
    /// Unique ids of members that left at the last rescan, kept as
    /// adoption anchors for one more.
    just_departed: BTreeSet<u64>,
    stale: bool,
    rescans: u64,
}

impl Lineage {
    /// A tree rooted at the server. `group` is the server's process group
    /// when it was spawned as the group's leader (`POSIX_SPAWN_SETPGROUP`
    /// with 0), else `None`: a group shared with the runner would adopt the
    /// runner's other children.
    pub fn new(root: Identity, group: Option<i32>) -> Lineage {
        Lineage {
            root,
            group,
            members: BTreeMap::new(),
            expected: BTreeMap::from([(root.unique_id, root)]),
            just_departed: BTreeSet::new(),
            stale: true,
            rescans: 0,
        }
    }

    /// The tree a dead runner recorded. Its members are confirmed (or
    /// dropped) by the first rescan; their unique ids anchor that rescan's
    /// adoption either way, so a survivor whose parent died is still found.
    pub fn from_record(record: &LineageRecord) -> Lineage {
        let mut lineage = Lineage::new(record.root, record.group);
        lineage.expected.extend(record.members.iter().map(|id| (id.unique_id, *id)));
        lineage
    }

    /// What a crash sweep will need if this runner dies.
    pub fn record(&self) -> LineageRecord {
        LineageRecord {
            root: self.root,
            group: self.group,
            members: self.members.values().map(|m| m.entry.id).collect(),
        }
    }

    pub fn root(&self) -> Identity {
        self.root
    }

    pub fn group(&self) -> Option<i32> {
        self.group
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn contains(&self, id: Identity) -> bool {
        self.members.get(&id.unique_id).is_some_and(|m| m.entry.id == id)
    }

    /// Members that can still run: the ones a kill must reach.
    pub fn live(&self) -> Vec<Identity> {
        self.members.values().filter(|m| !m.entry.zombie).map(|m| m.entry.id).collect()
    }

    /// Members that were reparented outside the tree.
    pub fn escaped(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.escaped_to.is_some())
    }

    /// Whether a group signal to [`Lineage::group`] would reach the
    /// server's group: a member still holds the id (see the module doc).
    pub fn holds_group(&self) -> bool {
        self.group.is_some_and(|g| self.members.values().any(|m| m.entry.pgid == g))
    }

    /// Whether an event said the tree changed since the last rescan.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    pub fn rescans(&self) -> u64 {
        self.rescans
    }

    /// NOTE_FORK on `parent_pid`: the next rescan will adopt the child.
    /// Returns whether the pid is a member's.
    pub fn on_fork(&mut self, parent_pid: i32) -> bool {
        self.stale = true;
        self.members.values().any(|m| m.entry.id.pid == parent_pid)
    }

    /// NOTE_EXIT on `pid`: the member stops counting and is not signalled;
    /// the next rescan drops it and adopts its orphans. Returns whether the
    /// pid is a member's.
    pub fn on_exit(&mut self, pid: i32) -> bool {
        self.stale = true;
        let member = self.members.values_mut().find(|m| m.entry.id.pid == pid);
        member.map(|m| m.entry.zombie = true).is_some()
    }

    /// Takes one snapshot of the system and brings the tree up to date.
    pub fn rescan(&mut self, os: &dyn LineageOs) -> RescanReport {
        self.rescans += 1;
        self.stale = false;
        let mut report = RescanReport::default();

        let mut snapshot: BTreeMap<i32, ProcEntry> = BTreeMap::new();
        for pid in os.pids() {
            if let Some(e) = os.entry(pid) {
                snapshot.insert(pid, e);
            }
        }
        let known: Vec<(Identity, Found, Option<i32>)> = std::mem::take(&mut self.members)
            .into_values()
            .map(|m| (m.entry.id, m.found, m.escaped_to))
            .chain(std::mem::take(&mut self.expected).into_values().map(|id| (id, Found::Seed, None)))
            .collect();
        // The listing may miss a member (filtered by uid, or raced): ask.
        for (id, ..) in &known {
            if !snapshot.contains_key(&id.pid)
                && let Some(e) = os.entry(id.pid)
            {
                snapshot.insert(id.pid, e);
            }
        }
        let mut anchors: Vec<u64> = known.iter().map(|(id, ..)| id.unique_id).collect();
        anchors.extend(std::mem::take(&mut self.just_departed));

        for (id, found, escaped_to) in known {
            match snapshot.get(&id.pid) {
                Some(e) if e.id.unique_id == id.unique_id => {
                    self.members.insert(id.unique_id, Member { entry: *e, found, escaped_to });
                }
                Some(_) => report.reused.push(id),
                None => report.departed.push(id),
            }
        }
        self.just_departed = report.departed.iter().chain(&report.reused).map(|id| id.unique_id).collect();

        self.adopt(&snapshot, anchors, &mut report);
        self.note_escapes(&mut report);
        report
    }

    /// Adopts transitively from `anchors` until nothing changes.
    fn adopt(&mut self, snapshot: &BTreeMap<i32, ProcEntry>, anchors: Vec<u64>, report: &mut RescanReport) {
        let mut by_parent_id: HashMap<u64, Vec<ProcEntry>> = HashMap::new();
        let mut by_ppid: HashMap<i32, Vec<ProcEntry>> = HashMap::new();
        for e in snapshot.values() {
            match e.parent_unique_id {
                Some(parent) => by_parent_id.entry(parent).or_default().push(*e),
                None => by_ppid.entry(e.ppid).or_default().push(*e),
            }
        }
        let mut queue: VecDeque<u64> = anchors.into();
        queue.extend(self.members.keys());
        loop {
            while let Some(parent) = queue.pop_front() {
                let by_id = by_parent_id.get(&parent).into_iter().flatten().map(|e| (*e, Found::Lineage));
                let parent_pid = self.members.get(&parent).map(|m| m.entry.id.pid);
                let by_pid =
                    parent_pid.and_then(|p| by_ppid.get(&p)).into_iter().flatten().map(|e| (*e, Found::Parent));
                let children: Vec<(ProcEntry, Found)> = by_id.chain(by_pid).collect();
                for (e, found) in children {
                    if self.adopt_one(e, found, report) {
                        queue.push_back(e.id.unique_id);
                    }
                }
            }
            let strays = self.group_strays(snapshot);
            if strays.is_empty() {
                break;
            }
            for e in strays {
                if self.adopt_one(e, Found::Group, report) {
                    queue.push_back(e.id.unique_id);
                }
            }
        }
    }

    fn adopt_one(&mut self, entry: ProcEntry, found: Found, report: &mut RescanReport) -> bool {
        if self.members.contains_key(&entry.id.unique_id) {
            return false;
        }
        self.members.insert(entry.id.unique_id, Member { entry, found, escaped_to: None });
        report.adopted.push((entry.id, found));
        true
    }

    /// Processes in the server's group whose link to the tree was lost.
    fn group_strays(&self, snapshot: &BTreeMap<i32, ProcEntry>) -> Vec<ProcEntry> {
        let Some(group) = self.group else { return Vec::new() };
        if !self.holds_group() {
            return Vec::new();
        }
        let pid_of: HashMap<u64, i32> = snapshot.values().map(|e| (e.id.unique_id, e.id.pid)).collect();
        let parent_gone_or_init =
            |e: &ProcEntry| e.parent_unique_id.is_none_or(|p| pid_of.get(&p).is_none_or(|pid| *pid == 1));
        snapshot
            .values()
            .filter(|e| e.pgid == group && !self.members.contains_key(&e.id.unique_id))
            .filter(|e| e.id.unique_id > self.root.unique_id && parent_gone_or_init(e))
            .copied()
            .collect()
    }

    fn note_escapes(&mut self, report: &mut RescanReport) {
        let pids: BTreeSet<i32> = self.members.values().map(|m| m.entry.id.pid).collect();
        for m in self.members.values_mut() {
            if m.entry.id != self.root && m.escaped_to.is_none() && !pids.contains(&m.entry.ppid) {
                m.escaped_to = Some(m.entry.ppid);
                report.escaped.push((m.entry.id, m.entry.ppid));
            }
        }
    }
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
