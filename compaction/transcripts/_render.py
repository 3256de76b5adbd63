"""Plain-text rendering of events: what token counts are measured on and what an LLM
backend reads. One header line per event, then its text, verbatim."""

from __future__ import annotations

import json
from typing import Any, Iterable

from ._model import TEXT_EDITOR_TOOLS

__all__ = ["render_event", "render_transcript", "tool_input_text"]


def _editor_head(inp: dict[str, Any]) -> str:
    """A text-editor call's first line: its command and path (``view /repo/app.py``), and
    the lines it views or inserts at."""
    head = " ".join(v for v in (inp.get("command"), inp.get("path")) if isinstance(v, str) and v)
    for key in ("view_range", "insert_line"):
        if inp.get(key) is not None:
            head += f" ({key}: {json.dumps(inp[key], default=str)})"
    return head or "(no command)"


def tool_input_text(name: str, inp: dict[str, Any]) -> str:
    """A tool call's input as text: the command for shells, command + path + text for text
    editors, path + new text for edits, else JSON."""
    if not isinstance(inp, dict):
        return str(inp)
    editor = name in TEXT_EDITOR_TOOLS
    if not editor and isinstance(inp.get("command"), str) and len(inp) <= 4:
        return "$ " + inp["command"]
    parts: list[str] = [_editor_head(inp)] if editor else []
    named = ("file_path", "notebook_path") if editor else ("file_path", "path", "notebook_path")
    for key in named + ("pattern", "url", "query", "description", "prompt"):
        if isinstance(inp.get(key), str):
            parts.append(f"{key}: {inp[key]}")
    for key in ("old_string", "new_string", "content", "new_source", "old_str", "new_str", "file_text"):
        if isinstance(inp.get(key), str):
            parts.append(f"{key}:\n{inp[key]}")
    if isinstance(inp.get("edits"), list):
        for ed in inp["edits"]:
            if isinstance(ed, dict):
                for key in ("old_string", "new_string"):
                    if isinstance(ed.get(key), str):
                        parts.append(f"{key}:\n{ed[key]}")
    if isinstance(inp.get("todos"), list):
        for td in inp["todos"]:
            if isinstance(td, dict):
                parts.append(f"- [{td.get('status', '')}] {td.get('content', '')}")
    if parts:
        return "\n".join(parts)
    return json.dumps(inp, ensure_ascii=False, default=str)


def render_event(e: Any) -> str:
    k = e.kind
    if k == "user":
        return f"[user]\n{e.text}"
    if k == "assistant":
        return f"[assistant]\n{e.text}"
    if k == "thinking":
        return f"[thinking]\n{e.text}"
    if k == "tool_call":
        return f"[tool call {e.name}]\n{tool_input_text(e.name, e.input)}"
    if k == "tool_result":
        tag = " error" if e.is_error else ""
        return f"[tool result {e.tool_name or '?'}{tag}]\n{e.text}"
    if k == "compact_boundary":
        return "[compact boundary]"
    if k == "compact_summary":
        return f"[compact summary]\n{e.text}"
    if k == "system":
        return f"[system]\n{e.text}"
    return f"[{k}]"


def render_transcript(events: Iterable[Any]) -> str:
    return "\n\n".join(render_event(e) for e in events)
