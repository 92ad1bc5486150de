//! `mcp-runner wrap CONFIG`: rewrites the `mcpServers` of a client config so
//! that every stdio server runs through the runner with `--name` set to its
//! key; `--dry-run` prints the diff; the first change keeps a backup and
//! `--undo` turns the servers back; a second run changes nothing; remote
//! servers are left alone; a malformed config is an error that changes
//! nothing. Each test runs the real binary on a copy of a real-shaped
//! config (tests/fixtures/configs) in a fresh directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mcp_runner_tests::{TempDir, runner_bin};
use serde_json::{Value, json};

/// A fixture copied into a fresh directory under its own name.
struct Config {
    dir: TempDir,
    path: PathBuf,
    original: Vec<u8>,
}

impl Config {
    fn new(fixture: &str) -> Config {
        let dir = TempDir::new("wrap");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/configs").join(fixture);
        let original = fs::read(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        let path = dir.path().join(fixture);
        fs::write(&path, &original).expect("copy fixture");
        Config { dir, path, original }
    }

    fn backup(&self) -> PathBuf {
        PathBuf::from(format!("{}.mcp-runner.bak", self.path.display()))
    }

    fn bytes(&self) -> Vec<u8> {
        fs::read(&self.path).expect("read config")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes()).expect("config is JSON")
    }

    fn original_json(&self) -> Value {
        serde_json::from_slice(&self.original).expect("fixture is JSON")
    }

