"""``radgaze neon-bridge``: Pupil Labs Neon gaze mapped onto the screen, published as a screen-gaze LSL stream.

Neon's gaze is in its scene camera's image, never screen gaze (radgaze refuses its LSL relay's stream). This bridge
reads the Neon Companion over its real-time API with Pupil Labs' own client (capture/live/gaze/neon.py): the
scene video (H.264) and gaze with the phone's time stamps, the scene camera's calibration, the phone's clock
against the LSL clock (Time Echo). As ``radgaze pupil-bridge`` does for Pupil Core, each decoded frame's AprilTag
markers (``radgaze record --scene-markers``) give the scene->screen homography after marker corners and gaze are
undistorted with that calibration, and each datum goes through the frames around it
(capture/live/gaze/scene_mapper.py). The mapped gaze is published in radgaze's generic layout on the LSL clock.

Refused in one line before any stream is published: no Companion at --device, its scene camera or gaze not
connected, no calibration, no gaze or no frames within ``--startup-s``; after publishing (gaze invalid until the
markers show), no frame with the markers within ``--markers-within-s``: exit 2.
"""

from __future__ import annotations

import argparse
import queue
import time
from pathlib import Path

import numpy as np
import pylsl

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.base.helpformat import DefaultsOnceFormatter
from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.live.gaze.neon import (
    DEFAULT_DEVICE,
    NeonFrame,
    NeonGaze,
    NeonReceiver,
    NeonStreams,
    read_device_now,
)
from radgaze.capture.live.gaze.pupil_bridge import (
    MARKERS_WITHIN_S,
    RESYNC_S,
    STARTUP_S,
    ScreenGazePublisher,
    add_run_options,
    add_screen_options,
    frames_to_search,
    refuse_without_markers,
    run_bridge,
    screen_and_markers,
)
from radgaze.capture.live.gaze.pupil_core import GazeDatum, SceneFrame
from radgaze.capture.live.gaze.scene_mapper import MappedGaze, SceneGazeMapper
from radgaze.capture.live.marker_layout import ScreenMarkerSource

STREAM_NAME = "radgaze-neon"
POLL_S = 0.05


def _refuse_startup(counts, gaze_received: int, seconds: float, address: str) -> None:
    """One line on why Neon's gaze cannot be mapped yet, and what to do."""
    if gaze_received == 0:
        raise ConfigError(
            f"Neon Companion at {address} sent no gaze in {seconds:g} s: check that the glasses are worn and the "
            "app shows gaze"
        )
    if counts.frames == 0:
        raise ConfigError(
            f"Neon Companion at {address} sent no decodable scene video in {seconds:g} s: check that the app shows "
            "the scene camera"
        )
    refuse_without_markers(counts, seconds)


