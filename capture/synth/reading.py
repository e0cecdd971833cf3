"""Simulated eye-tracker gaze of a radiologist reading one case, in screen pixels.

A reading is planned as *dwells*: time spans during which the eyes visit a set of image points (a
systematic search path, a finding while it is dictated, the heart while its size is dictated, ...).
:func:`plan_fixations` fills each dwell with fixations separated by saccades; :func:`render_gaze` turns that
schedule into tracker samples at a fixed rate through the view transform in force (so zoom/pan is honoured),
adding what real trackers deliver: fixational drift, measurement noise, an accuracy offset, blinks and short
dropouts (invalid samples) and the odd stream outage (a gap with no samples at all).

Constants and their sources:
- fixation durations in chest-radiograph reading: median ~250-300 ms, most 200-400 ms (Kundel, Nodine &
  Krupinski 1989; Manning, Ethell & Donovan 2006);
- saccade duration by the main sequence D = 21 ms + 2.2 ms/deg * amplitude (Carpenter 1988), with a
  minimum-jerk position profile (Flash & Hogan 1985);
- eye-voice lead ~0.6-1.3 s before a naming utterance starts (Griffin & Bock 2000: ~900 ms for picture
  naming);
- spontaneous blinks ~8/min during visual inspection (lower than the ~17/min at rest; Bentivoglio et al.
  1997), lasting 100-300 ms (Stern et al. 1984);
- tracker precision ~0.02-0.03 deg RMS and accuracy ~0.25-0.5 deg (EyeLink 1000 / Tobii Pro data sheets);
  fixational drift diffusion ~0.2-0.3 deg/sqrt(s) (Engbert & Kliegl 2004 report drift amplitudes of a few
  arcmin per 100 ms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radgaze.capture.base.records import (
    GAP_DTYPE,
    GAZE_DTYPE,
    GAZE_GAP_BEFORE,
    GAZE_VALID,
    DisplayGeometry,
)
from radgaze.capture.gazemath.geometry import map_gaze_to_image, ppd_screen, view_index

EYE_VOICE_LEAD_RANGE_S = (0.6, 1.3)  # Griffin & Bock 2000 (module docstring)
SACCADE_BASE_S = 0.021  # Carpenter 1988 main sequence
SACCADE_S_PER_DEG = 0.0022
# Trackers filter their output (EyeLink's heuristic filter, Tobii's moving average) so measurement noise is
# band-limited; ~250 Hz keeps sample-to-sample velocity noise under ~10 deg/s at any rate (an assumption).
NOISE_BANDWIDTH_HZ = 250.0


@dataclass(frozen=True)
class GazeParams:
    """How the simulated eye and tracker behave (defaults and sources: module docstring)."""

    rate_hz: float = 250.0
    fixation_median_s: float = 0.28
    fixation_range_s: tuple[float, float] = (0.15, 0.6)
    dwell_fixation_range_s: tuple[float, float] = (0.2, 0.45)  # fixations on the thing being dictated
    noise_deg: float = 0.02
    drift_deg_per_sqrt_s: float = 0.25
    offset_sd_deg: float = 0.2
    blinks_per_min: float = 8.0
    blink_dur_s: tuple[float, float] = (0.1, 0.3)
    dropouts_per_min: float = 4.0
    dropout_dur_s: tuple[float, float] = (0.01, 0.06)
    outage_p: float = 0.2  # chance per case of one stream outage (no samples at all)
    outage_dur_s: tuple[float, float] = (0.1, 0.4)
    pupil_mm: float = 3.5

    def __post_init__(self) -> None:
        if not 1.0 <= self.rate_hz <= 5000.0:
            raise ValueError(f"rate_hz: expected 1..5000 Hz (trackers run 60-2000 Hz), got {self.rate_hz}")


@dataclass
class Dwell:
    """A span of looking. ``points`` (k, 2) image px candidates; ``ordered`` visits each point once in order
    (a search path; the dwell then ends when the path is done), else points are drawn at random until
    ``t_end``. ``kind`` is informational ("search", "sentence", "wander")."""

    t_start: float
    t_end: float
    points: np.ndarray
    ordered: bool = False
    kind: str = "search"
    long_fixations: bool = False


@dataclass
class FixationSchedule:
    """Planned fixations (the simulated eye's truth, not what a detector finds): times LSL s, image px."""

    t_start: np.ndarray
    t_end: np.ndarray
    x_img_px: np.ndarray
    y_img_px: np.ndarray
    kind: list[str]

    def __len__(self) -> int:
        return int(self.t_start.size)


def fixation_duration_s(rng: np.random.Generator, params: GazeParams, *, long: bool = False) -> float:
    """One fixation duration: log-normal around the median (sd 0.35 in log units), clipped to the range."""
    if long:
        return float(rng.uniform(*params.dwell_fixation_range_s))
    lo, hi = params.fixation_range_s
    return float(np.clip(params.fixation_median_s * np.exp(0.35 * rng.standard_normal()), lo, hi))


def saccade_duration_s(amplitude_deg: float) -> float:
    """Main-sequence saccade duration (Carpenter 1988), clipped to 20-100 ms."""
    return float(np.clip(SACCADE_BASE_S + SACCADE_S_PER_DEG * amplitude_deg, 0.02, 0.1))


def plan_fixations(
    rng: np.random.Generator, dwells: list[Dwell], ppd_img: float, params: GazeParams, *, start_xy=None
) -> tuple[FixationSchedule, float]:
    """Fill dwells (sorted by time) with fixations. A dwell starts with a saccade from the previous fixation;
    an ordered dwell ends when its path is done (later dwells are not moved: a dwell whose start has passed
    starts at once). ``ppd_img`` = image px per degree (for saccade amplitudes). Returns the schedule and the
    time the last fixation ends."""
    fs, fe, xs, ys, kinds = [], [], [], [], []
    prev = np.asarray(start_xy if start_xy is not None else dwells[0].points[0], dtype=float)
    t = dwells[0].t_start if dwells else 0.0
    for dw in dwells:
        t = max(t, dw.t_start)
        pts = np.asarray(dw.points, dtype=float).reshape(-1, 2)
        k = 0
        while True:
            if dw.ordered:
                if k >= len(pts):
                    break
                p = pts[k]
            else:
                if t >= dw.t_end - 0.05:
                    break
                p = pts[rng.integers(len(pts))]
            k += 1
            amp = float(np.hypot(*(p - prev))) / ppd_img
            start = t + saccade_duration_s(amp)
            end = start + fixation_duration_s(rng, params, long=dw.long_fixations)
            if not dw.ordered and end > dw.t_end:
                end = dw.t_end
                if end - start < 0.08:  # too short to be a fixation: hold the previous one instead
                    if fe:
                        fe[-1] = end
                    t = end
                    break
            fs.append(start)
            fe.append(end)
            xs.append(p[0])
            ys.append(p[1])
            kinds.append(dw.kind)
            prev, t = p, end
    sched = FixationSchedule(np.array(fs), np.array(fe), np.array(xs), np.array(ys), kinds)
    return sched, t


def _min_jerk(tau: np.ndarray) -> np.ndarray:
    """Minimum-jerk position profile 0..1 over tau in 0..1 (Flash & Hogan 1985)."""
    tau = np.clip(tau, 0.0, 1.0)
    return tau**3 * (10 - 15 * tau + 6 * tau**2)


def _band_limited(rng: np.random.Generator, t: np.ndarray, scale: float, *, walk: bool) -> np.ndarray:
    """(2, n) noise at times t: white with sd ``scale`` (or, with ``walk``, a random walk of diffusion
    ``scale`` per sqrt(s)) drawn at NOISE_BANDWIDTH_HZ knots and interpolated linearly to the samples."""
    step_s = 1.0 / NOISE_BANDWIDTH_HZ
    knots = np.arange(t[0], t[-1] + 2 * step_s, step_s) if t.size else np.zeros(1)
    if walk:
        v = np.cumsum(rng.normal(0, scale * np.sqrt(step_s), (2, knots.size)), axis=1)
    else:
        v = rng.normal(0, scale, (2, knots.size))
    return np.stack([np.interp(t, knots, v[0]), np.interp(t, knots, v[1])])


def _event_spans(rng: np.random.Generator, t0: float, t1: float, per_min: float, dur_s: tuple[float, float]):
    """Poisson-distributed events in [t0, t1): (start, end) arrays."""
    n = rng.poisson(per_min * (t1 - t0) / 60.0)
    starts = np.sort(rng.uniform(t0, t1, n))
    return starts, starts + rng.uniform(*dur_s, n)


def render_gaze(
    rng: np.random.Generator,
    sched: FixationSchedule,
    view_events: np.ndarray,
    display: DisplayGeometry,
    image_wh: tuple[int, int],
    t0: float,
    t1: float,
    params: GazeParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Tracker samples in [t0, t1) at ``params.rate_hz``: (GAZE_DTYPE array, GAP_DTYPE array).

    Positions: planned fixation (mapped to the screen through the view in force when it starts) + drift +
    noise + a per-case accuracy offset; saccades follow a minimum-jerk path between fixations. Invalid samples
    (blinks, dropouts) carry NaN coordinates and no GAZE_VALID flag; an outage removes samples and is listed
    in the gaps, the first sample after it flagged GAZE_GAP_BEFORE."""
    if len(sched) == 0:
        raise ValueError("render_gaze: expected at least one planned fixation, got none")
    n = int(np.floor((t1 - t0) * params.rate_hz))
    t = t0 + np.arange(n) / params.rate_hz
    x, y, in_fix, jc = _planned_screen_path(sched, view_events, t)
    # drift: a random walk restarted at each fixation's first sample; noise; accuracy offset (degrees). Both
    # are band-limited to NOISE_BANDWIDTH_HZ as trackers' own filters do, so a 2 kHz stream is not noisier
    # in velocity than a 250 Hz one
    walk = _band_limited(rng, t, params.drift_deg_per_sqrt_s, walk=True)
    first = np.searchsorted(t, sched.t_start)[jc]
    drift = (walk - walk[:, np.clip(first, 0, n - 1)]) * in_fix
    ppd_x, ppd_y = ppd_screen(display)
    off = rng.normal(0, params.offset_sd_deg, 2)
    noise = _band_limited(rng, t, params.noise_deg, walk=False)
    x = x + (drift[0] + noise[0] + off[0]) * ppd_x
    y = y + (drift[1] + noise[1] + off[1]) * ppd_y
    valid = _valid_samples(rng, t, t0, t1, params)
    gaze = np.zeros(n, GAZE_DTYPE)
    gaze["t_lsl"] = t
    gaze["x_screen_px"] = np.where(valid, x, np.nan)
    gaze["y_screen_px"] = np.where(valid, y, np.nan)
    gaze["flags"] = np.where(valid, GAZE_VALID, 0)
    # image px and the ON_IMAGE flag exactly as live capture sets them
    gaze = map_gaze_to_image(gaze, view_events, display, *image_wh)
    slow = _band_limited(rng, t, 0.05, walk=True)[0]
    gaze["pupil"] = np.where(valid, params.pupil_mm + slow + rng.normal(0, 0.02, n), np.nan)
    return _cut_outage(rng, gaze, t0, t1, params)


def _planned_screen_path(sched: FixationSchedule, view_events: np.ndarray, t: np.ndarray):
    """Screen position of the plan at times ``t``: each fixation mapped through the view in force when it
    starts, minimum-jerk saccades between them. Returns (x, y, in_fixation, fixation index clipped)."""
    v = view_events[view_index(sched.t_start, view_events)]
    px = sched.x_img_px * v["scale"] + v["offset_x"]
    py = sched.y_img_px * v["scale"] + v["offset_y"]
    j = np.searchsorted(sched.t_start, t, side="right") - 1
    jc = np.clip(j, 0, len(sched) - 1)
    nxt = np.clip(j + 1, 0, len(sched) - 1)
    in_fix = (j >= 0) & (t <= sched.t_end[jc])
    gap = np.maximum(sched.t_start[nxt] - sched.t_end[jc], 1e-9)
    prof = np.where(in_fix | (j < 0) | (j + 1 >= len(sched)), 0.0, _min_jerk((t - sched.t_end[jc]) / gap))
    x = px[jc] + prof * (px[nxt] - px[jc])
    y = py[jc] + prof * (py[nxt] - py[jc])
    return np.where(j < 0, px[0], x), np.where(j < 0, py[0], y), in_fix, jc


def _valid_samples(rng: np.random.Generator, t: np.ndarray, t0: float, t1: float, params: GazeParams):
    """False during blinks and dropouts (Poisson events of the configured rates and durations)."""
    valid = np.ones(t.size, bool)
    for per_min, dur in (
        (params.blinks_per_min, params.blink_dur_s),
        (params.dropouts_per_min, params.dropout_dur_s),
    ):
        s, e = _event_spans(rng, t0, t1, per_min, dur)
        if s.size:
            k = np.searchsorted(s, t, side="right") - 1
            valid &= ~((k >= 0) & (t < e[np.clip(k, 0, None)]))
    return valid


def _cut_outage(rng: np.random.Generator, gaze: np.ndarray, t0: float, t1: float, params: GazeParams):
    """With probability ``outage_p``, drop the samples of one stream outage and record it as a gap."""
    gaps = np.zeros(0, GAP_DTYPE)
    if rng.random() >= params.outage_p or t1 - t0 < 4.0:
        return gaze, gaps
    lost = rng.uniform(t0 + 1.0, t1 - 2.0)
    back = lost + rng.uniform(*params.outage_dur_s)
    keep = (gaze["t_lsl"] < lost) | (gaze["t_lsl"] >= back)
    after = np.searchsorted(gaze["t_lsl"], back)
    if after < gaze.size:
        gaze["flags"][after] |= GAZE_GAP_BEFORE
    gaps = np.array([(lost, back)], GAP_DTYPE)
    return gaze[keep], gaps
