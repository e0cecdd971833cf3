"""Fixation detection in degrees of visual angle: I-VT and I-DT (Salvucci & Goldberg 2000).

Defaults and their sources:
- I-VT velocity threshold 30 deg/s, minimum fixation 60 ms, gap fill 75 ms, merge fixations closer than 0.5 deg
  and 75 ms: Tobii Pro's I-VT fixation filter defaults (Olsen 2012, "The Tobii I-VT Fixation Filter").
- I-DT dispersion 1.0 deg, minimum duration 100 ms: Salvucci & Goldberg 2000; also pymovements' defaults.
Both return ``(start_idx, end_idx)`` pairs, inclusive, into the sample arrays.
"""

from __future__ import annotations

import numpy as np

from radgaze.capture.gazemath.geometry import ppd_screen, screen_px_to_deg, screen_to_image
from radgaze.capture.records import FIXATION_DTYPE, GAZE_VALID, DisplayGeometry

IVT_VELOCITY_DEG_S = 30.0  # Tobii I-VT filter default (Olsen 2012)
IVT_MIN_DUR_S = 0.060  # Tobii: discard fixations shorter than 60 ms
IVT_GAP_FILL_S = 0.075  # Tobii: interpolate gaps (e.g. lost samples) up to 75 ms
IVT_MERGE_DEG = 0.5  # Tobii: merge adjacent fixations closer than 0.5 deg ...
IVT_MERGE_S = 0.075  # ... and 75 ms apart
IDT_DISPERSION_DEG = 1.0  # Salvucci & Goldberg 2000; pymovements default
IDT_MIN_DUR_S = 0.100  # Salvucci & Goldberg 2000; pymovements default


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive (start, end) indices of runs of True."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return edges[0::2], edges[1::2] - 1


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
) -> tuple[np.ndarray, np.ndarray]:
    """Velocity-threshold identification. Samples below ``velocity_deg_s`` (point-to-point velocity between
    consecutive valid samples, gaps up to ``gap_fill_s`` bridged) form fixations; short neighbours are merged,
    then fixations shorter than ``min_dur_s`` are dropped."""
    idx = np.flatnonzero(valid & np.isfinite(x_deg) & np.isfinite(y_deg))
    if idx.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    t, x, y = t_lsl[idx], x_deg[idx], y_deg[idx]
    dt = np.diff(t)
    speed = np.hypot(np.diff(x), np.diff(y)) / np.maximum(dt, 1e-6)
    slow = (speed < velocity_deg_s) & (dt <= gap_fill_s)  # edge i joins samples i and i+1
    s_edge, e_edge = _runs(slow)
    starts, ends = s_edge, e_edge + 1  # sample indices into idx
    starts, ends = _merge_close(t, x, y, starts, ends, merge_deg, merge_s)
    keep = (t[ends] - t[starts]) >= min_dur_s
    return idx[starts[keep]], idx[ends[keep]]


def _merge_close(t, x, y, starts, ends, merge_deg, merge_s):
    if starts.size < 2:
        return starts, ends
    cx = np.array([x[s : e + 1].mean() for s, e in zip(starts, ends)])
    cy = np.array([y[s : e + 1].mean() for s, e in zip(starts, ends)])
    join = (t[starts[1:]] - t[ends[:-1]] <= merge_s) & (np.hypot(np.diff(cx), np.diff(cy)) <= merge_deg)
    keep_start = np.concatenate([[True], ~join])
    keep_end = np.concatenate([~join, [True]])
    return starts[keep_start], ends[keep_end]


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
    t, x, y = t_lsl[idx], x_deg[idx], y_deg[idx]
    n = idx.size
    # a fixation never spans a tracking gap longer than max_gap_s: cut the stream into segments there
    seg_end = np.concatenate([np.flatnonzero(np.diff(t) > max_gap_s), [n - 1]]) if n else np.zeros(0, int)
    starts: list[int] = []
    ends: list[int] = []
    seg_start = 0
    for last in seg_end:
        _idt_segment(t, x, y, seg_start, int(last), dispersion_deg, min_dur_s, starts, ends)
        seg_start = int(last) + 1
    s, e = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    return idx[s], idx[e]


def _idt_segment(t, x, y, i, last, dispersion_deg, min_dur_s, starts, ends) -> None:
    while i <= last:
        j = int(np.searchsorted(t, t[i] + min_dur_s, side="left"))
        if j > last:
            return
        if np.ptp(x[i : j + 1]) + np.ptp(y[i : j + 1]) > dispersion_deg:
            i += 1
            continue
        # grow: running extent from i, first sample that breaks the threshold
        xs, ys = x[i : last + 1], y[i : last + 1]
        disp = (np.maximum.accumulate(xs) - np.minimum.accumulate(xs)) + (
            np.maximum.accumulate(ys) - np.minimum.accumulate(ys)
        )
        over = np.flatnonzero(disp > dispersion_deg)
        j = i + (int(over[0]) - 1 if over.size else len(xs) - 1)
        starts.append(i)
        ends.append(j)
        i = j + 1


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
    return _fixation_rows(gaze, s, e, valid, view_events, display)


def _fixation_rows(gaze, s, e, valid, view_events, display) -> np.ndarray:
    out = np.zeros(s.size, FIXATION_DTYPE)
    if s.size == 0:
        return out
    xs = np.where(valid, gaze["x_screen_px"], 0.0).astype(np.float64)
    ys = np.where(valid, gaze["y_screen_px"], 0.0).astype(np.float64)
    cx, cy, cn = (np.concatenate([[0.0], np.cumsum(a)]) for a in (xs, ys, valid.astype(np.float64)))
    n = cn[e + 1] - cn[s]
    out["t_start"], out["t_end"] = gaze["t_lsl"][s], gaze["t_lsl"][e]
    out["x_screen_px"] = (cx[e + 1] - cx[s]) / n
    out["y_screen_px"] = (cy[e + 1] - cy[s]) / n
    t_mid = (out["t_start"] + out["t_end"]) / 2
    x_img, y_img, scale = screen_to_image(out["x_screen_px"], out["y_screen_px"], t_mid, view_events)
    out["x_img_px"], out["y_img_px"] = x_img, y_img
    out["ppd_img"] = float(np.sqrt(np.prod(ppd_screen(display)))) / scale
    return out
