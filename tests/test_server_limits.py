"""Bounded work and big inputs, through a real stdio server: a full queue answers "busy, retry
shortly" instead of piling up; an input over the size limit is a clear error; the server keeps
serving afterwards; a client that goes away mid-call does not wedge an HTTP server."""

from __future__ import annotations

import anyio
import httpx
from mcp import Client, StdioServerParameters
from server_support import (
    result_fields,
    ROOT,
    SERVER_CMD,
    HttpServer,
    error_text,
    observation,
    server_env,
)


def _params(extra: dict[str, str]) -> StdioServerParameters:
    # These tests are about the pool and the limits, not the ranker: the bm25 baseline keeps them quick.
    return StdioServerParameters(
        command=SERVER_CMD[0], args=SERVER_CMD[1:], env=server_env(extra, scorer="bm25"), cwd=str(ROOT)
    )


def _big_text(n_lines: int) -> str:
    return "\n".join(f"{i:07d} worker={i % 13} status=ok latency_ms={i % 997} path=/srv/app/mod{i % 71}.py" for i in range(n_lines))


def test_full_queue_answers_busy_and_then_serves():
    big = _big_text(40_000)  # about a second of work per call
    results: list = []

    async def go():
        async with Client(_params({"CONTEXT_DISTILL_MAX_CONCURRENT": "1", "CONTEXT_DISTILL_MAX_QUEUE": "1"})) as c:

            async def one(i: int) -> None:
                results.append(await c.call_tool("compact", {"text": big + f"\nrun {i}\n", "ratio": 0.01}))

            async with anyio.create_task_group() as tg:
                for i in range(6):
                    tg.start_soon(one, i)
            return await c.call_tool("compact", {"text": observation(), "ratio": 0.3})

    after = anyio.run(go)
    busy = [r for r in results if r.is_error]
    done = [r for r in results if not r.is_error]
    assert len(results) == 6
    assert done and busy, [r.is_error for r in results]
    assert all("busy" in error_text(r) and "retry shortly" in error_text(r) for r in busy)
    assert not after.is_error


def test_status_answers_while_every_worker_is_busy():
    """status is how a user finds out why calls are slow or busy: it must not queue behind them."""
    big = _big_text(40_000)

    async def go():
        async with Client(_params({"CONTEXT_DISTILL_MAX_CONCURRENT": "1", "CONTEXT_DISTILL_MAX_QUEUE": "1"})) as c:
            out: dict = {}

            async def slow(i: int) -> None:
                await c.call_tool("compact", {"text": big + f"\nrun {i}\n", "ratio": 0.01})

            async def probe() -> None:
                await anyio.sleep(0.3)  # the two compact calls hold the worker and the queue
                out["status"] = await c.call_tool("status", {})

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow, 1)
                tg.start_soon(slow, 2)
                tg.start_soon(probe)
            return out["status"]

    st = anyio.run(go)
    assert not st.is_error, error_text(st)
    assert result_fields(st)["in_flight"] >= 1


def test_input_over_the_size_limit_is_a_clear_error_and_the_next_call_succeeds():
    huge = "x" * 50_000_000 + "\n"  # 50 MB

    async def go():
        async with Client(_params({"CONTEXT_DISTILL_MAX_INPUT_BYTES": "10000000"})) as c:
            r = await c.call_tool("compact", {"text": huge})
            ok = await c.call_tool("compact", {"text": observation(), "ratio": 0.3})
            return r, ok

    r, ok = anyio.run(go)
    msg = error_text(r)
    assert "over the limit" in msg and "CONTEXT_DISTILL_MAX_INPUT_BYTES" in msg
    assert not ok.is_error


def test_a_client_that_disconnects_mid_call_does_not_wedge_the_server():
    big = _big_text(60_000)
    body = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "compact", "arguments": {"text": big, "ratio": 0.01}},
    }
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "mcp-protocol-version": "2025-06-18"}
    env = server_env({"CONTEXT_DISTILL_HTTP_MAX_BODY_BYTES": "67108864"}, scorer="bm25")
    with HttpServer(["--stateless"], env=env) as srv:
        with httpx.Client(timeout=0.5) as h:
            try:
                h.post(srv.url, headers=headers, json=body)  # gives up after 0.5 s, mid-call
            except httpx.TimeoutException:
                pass

        async def go():
            async with Client(srv.url) as c:
                with anyio.fail_after(120):
                    return await c.call_tool("compact", {"text": observation(), "ratio": 0.3})

        r = anyio.run(go)
        assert srv.proc is not None and srv.proc.poll() is None
    assert not r.is_error


def test_a_cancelled_call_stops_its_work_at_the_next_progress_point():
    """The SDK cancels a call's scope on notifications/cancelled; the engine's progress callback
    raises that cancellation in the worker thread, so the work stops instead of holding a worker
    to the end (here: a loop of 500 steps of 10 ms, cancelled after 0.2 s)."""
    import time

    from server._runtime import progress_bridge

    steps: list[int] = []

    def work() -> None:
        on_progress = progress_bridge(None)
        for i in range(500):
            on_progress(i / 500, "working")
            steps.append(i)
            time.sleep(0.01)

    async def go() -> bool:
        with anyio.move_on_after(0.2) as scope:
            await anyio.to_thread.run_sync(work)
        return scope.cancelled_caught

    assert anyio.run(go)
    assert 5 < len(steps) < 100, len(steps)


def test_progress_bridge_outside_a_worker_thread_only_reports():
    from server._runtime import progress_bridge

    progress_bridge(None)(0.5, "a direct call, as the CLI and tests make")  # no error
