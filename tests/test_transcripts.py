"""Transcript readers on real Claude Code sessions and on message/text shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compaction import BinaryInputError, InputError, TranscriptError, read_transcript
from compaction.transcripts import CompactSummary, ToolCall, ToolResult, UserText

FIX = Path(__file__).parent / "fixtures" / "claude-code"
MAIN = "transcripts/claude-code/ae4a77f8-aedd-4bc1-888f-c94edc91af04.jsonl"


def raw_tool_results(path: Path) -> list[dict]:
    """Every tool_result block in the file, found without our reader."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        msg = rec.get("message") or {}
        content = msg.get("content") if isinstance(msg, dict) else None
        if rec.get("type") == "user" and isinstance(content, list):
            out.extend(b for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
    return out


def raw_text(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and "text" in b)


@pytest.mark.parametrize("name", ["short.jsonl", "tool_heavy.jsonl"])
def test_fixture_tool_results_read_in_full(name):
    path = FIX / name
    t = read_transcript(path)
    raw = raw_tool_results(path)
    assert t.format == "claude-code"
    assert len(t.tool_results) == len(raw) > 0
    assert [r.text for r in t.tool_results] == [raw_text(b.get("content")) for b in raw]
    assert all(r.tool_name for r in t.tool_results)  # every result matched to its call
    assert t.skipped == 0
    assert t.session_id and t.cwd


def test_main_session_every_tool_result_in_full(shared_data):
    path = shared_data / MAIN
    t = read_transcript(path)
    raw = raw_tool_results(path)
    assert len(raw) == 242 and len(t.tool_results) == 242
    assert sum(len(r.text) for r in t.tool_results) == sum(len(raw_text(b.get("content"))) for b in raw)
    assert sum(1 for r in t.tool_results if r.is_error) == sum(1 for b in raw if b.get("is_error"))
    calls = {c.id: c.name for c in t.tool_calls}
    assert all(r.tool_name == calls[r.tool_use_id] for r in t.tool_results)
    # structured toolUseResult: Edit patches, Read file paths, Bash stdout
    edits = [r for r in t.tool_results if r.tool_name == "Edit" and not r.is_error]
    assert edits and all(r.patch and r.patch.startswith("@@") and r.file_path for r in edits)
    assert all(r.stdout is not None for r in t.tool_results if r.tool_name == "Bash" and not r.is_error)
    assert all(r.file_path for r in t.tool_results if r.tool_name == "Read" and not r.is_error)


def test_main_session_compaction_meta_usage_and_subagents(shared_data):
    path = shared_data / MAIN
    recs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    t = read_transcript(path)
    assert len(t.boundaries) == 1
    b = t.boundaries[0]
    assert t.events[b].pre_tokens == 142431 and t.events[b].trigger == "manual"
    summaries = [e for e in t.events if isinstance(e, CompactSummary)]
    assert len(summaries) == 1 and summaries[0].text.startswith("This session is being continued")
    assert sum(1 for e in t.events if isinstance(e, UserText) and e.is_meta) == sum(
        1 for r in recs if r.get("type") == "user" and r.get("isMeta")
    )
    assert any(isinstance(e, UserText) and e.command == "/compact" for e in t.events)
    # usage: input + cache read + cache creation of the latest assistant record
    last = [r for r in recs if r.get("type") == "assistant"][-1]["message"]["usage"]
    assert t.usage_tokens == last["input_tokens"] + last["cache_read_input_tokens"] + last["cache_creation_input_tokens"]
    before = read_transcript(path, before_boundary=-1)
    assert len(before.events) == b and not any(isinstance(e, CompactSummary) for e in before.events)
    assert 100_000 < before.usage_tokens <= 142431
    # sub-agent files are read too
    assert set(t.subagents) == {"aac57f5", "acompact-946d2b"}
    sub = t.subagents["aac57f5"]
    assert len(sub.tool_results) == 12 and all(e.agent_id == "aac57f5" for e in sub.events)


def test_malformed_truncated_and_unknown_records_are_skipped_and_counted(tmp_path):
    lines = (FIX / "tool_heavy.jsonl").read_bytes().split(b"\n")
    lines = [x for x in lines if x.strip()]
    good = read_transcript(FIX / "tool_heavy.jsonl")
    truncated = lines[3][: len(lines[3]) // 2]
    bad = (
        lines[:3]
        + [truncated, b"not json at all", b"\xff\xfe broken utf-8", b'{"type": "brand-new-record", "x": 1}', b"[1, 2]"]
        + lines[3:]
        + [lines[-1][:-5]]  # the file's last line cut off, like a session killed mid-write
    )
    p = tmp_path / "broken.jsonl"
    p.write_bytes(b"\n".join(bad))
    t = read_transcript(p)
    assert t.skipped == 6
    assert t.skipped_reasons == {
        "malformed-json": 3,
        "invalid-utf8": 1,
        "unknown-type:brand-new-record": 1,
        "malformed-record": 1,
    }
    assert len(t.events) >= len(good.events) - 1  # only the cut-off last record can be lost
    assert len(t.tool_results) == len(good.tool_results)


def test_openai_messages_with_tool_calls(tmp_path):
    msgs = [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Fix the failing test in parser.py"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "pytest -x"}'}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "E   AssertionError: 3 != 4\n1 failed"},
        {"role": "assistant", "content": "The parser drops the last token."},
        {"role": "narrator", "content": "?"},
        "not a message",
    ]
    for source in (msgs, json.dumps(msgs)):
        t = read_transcript(source)
        assert t.format == "openai"
        assert [e.kind for e in t.events] == ["system", "user", "tool_call", "tool_result", "assistant"]
        call, res = t.events[2], t.events[3]
        assert isinstance(call, ToolCall) and call.input == {"command": "pytest -x"}
        assert isinstance(res, ToolResult) and res.tool_name == "bash" and "1 failed" in res.text
        assert t.skipped == 2 and t.skipped_reasons == {"unknown-role:narrator": 1, "malformed-message": 1}
    p = tmp_path / "chat.jsonl"
    p.write_text("\n".join(json.dumps(m) for m in msgs[:5]) + "\n{broken\n", encoding="utf-8")
    t = read_transcript(p)
    assert len(t.events) == 5 and t.skipped == 1


def test_anthropic_messages_with_tool_use():
    doc = {
        "system": "be brief",
        "messages": [
            {"role": "user", "content": "read setup.py"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "need the file"},
                    {"type": "text", "text": "Reading it."},
                    {"type": "tool_use", "id": "tu_1", "name": "Read", "input": {"file_path": "setup.py"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": "from setuptools import setup"}], "is_error": False}]},
        ],
    }
    t = read_transcript(doc)
    assert t.format == "anthropic"
    assert [e.kind for e in t.events] == ["system", "user", "thinking", "assistant", "tool_call", "tool_result"]
    assert t.events[-1].tool_name == "Read" and t.events[-1].text == "from setuptools import setup"


def test_plain_text_turns(tmp_path):
    p = tmp_path / "chat.md"
    p.write_text("User: please add a --json flag\nAssistant: Added it in cli.py.\nUser: thanks\n", encoding="utf-8")
    t = read_transcript(p)
    assert t.format == "text"
    assert [(e.kind, e.text) for e in t.events] == [
        ("user", "please add a --json flag"),
        ("assistant", "Added it in cli.py."),
        ("user", "thanks"),
    ]
    assert read_transcript("just some log output\nline two").events[0].kind == "assistant"


def test_bad_sources_give_clear_errors(tmp_path):
    with pytest.raises(TranscriptError, match="does not exist"):
        read_transcript(tmp_path / "missing.jsonl")
    p = tmp_path / "bin.txt"
    p.write_bytes(b"abc\x00def")
    with pytest.raises(BinaryInputError):
        read_transcript(p)
    with pytest.raises(InputError, match="unknown transcript format"):
        read_transcript("x", fmt="yaml")
    with pytest.raises(InputError):
        read_transcript(12)
    with pytest.raises(TranscriptError, match="compact boundaries"):
        read_transcript(FIX / "short.jsonl", before_boundary=-1)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_REAL_LINES = [x for x in (FIX / "tool_heavy.jsonl").read_bytes().split(b"\n") if x.strip()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.sampled_from(_REAL_LINES).flatmap(lambda b: st.integers(0, len(b)).map(lambda k: b[:k])),
            st.just(b"[" * 5000 + b"]" * 5000),
            st.just(b'{"type": "assistant", "message": {"content": 7}}'),
            st.just(b'{"type": "user", "message": {"content": [{"type": "tool_result", "content": {"x": 1}}]}}'),
        ),
        max_size=12,
    )
)
def test_claude_code_reader_never_crashes_on_garbage(lines):
    from compaction.transcripts import parse_claude_code_lines

    t = parse_claude_code_lines(lines)
    assert t.skipped >= 0 and sum(t.skipped_reasons.values()) == t.skipped
    try:
        read_transcript(b"\n".join(lines))
    except InputError:
        pass  # a clear error (binary data, no messages) is fine; anything else is a crash


def test_fields_of_the_wrong_type_are_tolerated():
    from compaction.transcripts import parse_claude_code_lines

    recs = [
        {"type": "assistant", "message": {"id": 5, "model": {"x": 1}, "content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}], "usage": {"input_tokens": "a"}}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": 5}], "is_error": "yes"}]}, "toolUseResult": {"filePath": 7, "structuredPatch": [{"lines": [1, None]}]}},
        {"type": "user", "timestamp": 5, "agentId": [1], "message": {"content": "hello"}},
        {"type": "system", "subtype": "compact_boundary", "compactMetadata": "x"},
    ]
    t = parse_claude_code_lines([json.dumps(r) for r in recs])
    assert [e.kind for e in t.events] == ["assistant", "tool_call", "tool_result", "user", "compact_boundary"]
    assert t.events[2].tool_name == "Bash" and t.events[2].is_error and t.model is None
    msgs = [{"role": "tool", "tool_call_id": "x", "name": 3, "content": "out"}, {"role": "user", "content": "hi"}]
    t = read_transcript(msgs)
    assert [e.kind for e in t.events] == ["tool_result", "user"] and t.events[0].tool_name is None


