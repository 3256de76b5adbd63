"""The compaction algorithm: budgets, verbatim output, markers, pins, long lines, expand.

These use the BM25 baseline as the scorer (a real, deterministic ranker) so that they
test the algorithm, not the model; tests/test_model*.py cover the model itself.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compaction
from compaction import Engine, Limits, Settings
from compaction.baselines import BM25Scorer, HeadTailScorer, TailScorer

LOG = "\n".join(
    [f"collected {i} items" if i == 0 else f"tests/test_mod.py::test_case_{i} PASSED [{i}%]" for i in range(80)]
    + [
        "________________ test_parse_date ________________",
        "    def test_parse_date():",
        ">       assert parse_date('2024-01-01') == date(2024, 1, 1)",
        "E       ValueError: month must be in 1..12",
        "src/dates.py:42: ValueError",
        "FAILED tests/test_dates.py::test_parse_date - ValueError: month must be in 1..12",
        "============ 1 failed, 79 passed in 2.31s ============",
    ]
)


@pytest.fixture
def engine(tmp_path):
    return Engine(scorer=BM25Scorer(), settings=Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"))


def test_importing_the_engine_never_imports_mcp():
    code = "import sys, compaction, compaction.baselines; assert 'mcp' not in sys.modules, sorted(m for m in sys.modules if m.startswith('mcp'))"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_budget_is_respected_and_output_is_verbatim(engine):
    r = engine.compact(LOG, ratio=0.3, query="why does test_parse_date fail with ValueError")
    assert r.tokens_after <= r.budget_tokens == int(r.tokens_before * 0.3)
    assert r.tokens_after == compaction.count_tokens(r.text)
    assert compaction.verify_verbatim(LOG, r.text)
    assert "E       ValueError: month must be in 1..12" in r.text.splitlines()
    assert r.lines_kept < r.lines_before
    assert r.scorer == "bm25"


def test_kept_ranges_describe_the_kept_lines(engine):
    r = engine.compact(LOG, ratio=0.3, query="ValueError parse_date")
    src = LOG.splitlines()
    kept = [src[i - 1] for a, b in r.kept_line_ranges for i in range(a, b + 1)]
    body = [line for line in r.text.splitlines() if not compaction.is_marker_line(line)]
    assert kept == body
    covered = sorted(i for a, b in r.kept_line_ranges + r.omitted_line_ranges for i in range(a, b + 1))
    assert covered == list(range(1, len(src) + 1))


def test_each_omitted_run_becomes_one_marker_and_expand_gives_it_back(engine):
    r = engine.compact(LOG, ratio=0.3, query="ValueError")
    markers = [line for line in r.text.splitlines() if compaction.is_marker_line(line)]
    gap_markers = [m for m in markers if m.endswith(" omitted]")]
    assert len(gap_markers) == len(r.omitted_line_ranges)
    assert r.handle and r.handle in markers[-1]
    for (a, b), marker in zip(r.omitted_line_ranges, gap_markers):
        assert marker == f"[{a}-{b} omitted]"
        assert engine.expand(r.handle, f"{a}-{b}").text == "".join(LOG.splitlines(keepends=True)[a - 1 : b])
    assert engine.expand(r.handle).text == LOG


def test_markers_can_be_turned_off(engine):
    r = engine.compact(LOG, ratio=0.3, query="ValueError", markers=False)
    assert not any(compaction.is_marker_line(line) for line in r.text.splitlines())
    assert set(r.text.splitlines()) <= set(LOG.splitlines())


def test_target_tokens(engine):
    r = engine.compact(LOG, target_tokens=120, query="ValueError")
    assert r.budget_tokens == 120 and r.tokens_after <= 120


def test_a_budget_above_the_input_returns_it_unchanged(engine):
    r = engine.compact(LOG, ratio=1.0)
    assert r.text == LOG and r.handle is None and r.omitted_line_ranges == []


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, float("nan"), True, "half"])
def test_ratio_outside_0_1_is_a_clear_error(engine, bad):
    with pytest.raises(compaction.BudgetError, match="ratio"):
        engine.compact(LOG, ratio=bad)


def test_ratio_and_target_together_is_an_error(engine):
    with pytest.raises(compaction.BudgetError, match="either"):
        engine.compact(LOG, ratio=0.5, target_tokens=10)


@pytest.mark.parametrize(
    "bad, error",
    [
        ("", compaction.EmptyInputError),
        (" \n\t\n", compaction.EmptyInputError),
        ("abc\x00def", compaction.BinaryInputError),
        (b"\xff\xfe\x00garbage", compaction.BinaryInputError),
        ("lone \ud800 surrogate", compaction.BinaryInputError),
        (12345, compaction.InputError),
    ],
)
def test_bad_input_gets_a_clear_one_line_error(engine, bad, error):
    with pytest.raises(error) as info:
        engine.compact(bad)
    assert "\n" not in str(info.value) and str(info.value)


def test_input_over_the_size_limit(tmp_path):
    eng = Engine(scorer=TailScorer(), settings=Settings(limits=Limits(max_input_bytes=1000), cache_dir=tmp_path))
    with pytest.raises(compaction.InputTooLargeError, match="CONTEXT_DISTILL_MAX_INPUT_BYTES"):
        eng.compact("x\n" * 600)


def test_input_over_the_line_limit(tmp_path):
    """Time and memory grow with lines: a text of very many short lines is refused, not run."""
    eng = Engine(scorer=TailScorer(), settings=Settings(limits=Limits(max_input_lines=500), cache_dir=tmp_path))
    assert eng.compact("x\n" * 500, ratio=0.3).tokens_before == 1000
    with pytest.raises(compaction.InputTooLargeError, match=r"501 lines, over the limit of 500 lines.*CONTEXT_DISTILL_MAX_INPUT_LINES"):
        eng.compact("x\n" * 500 + "y")
    msgs = [{"role": "tool", "content": "x\n" * 800}, {"role": "user", "content": "go on"}]
    res = eng.compact_messages(msgs, ratio=0.3, preserve_recent=1)  # a part over it is left whole, with a warning
    assert res.messages[0]["content"] == "x\n" * 800 and any("800 lines" in w for w in res.warnings)


@given(st.text(alphabet=st.sampled_from(list("ab \n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"))))
def test_count_lines_is_splitlines(text):
    from compaction._compact import count_lines

    assert count_lines(text) == len(text.splitlines())


def test_pins_survive_keep_tags_and_patterns(engine):
    text = "\n".join([f"noise line {i}" for i in range(200)])
    text = text.replace("noise line 50", "<keep>pinned A\nnoise line 50\npinned B</keep>")
    r = engine.compact(text, ratio=0.1, keep=[r"noise line 1[0-9]{2}$"], query="nothing relevant")
    lines = r.text.splitlines()
    for needle in ("<keep>pinned A", "noise line 50", "pinned B</keep>", "noise line 150", "noise line 199"):
        assert needle in lines
    assert r.pinned_lines == 3 + 100


def test_pins_over_budget_are_kept_with_a_warning(engine):
    text = "\n".join(f"important {i}" for i in range(50))
    r = engine.compact(text, ratio=0.1, keep=["important"])
    assert len([x for x in r.text.splitlines() if x.startswith("important")]) == 50
    assert r.warnings and "pinned" in r.warnings[0]


def test_invalid_keep_pattern(engine):
    with pytest.raises(compaction.InputError, match="regular expression"):
        engine.compact(LOG, keep=["(unclosed"])


def test_catastrophic_keep_pattern_is_stopped_with_a_clear_error():
    """A pattern that backtracks exponentially must not hold the caller (or a server worker)."""
    import time

    eng = Engine(scorer=BM25Scorer(), store=False, settings=Settings(limits=Limits(keep_pattern_seconds=0.3)))
    text = "\n".join(["a" * 60 + "!"] * 5 + ["ordinary line"] * 50)
    t0 = time.monotonic()
    with pytest.raises(compaction.InputError, match=r"ran past its time limit.*simplify"):
        eng.compact(text, keep=[r"(a|aa)+$"])
    assert time.monotonic() - t0 < 5
    # the same engine goes on working, and an ordinary pattern still pins its lines
    r = eng.compact(text, ratio=0.2, keep=[r"^a+!$"])
    assert r.text.count("a" * 60 + "!") == 5


def test_one_huge_line_is_cut_into_segments_not_dropped(engine):
    blob = '{"items": [' + ", ".join(f'{{"id": {i}, "name": "item-{i}"}}' for i in range(3000)) + "]}"
    r = engine.compact(blob, ratio=0.2, query="item-1234")
    assert r.partial_lines == [1]
    assert "item-1234" in r.text
    assert r.tokens_after <= r.budget_tokens
    assert compaction.verify_verbatim(blob, r.text)
    assert engine.expand(r.handle).text == blob
    # a line kept only in part is not counted as kept: "kept 1 of 1" would read as nothing omitted
    assert "kept 0 of 1 lines" in r.text.splitlines()[-1]
    r = engine.compact("header\n" + blob + "\nfooter\n", ratio=0.3, query="item-1234")
    assert r.partial_lines == [2] and "kept 2 of 3 lines" in r.text.splitlines()[-1]


def test_crlf_and_odd_line_breaks_are_kept_byte_for_byte(engine):
    text = "".join(f"row item{i} value\r\n" for i in range(100)) + "tail\x0bvertical\u2028sep\n"
    r = engine.compact(text, ratio=0.4, query="row item42")
    assert "row item42 value\r\n" in r.text
    assert compaction.verify_verbatim(text, r.text)
    assert engine.expand(r.handle).text == text


def test_expand_errors(engine):
    with pytest.raises(compaction.HandleNotFoundError, match="no original"):
        engine.expand("0123456789abcdef")
    with pytest.raises(compaction.InputError, match="16"):
        engine.expand("../../etc/passwd")
    r = engine.compact(LOG, ratio=0.3)
    with pytest.raises(compaction.InputError, match="past the end"):
        engine.expand(r.handle, "500-600")
    with pytest.raises(compaction.InputError, match="bad line range"):
        engine.expand(r.handle, "ten-twenty")


def test_parse_line_ranges():
    assert compaction.parse_line_ranges("3, 1-2 ,10-", 12) == [(1, 3), (10, 12)]
    assert compaction.parse_line_ranges([[5, 7], 9], 20) == [(5, 7), (9, 9)]
    with pytest.raises(compaction.InputError):
        compaction.parse_line_ranges("0-3", 10)


def test_unwritable_cache_degrades_to_no_handle(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    eng = Engine(scorer=HeadTailScorer(), settings=Settings(cache_dir=blocker / "sub", data_dir=tmp_path))
    r = eng.compact(LOG, ratio=0.3)
    assert r.handle is None
    assert any("cannot write" in w for w in r.warnings)
    assert "not stored" in r.text.splitlines()[-1]


def test_progress_is_reported(engine):
    seen = []
    engine.compact(LOG, ratio=0.3, on_progress=lambda f, m: seen.append(f))
    assert seen[0] < seen[-1] == 1.0


def test_compact_messages_reports_progress_per_part(engine):
    seen = []
    msgs = [{"role": "user", "content": LOG}, {"role": "user", "content": "tiny"}, {"role": "user", "content": LOG}]
    r = engine.compact_messages(msgs, ratio=0.3, preserve_recent=0, on_progress=lambda f, m: seen.append((f, m)))
    assert r.compacted_parts == 2
    assert seen == [
        (0.0, "compacting message part 1 of 2"),
        (0.5, "compacting message part 2 of 2"),
        (1.0, "compacted 2 of 2 message parts"),
    ]


def test_compact_messages_openai_and_anthropic_shapes(engine):
    big = LOG
    msgs = [
        {"role": "system", "content": "You are a coding agent. " * 40},
        {"role": "user", "content": "Fix the failing date test"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "c1", "content": big},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": big}]}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Looking at parse_date now."}]},
        {"role": "user", "content": "Why does parse_date raise ValueError?"},
    ]
    r = engine.compact_messages(msgs, ratio=0.3, preserve_recent=2)
    assert r.query == "Looking at parse_date now.\n\nTask: Why does parse_date raise ValueError?"
    assert r.compacted_parts == 2 and len(r.handles) == 2
    out = r.messages
    assert out[0] == msgs[0]  # system untouched
    assert out[-2:] == msgs[-2:]  # recent untouched
    assert out[2] == msgs[2]
    assert compaction.verify_verbatim(big, out[3]["content"]) and len(out[3]["content"]) < len(big)
    inner = out[4]["content"][0]["content"][0]["text"]
    assert compaction.verify_verbatim(big, inner) and "E       ValueError: month must be in 1..12" in inner
    assert r.tokens_after < r.tokens_before
    assert msgs[3]["content"] == big  # the caller's list is not mutated


def test_compact_messages_rejects_bad_shapes(engine):
    with pytest.raises(compaction.InputError):
        engine.compact_messages("not a list")
    with pytest.raises(compaction.InputError):
        engine.compact_messages([{"content": "no role"}])
    with pytest.raises(compaction.InputError):
        engine.compact_messages([])


_line = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=120)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(_line, min_size=1, max_size=60),
    ratio=st.floats(min_value=0.05, max_value=1.0),
    ending=st.sampled_from(["\n", "\r\n", ""]),
    query=st.text(max_size=30),
)
def test_verbatim_budget_and_expand_properties(engine, lines, ratio, ending, query):
    text = "\n".join(lines) + ending
    try:
        r = engine.compact(text, ratio=ratio, query=query)
    except compaction.EmptyInputError:
        assert not text.strip()
        return
    assert compaction.verify_verbatim(text, r.text)
    if not r.warnings:
        assert r.tokens_after <= r.budget_tokens
    if r.handle:
        assert engine.expand(r.handle).text == text


def test_a_tiny_input_that_would_lose_every_line_comes_back_unchanged(engine):
    text = "FAILED test_x - AssertionError: expected 3 got 4\n"
    r = engine.compact(text, ratio=0.5)
    assert r.text == text and r.handle is None and not r.omitted_line_ranges
    assert any("too small to compact" in w for w in r.warnings)


def test_a_large_input_under_a_tiny_budget_is_markers_only_and_says_so(engine):
    text = "\n".join(f"line {i} some words here" for i in range(100))
    r = engine.compact(text, target_tokens=8)
    assert r.tokens_after <= 8 and r.kept_line_ranges == [] and r.omitted_line_ranges == [(1, 100)]
    assert r.text == "[1-100 omitted]\n"
    assert r.handle and engine.expand(r.handle).text == text
    assert any("every line was omitted" in w for w in r.warnings)


@pytest.mark.parametrize("budget", [1, 5])
def test_a_budget_below_one_marker_gives_the_marker_and_a_warning_not_the_whole_input(engine, budget):
    text = "\n".join(f"line {i} some words here and there" for i in range(100))
    r = engine.compact(text, target_tokens=budget)
    assert r.text == "[1-100 omitted]\n" and r.tokens_after < 10 < r.tokens_before
    assert r.handle and engine.expand(r.handle).text == text
    assert any("smaller than the omission markers" in w for w in r.warnings), r.warnings


@pytest.mark.parametrize("spec", ["9" * 5000, "1-" + "9" * 30, " , ", ",", "١-٣"])
def test_expand_refuses_absurd_or_empty_ranges_with_one_line(engine, spec):
    r = engine.compact(LOG, ratio=0.2, query="why did test_parse_date fail")
    with pytest.raises(compaction.InputError) as exc:
        engine.expand(r.handle, spec)
    assert len(str(exc.value).splitlines()) == 1 and len(str(exc.value)) < 400


def test_compact_messages_checks_query_and_keep_up_front(engine):
    msgs = [{"role": "user", "content": LOG}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "next"}]
    with pytest.raises(compaction.InputError, match="query must be text"):
        engine.compact_messages(msgs, query=5, preserve_recent=0)
    with pytest.raises(compaction.InputError, match="not a valid regular expression"):
        engine.compact_messages(msgs, keep=["("], preserve_recent=0)
    with pytest.raises(compaction.InputError, match="keep must be a list"):
        engine.compact_messages(msgs, keep=5, preserve_recent=0)


def test_compact_messages_says_when_the_target_cannot_be_met(engine):
    msgs = [{"role": "user", "content": LOG}, {"role": "user", "content": LOG}]
    r = engine.compact_messages(msgs, target_tokens=100, preserve_recent=1)
    assert r.tokens_after > 100
    assert any("over target_tokens=100" in w for w in r.warnings)
    # a ratio the part floor cannot meet says so too
    r = engine.compact_messages(msgs, ratio=0.01, preserve_recent=1)
    assert any("over ratio=0.01" in w and "48 tokens" in w for w in r.warnings), r.warnings
    assert not any("over ratio" in w for w in engine.compact_messages(msgs, ratio=0.5, preserve_recent=1).warnings)


def _small_output(tag: str, n: int) -> str:
    return "\n".join(f"{tag} line {i}: value={i * 37 % 101} status={'ok' if i % 5 else 'fail'}" for i in range(n))


def test_every_compacted_message_part_names_its_handle_and_the_parts_map_to_them(engine):
    # parts so small that their share of the budget cannot hold the handle line: it is there anyway
    msgs = [
        {"role": "user", "content": "find the failing module"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": _small_output("alpha", 10)}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "b", "content": _small_output("beta", 10)}]},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "ok"},
    ]
    r = engine.compact_messages(msgs, ratio=0.2)
    assert r.compacted_parts == 2 and [p.message for p in r.parts] == [1, 2]
    for part in r.parts:
        text = r.messages[part.message]["content"][0]["content"]
        assert f'expand(handle="{part.handle}")' in text.splitlines()[-1]
        assert part.tokens_after < part.tokens_before
        assert engine.expand(part.handle).text == msgs[part.message]["content"][0]["content"]
    assert r.handles == [p.handle for p in r.parts]


def test_message_tokens_count_system_prompts_and_tool_inputs_and_the_target_covers_them(engine):
    import json

    big = "\n".join(f"def f{i}(x): return x*{i}" for i in range(300))
    msgs = [
        {"role": "system", "content": big},
        {"role": "user", "content": "write a.py"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "write", "arguments": json.dumps({"path": "a.py", "content": big})}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "done"},
    ]
    size = engine.tokenizer.count(big)
    r = engine.compact_messages(msgs, target_tokens=500)
    assert r.tokens_before > 2 * size - 50  # the system prompt and the tool call's arguments count
    assert r.tokens_after == r.tokens_before and r.compacted_parts == 0
    assert any(w.startswith("nothing was compacted") for w in r.warnings), r.warnings


def test_message_metadata_and_media_are_not_counted_as_text(engine):
    blob = "QUJD" * 3000
    msgs = [
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": blob, "format": "wav"}},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": blob}},
                                     {"type": "text", "text": "what is said here?"}]},
        {"role": "assistant", "content": "It says hello.", "extra": {"response": {"usage": {"total": 1}, "raw": blob}},
         "model": "some-model", "usage": {"service_tier": "standard"}},
    ]
    r = engine.compact_messages(msgs, preserve_recent=0)
    assert r.tokens_before == engine.tokenizer.count("what is said here?") + engine.tokenizer.count("It says hello.")


def test_under_a_target_below_what_is_never_compacted_parts_keep_a_floor_and_the_warning_names_the_causes(engine):
    from compaction._engine import PART_FLOOR_TOKENS

    tool_input = {"path": "big.py", "content": "\n".join(f"def f{i}(x): return x*{i}" for i in range(300))}
    result = "\n".join(f"tests/test_m.py::test_{i} PASSED" for i in range(12)) + "\n12 passed in 0.3s"
    msgs = [
        {"role": "user", "content": "write big.py and run the tests"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "w", "name": "Write", "input": tool_input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "w", "content": result}]},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "thanks"},
    ]
    r = engine.compact_messages(msgs, target_tokens=300)
    from compaction._messages import message_text

    assert r.tokens_after == sum(engine.tokenizer.count(t) for m in r.messages for t in message_text(m))
    (part,) = r.parts
    assert part.tokens_after <= PART_FLOOR_TOKENS + 2 and part.tokens_after < part.tokens_before
    text = r.messages[2]["content"][0]["content"]
    assert any(not compaction.is_marker_line(ln) for ln in text.splitlines())  # some lines survive
    (w,) = [w for w in r.warnings if "over target_tokens=300" in w]
    assert "system prompts, tool inputs" in w and "preserve_recent" not in w  # the recent messages are small


def test_message_ratio_is_per_part_and_a_call_that_compacts_nothing_says_so(engine):
    msgs = [{"role": "user", "content": LOG}, {"role": "assistant", "content": LOG}, {"role": "user", "content": LOG}]
    r = engine.compact_messages(msgs, ratio=0.3, preserve_recent=1)
    assert [p.message for p in r.parts] == [0, 1]
    assert all(p.tokens_after <= 0.3 * p.tokens_before + 1 for p in r.parts), r.parts
    r = engine.compact_messages([{"role": "user", "content": LOG}], ratio=0.3)  # all of it is recent
    assert r.compacted_parts == 0 and any(w.startswith("nothing was compacted") for w in r.warnings)


def test_parts_that_keep_no_lines_are_counted_once_and_a_store_failure_warns_once(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    eng = Engine(scorer=BM25Scorer(), settings=Settings(cache_dir=blocker / "sub", data_dir=tmp_path))
    body = "\n".join(f"line {i} of a long tool output with some words" for i in range(200))
    msgs = [{"role": "user", "content": [{"type": "text", "text": body}]} for _ in range(5)]
    msgs.append({"role": "user", "content": "go"})
    r = eng.compact_messages(msgs, markers=False, target_tokens=1, preserve_recent=1)
    assert r.compacted_parts == 5
    assert len([w for w in r.warnings if "cannot write" in w]) == 1, r.warnings
    # no part is emptied: each keeps its floor of lines (an empty text block is refused by APIs)
    assert all(r.messages[k]["content"][0]["text"].strip() for k in range(5))


def test_pins_over_a_part_budget_are_named_with_their_message(engine):
    body = "\n".join(
        f"ERROR case {i} failed with code {i * 7}" if i % 4 == 0 else f"ok {i}: everything went fine in this step" for i in range(200)
    )
    msgs = [{"role": "user", "content": body}, {"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]
    r = engine.compact_messages(msgs, keep=["ERROR"], target_tokens=200)
    assert any(w.startswith("message 0: pinned lines alone need") for w in r.warnings), r.warnings


def test_a_runaway_keep_pattern_fails_the_messages_call_once(tmp_path):
    limits = Limits(keep_pattern_seconds=0.2)
    eng = Engine(scorer=BM25Scorer(), settings=Settings(cache_dir=tmp_path / "c", data_dir=tmp_path / "d", limits=limits))
    body = "a" * 3000 + "!"
    msgs = [{"role": "user", "content": "\n".join([body] * 5 + [f"line {i}" for i in range(60)])} for _ in range(6)]
    msgs.append({"role": "user", "content": "go"})
    with pytest.raises(compaction.KeepPatternError, match="time limit"):
        eng.compact_messages(msgs, keep=[r"(a|aa)+$"], preserve_recent=1)


def test_tool_inputs_that_are_not_json_data_do_not_break_the_default_query(engine):
    import datetime

    msgs = [
        {"role": "user", "content": "check the dates"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "q", "input": {"v": datetime.date(2024, 1, 1)}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": LOG}]},
        {"role": "user", "content": "and now?"},
    ]
    r = engine.compact_messages(msgs, ratio=0.3, preserve_recent=1)
    assert "2024-01-01" in r.query and r.compacted_parts == 1


def test_name_handle_puts_the_handle_line_in_even_under_a_small_budget(engine):
    plain = engine.compact(LOG, target_tokens=60)
    assert plain.handle and plain.handle not in plain.text  # the line would crowd a 60-token budget
    named = engine.compact(LOG, target_tokens=60, name_handle=True)
    assert named.text.splitlines()[-1] == compaction.handle_line(named.handle)
    assert compaction.verify_verbatim(LOG, named.text) and engine.expand(named.handle).text == LOG


# -- compacting a compaction again ------------------------------------------------------------
def _markers_restore_their_lines(engine, original: str, compacted: str, handle: str) -> None:
    import re

    lines = original.splitlines(keepends=True)
    for m in re.finditer(r"^\[(\d+)-(\d+) omitted\]$", compacted, re.M):
        a, b = int(m.group(1)), int(m.group(2))
        assert engine.expand(handle, f"{a}-{b}").text == "".join(lines[a - 1 : b])


def _shown_lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if not compaction.is_marker_line(x)]


def test_a_compaction_compacted_again_is_re_cut_on_its_original(engine):
    """Its markers count the original's lines: compacting the result as new text would mix them
    with markers counting the result's lines, under one handle that fits neither. The re-cut keeps
    only lines the earlier result showed, numbered as in the original, under its handle."""
    first = engine.compact(LOG, ratio=0.6, query="why does test_parse_date fail?")
    again = engine.compact(first.text, ratio=0.5, query="why does test_parse_date fail?")
    assert again.handle == first.handle  # the same original, stored once
    assert again.tokens_before == first.tokens_after and again.tokens_after <= again.budget_tokens
    assert again.lines_before == LOG.count("\n") + 1
    assert compaction.verify_verbatim(LOG, again.text) and compaction.verify_verbatim(first.text, again.text)
    _markers_restore_their_lines(engine, LOG, again.text, again.handle)
    assert any("re-cut the earlier compaction" in w for w in again.warnings)


def test_a_re_cut_never_brings_back_lines_the_input_did_not_show(engine):
    first = engine.compact(LOG, ratio=0.5, query="why does test_parse_date fail?")
    tail = "\n".join(first.text.splitlines()[-6:]) + "\n"  # the end of a compaction, its trailer included
    again = engine.compact(tail, ratio=0.7, query="ValueError month", keep=["test_case_1 "])
    assert again.handle == first.handle
    assert set(_shown_lines(again.text)) <= set(_shown_lines(tail))
    _markers_restore_their_lines(engine, LOG, again.text, again.handle)


def test_a_re_cut_of_a_result_that_shows_a_secret(engine):
    """The cache holds originals with secrets redacted; the result the agent saw holds the secret."""
    log = LOG.replace("src/dates.py:42: ValueError", "curl -u admin:Sup3rS3cretPw https://ci.example.com/api")
    first = engine.compact(log, ratio=0.7, query="curl ci.example.com api", keep=["^curl"])
    assert "Sup3rS3cretPw" in first.text
    again = engine.compact(first.text, ratio=0.6, query="curl ci.example.com api")
    assert again.handle == first.handle and again.tokens_after < again.tokens_before
    assert "Sup3rS3cretPw" not in again.text  # the re-cut shows the stored, redacted line


def test_a_compaction_with_lines_added_is_compacted_as_new_text(engine):
    first = engine.compact(LOG, ratio=0.6)
    text = "== build.log ==\n" + first.text
    again = engine.compact(text, ratio=0.5)
    assert again.handle != first.handle and compaction.verify_verbatim(text, again.text)
    assert not any("not in this cache" in w for w in again.warnings)


def test_a_compaction_printed_with_its_cli_warnings_is_recognised(engine):
    first = engine.compact(LOG, ratio=0.6)
    text = first.text + "context-distill: warning: something the CLI said on stderr\n"  # run with 2>&1
    assert engine.compact(text, ratio=0.5).handle == first.handle
    # what the MCP text result adds (a warning line) is part of the result too
    with_warning = first.text + "[... context-distill: warning: something ...]\n"
    assert engine.compact(with_warning, ratio=0.5).handle == first.handle


def test_a_compaction_whose_original_is_gone_comes_back_unchanged(engine, tmp_path):
    first = engine.compact(LOG, ratio=0.6)
    other = Engine(scorer=BM25Scorer(), settings=Settings(cache_dir=tmp_path / "other-cache", data_dir=tmp_path / "d"))
    again = other.compact(first.text, ratio=0.5)
    assert again.text == first.text and again.handle is None
    assert any(first.handle in w and "returned unchanged" in w for w in again.warnings)


def test_an_engine_that_keeps_no_originals_compacts_a_compaction_as_new_text(engine):
    """Summaries fit tool output with ``store=False``: a hook-shrunk output or a pasted compact
    result there must still fit the budget (it came back whole: 15,947 tokens for 100 asked)."""
    big = "\n".join(f"tests/test_mod.py::test_case_{i} PASSED [{i % 100}%]" for i in range(2000)) + "\n" + LOG
    first = engine.compact(big, ratio=0.5, query="why does test_parse_date fail?")
    quiet = Engine(scorer=BM25Scorer(), store=False)
    again = quiet.compact(first.text, target_tokens=100, query="why does test_parse_date fail?")
    assert again.tokens_after <= 100 and again.handle is None
    assert compaction.verify_verbatim(first.text, again.text)
    assert not any("not in this cache" in w for w in again.warnings)


def test_a_re_cut_shows_the_repeated_line_the_earlier_result_showed(engine):
    """Lines 1 and 100 are both '}': the earlier result shows line 100 after '[1-99 omitted]'.
    Alignment took the first '}', so the re-cut showed line 1, which the agent never saw, under
    markers that contradicted the ones it did see."""
    from compaction._compact import align_earlier

    original = "\n".join(["}"] + [f"filler line {i} of the build output" for i in range(2, 100)] + ["}"]
                         + [f"more filler {i}" for i in range(101, 199)] + ["FAILED tests/test_x.py::test_y"]) + "\n"
    first = engine.compact(original, target_tokens=60, query="FAILED test_y", keep=["^}$"], name_handle=True)
    earlier = first.text.replace("}\n[2-99 omitted]\n}", "[1-99 omitted]\n}", 1)  # as if line 1 had not been kept
    assert earlier != first.text and earlier.startswith("[1-99 omitted]\n}\n")
    assert 0 not in align_earlier(original, earlier) and 99 in align_earlier(original, earlier)
    again = engine.compact(earlier, target_tokens=40, query="FAILED test_y", keep=["^}$"])
    assert again.handle == first.handle
    assert again.text.startswith("[1-99 omitted]\n}\n")
    _markers_restore_their_lines(engine, original, again.text, again.handle)


def test_a_text_that_only_quotes_a_trailer_is_compacted_as_usual(engine):
    """This project's README shows a trailer line in the middle of a file: not a compaction."""
    text = LOG + '\n[... context-distill: kept 45 of 150 lines; expand(handle="3d5f5e2215ca0e31", lines="a-b") restores omitted lines ...]\nmore text after it\n'
    r = engine.compact(text, ratio=0.5)
    assert r.handle and r.handle != "3d5f5e2215ca0e31"
    assert not any("earlier compaction" in w for w in r.warnings)
    assert compaction.verify_verbatim(text, r.text)


