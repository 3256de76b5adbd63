#!/usr/bin/env python3
"""Load test: many concurrent MCP clients against the streamable HTTP server on 127.0.0.1.

Starts ``python -m compaction serve --http`` on a free loopback port (its own cache folder),
opens ``--clients`` MCP client sessions at once (the ``mcp`` SDK's streamable HTTP client),
and sends ``--calls`` ``compact`` calls of mixed sizes (up to ``--max-tokens``) built from
real tool outputs in ``../shared/data`` (concatenated for the big ones). Bounded in count
and in time (``--max-seconds``).

Every answer is checked against a direct engine call on the same input (same scorer):
same text, same kept and omitted line ranges, same token counts, same handle. A call the
server refuses as busy is counted and retried with exponential backoff; anything else that
goes wrong is an error. Reports throughput, p50/p99 latency, errors, busy rejections and the
server's peak RSS (VmHWM), and exits non-zero if any call was lost or answered wrongly.

    python scripts/load_test.py                      # 64 clients, 2,000 calls, up to 100k tokens
    python scripts/load_test.py --clients 8 --calls 100 --max-tokens 20000   # a quick run
    CONTEXT_DISTILL_SCORER=bm25 python scripts/load_test.py   # a baseline scorer instead of the model

Environment for the server is passed through (CONTEXT_DISTILL_MAX_CONCURRENT, _MAX_QUEUE, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _proc import peak_rss_mb  # noqa: E402 - scripts/ is on sys.path when run as a script

from server._app import RESULT_META_KEY  # noqa: E402 - where compact's fields are in a result

DATA = Path(os.environ.get("CONTEXT_DISTILL_SHARED_DATA", ROOT.parent / "shared" / "data"))
TRAJECTORIES = DATA / "trajectories" / "mini-swe-agent-gemini3pro.jsonl.gz"


# -- inputs ---------------------------------------------------------------------------------------


@dataclass
class Job:
    idx: int
    text: str
    ratio: float
    query: str
    tokens: int


def load_observations(limit_trajectories: int) -> list[tuple[str, str]]:
    """(observation, query) pairs: real shell outputs and the agent's thought that asked for them."""
    out: list[tuple[str, str]] = []
    with gzip.open(TRAJECTORIES, "rt", encoding="utf-8") as f:
        for n, raw in enumerate(f):
            if n >= limit_trajectories:
                break
            msgs = json.loads(raw)["messages"]
            for prev, m in zip(msgs, msgs[1:]):
                if m.get("role") == "user" and prev.get("role") == "assistant" and isinstance(m.get("content"), str):
                    thought = prev["content"] if isinstance(prev["content"], str) else ""
                    out.append((m["content"], thought.strip().split("\n")[0][:200]))
    return out


def build_jobs(n: int, max_tokens: int, seed: int, trajectories: int) -> list[Job]:
    import compaction

    tok = compaction.get_tokenizer()
    rng = random.Random(seed)
    obs = [(t, q) for t, q in load_observations(trajectories) if t.strip()]
    sized = [(t, q, tok.count(t)) for t, q in obs]
    small = [s for s in sized if s[2] >= 50]
    jobs: list[Job] = []
    for i in range(n):
        r = rng.random()
        if r < 0.55:
            target = rng.randint(100, 2_000)
        elif r < 0.83:
            target = rng.randint(2_000, 10_000)
        elif r < 0.96:
            target = rng.randint(10_000, 50_000)
        else:
            target = rng.randint(50_000, max(50_000, max_tokens))
        target = max(50, min(target, max_tokens))
        parts, total, query = [], 0, ""
        while total < target * 0.9:
            t, q, k = rng.choice(small)
            if total + k > target and parts:
                # cut the last piece by lines so the input stays under the size class
                lines = t.splitlines(keepends=True)
                keep = max(1, int(len(lines) * (target - total) / max(k, 1)))
                t = "".join(lines[:keep])
                k = tok.count(t)
            parts.append(t if t.endswith("\n") else t + "\n")
            total += k
            query = query or q
        text = "".join(parts)
        jobs.append(Job(i, text, rng.choice([0.1, 0.3, 0.5]), query, tok.count(text)))
    return jobs


