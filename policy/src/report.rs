//! `mcp-runner policy check`: every budget the policy can produce, on this host.
//!
//! Percentages are only meaningful once resolved, so the report shows bytes
//! for the host it runs on; the user sees what each server would really get.

use std::fmt;

use crate::Policy;
use crate::account::Account;
use crate::budget::{GlobalBudget, HostMemory, Limits, ServerBudget, SessionBudget, Setting};
use crate::diag::PolicyError;
use crate::duration::format_duration;
use crate::resolve::Resolver;
use crate::schema::entry_label;
use crate::size::format_bytes;

/// The effective budgets of a policy on one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub origin: String,
    pub host: HostMemory,
    pub global: GlobalBudget,
    pub session: SessionBudget,
    /// `[defaults]` first (its `entry` is `None`), then each entry in file order.
    pub servers: Vec<ServerReport>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerReport {
    pub budget: ServerBudget,
    /// The entry's `match` patterns, as written.
    pub patterns: Vec<String>,
}

impl Policy {
    /// Resolves `[defaults]` and every entry, collecting the errors of all
    /// of them rather than stopping at the first entry that fails.
    pub fn report(&self, host: &HostMemory) -> Result<Report, PolicyError> {
        let mut resolver = Resolver::new(&self.file, &self.origin, Some(host.physical_bytes));
        let (global, session, budgets) = resolver.everything();
        let diagnostics = resolver.into_diagnostics();
        if !diagnostics.is_empty() {
            return Err(PolicyError::new(diagnostics));
        }
        let servers = budgets
            .into_iter()
            .map(|budget| {
                let patterns = self
                    .file
                    .entries
                    .iter()
                    .find(|e| Some(&e.name) == budget.entry.as_ref())
                    .map(|e| e.patterns.iter().map(|p| p.value.to_string()).collect())
                    .unwrap_or_default();
                ServerReport { budget, patterns }
            })
            .collect();
        Ok(Report { origin: self.origin.clone(), host: *host, global, session, servers })
    }
}

fn bytes(n: Option<u64>) -> String {
    n.map_or_else(|| "max".to_owned(), format_bytes)
}

fn count<T: ToString>(n: Option<T>) -> String {
    n.map_or_else(|| "max".to_owned(), |n| n.to_string())
}

fn limit_cells(name: String, l: &Limits) -> Vec<String> {
    vec![name, bytes(l.memory_max), bytes(l.memory_high), bytes(l.swap_max), count(l.pids_max), count(l.cpu_max)]
}

fn server_name(s: &ServerBudget) -> String {
    s.entry.as_deref().map_or_else(|| "[defaults]".to_owned(), entry_label)
}

