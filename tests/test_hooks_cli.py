"""The hook commands as Claude Code runs them: a fresh process, JSON on stdin, exit 0 always,
stdout either empty or exactly one JSON object."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIX = Path(__file__).resolve().parent / "fixtures" / "hooks"
ROOT = Path(__file__).resolve().parent.parent


def _input(event: str, key: str, **changes) -> dict:
    for line in (FIX / "claude-code-2.1.331-hook-inputs.jsonl").read_text().splitlines():
        d = json.loads(line)
        if d["hook_event_name"] == event and key in (d.get("tool_name"), d.get("source"), d.get("trigger")):
            d.update(changes)
            return d
    raise KeyError((event, key))


def _run(args: list[str], stdin: bytes, env_extra: dict | None = None, cwd: Path | None = None):
    env = dict(os.environ, CONTEXT_DISTILL_SCORER="bm25", PYTHONPATH=str(ROOT))
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "compaction", *args], input=stdin, capture_output=True, timeout=120, env=env, cwd=cwd
    )


def test_post_tool_use_prints_one_json_object():
    data = _input("PostToolUse", "Bash")
    p = _run(["hook", "PostToolUse"], json.dumps(data).encode())
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)  # exactly one JSON document, nothing else
    new = out["hookSpecificOutput"]["updatedToolOutput"]
    assert len(new["stdout"]) < len(data["tool_response"]["stdout"]) / 2


@pytest.mark.parametrize(
    "event,stdin",
    [
        ("PostToolUse", b"garbage \xff\xfe"),
        ("PreCompact", b'{"hook_event_name": "PreCompact", "transcript_path": "/nonexistent.jsonl", "cwd": "/"}'),
        ("SessionStart", b"[]"),
        ("post-tool-use", b""),
        ("NoSuchEvent", b'{"hook_event_name": "PostToolUse"}'),
    ],
)
def test_garbage_exits_zero_with_empty_stdout(event, stdin):
    p = _run(["hook", event], stdin)
    assert p.returncode == 0
    assert p.stdout == b""


def test_precompact_then_sessionstart_through_the_cli(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    transcript = tmp_path / "t.jsonl"
    shutil.copy(FIX / "claude-code-tool-heavy.jsonl", transcript)
    data_dir = tmp_path / "data"
    env = {"CONTEXT_DISTILL_DATA_DIR": str(data_dir)}
    pre = _input("PreCompact", "manual", cwd=str(project), transcript_path=str(transcript))
    p = _run(["hook", "PreCompact"], json.dumps(pre).encode(), env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().startswith("context-distill saved a handoff")
    files = list((data_dir / "handoffs").glob("*.json"))
    assert len(files) == 1
    ss = _input("SessionStart", "compact", cwd=str(project), transcript_path=str(transcript))
    p = _run(["hook", "SessionStart"], json.dumps(ss).encode(), env)
    ctx = json.loads(p.stdout)["hookSpecificOutput"]["additionalContext"]
    assert json.loads(files[0].read_text())["text"] in ctx


def test_install_hooks_command(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    p = _run(["install-hooks", str(project)], b"")
    assert p.returncode == 0, p.stderr
    settings = json.loads((project / ".claude" / "settings.json").read_text())
    manifest = json.loads((ROOT / "manifests" / "claude-code" / "settings.json").read_text())
    assert settings == manifest
    assert "context-distill" in json.loads((project / ".mcp.json").read_text())["mcpServers"]
    p = _run(["install-hooks"], b"", cwd=project)  # default: the current folder; idempotent
    assert p.returncode == 0 and json.loads((project / ".claude" / "settings.json").read_text()) == manifest


def test_a_bad_log_level_does_not_break_the_hook():
    data = json.dumps({"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_response": {"stdout": "hi", "stderr": ""}})
    env = dict(os.environ, CONTEXT_DISTILL_LOG_LEVEL="bogus", CONTEXT_DISTILL_SCORER="bm25")
    p = subprocess.run([sys.executable, "-m", "compaction", "hook", "PostToolUse"], input=data.encode(), capture_output=True, env=env, cwd=str(ROOT), timeout=120)
    assert p.returncode == 0 and p.stdout == b""
    assert b"not a log level" in p.stderr and b"Traceback" not in p.stderr


def test_a_hook_that_gives_up_on_running_work_exits_0_with_nothing_on_stdout(tmp_path):
    """The deadline passes while the engine still runs in its thread: the process must still
    end with 0 and an empty stdout (an interpreter shutting down around native code can abort)."""
    text = "\n".join(f"INFO worker {i % 97} processed batch {i} in {i % 13} ms status=ok" for i in range(40_000))
    data = json.dumps({"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {"command": "make"},
                       "tool_response": {"stdout": text, "stderr": "", "interrupted": False}})
    code = (
        "import sys; from compaction import hooks, cli; hooks._DEADLINE_S['PostToolUse'] = 0.05; "
        "sys.exit(cli.main(['hook', 'PostToolUse']))"
    )
    env = dict(os.environ, CONTEXT_DISTILL_DATA_DIR=str(tmp_path / "d"), CONTEXT_DISTILL_CACHE_DIR=str(tmp_path / "c"), PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", code], input=data.encode(), capture_output=True, env=env, cwd=str(ROOT), timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-500:]
    assert p.stdout == b""
