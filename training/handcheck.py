"""Print a seeded random sample of labelled lines with the evidence behind each label,
for a person to judge whether the agent really used the line (docs/labels.md).

    python -m training.handcheck [--n 50] [--seed 7] [--kind used|unused] [--split val]

For every sampled line: the example id, the line, its evidence, the words that matched
(with their weights), whether it was quoted verbatim or referred to by line number, and
the first place in the agent's LATER actions where its strongest words occur.
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

from training.build_dataset import DEFAULT_DATA
from training.labels import DocFreq, label_trajectory, read_all, split_of, tool_calls


def _context(later: list[str], word: str, width: int = 110) -> str:
    pat = re.compile(re.escape(word), re.I)
    for k, text in enumerate(later):
        m = pat.search(text)
        if m:
            a = max(0, m.start() - width)
            snippet = text[a : m.end() + width].replace("\n", " | ")
            return f"[later action {k + 1}/{len(later)}] ...{snippet}..."
    return "(not found)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kind", choices=("used", "unused"), default="used")
    ap.add_argument("--split", choices=("train", "val", "test-cc", "all"), default="all")
    ap.add_argument("--source", default=None, help="only this source (mini-swe-agent, aider, openhands, claude-code)")
    args = ap.parse_args(argv)
    trajs = list(read_all(args.data))
    df = DocFreq()
    for t in trajs:
        for _, call in tool_calls(t):
            df.add(call.output)
    rng = random.Random(args.seed)
    want = 1 if args.kind == "used" else 0
    # sample trajectories first, then one line per example, to spread the sample
    rng.shuffle(trajs)
    picked = 0
    for t in trajs:
        split = "test-cc" if t.source == "claude-code" else split_of(t.repo)
        if args.split != "all" and split != args.split:
            continue
        if args.source and t.source != args.source:
            continue
        exs = [e for e in label_trajectory(t, df, with_evidence=True)]
        cands = [(e, i) for e in exs for i, lab in enumerate(e.labels) if lab == want and e.lines[i].strip()]
        if not cands:
            continue
        e, i = rng.choice(cands)
        why = e.why[i]  # type: ignore[attr-defined]
        later = e.later  # type: ignore[attr-defined]
        picked += 1
        print(f"### {picked}. {e.id} line {i + 1}/{len(e.lines)}  evidence={e.evidence[i]}")  # type: ignore[attr-defined]
        print("QUERY:", e.query[:250].replace("\n", " | "))
        lo, hi = max(0, i - 2), min(len(e.lines), i + 3)
        for j in range(lo, hi):
            print(("  >> " if j == i else "     ") + e.lines[j][:200])
        words = sorted(why["words"], key=lambda wc: -wc[1])
        print("WORDS:", words[:8], "QUOTE:", why["quote"], "REF:", why["ref"])
        if why["quote"]:
            print("  ", _context(later, e.lines[i].strip()[:60]))
        for w, _ in words[:3]:
            print("  ", w, "->", _context(later, w))
        print()
        if picked >= args.n:
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
