#!/usr/bin/env node
// One client of several sharing a server through mcp-runner (tests/tests/shared_everything.rs):
// the official SDK's Client + StdioClientTransport, spawning
//
//   $MCP_RUNNER_BIN run --name everything -- $EVERYTHING_NODE $EVERYTHING_ENTRY stdio
//
// tests/python/shared_client.py is the same client with the Python SDK, speaking the same
// line protocol. Usage: node shared-client.mjs NAME [--no-sampling]
//
// NAME and the capability flag are arguments, not environment: the runner shares a server only
// between runs with the same command, environment and working directory, so every client of a
// test gets the same environment and cwd from the test.
//
// With sampling (the default) the client declares the sampling capability and answers every
// sampling/createMessage with the text "sampled by NAME".
//
// Protocol: one command a line on stdin, one JSON event a line on stdout per command (plus
// {"event":"connected",...} first). Every event has "ok"; a failed command has "error".
//   stats                  ping (a round trip through whatever sits between), then the count
//                          of every message received so far, by method: {"raw":{...}}
//   echo N                 N concurrent echo calls, each checked against its own message
//   sampling               trigger-sampling-request: {"own":whether the result names this
//                          client,"callback_calls":how often its callback ran meanwhile,
//                          "result_text":...} (ok even if the server's request was refused)
//   progress STEPS         trigger-long-running-operation (STEPS steps, 0.2 s each) with a
//                          progress callback: {"progress":notifications with this call's
//                          token,"callback":how many reached the callback}
//   subscribe URI / unsubscribe URI
//   updates                toggle-subscriber-updates (the server's periodic resources/updated)
//   wait-updated URI N     until N resources/updated for URI arrived (hang guard)
//   close                  close the session (the runner's stdin), wait for the runner; exit
// Environment: MCP_RUNNER_BIN, EVERYTHING_NODE, EVERYTHING_ENTRY (required), TEST_TIME_SCALE,
// and whatever the runner reads, all passed to the runner unchanged.

import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const name = process.argv[2];
const sampling = !process.argv.includes("--no-sampling");
const scale = Number(process.env.TEST_TIME_SCALE) > 0 ? Number(process.env.TEST_TIME_SCALE) : 1;
const HANG_GUARD_MS = 30_000 * scale;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function required(key) {
  const v = process.env[key];
  if (!v) throw new Error(`${key} is not set`);
  return v;
}

// Every message from the runner passes here before the SDK sees it, so the counts include
// what the SDK would drop (a progress notification for a token it does not know, say).
class TappedTransport {
  constructor(inner, tap) {
    this.inner = inner;
    inner.onmessage = (msg, extra) => {
      tap(msg);
      this.onmessage?.(msg, extra);
    };
    inner.onclose = () => this.onclose?.();
    inner.onerror = (err) => this.onerror?.(err);
  }
  start() {
    return this.inner.start();
  }
  send(msg, options) {
    const token = msg.params?._meta?.progressToken;
    if (token !== undefined) progressTokens.add(token);
    return this.inner.send(msg, options);
  }
  close() {
    return this.inner.close();
  }
  setProtocolVersion(version) {
    this.inner.setProtocolVersion?.(version);
  }
}

const raw = {}; // method (or "response") -> count
const progressTokens = new Set(); // the progress tokens of this client's own requests
const progressByToken = new Map(); // token -> notifications/progress received
const updated = {}; // uri -> resources/updated count
const waiters = []; // {uri, n, resolve}
let samplingCalls = 0;

