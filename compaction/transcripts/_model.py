"""Typed events of a coding-agent session, whatever format it came from.

A ``Transcript`` is a flat, ordered list of events. Claude Code splits one API response
into one record per content block; here each block is one event, and the events of one
response share ``message_id``. Tool results carry the name of the tool that produced them
(matched by id) and are kept in full.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EventBase",
    "UserText",
    "AssistantText",
    "Thinking",
    "ToolCall",
    "ToolResult",
    "CompactBoundary",
    "CompactSummary",
    "SystemText",
    "Event",
    "Transcript",
    "EDIT_TOOLS",
    "TEXT_EDITOR_TOOLS",
    "FileAction",
    "file_action",
]

#: text-editor tools (Anthropic's ``str_replace_based_edit_tool``, SWE-agent's and OpenHands'
#: ``str_replace_editor``): one tool whose ``command`` says whether it views or changes ``path``
TEXT_EDITOR_TOOLS = frozenset({"str_replace_based_edit_tool", "str_replace_editor"})
#: tools whose input names a file they change (Claude Code, plus common agent spellings);
#: a text-editor tool changes a file only for some commands (see ``file_action``)
EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit", "apply_patch"} | TEXT_EDITOR_TOOLS)
#: what each text-editor command does to its file
_EDITOR_ACTIONS = {"view": "read", "create": "write", "str_replace": "edit", "insert": "edit", "undo_edit": "edit"}

FileAction = Literal["read", "write", "edit"]


def file_action(name: str, inp: Any) -> FileAction | None:
    """What a tool call does to the file its input names: ``read``, ``write`` (creates or
    overwrites it), ``edit``, or None (no file, or not a file tool)."""
    if name in TEXT_EDITOR_TOOLS:
        inp = inp if isinstance(inp, dict) else {}
        command = inp.get("command")
        if isinstance(command, str):
            return _EDITOR_ACTIONS.get(command)  # type: ignore[return-value]
        if "file_text" in inp:  # no command: what its text says
            return "write"
        return "edit" if "new_str" in inp or "old_str" in inp else None
    if name == "Write":
        return "write"
    if name in EDIT_TOOLS:
        return "edit"
    if name in ("Read", "NotebookRead"):
        return "read"
    return None


class EventBase(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: 1-based line (JSONL) or message index the event came from
    record: int = 0
    #: id of the API response (Claude Code ``message.id``); blocks of one response share it
    message_id: str | None = None
    timestamp: str | None = None
    #: set on events read from a sub-agent's file
    agent_id: str | None = None
    #: context size after this response (usage input + cache read + cache creation), assistant events only
    context_tokens: int | None = None


class UserText(EventBase):
    kind: Literal["user"] = "user"
    text: str
    #: injected by the harness (skill text, command caveats), not typed by a person
    is_meta: bool = False
    #: a slash command (``/compact``) when the record is one
    command: str | None = None


class AssistantText(EventBase):
    kind: Literal["assistant"] = "assistant"
    text: str
    model: str | None = None


class Thinking(EventBase):
    kind: Literal["thinking"] = "thinking"
    text: str


class ToolCall(EventBase):
    kind: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResult(EventBase):
    kind: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    #: name of the matching tool call, when one was seen
    tool_name: str | None = None
    text: str
    is_error: bool = False
    #: from Claude Code's structured ``toolUseResult``, when present
    file_path: str | None = None
    patch: str | None = None
    stdout: str | None = None
    stderr: str | None = None


class CompactBoundary(EventBase):
    kind: Literal["compact_boundary"] = "compact_boundary"
    trigger: str | None = None
    pre_tokens: int | None = None


class CompactSummary(EventBase):
    kind: Literal["compact_summary"] = "compact_summary"
    text: str


class SystemText(EventBase):
    kind: Literal["system"] = "system"
    text: str


Event = Annotated[
    Union[UserText, AssistantText, Thinking, ToolCall, ToolResult, CompactBoundary, CompactSummary, SystemText],
    Field(discriminator="kind"),
]


class Transcript(BaseModel):
    model_config = ConfigDict(frozen=True)

    format: Literal["claude-code", "openai", "anthropic", "text"]
    events: list[Event] = Field(default_factory=list)
    session_id: str | None = None
    cwd: str | None = None
    path: str | None = None
    #: malformed lines plus records of unknown type (never fatal)
    skipped: int = 0
    #: why records were skipped: {"malformed-json": 2, "unknown-type:foo": 1, ...}
    skipped_reasons: dict[str, int] = Field(default_factory=dict)
    #: latest context size from usage fields (Claude Code), or None
    usage_tokens: int | None = None
    #: latest model name seen, if any
    model: str | None = None
    #: sub-agents' transcripts (Claude Code ``<session>/subagents/agent-*.jsonl``), by agent id
    subagents: dict[str, "Transcript"] = Field(default_factory=dict)

    # -- views ---------------------------------------------------------------------------
    def of_kind(self, *kinds: str) -> list[Any]:
        return [e for e in self.events if e.kind in kinds]

    @property
    def tool_results(self) -> list[ToolResult]:
        return [e for e in self.events if isinstance(e, ToolResult)]

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [e for e in self.events if isinstance(e, ToolCall)]

    @property
    def boundaries(self) -> list[int]:
        """Indexes (into ``events``) of the compact boundaries."""
        return [i for i, e in enumerate(self.events) if isinstance(e, CompactBoundary)]

    def before_boundary(self, n: int = -1) -> "Transcript":
        """The transcript as it stood just before its ``n``-th compact boundary (Python
        indexing: -1 is the last, 0 the first): what that compaction summarized."""
        marks = self.boundaries
        if not marks:
            raise IndexError("this transcript has no compact boundary")
        cut = marks[n]
        events = self.events[:cut]
        usage = next((e.context_tokens for e in reversed(events) if e.context_tokens is not None), None)
        return self.model_copy(update={"events": events, "usage_tokens": usage})

    def since_boundary(self) -> "Transcript":
        """The events after the last compact boundary: what is in the agent's context now."""
        marks = self.boundaries
        if not marks:
            return self
        events = self.events[marks[-1] + 1 :]
        usage = next((e.context_tokens for e in reversed(events) if e.context_tokens), None)
        return self.model_copy(update={"events": events, "usage_tokens": usage})
