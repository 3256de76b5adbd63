"""MCP sampling as summarize's LLM backend, the SDK's era-portable way.

The client's model is asked through a ``Resolve`` dependency of the ``summarize`` tool
(``mcp.server.mcpserver.resolve``): the resolver runs before the tool body.

* It finds out what summarize would ask an LLM: it runs ``compaction.summarize`` with a
  capturing backend that records the (system, prompt, max_tokens) request and then fails,
  so summarize falls back to its embedded summarizer (cheap; the result is discarded).
* On a 2026-07-28 connection it returns a ``Sample`` marker: the SDK turns it into an
  ``InputRequiredResult`` and resumes the call when the client answers (no server-initiated
  request, which that protocol revision deprecates).
* On a handshake-era connection (<= 2025-11-25) it sends ``sampling/createMessage`` itself,
  mid-call, catching every failure so that a refused or broken sample falls back to the
  embedded summarizer instead of failing the call.

The tool body then runs summarize again with a ``ReplayBackend`` that hands the sampled
text back when summarize asks. Nothing is sampled when the client did not declare the
``sampling`` capability.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import anyio

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Sample
from mcp.shared.message import ServerMessageMetadata
from mcp_types import (
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    SamplingMessage,
    TextContent,
)
from mcp_types.version import is_version_at_least

import compaction
from compaction._llm_protocol import LLMError

__all__ = ["ReplayBackend", "SampledText", "sampled_summary"]

log = logging.getLogger("context_distill.server")

_MODERN = "2026-07-28"


@dataclass(frozen=True)
class SampledText:
    text: str | None = None
    name: str = "mcp-sampling"
    error: str | None = None


@dataclass
class _Request:
    system: str
    prompt: str
    max_tokens: int


_CAPTURED = "request captured for MCP sampling"


class _Captured(LLMError):
    pass


class _HideCaptures(logging.Filter):
    """summarize logs every backend failure; the capture pass's planned 'failure' is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return _CAPTURED not in record.getMessage()
        except Exception:
            return True


logging.getLogger("context_distill").addFilter(_HideCaptures())


class CaptureBackend:
    """Records the first request summarize makes of an LLM, then fails it."""

    name = "mcp-sampling"

    def __init__(self) -> None:
        self.request: _Request | None = None

    def complete(self, *, system: str, prompt: str, max_tokens: int) -> str:
        if self.request is None:
            self.request = _Request(system, prompt, int(max_tokens))
        raise _Captured(_CAPTURED)


class ReplayBackend:
    """Answers summarize's first LLM request with text the client's model already wrote."""

    def __init__(self, text: str, name: str = "mcp-sampling") -> None:
        self.name = name
        self._text = text
        self._used = False

    def complete(self, *, system: str, prompt: str, max_tokens: int) -> str:
        if self._used:
            raise LLMError("MCP sampling answered one request only")
        self._used = True
        return self._text


def _text_of(result: Any) -> str | None:
    content = getattr(result, "content", None)
    blocks = content if isinstance(content, list) else [content]
    parts = [b.text for b in blocks if isinstance(b, TextContent) or getattr(b, "type", None) == "text"]
    text = "\n".join(p for p in parts if isinstance(p, str))
    return text or None


#: how long the client's model may take to answer a sampling request before the embedded
#: summarizer is used instead (CONTEXT_DISTILL_SAMPLING_TIMEOUT, seconds)
SAMPLING_TIMEOUT_S = 180.0


def _sampling_timeout() -> float:
    raw = os.environ.get("CONTEXT_DISTILL_SAMPLING_TIMEOUT", "")
    try:
        value = float(raw)
    except ValueError:
        return SAMPLING_TIMEOUT_S
    return value if 0 < value < 86_400 else SAMPLING_TIMEOUT_S


async def sampled_summary(
    ctx: Context,
    transcript_path: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    text: str | None = None,
    budget_tokens: int | None = None,
    recent_turns: int | None = None,
) -> Any:
    """Resolver of summarize's ``sampled`` parameter: a Sample marker, a SampledText, or None."""
    try:
        caps = ctx.client_capabilities
    except ValueError:
        return None
    if caps is None or caps.sampling is None:
        return None
    summarize = getattr(compaction, "summarize", None)
    if summarize is None:
        return None
    from ._app import _transcript_source  # late: _app imports this module

    try:
        source = _transcript_source(transcript_path, messages, text)
    except Exception:
        return None  # the tool body reports the bad input
    capture = CaptureBackend()
    kwargs: dict[str, Any] = {"backend": capture}
    if budget_tokens is not None:
        kwargs["budget_tokens"] = budget_tokens
    if recent_turns is not None:
        kwargs["recent_turns"] = recent_turns
    runtime = getattr(ctx.mcp_server, "runtime", None)
    if runtime is not None:
        kwargs["engine"] = runtime.engine
    try:
        if runtime is not None:
            await runtime.run(lambda: summarize(source, **kwargs))
        else:  # pragma: no cover - build_server always sets it
            summarize(source, **kwargs)
    except Exception:
        return None  # the tool body reports it
    req = capture.request
    if req is None:
        return None
    params = CreateMessageRequestParams(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=req.prompt))],
        system_prompt=req.system,
        max_tokens=req.max_tokens,
        include_context="none",
        temperature=0.0,
    )
    version = ctx.protocol_version
    if version is not None and is_version_at_least(version, _MODERN):
        return Sample(
            params.messages,
            max_tokens=params.max_tokens,
            system_prompt=params.system_prompt,
            include_context=params.include_context,
            temperature=params.temperature,
        )
    try:
        with anyio.fail_after(_sampling_timeout()):  # a client that never answers must not hold the call
            result = await ctx.session.send_request(
                CreateMessageRequest(params=params),
                CreateMessageResult,
                metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
            )
    except Exception as exc:  # refused, unsupported, timed out: fall back, never fail
        log.info("MCP sampling failed: %r", str(exc))
        return SampledText(error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    out = _text_of(result)
    if not out:
        return SampledText(error="the client's model returned no text")
    return SampledText(text=out, name=f"mcp-sampling:{getattr(result, 'model', '') or 'client'}")


def as_sampled_text(value: Any) -> SampledText | None:
    """Normalize what the resolver produced (a SampledText, a CreateMessageResult, or None)."""
    if value is None or isinstance(value, SampledText):
        return value
    text = _text_of(value)
    if not text:
        return SampledText(error="the client's model returned no text")
    return SampledText(text=text, name=f"mcp-sampling:{getattr(value, 'model', '') or 'client'}")