def test_compact_messages_run_twice_keeps_one_numbering_per_part(engine):
    """An agent loop that compacts its history on every turn: the second pass compacts the
    first pass's parts from their originals, so every marker restores the lines it names."""
    tool_out = LOG
    msgs = [
        {"role": "user", "content": "why does test_parse_date fail?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{\"cmd\": \"pytest\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": tool_out},
        {"role": "assistant", "content": "Looking at src/dates.py."},
        {"role": "user", "content": "go on"},
    ]  # fmt: skip
    once = engine.compact_messages(msgs, ratio=0.6)
    twice = engine.compact_messages(once.messages, ratio=0.6)
    [part] = twice.parts
    text = twice.messages[2]["content"]
    assert part.handle == once.parts[0].handle
    assert compaction.verify_verbatim(tool_out, text)
    _markers_restore_their_lines(engine, tool_out, text, part.handle)
    assert twice.tokens_after < once.tokens_after
    assert not twice.warnings  # re-cutting is the normal case here: no note per part


def test_without_binary_data_replaces_only_data_values():
    from compaction._messages import without_binary_data

    import base64

    b64 = base64.b64encode(bytes(range(200)) * 3).decode()  # 800 characters
    msgs = [
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64}},
            {"type": "image_url", "image_url": {"url": "https://example.com/" + "a" * 300}},
            {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}},
            {"type": "file", "file": {"file_data": b64, "filename": "x.pdf"}},
            {"type": "text", "text": b64},  # text is text, whatever it looks like
        ]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": b64}]},
    ]  # fmt: skip
    shown = without_binary_data(msgs)
    parts = shown[0]["content"]
    assert parts[0]["image_url"]["url"] == "[822 characters of image/png data, not shown]"
    assert parts[1] == msgs[0]["content"][1]
    assert parts[2]["input_audio"] == {"data": "[800 characters of base64 data, not shown]", "format": "wav"}
    assert parts[3]["file"]["file_data"].startswith("[800 characters") and parts[4]["text"] == b64
    assert shown[1]["content"][0]["signature"].startswith("[800 characters")
    assert msgs[0]["content"][2]["input_audio"]["data"] == b64  # the input is not changed
    # an Anthropic document with a plain-text source, and word lists, are text
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "user0 active admin\n" * 40}}
    words = {"type": "x", "data": "-".join(["alpha", "beta", "gamma"] * 40)}
    assert without_binary_data([doc, words]) == [doc, words]
