"""Typed results of the engine. Formatting for people or protocols happens at the edges."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CompactResult", "CompactedPart", "CompactMessagesResult", "ExpandResult"]

LineRange = tuple[int, int]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class CompactResult(_Frozen):
    text: str = Field(description="The compacted text: kept lines verbatim, each omitted run replaced by one marker line.")
    kept_line_ranges: list[LineRange] = Field(
        description="1-based inclusive [start, end] ranges of input lines kept whole (over str.splitlines() of the input)."
    )
    omitted_line_ranges: list[LineRange] = Field(
        description="1-based inclusive [start, end] ranges of input lines omitted or only partly kept; pass them to expand."
    )
    partial_lines: list[int] = Field(
        default_factory=list, description="1-based numbers of very long lines of which only some segments were kept."
    )
    lines_before: int
    lines_kept: int
    tokens_before: int = Field(description="o200k_base tokens in the input.")
    tokens_after: int = Field(description="o200k_base tokens in `text`, markers included.")
    budget_tokens: int = Field(description="The token budget the kept text had to fit.")
    handle: str | None = Field(
        description="Handle of the stored original; expand(handle, lines) gives omitted lines back. None if nothing was omitted or the cache is unavailable."
    )
    query: str = Field(description="The query lines were scored against.")
    scorer: str = Field(description="Which ranker chose the lines (the deletion model, or a named baseline).")
    pinned_lines: int = Field(0, description="Lines kept because of <keep> tags or keep patterns.")
    warnings: list[str] = Field(default_factory=list)

    @property
    def ratio_kept(self) -> float:
        return self.tokens_after / self.tokens_before if self.tokens_before else 1.0


class CompactedPart(_Frozen):
    message: int = Field(description="0-based index of the message the part is in.")
    tokens_before: int
    tokens_after: int
    handle: str | None = Field(description="Handle of the part's stored original (also named on the part's last line).")


class CompactMessagesResult(_Frozen):
    messages: list[dict[str, Any]] = Field(description="The messages in their original shape, older text compacted.")
    tokens_before: int = Field(description="o200k_base tokens of all text in the messages (tool inputs and system prompts included).")
    tokens_after: int = Field(description="The same count after compaction, markers included.")
    compacted_parts: int = Field(description="How many text parts were compacted.")
    handles: list[str] = Field(default_factory=list, description="Handles of the stored originals, in message order.")
    parts: list[CompactedPart] = Field(default_factory=list, description="Each compacted part: its message, token counts and handle.")
    query: str
    warnings: list[str] = Field(default_factory=list)


class ExpandResult(_Frozen):
    handle: str
    text: str = Field(description="The requested lines, verbatim, joined as in the original.")
    line_ranges: list[LineRange] = Field(description="The 1-based inclusive ranges returned.")
    total_lines: int = Field(description="Number of lines in the whole original.")
