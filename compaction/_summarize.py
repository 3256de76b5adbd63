"""summarize: a tiered summary of a whole session.

Tiers, newest first:
1. the last turns, verbatim (user and agent text whole, tool output compacted by the
   deletion model), under "Recent turns";
2. the older history, in fixed sections (``SECTIONS``), written by
   * the embedded extractive summarizer (default): every line is a verbatim piece of the
     transcript behind an optional ``[label]``, chosen by the transcript's structure
     (``_session_facts``), the names it covers (paths, identifiers, task ids the session
     keeps using, each counted once) and the deletion model's line score, under a
     token budget; or
   * an ``LLMBackend``, fed the older history already compacted by the deletion model;
     any failure or an answer without the sections falls back to the embedded one.
"""

from __future__ import annotations

import heapq
import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._compact import ProgressFn, is_marker_line
from ._engine import Engine, get_engine
from ._exceptions import AssetError, EmptyInputError, InputError
from ._llm_protocol import LLMBackend
from ._redact import redact_secrets
from ._scoring import LineScorer, ScoringInput
from ._session_facts import (
    FILES,
    NEXT,
    PRIMARY,
    SECTIONS,
    USERS,
    Candidate,
    SessionFacts,
    analyze,
    clip_line,
    request_body,
    typed_requests,
    was_rejected,
)
from ._session_results import SummaryResult
from ._tokenizer import Tokenizer
from .transcripts import Transcript, read_transcript, render_transcript, skipped_warning
from .transcripts._render import tool_input_text

__all__ = ["summarize", "SECTIONS", "RECENT", "Distiller", "DEFAULT_MAX_BUDGET"]

log = logging.getLogger("context_distill")

RECENT = "Recent turns"
#: default budget: 10% of the transcript, at least 300 and at most this many tokens
DEFAULT_MAX_BUDGET = 6000
DEFAULT_MIN_BUDGET = 300
DEFAULT_FRACTION = 0.10
#: share of the budget the verbatim recent turns may take by default
RECENT_SHARE = 0.25
#: per-section ceilings, as shares of what is left after headings and forced lines
SECTION_CAPS = {
    PRIMARY: 0.05,
    FILES: 0.35,
    "Errors and fixes": 0.25,
    "Decisions and constraints": 0.15,
    "Pending tasks": 0.12,
    "Current work": 0.15,
    NEXT: 0.08,
}
LLM_INPUT_TOKENS = 24_000

_HEADING = re.compile(r"^\s*#{1,4}\s*(?:\d+[.)]\s*)?(?P<h>[^#\n]+?)\s*:?\s*$")