def test_sidechain_records_in_a_main_session_file_are_set_aside():
    """Older Claude Code wrote sub-agent records ("isSidechain": true) into the main file: they
    are not the main conversation, and their usage is not the session's."""
    import json

    from compaction.transcripts.claude_code import parse_claude_code_lines

    def rec(kind, text, side, tokens):
        msg = {"role": kind, "content": [{"type": "text", "text": text}]}
        if kind == "assistant":
            msg.update(model="claude-haiku" if side else "claude-opus", usage={"input_tokens": tokens, "output_tokens": 1})
        return json.dumps({"type": kind, "isSidechain": side, "sessionId": "s", "uuid": text, "message": msg})

    lines = [rec("user", "fix the parser", False, 0), rec("assistant", "on it", False, 150_000),
             rec("user", "SUB-AGENT PROMPT", True, 0), rec("assistant", "sub-agent answer", True, 3_000)]
    t = parse_claude_code_lines(lines)
    texts = [getattr(e, "text", "") for e in t.events]
    assert "fix the parser" in texts and "SUB-AGENT PROMPT" not in texts
    assert t.usage_tokens == 150_000 and t.model == "claude-opus"
    assert t.skipped_reasons.get("sidechain") == 2
    side_only = parse_claude_code_lines(lines[2:])  # a sub-agent's own file: every record is a sidechain
    assert [getattr(e, "text", "") for e in side_only.events] == ["SUB-AGENT PROMPT", "sub-agent answer"]


