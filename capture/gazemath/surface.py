"""Scene-camera gaze onto the screen through markers shown on it: a homography from the scene image to screen px.

A head-mounted tracker (Pupil Core, Neon) gives gaze in its scene camera's image. With square fiducial markers
drawn at known places on the screen (AprilTags at the viewer's corners, as Pupil Labs' Surface Tracker and their
Neon screen-gaze mapping do), the markers' corners seen in a scene frame and their known screen positions fix
the plane-to-plane mapping (a homography) for that frame, and the frame's gaze maps through it. Lens distortion
is not modelled: frames and gaze are taken as undistorted (Pupil Labs undistort with the scene camera's
intrinsics first).

Corner order everywhere is the AprilTag detector's: for a marker upright on the screen whose black square spans
``[x0, x1] x [y0, y1]`` (screen px, y down), ``(x0, y1), (x1, y1), (x1, y0), (x0, y0)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radgaze.capture.base.records import DisplayGeometry

MIN_MARKERS = 2  # markers a frame must show before its gaze is mapped (8 corners: an over-determined fit)


@dataclass(frozen=True)
class ScreenMarker:
    """One marker drawn on the screen: its id and its black square's corners (4, 2) in screen px."""

    tag_id: int
    corners_px: np.ndarray


def square_corners(x0: float, y0: float, side_px: float) -> np.ndarray:
    """The detector-ordered corners (4, 2) of an upright square with top-left (x0, y0)."""
    x1, y1 = x0 + side_px, y0 + side_px
    return np.array([[x0, y1], [x1, y1], [x1, y0], [x0, y0]], np.float64)


def corner_markers(
    display: DisplayGeometry, side_px: float, margin_px: float, ids: tuple[int, ...] = (0, 1, 2, 3)
) -> list[ScreenMarker]:
    """Four markers at the screen's corners (top-left, top-right, bottom-right, bottom-left), each black square
    ``side_px`` wide and ``margin_px`` from the edges."""
    w, h = display.screen_w_px, display.screen_h_px
    far_x, far_y = w - margin_px - side_px, h - margin_px - side_px
    places = [(margin_px, margin_px), (far_x, margin_px), (far_x, far_y), (margin_px, far_y)]
    return [ScreenMarker(i, square_corners(x, y, side_px)) for i, (x, y) in zip(ids, places)]


def _normalizer(pts: np.ndarray) -> np.ndarray:
    """Hartley's normalisation: centre on the mean, mean distance sqrt(2)."""
    c = pts.mean(axis=0)
    d = np.mean(np.hypot(*(pts - c).T))
    s = np.sqrt(2) / d if d > 0 else 1.0
    return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 homography taking ``src`` (n, 2) to ``dst`` (n, 2), n >= 4: normalised direct linear transform
    (Hartley & Zisserman, Multiple View Geometry, Alg. 4.2), least squares for n > 4."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 4:
        raise ValueError(
            f"expected two (n >= 4, 2) point arrays of one shape, got {src.shape} and {dst.shape}"
        )
    ts, td = _normalizer(src), _normalizer(dst)
    s = (np.c_[src, np.ones(len(src))] @ ts.T)[:, :2]
    d = (np.c_[dst, np.ones(len(dst))] @ td.T)[:, :2]
    zeros, ones = np.zeros(len(s)), np.ones(len(s))
    ax = np.stack(
        [-s[:, 0], -s[:, 1], -ones, zeros, zeros, zeros, d[:, 0] * s[:, 0], d[:, 0] * s[:, 1], d[:, 0]], 1
    )
    ay = np.stack(
        [zeros, zeros, zeros, -s[:, 0], -s[:, 1], -ones, d[:, 1] * s[:, 0], d[:, 1] * s[:, 1], d[:, 1]], 1
    )
    _, _, vt = np.linalg.svd(np.concatenate([ax, ay]))
    h = np.linalg.inv(td) @ vt[-1].reshape(3, 3) @ ts
    return h / h[2, 2]


def apply_homography(h: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (x, y) through ``h`` (NaN stays NaN)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    return (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w


def scene_to_screen(
    seen: dict[int, np.ndarray], markers: list[ScreenMarker], min_markers: int = MIN_MARKERS
) -> np.ndarray | None:
    """The scene->screen homography from the markers a frame shows (``seen``: id -> detected corners (4, 2) in
    scene px), or None when fewer than ``min_markers`` of ``markers`` are seen (the frame's gaze is not mapped)."""
    known = {m.tag_id: m.corners_px for m in markers}
    ids = [i for i in seen if i in known]
    if len(ids) < min_markers:
        return None
    src = np.concatenate([np.asarray(seen[i], np.float64).reshape(4, 2) for i in ids])
    dst = np.concatenate([known[i] for i in ids])
    return homography(src, dst)


def norm_pos_to_scene_px(norm_x, norm_y, frame_w_px: int, frame_h_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Pupil's ``norm_pos`` (0-1, origin bottom-left) -> scene-image px (origin top-left, y down)."""
    return np.asarray(norm_x, np.float64) * frame_w_px, (1.0 - np.asarray(norm_y, np.float64)) * frame_h_px