    fn assert_untouched(&self) {
        assert!(self.bytes() == self.original, "{} changed", self.path.display());
        assert!(!self.backup().exists(), "a backup was created");
        let files: Vec<_> =
            fs::read_dir(self.dir.path()).expect("read dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(files.len(), 1, "stray files: {files:?}");
    }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn wrap(config: &Path, flags: &[&str]) -> Outcome {
    let out = Command::new(runner_bin())
        .arg("wrap")
        .arg(config)
        .args(flags)
        .stdin(Stdio::null())
        .output()
        .expect("run mcp-runner");
    let outcome = Outcome {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("wrap {} {flags:?}: exit {}\n{}{}", config.display(), outcome.code, outcome.stdout, outcome.stderr);
    outcome
}

fn wrap_ok(config: &Path, flags: &[&str]) -> Outcome {
    let out = wrap(config, flags);
    assert_eq!(out.code, 0, "wrap failed: {}", out.stderr);
    out
}

/// The command `wrap` writes by default: the runner's own absolute path.
fn runner_path() -> String {
    fs::canonicalize(runner_bin()).expect("canonical runner path").to_string_lossy().into_owned()
}

/// `servers[name]` as the wrapped config must have it: every field kept,
/// `command` the runner, `args` `run --name=NAME -- COMMAND ARGS...`.
fn wrapped(servers: &Value, name: &str, runner: &str) -> Value {
    let mut entry = servers[name].clone();
    let command = entry["command"].as_str().expect("command").to_owned();
    let mut args = vec![json!("run"), json!(format!("--name={name}")), json!("--"), json!(command)];
    args.extend(entry.get("args").and_then(Value::as_array).cloned().unwrap_or_default());
    entry["command"] = json!(runner);
    entry["args"] = Value::Array(args);
    entry
}

/// The original config with the named servers of one `mcpServers` object
/// (at `pointer`) wrapped.
fn expect_wrapped(mut config: Value, pointer: &str, names: &[&str], runner: &str) -> Value {
    let servers = config.pointer(pointer).expect("servers").clone();
    for name in names {
        let entry = wrapped(&servers, name, runner);
        *config.pointer_mut(pointer).and_then(|s| s.get_mut(*name)).expect("entry") = entry;
    }
    config
}

#[test]
fn claude_desktop_config_is_wrapped_and_backed_up() {
    let cfg = Config::new("claude_desktop_config.json");
    let out = wrap_ok(&cfg.path, &[]);
    let names = ["filesystem", "github", "sqlite", "weather"];
    assert_eq!(cfg.json(), expect_wrapped(cfg.original_json(), "/mcpServers", &names, &runner_path()));
    // env, disabled flags and unknown fields came along; the remote server did not change.
    assert_eq!(cfg.json()["mcpServers"]["github"]["env"], json!({"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_example"}));
    assert_eq!(cfg.json()["mcpServers"]["linear"], cfg.original_json()["mcpServers"]["linear"]);
    assert!(fs::read(cfg.backup()).expect("backup") == cfg.original, "backup is not the original");
    assert!(out.stdout.contains("wrapped          mcpServers.github\n"), "{}", out.stdout);
    assert!(out.stdout.contains("left alone       mcpServers.linear: remote server (url)\n"), "{}", out.stdout);
    assert!(out.stdout.contains(&cfg.backup().display().to_string()), "{}", out.stdout);
}

#[test]
fn cursor_mcp_json_is_wrapped_in_its_own_layout() {
    let cfg = Config::new("cursor-mcp.json");
    wrap_ok(&cfg.path, &[]);
    let want = expect_wrapped(cfg.original_json(), "/mcpServers", &["context7", "postgres"], &runner_path());
    assert_eq!(cfg.json(), want);
    let text = String::from_utf8(cfg.bytes()).expect("UTF-8");
    // Tabs stay tabs, one-item-per-line arrays stay so, no final newline is added.
    assert!(text.contains("\n\t\t\t\"args\": [\n\t\t\t\t\"run\",\n\t\t\t\t\"--name=context7\",\n"), "{text}");
    assert!(text.ends_with("}\n}"), "{text}");
}

#[test]
fn claude_code_mcp_json_keeps_type_stdio_and_skips_http_and_sse() {
    let cfg = Config::new("claude-code.mcp.json");
    let out = wrap_ok(&cfg.path, &[]);
    let want = expect_wrapped(cfg.original_json(), "/mcpServers", &["playwright", "db"], &runner_path());
    assert_eq!(cfg.json(), want);
    assert_eq!(cfg.json()["mcpServers"]["playwright"]["type"], "stdio");
    assert!(out.stdout.contains("mcpServers.sentry: remote server (type \"http\")"), "{}", out.stdout);
    assert!(out.stdout.contains("mcpServers.asana: remote server (type \"sse\")"), "{}", out.stdout);
    let text = String::from_utf8(cfg.bytes()).expect("UTF-8");
    assert!(text.contains("\n            \"command\": \"") && text.ends_with("}\n"), "4-space layout lost:\n{text}");
}

#[test]
fn claude_json_wraps_top_level_and_project_servers() {
    let cfg = Config::new("claude.json");
    let out = wrap_ok(&cfg.path, &[]);
    let runner = runner_path();
    let mut want = expect_wrapped(cfg.original_json(), "/mcpServers", &["memory", "time"], &runner);
    want = expect_wrapped(want, "/projects/~1home~1ada~1src~1app/mcpServers", &["postgres"], &runner);
    want = expect_wrapped(want, "/projects/~1home~1ada~1src~1site/mcpServers", &["fetch"], &runner);
    assert_eq!(cfg.json(), want);
    assert!(
        out.stdout.contains(r#"wrapped          projects["/home/ada/src/app"].mcpServers.postgres"#),
        "{}",
        out.stdout
    );
}

#[test]
fn second_run_changes_nothing() {
    for fixture in ["claude_desktop_config.json", "cursor-mcp.json", "claude-code.mcp.json", "claude.json"] {
        let cfg = Config::new(fixture);
        wrap_ok(&cfg.path, &[]);
        let (bytes, meta) = (cfg.bytes(), fs::metadata(&cfg.path).expect("stat"));
        let out = wrap_ok(&cfg.path, &[]);
        let again = fs::metadata(&cfg.path).expect("stat");
        assert!(cfg.bytes() == bytes, "{fixture}: second run changed the file");
        // Same inode and mtime: the file was not even rewritten.
        assert_eq!((again.ino(), again.mtime(), again.mtime_nsec()), (meta.ino(), meta.mtime(), meta.mtime_nsec()));
        assert!(out.stdout.contains("nothing to change"), "{}", out.stdout);
        assert!(!out.stdout.contains("wrapped          "), "{}", out.stdout);
    }
}

#[test]
fn the_backup_is_never_overwritten() {
    let cfg = Config::new("claude_desktop_config.json");
    wrap_ok(&cfg.path, &[]);
    // A server added after the first wrap is wrapped by the next one; the
    // backup still holds the config from before the first.
    let mut edited = cfg.json();
    edited["mcpServers"]["added"] = json!({"command": "node", "args": ["added.js"]});
    fs::write(&cfg.path, serde_json::to_string_pretty(&edited).expect("serialize")).expect("edit");
    let out = wrap_ok(&cfg.path, &[]);
    assert_eq!(cfg.json()["mcpServers"]["added"], wrapped(&edited["mcpServers"], "added", &runner_path()));
    assert!(fs::read(cfg.backup()).expect("backup") == cfg.original, "backup was overwritten");
    assert!(out.stdout.contains("(kept from an earlier run)"), "{}", out.stdout);
}

#[test]
fn undo_restores_the_original() {
    for fixture in ["claude_desktop_config.json", "cursor-mcp.json", "claude-code.mcp.json", "claude.json"] {
        let cfg = Config::new(fixture);
        wrap_ok(&cfg.path, &[]);
        let out = wrap_ok(&cfg.path, &["--undo"]);
        assert_eq!(cfg.json(), cfg.original_json(), "{fixture}");
        // The edit is exact: the very bytes come back.
        assert!(cfg.bytes() == cfg.original, "{fixture}: bytes differ");
        assert!(out.stdout.contains("unwrapped        "), "{}", out.stdout);
        assert!(out.stdout.contains(&cfg.backup().display().to_string()), "{}", out.stdout);
        assert!(cfg.backup().exists(), "{fixture}: undo removed the backup");
    }
}

#[test]
fn undo_keeps_edits_made_since_the_wrap() {
    let cfg = Config::new("claude_desktop_config.json");
    wrap_ok(&cfg.path, &[]);
    let mut edited = cfg.json();
    edited["mcpServers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"] = json!("ghp_rotated");
    fs::write(&cfg.path, serde_json::to_string_pretty(&edited).expect("serialize")).expect("edit");
    wrap_ok(&cfg.path, &["--undo"]);
    let mut want = cfg.original_json();
    want["mcpServers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"] = json!("ghp_rotated");
    assert_eq!(cfg.json(), want);
}

#[test]
fn undo_with_nothing_wrapped_says_so_and_changes_nothing() {
    let cfg = Config::new("cursor-mcp.json");
    let out = wrap_ok(&cfg.path, &["--undo"]);
    assert!(out.stdout.contains("nothing to undo"), "{}", out.stdout);
    cfg.assert_untouched();
}

#[test]
fn dry_run_prints_a_diff_and_writes_nothing() {
    let cfg = Config::new("claude_desktop_config.json");
    let out = wrap_ok(&cfg.path, &["--dry-run"]);
    let shown = cfg.path.display();
    assert!(out.stdout.starts_with(&format!("--- {shown}\n+++ {shown}\n@@ -")), "{}", out.stdout);
    assert!(out.stdout.contains("\n-      \"command\": \"npx\",\n"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("\n+      \"command\": \"{}\",\n", runner_path())), "{}", out.stdout);
    assert!(out.stdout.contains("\n+      \"args\": [\"run\", \"--name=github\", \"--\", \"npx\", "), "{}", out.stdout);
    // The report goes to stderr, so that stdout is a clean patch.
    assert!(out.stderr.contains("wrapped          mcpServers.github"), "{}", out.stderr);
    cfg.assert_untouched();
}

#[test]
fn malformed_config_is_exit_2_with_its_location_and_nothing_is_written() {
    let cases = [
        ("malformed-trailing-comma.json", "6:5: trailing comma"),
        ("malformed-args-not-array.json", "9:15: mcpServers.github.args: expected an array of strings"),
        ("malformed-mcpservers-array.json", "2:17: mcpServers: expected an object, found an array"),
    ];
    for (fixture, message) in cases {
        for flags in [&[][..], &["--dry-run"], &["--undo"]] {
            let cfg = Config::new(fixture);
            let out = wrap(&cfg.path, flags);
            assert_eq!(out.code, 2, "{fixture} {flags:?}");
            let want = format!("{}:{message}", cfg.path.display());
            assert!(out.stderr.contains(&want), "{fixture}: stderr lacks {want:?}:\n{}", out.stderr);
            assert!(out.stdout.is_empty(), "{}", out.stdout);
            cfg.assert_untouched();
        }
    }
}

#[test]
fn missing_config_is_exit_2() {
    let dir = TempDir::new("wrap-missing");
    let path = dir.path().join("claude_desktop_config.json");
    let out = wrap(&path, &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains(&format!("{}: no such file", path.display())), "{}", out.stderr);
    assert_eq!(fs::read_dir(dir.path()).expect("read dir").count(), 0, "something was created");
}

#[test]
fn runner_flag_sets_the_command() {
    let cfg = Config::new("cursor-mcp.json");
    wrap_ok(&cfg.path, &["--runner", "/usr/local/bin/mcp-runner"]);
    let want =
        expect_wrapped(cfg.original_json(), "/mcpServers", &["context7", "postgres"], "/usr/local/bin/mcp-runner");
    assert_eq!(cfg.json(), want);
}

#[test]
fn permissions_are_kept_for_the_config_and_its_backup() {
    let cfg = Config::new("claude_desktop_config.json");
    fs::set_permissions(&cfg.path, fs::Permissions::from_mode(0o600)).expect("chmod");
    wrap_ok(&cfg.path, &[]);
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&cfg.path), 0o600);
    assert_eq!(mode(&cfg.backup()), 0o600);
}

#[test]
fn a_symlinked_config_stays_a_symlink() {
    let cfg = Config::new("claude-code.mcp.json");
    let link = cfg.dir.path().join("link.json");
    std::os::unix::fs::symlink(&cfg.path, &link).expect("symlink");
    wrap_ok(&link, &[]);
    assert!(fs::symlink_metadata(&link).expect("lstat").file_type().is_symlink());
    assert_eq!(cfg.json()["mcpServers"]["db"]["command"], json!(runner_path()));
}

// ---------------------------------------------------------------------------------------------
// Issue 9: a security review's finding 5.

/// A config of `text` in a fresh directory.
fn config_of(file: &str, text: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new("wrap");
    let path = dir.path().join(file);
    fs::write(&path, text).expect("write config");
    (dir, path)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).expect("read dir").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
    names.sort();
    names
}

#[test]
fn issue_9_the_owner_of_the_config_and_its_backup_is_kept() {
    // See: issue 9, finding 5
    // `sudo mcp-runner wrap` must not leave the user's config owned by root.
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: giving a file to another user needs root");
        return;
    }
    let cfg = Config::new("claude_desktop_config.json");
    std::os::unix::fs::chown(&cfg.path, Some(65534), Some(65534)).expect("chown");
    let owner = |p: &Path| {
        let m = fs::metadata(p).expect("stat");
        (m.uid(), m.gid())
    };
    wrap_ok(&cfg.path, &[]);
    assert_eq!(owner(&cfg.path), (65534, 65534), "the config's owner changed");
    assert_eq!(owner(&cfg.backup()), (65534, 65534), "the backup is not owned like the config");
    wrap_ok(&cfg.path, &["--undo"]);
    assert_eq!(owner(&cfg.path), (65534, 65534), "undo changed the config's owner");
    assert!(cfg.bytes() == cfg.original);
}

