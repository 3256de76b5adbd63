"""The stdio transport: the SDK's own, with incoming lines it cannot read repaired first.

A JSON string may hold a lone surrogate escape (``"\\ud83d"``: a Node client that cut a tool
output in the middle of an emoji). That is valid JSON, but the SDK's parser refuses the line, and
on stdio a refused line is answered by nothing: the client waits until its own timeout (60 s in
the MCP Inspector). In such a line each escape of a lone surrogate becomes ``\\ufffd`` (U+FFFD),
edited in place, and the message goes on, so the call gets its answer.

The SDK opens stdin itself and gives no way to filter its lines; this module opens it the same
way (``mcp.server.stdio._claim_fd``: fd 0 diverted to the null device while serving) and passes
the filtered lines in. Where those SDK internals are missing or differ, the SDK's plain transport
runs.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio

log = logging.getLogger("context_distill.server")

__all__ = ["run_stdio", "repair_line"]

#: a JSON escape of a surrogate code unit; only lines holding one are looked at further
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")
#: every escape of a JSON text, left to right (escapes cannot overlap): \uXXXX with its code
#: unit, or a backslash and one character
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.S)


def repair_line(line: str) -> str:
    """``line`` itself, or, when it holds escapes of lone surrogates, the same line with each of
    them replaced by the escape of U+FFFD (escapes of valid pairs stay). The line is edited in
    place, never parsed and written again, so nothing else in it changes."""
    if not _SURROGATE_ESCAPE.search(line):
        return line
    escapes = list(_ESCAPE.finditer(line))
    units = [int(m.group(1), 16) if m.group(1) else None for m in escapes]

    def unit_at(k: int) -> int | None:
        return units[k] if 0 <= k < len(units) else None

    out: list[str] = []
    last = 0
    for k, m in enumerate(escapes):
        code = units[k]
        if code is None or not 0xD800 <= code <= 0xDFFF:
            continue
        if code <= 0xDBFF:  # high: a low one must follow right after it
            nxt = unit_at(k + 1)
            paired = nxt is not None and escapes[k + 1].start() == m.end() and 0xDC00 <= nxt <= 0xDFFF
        else:  # low: a high one must come right before it
            prev = unit_at(k - 1)
            paired = prev is not None and escapes[k - 1].end() == m.start() and 0xD800 <= prev <= 0xDBFF
        if not paired:
            out.append(line[last : m.start()])
            out.append("\\ufffd")
            last = m.end()
    if not out:
        return line
    log.warning("a request held lone surrogates (text cut inside a character); each was read as U+FFFD")
    return "".join(out) + line[last:]


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
        options = lowlevel.create_initialization_options()
        buffer, release = _claim_fd(0, sys.stdin, "rb", _open_stdin_diversion)
    except Exception:  # another SDK layout: its own transport, unfiltered
        log.info("stdio line repair unavailable with this mcp version; using the SDK's stdio transport", exc_info=True)
        await mcp.run_stdio_async()
        return
    try:
        stdin = anyio.wrap_file(_UnownedTextWrapper(buffer, encoding="utf-8", errors="replace"))
        async with stdio_server(stdin=_RepairedLines(stdin)) as (read_stream, write_stream):  # type: ignore[arg-type]
            await lowlevel.run(read_stream, write_stream, options)
    finally:
        if release is not None:
            release()
