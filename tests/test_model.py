"""The shipped deletion model: its pinned file, its failure modes, its provider, its scores.

No torch here (it is a training extra): everything runs through onnxruntime and the numpy
feature code the runtime uses.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from compaction import AssetCorruptError, AssetMissingError, Engine, ScoringInput, get_tokenizer, verify_verbatim
from compaction import _model
from compaction._features import LINE_FEATURES, TOKEN_FEATURES, compute_features
from compaction._model import META_PATH, MODEL_PATH, ModelScorer, load_default_scorer, model_info, sha256_file

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "model" / "django-11276-test_html.txt"
QUERY = "run the tests of django.utils.html: does test_escape fail after escape() changed?"

pytestmark = pytest.mark.skipif(not MODEL_PATH.is_file(), reason="the deletion model asset is not built yet")


def scoring_input(text: str, query: str = QUERY) -> ScoringInput:
    tok = get_tokenizer()
    lines = text.splitlines()
    return ScoringInput(lines, [tok.encode(x) for x in lines], list(range(len(lines))), query, tok.encode(query))


@pytest.fixture(scope="module")
def scorer() -> ModelScorer:
    return load_default_scorer()


@pytest.fixture(scope="module")
def observation() -> str:
    return FIXTURE.read_text(encoding="utf-8")


# -- the pinned file -------------------------------------------------------------------
def test_shipped_model_matches_its_manifest():
    meta = json.loads(META_PATH.read_text())
    assert sha256_file(MODEL_PATH) == meta["sha256"]
    assert MODEL_PATH.stat().st_size == meta["size"] <= 10 * 1024 * 1024
    assert meta["features"]["token"] == list(TOKEN_FEATURES)
    assert meta["features"]["line"] == list(LINE_FEATURES)
    assert meta["parity"]["fp32_max_abs_diff"] < 1e-4


def test_corrupt_copy_is_refused_with_one_line(tmp_path):
    bad = tmp_path / "deletion-model.onnx"
    data = bytearray(MODEL_PATH.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    shutil.copy(META_PATH, tmp_path / "deletion-model.json")
    with pytest.raises(AssetCorruptError) as exc:
        ModelScorer(bad, tmp_path / "deletion-model.json")
    msg = str(exc.value)
    assert "\n" not in msg and "reinstall" in msg and "sha256" in msg


def test_file_that_matches_its_hash_but_is_not_a_model_is_corrupt(tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"not an onnx graph")
    meta = json.loads(META_PATH.read_text())
    meta["sha256"] = sha256_file(bad)
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(AssetCorruptError, match="does not load"):
        ModelScorer(bad, tmp_path / "m.json")


def test_bm25_is_mixed_into_the_priority_as_the_manifest_says(tmp_path, observation):
    from compaction.baselines import BM25Scorer

    meta = json.loads(META_PATH.read_text())
    scorers = {}
    for w in (0.0, 0.4):
        (tmp_path / f"m{w}.json").write_text(json.dumps(dict(meta, bm25_weight=w)))
        scorers[w] = ModelScorer(MODEL_PATH, tmp_path / f"m{w}.json")
    inp = scoring_input(observation)
    plain, mixed = scorers[0.0].score(inp), scorers[0.4].score(inp)
    bm = BM25Scorer().score(inp)
    assert bm.any()

    def z(x):
        return (x - x.mean()) / x.std()

    assert np.allclose(mixed, z(plain) + 0.4 * z(bm))
    # without a query (or a query BM25 has no word of) the priority is the model's alone
    no_query = scoring_input(observation, query="")
    assert np.array_equal(scorers[0.4].score(no_query), scorers[0.0].score(no_query))
    assert scorers[0.4].info()["bm25_weight"] == 0.4


@pytest.mark.parametrize("field, value", [("bm25_weight", float("nan")), ("bm25_weight", -1), ("cost_power", 1e9)])
def test_manifest_weights_out_of_range_are_corrupt(tmp_path, field, value):
    meta = json.loads(META_PATH.read_text())
    meta[field] = value
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(AssetCorruptError, match=field):
        ModelScorer(MODEL_PATH, tmp_path / "m.json")


def test_unreadable_manifest_is_corrupt(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(AssetCorruptError, match="reinstall"):
        ModelScorer(MODEL_PATH, tmp_path / "m.json")


def test_missing_files_are_reported_as_missing(tmp_path):
    with pytest.raises(AssetMissingError) as exc:
        ModelScorer(tmp_path / "absent.onnx", META_PATH)
    assert "reinstall" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(AssetMissingError):
        ModelScorer(MODEL_PATH, tmp_path / "absent.json")


# -- execution provider ----------------------------------------------------------------
def _cuda_usable() -> bool:
    return Path("/dev/nvidia0").exists() or Path("/dev/dxg").exists()


def test_cpu_fallback_when_cuda_is_asked_for_first():
    import onnxruntime as ort

    s = ModelScorer(providers=["CUDAExecutionProvider", "CPUExecutionProvider"], threads=1)
    assert s.providers[-1] == "CPUExecutionProvider"
    if not _cuda_usable():
        assert s.provider == "CPUExecutionProvider"
    out = s.score(scoring_input("Traceback (most recent call last):\nValueError: boom\n"))
    assert out.shape == (2,) and np.isfinite(out).all()
    assert "CPUExecutionProvider" in ort.get_available_providers()


def test_model_info_reports_provider_threads_and_hash(scorer):
    info = model_info()
    assert info["available"] is True
    assert info["name"] == scorer.name == "deletion-model-v2"
    assert info["sha256"] == sha256_file(MODEL_PATH)
    assert info["size_bytes"] == MODEL_PATH.stat().st_size
    assert info["execution_provider"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    if not _cuda_usable():
        assert info["execution_provider"] == "CPUExecutionProvider"
    assert info["threads"] >= 1


def test_threads_come_from_the_environment(monkeypatch, caplog):
    monkeypatch.setenv("CONTEXT_DISTILL_THREADS", "2")
    assert ModelScorer().threads == 2
    monkeypatch.setenv("CONTEXT_DISTILL_THREADS", "lots")
    with caplog.at_level(logging.WARNING, logger="context_distill"):
        assert _model.default_threads() == 1
    assert "CONTEXT_DISTILL_THREADS" in caplog.text
    monkeypatch.delenv("CONTEXT_DISTILL_THREADS")
    assert _model.default_threads() == 1  # reproducible scores by default (docs/load.md)


# -- scores ----------------------------------------------------------------------------
def test_scores_are_finite_one_per_unit_and_deterministic(scorer, observation):
    inp = scoring_input(observation)
    a = scorer.score(inp)
    b = scorer.score(inp)
    assert a.shape == (len(inp.units),)
    assert np.isfinite(a).all()
    assert np.array_equal(a, b)
    assert np.array_equal(a, ModelScorer(threads=1).score(inp))  # a second session agrees


def test_empty_and_blank_inputs(scorer):
    assert scorer.score(scoring_input("")).shape == (0,)
    out = scorer.score(scoring_input("\n\n   \n", query=""))
    assert out.shape == (3,) and np.isfinite(out).all()


def test_failing_assertion_ranks_above_boilerplate(scorer, observation):
    inp = scoring_input(observation)
    s = scorer.score(inp)
    lines = inp.units
    errors = [i for i, x in enumerate(lines) if x.startswith("AssertionError")]
    boiler = [i for i, x in enumerate(lines) if set(x) <= set("=-") and x]
    assert errors and boiler
    assert min(s[i] for i in errors) > max(s[i] for i in boiler)
    top = set(np.argsort(-s)[: max(3, len(lines) // 4)].tolist())
    assert top & set(errors)


def test_long_inputs_are_scored_in_chunks_that_agree(monkeypatch, scorer, observation):
    text = "\n".join([observation] * 12)
    inp = scoring_input(text)
    whole = scorer.logits(inp)
    monkeypatch.setattr(_model, "CHUNK_UNITS", 100)
    chunked = scorer.logits(inp)
    assert chunked.shape == whole.shape == (len(inp.units),)
    assert np.isfinite(chunked).all()
    assert np.corrcoef(whole, chunked)[0, 1] > 0.95


def test_onnx_graph_takes_exactly_the_numpy_features(scorer, observation):
    f = compute_features(scoring_input(observation))
    arrays = f.as_inputs()
    graph_inputs = {i.name: i for i in scorer.session.get_inputs()}
    assert set(graph_inputs) == set(arrays)
    types = {"tensor(int64)": np.int64, "tensor(float)": np.float32}
    for name, arr in arrays.items():
        gi = graph_inputs[name]
        assert arr.dtype == types[gi.type], name
        assert arr.ndim == len(gi.shape), name
        for dim, want in zip(arr.shape, gi.shape):
            if isinstance(want, int):
                assert dim == want, name
    assert f.tok_feats.shape[1] == len(TOKEN_FEATURES)
    assert f.line_feats.shape == (len(observation.splitlines()), len(LINE_FEATURES))
    assert np.all(np.diff(f.tok_line) >= 0)
    (out,) = scorer.session.run(None, arrays)
    assert out.shape == (f.n_units,)


def test_engine_uses_the_model_and_stays_verbatim(scorer, observation):
    eng = Engine(scorer=scorer, store=False)
    res = eng.compact(observation, ratio=0.3, query=QUERY)
    assert res.scorer == "deletion-model-v2"
    assert res.tokens_after <= res.budget_tokens
    assert verify_verbatim(observation, res.text)
    assert "AssertionError" in res.text


def test_default_engine_scorer_is_the_model():
    assert isinstance(Engine(store=False).scorer, ModelScorer)
