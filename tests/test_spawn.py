"""Spawning a fresh agent: argument list without a shell, detached, logged, off unless configured."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from compaction import ContextDistillError
from compaction._spawn import (
    SpawnError,
    SpawnNotConfiguredError,
    build_argv,
    spawn_agent,
    spawn_from_env,
    spawn_template_from_env,
)

HOSTILE = "fix it; rm -rf / $(touch PWNED) `touch PWNED2` && echo 'x' | tee PWNED3 > /dev/null \"q\" \n next line"

# A stand-in agent: writes its argv (as JSON) and some facts to a file named by argv[1], then exits.
AGENT = (
    "import json, os, sys\n"
    "out = sys.argv[1]\n"
    "info = {'argv': sys.argv[2:], 'sid': os.getsid(0), 'pid': os.getpid(), 'stdin': sys.stdin.read()}\n"
    "print('agent says hello')\n"
    "open(out + '.tmp', 'w').write(json.dumps(info)); os.replace(out + '.tmp', out)\n"
)


def _wait_for(path: Path, seconds: float = 20.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"the spawned agent never wrote {path}")


def test_off_unless_configured(monkeypatch):
    monkeypatch.delenv("CONTEXT_DISTILL_SPAWN_COMMAND", raising=False)
    with pytest.raises(SpawnNotConfiguredError, match="CONTEXT_DISTILL_SPAWN_COMMAND") as ei:
        spawn_template_from_env()
    assert isinstance(ei.value, ContextDistillError)
    assert "{prompt}" in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(SpawnNotConfiguredError):
        spawn_from_env("handoff", None)


@pytest.mark.parametrize("raw", ["claude -p {prompt}", "[]", '["claude", 3]', '{"cmd": "x"}', '[""]', "[1"])
def test_bad_templates_are_clear_errors(raw):
    with pytest.raises(SpawnError, match="CONTEXT_DISTILL_SPAWN_COMMAND"):
        spawn_template_from_env({"CONTEXT_DISTILL_SPAWN_COMMAND": raw})


def test_template_from_env():
    env = {"CONTEXT_DISTILL_SPAWN_COMMAND": '["codex", "exec", "{prompt}"]'}
    assert spawn_template_from_env(env) == ["codex", "exec", "{prompt}"]


def test_build_argv_is_plain_substitution():
    assert build_argv(["claude", "-p", "{prompt}"], HOSTILE) == ["claude", "-p", HOSTILE]
    assert build_argv(["agent", "--prompt={prompt}"], "a {b} c") == ["agent", "--prompt=a {b} c"]
    assert build_argv(["agent", "run"], "p") == ["agent", "run", "p"]  # no placeholder: appended
    assert build_argv(["x", "{prompt}"], "a\x00b") == ["x", "ab"]


def test_hostile_goal_arrives_as_one_literal_argument(tmp_path):
    out = tmp_path / "agent-out.json"
    template = [sys.executable, "-c", AGENT, str(out), "--prompt", "{prompt}"]
    t0 = time.monotonic()
    res = spawn_agent(HOSTILE, template, tmp_path, tmp_path / "logs")
    assert time.monotonic() - t0 < 5  # never blocks on the child
    info = _wait_for(out)
    assert info["argv"] == ["--prompt", HOSTILE]
    assert res.argv[-1] == HOSTILE and res.pid == info["pid"]
    for name in ("PWNED", "PWNED2", "PWNED3"):
        assert not (tmp_path / name).exists()
    assert info["stdin"] == ""  # stdin is /dev/null
    if hasattr(os, "getsid"):
        assert info["sid"] == info["pid"] != os.getsid(0)  # its own session: detached
    log_path = Path(res.log_path)
    assert log_path.parent == tmp_path / "logs"
    deadline = time.monotonic() + 10
    while "agent says hello" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "agent says hello" in log_path.read_text()
    if os.name == "posix":
        assert (log_path.stat().st_mode & 0o777) == 0o600


def test_secrets_in_the_handoff_are_redacted_before_the_agent_sees_them(tmp_path):
    out = tmp_path / "o.json"
    key = "ghp_" + "Z" * 36
    spawn_agent(f"token {key}", [sys.executable, "-c", AGENT, str(out), "{prompt}"], tmp_path, tmp_path / "logs")
    assert _wait_for(out)["argv"] == ["token [REDACTED:github-token]"]


def test_spawn_from_env_logs_under_data_dir(tmp_path, monkeypatch):
    out = tmp_path / "o.json"
    monkeypatch.setenv("CONTEXT_DISTILL_SPAWN_COMMAND", json.dumps([sys.executable, "-c", AGENT, str(out), "{prompt}"]))
    res = spawn_from_env("go on", tmp_path, data_dir=tmp_path / "data")
    assert _wait_for(out)["argv"] == ["go on"]
    assert Path(res.log_path).parent == tmp_path / "data" / "spawn-logs"


def test_missing_program_is_a_clear_error(tmp_path):
    with pytest.raises(SpawnError, match="not found on PATH"):
        spawn_agent("x", ["no-such-agent-binary-xyz", "{prompt}"], tmp_path, tmp_path / "logs")


def test_missing_cwd_is_a_clear_error(tmp_path):
    with pytest.raises(SpawnError, match="not a folder"):
        spawn_agent("x", [sys.executable, "{prompt}"], tmp_path / "nope", tmp_path / "logs")


def test_unwritable_log_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(SpawnError, match="spawn log"):
        spawn_agent("x", [sys.executable, "-c", "pass"], tmp_path, blocker / "logs")
