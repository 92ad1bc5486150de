"""One client of several sharing a server through mcp-runner (tests/tests/shared_everything.rs).

The official Python SDK's ClientSession over stdio_client, spawning

    $MCP_RUNNER_BIN run --name everything -- $EVERYTHING_NODE $EVERYTHING_ENTRY stdio

It speaks the line protocol of tests/node/shared-client.mjs (see there): commands on stdin,
one JSON event a line on stdout. Usage: python shared_client.py NAME [--no-sampling]
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from typing import Any

import anyio
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

NAME = sys.argv[1] if len(sys.argv) > 1 else ""
SAMPLING = "--no-sampling" not in sys.argv[2:]
try:
    SCALE = float(os.environ.get("TEST_TIME_SCALE", "1"))
except ValueError:
    SCALE = 1.0
HANG_GUARD = 30.0 * (SCALE if SCALE > 0 else 1.0)

# subscribe_resource is deprecated for 2026 servers; this one speaks 2025-11-25.
warnings.filterwarnings("ignore", message="resources/(un)?subscribe is removed")


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def required(key: str) -> str:
    value = os.environ.get(key)
    if not value:
        raise RuntimeError(f"{key} is not set")
    return value


def child_pids() -> list[int]:
    """Our children, from /proc: stdio_client does not tell the runner's pid."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == me:
            found.append(int(entry))
    return found


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


class Tap:
    """Counts every message between the SDK and the runner, by method."""

    def __init__(self) -> None:
        self.raw: dict[str, int] = {}
        self.updated: dict[str, int] = {}
        self.progress_tokens: list[Any] = []
        self.progress_by_token: dict[str, int] = {}
        self.changed = anyio.Event()

    @staticmethod
    def data(message: Any) -> dict[str, Any]:
        inner = getattr(message, "message", None)
        inner = getattr(inner, "root", inner)
        if hasattr(inner, "model_dump"):
            return inner.model_dump(by_alias=True, mode="json", exclude_none=True)
        return {}

    def incoming(self, message: Any) -> None:
        data = self.data(message)
        method = data.get("method", "response" if data else "other")
        self.raw[method] = self.raw.get(method, 0) + 1
        params = data.get("params") or {}
        if method == "notifications/progress":
            key = json.dumps(params.get("progressToken"))
            self.progress_by_token[key] = self.progress_by_token.get(key, 0) + 1
        if method == "notifications/resources/updated":
            uri = params.get("uri")
            self.updated[uri] = self.updated.get(uri, 0) + 1
            self.changed.set()
            self.changed = anyio.Event()

    def outgoing(self, message: Any) -> None:
        token = ((self.data(message).get("params") or {}).get("_meta") or {}).get("progressToken")
        if token is not None:
            self.progress_tokens.append(token)


