"""Typed results of session distillation: summarize, make_handoff, context_status."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SummaryResult", "HandoffFile", "HandoffResult", "ContextStatus"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class SummaryResult(_Frozen):
    text: str = Field(description="Markdown: the fixed section headings in order, then the recent turns verbatim.")
    sections: dict[str, str] = Field(description="Each section's body by heading (the recent turns under 'Recent turns').")
    backend: str = Field(description="Who wrote it: 'embedded' (extractive, verbatim lines) or the LLM backend's name.")
    tokens: int = Field(description="o200k_base tokens in `text`.")
    transcript_tokens: int = Field(description="o200k_base tokens in the whole transcript as read.")
    budget_tokens: int = Field(0, description="The token budget the summary was written for.")
    recent_turns: int = Field(0, description="How many of the last turns are shown verbatim (tool output compacted).")
    scorer: str = Field("", description="The line ranker used (the deletion model, or a named fallback).")
    session_id: str | None = None
    format: str = ""
    warnings: list[str] = Field(default_factory=list)


class HandoffFile(_Frozen):
    path: str = Field(description="Path, relative to the session's working directory when under it.")
    reasons: list[str] = Field(description="Why it matters: edited, written, read, failing, mentioned.")
    score: float = Field(description="Rank score (higher first): edits, failures, reads, mentions, recency.")


class HandoffResult(_Frozen):
    text: str = Field(description="The prompt for a fresh agent (always under 10,000 characters).")
    goal: str = Field(description="The goal: the caller's, else the session's primary request.")
    latest_request: str | None = Field(description="The last message the user typed, if any.")
    files: list[HandoffFile] = Field(description="Relevant files, ranked, with why.")
    tokens: int = Field(description="o200k_base tokens in `text`.")
    budget_tokens: int = 2000
    session_id: str | None = None
    cwd: str | None = None
    backend: str = "embedded"
    warnings: list[str] = Field(default_factory=list)


class ContextStatus(_Frozen):
    tokens_used: int = Field(description="Tokens in the agent's context now.")
    limit_tokens: int = Field(description="The context window assumed.")
    fraction: float = Field(description="tokens_used / limit_tokens.")
    recommendation: Literal["fine", "compact", "handoff"]
    source: Literal["usage", "counted"] = Field(
        description="'usage': from the model's own usage fields in the transcript; 'counted': o200k tokens of the live context."
    )
    message: str = Field(description="One line for a person or an agent.")
    model: str | None = None
    limit_source: Literal["argument", "env", "model", "default"] = "default"
    warnings: list[str] = Field(default_factory=list, description="What the count may have missed (records that could not be read).")
