"""The live pipeline of one case: gaze -> image -> fixations -> sentence heatmaps -> session file.

Single-threaded by design: the recorder thread owns it and feeds it what the source threads put on their
queues (gaze chunks, audio blocks, final words, view events). Nothing here blocks on a device or draws.
The maths it runs (fixations, alignment, heatmaps) is capture/gazemath's; this module writes the case.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from radgaze.capture.base.records import VIEW_DTYPE, DisplayGeometry, ImageRef, Words
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S, ClosedSentence, HeatmapContext, LiveAligner
from radgaze.capture.gazemath.fixations import fixation_settings
from radgaze.capture.gazemath.geometry import map_gaze_to_image
from radgaze.capture.gazemath.heatmap import SIGMA_DEG
from radgaze.capture.gazemath.live_fixations import LiveFixationDetector
from radgaze.capture.store.writer import SessionWriter


class LivePipeline:
    """Owns one open case of a SessionWriter while it is being recorded."""

    def __init__(
        self,
        writer: SessionWriter,
        *,
        case_id: str,
        image: ImageRef,
        display: DisplayGeometry,
        initial_view: np.ndarray,
        method: str = "ivt",
        lead_s: float = EYE_VOICE_LEAD_S,
        sigma_deg: float = SIGMA_DEG,
        on_sentence: Callable[[ClosedSentence], None] | None = None,
        clock: Callable[[], float] | None = None,
        labels: tuple[str, ...] = (),
        attrs: dict | None = None,
        fixation_params: dict | None = None,
    ) -> None:
        """``fixation_params``: the detector's parameters (fixations.fixation_params; None: the defaults), recorded
        with every parameter in force in the case's ``attrs["fixations"]``."""
        self.writer, self.image, self.display = writer, image, display
        params = fixation_params or {}
        attrs = {**(attrs or {}), "fixations": fixation_settings(method, params)}
        self._views = np.asarray(initial_view, VIEW_DTYPE).reshape(-1)
        if self._views.size == 0:
            raise ValueError("initial_view: expected one VIEW_DTYPE row, got none")
        writer.begin_case(
            case_id, image, display, t_start=float(self._views["t_lsl"][0]), labels=labels, attrs=attrs
        )
        writer.append_view_events(self._views)
        self.fixations = LiveFixationDetector(display, method=method, **params)
        ctx = HeatmapContext(image.width, image.height, display, self._views, sigma_deg)
        self.aligner = LiveAligner(
            ctx, self._write_sentence, lead_s=lead_s, on_sentence=on_sentence, clock=clock
        )
        self.n_gaze = 0
        self.t_start_lsl = float(self._views["t_lsl"][0])  # the case's t_start
        self.t_last_lsl = self.t_start_lsl

    def push_view(self, row: np.ndarray) -> None:
        row = np.asarray(row, VIEW_DTYPE).reshape(-1)
        self._views = np.concatenate([self._views, row])
        self.aligner.set_view_events(self._views)
        self.writer.append_view_events(row)

    def push_gaze(self, chunk: np.ndarray) -> list[ClosedSentence]:
        """Map a screen-space gaze chunk to the image, store it, detect fixations, close ready sentences."""
        if chunk.size == 0:
            return []
        mapped = map_gaze_to_image(chunk, self._views, self.display, self.image.width, self.image.height)
        self.writer.append_gaze(mapped)
        self.n_gaze += mapped.size
        self.t_last_lsl = max(self.t_last_lsl, float(mapped["t_lsl"][-1]))
        fix = self.fixations.push(chunk, self._views)
        if fix.size:
            self.writer.append_fixations(fix)
            self.aligner.add_fixations(fix)
        return self.aligner.poll(self.fixations.horizon_lsl)

    def push_gaps(self, gaps: np.ndarray) -> None:
        self.writer.append_gaps(gaps)

    def push_clock_events(self, events: np.ndarray) -> None:
        """Steps of the tracker's clock (CLOCK_EVENT_DTYPE): its samples after them come corrected."""
        self.writer.append_clock_events(events)

    def push_audio(self, t_lsl_first_sample: float, samples_int16: np.ndarray) -> None:
        self.writer.append_audio(samples_int16, t_lsl_first_sample)

    def push_words(self, words: Words) -> list[ClosedSentence]:
        """Final words (dictated punctuation already converted)."""
        self.writer.append_words(words)
        self.aligner.add_words(words)
        return self.aligner.poll(self.fixations.horizon_lsl)

    def finish(self, t_end: float | None = None) -> list[ClosedSentence]:
        """Flush the last fixations and sentences and close the case."""
        fix = self.fixations.flush(self._views)
        if fix.size:
            self.writer.append_fixations(fix)
            self.aligner.add_fixations(fix)
        closed = self.aligner.finish()
        self.writer.end_case(self.t_last_lsl if t_end is None else t_end)
        return closed

    def _write_sentence(self, s: ClosedSentence) -> int:
        return self.writer.append_sentence(
            t_start=s.t_start,
            t_end=s.t_end,
            window_start=s.window_start,
            window_end=s.window_end,
            text=s.text,
            heatmap=s.heatmap,
            n_fixations=s.n_fixations,
        )
