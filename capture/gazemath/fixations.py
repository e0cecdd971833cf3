"""Fixation detection in degrees of visual angle: I-VT and I-DT (Salvucci & Goldberg 2000).

Defaults and their sources:
- I-VT velocity threshold 30 deg/s over a 20 ms window, minimum fixation 60 ms, gap fill 75 ms, merge fixations
  closer than 0.5 deg and 75 ms: Tobii Pro's I-VT fixation filter defaults (Olsen 2012, "The Tobii I-VT Fixation
  Filter": the velocity of a sample is the angle between the first and last sample of a 20 ms window centred on
  it, divided by the window's time).
- I-DT dispersion 1.0 deg, minimum duration 100 ms: Salvucci & Goldberg 2000; also pymovements' defaults.
Both return ``(start_idx, end_idx)`` pairs, inclusive, into the sample arrays.

I-VT runs in stages (:func:`ivt_velocity_deg_s`, :func:`ivt_runs`, :func:`merge_runs`) that the live detector
(capture/gazemath/live_fixations.py) calls on a sliding buffer, and I-DT is one resumable scan (:func:`idt_scan`), so
live and batch detection give the same fixations.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields

import numpy as np

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.base.records import FIXATION_DTYPE, GAZE_VALID, DisplayGeometry
from radgaze.capture.gazemath.geometry import ppd_screen, screen_px_to_deg, screen_to_image

IVT_VELOCITY_DEG_S = 30.0  # Tobii I-VT filter default (Olsen 2012)
IVT_WINDOW_S = 0.020  # Tobii I-VT filter: velocity over a 20 ms window (Olsen 2012)
IVT_MIN_DUR_S = 0.060  # Tobii: discard fixations shorter than 60 ms
IVT_GAP_FILL_S = 0.075  # Tobii: interpolate gaps (e.g. lost samples) up to 75 ms
IVT_MERGE_DEG = 0.5  # Tobii: merge adjacent fixations closer than 0.5 deg ...
IVT_MERGE_S = 0.075  # ... and 75 ms apart
IDT_DISPERSION_DEG = 1.0  # Salvucci & Goldberg 2000; pymovements default
IDT_MIN_DUR_S = 0.100  # Salvucci & Goldberg 2000; pymovements default


def _params_of(cls, params: dict, method: str):
    """A detector's parameter dataclass from ``{name: value}`` (the defaults for the rest); unknown names refused."""
    unknown = set(params) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(
            f"{method} parameters: expected {[f.name for f in fields(cls)]}, got {sorted(unknown)}"
        )
    return cls(**{k: float(v) for k, v in params.items()})


@dataclass(frozen=True)
class IvtParams:
    """The I-VT parameters (defaults above)."""

    velocity_deg_s: float = IVT_VELOCITY_DEG_S
    min_dur_s: float = IVT_MIN_DUR_S
    gap_fill_s: float = IVT_GAP_FILL_S
    merge_deg: float = IVT_MERGE_DEG
    merge_s: float = IVT_MERGE_S
    window_s: float = IVT_WINDOW_S

    @classmethod
    def of(cls, params: dict) -> IvtParams:
        return _params_of(cls, params, "I-VT")


IVT_WINDOW_MAX_MS = 200.0  # a window this long spans whole saccades: refused as a mistake


def add_fixation_options(p: argparse.ArgumentParser) -> None:
    """``--ivt-window-ms`` (the I-VT velocity window), on every command that detects fixations."""
    p.add_argument(
        "--ivt-window-ms",
        type=float,
        default=None,
        help=f"I-VT: a sample's speed over this window, ms (default {IVT_WINDOW_S * 1000:g}, Tobii's I-VT filter; "
        "0 = sample to sample); recorded with the session",
    )


def fixation_params(method: str, ivt_window_ms: float | None) -> dict:
    """The detector parameters the options ask for (``{}``: the defaults), checked in one line."""
    if ivt_window_ms is None:
        return {}
    if method != "ivt":
        raise ConfigError(f"--ivt-window-ms: applies to I-VT fixations, got the {method!r} detector")
    if not 0.0 <= ivt_window_ms <= IVT_WINDOW_MAX_MS:
        raise ConfigError(
            f"--ivt-window-ms: expected 0 to {IVT_WINDOW_MAX_MS:g} ms (Tobii's I-VT filter: "
            f"{IVT_WINDOW_S * 1000:g}), got {ivt_window_ms:g}"
        )
    return {"window_s": ivt_window_ms / 1000.0}


