"""Recall of used lines after ``compact``, for the deletion model and every baseline.

    python -m training.evaluate [--limit N] [--seed 0] [--no-docs]

Reads the validation split built by ``python -m training.build_dataset``
(training/work/dataset/val.jsonl.gz: sympy + sphinx, never seen in training) and the
Claude Code test set (test-cc.jsonl.gz). For every example with at least one used line,
every scorer and every keep ratio it runs the real engine:

    compaction.Engine(scorer=S, store=<a temporary originals store>).compact("\\n".join(lines), ratio=r, query=query)

and measures the recall of used lines: the fraction of used lines whose line number lies
in ``result.kept_line_ranges`` (lines kept whole). Reported: macro recall (mean over
examples), micro recall (over all used lines) and the mean kept-token ratio
(``tokens_after / tokens_before``; marker lines count against the budget, the same for
every scorer). Scorers: the engine's default deletion model
(``compaction._model.load_default_scorer()``, when its asset is shipped) and every
baseline in ``compaction.baselines.BASELINES``, in the same run on the same examples.

Writes docs/evaluation.md, docs/eval-recall.png and training/work/eval/results.json
(unless --no-docs).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import json
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from compaction import Engine, LineScorer, ScoringInput
from compaction._store import OriginalStore
from compaction.baselines import BASELINES

from .labels import without_earlier, without_thought

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "training" / "work" / "dataset"
DOCS = ROOT / "docs"
HEADLINE = (0.5, 0.3, 0.1)
GRID = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


# ----------------------------------------------------------------------------- metric
def kept_lines(ranges: Iterable[Sequence[int]]) -> set[int]:
    """0-based line indices covered by 1-based inclusive ``[start, end]`` ranges."""
    out: set[int] = set()
    for a, b in ranges:
        out.update(range(int(a) - 1, int(b)))
    return out


def used_recall(labels: Sequence[int], ranges: Iterable[Sequence[int]]) -> tuple[int, int]:
    """(used lines kept, used lines) for one example."""
    kept = kept_lines(ranges)
    used = [i for i, lab in enumerate(labels) if lab]
    return sum(1 for i in used if i in kept), len(used)


@dataclass
class Tally:
    """Recall and kept-token ratio of one scorer at one keep ratio."""

    recalls: list[float] = field(default_factory=list)
    hit: int = 0
    total: int = 0
    kept_ratio: list[float] = field(default_factory=list)

    def add(self, hit: int, total: int, kept_ratio: float) -> None:
        if total:
            self.recalls.append(hit / total)
            self.hit += hit
            self.total += total
        self.kept_ratio.append(kept_ratio)

    def merged(self, other: "Tally") -> "Tally":
        return Tally(self.recalls + other.recalls, self.hit + other.hit, self.total + other.total, self.kept_ratio + other.kept_ratio)

    @property
    def macro(self) -> float:
        return float(np.mean(self.recalls)) if self.recalls else float("nan")

    @property
    def micro(self) -> float:
        return self.hit / self.total if self.total else float("nan")

    @property
    def mean_kept(self) -> float:
        return float(np.mean(self.kept_ratio)) if self.kept_ratio else float("nan")


# ----------------------------------------------------------------------------- scorers
class CachedScorer:
    """Scores an input once and reuses the scores for every ratio (scorers are
    deterministic functions of the units and the query)."""

    def __init__(self, inner: LineScorer) -> None:
        self.inner = inner
        self.name = inner.name
        self._key: tuple | None = None
        self._scores: np.ndarray | None = None
        self.seconds = 0.0

    def score(self, inp: ScoringInput) -> np.ndarray:
        key = (len(inp.units), hash(tuple(inp.units)), inp.query)
        if key != self._key:
            t0 = time.perf_counter()
            self._scores = np.asarray(self.inner.score(inp), dtype=np.float64)
            self.seconds += time.perf_counter() - t0
            self._key = key
        return self._scores  # type: ignore[return-value]


class MemoTokenizer:
    """The engine's tokenizer with its results remembered for the texts of one example:
    every scorer and ratio compacts the same lines, and o200k encodings do not change.
    Results are identical to the wrapped tokenizer's; only repeated work is saved."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self._ids: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        ids = self._ids.get(text)
        if ids is None:
            ids = self.inner.encode(text)
            self._ids[text] = ids
        return ids

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def clear(self) -> None:
        self._ids.clear()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