# -- shared machinery (handoff uses it too) -------------------------------------------------
@dataclass
class Distiller:
    """The heavy things a distillation needs: tokenizer and line scorer (from an Engine)."""

    engine: Engine
    warnings: list[str]

    @classmethod
    def make(cls, engine: Engine | None) -> "Distiller":
        return cls(engine=engine or get_engine(), warnings=[])

    @property
    def tok(self) -> Tokenizer:
        return self.engine.tokenizer

    def scorer(self) -> LineScorer:
        try:
            return self.engine.scorer
        except (AssetError, ImportError) as exc:
            # the deletion model is missing or corrupt: rank with BM25 for this call only
            # (the shared engine is left alone, so `compact` still reports the problem)
            from .baselines import BM25Scorer

            msg = f"deletion model unavailable ({exc}); lines ranked by BM25 instead"
            if msg not in self.warnings:
                self.warnings.append(msg)
                log.warning(msg)
            e = self.engine
            self.engine = Engine(scorer=BM25Scorer(), tokenizer=e.tokenizer, settings=e.settings, store=e.store or False)
            return self.engine.scorer

    def scorer_name(self) -> str:
        return str(getattr(self.scorer(), "name", type(self.scorer()).__name__))

    def count(self, text: str) -> int:
        return self.tok.count(text)

    def fit(self, text: str, tokens: int, query: str) -> list[str]:
        """``text`` as lines within about ``tokens``: whole if it fits, else compacted by
        the deletion model (multi-line) or cut at a word (one line). Lines stay verbatim;
        ``OMITTED`` lines (each for a run of omitted lines) and ``ELLIPSIS`` are the only
        additions. Nothing is stored: a summary has no handle to expand omitted lines by."""
        text = text.strip("\n")
        if self.count(text) <= tokens:
            return [ln for ln in text.splitlines() if ln.strip()] or [text]
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) > 1:
            scorer = self.scorer()
            try:
                quiet = Engine(scorer=scorer, tokenizer=self.tok, settings=self.engine.settings, store=False)
                res = quiet.compact(text, target_tokens=max(8, tokens), query=query)
                out = [OMITTED if is_marker_line(ln) else ln for ln in res.text.splitlines() if ln.strip() and not _is_trailer(ln)]
                out = [self.clip(ln, max(20, tokens)) for ln in out]
                if any(ln != OMITTED for ln in out):
                    return out
            except InputError:
                pass
        return [self.clip(lines[0] if lines else text, max(10, tokens))]

    def clip(self, line: str, tokens: int) -> str:
        """``line`` cut at a word to about ``tokens`` tokens (``clip_line`` by characters,
        shortened until the tokenizer agrees: CJK text has about one character per token)."""
        limit = max(40, int(tokens * 3.5))
        out = clip_line(line, limit)
        while limit > 8 and self.count(out) > tokens + 2:
            limit = int(limit * 0.75)
            out = clip_line(line, limit)
        return out

    def rank(self, texts: list[str], query: str) -> np.ndarray:
        """The deletion model's view of each line, as a percentile rank in [0, 1]."""
        if not texts:
            return np.zeros(0)
        scorer = self.scorer()
        enc = self.tok.encode
        inp = ScoringInput(
            units=texts,
            unit_tokens=[enc(t) for t in texts],
            unit_lines=list(range(len(texts))),
            query=query,
            query_tokens=enc(query) if query else [],
        )
        try:
            s = np.asarray(scorer.score(inp), dtype=np.float64)
        except Exception as exc:  # a broken scorer must not sink the summary
            self.warnings.append(f"line scorer failed ({type(exc).__name__}: {exc}); lines ranked by structure only")
            return np.zeros(len(texts))
        if s.shape != (len(texts),):
            return np.zeros(len(texts))
        order = np.argsort(np.argsort(s, kind="stable"), kind="stable")
        return order / max(1, len(texts) - 1)


#: what a run of lines omitted from a summarized text becomes (its ``[a-b omitted]`` marker
#: would promise an expand that a summary cannot give)
OMITTED = "[…]"


def _is_trailer(line: str) -> bool:
    return is_marker_line(line) and "context-distill:" in line


