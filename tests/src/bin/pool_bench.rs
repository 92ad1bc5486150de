//! `pool_bench`: the measuring ends of `ci/bench-pool` (benchmark equipment, not a test).
//!
//! - `pool_bench server [--touch-mib N] [--ignore-eof] [--tag T]`: a minimal, fast MCP stdio
//!   server. It answers `initialize`, `tools/list` (one tool, `echo`), `tools/call` (returns
//!   `arguments.text` as a text content item) and `ping`; other requests get -32601 and
//!   notifications are dropped. `--touch-mib` allocates and writes that much memory first (a
//!   stand-in for a Node server's heap); `--ignore-eof` keeps it running after stdin EOF (as
//!   servers that ignore EOF do; only a signal ends it); `--tag` only changes the argv.
//! - `pool_bench client [--requests N] [--warmup N] [--size B] [--window N] [--stream BxN,...]
//!   -- CMD...`: starts CMD with piped stdio, does the MCP handshake, then times N sequential
//!   `tools/call` echo round trips of a B-byte request each, then for each `BxN` pipelines N
//!   echo calls of B bytes each, at most `--window` (default 64) in flight (a writer thread
//!   sends, this thread reads; the pool host refuses a client's 257th). Prints one JSON
//!   line: the sorted round trips in nanoseconds and, per stream, the seconds and the bytes.
//! - `pool_bench hop -- CMD...`: starts CMD with piped stdio and copies bytes both ways
//!   (stdin to CMD, CMD's stdout to stdout) through a 64 KiB buffer each, parsing nothing: the
//!   floor of what an extra process on the path costs (a relay, a pool host), for reference.
//! - `pool_bench session N -- CMD...`: a client session with N servers: starts CMD N times
//!   (every argument's `{k}` replaced by the server's index), does the handshake, `tools/list`
//!   and one `tools/call` with each, prints `ready` and then waits until its stdin closes
//!   (clean close: closes the servers' stdin and waits for them) or it is killed.
//!
//! Messages are newline-delimited JSON-RPC, as MCP's stdio transport.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use serde_json::{Value, json};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => server(&args[1..]),
        Some("client") => client(&args[1..]),
        Some("session") => session(&args[1..]),
        Some("hop") => hop(&args[1..]),
        _ => Err(usage()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pool_bench: {err}");
            ExitCode::from(2)
        }
    }
}

fn usage() -> io::Error {
    io::Error::other(
        "usage: pool_bench server [--touch-mib N] [--ignore-eof] [--tag T]\n       \
         pool_bench client [--requests N] [--warmup N] [--size B] [--window N] [--stream BxN,...] -- CMD...\n       \
         pool_bench hop -- CMD...\n       \
         pool_bench session N -- CMD...",
    )
}

fn number(value: Option<&String>) -> io::Result<usize> {
    value.and_then(|v| v.parse().ok()).ok_or_else(usage)
}

// ---------------------------------------------------------------------------------------
// server

