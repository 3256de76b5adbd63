"""Reader for Claude Code session files (``~/.claude/projects/<project>/<session>.jsonl``).

One JSON record per line. ``user`` / ``assistant`` records carry ``message`` (one record
per content block for assistant turns); ``system`` records with ``subtype ==
"compact_boundary"`` mark a compaction, and the ``user`` record with ``isCompactSummary``
that follows holds the summary. ``progress``, ``file-history-snapshot``,
``queue-operation``, ``summary`` and other bookkeeping records are known and ignored;
records of any other type, malformed JSON and records without a usable message are
skipped and counted. Sub-agents' files (``<session>/subagents/agent-*.jsonl``) are read
into ``Transcript.subagents``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from ._model import (
    AssistantText,
    CompactBoundary,
    CompactSummary,
    Thinking,
    ToolCall,
    ToolResult,
    Transcript,
    UserText,
)

__all__ = ["parse_claude_code_lines", "read_claude_code", "looks_like_claude_code", "KNOWN_IGNORED_TYPES"]

#: record types that carry no conversation (known, ignored, not counted as skipped)
KNOWN_IGNORED_TYPES = frozenset(
    {"progress", "file-history-snapshot", "queue-operation", "summary", "custom-title", "tag", "attachment"}
)
_CONVERSATION_TYPES = frozenset({"user", "assistant", "system"})
_COMMAND = re.compile(r"<command-name>\s*(/?[^<\s]+)\s*</command-name>")


def looks_like_claude_code(records: Iterable[Any]) -> bool:
    for rec in records:
        if isinstance(rec, dict) and isinstance(rec.get("type"), str):
            if rec["type"] in KNOWN_IGNORED_TYPES or "sessionId" in rec or "parentUuid" in rec:
                return True
            if rec["type"] in ("user", "assistant") and isinstance(rec.get("message"), dict):
                return True
    return False


def _block_text(content: Any) -> str:
    """Text of a tool_result ``content``: a string, or a list of text (and image) blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for b in content:
            if isinstance(b, dict):
                if isinstance(b.get("text"), str):
                    parts.append(b["text"])
                elif b.get("type") == "image":
                    parts.append("[image]")
                elif b.get("type") == "tool_reference" and isinstance(b.get("tool_name"), str):
                    parts.append(b["tool_name"])
            elif isinstance(b, str):
                parts.append(b)
        return "\n".join(parts)
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return json.dumps(content, ensure_ascii=False, default=str)


def _patch_text(patch: Any) -> str | None:
    if not isinstance(patch, list) or not patch:
        return None
    out: list[str] = []
    for hunk in patch:
        if not isinstance(hunk, dict):
            continue
        out.append(
            f"@@ -{hunk.get('oldStart', '?')},{hunk.get('oldLines', '?')} "
            f"+{hunk.get('newStart', '?')},{hunk.get('newLines', '?')} @@"
        )
        out.extend(str(x) for x in hunk.get("lines", []) if isinstance(x, (str, int, float)))
    return "\n".join(out) or None


def _structured(tur: Any) -> dict[str, Any]:
    """Fields of ``toolUseResult`` worth keeping (file path, patch, stdout/stderr)."""
    if not isinstance(tur, dict):
        return {}
    out: dict[str, Any] = {}
    fp = tur.get("filePath")
    if not isinstance(fp, str) and isinstance(tur.get("file"), dict):
        fp = tur["file"].get("filePath")
    if isinstance(fp, str):
        out["file_path"] = fp
    patch = _patch_text(tur.get("structuredPatch"))
    if patch:
        out["patch"] = patch
    for key in ("stdout", "stderr"):
        if isinstance(tur.get(key), str):
            out[key] = tur[key]
    return out


def _usage_tokens(usage: Any) -> int | None:
    if not isinstance(usage, dict):
        return None
    total = 0
    seen = False
    for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        v = usage.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            total += int(v)
            seen = True
    return total if seen else None


