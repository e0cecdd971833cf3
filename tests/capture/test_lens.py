"""The scene camera's lens (Pupil's radial model) and Pupil Capture's .intrinsics files."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.gazemath.lens import RadialLens

pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'radgaze[headmounted]')")
from pupil_capture_fixture import PUPIL_CAM1_ID2_720P, Lens  # noqa: E402

from radgaze.capture.live.gaze.pupil_core import read_intrinsics  # noqa: E402


def test_undistort_inverts_the_distortion_the_fixture_writes_from_the_formula():
    lens = RadialLens(
        np.array(PUPIL_CAM1_ID2_720P["camera_matrix"]), np.array(PUPIL_CAM1_ID2_720P["dist_coefs"])
    )
    rng = np.random.default_rng(0)
    x, y = rng.uniform(100, 1180, 500), rng.uniform(60, 660, 500)  # ideal px over most of the frame
    xd, yd = Lens(PUPIL_CAM1_ID2_720P).distort(
        x, y
    )  # the recorded px (written independently, in the fixture)
    np.testing.assert_allclose(np.stack(lens.distort_px(x, y)), np.stack([xd, yd]), atol=1e-9)
    ux, uy = lens.undistort_px(xd, yd)
    assert np.nanmax(np.hypot(ux - x, uy - y)) < 1e-6
    assert np.median(np.hypot(xd - x, yd - y)) > 10  # the lens moves points by tens of px: it matters


def test_pupil_captures_intrinsics_file_is_read_per_resolution(tmp_path):
    path = tmp_path / "Pupil_Cam1_ID2.intrinsics"
    path.write_bytes(msgpack.packb({"version": 1, "(1280, 720)": PUPIL_CAM1_ID2_720P}, use_bin_type=True))
    lenses = read_intrinsics(path)
    assert list(lenses) == [(1280, 720)]
    fisheye = {**PUPIL_CAM1_ID2_720P, "cam_type": "fisheye", "dist_coefs": [[0.1, 0.0, 0.0, 0.0]]}
    path.write_bytes(msgpack.packb({"version": 1, "(1920, 1080)": fisheye}, use_bin_type=True))
    with pytest.raises(ConfigError, match="expected cam_type 'radial', got 'fisheye'.*use --surface"):
        read_intrinsics(path)
    path.write_bytes(b"not msgpack at all \xc1")
    with pytest.raises(ConfigError, match="expected Pupil Capture's .intrinsics file"):
        read_intrinsics(path)


def test_frame_publisher_formats_decode_to_the_same_grey_and_yuv_is_refused():
    from pupil_capture_fixture import encode

    from radgaze.capture.live.gaze.pupil_core import gaze_datum, scene_frame

    grey = np.random.default_rng(0).integers(0, 256, (72, 128), dtype=np.uint8)
    msg = {"topic": "frame.world", "width": 128, "height": 72, "index": 3, "timestamp": 1001.5}
    for fmt, tol in (("gray", 0), ("bgr", 1), ("jpeg", 40)):
        frame = scene_frame({**msg, "format": fmt, "__raw_data__": [encode(grey, fmt)]})
        assert frame.grey.shape == (72, 128) and (frame.t_pupil, frame.index) == (1001.5, 3)
        assert np.abs(frame.grey.astype(int) - grey).max() <= tol, fmt
    with pytest.raises(
        ConfigError, match="expected the Frame Publisher's format gray | bgr | jpeg, got 'yuv'"
    ):
        scene_frame({**msg, "format": "yuv", "__raw_data__": [bytes(100)]})
    with pytest.raises(ConfigError, match="expected a 128 x 72 image, got 100 bytes"):
        scene_frame({**msg, "format": "gray", "__raw_data__": [bytes(100)]})
    with pytest.raises(ConfigError, match="expected norm_pos"):
        gaze_datum({"topic": "gaze.3d.01.", "confidence": 1.0})
