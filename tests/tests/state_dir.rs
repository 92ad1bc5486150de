//! The state directory (runner records, the admission lock) under attack by another local
//! user (issue 9). The attacks are made the way a user would make them: as another uid
//! (`setpriv`), in directories that uid owns.
//!
//! These tests need root (to act as other uids); without it they print why and pass, unless
//! `CI` is set: then they fail.
#![cfg(target_os = "linux")]

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mcp_runner_tests::{Fixture, Policy, RunnerProc, hang_guard, hostile, poll_until};
use serde_json::{Value, json};

/// The other local user: `nobody`.
const ATTACKER: u32 = 65534;

/// Where root's runners keep their records on Linux (`/run/mcp-runner`).
const ROOT_STATE_DIR: &str = "/run/mcp-runner";

fn root_or_skip() -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "the state-dir tests need root (CI is set: a failure, not a skip)");
    eprintln!("SKIPPED: the state-dir tests need root (to act as other uids and to mount a tmpfs)");
    false
}

/// Caps on counts only: headroom and pressure depend on the machine.
fn counts_only() -> Policy {
    Policy::default().set_in("global", "min_headroom", "\"0\"").set_in("global", "max_pressure", "\"max\"")
}

/// A policy with no admission check at all: every count cap off, no headroom, no pressure.
fn no_caps() -> Policy {
    counts_only().set_in("global", "max_servers", "\"max\"").set_in("global", "max_sessions", "\"max\"").set_in(
        "session",
        "max_servers",
        "\"max\"",
    )
}

fn mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

fn own(path: &Path, uid: u32) {
    chown(path, Some(uid), Some(uid)).unwrap_or_else(|e| panic!("chown {uid} {}: {e}", path.display()));
}

/// `sh -c SCRIPT sh ARGS...` as `uid`, which must succeed.
fn as_user(uid: u32, script: &str, args: &[&Path]) {
    let out = Command::new("setpriv")
        .args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into(), "--".into()])
        .args(["sh", "-c", script, "sh"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run setpriv (util-linux): {e}"));
    assert!(
        out.status.success(),
        "as uid {uid}: {script} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn initialize(r: &mut RunnerProc) {
    r.send_line(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}).to_string());
}

/// What the runner's first stdout line says after `initialize`.
#[derive(Debug)]
enum First {
    /// The server started (its `hostile/ready`).
    Admitted,
    /// The runner answered the request with a JSON-RPC error.
    Refused(Value),
    /// Stdout closed with no answer: the runner failed before it could start anything.
    Closed,
}

fn first(r: &mut RunnerProc) -> First {
    let Some(line) = r.read_line() else { return First::Closed };
    let msg: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    if msg["method"] == "hostile/ready" {
        First::Admitted
    } else {
        assert_eq!(msg["id"], 1, "an answer to the first request: {msg}");
        First::Refused(msg["error"].clone())
    }
}

/// Whether the JSON record at `path` lists `pid` among its members.
fn records_member(path: &Path, pid: i64) -> bool {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|rec| rec["members"].as_array().map(|m| m.iter().any(|p| p["pid"].as_i64() == Some(pid))))
        .unwrap_or(false)
}

/// Every path under `dir` (itself included) that belongs to uid 0.
fn owned_by_root(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else { continue };
        if std::os::unix::fs::MetadataExt::uid(&meta) == 0 {
            found.push(p.clone());
        }
        if meta.is_dir() {
            todo.extend(fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()));
        }
    }
    found
}

