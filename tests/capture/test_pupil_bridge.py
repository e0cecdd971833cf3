"""Pupil Core, head-mounted: its gaze mapped onto the screen live, or refused.

A stand-in for Pupil Capture's network API runs in another process (tests/capture/pupil_capture_fixture.py,
written from pupil-labs/pupil's Pupil Remote, zmq_tools, gazer and Frame Publisher sources): scene frames show the
screen through a moving head's homography, gaze comes as norm_pos on Pupil time. ``radgaze pupil-bridge`` (another
process) maps it through the markers and publishes screen gaze on LSL; ``radgaze record --headless --tracker any``
stores it. The stored gaze is compared with the screen points the fixture looked at: within 1 deg. Without the
markers, or without scene frames, the bridge refuses in one line and publishes nothing.
"""

from __future__ import annotations

import json
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from stand_ins import (
    RADGAZE,
    bridge_against_truth,
    bridge_while_recording,
    one_line,
    start,
    stop,
    stored_case,
)

from radgaze.capture.base.records import GAZE_VALID, DisplayGeometry

pytest.importorskip(
    "pupil_apriltags", reason="pupil-apriltags is not installed (pip install 'radgaze[headmounted]')"
)
pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'radgaze[headmounted]')")
pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
DISPLAY = DisplayGeometry(1920, 1080, 531.0, 299.0, 650.0)
SCREEN = ["--display", "1920x1080", "--screen-mm", "531x299", "--distance-mm", "650"]
# the stand-in shows the markers where a viewer filling the screen has them; the bridge is told so (its default
# is to follow the record window's published layout: test_marker_layout_bridge.py)
BRIDGE_SCREEN = [*SCREEN, "--viewer", "screen"]


def start_pupil_capture(tmp_path: Path, **spec) -> tuple[subprocess.Popen, int, Path]:
    truth = tmp_path / "truth.npz"
    spec = {"duration_s": 90.0, "truth": str(truth), **spec}
    proc, words = start(HERE / "pupil_capture_fixture.py", spec, tmp_path / "pupil.json")
    return proc, int(words[0]), truth


# frames: radgaze finds the markers in the Frame Publisher's frames; surface: Pupil's Surface Tracker mapped the gaze
# lens: Pupil Core's world camera with its real distortion (Pupil Labs' default intrinsics), radgaze given the
# .intrinsics file Pupil Capture writes; markers drawn with 16 px cells (8 px ones shrink to ~2 px cells at the
# frame's edge through this wide-angle lens)
LENS = {"intrinsics": "{tmp}/Pupil_Cam1_ID2.intrinsics", "cell_px": 16}
MODES = {
    "frames": ({"frames": True}, []),
    "jpeg": ({"frames": True, "format": "jpeg"}, []),  # the Frame Publisher's default format
    "surface": ({"frames": False, "surface": "Screen"}, ["--surface", "Screen"]),
    "lens": (LENS, ["--intrinsics", "{tmp}/Pupil_Cam1_ID2.intrinsics", "--marker-cell-px", "16"]),
}


