"""Two eyes into one gaze point without jumps when one eye drops out, and a check that the eyes agree.

While both eyes are tracked the point is their mean. When one eye is lost the other eye alone sits half the
eye-to-eye offset away from that mean (calibration differs per eye; vergence), so the plain valid eye would make
the point jump by half the offset, and one steady fixation would become three. Here the lone eye is corrected by
half the offset the two eyes last had (the median of the last :data:`OFFSET_SAMPLES` binocular samples), so the
point stays where it was. The combiner carries that offset across chunks (:class:`BinocularCombiner`), so a
stream decoded chunk by chunk gives what the whole recording gives.

Eyes that disagree by more than :data:`DISAGREE_DEG` (median over the binocular samples) get a warning: the mean
then lies between two different places, and a recalibration is due.
"""

from __future__ import annotations

import numpy as np

OFFSET_SAMPLES = 25  # binocular samples the offset is the median of (50 ms at 500 Hz; noise averaged out)
# Eyes more than 2 deg apart: four times the 0.5 deg accuracy trackers state for a good calibration (EyeLink
# 1000 Plus, Tobii Pro Spectrum data sheets), beyond what vergence at a fixed screen explains.
DISAGREE_DEG = 2.0
DISAGREE_SAMPLES = 5000  # binocular samples a live stream's disagreement is the median of (10 s at 500 Hz)


class BinocularCombiner:
    """Combines (n, 2) left/right screen points chunk by chunk, remembering the last offsets between chunks."""

    def __init__(self, offset_samples: int = OFFSET_SAMPLES) -> None:
        self.offset_samples = int(offset_samples)
        self._recent = np.zeros((0, 2))  # last offsets (right - left), px, oldest first
        self._seen = np.zeros((0, 2))  # the last DISAGREE_SAMPLES offsets, for disagreement_deg

    def combine(
        self, x: np.ndarray, y: np.ndarray, ok: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n, 2) coordinates and validity -> combined x, y (NaN where neither eye is valid) and validity."""
        both = ok[:, 0] & ok[:, 1]
        d_now = np.stack([x[both, 1] - x[both, 0], y[both, 1] - y[both, 0]], axis=1)
        history = np.concatenate([self._recent, d_now])
        med = _causal_median(history, self.offset_samples)[len(self._recent) :]  # per binocular sample
        # offset in force at each sample: that of the last binocular sample at or before it (or the carried one)
        k = np.cumsum(both) - 1
        carried = _last_median(self._recent, self.offset_samples)
        offset = np.where((k >= 0)[:, None], med[np.maximum(k, 0)] if med.size else np.nan, carried)
        half = np.nan_to_num(offset / 2.0)  # no offset known yet: the lone eye as it is
        left_only, right_only = ok[:, 0] & ~ok[:, 1], ok[:, 1] & ~ok[:, 0]
        cx = np.where(both, (x[:, 0] + x[:, 1]) / 2, np.nan)
        cy = np.where(both, (y[:, 0] + y[:, 1]) / 2, np.nan)
        cx = np.where(left_only, x[:, 0] + half[:, 0], np.where(right_only, x[:, 1] - half[:, 0], cx))
        cy = np.where(left_only, y[:, 0] + half[:, 1], np.where(right_only, y[:, 1] - half[:, 1], cy))
        self._recent = history[-self.offset_samples :]
        self._seen = np.concatenate([self._seen, d_now])[-DISAGREE_SAMPLES:]
        return cx, cy, ok.any(axis=1)

    def disagreement_deg(self, ppd: tuple[float, float]) -> float:
        """Median distance between the eyes over the last binocular samples, in degrees (NaN if none)."""
        seen = self._seen  # one snapshot: the inlet thread replaces the array while another thread asks
        if not seen.shape[0]:
            return float("nan")
        return float(np.median(np.hypot(seen[:, 0] / ppd[0], seen[:, 1] / ppd[1])))


def _causal_median(values: np.ndarray, n: int) -> np.ndarray:
    """Row-wise median of ``values[max(0, i - n + 1) : i + 1]`` for each i; (m, 2) -> (m, 2)."""
    if values.shape[0] == 0:
        return np.zeros((0, 2))
    padded = np.concatenate([np.full((n - 1, 2), np.nan), values])
    windows = np.lib.stride_tricks.sliding_window_view(padded, n, axis=0)  # (m, 2, n)
    return np.nanmedian(windows, axis=2)


def _last_median(values: np.ndarray, n: int) -> np.ndarray:
    return np.median(values[-n:], axis=0) if values.shape[0] else np.full(2, np.nan)


def eye_disagreement_deg(x: np.ndarray, y: np.ndarray, ok: np.ndarray, ppd: tuple[float, float]) -> float:
    """Median distance between the eyes over the samples where both are valid, in degrees (NaN if none)."""
    both = ok[:, 0] & ok[:, 1]
    if not both.any():
        return float("nan")
    dx = (x[both, 1] - x[both, 0]) / ppd[0]
    dy = (y[both, 1] - y[both, 0]) / ppd[1]
    return float(np.median(np.hypot(dx, dy)))


def disagreement_warning(median_deg: float, threshold_deg: float = DISAGREE_DEG) -> str | None:
    """The warning recorded with a session whose eyes disagree by more than ``threshold_deg`` (else None)."""
    if not np.isfinite(median_deg) or median_deg <= threshold_deg:
        return None
    return (
        f"the two eyes disagree by {median_deg:.1f} deg (median over binocular samples; more than "
        f"{threshold_deg:g} deg): their mean lies between two places; recalibrate, or use one eye"
    )
