"""Export the trained deletion model to ONNX, int8-quantize it, check it, ship it.

    python -m training.export [--tune-limit 300] [--quantize MatMul,Gather]

1. loads training/work/model/model.pt (``python -m training.train``);
2. ``torch.onnx.export(dynamo=True, opset 18)`` with dynamic token and line axes;
3. ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, per channel; by default
   only Gather (the embedding table) and MatMul nodes: int8 convolutions are slower);
4. parity: the fp32 graph against torch (must agree within 1e-4) and the int8 graph
   against torch (max abs logit difference within ``--tolerance``) on real validation
   inputs, through ``compaction._features`` exactly as the runtime computes them;
   it fails loudly otherwise;
5. tunes ``cost_power`` (priority = log p - cost_power * log(1 + tokens)), then
   ``bm25_weight`` (priority = z(priority) + bm25_weight * z(BM25 against the query)) on a
   sample of the validation split with the real engine and the int8 graph;
6. writes compaction/assets/deletion-model.onnx and deletion-model.json (sha256, size,
   created, training data summary, metrics) atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import io
import json
import random
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from compaction._atomic import atomic_write_bytes, atomic_write_text
from compaction._features import FEATURE_VERSION, LINE_FEATURES, MAX_TOKENS, N_BUCKETS, TOKEN_FEATURES
from compaction._model import META_PATH, MODEL_PATH, ModelScorer, sha256_file

from .model import DeletionModel, ExportWrapper, ModelConfig
from .train import OUT, load_split, log, val_examples, val_recall

INPUT_NAMES = ["tok_ids", "tok_feats", "tok_line", "line_feats", "query_ids"]
MAX_BYTES = 10 * 1024 * 1024
NAME = "deletion-model-v2"


def load_trained(folder: Path = OUT) -> tuple[DeletionModel, dict]:
    path = folder / "model.pt"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `python -m training.train` first")
    ckpt = torch.load(path, map_location="cpu")
    model = DeletionModel(ModelConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt


def export_fp32(model: DeletionModel, sample: dict[str, np.ndarray], path: Path) -> None:
    import onnx

    wrapper = ExportWrapper(model).eval()
    args = tuple(torch.from_numpy(np.ascontiguousarray(sample[k])) for k in INPUT_NAMES)
    dim = torch.export.Dim.DYNAMIC
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            args,
            str(path),
            dynamo=True,
            opset_version=18,
            input_names=INPUT_NAMES,
            output_names=["logits"],
            dynamic_shapes=tuple({0: dim} for _ in INPUT_NAMES),
            external_data=False,
        )
    m = onnx.load(str(path))
    # the exporter's intermediate shape annotations trip the quantizer's shape inference
    del m.graph.value_info[:]
    m.doc_string = "context-distill deletion model: one logit per line (see docs/model.md)"
    onnx.save(m, str(path))


def quantize(src: Path, dst: Path, ops: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging_off = contextlib.redirect_stderr(io.StringIO())
    with logging_off:
        quantize_dynamic(
            str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=ops
        )


def session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def parity(model: DeletionModel, fp32: Path, int8: Path, exs: list) -> dict:
    s32, s8 = session(fp32), session(int8)
    d32 = d8 = 0.0
    spread = []
    agree = []
    for ex in exs:
        f = ex.feats
        inputs = f.as_inputs()
        with torch.no_grad():
            ref = ExportWrapper(model)(*(torch.from_numpy(inputs[k]) for k in INPUT_NAMES)).numpy()
        o32 = s32.run(None, inputs)[0]
        o8 = s8.run(None, inputs)[0]
        d32 = max(d32, float(np.abs(o32 - ref).max()))
        d8 = max(d8, float(np.abs(o8 - ref).max()))
        spread.append(float(ref.std()))
        if len(ref) > 1:
            agree.append(float(np.corrcoef(ref, o8)[0, 1]))
    return {
        "examples": len(exs),
        "fp32_max_abs_diff": d32,
        "int8_max_abs_diff": d8,
        "logit_std": float(np.mean(spread)),
        "int8_min_correlation": float(min(agree)) if agree else 1.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quantize", default="MatMul,Gather", help="op types to quantize (comma-separated)")
    ap.add_argument("--tolerance", type=float, default=0.25, help="max abs logit difference int8 vs torch")
    ap.add_argument("--tune-limit", type=int, default=300, help="validation examples for tuning cost_power")
    ap.add_argument("--cost-powers", default="0,0.25,0.5,0.75,1.0")
    ap.add_argument("--bm25-weights", default="0,0.2,0.3,0.4,0.5,0.7", help="weights of BM25 mixed into the priority")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model-dir", type=Path, default=OUT, help="folder with model.pt and train.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    model, ckpt = load_trained(args.model_dir)
    val = load_split("val")
    rng = random.Random(args.seed)
    parity_set = rng.sample([e for e in val if len(e.lines) >= 2], min(40, len(val)))
    sample = max(parity_set, key=lambda e: len(e.lines)).feats.as_inputs()

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        int8 = Path(tmp) / "int8.onnx"
        t0 = time.time()
        export_fp32(model, sample, fp32)
        quantize(fp32, int8, [o for o in args.quantize.split(",") if o])
        log(f"exported in {time.time() - t0:.0f}s: fp32 {fp32.stat().st_size:,} bytes, int8 {int8.stat().st_size:,} bytes")
        par = parity(model, fp32, int8, parity_set)
        log(
            f"parity on {par['examples']} validation inputs: fp32 vs torch max |diff| {par['fp32_max_abs_diff']:.2e}, "
            f"int8 vs torch max |diff| {par['int8_max_abs_diff']:.3f} (logit std {par['logit_std']:.2f}, "
            f"min correlation {par['int8_min_correlation']:.4f})"
        )
        if par["fp32_max_abs_diff"] > 1e-4:
            raise SystemExit(f"PARITY FAILED: the fp32 ONNX graph differs from torch by {par['fp32_max_abs_diff']:.2e}")
        if par["int8_max_abs_diff"] > args.tolerance:
            raise SystemExit(
                f"PARITY FAILED: the int8 graph differs from torch by {par['int8_max_abs_diff']:.3f} "
                f"(tolerance {args.tolerance})"
            )
        data = int8.read_bytes()
        if len(data) > MAX_BYTES:
            raise SystemExit(f"the int8 model is {len(data):,} bytes, over the {MAX_BYTES:,} limit")

        # tune the cost power with the int8 graph through the real engine
        digest = sha256_file(int8)
        meta_tmp = Path(tmp) / "meta.json"
        powers = [float(x) for x in args.cost_powers.split(",")]
        tune = val_examples(val, args.tune_limit, args.seed + 1)

        def tuned(cost_power: float, bm25_weight: float) -> dict[float, float]:
            meta_tmp.write_text(
                json.dumps(
                    {"sha256": digest, "name": NAME, "cost_power": cost_power, "bm25_weight": bm25_weight,
                     "feature_version": FEATURE_VERSION}  # fmt: skip
                )
            )
            return val_recall(ModelScorer(int8, meta_tmp, threads=2), tune)

        def mean(r: dict[float, float]) -> float:
            return float(np.mean(list(r.values())))

        results = {}
        for cp in powers:
            results[cp] = tuned(cp, 0.0)
            log(f"cost_power {cp:g}: recall " + " ".join(f"@{r:g} {100 * v:.1f}" for r, v in results[cp].items()))
        best_cp = max(powers, key=lambda cp: mean(results[cp]))
        log(f"chosen cost_power {best_cp:g}")
        weights = [float(x) for x in args.bm25_weights.split(",")]
        mixed = {0.0: results[best_cp]}
        for w in weights:
            if w not in mixed:
                mixed[w] = tuned(best_cp, w)
            log(f"bm25_weight {w:g}: recall " + " ".join(f"@{r:g} {100 * v:.1f}" for r, v in mixed[w].items()))
        best_w = max(sorted(mixed), key=lambda w: mean(mixed[w]))
        log(f"chosen bm25_weight {best_w:g}")

    train_info = {}
    tj = args.model_dir / "train.json"
    if tj.exists():
        train_info = json.loads(tj.read_text())
    meta = {
        "name": NAME,
        "sha256": digest,
        "size": len(data),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "format": "onnx opset 18, int8 dynamic quantization (per channel) of " + args.quantize,
        "inputs": {
            "tok_ids": "int64 [M, 2]",
            "tok_feats": f"float32 [M, {len(TOKEN_FEATURES)}]",
            "tok_line": "int64 [M]",
            "line_feats": f"float32 [N, {len(LINE_FEATURES)}]",
            "query_ids": "int64 [Q, 2]",
        },
        "outputs": {"logits": "float32 [N]"},
        "feature_version": FEATURE_VERSION,
        "features": {
            "token": list(TOKEN_FEATURES),
            "line": list(LINE_FEATURES),
            "max_tokens_per_line": MAX_TOKENS,
            "buckets": N_BUCKETS,
        },
        "config": ckpt["config"],
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "cost_power": best_cp,
        "bm25_weight": best_w,
        "parity": par,
        "metrics": {
            "note": "macro recall of used lines on a seeded validation sample (sympy + sphinx), real engine",
            "tune_examples": len(tune),
            "recall_by_cost_power": {str(cp): r for cp, r in results.items()},
            "recall_by_bm25_weight": {str(w): r for w, r in mixed.items()},
        },
        "training": {
            k: train_info.get(k)
            for k in (
                "seed",
                "threads",
                "minutes",
                "best_validation",
                "best_step",
                "best_val_mean_recall",
                "train_examples",
                "train_lines",
                "train_used_fraction",
                "val_examples",
                "dataset",
            )
        },
    }
    atomic_write_bytes(MODEL_PATH, data)
    atomic_write_text(META_PATH, json.dumps(meta, indent=2) + "\n")
    log(f"wrote {MODEL_PATH} ({len(data):,} bytes, sha256 {digest[:12]}...) and {META_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