#[test]
fn issue_9_a_config_that_cannot_keep_its_owner_is_not_written() {
    // See: issue 9, finding 5
    // A user who may write someone else's config (mode 0666 in a directory
    // open to all) cannot give the new file its owner: then nothing is
    // written, rather than a config that changed hands.
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: running wrap as another user needs root");
        return;
    }
    let cfg = Config::new("claude_desktop_config.json");
    fs::set_permissions(cfg.dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod dir");
    fs::set_permissions(&cfg.path, fs::Permissions::from_mode(0o666)).expect("chmod config");
    let out = Command::new(runner_bin())
        .arg("wrap")
        .arg(&cfg.path)
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .expect("run mcp-runner");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("the owner of the config (uid 0, gid 0)"), "{stderr}");
    cfg.assert_untouched();
    assert_eq!(fs::metadata(&cfg.path).expect("stat").uid(), 0);
}

#[test]
fn issue_9_a_config_replaced_during_the_edit_is_read_again() {
    // See: issue 9, finding 5
    // A client that replaces its config (a temporary file renamed over it, or
    // a write in place) while wrap works on it must not lose that write. The
    // config starts as a FIFO so that the timing is certain, not likely:
    // wrap's read cannot end before this test closes the FIFO, and the test
    // renames the client's new version over the config before it does. So
    // the version wrap read is gone before wrap can rename anything, and wrap
    // must notice it, read the client's version and wrap that.
    let dir = TempDir::new("wrap-race");
    let path = dir.path().join("claude_desktop_config.json");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/configs/claude_desktop_config.json");
    let first = fs::read(&source).expect("fixture");
    let mut client: Value = serde_json::from_slice(&first).expect("fixture is JSON");
    client["mcpServers"]["added"] = json!({"command": "node", "args": ["added.js"]});
    let client_bytes = serde_json::to_vec_pretty(&client).expect("serialize");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR).expect("mkfifo");

    let wrap = Command::new(runner_bin())
        .arg("wrap")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mcp-runner");
    // A non-blocking open for writing fails (ENXIO) until wrap opens the FIFO
    // for reading: then wrap is inside its read.
    let mut opened = None;
    let open = || fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&path);
    let ready = mcp_runner_tests::poll_until(mcp_runner_tests::hang_guard(), Duration::from_millis(5), || {
        opened = open().ok();
        opened.is_some()
    });
    let mut fifo = opened.filter(|_| ready).expect("wrap never opened the config");
    fifo.write_all(&first).expect("write the first version");
    let tmp = dir.path().join("client.tmp");
    fs::write(&tmp, &client_bytes).expect("write the client's version");
    fs::rename(&tmp, &path).expect("replace the config");
    drop(fifo);

    let out = wrap.wait_with_output().expect("wait for wrap");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("wrap: {}\n{stdout}{stderr}", out.status);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("changed while wrap was editing it"), "{stdout}");
    let names = ["filesystem", "github", "sqlite", "weather", "added"];
    let got: Value = serde_json::from_slice(&fs::read(&path).expect("read config")).expect("config is JSON");
    assert_eq!(got, expect_wrapped(client, "/mcpServers", &names, &runner_path()), "the client's write was lost");
    let backup = dir.path().join("claude_desktop_config.json.mcp-runner.bak");
    assert!(fs::read(&backup).expect("backup") == client_bytes, "the backup is not the version that was wrapped");
    assert_eq!(names_in(dir.path()), ["claude_desktop_config.json", "claude_desktop_config.json.mcp-runner.bak"]);
}