# -- JSON that is no session: an error, not a summary of raw JSON -----------------------------


def _openhands_like_records(n: int = 4) -> list[dict]:
    """Records of another agent framework's output (an OpenHands run): JSON, but no chat messages."""
    return [
        {"instance_id": f"repo__issue-{i}", "test_result": {"git_patch": "diff --git a/x b/x\n+fix"}, "history": [{"id": i, "action": "run"}]}
        for i in range(n)
    ]


@pytest.mark.parametrize("shape", ["jsonl", "json-list", "json-object", "pretty-list"])
def test_json_without_chat_messages_or_claude_code_records_is_not_read_as_text(tmp_path, shape):
    recs = _openhands_like_records()
    text = {
        "jsonl": "\n".join(json.dumps(r) for r in recs) + "\n",
        "json-list": json.dumps(recs),
        "json-object": json.dumps(recs[0]),
        "pretty-list": json.dumps(recs, indent=2),
    }[shape]
    p = tmp_path / "output.jsonl"
    p.write_text(text, encoding="utf-8")
    for source in (p, text, text.encode()):
        with pytest.raises(TranscriptError, match="not recognised") as exc:
            read_transcript(source)
        msg = str(exc.value)
        assert "\n" not in msg and "Claude Code" in msg and "messages" in msg and "text" in msg
    # asked for, it is read as plain text
    assert read_transcript(p, fmt="text").format == "text"
    # a list given in Python says the same
    with pytest.raises(TranscriptError, match="not recognised"):
        read_transcript(recs)