def select_lines(
    d: Distiller,
    facts: SessionFacts,
    *,
    budget: int,
    sections: tuple[str, ...],
    caps: dict[str, float],
    query: str,
    covered: set[str] | None = None,
    max_candidates: int = 4000,
    recency: float = 0.0,
    section_map: dict[str, str] | None = None,
    shown: str = "",
) -> dict[str, list[Candidate]]:
    """Greedy, budgeted choice of non-forced candidate lines by new names covered per token
    (lazy greedy: gains only shrink as names get covered), plus structure and model rank.
    Each section first gets its share (``caps``) of the budget (its first line may pass
    it); what the sections leave unused is then shared out in a second pass, to any section."""
    w = facts.weights
    covered = set() if covered is None else covered
    pool = [
        c
        for c in facts.candidates
        if c.section in sections and not c.forced and not (c.label == "user" and c.text.strip() in shown)
    ]
    # pre-filter the biggest sessions: keep the most promising lines of each section
    by_sec: dict[str, list[Candidate]] = {}
    for c in pool:
        by_sec.setdefault(c.section, []).append(c)
    pool = []
    for cs in by_sec.values():
        if len(cs) > max_candidates:
            cs = sorted(cs, key=lambda c: -(c.prior + sum(w.get(n, 0) for n in c.names) + 1e-6 * c.event))[:max_candidates]
        pool.extend(cs)
    if not pool:
        return {}
    todo = [c for c in pool if c.rank is None]
    if todo:  # rank and size each candidate once, however often the budget is retried
        for c, r in zip(todo, d.rank([c.text for c in todo], query)):
            c.rank = float(r)
            c.tokens = d.count(c.render()) + 1
    ranks = [c.rank or 0.0 for c in pool]
    smap = section_map or {}
    out_secs = {smap.get(s, s) for s in sections}
    chosen: dict[str, list[Candidate]] = {}
    seen_text: set[str] = set()

    n_events = max(1, facts.n_events)

    def utility(i: int) -> float:
        c = pool[i]
        gain = sum(w.get(n, 0.0) for n in c.names if n not in covered)
        return c.prior + 0.6 * float(ranks[i]) + gain + 0.05 + recency * c.event / n_events

    def fill(left: dict[str, int], total_left: int) -> int:
        """Take lines by value per token while they fit ``left`` (per section) and ``total_left``."""
        heap = [(-utility(i) / (pool[i].tokens + 3), i) for i in range(len(pool)) if id(pool[i]) not in taken]
        heapq.heapify(heap)
        while heap and total_left > 0:
            neg, i = heapq.heappop(heap)
            c = pool[i]
            key = c.text.strip()
            sec = smap.get(c.section, c.section)
            over_cap = c.tokens > left[sec] and sec in chosen  # a section's first line may pass its cap
            if key in seen_text or over_cap or c.tokens > total_left:
                continue
            u = utility(i)
            dens = u / (c.tokens + 3)
            if heap and dens < -heap[0][0] - 1e-12:
                heapq.heappush(heap, (-dens, i))
                continue
            if u < 0.5:
                continue
            seen_text.add(key)
            taken.add(id(c))
            covered.update(c.names)
            chosen.setdefault(sec, []).append(c)
            left[sec] -= c.tokens
            total_left -= c.tokens
        return total_left

    taken: set[int] = set()
    # first each section within its cap, then what the caps left unused goes to any section
    total_left = fill({s: int(budget * caps.get(s, 0.1)) for s in out_secs}, budget)
    if total_left > 0:
        fill({s: total_left for s in out_secs}, total_left)
    for cs in chosen.values():
        cs.sort(key=lambda c: c.position)
    return chosen


# -- recent turns ---------------------------------------------------------------------------
def _steps(events: list[Any]) -> list[int]:
    """Start index of each turn: a typed user message, or a new response of the agent."""
    starts: list[int] = []
    prev_id: object = object()
    for i, e in enumerate(events):
        if e.kind == "user" or e.kind == "compact_summary":
            starts.append(i)
            prev_id = object()
        elif e.kind in ("assistant", "thinking", "tool_call"):
            mid = e.message_id or f"record-{e.record}"
            if mid != prev_id:
                starts.append(i)
            prev_id = mid
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return starts


