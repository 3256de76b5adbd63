"""Where recall is lost: macro recall at one keep ratio by the kind of tool output, and with
the omission markers on and off.

    python -m training.breakdown [--ratio 0.3] [--limit N]

Reads the validation split (``python -m training.build_dataset``), takes the outputs that
``python -m training.evaluate`` reports (>= 256 tokens, a used line), and runs the real
engine as the evaluation does. The kind is Aider's output, or the first word of the
command the mini-swe-agent ran (``$ ...`` in the query; a leading ``cd DIR &&`` skipped).
Prints two tables; writes nothing.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections import defaultdict

import numpy as np

from compaction import Engine
from compaction.baselines import BASELINES

from .evaluate import (
    DATASET,
    HEADLINE_TOKENS,
    OracleScorer,
    evaluate,
    load_examples,
    load_model,
    used_recall,
)

_COMMAND = re.compile(r"^\$ (.*)$", re.MULTILINE)
_CD = re.compile(r"^cd \S+ && ")
_KINDS = {"sed": "`sed -n` file view", "nl": "`nl -ba` file view", "cat": "`cat`", "head": "`head`",
          "grep": "`grep`", "git": "`git`", "ls": "`ls`", "find": "`find`"}  # fmt: skip


def output_kind(ex: dict) -> str:
    if ex.get("source") == "aider":
        return "Aider lint/test output"
    m = _COMMAND.search(ex.get("query") or "")
    cmd = _CD.sub("", m.group(1)) if m else ""
    word = cmd.split()[0] if cmd.split() else ""
    if word in _KINDS:
        return _KINDS[word]
    if word.startswith("python"):
        return "`python` script or tests"
    return "other command"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ratio", type=float, default=0.3)
    ap.add_argument("--limit", type=int, default=None, help="a seeded sample of N outputs")
    args = ap.parse_args(argv)
    model, why = load_model()
    if model is None:
        print(f"no model: {why}", file=sys.stderr)
        return 2
    exs, _ = load_examples(DATASET / "val.jsonl.gz", limit=None, seed=0)
    exs = [e for e in exs if e["tokens"] >= HEADLINE_TOKENS]
    if args.limit is not None and args.limit < len(exs):
        exs = random.Random(0).sample(exs, args.limit)
    oracle = OracleScorer()
    scorers = [model, BASELINES["tail"], BASELINES["bm25"], oracle]
    names = [s.name for s in scorers]

    groups: dict[str, list[dict]] = defaultdict(list)
    for e in exs:
        groups[output_kind(e)].append(e)
    print(f"Macro recall of used lines at keep {args.ratio:g}, by kind of output ({len(exs)} validation outputs):\n")
    print("| output | n | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for kind, group in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        res = evaluate(group, scorers, (args.ratio,), progress=False)
        print(f"| {kind} | {len(group)} | " + " | ".join(f"{100 * res[n][args.ratio].macro:.1f}" for n in names) + " |")

    print(f"\nMarkers on and off (keep {args.ratio:g}, no stored original), macro recall %:\n")
    print("| scorer | markers on | markers off |")
    print("|---|---:|---:|")
    for s in (model, BASELINES["tail"], oracle):
        eng = Engine(scorer=s, store=False)
        row = []
        for markers in (True, False):
            rec = []
            for e in exs:
                oracle.labels = e["labels"]
                r = eng.compact("\n".join(e["lines"]), ratio=args.ratio, query=e["query"], markers=markers)
                hit, total = used_recall(e["labels"], r.kept_line_ranges)
                rec.append(hit / total)
            row.append(100 * float(np.mean(rec)))
        print(f"| {s.name} | {row[0]:.1f} | {row[1]:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
