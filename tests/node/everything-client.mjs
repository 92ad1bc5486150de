#!/usr/bin/env node
// A real MCP client (the official SDK's Client + StdioClientTransport) talking to the real
// reference server (@modelcontextprotocol/server-everything) through mcp-runner:
//
//   mcp-runner run --name everything -- node <server-everything>/dist/index.js stdio
//
// Environment: MCP_RUNNER_BIN (required), plus whatever the runner reads (MCP_RUNNER_POLICY,
// MCP_RUNNER_STATE_DIR, ...), passed through unchanged.
//
// With EXPECT_REFUSAL set, the runner is expected to refuse the server: the script prints
// {"event":"refused","ok":true,"code":...,"message":...,"data":{...}} for the JSON-RPC error the
// SDK received in answer to `initialize`, and exits 0.
//
// Protocol with the caller (tests/tests/mcp_everything.rs), one JSON line each on stdout:
//   1. after `initialize`: {"event":"connected","runner_pid":N,...}; then the script waits
//      for one line (or EOF) on its stdin, so the caller can inspect the live process tree;
//   2. at the end: {"event":"summary","ok":true|false,...}; exit status 0 iff ok.
// By hand: `echo | MCP_RUNNER_BIN=target/debug/mcp-runner node tests/node/everything-client.mjs`

import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const MESSAGE = "hello through mcp-runner \u2713";

// The installed server's stdio entry point: no npx at test time (it could need the network).
const serverEntry = fileURLToPath(
  new URL("./node_modules/@modelcontextprotocol/server-everything/dist/index.js", import.meta.url),
);

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function waitForGo() {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin });
    const done = () => {
      rl.close();
      resolve();
    };
    rl.once("line", done);
    rl.once("close", done);
  });
}

async function main() {
  const runner = process.env.MCP_RUNNER_BIN;
  if (!runner) throw new Error("MCP_RUNNER_BIN is not set");

  const transport = new StdioClientTransport({
    command: runner,
    args: ["run", "--name", "everything", "--", process.execPath, serverEntry, "stdio"],
    // The SDK passes only a few "safe" variables by default; the runner needs its own.
    env: { ...process.env },
    stderr: "inherit",
  });
  const client = new Client({ name: "mcp-runner-e2e", version: "0.1.0" });
  if (process.env.EXPECT_REFUSAL) {
    // The runner refuses to start the server: the SDK must see a JSON-RPC
    // error answering `initialize`, not a hang.
    try {
      await client.connect(transport);
    } catch (err) {
      emit({ event: "refused", ok: true, code: err?.code ?? null, message: String(err?.message ?? err), data: err?.data ?? null });
      await client.close().catch(() => {});
      return true;
    }
    emit({ event: "summary", ok: false, error: "connected, but a refusal was expected" });
    await client.close();
    return false;
  }
  await client.connect(transport); // spawns the runner, then initialize + initialized

  const server = client.getServerVersion();
  const runnerPid = transport.pid; // null again after close()
  emit({ event: "connected", runner_pid: runnerPid, server });
  await waitForGo();

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  const result = await client.callTool({ name: "echo", arguments: { message: MESSAGE } });
  const echoText = result.content?.[0]?.text;
  await client.close(); // closes the runner's stdin, waits for it to exit (SIGTERM after 2 s)

  const ok = names.includes("echo") && echoText === `Echo: ${MESSAGE}`;
  emit({
    event: "summary",
    ok,
    runner_pid: runnerPid,
    server_name: server?.name ?? null,
    tools: names.length,
    has_echo: names.includes("echo"),
    echo_text: echoText ?? null,
    expected_echo_text: `Echo: ${MESSAGE}`,
  });
  return ok;
}

main().then(
  (ok) => process.exit(ok ? 0 : 1),
  (err) => {
    emit({ event: "summary", ok: false, error: String(err?.stack ?? err) });
    process.exit(1);
  },
);
