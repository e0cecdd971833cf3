"""Head-mounted gaze mapped onto the screen through AprilTag markers at the viewer's corners.

The fixture stands for a head-mounted tracker's scene camera: it draws the screen (a radiograph-like image and the
four tag36h11 markers radgaze shows), sees it through a known homography (the head's pose: the screen fills part
of a 1280 x 720 frame, tilted and foreshortened), and gives the gaze that goes with it, in scene px and as
Pupil's norm_pos. radgaze finds the markers, fits the homography and maps the gaze back: within 1 deg (asserted:
a fraction of it). Without markers in view, or with one only, nothing is mapped.
"""

from __future__ import annotations

import numpy as np
import pytest

from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.gazemath.surface import (
    apply_homography,
    corner_markers,
    homography,
    norm_pos_to_scene_px,
    scene_to_screen,
)
from radgaze.capture.io.display import ppd_screen

pytest.importorskip(
    "pupil_apriltags", reason="pupil-apriltags is not installed (pip install 'radgaze[headmounted]')"
)
from radgaze.capture.live.scene_markers import MarkerDetector, map_frame_gaze  # noqa: E402

DISPLAY = DisplayGeometry(1920, 1080, 531.0, 299.0, 650.0)
FRAME_W, FRAME_H = 1280, 720  # Pupil Core's world camera at 720p
CELL_PX, MARGIN_PX = 16, 8


def test_homography_recovers_a_known_mapping_exactly():
    rng = np.random.default_rng(0)
    h_true = np.array([[0.9, 0.12, 40.0], [-0.05, 1.1, 25.0], [1e-4, -2e-4, 1.0]])
    src = rng.uniform(0, 1000, (12, 2))
    dst = np.stack(apply_homography(h_true, src[:, 0], src[:, 1]), axis=1)
    np.testing.assert_allclose(homography(src, dst), h_true, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="n >= 4"):
        homography(src[:3], dst[:3])


@pytest.fixture(scope="module")
def detector():
    return MarkerDetector()


def _screen_image(detector: MarkerDetector) -> tuple[np.ndarray, list]:
    """The screen as radgaze shows it: a grey radiograph-like field and the corner markers (white rings)."""
    yy, xx = np.mgrid[0 : DISPLAY.screen_h_px, 0 : DISPLAY.screen_w_px]
    screen = (90 + 60 * np.exp(-(((xx - 960) / 500) ** 2 + ((yy - 540) / 350) ** 2))).astype(np.uint8)
    offset, side = detector.black_square_px(CELL_PX)
    markers = corner_markers(DISPLAY, side, MARGIN_PX + offset)
    for m in markers:
        x0, y0 = m.corners_px[3] - offset  # top-left of the rendered marker, its white ring included
        tag = detector.render(m.tag_id, CELL_PX)
        screen[int(y0) : int(y0) + tag.shape[0], int(x0) : int(x0) + tag.shape[1]] = tag
    return screen, markers


def _scene_view() -> np.ndarray:
    """screen px -> scene px: the screen's corners land on a tilted, foreshortened quadrilateral in the frame."""
    screen = np.array([[0, 0], [1920, 0], [1920, 1080], [0, 1080]], float)
    scene = np.array([[250, 120], [1050, 160], [1010, 610], [230, 560]], float)
    return homography(screen, scene)


