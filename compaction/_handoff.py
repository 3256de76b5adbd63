"""make_handoff: a prompt that starts a fresh agent with exactly what it needs.

Built from the same structural reading of the session as the extractive summary
(``_session_facts``): the goal (the caller's, else the session's primary request), the
latest request, a short ranked list of relevant files with why (edited, written, failing,
read, mentioned), decisions and constraints, the current state with verbatim errors and
test results, and the next steps. Every line after a ``[label]`` is verbatim from the
transcript. Default budget 2,000 tokens; the text is always under 10,000 characters
(Claude Code's limit for injected context).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ._engine import Engine
from ._exceptions import EmptyInputError, InputError
from ._redact import redact_secrets
from ._session_facts import CURRENT, DECISIONS, ERRORS, NEXT, PENDING, FileFact, analyze, request_body
from ._session_results import HandoffFile, HandoffResult
from ._summarize import Distiller, select_lines, session_query
from .transcripts import read_transcript, skipped_warning

__all__ = ["make_handoff", "MAX_HANDOFF_CHARS", "DEFAULT_HANDOFF_TOKENS"]

MAX_HANDOFF_CHARS = 10_000
_SAFE_CHARS = 9_800
#: a low estimate of characters per token (code and English run 3.5 to 4.5)
_CHARS_PER_TOKEN = 4
DEFAULT_HANDOFF_TOKENS = 2000
#: at most this many files in the list (all edited files first, as far as they go)
MAX_FILES = 20

_CONTEXT, _STATE, _NEXT = "Decisions and constraints", "Current state", "Next steps"
_SECTION_MAP = {DECISIONS: _CONTEXT, ERRORS: _STATE, CURRENT: _STATE, PENDING: _NEXT, NEXT: _NEXT}
_CAPS = {_CONTEXT: 0.3, _STATE: 0.45, _NEXT: 0.35}


def _file_line(f: FileFact) -> str:
    why = []
    for r in f.reasons:
        why.append(f"edited x{f.edits}" if r == "edited" and f.edits > 1 else r)
    return f"- {f.path} [{', '.join(why)}]"


def _next_budget(budget: int, tokens: int, budget_tokens: int, chars: int) -> int:
    """The budget for the next try: what the text used (``tokens``), shrunk by how far it
    was over: its tokens over ``budget_tokens``, or its characters over the safe limit (a
    large token budget holds far more than 10,000 characters), and by at least 15%."""
    factor = min(0.85, budget_tokens / max(1, tokens), _SAFE_CHARS / max(1, chars) * 0.95)
    return max(0, int(min(budget, tokens) * factor))  # a budget the text did not use would shrink nothing


def _cut_keeping_path(text: str, path: str | None) -> str:
    """``text`` cut at a line to stay under the safe size; the transcript's path, the one
    way back to everything, is kept at the end."""
    tail = f"\n## Full transcript\n- {path}\n" if path else ""
    body = text.split("\n## Full transcript\n", 1)[0] if path else text
    room = _SAFE_CHARS - 60 - len(tail)
    cut = body.rfind("\n", 0, room)
    return body[: cut if cut > 0 else room] + "\n[... handoff cut at 10,000 characters ...]\n" + tail


def _render(
    goal: str, latest: str | None, files: list[FileFact], chosen: dict[str, list[Any]], path: str | None, cwd: str | None
) -> str:
    parts = ["# Handoff: continue this work in a fresh session", "", "## Goal", goal.strip()]
    if latest and latest.strip() and latest.strip() != goal.strip():
        parts += ["", "## Latest request", latest.strip()]
    if cwd:
        parts += ["", f"Working directory: {cwd}"]
    if files:
        parts += ["", "## Relevant files (ranked)"] + [_file_line(f) for f in files]
    for name in (_CONTEXT, _STATE, _NEXT):
        lines = [c.render() for c in chosen.get(name, [])]
        if lines:
            parts += ["", f"## {name}"] + lines
    if path:
        parts += ["", "## Full transcript", f"- {path}"]
    return "\n".join(parts).rstrip() + "\n"


def make_handoff(
    source: Any,
    *,
    goal: str | None = None,
    budget_tokens: int = DEFAULT_HANDOFF_TOKENS,
    engine: Engine | None = None,
    fmt: str = "auto",
) -> HandoffResult:
    """Draft the prompt for a fresh agent that continues the session in ``source``
    (anything ``read_transcript`` takes). ``goal`` overrides the session's primary request."""
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 200:
        raise InputError(f"budget_tokens must be a whole number >= 200, got {budget_tokens!r}")
    if goal is not None and not isinstance(goal, str):
        raise InputError(f"goal must be text, got {type(goal).__name__}")
    t = read_transcript(source, fmt=fmt)
    if not t.events:
        raise EmptyInputError("the transcript has no messages: there is nothing to hand off")
    d = Distiller.make(engine)
    if skipped := skipped_warning(t):
        d.warnings.append(skipped)
    facts = analyze(t)
    query = session_query(facts)
    reqs = facts.requests
    latest = request_body(reqs[-1]) if reqs else None
    if goal is None or not goal.strip():
        if reqs:
            goal_text = request_body(reqs[0]) or reqs[0].text
        else:
            first = next((e.text for e in t.events if e.kind == "assistant" and e.text.strip()), "")
            goal_text = first or "(no goal found in the transcript; read it first)"
    else:
        goal_text = goal.strip()
    # the goal and the latest request get shares of what fits in the character limit too
    room = min(budget_tokens, _SAFE_CHARS // _CHARS_PER_TOKEN)
    goal_lines = d.fit(goal_text, max(60, room // 6), query)
    goal_block = "\n".join(goal_lines)
    # the latest request, unless it is the goal itself (fitted to another size, it would not compare equal below)
    same = latest is not None and latest.strip() == goal_text.strip()
    latest_block = "\n".join(d.fit(latest, max(40, room // 8), query)) if latest and not same else None

    # the current state is the session's end: after its last compaction, and in its last 40%
    marks = t.boundaries
    cut = max(marks[-1] + 1 if marks else 0, int(len(t.events) * 0.6))
    recent_only = (CURRENT, ERRORS, PENDING)
    facts = replace(
        facts,
        candidates=[
            c
            for c in facts.candidates
            if c.label != "earlier summary"
            and (c.section not in recent_only or c.event >= cut or c.label.startswith("latest"))
        ],
    )

    n_edited = sum(1 for f in facts.files if f.edits)
    files = facts.files[: max(8, min(MAX_FILES, n_edited + 3))]
    warnings = list(d.warnings)

    budget = budget_tokens
    for _ in range(8):
        skeleton = _render(goal_block, latest_block, files, {}, t.path, t.cwd)
        free = budget - d.count(skeleton)
        chosen = (
            select_lines(
                d,
                facts,
                budget=free,
                sections=tuple(_SECTION_MAP),
                caps=_CAPS,
                query=query,
                covered={f.path for f in files},
                recency=1.0,
                section_map=_SECTION_MAP,
                shown=goal_block + "\n" + (latest_block or ""),
            )
            if free > 50
            else {}
        )
        text = _render(goal_block, latest_block, files, chosen, t.path, t.cwd)
        if d.count(text) <= budget_tokens and len(text) <= _SAFE_CHARS:
            break
        budget = _next_budget(budget, d.count(text), budget_tokens, len(text))
        if len(skeleton) > _SAFE_CHARS or d.count(skeleton) > budget_tokens:
            files = files[: max(3, len(files) - 4)]
    text = redact_secrets(text)
    if len(text) > _SAFE_CHARS:
        text = _cut_keeping_path(text, t.path)
        warnings.append("the handoff was cut to stay under 10,000 characters")
    for w in d.warnings:
        if w not in warnings:
            warnings.append(w)
    tokens = d.count(text)
    if tokens > budget_tokens:
        warnings.append(
            f"the handoff holds {tokens} tokens, over budget_tokens={budget_tokens}: its goal, latest request, "
            "working directory, file list and transcript path are never dropped"
        )
    return HandoffResult(
        text=text,
        goal=redact_secrets(goal_text),
        latest_request=redact_secrets(latest) if latest else None,
        files=[HandoffFile(path=f.path, reasons=list(f.reasons), score=f.score) for f in files],
        tokens=tokens,
        budget_tokens=budget_tokens,
        session_id=t.session_id,
        cwd=t.cwd,
        warnings=warnings,
    )
