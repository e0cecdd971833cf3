"""Gaze layouts: decoding hand-built raw rows of each bridge, layout choice, config files, wrong shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radgaze.capture.base.errors import ConfigError, StreamLayoutError
from radgaze.capture.base.records import GAZE_VALID, DisplayGeometry
from radgaze.capture.live.gaze.inlet import find_gaps, sort_chunk
from radgaze.capture.live.gaze.layouts import (
    BUILTIN_LAYOUTS,
    StreamDescription,
    decode_samples,
    encode_samples,
    resolve_layout,
    to_gaze_records,
)

DISPLAY = DisplayGeometry(1920, 1080, 531.0, 299.0, 650.0)
NAN = np.nan


def _desc(layout: str, **kw) -> StreamDescription:
    lay = BUILTIN_LAYOUTS[layout]
    base = dict(name=lay.stream_name, type=lay.stream_type, n_channels=lay.n_channels,
                channel_format=lay.channel_format, labels=lay.labels)  # fmt: skip
    base.update(kw)
    return StreamDescription(**base)


def test_tobii_binocular_combination_by_validity():
    rows = np.array(
        [
            [0.25, 0.50, 3.0, 0.75, 0.50, 4.0],  # both eyes: mean
            [NAN, NAN, NAN, 0.75, 0.25, 4.0],  # left lost: right only, less half the eyes' offset
            [0.10, 0.20, 3.0, NAN, NAN, NAN],  # right lost: left only, plus half the offset
            [NAN, NAN, NAN, NAN, NAN, NAN],  # blink: invalid, kept
        ]
    )
    x, y, pupil, valid = decode_samples(BUILTIN_LAYOUTS["tobii"], rows, DISPLAY)
    half = 0.25 * 1920  # the eyes were 0.5 of the screen apart in x, level in y
    np.testing.assert_allclose(x[:3], [0.5 * 1920, 0.75 * 1920 - half, 0.10 * 1920 + half], rtol=1e-6)
    np.testing.assert_allclose(y[:3], [0.5 * 1080, 0.25 * 1080, 0.20 * 1080], rtol=1e-6)
    np.testing.assert_allclose(pupil[:3], [3.5, 4.0, 3.0])
    assert valid.tolist() == [True, True, True, False]
    assert np.isnan(x[3]) and np.isnan(y[3]) and np.isnan(pupil[3])


def test_pupil_flips_y_and_applies_confidence():
    rows = np.zeros((3, 22))
    rows[:, 0] = [0.9, 0.59, 1.0]  # confidence; Pupil's default threshold is 0.6
    rows[:, 1] = [0.25, 0.25, 0.5]
    rows[:, 2] = [0.25, 0.25, 1.0]  # norm_pos y up: 0.25 -> 3/4 of the way down the screen
    rows[:, 20:22] = [[3.0, 5.0], [3.0, 5.0], [0.0, 4.0]]
    x, y, pupil, valid = decode_samples(BUILTIN_LAYOUTS["pupil"], rows, DISPLAY)
    assert valid.tolist() == [True, False, True]
    assert (x[0], y[0]) == pytest.approx((480.0, 810.0))
    assert (x[2], y[2]) == pytest.approx((960.0, 0.0))
    assert pupil[0] == pytest.approx(4.0) and pupil[2] == pytest.approx(4.0)  # zero diameter ignored


def test_gazepoint_fpogv_marks_validity():
    rows = np.array([[0.1, 0.9, 1.0, 0.2, 7, 1], [0.1, 0.9, 1.0, 0.2, 7, 0]], float)
    x, y, pupil, valid = decode_samples(BUILTIN_LAYOUTS["gazepoint"], rows, DISPLAY)
    assert valid.tolist() == [True, False]
    assert (x[0], y[0]) == pytest.approx((192.0, 972.0))
    assert np.isnan(pupil).all()  # no pupil channel in this layout


def test_eyelink_pixels_and_missing_data_sentinel():
    rows = np.array(
        [
            [100.0, 200.0, 110.0, 210.0, 900.0, 1000.0, 40, 40, 1, 2],
            [-32768.0, -32768.0, 300.0, 400.0, 0.0, 800.0, 40, 40, 1, 2],
            [-32768.0, -32768.0, 1e8, 1e8, 0.0, 0.0, 40, 40, 1, 2],
        ]
    )
    x, y, pupil, valid = decode_samples(BUILTIN_LAYOUTS["eyelink"], rows, DISPLAY)
    assert valid.tolist() == [True, True, False]
    np.testing.assert_allclose(x[:2], [105.0, 300.0 - 5.0])  # the right eye alone, less half the offset
    np.testing.assert_allclose(y[:2], [205.0, 400.0 - 5.0])
    np.testing.assert_allclose(pupil[:2], [950.0, 800.0])


def test_records_have_flags_and_nan_image_coordinates():
    rows = np.array([[0.5, 0.5, 3.0, 0.5, 0.5, 3.0], [NAN] * 6])
    rec = to_gaze_records(BUILTIN_LAYOUTS["tobii"], rows, np.array([10.0, 10.1]), DISPLAY)
    assert rec["flags"].tolist() == [GAZE_VALID, 0]
    assert np.isnan(rec["x_img_px"]).all() and np.isnan(rec["y_img_px"]).all()
    assert rec["t_lsl"].tolist() == [10.0, 10.1]


def test_generic_layout_from_xdf_types_in_pixels():
    desc = StreamDescription(
        "SomeTracker", "Gaze", 4, "double64",
        labels=("gx", "gy", "conf", "diam"),
        types=("ScreenX", "ScreenY", "Confidence", "Diameter"),
        eyes=("both", "both", "both", "both"),
        units=("pixels", "pixels", "", "mm"),
    )  # fmt: skip
    lay = resolve_layout(desc)
    x, y, pupil, valid = decode_samples(
        lay, np.array([[300.0, 400.0, 0.9, 3.3], [300.0, 400.0, 0.1, 3.3]]), DISPLAY
    )
    assert lay.name == "generic" and lay.unit == "pixels"
    assert valid.tolist() == [True, False]
    assert (x[0], y[0], pupil[0]) == pytest.approx((300.0, 400.0, 3.3))


def test_layout_chosen_by_labels_then_by_name():
    assert resolve_layout(_desc("gazepoint36", name="whatever")).name == "gazepoint36"
    unlabeled = StreamDescription("EyeLink 1000", "Gaze", 10, "double64")
    assert resolve_layout(unlabeled).name == "eyelink"


def test_wrong_channel_count_names_expected_and_got():
    desc = StreamDescription("Tobii", "Eyetracker", 7, "float32")
    with pytest.raises(StreamLayoutError, match=r"expects 6 channels, got 7"):
        resolve_layout(desc)


def test_unknown_stream_lists_layouts():
    desc = StreamDescription("Mystery", "Gaze", 3, "float32", labels=("a", "b", "c"))
    with pytest.raises(StreamLayoutError) as err:
        resolve_layout(desc)
    assert "tobii = 6 channels" in str(err.value) and "3 x float32" in str(err.value)


def test_forced_layout_must_fit():
    with pytest.raises(StreamLayoutError, match="expects 10 channels"):
        resolve_layout(_desc("tobii"), forced="eyelink")
    with pytest.raises(ConfigError, match="unknown gaze layout"):
        resolve_layout(_desc("tobii"), forced="smi")


def test_string_stream_rejected():
    with pytest.raises(StreamLayoutError, match="float32 or double64"):
        resolve_layout(_desc("tobii", channel_format="string"))


def test_config_file_toml_by_label_and_json_by_index(tmp_path):
    desc = StreamDescription("Lab", "Gaze", 5, "float32", labels=("t", "GX", "GY", "ok", "P"))
    toml = tmp_path / "layout.toml"
    toml.write_text(
        '[gaze_layout]\nunit = "pixels"\n[gaze_layout.channels]\nx = "gx"\ny = "GY"\nvalid = "ok"\n'
    )
    lay = resolve_layout(desc, config_path=toml)
    x, y, _, valid = decode_samples(lay, np.array([[0, 10.0, 20.0, 1, 3], [0, 10.0, 20.0, 0, 3]]), DISPLAY)
    assert valid.tolist() == [True, False] and (x[0], y[0]) == (10.0, 20.0)

    js = tmp_path / "layout.json"
    js.write_text(json.dumps({"unit": "normalized", "y_up": True, "channels": {"x": 1, "y": 2, "pupil": 4}}))
    lay = resolve_layout(desc, config_path=js)
    x, y, pupil, _ = decode_samples(lay, np.array([[0, 0.5, 0.25, 1, 3]]), DISPLAY)
    assert (x[0], y[0], pupil[0]) == pytest.approx((960.0, 810.0, 3.0))

    bad = tmp_path / "bad.toml"
    bad.write_text('[gaze_layout.channels]\nx = "nope"\ny = 2\n')
    with pytest.raises(StreamLayoutError, match="'nope' is not a channel"):
        resolve_layout(desc, config_path=bad)


@pytest.mark.parametrize("name", sorted(BUILTIN_LAYOUTS))
def test_encode_then_decode_is_identity(name):
    lay = BUILTIN_LAYOUTS[name]
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1920, 50), rng.uniform(0, 1080, 50)
    valid = rng.random(50) > 0.2
    raw = encode_samples(lay, x, y, np.full(50, 3.0), valid, DISPLAY)
    x2, y2, _, valid2 = decode_samples(lay, raw, DISPLAY)
    assert valid2.tolist() == valid.tolist()
    np.testing.assert_allclose(x2[valid], x[valid], atol=1e-3)
    np.testing.assert_allclose(y2[valid], y[valid], atol=1e-3)


def test_sort_chunk_counts_out_of_order_and_drops_late():
    t = np.array([5.0, 4.0, 6.0, 1.0])
    order, n_ooo, keep = sort_chunk(t, t_last=2.0)
    assert n_ooo == 2  # 4.0 after 5.0, 1.0 after 6.0
    assert t[order][keep].tolist() == [4.0, 5.0, 6.0]  # 1.0 is older than what was already queued


def test_find_gaps_only_between_known_samples():
    gaps = find_gaps(np.array([1.0, 1.01, 6.0]), -np.inf, 0.1)
    assert gaps.tolist() == [(1.01, 6.0)]
    assert find_gaps(np.array([7.0]), 6.0, 0.1).tolist() == [(6.0, 7.0)]


# ------------------------------------------------------------------------------------------------ issue 9
def _eyelink_row(left=None, right=None) -> list[float]:
    """As the EyeLink app builds a sample: zeros, then the recorded eye(s) filled (eyelink.py)."""
    row = [0.0] * 6 + [38.5, 38.2, 123456.0, 1000.0]
    if left is not None:
        row[0], row[1], row[4] = left[0], left[1], (0.0 if left[0] == -32768.0 else 900.0)
    if right is not None:
        row[2], row[3], row[5] = right[0], right[1], (0.0 if right[0] == -32768.0 else 900.0)
    return row


def test_eyelink_monocular_unrecorded_eye_and_blinks_are_never_averaged_in():
    rows = np.array([
        _eyelink_row(left=(800.0, 400.0)),  # left-only recording: the right eye is (0, 0)
        _eyelink_row(right=(1200.0, 700.0)),  # right-only
        _eyelink_row(left=(-32768.0, -32768.0)),  # left-only, blink
        _eyelink_row(left=(600.0, 300.0), right=(-32768.0, -32768.0)),  # binocular, right eye in a blink
        _eyelink_row(),  # nothing recorded
    ])  # fmt: skip
    x, y, pupil, valid = decode_samples(BUILTIN_LAYOUTS["eyelink"], rows, DISPLAY)
    np.testing.assert_allclose(x[[0, 1, 3]], [800.0, 1200.0, 600.0])
    np.testing.assert_allclose(y[[0, 1, 3]], [400.0, 700.0, 300.0])
    assert valid.tolist() == [True, True, False, True, False]
    assert pupil[0] == 900.0 and np.isnan(pupil[2])


def test_neon_relay_stream_with_metatype_channels_is_read_as_pixels():
    x, y, _, valid = decode_samples(BUILTIN_LAYOUTS["neon"], np.array([[812.5, 400.25]]), DISPLAY)
    assert (x[0], y[0], valid[0]) == (812.5, 400.25, True)


@pytest.mark.parametrize("name", ["pupil", "neon"])
def test_head_mounted_scene_camera_gaze_is_refused_as_screen_gaze_in_one_line(name):
    lay = BUILTIN_LAYOUTS[name]
    desc = StreamDescription(lay.stream_name, "Gaze", lay.n_channels, "double64", labels=lay.labels)
    with pytest.raises(
        StreamLayoutError, match="scene-camera image.*'world'.*not on the screen.*AprilTag"
    ) as err:
        resolve_layout(desc)
    assert "\n" not in str(err.value)
    # the same for any stream whose ScreenX/ScreenY channels say they are in the scene camera's coordinates
    generic = StreamDescription("HeadCam", "Gaze", 2, "double64", labels=("gx", "gy"), types=("ScreenX", "ScreenY"),
                                units=("pixels", "pixels"), coordinate_systems=("world", "world"))  # fmt: skip
    with pytest.raises(StreamLayoutError, match="'HeadCam' sends gaze in a head-mounted"):
        resolve_layout(generic)


def test_gazepoint_36_channels_is_told_from_the_6_channel_script_with_the_same_name():
    lay36 = resolve_layout(_desc("gazepoint36"))
    lay6 = resolve_layout(_desc("gazepoint"))
    assert (lay36.name, lay6.name) == ("gazepoint36", "gazepoint")
    rows = np.full((3, 36), NAN)
    bx, by, bv = (lay36.labels.index(k) for k in ("BPOGX", "BPOGY", "BPOGV"))
    rows[0, [bx, by]] = [0.5, 0.25]  # the script's regex leaves BPOGV NaN: the coordinates decide
    rows[1, [bx, by]] = [0.0, 0.0]  # no tracked eye: 0.00000
    rows[2, [bx, by, bv]] = [0.5, 0.5, 0.0]
    x, y, _, valid = decode_samples(lay36, rows, DISPLAY)
    assert valid.tolist() == [True, False, False] and (x[0], y[0]) == (960.0, 270.0)


def test_pupillometry_outlet_in_eye_camera_coordinates_is_not_screen_gaze():
    labels = ("confidence", "norm_pos_x", "norm_pos_y", "diameter0_2d", "diameter1_2d", "diameter0_3d",
              "diameter1_3d")  # fmt: skip
    desc = StreamDescription("pupil_capture_pupillometry_only", "Gaze", 7, "double64", labels=labels,
                             types=("Confidence", "ScreenX", "ScreenY") + ("Diameter",) * 4,
                             coordinate_systems=("", "eye", "eye", "eye0", "eye1", "eye0", "eye1"))  # fmt: skip
    with pytest.raises(StreamLayoutError, match="eye-camera coordinates") as err:
        resolve_layout(desc)
    assert "--layout-config" in str(err.value) and "\n" not in str(err.value)


def test_generic_accepts_the_units_bridges_write():
    lay = BUILTIN_LAYOUTS["tobii"]
    desc = _desc("tobii", types=lay.channel_types, eyes=lay.channel_eyes, units=lay.channel_units)
    generic = resolve_layout(desc, forced="generic")
    x, y, _, valid = decode_samples(generic, np.array([[0.25, 0.5, 3.0, 0.75, 0.5, 3.0]]), DISPLAY)
    assert generic.unit == "normalized" and (x[0], y[0], valid[0]) == (960.0, 540.0, True)


@pytest.mark.parametrize(
    "desc, expected",
    [
        (
            StreamDescription("MyMarkerStream", "Gaze", 1, "string"),
            "expected float32 or double64 channels, got string",
        ),
        (StreamDescription("empty", "Gaze", 0, "float32"), "got 0 channels"),
        (
            StreamDescription("odd", "Gaze", 3, "float32", 0.0, labels=("a", "b", "c")),
            "0 Hz, labels ['a', 'b', 'c']",
        ),
    ],
)
def test_wrong_streams_are_refused_in_one_line_naming_expected_and_got(desc, expected):
    with pytest.raises(StreamLayoutError) as err:
        resolve_layout(desc)
    msg = str(err.value)
    assert expected in msg and "\n" not in msg and "expected" in msg


def test_refusal_names_the_layout_config_line_that_reads_the_stream(tmp_path):
    desc = StreamDescription("MyTracker", "Gaze", 3, "float32", labels=("GazeX", "GazeY", "Pupil"))
    with pytest.raises(StreamLayoutError) as err:
        resolve_layout(desc)
    line = str(err.value).split("--layout-config FILE holding the line: ")[1]
    cfg = tmp_path / "layout.toml"
    cfg.write_text(line)
    lay = resolve_layout(desc, config_path=cfg)
    x, y, _, valid = decode_samples(lay, np.array([[0.5, 0.5, 3.0]]), DISPLAY)
    assert (x[0], y[0], valid[0]) == (960.0, 540.0, True)
