"""Transcript readers: Claude Code session JSONL, OpenAI / Anthropic chat messages, plain text.

    >>> from compaction import read_transcript
    >>> t = read_transcript("~/.claude/projects/-home-me-app/3f2c....jsonl")
    >>> t.format, len(t.events), t.skipped, t.usage_tokens
    >>> [e.text for e in t.events if e.kind == "tool_result"]     # every tool result, in full

Nothing here is fatal for bad records: malformed lines and unknown record types are
skipped and counted in ``Transcript.skipped`` / ``skipped_reasons``. JSON that holds no chat
messages and no Claude Code records (another framework's output) is a ``TranscriptError``
("transcript format not recognised"), not plain text, unless ``fmt="text"`` asks for that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._config import default_settings
from .._exceptions import BinaryInputError, InputError, InputTooLargeError, TranscriptError
from .._paths import CheckedFile
from ._model import (
    EDIT_TOOLS,
    TEXT_EDITOR_TOOLS,
    AssistantText,
    CompactBoundary,
    CompactSummary,
    Event,
    SystemText,
    Thinking,
    ToolCall,
    ToolResult,
    Transcript,
    UserText,
    file_action,
)
from ._render import render_event, render_transcript
from .claude_code import looks_like_claude_code, parse_claude_code_lines, read_claude_code
from .messages import parse_messages
from .text import parse_text

__all__ = [
    "read_transcript",
    "Transcript",
    "Event",
    "UserText",
    "AssistantText",
    "Thinking",
    "ToolCall",
    "ToolResult",
    "CompactBoundary",
    "CompactSummary",
    "SystemText",
    "EDIT_TOOLS",
    "TEXT_EDITOR_TOOLS",
    "file_action",
    "render_event",
    "render_transcript",
    "FORMATS",
    "is_conversation",
    "skipped_warning",
]

FORMATS = ("auto", "claude-code", "openai", "anthropic", "text")


def read_transcript(
    source: Any,
    *,
    fmt: str = "auto",
    subagents: bool = True,
    before_boundary: int | None = None,
) -> Transcript:
    """Read a session transcript.

    ``source``: a path (``str`` or ``Path``) to a Claude Code ``.jsonl``, an OpenAI /
    Anthropic messages ``.json`` / ``.jsonl``, or a plain ``.txt`` / ``.md``; or the
    transcript itself as text; or a list of message dicts; or a ``Transcript``.
    ``fmt`` forces a format. ``before_boundary=n`` keeps only what came before the
    ``n``-th compact boundary (-1: the last), the history that compaction summarized.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown transcript format {fmt!r}: use one of {', '.join(FORMATS)}")
    t = _read(source, fmt, subagents)
    if before_boundary is not None:
        try:
            t = t.before_boundary(before_boundary)
        except IndexError:
            raise TranscriptError(
                f"the transcript has {len(t.boundaries)} compact boundaries; before_boundary={before_boundary} names none"
            ) from None
    return t


