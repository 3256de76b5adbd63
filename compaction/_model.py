"""The deletion model at run time: onnxruntime only (no torch).

``load_default_scorer()`` loads ``compaction/assets/deletion-model.onnx`` once, after
checking its sha256 against ``deletion-model.json``, and returns a :class:`ModelScorer`
(the ``LineScorer`` the engine uses by default). The CUDA execution provider is used when
the GPU build of onnxruntime and CUDA are both usable, else the CPU one; which one runs is
logged once (stderr) and reported by :func:`model_info` (the ``status`` tool).

Scores are priorities for the budgeted selection: ``log p(used) - cost_power * log(1 +
tokens)``, so that under a token budget a cheap line needs less evidence than a long one.
When the query has words, the priority is then mixed with Okapi BM25 of the line against the
query (``compaction.baselines.BM25Scorer``): ``z(priority) + bm25_weight * z(bm25)``, z-scores
taken within the output. ``cost_power`` and ``bm25_weight`` are tuned on the validation split
by ``training/export.py`` and stored in the JSON file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ._exceptions import AssetCorruptError, AssetMissingError
from ._features import FEATURE_VERSION, compute_features
from ._scoring import ScoringInput
from .baselines import BM25Scorer

__all__ = [
    "ASSET_DIR",
    "MODEL_PATH",
    "META_PATH",
    "ModelScorer",
    "load_default_scorer",
    "model_info",
    "default_threads",
    "sha256_file",
]

log = logging.getLogger("context_distill")

ASSET_DIR = Path(__file__).resolve().parent / "assets"
MODEL_PATH = ASSET_DIR / "deletion-model.onnx"
META_PATH = ASSET_DIR / "deletion-model.json"

#: units per inference call; long inputs go in chunks that overlap by CONTEXT units on each
#: side (more than the model's sequence layers see), so memory stays bounded. The result is
#: close to, not the same as, one pass over the whole input: the model also averages a
#: document vector over its chunk (max logit difference about 0.1-0.2 on 2,000-6,000 units)
CHUNK_UNITS = 2048
CONTEXT = 32
_REINSTALL = "reinstall context-distill (pip install --force-reinstall context-distill)"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_threads() -> int:
    """Intra-op threads: ``CONTEXT_DISTILL_THREADS`` (a whole number >= 1), default 1.

    One thread by default because onnxruntime's CPU kernels are not bit-reproducible across
    calling threads with two or more intra-op threads (logits moved by up to 0.03, enough to
    change which lines are kept; docs/load.md). The server gets its parallelism from running
    calls side by side instead."""
    raw = os.environ.get("CONTEXT_DISTILL_THREADS", "").strip()
    if not raw:
        return 1
    most = max(os.cpu_count() or 1, 1)
    try:
        n = int(raw)
        if n > most:
            log.warning("CONTEXT_DISTILL_THREADS=%r is more than this machine's %d CPUs; using %d", raw, most, most)
            return most
        if n >= 1:
            return n
    except ValueError:
        pass
    log.warning("CONTEXT_DISTILL_THREADS=%r is not a whole number >= 1; using 1 thread", raw)
    return 1


@dataclass(frozen=True)
class _Meta:
    sha256: str
    name: str
    cost_power: float
    bm25_weight: float
    feature_version: int
    raw: dict[str, Any]


def _read_meta(meta_path: Path, model_path: Path) -> _Meta:
    if not model_path.is_file():
        raise AssetMissingError(f"the deletion model {model_path} is missing; {_REINSTALL}")
    if not meta_path.is_file():
        raise AssetMissingError(f"the deletion model's manifest {meta_path} is missing; {_REINSTALL}")
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
        meta = _Meta(
            sha256=str(raw["sha256"]).lower(),
            name=str(raw.get("name", "deletion-model")),
            cost_power=float(raw.get("cost_power", 0.0)),
            bm25_weight=float(raw.get("bm25_weight", 0.0)),
            feature_version=int(raw.get("feature_version", FEATURE_VERSION)),
            raw=raw,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise AssetCorruptError(f"the deletion model's manifest {meta_path} is unreadable ({exc}); {_REINSTALL}") from None
    for name, value in (("cost_power", meta.cost_power), ("bm25_weight", meta.bm25_weight)):
        if not 0.0 <= value <= 10.0:  # NaN fails this too
            raise AssetCorruptError(f"the deletion model's manifest {meta_path} has {name}={value!r}; {_REINSTALL}")
    if meta.feature_version != FEATURE_VERSION:
        raise AssetCorruptError(
            f"the deletion model was trained on features v{meta.feature_version}, this code computes "
            f"v{FEATURE_VERSION}; {_REINSTALL}"
        )
    return meta


def _providers_wanted(prefer_gpu: bool) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = []
    if prefer_gpu and "CUDAExecutionProvider" in available:
        wanted.append("CUDAExecutionProvider")
    wanted.append("CPUExecutionProvider")
    return wanted


class ModelScorer:
    """The deletion model behind the ``LineScorer`` protocol."""

    def __init__(
        self,
        model_path: Path | str = MODEL_PATH,
        meta_path: Path | str = META_PATH,
        *,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        import onnxruntime as ort

        model_path, meta_path = Path(model_path), Path(meta_path)
        meta = _read_meta(meta_path, model_path)
        digest = sha256_file(model_path)
        if digest != meta.sha256:
            raise AssetCorruptError(
                f"the deletion model {model_path} is corrupt (sha256 {digest[:12]}..., expected "
                f"{meta.sha256[:12]}...); {_REINSTALL}"
            )
        self.name = meta.name
        self.cost_power = meta.cost_power
        self.bm25_weight = meta.bm25_weight
        self._bm25 = BM25Scorer()
        self.meta = meta.raw
        self.sha256 = digest
        self.path = model_path
        self.size = model_path.stat().st_size
        self.threads = threads if threads is not None else default_threads()
        # the GPU build logs "cannot load libcublasLt..." errors when CUDA is absent; that is
        # the expected CPU fallback, not news: only fatal lines get through
        ort.set_default_logger_severity(4)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        wanted = list(providers) if providers is not None else _providers_wanted(prefer_gpu=True)
        if "CPUExecutionProvider" not in wanted:
            wanted.append("CPUExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(model_path), opts, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own types
            raise AssetCorruptError(f"the deletion model {model_path} does not load ({exc}); {_REINSTALL}") from None
        self.providers = list(self.session.get_providers())
        self.provider = self.providers[0]
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._lock = threading.Lock()

    def logits(self, inp: ScoringInput) -> np.ndarray:
        """One logit per unit (log-odds that the agent uses the line)."""
        n = len(inp.units)
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        feats = compute_features(inp)
        if n <= CHUNK_UNITS:
            return self._run(feats.as_inputs())
        out = np.empty(n, dtype=np.float32)
        for start in range(0, n, CHUNK_UNITS):
            stop = min(n, start + CHUNK_UNITS)
            a, b = max(0, start - CONTEXT), min(n, stop + CONTEXT)
            part = self._run(feats.rows(a, b).as_inputs())
            out[start:stop] = part[start - a : stop - a]
        return out

    def _run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        if inputs["tok_ids"].shape[0] == 0:  # nothing but blank units: one padding token keeps shapes valid
            inputs = dict(inputs)
            inputs["tok_ids"] = np.zeros((1, 2), dtype=np.int64)
            inputs["tok_feats"] = np.zeros((1, inputs["tok_feats"].shape[1]), dtype=np.float32)
            inputs["tok_line"] = np.zeros(1, dtype=np.int64)
        feed = {k: inputs[k] for k in self._inputs}
        with self._lock:  # one run at a time: the threads are the session's
            (logits,) = self.session.run(None, feed)
        return np.asarray(logits, dtype=np.float32).reshape(-1)

    def score(self, inp: ScoringInput) -> np.ndarray:
        logits = self.logits(inp).astype(np.float64)
        n_tok = np.fromiter((len(t) for t in inp.unit_tokens), dtype=np.float64, count=len(inp.units))
        logp = -np.logaddexp(0.0, -logits)  # log sigmoid
        priority = logp - self.cost_power * np.log1p(n_tok)
        if self.bm25_weight and inp.query:
            bm = self._bm25.score(inp)
            if bm.any():
                priority = _z(priority) + self.bm25_weight * _z(bm)
        return priority

    def info(self) -> dict[str, Any]:
        return {
            "available": True,
            "name": self.name,
            "path": str(self.path),
            "sha256": self.sha256,
            "size_bytes": self.size,
            "execution_provider": self.provider,
            "providers": self.providers,
            "threads": self.threads,
            "feature_version": FEATURE_VERSION,
            "cost_power": self.cost_power,
            "bm25_weight": self.bm25_weight,
        }


def _z(x: np.ndarray) -> np.ndarray:
    """``x`` as z-scores within this output (all zeros when it is constant)."""
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


_default: ModelScorer | None = None
_default_lock = threading.Lock()


def load_default_scorer() -> ModelScorer:
    """The shipped model, loaded once per process."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                scorer = ModelScorer()
                log.info(
                    "deletion model %s (%s) on %s, %d thread(s)",
                    scorer.name,
                    scorer.sha256[:12],
                    scorer.provider,
                    scorer.threads,
                )
                _default = scorer
    return _default


def model_info() -> dict[str, Any]:
    """For ``status``: name, sha256, size, execution provider in use, threads (loads the model)."""
    return load_default_scorer().info()
