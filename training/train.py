"""Train the deletion model: ``python -m training.train``.

Reads training/work/dataset/{train,val}.jsonl.gz (``python -m training.build_dataset``;
the split is by repository), computes the features with ``compaction._features`` (the
same code the runtime uses), trains ``training.model.DeletionModel`` with AdamW on a
weighted binary cross-entropy (torch, CPU, seeded), and keeps the epoch with the best
validation recall. Validation runs the real engine (``compaction.Engine.compact``) at keep
0.5 / 0.3 / 0.1 with the torch model as the scorer, so early stopping sees the metric the
evaluation reports. Writes training/work/model/{model.pt,train.json}; then run
``python -m training.export``.

    python -m training.train [--epochs 3] [--minutes 25] [--threads 2] [--seed 1]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import pickle
import random
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from compaction import Engine, ScoringInput, get_tokenizer
from compaction._features import FEATURE_VERSION, Features, compute_features

from .labels import short_query, without_earlier
from .model import DOC_GAP, DeletionModel, ModelConfig

ROOT = Path(__file__).resolve().parent.parent
DATASET = Path(os.environ.get("CONTEXT_DISTILL_DATASET", ROOT / "training" / "work" / "dataset"))
OUT = ROOT / "training" / "work" / "model"
CACHE = ROOT / "training" / "work" / "features"

MAX_LINES = 384  # lines per training window (longer examples: a random window per epoch)
BATCH_LINES = 6000
BATCH_TOKENS = 60000
VAL_RATIOS = (0.5, 0.3, 0.1)
#: priority = log sigmoid(logit) - COST_POWER * log(tokens + 1); tuned by training.export
DEFAULT_COST_POWER = 0.5


@dataclass
class Example:
    id: str
    repo: str
    query: str
    lines: list[str]
    labels: np.ndarray  # [N] float32
    weights: np.ndarray  # [N] float32
    feats: Features
    soft: np.ndarray  # [N] float32: the labeller's evidence / threshold, capped at 1 (labels == soft >= 1)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def read_split(name: str) -> list[dict]:
    path = DATASET / f"{name}.jsonl.gz"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `python -m training.build_dataset` first")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def featurize(raw: list[dict]) -> list[Example]:
    tok = get_tokenizer()
    out = []
    for ex in raw:
        lines = [str(x) for x in ex["lines"]]
        if not lines:
            continue
        toks = [tok.encode(x) for x in lines]
        q = ex.get("query") or ""
        feats = compute_features(ScoringInput(lines, toks, list(range(len(lines))), q, tok.encode(q) if q else []))
        labels = np.asarray(ex["labels"], dtype=np.float32)
        w = ex.get("weights")
        weights = np.asarray(w, dtype=np.float32) if w is not None else np.ones(len(lines), dtype=np.float32)
        soft = ex.get("soft")
        soft = np.minimum(np.asarray(soft, dtype=np.float32), 1.0) if soft is not None else labels
        out.append(Example(ex["id"], ex.get("repo", ""), q, lines, labels, weights, feats, soft))
    return out


def load_split(name: str, short_query_share: float = 0.0) -> list[Example]:
    """Featurized examples of one split, cached by the dataset file's size/mtime, the feature
    version and the share of queries without earlier messages. Callers who pass only what
    they are doing now should not get a model that needs the earlier messages, so a share of
    the training examples (``short_query_share``) is featurized with :func:`without_earlier`."""
    path = DATASET / f"{name}.jsonl.gz"
    st = path.stat() if path.exists() else None
    share = f"-s{short_query_share:g}" if short_query_share else ""
    key = f"{name}-v{FEATURE_VERSION}f2{share}-{st.st_size if st else 0}-{int(st.st_mtime) if st else 0}.pkl"
    cached = CACHE / key
    if cached.exists():
        with open(cached, "rb") as f:
            return [Example(*fields) for fields in pickle.load(f)]
    t0 = time.time()
    raw = read_split(name)
    for ex in raw:
        if short_query_share and short_query(ex["id"], short_query_share):
            ex["query"] = without_earlier(ex.get("query") or "")
    exs = featurize(raw)
    log(f"featurized {name}: {len(exs)} examples, {sum(len(e.lines) for e in exs)} lines in {time.time() - t0:.0f}s")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        # plain tuples: the Example class lives in __main__ under `python -m`
        rows = [(e.id, e.repo, e.query, e.lines, e.labels, e.weights, e.feats, e.soft) for e in exs]
        pickle.dump(rows, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, cached)
    for old in CACHE.glob(f"{name}-v*.pkl"):  # features of earlier dataset builds
        if old != cached:
            old.unlink(missing_ok=True)
    return exs


def trajectory_of(example_id: str) -> str:
    """``source:instance`` of an example id ``source:instance:call``: the unit a learning curve samples."""
    return example_id.rsplit(":", 1)[0]


def in_share(key: str, share: float) -> bool:
    """A fixed ``share`` of keys, by a hash unrelated to :func:`training.labels.short_query`'s."""
    return zlib.crc32(b"train-share:" + key.encode("utf-8")) % 10_000 < share * 10_000


