//! The start-up fault matrix (`tests/fault_startup.rs` on the host, userland driver;
//! `tests/kernel_fault_startup.rs` in the cgroup v2 guest, cgroupfs driver).
//!
//! For each fault point of the runner (runner/src/fault.rs; a debug build dies by SIGKILL at
//! the point `MCP_RUNNER_FAULT` names), two runners are killed there: one in a session a
//! bystander runner shares, one alone in a session of its own. Another bystander runs in a
//! third session. Then `mcp-runner gc` runs, and the row of the matrix records, from outside:
//!
//! - that each victim died of SIGKILL and said it died at that point;
//! - what the victims left before gc (records, processes carrying their marker, places such as
//!   cgroups) and what is left after it (must be nothing);
//! - that both bystanders still run (runner, server and its daemon alive, records naming the
//!   same runner and server, the server answering);
//! - that a new runner is admitted in the shared session and runs (the admission lock is not
//!   held by the dead).
//!
//! The table is written straight to stderr (not through the test harness's capture) so that it
//! shows in every run; the assertions come after it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use serde_json::Value;

use crate::{Fixture, RunnerProc, alive, describe, hang_guard, proc_stat, tree_marker_processes, wait_gone};

/// The runner's fault points in start-up order (runner/src/fault.rs `POINTS`; a point the
/// runner does not know never fires, and the matrix then fails for it).
pub const POINTS: &[&str] = &[
    "admission-locked",
    "before-placement",
    "placement-leaf",
    "after-placement",
    "rebalance-locked",
    "after-spawn",
    "after-record",
];

/// The variable that arms a fault point.
pub const FAULT_VAR: &str = "MCP_RUNNER_FAULT";

/// When the driver's own checks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// After the kill, before gc: what exists (for the table only).
    BeforeGc,
    /// After gc: everything listed is a leftover.
    AfterGc,
}

/// A runner killed at a fault point.
pub struct Victim {
    pub runner: RunnerProc,
    pub session: String,
    pub name: &'static str,
}

/// A runner that must survive every fault of the others.
pub struct Bystander {
    pub runner: RunnerProc,
    pub session: String,
    pub name: &'static str,
    server: i32,
    daemon: i32,
    record: Value,
    pings: u64,
}

/// How the matrix starts runners: the fixture, the driver (`--driver`), this test's tag, and
/// the `hostile` binary (`hostile!()`, known only to the test targets).
pub struct Matrix<'a> {
    pub fx: &'a Fixture,
    pub driver: &'static str,
    pub tag: &'static str,
    pub hostile: &'static str,
}

