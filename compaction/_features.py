"""Features of the deletion model, computed with numpy only.

Training (``training/``) and the runtime scorer (``compaction._model``) both call
:func:`compute_features`, so what the model saw when it learned is exactly what it sees
when it runs. The output is the set of arrays the ONNX graph takes as inputs:

``tok_ids``     int64   [M, 2]      the first ``MAX_TOKENS`` o200k ids of every unit, unit after
                                    unit (no padding), each hashed twice into ``N_BUCKETS`` buckets
``tok_feats``   float32 [M, F_T]    per-token flags: in the query, rarity in this output, ...
``tok_line``    int64   [M]         the unit each token belongs to
``line_feats``  float32 [N, F_L]    per-unit scalars: length, position, indentation, query overlap,
                                    shapes (traceback, ``file:line``, diff, error words, ...)
``query_ids``   int64   [Q, 2]      hashed ids of the query's distinct tokens (at least one
                                    entry; 0 = padding, which an empty query is)

Token ids are hashed into ``N_BUCKETS`` buckets here, so the graph's embedding tables stay
small whatever the tokenizer's vocabulary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ._scoring import ScoringInput

__all__ = [
    "FEATURE_VERSION",
    "MAX_TOKENS",
    "MAX_QUERY_TOKENS",
    "N_BUCKETS",
    "TOKEN_FEATURES",
    "LINE_FEATURES",
    "Features",
    "compute_features",
    "hash_ids",
]

FEATURE_VERSION = 1
MAX_TOKENS = 64
MAX_QUERY_TOKENS = 512
N_BUCKETS = 32768

TOKEN_FEATURES = ("in_query", "idf", "in_query_idf", "position", "first_in_line")

# each pattern is searched once per unit; names are the feature names
_M = re.MULTILINE
_I = re.IGNORECASE | re.MULTILINE
# each pattern runs once over the units joined by newlines (so no pattern may cross one:
# blanks are written [ \t], never \s); a match flags the unit where it starts
_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "error_word",
        re.compile(
            r"(?=[eftpadncuirs])(?:error|exception|traceback|fail|fatal|panic|assert|denied|not found|cannot|"
            r"undefined|unexpected|invalid|refused|timed? ?out|segmentation|abort)",
            _M,
        ),
    ),
    ("warning_word", re.compile(r"(?=[wd])(?:warn|deprecat)", _M)),
    ("traceback_frame", re.compile(r'File "[^"\n]+", line \d+', _M)),
    ("file_line", re.compile(r"\w\.\w{1,6}:\d", _M)),
    (
        "path",
        re.compile(
            r"[\w.-]/[\w.-]|(?:^|[ \t'\"(])/\w|\w\.(?:py|js|ts|go|rs|c|h|cpp|java|rb|ex|exs|md|txt|json|"
            r"toml|yaml|yml|cfg|ini|rst|html)\b",
            _M,
        ),
    ),
    ("grep_hit", re.compile(r"^[\w./-]+:\d+[:-]", _M)),
    ("numbered", re.compile(r"^[ \t]*\d+[ \t]*(?:[:\t|→│█]|  )", _M)),
    ("diff_change", re.compile(r"^[+-](?![+-]{2})", _M)),
    ("diff_header", re.compile(r"^(?:@@|diff --git|\+\+\+ |--- |index [0-9a-f]+)", _M)),
    ("test_status", re.compile(r"(?=[PFEOopf])(?:PASSED|FAILED|ERROR|\bok$|\bpassed\b|\bfailed\b|\bFAIL\b|\bOK\b)", _M)),
    ("separator", re.compile(r"^[ \t]*([=\-_*#~.])\1{3,}", _M)),
    (
        "definition",
        re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class|fn|func|function|pub|impl|struct|interface|module)\b", _M),
    ),
    ("comment", re.compile(r"^[ \t]*(?:#|//|/\*|\*|--|%)", _M)),
    ("assignment", re.compile(r"^[ \t]*[\w.\[\]]+[ \t]*[+\-*/]?=[^=\n]", _M)),
    ("control", re.compile(r"^[ \t]*(?:if|elif|else|for|while|return|raise|try|except|with|import|from)\b", _M)),
    ("caret", re.compile(r"^[ \t]*(?:[\^~]{2,}|\^)[ \t]*$", _M)),
    ("tag", re.compile(r"^[ \t]*</?\w+>", _M)),
    ("exception_head", re.compile(r"^[ \t]*(?:[\w.]+(?:Error|Exception|Warning)|E[ \t]{2,}|Traceback)", _M)),
)

_LOWERCASE = frozenset({"error_word", "warning_word"})  # matched against the lower-cased text

LINE_FEATURES = (
    "log_tokens",
    "rel_position",
    "log_from_start",
    "log_from_end",
    "log_doc_lines",
    "indent",
    "blank",
    "truncated",
    "query_cover",
    "query_idf_sum",
    "query_idf_rel",
    "query_rank",
    "query_words",
    "mean_idf",
    "max_idf",
    "dup",
    "digit_frac",
    "alpha_frac",
    "upper_frac",
    "space_frac",
    "has_query",
    *(name for name, _ in _SHAPES),
)

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_STOP = frozenset(
    "the and for that this with from are was were not but have has had you your all any can its into "
    "then than there their them they what when where which who will would should could also just only "
    "def self none true false return import class".split()
)


@dataclass(frozen=True)
class Features:
    tok_ids: np.ndarray  # [M, 2] int64
    tok_feats: np.ndarray  # [M, F_T] float32
    tok_line: np.ndarray  # [M] int64, non-decreasing
    line_feats: np.ndarray  # [N, F_L] float32
    query_ids: np.ndarray  # [Q, 2] int64, Q >= 1
    offsets: np.ndarray  # [N + 1] int64: the tokens of unit i are offsets[i]:offsets[i + 1] (not a graph input)

    @property
    def n_units(self) -> int:
        return int(self.line_feats.shape[0])

    def as_inputs(self) -> dict[str, np.ndarray]:
        return {
            "tok_ids": self.tok_ids,
            "tok_feats": self.tok_feats,
            "tok_line": self.tok_line,
            "line_feats": self.line_feats,
            "query_ids": self.query_ids,
        }

    def rows(self, start: int, stop: int) -> "Features":
        """The features of units ``start:stop`` (for chunked inference)."""
        stop = min(stop, self.n_units)
        a, b = int(self.offsets[start]), int(self.offsets[stop])
        return Features(
            np.ascontiguousarray(self.tok_ids[a:b]),
            np.ascontiguousarray(self.tok_feats[a:b]),
            self.tok_line[a:b] - start,
            np.ascontiguousarray(self.line_feats[start:stop]),
            self.query_ids,
            self.offsets[start : stop + 1] - a,
        )


def hash_ids(ids: np.ndarray) -> np.ndarray:
    """Two independent hashes of o200k ids into buckets 1..N_BUCKETS-1: [...] -> [..., 2]."""
    x = ids.astype(np.uint64) + np.uint64(1)
    h1 = (x * np.uint64(2654435761)) % np.uint64(4294967311)
    h2 = (x * np.uint64(40503) + np.uint64(2246822519)) % np.uint64(4294967291)
    out = np.empty(ids.shape + (2,), dtype=np.int64)
    out[..., 0] = h1 % np.uint64(N_BUCKETS - 1) + np.uint64(1)
    out[..., 1] = h2 % np.uint64(N_BUCKETS - 1) + np.uint64(1)
    return out


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)} - _STOP


def compute_features(inp: ScoringInput) -> Features:
    """The model's inputs for one scoring input (any number of units, including none)."""
    units = list(inp.units)
    n = len(units)
    lens_full = np.fromiter((len(t) for t in inp.unit_tokens), dtype=np.int64, count=n)
    lens = np.minimum(lens_full, MAX_TOKENS)

    # -- tokens, flat (no padding) ---------------------------------------------------------------
    flat = np.fromiter(
        (t for toks in inp.unit_tokens for t in toks[:MAX_TOKENS]), dtype=np.int64, count=int(lens.sum())
    )
    row = np.repeat(np.arange(n, dtype=np.int64), lens)
    starts = np.cumsum(lens) - lens
    col = np.arange(flat.size, dtype=np.int64) - np.repeat(starts, lens)

    # document frequency of each token over units -> idf (within this output)
    if flat.size:
        # first occurrence of each token within its unit, then document frequencies
        _, first_idx = np.unique(flat * (n + 1) + row, return_index=True)
        first_seen = np.zeros(flat.size, dtype=bool)
        first_seen[first_idx] = True
        df = np.bincount(flat[first_seen])
        tok_idf = np.log((n + 1.0) / (df[flat] + 0.5)).astype(np.float32)
    else:
        tok_idf = np.zeros(0, dtype=np.float32)
        first_seen = np.zeros(0, dtype=bool)
    idf_scale = float(np.log(n + 1.0)) or 1.0
    tok_idf_n = tok_idf / max(idf_scale, 1.0)

    q_tokens = np.fromiter(inp.query_tokens, dtype=np.int64)
    q_unique = np.unique(q_tokens)
    if q_unique.size and flat.size:
        in_query_vocab = np.zeros(max(int(flat.max()), int(q_unique[-1])) + 1, dtype=bool)
        in_query_vocab[q_unique] = True
        in_q = in_query_vocab[flat]
    else:
        in_q = np.zeros(flat.size, dtype=bool)

    tok_feats = np.empty((flat.size, len(TOKEN_FEATURES)), dtype=np.float32)
    tok_feats[:, 0] = in_q
    tok_feats[:, 1] = tok_idf_n
    tok_feats[:, 2] = in_q * tok_idf_n
    tok_feats[:, 3] = col / MAX_TOKENS
    tok_feats[:, 4] = first_seen
    offsets = np.concatenate([starts, [flat.size]]).astype(np.int64)
    tok_ids = hash_ids(flat)

    # -- per-unit scalars -------------------------------------------------------------
    lf = np.zeros((n, len(LINE_FEATURES)), dtype=np.float32)
    if n == 0:
        return Features(tok_ids, tok_feats, row, lf, _query_ids(q_tokens), offsets)
    pos = np.arange(n, dtype=np.float32)
    lf[:, 0] = np.log1p(lens_full) / 5.0
    lf[:, 1] = pos / max(n - 1, 1)
    lf[:, 2] = np.log1p(pos) / 8.0
    lf[:, 3] = np.log1p(n - 1 - pos) / 8.0
    lf[:, 4] = np.log1p(n) / 8.0
    lf[:, 7] = lens_full > MAX_TOKENS

    # query overlap on tokens (distinct tokens of the unit that occur in the query, idf-weighted)
    if flat.size and q_unique.size:
        hit = in_q & first_seen
        cover = np.bincount(row[first_seen], weights=hit[first_seen].astype(np.float64), minlength=n)
        distinct = np.bincount(row[first_seen], minlength=n)
        lf[:, 8] = cover / np.maximum(distinct, 1)
        idf_sum = np.bincount(row, weights=(tok_idf * hit).astype(np.float64), minlength=n)
        lf[:, 9] = np.log1p(idf_sum) / 3.0
        mx = idf_sum.max()
        lf[:, 10] = idf_sum / mx if mx > 0 else 0.0
        order = np.argsort(-idf_sum, kind="stable")
        rank = np.empty(n, dtype=np.float32)
        rank[order] = np.arange(n, dtype=np.float32)
        lf[:, 11] = np.where(idf_sum > 0, 1.0 - rank / max(n, 1), 0.0)
    if flat.size:
        idf_sum_all = np.bincount(row, weights=tok_idf_n.astype(np.float64), minlength=n)
        lf[:, 13] = idf_sum_all / np.maximum(lens, 1)
        mx_idf = np.zeros(n, dtype=np.float32)
        np.maximum.at(mx_idf, row, tok_idf_n)
        lf[:, 14] = mx_idf
    lf[:, 20] = 1.0 if q_unique.size else 0.0

    joined = "\n".join(units)
    if joined.count("\n") != n - 1:  # a unit with its own newline (not from splitlines)
        units = [u.replace("\n", " ") for u in units]
        joined = "\n".join(units)
    _char_classes(joined, n, lf)
    line_starts = np.cumsum([0] + [len(u) + 1 for u in units[:-1]])
    lower = joined.lower()
    if len(lower) != len(joined):  # a few characters lower-case to two; keep offsets exact
        lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in joined)
    for k, (name, pat) in enumerate(_SHAPES):
        hits = [m.start() for m in pat.finditer(lower if name in _LOWERCASE else joined)]
        if hits:
            lf[np.searchsorted(line_starts, hits, side="right") - 1, 21 + k] = 1.0
    q_words = _words(inp.query) if inp.query else set()
    counts: dict[str, int] = {}
    for t in units:
        counts[t] = counts.get(t, 0) + 1
    for i, t in enumerate(units):
        stripped = t.lstrip()
        if not stripped:
            lf[i, 6] = 1.0
            lf[i, 21:] = 0.0
            continue
        lf[i, 5] = min(len(t) - len(stripped), 32) / 16.0
        if q_words:
            ws = _words(t)
            if ws:
                lf[i, 12] = min(len(ws & q_words), 8) / 4.0
        c = counts[t]
        if c > 1:
            lf[i, 15] = np.log1p(c - 1) / 3.0
    return Features(tok_ids, tok_feats, row, lf, _query_ids(q_tokens), offsets)