def map_live(
    tmp_path: Path, spec: dict, options: list[str], record_s: float = 3.0, screen: list[str] = BRIDGE_SCREEN
) -> tuple[dict, dict]:
    """Pupil Capture stand-in -> radgaze pupil-bridge -> radgaze record --headless, each in its own process;
    the stored gaze against the truth: (metrics, arrays: valid, truth valid, time errors)."""
    capture, port, truth_path = start_pupil_capture(tmp_path, **spec)
    summary = tmp_path / "bridge.json"
    args = ["pupil-bridge", "--remote", f"127.0.0.1:{port}", *screen, "--summary", str(summary), *options]
    try:
        bridge = bridge_while_recording(args, "radgaze-pupil-core", tmp_path, SCREEN, record_s)
    finally:
        stop(capture)
    return bridge_against_truth(bridge, tmp_path, truth_path, summary, DISPLAY)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_pupil_core_gaze_is_mapped_onto_the_screen_within_a_degree(mode, tmp_path, artifacts_dir):
    spec = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in MODES[mode][0].items()}
    metrics, got = map_live(tmp_path, spec, [o.format(tmp=tmp_path) for o in MODES[mode][1]])
    (artifacts_dir / f"pupil_bridge_metrics_{mode}.json").write_text(json.dumps(metrics, indent=1))
    assert metrics["stored"] > 250, metrics  # 3 s of 120 Hz gaze
    # Pupil time back on the LSL clock: the offset from Pupil Remote's 't' is off by at most half its round trip
    # (plus liblsl's clock sync between the bridge and the recorder: ~0.03 ms on one machine, up to 1 ms allowed as
    # test_bridges does)
    assert np.percentile(got["dt"], 95) <= metrics["clock_rtt_s"] / 2 + 1e-3, metrics
    # low-confidence gaze never valid; the rest mapped, but for data with no marker frame near it (a bridge
    # starved of CPU skips frames: then nothing rather than a guess)
    assert not np.any(got["valid"] & ~got["truth_valid"]), metrics
    assert got["valid"].sum() >= 0.9 * got["truth_valid"].sum(), metrics
    assert metrics["err_deg_max"] < 1.0 and metrics["err_deg_median"] < 0.3, metrics
    assert metrics["frames_with_markers"] == metrics["frames"] > 0


# Pupil Capture on another machine: its clock 1000 ppm fast (exaggerated 20-100 x, to show in seconds what real
# clocks do in an hour)
DRIFT_PPM, RESYNC_S = 1000.0, 1.0


def test_a_drifting_pupil_clock_is_followed(tmp_path, artifacts_dir):
    metrics, got = map_live(tmp_path, {"drift_ppm": DRIFT_PPM}, ["--resync-s", str(RESYNC_S)], record_s=4.0)
    (artifacts_dir / "pupil_bridge_metrics_drift.json").write_text(json.dumps(metrics, indent=1))
    assert metrics["clock_syncs"] >= 4 and metrics["clock_sync_failures"] == 0, metrics
    assert metrics["clock_offset_span_s"] > 2e-3, (
        metrics
    )  # the offset moved with the drift, and was followed:
    bound = DRIFT_PPM * 1e-6 * RESYNC_S + metrics["clock_rtt_s"] / 2 + 1e-3  # drift between syncs, as above
    assert np.percentile(got["dt"], 95) <= bound, metrics


