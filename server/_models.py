"""Structured outputs of the MCP tools (published as each tool's outputSchema).

These are the protocol's shapes, kept apart from the engine's result types so that a
change inside the engine never silently changes what clients were promised.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LineRange = tuple[int, int]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompactedPartOut(_Out):
    message: int = Field(description="0-based index of the message the part is in.")
    tokens_before: int
    tokens_after: int
    handle: str | None = None


class CompactOutput(_Out):
    text: str | None = Field(
        None, description="The compacted text (for `text` input): kept lines verbatim, each omitted run one marker line."
    )
    messages: list[dict[str, Any]] | None = Field(
        None, description="The messages in their original shape with older text compacted (for `messages` input)."
    )
    kept_line_ranges: list[LineRange] = Field(
        default_factory=list,
        description="1-based inclusive [start, end] input line ranges kept whole (text input only).",
    )
    omitted_line_ranges: list[LineRange] = Field(
        default_factory=list,
        description="1-based inclusive [start, end] input line ranges omitted; pass them to `expand` as `lines`.",
    )
    partial_lines: list[int] = Field(
        default_factory=list,
        description="Very long input lines (1-based) cut into segments and kept only in part: the text shows their "
        "kept segments with '[... N chars omitted ...]' between them (they are in omitted_line_ranges too); `expand` with the line number gives one whole.",
    )
    tokens_before: int = Field(description="o200k_base tokens in the input.")
    tokens_after: int = Field(description="o200k_base tokens in the result, markers included.")
    handle: str | None = Field(
        None,
        description="Handle of the stored original: call `expand` with it to get omitted lines back "
        "(for `messages`: the first compacted part's; see `parts`).",
    )
    handles: list[str] = Field(default_factory=list, description="Handles of every compacted message part, in message order.")
    parts: list[CompactedPartOut] = Field(
        default_factory=list,
        description="messages only: each compacted part's message index (0-based), token counts and handle; "
        "each part's last line also names its handle.",
    )
    query: str = Field("", description="The query lines were scored against.")
    scorer: str = Field("", description="Which ranker chose the lines.")
    warnings: list[str] = Field(default_factory=list)


class ExpandOutput(_Out):
    handle: str
    text: str = Field(description="The requested lines of the original, verbatim.")
    line_ranges: list[LineRange] = Field(description="The 1-based inclusive ranges returned.")
    total_lines: int = Field(description="Lines in the whole original.")


class SummarizeOutput(_Out):
    text: str = Field(description="Markdown summary under fixed section headings.")
    sections: dict[str, str] = Field(default_factory=dict, description="Each section's text by heading.")
    backend: str = Field(description="Who wrote it: 'embedded' (extractive, nothing invented) or the LLM backend.")
    tokens: int = Field(description="o200k_base tokens in the summary.")
    transcript_tokens: int = Field(description="o200k_base tokens in the transcript summarized.")
    warnings: list[str] = Field(default_factory=list)


class HandoffFileOut(_Out):
    path: str
    reasons: list[str] = Field(default_factory=list, description="edited, written, read, failing, mentioned")
    score: float = 0.0


class SpawnOut(_Out):
    pid: int
    log_path: str
    argv: list[str]


class HandoffOutput(_Out):
    id: str | None = Field(None, description="Id of the stored handoff; read it later as resource handoff://{id}.")
    uri: str | None = Field(None, description="handoff://{id}, readable with resources/read.")
    text: str = Field(description="The handoff prompt for a fresh agent (always under 10,000 characters).")
    goal: str | None = None
    latest_request: str | None = None
    files: list[HandoffFileOut] = Field(default_factory=list, description="Relevant files ranked, with why.")
    tokens: int = 0
    session_id: str | None = None
    cwd: str | None = None
    spawned: SpawnOut | None = Field(None, description="The agent process started with this handoff, if asked.")
    warnings: list[str] = Field(default_factory=list)


class ContextStatusOutput(_Out):
    tokens_used: int
    limit_tokens: int
    fraction: float = Field(description="tokens_used / limit_tokens.")
    recommendation: Literal["fine", "compact", "handoff"]
    source: Literal["usage", "counted"] = Field(description="From the transcript's usage fields, or counted.")
    message: str
    warnings: list[str] = Field(default_factory=list, description="E.g. unreadable records that were skipped.")


class TokenizerInfo(_Out):
    name: str
    sha256: str
    verified: bool


class StatusOutput(_Out):
    version: str
    tokenizer: TokenizerInfo
    model: dict[str, Any] = Field(description="Deletion model: available, name, sha256, execution provider, or error.")
    scorer: str = Field(description="The ranker compact uses now.")
    limits: dict[str, int]
    cache_dir: str
    cache_writable: bool
    data_dir: str
    transport: str
    in_flight: int = Field(description="Calls running or waiting now.")
    sampling: bool = Field(description="Whether this client declared MCP sampling (summarize can use its model).")
    llm_backend: str | None = Field(None, description="The environment-configured LLM backend for summarize, if any.")