def parse_claude_code_lines(lines: Iterable[bytes | str], *, path: str | None = None) -> Transcript:
    events: list[Any] = []
    skipped: Counter[str] = Counter()
    tool_names: dict[str, str] = {}
    pending_results: list[int] = []  # indexes of results whose call was not seen yet
    session_id = cwd = model = None
    usage: int | None = None
    agent_id: str | None = None
    # Sub-agent ("sidechain") records written into the main session file (older Claude Code):
    # their events and usage are set aside, and dropped if the file has a main conversation.
    side_events: list[tuple[int, int]] = []
    side_records = 0
    main_seen = False
    main_usage: int | None = None
    main_model: str | None = None

    for lineno, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                skipped["invalid-utf8"] += 1
                continue
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            skipped["malformed-json"] += 1
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("type"), str):
            skipped["malformed-record"] += 1
            continue
        rtype = rec["type"]
        if rtype in KNOWN_IGNORED_TYPES:
            continue
        if rtype not in _CONVERSATION_TYPES:
            skipped[f"unknown-type:{rtype[:40]}"] += 1
            continue
        mark = len(events)
        sidechain = rec.get("isSidechain") is True
        prev_usage, prev_model = usage, model
        failed = False
        try:
            if isinstance(rec.get("sessionId"), str):
                session_id = session_id or rec["sessionId"]
            if isinstance(rec.get("cwd"), str):
                cwd = rec["cwd"]
            if isinstance(rec.get("agentId"), str):
                agent_id = agent_id or rec["agentId"]
            common = {
                "record": lineno,
                "timestamp": rec.get("timestamp") if isinstance(rec.get("timestamp"), str) else None,
                "agent_id": rec.get("agentId") if isinstance(rec.get("agentId"), str) else None,
            }

            if rtype == "system":
                if rec.get("subtype") == "compact_boundary":
                    meta = rec.get("compactMetadata") if isinstance(rec.get("compactMetadata"), dict) else {}
                    pre = meta.get("preTokens")
                    events.append(
                        CompactBoundary(
                            **common,
                            trigger=meta.get("trigger") if isinstance(meta.get("trigger"), str) else None,
                            pre_tokens=pre if isinstance(pre, int) and not isinstance(pre, bool) else None,
                        )
                    )
                # other system records (hook summaries, durations, notices) carry no conversation
                continue

            msg = rec.get("message")
            if not isinstance(msg, dict):
                skipped["no-message"] += 1
                continue
            content = msg.get("content")

            if rtype == "assistant":
                mid = msg.get("id") if isinstance(msg.get("id"), str) else None
                model_name = msg.get("model") if isinstance(msg.get("model"), str) else None
                if model_name and model_name != "<synthetic>":
                    model = model_name
                ctx = _usage_tokens(msg.get("usage"))
                if ctx is not None and ctx > 0:
                    usage = ctx
                blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
                if not isinstance(blocks, list):
                    skipped["malformed-record"] += 1
                    continue
                for b in blocks:
                    if not isinstance(b, dict):
                        skipped["malformed-block"] += 1
                        continue
                    bt = b.get("type")
                    if bt == "text" and isinstance(b.get("text"), str):
                        events.append(
                            AssistantText(**common, message_id=mid, context_tokens=ctx, text=b["text"], model=model_name)
                        )
                    elif bt == "thinking":
                        events.append(Thinking(**common, message_id=mid, context_tokens=ctx, text=str(b.get("thinking", ""))))
                    elif bt in ("tool_use", "server_tool_use") and isinstance(b.get("id"), str):
                        name = str(b.get("name", "?"))
                        tool_names[b["id"]] = name
                        inp = b.get("input") if isinstance(b.get("input"), dict) else {"input": b.get("input")}
                        events.append(ToolCall(**common, message_id=mid, context_tokens=ctx, id=b["id"], name=name, input=inp))
                    elif bt == "redacted_thinking":
                        continue
                    else:
                        skipped[f"unknown-block:{str(bt)[:40]}"] += 1
                continue

            # user
            if isinstance(content, str):
                if rec.get("isCompactSummary"):
                    events.append(CompactSummary(**common, text=content))
                else:
                    m = _COMMAND.search(content)
                    events.append(
                        UserText(**common, text=content, is_meta=bool(rec.get("isMeta")), command=m.group(1) if m else None)
                    )
                continue
            if not isinstance(content, list):
                skipped["malformed-record"] += 1
                continue
            extra = _structured(rec.get("toolUseResult"))
            n_results = sum(1 for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
            for b in content:
                if not isinstance(b, dict):
                    skipped["malformed-block"] += 1
                    continue
                bt = b.get("type")
                if bt == "tool_result":
                    tid = str(b.get("tool_use_id", ""))
                    name = tool_names.get(tid)
                    if name is None:
                        pending_results.append(len(events))
                    events.append(
                        ToolResult(
                            **common,
                            tool_use_id=tid,
                            tool_name=name,
                            text=_block_text(b.get("content")),
                            is_error=bool(b.get("is_error")),
                            **(extra if n_results == 1 else {}),
                        )
                    )
                elif bt == "text" and isinstance(b.get("text"), str):
                    if rec.get("isCompactSummary"):
                        events.append(CompactSummary(**common, text=b["text"]))
                    else:
                        m = _COMMAND.search(b["text"])
                        events.append(
                            UserText(**common, text=b["text"], is_meta=bool(rec.get("isMeta")), command=m.group(1) if m else None)
                        )
                elif bt in ("image", "document"):
                    continue
                else:
                    skipped[f"unknown-block:{str(bt)[:40]}"] += 1
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError):
            # a field of the wrong type somewhere in the record: skip it whole
            del events[mark:]
            pending_results = [x for x in pending_results if x < mark]
            skipped["malformed-record"] += 1
            failed = True
        finally:  # also after the `continue`s above
            if not failed and sidechain:
                side_records += 1
                if len(events) > mark:
                    side_events.append((mark, len(events)))
            elif not failed and rtype in ("user", "assistant"):
                main_seen = True
                main_usage = usage if usage != prev_usage else main_usage
                main_model = model if model != prev_model else main_model

    for i in pending_results:  # results whose call came later (or never): match now
        ev = events[i]
        if ev.tool_use_id in tool_names:
            events[i] = ev.model_copy(update={"tool_name": tool_names[ev.tool_use_id]})

    if main_seen and side_records:
        drop = {i for a, b in side_events for i in range(a, b)}
        events = [ev for i, ev in enumerate(events) if i not in drop]
        skipped["sidechain"] += side_records
        usage, model = main_usage, main_model

    # after a compaction, the usage of a response from before it is not the context's size
    last_boundary = max((i for i, ev in enumerate(events) if isinstance(ev, CompactBoundary)), default=None)
    if last_boundary is not None and not any(ev.context_tokens for ev in events[last_boundary + 1 :]):
        usage = None
    return Transcript(
        format="claude-code",
        events=events,
        session_id=session_id or agent_id,
        cwd=cwd,
        path=path,
        skipped=sum(skipped.values()),
        skipped_reasons=dict(skipped),
        usage_tokens=usage,
        model=model,
    )


