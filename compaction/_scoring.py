"""The seam between the compaction algorithm and whatever ranks lines.

A scorer gets the units of one input (lines, or sub-line segments of very long lines)
with their o200k token ids and the query, and returns one priority per unit: higher
means keep first. The deletion model (``compaction._model.ModelScorer``) is the
default; the baselines in ``compaction.baselines`` implement the same protocol, which
makes them both the evaluation's competitors and real fakes for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["ScoringInput", "LineScorer"]


@dataclass(frozen=True)
class ScoringInput:
    #: the text of each unit, without its line ending
    units: Sequence[str]
    #: o200k token ids of each unit (same order as ``units``)
    unit_tokens: Sequence[Sequence[int]]
    #: the 0-based input line each unit comes from (several units share a line when it was split)
    unit_lines: Sequence[int]
    #: what the agent is doing; may be empty
    query: str
    query_tokens: Sequence[int]


@runtime_checkable
class LineScorer(Protocol):
    #: short name reported in results and ``status``
    name: str

    def score(self, inp: ScoringInput) -> np.ndarray:
        """One float per unit; higher is kept first. Must not fail on empty units."""
        ...
