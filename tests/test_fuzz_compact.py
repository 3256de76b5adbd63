"""Property-based fuzzing of compact / compact_messages / expand with hostile input (issue 5).

Whatever comes in (random text or bytes, invalid UTF-8, NUL bytes, huge single lines, every
line separator ``str.splitlines`` knows, nonsense ratios and targets, broken regular
expressions), the engine either answers or raises a ``ContextDistillError`` whose message
is one line. For valid input the verbatim promise holds, the budget holds (unless the
result warns why not), and ``expand`` gives the original back exactly.

The number of examples scales with ``CONTEXT_DISTILL_FUZZ_SCALE`` (default 1: a few
thousand cases over the fuzz modules, about a minute on 2 cores).
"""

from __future__ import annotations

import re

import pytest
from fuzzing import fuzz, json_value
from hypothesis import assume, example, given
from hypothesis import strategies as st

import compaction
from compaction import ContextDistillError, Engine, Limits, Settings
from compaction._redact import redact_secrets
from compaction.baselines import BM25Scorer, HeadTailScorer

BREAKS = ["\n", "\r\n", "\r", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz-engine")
    return Engine(
        scorer=BM25Scorer(),
        settings=Settings(limits=Limits(max_input_bytes=2_000_000), cache_dir=base / "cache", data_dir=base / "data"),
    )


def one_line_error(exc: BaseException) -> None:
    assert isinstance(exc, ContextDistillError), f"{type(exc).__name__}: {exc}"
    msg = str(exc)
    assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
    assert len(msg) < 2000


# -- strategies ------------------------------------------------------------------------------

_words = st.sampled_from(
    ["ERROR", "error:", "Traceback", "File", '"x.py",', "line", "42", "assert", "==", "def", "foo()", "PASSED",
     "FAILED", "test_parse", "{", "}", "[", "]", "<keep>", "</keep>", "\t", "  ", "é", "日本", "😀", "\u200b",
     "\x1b[31m", "\x1b[0m", "sk-", "[...", "...]", "lines omitted", "[1-2 omitted]", "[3-3 omitted]", "context-distill:"]
)  # fmt: skip
_any_char = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_line = st.one_of(
    st.lists(_words, max_size=12).map(" ".join),
    st.text(alphabet=_any_char, max_size=80),
)
_lines_text = st.builds(
    lambda lines, seps, tail: "".join(l + seps[i % len(seps)] for i, l in enumerate(lines)) + tail,
    st.lists(_line, min_size=1, max_size=50),
    st.lists(st.sampled_from(BREAKS), min_size=1, max_size=4),
    st.sampled_from(["", "\n", "last line without ending"]),
)
_huge_line = st.builds(
    lambda unit, n, pre, post: pre + unit * n + post,
    st.sampled_from(["x", "ab ", "{\"k\": [1, 2, 3]}, ", "QUJD", "日本語", "a,b;c|", "😀", "0123456789"]),
    st.integers(200, 6000),
    st.sampled_from(["", "head line\n", "ERROR first\r\n"]),
    st.sampled_from(["", "\n", "\ntail ERROR line\n"]),
)
valid_text = st.one_of(_lines_text, _huge_line, st.text(alphabet=_any_char, min_size=1, max_size=400))
hostile_input = st.one_of(
    valid_text,
    st.binary(max_size=600),
    st.builds(lambda a, b: a + b"\xff\xfe\xc3\x28" + b, st.binary(max_size=50), st.binary(max_size=50)),  # invalid UTF-8
    st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=60), st.text(max_size=60)),  # NUL
    st.text(max_size=200).map(lambda s: s.encode("utf-8")),  # valid UTF-8 bytes
    st.just(""),
    st.just("   \n\t \r\n"),
    st.just("\ud800 lone surrogate"),
    st.none(),
    st.integers(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
valid_ratio = st.floats(min_value=0.01, max_value=1.0)
any_ratio = st.one_of(
    st.none(),
    valid_ratio,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 3),
    st.booleans(),
    st.text(max_size=4),
)
any_target = st.one_of(st.none(), st.integers(-10, 20_000), st.floats(-1, 100), st.just(10**30), st.booleans(), st.text(max_size=3))
_bad_regex = st.sampled_from(["(", "[a-", "*", "a{2,1}", "(?P<x>", "\\", "(?<=a+)b", "[z-a]", "(?", ""])
_good_regex = st.sampled_from(["ERROR", r"\d+", "^E ", "(?i)traceback", "foo|bar", r"\.py:\d+", "$", "^"])
any_keep = st.one_of(
    st.just(()),
    st.lists(st.one_of(_good_regex, _bad_regex, st.text(max_size=6), st.none(), st.integers()), max_size=3),
    _good_regex,
    st.integers(),
)


