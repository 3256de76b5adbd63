"""The official MCP Inspector CLI against the stdio server: it lists the tools with their schemas
(and finds no schema portability problems with --strict) and calls compact, expand and status.

Needs npx (Node.js) and, the first time, the npm registry; skipped with that reason where npx is
missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from server_support import FIXTURES, MODEL_PRESENT, ROOT, SERVER_CMD, TEXT_TOOLS, TOOLS, observation

from server._app import RESULT_META_KEY

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
NPX = shutil.which("npx")

pytestmark = pytest.mark.skipif(NPX is None, reason="npx (Node.js) is not installed, so the MCP Inspector cannot run")


def inspector(tmp_path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    server_env = ["-e", "CONTEXT_DISTILL_LOG_LEVEL=WARNING"]
    for key in ("CONTEXT_DISTILL_CACHE_DIR", "CONTEXT_DISTILL_DATA_DIR"):
        server_env += ["-e", f"{key}={os.environ[key]}"]
    if not MODEL_PRESENT:
        server_env += ["-e", "CONTEXT_DISTILL_SCORER=bm25"]
    server_env += ["-e", f"PYTHONPATH={ROOT}"]
    env = {**os.environ, "MCP_CATALOG_PATH": str(tmp_path / "inspector-catalog.json")}
    return subprocess.run(
        [NPX, "-y", INSPECTOR, "--cli", *server_env, "--cwd", str(ROOT), *SERVER_CMD, *args],
        capture_output=True,
        env=env,
        cwd=str(tmp_path),
        timeout=timeout,
    )


def test_inspector_lists_the_tools_with_schemas(tmp_path):
    p = inspector(tmp_path, "--method", "tools/list", "--strict")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    tools = {t["name"]: t for t in json.loads(p.stdout)["tools"]}
    assert set(tools) == TOOLS
    for t in tools.values():
        assert t["inputSchema"]["type"] == "object"
        # the text tools give their text alone (fields in _meta), the data tools follow an outputSchema
        assert ("outputSchema" not in t) if t["name"] in TEXT_TOOLS else t["outputSchema"]["type"] == "object"
        assert t["annotations"]["readOnlyHint"] in (True, False)
    assert "ratio" in tools["compact"]["inputSchema"]["properties"]


def test_inspector_calls_compact_then_expand(tmp_path):
    text = observation()
    p = inspector(
        tmp_path,
        "--method", "tools/call", "--tool-name", "compact",
        "--tool-arg", f"text={text}", "--tool-arg", "ratio=0.3", "--tool-arg", "query=why does psql fail",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    out = json.loads(p.stdout)
    assert out["isError"] is False
    assert "structuredContent" not in out  # what the agent reads is the compacted text itself
    sc = out["_meta"][RESULT_META_KEY]
    assert out["content"][0]["text"].startswith(sc["text"])
    assert sc["tokens_after"] <= int(sc["tokens_before"] * 0.3) and sc["handle"]
    a, b = sc["omitted_line_ranges"][0]
    e = inspector(
        tmp_path, "--method", "tools/call", "--tool-name", "expand",
        "--tool-arg", f"handle={sc['handle']}", "--tool-arg", f"lines={a}-{b}",
    )  # fmt: skip
    assert e.returncode == 0, e.stderr.decode()[-2000:]
    expanded = json.loads(e.stdout)
    assert expanded["content"][0]["text"] == "".join(text.splitlines(keepends=True)[a - 1 : b])
    assert expanded["_meta"][RESULT_META_KEY]["line_ranges"] == [[a, b]]


def test_inspector_sees_a_tool_error_for_bad_input(tmp_path):
    p = inspector(tmp_path, "--method", "tools/call", "--tool-name", "compact", "--tool-arg", "text=abc", "--tool-arg", "ratio=2")
    out = json.loads(p.stdout)
    assert out["isError"] is True
    assert "ratio" in out["content"][0]["text"] and len(out["content"][0]["text"].splitlines()) == 1
    st = inspector(tmp_path, "--method", "tools/call", "--tool-name", "status")
    assert st.returncode == 0 and json.loads(st.stdout)["structuredContent"]["tokenizer"]["name"] == "o200k_base"
    assert FIXTURES.is_dir()