class OracleScorer:
    """An upper bound, not a competitor: it knows the labels of the example being
    compacted and ranks its used lines first. What any scorer could reach under the same
    budget and markers."""

    name = "oracle (knows labels)"

    def __init__(self) -> None:
        self.labels: Sequence[int] = ()

    def score(self, inp: ScoringInput) -> np.ndarray:
        lab = self.labels
        return np.array([1.0 if i < len(lab) and lab[i] else 0.0 for i in inp.unit_lines], dtype=np.float64)


def load_model() -> tuple[LineScorer | None, str]:
    """The engine's default scorer, or None and the reason it is missing."""
    try:
        from compaction._model import load_default_scorer
    except ImportError as exc:
        return None, f"compaction._model is not there yet ({exc})"
    try:
        scorer = load_default_scorer()
    except Exception as exc:  # a missing or corrupt asset: evaluate baselines only
        return None, f"{type(exc).__name__}: {exc}"
    if scorer.name in BASELINES:
        return None, f"the default scorer is the baseline {scorer.name!r} (no model asset shipped)"
    return scorer, ""


# ----------------------------------------------------------------------------- data
#: outputs smaller than this are not worth compacting (``compact_messages`` leaves parts
#: under 64 tokens alone) and are left out of the evaluation
MIN_LINES = 5
MIN_TOKENS = 64
#: the headline table counts outputs of at least this many tokens: below it the engine's
#: marker and trailer lines (~30 tokens) take most of a 0.3 or 0.1 budget, so that even the
#: oracle keeps almost nothing (reported separately, never hidden)
HEADLINE_TOKENS = 256


def load_examples(path: Path, *, limit: int | None, seed: int) -> tuple[list[dict], int]:
    """Examples with >= 1 used line, >= MIN_LINES lines and >= MIN_TOKENS tokens (all of
    them, or a seeded sample of ``limit``), and how many such examples the file holds."""
    from compaction import get_tokenizer

    count = get_tokenizer().count
    exs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for raw in f:
            ex = json.loads(raw)
            if any(ex["labels"]) and len(ex["lines"]) >= MIN_LINES:
                ex["tokens"] = count("\n".join(ex["lines"]))
                if ex["tokens"] >= MIN_TOKENS:
                    exs.append(ex)
    total = len(exs)
    if limit is not None and limit < total:
        exs = random.Random(seed).sample(exs, limit)
    return exs, total


def evaluate(
    examples: list[dict], scorers: list[LineScorer], ratios: Sequence[float], *, progress: bool = True
) -> dict[str, dict[float, Tally]]:
    from compaction import get_tokenizer

    cached = [CachedScorer(s) for s in scorers]
    tok = MemoTokenizer(get_tokenizer())
    # a real originals store (in a temporary folder), as users run it: the result's last
    # line then names a handle, and that trailer counts against the budget as it does for them
    tmp = tempfile.TemporaryDirectory(prefix="context-distill-eval-")
    store = OriginalStore(Path(tmp.name))
    engines = [Engine(scorer=c, store=store, tokenizer=tok) for c in cached]  # type: ignore[arg-type]
    out: dict[str, dict[float, Tally]] = {s.name: {r: Tally() for r in ratios} for s in scorers}
    t0 = time.time()
    for k, ex in enumerate(examples):
        text = "\n".join(ex["lines"])
        for s in scorers:
            if isinstance(s, OracleScorer):
                s.labels = ex["labels"]
        for c, eng in zip(cached, engines):
            for r in ratios:
                res = eng.compact(text, ratio=r, query=ex["query"])
                hit, total = used_recall(ex["labels"], res.kept_line_ranges)
                out[c.name][r].add(hit, total, res.ratio_kept)
        tok.clear()
        if progress and (k + 1) % 100 == 0:
            print(f"  {k + 1}/{len(examples)} examples, {time.time() - t0:.0f}s", file=sys.stderr)
    for c in cached:
        out[c.name]["_score_seconds"] = c.seconds  # type: ignore[index]
    tmp.cleanup()
    return out