impl Matrix<'_> {
    /// A session id of this test (one safe cgroup and unit name component).
    pub fn session(&self, which: &str) -> String {
        format!("{}-{which}-{}", self.tag, std::process::id())
    }

    /// `mcp-runner run --driver D --session S --name N -- hostile daemon`, armed at `fault`.
    pub fn start(&self, session: &str, name: &str, fault: Option<&str>) -> RunnerProc {
        let args = ["run", "--driver", self.driver, "--session", session, "--name", name, "--", self.hostile, "daemon"];
        let mut cmd = self.fx.command(&args);
        cmd.env_remove(FAULT_VAR);
        if let Some(point) = fault {
            cmd.env(FAULT_VAR, point);
        }
        RunnerProc::spawn(cmd)
    }

    pub fn bystander(&self, session: &str, name: &'static str) -> Bystander {
        let mut runner = self.start(session, name, None);
        let ready = runner.ready();
        let server = ready["pid"].as_i64().expect("pid") as i32;
        let daemon = ready["daemon"].as_i64().expect("daemon") as i32;
        let record = self.fx.record(runner.pid);
        Bystander { runner, session: session.to_owned(), name, server, daemon, record, pings: 0 }
    }

    fn record_path(&self, runner_pid: i32) -> PathBuf {
        self.fx.state_dir.join(format!("runner-{runner_pid}.json"))
    }

    /// One row: kills a victim in `shared` (a bystander's session) and one alone at `point`,
    /// runs gc, checks everything. `on_path`: whether this driver passes the point at all (a
    /// point off its path must not fire: the victims then run and end normally). `places`
    /// lists the victims' places that exist at a stage (cgroups, wrong shares), as lines.
    pub fn row(
        &self,
        point: &'static str,
        shared: &str,
        on_path: bool,
        bystanders: &mut [Bystander],
        places: &dyn Fn(Stage, &[Victim]) -> Vec<String>,
    ) -> Row {
        let mut row = Row::new(point, self.driver);
        let lone = self.session(&format!("lone{}", POINTS.iter().position(|p| *p == point).unwrap_or(99)));
        let mut victims = vec![
            Victim { runner: self.start(shared, "victim", Some(point)), session: shared.to_owned(), name: "victim" },
            Victim { runner: self.start(&lone, "alone", Some(point)), session: lone, name: "alone" },
        ];

        // The kill.
        let mut died = Vec::new();
        for v in &mut victims {
            if on_path {
                let status = v.runner.wait_exit();
                let stderr = v.runner.stderr();
                let said = stderr.contains(&format!("fault point {point}: raising SIGKILL"));
                if status.signal() != Some(libc::SIGKILL) || !said {
                    row.fail(format!("{} did not die at {point}: {status:?}; stderr:\n{stderr}", v.name));
                }
                died.push(if status.signal() == Some(libc::SIGKILL) && said { "SIGKILL" } else { "NO" });
            } else {
                v.runner.ready();
                v.runner.close_stdin();
                let code = v.runner.exit_code();
                if code != 0 {
                    row.fail(format!("{} off the point's path exited {code}", v.name));
                }
                died.push("not on path");
            }
        }
        row.died = died.join(", ");

        // What the victims left before gc.
        let mut procs_before = Vec::new();
        for v in &victims {
            procs_before.extend(tree_marker_processes(&v.runner.marker));
        }
        let records_before = victims.iter().filter(|v| self.record_path(v.runner.pid).exists()).count();
        let places_before = places(Stage::BeforeGc, &victims);
        row.before = format!("{records_before} rec, {} proc, {} place", procs_before.len(), places_before.len());

        let gc = self.fx.output(&["gc"]);
        if gc.status.code() != Some(0) {
            row.fail(format!("gc failed: {gc:?}"));
        }

        // What is left after it: gc may return right after its SIGKILLs, before the kernel has
        // finished the processes; wait for each (an event), then look again.
        for pid in &procs_before {
            if !wait_gone(*pid, hang_guard()) {
                row.fail(format!("{} survived gc", describe(&[*pid])));
            }
        }
        let mut procs_after = Vec::new();
        for v in &victims {
            procs_after.extend(tree_marker_processes(&v.runner.marker));
        }
        let records_after: Vec<_> =
            victims.iter().map(|v| self.record_path(v.runner.pid)).filter(|p| p.exists()).collect();
        let places_after = places(Stage::AfterGc, &victims);
        row.after = format!("{} proc, {} rec, {} place", procs_after.len(), records_after.len(), places_after.len());
        if !procs_after.is_empty() {
            row.fail(format!("processes of the victims left after gc: {}", describe(&procs_after)));
        }
        if !records_after.is_empty() {
            row.fail(format!("records left after gc: {records_after:?}"));
        }
        for p in places_after {
            row.fail(format!("left after gc: {p}"));
        }
        reap_adopted(bystanders);

        // The bystanders.
        let mut broken = Vec::new();
        for b in bystanders.iter_mut() {
            if let Err(e) = b.check(self) {
                broken.push(format!("{} ({}): {e}", b.name, b.session));
            }
        }
        row.bystanders = if broken.is_empty() { format!("{} alive", bystanders.len()) } else { "BROKEN".into() };
        for e in broken {
            row.fail(e);
        }

        // The next start in the shared session.
        let mut next = self.start(shared, "next", None);
        next.ready();
        next.close_stdin();
        let code = next.exit_code();
        let left = next.tree();
        row.next = if code == 0 && left.is_empty() { "admitted, ran".into() } else { format!("exit {code}") };
        if code != 0 || !left.is_empty() {
            row.fail(format!("the next run exited {code}, left {}", describe(&left)));
        }
        row
    }
}

