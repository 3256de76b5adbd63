#!/usr/bin/env python3
"""Measure summarize / make_handoff on real Claude Code sessions against issue 4's targets.

    python scripts/measure_sessions.py                 # all measurements, default engine
    python scripts/measure_sessions.py --scorer bm25   # rank lines with BM25 instead of the model
    python scripts/measure_sessions.py --skip-speed    # without the 1M-token timing

Prints one block per measurement:
1. per session: edited-file recall of the handoff's file list (and its length against
   every path the session touched), goal and latest request carried by the handoff, every
   user message under "All user messages", summary size / transcript size, handoff chars;
2. against Claude Code's own compaction: the main session's transcript before its
   compact_boundary, summarized by the embedded summarizer, compared with the
   isCompactSummary record that Claude Code wrote: recall of the names (file names, code
   identifiers, task ids; see compaction/_names.py) Claude Code's summary carries that
   occur in the transcript, size ratio, invented lines; and the transcript's tail cut to
   the same size as a baseline;
3. speed: summary and handoff of a ~1M-token transcript (the real sessions repeated).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import compaction  # noqa: E402
from compaction import Engine, make_handoff, read_transcript, summarize  # noqa: E402
from compaction import _names  # noqa: E402
from compaction._names import extract_names  # noqa: E402
from compaction._session_facts import ELLIPSIS, analyze, request_body  # noqa: E402
from compaction.transcripts import EDIT_TOOLS, render_transcript  # noqa: E402

DATA = Path(os.environ.get("CONTEXT_DISTILL_SHARED_DATA", ROOT.parent / "shared" / "data")) / "transcripts" / "claude-code"
MAIN = "ae4a77f8-aedd-4bc1-888f-c94edc91af04.jsonl"
SESSIONS = [MAIN, "subagent.jsonl", "tool_heavy.jsonl", "short.jsonl", "ae4a77f8-aedd-4bc1-888f-c94edc91af04/subagents/agent-aac57f5.jsonl"]


def norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def rel(path: str, cwd: str | None) -> str:
    if cwd and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1 :]
    return path


def edited_files(t) -> set[str]:
    out = set()
    for e in t.events:
        if e.kind == "tool_call" and e.name in EDIT_TOOLS:
            fp = e.input.get("file_path") or e.input.get("path") or e.input.get("notebook_path")
            if isinstance(fp, str):
                out.add(rel(fp, t.cwd))
    return out


def touched_paths(t) -> set[str]:
    """Every path the session touched or named: tool inputs' paths plus path-like names in text."""
    out = set()
    for e in t.events:
        if e.kind == "tool_call":
            for k in ("file_path", "path", "notebook_path"):
                if isinstance(e.input.get(k), str):
                    out.add(rel(e.input[k], t.cwd))
        text = getattr(e, "text", "") or ""
        for n in extract_names(text[:100_000]):
            if "/" in n and "." in n.rsplit("/", 1)[-1]:
                out.add(rel(n, t.cwd))
    return out


def section(text: str, heading: str) -> str:
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return m.group(1) if m else ""


_INLINE = re.compile(r"\[\.\.\. \d+ chars omitted \.\.\.\]")
_LABEL = re.compile(r"^\s*(?:- )?(?:\[[^\]\n]*\] ?)?")


def invented_lines(summary: str, corpus: str) -> list[str]:
    """Lines of ``summary`` whose text, after the heading / bullet / [label] / ellipsis /
    markers that the summarizer adds, is not a verbatim substring of ``corpus``."""
    bad = []
    for line in summary.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or s == "(none found)" or compaction.is_marker_line(s):
            continue
        body = _LABEL.sub("", line, count=1)
        if body.endswith(ELLIPSIS):
            body = body[: -len(ELLIPSIS)]
        # a very long line may keep only some segments, with inline markers between them
        pieces = [x.strip() for x in _INLINE.split(body) if x.strip()]
        if any(x not in corpus for x in pieces):
            bad.append(line)
    return bad


def corpus_of(t) -> str:
    parts = [render_transcript(t.events)]
    for e in t.events:
        if e.kind == "tool_call":
            parts.append(json.dumps(e.input, ensure_ascii=False))
            for v in e.input.values():
                if isinstance(v, str):
                    parts.append(v)
    return "\n".join(parts)