def _see(screen: np.ndarray, h_screen_to_scene: np.ndarray, rng) -> np.ndarray:
    """The scene camera's grey frame: each pixel looks up the screen through the inverse homography (bilinear),
    the room around the screen darker, sensor noise on top."""
    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float64)
    sx, sy = apply_homography(np.linalg.inv(h_screen_to_scene), xx + 0.5, yy + 0.5)
    sx, sy = sx - 0.5, sy - 0.5
    inside = (sx >= 0) & (sy >= 0) & (sx < screen.shape[1] - 1) & (sy < screen.shape[0] - 1)
    x0, y0 = np.clip(sx.astype(int), 0, screen.shape[1] - 2), np.clip(sy.astype(int), 0, screen.shape[0] - 2)
    fx, fy = np.clip(sx - x0, 0, 1), np.clip(sy - y0, 0, 1)
    s = screen.astype(np.float64)
    val = (s[y0, x0] * (1 - fx) * (1 - fy) + s[y0, x0 + 1] * fx * (1 - fy)
           + s[y0 + 1, x0] * (1 - fx) * fy + s[y0 + 1, x0 + 1] * fx * fy)  # fmt: skip
    frame = np.where(inside, val, 40.0) + rng.normal(0, 2.0, val.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def _gaze(h_screen_to_scene: np.ndarray, rng, n: int = 200):
    """Screen truth and the same gaze as the head-mounted tracker reports it (norm_pos, origin bottom-left)."""
    truth = rng.uniform([100, 100], [1820, 980], (n, 2))
    sx, sy = apply_homography(h_screen_to_scene, truth[:, 0], truth[:, 1])
    return truth, sx / FRAME_W, 1.0 - sy / FRAME_H


def test_scene_gaze_is_mapped_onto_the_screen_within_a_fraction_of_a_degree(detector):
    rng = np.random.default_rng(1)
    screen, markers = _screen_image(detector)
    h = _scene_view()
    frame = _see(screen, h, rng)
    seen = detector.detect(frame)
    assert set(seen) == {0, 1, 2, 3}
    truth, nx, ny = _gaze(h, rng)
    x_scene, y_scene = norm_pos_to_scene_px(nx, ny, FRAME_W, FRAME_H)
    x, y, valid = map_frame_gaze(detector, frame, markers, x_scene, y_scene)
    assert valid.all()
    err_deg = np.hypot(x - truth[:, 0], y - truth[:, 1]) / np.mean(ppd_screen(DISPLAY))
    assert err_deg.max() < 0.5 and np.median(err_deg) < 0.2  # the issue asks for 1 deg
    unmapped = np.hypot(x_scene - truth[:, 0], y_scene - truth[:, 1]) / np.mean(ppd_screen(DISPLAY))
    assert np.median(unmapped) > 5  # taken as screen gaze, the scene coordinates would be degrees off


def test_without_markers_in_view_nothing_is_mapped(detector):
    rng = np.random.default_rng(2)
    screen, markers = _screen_image(detector)
    h = _scene_view()
    blank = np.full_like(screen, 120)  # the viewer without its markers
    _, nx, ny = _gaze(h, rng, 10)
    x_scene, y_scene = norm_pos_to_scene_px(nx, ny, FRAME_W, FRAME_H)
    x, y, valid = map_frame_gaze(detector, _see(blank, h, rng), markers, x_scene, y_scene)
    assert not valid.any() and np.isnan(x).all() and np.isnan(y).all()
    one = screen.copy()
    one[:, 300:] = 120  # only the left markers' column... keep one marker: top-left
    one[300:, :] = 120
    seen = detector.detect(_see(one, h, rng))
    assert set(seen) == {0}
    assert scene_to_screen(seen, markers) is None  # one marker is not enough (min 2)


@pytest.mark.slow
def test_processes_that_detected_markers_exit_with_their_own_status():
    """pupil-apriltags' Detector destructor frees its families before the detector: freed at interpreter exit, it
    crashed 2 of 30 processes (SIGSEGV), so a pupil-bridge refusal's exit 2 read as -11. Twenty processes detect
    and exit 2: every one exits 2."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from radgaze.capture.live.scene_markers import MarkerDetector\n"
        "d = MarkerDetector(); rng = np.random.default_rng(int(sys.argv[1]))\n"
        "[d.detect((rng.random((720, 1280)) * 255).astype(np.uint8)) for _ in range(10)]\n"
        "sys.exit(2)\n"
    )
    codes = [subprocess.run([sys.executable, "-c", code, str(i)], timeout=120).returncode for i in range(20)]
    assert codes == [2] * 20, codes
