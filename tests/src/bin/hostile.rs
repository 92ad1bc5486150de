//! `hostile`: MCP stdio servers that misbehave on purpose, one per mode, for the end-to-end
//! tests of `mcp-runner`. This is test equipment, not production code.
//!
//! Usage: `hostile MODE [N]`. Every mode prints one JSON line first (or, where the mode must
//! create processes before it can name them, as soon as they exist):
//! `{"jsonrpc":"2.0","method":"hostile/ready","params":{"pid":P,"mode":"M","sigblk":"...",...}}`
//! (the params also hold the open descriptors `fds` and the credentials: `uid`, `gid`, and on
//! Linux `uids`, `gids`, `groups`, `cap_eff`, `cap_prm`, `cap_inh`, `cap_bnd`, `cap_amb`,
//! `no_new_privs` as `/proc/self/status` shows them)
//! and then answers newline-delimited JSON-RPC requests with
//! `{"jsonrpc":"2.0","id":ID,"result":{"echo":PARAMS}}`, unless the mode says otherwise.
//!
//! Every mode that answers also takes `hostile/flood {"count": N}`: N
//! `notifications/tools/list_changed` lines, then the answer.
//!
//! Modes: `echo`, `daemon`, `ignore-term`, `ignore-eof`, `zombies N`, `forkbomb`,
//! `leak [MIB]`, `leak-on-input [MIB]`, `tree N`, `fork-on-input` (see `main`).
//!
//! The process is single-threaded on purpose: after `fork` the child may then allocate and
//! call anything, which is only sound when no other thread could hold a lock at fork time.

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, pipe, setsid};
use serde_json::{Map, Value, json};

/// Upper bound of the fork bomb, so that a broken runner cannot take the host down.
const FORKBOMB_MAX: usize = 3000;
/// The fork bomb gives up after this long even if forks keep failing (a runner that caps
/// pids without killing would otherwise keep it spinning forever).
const FORKBOMB_MAX_TIME: Duration = Duration::from_secs(60);
/// The leak: this much per step, one step every `LEAK_STEP_PAUSE`, at most `LEAK_MAX` in all.
const LEAK_STEP: usize = 8 << 20;
const LEAK_STEP_PAUSE: Duration = Duration::from_millis(5);
const LEAK_MAX: usize = 3 << 30;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let count = args.get(1).and_then(|n| n.parse::<usize>().ok());
    let result = match (mode, count) {
        ("echo", _) => echo(),
        ("daemon", _) => daemon(),
        ("ignore-term", _) => ignore_term(),
        ("ignore-eof", _) => ignore_eof(),
        ("zombies", Some(n)) => zombies(n),
        ("forkbomb", _) => forkbomb(),
        ("leak", None) => leak(LEAK_MAX, false),
        ("leak", Some(mib)) if mib >= 1 => leak(mib_bytes(mib), false),
        ("leak-on-input", None) => leak(LEAK_MAX, true),
        ("leak-on-input", Some(mib)) if mib >= 1 => leak(mib_bytes(mib), true),
        ("tree", Some(n)) if n >= 1 => tree(n),
        ("fork-on-input", _) => fork_on_input(),
        _ => {
            eprintln!(
                "usage: hostile echo|daemon|ignore-term|ignore-eof|forkbomb\n       hostile leak [MIB] | leak-on-input [MIB] | zombies N | tree N | fork-on-input"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hostile {mode}: {err}");
            ExitCode::from(1)
        }
    }
}

/// Well-behaved: echo until stdin EOF, then exit 0.
fn echo() -> io::Result<()> {
    ready("echo", Map::new())?;
    serve_echo()
}

/// Leaves a daemon behind that escapes the process group and the session, as real servers
/// that "background" a helper do. Exits 0 on EOF; the daemon stays.
fn daemon() -> io::Result<()> {
    let daemon_pid = spawn_daemon()?;
    ready("daemon", extra([("daemon", json!(daemon_pid))]))?;
    serve_echo()
}