fn server(args: &[String]) -> io::Result<()> {
    let (mut touch_mib, mut ignore_eof) = (0, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--touch-mib" => touch_mib = number(it.next())?,
            "--ignore-eof" => ignore_eof = true,
            "--tag" => drop(it.next()),
            _ => return Err(usage()),
        }
    }
    // Written page by page with a non-zero pattern, so that every page is private and
    // resident (no zero page, nothing for KSM to merge).
    let mut heap = vec![0u8; touch_mib << 20];
    for (i, page) in heap.chunks_mut(4096).enumerate() {
        page.fill((i % 251 + 1) as u8);
    }
    std::hint::black_box(&heap);

    let mut input = BufReader::with_capacity(1 << 16, io::stdin().lock());
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let Ok(Value::Object(mut msg)) = serde_json::from_slice::<Value>(&line) else { continue };
        let (Some(id), Some(Value::String(method))) = (msg.remove("id"), msg.remove("method")) else {
            continue;
        };
        let mut params = msg.remove("params").unwrap_or(Value::Null);
        let reply = match method.as_str() {
            "initialize" => json!({ "jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": params.get("protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "pool-bench", "version": "0" },
            }}),
            "tools/list" => json!({ "jsonrpc": "2.0", "id": id, "result": { "tools": [{
                "name": "echo",
                "description": "Returns its text argument",
                "inputSchema": { "type": "object", "properties": { "text": { "type": "string" } } },
            }]}}),
            "tools/call" => {
                let text = params.pointer_mut("/arguments/text").map(Value::take).unwrap_or(json!(""));
                json!({ "jsonrpc": "2.0", "id": id, "result": {
                    "content": [{ "type": "text", "text": text }],
                }})
            }
            "ping" => json!({ "jsonrpc": "2.0", "id": id, "result": {} }),
            _ => json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32601, "message": "method not found" } }),
        };
        serde_json::to_writer(&mut out, &reply)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    if ignore_eof {
        loop {
            thread::park();
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// client side

/// A server started with piped stdio, spoken to line by line.
struct Peer {
    child: Child,
    /// None while a stream's writer thread has it.
    input: Option<BufWriter<ChildStdin>>,
    output: BufReader<ChildStdout>,
    next_id: u64,
}

impl Peer {
    fn start(argv: &[String]) -> io::Result<Peer> {
        let (cmd, rest) = argv.split_first().ok_or_else(usage)?;
        let mut child = Command::new(cmd).args(rest).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let input = Some(BufWriter::with_capacity(1 << 16, child.stdin.take().expect("piped")));
        let output = BufReader::with_capacity(1 << 16, child.stdout.take().expect("piped"));
        Ok(Peer { child, input, output, next_id: 0 })
    }

    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        let input = self.input.as_mut().expect("not lent to a writer thread");
        input.write_all(line)?;
        input.write_all(b"\n")?;
        input.flush()
    }

    /// The next line from the server (without the newline), or an error at EOF.
    fn read_line(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        if self.output.read_until(b'\n', buf)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed its stdout"));
        }
        Ok(())
    }

    /// Sends a request and returns its response, skipping any notification on the way.
    fn call(&mut self, method: &str, params: Value) -> io::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string().as_bytes())?;
        let mut buf = Vec::new();
        loop {
            self.read_line(&mut buf)?;
            let msg: Value = serde_json::from_slice(&buf).map_err(io::Error::other)?;
            if msg.get("id") == Some(&json!(id)) {
                return match msg.get("error") {
                    Some(err) => Err(io::Error::other(format!("{method}: {err}"))),
                    None => Ok(msg),
                };
            }
        }
    }

    /// `initialize`, then `notifications/initialized`.
    fn handshake(&mut self) -> io::Result<()> {
        self.call(
            "initialize",
            json!({ "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": { "name": "pool_bench", "version": "0" } }),
        )?;
        self.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
    }

    /// Closes the server's stdin and waits for it to exit.
    fn close(self) -> io::Result<()> {
        let Peer { mut child, input, .. } = self;
        if let Some(input) = input {
            drop(input.into_inner().map_err(|e| e.into_error())?);
        }
        child.wait()?;
        Ok(())
    }
}

/// A `tools/call` echo request whose line is `size` bytes long (at least the fixed part).
fn echo_request(id: u64, size: usize) -> Vec<u8> {
    let head =
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":""#);
    let tail = r#""}}}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut line = Vec::with_capacity(head.len() + pad + tail.len());
    line.extend_from_slice(head.as_bytes());
    line.resize(head.len() + pad, b'x');
    line.extend_from_slice(tail.as_bytes());
    line
}

