"""Hostile input for the hook entry points: random text, invalid UTF-8, deep JSON, wrong types,
truncated records. Nothing raises; stdout is "" or exactly one JSON object (PreCompact: a line);
a hook killed mid-write leaves only whole handoffs."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compaction
from compaction._handoff_store import HandoffStore
from compaction.baselines import BM25Scorer
from compaction.hooks import HookConfig, run_hook

FIX = Path(__file__).resolve().parent / "fixtures" / "hooks"
ROOT = Path(__file__).resolve().parent.parent
EVENTS = ["PreCompact", "SessionStart", "PostToolUse", "pre-compact", "session-start", "post-tool-use", "Stop"]
ENGINE = compaction.Engine(scorer=BM25Scorer(), store=False)
# a low threshold so that small random outputs go through the shrinking path too
CFG = HookConfig(min_tokens=20, min_keep_tokens=5)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=200),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=20), kids, max_size=5),
    max_leaves=30,
)
fields = {
    "hook_event_name": st.sampled_from(["PreCompact", "SessionStart", "PostToolUse"]) | st.text(max_size=10),
    "tool_name": st.sampled_from(["Bash", "Grep", "Read", "mcp__x__y", "mcp__context-distill__expand"]) | json_values,
    "tool_input": json_values,
    "tool_response": json_values
    | st.fixed_dictionaries(
        {
            "stdout": st.text(max_size=3000) | st.lists(st.text(max_size=80), max_size=300).map("\n".join),
            "stderr": st.text(max_size=300),
            "interrupted": st.booleans(),
        }
    )
    | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=3000)}), max_size=3),
    "source": st.sampled_from(["startup", "resume", "compact", "clear"]) | json_values,
    "trigger": st.sampled_from(["manual", "auto"]) | json_values,
    "cwd": st.text(max_size=50) | json_values,
    "session_id": st.text(max_size=40) | json_values,
    "transcript_path": st.sampled_from(["", "/nonexistent", "/dev/null", "/", str(FIX / "claude-code-tool-heavy.jsonl")])
    | json_values,
    "persistedOutputPath": st.text(max_size=30),
}
hook_objects = st.fixed_dictionaries({}, optional=fields)


def _no_internal_errors() -> None:
    """Bad input must be handled by the hooks' own checks, never by the last-resort catch-all
    (a "failed open: TypeError ..." line in the log would be a bug that only fail-open hid)."""
    log = compaction.Settings().data_dir / "logs" / "hooks.log"
    if log.exists():
        bad = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if "failed open" in ln]
        assert not bad, bad[:3]


def _check(event: str, out: object) -> None:
    _no_internal_errors()
    assert isinstance(out, str)
    if out and not out.startswith("context-distill saved a handoff"):
        doc = json.loads(out)
        assert isinstance(doc, dict) and "hookSpecificOutput" in doc


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(event=st.sampled_from(EVENTS), obj=hook_objects)
def test_random_hook_objects_never_raise(event, obj, tmp_path_factory):
    store = HandoffStore(tmp_path_factory.mktemp("fz"))
    out = run_hook(event, json.dumps(obj, allow_nan=True), engine=ENGINE, store=store, config=CFG)
    _check(event, out)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(event=st.sampled_from(EVENTS), raw=st.binary(max_size=2000) | st.text(max_size=2000))
def test_random_bytes_and_text_never_raise(event, raw):
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    assert run_hook(event, text, engine=ENGINE, config=CFG) == ""
    _no_internal_errors()


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(depth=st.integers(min_value=100, max_value=50_000), event=st.sampled_from(EVENTS))
def test_deeply_nested_json_never_raises(depth, event):
    assert run_hook(event, "[" * depth + "]" * depth, engine=ENGINE, config=CFG) == ""
    nested = '{"tool_response": ' * depth + "1" + "}" * depth
    assert run_hook(event, nested, engine=ENGINE, config=CFG) == ""


def test_truncated_real_inputs_never_raise():
    lines = (FIX / "claude-code-2.1.331-hook-inputs.jsonl").read_text().splitlines()
    rnd = random.Random(7)
    for line in lines:
        event = json.loads(line)["hook_event_name"]
        for cut in sorted(rnd.sample(range(1, len(line)), 15)):
            assert run_hook(event, line[:cut], engine=ENGINE, config=CFG) == ""
    _no_internal_errors()


def test_huge_single_line_output_is_handled(tmp_path):
    data = json.loads((FIX / "claude-code-2.1.331-hook-inputs.jsonl").read_text().splitlines()[1])
    data["tool_response"]["stdout"] = "x" * 400_000  # one 400k-char line
    out = run_hook("PostToolUse", json.dumps(data), engine=ENGINE)
    if out:
        new = json.loads(out)["hookSpecificOutput"]["updatedToolOutput"]
        assert len(new["stdout"]) < 400_000


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_precompact_killed_mid_call_leaves_only_whole_handoffs(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    transcript = tmp_path / "t.jsonl"
    shutil.copy(FIX / "claude-code-tool-heavy.jsonl", transcript)
    data_dir = tmp_path / "data"
    pre = json.loads([ln for ln in (FIX / "claude-code-2.1.331-hook-inputs.jsonl").read_text().splitlines() if '"PreCompact"' in ln][0])
    pre.update(cwd=str(project), transcript_path=str(transcript))
    env = dict(os.environ, CONTEXT_DISTILL_SCORER="bm25", CONTEXT_DISTILL_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT))
    completed = 0
    for delay in (0.3, 0.6, 0.9, 1.2, 30):
        p = subprocess.Popen([sys.executable, "-m", "compaction", "hook", "PreCompact"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        p.stdin.write(json.dumps(pre).encode())
        p.stdin.close()
        t0 = time.monotonic()
        while p.poll() is None and time.monotonic() - t0 < delay:
            time.sleep(0.02)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        p.stderr.close()
        completed += p.returncode == 0
    assert completed >= 1  # the last run was given time to finish
    store = HandoffStore(data_dir)
    infos = store.list()
    assert len(infos) >= 1
    for path in (data_dir / "handoffs").glob("*.json"):
        record = json.loads(path.read_text())  # every visible record is whole
        assert store.get(record["id"]).text
