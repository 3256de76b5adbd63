"""Baseline line rankers: what agents and tools do today, in the ``LineScorer`` protocol.

They are the competitors in the evaluation (``training/evaluate.py``) and honest,
model-free scorers for tests. Each is deterministic (``RandomScorer`` is seeded).
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from ._scoring import ScoringInput

__all__ = [
    "HeadTailScorer",
    "TailScorer",
    "BM25Scorer",
    "ErrorRegexScorer",
    "RandomScorer",
    "BASELINES",
    "bm25_terms",
]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")


def _positions(inp: ScoringInput) -> np.ndarray:
    return np.arange(len(inp.units), dtype=np.float64)


class HeadTailScorer:
    """Keep the first and the last lines, dropping the middle (truncation as agents do it)."""

    name = "head+tail"

    def score(self, inp: ScoringInput) -> np.ndarray:
        pos = _positions(inp)
        n = len(pos)
        # distance from the nearer end; the head wins ties by a hair
        return -np.minimum(pos, (n - 1 - pos) + 0.5)


class TailScorer:
    """Keep the last lines (``tail -n``)."""

    name = "tail"

    def score(self, inp: ScoringInput) -> np.ndarray:
        return _positions(inp)


#: English function words (a standard stop list): a query is mostly prose (the agent's
#: thought, earlier messages, the task), and without this "the" or "is" would decide the ranking
_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just let me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up us very was we were what when where which while who whom why will with would you your
    yours yourself yourselves""".split()
)
_IDENT_PARTS = re.compile(r"_+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def bm25_terms(text: str, min_len: int = 3) -> list[str]:
    """Lowercased words of ``text`` for BM25: identifiers are also split into their parts
    (``parse_expr`` -> ``parse_expr``, ``parse``, ``expr``; ``getUserName`` -> ..., ``user``),
    and stop words and words under ``min_len`` characters are dropped."""
    out: list[str] = []
    for w in _WORD.findall(text):
        if "_" in w or not (w.islower() or w.isdigit() or (w.isupper() and w.isalpha())):  # may have parts
            parts = [p for p in _IDENT_PARTS.split(w) if p]
            words = [w, *parts] if len(parts) > 1 else [w]
        else:
            words = [w]
        for x in words:
            x = x.lower()
            if len(x) >= min_len and x not in _STOPWORDS:
                out.append(x)
    return out


class BM25Scorer:
    """Okapi BM25 of each line against the query, lines as the documents (k1 1.2, b 0.75),
    over :func:`bm25_terms` (stop words out, identifiers split), with each query term
    weighted by ``1 + log`` of how often the query says it."""

    name = "bm25"

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b

    def score(self, inp: ScoringInput) -> np.ndarray:
        n = len(inp.units)
        docs = [bm25_terms(u) for u in inp.units]
        query = Counter(bm25_terms(inp.query))
        out = np.zeros(n, dtype=np.float64)
        if not query or n == 0:
            return out
        df = Counter(w for d in docs for w in set(d) if w in query)
        avg = (sum(len(d) for d in docs) / n) or 1.0
        weight = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) * (1 + math.log(query[w])) for w, c in df.items()}
        for i, d in enumerate(docs):
            if not d:
                continue
            tf = Counter(w for w in d if w in weight)
            norm = self.k1 * (1 - self.b + self.b * len(d) / avg)
            out[i] = sum(weight[w] * c * (self.k1 + 1) / (c + norm) for w, c in tf.items())
        return out


_ERROR = re.compile(
    r"error|exception|traceback|fail|fatal|panic|assert|warning|denied|not found|cannot|"
    r"undefined|unexpected|invalid|refused|timed? ?out|segmentation|abort|\bE\s{2,}|^E\s",
    re.IGNORECASE,
)


class ErrorRegexScorer:
    """``grep -iE 'error|exception|fail|...'``: lines that look like errors first, then the
    rest; the later line first among equals."""

    name = "error-regex"

    def score(self, inp: ScoringInput) -> np.ndarray:
        # among equals the later line wins (as with ``tail``): the end of an output is where
        # its result usually is
        n = len(inp.units)
        later = np.arange(n, dtype=np.float64) / max(n, 1) * 0.5
        return np.array([1.0 if _ERROR.search(u) else 0.0 for u in inp.units], dtype=np.float64) + later


class RandomScorer:
    """Uniformly random priorities (seeded)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score(self, inp: ScoringInput) -> np.ndarray:
        return np.random.default_rng(self.seed + len(inp.units)).random(len(inp.units))


BASELINES = {
    s.name: s for s in (HeadTailScorer(), TailScorer(), BM25Scorer(), ErrorRegexScorer(), RandomScorer())
}