def test_claude_code_file_whose_first_lines_are_garbage_is_still_claude_code(tmp_path):
    body = (FIX / "tool_heavy.jsonl").read_bytes()
    good = read_transcript(FIX / "tool_heavy.jsonl")
    p = tmp_path / "corrupt_head.jsonl"
    # more than 50 lines of garbage (what the format sniffer looked at), then the session
    p.write_bytes(b"garbage\n" * 55 + body + body)
    t = read_transcript(p)
    assert t.format == "claude-code"
    assert len(t.events) == 2 * len(good.events)
    assert t.skipped_reasons == {"malformed-json": 55}
    # the same with cut-off JSON records at its head
    p.write_bytes(b'{"type": "user", "mess\n' * 60 + body)
    t = read_transcript(p)
    assert t.format == "claude-code" and len(t.events) == len(good.events)


def test_text_with_a_few_json_lines_is_still_text():
    text = "User: what does this log say?\n" + "\n".join(f"line {i} of the log" for i in range(20)) + '\n{"level": "info"}\n'
    t = read_transcript(text)
    assert t.format == "text" and t.events[0].kind == "user"
    # a log that starts with "[timestamp]" is text, not broken JSON
    assert read_transcript("[2026-01-01 10:00] started\n[2026-01-01 10:01] done\n").format == "text"


def test_a_half_written_first_record_is_not_json_and_reads_as_text():
    """A session killed while writing its first record: no line parses, so it is no JSON, and
    it is read (as before) rather than refused."""
    line = (FIX / "short.jsonl").read_bytes().split(b"\n")[1]
    assert read_transcript(line[: len(line) // 2]).format == "text"


def test_a_pasted_returncode_in_a_chat_with_tool_calls_is_not_mini_swe_agent():
    """One user message starting with `<returncode>` made the whole session read as a
    mini-swe-agent trajectory, so every later typed request became a bash result. A session
    with tool calls is not one, and an observation must answer an assistant's bash block."""
    from compaction.transcripts.messages import is_mini_swe_agent

    request = "Please also make the deploy target depend on lint, and never push to main directly."
    tc = {"id": "c1", "type": "function", "function": {"name": "Bash", "arguments": json.dumps({"command": "cat Makefile"})}}
    msgs = [
        {"role": "user", "content": "Why does my CI script fail?"},
        {"role": "assistant", "content": "Paste the output of the failing step."},
        {"role": "user", "content": "<returncode>2</returncode>\n<output>\nmake: *** [test] Error 2\n</output>"},
        {"role": "assistant", "content": "The test target fails. Let me look at the Makefile.", "tool_calls": [tc]},
        {"role": "tool", "tool_call_id": "c1", "content": "test:\n\tpytest -x"},
        {"role": "assistant", "content": "The Makefile runs pytest -x."},
        {"role": "user", "content": request},
    ]
    assert not is_mini_swe_agent(msgs)
    t = read_transcript(msgs)
    users = [e.text for e in t.events if e.kind == "user"]
    assert users[-1] == request and len(users) == 3
    # no tool calls, but the pasted output answers no bash block: still not mini-swe-agent
    plain = [m for m in msgs if "tool_calls" not in m and m["role"] != "tool"]
    assert not is_mini_swe_agent(plain)
    bash = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Fix the bug"},
            {"role": "assistant", "content": "Look first.\n\n```bash\nls\n```"},
            {"role": "user", "content": "<returncode>0</returncode>\n<output>\na.py\n</output>"}]
    assert is_mini_swe_agent(bash)


@given(st.lists(st.sampled_from(["```bash\n", "```sh \n", "```\n", "\n```", "ls -la", "\n", " ", "`", "x"]), max_size=30))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_bash_blocks_finds_what_mini_swe_agents_pattern_finds(parts):
    from compaction.transcripts.messages import _BASH_BLOCK, bash_blocks

    text = "".join(parts)
    assert bash_blocks(text) == _BASH_BLOCK.findall(text)


def test_unclosed_bash_fences_take_linear_time():
    """Each opening fence with no closing one after it scanned to the end of the message: an
    assistant message of 140 KB of them took 12 s to read."""
    import time

    msgs = [{"role": "user", "content": "Fix the bug"}, {"role": "assistant", "content": "```sh\nx" * 20_000},
            {"role": "user", "content": "<returncode>0</returncode>\n<output>\nok\n</output>"}]
    t0 = time.monotonic()
    t = read_transcript(msgs)
    assert time.monotonic() - t0 < 3
    assert t.events