#[test]
fn issue_9_root_runner_keeps_out_of_a_runtime_dir_another_user_owns() {
    // See: issue 9, finding 1
    // `su` and `sudo -E` keep the user's XDG_RUNTIME_DIR: a root runner must not keep its
    // records in a directory the user owns, where the user can swap the runner's directory
    // for one with a symlink at the name the runner writes through.
    if !root_or_skip() {
        return;
    }
    let fx = Fixture::new(&no_caps());
    mode(fx.dir(), 0o755);
    let xdg = fx.dir().join("xdg");
    fs::create_dir(&xdg).expect("mkdir xdg");
    own(&xdg, ATTACKER);
    mode(&xdg, 0o700);
    // A file of root's outside any state directory, and a name root must not create.
    let precious = fx.dir().join("precious");
    fs::write(&precious, "precious\n").expect("write precious");
    let created = fx.dir().join("created-by-root");

    let session = format!("issue-9-xdg-{}", std::process::id());
    let mut cmd = fx.command(&["run", "--session", &session, "--name", "fork", "--", hostile!(), "fork-on-input"]);
    cmd.env_remove("MCP_RUNNER_STATE_DIR").env("XDG_RUNTIME_DIR", &xdg);
    let mut runner = RunnerProc::spawn(cmd);
    runner.ready();

    // The attack, as the owner of XDG_RUNTIME_DIR: the runner's directory goes aside, and a
    // new one holds symlinks at the names the runner writes through.
    let record = format!("runner-{}.json", runner.pid);
    as_user(
        ATTACKER,
        r#"cd "$1" && { [ ! -e mcp-runner ] || mv mcp-runner moved-aside; } && mkdir mcp-runner &&
           ln -s "$2" "mcp-runner/$4.tmp" && ln -s "$3" mcp-runner/admission.lock"#,
        &[&xdg, &precious, &created, Path::new(&record)],
    );

    // The tree changes: the runner records its new member, wherever it keeps its record.
    runner.send_line(&json!({"jsonrpc": "2.0", "id": 2, "method": "fork", "params": {}}).to_string());
    let forked = runner.expect_notification("hostile/forked");
    let child = forked["pids"][0].as_i64().unwrap_or_else(|| panic!("no child pid in {forked}"));
    let candidates = [Path::new(ROOT_STATE_DIR).join(&record), xdg.join("moved-aside").join(&record), precious.clone()];
    let recorded =
        poll_until(hang_guard(), Duration::from_millis(10), || candidates.iter().any(|p| records_member(p, child)));
    assert!(recorded, "the runner never recorded its new member {child}; {}", runner.diag());

    runner.close_stdin();
    runner.assert_exit(0, None);
    let now = fs::read_to_string(&precious).expect("read precious");
    assert_eq!(now, "precious\n", "root's file outside the state directory was overwritten with the record");
    assert!(!created.exists(), "root created {} through the planted admission.lock", created.display());
    let roots = owned_by_root(&xdg);
    assert!(roots.is_empty(), "a root runner created {roots:?} in a runtime dir uid {ATTACKER} owns");
}

#[test]
fn issue_9_root_refuses_a_state_dir_under_a_directory_another_user_owns() {
    // See: issue 9, finding 1
    // The state directory itself is root's, but its parent is another user's: that user can
    // rename it and put anything in its place between two writes.
    if !root_or_skip() {
        return;
    }
    let fx = Fixture::new(&counts_only());
    mode(fx.dir(), 0o755);
    let home = fx.dir().join("home");
    fs::create_dir(&home).expect("mkdir home");
    own(&home, ATTACKER);
    mode(&home, 0o755);
    let state = home.join("state");
    fs::create_dir(&state).expect("mkdir state");
    mode(&state, 0o700);

    let mut cmd = fx.command(&["run", "--name", "echo", "--", hostile!(), "echo"]);
    cmd.env("MCP_RUNNER_STATE_DIR", &state);
    let mut runner = RunnerProc::spawn(cmd);
    initialize(&mut runner);
    match first(&mut runner) {
        First::Admitted => panic!("a root runner started with its state directory under uid {ATTACKER}'s {home:?}"),
        // Whatever the policy says: a directory someone else can change is never used.
        First::Refused(err) => panic!("refused as if only admission were at stake (122), not failed closed: {err}"),
        First::Closed => {
            let stderr = runner.assert_exit(125, Some("refusing to use state directory"));
            assert!(
                stderr.contains(&format!("{} is owned by uid {ATTACKER}", home.display())),
                "the reason does not name the directory and its owner:\n{stderr}"
            );
        }
    }
    assert_eq!(fs::read_dir(&state).expect("read state").count(), 0, "the runner wrote into {state:?}");
}
