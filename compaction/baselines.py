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


class BM25Scorer:
    """Okapi BM25 of each line against the query's words, lines as the documents."""

    name = "bm25"

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b

    def score(self, inp: ScoringInput) -> np.ndarray:
        n = len(inp.units)
        docs = [[w.lower() for w in _WORD.findall(u)] for u in inp.units]
        terms = {w.lower() for w in _WORD.findall(inp.query)}
        out = np.zeros(n, dtype=np.float64)
        if not terms or n == 0:
            return out
        df = Counter(w for d in docs for w in set(d) if w in terms)
        avg = (sum(len(d) for d in docs) / n) or 1.0
        idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in df.items()}
        for i, d in enumerate(docs):
            if not d:
                continue
            tf = Counter(w for w in d if w in idf)
            norm = self.k1 * (1 - self.b + self.b * len(d) / avg)
            out[i] = sum(idf[w] * c * (self.k1 + 1) / (c + norm) for w, c in tf.items())
        return out


_ERROR = re.compile(
    r"error|exception|traceback|fail|fatal|panic|assert|warning|denied|not found|cannot|"
    r"undefined|unexpected|invalid|refused|timed? ?out|segmentation|abort|\bE\s{2,}|^E\s",
    re.IGNORECASE,
)


class ErrorRegexScorer:
    """``grep -iE 'error|exception|fail|...'``: lines that look like errors first, then the rest."""

    name = "error-regex"

    def score(self, inp: ScoringInput) -> np.ndarray:
        return np.array([1.0 if _ERROR.search(u) else 0.0 for u in inp.units], dtype=np.float64)


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
