"""Live fixation detection over a sliding buffer of screen-space gaze, for the live pipeline of one case
(capture/live/pipeline.py, which writes the session). Single-threaded: the recorder thread owns it.
Nothing here blocks on a device or draws.
"""

from __future__ import annotations

import numpy as np

from radgaze.capture.base.records import FIXATION_DTYPE, GAZE_DTYPE, GAZE_VALID, DisplayGeometry
from radgaze.capture.gazemath.fixations import (
    IdtParams,
    IvtParams,
    fixations_rows,
    idt_scan,
    ivt_runs,
    ivt_velocity_deg_s,
    merge_flags,
    merge_runs,
)
from radgaze.capture.gazemath.geometry import screen_px_to_deg


class LiveFixationDetector:
    """Incremental fixation detection over a sliding buffer of screen-space gaze.

    I-VT (the default) gives exactly the batch detector's fixations on the same samples
    (:func:`~radgaze.capture.gazemath.fixations.fixations_from_gaze`): a fixation is emitted only once nothing
    still to come can change it (the run after it is complete and not merged with it, or no run can start
    within the merge gap), and the buffer keeps one velocity window of the past, so every sample is classified
    as in the batch run. I-DT resumes the batch scan (:func:`~radgaze.capture.gazemath.fixations.idt_scan`)
    where it had to wait for samples, so it too gives exactly the batch fixations."""

    def __init__(self, display: DisplayGeometry, *, method: str = "ivt", **params: float):
        if method not in ("ivt", "idt"):
            raise ValueError(f"method: expected 'ivt' or 'idt', got {method!r}")
        self.display, self.method, self.params = display, method, params
        self._buf = np.zeros(0, GAZE_DTYPE)
        self._exact_from = -np.inf  # buffer samples before this time are settled: never part of a new run
        self.horizon_lsl = -np.inf  # every fixation ending before this time has been emitted

    def push(self, gaze: np.ndarray, view_events: np.ndarray) -> np.ndarray:
        """Add samples; return the fixations that became final (FIXATION_DTYPE)."""
        if gaze.size:
            self._buf = np.concatenate([self._buf, gaze])
        if self._buf.size == 0:
            return np.zeros(0, FIXATION_DTYPE)
        if self.method == "idt":
            return self._emit_idt(view_events, final=False)
        return self._emit_ivt(view_events, final=False)

    def flush(self, view_events: np.ndarray) -> np.ndarray:
        """Emit everything left (end of the case)."""
        if self._buf.size == 0:
            return np.zeros(0, FIXATION_DTYPE)
        if self.method == "idt":
            return self._emit_idt(view_events, final=True)
        return self._emit_ivt(view_events, final=True)

    def _emit_ivt(self, view_events: np.ndarray, *, final: bool) -> np.ndarray:
        p = IvtParams.of(self.params)
        g = self._buf
        x_deg, y_deg = screen_px_to_deg(g["x_screen_px"], g["y_screen_px"], self.display)
        valid = (g["flags"] & GAZE_VALID).astype(bool) & np.isfinite(x_deg) & np.isfinite(y_deg)
        idx = np.flatnonzero(valid)
        t, x, y = g["t_lsl"][idx], x_deg[idx], y_deg[idx]
        speed = ivt_velocity_deg_s(t, x, y, window_s=p.window_s, gap_s=p.gap_fill_s)
        slow = (speed < p.velocity_deg_s) & (t >= self._exact_from)
        starts, ends = ivt_runs(t, slow, gap_fill_s=p.gap_fill_s)
        join = merge_flags(t, x, y, starts, ends, p.merge_deg, p.merge_s)
        n_final, settled_s = _settled_runs(t, starts, ends, join, p, final=final)
        s, e = merge_runs(starts[:n_final], ends[:n_final], join[: max(n_final - 1, 0)])
        keep = (t[e] - t[s]) >= p.min_dur_s
        out = fixations_rows(g, idx[s[keep]], idx[e[keep]], valid, view_events, self.display)
        self._settle(settled_s, max(p.window_s, p.gap_fill_s))
        if n_final < starts.size:  # an open run may still grow back to where speeds are unfixed
            frontier = float(t[-1]) - p.window_s / 2 - p.gap_fill_s
            self.horizon_lsl = max(self.horizon_lsl, min(float(t[starts[n_final]]), frontier))
        else:
            self.horizon_lsl = max(self.horizon_lsl, settled_s)
        return out

    def _settle(self, settled_s: float, history_s: float) -> None:
        """Samples up to ``settled_s`` take part in no new fixation; keep ``history_s`` before it (the velocity
        window of the samples after it reaches back that far)."""
        if settled_s <= self._exact_from:
            return
        self._exact_from = np.nextafter(settled_s, np.inf)
        t = self._buf["t_lsl"]
        self._buf = self._buf[np.searchsorted(t, settled_s - history_s - 1e-9, side="left") :]

    def _emit_idt(self, view_events: np.ndarray, *, final: bool) -> np.ndarray:
        """The I-DT scan over the buffer (which starts where the last scan stopped); the buffer then keeps only
        the samples from where it stopped again (no decision ever looks back)."""
        g = self._buf
        x_deg, y_deg = screen_px_to_deg(g["x_screen_px"], g["y_screen_px"], self.display)
        valid = (g["flags"] & GAZE_VALID).astype(bool)
        idx = np.flatnonzero(valid & np.isfinite(x_deg) & np.isfinite(y_deg))
        s, e, resume = idt_scan(
            g["t_lsl"][idx], x_deg[idx], y_deg[idx], IdtParams.of(self.params), final=final
        )
        out = fixations_rows(g, idx[s], idx[e], valid, view_events, self.display)
        if resume < idx.size:
            self._buf = g[idx[resume] :]
            self.horizon_lsl = max(self.horizon_lsl, float(g["t_lsl"][idx[resume]]))
        else:  # every sample decided: what comes later starts after the newest one
            self._buf = g[:0]
            self.horizon_lsl = max(self.horizon_lsl, float(np.nextafter(g["t_lsl"][-1], np.inf)))
        return out


