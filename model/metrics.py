"""Saliency agreement between model attention and radiologist heatmaps (pure numpy).

Definitions follow Bylinskii et al., "What do different evaluation metrics tell us about saliency
models?" (IEEE TPAMI 2018), as in the MIT saliency benchmark:

* ``cc(a, b)``: Pearson correlation of the two maps.
* ``nss(saliency, fixation_mask)``: mean of the standardised saliency at fixated pixels.
* ``kld(p, q)``: KL(p || q) of the sum-normalised maps, with epsilon; the benchmark's KLD of a model map
  is ``kld(ground_truth, saliency)``.
* ``sim(a, b)``: sum of pixelwise minima of the sum-normalised maps.
* ``auc_judd(saliency, fixation_mask)``: ROC area with fixated pixels as positives and thresholds at the
  saliency values of the fixated pixels.
* ``pointing_game(saliency, mask)``: whether the saliency maximum falls inside the mask.
"""

from __future__ import annotations

import numpy as np

EPS = 2.220446049250313e-16  # numpy float64 machine epsilon, the benchmark code's eps


def _check_pair(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def _normalise_sum(a: np.ndarray) -> np.ndarray:
    total = a.sum()
    return a / total if total > 0 else a


def cc(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation coefficient of two maps of equal shape (0 if either is constant)."""
    a, b = _check_pair(a, b, ("a", "b"))
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def nss(saliency: np.ndarray, fixation_mask: np.ndarray) -> float:
    """Normalised scanpath saliency: mean of (saliency - mean) / std over fixated pixels."""
    s, f = _check_pair(saliency, fixation_mask, ("saliency", "fixation_mask"))
    fix = f > 0
    if not fix.any():
        raise ValueError("nss: fixation_mask has no fixated pixel")
    std = s.std()
    z = (s - s.mean()) / std if std > 0 else np.zeros_like(s)
    return float(z[fix].mean())


def kld(p: np.ndarray, q: np.ndarray, eps: float = EPS) -> float:
    """KL(p || q) = sum p log(eps + p / (q + eps)) of the sum-normalised maps (nats)."""
    p, q = _check_pair(p, q, ("p", "q"))
    p, q = _normalise_sum(p), _normalise_sum(q)
    return float((p * np.log(eps + p / (q + eps))).sum())


def sim(a: np.ndarray, b: np.ndarray) -> float:
    """Similarity (histogram intersection) of the sum-normalised maps, in [0, 1]."""
    a, b = _check_pair(a, b, ("a", "b"))
    return float(np.minimum(_normalise_sum(a), _normalise_sum(b)).sum())


def auc_judd(saliency: np.ndarray, fixation_mask: np.ndarray) -> float:
    """AUC-Judd: thresholds at the saliency of each fixated pixel; TPR = fixated pixels at or above it,
    FPR = other pixels at or above it; the curve runs from (0, 0) to (1, 1), trapezoid area."""
    s, f = _check_pair(saliency, fixation_mask, ("saliency", "fixation_mask"))
    s, fix = s.ravel(), f.ravel() > 0
    n_fix, n_pix = int(fix.sum()), s.size
    if n_fix == 0 or n_fix == n_pix:
        raise ValueError("auc_judd: need at least one fixated and one non-fixated pixel")
    thresholds = np.sort(s[fix])[::-1]
    sorted_all = np.sort(s)
    above_all = n_pix - np.searchsorted(sorted_all, thresholds, side="left")  # pixels >= threshold
    sorted_fix = np.sort(s[fix])
    above_fix = n_fix - np.searchsorted(sorted_fix, thresholds, side="left")
    tpr = np.concatenate([[0.0], above_fix / n_fix, [1.0]])
    fpr = np.concatenate([[0.0], (above_all - above_fix) / (n_pix - n_fix), [1.0]])
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2.0))


def pointing_game(saliency: np.ndarray, mask: np.ndarray) -> bool:
    """True when a pixel of maximal saliency lies inside ``mask`` (first maximum in row-major order)."""
    s, m = _check_pair(saliency, mask, ("saliency", "mask"))
    return bool(m.ravel()[int(np.argmax(s))] > 0)
