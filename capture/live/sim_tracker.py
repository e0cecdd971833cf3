"""``radgaze sim-tracker``: a simulated eye tracker published as a real LSL stream.

Replays gaze in real time, encoded in the channel layout of a real bridge (Tobii Pro, Pupil Capture relay,
Gazepoint, EyeLink, or XDF-generic) with the metadata those bridges publish (channels with label, eye, type,
unit; manufacturer), so everything downstream runs exactly as with hardware. Gaze comes from a session file
(its screen coordinates) or from the synthetic generator.

Python API (used by the demo)::

    sim = SimTracker(gaze, "tobii", 120.0, DisplayGeometry(), name="radgaze-sim").start()
    ...
    sim.stop()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pylsl

from radgaze.capture.base.errors import ConfigError, SessionFormatError
from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry
from radgaze.capture.gazemath.scanpath import synthetic_scanpath
from radgaze.capture.live.gaze.layouts import BUILTIN_LAYOUTS, LAYOUT_NAMES, GazeLayout, encode_samples

# Typical rates of each bridge's tracker: Tobii Pro Spectrum/Fusion 600 Hz class (REFERENCE-NOTES table),
# Pupil Core eye cameras 200 Hz, Gazepoint GP3 60 Hz (REFERENCE-NOTES), EyeLink 1000 at 1000 Hz.
DEFAULT_RATE_HZ = {"tobii": 600.0, "pupil": 200.0, "gazepoint": 60.0, "eyelink": 1000.0, "generic": 120.0}
SYNTH_DURATION_S = 120.0  # built-in scanpath length per loop when no session is given
SYNTH_CASES = 3  # radgaze.capture.synth cases per loop
# Only the gaze is used, and its screen coordinates do not depend on the phantom's resolution (the image is
# fitted to the screen; checked: identical gaze at 512 and 2048 px), so render the smallest useful phantom.
SYNTH_IMAGE_PX = 512
MAX_SLEEP_S = 0.005  # the publishing thread wakes at least this often (to see stop())


def resample_indices(t_src: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Index of the source sample nearest in time to each query time (both in s, t_src sorted)."""
    right = np.clip(np.searchsorted(t_src, t_query), 1, len(t_src) - 1) if len(t_src) > 1 else None
    if right is None:
        return np.zeros(len(t_query), np.int64)
    left = right - 1
    return np.where(t_query - t_src[left] <= t_src[right] - t_query, left, right)


def make_stream_info(
    layout: GazeLayout, rate_hz: float, display: DisplayGeometry, name: str, source_id: str
) -> pylsl.StreamInfo:
    """An LSL StreamInfo with the bridge's name/type/format and XDF Gaze meta-data channels."""
    info = pylsl.StreamInfo(
        name, layout.stream_type, layout.n_channels, rate_hz, layout.channel_format, source_id
    )
    desc = info.desc()
    desc.append_child_value("manufacturer", layout.manufacturer or "radgaze")
    acq = desc.append_child("acquisition")
    acq.append_child_value("manufacturer", layout.manufacturer or "radgaze")
    acq.append_child_value("model", f"radgaze sim-tracker ({layout.name} layout)")
    channels = desc.append_child("channels")
    for i, label in enumerate(layout.labels):
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("eye", layout.channel_eyes[i] if layout.channel_eyes else "both")
        ch.append_child_value("type", layout.channel_types[i] if layout.channel_types else "Misc")
        ch.append_child_value("unit", layout.channel_units[i] if layout.channel_units else "")
    disp = desc.append_child("display")
    for key, value in display.to_dict().items():
        disp.append_child_value(key, str(value))
    return info