# -- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cache: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["CONTEXT_DISTILL_CACHE_DIR"] = str(cache / "cache")
    env["CONTEXT_DISTILL_DATA_DIR"] = str(cache / "data")
    env.pop("CONTEXT_DISTILL_HTTP_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "compaction", "serve", "--http", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=str(ROOT),
        stdin=subprocess.DEVNULL,
        stdout=open(log, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start listening within 120 s")


# -- the clients ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    idx: int
    ok: bool = False
    digest: str = ""
    structured: dict | None = None
    error: str = ""
    busy: int = 0
    attempts: int = 0
    latency: float = 0.0  # the successful attempt
    end_to_end: float = 0.0  # first attempt to answer, backoff included


@dataclass
class Stats:
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    transport_errors: int = 0


def result_digest(text: str, kept, omitted, tokens_before: int, tokens_after: int, handle) -> str:
    blob = json.dumps(
        [text, [list(r) for r in kept], [list(r) for r in omitted], tokens_before, tokens_after, handle],
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


async def client_worker(url: str, queue: asyncio.Queue, stats: Stats, jobs: list[Job], args, deadline: float) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    while not queue.empty() and time.monotonic() < deadline:
        http = create_mcp_http_client(timeout=httpx2.Timeout(args.call_timeout, connect=30))
        try:
            async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=args.call_timeout) as c:
                while time.monotonic() < deadline:
                    try:
                        idx = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    job = jobs[idx]
                    out = stats.outcomes.setdefault(idx, Outcome(idx))
                    first = time.perf_counter()
                    delay = 0.05
                    while True:
                        out.attempts += 1
                        t0 = time.perf_counter()
                        try:
                            r = await c.call_tool("compact", {"text": job.text, "ratio": job.ratio, "query": job.query})
                        except Exception as exc:  # transport trouble: the session is gone, requeue the job
                            stats.transport_errors += 1
                            out.error = f"transport: {type(exc).__name__}: {exc}"[:300]
                            await queue.put(idx)
                            raise
                        dt = time.perf_counter() - t0
                        if r.is_error:
                            msg = r.content[0].text if r.content else "?"
                            if "busy" in msg and out.attempts < args.max_attempts and time.monotonic() < deadline:
                                out.busy += 1
                                await asyncio.sleep(delay * (0.5 + random.random()))
                                delay = min(delay * 2, 2.0)
                                continue
                            out.error = msg[:300]
                            break
                        s = (r.meta or {}).get(RESULT_META_KEY) or {}  # compact's fields
                        out.ok, out.error = True, ""
                        out.digest = result_digest(
                            s.get("text", ""),
                            s.get("kept_line_ranges", []),
                            s.get("omitted_line_ranges", []),
                            s.get("tokens_before", -1),
                            s.get("tokens_after", -1),
                            s.get("handle"),
                        )
                        out.latency = dt
                        out.end_to_end = time.perf_counter() - first
                        break
        except Exception:
            await asyncio.sleep(0.2)  # reconnect with a fresh session


async def drive(url: str, jobs: list[Job], args) -> tuple[Stats, float]:
    queue: asyncio.Queue = asyncio.Queue()
    order = list(range(len(jobs)))
    random.Random(args.seed + 1).shuffle(order)
    for i in order:
        queue.put_nowait(i)
    stats = Stats()
    start = time.monotonic()
    deadline = start + args.max_seconds
    await asyncio.gather(*(client_worker(url, queue, stats, jobs, args, deadline) for _ in range(args.clients)))
    return stats, time.monotonic() - start


# -- checking ----------------------------------------------------------------------------------------


def expected_digests(jobs: list[Job], which: set[int], cache: Path) -> dict[int, str]:
    """Direct engine calls (same scorer as the server) for the jobs the server answered."""
    from compaction import Settings
    from compaction.cli import engine_from_env

    eng = engine_from_env(settings=Settings(cache_dir=cache / "check-cache", data_dir=cache / "check-data"))
    out = {}
    for j in jobs:
        if j.idx in which:
            r = eng.compact(j.text, ratio=j.ratio, query=j.query)
            out[j.idx] = result_digest(
                r.text, r.kept_line_ranges, r.omitted_line_ranges, r.tokens_before, r.tokens_after, r.handle
            )
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q / 100 * (len(values) - 1)))))
    return values[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--max-tokens", type=int, default=100_000)
    ap.add_argument("--max-seconds", type=float, default=1800)
    ap.add_argument("--call-timeout", type=float, default=600)
    ap.add_argument("--max-attempts", type=int, default=200, help="tries per call while the server says busy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trajectories", type=int, default=60, help="trajectories read for inputs")
    ap.add_argument("--json", type=Path, help="also write the report here")
    args = ap.parse_args()

    t0 = time.perf_counter()
    jobs = build_jobs(args.calls, args.max_tokens, args.seed, args.trajectories)
    sizes = [j.tokens for j in jobs]
    print(
        f"{len(jobs)} inputs: {sum(sizes):,} tokens, median {statistics.median(sizes):,.0f}, "
        f"max {max(sizes):,} (built in {time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )
    work = Path(tempfile.mkdtemp(prefix="cd-load-"))
    proc, url = start_server(work, work / "server.log")
    try:
        stats, wall = asyncio.run(drive(url, jobs, args))
        rss = peak_rss_mb(proc.pid)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"load phase done in {wall:.1f} s; checking every answer against direct engine calls", file=sys.stderr)
    try:
        load_avg = os.getloadavg()
    except OSError:
        load_avg = None
    t1 = time.perf_counter()
    answered = [o for o in stats.outcomes.values() if o.ok]
    expected = expected_digests(jobs, {o.idx for o in answered}, work)
    check_s = time.perf_counter() - t1

    wrong = [o.idx for o in answered if o.digest != expected[o.idx]]
    errors = [o for o in stats.outcomes.values() if not o.ok]
    unsent = len(jobs) - len(stats.outcomes)
    lat = [o.latency for o in answered]
    e2e = [o.end_to_end for o in answered]
    tokens_done = sum(jobs[o.idx].tokens for o in answered)
    scorer = os.environ.get("CONTEXT_DISTILL_SCORER") or "model"
    report = {
        "clients": args.clients,
        "calls": len(jobs),
        "answered": len(answered),
        "correct": len(answered) - len(wrong),
        "wrong": len(wrong),
        "errors": len(errors),
        "not_sent_before_deadline": unsent,
        "busy_rejections": sum(o.busy for o in stats.outcomes.values()),
        "calls_that_saw_busy": sum(1 for o in stats.outcomes.values() if o.busy),
        "transport_errors": stats.transport_errors,
        "input_tokens": sum(sizes),
        "median_input_tokens": statistics.median(sizes),
        "max_input_tokens": max(sizes),
        "wall_s": round(wall, 1),
        "calls_per_s": round(len(answered) / wall, 2),
        "tokens_per_s": round(tokens_done / wall),
        "latency_p50_s": round(pct(lat, 50), 3),
        "latency_p99_s": round(pct(lat, 99), 3),
        "end_to_end_p50_s": round(pct(e2e, 50), 3),
        "end_to_end_p99_s": round(pct(e2e, 99), 3),
        "server_peak_rss_mb": round(rss, 1) if rss else None,
        "server_alive_after": alive,
        "scorer": scorer,
        "max_concurrent": os.environ.get("CONTEXT_DISTILL_MAX_CONCURRENT", "2 (default)"),
        "max_queue": os.environ.get("CONTEXT_DISTILL_MAX_QUEUE", "16 (default)"),
        "check_s": round(check_s, 1),
        "cpus": os.cpu_count(),
        "load_average_after_load_phase": [round(x, 1) for x in load_avg] if load_avg else None,
    }
    print(json.dumps(report, indent=2))
    if errors:
        print("first errors:", file=sys.stderr)
        for o in errors[:5]:
            print(f"  call {o.idx}: {o.error}", file=sys.stderr)
    if wrong:
        print(f"WRONG answers for calls {wrong[:20]}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    ok = not wrong and not errors and unsent == 0 and alive and len(answered) == len(jobs)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
