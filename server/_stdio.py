"""The stdio transport: the SDK's own, with incoming lines it cannot read repaired first.

A JSON string may hold a lone surrogate escape (``"\\ud83d"``: a Node client that cut a tool
output in the middle of an emoji). That is valid JSON, but the SDK's parser refuses the line, and
on stdio a refused line is answered by nothing: the client waits until its own timeout (60 s in
the MCP Inspector). Such a line is read with ``json.loads``, each lone surrogate becomes U+FFFD
and the message goes on, so the call gets its answer.

The SDK opens stdin itself and gives no way to filter its lines; this module opens it the same
way (``mcp.server.stdio._claim_fd``: fd 0 diverted to the null device while serving) and passes
the filtered lines in. Where those SDK internals are missing, the SDK's plain transport runs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio

log = logging.getLogger("context_distill.server")

__all__ = ["run_stdio", "repair_line"]

#: a JSON escape of a surrogate code unit; only lines holding one are looked at twice
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def repair_line(line: str) -> str:
    """``line`` itself, or, when it is JSON holding lone surrogates, the same JSON with each
    replaced by U+FFFD (valid surrogate pairs are characters, and stay)."""
    if not _SURROGATE_ESCAPE.search(line):
        return line
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return line
    fixed = _replace_lone_surrogates(value)
    if fixed is value:
        return line
    log.warning("a request held lone surrogates (text cut inside a character); each was read as U+FFFD")
    return json.dumps(fixed, ensure_ascii=False) + ("\n" if line.endswith("\n") else "")


def _replace_lone_surrogates(value: Any) -> Any:
    """``value`` with lone surrogates replaced; the same object when it has none."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value) if _LONE_SURROGATE.search(value) else value
    if isinstance(value, list):
        items = [_replace_lone_surrogates(v) for v in value]
        return items if any(a is not b for a, b in zip(items, value)) else value
    if isinstance(value, dict):
        pairs = [(_replace_lone_surrogates(k), _replace_lone_surrogates(v)) for k, v in value.items()]
        changed = any(k2 is not k or v2 is not v for (k2, v2), (k, v) in zip(pairs, value.items()))
        return dict(pairs) if changed else value
    return value


class _RepairedLines:
    """An async text file's lines, each through ``repair_line``."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async for line in self._source:
            yield repair_line(line)


async def run_stdio(mcp: Any) -> None:
    """Serve ``mcp`` (an ``MCPServer``) over stdin/stdout until the client goes away."""
    try:
        from mcp.server.stdio import _claim_fd, _open_stdin_diversion, _UnownedTextWrapper, stdio_server

        lowlevel = mcp._lowlevel_server
    except (ImportError, AttributeError):  # another SDK layout: its own transport, unfiltered
        log.debug("stdio line repair unavailable in this mcp version", exc_info=True)
        await mcp.run_stdio_async()
        return
    buffer, release = _claim_fd(0, sys.stdin, "rb", _open_stdin_diversion)
    try:
        stdin = anyio.wrap_file(_UnownedTextWrapper(buffer, encoding="utf-8", errors="replace"))
        async with stdio_server(stdin=_RepairedLines(stdin)) as (read_stream, write_stream):  # type: ignore[arg-type]
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
    finally:
        if release is not None:
            release()