# ----------------------------------------------------------------------------- batches
@dataclass
class Window:
    ex: Example
    start: int
    stop: int


def windows(exs: list[Example], rng: random.Random, neg_keep: float = 1.0) -> list[Window]:
    """One window per example and epoch: the whole example, or a random MAX_LINES of it.
    Examples without a used line are kept with probability ``neg_keep``."""
    out = []
    for ex in exs:
        n = len(ex.lines)
        if not ex.labels.any() and rng.random() >= neg_keep:
            continue
        if n <= MAX_LINES:
            out.append(Window(ex, 0, n))
        else:
            start = rng.randrange(n - MAX_LINES + 1)
            out.append(Window(ex, start, start + MAX_LINES))
    return out


def make_batches(ws: list[Window], rng: random.Random) -> list[list[Window]]:
    ws = sorted(ws, key=lambda w: (w.stop - w.start, rng.random()))
    batches: list[list[Window]] = []
    cur: list[Window] = []
    lines = toks = 0
    for w in ws:
        n = w.stop - w.start + DOC_GAP
        t = int(w.ex.feats.offsets[w.stop] - w.ex.feats.offsets[w.start])
        if cur and (lines + n > BATCH_LINES or toks + t > BATCH_TOKENS):
            batches.append(cur)
            cur, lines, toks = [], 0, 0
        cur.append(w)
        lines += n
        toks += t
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def collate(batch: list[Window]) -> dict[str, torch.Tensor]:
    tok_ids, tok_feats, tok_line, line_feats, line_doc, mask, labels, weights, qs = [], [], [], [], [], [], [], [], []
    softs: list[np.ndarray] = []
    n_feat = batch[0].ex.feats.line_feats.shape[1]
    base = 0
    for d, w in enumerate(batch):
        f = w.ex.feats.rows(w.start, w.stop)
        n = f.n_units
        tok_ids.append(f.tok_ids)
        tok_feats.append(f.tok_feats)
        tok_line.append(f.tok_line + base)
        line_feats.append(f.line_feats)
        line_feats.append(np.zeros((DOC_GAP, n_feat), dtype=np.float32))
        line_doc.append(np.full(n + DOC_GAP, d, dtype=np.int64))
        mask.append(np.concatenate([np.ones(n, np.float32), np.zeros(DOC_GAP, np.float32)]))
        labels.append(np.concatenate([w.ex.labels[w.start : w.stop], np.zeros(DOC_GAP, np.float32)]))
        softs.append(np.concatenate([w.ex.soft[w.start : w.stop], np.zeros(DOC_GAP, np.float32)]))
        # each document weighs about the same whatever its length (sqrt: long ones a bit more)
        lw = w.ex.weights[w.start : w.stop] / math.sqrt(max(n, 1))
        weights.append(np.concatenate([lw, np.zeros(DOC_GAP, np.float32)]))
        qs.append(f.query_ids)
        base += n + DOC_GAP
    qmax = max(q.shape[0] for q in qs)
    query = np.zeros((len(qs), qmax, 2), dtype=np.int64)
    for i, q in enumerate(qs):
        query[i, : q.shape[0]] = q
    cat = np.concatenate
    return {
        "tok_ids": torch.from_numpy(cat(tok_ids)),
        "tok_feats": torch.from_numpy(cat(tok_feats)),
        "tok_line": torch.from_numpy(cat(tok_line)),
        "line_feats": torch.from_numpy(cat(line_feats)),
        "line_doc": torch.from_numpy(cat(line_doc)),
        "line_mask": torch.from_numpy(cat(mask)),
        "query_ids": torch.from_numpy(query),
        "labels": torch.from_numpy(cat(labels)),
        "soft": torch.from_numpy(cat(softs)),
        "weights": torch.from_numpy(cat(weights).astype(np.float32)),
    }


