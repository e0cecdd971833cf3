"""AprilTag markers for head-mounted trackers: drawn at the viewer's corners, found in scene-camera frames, and the
frame's gaze mapped onto the screen (capture/gazemath/surface.py does the geometry).

Detection uses ``pupil-apriltags`` (Pupil Labs' bindings of the AprilTag 3 library, which their Surface Tracker
and Neon screen-gaze mapping use; an optional extra: ``pip install 'radgaze[headmounted]'``), family tag36h11
(Pupil Labs' default). Markers are drawn from that library's own tag36h11 table (``tag36h11_create``: codes,
``bit_x``/``bit_y``, border widths), so what is drawn is what it detects.
"""

from __future__ import annotations

import atexit
import ctypes
import functools

import numpy as np

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.gazemath.surface import MIN_MARKERS, ScreenMarker, apply_homography, scene_to_screen

FAMILY = "tag36h11"
# the markers as `radgaze record --scene-markers` draws them (app/scene_markers.py): cells of 8 logical px (80 px
# markers, a black square of 64 px), 4 px in from the viewer's edges
OVERLAY_CELL_PX = 8
OVERLAY_MARGIN_PX = 4
HEADMOUNTED_HINT = (
    "scene-camera markers need the optional extra: pip install 'radgaze[headmounted]' (pupil-apriltags)"
)


def _apriltags():
    try:
        import pupil_apriltags
        from pupil_apriltags.bindings import _ApriltagFamily
    except ImportError as exc:
        raise ConfigError(HEADMOUNTED_HINT) from exc
    return pupil_apriltags, _ApriltagFamily


@functools.cache
def _library() -> tuple:
    """One pupil-apriltags detector and tag36h11 table for the process: a Detector's destruction (its families
    freed before the detector that refers to them) corrupted the heap of a process that went on (a glibc abort
    later, in unrelated code), so none is ever destroyed."""
    pa, family_struct = _apriltags()
    detector = pa.Detector(families=FAMILY)
    atexit.register(_never_destroyed, detector)
    lib = detector.libc
    lib.tag36h11_create.restype = ctypes.POINTER(family_struct)
    return detector, lib.tag36h11_create().contents


def _never_destroyed(detector) -> None:
    """At exit, before the interpreter frees the cached detector: its destructor (families freed before the
    detector) crashed 2 of 30 processes at exit with SIGSEGV (a refusal's exit 2 read as -11); with no pointer
    it destroys nothing (the process is ending: the memory goes with it)."""
    detector.tag_detector_ptr = None


class MarkerDetector:
    """tag36h11 detection in grey scene frames; also draws the markers (one library for both)."""

    def __init__(self) -> None:
        self._detector, self._family = _library()

    def detect(self, frame: np.ndarray) -> dict[int, np.ndarray]:
        """id -> corners (4, 2) in frame px of every tag36h11 marker in a grey uint8 frame (H, W)."""
        frame = np.ascontiguousarray(frame, np.uint8)
        if frame.ndim != 2:
            raise ValueError(f"expected a grey frame (H, W), got shape {frame.shape}")
        return {int(d.tag_id): np.asarray(d.corners, np.float64) for d in self._detector.detect(frame)}

    def render(self, tag_id: int, cell_px: int) -> np.ndarray:
        """Marker ``tag_id`` as a uint8 image of ``total_width`` cells of ``cell_px`` (its white ring included; the
        black square is the inner ``width_at_border`` cells)."""
        f = self._family
        if not 0 <= tag_id < f.ncodes:
            raise ValueError(f"tag_id: expected 0..{f.ncodes - 1} ({FAMILY}), got {tag_id}")
        tw, wb = f.total_width, f.width_at_border
        start = (tw - wb) // 2
        cells = np.full((tw, tw), 255, np.uint8)
        cells[start : start + wb, start : start + wb] = 0
        code = int(f.codes[tag_id])
        for i in range(f.nbits):
            if (code >> (f.nbits - 1 - i)) & 1:
                cells[f.bit_y[i] + start, f.bit_x[i] + start] = 255
        return np.kron(cells, np.ones((cell_px, cell_px), np.uint8))

    def black_square_px(self, cell_px: int) -> tuple[int, int]:
        """(offset of the black square inside a rendered marker, its side), in px."""
        f = self._family
        return (f.total_width - f.width_at_border) // 2 * cell_px, f.width_at_border * cell_px


def map_frame_gaze(
    detector: MarkerDetector,
    frame: np.ndarray,
    markers: list[ScreenMarker],
    x_scene_px: np.ndarray,
    y_scene_px: np.ndarray,
    min_markers: int = MIN_MARKERS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaze (scene px) of one frame onto the screen: (x_screen_px, y_screen_px, valid). When the frame shows
    fewer than ``min_markers`` of the screen's markers nothing is mapped: NaN and invalid, never a guess."""
    h = scene_to_screen(detector.detect(frame), markers, min_markers)
    n = np.shape(x_scene_px)
    if h is None:
        return np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, bool)
    x, y = apply_homography(h, x_scene_px, y_scene_px)
    return x, y, np.isfinite(x) & np.isfinite(y)
