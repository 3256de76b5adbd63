#!/usr/bin/env python3
"""Benchmark of the MCP server as an agent sees it (prints numbers; not a test).

    python scripts/bench_mcp.py [--calls 50] [--cold 5] [--tokens 10000] [--scorer model]

* input: real tool output: consecutive shell observations of one mini-swe-agent trajectory
  (../shared/data/trajectories/mini-swe-agent-gemini3pro.jsonl.gz) joined until ~10k o200k tokens,
  with the agent's thought before the last one as the query;
* latency: p50/p95 of `compact` (ratio 0.3) over stdio, one warm server, measured at the client
  (JSON-RPC framing, validation, the worker thread and the engine all included);
* cold start: from spawning `context-distill serve` to the first `compact` result (median of --cold);
* peak RSS of the server process (VmHWM from /proc, Linux).

Targets (issue 3): p50 < 200 ms, cold start < 2 s, RSS < 500 MB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _proc import peak_rss_mb  # noqa: E402 - scripts/ is on sys.path when run as a script

from server._app import RESULT_META_KEY  # noqa: E402 - where compact's fields are in a result

DATA = Path(os.environ.get("CONTEXT_DISTILL_SHARED_DATA", ROOT.parent / "shared" / "data"))
TRAJ = DATA / "trajectories" / "mini-swe-agent-gemini3pro.jsonl.gz"


def real_input(target_tokens: int) -> tuple[str, str, str]:
    """(text, query, where it came from)."""
    import compaction

    tok = compaction.get_tokenizer()
    with gzip.open(TRAJ, "rt", encoding="utf-8") as fh:
        for line in fh:
            t = json.loads(line)
            msgs = t["messages"]
            parts: list[str] = []
            total = 0
            query = ""
            first = None
            for i in range(3, len(msgs)):
                m = msgs[i]
                if m["role"] != "user" or not m["content"].startswith("<returncode>"):
                    continue
                first = i if first is None else first
                parts.append(m["content"])
                total += tok.count(m["content"])
                query = msgs[i - 1]["content"].split("```")[0].replace("THOUGHT:", "").strip()
                if total >= target_tokens:
                    text = "\n".join(parts)
                    return text, query, f"{t['instance_id']} messages {first}-{i}"
    raise SystemExit(f"no trajectory in {TRAJ} reaches {target_tokens} tokens")


def server_command() -> list[str]:
    script = shutil.which("context-distill") or str(Path(sys.executable).parent / "context-distill")
    if Path(script).exists():
        return [script, "serve"]
    return [sys.executable, "-m", "compaction", "serve"]


def child_pids() -> list[int]:
    me = os.getpid()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == me:
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def cpu_seconds(pid: int) -> float | None:
    """user + system CPU time of a process so far (Linux): a load-independent view of cold start."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * (len(s) - 1))))
    return s[k]


async def main(args: argparse.Namespace) -> None:
    from mcp import Client, StdioServerParameters

    import compaction

    text, query, origin = real_input(args.tokens)
    cmd = server_command()
    tmp = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    env = {
        **os.environ,
        "CONTEXT_DISTILL_CACHE_DIR": str(tmp / "cache"),
        "CONTEXT_DISTILL_DATA_DIR": str(tmp / "data"),
        "CONTEXT_DISTILL_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    if args.scorer:
        env["CONTEXT_DISTILL_SCORER"] = args.scorer
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=env, cwd=str(ROOT))
    call = {"text": text, "ratio": 0.3, "query": query}

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"server: {' '.join(cmd)}; scorer: {args.scorer or 'default (deletion model)'}")
    print(f"input: {compaction.count_tokens(text):,} tokens, {len(text.splitlines()):,} lines ({origin})")

    # cold start: spawn to first compact result
    colds = []
    cold_cpu = []
    for _ in range(args.cold):
        t0 = time.perf_counter()
        async with Client(params, mode="legacy") as c:
            r = await c.call_tool("compact", call)
            colds.append(time.perf_counter() - t0)
            assert not r.is_error, r.content[0].text
            cpu = [cpu_seconds(p) for p in child_pids()]
            if cpu and cpu[0] is not None:
                cold_cpu.append(sum(x for x in cpu if x))
    # warm latency and peak RSS
    lat = []
    async with Client(params, mode="legacy") as c:
        await c.call_tool("compact", call)  # warm-up
        pids = child_pids()
        for _ in range(args.calls):
            t0 = time.perf_counter()
            r = await c.call_tool("compact", call)
            lat.append((time.perf_counter() - t0) * 1000)
            assert not r.is_error, r.content[0].text
        sc = (r.meta or {})[RESULT_META_KEY]  # compact's fields (its text content is what agents read)
        st = (await c.call_tool("status", {})).structured_content
        rss = max((peak_rss_mb(p) or 0.0) for p in pids) if pids else None
    # the same call on the engine in this process: what the protocol layer adds is the difference
    os.environ["CONTEXT_DISTILL_CACHE_DIR"] = str(tmp / "cache-direct")
    if args.scorer:
        os.environ["CONTEXT_DISTILL_SCORER"] = args.scorer
    from compaction.cli import engine_from_env

    engine = engine_from_env()
    engine.compact(text, ratio=0.3, query=query)
    direct = []
    for _ in range(args.calls):
        t0 = time.perf_counter()
        engine.compact(text, ratio=0.3, query=query)
        direct.append((time.perf_counter() - t0) * 1000)
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"compact result: {sc['tokens_before']:,} -> {sc['tokens_after']:,} tokens, scorer {sc['scorer']}, "
          f"provider {st['model'].get('execution_provider', 'n/a')}")
    print(f"latency over stdio ({args.calls} calls): p50 {pct(lat, 50):.1f} ms, p95 {pct(lat, 95):.1f} ms, "
          f"min {min(lat):.1f} ms, max {max(lat):.1f} ms   (target p50 < 200 ms)")
    print(f"same call on the engine in-process: p50 {pct(direct, 50):.1f} ms, p95 {pct(direct, 95):.1f} ms "
          f"(MCP over stdio adds ~{pct(lat, 50) - pct(direct, 50):.1f} ms at p50)")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load:
        print(f"load average during the run: {load[0]:.1f} (1 min) on {os.cpu_count()} CPUs")
    print(f"cold start to first compact result ({args.cold} runs): median {statistics.median(colds):.2f} s, "
          f"min {min(colds):.2f} s, max {max(colds):.2f} s   (target < 2 s)")
    if cold_cpu:
        print(f"  server CPU time (user+sys) to that first result: median {statistics.median(cold_cpu):.2f} s "
              "(load-independent: on an idle machine the wall time is close to this)")
    print(f"peak RSS of the server process: {rss:.0f} MB   (target < 500 MB)" if rss else "peak RSS: n/a (no /proc)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--cold", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=10_000)
    ap.add_argument("--scorer", default=None, help="CONTEXT_DISTILL_SCORER for the server (default: the model)")
    anyio.run(main, ap.parse_args())
