"""Fuzzing the Claude Code hook entry point (issue 5): ``compaction.hooks.run_hook(event, stdin)``
gets random stdin, broken JSON, wrong types in real hook-input shapes, and hostile transcript
files. It must never raise and must fail open: "" (Claude Code keeps the original output and
context) or a well-formed answer, and a shrunk tool output is still verbatim.
"""

from __future__ import annotations

import json

import pytest
from fuzzing import SEED, SEED_BYTES, fuzz, json_value
from hypothesis import example, given
from hypothesis import strategies as st

import compaction
from compaction import Engine, Settings
from compaction._handoff_store import HandoffStore
from compaction.baselines import BM25Scorer
from compaction.hooks import HookConfig, run_hook


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz-hooks")
    engine = Engine(scorer=BM25Scorer(), settings=Settings(cache_dir=base / "cache", data_dir=base / "data"))
    store = HandoffStore(base / "data")
    cfg = HookConfig(min_tokens=150, ratio=0.3, min_keep_tokens=40, max_age_hours=24.0)
    return engine, store, cfg, base


# A realistic, long Bash output: the tool results of a real session, line by line.
_LOG_LINES = [
    line
    for rec in (json.loads(x) for x in SEED_BYTES.splitlines() if x.strip())
    for line in json.dumps(rec.get("toolUseResult", ""), ensure_ascii=False)[:4000].split("\\n")
    if line.strip()
][:400] or ["line"]
BIG_OUTPUT = "\n".join(f"{i:04d} {line}" for i, line in enumerate(_LOG_LINES * 3)) + "\n"

_text_out = st.one_of(st.just(BIG_OUTPUT), st.just(BIG_OUTPUT.replace("\n", "\r\n")), st.text(max_size=300), json_value)

bash_input = st.fixed_dictionaries(
    {
        "session_id": st.one_of(st.text(max_size=10), json_value),
        "transcript_path": st.one_of(st.just(str(SEED)), st.text(max_size=20), json_value),
        "cwd": st.one_of(st.just("/tmp/project"), st.text(max_size=20), json_value),
        "hook_event_name": st.just("PostToolUse"),
        "tool_name": st.one_of(st.just("Bash"), st.just("Grep"), st.just("mcp__other__tool"), st.just("mcp__context-distill__compact"), st.text(max_size=8), json_value),
        "tool_input": st.one_of(st.fixed_dictionaries({"command": st.text(max_size=40)}), json_value),
        "tool_response": st.one_of(
            st.fixed_dictionaries(
                {"stdout": _text_out, "stderr": _text_out},
                optional={"interrupted": json_value, "isImage": json_value, "persistedOutputPath": st.one_of(st.text(max_size=20), json_value)},
            ),
            st.fixed_dictionaries({"mode": st.just("content"), "content": _text_out}, optional={"numLines": json_value}),
            _text_out.map(lambda v: json.dumps({"content": [{"type": "text", "text": v}]}) if isinstance(v, str) else v),
            json_value,
        ),
    }
)
session_input = st.fixed_dictionaries(
    {
        "session_id": st.one_of(st.text(max_size=10), json_value),
        "cwd": st.one_of(st.just("/tmp/project"), st.text(max_size=20), json_value),
        "hook_event_name": st.just("SessionStart"),
        "source": st.one_of(st.sampled_from(["compact", "clear", "startup", "resume"]), json_value),
    }
)
precompact_input = st.fixed_dictionaries(
    {
        "session_id": st.one_of(st.text(max_size=10), json_value),
        "cwd": st.one_of(st.just("/tmp/project"), json_value),
        "hook_event_name": st.just("PreCompact"),
        "trigger": st.one_of(st.sampled_from(["manual", "auto"]), json_value),
        "transcript_path": st.one_of(st.just(str(SEED)), st.just("/nonexistent.jsonl"), st.just("/"), st.just("/dev/null"), json_value),
    }
)
events = st.sampled_from(
    ["PostToolUse", "post-tool-use", "SessionStart", "session-start", "PreCompact", "pre-compact", "Stop", "", "x" * 100]
)