def _read_subagent(f: Path, base: Path) -> bytes | None:
    """A sub-agent file's bytes, or None unless it is a regular file inside ``base`` (the
    session's folder, resolved once by the caller).

    The session file itself was checked by the caller (allowed roots); a symlink or a FIFO planted
    in its ``subagents`` folder must not read a file from elsewhere or block the reader, and a
    folder swapped for a link while reading must not either (where the platform says which file
    a descriptor opened, that is checked after opening)."""
    import os
    import stat

    try:
        real = f.resolve(strict=True)
        if not real.is_relative_to(base):
            return None
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        try:
            opened = Path(f"/proc/self/fd/{fd}")
            if opened.is_symlink() and not Path(os.readlink(opened)).is_relative_to(base):
                return None
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > 256 * 1024 * 1024:
                return None
            with os.fdopen(fd, "rb", closefd=False) as fh:
                return fh.read()
        finally:
            os.close(fd)
    except (OSError, RuntimeError, ValueError):
        return None


def read_claude_code(path: Path, data: bytes, *, subagents: bool = True, resolved: bool = False) -> Transcript:
    """``resolved``: ``path`` is already resolved (a file that passed the folder check): its
    folder is not resolved again, so a link swapped in since cannot move it elsewhere."""
    t = parse_claude_code_lines(data.split(b"\n"), path=str(path))
    if not subagents:
        return t
    try:
        base = path.parent if resolved else path.resolve().parent
    except (OSError, RuntimeError):
        return t
    folder = path.with_suffix("") / "subagents"
    subs: dict[str, Transcript] = {}
    if folder.is_dir():
        for f in sorted(folder.glob("agent-*.jsonl")):
            data = _read_subagent(f, base)
            if data is None:
                continue
            st = parse_claude_code_lines(data.split(b"\n"), path=str(f))
            subs[f.stem.removeprefix("agent-")] = st
    if subs:
        t = t.model_copy(update={"subagents": subs})
    return t