/// Survives SIGTERM and stdin EOF: only SIGKILL ends it.
fn ignore_term() -> io::Result<()> {
    // A handler rather than SIG_IGN: the effect is the same (the process keeps running), but
    // the handler tells the test that SIGTERM did arrive, so a test can wait for that event
    // instead of sleeping (e.g. before sending the runner a second signal).
    let action = SigAction::new(SigHandler::Handler(on_sigterm), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler only calls write(2), which is async-signal-safe.
    unsafe { sigaction(Signal::SIGTERM, &action) }.map_err(io::Error::from)?;
    ready("ignore-term", Map::new())?;
    serve_echo()?;
    sleep_forever()
}

/// Writes a notification line straight to fd 1. A line this short is written by one write(2)
/// to a pipe, which is atomic (< PIPE_BUF), and the main loop also writes whole short lines
/// with one call, so the lines do not interleave.
extern "C" fn on_sigterm(_: libc::c_int) {
    const MSG: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"hostile/sigterm-ignored\"}\n";
    // SAFETY: write(2) on a valid buffer; errors (e.g. EPIPE) are deliberately ignored.
    unsafe { libc::write(1, MSG.as_ptr().cast(), MSG.len()) };
}

/// Keeps running after stdin EOF, with the default SIGTERM disposition.
fn ignore_eof() -> io::Result<()> {
    ready("ignore-eof", Map::new())?;
    serve_echo()?;
    sleep_forever()
}

/// Makes `n` zombies for the nearest subreaper (the runner) to reap, then echoes.
fn zombies(n: usize) -> io::Result<()> {
    ready("zombies", Map::new())?;
    let pids = make_orphan_zombies(n)?;
    notify("hostile/zombies-made", json!({ "count": n, "pids": pids }))?;
    serve_echo()
}

/// Forks children that sleep forever, as fast as it can, up to `FORKBOMB_MAX`; then echoes.
fn forkbomb() -> io::Result<()> {
    ready("forkbomb", Map::new())?;
    let start = Instant::now();
    let mut forked = 0usize;
    let mut next_report = 500;
    while forked < FORKBOMB_MAX && start.elapsed() < FORKBOMB_MAX_TIME {
        // SAFETY: single-threaded process (see the module docs).
        match unsafe { fork() } {
            Ok(ForkResult::Child) => sleep_forever(),
            Ok(ForkResult::Parent { .. }) => {
                forked += 1;
                if forked == next_report {
                    notify("hostile/progress", json!({ "forked": forked }))?;
                    next_report += 500;
                }
            }
            // EAGAIN under a pids limit: keep pushing, but do not spin a whole core.
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    notify("hostile/progress", json!({ "forked": forked, "done": true }))?;
    serve_echo()
}

/// Allocates and touches memory steadily (so it is resident, not just reserved) up to `limit`
/// bytes (`leak MIB`: that many MiB, for the tests that need a leaker that stays below its own
/// limit; plain `leak`: `LEAK_MAX`), reports `hostile/leak-done`, then sleeps forever holding it.
/// `leak-on-input`: the same, but it starts leaking only once a line (any) arrives on stdin,
/// so that a test can look at the server's cgroup before the kernel kills it, and after
/// `hostile/leak-done` it answers requests (still holding its memory) until stdin EOF, then
/// exits 0: an answer to a request sent after `leak-done` proves it was not killed.
fn leak(limit: usize, on_input: bool) -> io::Result<()> {
    ready(if on_input { "leak-on-input" } else { "leak" }, Map::new())?;
    if on_input {
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line)?;
    }
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    let mut total = 0usize;
    while total < limit {
        let step = LEAK_STEP.min(limit - total);
        // vec![0; n] gets zero pages from the kernel that are not resident until written:
        // write one byte per page to make the memory count.
        let mut block = vec![0u8; step];
        for page in block.iter_mut().step_by(4096) {
            *page = 1;
        }
        hoard.push(std::hint::black_box(block));
        total += step;
        std::thread::sleep(LEAK_STEP_PAUSE);
    }
    notify("hostile/leak-done", json!({ "bytes": total }))?;
    if on_input {
        serve_echo()?;
        drop(std::hint::black_box(hoard));
        return Ok(());
    }
    sleep_forever()
}

fn mib_bytes(mib: usize) -> usize {
    mib.saturating_mul(1 << 20).min(LEAK_MAX)
}

/// A tree of `n` processes: this one and `n - 1` sleeping children. Exits 0 on EOF and leaves
/// the children to the runner.
fn tree(n: usize) -> io::Result<()> {
    let mut children = Vec::with_capacity(n - 1);
    for _ in 1..n {
        // SAFETY: single-threaded process (see the module docs).
        match unsafe { fork() }.map_err(io::Error::from)? {
            ForkResult::Child => sleep_forever(),
            ForkResult::Parent { child } => children.push(child.as_raw()),
        }
    }
    // fork() has returned for every child, so every one of them exists now.
    ready("tree", extra([("children", json!(children))]))?;
    serve_echo()
}

/// A tree that grows on demand: every request forks one more sleeping child, reported as
/// `hostile/forked` `{"pids":[CHILD]}` before the request is answered, so that a test decides
/// when the runner sees its tree change. Exits 0 on EOF and leaves the children to the runner.
fn fork_on_input() -> io::Result<()> {
    ready("fork-on-input", Map::new())?;
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let Ok(Value::Object(msg)) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        let (Some(id), Some(_method)) = (msg.get("id"), msg.get("method")) else {
            continue;
        };
        // SAFETY: single-threaded process (see the module docs).
        let child = match unsafe { fork() }.map_err(io::Error::from)? {
            ForkResult::Child => sleep_forever(),
            ForkResult::Parent { child } => child.as_raw(),
        };
        notify("hostile/forked", json!({ "pids": [child] }))?;
        let params = msg.get("params").unwrap_or(&Value::Null);
        emit(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"echo":{params}}}}}"#))?;
    }
}