def check_answer(event: str, stdin_obj, out: str) -> None:
    assert isinstance(out, str)
    if not out:
        return
    name = compaction.hooks.canonical_event(event)
    if name == "PreCompact":
        assert out.endswith("\n") and len(out) <= 1001 and "\n" not in out[:-1]
        return
    data = json.loads(out)  # anything else it prints is one JSON object
    hso = data["hookSpecificOutput"]
    assert hso["hookEventName"] == name
    if name == "SessionStart":
        assert isinstance(hso["additionalContext"], str) and len(hso["additionalContext"]) < 10_000
        return
    assert name == "PostToolUse"
    new = hso["updatedToolOutput"]
    resp = stdin_obj["tool_response"]
    if isinstance(resp, dict):
        # the tool's own output shape: same keys (plus Bash's defaults), text verbatim from the original
        assert isinstance(new, dict) and set(resp) <= set(new)
        for key in ("stdout", "stderr", "content"):
            if key in resp and new[key] != resp[key] and not resp.get("persistedOutputPath"):
                assert isinstance(new[key], str) and len(new[key]) < len(resp[key])
                assert compaction.verify_verbatim(resp[key], new[key])
    else:
        assert isinstance(new, str)


@fuzz(500)
@given(event=events, stdin=st.one_of(st.text(max_size=200), st.binary(max_size=200), json_value.map(json.dumps), st.just("{" * 50_000), st.just("")))
@example(event="PostToolUse", stdin="\x00\xff")
@example(event="PostToolUse", stdin=b"\xff\xfe{")
@example(event="PreCompact", stdin="[" * 100_000)
def test_random_stdin_fails_open(env, event, stdin):
    engine, store, cfg, _ = env
    out = run_hook(event, stdin, engine=engine, store=store, config=cfg)
    assert out == "" or compaction.hooks.canonical_event(event) is not None
    if out:
        check_answer(event, json.loads(stdin), out)


@fuzz(300)
@given(data=bash_input, event=st.sampled_from(["PostToolUse", "post-tool-use"]))
def test_post_tool_use_with_hostile_shapes(env, data, event):
    engine, store, cfg, _ = env
    out = run_hook(event, json.dumps(data), engine=engine, store=store, config=cfg)
    check_answer(event, data, out)


def test_post_tool_use_really_shrinks_a_big_bash_output(env):
    """The fuzz above must exercise the shrinking path, not only the bail-outs."""
    engine, store, cfg, _ = env
    data = {
        "session_id": "s",
        "transcript_path": str(SEED),
        "cwd": "/tmp/project",
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "cat big.log"},
        "tool_response": {"stdout": BIG_OUTPUT, "stderr": "", "interrupted": False, "isImage": False},
    }
    out = run_hook("PostToolUse", json.dumps(data), engine=engine, store=store, config=cfg)
    assert out, "a big Bash output was not shrunk"
    check_answer("PostToolUse", data, out)


@fuzz(120)
@given(data=session_input)
def test_session_start_with_hostile_shapes(env, data):
    engine, store, cfg, _ = env
    out = run_hook("SessionStart", json.dumps(data), engine=engine, store=store, config=cfg)
    check_answer("SessionStart", data, out)


@pytest.mark.slow
@fuzz(40)
@given(data=precompact_input, junk=st.one_of(st.none(), st.binary(max_size=400), st.builds(lambda n: SEED_BYTES[:n], st.integers(0, len(SEED_BYTES)))))
def test_pre_compact_with_hostile_inputs_and_transcripts(env, data, junk):
    engine, store, cfg, base = env
    if junk is not None:
        path = base / "junk.jsonl"
        path.write_bytes(junk)
        data = dict(data, transcript_path=str(path))
    out = run_hook("PreCompact", json.dumps(data), engine=engine, store=store, config=cfg)
    check_answer("PreCompact", data, out)
    # nothing half-written in the handoff store, whatever happened
    root = base / "data" / "handoffs"
    if root.exists():
        assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_hooks_off_does_nothing(env):
    engine, store, _, _ = env
    data = {"tool_name": "Bash", "tool_response": {"stdout": BIG_OUTPUT, "stderr": ""}}
    out = run_hook("PostToolUse", json.dumps(data), engine=engine, store=store, config=HookConfig(enabled=False))
    assert out == ""