def tail_cut(text: str, tokens: int) -> str:
    tok = compaction.get_tokenizer()
    ids = tok.encode(text)
    return tok.decode(ids[-tokens:]) if len(ids) > tokens else text


def name_recall(names: set[str], text: str) -> float:
    return sum(1 for n in names if n in text) / len(names) if names else float("nan")


def per_session(engine: Engine) -> None:
    print("== 1. real Claude Code sessions (summary at its default budget; handoff at 2,000 tokens)")
    hdr = f"{'session':<28} {'edited':>6} {'in list':>7} {'recall':>6} {'list':>4} {'touched':>7} {'goal':>4} {'latest':>6} {'users':>7} {'sum tok':>7} {'trans tok':>9} {'ratio':>6} {'hand chars':>10}"
    print(hdr)
    for name in SESSIONS:
        path = DATA / name
        if not path.is_file():
            print(f"{name:<28} (missing)")
            continue
        t = read_transcript(path)
        s = summarize(t, engine=engine)
        h = make_handoff(t, engine=engine)
        edited = edited_files(t)
        listed = {f.path for f in h.files}
        hit = len(edited & listed)
        facts = analyze(t)
        reqs = [request_body(r) or r.text for r in facts.requests]
        users_sec = norm(section(s.text, "All user messages"))
        users_ok = sum(1 for r in reqs if norm(r)[:60] in users_sec)
        goal_ok = norm(reqs[0])[:60] in norm(h.text) if reqs else True
        latest_ok = norm(reqs[-1])[:60] in norm(h.text) if reqs else True
        ratio = s.tokens / s.transcript_tokens
        short = name.split("/")[-1][:28]
        recall = f"{hit / len(edited):.0%}" if edited else "n/a"
        print(
            f"{short:<28} {len(edited):>6} {hit:>7} {recall:>6} {len(listed):>4} {len(touched_paths(t)):>7} "
            f"{'yes' if goal_ok else 'NO':>4} {'yes' if latest_ok else 'NO':>6} {users_ok:>3}/{len(reqs):<3} "
            f"{s.tokens:>7} {s.transcript_tokens:>9} {ratio:>6.1%} {len(h.text):>10}"
        )
    print()


def versus_claude_code(engine: Engine) -> None:
    print("== 2. against Claude Code's own compaction (main session, transcript before its compact_boundary)")
    full = read_transcript(DATA / MAIN)
    b = full.boundaries[-1]
    cc = next(e for e in full.events[b + 1 :] if e.kind == "compact_summary").text
    before = full.before_boundary(-1)
    corpus = corpus_of(before)
    tok = compaction.get_tokenizer()
    cc_tokens = tok.count(cc)
    cc_summary_part = cc[cc.find("Summary:") :] if "Summary:" in cc else cc
    names_cc = extract_names(cc)
    names = {n for n in names_cc if n in corpus}
    print(f"Claude Code's summary: {cc_tokens} tokens ({tok.count(cc_summary_part)} in its 'Summary:' part); "
          f"{len(names_cc)} names, {len(names)} of them occur in the transcript before the boundary")
    transcript_text = render_transcript(before.events)
    print(f"transcript before the boundary: {tok.count(transcript_text)} tokens, {len(before.events)} events")
    print(f"{'summary':<44} {'tokens':>6} {'x CC':>5} {'names':>9} {'recall':>6} {'invented lines':>14}")
    rows = []
    for label, kw in (
        ("embedded, default budget", {}),
        ("embedded, budget = 1.0 x CC", {"budget_tokens": cc_tokens}),
        ("embedded, budget = 1.5 x CC", {"budget_tokens": int(cc_tokens * 1.5)}),
        ("embedded, default budget, no recent turns", {"recent_turns": 0}),
    ):
        s = summarize(before, engine=engine, **kw)
        bad = invented_lines(s.text, corpus)
        hit = sum(1 for n in names if n in s.text)
        rows.append((label, s))
        print(f"{label:<44} {s.tokens:>6} {s.tokens / cc_tokens:>5.2f} {hit:>4}/{len(names):<4} {hit / len(names):>6.1%} {len(bad):>14}")
        for line in bad[:5]:
            print(f"    invented? {line[:160]!r}")
    default = rows[0][1]
    for label, size in (("transcript tail, same size as ours", default.tokens), ("transcript tail, same size as CC", cc_tokens)):
        tail = tail_cut(transcript_text, size)
        hit = sum(1 for n in names if n in tail)
        print(f"{label:<44} {size:>6} {size / cc_tokens:>5.2f} {hit:>4}/{len(names):<4} {hit / len(names):>6.1%} {'-':>14}")
    # the same, over the session file as it is on disk (JSON records with their metadata)
    raw_lines = (DATA / MAIN).read_text(encoding="utf-8").splitlines()
    raw_before = "\n".join(raw_lines[: before.events[-1].record])
    for label, size in (("raw JSONL tail, same size as ours", default.tokens), ("raw JSONL tail, same size as CC", cc_tokens)):
        tail = tail_cut(raw_before, size)
        hit = sum(1 for n in names if n in tail)
        print(f"{label:<44} {size:>6} {size / cc_tokens:>5.2f} {hit:>4}/{len(names):<4} {hit / len(names):>6.1%} {'-':>14}")
    missed = sorted(n for n in names if n not in default.text)
    print(f"names of Claude Code's summary missing from ours (default budget): {missed}")
    print()


