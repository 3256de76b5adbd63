"""Readers for chat-message histories: OpenAI chat messages and Anthropic messages.

OpenAI: ``{"role": "system"|"user"|"assistant"|"tool", "content": str | [parts],
"tool_calls": [{"id", "function": {"name", "arguments"}}], "tool_call_id"}``.
Anthropic: ``{"role": "user"|"assistant", "content": str | [blocks]}`` with ``text``,
``thinking``, ``tool_use`` and ``tool_result`` blocks (``system`` is separate). Either may
come wrapped as ``{"messages": [...], "system": ...}``. Messages that are not objects or
have an unknown role are skipped and counted. mini-swe-agent's trajectories (no tool calls;
``<returncode>`` observations sent as ``user`` messages) read as bash calls and their results.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from ._model import AssistantText, SystemText, Thinking, ToolCall, ToolResult, Transcript, UserText

__all__ = ["parse_messages", "detect_message_format"]


def detect_message_format(messages: list[Any]) -> str:
    for m in messages:
        if not isinstance(m, dict):
            continue
        if m.get("role") in ("tool", "function") or "tool_calls" in m:
            return "openai"
        content = m.get("content")
        if isinstance(content, list):
            for b in content:
                if isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result", "thinking"):
                    return "anthropic"
    return "openai"


def _parts_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for p in content:
            if isinstance(p, str):
                out.append(p)
            elif isinstance(p, dict):
                if isinstance(p.get("text"), str):
                    out.append(p["text"])
                elif p.get("type") in ("image", "image_url", "input_image"):
                    out.append("[image]")
        return "\n".join(out)
    return json.dumps(content, ensure_ascii=False, default=str)


def _args(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            val = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            return {"arguments": raw}
        return val if isinstance(val, dict) else {"arguments": val}
    return {} if raw is None else {"arguments": raw}


def _name(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _model_of(m: dict[str, Any]) -> str | None:
    """The model that wrote an assistant message, where the message says (an API response's
    ``model``, or a harness's raw response kept beside it, as mini-swe-agent's ``extra``)."""
    if isinstance(m.get("model"), str):
        return m["model"]
    extra = m.get("extra")
    response = extra.get("response") if isinstance(extra, dict) else None
    if isinstance(response, dict) and isinstance(response.get("model"), str):
        return response["model"]
    return None


_BASH_BLOCK = re.compile(r"```(?:bash|sh)\s*\n(.*?)\n```", re.DOTALL)  # mini-swe-agent's own pattern
_RETURNCODE = re.compile(r"^\s*<returncode>\s*(-?\d+)\s*</returncode>")


def bash_blocks(text: str) -> list[str]:
    """The ```bash / ```sh blocks of an agent message, as mini-swe-agent finds them, in linear
    time. Every match ends with the text's last closing fence or before it, so only the text up
    to there is searched: an opening fence after it would scan to the end of the text in vain,
    once per opening (quadratic: 12 s for 140 KB of unclosed fences)."""
    end = text.rfind("\n```")
    return _BASH_BLOCK.findall(text, 0, end + 4) if end >= 0 else []


def _has_tool_calls(m: dict[str, Any]) -> bool:
    if m.get("tool_calls") or m.get("function_call") or m.get("role") in ("tool", "function"):
        return True
    content = m.get("content")
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result") for b in content)


def is_mini_swe_agent(messages: list[Any]) -> bool:
    """mini-swe-agent's trajectory: no tool calls; the agent writes one ```bash block per
    message and the harness answers with a ``user`` message ``<returncode>N</returncode>
    <output>...``. A chat with tool calls is not one (a user may paste such output there),
    and an observation must answer an assistant message's bash block."""
    if any(isinstance(m, dict) and _has_tool_calls(m) for m in messages):
        return False
    return any(
        isinstance(m, dict)
        and m.get("role") == "user"
        and _RETURNCODE.match(_parts_text(m.get("content")))
        and isinstance(prev, dict)
        and prev.get("role") == "assistant"
        and bash_blocks(_parts_text(prev.get("content")))
        for prev, m in zip(messages, messages[1:])
    )


def _observation(i: int, text: str, previous: Any) -> list[Any]:
    """A mini-swe-agent observation (a ``user`` message after the first) as the tool call it
    answers (the one ```bash block of the agent's message before it) and its result; after a
    message with no or several blocks, the harness's notice (a system message)."""
    said = _parts_text(previous.get("content")) if isinstance(previous, dict) and previous.get("role") == "assistant" else ""
    blocks = bash_blocks(said)
    if len(blocks) != 1:
        # the harness ran nothing: it refuses a message without exactly one action ("Please always
        # provide EXACTLY ONE action in triple backticks, found 3 actions"); its notice is no command result
        return [SystemText(record=i, text=text)]
    code = _RETURNCODE.match(text)
    cid = f"bash_{i}"
    out: list[Any] = [ToolCall(record=i, id=cid, name="bash", input={"command": blocks[0]})]
    out.append(ToolResult(record=i, tool_use_id=cid, tool_name="bash", text=text, is_error=bool(code and code.group(1) != "0")))
    return out


