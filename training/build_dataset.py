"""Build the deletion model's dataset from real agent trajectories.

    python -m training.build_dataset [--data ../shared/data] [--out training/work/dataset]

FORMAT (gzip JSON lines, one object per tool output):

    training/work/dataset/train.jsonl.gz    mini-swe-agent + Aider + OpenHands, all repositories
                                             except sympy and sphinx
    training/work/dataset/val.jsonl.gz      the same sources, sympy/sympy + sphinx-doc/sphinx only
    training/work/dataset/test-cc.jsonl.gz  Claude Code transcripts (another domain: Elixir app)
    training/work/dataset/stats.json        the numbers printed at the end

    {"id": "mini-swe-agent:django__django-11099:3",   # source:trajectory:tool-call number
     "source": "mini-swe-agent" | "aider" | "openhands" | "claude-code",
     "repo": "django/django",
     "query": "<preceding thought>\\n$ <command>\\n\\nTask: <task, cut to ~200 tokens>",
     "lines": [str, ...],        # exactly tool_output.splitlines() (verbatim, may hold ANSI codes;
                                 # ~6 % end with "", which "\\n".join(lines).splitlines() drops:
                                 # blank lines are always label 0)
     "labels": [0 | 1, ...],     # 1 = the agent later used this line (training/labels.py)
     "weights": [float, ...],    # per-line LOSS weight in (0.5, 1]: 1 = confident, lower near
                                 # the threshold (use it to multiply the per-line loss, or ignore it)
     "soft": [float, ...],       # soft label in [0, 1] (evidence / threshold, capped); labels == (soft >= 1)
     "n_used": int}              # sum(labels)

Every output with at least one line is kept, including those with no used line
(``n_used == 0``: about 40 %; the evaluation counts only examples with n_used >= 1;
training may use them as all-negative examples or skip them). The split is by
repository, the same in every source (``training.labels.VAL_REPOS``). Examples keep the
order of the sources; shuffle when training.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

from training.labels import DocFreq, Trajectory, label_trajectory, read_all, split_of, tool_calls

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (ROOT.parent / "shared" / "data") if (ROOT.parent / "shared" / "data").exists() else Path("/work/shared/data")
DEFAULT_OUT = ROOT / "training" / "work" / "dataset"


def example_dict(ex) -> dict:
    return {
        "id": ex.id,
        "source": ex.source,
        "repo": ex.repo,
        "query": ex.query,
        "lines": ex.lines,
        "labels": ex.labels,
        "weights": ex.weights,
        "soft": ex.soft,
        "n_used": sum(ex.labels),
    }


def split_name(traj: Trajectory) -> str:
    if traj.source == "claude-code":
        return "test-cc"
    return split_of(traj.repo)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (../shared/data)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    t0 = time.time()
    trajs = list(read_all(args.data))
    # IDF over every tool output of the SWE-bench sources (Claude Code outputs added too:
    # rarity is a property of text, not a label, and the words are counted, never copied)
    df = DocFreq()
    for t in trajs:
        for _, call in tool_calls(t):
            df.add(call.output)
    print(f"read {len(trajs)} trajectories, {df.n} tool outputs in {time.time() - t0:.1f}s", file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    names = ("train", "val", "test-cc")
    tmp = {n: args.out / f"{n}.jsonl.gz.tmp" for n in names}
    files = {n: gzip.open(tmp[n], "wt", encoding="utf-8", compresslevel=5) for n in names}
    stats: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    repos: dict[str, set] = defaultdict(set)
    try:
        for t in trajs:
            split = split_name(t)
            repos[split].add(t.repo)
            for ex in label_trajectory(t, df):
                files[split].write(json.dumps(example_dict(ex), ensure_ascii=False) + "\n")
                for key in (t.source, "all"):
                    s = stats[split][key]
                    s["examples"] += 1
                    s["lines"] += len(ex.lines)
                    s["used_lines"] += sum(ex.labels)
                    s["examples_with_used"] += 1 if any(ex.labels) else 0
                    s["nonblank_lines"] += sum(1 for l in ex.lines if l.strip())
    finally:
        for f in files.values():
            f.close()
    for n in names:
        tmp[n].replace(args.out / f"{n}.jsonl.gz")
    overlap = repos["train"] & repos["val"]
    if overlap:
        raise SystemExit(f"repositories on both sides of the split: {sorted(overlap)}")
    out = {
        split: {src: dict(v, positive_rate=round(v["used_lines"] / max(1, v["lines"]), 4)) for src, v in per.items()}
        for split, per in stats.items()
    }
    out["repos"] = {k: sorted(v) for k, v in repos.items()}
    (args.out / "stats.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"{'split':8} {'source':15} {'examples':>9} {'w/ used':>8} {'lines':>9} {'used':>8} {'pos.rate':>8}")
    for split in names:
        for src, v in sorted(stats[split].items(), key=lambda kv: (kv[0] == "all", kv[0])):
            print(
                f"{split:8} {src:15} {v['examples']:9d} {v['examples_with_used']:8d} {v['lines']:9d} "
                f"{v['used_lines']:8d} {v['used_lines'] / max(1, v['lines']):8.3f}"
            )
    print(f"wrote {args.out} in {time.time() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