function tap(msg) {
  const key = msg.method ?? "response";
  raw[key] = (raw[key] ?? 0) + 1;
  if (msg.method === "notifications/progress") {
    const token = msg.params?.progressToken;
    progressByToken.set(token, (progressByToken.get(token) ?? 0) + 1);
  }
  if (msg.method === "notifications/resources/updated") {
    const uri = msg.params?.uri;
    updated[uri] = (updated[uri] ?? 0) + 1;
    for (const w of waiters.filter((w) => w.uri === uri && updated[uri] >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  }
}

function withGuard(promise, what) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${HANG_GUARD_MS} ms`)), HANG_GUARD_MS);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

function text(result) {
  return (result.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
}

async function main() {
  if (!name) throw new Error("usage: shared-client.mjs NAME [--no-sampling]");
  const inner = new StdioClientTransport({
    command: required("MCP_RUNNER_BIN"),
    args: ["run", "--name", "everything", "--", required("EVERYTHING_NODE"), required("EVERYTHING_ENTRY"), "stdio"],
    // The SDK passes only a few "safe" variables by default; the runner needs its own.
    env: { ...process.env },
    stderr: "inherit",
  });
  const transport = new TappedTransport(inner, tap);
  const client = new Client(
    { name: `shared-e2e-${name}`, version: "0.1.0" },
    { capabilities: sampling ? { sampling: {} } : {} },
  );
  if (sampling) {
    client.setRequestHandler(CreateMessageRequestSchema, async () => {
      samplingCalls += 1;
      // Long enough for the other clients' sampling requests to be in flight at once.
      await new Promise((r) => setTimeout(r, 100));
      return {
        role: "assistant",
        content: { type: "text", text: `sampled by ${name}` },
        model: `e2e-${name}`,
        stopReason: "endTurn",
      };
    });
  }
  await client.connect(transport);
  const runnerPid = inner.pid;
  const { tools } = await client.listTools();
  const env = JSON.parse(text(await client.callTool({ name: "get-env", arguments: {} })));
  emit({
    event: "connected",
    ok: true,
    name,
    sdk: "typescript",
    runner_pid: runnerPid,
    // The server's own environment: its MCP_RUNNER_ID names the tree it runs in.
    server_marker: env.MCP_RUNNER_ID ?? null,
    has_sampling_tool: tools.some((t) => t.name === "trigger-sampling-request"),
  });

  const commands = {
    async stats() {
      await client.ping();
      return { raw: { ...raw }, updated: { ...updated }, sampling_calls: samplingCalls };
    },
    async echo(n) {
      const messages = Array.from({ length: Number(n) }, (_, i) => `${name} #${i} \u2713`);
      const results = await Promise.all(
        messages.map((message) => client.callTool({ name: "echo", arguments: { message } })),
      );
      const wrong = results
        .map((r, i) => ({ sent: messages[i], got: text(r) }))
        .filter(({ sent, got }) => got !== `Echo: ${sent}`);
      return { ok: wrong.length === 0, calls: messages.length, wrong };
    },
    async sampling() {
      const before = samplingCalls;
      const result = await client.callTool({
        name: "trigger-sampling-request",
        arguments: { prompt: `from ${name}`, maxTokens: 10 },
      });
      const got = text(result);
      return {
        own: got.includes(`sampled by ${name}`),
        callback_calls: samplingCalls - before,
        is_error: result.isError === true,
        result_text: got,
      };
    },
    async progress(steps) {
      let callback = 0;
      const tokens = new Set(progressTokens);
      const result = await client.callTool(
        { name: "trigger-long-running-operation", arguments: { duration: 0.2 * Number(steps), steps: Number(steps) } },
        undefined,
        { onprogress: () => (callback += 1), timeout: HANG_GUARD_MS },
      );
      const token = [...progressTokens].find((t) => !tokens.has(t));
      const progress = progressByToken.get(token) ?? 0;
      // The SDK handles a response before the notifications read with it, so the callback may
      // miss the last step (its token is forgotten by then): count the notifications instead.
      return { ok: progress === Number(steps) && callback >= 1, progress, callback, token, result_text: text(result) };
    },
    async subscribe(uri) {
      await client.subscribeResource({ uri });
      return {};
    },
    async unsubscribe(uri) {
      await client.unsubscribeResource({ uri });
      return {};
    },
    async updates() {
      return { result_text: text(await client.callTool({ name: "toggle-subscriber-updates", arguments: {} })) };
    },
    async "wait-updated"(uri, n) {
      if ((updated[uri] ?? 0) < Number(n)) {
        await withGuard(new Promise((resolve) => waiters.push({ uri, n: Number(n), resolve })), `${n} updates of ${uri}`);
      }
      return { updated: updated[uri] ?? 0 };
    },
  };

  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [command, ...args] = line.trim().split(/\s+/);
    if (command === "close" || command === undefined) break;
    const run = commands[command];
    if (!run) {
      emit({ event: command, ok: false, error: `unknown command ${JSON.stringify(command)}` });
      continue;
    }
    try {
      emit({ event: command, ok: true, ...(await withGuard(run(...args), command)) });
    } catch (err) {
      emit({ event: command, ok: false, error: String(err?.stack ?? err) });
    }
  }
  // close() closes the runner's stdin and waits for it to exit (SIGTERM after 2 s).
  await client.close();
  emit({ event: "closed", ok: true, runner_pid: runnerPid });
}

main().then(
  () => process.exit(0),
  (err) => {
    emit({ event: "failed", ok: false, error: String(err?.stack ?? err) });
    process.exit(1);
  },
);
