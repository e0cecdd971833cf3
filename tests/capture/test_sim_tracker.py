"""sim-tracker: the CLI publishes a real LSL stream that is discovered and read; the Python API replays a
known gaze array at the right screen coordinates in every layout."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry
from radgaze.capture.gazemath.scanpath import synthetic_scanpath
from radgaze.capture.io.display import parse_display
from radgaze.capture.live.gaze.discovery import describe_info, find_gaze_streams, resolve_gaze_stream
from radgaze.capture.live.gaze.inlet import GazeInlet, concat_chunks
from radgaze.capture.live.sim_tracker import SimTracker, resample_indices

DISPLAY = DisplayGeometry(1920, 1080, 531.0, 299.0, 650.0)


def _known_gaze() -> np.ndarray:
    g = np.zeros(4, GAZE_DTYPE)
    g["t_lsl"] = [0.0, 0.01, 0.02, 0.03]
    g["x_screen_px"] = [100.0, 900.0, np.nan, 1800.0]
    g["y_screen_px"] = [50.0, 500.0, np.nan, 1000.0]
    g["pupil"] = [3.0, 3.0, np.nan, 4.0]
    g["flags"] = [GAZE_VALID, GAZE_VALID, 0, GAZE_VALID]
    return g


@pytest.mark.parametrize("layout", ["tobii", "gazepoint", "eyelink", "generic"])
def test_sim_tracker_api_replays_known_gaze(layout):
    name = f"sim-api-{layout}"
    with SimTracker(_known_gaze(), layout, 100.0, DISPLAY, name=name):
        info = resolve_gaze_stream(name, timeout_s=5.0)
        with GazeInlet(info, DISPLAY) as inlet:
            chunks, t_end = [], time.monotonic() + 10
            while sum(c.samples.size for c in chunks) < 12 and time.monotonic() < t_end:
                c = inlet.get(timeout_s=0.05)
                chunks += [c] if c is not None else []
    s, _ = concat_chunks(chunks)
    assert inlet.layout.name == layout and s.size >= 12
    valid = (s["flags"] & GAZE_VALID) != 0
    xy = {
        (round(float(x)), round(float(y))) for x, y in zip(s["x_screen_px"][valid], s["y_screen_px"][valid])
    }
    assert xy == {(100, 50), (900, 500), (1800, 1000)}
    assert (~valid).sum() >= 2 and np.isnan(s["x_screen_px"][~valid]).all()
    assert np.allclose(np.diff(s["t_lsl"]), 0.01, atol=1e-3)


def test_sim_tracker_cli_is_discovered_and_read():
    name = "sim-cli-tobii"
    proc = subprocess.Popen(
        [sys.executable, "-m", "radgaze.app.cli", "sim-tracker", "--layout", "tobii", "--rate", "100", "--seed", "3",
         "--duration", "5", "--name", name, "--display", "1920x1080"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().startswith(f"publishing '{name}'")
        assert name in {i.name() for i in find_gaze_streams(wait_s=1.0)}  # found by content type
        info = resolve_gaze_stream(name, timeout_s=5.0)
        # gaps as for an irregular stream (1 s, what the Pupil relay this test used before had): a publisher
        # stalled by a loaded machine is not what this test is about
        with GazeInlet(info, DisplayGeometry(1920, 1080), gap_threshold_s=1.0) as inlet:
            meta = describe_info(inlet._inlet.info())
            chunks = []
            while proc.poll() is None:
                c = inlet.get(timeout_s=0.05)
                chunks += [c] if c is not None else []
            chunks += inlet.drain()
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)
        proc.stdout.close()
    assert proc.returncode == 0
    s, gaps = concat_chunks(chunks)
    assert inlet.layout.name == "tobii" and meta.manufacturer == "TobiiPro"
    assert meta.labels[:3] == ("left_x", "left_y", "left_pupil") and meta.types[0] == "ScreenX"
    assert meta.nominal_rate_hz == 100.0 and meta.source_id == f"radgaze-sim:{name}"
    assert "published 500 samples" in out
    try:
        import radgaze.capture.synth.session  # noqa: F401

        assert "gaze: radgaze.capture.synth reading, seed 3" in out
    except ImportError:
        assert "gaze: built-in scanpath, seed 3" in out
    assert 200 <= s.size <= 500 and gaps.size == 0  # what it sent before the inlet connected is not seen
    valid = (s["flags"] & GAZE_VALID) != 0
    assert valid.mean() > 0.8
    assert (0 <= s["x_screen_px"][valid]).all() and (s["x_screen_px"][valid] <= 1920).all()
    assert (0 <= s["y_screen_px"][valid]).all() and (s["y_screen_px"][valid] <= 1080).all()


def test_parse_display_and_bad_values():
    d = parse_display("1920x1080")
    assert (d.screen_w_px, d.screen_h_px) == (1920, 1080)
    assert d.screen_w_mm == pytest.approx(1920 * DisplayGeometry().screen_w_mm / 1536)
    with pytest.raises(ConfigError, match="WIDTHxHEIGHT"):
        parse_display("big")
    with pytest.raises(ConfigError, match="unknown layout"):
        SimTracker(_known_gaze(), "smi", 60.0, DISPLAY)


def test_resample_indices_picks_nearest():
    t = np.array([0.0, 0.1, 0.2])
    assert resample_indices(t, np.array([0.0, 0.04, 0.06, 0.19, 0.5])).tolist() == [0, 0, 1, 2, 2]


def test_builtin_scanpath_is_on_screen_with_blinks():
    g = synthetic_scanpath(1, 10.0, 100.0, DISPLAY)
    valid = (g["flags"] & GAZE_VALID) != 0
    assert g.size == 1000 and 0.9 < valid.mean() < 1.0
    assert (g["x_screen_px"][valid] > 0).all() and (g["x_screen_px"][valid] < 1920).all()
    assert np.isnan(g["x_screen_px"][~valid]).all()


def test_sim_tracker_cli_replays_a_session_file(tmp_path):
    from radgaze.capture.base.records import ImageRef
    from radgaze.capture.store.writer import SessionWriter

    display = DisplayGeometry(1280, 1024, 376.0, 301.0, 650.0)
    path = tmp_path / "reading.h5"
    with SessionWriter(path, reader_id="test") as writer:
        for i, points in enumerate([[(100.0, 200.0), (300.0, 400.0)], [(1200.0, 1000.0)]]):
            g = np.zeros(40 * len(points), GAZE_DTYPE)
            g["t_lsl"] = 100.0 * i + np.arange(g.size) * 0.01
            g["x_screen_px"] = np.repeat([p[0] for p in points], 40)
            g["y_screen_px"] = np.repeat([p[1] for p in points], 40)
            g["pupil"] = 3.0
            g["flags"] = GAZE_VALID
            writer.begin_case(f"c{i}", ImageRef("x.png", "0" * 64, 512, 512), display, t_start=100.0 * i)
            writer.append_gaze(g)
            writer.end_case(100.0 * i + 1.0)
    name = "sim-cli-session"
    proc = subprocess.Popen(
        [sys.executable, "-m", "radgaze.app.cli", "sim-tracker", "--session", str(path), "--layout", "eyelink",
         "--rate", "100", "--duration", "3", "--name", name],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert "display 1280x1024" in proc.stdout.readline()  # the session's display by default
        with GazeInlet(resolve_gaze_stream(name, timeout_s=5.0), display) as inlet:
            chunks = []
            while proc.poll() is None:
                c = inlet.get(timeout_s=0.05)
                chunks += [c] if c is not None else []
            chunks += inlet.drain()
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)
        proc.stdout.close()
    s, _ = concat_chunks(chunks)
    assert proc.returncode == 0 and s.size > 100
    xy = {(round(float(x)), round(float(y))) for x, y in zip(s["x_screen_px"], s["y_screen_px"])}
    assert xy == {(100, 200), (300, 400), (1200, 1000)}  # both cases replayed, back to back, looping


def test_tracker_that_never_returns_leaves_an_open_gap_at_stop():
    name = "sim-gone"
    sim = SimTracker(_known_gaze(), "tobii", 100.0, DISPLAY, name=name, duration_s=1.0).start()
    inlet = GazeInlet(resolve_gaze_stream(name, timeout_s=5.0), DISPLAY).start()
    try:
        assert sim.wait(timeout_s=10.0)
        sim.stop()  # the outlet goes away for good
        t_end = time.monotonic() + 5.0
        while not inlet.stalled and time.monotonic() < t_end:
            time.sleep(0.05)
        assert inlet.stalled
    finally:
        inlet.stop()
    inlet.stop()  # idempotent: no second open gap
    samples, gaps = concat_chunks(inlet.drain())
    assert samples.size > 10 and gaps.size == 1
    assert gaps["t_lost"][0] == samples["t_lsl"][-1] and gaps["t_back"][0] > gaps["t_lost"][0] + 0.1
    assert inlet.provenance()["stats"]["n_reconnects"] == 1
