"""A tiny synthetic scanpath (fixations, saccades, blinks) in screen pixels, for sim-tracker's fallback.

Not a model of radiologist reading (radgaze.capture.synth does that); just gaze that looks like gaze: fixations of
180-450 ms (typical scene-viewing fixation durations, Rayner 1998 / 2009 review: mean ~ 300 ms), 40 ms linear
saccades, ~0.1 deg fixational jitter, a 150 ms blink about every 4 s (blink durations 100-400 ms, spontaneous
rate ~ 15/min; Stern et al. 1984).
"""

from __future__ import annotations

import numpy as np

from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry

FIX_DUR_RANGE_S = (0.18, 0.45)
SACCADE_S = 0.04
JITTER_PX = 4.0  # ~0.1 deg at the default display (~40 px/deg)
BLINK_EVERY_S = 4.0
BLINK_S = 0.15


def synthetic_scanpath(seed: int, duration_s: float, rate_hz: float, display: DisplayGeometry) -> np.ndarray:
    """GAZE_DTYPE (n,) with t_lsl from 0 at ``rate_hz``; x/y_screen_px, pupil (mm); blinks flagged invalid."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(duration_s * rate_hz)))
    t = np.arange(n) / rate_hz
    n_fix = int(duration_s / (FIX_DUR_RANGE_S[0] + SACCADE_S)) + 2
    dur = rng.uniform(*FIX_DUR_RANGE_S, n_fix)
    starts = np.concatenate([[0.0], np.cumsum(dur + SACCADE_S)[:-1]])
    w, h = display.screen_w_px, display.screen_h_px
    px = rng.uniform(0.1 * w, 0.9 * w, n_fix)
    py = rng.uniform(0.1 * h, 0.9 * h, n_fix)
    k = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, n_fix - 1)
    into = t - starts[k]
    frac = np.clip((into - dur[k]) / SACCADE_S, 0.0, 1.0)  # 0 while fixating, ramps to 1 over the saccade
    k1 = np.minimum(k + 1, n_fix - 1)
    out = np.zeros(n, GAZE_DTYPE)
    out["t_lsl"] = t
    out["x_screen_px"] = px[k] + frac * (px[k1] - px[k]) + rng.normal(0, JITTER_PX, n)
    out["y_screen_px"] = py[k] + frac * (py[k1] - py[k]) + rng.normal(0, JITTER_PX, n)
    out["x_img_px"] = np.nan
    out["y_img_px"] = np.nan
    out["pupil"] = 3.5 + 0.2 * np.sin(2 * np.pi * t / 7.0)
    blink = (t % BLINK_EVERY_S) > (BLINK_EVERY_S - BLINK_S)
    out["flags"] = np.where(blink, 0, GAZE_VALID)
    out["x_screen_px"][blink] = np.nan
    out["y_screen_px"][blink] = np.nan
    out["pupil"][blink] = np.nan
    return out
