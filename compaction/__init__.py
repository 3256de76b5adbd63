"""context-distill's engine: verbatim, reversible compaction of agent context.

A plain Python library; importing it never imports ``mcp``.

    >>> import compaction
    >>> r = compaction.compact(log_text, ratio=0.3, query="why does test_parse fail?")
    >>> r.text, r.kept_line_ranges, r.tokens_before, r.tokens_after, r.handle
    >>> compaction.expand(r.handle, "120-180").text      # omitted lines, verbatim
"""

from __future__ import annotations

from typing import Any, Sequence

from ._compact import DEFAULT_RATIO, ProgressFn, ends_a_line, handle_line, is_marker_line, verify_verbatim
from ._config import Limits, Settings
from ._engine import Engine, get_engine, parse_line_ranges
from ._exceptions import (
    AssetCorruptError,
    AssetError,
    AssetMissingError,
    BinaryInputError,
    BudgetError,
    ContextDistillError,
    EmptyInputError,
    HandleNotFoundError,
    InputError,
    InputTooLargeError,
    KeepPatternError,
    StoreError,
    StoreUnavailableError,
    TranscriptError,
)
from ._results import CompactMessagesResult, CompactResult, ExpandResult
from ._scoring import LineScorer, ScoringInput
from ._query import agent_query
from ._tokenizer import TOKENIZER_NAME, Tokenizer, count_tokens, get_tokenizer
from ._context_status import context_status
from ._handoff import make_handoff
from ._session_results import ContextStatus, HandoffFile, HandoffResult, SummaryResult
from ._summarize import summarize
from .transcripts import Transcript, read_transcript
from ._handoff_store import HandoffStore, StoredHandoff, StoredHandoffInfo
from ._llm_protocol import LLMBackend, LLMError
from .llm import AnthropicBackend, OpenAICompatibleBackend, backend_from_env

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # operations
    "compact",
    "compact_messages",
    "expand",
    "count_tokens",
    "verify_verbatim",
    "is_marker_line",
    "handle_line",
    "ends_a_line",
    "parse_line_ranges",
    "agent_query",
    # the engine and its seams
    "Engine",
    "get_engine",
    "LineScorer",
    "ScoringInput",
    "Tokenizer",
    "get_tokenizer",
    "TOKENIZER_NAME",
    "Settings",
    "Limits",
    "DEFAULT_RATIO",
    # session distillation
    "read_transcript",
    "Transcript",
    "summarize",
    "SummaryResult",
    "make_handoff",
    "HandoffResult",
    "HandoffFile",
    "context_status",
    "ContextStatus",
    "HandoffStore",
    "StoredHandoff",
    "StoredHandoffInfo",
    # LLM backends for summarize (optional; the embedded summarizer needs none)
    "LLMBackend",
    "LLMError",
    "OpenAICompatibleBackend",
    "AnthropicBackend",
    "backend_from_env",
    # results
    "CompactResult",
    "CompactMessagesResult",
    "ExpandResult",
    # errors
    "ContextDistillError",
    "InputError",
    "EmptyInputError",
    "BinaryInputError",
    "InputTooLargeError",
    "BudgetError",
    "KeepPatternError",
    "TranscriptError",
    "AssetError",
    "AssetMissingError",
    "AssetCorruptError",
    "StoreError",
    "HandleNotFoundError",
    "StoreUnavailableError",
]


def compact(
    text: str | bytes,
    *,
    ratio: float | None = None,
    target_tokens: int | None = None,
    query: str | None = None,
    keep: Sequence[str] = (),
    markers: bool = True,
    name_handle: bool = False,
    on_progress: ProgressFn | None = None,
) -> CompactResult:
    """Delete the low-signal lines of ``text`` so that it fits ``ratio`` (fraction of
    tokens kept, default 0.5) or ``target_tokens``. Kept lines are verbatim; each omitted
    run becomes one marker line; ``result.handle`` lets ``expand`` give them back
    (``name_handle=True``: the text always ends with a line naming it, even over a small budget)."""
    return get_engine().compact(
        text,
        ratio=ratio,
        target_tokens=target_tokens,
        query=query,
        keep=keep,
        markers=markers,
        name_handle=name_handle,
        on_progress=on_progress,
    )


def compact_messages(
    messages: list[dict[str, Any]],
    *,
    ratio: float | None = None,
    target_tokens: int | None = None,
    query: str | None = None,
    preserve_recent: int = 2,
    keep: Sequence[str] = (),
    markers: bool = True,
    on_progress: ProgressFn | None = None,
) -> CompactMessagesResult:
    """Compact the text of older chat messages (OpenAI or Anthropic shapes); the last
    ``preserve_recent`` stay whole. The query defaults to the assistant's recent messages
    and the last user message (:func:`agent_query`)."""
    return get_engine().compact_messages(
        messages,
        ratio=ratio,
        target_tokens=target_tokens,
        query=query,
        preserve_recent=preserve_recent,
        keep=keep,
        markers=markers,
        on_progress=on_progress,
    )


def expand(handle: str, lines: str | Sequence[tuple[int, int]] | None = None) -> ExpandResult:
    """Give back lines of a compacted original, verbatim: ``lines`` like ``"10-20,31"``
    (1-based, inclusive); all lines when omitted."""
    return get_engine().expand(handle, lines)