#[test]
fn issue_9_a_dangling_symlink_at_the_backup_name_is_refused_and_not_followed() {
    // See: issue 9, finding 5
    // Only a regular file at the backup name is an earlier backup. A symlink
    // there (dangling or not) is an error that names it, and it is never
    // followed: a planted link must not make a root wrap create or read a
    // file elsewhere.
    let cfg = Config::new("claude_desktop_config.json");
    let planted = cfg.dir.path().join("planted");
    std::os::unix::fs::symlink(&planted, cfg.backup()).expect("symlink");
    for flags in [&[][..], &["--undo"]] {
        let out = wrap(&cfg.path, flags);
        assert_eq!(out.code, 2, "{flags:?}: {}", out.stderr);
        let backup = cfg.backup().display().to_string();
        assert!(out.stderr.contains(&format!("{backup} is a symlink, not a backup")), "{flags:?}: {}", out.stderr);
        assert!(cfg.bytes() == cfg.original, "{flags:?}: the config changed");
        assert!(fs::symlink_metadata(&planted).is_err(), "{flags:?}: the symlink was followed");
        assert!(fs::symlink_metadata(cfg.backup()).expect("lstat").file_type().is_symlink());
    }
    assert_eq!(names_in(cfg.dir.path()), ["claude_desktop_config.json", "claude_desktop_config.json.mcp-runner.bak"]);
}