# ----------------------------------------------------------------------------- reports
def table(results: dict[str, dict], ratios: Sequence[float], *, micro: bool = False) -> str:
    head = "| scorer | " + " | ".join(f"recall @ keep {r:g}" for r in ratios) + " | kept tokens @ " + "/".join(f"{r:g}" for r in ratios) + " |"
    sep = "|---|" + "---:|" * len(ratios) + "---:|"
    rows = [head, sep]
    for name, per in results.items():
        vals = [per[r].micro if micro else per[r].macro for r in ratios]
        kept = "/".join(f"{per[r].mean_kept:.2f}" for r in ratios)
        rows.append(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in vals) + f" | {kept} |")
    return "\n".join(rows)


def best_baseline_gap(results: dict[str, dict], model: str | None, ratios: Sequence[float]) -> list[str]:
    if model is None or model not in results:
        return []
    lines = []
    for r in ratios:
        base = max((n for n in results if n != model and n in BASELINES), key=lambda n: results[n][r].macro)
        gap = 100 * (results[model][r].macro - results[base][r].macro)
        lines.append(f"keep {r:g}: model {100 * results[model][r].macro:.1f} vs best baseline {base} {100 * results[base][r].macro:.1f} ({gap:+.1f} points)")
    return lines


def plot(results: dict[str, dict], ratios: Sequence[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, per in results.items():
        xs = [per[r].mean_kept for r in ratios]
        ys = [100 * per[r].macro for r in ratios]
        if name.startswith("oracle"):
            style = dict(linewidth=1.0, linestyle="--", color="black")
        elif name in BASELINES:
            style = dict(linewidth=1.4, marker=".")
        else:
            style = dict(linewidth=2.6, marker="o")
        ax.plot(ratios, ys, label=name, **style)
    ax.plot([0, 1], [0, 100], color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("keep ratio (fraction of tokens kept, markers included)")
    ax.set_ylabel("recall of used lines, % (macro)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)


def to_json(results: dict[str, dict], ratios: Sequence[float]) -> dict:
    return {
        name: {
            "score_seconds": round(per.get("_score_seconds", 0.0), 2),
            **{
                f"{r:g}": {"macro": round(per[r].macro, 4), "micro": round(per[r].micro, 4), "kept_tokens": round(per[r].mean_kept, 4)}
                for r in ratios
            },
        }
        for name, per in results.items()
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Recall of used lines at several keep ratios, model vs baselines.")
    ap.add_argument("--dataset", type=Path, default=DATASET)
    ap.add_argument("--limit", type=int, default=None, help="evaluate a seeded random sample of N validation examples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-docs", action="store_true", help="print only; do not write docs/")
    ap.add_argument("--no-plot-grid", action="store_true", help="only the three headline ratios (faster)")
    ap.add_argument("--no-oracle", action="store_true", help="leave out the oracle upper bound")
    ap.add_argument(
        "--allow-missing-model",
        action="store_true",
        help="evaluate the baselines when the model does not load (otherwise that is an error, exit 1)",
    )
    args = ap.parse_args(argv)

    val_path = args.dataset / "val.jsonl.gz"
    if not val_path.exists():
        print(f"no dataset at {val_path}: run `python -m training.build_dataset` first", file=sys.stderr)
        return 2
    model, why = load_model()
    scorers: list[LineScorer] = ([model] if model is not None else []) + list(BASELINES.values())
    if not args.no_oracle:
        scorers.append(OracleScorer())
    if model is None:
        if not args.allow_missing_model:
            print(f"the deletion model does not load: {why} (--allow-missing-model evaluates the baselines only)", file=sys.stderr)
            return 1
        print(f"MODEL MISSING: {why}; evaluating the baselines only", file=sys.stderr)
    ratios = tuple(sorted(set(HEADLINE) | (set() if args.no_plot_grid else set(GRID))))

    t0 = time.time()
    every, _ = load_examples(val_path, limit=None, seed=args.seed)
    big = [e for e in every if e["tokens"] >= HEADLINE_TOKENS]
    small = [e for e in every if e["tokens"] < HEADLINE_TOKENS]
    val_total = len(big)
    val = big if args.limit is None or args.limit >= len(big) else random.Random(args.seed).sample(big, args.limit)
    if args.limit is not None and args.limit < len(small):
        small = random.Random(args.seed).sample(small, args.limit)
    print(f"validation: {len(val)} of {val_total} outputs of >= {HEADLINE_TOKENS} tokens with a used line, {sum(len(e['lines']) for e in val)} lines; {len(small)} smaller ones", file=sys.stderr)
    res_val = evaluate(val, scorers, ratios)
    # the same outputs when the caller passes less: no earlier messages in the query
    query_aware = [s for s in scorers if s.name in (getattr(model, "name", None), "bm25")]
    res_short = evaluate([dict(e, query=without_earlier(e["query"])) for e in val], query_aware, HEADLINE, progress=False)
    # ... and without the latest thought, as Claude Code's PostToolUse hook usually sees it
    res_hook = evaluate([dict(e, query=without_thought(e["query"])) for e in val], query_aware, HEADLINE, progress=False)
    res_small = evaluate(small, scorers, HEADLINE, progress=False)
    res_all = {n: {r: res_val[n][r].merged(res_small[n][r]) for r in HEADLINE} for n in res_val}
    cc_path = args.dataset / "test-cc.jsonl.gz"
    res_cc = None
    cc: list[dict] = []
    if cc_path.exists():
        cc, _ = load_examples(cc_path, limit=None, seed=args.seed)
        cc = [e for e in cc if e["tokens"] >= HEADLINE_TOKENS]
        res_cc = evaluate(cc, scorers, HEADLINE, progress=False)
    elapsed = time.time() - t0

    model_name = model.name if model is not None else None
    print()
    print(f"Validation (sympy + sphinx; {len(val)} outputs of >= {HEADLINE_TOKENS} tokens, {sum(sum(e['labels']) for e in val)} used lines), macro recall %:")
    print(table(res_val, HEADLINE))
    print("\nmicro recall %:")
    print(table(res_val, HEADLINE, micro=True))
    for line in best_baseline_gap(res_val, model_name, HEADLINE):
        print(line)
    print("\nThe same outputs, the query without the agent's earlier messages, macro recall %:")
    print(table(res_short, HEADLINE))
    print("\nThe same outputs, the query without the agent's latest thought (as Claude Code's hook sees it), macro recall %:")
    print(table(res_hook, HEADLINE))
    print(f"\nSmall outputs ({MIN_TOKENS}-{HEADLINE_TOKENS - 1} tokens, {len(small)}), macro recall %:")
    print(table(res_small, HEADLINE))
    print(f"\nAll sizes (>= {MIN_TOKENS} tokens, {len(val) + len(small)}), macro recall %:")
    print(table(res_all, HEADLINE))
    if res_cc is not None:
        print(f"\nClaude Code transcripts ({len(cc)} outputs of >= {HEADLINE_TOKENS} tokens), macro recall %:")
        print(table(res_cc, HEADLINE))
    if model is None:
        print(f"\nMODEL MISSING: {why}")
    print(f"\n{elapsed:.0f}s", file=sys.stderr)

    if args.no_docs:
        return 0
    work = ROOT / "training" / "work" / "eval"
    work.mkdir(parents=True, exist_ok=True)
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python -m training.evaluate" + (f" --limit {args.limit}" if args.limit else "") + (f" --seed {args.seed}" if args.seed else "")
    (work / "results.json").write_text(
        json.dumps(
            {"date": date, "command": cmd, "val": to_json(res_val, ratios), "val_small": to_json(res_small, HEADLINE),
             "val_all_sizes": to_json(res_all, HEADLINE), "val_short_query": to_json(res_short, HEADLINE),
             "val_no_thought": to_json(res_hook, HEADLINE), "test_cc": to_json(res_cc, HEADLINE) if res_cc else None,
             "val_examples": len(val), "model": model_name, "model_missing": why or None},
            indent=1,
        )
    )
    DOCS.mkdir(exist_ok=True)
    plot(res_val, ratios, DOCS / "eval-recall.png", f"Recall of used lines, validation split (sympy + sphinx, {len(val)} tool outputs)")
    write_doc(DOCS / "evaluation.md", res_val, res_cc, ratios, val, val_total, cc, cmd, date, elapsed, model_name, why, args,
              res_small=res_small, res_all=res_all, small=small, res_short=res_short, res_hook=res_hook)
    print(f"wrote docs/evaluation.md, docs/eval-recall.png, {work / 'results.json'}", file=sys.stderr)
    return 0


def write_doc(path, res_val, res_cc, ratios, val, val_total, cc, cmd, date, elapsed, model_name, why, args, *, res_small, res_all, small, res_short, res_hook) -> None:
    n_used = sum(sum(e["labels"]) for e in val)
    n_lines = sum(len(e["lines"]) for e in val)
    by_src: dict[str, int] = {}
    for e in val:
        by_src[e["source"]] = by_src.get(e["source"], 0) + 1
    sample = f"a seeded random sample of {len(val)} of the {val_total}" if len(val) < val_total else f"all {val_total}"
    parts = [
        "# Evaluation: recall of used lines after `compact`",
        "",
        f"Command: `{cmd}` (after `python -m training.build_dataset`). Date: {date}. "
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, 2 CPU cores; run time {elapsed:.0f} s.",
        "",
        f"Data: the validation split (repositories sympy/sympy and sphinx-doc/sphinx, never in training), {sample} "
        f"tool outputs that have at least one used line, at least {MIN_LINES} lines and at least {HEADLINE_TOKENS} tokens ({', '.join(f'{k} {v}' for k, v in sorted(by_src.items()))}); "
        f"{n_lines} lines, {n_used} of them used. Labels: docs/labels.md. Smaller outputs ({MIN_TOKENS}-{HEADLINE_TOKENS - 1} tokens, "
        f"{len(small)} with a used line) are evaluated in the same run and reported separately below: on them the engine's marker "
        "and trailer lines take most of a 0.3 or 0.1 budget, so that even the oracle that knows the labels keeps almost nothing; "
        "where markers would replace every line, the engine returns the output unchanged with a warning (over budget), which "
        "is why every scorer shows the same recall and a kept-token share above the ratio there.",
        "",
        "Metric: for each tool output, scorer and keep ratio r, the real engine runs "
        '`Engine(scorer=S, store=<an originals store in a temporary folder>).compact("\\n".join(lines), ratio=r, query=query)` '
        "(so the last line names a handle and costs budget, as in real use); recall is the fraction of the "
        "used lines whose line number is inside `result.kept_line_ranges` (partly kept long lines do not count). "
        "Macro = mean over tool outputs; micro = over all used lines. The budget includes the marker lines "
        "(`[a-b omitted]`, 6 tokens each) and the last line naming the handle; a marker costs every scorer the same, "
        "so a scorer that keeps scattered lines pays for more of them. The kept-token column is the mean "
        "`tokens_after / tokens_before`, markers included.",
        "",
    ]
    if model_name is None:
        parts += [f"**The deletion model is missing** ({why}): only the baselines are evaluated below.", ""]
    parts += ["## Macro recall of used lines, % (validation)", "", table(res_val, HEADLINE), ""]
    gap = best_baseline_gap(res_val, model_name, HEADLINE)
    if gap:
        parts += ["Model against the best baseline at each ratio (target: ahead at every ratio, by >= 25 points at keep 0.3):", ""]
        parts += [f"- {g}" for g in gap] + [""]
    parts += [
        "## When the caller passes less: the query without the agent's earlier messages",
        "",
        "The queries above are laid out as the PostToolUse hook and `compact_messages` build them "
        "(`compaction.agent_query`: the agent's thought and command, its earlier messages, the task). An agent "
        "calling `compact` itself may pass only what it is doing now. The same outputs with the `Earlier:` part "
        "left out of every query (the query-aware scorers only):",
        "",
        table(res_short, HEADLINE),
        "",
        "And with the agent's latest thought left out (the lines before the `$` command), as Claude Code's "
        "PostToolUse hook usually sees it: the current turn is not yet in the transcript when the hook runs "
        "(docs/hooks.md, \"The query\"):",
        "",
        table(res_hook, HEADLINE),
        "",
        "## Micro recall, % (validation)",
        "",
        table(res_val, HEADLINE, micro=True),
        "",
    ]
    parts += [
        f"## Small outputs ({MIN_TOKENS}-{HEADLINE_TOKENS - 1} tokens, {len(small)}), macro recall %",
        "",
        table(res_small, HEADLINE),
        "",
        f"## All sizes together (>= {MIN_TOKENS} tokens, {len(val) + len(small)} outputs), macro recall %",
        "",
        table(res_all, HEADLINE),
        "",
    ]
    gap_all = best_baseline_gap(res_all, model_name, HEADLINE)
    if gap_all:
        parts += [f"- {g}" for g in gap_all] + [""]
    parts += ["## Recall against keep ratio", "", "![recall of used lines against keep ratio](eval-recall.png)", ""]
    parts += ["Macro recall at every ratio of the plot:", "", table(res_val, ratios), ""]
    if res_cc is not None:
        parts += [
            f"## Claude Code transcripts (another domain: an Elixir/Phoenix app; {len(cc)} tool outputs with a used line and >= {HEADLINE_TOKENS} tokens)",
            "",
            table(res_cc, HEADLINE),
            "",
        ]
    parts += [
        "## Notes",
        "",
        "- `random` is seeded. Its recall is well below the keep ratio: its kept lines are scattered, so it pays for "
        "the most marker lines.",
        "- Labels are derived from what the agent did later (docs/labels.md has the rules and a hand-check of their "
        "precision); recall against them measures how often compaction would have kept what the agent went on to use.",
        "- `oracle (knows labels)` is not a competitor: it ranks the labelled lines first, so it shows the most any "
        "scorer could recall under the same token budget and marker lines.",
        "- BM25 and the model see the query (the agent's preceding thought and command, its earlier messages and the "
        "task); head+tail, tail, error-regex and random do not.",
        "- BM25 (`compaction.baselines.BM25Scorer`) is Okapi BM25 (k1 1.2, b 0.75) over lines, with English stop words "
        "and words under 3 characters dropped, identifiers also split into their parts (`parse_expr`, `getUserName`), "
        "and each query word weighted by 1 + log of its count in the query. Until 2026-11-25 it counted every word, "
        "stop words included, and scored 53.2 / 35.5 / 16.2 here; the stronger form is the fairer competitor.",
        "- The labeller gives words of the agent's command no weight and words of its thought and task half weight "
        "(docs/labels.md): a line is not proven used by repeating what the agent typed. BM25 weighs all query words "
        "fully; the model can learn the discount.",
        "- `error-regex` keeps lines that look like errors first, then the later lines (as `tail`).",
    ]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    tmp.replace(path)


if __name__ == "__main__":
    raise SystemExit(main())
