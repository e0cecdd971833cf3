"""Sentence windows and sentence heatmaps: gaze and speech on the one LSL clock.

A sentence's gaze window runs from its first spoken word's start minus the eye-voice lead to its last word's
end. Each fixation overlapping the window adds a Gaussian weighted by the overlapping part of its duration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from radgaze.capture.base.records import FIXATION_DTYPE, CaseRecord, DisplayGeometry, Sentences, Words
from radgaze.capture.gazemath.geometry import shown_rect, view_index
from radgaze.capture.gazemath.heatmap import SIGMA_DEG, heatmap_grid, render_heatmap
from radgaze.capture.gazemath.punctuation import content_span, split_sentences

# Speakers fixate what they are about to name about 0.9 s before naming it (Griffin & Bock 2000, "What the eyes
# say about speaking"); radiologists look before they speak, so a 1 s lead is the default (configurable).
EYE_VOICE_LEAD_S = 1.0


@dataclass(frozen=True)
class HeatmapContext:
    """What a sentence heatmap needs besides fixations: the image grid, the display and the view timeline."""

    image_w: int
    image_h: int
    display: DisplayGeometry
    view_events: np.ndarray  # VIEW_DTYPE rows (may be empty: the whole image counts as shown)
    sigma_deg: float = SIGMA_DEG

    @property
    def grid(self) -> tuple[int, int, float]:
        return heatmap_grid(self.image_w, self.image_h)


def sentence_heatmap(
    fixations: np.ndarray, window_start: float, window_end: float, ctx: HeatmapContext
) -> tuple[np.ndarray | None, int]:
    """The heatmap of the fixations overlapping ``[window_start, window_end]`` and how many there were.

    Weights are the overlap durations in seconds; sigma is ``sigma_deg`` times each fixation's image ppd;
    each Gaussian is clipped to the image part shown at the fixation's midpoint. None = no fixation."""
    overlap = np.minimum(fixations["t_end"], window_end) - np.maximum(fixations["t_start"], window_start)
    sel = fixations[overlap > 0]
    if sel.size == 0:
        return None, 0
    weight = overlap[overlap > 0]
    shown = None
    if ctx.view_events.size:
        t_mid = (sel["t_start"] + sel["t_end"]) / 2
        shown = shown_rect(
            ctx.view_events[view_index(t_mid, ctx.view_events)], ctx.display, ctx.image_w, ctx.image_h
        )
    hm = render_heatmap(
        sel["x_img_px"], sel["y_img_px"], weight, ctx.sigma_deg * sel["ppd_img"], grid=ctx.grid, shown=shown
    )
    return hm, int(sel.size) if hm is not None else 0


def sentence_spans(words: Words, *, final: bool = True) -> list[tuple[int, int, str, float, float]]:
    """Sentences of a (punctuation-converted) word list: ``(i0, i1, text, t_start, t_end)``, i1 exclusive."""
    out = []
    for i0, i1, text in split_sentences(words.text, final=final):
        t0, t1 = content_span(words, i0, i1)
        if np.isfinite(t0):
            out.append((i0, i1, text.strip(), t0, t1))
    return out


def build_sentences(
    words: Words, fixations: np.ndarray, ctx: HeatmapContext, *, lead_s: float = EYE_VOICE_LEAD_S
) -> tuple[Sentences, np.ndarray]:
    """All sentences of a finished recording and their heatmap stack (for synthetic and imported sessions)."""
    rows, maps = [], []
    for _, _, text, t0, t1 in sentence_spans(words):
        hm, n_fix = sentence_heatmap(fixations, t0 - lead_s, t1, ctx)
        rows.append((t0, t1, t0 - lead_s, t1, text, len(maps) if hm is not None else -1, n_fix))
        if hm is not None:
            maps.append(hm)
    h, w, _ = ctx.grid
    stack = np.stack(maps) if maps else np.zeros((0, h, w), np.float32)
    if not rows:
        return Sentences.empty(), stack
    cols = list(zip(*rows))
    sentences = Sentences(
        np.array(cols[0], np.float64),
        np.array(cols[1], np.float64),
        np.array(cols[2], np.float64),
        np.array(cols[3], np.float64),
        list(cols[4]),
        np.array(cols[5], np.int32),
        np.array(cols[6], np.int32),
    )
    return sentences, stack


@dataclass
class ClosedSentence:
    index: int
    text: str
    t_start: float
    t_end: float
    window_start: float
    window_end: float
    heatmap: np.ndarray | None
    n_fixations: int
    t_closed_lsl: float = float("nan")