def _refused(tmp_path: Path, *options: str, **spec) -> subprocess.CompletedProcess:
    capture, port, _ = start_pupil_capture(tmp_path, duration_s=30.0, **spec)
    try:
        return subprocess.run(
            [*RADGAZE, "pupil-bridge", "--remote", f"127.0.0.1:{port}", *BRIDGE_SCREEN, "--startup-s", "3",
             "--markers-within-s", "3", "--duration", "20", *options], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        stop(capture)


def _refused_while_recorded(
    tmp_path: Path, options: list[str], screen: list[str] = BRIDGE_SCREEN, **spec
) -> tuple[str, np.ndarray]:
    """The bridge publishes (the record window needs its stream before it draws the markers), the recorder
    records, and without markers the bridge stops with its one line: (that line, the stored gaze)."""
    capture, port, _ = start_pupil_capture(tmp_path, duration_s=60.0, **spec)
    args = ["pupil-bridge", "--remote", f"127.0.0.1:{port}", *screen, "--markers-within-s", "8", *options]
    try:
        bridge = bridge_while_recording(args, "radgaze-pupil-core", tmp_path, SCREEN, 2.0, refused=True)
    finally:
        stop(capture)
    gaze, _ = stored_case(tmp_path)
    return one_line(bridge.stderr.read()), gaze


def test_scene_frames_without_the_markers_are_refused_in_one_line_and_nothing_is_placed(tmp_path):
    line, gaze = _refused_while_recorded(tmp_path, [], markers=False)
    assert "scene-camera gaze refused: 0 of" in line and "in 8 s" in line and "no tags seen" in line, line
    assert "radgaze record --scene-markers" in line
    assert gaze.size > 100 and not (gaze["flags"] & GAZE_VALID).any()  # recorded, all invalid: never a guess


def test_a_surface_never_found_is_refused_in_one_line_and_nothing_is_placed(tmp_path):
    line, gaze = _refused_while_recorded(
        tmp_path, ["--surface", "Screen"], markers=False, frames=False, surface="Screen"
    )
    assert "scene-camera gaze refused" in line and "no 'surfaces.Screen' event" in line, line
    assert "radgaze record --scene-markers" in line
    assert gaze.size > 100 and not (gaze["flags"] & GAZE_VALID).any()


def test_without_scene_frames_the_frame_publisher_is_asked_for(tmp_path):
    res = _refused(tmp_path, frames=False)
    assert res.returncode == 2 and "publishing" not in res.stdout, res.stdout
    assert "turn on its Frame Publisher plugin" in one_line(res.stderr)


def test_no_pupil_capture_is_one_line(tmp_path):
    res = subprocess.run([*RADGAZE, "pupil-bridge", "--remote", "127.0.0.1:9", *BRIDGE_SCREEN], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert res.returncode == 2
    assert "no answer from Pupil Remote at tcp://127.0.0.1:9" in one_line(res.stderr)


# The record window's image view: never the whole screen (toolbar, transcript panel), so its markers are not at the
# screen's corners. The window publishes where they are (app/scene_markers.py; tests/app/test_scene_markers_overlay.py
# reads a real window's layout off LSL); here the test process publishes that layout as the window would.
VIEWER = (310, 95, 1280, 900)


@contextmanager
def record_window_layout(viewer: tuple[int, int, int, int]):
    """Publish the marker layout of a record window whose image view is at ``viewer``, as the window does."""
    from radgaze.capture.live.gaze.pupil_bridge import overlay_markers
    from radgaze.capture.live.marker_layout import MarkerLayoutOutlet

    outlet, stop_now = MarkerLayoutOutlet(), threading.Event()
    markers = overlay_markers(DISPLAY, viewer)
    thread = threading.Thread(
        target=lambda: [outlet.publish(markers) for _ in iter(lambda: stop_now.wait(0.2), True)]
    )
    thread.start()
    try:
        yield
    finally:
        stop_now.set()
        thread.join()
        outlet.close()


def test_markers_where_the_record_window_says_they_are_map_within_a_degree(tmp_path, artifacts_dir):
    spec = {"viewer": list(VIEWER)}
    (tmp_path / "window").mkdir()
    (tmp_path / "assumed").mkdir()
    with record_window_layout(VIEWER):
        metrics, got = map_live(
            tmp_path / "window", spec, [], screen=SCREEN
        )  # no --viewer: the window's layout
    (artifacts_dir / "pupil_bridge_metrics_window_layout.json").write_text(json.dumps(metrics, indent=1))
    assert "record window's layout" in metrics["markers_from"] and metrics["marker_layouts"] >= 1, metrics
    assert got["valid"].sum() >= 0.9 * got["truth_valid"].sum(), metrics
    assert metrics["err_deg_max"] < 1.0 and metrics["err_deg_median"] < 0.3, metrics
    # what the bridge did before the window published its layout: markers assumed at the screen's corners,
    # gaze placed degrees off and stored as valid
    assumed, _ = map_live(tmp_path / "assumed", spec, [], screen=BRIDGE_SCREEN)
    (artifacts_dir / "pupil_bridge_metrics_screen_assumed.json").write_text(json.dumps(assumed, indent=1))
    assert assumed["err_deg_median"] > 2.0, assumed


def test_without_the_windows_layout_or_viewer_gaze_is_refused_not_guessed(tmp_path):
    line, gaze = _refused_while_recorded(tmp_path, [], screen=SCREEN, viewer=list(VIEWER))
    assert "no record window said where its markers are" in line and "radgaze_SceneMarkers" in line, line
    assert "--viewer" in line
    assert gaze.size > 100 and not (gaze["flags"] & GAZE_VALID).any()  # recorded, all invalid: never a guess
