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
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radgaze.capture.base.records import GAZE_VALID, DisplayGeometry
from radgaze.capture.io.display import ppd_screen
from radgaze.capture.store.reader import SessionReader

pytest.importorskip(
    "pupil_apriltags", reason="pupil-apriltags is not installed (pip install 'radgaze[headmounted]')"
)
pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'radgaze[headmounted]')")
pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
DISPLAY = DisplayGeometry(1920, 1080, 531.0, 299.0, 650.0)
SCREEN = ["--display", "1920x1080", "--screen-mm", "531x299", "--distance-mm", "650"]
RADGAZE = [sys.executable, "-m", "radgaze.app.cli"]


def start_pupil_capture(tmp_path: Path, **spec) -> tuple[subprocess.Popen, int, Path]:
    truth = tmp_path / "truth.npz"
    path = tmp_path / "pupil.json"
    path.write_text(json.dumps({"duration_s": 90.0, "truth": str(truth), **spec}))
    proc = subprocess.Popen([sys.executable, str(HERE / "pupil_capture_fixture.py"), str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    line = proc.stdout.readline().split()
    assert line[:1] == ["READY"], proc.stderr.read()
    return proc, int(line[1]), truth


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)


def _nearest(t_truth: np.ndarray, t: np.ndarray) -> np.ndarray:
    k = np.clip(np.searchsorted(t_truth, t), 1, t_truth.size - 1)
    return np.where(np.abs(t_truth[k - 1] - t) < np.abs(t_truth[k] - t), k - 1, k)


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


def map_live(tmp_path: Path, spec: dict, options: list[str], record_s: float = 3.0) -> tuple[dict, dict]:
    """Pupil Capture stand-in -> radgaze pupil-bridge -> radgaze record --headless, each in its own process;
    the stored gaze against the truth: (metrics, arrays: valid, truth valid, time errors)."""
    capture, port, truth_path = start_pupil_capture(tmp_path, **spec)
    image = tmp_path / "cxr.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65535, (600, 500), dtype=np.uint16)).save(image)
    summary, out = tmp_path / "bridge.json", tmp_path / "out"
    bridge = subprocess.Popen(
        [*RADGAZE, "pupil-bridge", "--remote", f"127.0.0.1:{port}", *SCREEN, "--summary", str(summary), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "publishing 'radgaze-pupil-core'" in bridge.stdout.readline(), bridge.stderr.read()
        rec = subprocess.run(
            [*RADGAZE, "record", "--headless", "--tracker", "any", "--no-audio", "--image", str(image),
             "--out", str(out), "--case-id", "c1", *SCREEN, "--duration", str(record_s)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert rec.returncode == 0, rec.stderr
    finally:
        stop(bridge)  # SIGTERM: the bridge stops, says what it mapped, and writes its summary
        stop(capture)
    assert bridge.returncode == 0, bridge.stderr.read()
    (path,) = out.glob("*.h5")
    with SessionReader(path) as r:
        gaze, prov = r.case("c1").gaze, r.provenance
    assert prov["tracker"]["stream"]["layout"] == "generic"
    truth = np.load(truth_path)
    k = _nearest(truth["t"], gaze["t_lsl"])
    dt = np.abs(truth["t"][k] - gaze["t_lsl"])
    valid = (gaze["flags"] & GAZE_VALID) > 0
    ppd = float(np.mean(ppd_screen(DISPLAY)))
    err_deg = np.hypot(gaze["x_screen_px"] - truth["x"][k], gaze["y_screen_px"] - truth["y"][k])[valid] / ppd
    metrics = {
        "stored": int(gaze.size),
        "valid": int(valid.sum()),
        "truth_valid_of_stored": int(truth["valid"][k].sum()),
        "err_deg_median": float(np.median(err_deg)),
        "err_deg_p95": float(np.percentile(err_deg, 95)),
        "err_deg_max": float(err_deg.max()),
        "time_err_p95_ms": float(np.percentile(dt, 95) * 1000),
        "time_err_max_ms": float(dt.max() * 1000),
        **json.loads(summary.read_text()),
    }
    return metrics, {"valid": valid, "truth_valid": truth["valid"][k], "dt": dt}


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
            [*RADGAZE, "pupil-bridge", "--remote", f"127.0.0.1:{port}", *SCREEN, "--startup-s", "3",
             "--markers-within-s", "3", "--duration", "20", *options], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        stop(capture)


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("radgaze")]
    assert len(lines) == 1, stderr
    return lines[0]


def _refused_while_recorded(tmp_path: Path, options: list[str], **spec) -> tuple[str, np.ndarray]:
    """The bridge publishes (the record window needs its stream before it draws the markers), the recorder
    records, and without markers the bridge stops with its one line: (that line, the stored gaze)."""
    capture, port, _ = start_pupil_capture(tmp_path, duration_s=60.0, **spec)
    image = tmp_path / "cxr.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65535, (600, 500), dtype=np.uint16)).save(image)
    out = tmp_path / "out"
    bridge = subprocess.Popen(
        [*RADGAZE, "pupil-bridge", "--remote", f"127.0.0.1:{port}", *SCREEN, "--markers-within-s", "8", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "publishing 'radgaze-pupil-core'" in bridge.stdout.readline(), bridge.stderr.read()
        rec = subprocess.run(
            [*RADGAZE, "record", "--headless", "--tracker", "any", "--no-audio", "--image", str(image),
             "--out", str(out), "--case-id", "c1", *SCREEN, "--duration", "2"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert rec.returncode == 0, rec.stderr
        assert bridge.wait(60) == 2
    finally:
        stop(bridge)
        stop(capture)
    (path,) = out.glob("*.h5")
    with SessionReader(path) as r:
        gaze = r.case("c1").gaze
    return _one_line(bridge.stderr.read()), gaze


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
    assert "turn on its Frame Publisher plugin" in _one_line(res.stderr)


def test_no_pupil_capture_is_one_line(tmp_path):
    res = subprocess.run([*RADGAZE, "pupil-bridge", "--remote", "127.0.0.1:9", *SCREEN], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert res.returncode == 2
    assert "no answer from Pupil Remote at tcp://127.0.0.1:9" in _one_line(res.stderr)
