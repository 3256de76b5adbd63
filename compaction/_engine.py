"""The engine: one object that holds the heavy things (tokenizer, scorer, store) and
does compact / compact_messages / expand. The module-level functions in
``compaction`` use one shared, lazily built instance."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import replace
from typing import Any, Sequence

from ._compact import (
    DEFAULT_RATIO,
    PART_BUDGET_WARNINGS,
    PINS_OVER_BUDGET,
    CompactRequest,
    ProgressFn,
    check_text,
    Recut,
    align_earlier,
    compact_text,
    earlier_handle,
)
from ._config import Settings, default_settings
from ._exceptions import BudgetError, ContextDistillError, InputError, KeepPatternError, StoreError
from ._keep import check_keep_patterns
from ._messages import check_messages, default_query, iter_text_slots, message_text
from ._redact import redact_secrets
from ._results import CompactedPart, CompactMessagesResult, CompactResult, ExpandResult
from ._scoring import LineScorer
from ._store import OriginalStore
from ._tokenizer import Tokenizer, get_tokenizer

__all__ = ["Engine", "get_engine", "parse_line_ranges", "PART_FLOOR_TOKENS"]

#: ``compact_messages`` cuts no part below this many tokens: its omission markers and the line
#: naming its handle take about 33 of them, and a part cut further keeps nothing worth reading
PART_FLOOR_TOKENS = 48

log = logging.getLogger("context_distill")


def _default_scorer() -> LineScorer:
    from ._model import load_default_scorer

    return load_default_scorer()


# how compact's notes about an earlier compaction start (compact_messages sums them up)
_RECUT = "re-cut the earlier compaction"
_NOT_CACHED = "the input is an earlier compaction whose original"


class Engine:
    def __init__(
        self,
        *,
        scorer: LineScorer | None = None,
        tokenizer: Tokenizer | None = None,
        settings: Settings | None = None,
        store: OriginalStore | None | bool = True,
    ) -> None:
        self.settings = settings or default_settings()
        self.tokenizer = tokenizer or get_tokenizer()
        self._scorer = scorer
        self._scorer_lock = threading.Lock()
        if store is True:
            self.store: OriginalStore | None = OriginalStore(self.settings.cache_dir, self.settings.cache_max_bytes)
        elif store is False or store is None:
            self.store = None
        else:
            self.store = store
        self._store_warned = False

    @property
    def scorer(self) -> LineScorer:
        if self._scorer is None:
            with self._scorer_lock:
                if self._scorer is None:
                    self._scorer = _default_scorer()
        return self._scorer

    # -- storing originals -------------------------------------------------------------
    def _store_original(self, text: str) -> tuple[str | None, str | None]:
        if self.store is None:
            return None, None
        try:
            return self.store.put(text), None
        except StoreError as exc:
            if not self._store_warned:
                log.warning("%s (compaction goes on without handles)", exc)
                self._store_warned = True
            return None, f"{exc}; omitted lines cannot be expanded later"

    # -- compact -----------------------------------------------------------------------
    def compact(
        self,
        text: object,
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        query: str | None = None,
        keep: Sequence[str] = (),
        markers: bool = True,
        name_handle: bool = False,
        on_progress: ProgressFn | None = None,
    ) -> CompactResult:
        """``name_handle``: end with a line naming the handle whenever lines are omitted, even
        where that line takes the result over a small budget (for text shown apart from the
        result's ``handle``; by default the line is left out of budgets it would crowd)."""
        checked = check_text(text, self.settings.limits)
        _check_query(query)
        keep = _keep_list(keep)
        request = CompactRequest(
            ratio=ratio,
            target_tokens=target_tokens,
            query=query or "",
            keep=tuple(keep),
            markers=markers,
            name_handle=name_handle,
        )
        return self._compact_checked(checked, request, on_progress)

    def _compact_checked(self, text: str, request: CompactRequest, on_progress: ProgressFn | None = None) -> CompactResult:
        """``compact_text`` on checked text; an earlier compaction is re-cut on its original.

        A compaction result holds markers that count lines of its original and belong to its
        handle. Compacted again as new text, they would stand next to new markers counting the
        result's lines, under a new handle. When the original is in the cache, the result is
        re-cut instead: only the lines it shows can stay (the model ranks them as the agent saw
        them), and markers, ranges and the handle are the original's. When it is not, the text
        comes back unchanged, with a warning. A text that only ends like one (lines added, a
        secret the cache holds redacted) is compacted as new text, and so is every text when
        this engine keeps no originals (``store=False``: nothing it returns has a handle, so
        there is no numbering to mix; summaries fit tool output this way).
        """
        run = lambda source, req, recut=None: compact_text(  # noqa: E731
            source, req, scorer=self.scorer, tokenizer=self.tokenizer, limits=self.settings.limits,
            store=self._store_original, on_progress=on_progress, recut=recut,
        )  # fmt: skip
        handle = earlier_handle(text) if self.store is not None else None
        if handle is None:
            return run(text, request)
        tokens = self.tokenizer.count(text)
        budget = request.budget(tokens)
        if budget >= tokens:
            return run(text, request)  # it fits as it is: returned unchanged
        original = self._stored_original(handle)
        if original is None:
            res = run(text, replace(request, ratio=None, target_tokens=tokens))  # unchanged, validated
            return res.model_copy(update={"budget_tokens": budget, "warnings": [*res.warnings, (
                f"{_NOT_CACHED} (handle {handle}) is not in this cache; "
                "compacting it again would mix two line numberings, so it was returned unchanged"
            )]})  # fmt: skip
        shown = align_earlier(original, text)
        if shown is None:  # secrets are stored redacted: compare the redacted text
            shown = align_earlier(original, redact_secrets(text))
        if shown is None:
            return run(text, request)
        recut = Recut(handle=handle, text=text, lines=shown, tokens=tokens)
        res = run(original, replace(request, ratio=None, target_tokens=budget), recut)
        if res.text == text:
            return res
        note = f"{_RECUT} {handle}: ranges and markers count its original's {res.lines_before} lines"
        return res.model_copy(update={"warnings": [*res.warnings, note], "budget_tokens": budget})

    def _stored_original(self, handle: str) -> str | None:
        if self.store is None:
            return None
        try:
            return self.store.get(handle)
        except ContextDistillError:
            return None

    def compact_messages(
        self,
        messages: object,
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        query: str | None = None,
        preserve_recent: int = 2,
        keep: Sequence[str] = (),
        markers: bool = True,
        min_tokens: int = 64,
        on_progress: ProgressFn | None = None,
    ) -> CompactMessagesResult:
        """Compact the older messages' text parts (tool results, long messages); the last
        ``preserve_recent`` messages, parts under ``min_tokens`` and everything that is not
        such a part (system prompts, tool inputs) stay as they are. ``ratio`` is the share of
        each compacted part's tokens to keep; ``target_tokens`` is a budget for all the
        messages' text, shared out over the compactable parts in proportion to their size.
        No part is cut below ``PART_FLOOR_TOKENS``; with markers, each compacted part ends
        with a line naming its handle. ``on_progress(fraction, message)`` is called after each
        part is compacted."""
        msgs = check_messages(messages)
        if isinstance(preserve_recent, bool) or not isinstance(preserve_recent, int) or preserve_recent < 0:
            raise InputError(f"preserve_recent must be a whole number >= 0, got {preserve_recent!r}")
        _check_query(query)
        keep = _keep_list(keep)
        check_keep_patterns(keep)  # a bad pattern is the caller's error, not one warning per part
        if ratio is not None and target_tokens is not None:
            raise BudgetError("give either ratio or target_tokens, not both")
        CompactRequest(ratio=ratio, target_tokens=target_tokens).budget(1)  # validates either
        query = query if query else default_query(msgs)
        split = max(0, len(msgs) - preserve_recent)
        count = self.tokenizer.count

        message_tokens = [sum(count(t) for t in message_text(m)) for m in msgs]
        slots = [(k, slot) for k, m in enumerate(msgs[:split]) for slot in iter_text_slots(m)]
        texts = [get() for _, (get, _) in slots]
        sizes = [count(t) for t in texts]
        todo = [i for i, (text, size) in enumerate(zip(texts, sizes)) if size >= min_tokens and text.strip()]
        tokens_before = sum(message_tokens)
        recent_tokens = sum(message_tokens[split:])
        compactable = sum(sizes[i] for i in todo)
        fixed = tokens_before - compactable  # recent messages, small parts, system prompts, tool inputs
        if target_tokens is not None:
            share = min(1.0, max(target_tokens - fixed, 0) / compactable) if compactable else 1.0
        else:
            share = DEFAULT_RATIO if ratio is None else float(ratio)

        parts: list[CompactedPart] = []
        emptied: list[int] = []
        uncached: list[int] = []
        warnings: list[str] = []

        def warn(w: str) -> None:
            if w not in warnings:
                warnings.append(w)

        for done, i in enumerate(todo, 1):
            k, (_, set_) = slots[i]
            if on_progress is not None:
                on_progress((done - 1) / len(todo), f"compacting message part {done} of {len(todo)}")
            request = CompactRequest(
                target_tokens=max(1, int(sizes[i] * share), min(sizes[i], PART_FLOOR_TOKENS)),
                query=query,
                keep=keep,
                markers=markers,
                name_handle=True,
            )
            try:
                res = self._compact_checked(check_text(texts[i], self.settings.limits), request)
            except KeepPatternError:
                raise  # the same for every part: the caller's error
            except InputError as exc:
                warn(f"message {k}: a part was left as it was: {exc}")
                continue
            if any(w.startswith(_NOT_CACHED) for w in res.warnings):
                uncached.append(k)
            if res.tokens_after >= res.tokens_before:
                continue
            set_(res.text)
            parts.append(CompactedPart(message=k, tokens_before=res.tokens_before, tokens_after=res.tokens_after, handle=res.handle))
            if not res.kept_line_ranges and not res.partial_lines:
                emptied.append(k)
            for w in res.warnings:
                if w.startswith(_RECUT):  # the normal case for a history compacted every turn
                    continue
                if w.startswith(_NOT_CACHED):
                    continue
                if w.startswith(PINS_OVER_BUDGET):
                    warn(f"message {k}: {w}")
                elif not _about_part_budget(w):  # e.g. the originals cache is not writable: once
                    warn(w)
        if on_progress is not None:
            on_progress(1.0, f"compacted {len(parts)} of {len(todo)} message parts")
        # each part is a string of its own, so the count changes by exactly what each part lost
        tokens_after = tokens_before - sum(p.tokens_before - p.tokens_after for p in parts)
        if uncached:
            warn(
                f"{len(uncached)} part(s) are earlier compactions whose originals are not in this cache (messages "
                + ", ".join(str(k) for k in uncached[:10]) + (", ..." if len(uncached) > 10 else "")
                + "); left as they were: compacting them again would mix two line numberings"
            )
        if emptied:
            where = ", ".join(str(k) for k in emptied[:10]) + (", ..." if len(emptied) > 10 else "")
            warn(
                f"{len(emptied)} compacted part(s) kept no lines, only omission markers"
                + (" and a line naming the handle" if markers else "")
                + f" (messages {where}); expand gives them back; raise ratio or target_tokens to keep some"
            )
        if not parts and tokens_before:
            warn(
                f"nothing was compacted: the last {min(preserve_recent, len(msgs))} messages stay whole "
                f"(preserve_recent), parts under {min_tokens} tokens and system prompts and tool inputs are left "
                "alone, and no other part got smaller"
                + (" (its pinned lines and omission markers would cost as much as its lines)" if keep else "")
            )
        elif target_tokens is not None and tokens_after > target_tokens:
            causes = [f"the last {min(preserve_recent, len(msgs))} messages hold {recent_tokens}"]
            if fixed - recent_tokens:
                causes.append(
                    f"system prompts, tool inputs and parts under {min_tokens} tokens {fixed - recent_tokens}"
                )
            warn(
                f"the result holds {tokens_after} tokens of text, over target_tokens={target_tokens}: "
                f"{fixed} tokens are never compacted ({'; '.join(causes)}), and no compacted part goes below "
                f"{PART_FLOOR_TOKENS} tokens"
                + (" or its pinned lines" if keep else "")
                + ("; lower preserve_recent to go further" if recent_tokens * 4 > fixed else "")
            )
        elif target_tokens is None and parts:
            asked = sum(int(p.tokens_before * share) for p in parts)
            got = sum(p.tokens_after for p in parts)
            if got > asked * 1.1 + 8:
                warn(
                    f"the compacted parts hold {got} tokens, over ratio={share:g} of theirs ({asked}): no compacted "
                    f"part goes below {PART_FLOOR_TOKENS} tokens (its markers and handle line)"
                    + (" or its pinned lines" if keep else "")
                )
        return CompactMessagesResult(
            messages=msgs,
            tokens_before=tokens_before,
            tokens_after=tokens_after,
            compacted_parts=len(parts),
            handles=[p.handle for p in parts if p.handle],
            parts=parts,
            query=query,
            warnings=warnings,
        )

    # -- expand ------------------------------------------------------------------------
    def expand(self, handle: str, lines: str | Sequence[tuple[int, int]] | None = None) -> ExpandResult:
        if not isinstance(handle, str):
            raise InputError(f"handle must be text, got {type(handle).__name__}")
        if self.store is None:
            raise StoreError("this engine keeps no originals, so nothing can be expanded")
        handle = handle.strip().lower()
        original = self.store.get(handle)
        all_lines = original.splitlines(keepends=True)
        total = len(all_lines)
        ranges = parse_line_ranges(lines, total) if lines not in (None, "", []) else [(1, total)]
        text = "".join("".join(all_lines[a - 1 : b]) for a, b in ranges)
        return ExpandResult(handle=handle, text=text, line_ranges=ranges, total_lines=total)


_RANGE = re.compile(r"^\s*([0-9]{1,18})\s*(?:-\s*([0-9]{1,18})\s*)?$")


def parse_line_ranges(spec: str | Sequence[Any] | None, total: int) -> list[tuple[int, int]]:
    """Parse ``"10-20,31,40-"``-style or ``[[10, 20], [31, 31]]`` ranges (1-based, inclusive),
    clamped to ``total`` lines, sorted and merged."""
    pairs: list[tuple[int, int]] = []
    if isinstance(spec, str):
        for chunk in spec.split(","):
            chunk = chunk.strip()
            if not chunk:
                continue
            if chunk.endswith("-") and chunk[:-1].strip().isdigit():
                chunk = f"{chunk[:-1].strip()}-{max(total, 1)}"
            m = _RANGE.match(chunk)
            if not m:
                raise InputError(f"bad line range {chunk[:40]!r}: use forms like '12', '10-20' or '10-20,31'")
            a = int(m.group(1))
            b = int(m.group(2) or a)
            pairs.append((a, b))
        if not pairs:
            raise InputError(f"no line range in {spec[:40]!r}: use forms like '12', '10-20' or '10-20,31'")
    elif isinstance(spec, (list, tuple)):
        for item in spec:
            if isinstance(item, int) and not isinstance(item, bool):
                pairs.append((item, item))
            elif (
                isinstance(item, (list, tuple))
                and len(item) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
            ):
                pairs.append((item[0], item[1]))
            else:
                raise InputError(f"bad line range {item!r}: use [start, end] pairs of 1-based line numbers")
    else:
        raise InputError(f"line ranges must be a string like '10-20' or a list of [start, end], got {spec!r}")
    out: list[tuple[int, int]] = []
    for a, b in sorted(pairs):
        if a < 1 or b < a:
            raise InputError(f"bad line range {a}-{b}: lines start at 1 and a range must not run backwards")
        if a > total:
            raise InputError(f"line {a} is past the end: the original has {total} lines")
        b = min(b, total)
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


_lock = threading.Lock()
_engine: Engine | None = None


def get_engine() -> Engine:
    """The shared engine, built on first use (tokenizer and model load once)."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = Engine()
    return _engine


def _about_part_budget(warning: str) -> bool:
    """True for ``compact_text``'s warnings about its own budget (for a message part, its share
    of the caller's budget: a number the caller never gave) and about a part that lost every
    line (counted once for all parts instead)."""
    return warning.startswith(PART_BUDGET_WARNINGS)


def _check_query(query: object) -> None:
    if query is not None and not isinstance(query, str):
        raise InputError(f"query must be text, got {type(query).__name__}")
    if query:
        try:
            query.encode("utf-8")
        except UnicodeEncodeError as exc:  # echoed back in results: it must be valid text
            raise InputError(f"query contains invalid Unicode (a lone surrogate at character {exc.start})") from None


def _keep_list(keep: object) -> tuple[str, ...]:
    if isinstance(keep, str):
        return (keep,)
    if keep is None:
        return ()
    if not isinstance(keep, (list, tuple)):
        raise InputError(f"keep must be a list of regular expressions, got {type(keep).__name__}")
    return tuple(keep)
