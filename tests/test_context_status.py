"""context_status: usage fields vs counted tokens, limits, recommendation thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compaction import InputError, context_status, get_tokenizer
from compaction._context_status import COMPACT_AT, HANDOFF_AT, recommend
from compaction.transcripts import read_transcript, render_transcript

FIX = Path(__file__).parent / "fixtures" / "claude-code"


def cc_session(tmp_path: Path, used: int, *, model: str = "claude-opus-4-6", boundary_after: bool = False) -> Path:
    recs = [
        {"type": "user", "sessionId": "s1", "cwd": "/w", "message": {"role": "user", "content": "fix the build"}},
        {
            "type": "assistant",
            "sessionId": "s1",
            "message": {
                "id": "msg_1",
                "model": model,
                "role": "assistant",
                "content": [{"type": "text", "text": "On it."}],
                "usage": {"input_tokens": 10, "cache_read_input_tokens": used - 110, "cache_creation_input_tokens": 100, "output_tokens": 5},
            },
        },
    ]
    if boundary_after:
        recs += [
            {"type": "system", "subtype": "compact_boundary", "compactMetadata": {"trigger": "auto", "preTokens": used}},
            {"type": "user", "isCompactSummary": True, "message": {"role": "user", "content": "Summary: the build was fixed."}},
        ]
    p = tmp_path / "s.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "used, rec",
    [(1_000, "fine"), (119_999, "fine"), (120_000, "compact"), (169_999, "compact"), (170_000, "handoff"), (199_000, "handoff")],
)
def test_thresholds_from_usage_fields(tmp_path, used, rec):
    s = context_status(cc_session(tmp_path, used))
    assert s.source == "usage" and s.tokens_used == used
    assert s.limit_tokens == 200_000 and s.limit_source == "model"
    assert s.recommendation == rec
    assert s.fraction == pytest.approx(used / 200_000, abs=1e-4)
    assert "\n" not in s.message and f"{used:,}" in s.message


def test_recommend_boundaries():
    assert (COMPACT_AT, HANDOFF_AT) == (0.60, 0.85)
    assert [recommend(x) for x in (0.0, 0.5999, 0.60, 0.8499, 0.85, 1.3)] == [
        "fine", "fine", "compact", "compact", "handoff", "handoff"
    ]


def test_limit_argument_and_unknown_model(tmp_path):
    s = context_status(cc_session(tmp_path, 50_000), limit_tokens=60_000)
    assert s.limit_tokens == 60_000 and s.recommendation == "compact" and s.limit_source == "argument"
    s = context_status(cc_session(tmp_path, 50_000, model="some-local-model"))
    assert s.limit_tokens == 200_000 and s.limit_source == "default"
    s = context_status(cc_session(tmp_path, 500_000, model="gpt-4.1-mini"))
    assert s.limit_tokens == 1_047_576 and s.recommendation == "fine"
    with pytest.raises(InputError):
        context_status(cc_session(tmp_path, 10), limit_tokens=0)


def test_counted_after_compaction_and_without_usage(tmp_path):
    s = context_status(cc_session(tmp_path, 180_000, boundary_after=True))
    assert s.source == "counted"  # the usage predates the compaction, so it no longer applies
    assert s.tokens_used == get_tokenizer().count("[compact summary]\nSummary: the build was fixed.")
    msgs = [{"role": "user", "content": "hello " * 500}, {"role": "assistant", "content": "hi"}]
    t = read_transcript(msgs)
    n = get_tokenizer().count(render_transcript(t.events))
    s = context_status(msgs, limit_tokens=int(n / 0.7))
    assert s.source == "counted" and s.tokens_used == n
    assert s.recommendation == "compact"


def test_real_fixture_uses_latest_usage():
    recs = [json.loads(x) for x in (FIX / "tool_heavy.jsonl").read_text(encoding="utf-8").splitlines()]
    u = [r for r in recs if r.get("type") == "assistant"][-1]["message"]["usage"]
    s = context_status(FIX / "tool_heavy.jsonl")
    assert s.tokens_used == u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
    assert s.recommendation == "fine" and s.model == "claude-opus-4-6"


def test_the_model_named_by_a_messages_request_or_response_sets_the_limit():
    big = "x " * 140_000
    s = context_status({"model": "gpt-4o", "messages": [{"role": "user", "content": big}]})
    assert (s.limit_tokens, s.limit_source, s.model) == (128_000, "model", "gpt-4o") and s.recommendation == "handoff"
    # an assistant message that says which model wrote it (an API response; mini-swe-agent's raw response)
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "extra": {"response": {"model": "gemini-3-pro-preview"}}}]
    assert context_status(msgs).limit_tokens == 1_048_576


def test_a_json_list_of_non_messages_is_not_an_empty_conversation(tmp_path):
    import compaction

    events = [{"id": i, "source": "agent", "action": "run", "args": {"command": f"ls {i}"}} for i in range(5)]
    with pytest.raises(compaction.TranscriptError, match="not recognised"):
        context_status(events)
    p = tmp_path / "events.json"
    p.write_text(json.dumps(events, indent=2))
    # the same JSON in a file is not counted as a session's text (that read 99% full for a large file)
    with pytest.raises(compaction.TranscriptError, match="not recognised"):
        context_status(str(p))
    s = context_status(str(p), fmt="text")  # asked for: read as text, counted, not 0
    assert s.tokens_used > 20 and s.source == "counted"


def test_usage_from_before_a_compaction_is_not_the_context_after_it(tmp_path):
    t = read_transcript(cc_session(tmp_path, 150_000, boundary_after=True))
    assert t.usage_tokens is None and t.since_boundary().usage_tokens is None
    assert context_status(cc_session(tmp_path, 150_000, boundary_after=True)).source == "counted"


def test_a_session_refused_as_too_long_is_full(tmp_path):
    p = cc_session(tmp_path, 165_000)
    recs = [json.loads(x) for x in p.read_text().splitlines()]
    recs.append({"type": "user", "sessionId": "s1", "message": {"role": "user", "content": "here is the whole log: ..."}})
    recs.append({"type": "assistant", "sessionId": "s1", "isApiErrorMessage": True, "message": {
        "id": "e1", "model": "<synthetic>", "role": "assistant", "content": [{"type": "text", "text": "Prompt is too long"}],
        "usage": {"input_tokens": 0, "output_tokens": 0}}})  # fmt: skip
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    s = context_status(str(p))
    assert s.recommendation == "handoff" and s.tokens_used == 165_000 and "too long" in s.message
    # a later response that went through (here a tool call) makes the refusal stale
    recs.append({"type": "user", "sessionId": "s1", "message": {"role": "user", "content": "ok, just run the tests"}})
    recs.append({"type": "assistant", "sessionId": "s1", "message": {
        "id": "a2", "model": "claude-opus-4-6", "role": "assistant",
        "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "pytest"}}],
        "usage": {"input_tokens": 5, "cache_read_input_tokens": 41_000, "output_tokens": 9}}})  # fmt: skip
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    s = context_status(str(p))
    assert (s.recommendation, s.tokens_used) == ("fine", 41_005)


def test_a_refusal_that_was_compacted_away_or_a_reply_about_it_is_not_full(tmp_path):
    p = cc_session(tmp_path, 165_000)
    recs = [json.loads(x) for x in p.read_text().splitlines()]
    recs.append({"type": "assistant", "sessionId": "s1", "isApiErrorMessage": True, "message": {
        "id": "e1", "model": "<synthetic>", "role": "assistant", "content": [{"type": "text", "text": "Prompt is too long"}],
        "usage": {"input_tokens": 0, "output_tokens": 0}}})  # fmt: skip
    recs.append({"type": "system", "subtype": "compact_boundary", "compactMetadata": {"trigger": "manual", "preTokens": 165_000}})
    recs.append({"type": "user", "isCompactSummary": True, "message": {"role": "user", "content": "Summary: the log was too big."}})
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    s = context_status(str(p))
    assert s.recommendation == "fine" and s.source == "counted" and s.tokens_used < 1_000
    chat = [{"role": "user", "content": 'What does "Prompt is too long" mean?'},
            {"role": "assistant", "content": "Prompt is too long means the request exceeded the window."}]  # fmt: skip
    assert context_status(chat).recommendation == "fine"


def test_a_later_notice_does_not_hide_a_refusal(tmp_path):
    p = cc_session(tmp_path, 150_000)
    recs = [json.loads(x) for x in p.read_text().splitlines()]
    for text in ("Prompt is too long", "API Error: Request was aborted."):
        recs.append({"type": "user", "sessionId": "s1", "message": {"role": "user", "content": "go"}})
        recs.append({"type": "assistant", "sessionId": "s1", "message": {
            "id": text, "model": "<synthetic>", "role": "assistant", "content": [{"type": "text", "text": text}],
            "usage": {"input_tokens": 0, "output_tokens": 0}}})  # fmt: skip
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    assert context_status(str(p)).recommendation == "handoff"
