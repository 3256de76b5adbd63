"""The evaluation (training/evaluate.py): the recall metric, and the real engine driven by
real scorers on a real tool output."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from compaction import ScoringInput
from compaction.baselines import BASELINES, HeadTailScorer, TailScorer
from training import evaluate as E

FIX = Path(__file__).resolve().parent / "fixtures" / "labels"


class OracleScorer:
    """Knows the labels: used lines first. The best any scorer can do."""

    name = "oracle"

    def __init__(self, used: set[str]) -> None:
        self.used = used
        self.calls = 0

    def score(self, inp: ScoringInput) -> np.ndarray:
        self.calls += 1
        return np.array([1.0 if u in self.used else 0.0 for u in inp.units])


@pytest.fixture(scope="module")
def view() -> list[str]:
    """A real 47-line file view (`nl -ba ... | sed -n '814,860p'`) from the fixture trajectory."""
    traj = json.loads(gzip.decompress((FIX / "mini-swe-agent-scikit-learn-14710.traj.jsonl.gz").read_bytes()))
    obs = next(m["content"] for m in traj["messages"] if m["role"] == "user" and "   814\tclass HistGradientBoostingClassifier" in m["content"])
    text = obs.split("<output>\n", 1)[1].rsplit("</output>", 1)[0]
    lines = text.splitlines()
    assert len(lines) == 47
    return lines


def test_kept_lines_and_recall_on_a_hand_made_example():
    assert E.kept_lines([(2, 3), (5, 5)]) == {1, 2, 4}
    labels = [0, 1, 1, 0, 1, 0]
    assert E.used_recall(labels, [(2, 3)]) == (2, 3)
    assert E.used_recall(labels, [(1, 1), (6, 6)]) == (0, 3)
    assert E.used_recall(labels, [(1, 6)]) == (3, 3)
    assert E.used_recall([0, 0], [(1, 2)]) == (0, 0)


def test_macro_and_micro_recall_differ_as_they_should():
    t = E.Tally()
    t.add(1, 1, 0.3)  # a small example, fully recalled
    t.add(1, 9, 0.3)  # a big one, mostly lost
    t.add(0, 0, 0.5)  # no used line: counted in kept tokens only
    assert t.macro == pytest.approx((1.0 + 1 / 9) / 2)
    assert t.micro == pytest.approx(2 / 10)
    assert t.mean_kept == pytest.approx((0.3 + 0.3 + 0.5) / 3)


def test_engine_recall_oracle_head_tail_on_a_real_output(view):
    used_idx = [0, 1, 2]  # the class line and its continuation at the top
    labels = [1 if i in used_idx else 0 for i in range(len(view))]
    ex = {"id": "t", "source": "mini-swe-agent", "repo": "x/y", "query": "HistGradientBoostingClassifier", "lines": view, "labels": labels}
    oracle = OracleScorer({view[i] for i in used_idx})
    res = E.evaluate([ex], [oracle, HeadTailScorer(), TailScorer()], (0.1, 0.3, 0.5), progress=False)
    assert res["oracle"][0.3].macro == 1.0 and res["oracle"][0.5].macro == 1.0
    assert res["head+tail"][0.3].macro == 1.0  # the head survives truncation
    assert res["tail"][0.3].macro == 0.0 and res["tail"][0.5].macro == 0.0
    for name in ("oracle", "head+tail", "tail"):
        for r in (0.1, 0.3, 0.5):
            assert res[name][r].mean_kept <= r + 0.02  # the engine keeps the budget
    # one scoring per example, whatever the number of ratios
    assert oracle.calls == 1


def test_every_baseline_runs_and_random_is_near_chance(view):
    labels = [1 if i % 3 == 0 and view[i].strip() else 0 for i in range(len(view))]
    ex = {"id": "t", "source": "mini-swe-agent", "repo": "x/y", "query": "encode classes", "lines": view, "labels": labels}
    res = E.evaluate([ex], list(BASELINES.values()), (0.3, 0.9), progress=False)
    assert set(res) >= set(BASELINES)
    for name in BASELINES:
        assert 0.0 <= res[name][0.3].macro <= res[name][0.9].macro <= 1.0
    assert res["random"][0.9].macro >= 0.5


def test_load_examples_keeps_only_outputs_worth_compacting(tmp_path, view):
    path = tmp_path / "val.jsonl.gz"
    rows = [
        {"id": "a", "source": "s", "repo": "r", "query": "", "lines": view, "labels": [1] + [0] * (len(view) - 1)},
        {"id": "b", "source": "s", "repo": "r", "query": "", "lines": view, "labels": [0] * len(view)},  # no used line
        {"id": "c", "source": "s", "repo": "r", "query": "", "lines": view[:3], "labels": [1, 0, 0]},  # too short
    ]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    exs, total = E.load_examples(path, limit=None, seed=0)
    assert [e["id"] for e in exs] == ["a"] and total == 1


def test_main_prints_the_table_for_every_scorer(tmp_path, view, capsys):
    with gzip.open(tmp_path / "val.jsonl.gz", "wt", encoding="utf-8") as f:
        for k in range(3):
            labels = [1 if i == 10 + k else 0 for i in range(len(view))]
            f.write(json.dumps({"id": str(k), "source": "s", "repo": "r", "query": "q", "lines": view, "labels": labels}) + "\n")
    assert E.main(["--dataset", str(tmp_path), "--no-docs", "--no-plot-grid"]) == 0
    out = capsys.readouterr().out
    for name in BASELINES:
        assert f"| {name} |" in out
    assert "recall @ keep 0.3" in out


def test_a_model_that_does_not_load_fails_the_run_unless_allowed(tmp_path, view, capsys, monkeypatch):
    with gzip.open(tmp_path / "val.jsonl.gz", "wt", encoding="utf-8") as f:
        labels = [1 if i == 10 else 0 for i in range(len(view))]
        f.write(json.dumps({"id": "0", "source": "s", "repo": "r", "query": "q", "lines": view, "labels": labels}) + "\n")
    monkeypatch.setattr(E, "load_model", lambda: (None, "AssetCorruptError: the test says so"))
    args = ["--dataset", str(tmp_path), "--no-docs", "--no-plot-grid"]
    assert E.main(args) == 1
    err = capsys.readouterr().err
    assert "the test says so" in err and "--allow-missing-model" in err
    assert E.main([*args, "--allow-missing-model"]) == 0
    assert "MODEL MISSING" in capsys.readouterr().out


def test_bm25_drops_stop_words_and_splits_identifiers():
    from compaction.baselines import BM25Scorer, bm25_terms
    from compaction import ScoringInput

    assert bm25_terms("Why is the parse_expr in getUserName failing?") == [
        "parse_expr", "parse", "expr", "getusername", "get", "user", "name", "failing",
    ]  # fmt: skip
    lines = ["it is the end of the story", "def parse_expr(s):", "    return s"]
    inp = ScoringInput(lines, [[1]] * 3, [0, 1, 2], "why is the parsing of the expr wrong", [1])
    s = BM25Scorer().score(inp)
    assert s[1] > 0 and s[0] == 0 and s[2] == 0


def test_main_without_a_dataset_says_what_to_run(tmp_path, capsys):
    assert E.main(["--dataset", str(tmp_path / "none"), "--no-docs"]) == 2
    assert "python -m training.build_dataset" in capsys.readouterr().err


def test_breakdown_names_the_kind_of_output_from_the_command_that_made_it():
    from training.breakdown import output_kind

    def ex(query: str, source: str = "mini-swe-agent") -> dict:
        return {"source": source, "query": query}

    assert output_kind(ex("Let me look.\n$ sed -n '10,40p' a.py\n\nTask: x")) == "`sed -n` file view"
    assert output_kind(ex("$ cd /testbed && nl -ba a.py | sed -n '1,9p'")) == "`nl -ba` file view"
    assert output_kind(ex("$ python -m pytest tests/test_a.py")) == "`python` script or tests"
    assert output_kind(ex("$ grep -rn foo .")) == "`grep`"
    assert output_kind(ex("no command here")) == "other command"
    assert output_kind(ex("$ make", source="aider")) == "Aider lint/test output"