def speed(engine: Engine, target_tokens: int = 1_000_000) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"== 3. speed on a ~{target_tokens:,}-token transcript (real sessions repeated), "
          f"{os.cpu_count()} CPUs visible, load average {load:.1f} at the start")
    tok = compaction.get_tokenizer()
    lines: list[bytes] = []
    for name in SESSIONS[:4]:
        lines.extend(x for x in (DATA / name).read_bytes().split(b"\n") if x.strip())
    one = read_transcript(b"\n".join(lines))
    per_copy = tok.count(render_transcript(one.events))
    copies = max(1, -(-target_tokens // per_copy))
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.jsonl"
        big.write_bytes(b"\n".join(lines * copies) + b"\n")
        t0 = time.perf_counter()
        t = read_transcript(big)
        t_read = time.perf_counter() - t0
        n_tokens = tok.count(render_transcript(t.events))
        timings = {}
        for cache in (True, False):
            # a cold start: no help from the sessions measured above; without the cache every
            # token is classified afresh, as if no text repeated (the copies do repeat)
            _names.CACHE_MAX = 500_000 if cache else 0
            _names._CACHE.clear()
            t0 = time.perf_counter()
            s = summarize(big, engine=engine)
            t_sum = time.perf_counter() - t0
            _names._CACHE.clear()
            t0 = time.perf_counter()
            h = make_handoff(big, engine=engine)
            t_hand = time.perf_counter() - t0
            timings[cache] = (t_sum, t_hand)
        _names.CACHE_MAX = 500_000
    print(f"transcript: {len(lines) * copies:,} records, {n_tokens:,} tokens "
          f"({copies} copies of {per_copy:,}); read alone {t_read:.2f} s")
    for cache, (t_sum, t_hand) in timings.items():
        how = "name cache on (default)" if cache else "name cache off (no repeated tokens)"
        print(f"{how:<36} summarize: {t_sum:.2f} s  make_handoff: {t_hand:.2f} s  (read included)")
    print(f"summary {s.tokens} tokens; handoff {h.tokens} tokens, {len(h.text)} chars")
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scorer", choices=("default", "bm25"), default="default",
                    help="line ranker: the deletion model (default; BM25 if it is not installed) or BM25")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"no data at {DATA}; set CONTEXT_DISTILL_SHARED_DATA", file=sys.stderr)
        return 2
    if args.scorer == "bm25":
        from compaction.baselines import BM25Scorer

        engine = Engine(scorer=BM25Scorer(), store=False)
    else:
        engine = Engine(store=False)
    t0 = time.perf_counter()
    try:
        scorer_name = engine.scorer.name
    except compaction.AssetError as exc:
        from compaction.baselines import BM25Scorer

        print(f"deletion model unavailable ({exc}); using BM25", file=sys.stderr)
        engine = Engine(scorer=BM25Scorer(), store=False)
        scorer_name = engine.scorer.name
    print(f"line scorer: {scorer_name} (loaded in {time.perf_counter() - t0:.2f} s)\n")
    per_session(engine)
    versus_claude_code(engine)
    if not args.skip_speed:
        speed(engine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