/// The `"id":N` of a response line, read without parsing the (possibly large) rest.
fn response_id(line: &[u8]) -> Option<u64> {
    let at = line.windows(5).position(|w| w == br#""id":"#)? + 5;
    let digits: Vec<u8> = line[at..].iter().copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn client(args: &[String]) -> io::Result<()> {
    let (mut requests, mut warmup, mut size, mut window, mut streams) = (2000, 200, 200, 64, Vec::new());
    let mut it = args.iter();
    let argv: Vec<String> = loop {
        match it.next().map(String::as_str) {
            Some("--requests") => requests = number(it.next())?,
            Some("--warmup") => warmup = number(it.next())?,
            Some("--size") => size = number(it.next())?,
            Some("--window") => window = number(it.next())?,
            Some("--stream") => {
                for spec in it.next().ok_or_else(usage)?.split(',') {
                    let (b, n) = spec.split_once('x').ok_or_else(usage)?;
                    streams.push((number(Some(&b.to_owned()))?, number(Some(&n.to_owned()))?));
                }
            }
            Some("--") => break it.cloned().collect(),
            _ => return Err(usage()),
        }
    };
    let mut peer = Peer::start(&argv)?;
    peer.handshake()?;
    peer.call("tools/list", json!({}))?;

    // Sequential round trips: write one request, read its response.
    let mut buf = Vec::new();
    let mut rtt_ns = Vec::with_capacity(requests);
    for i in 0..warmup + requests {
        let id = peer.next_id;
        peer.next_id += 1;
        let line = echo_request(id, size);
        let t0 = Instant::now();
        peer.send(&line)?;
        peer.read_line(&mut buf)?;
        let took = t0.elapsed();
        if response_id(&buf) != Some(id) {
            return Err(io::Error::other(format!("response {} to request {id}", String::from_utf8_lossy(&buf))));
        }
        if i >= warmup {
            rtt_ns.push(took.as_nanos() as u64);
        }
    }
    rtt_ns.sort_unstable();

    // Pipelined streams: a writer thread sends every request while this thread reads.
    let mut stream_results = Vec::new();
    for (bytes, count) in streams {
        let first = peer.next_id;
        peer.next_id += count as u64;
        let template: Vec<Vec<u8>> = (0..count as u64).map(|i| echo_request(first + i, bytes)).collect();
        let sent: u64 = template.iter().map(|l| l.len() as u64 + 1).sum();
        let mut input = peer.input.take().expect("not lent");
        let t0 = Instant::now();
        // Each response read gives the writer a credit for one more request.
        let (credit, credits) = mpsc::channel::<()>();
        let writer = thread::spawn(move || -> io::Result<BufWriter<ChildStdin>> {
            for (i, line) in template.into_iter().enumerate() {
                if i >= window && credits.try_recv().is_err() {
                    input.flush()?;
                    credits.recv().map_err(|_| io::Error::other("the reader stopped"))?;
                }
                input.write_all(&line)?;
                input.write_all(b"\n")?;
            }
            input.flush()?;
            Ok(input)
        });
        let mut received = 0u64;
        for i in 0..count as u64 {
            peer.read_line(&mut buf)?;
            let _ = credit.send(());
            received += buf.len() as u64;
            if response_id(&buf) != Some(first + i) {
                return Err(io::Error::other(format!(
                    "stream: response {i} is not to request {}: {}",
                    first + i,
                    String::from_utf8_lossy(&buf[..buf.len().min(300)])
                )));
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let input = writer.join().map_err(|_| io::Error::other("writer thread panicked"))??;
        peer.input = Some(input);
        stream_results
            .push(json!({ "bytes": bytes, "count": count, "secs": secs, "sent": sent, "received": received }));
    }
    peer.close()?;
    println!("{}", json!({ "rtt_ns": rtt_ns, "streams": stream_results }));
    Ok(())
}

fn session(args: &[String]) -> io::Result<()> {
    let servers = number(args.first())?;
    if args.get(1).map(String::as_str) != Some("--") {
        return Err(usage());
    }
    let template = &args[2..];
    let mut peers = Vec::new();
    for k in 0..servers {
        let argv: Vec<String> = template.iter().map(|a| a.replace("{k}", &k.to_string())).collect();
        peers.push(Peer::start(&argv)?);
    }
    for peer in &mut peers {
        peer.handshake()?;
        peer.call("tools/list", json!({}))?;
        peer.call("tools/call", json!({ "name": "echo", "arguments": { "text": "hello" } }))?;
    }
    println!("ready");
    io::stdout().flush()?;
    // Until the orchestrator closes our stdin (a clean end) or kills us (an unclean one).
    io::stdin().lock().read_to_end(&mut Vec::new())?;
    for peer in peers {
        peer.close()?;
    }
    Ok(())
}

fn hop(args: &[String]) -> io::Result<()> {
    let (Some("--"), Some((cmd, rest))) =
        (args.first().map(String::as_str), args.get(1..).and_then(<[_]>::split_first))
    else {
        return Err(usage());
    };
    let mut child = Command::new(cmd).args(rest).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let mut to_child = child.stdin.take().expect("piped");
    let mut from_child = child.stdout.take().expect("piped");
    // Plain read/write loops on the descriptors themselves (duplicated: no std buffering);
    // io::copy could splice between pipes, which no relay does.
    let mut stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let mut stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let up = thread::spawn(move || copy(&mut stdin, &mut to_child));
    copy(&mut from_child, &mut stdout)?;
    up.join().map_err(|_| io::Error::other("copy thread panicked"))??;
    child.wait()?;
    Ok(())
}

fn copy(from: &mut dyn Read, to: &mut dyn Write) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
