"""Verbatim compaction: rank the lines, keep the best under a token budget, mark the gaps.

The algorithm, in order:
1. check the input (text, not binary, within the size limit, not empty);
2. split it into lines (``str.splitlines(keepends=True)``), and lines longer than
   ``Limits.long_line_tokens`` into sub-line segments, the *units*;
3. pin units that sit inside ``<keep>...</keep>`` or match a caller's keep pattern;
4. ask the scorer for one priority per unit;
5. greedily keep units by priority while the kept tokens plus the markers fit the budget;
6. render kept lines byte for byte, one marker line per omitted run, then check the
   real token count and drop the weakest units if the estimate was off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Container, Sequence

import numpy as np

from ._config import Limits
from ._exceptions import BinaryInputError, BudgetError, EmptyInputError, InputError, InputTooLargeError
from ._keep import keep_pattern_lines
from ._results import CompactResult
from ._scoring import LineScorer, ScoringInput
from ._tokenizer import Tokenizer

__all__ = [
    "CompactRequest",
    "check_text",
    "compact_text",
    "is_marker_line",
    "handle_line",
    "ends_a_line",
    "verify_verbatim",
    "DEFAULT_RATIO",
    "TOO_SMALL_TOKENS",
]

DEFAULT_RATIO = 0.5
#: an input under this many tokens that would lose every line comes back unchanged (with a
#: warning) instead of as markers alone; ``compact_messages`` leaves parts this small alone too
TOO_SMALL_TOKENS = 64

ProgressFn = Callable[[float, str], None]

_KEEP_SPAN = re.compile(r"<keep>.*?</keep>", re.DOTALL)
#: one line per omitted run, as short as it can be and still say which lines to expand:
#: ``[40-51 omitted]`` (1-based, inclusive; ``[7-7 omitted]`` for one line), 6 o200k tokens.
#: The first form, ``[... 12 lines omitted (40-51) ...]``, took 13 to 16: on the scattered
#: selections of a query-aware scorer, markers ate a fifth of a 0.3 budget (docs/model.md)
_LINE_MARKER = re.compile(r"^\[(\d+)-(\d+) omitted\]$")
_TRAILER = re.compile(r"^\[\.\.\. context-distill: .* \.\.\.\]$")
_INLINE_MARKER = re.compile(r"\[\.\.\. \d+ chars omitted \.\.\.\]")
_SPLIT_AFTER = set(" \t,;:{}[]()<>|&=")
#: every line break str.splitlines() knows: after one of these no newline is needed before a marker
_LINE_ENDS = ("\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


@dataclass(frozen=True)
class CompactRequest:
    """What to compact and how: the frozen form of ``compact``'s keyword arguments."""

    ratio: float | None = None
    target_tokens: int | None = None
    query: str = ""
    keep: tuple[str, ...] = ()
    markers: bool = True
    #: end with a line naming the handle whenever lines are omitted and the original is
    #: stored, even where its tokens make the result go over a small budget (a compacted
    #: message part is read later, away from the result that holds the handle)
    name_handle: bool = False

    def budget(self, tokens_before: int) -> int:
        if self.ratio is not None and self.target_tokens is not None:
            raise BudgetError("give either ratio or target_tokens, not both")
        if self.target_tokens is not None:
            if isinstance(self.target_tokens, bool) or not isinstance(self.target_tokens, int) or self.target_tokens < 1:
                raise BudgetError(f"target_tokens must be a whole number >= 1, got {self.target_tokens!r}")
            return self.target_tokens
        ratio = DEFAULT_RATIO if self.ratio is None else self.ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not (0.0 < float(ratio) <= 1.0):
            raise BudgetError(f"ratio is the fraction of tokens to keep and must be in (0, 1], got {ratio!r}")
        return max(1, int(tokens_before * float(ratio)))


