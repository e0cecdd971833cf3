"""Where the record window's scene markers are on the screen, published on LSL for the head-mounted bridges.

``radgaze record --scene-markers`` draws four AprilTag markers at the corners of its image view, which is never
the whole screen (toolbars, the transcript panel) and moves when the window is moved or resized. A bridge that
assumed the screen's corners mapped gaze to the wrong place with no error. So the window publishes its layout:

* stream name :data:`STREAM_NAME`, type :data:`STREAM_TYPE`, one string channel, irregular rate, source id
  ``radgaze-scene-markers-<pid>`` (the record window and its bridges run on one computer);
* each sample is JSON ``{"format": "radgaze.markers", "version": 1, "markers": [{"id": 0, "corners_px":
  [[x, y] x 4]}, ...]}``: each marker's black square in physical screen px, corners in the detector's order
  (capture/gazemath/surface.py ``square_corners``);
* pushed whenever the layout changes and again every :data:`REPEAT_S` (an inlet receives only what is pushed
  after it connects), so a bridge started before or after the window gets it within that time.

The bridges (``pupil-bridge``, ``neon-bridge``) follow the newest layout while they run (:class:`ScreenMarkerSource`;
they start before the window, which needs their stream first); ``--viewer`` fixes the layout instead. Until a layout
has come, their gaze is published invalid: never mapped through a guessed layout.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pylsl

from radgaze.capture.base.errors import StreamLayoutError
from radgaze.capture.gazemath.surface import ScreenMarker

STREAM_NAME = "radgaze_SceneMarkers"
STREAM_TYPE = "radgaze.markers"
FORMAT = "radgaze.markers"
VERSION = 1
REPEAT_S = 1.0
LOOK_EVERY_S = 0.5  # how often a bridge looks for the window's stream until it has it


def encode_layout(markers: list[ScreenMarker]) -> str:
    """One sample of the layout stream."""
    return json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "markers": [
                {"id": int(m.tag_id), "corners_px": np.round(m.corners_px, 3).tolist()} for m in markers
            ],
        }
    )


def decode_layout(text: str) -> list[ScreenMarker]:
    """The markers of one sample; StreamLayoutError (one line: what was expected, what came) otherwise."""
    try:
        message = json.loads(text)
        if message.get("format") != FORMAT or message.get("version") != VERSION:
            raise ValueError(f"format {message.get('format')!r} version {message.get('version')!r}")
        markers = [
            ScreenMarker(int(m["id"]), np.asarray(m["corners_px"], np.float64)) for m in message["markers"]
        ]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StreamLayoutError(
            f"{STREAM_NAME}: expected a {FORMAT} v{VERSION} JSON layout, got {text[:80]!r} ({exc})"
        ) from None
    for m in markers:
        if m.corners_px.shape != (4, 2) or not np.isfinite(m.corners_px).all():
            raise StreamLayoutError(
                f"{STREAM_NAME}: expected 4 finite (x, y) corners per marker, got {m.corners_px.tolist()!r}"
            )
    return markers


class MarkerLayoutOutlet:
    """The window's side: :meth:`publish` the current layout as often as liked (changes and repeats are sent)."""

    def __init__(self) -> None:
        source_id = f"radgaze-scene-markers-{os.getpid()}"
        info = pylsl.StreamInfo(STREAM_NAME, STREAM_TYPE, 1, pylsl.IRREGULAR_RATE, "string", source_id)
        self._outlet = pylsl.StreamOutlet(info)
        self._last_text, self._last_sent = "", float("-inf")

    def publish(self, markers: list[ScreenMarker]) -> bool:
        """Send the layout if it changed or :data:`REPEAT_S` has passed; whether it was sent."""
        text = encode_layout(markers)
        if text == self._last_text and time.monotonic() - self._last_sent < REPEAT_S:
            return False
        self._outlet.push_sample([text])
        self._last_text, self._last_sent = text, time.monotonic()
        return True

    def close(self) -> None:
        self._outlet = None


class MarkerLayoutInlet:
    """The bridge's side: the newest layout a record window published (None until one came)."""

    def __init__(self, info: pylsl.StreamInfo) -> None:
        self.source_id = info.source_id()
        self._inlet = pylsl.StreamInlet(info, max_buflen=2, recover=True)
        self.markers: list[ScreenMarker] | None = None
        self.n_layouts = 0

    def poll(self) -> bool:
        """Take every layout that came (the newest wins), without waiting; whether the layout changed."""
        changed = False
        while True:
            sample, _ = self._inlet.pull_sample(timeout=0.0)
            if sample is None:
                return changed
            markers = decode_layout(sample[0])
            if self.markers is None or _moved(self.markers, markers):
                self.markers, changed = markers, True
                self.n_layouts += 1

    def close(self) -> None:
        self._inlet.close_stream()


class ScreenMarkerSource:
    """Where a bridge takes the screen's markers from: a fixed layout (``--viewer``), or the record window's,
    followed while the bridge runs (looked for every :data:`LOOK_EVERY_S` until it appears)."""

    def __init__(self, fixed: list[ScreenMarker] | None) -> None:
        self.fixed, self.markers = fixed, fixed
        self._resolver = None if fixed is not None else pylsl.ContinuousResolver("type", STREAM_TYPE)
        self._inlet: MarkerLayoutInlet | None = None
        self._next_look = 0.0

    @property
    def description(self) -> str:
        if self.fixed is not None:
            return "--viewer"
        if self._inlet is None:
            return f"the record window's layout ({STREAM_NAME}), not received"
        return f"the record window's layout ({STREAM_NAME} from {self._inlet.source_id})"

    @property
    def n_layouts(self) -> int:
        return self._inlet.n_layouts if self._inlet is not None else int(self.fixed is not None)

    def update(self) -> list[ScreenMarker] | None:
        """The markers when they changed since the last call (else None); a few microseconds when nothing came."""
        if self.fixed is not None:
            return None
        if self._inlet is None:
            if time.monotonic() < self._next_look:
                return None
            self._next_look = time.monotonic() + LOOK_EVERY_S
            info = _one_window(self._resolver.results())
            if info is None:
                return None
            self._inlet = MarkerLayoutInlet(info)
        if not self._inlet.poll():
            return None
        self.markers = self._inlet.markers
        return self.markers

    def close(self) -> None:
        if self._inlet is not None:
            self._inlet.close()
        self._resolver = None


def _one_window(infos: list[pylsl.StreamInfo]) -> pylsl.StreamInfo | None:
    """The one window's stream (a window closed within the resolver's memory and reopened by the same process has
    the same source id: one window)."""
    infos = list({i.source_id(): i for i in infos if i.name() == STREAM_NAME}.values())
    if len(infos) > 1:
        names = ", ".join(i.source_id() for i in infos)
        raise StreamLayoutError(
            f"{STREAM_NAME}: expected one record window publishing scene markers, got {len(infos)} ({names}); "
            "close the others or give --viewer"
        )
    return infos[0] if infos else None


def _moved(old: list[ScreenMarker], new: list[ScreenMarker]) -> bool:
    if [m.tag_id for m in old] != [m.tag_id for m in new]:
        return True
    return any(not np.allclose(a.corners_px, b.corners_px) for a, b in zip(old, new))
