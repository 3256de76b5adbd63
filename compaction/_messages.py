"""Compaction of chat histories in OpenAI or Anthropic message shapes.

The last ``preserve_recent`` messages stay whole. In older ones, every text part
(plain string content, ``text`` parts, ``tool_result`` content, OpenAI ``tool``
messages) of at least ``min_tokens`` tokens is compacted verbatim; everything else
(roles, tool calls, ids, images) is copied unchanged. The default query
(:func:`default_query`) is built from the last user message and the assistant's messages,
in the layout the deletion model was trained on.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Callable, Iterator

from ._exceptions import InputError
from ._query import agent_query

__all__ = ["iter_text_slots", "last_user_text", "default_query", "check_messages", "message_text", "without_binary_data"]

# A slot is (getter, setter) over one string inside a message.
Slot = tuple[Callable[[], str], Callable[[str], None]]


def check_messages(messages: object) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise InputError(f"messages must be a list of message objects, got {type(messages).__name__}")
    if not messages:
        raise InputError("messages is empty: there is nothing to compact")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise InputError(f"message {i} must be an object with 'role' and 'content', got {type(m).__name__}")
        if "role" not in m:
            raise InputError(f"message {i} has no 'role'")
    try:
        return copy.deepcopy(messages)
    except (RecursionError, TypeError, ValueError) as exc:  # nested too deep, or objects that are not data
        raise InputError(f"messages must be plain JSON-like data: {type(exc).__name__}: {str(exc)[:200]}") from None


def _text_of(content: Any, *, tool_results: bool = True) -> str:
    """The text of a message's content; ``tool_results=False``: only what was written in it,
    not the tool results it carries."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict):
                if p.get("type") in ("text", "input_text", "output_text") and isinstance(p.get("text"), str):
                    parts.append(p["text"])
                elif p.get("type") == "tool_result" and tool_results:
                    parts.append(_text_of(p.get("content")))
        return "\n".join(x for x in parts if x)
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message that has typed text (tool results, which Anthropic
    clients send as user messages, are skipped, also beside an image or a short note)."""
    for m in reversed(messages):
        if m.get("role") != "user":
            continue
        text = _text_of(m.get("content"), tool_results=False)
        if text.strip():
            return text
    return ""


def _assistant_text(m: dict[str, Any]) -> str:
    """An assistant message's text and the inputs of its tool calls (OpenAI or Anthropic)."""
    parts = [_text_of(m.get("content"))]
    content = m.get("content")
    for p in content if isinstance(content, list) else []:
        if isinstance(p, dict) and p.get("type") == "tool_use" and p.get("input") is not None:
            parts.append(json.dumps(p["input"], ensure_ascii=False, default=str)[:1000])
    calls = m.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            parts.append(fn["arguments"][:1000])
    return "\n".join(x for x in parts if x.strip())


def default_query(messages: list[dict[str, Any]]) -> str:
    """What the agent is doing, from the conversation: its last message (the thought), its
    earlier messages and the last user message (the task), as :func:`compaction.agent_query`."""
    said = [t for t in (_assistant_text(m) for m in messages if m.get("role") == "assistant") if t]
    return agent_query(thought=said[-1] if said else "", earlier=said[:-1], task=last_user_text(messages))


def _slots_in_content(holder: dict[str, Any], key: str) -> Iterator[Slot]:
    content = holder.get(key)
    if isinstance(content, str):
        yield (lambda: holder[key]), (lambda v: holder.__setitem__(key, v))
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
                yield (lambda p=part: p["text"]), (lambda v, p=part: p.__setitem__("text", v))
            elif kind == "tool_result":
                yield from _slots_in_content(part, "content")


def iter_text_slots(message: dict[str, Any]) -> Iterator[Slot]:
    """Every compactable string of one message (system messages have none)."""
    if message.get("role") in ("system", "developer"):
        return
    yield from _slots_in_content(message, "content")


def _content_text(content: Any) -> Iterator[str]:
    """The text a model reads in one ``content`` value: strings, ``text`` parts, tool
    results, tool inputs (as JSON), thinking; not images, audio, files or signatures."""
    if isinstance(content, str):
        yield content
        return
    if not isinstance(content, list):
        return
    for part in content:
        if isinstance(part, str):
            yield part
        elif isinstance(part, dict):
            kind = part.get("type")
            if isinstance(part.get("text"), str) and kind in ("text", "input_text", "output_text", None):
                yield part["text"]
            elif kind == "tool_result":
                yield from _content_text(part.get("content"))
            elif kind in ("tool_use", "server_tool_use") and part.get("input") is not None:
                yield str(part.get("name") or "")
                yield json.dumps(part["input"], ensure_ascii=False, default=str)
            elif kind == "thinking" and isinstance(part.get("thinking"), str):
                yield part["thinking"]
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                yield part["refusal"]


def message_text(message: Any) -> Iterator[str]:
    """Every piece of one message that a model reads as text: its content (see
    ``_content_text``), tool-call names and arguments, a refusal; not ids, metadata
    (``usage``, ``model``, a harness's ``extra``) or image, audio and file data. What
    ``compact_messages`` counts as the messages' tokens."""
    if not isinstance(message, dict):
        return
    yield from _content_text(message.get("content"))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            for key in ("name", "arguments"):
                if isinstance(fn.get(key), str):
                    yield fn[key]
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        for key in ("name", "arguments"):
            if isinstance(legacy.get(key), str):
                yield legacy[key]
    if isinstance(message.get("refusal"), str):
        yield message["refusal"]


#: keys whose long values are data, not text: base64 image / audio / file bodies, data: URLs,
#: thinking signatures, redacted thinking
_DATA_KEYS = frozenset({"data", "url", "file_data", "signature"})
# base64 (standard or URL-safe, maybe wrapped in lines): no spaces, and not words alone
_BASE64ISH = re.compile(r"[A-Za-z0-9+/=_\-\r\n]+")
_DATA_MIN_CHARS = 256


def without_binary_data(messages: Any) -> Any:
    """A copy of ``messages`` for a model to read as JSON: each long base64 value or ``data:``
    URL (an image, audio or file body, a signature) is replaced by a short note saying how
    long it was. The messages themselves (to send on) keep it."""
    if isinstance(messages, list):
        return [without_binary_data(v) for v in messages]
    if not isinstance(messages, dict):
        return messages
    out: dict[str, Any] = {}
    textual = messages.get("type") == "text"  # an Anthropic document's plain-text source: {"type": "text", "data": ...}
    for key, value in messages.items():
        if key in _DATA_KEYS and not textual and isinstance(value, str) and len(value) >= _DATA_MIN_CHARS and (
            value.startswith("data:") or _is_base64(value)
        ):
            kind = value[5 : value.find(";")] if value.startswith("data:") and ";" in value[:100] else "base64"
            out[key] = f"[{len(value):,} characters of {kind} data, not shown]"
        else:
            out[key] = without_binary_data(value)
    return out


def _is_base64(value: str) -> bool:
    """Base64 characters only, with a digit, '+' or '/' somewhere (a long run of letters alone is
    more likely a word list than data)."""
    return _BASE64ISH.fullmatch(value) is not None and any(c.isdigit() or c in "+/" for c in value[:4096])