def _render_recent_event(d: Distiller, e: Any, query: str, cap: int) -> list[str]:
    k = e.kind
    if k in ("user", "assistant") and not e.text.strip():  # e.g. an assistant message of blank lines
        return []
    if k == "user":
        lines = d.fit(e.text, cap, query)
        return [f"- [user] {lines[0]}"] + ["    " + ln for ln in lines[1:]]
    if k == "assistant":
        lines = d.fit(e.text, cap, query)
        return [f"- [assistant] {lines[0]}"] + ["    " + ln for ln in lines[1:]]
    if k == "tool_call":
        first = tool_input_text(e.name, e.input).strip().splitlines()
        return [f"- [{e.name}] {clip_line(first[0] if first else '', 200)}"]
    if k == "tool_result":
        if not e.text.strip():
            return [f"- [empty result {e.tool_name or 'tool'}]"]
        lines = d.fit(e.text, max(24, cap // 3), query)
        tag = ("rejected" if was_rejected(e.text) else "error") if e.is_error else "result"
        return [f"- [{tag} {e.tool_name or 'tool'}]"] + ["    " + ln for ln in lines]
    if k == "compact_summary":
        lines = d.fit(e.text, max(24, cap // 3), query)
        return ["- [earlier summary]"] + ["    " + ln for ln in lines]
    return []


def recent_tier(
    d: Distiller, t: Transcript, *, budget: int, turns: int | None, query: str
) -> tuple[int, list[str], int]:
    """(first event of the recent tier, its lines, number of turns) within ``budget`` tokens."""
    events = t.events
    if not events or turns == 0 or budget <= 0:
        return len(events), [], 0
    starts = _steps(events)
    bounds = list(zip(starts, starts[1:] + [len(events)]))
    cap = max(60, budget // 2)
    chosen: list[list[str]] = []
    used = 0
    first = len(events)
    for a, b in reversed(bounds):
        if turns is not None and len(chosen) >= turns:
            break
        lines = [ln for e in events[a:b] for ln in _render_recent_event(d, e, query, cap)]
        if not lines:
            first = a
            continue
        cost = d.count("\n".join(lines)) + 1
        if chosen and used + cost > budget:
            break
        if not chosen and cost > budget:  # the last turn alone is too big: squeeze it
            lines = [ln for e in events[a:b] for ln in _render_recent_event(d, e, query, max(40, budget // 4))]
            cost = d.count("\n".join(lines)) + 1
            if cost > budget:
                lines = d.fit("\n".join(lines), budget, query)
                cost = d.count("\n".join(lines)) + 1
        chosen.append(lines)
        used += cost
        first = a
    out = [ln for block in reversed(chosen) for ln in block]
    return first, out, len(chosen)


# -- embedded sections ----------------------------------------------------------------------
def _forced_lines(d: Distiller, facts: SessionFacts, budget: int, query: str) -> dict[str, list[str]]:
    """The user's messages (all of them), the primary request and the unanswered latest
    request (the next step), fitted to a share of the budget."""
    out: dict[str, list[str]] = {PRIMARY: [], USERS: [], NEXT: []}
    for c in facts.candidates:
        if c.section == NEXT and c.forced:
            lines = d.fit(c.text, max(40, min(300, int(budget * 0.1))), query)
            out[NEXT] = [f"- [{c.label}] {lines[0]}"] + ["  " + ln for ln in lines[1:]]
    reqs = facts.requests
    if reqs:
        first = reqs[0]
        body = request_body(first) or first.text
        lines = d.fit(body, max(40, min(300, int(budget * 0.08))), query)
        lab = f"[{first.label}] " if first.label else ""
        out[PRIMARY] = [f"- {lab}{lines[0]}"] + ["  " + ln for ln in lines[1:]]
    share = max(min(30 * len(reqs), int(budget * 0.6)), int(budget * 0.3))
    per = max(12, share // max(1, len(reqs)))
    sizes = [d.count(request_body(r) or r.text) for r in reqs]
    spare = sum(max(0, per - s) for s in sizes)
    over = sum(1 for s in sizes if s > per)
    for r, s in zip(reqs, sizes):
        body = request_body(r) or r.text
        cap = per + (spare // over if over and s > per else 0)
        lines = d.fit(body, cap, query) if body else [""]
        lab = f"[{r.label}] " if r.label else ""
        out[USERS].append(f"- {lab}{lines[0]}".rstrip())
        out[USERS].extend("  " + ln for ln in lines[1:])
    return out


def _file_lines(facts: SessionFacts, chosen: list[Candidate], max_files: int) -> list[str]:
    code: dict[str, list[Candidate]] = {}
    for c in chosen:
        code.setdefault(c.group or "", []).append(c)
    out: list[str] = []
    shown = [f for f in facts.files if f.edits or f.failures][:max_files]
    for f in shown:
        out.append(f"- [{', '.join(_reason_label(f))}] {f.path}")
        out.extend(c.render() for c in code.get(f.path, []))
    return out


def _reason_label(f: Any) -> list[str]:
    lab = []
    for r in f.reasons:
        if r == "edited" and f.edits > 1:
            lab.append(f"edited x{f.edits}")
        else:
            lab.append(r)
    return lab


def embedded_sections(
    d: Distiller, facts: SessionFacts, *, budget: int, query: str
) -> dict[str, list[str]]:
    forced = _forced_lines(d, facts, budget, query)
    headings = sum(d.count(f"## {s}") + 2 for s in SECTIONS) + 8
    # the edited / failing files are listed by name, up to 25 and a quarter of the budget
    file_heads = []
    head_cost = 0
    for f in [f for f in facts.files if f.edits or f.failures][:25]:
        cost = d.count(f"- [{', '.join(_reason_label(f))}] {f.path}") + 1
        if head_cost + cost > budget // 4:
            break
        head_cost += cost
        file_heads.append(f)
    max_files = len(file_heads)
    forced_cost = sum(d.count("\n".join(v)) + 1 for v in forced.values() if v)
    free = budget - headings - forced_cost - head_cost
    chosen: dict[str, list[Candidate]] = {}
    if free > 0:
        covered: set[str] = set()
        for f in file_heads:
            covered.add(f.path)
        chosen = select_lines(
            d,
            facts,
            budget=free,
            sections=tuple(s for s in SECTIONS if s not in (USERS,)),
            caps=SECTION_CAPS,
            query=query,
            covered=covered,
            shown="\n".join(forced[USERS]),
        )
    out: dict[str, list[str]] = {}
    for s in SECTIONS:
        if s == USERS:
            out[s] = forced[USERS]
        elif s == PRIMARY:
            out[s] = forced[PRIMARY] + [c.render() for c in chosen.get(s, [])]
        elif s == FILES:
            out[s] = _file_lines(facts, chosen.get(FILES, []), max_files)
        elif s == NEXT:
            out[s] = forced[NEXT] + [c.render() for c in chosen.get(s, [])]
        else:
            out[s] = [c.render() for c in chosen.get(s, [])]
    return out


def assemble(title: str, sections: dict[str, str]) -> str:
    parts = [f"# {title}"]
    for name, body in sections.items():
        parts.append(f"## {name}\n{body.strip() if body.strip() else '(none found)'}")
    return "\n\n".join(parts) + "\n"


# -- LLM backend ----------------------------------------------------------------------------
_SYSTEM = (
    "You summarize a coding agent's session for the agent that will continue it. Use only facts "
    "from the transcript; never invent paths, names, errors or results. Quote file paths, "
    "identifiers, task ids, commands and error messages exactly."
)


def _llm_prompt(d: Distiller, t: Transcript, history_end: int, facts: SessionFacts, query: str) -> str:
    older = render_transcript(t.events[:history_end]) or render_transcript(t.events)
    if d.count(older) > LLM_INPUT_TOKENS:
        d.scorer()
        older = d.engine.compact(older, target_tokens=LLM_INPUT_TOKENS, query=query).text
    users = "\n".join(f"- {clip_line(' '.join(r.text.split()), 2000)}" for r in facts.requests[-200:]) or "(none)"
    heads = "\n".join(f"## {s}" for s in SECTIONS)
    return (
        "Transcript of the session's older history (tool output compacted; '[a-b omitted]' "
        f"marks cuts):\n<transcript>\n{older}\n</transcript>\n\n"
        f"Every message the user typed, verbatim:\n{users}\n\n"
        "Write the summary in markdown with exactly these headings, in this order, and nothing before "
        f"the first:\n{heads}\n\n"
        "Under 'All user messages' list every user message above, verbatim. Under 'Key files and code' "
        "name each file changed and what changed. Under 'Errors and fixes' quote each error and say "
        "how it was fixed. Keep it short."
    )


def parse_sections(text: str) -> dict[str, str] | None:
    """The sections of an LLM's answer by our headings, or None if any is missing."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    wanted = {s.lower(): s for s in SECTIONS}
    for line in text.splitlines():
        m = _HEADING.match(line)
        if m and m.group("h").strip("*_ ").lower() in wanted:
            current = wanted[m.group("h").strip("*_ ").lower()]
            found.setdefault(current, [])
            continue
        if current is not None:
            found[current].append(line)
    if any(s not in found for s in SECTIONS):
        return None
    return {s: "\n".join(found[s]).strip() for s in SECTIONS}


def _normal(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().lower()


def llm_sections(
    d: Distiller,
    backend: LLMBackend,
    t: Transcript,
    history_end: int,
    facts: SessionFacts,
    *,
    budget: int,
    query: str,
    embedded_users: list[str],
) -> dict[str, str]:
    """Ask ``backend`` for the sections; raise on any failure or an answer without them."""
    prompt = redact_secrets(_llm_prompt(d, t, history_end, facts, query))  # it leaves this machine
    answer = backend.complete(system=_SYSTEM, prompt=prompt, max_tokens=max(256, budget))
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError("empty answer")
    secs = parse_sections(answer)
    if secs is None:
        missing = [s for s in SECTIONS if s.lower() not in answer.lower()]
        raise ValueError(f"answer lacks the sections {missing}")
    users = _normal(secs[USERS])
    if any(_normal(request_body(r) or r.text)[:60] not in users for r in facts.requests):
        d.warnings.append(
            f"LLM backend {backend.name} left out user messages; 'All user messages' is the embedded, verbatim list"
        )
        secs[USERS] = "\n".join(embedded_users)
    return secs


# -- the entry point ------------------------------------------------------------------------
def default_budget(transcript_tokens: int) -> int:
    return int(min(DEFAULT_MAX_BUDGET, max(DEFAULT_MIN_BUDGET, transcript_tokens * DEFAULT_FRACTION)))


def session_query(facts: SessionFacts) -> str:
    return requests_query(facts.requests)


def requests_query(reqs: list[Any]) -> str:
    """What the session is about, as a scoring query: its first and latest requests."""
    if not reqs:
        return ""
    q = request_body(reqs[0])
    if len(reqs) > 1:
        q += "\n" + request_body(reqs[-1])
    return q[:2000]


def summarize(
    source: Any,
    *,
    budget_tokens: int | None = None,
    backend: LLMBackend | None = None,
    recent_turns: int | None = None,
    engine: Engine | None = None,
    fmt: str = "auto",
    on_progress: ProgressFn | None = None,
) -> SummaryResult:
    """Summarize a session: the fixed sections over the older history, then the last turns
    verbatim (tool output compacted). ``source`` is anything ``read_transcript`` takes.

    ``budget_tokens``: size of the whole summary (default: 10% of the transcript, between
    300 and 6,000). ``recent_turns``: how many of the last turns to show verbatim (default:
    as many as fit in a quarter of the budget; 0: none). ``backend``: an LLM to write the
    sections (falls back to the embedded summarizer on any failure). ``engine``: the
    tokenizer and deletion model to use (default: the shared one). ``on_progress(fraction,
    message)`` is told when the embedded summary is done and before the LLM is asked, the
    one step that can take long.
    """
    progress = on_progress or (lambda _f, _m: None)
    t = read_transcript(source, fmt=fmt)
    if not t.events:
        raise EmptyInputError("the transcript has no messages: there is nothing to summarize")
    if budget_tokens is not None and (
        isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 100
    ):
        raise InputError(f"budget_tokens must be a whole number >= 100, got {budget_tokens!r}")
    if recent_turns is not None and (isinstance(recent_turns, bool) or not isinstance(recent_turns, int) or recent_turns < 0):
        raise InputError(f"recent_turns must be a whole number >= 0, got {recent_turns!r}")
    d = Distiller.make(engine)
    if skipped := skipped_warning(t):
        d.warnings.append(skipped)
    transcript_tokens = d.count(render_transcript(t.events))
    budget = budget_tokens or default_budget(transcript_tokens)
    query = requests_query(typed_requests(t))

    history_end, recent_lines, n_recent = recent_tier(
        d, t, budget=int(budget * RECENT_SHARE) if recent_turns is None else int(budget * 0.5), turns=recent_turns, query=query
    )
    recent_cost = d.count("\n".join(recent_lines)) + 4 if recent_lines else 0
    facts = analyze(t, history_end=history_end)

    sec_budget = max(100, budget - recent_cost)
    lines = embedded_sections(d, facts, budget=sec_budget, query=query)
    sections = {s: "\n".join(v) for s, v in lines.items()}
    text = _finish(d, sections, recent_lines)
    # the estimate of line costs can be off by a little: shrink until it fits
    shrink = 0.92
    tries = 0
    while d.count(text) > budget and sec_budget > 120 and tries < 6:
        tries += 1
        sec_budget = int(sec_budget * shrink)
        lines = embedded_sections(d, facts, budget=sec_budget, query=query)
        sections = {s: "\n".join(v) for s, v in lines.items()}
        text = _finish(d, sections, recent_lines)
    if d.count(text) > budget:
        d.warnings.append(
            f"the summary is {d.count(text)} tokens, over the budget of {budget}: every user message "
            f"({len(facts.requests)}, each cut short) and the section headings are always kept"
        )
    used_backend = "embedded"
    if backend is not None:
        progress(0.5, f"writing the sections with the LLM backend {getattr(backend, 'name', 'llm')}")
        warned = len(d.warnings)
        try:
            secs = llm_sections(
                d, backend, t, history_end, facts, budget=sec_budget, query=query, embedded_users=lines[USERS]
            )
            llm_text = _finish(d, secs, recent_lines)
            if d.count(llm_text) > budget * 1.25:
                raise ValueError(f"its summary is {d.count(llm_text)} tokens, far over the budget of {budget}")
            sections, text = secs, llm_text
            used_backend = str(getattr(backend, "name", "llm"))
        except Exception as exc:  # any failure of the LLM falls back, never errors
            name = getattr(backend, "name", type(backend).__name__)
            why = redact_secrets(f"{type(exc).__name__}: {str(exc)[:200]}")
            msg = f"LLM backend {name} failed ({why}); used the embedded summarizer"
            log.warning(msg)
            del d.warnings[warned:]  # what was said about the rejected answer no longer holds
            d.warnings.append(msg)
    sections = {k: redact_secrets(v) for k, v in sections.items()}
    if recent_lines:
        sections[RECENT] = redact_secrets("\n".join(recent_lines))
    text = redact_secrets(text)
    progress(1.0, f"summary written ({used_backend})")
    return SummaryResult(
        text=text,
        sections=sections,
        backend=used_backend,
        tokens=d.count(text),
        transcript_tokens=transcript_tokens,
        budget_tokens=budget,
        recent_turns=n_recent,
        scorer=d.scorer_name(),
        session_id=t.session_id,
        format=t.format,
        warnings=d.warnings,
    )


def _finish(d: Distiller, sections: dict[str, str], recent: list[str]) -> str:
    text = assemble("Session summary", sections)
    if recent:
        text += f"\n## {RECENT}\n" + "\n".join(recent) + "\n"
    return text