def _read(source: Any, fmt: str, subagents: bool) -> Transcript:
    if isinstance(source, Transcript):
        return source
    if isinstance(source, list):
        if fmt in ("claude-code",):
            return parse_claude_code_lines([json.dumps(r, default=str) for r in source])
        if fmt == "text":
            raise InputError("a list of messages cannot be read as plain text")
        if looks_like_claude_code(source[:50]) and fmt == "auto":
            return parse_claude_code_lines([json.dumps(r, default=str) for r in source])
        if source and not _has_messages(source):
            raise TranscriptError(_NO_MESSAGES if fmt in ("openai", "anthropic") else _NOT_RECOGNISED)
        return parse_messages(source, fmt=fmt)
    if isinstance(source, dict) and isinstance(source.get("messages"), list):
        return parse_messages(source["messages"], fmt=fmt, system=source.get("system"), model=_str(source.get("model")))
    if isinstance(source, (bytes, bytearray)):
        return _from_bytes(bytes(source), fmt, path=None, subagents=False)
    if isinstance(source, CheckedFile):  # a path that passed the server's folder check
        data = source.read(default_settings().limits.max_input_bytes)
        return _from_bytes(data, fmt, path=source.path, subagents=subagents, resolved=True)
    if isinstance(source, Path) or (isinstance(source, str) and _is_path_like(source)):
        try:
            path = Path(source).expanduser()
            is_file = path.is_file()
            size = path.stat().st_size if is_file else 0
        except (OSError, ValueError) as exc:
            raise TranscriptError(f"cannot open transcript {str(source)[:200]!r}: {_one_line(exc)}") from None
        if not is_file:
            raise TranscriptError(f"transcript file {str(path)[:300]!r} does not exist or is not a regular file")
        limit = default_settings().limits.max_input_bytes
        if size > limit:
            raise InputTooLargeError(
                f"transcript is {size:,} bytes, over the limit of {limit:,}; raise CONTEXT_DISTILL_MAX_INPUT_BYTES"
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TranscriptError(f"cannot read transcript {str(path)[:300]!r}: {_one_line(exc)}") from None
        return _from_bytes(data, fmt, path=path, subagents=subagents)
    if isinstance(source, str):
        return _from_bytes(source.encode("utf-8", "surrogatepass"), fmt, path=None, subagents=False)
    raise InputError(
        f"a transcript must be a path, text, or a list of messages, got {type(source).__name__}"
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())[:200]


def _is_path_like(s: str) -> bool:
    if not s or "\n" in s or len(s) > 4096 or s.lstrip().startswith(("{", "[")):
        return False
    try:
        p = Path(s).expanduser()
        if p.exists():
            return True
        # a missing file is still meant as a path when it looks like one (so the error says so)
        return p.suffix.lower() in (".jsonl", ".json", ".txt", ".md", ".log") and not any(c.isspace() for c in s)
    except (OSError, ValueError):
        return False


def _decode(data: bytes) -> str:
    if b"\x00" in data:
        raise BinaryInputError("transcript contains NUL bytes; this looks like binary data, not a transcript")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BinaryInputError(f"transcript is not valid UTF-8 (byte {exc.start})") from None


def _from_bytes(data: bytes, fmt: str, *, path: Path | None, subagents: bool, resolved: bool = False) -> Transcript:
    pstr = str(path) if path else None
    if fmt == "text":
        return parse_text(_decode(data), path=pstr)
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
    lines = data.split(b"\n")
    jsonl = _mostly_json_lines(lines)
    if fmt == "claude-code" or (
        fmt == "auto" and (jsonl or data.lstrip()[:1] == b"{") and _first_records_are_cc(lines)
    ):
        if path is not None:
            return read_claude_code(path, data, subagents=subagents, resolved=resolved)
        return parse_claude_code_lines(lines, path=pstr)
    head = data.lstrip()[:1]
    if head in (b"[", b"{") or jsonl or fmt in ("openai", "anthropic"):
        val: Any = _NOT_JSON
        if head in (b"[", b"{") and b"\x00" not in data:
            try:  # the whole input as one JSON value; not UTF-8: decoded line by line below, or refused as text
                val = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                pass
        if isinstance(val, list) and (_has_messages(val) or not val):
            return parse_messages(val, fmt=fmt, path=pstr)
        if isinstance(val, dict) and isinstance(val.get("messages"), list):
            return parse_messages(
                val["messages"], fmt=fmt, system=val.get("system"), path=pstr, model=_str(val.get("model"))
            )
        if isinstance(val, dict) and "role" in val:
            return parse_messages([val], fmt=fmt, path=pstr)
        if isinstance(val, list) and fmt == "auto" and looks_like_claude_code(val[:50]):
            return parse_claude_code_lines([json.dumps(r, default=str) for r in val], path=pstr)
        if val is not _NOT_JSON:  # the whole input is JSON, but no session
            raise TranscriptError(_NO_MESSAGES if fmt in ("openai", "anthropic") else _NOT_RECOGNISED)
        if jsonl or fmt in ("openai", "anthropic"):
            t, parsed, bad = _messages_jsonl(lines, fmt, pstr)
            if t is not None:
                return t
            if fmt in ("openai", "anthropic"):
                raise TranscriptError(_NO_MESSAGES)
            if parsed and parsed >= bad:  # JSONL (most lines parse), but no session in it
                raise TranscriptError(_NOT_RECOGNISED)
    return parse_text(_decode(data), path=pstr)


_NOT_JSON = object()
_SPACE = frozenset((b"", b" ", b"\t", b"\r", b"\v", b"\f"))
_NO_MESSAGES = "no chat messages found: expected a JSON list of {role, content} objects"
_NOT_RECOGNISED = (
    "transcript format not recognised: this JSON holds no chat messages ({role, content} objects) and no "
    "Claude Code session records; accepted: a Claude Code session .jsonl, OpenAI / Anthropic messages (a JSON "
    "list, {\"messages\": [...]}, or one message per line), or plain text (--format text on the command "
    "line, fmt=\"text\" in Python, reads any file as plain text)"
)


def _mostly_json_lines(lines: list[bytes]) -> bool:
    """At least half of the non-blank lines are JSON objects (start with ``{``): JSONL, some of
    whose lines may be broken, not a text that quotes a line of JSON."""
    objects = other = 0
    for line in lines:
        head = line[:1]
        if head in _SPACE:
            head = line.lstrip()[:1]
            if not head:
                continue
        if head == b"{":
            objects += 1
        else:
            other += 1
    return objects > 0 and objects >= other


def _messages_jsonl(lines: list[bytes], fmt: str, pstr: str | None) -> tuple[Transcript | None, int, int]:
    """JSONL of chat messages, one per line, each line decoded on its own: a line that is not
    UTF-8 or not JSON is skipped and counted, as in a Claude Code file. Also how many lines parsed
    and how many did not; the transcript is None when no line is a message."""
    msgs: list[Any] = []
    bad: dict[str, int] = {}
    for raw in lines:
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad["invalid-utf8"] = bad.get("invalid-utf8", 0) + 1
            continue
        try:
            msgs.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError):
            bad["malformed-json"] = bad.get("malformed-json", 0) + 1
    if not _has_messages(msgs):
        return None, len(msgs), sum(bad.values())
    t = parse_messages(msgs, fmt=fmt, path=pstr)
    if bad:
        reasons = dict(t.skipped_reasons)
        for k, v in bad.items():
            reasons[k] = reasons.get(k, 0) + v
        t = t.model_copy(update={"skipped": t.skipped + sum(bad.values()), "skipped_reasons": reasons})
    return t, len(msgs), sum(bad.values())


