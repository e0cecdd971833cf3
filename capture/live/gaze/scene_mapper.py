"""Head-mounted gaze onto the screen, live: each gaze datum through the homography of the scene frame nearest in time.

A scene frame's markers (tag36h11 at the viewer's corners, ``radgaze record --scene-markers``) fix where the screen
lies in that frame (capture/gazemath/surface.py); a gaze datum is mapped through the frame nearest to it in time,
once that frame is known (gaze waits for the next frame, at most ``max_wait_s``). A datum whose nearest frame is
more than ``max_frame_gap_s`` away, or shows fewer than 2 markers, is not mapped: invalid, never a guess.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from radgaze.capture.gazemath.surface import (
    MIN_MARKERS,
    ScreenMarker,
    apply_homography,
    norm_pos_to_scene_px,
    scene_to_screen,
)
from radgaze.capture.live.gaze.pupil_core import GazeDatum, SceneFrame
from radgaze.capture.live.scene_markers import MarkerDetector

MAX_FRAME_GAP_S = 0.1  # a datum mapped through a frame at most this far from it in time (3 frames at 30 Hz)
MAX_WAIT_S = 0.2  # gaze waits this long (Pupil time, by the newest datum) for the frame after it
FRAMES_KEPT = 64
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
        markers: list[ScreenMarker],
        detector: MarkerDetector | None = None,
        *,
        max_frame_gap_s: float = MAX_FRAME_GAP_S,
        max_wait_s: float = MAX_WAIT_S,
        min_markers: int = MIN_MARKERS,
    ) -> None:
        self.markers, self.detector = markers, detector or MarkerDetector()
        self.max_frame_gap_s, self.max_wait_s, self.min_markers = max_frame_gap_s, max_wait_s, min_markers
        self._frames: deque[tuple[float, np.ndarray | None, int, int]] = deque(maxlen=FRAMES_KEPT)
        self._pending: list[GazeDatum] = []
        self.counts = MapperCounts()

    def add_frame(self, frame: SceneFrame) -> MappedGaze:
        seen = self.detector.detect(frame.grey)
        h = scene_to_screen(seen, self.markers, self.min_markers)
        self.counts.frames += 1
        self.counts.frames_mapped += h is not None
        self.counts.tags_seen |= set(seen)
        height, width = frame.grey.shape
        self._frames.append((frame.t_pupil, h, width, height))
        return self._resolve(final=False)

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

    def _nearest_frame(self, t: float) -> tuple[np.ndarray | None, int, int]:
        if not self._frames:
            return None, 0, 0
        t_frame, h, width, height = min(self._frames, key=lambda f: abs(f[0] - t))
        return (h if abs(t_frame - t) <= self.max_frame_gap_s else None), width, height

    def _map(self, data: list[GazeDatum]) -> MappedGaze:
        n = len(data)
        out = MappedGaze(
            np.array([d.t_pupil for d in data], np.float64),
            np.full(n, np.nan),
            np.full(n, np.nan),
            np.zeros(n, bool),
            np.array([d.confidence for d in data], np.float64),
        )
        for i, d in enumerate(data):
            h, width, height = self._nearest_frame(d.t_pupil)
            if h is None:
                continue
            sx, sy = norm_pos_to_scene_px(d.norm_x, d.norm_y, width, height)
            x, y = apply_homography(h, sx, sy)
            out.x_screen_px[i], out.y_screen_px[i] = float(x), float(y)
        mapped = np.isfinite(out.x_screen_px) & np.isfinite(out.y_screen_px)
        self.counts.gaze_mapped += int(mapped.sum())
        out.valid = mapped & (out.confidence >= CONFIDENCE_MIN)
        return out


def _empty() -> MappedGaze:
    z = np.zeros(0)
    return MappedGaze(z, z, z, np.zeros(0, bool), z)
