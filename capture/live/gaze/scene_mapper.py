"""Head-mounted gaze onto the screen, live: each gaze datum through the homographies of the scene frames around it.

A scene frame's markers (tag36h11 at the viewer's corners, ``radgaze record --scene-markers``) fix where the screen
lies in that frame (capture/gazemath/surface.py); a gaze datum is mapped through the frames showing the markers just
before and just after it, the two screen points interpolated in time, once the later frame is known (gaze waits
for it, at most ``max_wait_s``; then a frame alone, if within ``single_frame_gap_s``). Frames more than
``max_frame_gap_s`` from the datum are not used; with none left it is not mapped: invalid, never a guess.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.gazemath.lens import RadialLens
from radgaze.capture.gazemath.surface import (
    MIN_MARKERS,
    ScreenMarker,
    apply_homography,
    norm_pos_to_scene_px,
    scene_to_screen,
)
from radgaze.capture.live.gaze.pupil_core import GazeDatum, SceneFrame
from radgaze.capture.live.scene_markers import MarkerDetector

MAX_FRAME_GAP_S = (
    0.1  # a datum interpolated between frames at most this far from it in time (3 frames at 30 Hz)
)
# ... or mapped through one frame alone only when that is this close (about one frame interval at 30 Hz: with a
# head turning ~10 deg/s the screen moves ~0.3 deg in the scene in that time; no interpolation can correct it)
SINGLE_FRAME_GAP_S = 0.04
MAX_WAIT_S = 0.2  # gaze waits this long (Pupil time, by the newest datum) for the frame after it
FRAMES_KEPT = 64
TRACK_PAD = 1.0  # a marker is searched for first within its last box grown by its size ...
TRACK_PAD_PX = 24  # ... and this many px on every side (head movement between frames)
# Pupil Labs' own threshold for usable gaze (their LSL relay layout's 0.6; Pupil Player's default minimum)
CONFIDENCE_MIN = 0.6


@dataclass
class MappedGaze:
    """Gaze mapped onto the screen: Pupil time (s), screen px, valid, confidence (n,) each."""

    t_pupil: np.ndarray
    x_screen_px: np.ndarray
    y_screen_px: np.ndarray
    valid: np.ndarray
    confidence: np.ndarray


@dataclass
class MapperCounts:
    frames: int = 0
    frames_mapped: int = 0
    frames_skipped: int = (
        0  # not searched for markers: a newer frame was already waiting (the bridge kept up)
    )
    gaze: int = 0
    gaze_mapped: int = 0
    tags_seen: set[int] = field(default_factory=set)

    def to_dict(self) -> dict:
        return {
            "frames": self.frames,
            "frames_with_markers": self.frames_mapped,
            "frames_skipped": self.frames_skipped,
            "gaze": self.gaze,
            "gaze_mapped": self.gaze_mapped,
            "tags_seen": sorted(self.tags_seen),
        }


class SceneGazeMapper:
    """Frames and gaze in arrival order in, screen gaze out (in the gaze's order)."""

    def __init__(
        self,
        markers: list[ScreenMarker] | None,
        detector: MarkerDetector | None = None,
        *,
        max_frame_gap_s: float = MAX_FRAME_GAP_S,
        single_frame_gap_s: float = SINGLE_FRAME_GAP_S,
        max_wait_s: float = MAX_WAIT_S,
        min_markers: int = MIN_MARKERS,
        lenses: dict[tuple[int, int], RadialLens] | None = None,
    ) -> None:
        """``markers``: where they are on the screen (None until known: no frame is mapped, :meth:`set_markers`).
        ``lenses``: the scene camera's intrinsics per resolution (Pupil Capture's .intrinsics); marker corners
        and gaze are undistorted with them before the homography. None: the frames are taken as undistorted."""
        self.markers, self.detector, self.lenses = markers, detector or MarkerDetector(), lenses
        self.max_frame_gap_s, self.max_wait_s, self.min_markers = max_frame_gap_s, max_wait_s, min_markers
        self.single_frame_gap_s = single_frame_gap_s
        self._frames: deque[tuple[float, np.ndarray | None, int, int]] = deque(maxlen=FRAMES_KEPT)
        self._pending: list[GazeDatum] = []
        self._last_seen: dict[
            int, np.ndarray
        ] = {}  # the last frame's markers (recorded px), searched around first
        self.counts = MapperCounts()

    def set_markers(self, markers: list[ScreenMarker]) -> None:
        """The screen's markers moved (the record window was moved or resized): frames from now on use these."""
        self.markers = markers

    @property
    def tracking(self) -> bool:
        """The last frame searched showed markers (the next is searched around them, quickly)."""
        return bool(self._last_seen)

    def add_frame(self, frame: SceneFrame) -> MappedGaze:
        height, width = frame.grey.shape
        lens = self._lens(width, height)
        seen = self._detect(frame.grey)
        if lens is not None:
            seen = {i: np.stack(lens.undistort_px(c[:, 0], c[:, 1]), axis=1) for i, c in seen.items()}
            seen = {i: c for i, c in seen.items() if np.isfinite(c).all()}
        h = None if self.markers is None else scene_to_screen(seen, self.markers, self.min_markers)
        self.counts.frames += 1
        self.counts.frames_mapped += h is not None
        self.counts.tags_seen |= set(seen)
        self._frames.append((frame.t_pupil, h, width, height))
        return self._resolve(final=False)

    def _detect(self, grey: np.ndarray) -> dict[int, np.ndarray]:
        """The markers in a frame (recorded px). Searched first only around where the last frame showed them
        (a few small crops: ~1 ms instead of ~30 for the whole frame, so a busy machine keeps up); the whole frame
        when there is no last position or a marker was not found again."""
        last = self._last_seen
        if last:
            found = {}
            for corners in last.values():
                (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
                pad = max(x1 - x0, y1 - y0) * TRACK_PAD + TRACK_PAD_PX
                r0, r1 = int(max(y0 - pad, 0)), int(min(y1 + pad, grey.shape[0]))
                c0, c1 = int(max(x0 - pad, 0)), int(min(x1 + pad, grey.shape[1]))
                for i, c in self.detector.detect(grey[r0:r1, c0:c1]).items():
                    found.setdefault(i, c + np.array([c0, r0], np.float64))
            if set(last) <= set(found):
                self._last_seen = found
                return found
        self._last_seen = self.detector.detect(grey)
        return self._last_seen

    def _lens(self, width: int, height: int) -> RadialLens | None:
        if self.lenses is None:
            return None
        if (width, height) not in self.lenses:
            raise ConfigError(
                f"scene frames of {width} x {height}: the intrinsics given cover "
                f"{', '.join(f'{w} x {h}' for w, h in self.lenses)}; calibrate the scene camera at this resolution "
                "in Pupil Capture (Camera Intrinsics Estimation) or set the camera to a calibrated one"
            )
        return self.lenses[(width, height)]

    def add_gaze(self, datum: GazeDatum) -> MappedGaze:
        self._pending.append(datum)
        self.counts.gaze += 1
        return self._resolve(final=False)

    def flush(self) -> MappedGaze:
        return self._resolve(final=True)

    def _ready(self, datum: GazeDatum, newest_gaze_t: float) -> bool:
        newest_frame_t = self._frames[-1][0] if self._frames else -np.inf
        return datum.t_pupil <= newest_frame_t or newest_gaze_t - datum.t_pupil > self.max_wait_s

    def _resolve(self, final: bool) -> MappedGaze:
        if not self._pending:
            return _empty()
        newest = max(d.t_pupil for d in self._pending)
        ready = [d for d in self._pending if final or self._ready(d, newest)]
        self._pending = [d for d in self._pending if not (final or self._ready(d, newest))]
        return self._map(ready)

    def _frames_around(self, t: float) -> list[tuple[float, np.ndarray, int, int]]:
        """The frames showing the markers that bracket ``t`` (the last at or before it, the first after it),
        each within ``max_frame_gap_s`` of it; one when only one side has such a frame."""
        usable = [f for f in self._frames if f[1] is not None and abs(f[0] - t) <= self.max_frame_gap_s]
        before = [f for f in usable if f[0] <= t]
        after = [f for f in usable if f[0] > t]
        if before and after:
            return [before[-1], after[0]]
        alone = before[-1:] + after[:1]
        return [f for f in alone if abs(f[0] - t) <= self.single_frame_gap_s]

    def _scene_points(self, data: list[GazeDatum]) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
        """The data's scene px (undistorted when a lens is known) for each frame size kept: all data at once
        (undistorting one datum at a time cost a busy bridge more than finding the markers)."""
        nx = np.array([d.norm_x for d in data], np.float64)
        ny = np.array([d.norm_y for d in data], np.float64)
        out = {}
        for width, height in {(f[2], f[3]) for f in self._frames}:
            sx, sy = norm_pos_to_scene_px(nx, ny, width, height)
            lens = self._lens(width, height)
            if lens is not None:  # gaze is in the recorded (distorted) image, as the frames are
                sx, sy = lens.undistort_px(sx, sy)
            out[(width, height)] = (sx, sy)
        return out

    def _map_one(self, d: GazeDatum, i: int, scene: dict) -> tuple[float, float]:
        """A datum (the ``i``-th of ``scene``'s points) through the frames around it: the screen points the two
        frames' homographies give, interpolated in time (the head moves smoothly between frames); NaN when no
        frame is near enough."""
        around = self._frames_around(d.t_pupil)
        if not around:
            return np.nan, np.nan
        points = []
        for _, h, width, height in around:
            sx, sy = scene[(width, height)]
            points.append(np.array([float(v) for v in apply_homography(h, sx[i], sy[i])]))
        if len(points) == 1:
            return float(points[0][0]), float(points[0][1])
        (t0, *_), (t1, *_) = around
        w = (d.t_pupil - t0) / (t1 - t0)
        x, y = (1.0 - w) * points[0] + w * points[1]
        return float(x), float(y)

    def _map(self, data: list[GazeDatum]) -> MappedGaze:
        n = len(data)
        out = MappedGaze(
            np.array([d.t_pupil for d in data], np.float64),
            np.full(n, np.nan),
            np.full(n, np.nan),
            np.zeros(n, bool),
            np.array([d.confidence for d in data], np.float64),
        )
        scene = self._scene_points(data) if n else {}
        for i, d in enumerate(data):
            out.x_screen_px[i], out.y_screen_px[i] = self._map_one(d, i, scene)
        mapped = np.isfinite(out.x_screen_px) & np.isfinite(out.y_screen_px)
        self.counts.gaze_mapped += int(mapped.sum())
        out.valid = mapped & (out.confidence >= CONFIDENCE_MIN)
        return out


def _empty() -> MappedGaze:
    z = np.zeros(0)
    return MappedGaze(z, z, z, np.zeros(0, bool), z)


def surface_rect_px(markers: list[ScreenMarker]) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) screen px of the surface Pupil Capture's Surface Tracker defines on these markers
    when a surface is added with all of them in view: the bounding quadrangle of every marker corner
    (surface_tracker/surface.py ``_update_definition``, ``_bounding_quadrangle``), i.e. the outer corners of the
    corner markers' black squares. Surface coordinates are 0-1 over it, origin bottom-left."""
    corners = np.concatenate([m.corners_px for m in markers])
    (left, top), (right, bottom) = corners.min(axis=0), corners.max(axis=0)
    return float(left), float(top), float(right), float(bottom)


class SurfaceGazeMapper:
    """The Surface Tracker's own mapped gaze (``surfaces.<name>`` events, ``gaze_on_surfaces``) onto the screen:
    Pupil Capture has found the markers and undistorted the scene camera (its intrinsics), radgaze only places
    the surface on the screen (:func:`surface_rect_px`). An event is published only for frames where the surface
    was found, so every event counts as a frame showing the markers."""

    def __init__(self, markers: list[ScreenMarker] | None) -> None:
        self.counts = MapperCounts()
        self.set_markers(markers)

    def set_markers(self, markers: list[ScreenMarker] | None) -> None:
        """Where the surface's markers are on the screen (None until known: every event's gaze invalid)."""
        self.markers = markers
        self.rect = None if markers is None else surface_rect_px(markers)

    def add_surface_event(self, message: dict) -> MappedGaze:
        self.counts.frames += 1
        self.counts.frames_mapped += self.rect is not None
        items = [g for g in message.get("gaze_on_surfaces", []) if isinstance(g, dict) and "norm_pos" in g]
        self.counts.gaze += len(items)
        if not items:
            return _empty()
        uv = np.array([[float(v) for v in g["norm_pos"]] for g in items], np.float64)
        left, top, right, bottom = self.rect or (np.nan,) * 4
        x = left + uv[:, 0] * (right - left)
        y = top + (1.0 - uv[:, 1]) * (bottom - top)
        t = np.array([float(g["timestamp"]) for g in items], np.float64)
        confidence = np.array([float(g.get("confidence", 1.0)) for g in items], np.float64)
        mapped = np.isfinite(x) & np.isfinite(y)
        self.counts.gaze_mapped += int(mapped.sum())
        return MappedGaze(t, x, y, mapped & (confidence >= CONFIDENCE_MIN), confidence)

    def flush(self) -> MappedGaze:
        return _empty()
