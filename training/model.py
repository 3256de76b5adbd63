"""The deletion model in torch (training and export only; the runtime uses the ONNX file).

Per unit (line): the first ``MAX_TOKENS`` o200k ids, hashed twice into a shared embedding
table, plus per-token flags (in the query, rarity in this output, ...), go through a
depthwise token convolution and a pointwise layer, and are pooled (masked mean and max).
The pooled vector and the unit's scalar features (``compaction._features.LINE_FEATURES``)
make the line vector; a pooled query vector gates it (query conditioning beyond exact
overlap); a few residual depthwise-dilated convolutions over the line sequence give each
line its neighbours' context; a linear head gives one logit per line.

Inputs are batched ``[B, N, ...]`` for training; :class:`ExportWrapper` takes one
document (the arrays of ``compaction._features.Features``) for ONNX.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

from compaction._features import LINE_FEATURES, N_BUCKETS, TOKEN_FEATURES


@dataclass(frozen=True)
class ModelConfig:
    d: int = 64  # token embedding width
    hidden: int = 96  # line vector width
    seq_layers: int = 4
    seq_kernel: int = 5
    dropout: float = 0.1
    emb_dropout: float = 0.0  # training only: drop a token's identity, keep its features

    def to_dict(self) -> dict:
        return asdict(self)


class SeqBlock(nn.Module):
    """Pre-norm residual block over lines: depthwise dilated conv (written as shifted
    multiply-adds: fast to train on CPU and plain elementwise ops in ONNX), GELU, pointwise."""

    def __init__(self, h: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(h)
        self.kernel = kernel
        self.dilation = dilation
        self.dw = nn.Parameter(torch.randn(kernel, h) / kernel)
        self.dw_bias = nn.Parameter(torch.zeros(h))
        self.pw = nn.Linear(h, h)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, line_mask: torch.Tensor) -> torch.Tensor:
        # x [L, H] (documents laid end to end, separated by masked gap lines), line_mask [L, 1]
        n = x.shape[0]
        y = self.norm(x) * line_mask
        r = self.dilation * (self.kernel // 2)
        yp = F.pad(y, (0, 0, r, r))
        acc = self.dw_bias + yp[0:n] * self.dw[0]
        for k in range(1, self.kernel):
            o = k * self.dilation
            acc = acc + yp[o : o + n] * self.dw[k]
        return x + self.pw(self.drop(F.gelu(acc)))


#: masked lines between documents in a training batch: more than the sequence blocks see
#: (their receptive radius is (kernel // 2) * (2**layers - 1) lines; checked in DeletionModel)
DOC_GAP = 32


class DeletionModel(nn.Module):
    def __init__(self, cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        d, h = cfg.d, cfg.hidden
        if (cfg.seq_kernel // 2) * (2**cfg.seq_layers - 1) >= DOC_GAP:
            raise ValueError("the sequence blocks see further than DOC_GAP: documents of a batch would mix")
        self.emb = nn.Embedding(N_BUCKETS, d)
        nn.init.normal_(self.emb.weight, std=0.1)
        self.tok_feat = nn.Linear(len(TOKEN_FEATURES), d)
        self.tok_prev = nn.Parameter(torch.full((d,), 0.5))
        self.tok_pw = nn.Linear(d, d)
        self.tok_att = nn.Linear(d, 1)
        self.q_proj = nn.Linear(d, h)
        self.line_in = nn.Linear(2 * d + len(LINE_FEATURES), h)
        self.line_mid = nn.Linear(h, h)
        self.q_gate = nn.Linear(h, h)
        self.doc = nn.Linear(h, h)
        self.blocks = nn.ModuleList(
            SeqBlock(h, cfg.seq_kernel, 2**i, cfg.dropout) for i in range(cfg.seq_layers)
        )
        self.head_norm = nn.LayerNorm(h)
        self.head = nn.Linear(h, 1)
        self.drop = nn.Dropout(cfg.dropout)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """[..., 2] bucket ids (two hashes of one token) -> [..., d], the sum of both rows."""
        return self.emb(ids[..., 0]) + self.emb(ids[..., 1])

    def forward(
        self,
        tok_ids: torch.Tensor,  # [M, 2] int64, two hashed buckets of all tokens of all lines, line after line
        tok_feats: torch.Tensor,  # [M, F_T]
        tok_line: torch.Tensor,  # [M] int64, the line of each token (non-decreasing)
        line_feats: torch.Tensor,  # [L, F_L]
        line_doc: torch.Tensor,  # [L] int64, the document of each line
        line_mask: torch.Tensor,  # [L] float, 0 for gap lines between documents
        query_ids: torch.Tensor,  # [B, Q, 2] int64, 0 = padding
    ) -> torch.Tensor:
        n_lines = line_feats.shape[0]
        e = self.embed(tok_ids)
        if self.training and self.cfg.emb_dropout > 0:
            keep = (torch.rand(e.shape[0], 1) >= self.cfg.emb_dropout).to(e.dtype)
            e = e * keep
        x = e + self.tok_feat(tok_feats)  # [M, d]
        # the previous token of the same line (a cheap bigram), then a pointwise layer
        same = (tok_line[1:] == tok_line[:-1]).to(x.dtype).unsqueeze(-1)  # [M-1, 1]
        prev = torch.cat([torch.zeros_like(x[:1]), x[:-1] * same], 0)
        x = torch.relu(self.tok_pw(x + prev * self.tok_prev))  # [M, d]
        # pool per line: mean, and attention (softmax over the line's tokens); sums by
        # index_put(accumulate) = ONNX ScatterND(add), which is fast on CPU
        att = torch.exp(self.tok_att(x).clamp(-8.0, 8.0))  # [M, 1]
        stacked = torch.cat([x, x * att, torch.ones_like(att), att], -1)  # [M, 2d + 2]
        base = torch.zeros(n_lines, stacked.shape[1], dtype=x.dtype)
        sums = base.index_put((tok_line,), stacked, accumulate=True)
        d = x.shape[1]
        mean = sums[:, :d] / sums[:, 2 * d : 2 * d + 1].clamp(min=1.0)
        att_pool = sums[:, d : 2 * d] / sums[:, 2 * d + 1 :].clamp(min=1e-6)
        line = torch.cat([mean, att_pool, line_feats], -1)
        hvec = F.gelu(self.line_in(self.drop(line)))
        hvec = hvec + F.gelu(self.line_mid(hvec))  # [L, H]

        qm = (query_ids[..., :1] != 0).to(x.dtype)  # [B, Q, 1]
        q = (self.embed(query_ids) * qm).sum(1) / qm.sum(1).clamp(min=1.0)  # [B, d]
        q = self.q_proj(q)[line_doc]  # [L, H]
        hvec = hvec + self.q_gate(hvec * q)

        lm = line_mask.unsqueeze(-1)
        n_docs = query_ids.shape[0]
        dstack = torch.cat([hvec * lm, lm], -1)
        dsums = torch.zeros(n_docs, dstack.shape[1], dtype=x.dtype).index_put((line_doc,), dstack, accumulate=True)
        doc = (dsums[:, :-1] / dsums[:, -1:].clamp(min=1.0))[line_doc]
        hvec = (hvec + self.doc(doc)) * lm
        for blk in self.blocks:
            hvec = blk(hvec, lm)
        return self.head(self.head_norm(hvec)).squeeze(-1)  # [L]


class ExportWrapper(nn.Module):
    """One document, the inputs of ``compaction._features.Features``; returns [N] logits."""

    def __init__(self, model: DeletionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, tok_ids, tok_feats, tok_line, line_feats, query_ids):  # type: ignore[no-untyped-def]
        line_doc = torch.zeros_like(line_feats[:, 0], dtype=torch.int64)
        mask = torch.ones_like(line_feats[:, 0])
        return self.model(tok_ids, tok_feats, tok_line, line_feats, line_doc, mask, query_ids.unsqueeze(0))