def _has_messages(items: list[Any]) -> bool:
    """Some item is a chat message (an object with a ``role``): a JSON list of other records
    (an agent framework's own event log) is not read as an empty conversation."""
    return any(isinstance(m, dict) and "role" in m for m in items)


def skipped_warning(t: Transcript) -> str | None:
    """One line for a result's ``warnings`` when parts of ``t`` could not be read (malformed or
    non-UTF-8 lines, unknown record types, fields of the wrong type), else None. Sub-agent
    (sidechain) records set aside on purpose are not counted."""
    reasons = sorted(
        ((k, v) for k, v in t.skipped_reasons.items() if k != "sidechain" and v > 0), key=lambda kv: (-kv[1], kv[0])
    )
    n = sum(v for _, v in reasons)
    if not n:
        return None
    why = ", ".join(f"{k}: {v}" for k, v in reasons[:4]) + (", ..." if len(reasons) > 4 else "")
    what = "record was" if n == 1 else "records were"
    return f"{n:,} unreadable {what} skipped ({why}); this result leaves out what they held"


def is_conversation(items: list[Any]) -> bool:
    """A list that ``read_transcript`` reads as a session: chat messages or Claude Code records."""
    return _has_messages(items) or looks_like_claude_code(items[:50])


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_records_are_cc(lines: list[bytes]) -> bool:
    """The first (at most 50) lines that parse as JSON hold a Claude Code record: lines that do
    not parse (a corrupt or cut-off head) are passed over, not counted against the file."""
    recs = []
    tried = 0
    for line in lines:
        if line.lstrip()[:1] != b"{":
            continue
        tried += 1
        if tried > 200 or len(recs) >= 50:
            break
        try:
            recs.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            continue
    return looks_like_claude_code(recs)