def _char_classes(joined: str, n: int, lf: np.ndarray) -> None:
    """Fractions of digits, letters, capitals (of letters) and spaces per unit, on UTF-8 bytes."""
    raw = np.frombuffer(joined.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    nl = raw == 10
    line = np.cumsum(nl) - nl  # unit index of each byte (newlines belong to the unit before)
    keep = ~nl
    line = line[keep]
    b = raw[keep]
    size = np.bincount(line, minlength=n).astype(np.float32)
    digit = np.bincount(line, weights=((b >= 48) & (b <= 57)), minlength=n)
    upper = (b >= 65) & (b <= 90)
    alpha = upper | ((b >= 97) & (b <= 122))
    n_alpha = np.bincount(line, weights=alpha, minlength=n)
    n_upper = np.bincount(line, weights=upper, minlength=n)
    space = np.bincount(line, weights=(b == 32), minlength=n)
    denom = np.maximum(size, 1.0)
    lf[:, 16] = digit / denom
    lf[:, 17] = n_alpha / denom
    lf[:, 18] = n_upper / np.maximum(n_alpha, 1.0)
    lf[:, 19] = space / denom


def _query_ids(q_tokens: np.ndarray) -> np.ndarray:
    q = np.unique(q_tokens)[:MAX_QUERY_TOKENS] if q_tokens.size else q_tokens
    if q.size == 0:
        return np.zeros((1, 2), dtype=np.int64)
    return hash_ids(q)
