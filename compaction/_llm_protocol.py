"""The seam between summarization and whatever language model writes prose.

The embedded extractive summarizer needs no model. An ``LLMBackend`` (OpenAI-compatible
HTTP, Anthropic Messages, MCP sampling) is optional; any exception it raises makes the
caller fall back to the embedded summarizer, never to an error.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["LLMBackend", "LLMError"]


class LLMError(Exception):
    """A backend failed (unreachable, timed out, refused, returned garbage)."""


@runtime_checkable
class LLMBackend(Protocol):
    #: short name reported in results, e.g. "openai:gpt-4o-mini", "anthropic:claude-...", "mcp-sampling"
    name: str

    def complete(self, *, system: str, prompt: str, max_tokens: int) -> str:
        """Return the model's text answer. Raise LLMError (or anything) on failure."""
        ...
