"""Where the speech is: Silero VAD run incrementally over a live audio stream, and the speech regions it gives.

The streaming ASR decodes only speech (silence fed to Whisper is where "Thank you." and "see you in the next
video" come from) and bounds word times by it (a word never starts inside a pause; faster-whisper issues
#125/#294: the first word after a silence is stamped early). The model is the Silero VAD v6 that ships inside
faster-whisper's wheel (``faster_whisper/assets/silero_vad_v6.onnx``, run by onnxruntime): no download.

Silero scores 512-sample windows (32 ms at 16 kHz), each seen with the 64 samples before it as context.
:class:`SpeechDetector` scores each window once as the audio arrives (the window before a new batch is scored
again as its context, then dropped), so a 30-minute dictation costs one pass. Speech starts where the
probability reaches ``threshold`` (0.5, Silero's default) and continues until it falls below
``neg_threshold`` (0.35: faster-whisper's threshold - 0.15) — hysteresis, as Silero's own segmenter does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

WINDOW = 512  # samples per Silero window at 16 kHz
THRESHOLD = 0.5  # Silero's default speech threshold
NEG_THRESHOLD = 0.35  # leave speech below this (faster-whisper: threshold - 0.15)

# probabilities of windows (float32 audio of n * WINDOW samples, the first window being context) -> (n,)
ScoreFn = Callable[[np.ndarray], np.ndarray]


def silero_scorer() -> ScoreFn:
    """Silero VAD v6 from faster-whisper's wheel, as a function of whole windows."""
    from faster_whisper.vad import get_vad_model

    model = get_vad_model()

    def score(audio_f32: np.ndarray) -> np.ndarray:
        return np.asarray(model(np.asarray(audio_f32, np.float32)), np.float32).reshape(-1)

    return score


