"""Helpers for the tests that talk to a real server process (stdio or HTTP) and real clients."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "server"
MODEL_ASSET = ROOT / "compaction" / "assets" / "deletion-model.onnx"
MODEL_PRESENT = MODEL_ASSET.is_file()

#: the server command every client test launches (works without an installed console script)
SERVER_CMD = [sys.executable, "-m", "compaction", "serve"]

TOOLS = {"compact", "expand", "summarize", "spawn_handoff", "context_status", "status"}
#: a raw JSON-RPC initialize request and the headers streamable HTTP wants, for tests that
#: speak HTTP to the server without the SDK client
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def observation() -> str:
    return (FIXTURES / "observation.txt").read_text(encoding="utf-8")


def server_env(extra: dict[str, str] | None = None, *, scorer: str | None = None) -> dict[str, str]:
    """Environment for a server subprocess: this test's isolated folders, the repo importable,
    and the bm25 baseline scorer only while the deletion model has not shipped (or when asked)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("CONTEXT_DISTILL_HTTP_TOKEN", None)
    if scorer is not None:
        env["CONTEXT_DISTILL_SCORER"] = scorer
    elif not MODEL_PRESENT:
        env["CONTEXT_DISTILL_SCORER"] = "bm25"
    else:
        env.pop("CONTEXT_DISTILL_SCORER", None)
    env["CONTEXT_DISTILL_ROOTS"] = str(FIXTURES)
    if extra:
        env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpServer:
    """`python -m compaction serve --http ...` on a free loopback port, stopped on exit."""

    def __init__(self, args: list[str] | None = None, env: dict[str, str] | None = None, log: Path | None = None):
        self.port = free_port()
        self.args = list(args or [])
        self.env = env or server_env()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        path = self.args[self.args.index("--path") + 1] if "--path" in self.args else "/mcp"
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> HttpServer:
        out = open(self.log, "wb") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [*SERVER_CMD, "--http", *([] if "--host" in self.args else ["--host", "127.0.0.1"]),
             "--port", str(self.port), *self.args],
            env=self.env,
            cwd=str(ROOT),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if self.log else subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError("server did not start listening within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


#: the tools whose result is text for the agent: their fields are in _meta, not structuredContent
TEXT_TOOLS = {"compact", "expand", "summarize", "spawn_handoff"}


def result_fields(result: Any) -> dict[str, Any]:
    """A tool result's typed fields: ``_meta[RESULT_META_KEY]`` for a text tool, else structuredContent."""
    from server._app import RESULT_META_KEY

    meta = result.meta or {}
    return meta[RESULT_META_KEY] if RESULT_META_KEY in meta else result.structured_content


def check_structured(tool: Any, result: Any) -> dict[str, Any]:
    """The result is not an error and its fields validate: a data tool's structuredContent against
    its outputSchema; a text tool's ``_meta`` fields against their model's schema, with no
    structuredContent (clients would show it to the agent instead of the text)."""
    from server import _models
    from server._app import RESULT_META_KEY

    assert not result.is_error, result.content[0].text if result.content else result
    if tool.name in TEXT_TOOLS:
        assert not tool.output_schema and result.structured_content is None, tool.name
        assert result.content and result.content[0].type == "text"
        fields = (result.meta or {})[RESULT_META_KEY]
        model = {"compact": _models.CompactOutput, "expand": _models.ExpandOutput,
                 "summarize": _models.SummarizeOutput, "spawn_handoff": _models.HandoffOutput}[tool.name]  # fmt: skip
        jsonschema.validate(fields, model.model_json_schema(mode="serialization"))
        return fields
    assert tool.output_schema, f"{tool.name} has no outputSchema"
    assert result.structured_content is not None
    jsonschema.validate(result.structured_content, tool.output_schema)
    return result.structured_content


def error_text(result: Any) -> str:
    assert result.is_error, f"expected an error, got {result.structured_content}"
    text = result.content[0].text
    assert text.strip()
    return text


def kept_lines_match(original: str, ranges: list[list[int]], compacted: str) -> None:
    """Every kept range is verbatim input lines, present in the compacted text in order."""
    lines = original.splitlines()
    pos = 0
    for a, b in ranges:
        chunk = "\n".join(lines[a - 1 : b])
        found = compacted.find(chunk, pos)
        assert found >= 0, f"kept lines {a}-{b} are not verbatim in the result"
        pos = found + len(chunk)
