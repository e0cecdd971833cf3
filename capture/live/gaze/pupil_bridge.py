"""``radgaze pupil-bridge``: Pupil Core gaze mapped onto the screen, published as a screen-gaze LSL stream.

Pupil Capture's gaze is in its scene camera's image, never screen gaze (radgaze refuses the LSL relay's stream).
This bridge reads Pupil Capture over its own network API (capture/live/gaze/pupil_core.py): Pupil Remote for the
IPC backbone's SUB port and the clock, then ``gaze.*`` and the Frame Publisher's ``frame.world``. Each scene frame's
AprilTag markers (drawn by ``radgaze record --scene-markers`` at the viewer's corners) give the scene->screen
homography, and each gaze datum goes through the frame nearest it in time (capture/live/gaze/scene_mapper.py).
The mapped gaze is published in radgaze's generic layout (XDF Gaze meta-data, normalised screen coordinates) on
the LSL clock (Pupil time - the measured offset), so ``radgaze record`` reads it like any screen tracker.

Refused in one line, before any stream is published: no Pupil Remote, no gaze, no scene frames (the Frame
Publisher is off), or scene frames that show fewer than 2 of the screen's markers within ``--startup-s``.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pylsl
import zmq

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.base.helpformat import DefaultsOnceFormatter
from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.gazemath.surface import MIN_MARKERS, ScreenMarker, corner_markers
from radgaze.capture.io.display import display_from_options
from radgaze.capture.live.gaze.layouts import BUILTIN_LAYOUTS, encode_samples
from radgaze.capture.live.gaze.pupil_core import (
    DEFAULT_REMOTE,
    FRAME_TOPIC,
    GAZE_TOPIC,
    SURFACE_TOPIC,
    PupilRemote,
    clock_offset_s,
    gaze_datum,
    read_intrinsics,
    receive_all,
    scene_frame,
    subscribe,
)
from radgaze.capture.live.gaze.scene_mapper import MappedGaze, SceneGazeMapper, SurfaceGazeMapper
from radgaze.capture.live.marker_layout import STREAM_NAME as LAYOUT_STREAM
from radgaze.capture.live.marker_layout import ScreenMarkerSource
from radgaze.capture.live.scene_markers import OVERLAY_CELL_PX, OVERLAY_MARGIN_PX, MarkerDetector
from radgaze.capture.live.sim_tracker import make_stream_info

STREAM_NAME = "radgaze-pupil-core"
STARTUP_S = 5.0  # for Pupil Remote's answer, gaze and scene frames; then the stream is published
# ... and the markers must show within this long: `radgaze record` opens the tracker's stream before its window
# draws them, so until then the bridge publishes the gaze as invalid (nothing is placed on the screen unmapped)
MARKERS_WITHIN_S = 30.0
POLL_MS = 50
NOMINAL_RATE_HZ = 0.0  # irregular (LSL's IRREGULAR_RATE): mapped gaze goes out as its frames come
# Pupil time is measured against the LSL clock again this often: Pupil Capture on another machine runs on that
# machine's clock (10-50 ppm apart is common: 36-180 ms an hour if measured once)
RESYNC_S = 10.0
# behind, frames are searched at least this far apart (a datum between two of them is within 0.1 s of both)
SEARCH_SPACING_S = 0.06
# ... and while no markers are tracked, whole frames this far apart (searching each waiting frame whole put a bridge
# seconds behind under load: its gaze, all invalid, reached the recorder after the recording had ended)
LOST_SEARCH_S = 0.5
RESYNC_PROBES = 10


def overlay_markers(
    display: DisplayGeometry,
    viewer_px: tuple[float, float, float, float] | None = None,
    cell_px: int = OVERLAY_CELL_PX,
    margin_px: int = OVERLAY_MARGIN_PX,
) -> list[ScreenMarker]:
    """Where ``radgaze record --scene-markers`` draws the markers' black squares: at the corners of the viewer
    (``viewer_px`` = x, y, w, h in screen px; default the whole screen), ``margin_px`` in, ``cell_px`` cells."""
    detector = MarkerDetector()
    offset, side = detector.black_square_px(cell_px)
    x, y, w, h = viewer_px or (0, 0, display.screen_w_px, display.screen_h_px)
    area = DisplayGeometry(
        int(w), int(h), display.screen_w_mm, display.screen_h_mm, display.viewing_distance_mm
    )
    out = []
    for m in corner_markers(area, side, margin_px + offset):
        out.append(ScreenMarker(m.tag_id, m.corners_px + np.array([x, y], np.float64)))
    return out


def frames_to_search(times: list[float], t_searched: float, tracking: bool = True) -> tuple[set[int], float]:
    """Of the frames waiting (their device times, in order), which to search for markers. Tracking (the last
    frame searched showed them, so the next is searched in small crops): the newest, and others at least
    ``SEARCH_SPACING_S`` after the last searched (``t_searched``), so every datum keeps a searched frame on each
    side within the mapper's 0.1 s however far behind. Not tracking (a whole frame to search: ~30 ms at 1280 x 720,
    ~80 ms at 1600 x 1200): only frames ``LOST_SEARCH_S`` apart. Returns (their indices, the new ``t_searched``)."""
    spacing_s = SEARCH_SPACING_S if tracking else LOST_SEARCH_S
    keep = {len(times) - 1} if times and tracking else set()
    for i, t in enumerate(times[: -1 if tracking else None]):
        if t - t_searched >= spacing_s:
            keep.add(i)
            t_searched = t
    return keep, (times[-1] if times and tracking else t_searched)


def push_mapped(
    outlet: pylsl.StreamOutlet,
    layout,
    display: DisplayGeometry,
    mapped: MappedGaze,
    device_minus_lsl_s: float,
) -> int:
    """Mapped gaze out as screen gaze in ``layout`` (generic), on the LSL clock (device time - the offset);
    confidence 0 where invalid. Returns the number of samples pushed."""
    pupil = np.full(mapped.t_pupil.size, np.nan)
    raw = encode_samples(layout, mapped.x_screen_px, mapped.y_screen_px, pupil, mapped.valid, display)
    raw[:, layout.confidence] = np.where(mapped.valid, mapped.confidence, 0.0)
    for sample, t in zip(raw, mapped.t_pupil - device_minus_lsl_s):
        outlet.push_sample(sample.tolist(), float(t))
    return int(raw.shape[0])


def _refuse_surface(counts, seconds: float, address: str, surface: str) -> None:
    """One line on why the Surface Tracker's gaze did not come, and what to do."""
    if counts.frames == 0:
        raise ConfigError(
            f"scene-camera gaze refused: Pupil Capture at {address} sent no 'surfaces.{surface}' event in "
            f"{seconds:g} s (the Surface Tracker publishes one per frame where it finds the surface): turn on its "
            f"Surface Tracker, add a surface named {surface!r} with the four markers of `radgaze record "
            "--scene-markers` in view, and keep the monitor in the scene camera's view"
        )
    raise ConfigError(
        f"Pupil Capture at {address}: {counts.frames} 'surfaces.{surface}' events in {seconds:g} s carried no "
        "gaze: calibrate it (gaze needs a calibration) and check that its eye cameras run"
    )