class SpeechDetector:
    """Per-window speech probabilities of a stream, computed once as samples arrive.

    :meth:`push` takes int16 samples; :attr:`probs` holds one probability per complete window since the
    stream began (window k covers samples ``[k * 512, (k + 1) * 512)``).
    """

    def __init__(
        self,
        score: ScoreFn | None = None,
        *,
        threshold: float = THRESHOLD,
        neg_threshold: float = NEG_THRESHOLD,
    ) -> None:
        self._score = score or silero_scorer()
        self.threshold, self.neg_threshold = float(threshold), float(neg_threshold)
        self._probs: list[np.ndarray] = []
        self._tail = np.zeros(0, np.float32)  # samples not yet in a complete window
        self._last = np.zeros(WINDOW, np.float32)  # the last scored window: the next batch's context
        self._masks: list[np.ndarray] = []
        self._active = False  # hysteresis state after the last window
        self.n_windows = 0

    def push(self, samples_int16: np.ndarray) -> None:
        x = np.concatenate([self._tail, np.asarray(samples_int16, np.float32) / 32768.0])
        n = x.size // WINDOW
        self._tail = x[n * WINDOW :]
        if n == 0:
            return
        batch = np.concatenate([self._last, x[: n * WINDOW]])
        probs = self._score(batch)[1:]  # the first window is only context
        self._last = x[(n - 1) * WINDOW : n * WINDOW].copy()
        self._probs.append(probs[:n].astype(np.float32))
        mask = hysteresis(probs[:n], self.threshold, self.neg_threshold, active=self._active)
        self._active = bool(mask[-1])
        self._masks.append(mask)
        self.n_windows += n

    @property
    def probs(self) -> np.ndarray:
        if len(self._probs) > 1:
            self._probs = [np.concatenate(self._probs)]
        return self._probs[0] if self._probs else np.zeros(0, np.float32)

    def speech_mask(self) -> np.ndarray:
        """(n_windows,) bool: speech by hysteresis over the probabilities."""
        if len(self._masks) > 1:
            self._masks = [np.concatenate(self._masks)]
        return self._masks[0] if self._masks else np.zeros(0, bool)

    def last_speech_end(self) -> int | None:
        """Sample index where the last speech window ends (None before any speech)."""
        idx = np.flatnonzero(self.speech_mask())
        return None if idx.size == 0 else int(idx[-1] + 1) * WINDOW

    def speech_end_after(self, sample: int, min_silence: int) -> int | None:
        """End (sample) of the first speech run at or after ``sample`` that ``min_silence`` samples of
        silence follow, within what was scored; None while the speech goes on (or no silence that long yet)."""
        m = self.speech_mask()
        k0 = max(0, sample // WINDOW)
        need = max(1, -(-min_silence // WINDOW))
        speech = np.flatnonzero(m[k0:])
        if speech.size == 0:
            return None
        s = np.concatenate([m[k0:], np.zeros(1, bool)])  # the stream's end is not a silence yet
        ends = np.flatnonzero(s[:-1] & ~s[1:]) + 1  # relative window after each run's last speech window
        for e in ends[ends > speech[0]]:
            if e + need <= m.size - k0 and not m[k0 + e : k0 + e + need].any():
                return int(k0 + e) * WINDOW
        return None

    def first_speech_from(self, sample: int) -> int | None:
        """Sample index where the first speech window at or after ``sample`` starts (None: no speech yet)."""
        m = self.speech_mask()
        k0 = max(0, sample // WINDOW)
        idx = np.flatnonzero(m[k0:])
        return None if idx.size == 0 else int(k0 + idx[0]) * WINDOW

    def regions(self, *, min_silence_s: float = 0.1, rate: int = 16000) -> np.ndarray:
        """(k, 2) int64 sample ranges [start, end) of speech; pauses shorter than ``min_silence_s`` bridged."""
        return speech_regions(self.speech_mask(), WINDOW, min_gap=round(min_silence_s * rate / WINDOW))


def hysteresis(probs: np.ndarray, on: float, off: float, *, active: bool = False) -> np.ndarray:
    """Speech mask: a window is speech from where ``probs >= on`` until ``probs < off`` (``active``: the
    state before the first window)."""
    out = np.zeros(probs.size, bool)
    for i, p in enumerate(probs):  # a two-state machine: sequential by nature, O(n) once per query
        active = p >= on or (active and p >= off)
        out[i] = active
    return out


def speech_regions(mask: np.ndarray, window: int = WINDOW, *, min_gap: int = 0) -> np.ndarray:
    """(k, 2) sample ranges of runs of True in ``mask`` (windows), runs closer than ``min_gap`` windows joined."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    runs = edges.reshape(-1, 2)
    if runs.size and min_gap > 0:
        keep = np.concatenate([[True], runs[1:, 0] - runs[:-1, 1] >= min_gap])
        starts = runs[keep, 0]
        ends = np.append(runs[np.flatnonzero(keep)[1:] - 1, 1], runs[-1, 1])
        runs = np.stack([starts, ends], axis=1)
    return runs.astype(np.int64) * window


def bound_to_speech(
    start_s: np.ndarray, end_s: np.ndarray, regions_s: np.ndarray, *, pad_s: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Move word times out of pauses: a start inside a pause goes to the next speech region's start, an end
    inside a pause to the previous region's end (each region widened by ``pad_s``); start <= end kept.

    ``regions_s``: (k, 2) speech regions in seconds on the words' timeline, sorted. A word wholly inside a
    pause goes to the nearer speech: to the end of the region before it when that is nearer (Whisper
    squeezes a sentence's last word into the pause after it, "is 4.48-5.78, normal. 5.78-5.78" for speech
    ending at 5.02), else it keeps its length and starts where the next speech starts (#125: the first word
    after a silence stamped early).
    """
    s, e = np.asarray(start_s, np.float64).copy(), np.asarray(end_s, np.float64).copy()
    if regions_s.size == 0 or s.size == 0:
        return s, e
    lo, hi = regions_s[:, 0] - pad_s, regions_s[:, 1] + pad_s
    k = np.searchsorted(lo, s, side="right") - 1  # the region starting at or before each start
    in_pause = (k < 0) | (s > hi[np.clip(k, 0, None)])
    nxt = np.clip(k + 1, 0, lo.size - 1)
    back = in_pause & (k >= 0) & (e < lo[nxt]) & (s - hi[np.clip(k, 0, None)] < lo[nxt] - e)
    s = np.where(back, hi[np.clip(k, 0, None)], s)
    e = np.where(back, s, e)
    in_pause &= ~back
    moved = in_pause & (lo[nxt] > s)
    dur = e - s
    s = np.where(moved, lo[nxt], s)
    e = np.where(moved, np.maximum(e, s + np.minimum(dur, hi[nxt] - lo[nxt])), e)
    j = np.searchsorted(lo, e, side="right") - 1
    end_in_pause = (j >= 0) & (e > hi[np.clip(j, 0, None)])
    e = np.where(end_in_pause, np.maximum(s, hi[np.clip(j, 0, None)]), e)
    return s, e