def check_text(text: object, limits: Limits) -> str:
    """Return ``text`` as ``str`` or raise an InputError that says what is wrong with it."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        if len(raw) > limits.max_input_bytes:
            raise InputTooLargeError(_too_large(len(raw), limits))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BinaryInputError(
                f"input is not valid UTF-8 (byte {exc.start}); this looks like binary data, not tool output"
            ) from None
    if not isinstance(text, str):
        raise InputError(f"input must be text, got {type(text).__name__}")
    if len(text) > limits.max_input_bytes or len(text.encode("utf-8", "surrogatepass")) > limits.max_input_bytes:
        raise InputTooLargeError(_too_large(len(text.encode("utf-8", "surrogatepass")), limits))
    if "\x00" in text:
        raise BinaryInputError(
            f"input contains NUL bytes (first at character {text.index(chr(0))}); this looks like binary data, not text"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BinaryInputError(f"input contains invalid Unicode (a lone surrogate at character {exc.start})") from None
    if not text.strip():
        raise EmptyInputError("input is empty: there is nothing to compact")
    lines = count_lines(text)
    if lines > limits.max_input_lines:
        raise InputTooLargeError(
            f"input has {lines:,} lines, over the limit of {limits.max_input_lines:,} lines for one compaction; "
            "split it, or raise CONTEXT_DISTILL_MAX_INPUT_LINES"
        )
    return text


def count_lines(text: str) -> int:
    """``len(text.splitlines())`` without building the list."""
    breaks = sum(text.count(c) for c in _LINE_ENDS) - text.count("\r\n")
    return breaks + (0 if not text or ends_a_line(text) else 1)


def _too_large(size: int, limits: Limits) -> str:
    # the CLI reads at most one byte past the limit, so that size says only "over"
    what = "over" if size == limits.max_input_bytes + 1 else f"{size:,} bytes, over"
    return (
        f"input is {what} the limit of {limits.max_input_bytes:,} bytes; "
        "split it, or raise CONTEXT_DISTILL_MAX_INPUT_BYTES"
    )


@dataclass
class _Units:
    texts: list[str]
    tokens: list[list[int]]
    line_of: list[int]
    cost: np.ndarray  # tokens of each unit, its line ending included on the line's last unit


def _split_long_line(body: str, n_tokens: int, limits: Limits) -> list[str]:
    chars_per_token = max(1.0, len(body) / max(1, n_tokens))
    step = max(16, int(limits.segment_tokens * chars_per_token))
    pieces: list[str] = []
    start = 0
    n = len(body)
    while start < n:
        end = min(n, start + step)
        if end < n:
            # cut just after a natural boundary in the last half of the window, if there is one
            for j in range(end, start + step // 2, -1):
                if body[j - 1] in _SPLIT_AFTER:
                    end = j
                    break
        pieces.append(body[start:end])
        start = end
    return pieces


def _build_units(
    lines: list[str], bodies: list[str], tok: Tokenizer, limits: Limits, only: Container[int] | None = None
) -> _Units:
    """The units (lines, or segments of very long lines) to rank. ``only``: the lines that may be
    kept (a re-cut); every other line is one empty unit that costs nothing and is never kept."""
    texts: list[str] = []
    tokens: list[list[int]] = []
    line_of: list[int] = []
    cost: list[int] = []
    for li, (line, body) in enumerate(zip(lines, bodies)):
        if only is not None and li not in only:
            texts.append("")
            tokens.append([])
            line_of.append(li)
            cost.append(0)
            continue
        ids = tok.encode(body)
        ending = 1 if len(line) > len(body) else 0
        if len(ids) > limits.long_line_tokens:
            pieces = _split_long_line(body, len(ids), limits)
        else:
            pieces = [body]
        for k, piece in enumerate(pieces):
            pids = ids if len(pieces) == 1 else tok.encode(piece)
            texts.append(piece)
            tokens.append(pids)
            line_of.append(li)
            cost.append(len(pids) + (ending if k == len(pieces) - 1 else 0))
    return _Units(texts, tokens, line_of, np.asarray(cost, dtype=np.int64))


def _pinned_lines(
    text: str, lines: list[str], bodies: list[str], keep: Sequence[str], seconds: float
) -> np.ndarray:
    pinned = keep_pattern_lines(bodies, keep, seconds)
    if "<keep>" in text:
        starts = np.cumsum([0] + [len(line) for line in lines])  # char offset of each line start
        for m in _KEEP_SPAN.finditer(text):
            first = int(np.searchsorted(starts, m.start(), side="right")) - 1
            last = int(np.searchsorted(starts, max(m.start(), m.end() - 1), side="right")) - 1
            pinned[first : last + 1] = True
    return pinned


def _line_marker(first: int, last: int) -> str:
    """The marker of omitted lines ``first..last`` (1-based, inclusive)."""
    return f"[{first}-{last} omitted]"


def _inline_marker(chars: int) -> str:
    return f"[... {chars} chars omitted ...]"


def _trailer(kept: int, total: int, handle: str | None, *, short: bool = False) -> str:
    if short and handle:
        return f'[... context-distill: expand(handle="{handle}") ...]'
    if handle:
        return (
            f"[... context-distill: kept {kept} of {total} lines; "
            f'expand(handle="{handle}", lines="a-b") restores omitted lines ...]'
        )
    return f"[... context-distill: kept {kept} of {total} lines; the original was not stored ...]"


def ends_a_line(text: str) -> bool:
    """``text`` ends with a line break (any that ``str.splitlines`` knows), or is empty."""
    return not text or text.endswith(_LINE_ENDS)


def handle_line(handle: str) -> str:
    """The short line that names a handle (what a result ends with when its budget was too
    small for the full trailer); for callers that show a result without that line."""
    return _trailer(0, 0, handle, short=True)


def is_marker_line(line: str) -> bool:
    """True for the marker and trailer lines that compaction adds."""
    line = line.rstrip("\r\n")
    return bool(_LINE_MARKER.match(line) or _TRAILER.match(line))


#: how the CLI prints a warning on stderr (a compaction run with 2>&1 has them after its trailer)
CLI_WARNING = "context-distill: warning: "
_HANDLE_IN_TRAILER = re.compile(r'expand\(handle="([0-9a-f]{16})"')


def earlier_handle(text: str) -> str | None:
    """The handle named at the end of ``text`` when it is itself a compaction result: its last
    lines (blank ones aside) are compaction's own (the trailer, the line naming the handle, an
    MCP result's warning lines) and one of them names a handle. A file that merely quotes such a
    line higher up (this project's README) is not one."""
    for line in reversed(text[-16_384:].splitlines()[-8:]):  # the tail only: inputs can be megabytes
        if not line.strip() or line.startswith(CLI_WARNING):
            continue
        if not _TRAILER.match(line.rstrip()):
            return None
        m = _HANDLE_IN_TRAILER.search(line)
        if m:
            return m.group(1)
    return None


@dataclass(frozen=True)
class Recut:
    """Compact an original again, keeping only what an earlier compaction of it kept.

    ``text``: the earlier result (the caller's input); ``lines``: each 0-based original line it
    shows, mapped to None when shown whole, or to what it shows of it (a line kept in part);
    ``tokens``: the earlier result's tokens (what the budget is a share of)."""

    handle: str
    text: str
    lines: dict[int, str | None]
    tokens: int


def align_earlier(original: str, compacted: str) -> dict[int, str | None] | None:
    """For a compaction of ``original``: the original lines it shows (see ``Recut.lines``), or
    None when it is not one (a line that is not the original's, or out of order). The CLI's
    warning lines (a command run with ``2>&1``) are passed over like markers. A shown line is
    looked for after the lines the marker before it names, so a repeated line (``}``, ``ok``) is
    the one the agent saw; should that fail (an input line that looks like a marker), in order."""
    found = _align(original, compacted, skip_cli_warnings=True, follow_markers=True)
    return found if found is not None else _align(original, compacted, skip_cli_warnings=True)


def verify_verbatim(original: str, compacted: str) -> bool:
    """Check the verbatim promise: every non-marker line of ``compacted`` is an input line
    (or, for a partly kept long line, pieces of one, in order), and they come in input order."""
    return _align(original, compacted, skip_cli_warnings=False) is not None


def _align(original: str, compacted: str, *, skip_cli_warnings: bool, follow_markers: bool = False) -> dict[int, str | None] | None:
    src = original.splitlines()
    shown: dict[int, str | None] = {}
    i = 0
    for out in compacted.splitlines():
        if is_marker_line(out) or (skip_cli_warnings and out.startswith(CLI_WARNING)):
            m = _LINE_MARKER.match(out.rstrip("\r\n")) if follow_markers else None
            if m and i < int(m.group(1)) <= int(m.group(2)) <= len(src):
                i = int(m.group(2))  # the next shown line comes after the lines the marker names
            continue
        pieces = [p for p in _INLINE_MARKER.split(out) if p] if _INLINE_MARKER.search(out) else None
        while i < len(src):
            line = src[i]
            i += 1
            if pieces is None:
                if line == out:
                    shown[i - 1] = None
                    break
            elif _pieces_in_order(pieces, line):
                shown[i - 1] = out
                break
        else:
            return None
    return shown


def _pieces_in_order(pieces: list[str], line: str) -> bool:
    pos = 0
    for p in pieces:
        j = line.find(p, pos)
        if j < 0:
            return False
        pos = j + len(p)
    return True


def _ranges(indices: Sequence[int]) -> list[tuple[int, int]]:
    """0-based sorted indices -> 1-based inclusive ranges."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][1] == i:  # previous end (1-based) == this index (0-based) -> adjacent
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i + 1, i + 1))
    return out


def _render(
    lines: list[str],
    bodies: list[str],
    units: _Units,
    kept: np.ndarray,
    markers: bool,
    trailer: str | None,
) -> tuple[str, list[int], list[int], list[int]]:
    """Returns (text, fully kept lines, partial lines, omitted-or-partial lines), all 0-based."""
    n_lines = len(lines)
    full: list[int] = []
    partial: list[int] = []
    omitted: list[int] = []
    per_line_units: list[list[int]] = [[] for _ in range(n_lines)]
    for u, li in enumerate(units.line_of):
        per_line_units[li].append(u)
    out: list[str] = []
    gap_start: int | None = None

    def close_gap(end: int) -> None:
        nonlocal gap_start
        if gap_start is not None:
            if markers:
                if out and not out[-1].endswith(_LINE_ENDS):
                    out.append("\n")
                out.append(_line_marker(gap_start + 1, end) + "\n")
            gap_start = None

    for li in range(n_lines):
        us = per_line_units[li]
        flags = [bool(kept[u]) for u in us]
        if all(flags):
            close_gap(li)
            if out and not out[-1].endswith(_LINE_ENDS):
                out.append("\n")
            out.append(lines[li])
            full.append(li)
        elif not any(flags):
            if gap_start is None:
                gap_start = li
            omitted.append(li)
        else:
            close_gap(li)
            if out and not out[-1].endswith(_LINE_ENDS):
                out.append("\n")
            dropped = 0
            for u, f in zip(us, flags):
                if f:
                    if dropped:
                        out.append(_inline_marker(dropped))
                        dropped = 0
                    out.append(units.texts[u])
                else:
                    dropped += len(units.texts[u])
            if dropped:
                out.append(_inline_marker(dropped))
            out.append(lines[li][len(bodies[li]) :])
            partial.append(li)
            omitted.append(li)
    close_gap(n_lines)
    if trailer and markers:
        if out and not out[-1].endswith(_LINE_ENDS):
            out.append("\n")
        out.append(trailer + "\n")
    return "".join(out), full, partial, omitted


# how compact_text's warnings about its own budget start (compact_messages recognises them: for a
# message part the budget is its share of the caller's, a number the caller never gave)
_TOO_SMALL = "the input ("
_BUDGET_OF = "the budget of "
PART_BUDGET_WARNINGS = (_TOO_SMALL, _BUDGET_OF)
PINS_OVER_BUDGET = "pinned lines alone need"


def compact_text(
    text: str,
    request: CompactRequest,
    *,
    scorer: LineScorer,
    tokenizer: Tokenizer,
    limits: Limits,
    store: Callable[[str], tuple[str | None, str | None]] | None = None,
    on_progress: ProgressFn | None = None,
    recut: Recut | None = None,
) -> CompactResult:
    """Compact checked ``text``.

    ``store`` is called with the original once it is certain that lines will be omitted;
    it returns ``(handle, warning)``. Without it nothing is stored and no handle is given.
    ``recut``: ``text`` is a stored original (named by ``recut.handle``) and only the lines an
    earlier compaction of it showed may be kept; the model ranks just those, as the agent saw
    them, and markers and ranges count the original's lines.
    """
    tok = tokenizer
    progress = on_progress or (lambda _f, _m: None)
    tokens_before = tok.count(text) if recut is None else recut.tokens
    budget = request.budget(tokens_before)
    lines = text.splitlines(keepends=True)
    bodies = text.splitlines()
    n_lines = len(lines)
    scorer_name = getattr(scorer, "name", type(scorer).__name__)

    def unchanged(pinned_lines: int = 0, warnings: Sequence[str] = ()) -> CompactResult:
        if recut is not None:  # the earlier result, as it was
            whole = sorted(li for li, shown in recut.lines.items() if shown is None)
            return CompactResult(
                text=recut.text,
                kept_line_ranges=_ranges(whole),
                omitted_line_ranges=_ranges(sorted(set(range(n_lines)) - set(whole))),
                partial_lines=sorted(li + 1 for li, shown in recut.lines.items() if shown is not None),
                lines_before=n_lines,
                lines_kept=len(whole),
                tokens_before=tokens_before,
                tokens_after=tokens_before,
                budget_tokens=budget,
                handle=recut.handle,
                query=request.query,
                scorer=scorer_name,
                pinned_lines=pinned_lines,
                warnings=list(warnings),
            )
        return CompactResult(
            text=text,
            kept_line_ranges=[(1, n_lines)] if n_lines else [],
            omitted_line_ranges=[],
            lines_before=n_lines,
            lines_kept=n_lines,
            tokens_before=tokens_before,
            tokens_after=tokens_before,
            budget_tokens=budget,
            handle=None,
            query=request.query,
            scorer=scorer_name,
            pinned_lines=pinned_lines,
            warnings=list(warnings),
        )

    if budget >= tokens_before:
        return unchanged()

    warnings: list[str] = []
    handle: str | None = None
    if recut is not None:
        handle = recut.handle  # stored already
    elif store is not None:
        handle, store_warning = store(text)
        if store_warning:
            warnings.append(store_warning)

    progress(0.1, "tokenizing lines")
    units = _build_units(lines, bodies, tok, limits, only=None if recut is None else recut.lines)
    n_units = len(units.texts)
    allowed = _allowed_units(units, recut)
    pin_bodies = bodies if recut is None else [b if li in recut.lines else "" for li, b in enumerate(bodies)]
    pinned_line = _pinned_lines(text, lines, pin_bodies, request.keep, limits.keep_pattern_seconds)
    if recut is not None:
        pinned_line &= np.isin(np.arange(n_lines), np.fromiter(recut.lines, dtype=np.int64, count=len(recut.lines)))
    pinned = pinned_line[np.asarray(units.line_of, dtype=np.int64)] & allowed

    progress(0.3, f"scoring {int(allowed.sum())} lines")
    query_tokens = tok.encode(request.query) if request.query else []
    idx = np.flatnonzero(allowed)
    ranked = np.asarray(
        scorer.score(
            ScoringInput(
                [units.texts[u] for u in idx], [units.tokens[u] for u in idx], [units.line_of[u] for u in idx],
                request.query, query_tokens,
            )
        ),
        dtype=np.float64,
    )  # fmt: skip
    if ranked.shape != (idx.size,):
        raise RuntimeError(f"scorer {scorer_name!r} returned {ranked.shape} scores for {idx.size} units")
    scores = np.full(n_units, -np.inf)
    scores[idx] = np.nan_to_num(ranked, nan=-np.inf)

    progress(0.7, "selecting lines")
    markers = request.markers
    marker_cost = (tok.count(_line_marker(max(n_lines - 1, 1), n_lines)) + 1) if markers else 0  # the longest form
    # The trailer says how to get omitted lines back. On a small budget a short form (the
    # handle alone) is used, and on a tiny one none: the handle is always in the result.
    short_trailer = False
    trailer_cost = (tok.count(_trailer(n_lines, n_lines, handle)) + 1) if markers else 0
    with_trailer = markers and trailer_cost <= budget // 5
    if markers and not with_trailer and handle:
        trailer_cost = tok.count(_trailer(n_lines, n_lines, handle, short=True)) + 1
        with_trailer = short_trailer = trailer_cost <= budget // 4 or request.name_handle
    if not with_trailer:
        trailer_cost = 0

    kept = pinned.copy()
    order = np.argsort(-scores, kind="stable")
    order = order[allowed[order]]
    _greedy(kept, order, units.cost, budget - trailer_cost, marker_cost)
    if markers:
        blank = np.fromiter((not t.strip() for t in units.texts), dtype=bool, count=n_units)
        _drop_blank_islands(kept, pinned, blank)
        _greedy(kept, order[~blank[order]], units.cost, budget - trailer_cost, marker_cost)  # reuse what was freed
        _fill_cheap_gaps(kept, units.cost, marker_cost, allowed)
    removable = [int(u) for u in order[::-1] if kept[u] and not pinned[u]]  # weakest first
    line_of = np.asarray(units.line_of, dtype=np.int64)
    units_per_line = np.bincount(line_of, minlength=n_lines)
    while True:
        # lines kept whole: a line cut into segments and only partly kept is not "kept"
        kept_lines = int(np.count_nonzero((np.bincount(line_of[kept], minlength=n_lines) == units_per_line) & (units_per_line > 0)))
        trailer = _trailer(kept_lines, n_lines, handle, short=short_trailer) if with_trailer else None
        out, full, partial, omitted = _render(lines, bodies, units, kept, markers, trailer)
        tokens_after = tok.count(out)
        if tokens_after <= budget or not removable:
            break
        excess = tokens_after - budget
        while removable and excess > 0:
            u = removable.pop(0)
            kept[u] = False
            excess -= int(units.cost[u])
    if not omitted:  # pins kept every line: give the input back as it was, no markers, no handle
        out, tokens_after, handle = text, tokens_before, None
    elif tokens_after >= tokens_before or (not full and not partial and tokens_before < TOO_SMALL_TOKENS):
        # markers alone would cost more than the lines they replace, or would be all that is
        # left of an input too small to be worth a marker and a round trip through expand
        warnings.append(
            f"{_TOO_SMALL}{tokens_before} tokens) is too small to compact to {budget} tokens: "
            "omission markers would cost more than, or replace all of, the lines; returned unchanged"
        )
        return unchanged(int(pinned_line.sum()), warnings)
    if tokens_after > budget:
        if pinned.any():
            warnings.append(
                f"{PINS_OVER_BUDGET} {tokens_after} tokens, over the budget of {budget}; all pins were kept"
            )
        else:
            warnings.append(
                f"{_BUDGET_OF}{budget} tokens is smaller than the omission markers alone ({tokens_after} tokens); "
                "raise ratio or target_tokens"
            )
    elif not full and not partial:
        warnings.append(
            f"{_BUDGET_OF}{budget} tokens leaves room for the omission markers only: every line was omitted "
            "(expand gives them back); raise ratio or target_tokens to keep some"
        )
    progress(1.0, "done")
    result = CompactResult(
        text=out,
        kept_line_ranges=_ranges(full),
        omitted_line_ranges=_ranges(omitted),
        partial_lines=[p + 1 for p in partial],
        lines_before=n_lines,
        lines_kept=len(full),
        tokens_before=tokens_before,
        tokens_after=tokens_after,
        budget_tokens=budget,
        handle=handle,
        query=request.query,
        scorer=scorer_name,
        pinned_lines=int(pinned_line.sum()),
        warnings=warnings,
    )
    return result


def _greedy(kept: np.ndarray, order: np.ndarray, cost: np.ndarray, budget: int, marker_cost: int) -> None:
    """Add units in priority order while kept tokens plus one marker per omitted run fit ``budget``."""
    n = kept.size
    total = int(cost[kept].sum()) + _count_gaps(kept) * marker_cost
    for u in order:
        if kept[u]:
            continue
        left = u > 0 and not kept[u - 1]
        right = u < n - 1 and not kept[u + 1]
        delta_gaps = 1 if (left and right) else (-1 if not left and not right else 0)
        c = int(cost[u]) + delta_gaps * marker_cost
        if total + c <= budget:
            kept[u] = True
            total += c


def _drop_blank_islands(kept: np.ndarray, pinned: np.ndarray, blank: np.ndarray) -> None:
    """Drop kept runs of blank lines that touch an omitted run: they carry nothing, and
    dropping them merges markers."""
    n = kept.size
    u = 0
    while u < n:
        if not kept[u]:
            u += 1
            continue
        end = u
        while end < n and kept[end]:
            end += 1
        touches_gap = (u > 0) or (end < n)
        if touches_gap and not pinned[u:end].any() and blank[u:end].all():
            kept[u:end] = False
        u = end


def _fill_cheap_gaps(kept: np.ndarray, cost: np.ndarray, marker_cost: int, allowed: np.ndarray) -> None:
    """Keep every omitted run that costs no more than the marker that would replace it:
    the output gets no longer and reads better. Runs with a unit that may not be kept stay."""
    n = kept.size
    u = 0
    while u < n:
        if kept[u]:
            u += 1
            continue
        end = u
        while end < n and not kept[end]:
            end += 1
        if int(cost[u:end].sum()) <= marker_cost and allowed[u:end].all():
            kept[u:end] = True
        u = end


def _allowed_units(units: _Units, recut: Recut | None) -> np.ndarray:
    """Which units may be kept: all, or in a re-cut those of lines the earlier result showed (of
    a line it showed in part, the segments it showed)."""
    n = len(units.texts)
    if recut is None:
        return np.ones(n, dtype=bool)
    allowed = np.zeros(n, dtype=bool)
    for u, li in enumerate(units.line_of):
        shown = recut.lines.get(li, False)
        if shown is None:
            allowed[u] = True
        elif shown is not False:
            allowed[u] = bool(units.texts[u]) and units.texts[u] in shown
    return allowed


def _count_gaps(kept: np.ndarray) -> int:
    if kept.size == 0:
        return 0
    dropped = ~kept
    starts = dropped[0] + np.count_nonzero(dropped[1:] & ~dropped[:-1])
    return int(starts)