# -- the properties -------------------------------------------------------------------------


def check_result(engine: Engine, text: str, r: compaction.CompactResult, *, markers: bool = True) -> None:
    assert compaction.verify_verbatim(text, r.text), (text, r.text)
    assert r.tokens_before == compaction.count_tokens(text)
    assert r.tokens_after == compaction.count_tokens(r.text)
    if not r.warnings:
        assert r.tokens_after <= r.budget_tokens
    else:
        for w in r.warnings:
            assert isinstance(w, str) and w and "\n" not in w
    n = len(text.splitlines())
    assert r.lines_before == n
    # kept and omitted ranges cover every line once, in order
    covered = [i for a, b in r.kept_line_ranges + r.omitted_line_ranges for i in range(a, b + 1)]
    assert sorted(covered) == list(range(1, n + 1))
    assert r.lines_kept == sum(b - a + 1 for a, b in r.kept_line_ranges)
    if not r.partial_lines and markers:
        src = text.splitlines()
        kept = [src[i - 1] for a, b in r.kept_line_ranges for i in range(a, b + 1)]
        body = [line for line in r.text.splitlines() if not compaction.is_marker_line(line)]
        # a kept input line that itself looks like a marker is skipped on both sides
        assert [k for k in kept if not compaction.is_marker_line(k)] == body
    if r.omitted_line_ranges:
        if r.handle is not None:
            stored = engine.expand(r.handle).text
            assert stored == redact_secrets(text)
            if redact_secrets(text) == text:
                assert stored == text
            # each omitted range comes back from expand, verbatim
            src = stored.splitlines(keepends=True)
            for a, b in r.omitted_line_ranges[:5]:
                assert engine.expand(r.handle, f"{a}-{b}").text == "".join(src[a - 1 : b])
        if markers and "expand(handle=" in r.text:
            assert r.handle is not None and r.handle in r.text
        if r.handle is None:
            assert "expand(handle=" not in r.text
        elif markers and r.budget_tokens >= 250:
            # only a small budget (where the trailer would take over a fifth of it) leaves it out
            assert r.handle in r.text
    else:
        assert r.text == text and r.handle is None


@fuzz(700)
@given(text=valid_text, ratio=valid_ratio, query=st.one_of(st.none(), st.text(max_size=40)))
@example(text="a\u2028b\u2028" + "\n".join(f"line {i} foo bar baz" for i in range(30)), ratio=0.5, query="b")
@example(text="x\x0b" * 40 + "y", ratio=0.3, query=None)
@example(text="ERROR " * 3000, ratio=0.1, query="ERROR")
@example(text="\n".join("ab" for _ in range(500)), ratio=0.01, query="")
def test_valid_text_keeps_every_promise(engine, text, ratio, query):
    assume(text.strip())
    r = engine.compact(text, ratio=ratio, query=query)
    check_result(engine, text, r)


@fuzz(300)
@given(text=_lines_text, target=st.integers(1, 400), markers=st.booleans(), keep=st.lists(_good_regex, max_size=2))
def test_target_tokens_markers_and_pins(engine, text, target, markers, keep):
    assume(text.strip())
    r = engine.compact(text, target_tokens=target, markers=markers, keep=keep)
    check_result(engine, text, r, markers=markers)
    pats = [re.compile(p) for p in keep]
    src = text.splitlines()
    kept = {i for a, b in r.kept_line_ranges for i in range(a, b + 1)} | set(r.partial_lines)
    if r.omitted_line_ranges:
        for i, line in enumerate(src, 1):
            if any(p.search(line) for p in pats):
                assert i in kept, f"pinned line {i} {line!r} was dropped"


