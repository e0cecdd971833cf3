"""Slow, obvious per-sample loop versions of the EGMA losses: the references the vectorized losses in
:mod:`radgaze.model.losses` are tested and benchmarked against. Written from the equations (DESIGN.md), one pair,
one sentence, one patch at a time, without masks: padded slots are skipped by slicing to the real ones.
Returns plain scalars (0-d tensors) in the input dtype; use float64 inputs for parity checks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from radgaze.model.config import LossConfig


def _lse(values: list[Tensor]) -> Tensor:
    return torch.logsumexp(torch.stack(values), 0)


def clip_loop(image: Tensor, text: Tensor, scale: float) -> Tensor:
    """Eq. 1-2 by loops."""
    b = image.shape[0]
    total_i2t, total_t2i = 0.0, 0.0
    for k in range(b):
        row = [scale * torch.dot(image[k], text[l]) for l in range(b)]
        total_i2t = total_i2t - (row[k] - _lse(row)) / b
        col = [scale * torch.dot(text[k], image[l]) for l in range(b)]
        total_t2i = total_t2i - (col[k] - _lse(col)) / b
    return 0.5 * (total_i2t + total_t2i)


def _real(sentences: Tensor, mask: Tensor, l: int) -> Tensor:
    return sentences[l][mask[l]]


def filip_loop(patches: Tensor, sentences: Tensor, mask: Tensor, scale: float, cfg: LossConfig) -> Tensor:
    """Fine-grained contrastive part of Eq. 5 by loops (honours filip_mask_padded / filip_t2i_over_images)."""
    b = patches.shape[0]

    def i2t(k: int, l: int) -> Tensor:
        sents = _real(sentences, mask, l) if cfg.filip_mask_padded else sentences[l]
        if cfg.filip_mask_padded and len(sents) == 0:
            return torch.zeros((), dtype=patches.dtype)
        per_patch = []
        for i in range(patches.shape[1]):
            sims = [torch.dot(patches[k, i], sents[j]) for j in range(len(sents))]
            if not cfg.filip_mask_padded:  # padded zero slots have similarity exactly 0
                sims = [s if mask[l, j] else torch.zeros((), dtype=patches.dtype) for j, s in enumerate(sims)]
            per_patch.append(max(sims))
        return sum(per_patch) / len(per_patch)

    def t2i(l: int, k: int) -> Tensor:
        sents = _real(sentences, mask, l)
        if len(sents) == 0:
            return torch.zeros((), dtype=patches.dtype)
        best = [max(torch.dot(s, patches[k, i]) for i in range(patches.shape[1])) for s in sents]
        return sum(best) / len(best)

    s_i2t = [[i2t(k, l) for l in range(b)] for k in range(b)]
    s_t2i = [[t2i(l, k) for k in range(b)] for l in range(b)]
    l_i2t = sum(-(scale * s_i2t[k][k] - _lse([scale * v for v in s_i2t[k]])) for k in range(b)) / b
    if cfg.filip_t2i_over_images:
        l_t2i = sum(-(scale * s_t2i[l][l] - _lse([scale * v for v in s_t2i[l]])) for l in range(b)) / b
    else:  # reference defect: for image k, softmax over texts l of s_t2i[l][k]
        l_t2i = (
            sum(-(scale * s_t2i[k][k] - _lse([scale * s_t2i[l][k] for l in range(b)])) for k in range(b)) / b
        )
    return 0.5 * (l_i2t + l_t2i)


def _mlce(scores: list[Tensor], labels: list[bool]) -> Tensor:
    zero = torch.zeros((), dtype=scores[0].dtype)
    neg = [s for s, y in zip(scores, labels) if not y]
    pos = [-s for s, y in zip(scores, labels) if y]
    return _lse([zero] + neg) + _lse([zero] + pos)


def mlce_loop(
    patches: Tensor,
    sentences: Tensor,
    mask: Tensor,
    gaze: Tensor,
    has_gaze: Tensor,
    scale: float,
    cfg: LossConfig,
) -> Tensor:
    """Eq. 4 by loops: summed over the samples with a gazed sentence, divided by b (or by their number)."""
    per_sample = []
    for k in range(patches.shape[0]):
        if not bool(has_gaze[k]):
            continue
        js = [j for j in range(sentences.shape[1]) if mask[k, j] and float(gaze[k, j].sum()) > 0]
        if not js:
            continue
        f = 1.0 if not cfg.mlce_scaled_by_temperature else scale
        x = {
            (j, i): f * torch.dot(sentences[k, j], patches[k, i]) for j in js for i in range(patches.shape[1])
        }
        n = patches.shape[1]
        cut = {j: cfg.mlce_label_min_frac * float(max(gaze[k, j, i] for i in range(n))) for j in js}
        s2p = [
            _mlce([x[j, i] for i in range(n)], [bool(gaze[k, j, i] > cut[j]) for i in range(n)]) for j in js
        ]
        p2s = [_mlce([x[j, i] for j in js], [bool(gaze[k, j, i] > cut[j]) for j in js]) for i in range(n)]
        per_sample.append(cfg.mlce_weight_s2p * sum(s2p) / len(s2p) + cfg.mlce_weight_p2s * sum(p2s) / n)
    if not per_sample:
        return torch.zeros((), dtype=patches.dtype)
    return sum(per_sample) / (len(per_sample) if cfg.mlce_per_gaze_sample else patches.shape[0])


def _omega_row(row: list[float], threshold: float | None) -> list[float]:
    lo, hi = min(row), max(row)
    scaled = [(v - lo) / (hi - lo) if hi > lo else 1.0 for v in row]
    t = 1.0 / len(row) if threshold is None else threshold
    return [v if v >= t else 0.0 for v in scaled]


def _weights_row(x_row: Tensor, g_row: Tensor | None, cfg: LossConfig) -> Tensor:
    """One row of Eq. 6 (x_row over the real columns; g_row the max-scaled gaze or None)."""
    vals = [float(v) for v in x_row]
    if g_row is None:
        w = _omega_row(vals, cfg.egm_threshold)
    elif cfg.egm_gaze_mix == "add":
        w = [a + float(g) for a, g in zip(_omega_row(vals, cfg.egm_threshold), g_row)]
    else:
        mixed = [0.5 * (a + float(g)) for a, g in zip(_omega_row(vals, 0.0), g_row)]
        t = 1.0 / len(vals) if cfg.egm_threshold is None else cfg.egm_threshold
        w = [v if v >= t else 0.0 for v in mixed]
    w = [v + cfg.egm_smoothing for v in w]
    total = sum(w)
    return torch.tensor([v / total for v in w], dtype=x_row.dtype)


def _nce_within(mapped: list[Tensor], target: list[Tensor], scale: float) -> Tensor:
    r = len(mapped)
    if r < 2:
        return torch.zeros((), dtype=target[0].dtype)
    mapped = [v / math.sqrt(float(torch.dot(v, v))) for v in mapped]
    logit = [[scale * torch.dot(mapped[a], target[c]) for c in range(r)] for a in range(r)]
    rows = [-(logit[a][a] - _lse(logit[a])) for a in range(r)]
    cols = [-(logit[c][c] - _lse([logit[a][c] for a in range(r)])) for c in range(r)]
    return sum(0.5 * (u + v) for u, v in zip(rows, cols)) / r


def egm_loop(
    patches: Tensor,
    sentences: Tensor,
    mask: Tensor,
    gaze: Tensor,
    has_gaze: Tensor,
    scale: float,
    cfg: LossConfig,
) -> Tensor:
    """Eq. 6-8 by loops. Weights are rebuilt in Python floats, so this reference carries no gradient."""
    total = 0.0
    b, _, n = gaze.shape
    for k in range(b):
        js = [j for j in range(sentences.shape[1]) if mask[k, j]]
        sents = [sentences[k, j] for j in js]
        pats = [patches[k, i] for i in range(n)]
        gazed = {j: bool(has_gaze[k]) and float(gaze[k, j].sum()) > 0 for j in js}
        gs = {j: gaze[k, j] / gaze[k, j].max() for j in js if gazed[j]}
        x = {(j, i): torch.dot(sentences[k, j], patches[k, i]) for j in js for i in range(n)}
        cross_s = []
        for j in js:  # W^{T2I} row j over patches
            w = _weights_row(torch.stack([x[j, i] for i in range(n)]), gs.get(j), cfg)
            cross_s.append(sum(w[i] * pats[i] for i in range(n)))
        cross_p = []
        for i in range(n):  # W^{I2T} row i over sentences; gaze only on gazed columns
            xr = torch.stack([x[j, i] for j in js]) if js else None
            if xr is None:
                cross_p.append(torch.zeros_like(pats[0]))
                continue
            g = [gs[j][i] if gazed[j] else None for j in js]
            w = _weights_row_mixed(xr, g, cfg)
            cross_p.append(sum(w[a] * sents[a] for a in range(len(js))))
        l_p = _nce_within(cross_p, pats, scale) if js else torch.zeros((), dtype=patches.dtype)
        l_s = _nce_within(cross_s, sents, scale) if len(js) >= 2 else torch.zeros((), dtype=patches.dtype)
        total = total + cfg.egm_weight_patch * l_p + cfg.egm_weight_sentence * l_s
    return total / b


def _weights_row_mixed(x_row: Tensor, g: list[Tensor | None], cfg: LossConfig) -> Tensor:
    """Eq. 6 row where only some columns carry gaze (None = no gaze for that column)."""
    vals = [float(v) for v in x_row]
    t = 1.0 / len(vals) if cfg.egm_threshold is None else cfg.egm_threshold
    if cfg.egm_gaze_mix == "add":
        w = [
            a + (float(gv) if gv is not None else 0.0)
            for a, gv in zip(_omega_row(vals, cfg.egm_threshold), g)
        ]
    else:
        mm = _omega_row(vals, 0.0)
        mixed = [0.5 * (a + float(gv)) if gv is not None else a for a, gv in zip(mm, g)]
        w = [v if v >= t else 0.0 for v in mixed]
    w = [v + cfg.egm_smoothing for v in w]
    total = sum(w)
    return torch.tensor([v / total for v in w], dtype=x_row.dtype)