class LiveAligner:
    """Closes sentences as final words arrive and fixations up to their window end are known.

    Feed it final words (punctuation converted) and final fixations; call :meth:`poll` with the fixation
    horizon (the time up to which every fixation is final). Each closed sentence is appended to the session
    through ``sink(sentence)`` (usually a SessionWriter adapter) and reported to ``on_sentence``.
    """

    def __init__(
        self,
        ctx: HeatmapContext,
        sink: Callable[[ClosedSentence], int],
        *,
        lead_s: float = EYE_VOICE_LEAD_S,
        on_sentence: Callable[[ClosedSentence], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.ctx = ctx
        self.lead_s = lead_s
        self._sink = sink
        self._on_sentence = on_sentence
        self._clock = clock
        self._fixations = np.zeros(0, FIXATION_DTYPE)
        self._words = Words.empty()
        self._consumed = 0  # words already in closed sentences
        self.closed: list[ClosedSentence] = []

    def set_view_events(self, view_events: np.ndarray) -> None:
        self.ctx = HeatmapContext(
            self.ctx.image_w, self.ctx.image_h, self.ctx.display, view_events, self.ctx.sigma_deg
        )

    def add_fixations(self, fixations: np.ndarray) -> None:
        if fixations.size:
            self._fixations = np.concatenate([self._fixations, fixations])

    def add_words(self, words: Words) -> None:
        if len(words) == 0:
            return
        w = self._words
        self._words = Words(
            np.concatenate([w.t_start, words.t_start]),
            np.concatenate([w.t_end, words.t_end]),
            w.text + list(words.text),
            np.concatenate([w.probability, np.asarray(words.probability, np.float32)]),
        )

    @property
    def fixations(self) -> np.ndarray:
        """The final fixations received so far (FIXATION_DTYPE)."""
        return self._fixations

    def gaze_windows(self) -> np.ndarray:
        """(k, 2) gaze windows [start, end] (LSL s) of every sentence so far: the closed ones and those whose
        words have come but are not closed yet (an unterminated last sentence included)."""
        rows = [(s.window_start, s.window_end) for s in self.closed]
        pending = Words(
            self._words.t_start[self._consumed :],
            self._words.t_end[self._consumed :],
            self._words.text[self._consumed :],
            self._words.probability[self._consumed :],
        )
        rows += [(t0 - self.lead_s, t1) for _, _, _, t0, t1 in sentence_spans(pending, final=True)]
        return np.asarray(rows, float).reshape(-1, 2)

    def poll(self, fixation_horizon_lsl: float) -> list[ClosedSentence]:
        """Close every finished sentence whose gaze window ends before the fixation horizon."""
        return self._close(fixation_horizon_lsl, final=False)

    def finish(self) -> list[ClosedSentence]:
        """Close everything left, an unterminated last sentence included (end of the case)."""
        return self._close(float("inf"), final=True)

    def _close(self, horizon: float, *, final: bool) -> list[ClosedSentence]:
        pending = Words(
            self._words.t_start[self._consumed :],
            self._words.t_end[self._consumed :],
            self._words.text[self._consumed :],
            self._words.probability[self._consumed :],
        )
        fixations = self._fixations if self._fixations.size else None
        base = self._consumed
        done = []
        for _, i1, text, t0, t1 in sentence_spans(pending, final=final):
            if t1 > horizon:
                break
            hm, n_fix = (
                (None, 0)
                if fixations is None
                else sentence_heatmap(fixations, t0 - self.lead_s, t1, self.ctx)
            )
            s = ClosedSentence(len(self.closed), text, t0, t1, t0 - self.lead_s, t1, hm, n_fix)
            s.t_closed_lsl = self._clock() if self._clock else float("nan")
            self._sink(s)
            self.closed.append(s)
            done.append(s)
            self._consumed = base + i1
            if self._on_sentence:
                self._on_sentence(s)
        return done


def sentence_heatmaps(
    case: CaseRecord, *, lead_s: float = EYE_VOICE_LEAD_S, sigma_deg: float = SIGMA_DEG
) -> tuple[Sentences, np.ndarray]:
    """Sentences and heatmap stack of a finished case from its words, fixations and view timeline."""
    ctx = HeatmapContext(case.image.width, case.image.height, case.display, case.view_events, sigma_deg)
    return build_sentences(case.words, case.fixations, ctx, lead_s=lead_s)