#[test]
fn issue_9_a_server_key_that_looks_like_a_flag_stays_one_argument() {
    // See: issue 9, finding 5
    // `--name KEY` as two arguments let a key such as `--policy=/x` be read
    // as a flag of `run`; `--name=KEY` cannot be. Wrap then undo gives back
    // the original bytes.
    let text = "{\n  \"mcpServers\": {\n    \"--policy=/x\": { \"command\": \"node\", \"args\": [\"s.js\"] },\n    \
                \"--\": { \"command\": \"uvx\", \"args\": [\"srv\"] }\n  }\n}\n";
    let (_dir, path) = config_of(".mcp.json", text);
    wrap_ok(&path, &[]);
    let got: Value = serde_json::from_slice(&fs::read(&path).expect("read")).expect("JSON");
    assert_eq!(got["mcpServers"]["--policy=/x"]["args"], json!(["run", "--name=--policy=/x", "--", "node", "s.js"]));
    assert_eq!(got["mcpServers"]["--"]["args"], json!(["run", "--name=--", "--", "uvx", "srv"]));
    wrap_ok(&path, &["--undo"]);
    assert_eq!(String::from_utf8(fs::read(&path).expect("read")).expect("UTF-8"), text);
    // What an earlier wrap wrote, `--name KEY` in two arguments, is undone too.
    let old = text
        .replace(
            r#""command": "node", "args": ["s.js"]"#,
            r#""command": "mcp-runner", "args": ["run", "--name", "--policy=/x", "--", "node", "s.js"]"#,
        )
        .replace(
            r#""command": "uvx", "args": ["srv"]"#,
            r#""command": "mcp-runner", "args": ["run", "--name", "--", "--", "uvx", "srv"]"#,
        );
    fs::write(&path, &old).expect("write the old form");
    wrap_ok(&path, &["--undo"]);
    assert_eq!(String::from_utf8(fs::read(&path).expect("read")).expect("UTF-8"), text);
}
