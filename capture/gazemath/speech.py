"""Speech in a case's recorded audio, on the LSL clock.

:func:`samples_to_t_lsl` maps audio sample indices to the LSL clock through the audio's blocks (the one mapping
of audio time; capture/live/audio.py stamps the blocks). :func:`case_speech_t_lsl` finds where the reader spoke:
Silero VAD (the model faster-whisper ships, run offline through ``faster_whisper.vad``), or a plain speech-energy
measure. The transcript correction places the words a reader typed in that speech
(capture/gazemath/correction.py).
"""

from __future__ import annotations

import numpy as np

from radgaze.capture.base.records import Audio

SPEECH_RATE_HZ = 16_000  # the rate radgaze records speech at: Whisper's input rate, and Silero VAD's


def samples_to_t_lsl(
    sample_index: np.ndarray | float,
    block_t_lsl: np.ndarray,
    block_first_sample: np.ndarray,
    sample_rate_hz: int = SPEECH_RATE_HZ,
) -> np.ndarray:
    """LSL time (s) of (fractional) sample indices counted from the first captured sample.

    Each index is mapped through the block that contains it: ``block_t_lsl[k] + (i - first[k]) / rate``, so
    dropouts between blocks and clock re-estimation are honoured. Indices before the first block extrapolate
    from it. ``block_first_sample`` must be sorted ascending.
    """
    i = np.asarray(sample_index, dtype=np.float64)
    first = np.asarray(block_first_sample, dtype=np.float64)
    if first.size == 0:
        raise ValueError("samples_to_t_lsl: expected at least one audio block, got none")
    k = np.clip(np.searchsorted(first, i, side="right") - 1, 0, first.size - 1)
    return np.asarray(block_t_lsl, dtype=np.float64)[k] + (i - first[k]) / float(sample_rate_hz)


# Silero VAD (faster-whisper ships it) as speech bounds for word times. VadOptions' defaults are made for cutting
# audio into decoding windows (2 s of silence to end a segment, 400 ms of padding each side); word times need
# the speech itself: a pause between two sentences (~0.5 s and more) ends a segment, and a small pad keeps
# the onset where the voice starts.
VAD_THRESHOLD = 0.5  # Silero's speech probability threshold (its and VadOptions' default)
VAD_MIN_SILENCE_MS = 250  # a silence this long ends a speech segment (shorter ones are inside a sentence)
VAD_MIN_SPEECH_MS = 100  # shorter "speech" (a click, a breath) is dropped
VAD_SPEECH_PAD_MS = 30  # about one of Silero's 32 ms windows, each side
# The energy measure: 20 ms frames louder than the quietest tenth of the recording by 15 dB, and than -60 dBFS
# (digital silence has no floor to speak of), are speech.
ENERGY_FRAME_S = 0.020
ENERGY_ABOVE_FLOOR_DB = 15.0
ENERGY_FLOOR_PERCENTILE = 10.0
ENERGY_MIN_DBFS = -60.0


def _as_speech_rate(samples_int16: np.ndarray, rate_hz: int) -> np.ndarray:
    """Float32 samples in [-1, 1] at :data:`SPEECH_RATE_HZ` (resampled when recorded at another rate)."""
    x = np.asarray(samples_int16, np.float32).reshape(-1) / np.float32(32768.0)
    if int(rate_hz) == SPEECH_RATE_HZ:
        return x
    from scipy.signal import resample_poly

    g = np.gcd(int(rate_hz), SPEECH_RATE_HZ)
    return resample_poly(x, SPEECH_RATE_HZ // g, int(rate_hz) // g).astype(np.float32)


def audio_at_speech_rate(audio: Audio) -> Audio:
    """``audio`` at :data:`SPEECH_RATE_HZ` (itself when recorded at that rate), its blocks' first samples
    scaled, their LSL times kept."""
    rate = int(audio.sample_rate)
    if rate == SPEECH_RATE_HZ:
        return audio
    x = np.clip(np.round(_as_speech_rate(audio.samples, rate) * 32768.0), -32768, 32767).astype(np.int16)
    first = np.round(np.asarray(audio.block_first_sample, np.float64) * SPEECH_RATE_HZ / rate).astype(
        np.int64
    )
    return Audio(x, SPEECH_RATE_HZ, np.asarray(audio.block_t_lsl, np.float64), first)


def vad_speech_s(samples_int16: np.ndarray, rate_hz: int) -> np.ndarray:
    """Speech segments (k, 2) in seconds from the first sample, by Silero VAD (faster_whisper.vad)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    x = _as_speech_rate(samples_int16, rate_hz)
    if x.size == 0:
        return np.zeros((0, 2))
    options = VadOptions(
        threshold=VAD_THRESHOLD,
        min_speech_duration_ms=VAD_MIN_SPEECH_MS,
        min_silence_duration_ms=VAD_MIN_SILENCE_MS,
        speech_pad_ms=VAD_SPEECH_PAD_MS,
    )
    found = get_speech_timestamps(x, options, sampling_rate=SPEECH_RATE_HZ)
    spans = np.array([(s["start"], s["end"]) for s in found], np.float64).reshape(-1, 2)
    return np.clip(spans / SPEECH_RATE_HZ, 0.0, x.size / SPEECH_RATE_HZ)


def energy_speech_s(samples_int16: np.ndarray, rate_hz: int) -> np.ndarray:
    """Speech segments (k, 2) in seconds from the first sample: runs of frames :data:`ENERGY_ABOVE_FLOOR_DB`
    louder than the recording's noise floor (its :data:`ENERGY_FLOOR_PERCENTILE` th percentile frame) and
    than :data:`ENERGY_MIN_DBFS`."""
    frame = max(1, round(ENERGY_FRAME_S * rate_hz))
    n = np.asarray(samples_int16).size // frame
    if n == 0:
        return np.zeros((0, 2))
    x = np.asarray(samples_int16, np.float64)[: n * frame].reshape(n, frame) / 32768.0
    db = 10 * np.log10(np.mean(x * x, axis=1) + 1e-12)
    loud = db > max(np.percentile(db, ENERGY_FLOOR_PERCENTILE) + ENERGY_ABOVE_FLOOR_DB, ENERGY_MIN_DBFS)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    return edges.reshape(-1, 2).astype(np.float64) * frame / rate_hz


def case_speech_t_lsl(audio: Audio, *, method: str = "vad") -> np.ndarray:
    """Speech segments (k, 2) of a case's recorded audio on the LSL clock, sorted; ``method`` "vad" (Silero)
    or "energy". Each segment is mapped through the audio blocks it starts and ends in."""
    if method not in ("vad", "energy"):
        raise ValueError(f"speech method: expected 'vad' or 'energy', got {method!r}")
    if audio.samples.size == 0 or np.asarray(audio.block_first_sample).size == 0:
        return np.zeros((0, 2))
    find = vad_speech_s if method == "vad" else energy_speech_s
    spans_s = find(audio.samples, int(audio.sample_rate))
    index = spans_s * float(audio.sample_rate)
    t = samples_to_t_lsl(index, audio.block_t_lsl, audio.block_first_sample, int(audio.sample_rate))
    return np.asarray(t, np.float64).reshape(-1, 2)