class NeonBridge(ScreenGazePublisher):
    """Neon Companion -> mapped screen gaze -> an LSL outlet (generic layout), in a thread after :meth:`open`."""

    thread_name = "neon-bridge"

    def __init__(self, address: str, display: DisplayGeometry, markers: ScreenMarkerSource) -> None:
        super().__init__(display, markers)
        self.address = address
        self.markers_within_s, self.resync_s = MARKERS_WITHIN_S, RESYNC_S
        self.mapper: SceneGazeMapper | None = None
        self.receiver: NeonReceiver | None = None
        self.streams: NeonStreams | None = None
        self.frame_size: tuple[int, int] | None = None  # (W, H) of the scene video, from its first frame
        self._early_gaze: list[NeonGaze] = []  # gaze before the first frame (its size turns px into norm_pos)
        self._t_searched = -np.inf
        self.gaze_received = 0

    @property
    def offset_s(self) -> float:
        """The phone's clock - the LSL clock (s), as last measured."""
        return self.receiver.clock[0]

    def open(self, startup_s: float = STARTUP_S, name: str = STREAM_NAME) -> NeonBridge:
        """Status, calibration and clock; then wait for gaze and decoded frames (else a ConfigError) and
        publish (gaze invalid until the markers show; without them within ``markers_within_s`` the thread stops
        with a ConfigError in ``error``)."""
        self.streams, clock = read_device_now(self.address)
        # lenses: the calibration, entered for the video's size at its first frame
        self.mapper = SceneGazeMapper(self.marker_source.markers, lenses={})
        self.receiver = NeonReceiver(self.streams)
        self.receiver.resync_s = self.resync_s
        self.receiver.set_clock(*clock)
        self.receiver.start()
        deadline = time.monotonic() + startup_s
        while not (self.gaze_received and self.mapper.counts.frames):
            if time.monotonic() > deadline or not self.receiver.running:
                self.close()
                self._raise_receiver_error()
                _refuse_startup(self.mapper.counts, self.gaze_received, startup_s, self.address)
            self._step(publish=False)
        self._publish(name)
        return self

    def _stream_info(self, name: str) -> pylsl.StreamInfo:
        info, mapping = self._stream_with_mapping(name)
        s = self.streams
        mapping.append_child_value("source", f"Neon Companion real-time API at {self.address} ({s.device_name}, "
                                             f"module {s.module_serial})")  # fmt: skip
        mapping.append_child_value(
            "method", "AprilTag tag36h11 markers -> scene-to-screen homography per frame (radgaze)"
        )
        lens = s.lens
        mapping.append_child_value("lens", "undistorted with the Companion's scene camera calibration: K "
                                           f"{lens.camera_matrix.tolist()}, D {lens.dist_coefs.tolist()}")  # fmt: skip
        mapping.append_child_value("markers", self._markers_json())
        clock = "Time Echo" if s.echo else "this computer's wall clock (the app has no Time Echo)"
        mapping.append_child_value("clock", clock)
        mapping.append_child_value("phone_minus_lsl_clock_s", repr(self.offset_s))
        return info

    def _drain(self) -> list:
        """Everything the receiver has (waiting up to POLL_S for the first item)."""
        items = []
        try:
            items.append(self.receiver.items.get(timeout=POLL_S))
            while True:
                items.append(self.receiver.items.get_nowait())
        except queue.Empty:
            pass
        return items

    def _step(self, publish: bool) -> None:
        """Everything waiting, gaze in order; behind, fewer frames are searched (never less gaze)."""
        self._follow_layout()
        items = self._drain()
        frames = [i for i, item in enumerate(items) if isinstance(item, NeonFrame)]
        times = [items[i].t_phone for i in frames]
        keep, self._t_searched = frames_to_search(times, self._t_searched, self.mapper.tracking)
        searched = {frames[k] for k in keep}
        for i, item in enumerate(items):
            if isinstance(item, NeonFrame) and i not in searched:
                self.mapper.counts.frames_skipped += 1
                continue
            mapped = self._map(item)
            if mapped is not None and mapped.t_pupil.size:
                self._push(mapped) if publish else self._held.append(mapped)

    def _map(self, item: NeonFrame | NeonGaze) -> MappedGaze | None:
        if isinstance(item, NeonFrame):
            grey = item.grey()
            first = self.frame_size is None
            self.frame_size = (grey.shape[1], grey.shape[0])
            if first:  # Neon's scene camera has one resolution; the calibration is for it
                self.mapper.lenses[self.frame_size] = self.streams.lens
            mapped = self.mapper.add_frame(SceneFrame(item.t_phone, self.mapper.counts.frames, grey))
            if first and self._early_gaze:
                early, self._early_gaze = self._early_gaze, []
                return _concat([mapped] + [self.mapper.add_gaze(self._datum(g)) for g in early])
            return mapped
        self.gaze_received += 1
        if self.frame_size is None:
            self._early_gaze.append(item)
            return None
        return self.mapper.add_gaze(self._datum(item))

    def _datum(self, g: NeonGaze) -> GazeDatum:
        """Neon's scene px as Pupil's norm_pos (origin bottom-left) of this frame size; not worn: confidence 0."""
        w, h = self.frame_size
        return GazeDatum(g.t_phone, g.x_scene_px / w, 1.0 - g.y_scene_px / h, 1.0 if g.worn else 0.0)

    def _raise_receiver_error(self) -> None:
        """What stopped the client's streams, in one line."""
        exc = self.receiver.error
        if isinstance(exc, ConfigError):
            raise exc
        if exc is not None:
            raise ConfigError(
                f"the Neon Companion at {self.address} stopped streaming ({type(exc).__name__}: {exc})"
            ) from exc

    def _check(self, markers_by: float) -> None:
        self._raise_receiver_error()
        if not self.receiver.running:
            raise ConfigError(f"the Neon Companion at {self.address} stopped streaming")
        counts = self.mapper.counts
        if not counts.frames_mapped and time.monotonic() > markers_by:
            _refuse_startup(counts, self.gaze_received, self.markers_within_s, self.address)

    def _run(self) -> None:
        try:
            markers_by = time.monotonic() + self.markers_within_s
            while not self._stop.is_set():
                self._step(publish=True)
                self._check_layout(markers_by)
                self._check(markers_by)
            self._push(self.mapper.flush())
        except BaseException as exc:  # noqa: BLE001 (handed to the caller through .error)
            self.error = exc

    def close(self) -> None:
        self._join()
        if self.receiver is not None:
            self.receiver.stop()

    def summary(self) -> dict:
        r = self.receiver
        offsets = [o for _, o, _ in r.clock_log]
        return {**self.mapper.counts.to_dict(), **self._layout_summary(), "pushed": self.n_pushed,
                "phone_minus_lsl_s": self.offset_s,
                "clock_rtt_s": max(t for _, _, t in r.clock_log), "clock_syncs": len(r.clock_log),
                "clock_sync_failures": r.clock_failures, "frames_damaged": r.frames_damaged,
                "clock_offset_span_s": max(offsets) - min(offsets)}  # fmt: skip


def _concat(parts: list[MappedGaze]) -> MappedGaze:
    return MappedGaze(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                        ("t_pupil", "x_screen_px", "y_screen_px", "valid", "confidence")))  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze neon-bridge",
        description="Pupil Labs Neon (the Companion app's real-time API) gaze mapped onto the screen through the "
        "AprilTag markers of `radgaze record --scene-markers`, undistorted with the device's scene camera "
        f"calibration, published as screen gaze on LSL (stream {STREAM_NAME!r}). Needs radgaze[headmounted].",
        formatter_class=DefaultsOnceFormatter,
    )
    p.add_argument(
        "--device", default=DEFAULT_DEVICE, help="the Companion app's HOST:PORT (the app shows it)"
    )
    add_screen_options(p)
    p.add_argument(
        "--resync-s", type=float, default=RESYNC_S, help="measure the phone's clock (Time Echo) this often, s"
    )
    add_run_options(p)
    p.add_argument("--name", default=STREAM_NAME, help="LSL stream name")
    p.add_argument("--summary", type=Path, default=None, help="write the closing counts as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    display, markers = screen_and_markers(args)
    address = args.device.removeprefix("http://").rstrip("/")
    if ":" not in address or not address.rpartition(":")[2].isdigit():
        raise ConfigError(f"--device: expected HOST:PORT (e.g. {DEFAULT_DEVICE}), got {args.device!r}")
    bridge = NeonBridge(address, display, markers)
    return run_bridge(bridge, args, f"Neon at {address}", "phone clock", "neon-bridge")
