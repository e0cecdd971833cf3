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
        keep_empty = cfg.mlce_empty_rows_negative
        js = [
            j for j in range(sentences.shape[1]) if mask[k, j] and (keep_empty or float(gaze[k, j].sum()) > 0)
        ]
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


def _threshold(n_cols: int, threshold: float | None) -> float:
    return 1.0 / n_cols if threshold is None else threshold


def _minmax_row(row: list[float]) -> list[float]:
    lo, hi = min(row), max(row)
    return [(v - lo) / (hi - lo) if hi > lo else 1.0 for v in row]


def _weights_row(vals: list[float], g: list[float] | None, cfg: LossConfig, mix: str) -> list[float]:
    """One row of Eq. 6 over the real columns: g = max-scaled gaze of each column, None for a sample
    without gaze."""
    no_gaze_t = cfg.egm_threshold if cfg.egm_no_gaze_threshold is None else cfg.egm_no_gaze_threshold
    t = _threshold(len(vals), cfg.egm_threshold if g is not None else no_gaze_t)
    mm = _minmax_row(vals)
    if mix == "add" or g is None:
        w = [v if v >= t else 0.0 for v in mm]  # omega: sparse ...
        if cfg.egm_omega == "binary":
            w = [1.0 if v > 0 else 0.0 for v in w]  # ... and binarise
        if g is not None:
            w = [a + b for a, b in zip(w, g)]
    else:
        mixed = [0.5 * (a + b) if mix == "mean" else a + 0.5 * b for a, b in zip(mm, g)]
        w = [v if v >= t else 0.0 for v in mixed]
    w = [v + cfg.egm_smoothing for v in w]
    total = sum(w)
    return [v / total if total > 0 else 0.0 for v in w]  # a row with nothing kept maps to 0


def _unit(v: Tensor) -> Tensor:
    return v / math.sqrt(float(torch.dot(v, v)))


def _nce_within(mapped: list[Tensor], target: list[Tensor], scale: float) -> Tensor:
    r = len(mapped)
    logit = [[scale * torch.dot(mapped[a], target[c]) for c in range(r)] for a in range(r)]
    rows = [-(logit[a][a] - _lse(logit[a])) for a in range(r)]
    cols = [-(logit[c][c] - _lse([logit[a][c] for a in range(r)])) for c in range(r)]
    return sum(0.5 * (u + v) for u, v in zip(rows, cols)) / r


def _egm_sample(
    pats: list[Tensor], sents: list[Tensor], g: list[list[float]] | None, scale: float, cfg: LossConfig
):
    """(patch-side, sentence-side) EGM loss of one sample with >= 1 sentence; g[j][i] = gaze or None."""
    n, m = len(pats), len(sents)
    x = [[float(torch.dot(sents[j], pats[i])) for i in range(n)] for j in range(m)]
    cross_s = []
    for j in range(m):  # W^{T2I} row j over patches
        w = _weights_row(x[j], None if g is None else g[j], cfg, cfg.egm_gaze_mix)
        cross_s.append(sum(w[i] * pats[i] for i in range(n)))
    cross_p = []
    for i in range(n):  # W^{I2T} row i over sentences
        gi = None if g is None else [g[j][i] for j in range(m)]
        w = _weights_row([x[j][i] for j in range(m)], gi, cfg, cfg.egm_gaze_mix_patch or cfg.egm_gaze_mix)
        cross_p.append(sum(w[j] * sents[j] for j in range(m)))
    if cfg.egm_normalize_mapped:
        cross_p, cross_s = [_unit(v) for v in cross_p], [_unit(v) for v in cross_s]
    zero = torch.zeros((), dtype=pats[0].dtype)
    if m == 1:
        if cfg.egm_single_sentence == "mse":
            return zero, sum((cross_s[0][d] - sents[0][d]) ** 2 for d in range(len(sents[0])))
        return zero, zero
    return _nce_within(cross_p, pats, scale), _nce_within(cross_s, sents, scale)


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
        if not js:
            continue
        g = None
        if bool(has_gaze[k]):
            peak = {j: float(gaze[k, j].max()) for j in js}
            g = [[float(gaze[k, j, i]) / peak[j] if peak[j] > 0 else 0.0 for i in range(n)] for j in js]
        l_p, l_s = _egm_sample(
            [patches[k, i] for i in range(n)], [sentences[k, j] for j in js], g, scale, cfg
        )
        wp, ws = (cfg.egm_weight_patch, cfg.egm_weight_sentence)
        if g is None and cfg.egm_no_gaze_weights is not None:
            wp, ws = cfg.egm_no_gaze_weights
        total = total + wp * l_p + ws * l_s
    return torch.as_tensor(total / b, dtype=patches.dtype)