class SimTracker:
    """Publish ``gaze`` (GAZE_DTYPE, screen px) as an LSL stream at ``rate_hz``, in real time, in a thread.

    Sample k carries time t0 + k / rate_hz (t0 = local_clock() at start) and the gaze sample nearest to
    k / rate_hz after the first one; the recording loops when ``loop`` (else the thread ends after one pass).
    """

    def __init__(
        self,
        gaze: np.ndarray,
        layout: str | GazeLayout,
        rate_hz: float,
        display: DisplayGeometry,
        *,
        name: str | None = None,
        source_id: str | None = None,
        loop: bool = True,
        duration_s: float | None = None,
        image_fractions: np.ndarray | None = None,
        shown_rect_px: Callable[[], tuple[float, float, float, float] | None] | None = None,
    ) -> None:
        if isinstance(layout, str):
            if layout not in BUILTIN_LAYOUTS:
                raise ConfigError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUT_NAMES)}")
            layout = BUILTIN_LAYOUTS[layout]
        if not rate_hz > 0:
            raise ConfigError(f"sim-tracker rate must be > 0 Hz, got {rate_hz}")
        gaze = np.asarray(gaze)
        if gaze.dtype != GAZE_DTYPE or gaze.size == 0:
            raise ConfigError(
                f"sim-tracker needs a non-empty GAZE_DTYPE array, got {gaze.dtype} x {gaze.size}"
            )
        self.layout = layout
        self.rate_hz = float(rate_hz)
        self.display = display
        self.name = name or layout.stream_name
        self.source_id = source_id or f"radgaze-sim:{self.name}"
        self.loop = loop
        self.duration_s = duration_s
        t = gaze["t_lsl"] - gaze["t_lsl"][0]
        period = max(float(t[-1]) + 1.0 / self.rate_hz, 1.0 / self.rate_hz)
        self._t_src, self._period_s = t, period
        self._gaze = gaze
        self._valid = (gaze["flags"] & GAZE_VALID) != 0
        self._raw = encode_samples(
            layout, gaze["x_screen_px"], gaze["y_screen_px"], gaze["pupil"], self._valid, display
        )
        # the simulated reader looks at the image where it is drawn: each sample's place on the image
        # (fractions of its width and height) goes, at the moment it is pushed, to the screen rectangle the
        # viewer draws the image in now (``shown_rect_px()``: x0, y0, x1, y1 screen px, None when no image)
        if (image_fractions is None) != (shown_rect_px is None):
            raise ConfigError("sim-tracker: image_fractions and shown_rect_px go together, got one of them")
        if image_fractions is not None and np.shape(image_fractions) != (gaze.size, 2):
            raise ConfigError(
                f"sim-tracker image_fractions: expected ({gaze.size}, 2), got {np.shape(image_fractions)}"
            )
        self._fractions, self._shown_rect_px = image_fractions, shown_rect_px
        self.n_pushed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outlet: pylsl.StreamOutlet | None = None
        self.error: BaseException | None = None

    def start(self) -> SimTracker:
        info = make_stream_info(self.layout, self.rate_hz, self.display, self.name, self.source_id)
        self._outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
        self._thread = threading.Thread(target=self._run, name=f"sim-tracker-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop publishing and remove the stream (close any inlets on it first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._outlet = None  # pylsl destroys the outlet with its last reference

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the thread ends (duration reached or one pass done); True if it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> SimTracker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _n_total(self) -> int | None:
        if self.duration_s is not None:
            return int(round(self.duration_s * self.rate_hz))
        return None if self.loop else int(np.ceil(self._period_s * self.rate_hz))

    def _samples(self, idx: np.ndarray) -> np.ndarray:
        """The layout's channels of samples ``idx``: as recorded, or placed on the image as drawn now."""
        rect = self._shown_rect_px() if self._shown_rect_px is not None else None
        if rect is None:
            return self._raw[idx]
        x, y = fractions_to_screen(self._fractions[idx], rect)
        g = self._gaze[idx]
        return encode_samples(self.layout, x, y, g["pupil"], self._valid[idx], self.display)

    def _run(self) -> None:
        try:
            self._publish()
        except BaseException as exc:  # noqa: BLE001 - kept for the owner to inspect and re-raise
            self.error = exc

    def _publish(self) -> None:
        n_total = self._n_total()
        t0 = pylsl.local_clock()
        k = 0
        while not self._stop.is_set() and (n_total is None or k < n_total):
            now = pylsl.local_clock()
            due = int((now - t0) * self.rate_hz) + 1
            if n_total is not None:
                due = min(due, n_total)
            if due > k:
                ks = np.arange(k, due)
                idx = resample_indices(self._t_src, (ks / self.rate_hz) % self._period_s)
                self._outlet.push_chunk(self._samples(idx), list(t0 + ks / self.rate_hz))
                self.n_pushed += due - k
                k = due
            time.sleep(min(MAX_SLEEP_S, max(0.0, t0 + k / self.rate_hz - pylsl.local_clock())))


def fractions_to_screen(
    uv: np.ndarray, rect_px: tuple[float, float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Image fractions (n, 2) -> screen px (x, y) inside the image's screen rectangle (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = rect_px
    return x0 + uv[:, 0] * (x1 - x0), y0 + uv[:, 1] * (y1 - y0)


# ---------------------------------------------------------------------------------------------------------
# where the gaze comes from


def gaze_from_session(path: str | Path) -> tuple[np.ndarray, DisplayGeometry]:
    """All cases' gaze of a session file, back to back (times rebased), and the first case's display."""
    from radgaze.capture.store.reader import (
        SessionReader,  # the session store; imported only when a file is replayed
    )

    parts, display, t_next = [], None, 0.0
    with SessionReader(path) as reader:
        for case in reader.cases():
            g = case.gaze.copy()
            if g.size == 0:
                continue
            display = display or case.display
            g["t_lsl"] = g["t_lsl"] - g["t_lsl"][0] + t_next
            t_next = float(g["t_lsl"][-1]) + 0.01
            parts.append(g)
    if not parts:
        raise SessionFormatError(f"session {path}: expected gaze samples to replay, found none in any case")
    return np.concatenate(parts), display


def synthetic_gaze_on_image(
    seed: int, rate_hz: float, display: DisplayGeometry
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic readings' gaze (GAZE_DTYPE, times rebased back to back) and where each sample lies on its
    case's image, as fractions (n, 2) of the image's width and height (through the view in force): what a
    simulated reader looks at, to be drawn wherever a viewer shows the image."""
    from radgaze.capture.gazemath.geometry import screen_to_image
    from radgaze.capture.synth import synth_reading

    parts, uvs, t_next = [], [], 0.0
    for case in synth_reading(
        seed, n_cases=SYNTH_CASES, rate_hz=rate_hz, display=display, image_size=SYNTH_IMAGE_PX
    ):
        g = case.gaze.copy()
        if g.size == 0:
            continue
        x, y, _ = screen_to_image(g["x_screen_px"], g["y_screen_px"], g["t_lsl"], case.view_events)
        uvs.append(np.stack([x / case.image.width, y / case.image.height], axis=1))
        g["t_lsl"] = g["t_lsl"] - g["t_lsl"][0] + t_next
        t_next = float(g["t_lsl"][-1]) + 1.0 / rate_hz
        parts.append(g)
    if not parts:
        raise ConfigError(f"sim-tracker: the synthetic reading (seed {seed}) has no gaze")
    return np.concatenate(parts), np.concatenate(uvs)


def synthetic_gaze(seed: int, rate_hz: float, display: DisplayGeometry) -> tuple[np.ndarray, str]:
    """Gaze from radgaze.capture.synth (realistic readings) when it imports, else the tiny built-in scanpath.

    Returns (GAZE_DTYPE samples, a line saying which source was used and why).
    """
    try:
        from radgaze.capture.synth import synth_reading
    except ImportError as exc:
        gaze = synthetic_scanpath(seed, SYNTH_DURATION_S, rate_hz, display)
        return gaze, f"built-in scanpath, seed {seed} (radgaze.capture.synth unavailable: {exc})"
    parts, t_next = [], 0.0
    for case in synth_reading(
        seed, n_cases=SYNTH_CASES, rate_hz=rate_hz, display=display, image_size=SYNTH_IMAGE_PX
    ):
        g = case.gaze.copy()
        if g.size:
            g["t_lsl"] = g["t_lsl"] - g["t_lsl"][0] + t_next
            t_next = float(g["t_lsl"][-1]) + 1.0 / rate_hz
            parts.append(g)
    if not parts:
        return synthetic_scanpath(
            seed, SYNTH_DURATION_S, rate_hz, display
        ), "built-in scanpath (synth: no gaze)"
    return np.concatenate(parts), f"radgaze.capture.synth reading, seed {seed}, {SYNTH_CASES} cases"