@fuzz(900)
@given(text=hostile_input, ratio=any_ratio, target=any_target, keep=any_keep, query=st.one_of(st.none(), st.text(max_size=10), st.integers()))
@example(text=b"\xff\xfe\x00", ratio=0.5, target=None, keep=(), query=None)
@example(text="ok\n" * 50, ratio=float("nan"), target=None, keep=(), query=None)
@example(text="ok\n" * 50, ratio=None, target=0, keep=(), query=None)
@example(text="ok\n" * 50, ratio=0.5, target=10, keep=(), query=None)
@example(text="ok\n" * 50, ratio=0.5, target=None, keep=["("], query=None)
@example(text="ok\n" * 50, ratio=0.5, target=None, keep=[None], query=None)
def test_hostile_input_never_crashes(engine, text, ratio, target, keep, query):
    try:
        r = engine.compact(text, ratio=ratio, target_tokens=target, keep=keep, query=query)
    except Exception as exc:  # noqa: BLE001 - the point: only our errors may come out
        one_line_error(exc)
        return
    # it answered: the input and arguments were usable, so every promise must hold
    original = text.decode("utf-8") if isinstance(text, bytes) else text
    assert isinstance(original, str)
    check_result(engine, original, r)


def test_input_over_the_limit_is_rejected_without_work(tmp_path):
    eng = Engine(scorer=HeadTailScorer(), settings=Settings(limits=Limits(max_input_bytes=10_000), cache_dir=tmp_path))
    for big in ("x" * 10_001, b"y" * 10_001, "é" * 5001):  # the last: 5001 chars, 10002 bytes
        with pytest.raises(compaction.InputTooLargeError) as exc:
            eng.compact(big, ratio=0.5)
        one_line_error(exc.value)


@pytest.mark.slow
def test_one_line_of_several_megabytes(tmp_path):
    eng = Engine(scorer=BM25Scorer(), settings=Settings(cache_dir=tmp_path / "c", data_dir=tmp_path / "d"))
    text = '{"data": [' + ", ".join(f'{{"id": {i}, "v": "{"ab" * (i % 7)}"}}' for i in range(60_000)) + "]}"
    r = eng.compact(text, ratio=0.05, query="id 777")
    assert r.partial_lines == [1] and r.lines_before == 1
    check_result(eng, text, r)


# -- compact_messages with hostile message lists ----------------------------------------------

_json = json_value
_role = st.sampled_from(["user", "assistant", "tool", "system", "developer", "", "nobody"])
_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(_lines_text, _json)}),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": st.text(max_size=5), "content": st.one_of(_lines_text, st.lists(_json, max_size=3), _json)}
    ),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": st.text(max_size=5), "input": _json}),
    st.dictionaries(st.sampled_from(["type", "text", "content", "image_url"]), _json, max_size=3),
    _json,
)
_message = st.one_of(
    st.fixed_dictionaries({"role": _role, "content": st.one_of(_lines_text, st.lists(_block, max_size=4), _json)}),
    st.dictionaries(st.sampled_from(["role", "content", "tool_calls", "name"]), _json, max_size=4),
    _json,
)


@fuzz(400)
@given(
    messages=st.one_of(st.lists(_message, max_size=6), _json),
    ratio=st.one_of(st.none(), valid_ratio, st.floats(allow_nan=True)),
    preserve=st.one_of(st.integers(-2, 4), st.none(), st.text(max_size=2)),
)
def test_compact_messages_with_hostile_shapes(engine, messages, ratio, preserve):
    import copy
    import json

    before = copy.deepcopy(messages)
    try:
        r = engine.compact_messages(messages, ratio=ratio, preserve_recent=preserve, min_tokens=8)
    except Exception as exc:  # noqa: BLE001
        one_line_error(exc)
        assert messages == before or json.dumps(messages, default=str) == json.dumps(before, default=str)  # input untouched
        return
    assert json.dumps(messages, default=str) == json.dumps(before, default=str), "the caller's messages were modified"
    assert len(r.messages) == len(before)
    assert r.tokens_after <= r.tokens_before
    for h in r.handles:
        assert re.fullmatch(r"[0-9a-f]{16}", h)


# -- expand with hostile handles and ranges ---------------------------------------------------