def _refuse_startup(counts, seconds: float, address: str) -> None:
    """One line on why Pupil Capture's gaze cannot be mapped yet, and what to do."""
    if counts.gaze == 0:
        raise ConfigError(
            f"Pupil Capture at {address} sent no gaze in {seconds:g} s: calibrate it (gaze needs a calibration) "
            "and check that its eye cameras run"
        )
    if counts.frames == 0:
        raise ConfigError(
            f"Pupil Capture at {address} sent no scene frames (frame.world) in {seconds:g} s: turn on its Frame "
            "Publisher plugin (format gray), so radgaze can find the screen's markers in the scene camera"
        )
    refuse_without_markers(counts, seconds)


def refuse_without_markers(counts, seconds: float) -> None:
    """The one line when scene frames came but too few showed the screen's markers (any head-mounted bridge)."""
    seen = f"tags seen: {sorted(counts.tags_seen)}" if counts.tags_seen else "no tags seen"
    raise ConfigError(
        f"scene-camera gaze refused: {counts.frames_mapped} of {counts.frames} scene frames in {seconds:g} s "
        f"showed >= {MIN_MARKERS} of the screen's markers (tag36h11 ids 0-3; {seen}), so gaze in the scene "
        "camera cannot be placed on the screen: draw them with `radgaze record --scene-markers`, keep the monitor "
        "in the scene camera's view, and give --viewer if the viewer does not fill the screen"
    )


