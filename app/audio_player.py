"""Recorded audio played in sync with the replay clock (sounddevice / PortAudio output).

The audio of a case is stored as int16 samples with the LSL time of the first sample of each block
(:class:`radgaze.capture.base.records.Audio`); :func:`sample_at` maps an LSL time to a (fractional) sample index through
those blocks. The player owns one output stream whose callback reads from a position that advances by
``speed`` source samples per output sample (pitch changes with speed, as a tape would), so it never needs
the UI thread. Without an output device (or without sounddevice) the player is silent and says why in
:attr:`AudioPlayer.error`; replay works the same.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from radgaze.capture.base.records import Audio

BLOCK_FRAMES = 1024  # output callback size: 64 ms at 16 kHz (PortAudio latency vs callback overhead)


def sample_at(audio: Audio, t_lsl: float) -> float:
    """Fractional sample index at ``t_lsl`` (may be < 0 or >= n: before/after the recording).

    Within a block, samples follow at the nominal rate from the block's first-sample time."""
    t = np.asarray(audio.block_t_lsl, dtype=np.float64)
    if t.size == 0:
        return float("nan")
    k = max(int(np.searchsorted(t, t_lsl, side="right")) - 1, 0)
    return float(audio.block_first_sample[k] + (t_lsl - t[k]) * audio.sample_rate)


def time_at(audio: Audio, sample_index: float) -> float:
    """Inverse of :func:`sample_at`: the LSL time of a (fractional) sample index."""
    first = np.asarray(audio.block_first_sample, dtype=np.float64)
    k = max(int(np.searchsorted(first, sample_index, side="right")) - 1, 0)
    return float(audio.block_t_lsl[k] + (sample_index - first[k]) / audio.sample_rate)


def render_block(samples: np.ndarray, pos: float, step: float, n: int) -> tuple[np.ndarray, float]:
    """``n`` output samples (float32 in [-1, 1]) read from ``pos`` advancing by ``step`` source samples each
    (linear interpolation, zeros outside the recording). Returns (block, new position)."""
    idx = pos + step * np.arange(n)
    lo = max(int(np.floor(idx[0])), 0) if n else 0
    hi = min(int(np.ceil(idx[-1])) + 2, samples.size) if n else 0
    if hi <= lo:  # entirely before or after the recording
        return np.zeros(n, np.float32), pos + step * n
    window = samples[lo:hi].astype(np.float32)
    out = np.interp(idx, np.arange(lo, hi), window, left=0.0, right=0.0)
    out[(idx < 0) | (idx > samples.size - 1)] = 0.0
    return (out / 32768.0).astype(np.float32), pos + step * n


class AudioPlayer:
    """Plays one case's audio from a given LSL time at a given speed. Thread-safe start/stop."""

    def __init__(self, *, enabled: bool = True, device: int | str | None = None) -> None:
        self.enabled = enabled
        self.device = device
        self.error = "" if enabled else "audio output disabled"
        self.audio: Audio | None = None
        self._stream: Any = None
        self._lock = threading.Lock()
        self._pos = 0.0
        self._step = 1.0
        self._playing = False

    @property
    def available(self) -> bool:
        return self.enabled and not self.error and self.audio is not None

    @property
    def playing(self) -> bool:
        return self._playing

    def set_audio(self, audio: Audio | None) -> None:
        self.stop()
        self.audio = audio if audio is not None and audio.samples.size else None

    def play(self, t_lsl: float, speed: float = 1.0) -> bool:
        """Start (or move) playback at ``t_lsl``. False when silent (no audio, no device)."""
        if not (self.enabled and self.audio is not None):
            return False
        with self._lock:
            self._pos = sample_at(self.audio, t_lsl)
            self._step = float(speed)
            self._playing = True
        if self._stream is None and not self._open():
            self._playing = False
            return False
        return True

    def stop(self) -> None:
        with self._lock:
            self._playing = False

    def position_t_lsl(self) -> float:
        """Where the output is now (LSL s), NaN without audio."""
        if self.audio is None:
            return float("nan")
        with self._lock:
            return time_at(self.audio, self._pos)

    def close(self) -> None:
        self.stop()
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # noqa: BLE001 (PortAudio errors on close are not actionable)
                pass

    # -- PortAudio --------------------------------------------------------------------------------------
    def _open(self) -> bool:
        try:
            import sounddevice as sd

            self._stream = sd.OutputStream(
                samplerate=self.audio.sample_rate,
                channels=1,
                dtype="float32",
                blocksize=BLOCK_FRAMES,
                device=self.device,
                callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 (ImportError, PortAudioError, ValueError: no usable device)
            self._stream = None
            self.error = f"no audio output ({type(exc).__name__}: {exc})"
            return False
        return True

    def _callback(self, outdata: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        with self._lock:
            if not self._playing or self.audio is None:
                outdata.fill(0)
                return
            block, self._pos = render_block(self.audio.samples, self._pos, self._step, frames)
        outdata[:, 0] = block