/// The classic double fork: the intermediate calls setsid() (new session and process group,
/// so killpg() of the server's group misses the daemon) and forks again, then exits, so the
/// daemon is orphaned and reparented to the nearest subreaper (the runner) or to init. The
/// daemon closes stdio, so it does not hold the client's pipes open. Returns the daemon's
/// pid, which it reports through a pipe before `ready` is printed.
fn spawn_daemon() -> io::Result<i32> {
    let (read_end, write_end) = cloexec_pipe()?;
    // SAFETY: single-threaded process (see the module docs).
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Child => {
            drop(read_end);
            let _ = setsid();
            // SAFETY: still single-threaded.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    let mut pipe = File::from(write_end);
                    let _ = write!(pipe, "{}", std::process::id());
                    drop(pipe);
                    detach_stdio();
                    sleep_forever()
                }
                // The intermediate exits at once, without waiting: that orphans the daemon.
                _ => exit_now(0),
            }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            // EOF comes once the daemon has written its pid and the intermediate is gone.
            let text = read_all(read_end)?;
            waitpid(child, None).map_err(io::Error::from)?;
            text.trim().parse().map_err(|_| io::Error::other(format!("daemon did not report its pid: {text:?}")))
        }
    }
}

/// Forks an intermediate that forks `n` children which exit at once; the intermediate then
/// exits without waiting for them, so they become zombies reparented to the nearest
/// subreaper. Returns their pids (sent by the intermediate through a pipe).
fn make_orphan_zombies(n: usize) -> io::Result<Vec<i32>> {
    let (read_end, write_end) = cloexec_pipe()?;
    // SAFETY: single-threaded process (see the module docs).
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Child => {
            drop(read_end);
            let mut pids = Vec::with_capacity(n);
            for _ in 0..n {
                // SAFETY: still single-threaded.
                match unsafe { fork() } {
                    Ok(ForkResult::Child) => exit_now(0),
                    Ok(ForkResult::Parent { child }) => pids.push(child.as_raw().to_string()),
                    Err(_) => exit_now(1),
                }
            }
            let mut pipe = File::from(write_end);
            let _ = write!(pipe, "{}", pids.join(" "));
            exit_now(0)
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            // Every child inherited the write end and closes it when it exits, so EOF here
            // means the intermediate and all `n` children have exited.
            let text = read_all(read_end)?;
            let status = waitpid(child, None).map_err(io::Error::from)?;
            let pids: Vec<i32> = text.split_whitespace().filter_map(|p| p.parse().ok()).collect();
            if pids.len() != n {
                return Err(io::Error::other(format!("made {} of {n} zombies (intermediate: {status:?})", pids.len())));
            }
            Ok(pids)
        }
    }
}

/// Answers every request read from stdin until EOF. Lines that are not JSON-RPC requests
/// (notifications, responses, garbage) are ignored.
fn serve_echo() -> io::Result<()> {
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let Ok(Value::Object(msg)) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        let (Some(id), Some(method)) = (msg.get("id"), msg.get("method")) else {
            continue;
        };
        let params = msg.get("params").unwrap_or(&Value::Null);
        // `hostile/flood {"count": N}`: N `notifications/tools/list_changed` before the answer,
        // which a multiplexer sends to every client (a backlog for one that does not read).
        if method == "hostile/flood" {
            let count = params.get("count").and_then(Value::as_u64).unwrap_or(0);
            let mut out = io::stdout().lock();
            for _ in 0..count {
                out.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n")?;
            }
            out.flush()?;
        }
        // Written by hand so that the field order is the documented one.
        emit(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"echo":{params}}}}}"#))?;
    }
}

fn ready(mode: &str, extra: Map<String, Value>) -> io::Result<()> {
    let mut params = Map::new();
    params.insert("pid".into(), json!(std::process::id()));
    params.insert("mode".into(), json!(mode));
    // The signal mask and ignored set the server started with: a supervisor that blocks
    // signals for itself must not pass the mask on.
    let (blocked, ignored) = signal_masks()?;
    params.insert("sigblk".into(), json!(blocked));
    params.insert("sigign".into(), json!(ignored));
    // What the server was handed: its open descriptors (only 0, 1 and 2 should reach it) and
    // its credentials (ids, capabilities, no_new_privs) as far as the platform shows them.
    params.insert("fds".into(), json!(open_fds()?));
    params.insert("uid".into(), json!(nix::unistd::geteuid().as_raw()));
    params.insert("gid".into(), json!(nix::unistd::getegid().as_raw()));
    params.extend(credentials()?);
    params.extend(extra);
    notify("hostile/ready", Value::Object(params))
}

