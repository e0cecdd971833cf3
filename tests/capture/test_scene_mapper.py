"""The live scene-to-screen mapper on its own: which frames a gaze datum goes through, when it waits, when it is
refused; and where the Surface Tracker's surface lies on the screen."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip(
    "pupil_apriltags", reason="pupil-apriltags is not installed (pip install 'radgaze[headmounted]')"
)
pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'radgaze[headmounted]')")
from pupil_capture_fixture import DISPLAY, FRAME_H, FRAME_W, head_pose, screen_image, see  # noqa: E402

from radgaze.capture.gazemath.surface import apply_homography  # noqa: E402
from radgaze.capture.live.gaze.pupil_bridge import overlay_markers  # noqa: E402
from radgaze.capture.live.gaze.pupil_core import GazeDatum, SceneFrame  # noqa: E402
from radgaze.capture.live.gaze.scene_mapper import SceneGazeMapper, SurfaceGazeMapper  # noqa: E402


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    with_markers, blank = screen_image(True), screen_image(False)
    return {t: see(with_markers, head_pose(t), rng) for t in (0.0, 1 / 30, 2 / 30)}, see(
        blank, head_pose(0), rng
    )


def _datum(t: float, screen_xy, confidence: float = 0.95) -> GazeDatum:
    sx, sy = apply_homography(head_pose(t), screen_xy[0], screen_xy[1])
    return GazeDatum(t, float(sx) / FRAME_W, 1.0 - float(sy) / FRAME_H, confidence)


def test_gaze_waits_for_the_frame_after_it_and_goes_through_both(frames):
    shown, _ = frames
    mapper = SceneGazeMapper(overlay_markers(DISPLAY))
    assert mapper.add_frame(SceneFrame(0.0, 0, shown[0.0])).t_pupil.size == 0
    t = 0.5 / 30  # between the first two frames; the head moves in between
    assert mapper.add_gaze(_datum(t, (900.0, 500.0))).t_pupil.size == 0  # waits for the next frame
    out = mapper.add_frame(SceneFrame(1 / 30, 1, shown[1 / 30]))
    assert out.t_pupil.tolist() == [t] and out.valid.all()
    err_px = np.hypot(out.x_screen_px[0] - 900.0, out.y_screen_px[0] - 500.0)
    assert err_px < 2.0  # ~0.04 deg at this display's 50 px/deg


def test_low_confidence_is_mapped_but_invalid(frames):
    shown, _ = frames
    mapper = SceneGazeMapper(overlay_markers(DISPLAY))
    mapper.add_frame(SceneFrame(0.0, 0, shown[0.0]))
    out = mapper.add_gaze(_datum(0.0, (300.0, 300.0), confidence=0.3))
    assert np.isfinite(out.x_screen_px).all() and not out.valid.any()


def test_without_a_frame_showing_the_markers_near_it_a_datum_is_invalid(frames):
    shown, blank = frames
    mapper = SceneGazeMapper(overlay_markers(DISPLAY), max_frame_gap_s=0.1)
    mapper.add_frame(SceneFrame(0.0, 0, blank))  # no markers
    out = mapper.add_gaze(_datum(0.0, (500.0, 500.0)))
    assert out.t_pupil.size == 1 and not out.valid.any() and np.isnan(out.x_screen_px).all()
    mapper.add_frame(SceneFrame(0.05, 1, shown[0.0]))
    late = mapper.add_gaze(_datum(0.3, (500.0, 500.0)))  # 0.25 s after the last frame: waits ...
    assert late.t_pupil.size == 0
    flushed = mapper.flush()  # ... and at the end, with no frame near enough, stays unmapped
    assert flushed.t_pupil.tolist() == [0.3] and not flushed.valid.any()
    assert mapper.counts.to_dict()["frames_with_markers"] == 1


def test_the_surface_trackers_gaze_lands_on_the_markers_rectangle():
    markers = overlay_markers(DISPLAY)
    mapper = SurfaceGazeMapper(markers)
    left, top, right, bottom = mapper.rect
    corners = np.concatenate([m.corners_px for m in markers])
    assert (left, top, right, bottom) == (*corners.min(axis=0), *corners.max(axis=0))
    event = {"gaze_on_surfaces": [{"norm_pos": [0.0, 0.0], "timestamp": 5.0, "confidence": 0.9},
                                  {"norm_pos": [1.0, 1.0], "timestamp": 5.01, "confidence": 0.9},
                                  {"norm_pos": [0.5, 0.5], "timestamp": 5.02, "confidence": 0.2}]}  # fmt: skip
    out = mapper.add_surface_event(event)
    assert (out.x_screen_px[0], out.y_screen_px[0]) == (left, bottom)  # surface origin: bottom-left
    assert (out.x_screen_px[1], out.y_screen_px[1]) == (right, top)
    assert out.valid.tolist() == [True, True, False]


def test_a_frame_through_pupil_cores_lens_still_shows_every_marker(artifacts_dir):
    from PIL import Image
    from pupil_capture_fixture import PUPIL_CAM1_ID2_720P, Lens

    from radgaze.capture.live.scene_markers import MarkerDetector

    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float64)
    ideal = Lens(PUPIL_CAM1_ID2_720P).ideal(xx + 0.5, yy + 0.5)
    frame = see(screen_image(True, 16), head_pose(0.25), np.random.default_rng(0), ideal)
    Image.fromarray(frame).save(artifacts_dir / "pupil_scene_frame_lens.png")  # for a person to look at
    assert sorted(MarkerDetector().detect(frame)) == [0, 1, 2, 3]


def test_markers_searched_near_their_last_place_are_found_again_after_being_lost(frames):
    shown, blank = frames
    mapper = SceneGazeMapper(overlay_markers(DISPLAY))
    order = [
        shown[0.0],
        shown[1 / 30],
        blank,
        shown[2 / 30],
        shown[0.0],
    ]  # tracked, lost, found by a full search
    for k, grey in enumerate(order):
        mapper.add_frame(SceneFrame(k / 30, k, grey))
    assert [f[1] is not None for f in mapper._frames] == [True, True, False, True, True]


def test_a_bridge_follows_the_record_windows_layout_as_it_moves():
    """ScreenMarkerSource: nothing until a window publishes; then its layout, and the next one when it moves."""
    from radgaze.capture.live.gaze.pupil_bridge import overlay_markers
    from radgaze.capture.live.marker_layout import LOOK_EVERY_S, MarkerLayoutOutlet, ScreenMarkerSource

    source = ScreenMarkerSource(None)
    assert source.update() is None and source.markers is None
    assert "not received" in source.description
    outlet = MarkerLayoutOutlet()
    first, moved = (
        overlay_markers(DISPLAY, (100, 50, 1200, 900)),
        overlay_markers(DISPLAY, (300, 50, 1200, 900)),
    )

    def next_layout(markers, timeout_s=10.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            outlet.publish(markers)
            got = source.update()
            if got is not None:
                return got
            time.sleep(LOOK_EVERY_S / 5)
        raise AssertionError("no layout came")

    got = next_layout(first)
    np.testing.assert_allclose(np.stack([m.corners_px for m in got]), np.stack([m.corners_px for m in first]))
    got = next_layout(moved)
    np.testing.assert_allclose(got[0].corners_px - first[0].corners_px, [[200, 0]] * 4)
    assert source.n_layouts == 2 and "record window's layout (radgaze_SceneMarkers from" in source.description
    source.close()
    outlet.close()