def parse_messages(
    messages: list[Any], *, fmt: str = "auto", system: Any = None, path: str | None = None, model: str | None = None
) -> Transcript:
    """``model``: the model the messages were sent to (a request's top-level ``model``), unless
    an assistant message names the one that wrote it."""
    if fmt == "auto":
        fmt = detect_message_format(messages)
    events: list[Any] = []
    skipped: Counter[str] = Counter()
    names: dict[str, str] = {}
    mini = is_mini_swe_agent(messages)
    seen_user = False
    if system:
        events.append(SystemText(record=0, text=_parts_text(system)))
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict):
            skipped["malformed-message"] += 1
            continue
        mark = len(events)
        try:
            role = m.get("role")
            content = m.get("content")
            if role in ("system", "developer"):
                events.append(SystemText(record=i, text=_parts_text(content)))
            elif role == "user" and mini and seen_user:  # the harness's answer, not a person's words
                events.extend(_observation(i, _parts_text(content), messages[i - 2] if i >= 2 else None))
            elif role == "user":
                seen_user = True
                if isinstance(content, list):
                    for b in content:
                        if isinstance(b, dict) and b.get("type") == "tool_result":
                            tid = str(b.get("tool_use_id", ""))
                            events.append(
                                ToolResult(
                                    record=i,
                                    tool_use_id=tid,
                                    tool_name=names.get(tid),
                                    text=_parts_text(b.get("content")),
                                    is_error=bool(b.get("is_error")),
                                )
                            )
                        elif isinstance(b, dict) and isinstance(b.get("text"), str):
                            events.append(UserText(record=i, text=b["text"]))
                        elif isinstance(b, str):
                            events.append(UserText(record=i, text=b))
                else:
                    events.append(UserText(record=i, text=_parts_text(content)))
            elif role == "assistant":
                model = _model_of(m) or model
                if isinstance(content, list):
                    for b in content:
                        if not isinstance(b, dict):
                            continue
                        bt = b.get("type")
                        if bt == "tool_use" and isinstance(b.get("id"), str):
                            names[b["id"]] = str(b.get("name", "?"))
                            events.append(ToolCall(record=i, id=b["id"], name=str(b.get("name", "?")), input=_args(b.get("input"))))
                        elif bt == "thinking":
                            events.append(Thinking(record=i, text=str(b.get("thinking", ""))))
                        elif isinstance(b.get("text"), str):
                            events.append(AssistantText(record=i, text=b["text"]))
                elif content:
                    events.append(AssistantText(record=i, text=_parts_text(content)))
                for call in m.get("tool_calls") or []:
                    if not isinstance(call, dict):
                        continue
                    fn = call.get("function") if isinstance(call.get("function"), dict) else {}
                    cid = str(call.get("id", f"call_{i}"))
                    names[cid] = str(fn.get("name", "?"))
                    events.append(ToolCall(record=i, id=cid, name=names[cid], input=_args(fn.get("arguments"))))
                fc = m.get("function_call")
                if isinstance(fc, dict):
                    cid = f"function_call_{i}"
                    names[cid] = str(fc.get("name", "?"))
                    names["__last_function__"] = cid
                    events.append(ToolCall(record=i, id=cid, name=names[cid], input=_args(fc.get("arguments"))))
            elif role == "tool":
                tid = str(m.get("tool_call_id", ""))
                events.append(ToolResult(record=i, tool_use_id=tid, tool_name=names.get(tid) or _name(m.get("name")), text=_parts_text(content)))
            elif role == "function":
                tid = names.get("__last_function__", "")
                events.append(ToolResult(record=i, tool_use_id=tid, tool_name=_name(m.get("name")), text=_parts_text(content)))
            else:
                skipped[f"unknown-role:{str(role)[:40]}"] += 1
        except (TypeError, ValueError, AttributeError):  # a field of the wrong type: skip the message
            del events[mark:]
            skipped["malformed-message"] += 1
    return Transcript(
        format=fmt,  # type: ignore[arg-type]
        events=events,
        path=path,
        skipped=sum(skipped.values()),
        skipped_reasons=dict(skipped),
        model=model if isinstance(model, str) and model else None,
    )
