"""Fuzzing the transcript readers and what stands on them (issue 5): random bytes, invalid
UTF-8, truncated JSONL, deeply nested JSON, huge lines, and real Claude Code records with
fields of the wrong type. ``read_transcript`` (and ``context_status`` / ``make_handoff`` /
``summarize`` over it) either answers or raises a ``ContextDistillError`` with one line;
malformed records are skipped and counted, never fatal.
"""

from __future__ import annotations

import json

import pytest
from fuzzing import SEED_BYTES, SEED_RECORDS, fuzz, json_value
from hypothesis import example, given
from hypothesis import strategies as st

import compaction
from compaction import ContextDistillError, Engine, Settings
from compaction.baselines import BM25Scorer


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz-transcripts")
    return Engine(scorer=BM25Scorer(), settings=Settings(cache_dir=base / "cache", data_dir=base / "data"))


def one_line_error(exc: BaseException) -> None:
    assert isinstance(exc, ContextDistillError), f"{type(exc).__name__}: {exc}"
    msg = str(exc)
    assert msg and "\n" not in msg, repr(msg)


def read_or_clear_error(source, **kw):
    try:
        t = compaction.read_transcript(source, **kw)
    except Exception as exc:  # noqa: BLE001 - only our errors may come out
        one_line_error(exc)
        return None
    assert isinstance(t, compaction.Transcript)
    assert t.skipped >= 0 and sum(t.skipped_reasons.values()) == t.skipped
    for e in t.events:
        assert isinstance(e.kind, str)
    return t


# -- strategies ---------------------------------------------------------------------------------



def _set_path(obj, path, value):
    """Replace the value at ``path`` (a list of indices picked modulo the container sizes)."""
    if not path or not isinstance(obj, (dict, list)) or not obj:
        return value
    keys = list(obj.keys()) if isinstance(obj, dict) else list(range(len(obj)))
    k = keys[path[0] % len(keys)]
    obj = dict(obj) if isinstance(obj, dict) else list(obj)
    obj[k] = _set_path(obj[k], path[1:], value)
    return obj


mutated_record = st.builds(
    _set_path,
    st.sampled_from(SEED_RECORDS),
    st.lists(st.integers(0, 50), min_size=1, max_size=5),
    json_value,
)