fn notify(method: &str, params: Value) -> io::Result<()> {
    emit(&json!({ "jsonrpc": "2.0", "method": method, "params": params }).to_string())
}

/// One line, written and flushed with one call.
fn emit(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(format!("{line}\n").as_bytes())?;
    out.flush()
}

fn extra<const N: usize>(fields: [(&str, Value); N]) -> Map<String, Value> {
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn read_all(fd: OwnedFd) -> io::Result<String> {
    let mut text = String::new();
    File::from(fd).read_to_string(&mut text)?;
    Ok(text)
}

/// Points fds 0, 1 and 2 at /dev/null.
fn detach_stdio() {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Sleeps until killed. Forked children call it too, so they never return into the parent's
/// code.
fn sleep_forever() -> ! {
    loop {
        nix::unistd::pause();
    }
}

/// `_exit`: a forked child must not run the parent's exit handlers or flush its buffers.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// A pipe whose ends close on exec (pipe2 is not portable to macOS).
fn cloexec_pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let (r, w) = pipe().map_err(io::Error::from)?;
    for end in [&r, &w] {
        fcntl(end, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    }
    Ok((r, w))
}

/// The blocked and ignored signal sets as 16 hex digits, bit N-1 for signal N: on Linux as
/// /proc/self/status shows them, elsewhere computed the same way.
#[cfg(target_os = "linux")]
fn signal_masks() -> io::Result<(String, String)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(|m| m.trim().to_string()).unwrap_or_default()
    };
    Ok((field("SigBlk:"), field("SigIgn:")))
}

#[cfg(not(target_os = "linux"))]
fn signal_masks() -> io::Result<(String, String)> {
    use nix::sys::signal::{SigSet, Signal};
    let blocked = SigSet::thread_get_mask().map_err(io::Error::from)?;
    let (mut blk, mut ign) = (0u64, 0u64);
    for sig in Signal::iterator() {
        let bit = 1u64 << (sig as i32 - 1);
        if blocked.contains(sig) {
            blk |= bit;
        }
        // SAFETY: sigaction with a null new action only reads the current disposition into
        // `old`, a zeroed sigaction owned by this frame.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(sig as i32, std::ptr::null(), &mut old) } == 0 && old.sa_sigaction == libc::SIG_IGN
        {
            ign |= bit;
        }
    }
    Ok((format!("{blk:016x}"), format!("{ign:016x}")))
}

/// The descriptors open in this process, ascending: the entries of `/proc/self/fd` (Linux) or
/// `/dev/fd` (elsewhere) that are still open once the listing's own descriptor is closed.
fn open_fds() -> io::Result<Vec<i32>> {
    let dir = if cfg!(target_os = "linux") { "/proc/self/fd" } else { "/dev/fd" };
    let listed: Vec<i32> =
        std::fs::read_dir(dir)?.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).collect();
    let mut open: Vec<i32> = listed
        .into_iter()
        // SAFETY: F_GETFD only asks whether the number is an open descriptor of this process;
        // it touches no memory and changes nothing.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .collect();
    open.sort_unstable();
    Ok(open)
}

/// The credential lines of /proc/self/status: every id, the supplementary groups, the
/// capability sets (16 hex digits each) and the no_new_privs flag.
#[cfg(target_os = "linux")]
fn credentials() -> io::Result<Map<String, Value>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_default();
    let numbers = |name: &str| -> Vec<u64> { field(name).split_whitespace().filter_map(|n| n.parse().ok()).collect() };
    let mut out = Map::new();
    out.insert("uids".into(), json!(numbers("Uid:")));
    out.insert("gids".into(), json!(numbers("Gid:")));
    out.insert("groups".into(), json!(numbers("Groups:")));
    for (key, name) in [
        ("cap_eff", "CapEff:"),
        ("cap_prm", "CapPrm:"),
        ("cap_inh", "CapInh:"),
        ("cap_bnd", "CapBnd:"),
        ("cap_amb", "CapAmb:"),
    ] {
        out.insert(key.into(), json!(field(name)));
    }
    out.insert("no_new_privs".into(), json!(field("NoNewPrivs:").parse::<u8>().ok()));
    Ok(out)
}

/// Elsewhere the effective ids (`uid`, `gid`) are all there is to report.
#[cfg(not(target_os = "linux"))]
fn credentials() -> io::Result<Map<String, Value>> {
    Ok(Map::new())
}
