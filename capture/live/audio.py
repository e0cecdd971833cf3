"""Microphone capture (sounddevice / PortAudio) and a file stand-in, both stamped on the LSL clock.

Every source delivers, on its ``queue``, :class:`AudioBlock` items ``(t_lsl_first_sample, samples)`` with
``samples`` a 1-D int16 array at 16 kHz mono (Whisper's input rate), then ``None`` when it stops. A failure
(device unplugged, file unreadable) travels on the same queue as a :class:`~radgaze.capture.base.errors.DeviceError`
instance, never swallowed. Sources never block their producer: the queue is unbounded.

Clock mapping (see DESIGN.md "One clock"). PortAudio reports, per callback, the ADC time of the block's first
sample (``inputBufferAdcTime``) and the time the callback was invoked (``currentTime``), both on the stream's
own clock (``Pa_GetStreamTime``; with ALSA on Linux that is the wall clock, which NTP may step). We read
``pylsl.local_clock()`` in the callback too, so ``local_clock() - currentTime`` is the offset between the two
clocks plus the (non-negative) delay before our code ran. :class:`ClockOffsetEstimator` keeps the minimum of
these samples over a sliding window (the sample with the least scheduling delay, as NTP's minimum-delay
filter), so the estimate is re-made continuously and follows a clock step within one window. A block's stamp
is then ``inputBufferAdcTime + offset``; where a host API reports no ADC time (0), ``currentTime`` minus the
block duration and the input latency is used instead.
"""

from __future__ import annotations

import collections
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from radgaze.capture.base.errors import DeviceError
from radgaze.capture.base.records import Audio
from radgaze.capture.gazemath.speech import samples_to_t_lsl as samples_to_t_lsl  # re-exported

SAMPLE_RATE_HZ = 16_000  # Whisper's input rate (openai/whisper audio.py SAMPLE_RATE; faster-whisper's too)
BLOCK_DUR_S = 0.1  # 100 ms blocks: 10 queue items/s, small against the ~1 s ASR chunks
OFFSET_WINDOW_BLOCKS = 50  # 5 s of 100 ms blocks for the min-delay filter of the clock offset
OFFSET_STEP_S = 0.5  # an offset sample this far above the current minimum means the stream clock stepped


class AudioBlock(NamedTuple):
    """One block of captured audio: LSL time of its first sample (s) and int16 mono samples (n,)."""

    t_lsl_first_sample: float
    samples: np.ndarray


@dataclass(frozen=True)
class InputDevice:
    """A PortAudio device that can record."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    default_samplerate_hz: float
    is_default: bool


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as e:  # PortAudio shared library missing
        raise DeviceError(
            f"cannot use audio devices: the PortAudio library failed to load ({e}); "
            "install it (Debian/Ubuntu: apt-get install libportaudio2) or use --audio-file F"
        ) from e
    return sounddevice


def list_input_devices() -> list[InputDevice]:
    """All PortAudio devices with at least one input channel, in PortAudio's order."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        host_apis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except sd.PortAudioError as e:
        raise DeviceError(f"cannot list audio devices: {e}") from e
    out = []
    for d in devices:
        if d["max_input_channels"] > 0:
            out.append(
                InputDevice(
                    index=int(d["index"]),
                    name=str(d["name"]),
                    host_api=str(host_apis[d["hostapi"]]["name"]),
                    max_input_channels=int(d["max_input_channels"]),
                    default_samplerate_hz=float(d["default_samplerate"]),
                    is_default=int(d["index"]) == default_in,
                )
            )
    return out


def _describe(devices: list[InputDevice]) -> str:
    if not devices:
        return "PortAudio lists no input device"
    return "input devices: " + "; ".join(f"[{d.index}] {d.name} ({d.host_api})" for d in devices)


