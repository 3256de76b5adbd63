"""What the hypothesis fuzz tests share: one settings profile, the seed transcript, and a
strategy for arbitrary JSON values.

``CONTEXT_DISTILL_FUZZ_SCALE`` multiplies every test's example count (CI runs 1);
``CONTEXT_DISTILL_FUZZ_RANDOM`` set to anything turns off derandomisation (by default every
run draws the same examples, so CI is reproducible).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("CONTEXT_DISTILL_FUZZ_SCALE", "1"))
#: a real Claude Code transcript with many tool calls: the seed the transcript and hook fuzzers mutate
SEED = Path(__file__).parent / "fixtures" / "fuzz" / "claude-code-tool-heavy.jsonl"
SEED_BYTES = SEED.read_bytes()
SEED_RECORDS = [json.loads(line) for line in SEED_BYTES.splitlines() if line.strip()]


def fuzz(n: int):
    """Hypothesis settings for ``n`` examples (times ``SCALE``), no deadline, reproducible."""
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
        derandomize=os.environ.get("CONTEXT_DISTILL_FUZZ_RANDOM") is None,
    )


_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=40)
)
#: any JSON value (nested lists and objects), as a client or a corrupt transcript might send
json_value = st.recursive(
    _json_leaf,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=10), kids, max_size=4)),
    max_leaves=25,
)
