"""Our hooks inside the real Claude Code (2.1.331), driven offline by ../shared/tools/claude-loop
against a scripted fake model API. We check what actually reached the "model".

Slow (about 10-20 s each): marked ``slow``. Skipped, with the reason, only where claude-loop,
Claude Code (and npm to install it) or the ``context-distill`` console script is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import compaction
from compaction import hooks

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
FIX = Path(__file__).resolve().parent / "fixtures" / "hooks"
LOOP = Path(os.environ.get("CONTEXT_DISTILL_CLAUDE_LOOP", ROOT.parent / "shared" / "tools" / "claude-loop")) / "claude_loop.py"
PARSER_C = (FIX / "ponyc-parser-c.view.txt").read_text()
MATCH_C = (FIX / "ponyc-match-c.view.txt").read_text()


def _claude_available() -> str | None:
    """None if claude-loop can find or install Claude Code, else why not."""
    if os.environ.get("CLAUDE_BIN") or shutil.which("claude"):
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "claude-loop" / "npm" / "node_modules" / ".bin" / "claude"
    if cache.exists() or shutil.which("npm"):
        return None
    return "Claude Code is not installed and npm is missing (claude-loop needs one of them)"


def _bin_dir() -> Path | None:
    here = Path(sys.executable).parent
    if (here / "context-distill").exists():
        return here
    found = shutil.which("context-distill")
    return Path(found).parent if found else None


@pytest.fixture
def loop_env(tmp_path):
    if not LOOP.exists():
        pytest.skip(f"claude-loop not found at {LOOP} (set CONTEXT_DISTILL_CLAUDE_LOOP)")
    why = _claude_available()
    if why:
        pytest.skip(why)
    bindir = _bin_dir()
    if bindir is None:
        pytest.skip("the context-distill console script is not installed (pip install -e .)")
    project = tmp_path / "proj"
    project.mkdir()
    for name in ("ponyc-parser-c.view.txt", "ponyc-match-c.view.txt", "ponyc-command-parser.view.txt", "big_output_mcp_server.py"):
        shutil.copy(FIX / name, project / name)
    # an existing project server, kept by install()
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": {"bigout": {"command": sys.executable, "args": ["big_output_mcp_server.py"]}}}))
    hooks.install(project)
    data_dir = tmp_path / "data"
    env = {
        "PATH": f"{bindir}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "CONTEXT_DISTILL_DATA_DIR": str(data_dir),
        "CONTEXT_DISTILL_CACHE_DIR": str(tmp_path / "cache"),
    }
    try:  # the deletion model when it is installed, else the BM25 baseline (the hook path is the same)
        compaction.Engine().scorer
    except (compaction.AssetError, ImportError):
        env["CONTEXT_DISTILL_SCORER"] = "bm25"
    return project, data_dir, env, tmp_path


def _loop(project: Path, scenario: Path, env: dict, out: Path, var: dict | None = None) -> dict:
    report = out / "report.json"
    cmd = [sys.executable, str(LOOP), "--project-dir", str(project), "--scenario", str(scenario), "--report", str(report), "--timeout", "240"]
    for k, v in (var or {}).items():
        cmd += ["--var", f"{k}={v}"]
    for k, v in env.items():
        cmd += ["--env", f"{k}={v}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode == 2 and "could not" in (p.stdout + p.stderr).lower():
        pytest.skip(f"claude-loop could not run Claude Code: {(p.stdout + p.stderr)[-300:]}")
    assert report.exists(), p.stdout[-2000:] + p.stderr[-2000:]
    r = json.loads(report.read_text())
    assert p.returncode == 0 and r["ok"], (r.get("errors"), p.stdout[-2000:])
    return r


def _results(r: dict, tool: str) -> list[dict]:
    """Each tool result once (later requests repeat earlier ones), in order."""
    seen: dict[str, dict] = {}
    for q in r["requests"]:
        for t in q.get("tool_results", []):
            if t["tool_name"] == tool:
                seen.setdefault(t["tool_use_id"], t)
    return list(seen.values())


def _no_shape_errors(r: dict) -> None:
    text = json.dumps(r.get("transcript_hook_records", [])) + json.dumps(r.get("hooks_seen", []))
    assert "does not match" not in text and "hook_error_during_execution" not in text
    runs = [run for step in r["steps"] for run in step.get("hook_runs", [])]
    ours = [run for run in runs if "context-distill hook" in run.get("command", "")]
    assert ours and all(run["status"] == 0 for run in ours), ours


def test_hooks_in_real_claude_code_shrink_and_survive_compaction(loop_env):
    project, data_dir, env, tmp = loop_env
    # the handle the hook will print: originals are content-addressed (Claude Code drops the final newline)
    from compaction._redact import redact_secrets
    from compaction._store import handle_for

    handle = handle_for(redact_secrets(PARSER_C.rstrip("\n")))
    r = _loop(project, FIX / "loop-shrink-and-compact.json", env, tmp, var={"HANDLE": handle})
    _no_shape_errors(r)

    bash = _results(r, "Bash")
    assert len(bash) == 3
    big, persisted, small = bash
    # 1. a 20,739-char Bash output reaches the model shrunk, lines verbatim, with the expand trailer
    assert big["chars"] < len(PARSER_C) * 0.5, big["chars"]
    assert f'context-distill: kept' in big["text"] and f'handle="{handle}"' in big["text"]
    # ... and the server's expand tool gives omitted lines back verbatim (our own tools are never shrunk)
    [exp] = _results(r, "mcp__context-distill__expand")
    runs = [run for step in r["steps"] for run in step.get("hook_runs", [])]
    assert not [run for run in runs if run["hook"].startswith("PostToolUse:mcp__context-distill__")]  # the matcher skips them
    wanted = PARSER_C.splitlines()[299:310]
    assert not exp["is_error"], exp["text"][:500]
    # the model reads the lines themselves, not the result's fields as JSON (they are in _meta, which
    # Claude Code does not show; it shows structuredContent instead of the text when there is one)
    assert exp["text"].splitlines() == wanted, exp["text"][:800]
    assert all(line in PARSER_C.splitlines() or compaction.is_marker_line(line) for line in big["text"].splitlines())
    # 2. over 30,000 chars Claude Code persists the output and shows a 2,000-char preview: ours
    assert "<persisted-output>" in persisted["text"] and "context-distill: kept" in persisted["text"]
    # 3. small outputs are untouched
    assert small["text"] == "1\n2\n3\n4\n5"
    # 4. an MCP tool's text result is shrunk too
    [mcp] = _results(r, "mcp__bigout__show_file")
    assert mcp["chars"] < len(MATCH_C) * 0.5 and "context-distill: kept" in mcp["text"]

    # 5. /compact: PreCompact stored a handoff for this project ...
    handoffs = [json.loads(p.read_text()) for p in (data_dir / "handoffs").glob("*.json")]
    assert len(handoffs) == 1 and handoffs[0]["project"] == str(project)
    hid = handoffs[0]["id"]
    records = json.dumps(r["transcript_hook_records"])
    assert f"handoff://{hid}" in records  # our PreCompact line, in the /compact output
    # ... and the next request carries it through SessionStart additionalContext
    after = [q for q in r["requests"] if q["kind"] == "main" and q["step"] == 3]
    assert after, "no request after the compaction"
    contexts = [h["text"] for h in after[0]["hook_context"] if "SessionStart hook additional context" in h["text"]]
    ours = [c for c in contexts if f"context-distill handoff {hid}" in c]
    assert ours, contexts
    assert handoffs[0]["text"][:500] in ours[0]


def test_auto_compaction_and_clear_inject_the_handoff(loop_env):
    project, data_dir, env, tmp = loop_env
    r = _loop(project, FIX / "loop-auto-compact.json", env, tmp)
    _no_shape_errors(r)
    runs = [h for s in r["steps"] for h in s.get("hook_runs", [])]
    assert any(h["hook"] == "PreCompact:auto" and "context-distill hook" in h["command"] for h in runs), runs
    handoffs = [json.loads(p.read_text()) for p in (data_dir / "handoffs").glob("*.json")]
    assert len(handoffs) == 1
    hid = handoffs[0]["id"]
    kinds = [q["kind"] for q in r["requests"]]
    assert "compact" in kinds
    first_after = [q for q in r["requests"][kinds.index("compact") + 1 :] if q["kind"] == "main"][0]
    assert any(f"context-distill handoff {hid}" in h["text"] for h in first_after["hook_context"])
    # /clear (a new session): SessionStart(clear) injects the project's latest handoff
    assert any(h["hook"] == "SessionStart:clear" and "context-distill hook" in h["command"] for h in runs), runs
    last = [q for q in r["requests"] if q["kind"] == "main"][-1]
    assert last["step"] == 3
    cleared = [h["text"] for h in last["hook_context"] if f"context-distill handoff {hid}" in h["text"]]
    assert cleared and "before the /clear" in cleared[0], last["hook_context"]