@fuzz(400)
@given(
    handle=st.one_of(
        st.text(max_size=20),
        st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
        st.sampled_from(["../../etc/passwd", "/etc/passwd", "0123456789abcdef/../x", "..", "", "ABCDEF0123456789", "\x00" * 16]),
        st.integers(),
        st.none(),
    ),
    lines=st.one_of(
        st.none(),
        st.text(max_size=12),
        st.sampled_from(["1-", "0", "-1", "5-2", "1-99999999999999999999", "1,2,3", "a-b", "  7 - 9 ", ",,,"]),
        st.lists(st.one_of(st.integers(-5, 100), st.tuples(st.integers(-5, 100), st.integers(-5, 100)), st.text(max_size=3)), max_size=4),
        st.integers(),
    ),
)
def test_expand_with_hostile_handles_and_ranges(engine, handle, lines):
    stored = engine.compact("\n".join(f"row {i} value {i * 7}" for i in range(120)), ratio=0.2)
    assert stored.handle
    for h in (handle, stored.handle):
        try:
            r = engine.expand(h, lines)
        except Exception as exc:  # noqa: BLE001
            one_line_error(exc)
            continue
        assert h == stored.handle or (isinstance(h, str) and h.strip().lower() == stored.handle)
        assert all(1 <= a <= b <= r.total_lines for a, b in r.line_ranges)


def test_compact_is_deterministic(engine):
    """The load test checks server answers against direct engine calls: same input, same output."""
    text = "\n".join(f"{'ERROR' if i % 17 == 0 else 'INFO'} step {i} took {i % 13} ms" for i in range(400))
    a = engine.compact(text, ratio=0.3, query="which step failed")
    b = engine.compact(text, ratio=0.3, query="which step failed")
    assert a == b


# -- regressions found by this fuzzing -----------------------------------------------------------


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x85"])
def test_odd_line_break_before_a_marker_adds_no_empty_line(engine, sep):
    """Found by fuzzing: a kept line ending in U+2028 (or \\x0b, ...) got an extra '\\n' before the marker."""
    text = f"alpha{sep}beta{sep}" + "\n".join(f"line {i} foo bar baz" for i in range(30))
    r = engine.compact(text, ratio=0.5, query="alpha beta")
    assert compaction.verify_verbatim(text, r.text)
    assert "" not in r.text.splitlines()


def test_everything_pinned_gives_the_input_back_unchanged(engine):
    """Found by fuzzing: all lines pinned over budget still got a trailer and a handle."""
    text = "<keep>" + "\n".join(f"must keep line {i}" for i in range(20)) + "</keep>\n"
    r = engine.compact(text, target_tokens=5)
    assert r.text == text and r.handle is None and not r.omitted_line_ranges
    assert r.warnings and "pinned lines alone" in r.warnings[0]


def test_budget_below_the_markers_says_so(engine):
    """Found by fuzzing: with no pins at all the warning blamed pins."""
    text = "\n".join(f"line number {i} with some words" for i in range(50))
    r = engine.compact(text, target_tokens=3)
    assert r.tokens_after > r.budget_tokens
    assert r.warnings and "pinned" not in r.warnings[0] and "markers" in r.warnings[0]


@pytest.mark.parametrize("keep", [0, 3.5, {"a": 1}, object()])
def test_keep_that_is_not_a_list_is_an_input_error(engine, keep):
    """Found by fuzzing: keep=0 raised TypeError."""
    with pytest.raises(compaction.InputError, match="keep"):
        engine.compact("a\nb\n" * 50, ratio=0.5, keep=keep)


# -- the deletion model itself, fed the same hostile text -------------------------------------------


@pytest.fixture(scope="module")
def model_engine(tmp_path_factory):
    from compaction._model import ModelScorer

    try:
        scorer = ModelScorer(threads=1)
    except (compaction.AssetError, ImportError) as exc:
        pytest.skip(f"the deletion model is not available here: {exc}")
    base = tmp_path_factory.mktemp("fuzz-model")
    return Engine(scorer=scorer, settings=Settings(cache_dir=base / "cache", data_dir=base / "data"))


@fuzz(250)
@given(text=valid_text, ratio=valid_ratio, query=st.one_of(st.none(), st.text(max_size=40), st.just("<keep>")))
@example(text="\n" * 50 + "x", ratio=0.1, query="")
@example(text="\t \u00a0\u2028" * 100 + "ERROR", ratio=0.2, query="ERROR")
@example(text="😀" * 5000, ratio=0.05, query="😀")
def test_model_scorer_keeps_every_promise_on_hostile_text(model_engine, text, ratio, query):
    assume(text.strip())
    r = model_engine.compact(text, ratio=ratio, query=query)
    check_result(model_engine, text, r)