class ScreenGazePublisher:
    """What Pupil Core's and Neon's bridges share: screen gaze mapped before the stream opens is held and published
    with it, then a thread maps and publishes (:meth:`_run`, the subclass's) until :meth:`close`; what stops it is
    kept in ``error``. Subclasses give ``offset_s`` (device clock - LSL clock), ``_stream_info`` and ``_run``."""

    thread_name = "scene-gaze-bridge"

    def __init__(self, display: DisplayGeometry, markers: ScreenMarkerSource) -> None:
        self.display, self.marker_source = display, markers
        self.layout = BUILTIN_LAYOUTS["generic"]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outlet: pylsl.StreamOutlet | None = None
        self._held: list[MappedGaze] = []
        self.n_pushed = 0
        self.error: BaseException | None = None

    def _stream_with_mapping(self, name: str) -> tuple[pylsl.StreamInfo, object]:
        """The stream's header (generic layout, the display) and its ``mapping`` element, for the subclass to say
        how its gaze was mapped."""
        info = make_stream_info(self.layout, NOMINAL_RATE_HZ, self.display, name, f"{name}@{self.address}")
        return info, info.desc().append_child("mapping")

    def _follow_layout(self) -> None:
        """The record window moved its markers (or published them for the first time): map through them."""
        markers = self.marker_source.update()
        if markers is not None:
            self.mapper.set_markers(markers)

    def _check_layout(self, markers_by: float) -> None:
        """The one line when no record window has said where its markers are by ``markers_by`` (monotonic s)."""
        if self.marker_source.markers is None and time.monotonic() > markers_by:
            raise ConfigError(
                f"scene-camera gaze refused: no record window said where its markers are on the screen (LSL "
                f"stream {LAYOUT_STREAM!r}) within {self.markers_within_s:g} s, so gaze cannot be placed: record "
                "with `radgaze record --scene-markers` on this computer, or give --viewer X,Y,W,H (--viewer screen "
                "when the markers are at the screen's corners)"
            )

    def _layout_summary(self) -> dict:
        return {
            "markers_from": self.marker_source.description,
            "marker_layouts": self.marker_source.n_layouts,
        }

    def _markers_json(self) -> str:
        """What the stream's ``mapping`` says of the markers: where they are, or where they will come from."""
        fixed = self.marker_source.fixed
        if fixed is None:
            return json.dumps({"followed": self.marker_source.description})
        return json.dumps({m.tag_id: m.corners_px.tolist() for m in fixed})

    def _publish(self, name: str) -> None:
        """Open the stream, push what was held, and start mapping in the thread."""
        self._outlet = pylsl.StreamOutlet(self._stream_info(name))
        for held in self._held:
            self._push(held)
        self._held.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _push(self, mapped: MappedGaze) -> None:
        self.n_pushed += push_mapped(self._outlet, self.layout, self.display, mapped, self.offset_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _join(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)


class PupilBridge(ScreenGazePublisher):
    """Pupil Capture -> mapped screen gaze -> an LSL outlet (generic layout), in a thread after :meth:`open`."""

    thread_name = "pupil-bridge"

    def __init__(
        self,
        address: str,
        display: DisplayGeometry,
        markers: ScreenMarkerSource,
        surface: str | None = None,
        **mapper_kw,
    ) -> None:
        """``surface``: take the Surface Tracker's mapped gaze of that surface (``surfaces.<name>``) instead of
        finding the markers in the Frame Publisher's frames."""
        super().__init__(display, markers)
        markers = markers.markers
        self.address, self.surface = address, surface
        if surface is None:
            self.mapper: SceneGazeMapper | SurfaceGazeMapper = SceneGazeMapper(markers, **mapper_kw)
            self.topics: tuple[str, ...] = (GAZE_TOPIC, FRAME_TOPIC)
        else:  # gaze too: published as invalid until the Surface Tracker first finds the surface
            self.mapper, self.topics = SurfaceGazeMapper(markers), (f"{SURFACE_TOPIC}{surface}", GAZE_TOPIC)
        self.markers_within_s, self.raw_gaze = MARKERS_WITHIN_S, 0
        self._t_searched = -np.inf  # Pupil time of the last frame searched for markers
        self._ctx = zmq.Context()
        self.offset_s = self.rtt_s = float("nan")
        self.resync_s = RESYNC_S
        self.clock_log: list[tuple[float, float, float]] = []  # (LSL time, Pupil - LSL, round trip) measured
        self.clock_failures = 0  # resyncs Pupil Remote did not answer (the last offset kept)

    def open(self, startup_s: float = STARTUP_S, name: str = STREAM_NAME) -> PupilBridge:
        """Connect, sync clocks and wait for gaze and scene frames (else a ConfigError); then publish (gaze
        invalid until the markers show; without them within ``markers_within_s`` the thread stops with a
        ConfigError in ``error``)."""
        remote = PupilRemote(self._ctx, self.address)
        try:
            self._sub = subscribe(self._ctx, remote.sub_url(), self.topics)
            self._set_offset(*clock_offset_s(remote))
        finally:
            remote.close()
        deadline = time.monotonic() + startup_s
        counts = self.mapper.counts
        while not self._flowing():
            if time.monotonic() > deadline:
                self.close()
                _refuse_startup(counts, startup_s, self.address)
            self._step(publish=False)
        self._publish(name)
        return self

    def _stream_info(self, name: str) -> pylsl.StreamInfo:
        info, mapping = self._stream_with_mapping(name)
        mapping.append_child_value("source", f"Pupil Capture network API at {self.address}")
        method = (
            "AprilTag tag36h11 markers -> scene-to-screen homography per frame (radgaze)"
            if self.surface is None
            else f"Pupil Capture's Surface Tracker, surface {self.surface!r} (undistorted) -> its screen rectangle"
        )
        mapping.append_child_value("method", method)
        lenses = getattr(self.mapper, "lenses", None)
        lens = f"undistorted with intrinsics for {sorted(lenses)}" if lenses else "not modelled"
        mapping.append_child_value("lens", "Pupil Capture's (surface mode)" if self.surface else lens)
        mapping.append_child_value("markers", self._markers_json())
        mapping.append_child_value("pupil_minus_lsl_clock_s", repr(self.offset_s))
        return info

    def _step(self, publish: bool) -> None:
        """Everything waiting, gaze in order. A frame takes ~30 ms to search for markers: behind, the bridge
        catches up by searching fewer frames (:meth:`_frames_to_search`), never by losing gaze."""
        self._follow_layout()
        messages = receive_all(self._sub, POLL_MS)
        searched = self._frames_to_search(messages)
        for i, (topic, message) in enumerate(messages):
            if topic.startswith(FRAME_TOPIC) and i not in searched:
                self.mapper.counts.frames_skipped += 1
                continue
            mapped = self._map(topic, message)
            if mapped is not None and mapped.t_pupil.size:
                self._push(mapped) if publish else self._held.append(mapped)

    def _frames_to_search(self, messages: list[tuple[str, dict]]) -> set[int]:
        """Of the frames waiting, the newest, and older ones at least ``SEARCH_SPACING_S`` after the last frame
        searched: every datum keeps a searched frame on each side within the mapper's 0.1 s however far behind."""
        frames = [i for i, (topic, _) in enumerate(messages) if topic.startswith(FRAME_TOPIC)]
        times = [float(messages[i][1].get("timestamp", np.nan)) for i in frames]
        keep, self._t_searched = frames_to_search(
            times, self._t_searched, getattr(self.mapper, "tracking", True)
        )
        return {frames[k] for k in keep}

    def _flowing(self) -> bool:
        """Gaze (and in frame mode, scene frames) coming from Pupil Capture."""
        counts = self.mapper.counts
        if self.surface is not None:
            return self.raw_gaze > 0 or counts.frames > 0
        return counts.gaze > 0 and counts.frames > 0

    def _check_markers(self, markers_by: float) -> None:
        """The one-line refusal when no frame has shown the markers by ``markers_by`` (monotonic s)."""
        counts = self.mapper.counts
        if counts.frames_mapped or time.monotonic() <= markers_by:
            return
        if self.surface is not None:
            _refuse_surface(counts, self.markers_within_s, self.address, self.surface)
        _refuse_startup(counts, self.markers_within_s, self.address)

    def _map(self, topic: str, message: dict) -> MappedGaze | None:
        if self.surface is not None:
            if topic.startswith(GAZE_TOPIC):  # before the surface is first found: the gaze, invalid
                self.raw_gaze += 1
                return _unmapped(gaze_datum(message)) if self.mapper.counts.frames == 0 else None
            exact = topic == f"{SURFACE_TOPIC}{self.surface}"  # the subscription also takes longer names
            return self.mapper.add_surface_event(message) if exact else None
        if topic.startswith(FRAME_TOPIC):
            return self.mapper.add_frame(scene_frame(message))
        if topic.startswith(GAZE_TOPIC):
            return self.mapper.add_gaze(gaze_datum(message))
        return None

    def _set_offset(self, offset_s: float, rtt_s: float) -> None:
        self.offset_s, self.rtt_s = offset_s, rtt_s
        self.clock_log.append((pylsl.local_clock(), offset_s, rtt_s))

    def _resync(self) -> None:
        """Pupil time against the LSL clock again (this thread's own REQ socket); Pupil Remote not answering
        keeps the last offset and is counted, the gaze goes on."""
        try:
            remote = PupilRemote(self._ctx, self.address)
            try:
                self._set_offset(*clock_offset_s(remote, RESYNC_PROBES))
            finally:
                remote.close()
        except ConfigError:
            self.clock_failures += 1

    def _run(self) -> None:
        try:
            next_sync = time.monotonic() + self.resync_s
            markers_by = time.monotonic() + self.markers_within_s
            while not self._stop.is_set():
                self._step(publish=True)
                self._check_layout(markers_by)
                self._check_markers(markers_by)
                if time.monotonic() >= next_sync:
                    self._resync()
                    next_sync = time.monotonic() + self.resync_s
            self._push(self.mapper.flush())
        except BaseException as exc:  # noqa: BLE001 (handed to the caller through .error)
            self.error = exc

    def close(self) -> None:
        self._join()
        self._ctx.destroy(linger=0)

    def summary(self) -> dict:
        offsets = [o for _, o, _ in self.clock_log]
        return {**self.mapper.counts.to_dict(), **self._layout_summary(), "pushed": self.n_pushed,
                "pupil_minus_lsl_s": self.offset_s,
                "clock_rtt_s": max(r for _, _, r in self.clock_log) if self.clock_log else float("nan"),
                "clock_syncs": len(self.clock_log), "clock_sync_failures": self.clock_failures,
                "clock_offset_span_s": max(offsets) - min(offsets) if offsets else 0.0}  # fmt: skip


def _unmapped(d) -> MappedGaze:
    """One gaze datum published as invalid (no screen position)."""
    return MappedGaze(np.array([d.t_pupil]), np.full(1, np.nan), np.full(1, np.nan), np.zeros(1, bool),
                      np.array([d.confidence]))  # fmt: skip


def parse_viewer(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    parts = text.replace(",", " ").split()
    try:
        x, y, w, h = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--viewer: expected X,Y,W,H in screen px, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ConfigError(f"--viewer: expected a positive width and height, got {text!r}")
    return x, y, w, h


def add_screen_options(p: argparse.ArgumentParser) -> None:
    """Where the screen and its markers are (any head-mounted bridge)."""
    p.add_argument(
        "--display", required=True, help="the screen WxH px the viewer and its markers are on (as recorded)"
    )
    p.add_argument("--screen-mm", default=None, help="the screen's WxH in mm")
    p.add_argument("--distance-mm", type=float, default=None, help="viewing distance in mm")
    p.add_argument(
        "--viewer",
        default=None,
        help="X,Y,W,H of the viewer on the screen, px, or 'screen' for markers at the screen's corners (default: "
        f"where the record window says its markers are, LSL stream {LAYOUT_STREAM!r}, followed as it moves)",
    )
    p.add_argument("--marker-cell-px", type=int, default=OVERLAY_CELL_PX, help="tag cell size as drawn, px")
    p.add_argument("--marker-margin-px", type=int, default=OVERLAY_MARGIN_PX, help="markers' margin, px")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """How long the bridge waits for data and markers, and runs (any head-mounted bridge)."""
    p.add_argument(
        "--startup-s", type=float, default=STARTUP_S, help="time for gaze and scene frames to come"
    )
    p.add_argument(
        "--markers-within-s",
        type=float,
        default=MARKERS_WITHIN_S,
        help="the scene camera must see the markers within this long after publishing (gaze invalid until then)",
    )
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze pupil-bridge",
        description="Pupil Core (Pupil Capture's network API) gaze mapped onto the screen through the AprilTag "
        "markers of `radgaze record --scene-markers`, published as screen gaze on LSL (stream "
        f"{STREAM_NAME!r}). Needs radgaze[headmounted] and Pupil Capture's Frame Publisher (format gray), or its "
        "Surface Tracker with --surface.",
        formatter_class=DefaultsOnceFormatter,
    )
    p.add_argument("--remote", default=DEFAULT_REMOTE, help="Pupil Remote's HOST:PORT")
    add_screen_options(p)
    p.add_argument(
        "--intrinsics",
        default=None,
        help="the scene camera's intrinsics, Pupil Capture's <camera>.intrinsics file (radial model): marker "
        "corners and gaze are undistorted before mapping (without it the frames are taken as undistorted)",
    )
    p.add_argument(
        "--surface",
        default=None,
        help="take Pupil Capture's Surface Tracker's mapped gaze of this surface (defined on the four markers; "
        "it undistorts the scene camera) instead of finding the markers in frame.world",
    )
    p.add_argument(
        "--resync-s",
        type=float,
        default=RESYNC_S,
        help="measure Pupil time against the LSL clock this often, s",
    )
    add_run_options(p)
    p.add_argument("--name", default=STREAM_NAME, help="LSL stream name")
    p.add_argument("--summary", type=Path, default=None, help="write the closing counts as JSON here")
    return p


def screen_and_markers(args: argparse.Namespace) -> tuple[DisplayGeometry, ScreenMarkerSource]:
    """The screen and where its markers are, from :func:`add_screen_options`' options (``--resync-s`` checked):
    fixed by ``--viewer``, else the record window's published layout, followed."""
    display = display_from_options(args.display, args.screen_mm, args.distance_mm)
    if not args.resync_s > 0:
        raise ConfigError(f"--resync-s: expected a number of seconds > 0, got {args.resync_s:g}")
    if args.viewer is None:
        return display, ScreenMarkerSource(None)
    viewer = None if args.viewer == "screen" else parse_viewer(args.viewer)
    return display, ScreenMarkerSource(
        overlay_markers(display, viewer, args.marker_cell_px, args.marker_margin_px)
    )


def run_bridge(bridge, args: argparse.Namespace, source: str, clock: str, prog: str) -> int:
    """Open ``bridge`` (Pupil's or Neon's), publish until SIGTERM, ``--duration`` or its own end (a refusal in its
    ``error`` is raised: one line), then say what it mapped and write ``--summary``."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    bridge.resync_s, bridge.markers_within_s = args.resync_s, args.markers_within_s
    bridge.open(args.startup_s, args.name)
    print(f"publishing {args.name!r}: {source} mapped onto the screen "
          f"({clock} - LSL {bridge.offset_s:+.6f} s); Ctrl-C to stop", flush=True)  # fmt: skip
    t_end = time.monotonic() + args.duration if args.duration else float("inf")
    try:
        while bridge.running and not stop.is_set() and time.monotonic() < t_end:
            time.sleep(0.05)
    finally:
        bridge.close()
        bridge.marker_source.close()
    if bridge.error is not None:
        raise bridge.error
    summary = bridge.summary()
    if args.summary:
        args.summary.write_text(json.dumps(summary))
    print(f"{prog}: {summary['gaze_mapped']} of {summary['gaze']} gaze mapped, "
          f"{summary['frames_with_markers']} of {summary['frames']} frames showed the markers", flush=True)  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    display, markers = screen_and_markers(args)
    lenses = read_intrinsics(args.intrinsics) if args.intrinsics else None
    bridge = PupilBridge(args.remote.removeprefix("tcp://"), display, markers, args.surface, lenses=lenses)
    return run_bridge(bridge, args, f"Pupil Capture at {args.remote}", "Pupil time", "pupil-bridge")
