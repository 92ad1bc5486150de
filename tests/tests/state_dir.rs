//! The state directory (runner records, the admission lock) under attack by another local
//! user and under faults (issue 9). The attacks are made the way a user would make them: as
//! another uid (`setpriv`), in directories that uid owns. The faults are real: a full tmpfs
//! (ENOSPC), a read-only one (EROFS), a directory the runner's uid may not write (EACCES).
//!
//! These tests need root (to act as other uids and to mount); without it they print why and
//! pass, unless `CI` is set: then they fail. A tmpfs that cannot be mounted (no
//! CAP_SYS_ADMIN, e.g. in some containers) skips the fault test that needs it, with the
//! reason printed.
#![cfg(target_os = "linux")]

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mcp_runner_tests::{Fixture, Policy, RunnerProc, TempDir, hang_guard, hostile, poll_until, runner_bin};
use serde_json::{Value, json};

/// The other local user: `nobody`.
const ATTACKER: u32 = 65534;
/// A local user running the runner, for the cases a root runner cannot show (its default
/// directory is not in /tmp; it is not stopped by permissions).
const VICTIM: u32 = 65533;

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

/// The fixture's directory, made traversable and readable for other uids (its policy file
/// too), with copies of the runner and the test server they can execute wherever the build
/// tree lives. Returns (runner, hostile).
fn open_to_other_users(fx: &Fixture) -> (PathBuf, PathBuf) {
    mode(fx.dir(), 0o755);
    mode(&fx.policy_file, 0o644);
    let bin = fx.dir().join("bin");
    fs::create_dir(&bin).expect("mkdir bin");
    mode(&bin, 0o755);
    let copy = |from: &Path, name: &str| {
        let to = bin.join(name);
        fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
        mode(&to, 0o755);
        to
    };
    (copy(&runner_bin(), "mcp-runner"), copy(Path::new(hostile!()), "hostile"))
}