async def main() -> None:
    if not NAME:
        raise RuntimeError("usage: shared_client.py NAME [--no-sampling]")
    params = StdioServerParameters(
        command=required("MCP_RUNNER_BIN"),
        args=["run", "--name", "everything", "--", required("EVERYTHING_NODE"), required("EVERYTHING_ENTRY"), "stdio"],
        # The SDK passes only a few "safe" variables by default; the runner needs its own.
        env=dict(os.environ),
    )
    tap = Tap()
    sampling_calls = 0

    async def sampling_callback(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        nonlocal sampling_calls
        sampling_calls += 1
        # Long enough for the other clients' sampling requests to be in flight at once.
        await anyio.sleep(0.1)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"sampled by {NAME}"),
            model=f"e2e-{NAME}",
            stop_reason="endTurn",
        )

    async with stdio_client(params) as (read, write):
        # Tapped streams between the SDK and the transport.
        to_session_send, to_session_recv = anyio.create_memory_object_stream[Any](0)
        from_session_send, from_session_recv = anyio.create_memory_object_stream[Any](0)

        async def pump_in() -> None:
            async with to_session_send:
                async for message in read:
                    tap.incoming(message)
                    await to_session_send.send(message)

        async def pump_out() -> None:
            async with from_session_recv:
                async for message in from_session_recv:
                    tap.outgoing(message)
                    await write.send(message)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump_in)
            tg.start_soon(pump_out)
            session = ClientSession(
                to_session_recv,
                from_session_send,
                sampling_callback=sampling_callback if SAMPLING else None,
                client_info=types.Implementation(name=f"shared-e2e-{NAME}", version="0.1.0"),
            )
            async with session:
                await session.initialize()
                runner = os.path.realpath(required("MCP_RUNNER_BIN"))
                runner_pids = [p for p in child_pids() if os.path.realpath(f"/proc/{p}/exe") == runner]
                tools = (await session.list_tools()).tools
                env = json.loads(text(await session.call_tool("get-env", {})))
                emit(
                    {
                        "event": "connected",
                        "ok": True,
                        "name": NAME,
                        "sdk": "python",
                        "runner_pid": runner_pids[0] if len(runner_pids) == 1 else None,
                        "server_marker": env.get("MCP_RUNNER_ID"),
                        "has_sampling_tool": any(t.name == "trigger-sampling-request" for t in tools),
                    }
                )

                async def stats() -> dict[str, Any]:
                    await session.send_ping()
                    return {"raw": dict(tap.raw), "updated": dict(tap.updated), "sampling_calls": sampling_calls}

                async def echo(n: str) -> dict[str, Any]:
                    messages = [f"{NAME} #{i} \u2713" for i in range(int(n))]
                    got: list[str] = [""] * len(messages)

                    async def one(i: int) -> None:
                        got[i] = text(await session.call_tool("echo", {"message": messages[i]}))

                    async with anyio.create_task_group() as calls:
                        for i in range(len(messages)):
                            calls.start_soon(one, i)
                    wrong = [
                        {"sent": sent, "got": g} for sent, g in zip(messages, got, strict=True) if g != f"Echo: {sent}"
                    ]
                    return {"ok": not wrong, "calls": len(messages), "wrong": wrong}

                async def sampling() -> dict[str, Any]:
                    before = sampling_calls
                    result = await session.call_tool(
                        "trigger-sampling-request", {"prompt": f"from {NAME}", "maxTokens": 10}
                    )
                    got = text(result)
                    return {
                        "own": f"sampled by {NAME}" in got,
                        "callback_calls": sampling_calls - before,
                        "is_error": bool(result.is_error),
                        "result_text": got,
                    }

                async def progress(steps: str) -> dict[str, Any]:
                    callback = 0

                    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                        nonlocal callback
                        callback += 1

                    known = len(tap.progress_tokens)
                    result = await session.call_tool(
                        "trigger-long-running-operation",
                        {"duration": 0.2 * int(steps), "steps": int(steps)},
                        progress_callback=on_progress,
                    )
                    token = tap.progress_tokens[known] if len(tap.progress_tokens) > known else None
                    count = tap.progress_by_token.get(json.dumps(token), 0)
                    return {
                        "ok": count == int(steps) and callback >= 1,
                        "progress": count,
                        "callback": callback,
                        "token": token,
                        "result_text": text(result),
                    }

                async def subscribe(uri: str) -> dict[str, Any]:
                    await session.subscribe_resource(uri)
                    return {}

                async def unsubscribe(uri: str) -> dict[str, Any]:
                    await session.unsubscribe_resource(uri)
                    return {}

                async def updates() -> dict[str, Any]:
                    return {"result_text": text(await session.call_tool("toggle-subscriber-updates", {}))}

                async def wait_updated(uri: str, n: str) -> dict[str, Any]:
                    while tap.updated.get(uri, 0) < int(n):
                        await tap.changed.wait()
                    return {"updated": tap.updated.get(uri, 0)}

                commands = {
                    "stats": stats,
                    "echo": echo,
                    "sampling": sampling,
                    "progress": progress,
                    "subscribe": subscribe,
                    "unsubscribe": unsubscribe,
                    "updates": updates,
                    "wait-updated": wait_updated,
                }
                while True:
                    line = await anyio.to_thread.run_sync(sys.stdin.readline)
                    command, *args = line.split() or ["close"]
                    if command == "close":
                        break
                    run = commands.get(command)
                    if run is None:
                        emit({"event": command, "ok": False, "error": f"unknown command {command!r}"})
                        continue
                    try:
                        with anyio.fail_after(HANG_GUARD):
                            answer = await run(*args)
                        emit({"event": command, "ok": True, **answer})
                    except Exception:
                        emit({"event": command, "ok": False, "error": traceback.format_exc()})
            tg.cancel_scope.cancel()
    # Leaving stdio_client closed the runner's stdin and waited for it (SIGTERM after 2 s).
    emit({"event": "closed", "ok": True, "runner_pid": runner_pids[0] if len(runner_pids) == 1 else None})


if __name__ == "__main__":
    try:
        anyio.run(main)
    except BaseException:
        emit({"event": "failed", "ok": False, "error": traceback.format_exc()})
        sys.exit(1)