def forward(model: DeletionModel, b: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(
        b["tok_ids"], b["tok_feats"], b["tok_line"], b["line_feats"], b["line_doc"], b["line_mask"], b["query_ids"]
    )


def listwise_loss(logits: torch.Tensor, b: dict[str, torch.Tensor]) -> torch.Tensor:
    """Softmax cross-entropy over the lines of each document towards its used lines (a
    ranking loss: the metric ranks lines within one output), averaged over documents
    that have a used line."""
    doc = b["line_doc"]
    n_docs = b["query_ids"].shape[0]
    masked = logits.masked_fill(b["line_mask"] == 0, -1e4)
    mx = torch.full((n_docs,), -1e4).scatter_reduce(0, doc, masked, reduce="amax", include_self=True).detach()
    ex = torch.exp(masked - mx[doc]) * b["line_mask"]
    lse = torch.log(torch.zeros(n_docs).index_add(0, doc, ex).clamp(min=1e-20)) + mx
    pos = b["labels"] * b["line_mask"]
    n_pos = torch.zeros(n_docs).index_add(0, doc, pos)
    pos_logit = torch.zeros(n_docs).index_add(0, doc, pos * logits)
    has = n_pos > 0
    if not bool(has.any()):
        return logits.sum() * 0.0
    per_doc = lse[has] - pos_logit[has] / n_pos[has]
    return per_doc.mean()


# ----------------------------------------------------------------------------- validation
def priorities(logits: np.ndarray, n_tokens: np.ndarray, cost_power: float) -> np.ndarray:
    """What the scorer hands to the budgeted selection (same formula as compaction._model)."""
    logp = -np.logaddexp(0.0, -logits.astype(np.float64))
    return logp - cost_power * np.log1p(n_tokens.astype(np.float64))


class TorchScorer:
    """The torch model behind the LineScorer protocol (validation only)."""

    name = "deletion-model-torch"

    def __init__(self, model: DeletionModel, cost_power: float = DEFAULT_COST_POWER) -> None:
        self.model = model
        self.cost_power = cost_power
        self._cache: dict[tuple, np.ndarray] = {}

    def logits(self, inp: ScoringInput) -> np.ndarray:
        key = (len(inp.units), hash(tuple(inp.units)), inp.query)
        if key not in self._cache:
            f = compute_features(inp)
            with torch.no_grad():
                out = self.model(
                    torch.from_numpy(f.tok_ids),
                    torch.from_numpy(f.tok_feats),
                    torch.from_numpy(f.tok_line),
                    torch.from_numpy(f.line_feats),
                    torch.zeros(f.n_units, dtype=torch.int64),
                    torch.ones(f.n_units),
                    torch.from_numpy(f.query_ids).unsqueeze(0),
                )
            self._cache = {key: out.numpy()}
        return self._cache[key]

    def score(self, inp: ScoringInput) -> np.ndarray:
        n_tok = np.fromiter((len(t) for t in inp.unit_tokens), dtype=np.int64, count=len(inp.units))
        return priorities(self.logits(inp), n_tok, self.cost_power)


def val_examples(exs: list[Example], limit: int, seed: int) -> list[Example]:
    tok = get_tokenizer()
    keep = [e for e in exs if e.labels.any() and len(e.lines) >= 5 and tok.count("\n".join(e.lines)) >= 64]
    if len(keep) > limit:
        keep = random.Random(seed).sample(keep, limit)
    return keep


def validate(model: DeletionModel, exs: list[Example], cost_powers=(DEFAULT_COST_POWER,)) -> dict[float, dict[float, float]]:
    """Macro recall of used lines (lines kept whole) at each keep ratio, per cost power."""
    model.eval()
    out = {cp: val_recall(TorchScorer(model, cp), exs) for cp in cost_powers}
    model.train()
    return out


def val_recall(scorer, exs: list[Example]) -> dict[float, float]:
    """Mean recall of used lines after the real engine's `compact`, at each of VAL_RATIOS."""
    eng = Engine(scorer=scorer, store=False)
    rec: dict[float, list[float]] = {r: [] for r in VAL_RATIOS}
    for ex in exs:
        text = "\n".join(ex.lines)
        used = np.flatnonzero(ex.labels > 0)
        for r in VAL_RATIOS:
            res = eng.compact(text, ratio=r, query=ex.query)
            kept = np.zeros(len(ex.lines) + 1, dtype=bool)
            for a, b in res.kept_line_ranges:
                kept[a - 1 : b] = True
            rec[r].append(float(kept[used].mean()))
    return {r: float(np.mean(v)) for r, v in rec.items()}


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=25.0, help="stop starting new epochs after this long")
    ap.add_argument("--patience", type=int, default=4, help="validations without progress before stopping")
    ap.add_argument("--threads", type=int, default=2)
    # seed 1 was chosen over seed 0 on the validation split (python -m training.evaluate:
    # +1.6 / +1.2 / +0.3 points at keep 0.5 / 0.3 / 0.1); see docs/model.md
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--val-seed", type=int, default=1, help="which validation sample early stopping uses")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", type=Path, default=OUT, help="folder for model.pt and train.json")
    ap.add_argument("--val-every", type=int, default=25, help="validate every N steps (0: after each epoch)")
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--emb-dropout", type=float, default=0.3, help="drop whole token embeddings in training")
    ap.add_argument("--val-limit", type=int, default=1000, help="validation examples scored per epoch")
    ap.add_argument("--d", type=int, default=ModelConfig.d)
    ap.add_argument("--hidden", type=int, default=ModelConfig.hidden)
    ap.add_argument("--layers", type=int, default=ModelConfig.seq_layers)
    ap.add_argument("--soft", type=float, default=0.3, help="mix of the labeller's soft score into the BCE target")
    ap.add_argument("--list-weight", type=float, default=0.5, help="weight of the listwise (per-output softmax) loss")
    ap.add_argument("--neg-keep", type=float, default=0.3, help="share of outputs without a used line trained on per epoch")
    ap.add_argument("--short-query-share", type=float, default=0.35,
                    help="share of training examples whose query leaves out the agent's earlier messages")
    ap.add_argument("--pos-weight", type=float, default=1.0, help="extra weight of used lines in the loss")
    ap.add_argument("--train-share", type=float, default=1.0,
                    help="train on this share of the training trajectories (fixed by a hash of the trajectory; "
                         "for learning curves, docs/model.md)")
    args = ap.parse_args(argv)
    if not 0.0 < args.train_share <= 1.0:
        ap.error("--train-share must be in (0, 1]")

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = random.Random(args.seed)

    train = load_split("train", args.short_query_share)
    if args.train_share < 1.0:
        train = [e for e in train if in_share(trajectory_of(e.id), args.train_share)]
    val = load_split("val")
    val_set = val_examples(val, args.val_limit, args.val_seed)
    n_lines = sum(len(e.lines) for e in train)
    pos = sum(float(e.labels.sum()) for e in train)
    log(f"train: {len(train)} examples, {n_lines} lines, {pos / max(n_lines, 1):.1%} used; "
        f"val: {len(val)} examples ({len(val_set)} scored per epoch)")

    cfg = ModelConfig(d=args.d, hidden=args.hidden, seq_layers=args.layers, emb_dropout=args.emb_dropout)
    model = DeletionModel(cfg)
    log(f"model: {sum(p.numel() for p in model.parameters()):,} parameters, {cfg}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = len(make_batches(windows(train, random.Random(0), args.neg_keep), random.Random(0)))
    total_steps = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total_steps, pct_start=0.1)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    best = -1.0
    best_epoch = -1  # in units of validations (every --val-every steps; 0 = per epoch)
    history = []
    bad = 0
    step = 0
    stop = False
    t0 = time.time()
    losses: list[float] = []

    def checkpoint(epoch: int) -> bool:
        """Validate, keep the best; True when training should stop."""
        nonlocal best, best_epoch, bad, t0, losses
        vr = validate(model, val_set)[DEFAULT_COST_POWER]
        score = float(np.mean(list(vr.values())))
        k = len(history)
        history.append({"validation": k, "epoch": epoch, "step": step, "loss": float(np.mean(losses)) if losses else None,
                        "val_recall": vr, "seconds": time.time() - t0})
        log(f"validation {k} (epoch {epoch}, step {step}): loss {history[-1]['loss']:.4f}, val recall "
            + " ".join(f"@{r:g} {100 * v:.1f}" for r, v in vr.items())
            + f" (mean {100 * score:.1f}), {time.time() - t0:.0f}s")
        t0, losses = time.time(), []
        if score > best:
            best, best_epoch, bad = score, k, 0
            torch.save({"config": cfg.to_dict(), "state_dict": model.state_dict()}, out / "model.pt")
        else:
            bad += 1
            if bad >= args.patience:
                log("early stop")
                return True
        if (time.time() - t_start) / 60 > args.minutes:
            log(f"time limit of {args.minutes} minutes reached")
            return True
        return False

    for epoch in range(args.epochs):
        batches = make_batches(windows(train, rng, args.neg_keep), rng)
        model.train()
        for b in batches:
            batch = collate(b)
            logits = forward(model, batch)
            w = batch["weights"] * (1.0 + (args.pos_weight - 1.0) * batch["labels"])
            target = (1.0 - args.soft) * batch["labels"] + args.soft * batch["soft"]
            loss = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w).sum() / w.sum()
            if args.list_weight > 0:
                loss = loss + args.list_weight * listwise_loss(logits, batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if step < total_steps:
                sched.step()
            step += 1
            losses.append(float(loss.detach()))
            if step % 50 == 0:
                log(f"  step {step}: loss {float(loss.detach()):.4f}")
            if args.val_every and step % args.val_every == 0:
                stop = checkpoint(epoch)
                model.train()
                if stop:
                    break
        if stop:
            break
        if not args.val_every and checkpoint(epoch):
            break

    summary = {
        "args": vars(args),
        "seed": args.seed,
        "threads": args.threads,
        "config": cfg.to_dict(),
        "best_validation": best_epoch,
        "best_step": history[best_epoch]["step"] if best_epoch >= 0 else None,
        "best_val_mean_recall": best,
        "history": history,
        "train_examples": len(train),
        "train_lines": n_lines,
        "train_used_fraction": pos / max(n_lines, 1),
        "val_examples": len(val),
        "val_scored": len(val_set),
        "minutes": (time.time() - t_start) / 60,
        "feature_version": FEATURE_VERSION,
        "dataset": {
            name: {"bytes": (DATASET / f"{name}.jsonl.gz").stat().st_size} for name in ("train", "val")
        },
    }
    (out / "train.json").write_text(json.dumps(summary, indent=2, default=str))
    log(f"best validation {best_epoch} (val mean recall {100 * best:.1f}); {summary['minutes']:.1f} minutes; "
        f"wrote {out / 'model.pt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