def _settled_runs(t, starts, ends, join, p: IvtParams, *, final: bool) -> tuple[int, float]:
    """How many leading runs are settled (their merge groups can no longer change), and the time up to which
    the stream is settled (the last settled group's end, or the latest time no new run can reach back to).

    A sample's speed is fixed once the stream is half a window past it and its successor has come; a run is
    complete when the sample after its end is fixed; a group is settled when its last run is complete and the
    next run is complete and not joined, or when no run can still start within ``merge_s`` of its end."""
    n = starts.size
    if t.size == 0:
        return 0, -np.inf
    if final:
        return n, float(t[-1])
    fixed_until = t[-1] - p.window_s / 2  # samples at or before this time (with a successor) are classified
    # a run still to come starts at a slow sample whose successor is not fixed yet: after this time
    next_start_after = fixed_until - p.gap_fill_s
    complete = (ends + 1 < t.size) & (t[np.minimum(ends + 1, t.size - 1)] <= fixed_until)
    n_settled, settled_s = 0, -np.inf
    k = 0
    while k < n:
        g_end = k
        while g_end + 1 < n and complete[g_end] and complete[g_end + 1] and join[g_end]:
            g_end += 1
        if not complete[g_end]:
            break
        nxt_ok = g_end + 1 < n and complete[g_end + 1] and not join[g_end]
        if not (nxt_ok or (g_end + 1 == n and t[ends[g_end]] + p.merge_s < next_start_after)):
            break
        n_settled, settled_s, k = g_end + 1, float(t[ends[g_end]]), g_end + 1
    if n_settled == n:  # no run pending: nothing before the earliest possible new start can join a run
        settled_s = max(settled_s, next_start_after - np.finfo(float).eps * abs(next_start_after))
    return n_settled, settled_s
