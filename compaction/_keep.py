"""Caller-given ``keep`` patterns: Python ``re`` syntax and meaning, matched under a time limit.

Python's ``re`` cannot be interrupted, so a pattern that backtracks catastrophically
(``(a|aa)+$`` on a long run of ``a``) would hold a worker for as long as it likes. Patterns
are therefore checked with ``re`` (what it refuses is refused, so the accepted syntax is
exactly ``re``'s), rewritten where the ``regex`` module would read the same text otherwise
(``{e}`` is a fuzzy-match constraint there and a literal in ``re``; ``[[:digit:]]`` a POSIX
class there and a set holding ``[`` in ``re``), refused when their counted repeats would
unroll into a huge program (``regex`` builds it at compile time), and run with ``regex``'s
timeout: each search at most ``seconds``, all of them together at most ``seconds`` per MiB
of input (plus ``seconds``, plus 5 µs per line and pattern, at most 120 s of those).
"""

from __future__ import annotations

import re
import time
import warnings
from typing import Sequence

import numpy as np
import regex

from ._exceptions import InputError, KeepPatternError

__all__ = ["check_keep_patterns", "keep_pattern_lines", "MAX_PATTERNS", "MAX_PATTERN_CHARS", "MAX_UNROLLED"]

MAX_PATTERNS = 64
MAX_PATTERN_CHARS = 2000
#: the most pattern items counted repeats may unroll to (``(?:a{1000}){1000}`` is 10**6)
MAX_UNROLLED = 100_000

_QUANTIFIER = re.compile(r"\{\d*(?:,\d*)?\}")


#: what one search may cost on top of the per-MiB allowance (about 1 µs measured): the time
#: limit for all patterns grows with lines x patterns too, so many simple patterns over many
#: short lines are never taken for catastrophic backtracking
SEARCH_OVERHEAD_SECONDS = 5e-6
#: ... but never more than this in all: past it the call is refused with a clear error
MAX_OVERHEAD_SECONDS = 120.0


def keep_pattern_lines(bodies: Sequence[str], keep: Sequence[str], seconds: float) -> np.ndarray:
    """Which of ``bodies`` match any of ``keep``; raises :class:`InputError` for a bad pattern
    or one that runs past the time limit."""
    pinned = np.zeros(len(bodies), dtype=bool)
    patterns = _compile_all(keep)
    if not patterns:
        return pinned
    size = sum(len(b) for b in bodies)
    overhead = min(SEARCH_OVERHEAD_SECONDS * len(bodies) * len(patterns), MAX_OVERHEAD_SECONDS)
    total = seconds * (1 + size / (1 << 20)) + overhead
    deadline = time.monotonic() + total
    for p, source in zip(patterns, keep):
        for i, body in enumerate(bodies):
            if pinned[i]:
                continue
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                hit = p.search(body, timeout=min(left, seconds))
            except TimeoutError:
                if left < seconds:  # what ran out is the limit for all of them, not this search's
                    raise KeepPatternError(
                        f"the keep patterns ran past their time limit of {total:.1f} s on this input ({len(bodies)} "
                        f"lines, {len(patterns)} patterns, stopped at {source!r}); use fewer or simpler patterns"
                    ) from None
                raise KeepPatternError(
                    f"keep pattern {source!r} ran past its time limit on one line of this input "
                    "(catastrophic backtracking?); simplify it, e.g. without nested repetition like (a+)+"
                ) from None
            if hit:
                pinned[i] = True
    return pinned


def check_keep_patterns(keep: Sequence[str]) -> None:
    """Raise :class:`InputError` for a pattern :func:`keep_pattern_lines` would refuse."""
    _compile_all(keep)


def _compile_all(keep: Sequence[str]) -> list["regex.Pattern[str]"]:
    if len(keep) > MAX_PATTERNS:
        raise KeepPatternError(f"too many keep patterns ({len(keep)}); at most {MAX_PATTERNS}")
    return [_compile(p) for p in keep]


def _compile(p: object) -> "regex.Pattern[str]":
    if not isinstance(p, str) or not p:
        raise KeepPatternError(f"keep patterns must be non-empty strings, got {p!r}")
    if len(p) > MAX_PATTERN_CHARS:
        raise KeepPatternError(f"a keep pattern is {len(p)} characters long; at most {MAX_PATTERN_CHARS}")
    try:
        with warnings.catch_warnings():  # "Possible nested set": re's reading is the one kept
            warnings.simplefilter("ignore", FutureWarning)
            re.compile(p)
            unrolled = _unrolled_size(p)  # parses again: the same warning, silenced the same way
    except (re.error, RecursionError, OverflowError) as exc:
        raise KeepPatternError(f"keep pattern {p!r} is not a valid regular expression: {_one_line(exc)}") from None
    if unrolled > MAX_UNROLLED:
        raise KeepPatternError(
            f"keep pattern {p!r} repeats too much (its counted repeats multiply past {MAX_UNROLLED:,}); "
            "use + or * instead of large {n} counts"
        )
    try:
        return regex.compile(_as_re_means_it(p), cache_pattern=False)
    except (regex.error, RecursionError, OverflowError, ValueError) as exc:  # not expected after re accepted it
        raise KeepPatternError(f"keep pattern {p!r} is not supported: {_one_line(exc)}") from None


def _as_re_means_it(p: str) -> str:
    """``p`` with the braces ``re`` reads as literals, and the ``[`` inside a set, escaped."""
    out: list[str] = []
    i, n, in_set = 0, len(p), False
    while i < n:
        c = p[i]
        if c == "\\":
            out.append(p[i : i + 2])
            i += 2
            continue
        if in_set:
            if c == "]" and not set_start:
                in_set = False
            elif c == "[":
                c = "\\["
            set_start = False
        elif c == "[":
            in_set, set_start = True, True
            out.append(c)
            i += 1
            if i < n and p[i] == "^":
                out.append("^")
                i += 1
            continue
        elif c == "{" and out and (m := _QUANTIFIER.match(p, i)):
            out.append(m.group())  # a counted repeat, braces and all
            i = m.end()
            continue
        elif c in "{}":  # any other brace is a literal to re
            c = "\\" + c
        out.append(c)
        i += 1
    return "".join(out)


def _unrolled_size(p: str) -> int:
    """Roughly how many items ``p`` becomes once counted repeats are unrolled."""
    try:
        from re import _constants as C, _parser  # type: ignore[attr-defined]

        tree = _parser.parse(p)
    except Exception:  # another Python's internals: no estimate
        return 0
    repeats = {C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT)}

    def size(items) -> int:  # type: ignore[no-untyped-def]
        total = 0
        for op, av in items:
            if op in repeats:
                lo, hi, sub = av
                count = lo if hi == C.MAXREPEAT else hi
                total += max(count, 1) * size(sub)
            elif op is C.SUBPATTERN:
                total += size(av[-1])
            elif op is C.BRANCH:
                total += sum(size(b) for b in av[1])
            elif op in (C.ASSERT, C.ASSERT_NOT):
                total += size(av[1])
            elif op is C.GROUPREF_EXISTS:
                total += size(av[1]) + (size(av[2]) if av[2] else 0)
            elif op is getattr(C, "ATOMIC_GROUP", None):
                total += size(av)
            else:
                total += 1
            if total > MAX_UNROLLED:
                return total
        return total

    try:
        return size(tree)
    except RecursionError:
        return MAX_UNROLLED + 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