def _deep(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


deep_record = st.builds(
    lambda depth, kind, where: json.dumps(
        _set_path(
            {"type": "user", "sessionId": "s", "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}},
            where,
            "@@DEEP@@",
        )
    ).replace('"@@DEEP@@"', _deep(depth, kind)),
    st.integers(50, 3000),
    st.sampled_from(["list", "dict"]),
    st.lists(st.integers(0, 5), min_size=1, max_size=4),
)

hostile_bytes = st.one_of(
    st.binary(max_size=800),
    st.builds(lambda cut: SEED_BYTES[:cut], st.integers(0, len(SEED_BYTES))),  # truncated JSONL
    st.builds(lambda a, b: SEED_BYTES[:a] + SEED_BYTES[b:], st.integers(0, len(SEED_BYTES)), st.integers(0, len(SEED_BYTES))),
    st.builds(lambda i, junk: SEED_BYTES[:i] + junk + SEED_BYTES[i:], st.integers(0, len(SEED_BYTES)), st.binary(max_size=20)),
    st.lists(mutated_record, min_size=1, max_size=12).map(lambda rs: "\n".join(json.dumps(r) for r in rs).encode()),
    st.lists(st.one_of(mutated_record.map(json.dumps), deep_record, st.text(max_size=50)), min_size=1, max_size=6).map(
        lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")
    ),
    st.builds(lambda n: b'{"type":"user","message":{"role":"user","content":"' + b"A" * n + b'"}}', st.integers(0, 400_000)),
    st.builds(lambda d: b"[" * d, st.integers(1, 100_000)),
    st.builds(lambda d: b'{"messages":' + b"[" * d + b"]" * d + b"}", st.integers(1, 5000)),
    json_value.map(lambda v: json.dumps(v).encode()),
)


# -- properties ------------------------------------------------------------------------------------


@fuzz(600)
@given(data=hostile_bytes, as_text=st.booleans(), fmt=st.sampled_from(["auto", "auto", "claude-code", "openai", "anthropic", "text", "bogus"]))
@example(data=b"\xff\xfe\x00\x01", as_text=False, fmt="auto")
@example(data=b"[" * 200_000, as_text=True, fmt="auto")
@example(data=b'{"type":"user","message":5}\n{"type":"assistant","message":{"content":5}}', as_text=True, fmt="auto")
def test_read_transcript_from_hostile_bytes(data, as_text, fmt):
    source = data
    if as_text:
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError:
            source = data.decode("utf-8", "surrogateescape")  # lone surrogates in a str
    read_or_clear_error(source, fmt=fmt)


@fuzz(200)
@given(data=hostile_bytes, suffix=st.sampled_from([".jsonl", ".json", ".txt", ".md", ""]))
def test_read_transcript_from_hostile_files(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("t") / f"session{suffix}"
    path.write_bytes(data)
    t = read_or_clear_error(path)
    if t is not None and suffix == ".jsonl" and data.startswith(b"{") and b"\x00" not in data:
        assert t.format in ("claude-code", "openai", "anthropic", "text")


def test_truncation_at_every_record_boundary_only_loses_the_tail():
    """Cut a real transcript after each record: events only grow with the prefix, nothing is skipped."""
    lines = SEED_BYTES.splitlines(keepends=True)
    full = compaction.read_transcript(SEED_BYTES)
    previous = 0
    for i in range(1, len(lines) + 1):
        t = compaction.read_transcript(b"".join(lines[:i]))
        assert len(t.events) >= previous
        previous = len(t.events)
        # a half-written last record (a killed writer) is skipped and counted, never fatal
        half = b"".join(lines[: i - 1]) + lines[i - 1][: len(lines[i - 1]) // 2]
        th = compaction.read_transcript(half)
        assert th.skipped <= t.skipped + 1
    assert previous == len(full.events)


@fuzz(300)
@given(records=st.lists(mutated_record, min_size=1, max_size=15))
def test_wrong_types_in_claude_code_records_are_skipped_not_fatal(records):
    t = read_or_clear_error(records, fmt="claude-code")
    # a list of records whose fields have the wrong types is still a transcript: the bad
    # records are skipped and counted, the read never fails
    assert t is not None
    # each record is skipped at most once, or each of its content blocks is (a list of bad blocks)
    blocks = sum(
        len(r["message"]["content"])
        for r in records
        if isinstance(r.get("message"), dict) and isinstance(r["message"].get("content"), list)
    )
    assert t.skipped <= len(records) + blocks
    assert t.skipped == sum(t.skipped_reasons.values())
    t2 = read_or_clear_error("\n".join(json.dumps(r) for r in records), fmt="claude-code")
    if t is not None and t2 is not None:
        assert len(t.events) == len(t2.events)


@fuzz(300)
@given(
    messages=st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant", "tool", "system", 5, None]), "content": json_value},
                optional={"tool_calls": json_value, "tool_call_id": json_value, "name": json_value},
            ),
            json_value,
        ),
        max_size=8,
    ),
    fmt=st.sampled_from(["auto", "openai", "anthropic"]),
)
def test_message_lists_with_wrong_types(messages, fmt):
    read_or_clear_error(messages, fmt=fmt)
    read_or_clear_error({"messages": messages, "system": "be brief"}, fmt=fmt)


def _distill_or_clear_error(fn, source, **kw):
    try:
        r = fn(source, **kw)
    except Exception as exc:  # noqa: BLE001
        one_line_error(exc)
        return None
    return r


@pytest.mark.slow
@fuzz(60)
@given(data=hostile_bytes)
def test_status_handoff_and_summary_over_hostile_transcripts(engine, data):
    st_ = _distill_or_clear_error(compaction.context_status, data)
    if st_ is not None:
        assert st_.recommendation in ("fine", "compact", "handoff")
    h = _distill_or_clear_error(compaction.make_handoff, data, engine=engine, budget_tokens=400)
    if h is not None:
        assert len(h.text) < 10_000
    s = _distill_or_clear_error(compaction.summarize, data, engine=engine, budget_tokens=300)
    if s is not None:
        assert s.backend == "embedded" and isinstance(s.text, str)


@pytest.mark.slow
def test_huge_single_line_transcript(engine):
    big = b'{"type":"user","sessionId":"s","message":{"role":"user","content":"' + b"word " * 400_000 + b'"}}\n'
    t = compaction.read_transcript(big)
    assert t.events and len(t.events[0].text) >= 2_000_000
    s = compaction.context_status(big)
    assert s.tokens_used > 300_000
    h = compaction.make_handoff(big, engine=engine)
    assert len(h.text) < 10_000