def fixation_settings(method: str, params: dict) -> dict:
    """Every detector parameter in force (the defaults filled in), as sessions record them."""
    if method not in ("ivt", "idt"):
        raise ValueError(f"method: expected 'ivt' or 'idt', got {method!r}")
    return {"method": method, **asdict((IvtParams if method == "ivt" else IdtParams).of(params))}


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive (start, end) indices of runs of True."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return edges[0::2], edges[1::2] - 1


def ivt_velocity_deg_s(
    t: np.ndarray, x: np.ndarray, y: np.ndarray, *, window_s: float, gap_s: float
) -> np.ndarray:
    """Angular speed (deg/s) of each sample of a gap-free-compacted stream (only valid samples, sorted).

    The speed of sample i is the distance between the first and last sample within ``window_s`` centred on it
    (at least its neighbours), divided by their time apart; windows stop at tracking gaps longer than
    ``gap_s``. A sample alone between gaps gets ``inf`` (it can start no fixation). ``window_s = 0``: the
    speed between the neighbours."""
    n = t.size
    if n == 0:
        return np.zeros(0)
    seg = np.concatenate([[0], np.cumsum(np.diff(t) > gap_s)])
    first = np.searchsorted(seg, seg, side="left")  # first index of each sample's segment
    last = np.searchsorted(seg, seg, side="right") - 1
    i = np.arange(n)
    j0 = np.minimum(np.searchsorted(t, t - window_s / 2, side="left"), i - 1)
    j1 = np.maximum(np.searchsorted(t, t + window_s / 2, side="right") - 1, i + 1)
    j0, j1 = np.clip(j0, first, i), np.clip(j1, i, last)
    dt = t[j1] - t[j0]
    dist = np.hypot(x[j1] - x[j0], y[j1] - y[j0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dt > 0, dist / np.where(dt > 0, dt, 1.0), np.inf)


def ivt_runs(t: np.ndarray, slow: np.ndarray, *, gap_fill_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Runs of at least two consecutive slow samples no further apart than ``gap_fill_s``: inclusive
    (start, end) indices into the compacted arrays (before merging and the minimum duration)."""
    if t.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    edge = slow[:-1] & slow[1:] & (np.diff(t) <= gap_fill_s)  # edge i joins samples i and i+1
    s_edge, e_edge = _runs(edge)
    return s_edge.astype(np.int64), (e_edge + 1).astype(np.int64)


def merge_flags(t, x, y, starts, ends, merge_deg: float, merge_s: float) -> np.ndarray:
    """``join[k]``: run k+1 continues run k (starts within ``merge_s`` of its end, centroids within
    ``merge_deg``). Centroids are the plain means of each run's samples."""
    if starts.size < 2:
        return np.zeros(0, bool)
    cx = np.array([x[s : e + 1].mean() for s, e in zip(starts, ends)])
    cy = np.array([y[s : e + 1].mean() for s, e in zip(starts, ends)])
    return (t[starts[1:]] - t[ends[:-1]] <= merge_s) & (np.hypot(np.diff(cx), np.diff(cy)) <= merge_deg)


def merge_runs(starts, ends, join: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs joined where ``join`` says so (see :func:`merge_flags`)."""
    if starts.size < 2:
        return starts, ends
    return starts[np.concatenate([[True], ~join])], ends[np.concatenate([~join, [True]])]


def detect_fixations_ivt(
    t_lsl: np.ndarray,
    x_deg: np.ndarray,
    y_deg: np.ndarray,
    valid: np.ndarray,
    *,
    velocity_deg_s: float = IVT_VELOCITY_DEG_S,
    min_dur_s: float = IVT_MIN_DUR_S,
    gap_fill_s: float = IVT_GAP_FILL_S,
    merge_deg: float = IVT_MERGE_DEG,
    merge_s: float = IVT_MERGE_S,
    window_s: float = IVT_WINDOW_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Velocity-threshold identification. Valid samples slower than ``velocity_deg_s`` (speed over
    ``window_s``; tracking gaps up to ``gap_fill_s`` bridged) form fixations; close neighbours are merged,
    then fixations shorter than ``min_dur_s`` are dropped."""
    idx = np.flatnonzero(valid & np.isfinite(x_deg) & np.isfinite(y_deg))
    t, x, y = t_lsl[idx], x_deg[idx], y_deg[idx]
    slow = ivt_velocity_deg_s(t, x, y, window_s=window_s, gap_s=gap_fill_s) < velocity_deg_s
    starts, ends = ivt_runs(t, slow, gap_fill_s=gap_fill_s)
    starts, ends = merge_runs(starts, ends, merge_flags(t, x, y, starts, ends, merge_deg, merge_s))
    keep = (t[ends] - t[starts]) >= min_dur_s
    return idx[starts[keep]], idx[ends[keep]]


def detect_fixations_idt(
    t_lsl: np.ndarray,
    x_deg: np.ndarray,
    y_deg: np.ndarray,
    valid: np.ndarray,
    *,
    dispersion_deg: float = IDT_DISPERSION_DEG,
    min_dur_s: float = IDT_MIN_DUR_S,
    max_gap_s: float = IVT_GAP_FILL_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Dispersion-threshold identification: a window of at least ``min_dur_s`` whose dispersion
    ``(max x - min x) + (max y - min y)`` is within ``dispersion_deg`` grows while it stays within it."""
    idx = np.flatnonzero(valid & np.isfinite(x_deg) & np.isfinite(y_deg))
    p = IdtParams(dispersion_deg, min_dur_s, max_gap_s)
    s, e, _ = idt_scan(t_lsl[idx], x_deg[idx], y_deg[idx], p, final=True)
    return idx[s], idx[e]


@dataclass(frozen=True)
class IdtParams:
    """The I-DT parameters (defaults above)."""

    dispersion_deg: float = IDT_DISPERSION_DEG
    min_dur_s: float = IDT_MIN_DUR_S
    max_gap_s: float = IVT_GAP_FILL_S

    @classmethod
    def of(cls, params: dict) -> IdtParams:
        return _params_of(cls, params, "I-DT")


def idt_scan(
    t: np.ndarray, x: np.ndarray, y: np.ndarray, p: IdtParams, *, start: int = 0, final: bool = True
) -> tuple[np.ndarray, np.ndarray, int]:
    """The I-DT scan over compacted valid samples from index ``start``: ``(starts, ends, resume)``.

    One implementation for the batch run (``final``: the data end here) and the live detector (not ``final``:
    more samples may come). The scan moves left to right and a decision at sample i depends only on samples
    from i on, so it stops (``resume``) where a decision needs samples not yet seen: a minimum-duration window
    not yet full, or a fixation still growing at the end of the data; a later call from ``resume`` with more
    samples goes on exactly as one call over all of them would. A fixation never spans a tracking gap longer
    than ``max_gap_s``: the stream is cut into segments there."""
    n = t.size
    gaps = np.flatnonzero(np.diff(t) > p.max_gap_s)  # gap k lies between samples gaps[k] and gaps[k] + 1
    starts: list[int] = []
    ends: list[int] = []
    i = start
    while i < n:
        k = int(np.searchsorted(gaps, i))
        last, closed = (int(gaps[k]), True) if k < gaps.size else (n - 1, final)  # i's segment
        j = int(np.searchsorted(t, t[i] + p.min_dur_s, side="left"))
        if j > last:  # no full window left in the segment
            if not closed:
                break
            i = last + 1
            continue
        if np.ptp(x[i : j + 1]) + np.ptp(y[i : j + 1]) > p.dispersion_deg:
            i += 1
            continue
        end = _idt_grow(x, y, i, last, p.dispersion_deg)
        if end is None and not closed:  # still within the threshold at the newest sample: in progress
            break
        ends.append(last if end is None else end)
        starts.append(i)
        i = ends[-1] + 1
    return np.asarray(starts, np.int64), np.asarray(ends, np.int64), i


def _idt_grow(x: np.ndarray, y: np.ndarray, i: int, last: int, dispersion_deg: float) -> int | None:
    """The last sample from i (up to ``last``) before the running dispersion first exceeds the threshold; None
    when it never does up to ``last``."""
    xs, ys = x[i : last + 1], y[i : last + 1]
    disp = (np.maximum.accumulate(xs) - np.minimum.accumulate(xs)) + (
        np.maximum.accumulate(ys) - np.minimum.accumulate(ys)
    )
    over = np.flatnonzero(disp > dispersion_deg)
    return i + int(over[0]) - 1 if over.size else None


def fixations_from_gaze(
    gaze: np.ndarray,
    view_events: np.ndarray,
    display: DisplayGeometry,
    *,
    method: str = "ivt",
    **params: float,
) -> np.ndarray:
    """Detect fixations in screen-space gaze and map their centroids to image px (FIXATION_DTYPE).

    ``ppd_img`` is image pixels per degree at the fixation's time: screen ppd divided by the view's scale
    (so heatmap sigma follows the zoom)."""
    if method not in ("ivt", "idt"):
        raise ValueError(f"method: expected 'ivt' or 'idt', got {method!r}")
    if gaze.size == 0:
        return np.zeros(0, FIXATION_DTYPE)
    x_deg, y_deg = screen_px_to_deg(gaze["x_screen_px"], gaze["y_screen_px"], display)
    valid = (gaze["flags"] & GAZE_VALID).astype(bool)
    detect = detect_fixations_ivt if method == "ivt" else detect_fixations_idt
    s, e = detect(gaze["t_lsl"], x_deg, y_deg, valid, **params)
    return fixations_rows(gaze, s, e, valid, view_events, display)


def fixations_rows(gaze, s, e, valid, view_events, display) -> np.ndarray:
    """FIXATION_DTYPE rows for the fixations ``gaze[s[k] : e[k] + 1]`` (centroids of their valid samples)."""
    out = np.zeros(s.size, FIXATION_DTYPE)
    if s.size == 0:
        return out
    out["t_start"], out["t_end"] = gaze["t_lsl"][s], gaze["t_lsl"][e]
    out["x_screen_px"] = _slice_means(np.where(valid, gaze["x_screen_px"], 0.0), valid, s, e)
    out["y_screen_px"] = _slice_means(np.where(valid, gaze["y_screen_px"], 0.0), valid, s, e)
    t_mid = (out["t_start"] + out["t_end"]) / 2
    x_img, y_img, scale = screen_to_image(out["x_screen_px"], out["y_screen_px"], t_mid, view_events)
    out["x_img_px"], out["y_img_px"] = x_img, y_img
    out["ppd_img"] = float(np.sqrt(np.prod(ppd_screen(display)))) / scale
    return out


def _slice_means(values: np.ndarray, valid: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Mean of ``values[s:e+1]`` over valid samples, per slice. Each slice is summed on its own (no running
    sum over the whole array), so a fixation's centroid does not depend on what else the array holds: the live
    detector's buffer and the batch run give the same number."""
    bounds = np.stack([s, e + 1], axis=1).ravel()
    v = np.append(values.astype(np.float64), 0.0)
    n = np.append(valid.astype(np.float64), 0.0)
    return np.add.reduceat(v, bounds)[0::2] / np.add.reduceat(n, bounds)[0::2]


def fixation_agreement(
    a_start: np.ndarray,
    a_end: np.ndarray,
    a_xy: np.ndarray,
    b_start: np.ndarray,
    b_end: np.ndarray,
    b_xy: np.ndarray,
    *,
    min_iou: float = 0.5,
) -> dict:
    """How well fixations ``a`` (detected) agree with reference fixations ``b`` (another detector's).

    A pair matches when their time spans overlap by at least ``min_iou`` of their union (intersection over
    union), one to one, best overlap first. Returns precision (matched / len(a)), recall (matched / len(b)),
    the counts and the median centroid distance of matched pairs (in the units of ``*_xy``, (n, 2))."""
    inter = np.minimum(a_end[:, None], b_end[None, :]) - np.maximum(a_start[:, None], b_start[None, :])
    union = np.maximum(a_end[:, None], b_end[None, :]) - np.minimum(a_start[:, None], b_start[None, :])
    iou = np.where(union > 0, np.maximum(inter, 0.0) / np.where(union > 0, union, 1.0), 0.0)
    pairs = []
    used_a, used_b = set(), set()
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), iou.shape[1]) if iou.size else (0, 0)
        if iou[i, j] < min_iou:
            break
        if i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    n_a, n_b, n = len(a_start), len(b_start), len(pairs)
    dist = [float(np.hypot(*(a_xy[i] - b_xy[j]))) for i, j in pairs]
    return {
        "n_detected": n_a,
        "n_reference": n_b,
        "n_matched": n,
        "precision": n / n_a if n_a else float("nan"),
        "recall": n / n_b if n_b else float("nan"),
        "median_centroid_distance": float(np.median(dist)) if dist else float("nan"),
    }