impl Bystander {
    /// Still running, unchanged: runner, server and daemon alive, the record naming the same
    /// runner, server and session, and the server answering.
    fn check(&mut self, m: &Matrix<'_>) -> Result<(), String> {
        for (what, pid) in [("runner", self.runner.pid), ("server", self.server), ("daemon", self.daemon)] {
            if !alive(pid) {
                return Err(format!("its {what} {pid} is gone"));
            }
        }
        let path = m.record_path(self.runner.pid);
        let now: Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| format!("its record {} is gone or unreadable", path.display()))?;
        for key in ["runner", "server", "session", "name", "driver", "cgroup"] {
            if now[key] != self.record[key] {
                return Err(format!("its record's {key} changed: {} -> {}", self.record[key], now[key]));
            }
        }
        self.pings += 1;
        let reply = self.runner.try_request(self.pings, "ping", &Value::Null);
        if reply.is_none() {
            return Err("its server does not answer".into());
        }
        Ok(())
    }

    /// Ends it normally (stdin closed): exit 0, nothing left.
    pub fn finish(mut self) {
        self.runner.close_stdin();
        self.runner.assert_exit(0, None);
    }
}

/// Reaps the victims' orphans this process adopted as their subreaper (the bystanders, our
/// own children, are alive and not touched).
fn reap_adopted(bystanders: &[Bystander]) {
    let me = std::process::id() as i32;
    for pid in crate::zombies_of(me) {
        if bystanders.iter().all(|b| b.runner.pid != pid) && proc_stat(pid).is_some_and(|s| s.ppid == me) {
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }
}

/// One point's outcome.
pub struct Row {
    pub point: &'static str,
    pub driver: &'static str,
    pub died: String,
    pub before: String,
    pub after: String,
    pub bystanders: String,
    pub next: String,
    pub failures: Vec<String>,
}

impl Row {
    fn new(point: &'static str, driver: &'static str) -> Row {
        Row {
            point,
            driver,
            died: String::new(),
            before: String::new(),
            after: String::new(),
            bystanders: String::new(),
            next: String::new(),
            failures: Vec::new(),
        }
    }

    fn fail(&mut self, why: String) {
        self.failures.push(why);
    }
}

/// Writes the matrix to stderr (unbuffered, past the harness's capture), then fails naming
/// every failure.
pub fn report(rows: &[Row]) {
    let header = ["point", "driver", "victims died", "before gc", "after gc", "bystanders", "next run", "result"];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.point.to_owned(),
                r.driver.to_owned(),
                r.died.clone(),
                r.before.clone(),
                r.after.clone(),
                r.bystanders.clone(),
                r.next.clone(),
                if r.failures.is_empty() { "ok".to_owned() } else { "FAIL".to_owned() },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut text = String::from("\nfault matrix (victims: one sharing a bystander's session, one alone):\n");
    let line = |text: &mut String, row: &[&str]| {
        let parts: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(text, "| {} |", parts.join(" | "));
    };
    line(&mut text, &header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(text, "|-{}-|", rule.join("-|-"));
    for row in &cells {
        line(&mut text, &row.each_ref().map(String::as_str));
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
    let failures: Vec<String> =
        rows.iter().flat_map(|r| r.failures.iter().map(move |f| format!("{}: {f}", r.point))).collect();
    assert!(failures.is_empty(), "fault matrix failures:\n{}", failures.join("\n"));
}
