"""What a replay frame shows at a time (Qt-free): the lookups the replay window, its timeline and the video renderer
all use.

Lookups follow pupil Player's ``find_closest`` habit: ``np.searchsorted`` on sorted LSL times, never a loop.
"""

from __future__ import annotations

import numpy as np

from radgaze.capture.records import Sentences, Words

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