/// `mcp-runner run --session SESSION --name NAME -- SERVER...` as `uid`, with the fixture's
/// policy and no state directory chosen for it (the runner picks its default).
fn run_as(fx: &Fixture, uid: u32, runner: &Path, session: &str, server: &[&Path], env: &[(&str, &Path)]) -> RunnerProc {
    let mut cmd = Command::new("setpriv");
    cmd.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into(), "--".into()])
        .arg(runner)
        .args(["run", "--session", session, "--name", "state", "--"])
        .args(server);
    fx.apply_env(&mut cmd);
    cmd.env_remove("MCP_RUNNER_STATE_DIR").env_remove("XDG_RUNTIME_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    RunnerProc::spawn(cmd)
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

#[test]
fn issue_9_state_dir_made_by_another_user_does_not_switch_admission_off() {
    // See: issue 9, finding 2
    // Without XDG_RUNTIME_DIR a user's runners use TMPDIR/mcp-runner-UID, a name anyone can
    // take first. max_servers = 1 held until another user made that directory; then a second
    // server started.
    if !root_or_skip() {
        return;
    }
    let fx =
        Fixture::new(&counts_only().set_in("global", "max_servers", "1").set_in("global", "driver", "\"userland\""));
    let (runner_bin, hostile) = open_to_other_users(&fx);
    // A private /tmp: root's, world-writable, sticky.
    let tmp = fx.dir().join("tmp");
    fs::create_dir(&tmp).expect("mkdir tmp");
    mode(&tmp, 0o1777);
    let taken = tmp.join(format!("mcp-runner-{VICTIM}"));
    as_user(ATTACKER, r#"mkdir "$1" && chmod 777 "$1""#, &[&taken]);

    // TMPDIR is the runner's own, the private /tmp.
    let start = |session: &str| {
        let mut r = run_as(&fx, VICTIM, &runner_bin, session, &[&hostile, Path::new("echo")], &[("TMPDIR", &tmp)]);
        initialize(&mut r);
        r
    };
    let mut a = start("a");
    let first_a = first(&mut a);
    let mut b = start("b");
    let first_b = first(&mut b);

    assert!(
        !matches!((&first_a, &first_b), (First::Admitted, First::Admitted)),
        "max_servers = 1, yet both servers started: uid {ATTACKER}'s {taken:?} switched admission off"
    );
    for (r, f) in [(&mut a, &first_a), (&mut b, &first_b)] {
        assert!(!matches!(f, First::Admitted), "a server started next to uid {ATTACKER}'s {taken:?}");
        let stderr = r.assert_exit(125, Some("refusing to use state directory"));
        assert!(
            stderr.contains(&taken.display().to_string()) && stderr.contains(&format!("owned by uid {ATTACKER}")),
            "the reason names neither the directory nor its owner:\n{stderr}"
        );
    }
    assert_eq!(fs::read_dir(&taken).expect("read taken").count(), 0, "the runner wrote into {taken:?}");
}

/// A tmpfs mounted at a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// `None` (with the reason printed) if this host does not let us mount.
    fn mount(tag: &str, options: &str) -> Option<Tmpfs> {
        let dir = TempDir::new(tag);
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs at {} ({}): {}",
                dir.path().display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let out = Command::new("mount").args(["-o", options]).arg(self.path()).output().expect("run mount -o remount");
        assert!(out.status.success(), "mount -o {options} {:?}: {}", self.path(), String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Runs `hostile echo` with `state` as the state directory and `policy`; returns the runner
/// after `initialize` was sent.
fn run_with_state(fx: &Fixture, state: &Path) -> RunnerProc {
    let mut cmd = fx.command(&["run", "--name", "echo", "--", hostile!(), "echo"]);
    cmd.env("MCP_RUNNER_STATE_DIR", state);
    let mut r = RunnerProc::spawn(cmd);
    initialize(&mut r);
    r
}

/// The runner refused (122) with `reason` both in its answer to the client and on stderr.
fn assert_refused(r: &mut RunnerProc, reason: &str) {
    match first(r) {
        First::Refused(err) => {
            let msg = err["message"].as_str().unwrap_or_default();
            assert!(msg.contains("admission control is unavailable") && msg.contains(reason), "{err}");
            assert_eq!(err["data"]["cap"], "state_dir", "{err}");
        }
        other => panic!("expected a refusal ({reason}), got {other:?}; {}", r.diag()),
    }
    r.assert_exit(122, Some(reason));
}

/// With no admission check in the policy, the server runs, and stderr says what is off.
fn assert_runs_with_warning(r: &mut RunnerProc, reason: &str) {
    match first(r) {
        First::Admitted => {}
        other => panic!("a policy without caps should run the server, got {other:?}; {}", r.diag()),
    }
    r.close_stdin();
    let stderr = r.assert_exit(0, Some(reason));
    assert!(stderr.contains("crash cleanup"), "no warning that crash cleanup is off:\n{stderr}");
}

#[test]
fn issue_9_full_state_dir_refuses_under_caps() {
    // See: issue 9, finding 2 (ENOSPC)
    if !root_or_skip() {
        return;
    }
    let Some(fs_) = Tmpfs::mount("enospc", "size=64k,mode=0700") else { return };
    // Fill it: the next byte written anywhere in it gets ENOSPC.
    let filler = fs_.path().join("filler");
    let mut f = fs::File::create(&filler).expect("create filler");
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);

    let fx = Fixture::new(&counts_only().set_in("global", "max_servers", "4"));
    let mut r = run_with_state(&fx, fs_.path());
    assert_refused(&mut r, "No space left on device");

    let fx = Fixture::new(&no_caps());
    let mut r = run_with_state(&fx, fs_.path());
    assert_runs_with_warning(&mut r, "No space left on device");
}

#[test]
fn issue_9_read_only_state_dir_refuses_under_caps() {
    // See: issue 9, finding 2 (EROFS)
    if !root_or_skip() {
        return;
    }
    let Some(fs_) = Tmpfs::mount("erofs", "size=64k,mode=0700") else { return };
    fs_.remount("remount,ro");

    let fx = Fixture::new(&counts_only().set_in("global", "max_servers", "4"));
    let mut r = run_with_state(&fx, fs_.path());
    assert_refused(&mut r, "Read-only file system");

    let fx = Fixture::new(&no_caps());
    let mut r = run_with_state(&fx, fs_.path());
    assert_runs_with_warning(&mut r, "Read-only file system");
}

#[test]
fn issue_9_unwritable_state_dir_refuses_under_caps() {
    // See: issue 9, finding 2 (EACCES): root is not stopped by permissions, so the runner
    // runs as another uid, on a state directory of its own that it may not write.
    if !root_or_skip() {
        return;
    }
    for (policy, caps) in [(counts_only().set_in("global", "max_servers", "4"), true), (no_caps(), false)] {
        let fx = Fixture::new(&policy.set_in("global", "driver", "\"userland\""));
        let (runner_bin, hostile) = open_to_other_users(&fx);
        let state = fx.dir().join("readonly");
        fs::create_dir(&state).expect("mkdir readonly");
        own(&state, VICTIM);
        mode(&state, 0o500);
        let mut r =
            run_as(&fx, VICTIM, &runner_bin, "s", &[&hostile, Path::new("echo")], &[("MCP_RUNNER_STATE_DIR", &state)]);
        initialize(&mut r);
        if caps {
            assert_refused(&mut r, "Permission denied");
        } else {
            assert_runs_with_warning(&mut r, "Permission denied");
        }
    }
}