def resolve_input_device(spec: str | int | None, devices: list[InputDevice] | None = None) -> InputDevice:
    """Pick the input device named by ``spec``: None = the default input, an index, or a name.

    A name matches exactly (case-insensitive) first, else as a unique substring. Raises :class:`DeviceError`
    naming the devices that exist when there is no input device, no match, or several matches.
    """
    devices = list_input_devices() if devices is None else devices
    hint = "connect a microphone, pick one of the devices listed with --mic NAME|INDEX, or use --audio-file F"
    if not devices:
        raise DeviceError(f"no audio input device found ({_describe(devices)}); {hint}")
    if spec is None or spec == "":
        defaults = [d for d in devices if d.is_default]
        return defaults[0] if defaults else devices[0]
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().lstrip("-").isdigit()):
        index = int(spec)
        for d in devices:
            if d.index == index:
                return d
        raise DeviceError(
            f"audio input device index {index} does not exist or cannot record; {_describe(devices)}"
        )
    wanted = spec.strip().casefold()
    exact = [d for d in devices if d.name.casefold() == wanted]
    if exact:
        return exact[0]
    partial = [d for d in devices if wanted in d.name.casefold()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise DeviceError(f"no audio input device named {spec!r}; {_describe(devices)}; {hint}")
    raise DeviceError(f"audio input device name {spec!r} is ambiguous; it matches {_describe(partial)[15:]}")


class ClockOffsetEstimator:
    """Offset ``t_lsl - t_stream`` from samples ``local_clock() - stream_now`` taken in the audio callback.

    Each sample is the true offset plus a non-negative scheduling delay, so the minimum over the last
    ``window`` samples is the estimate. A sample more than ``step_s`` above that minimum is a clock step
    (the stream clock was set back): the window restarts from it.
    """

    def __init__(self, window: int = OFFSET_WINDOW_BLOCKS, step_s: float = OFFSET_STEP_S) -> None:
        self._samples: collections.deque[float] = collections.deque(maxlen=window)
        self._step_s = step_s

    def update(self, offset_sample_s: float) -> float:
        """Add one sample; return the current offset estimate (s)."""
        if self._samples and offset_sample_s > min(self._samples) + self._step_s:
            self._samples.clear()
        self._samples.append(offset_sample_s)
        return min(self._samples)

    @property
    def offset_s(self) -> float:
        return min(self._samples) if self._samples else float("nan")


def blocks_to_audio(blocks: list[AudioBlock], sample_rate_hz: int = SAMPLE_RATE_HZ) -> Audio:
    """Concatenate captured blocks into a :class:`radgaze.capture.base.records.Audio` record."""
    if not blocks:
        return Audio(np.zeros(0, np.int16), sample_rate_hz, np.zeros(0), np.zeros(0, np.int64))
    lengths = np.array([b.samples.size for b in blocks], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return Audio(
        samples=np.concatenate([b.samples for b in blocks]).astype(np.int16, copy=False),
        sample_rate=sample_rate_hz,
        block_t_lsl=np.array([b.t_lsl_first_sample for b in blocks], dtype=np.float64),
        block_first_sample=first,
    )


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) (or ints) to int16, clipped. Full scale is 32768, libsndfile's and PortAudio's
    convention (a 16-bit file read as float is int16 / 32768): int16 -> float -> int16 is exact (scaling by
    32767 moved loud samples by one step, and Whisper's words with them)."""
    if x.dtype == np.int16:
        return x
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        x = x.astype(np.float64) / abs(info.min)
    return np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def resample_to(x: np.ndarray, rate_in_hz: int, rate_out_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Polyphase resampling of a 1-D float signal (scipy.signal.resample_poly, Kaiser window)."""
    if rate_in_hz == rate_out_hz:
        return np.asarray(x, np.float64)
    from scipy.signal import resample_poly

    ratio = Fraction(rate_out_hz, rate_in_hz).limit_denominator(10_000)
    return resample_poly(np.asarray(x, np.float64), ratio.numerator, ratio.denominator)


class _Source:
    """Common queue / lifecycle of the audio sources."""

    def __init__(self, sample_rate_hz: int, block_dur_s: float, out: queue.Queue | None) -> None:
        if sample_rate_hz <= 0 or block_dur_s <= 0:
            raise ValueError(
                f"expected positive sample rate and block duration, got {sample_rate_hz}, {block_dur_s}"
            )
        self.sample_rate_hz = int(sample_rate_hz)
        self.block_len = max(1, round(block_dur_s * sample_rate_hz))
        self.queue: queue.Queue[AudioBlock | BaseException | None] = queue.Queue() if out is None else out
        self._stopped = threading.Event()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class MicrophoneSource(_Source):
    """Record a PortAudio input device at 16 kHz mono int16, blocks stamped on the LSL clock.

    ``device``: None (default input), an index, or a (part of a) name, see :func:`resolve_input_device`.
    Raises :class:`DeviceError` at construction when no such input exists or it cannot record 16 kHz mono
    (use the "pulse" / "default" ALSA devices, which resample). ``n_overflows`` counts blocks PortAudio
    flagged as overflowed (samples lost before us).
    """

    def __init__(
        self,
        device: str | int | None = None,
        *,
        sample_rate_hz: int = SAMPLE_RATE_HZ,
        block_dur_s: float = BLOCK_DUR_S,
        out: queue.Queue | None = None,
    ) -> None:
        super().__init__(sample_rate_hz, block_dur_s, out)
        self._sd = _sounddevice()
        self.device = resolve_input_device(device)
        try:
            self._sd.check_input_settings(
                device=self.device.index, channels=1, dtype="int16", samplerate=self.sample_rate_hz
            )
        except Exception as e:  # sounddevice raises PortAudioError or ValueError here
            raise DeviceError(
                f"audio input device [{self.device.index}] {self.device.name!r} cannot record "
                f"{self.sample_rate_hz} Hz mono int16 ({e}); try the 'pulse' or 'default' device"
            ) from e
        self._clock = ClockOffsetEstimator()
        self._stream: Any = None
        self._next_t_lsl = -np.inf
        self.n_overflows = 0
        self.latency_s = float("nan")

    def describe(self) -> dict:
        """Provenance for the session file."""
        return {
            "source": "microphone",
            "device": self.device.name,
            "host_api": self.device.host_api,
            "sample_rate_hz": self.sample_rate_hz,
            "input_latency_s": self.latency_s,
            "clock_offset_s": self._clock.offset_s,
        }

    def start(self) -> None:
        from pylsl import local_clock

        rate = float(self.sample_rate_hz)

        def callback(indata, frames, time_info, status) -> None:
            t_lsl_now = local_clock()
            t_stream_now = time_info.currentTime or self._stream.time
            offset = self._clock.update(t_lsl_now - t_stream_now)
            t_adc = time_info.inputBufferAdcTime
            if not t_adc:
                t_adc = t_stream_now - frames / rate - self.latency_s
            # offset re-estimation only moves stamps back by scheduling jitter: never overlap the last block
            t_first = max(t_adc + offset, self._next_t_lsl)
            self._next_t_lsl = t_first + frames / rate
            if status.input_overflow:
                self.n_overflows += 1
            self.queue.put_nowait(AudioBlock(float(t_first), indata[:, 0].copy()))

        def finished() -> None:
            if not self._stopped.is_set():
                self.queue.put_nowait(DeviceError(f"audio input {self.device.name!r} stopped unexpectedly"))
            self.queue.put_nowait(None)

        try:
            self._stream = self._sd.InputStream(
                device=self.device.index,
                samplerate=rate,
                channels=1,
                dtype="int16",
                blocksize=self.block_len,
                # PortAudio's "high" input latency (larger host buffer): stamps come from the ADC time, so
                # buffering costs no accuracy, and it rides out scheduling stalls without overflowing
                latency="high",
                callback=callback,
                finished_callback=finished,
            )
            self.latency_s = float(self._stream.latency)
            self._stream.start()
        except self._sd.PortAudioError as e:
            raise DeviceError(f"cannot open audio input {self.device.name!r}: {e}") from e

    def stop(self) -> None:
        self._stopped.set()
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.stop()
            stream.close()


def read_audio_file(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Decode an audio file (what libsndfile reads: WAV, FLAC, OGG, ...) to mono int16 at ``sample_rate_hz``.

    Channels are averaged; other rates are resampled (polyphase). Raises :class:`DeviceError` when the file
    is missing or cannot be decoded.
    """
    import soundfile

    p = Path(path)
    if not p.is_file():
        raise DeviceError(f"audio file {str(p)!r} does not exist")
    try:
        x, rate = soundfile.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile.LibsndfileError, RuntimeError on odd files
        raise DeviceError(f"cannot decode audio file {str(p)!r} (expected WAV/FLAC/OGG): {e}") from e
    return to_int16(resample_to(x.mean(axis=1), int(rate), sample_rate_hz))


class AudioFileSource(_Source):
    """Play an audio file as if it were the microphone (``--audio-file F``), same queue interface.

    Blocks are stamped ``t_lsl_start + first_sample / rate`` (``t_lsl_start`` defaults to ``local_clock()`` at
    :meth:`start`) and released when a microphone would have delivered them: at real time for ``speed=1``,
    ``speed`` times faster otherwise, all at once for ``speed=inf``. Stamps stay on the audio's own timeline
    whatever the speed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        sample_rate_hz: int = SAMPLE_RATE_HZ,
        block_dur_s: float = BLOCK_DUR_S,
        speed: float = 1.0,
        t_lsl_start: float | None = None,
        out: queue.Queue | None = None,
    ) -> None:
        super().__init__(sample_rate_hz, block_dur_s, out)
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (inf = as fast as possible), got {speed}")
        self.path = Path(path)
        self.samples = read_audio_file(self.path, self.sample_rate_hz)
        self.speed = float(speed)
        self.t_lsl_start = t_lsl_start
        self._thread: threading.Thread | None = None

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate_hz

    def describe(self) -> dict:
        return {
            "source": "file",
            "path": str(self.path),
            "sample_rate_hz": self.sample_rate_hz,
            "speed": self.speed,
        }

    def start(self) -> None:
        from pylsl import local_clock

        t0 = local_clock() if self.t_lsl_start is None else float(self.t_lsl_start)
        self.t_lsl_start = t0
        self._thread = threading.Thread(
            target=self._run, args=(t0, local_clock()), daemon=True, name="audio-file"
        )
        self._thread.start()

    def _run(self, t0_lsl: float, t_wall0: float) -> None:
        from pylsl import local_clock

        try:
            rate, n = float(self.sample_rate_hz), self.samples.size
            for first in range(0, n, self.block_len):
                block = self.samples[first : first + self.block_len]
                release_at = t_wall0 + (first + block.size) / rate / self.speed
                while not self._stopped.is_set() and (delay := release_at - local_clock()) > 0:
                    self._stopped.wait(min(delay, 0.05))
                if self._stopped.is_set():
                    break
                self.queue.put_nowait(AudioBlock(t0_lsl + first / rate, block.copy()))
        except Exception as e:  # travel on the queue, never swallowed
            self.queue.put_nowait(DeviceError(f"audio file playback failed: {e}"))
        finally:
            self.queue.put_nowait(None)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the whole file has been delivered (or stopped); True if it finished."""
        if self._thread is None:
            return False
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(5.0)
