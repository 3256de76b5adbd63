"""Throughput of end-to-end `compact` (tokenize + score + select + render) on real tool output.

    python scripts/bench_compact.py [--repeats 5] [--ratio 0.3] [--threads 2]

Inputs are real observations from ../shared/data (mini-swe-agent, validation repositories),
concatenated to about 1k, 10k and 100k o200k tokens; without that folder, the example log
in examples/ is repeated. Prints tokens/s per size, load time of the engine and peak RSS.
Nothing is stored on disk (store=False), so the numbers are the engine's own.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "trajectories" / "mini-swe-agent-gemini3pro.jsonl.gz"


def real_corpus(max_tokens: int, count) -> str:
    chunks: list[str] = []
    total = 0
    if DATA.exists():
        with gzip.open(DATA, "rt", encoding="utf-8") as f:
            for line in f:
                t = json.loads(line)
                if not t["instance_id"].startswith(("sympy", "sphinx")):
                    continue
                for m in t["messages"][2:]:
                    c = m["content"]
                    if m["role"] == "user" and c.startswith("<returncode>") and "<output>\n" in c:
                        body = c.split("<output>\n", 1)[1].rsplit("</output>", 1)[0]
                        chunks.append(body)
                        total += count(body)
                        if total >= max_tokens:
                            return "".join(chunks)
    sample = (ROOT / "examples" / "sphinx-pytest-failure.txt").read_text()
    text = "".join(chunks)
    while count(text) < max_tokens:
        text += sample
    return text


def cut(text: str, tokens: int, count) -> str:
    lines = text.splitlines(keepends=True)
    lo, hi = 1, len(lines)
    while lo < hi:  # fewest lines reaching `tokens`
        mid = (lo + hi) // 2
        if count("".join(lines[:mid])) >= tokens:
            hi = mid
        else:
            lo = mid + 1
    return "".join(lines[:lo])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ratio", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="1000,10000,100000")
    args = ap.parse_args()
    os.environ["CONTEXT_DISTILL_THREADS"] = str(args.threads)
    sys.path.insert(0, str(ROOT))

    t0 = time.perf_counter()
    import compaction

    engine = compaction.Engine(store=False)
    scorer = engine.scorer  # loads the model
    load_s = time.perf_counter() - t0
    count = engine.tokenizer.count
    sizes = [int(s) for s in args.sizes.split(",")]
    corpus = real_corpus(max(sizes) + 2000, count)
    query = "why does the test fail? find the assertion error and the file:line it comes from"

    info = {}
    try:
        from compaction._model import model_info

        info = model_info()
    except Exception as exc:  # the bench still reports what it can
        info = {"error": str(exc)}
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"scorer: {getattr(scorer, 'name', scorer)}; provider: {info.get('execution_provider', '?')}; threads: {args.threads}")
    print(f"engine load (tokenizer + model): {load_s * 1000:.0f} ms")
    print(f"{'input tokens':>12} {'lines':>7} {'median ms':>10} {'p95 ms':>8} {'tokens/s':>11} {'kept':>6}")
    for size in sizes:
        text = cut(corpus, size, count)
        engine.compact(text, ratio=args.ratio, query=query)  # warm-up
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            r = engine.compact(text, ratio=args.ratio, query=query)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        p95 = sorted(times)[max(0, int(round(0.95 * len(times))) - 1)]
        print(
            f"{r.tokens_before:>12,} {r.lines_before:>7,} {med * 1000:>10.1f} {p95 * 1000:>8.1f} "
            f"{r.tokens_before / med:>11,.0f} {r.tokens_after / r.tokens_before:>6.2f}"
        )
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS of this process (engine + the benchmark corpus): {peak_kb / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
