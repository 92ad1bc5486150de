//! [`ProcessTable`] over Linux `/proc`.
//!
//! Child lists come from `/proc/PID/task/TID/children` (CONFIG_PROC_CHILDREN,
//! on in Debian, Fedora and Ubuntu kernels), which costs a read per tree
//! member instead of a scan of every process on the machine: eleven runners
//! sampling twice a second must not cost the laptop a core. Without that
//! file the table falls back to one full scan per snapshot.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{ProcessId, ProcessInfo, ProcessTable};

/// The fields of `/proc/PID/stat` the runner uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    pub threads: u64,
    pub start: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the *last* `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state); field N is f[N - 3].
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        threads: f.get(17)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// Sums two `Key: N kB` fields of a /proc file, in bytes: `primary` must
/// be present, `extra` counts as 0 when absent (no swap configured).
fn sum_kb(text: &str, primary: &str, extra: &str) -> Option<u64> {
    let mut main = None;
    let mut more = 0;
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        match (it.next(), it.next()) {
            (Some(k), Some(v)) if k.strip_suffix(':') == Some(primary) => main = v.parse::<u64>().ok(),
            (Some(k), Some(v)) if k.strip_suffix(':') == Some(extra) => more = v.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    Some((main? + more) * 1024)
}

/// `Pss` + `SwapPss` from `/proc/PID/smaps_rollup`, in bytes.
pub fn parse_smaps_rollup(text: &str) -> Option<u64> {
    sum_kb(text, "Pss", "SwapPss")
}

/// `VmRSS` + `VmSwap` from `/proc/PID/status`, in bytes: the fallback when
/// `smaps_rollup` is unreadable (kernels < 4.14).
pub fn parse_status_memory(text: &str) -> Option<u64> {
    sum_kb(text, "VmRSS", "VmSwap")
}

/// A view of `/proc` (or of a directory laid out like it, for tests).
#[derive(Debug)]
pub struct Procfs {
    root: PathBuf,
    /// Parent -> children, built once per snapshot when the kernel has no
    /// `children` files.
    index: Option<HashMap<i32, Vec<i32>>>,
}

impl Procfs {
    /// A snapshot of the real `/proc`.
    pub fn snapshot() -> Procfs {
        Procfs::snapshot_at(Path::new("/proc"))
    }

    pub fn snapshot_at(root: &Path) -> Procfs {
        let has_children_files = root
            .join("self/task")
            .read_dir()
            .ok()
            .and_then(|mut d| d.next())
            .is_some_and(|e| e.map(|e| e.path().join("children").exists()).unwrap_or(false));
        let index = if has_children_files { None } else { Some(build_index(root)) };
        Procfs { root: root.to_path_buf(), index }
    }

    pub fn stat(&self, pid: i32) -> Option<Stat> {
        parse_stat(&fs::read_to_string(self.root.join(format!("{pid}/stat"))).ok()?)
    }

    /// The identity of a live process, `None` if it is gone.
    pub fn identity(&self, pid: i32) -> Option<ProcessId> {
        self.stat(pid).map(|s| ProcessId { pid, start: s.start })
    }

    /// Whether the process `id` names still runs: same pid and start time,
    /// and not a zombie. A runner that exited but was not reaped by its
    /// client (the very clients this tool exists for) is gone.
    pub fn alive(&self, id: super::ProcessId) -> bool {
        self.stat(id.pid).is_some_and(|s| s.start == id.start && s.state != 'Z' && s.state != 'X')
    }

    /// Every pid in `/proc`.
    pub fn all_pids(&self) -> Vec<i32> {
        list_pids(&self.root)
    }

    /// Whether the process's environment holds exactly `entry` (`KEY=VALUE`).
    /// Unreadable environments (other users, kernel threads) count as no.
    pub fn environ_contains(&self, pid: i32, entry: &str) -> bool {
        fs::read(self.root.join(format!("{pid}/environ")))
            .map(|env| env.split(|b| *b == 0).any(|kv| kv == entry.as_bytes()))
            .unwrap_or(false)
    }
}

fn list_pids(root: &Path) -> Vec<i32> {
    let Ok(dir) = root.read_dir() else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

fn build_index(root: &Path) -> HashMap<i32, Vec<i32>> {
    let mut index: HashMap<i32, Vec<i32>> = HashMap::new();
    for pid in list_pids(root) {
        if let Some(stat) = fs::read_to_string(root.join(format!("{pid}/stat"))).ok().as_deref().and_then(parse_stat) {
            index.entry(stat.ppid).or_default().push(pid);
        }
    }
    index
}

impl ProcessTable for Procfs {
    fn children(&self, pid: i32) -> Vec<i32> {
        if let Some(index) = &self.index {
            return index.get(&pid).cloned().unwrap_or_default();
        }
        let Ok(tasks) = self.root.join(format!("{pid}/task")).read_dir() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for task in tasks.flatten() {
            if let Ok(text) = fs::read_to_string(task.path().join("children")) {
                out.extend(text.split_ascii_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
        out
    }

    fn info(&self, pid: i32) -> Option<ProcessInfo> {
        let s = self.stat(pid)?;
        Some(ProcessInfo {
            id: ProcessId { pid, start: s.start },
            ppid: s.ppid,
            threads: s.threads,
            zombie: s.state == 'Z' || s.state == 'X',
        })
    }

    fn memory(&self, pid: i32) -> Option<u64> {
        let base = self.root.join(pid.to_string());
        fs::read_to_string(base.join("smaps_rollup"))
            .ok()
            .and_then(|t| parse_smaps_rollup(&t))
            .or_else(|| parse_status_memory(&fs::read_to_string(base.join("status")).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_hostile_command_name() {
        let line = "4242 (a) b) (c) S 7 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 200 18446744073709551615";
        let s = parse_stat(line).expect("parses");
        assert_eq!(s, Stat { state: 'S', ppid: 7, threads: 3, start: 987654 });
    }

    #[test]
    fn stat_truncated_is_none() {
        assert_eq!(parse_stat("1 (x) S 0"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn smaps_rollup_counts_pss_and_swap_pss() {
        let t = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss: 2048 kB\nPss: 1000 kB\nPss_Anon: 800 kB\nSwap: 300 kB\nSwapPss: 100 kB\n";
        assert_eq!(parse_smaps_rollup(t), Some(1100 * 1024));
        assert_eq!(parse_smaps_rollup("Rss: 1 kB\n"), None);
    }

    #[test]
    fn status_fallback_counts_rss_and_swap() {
        let t = "Name:\tx\nVmRSS:\t  500 kB\nVmSwap:\t  20 kB\n";
        assert_eq!(parse_status_memory(t), Some(520 * 1024));
    }

    #[test]
    fn real_proc_sees_own_child() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn");
        let me = std::process::id() as i32;
        let table = Procfs::snapshot();
        let kids = table.children(me);
        assert!(kids.contains(&(child.id() as i32)), "{kids:?}");
        let info = table.info(child.id() as i32).expect("info");
        assert_eq!(info.ppid, me);
        assert!(table.memory(child.id() as i32).unwrap_or(0) > 0);
        child.kill().ok();
        child.wait().ok();
    }

    #[test]
    fn a_zombie_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id() as i32;
        let table = Procfs::snapshot();
        let id = table.identity(pid).expect("exists until reaped");
        // No event says "became a zombie": poll its state, with a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while table.stat(pid).is_some_and(|s| s.state != 'Z') {
            assert!(std::time::Instant::now() < deadline, "child never exited");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(table.identity(pid), Some(id), "the zombie still has its identity");
        assert!(!table.alive(id), "but it is not alive");
        child.wait().expect("reap");
        assert!(!table.alive(id));
    }

    #[test]
    fn fallback_index_without_children_files() {
        let dir = std::env::temp_dir().join(format!("mcp-runner-procfs-{}", std::process::id()));
        for (pid, ppid) in [(1, 0), (10, 1), (11, 10)] {
            let d = dir.join(pid.to_string());
            fs::create_dir_all(&d).expect("mkdir");
            let stat = format!("{pid} (x) S {ppid} 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {} 0 0", pid * 100);
            fs::write(d.join("stat"), stat).expect("write");
        }
        let table = Procfs::snapshot_at(&dir);
        assert_eq!(table.children(1), vec![10]);
        assert_eq!(table.children(10), vec![11]);
        assert_eq!(table.identity(11), Some(ProcessId { pid: 11, start: 1100 }));
        fs::remove_dir_all(&dir).ok();
    }
}
