"""What a replay frame shows at a time (Qt-free): :func:`frame_at` and the lookups it is made of, which the
replay window, its timeline and the video renderer all draw from.

Lookups follow pupil Player's ``find_closest`` habit: ``np.searchsorted`` on sorted LSL times, never a loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radgaze.capture.base.records import CaseRecord, Sentences, Words

SCANPATH_TRAIL_S = 3.0  # seconds of scanpath drawn behind the current time (radgaze's choice)


# ------------------------------------------------------------------------------------------ lookups
def span_at(t_start: np.ndarray, t_end: np.ndarray, t: float) -> int:
    """Index of the span (sorted by start) holding ``t`` (start <= t <= end), else -1."""
    i = int(np.searchsorted(t_start, t, side="right")) - 1
    return i if i >= 0 and t <= t_end[i] else -1


def word_at(words: Words, t_lsl: float) -> int:
    """The word being said at ``t_lsl`` (-1 between words)."""
    return span_at(np.asarray(words.t_start), np.asarray(words.t_end), t_lsl) if len(words) else -1


def sentence_at(sentences: Sentences, t_lsl: float) -> int:
    """The sentence whose gaze window [window_start, t_end] holds ``t_lsl`` (the latest such), else -1."""
    if not len(sentences):
        return -1
    ws, te = np.asarray(sentences.window_start), np.asarray(sentences.t_end)
    order = np.argsort(ws, kind="stable")
    k = span_at(ws[order], np.maximum.accumulate(te[order]), t_lsl)
    if k < 0:
        return -1
    holding = [int(order[j]) for j in range(k + 1) if ws[order[j]] <= t_lsl <= te[order[j]]]
    return holding[-1] if holding else -1


def fixation_at(fixations: np.ndarray, t_lsl: float) -> int:
    """The fixation in progress at ``t_lsl``, else -1."""
    if fixations.size == 0:
        return -1
    return span_at(fixations["t_start"], fixations["t_end"], t_lsl)


def trail_slice(t: np.ndarray, t_lsl: float, trail_s: float = SCANPATH_TRAIL_S) -> slice:
    """Rows of a sorted time array within (t_lsl - trail_s, t_lsl]."""
    lo = int(np.searchsorted(t, t_lsl - trail_s, side="right"))
    hi = int(np.searchsorted(t, t_lsl, side="right"))
    return slice(lo, hi)


GAZE_STALE_S = 0.1  # a gaze sample older than this is not drawn: the tracker lost the eye (blink, look-away)


def view_row_at(view_events: np.ndarray, t_lsl: float) -> int:
    """Index of the view row in force at ``t_lsl`` (the first one before any), -1 without rows."""
    if view_events.size == 0:
        return -1
    return max(int(np.searchsorted(view_events["t_lsl"], t_lsl, side="right")) - 1, 0)


@dataclass(frozen=True)
class Frame:
    """What replay draws at one time: the replay window and the video renderer both draw this."""

    t_lsl: float
    view: int  # row of the case's view events in force (window, zoom, pan), -1 without any
    trail: slice  # fixations that started in (t - trail_s, t], in case order
    trail_dur_s: np.ndarray  # each trail fixation's duration so far (the one in progress: up to t)
    fixation: int  # the fixation in progress, -1 between fixations
    gaze_xy_img_px: (
        tuple[float, float] | None
    )  # the latest sample within GAZE_STALE_S, on the image; else None
    word: int  # the word being said, -1 between words
    n_said: int  # words started by t


def gaze_at(gaze: np.ndarray, t_lsl: float) -> tuple[float, float] | None:
    """(x, y) image px of the latest gaze sample at or before ``t_lsl`` when it is fresher than GAZE_STALE_S and
    finite, else None."""
    if gaze.size == 0:
        return None
    i = int(np.searchsorted(gaze["t_lsl"], t_lsl, side="right")) - 1
    if i < 0 or t_lsl - float(gaze["t_lsl"][i]) >= GAZE_STALE_S:
        return None
    x, y = float(gaze["x_img_px"][i]), float(gaze["y_img_px"][i])
    return (x, y) if np.isfinite(x) and np.isfinite(y) else None


def frame_at(record: CaseRecord, t_lsl: float, trail_s: float = SCANPATH_TRAIL_S) -> Frame:
    """The frame of ``record`` at ``t_lsl`` (LSL s) with ``trail_s`` seconds of scanpath (pure)."""
    fx = record.fixations
    sl = trail_slice(fx["t_start"], t_lsl, trail_s)
    dur = np.minimum(fx["t_end"][sl], t_lsl) - fx["t_start"][sl]
    return Frame(
        t_lsl=float(t_lsl),
        view=view_row_at(record.view_events, t_lsl),
        trail=sl,
        trail_dur_s=np.asarray(dur, np.float64),
        fixation=fixation_at(fx, t_lsl),
        gaze_xy_img_px=gaze_at(record.gaze, t_lsl),
        word=word_at(record.words, t_lsl),
        n_said=int(np.searchsorted(np.asarray(record.words.t_start), t_lsl, side="right")),
    )