/// Left-aligned columns two spaces apart, without trailing blanks.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|cell| cell.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(cell);
            let pad = width.saturating_sub(cell.chars().count()) + 2;
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "policy: {}", self.origin)?;
        writeln!(f, "host:   {} of physical memory", format_bytes(self.host.physical_bytes))?;
        writeln!(f)?;

        let header = ["", "memory_max", "memory_high", "swap_max", "pids_max", "cpu_max"];
        let mut rows = vec![header.iter().map(|s| s.to_string()).collect()];
        rows.push(limit_cells("global".into(), &self.global.limits));
        rows.push(limit_cells("  session".into(), &self.session.limits));
        for s in &self.servers {
            rows.push(limit_cells(format!("    {}", server_name(&s.budget)), &s.budget.limits));
        }
        f.write_str(&table(&rows))?;
        writeln!(f, "(max: no limit of its own; the levels above it still apply)")?;
        writeln!(f)?;

        let g = &self.global;
        let root =
            g.cgroup_root.as_ref().map_or_else(|| "chosen by the driver".to_owned(), |p| p.display().to_string());
        writeln!(
            f,
            "global:  max_sessions {}, max_servers {}, driver {}, cgroup_root {}",
            count(g.max_sessions),
            count(g.max_servers),
            g.driver,
            root
        )?;
        writeln!(
            f,
            "         admission_wait {}, min_headroom {}, max_pressure {}",
            format_duration(g.admission_wait),
            format_bytes(g.min_headroom),
            g.max_pressure.map_or_else(|| "max".to_owned(), |p| format!("{p}%"))
        )?;
        writeln!(
            f,
            "session: max_servers {}, floor {}",
            count(self.session.max_servers),
            format_bytes(self.session.floor)
        )?;
        writeln!(f)?;

        let header = [
            "",
            "grace",
            "kill_timeout",
            "sample_interval",
            "throttle_timeout",
            "require",
            "share",
            "idle_timeout",
            "max_instances",
            "weight",
            "match",
        ];
        let mut rows = vec![header.iter().map(|s| s.to_string()).collect()];
        for s in &self.servers {
            let b = &s.budget;
            let patterns: Vec<String> = s.patterns.iter().map(|p| format!("{p:?}")).collect();
            rows.push(vec![
                server_name(b),
                format_duration(b.grace),
                format_duration(b.kill_timeout),
                format_duration(b.sample_interval),
                b.throttle_timeout.map_or_else(|| "never".to_owned(), format_duration),
                b.require.to_string(),
                b.share.to_string(),
                format_duration(b.idle_timeout),
                count(b.max_instances),
                b.weight.to_string(),
                patterns.join(", "),
            ]);
        }
        f.write_str(&table(&rows))?;
        writeln!(f)?;

        let header = ["", "no_new_privs", "drop_capabilities", "user", "group"];
        let mut rows = vec![header.iter().map(|s| s.to_string()).collect()];
        for s in &self.servers {
            let p = &s.budget.privileges;
            let flag = |v: &Option<Setting<bool>>| match v {
                None => "if root".to_owned(),
                Some(s) if s.value => "yes".to_owned(),
                Some(_) => "no".to_owned(),
            };
            let account =
                |v: &Option<Setting<Account>>| v.as_ref().map_or_else(|| "-".to_owned(), |s| s.value.to_string());
            rows.push(vec![
                server_name(&s.budget),
                flag(&p.no_new_privs),
                flag(&p.drop_capabilities),
                account(&p.user),
                account(&p.group),
            ]);
        }
        f.write_str(&table(&rows))?;
        writeln!(f, "(if root: yes when the runner runs as root, no otherwise)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::from_str;
    use crate::tests::HOST_16G;

    #[test]
    fn table_aligns_columns_by_characters() {
        let rows = vec![vec!["é".to_owned(), "x".to_owned()], vec!["abc".to_owned(), "".to_owned()]];
        assert_eq!(table(&rows), "é    x\nabc\n");
    }

    #[test]
    fn displays_every_budget_on_this_host() {
        let text = r#"
[global]
cpu_max = "400%"
admission_wait = "5s"
max_pressure = "max"
[session]
floor = "1.5G"
[server.fs]
memory_max = "512M"
weight = 3
match = ["npx * @modelcontextprotocol/server-filesystem *", "node */fs.js"]
throttle_timeout = "never"
sample_interval = "1500ms"
no_new_privs = true
user = "nobody"
[defaults]
drop_capabilities = false
group = 65534
"#;
        let report = from_str(text, "policy.toml").and_then(|p| p.report(&HOST_16G)).map(|r| r.to_string());
        let expected = r#"policy: policy.toml
host:   16.0 GiB of physical memory

                 memory_max  memory_high  swap_max  pids_max  cpu_max
global           8.0 GiB     7.2 GiB      max       8192      400%
  session        4.0 GiB     3.6 GiB      max       4096      max
    [defaults]   2.0 GiB     1.6 GiB      0 B       1024      max
    [server.fs]  512 MiB     410 MiB      0 B       1024      max
(max: no limit of its own; the levels above it still apply)

global:  max_sessions 16, max_servers 64, driver auto, cgroup_root chosen by the driver
         admission_wait 5s, min_headroom 64.0 MiB, max_pressure max
session: max_servers 32, floor 1.5 GiB

             grace  kill_timeout  sample_interval  throttle_timeout  require  share  idle_timeout  max_instances  weight  match
[defaults]   3s     2s            500ms            1m                any      never  5m            max            1
[server.fs]  3s     2s            1500ms           never             any      never  5m            max            3       "npx * @modelcontextprotocol/server-filesystem *", "node */fs.js"

             no_new_privs  drop_capabilities  user    group
[defaults]   if root       no                 -       65534
[server.fs]  yes           no                 nobody  65534
(if root: yes when the runner runs as root, no otherwise)
"#;
        assert_eq!(report.as_deref(), Ok(expected));
    }

    #[test]
    fn lists_defaults_then_entries_in_file_order() {
        let text = "[server.b]\nmatch = [\"b *\"]\n[server.a]\n";
        let report = from_str(text, "p").and_then(|p| p.report(&HOST_16G));
        let names: Vec<Option<String>> =
            report.map(|r| r.servers.into_iter().map(|s| s.budget.entry).collect()).unwrap_or_default();
        assert_eq!(names, [None, Some("b".into()), Some("a".into())]);
    }

    #[test]
    fn shows_the_builtin_admission_defaults() {
        let report = crate::builtin().report(&HOST_16G).map(|r| r.to_string()).unwrap_or_default();
        assert!(report.contains("admission_wait 3s, min_headroom 64.0 MiB, max_pressure 40%\n"), "{report}");
        assert!(report.contains("session: max_servers 32, floor 819 MiB\n"), "{report}");
        let text = "[global]\nmax_pressure = \"12.5%\"\nmin_headroom = 0\n";
        let report = from_str(text, "p").and_then(|p| p.report(&HOST_16G)).map(|r| r.to_string()).unwrap_or_default();
        assert!(report.contains("min_headroom 0 B, max_pressure 12.5%\n"), "{report}");
    }
}
