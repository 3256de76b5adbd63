"""Caller-given keep patterns (compaction/_keep.py): Python ``re``'s syntax and meaning, run
under a time limit with the ``regex`` module."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compaction
from compaction._keep import MAX_PATTERNS, keep_pattern_lines

LINES = [
    "log{i} started", "log started", "x{e}", "xx", "{d}", "a{,2}b", "aab", "b", "digit 7", "[", ":", "]",
    "tests/test_a.py::test_x FAILED", "ERROR: boom", "café", "\x1c", "  indented", "{3}", "a{3}", "aaa", "",
]

PATTERNS = [
    r"log{i}", r"x{e}", r"{d}", r"a{,2}b", r"a{2,}", r"a{3}", r"[[:digit:]]", r"[^[]", r"[]]",
    r"\{d\}", r"FAILED$", r"(?i)error", r"^\s+\w", r"caf\w", r"\d", r"(?:x|xx){2}", r"[{}]", r"a{1,2}?b",
    r"(?P<q>a)(?P=q)", r"\bb\b",
]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.filterwarnings("ignore::FutureWarning")  # re on "[[": "Possible nested set"
def test_patterns_mean_what_they_mean_to_re(pattern):
    want = [bool(re.search(pattern, line)) for line in LINES]
    assert list(keep_pattern_lines(LINES, [pattern], 2.0)) == want


@pytest.mark.filterwarnings("ignore::FutureWarning")
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab{}[],:0123^|*+?()\\.dei", min_size=1, max_size=12))
def test_any_pattern_re_accepts_matches_as_re_does(pattern):
    try:
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        with pytest.raises(compaction.InputError):
            keep_pattern_lines(LINES, [pattern], 2.0)
        return
    try:
        got = list(keep_pattern_lines(LINES, [pattern], 2.0))
    except compaction.InputError as exc:  # refused (too large, or unsupported): said in one line
        assert len(str(exc).splitlines()) == 1
        return
    assert got == [bool(compiled.search(line)) for line in LINES]


def test_invalid_and_oversized_patterns_are_clear_errors():
    with pytest.raises(compaction.InputError, match="not a valid regular expression"):
        keep_pattern_lines(LINES, ["(unclosed"], 2.0)
    with pytest.raises(compaction.InputError, match="non-empty strings"):
        keep_pattern_lines(LINES, [""], 2.0)
    with pytest.raises(compaction.InputError, match="too many keep patterns"):
        keep_pattern_lines(LINES, ["a"] * (MAX_PATTERNS + 1), 2.0)
    t0 = time.monotonic()
    with pytest.raises(compaction.InputError, match="repeats too much"):
        keep_pattern_lines(LINES, ["(?:a{1000}){10000}"], 2.0)  # would take gigabytes to compile
    assert time.monotonic() - t0 < 1


def test_the_time_limit_holds_over_many_slow_lines():
    lines = ["a" * 22 + "!"] * 2000  # each search is slowish; together they would run for long
    t0 = time.monotonic()
    with pytest.raises(compaction.InputError, match="time limit"):
        keep_pattern_lines(lines, [r"(a|aa)+$"], 0.2)
    assert time.monotonic() - t0 < 2


def test_a_large_benign_input_is_not_refused():
    lines = [f"INFO worker {i} processed batch {i * 7} ok" for i in range(200_000)] + ["ERROR: disk full"]
    got = keep_pattern_lines(lines, [r"^ERROR", r"batch 7\b"], 2.0)
    assert got[-1] and got[1] and got.sum() == 2


def test_many_simple_patterns_over_many_short_lines_are_not_taken_for_backtracking():
    """The limit for all patterns grows with lines x patterns: 64 literals over 30,000 short
    lines (two million searches' worth of Python calls) finish instead of being refused."""
    lines = [f"ok {i % 10000:04d}" for i in range(30_000)]
    got = keep_pattern_lines(lines, [f"NEEDLE{j}" for j in range(63)] + ["^ok 0042$"], 0.001)
    assert got.sum() == 3


def test_running_out_of_the_total_limit_says_so_without_blaming_one_pattern(monkeypatch):
    from compaction import _keep

    monkeypatch.setattr(_keep, "SEARCH_OVERHEAD_SECONDS", 0.0)
    lines = ["a" * 60] * 20_000  # each search is quick, all of them are not
    with pytest.raises(compaction.InputError, match=r"keep patterns ran past their time limit .*20000 lines"):
        keep_pattern_lines(lines, [r"a*b"], 0.0005)
