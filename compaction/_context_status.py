"""context_status: how full is the agent's context, and what to do about it.

Tokens used: Claude Code's own usage fields when the transcript has them (input +
cache-read + cache-creation tokens of the latest response, after the latest compaction),
else the o200k tokens of the live context (everything after the last compact boundary;
the system prompt and tool definitions are not in a transcript, so this undercounts).

Limit: the ``limit_tokens`` argument, else ``$CONTEXT_DISTILL_CONTEXT_LIMIT``, else by
model name (``MODEL_LIMITS``), else 200,000.

Recommendation, by the fraction used:
    < 0.60          fine     nothing to do
    0.60 .. < 0.85  compact  shrink large tool outputs (compact) and summarize older turns
    >= 0.85         handoff  hand off to a fresh session now (Claude Code auto-compacts
                             at about 0.92-0.95, losing detail it did not choose to keep)
"""

from __future__ import annotations

import os
from typing import Any

from ._exceptions import InputError
from ._session_results import ContextStatus
from ._tokenizer import get_tokenizer
from .transcripts import read_transcript, render_transcript, skipped_warning

__all__ = ["context_status", "COMPACT_AT", "HANDOFF_AT", "DEFAULT_LIMIT", "MODEL_LIMITS", "limit_for_model", "recommend"]

COMPACT_AT = 0.60
HANDOFF_AT = 0.85
DEFAULT_LIMIT = 200_000
#: (substring of the model name, context window in tokens); first match wins
MODEL_LIMITS: tuple[tuple[str, int], ...] = (
    ("[1m]", 1_000_000),
    ("claude", 200_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-5", 400_000),
    ("gpt-4o", 128_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("gemini", 1_048_576),
    ("llama", 128_000),
    ("qwen", 131_072),
    ("deepseek", 128_000),
    ("mistral", 128_000),
)


def limit_for_model(model: str | None) -> int | None:
    if not model:
        return None
    m = model.lower()
    for key, limit in MODEL_LIMITS:
        if key in m:
            return limit
    return None


def recommend(fraction: float) -> str:
    if fraction >= HANDOFF_AT:
        return "handoff"
    if fraction >= COMPACT_AT:
        return "compact"
    return "fine"


_ADVICE = {
    "fine": "fine, nothing to do",
    "compact": "compact large tool outputs (compact) and summarize older turns (summarize) soon",
    "handoff": "hand off to a fresh session now (handoff) before the context runs out",
}


def _refused_as_too_long(events: list[Any]) -> bool:
    """Since its last compaction, the session's last answer is the API's "Prompt is too long",
    which Claude Code writes as an assistant message from model ``<synthetic>`` (not a reply
    that talks about the error): the session cannot go on as it is."""
    for e in reversed(events):
        if e.kind in ("compact_boundary", "tool_call", "thinking") or e.context_tokens:
            return False  # compacted since, or a later response went through
        if e.kind == "assistant":
            synthetic = getattr(e, "model", None) == "<synthetic>"
            if synthetic and "prompt is too long" in e.text.lower():
                return True
            if not synthetic:
                return False  # a reply went through
            # another notice of Claude Code's ("Request was aborted."): look further back
    return False


def context_status(source: Any, *, limit_tokens: int | None = None, fmt: str = "auto") -> ContextStatus:
    """How much of the context window the session in ``source`` uses, and a recommendation."""
    if limit_tokens is not None and (
        isinstance(limit_tokens, bool) or not isinstance(limit_tokens, int) or limit_tokens < 1
    ):
        raise InputError(f"limit_tokens must be a whole number >= 1, got {limit_tokens!r}")
    t = read_transcript(source, fmt=fmt)
    events = t.events
    last_usage = max((i for i, e in enumerate(events) if e.context_tokens), default=None)
    last_boundary = max((i for i, e in enumerate(events) if e.kind == "compact_boundary"), default=None)
    if last_usage is not None and (last_boundary is None or last_usage > last_boundary):
        used = int(events[last_usage].context_tokens or 0)
        source_kind = "usage"
    else:
        live = events[last_boundary + 1 :] if last_boundary is not None else events
        used = get_tokenizer().count(render_transcript(live)) if live else 0
        source_kind = "counted"
    if limit_tokens is not None:
        limit, limit_source = limit_tokens, "argument"
    elif os.environ.get("CONTEXT_DISTILL_CONTEXT_LIMIT", "").strip():
        raw = os.environ["CONTEXT_DISTILL_CONTEXT_LIMIT"].strip()
        if not raw.isdigit() or int(raw) < 1:
            raise InputError(f"CONTEXT_DISTILL_CONTEXT_LIMIT={raw!r} must be a whole number of tokens >= 1")
        limit, limit_source = int(raw), "env"
    elif limit_for_model(t.model) is not None:
        limit, limit_source = int(limit_for_model(t.model) or DEFAULT_LIMIT), "model"
    else:
        limit, limit_source = DEFAULT_LIMIT, "default"
    limit = max(1, limit)
    refused = _refused_as_too_long(events)
    fraction = used / limit
    # the API turned the last request down: the session cannot go on as it is, whatever was counted
    rec = "handoff" if refused else recommend(fraction)
    how = "from usage fields" if source_kind == "usage" else "counted"
    how = "the last request was refused: prompt is too long" if refused else how
    message = f"{used:,} of {limit:,} tokens ({fraction:.0%}, {how}): {_ADVICE[rec]}"
    return ContextStatus(
        tokens_used=used,
        limit_tokens=limit,
        fraction=round(fraction, 4),
        recommendation=rec,  # type: ignore[arg-type]
        source=source_kind,  # type: ignore[arg-type]
        message=message,
        model=t.model,
        limit_source=limit_source,  # type: ignore[arg-type]
        warnings=[w for w in (skipped_warning(t),) if w],
    )
