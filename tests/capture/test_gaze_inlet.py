"""GazeInlet against REAL LSL outlets in another process (tests/capture/lsl_outlet_proc.py).

Every layout round-trips hand-written raw channel rows to the screen coordinates a person computes from the
bridge's documentation; a stream of the wrong shape is refused; NaN / invalid samples are kept and flagged;
out-of-order times are sorted and counted; an outlet that disappears for 5 s and returns is recovered with
the gap recorded. LSL is isolated by tests/conftest.py (private session id, this machine only).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest

from radgaze.capture.base.errors import DeviceError, StreamLayoutError
from radgaze.capture.base.records import GAZE_GAP_BEFORE, GAZE_VALID, DisplayGeometry
from radgaze.capture.live.gaze.discovery import find_gaze_streams, list_gaze_streams, resolve_gaze_stream
from radgaze.capture.live.gaze.inlet import GazeChunk, GazeInlet, concat_chunks
from radgaze.capture.live.gaze.layouts import BUILTIN_LAYOUTS

HERE = Path(__file__).resolve().parent
DISPLAY = DisplayGeometry(1920, 1080, 531.0, 299.0, 650.0)
NAN = float("nan")
W, H = 1920.0, 1080.0


def start_outlets(spec: dict, tmp_path: Path) -> subprocess.Popen:
    """Start the outlet process and wait until its outlets exist."""
    path = tmp_path / f"outlets-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, str(HERE / "lsl_outlet_proc.py"), str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "READY"
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(10)
    proc.stdout.close()


def collect(inlet: GazeInlet, n_min: int, timeout_s: float = 10.0) -> list[GazeChunk]:
    chunks, n, t_end = [], 0, time.monotonic() + timeout_s
    while n < n_min and time.monotonic() < t_end:
        chunk = inlet.get(timeout_s=0.05)
        if chunk is not None:
            chunks.append(chunk)
            n += chunk.samples.size
    assert n >= n_min, f"expected {n_min} samples within {timeout_s} s, got {n}"
    return chunks


def _outlet(layout: str, name: str, rows: list[list[float]], **kw) -> dict:
    lay = BUILTIN_LAYOUTS[layout]
    spec = {"name": name, "type": lay.stream_type, "format": lay.channel_format, "rate": 200.0,
            "labels": list(lay.labels), "rows": rows}  # fmt: skip
    spec.update(kw)
    return spec


_pupil_rows = []
for conf, nx, ny in [(0.95, 0.25, 0.75), (0.95, 0.5, 0.1), (0.2, 0.5, 0.5), (0.9, NAN, NAN)]:
    r = [0.0] * 22
    r[0], r[1], r[2], r[20], r[21] = conf, nx, ny, 3.0, 3.0
    _pupil_rows.append(r)

# name -> (outlet spec, expected [(x_screen_px, y_screen_px, valid)] per row, in the display above)
CASES = {
    "tobii": (
        _outlet("tobii", "T-tobii", [[0.25, 0.5, 3, 0.75, 0.5, 3], [NAN, NAN, NAN, 0.1, 0.2, 3],
                                     [NAN] * 6, [0.5, 0.25, 3, 0.5, 0.25, 3]]),
        # row 2: the right eye alone, less half the offset the eyes last had (0.5 W apart in row 1)
        [(0.5 * W, 0.5 * H, True), (0.1 * W - 0.25 * W, 0.2 * H, True), (NAN, NAN, False),
         (0.5 * W, 0.25 * H, True)],
    ),
    "gazepoint": (
        _outlet("gazepoint", "T-gazepoint", [[0.1, 0.2, 0, 0, 1, 1], [0.3, 0.4, 0, 0, 1, 1],
                                             [0.3, 0.4, 0, 0, 1, 0], [0.9, 0.8, 0, 0, 2, 1]]),
        [(0.1 * W, 0.2 * H, True), (0.3 * W, 0.4 * H, True), (NAN, NAN, False), (0.9 * W, 0.8 * H, True)],
    ),
    "eyelink": (
        _outlet("eyelink", "T-eyelink", [[100, 200, 120, 220, 900, 900, 40, 40, 0, 0],
                                         [-32768, -32768, 500, 600, 0, 900, 40, 40, 0, 0],
                                         [-32768, -32768, -32768, -32768, 0, 0, 40, 40, 0, 0],
                                         [1000, 50, 1000, 50, 900, 900, 40, 40, 0, 0]]),
        [(110.0, 210.0, True), (500.0 - 10.0, 600.0 - 10.0, True), (NAN, NAN, False), (1000.0, 50.0, True)],
    ),
    "generic": (
        {"name": "T-generic", "type": "GAZE", "format": "double64", "rate": 200.0,
         "labels": ["PorX", "PorY", "Quality"], "types": ["ScreenX", "ScreenY", "Confidence"],
         "eyes": ["both", "both", "both"], "units": ["pixels", "pixels", "normalized"],
         "rows": [[10, 20, 1], [30, 40, 1], [30, 40, 0], [NAN, 5, 1]]},
        [(10.0, 20.0, True), (30.0, 40.0, True), (NAN, NAN, False), (NAN, NAN, False)],
    ),
}  # fmt: skip
EXTRA_OUTLETS = [
    {"name": "Tobii7", "type": "Eyetracker", "format": "float32", "rate": 200.0, "n_channels": 7,
     "rows": [[0.5] * 7]},
    {"name": "T-eeg", "type": "EEG", "format": "float32", "rate": 100.0, "n_channels": 4,
     "rows": [[0.0] * 4]},
    # the Tobii app's layout, the eyes 0.1 of the screen (192 px, ~4 deg on DISPLAY) apart in x
    _outlet("tobii", "T-tobii-apart", [[0.40, 0.5, 3, 0.50, 0.5, 3]]),
]  # fmt: skip


@pytest.fixture(scope="module")
def outlets(tmp_path_factory):
    # lifetime: a guard against an orphaned process only (the fixture stops it); a loaded machine may take minutes
    pupil = _outlet("pupil", "T-pupil", _pupil_rows)  # a head-mounted tracker's scene-camera gaze: refused
    spec = {"lifetime_s": 900, "outlets": [c[0] for c in CASES.values()] + [pupil] + EXTRA_OUTLETS}
    proc = start_outlets(spec, tmp_path_factory.mktemp("lsl"))
    yield proc
    stop_process(proc)


def _rotation_matches(got: np.ndarray, expected: list[tuple[float, float, bool]]) -> bool:
    k = len(expected)
    exp = np.array([(x, y) for x, y, _ in expected], float)
    exp_valid = np.array([v for *_, v in expected])
    xy = np.stack([got["x_screen_px"][:k], got["y_screen_px"][:k]], 1).astype(float)
    valid = (got["flags"][:k] & GAZE_VALID) != 0
    for s in range(k):
        e, ev = np.roll(exp, -s, axis=0), np.roll(exp_valid, -s)
        if (valid == ev).all() and np.allclose(xy, e, atol=0.05, equal_nan=True):
            return True
    return False


@pytest.mark.parametrize("layout", sorted(CASES))
def test_layout_round_trip_to_screen_coordinates(outlets, layout):
    spec, expected = CASES[layout]
    info = resolve_gaze_stream(spec["name"], timeout_s=5.0)
    with GazeInlet(info, DISPLAY) as inlet:
        samples, _ = concat_chunks(collect(inlet, 3 * len(expected)))
    assert inlet.layout.name == layout
    assert np.all(np.diff(samples["t_lsl"]) > 0)
    for start in range(len(expected)):  # every full cycle received is a rotation of the rows sent
        assert _rotation_matches(samples[start:], expected), samples[start : start + len(expected)]
    invalid = (samples["flags"] & GAZE_VALID) == 0
    assert invalid.any() and np.isnan(samples["x_screen_px"][invalid]).all()  # kept, flagged, no position
    assert inlet.stats.n_invalid >= int(invalid.sum()) > 0


def test_binocular_streams_record_how_far_apart_the_eyes_are(outlets):
    with GazeInlet(resolve_gaze_stream("T-tobii-apart", timeout_s=5.0), DISPLAY) as inlet:
        concat_chunks(collect(inlet, 8))
        prov = inlet.provenance()
    ppd_x = DISPLAY.screen_w_px / DISPLAY.screen_w_mm * 2 * 650 * np.tan(np.deg2rad(0.5))
    assert prov["eyes_disagree_deg"] == pytest.approx(192 / ppd_x, rel=1e-3)
    assert "the two eyes disagree by 4." in prov["warnings"][0]
    with GazeInlet(resolve_gaze_stream("T-gazepoint", timeout_s=5.0), DISPLAY) as inlet:
        concat_chunks(collect(inlet, 4))
        assert "eyes_disagree_deg" not in inlet.provenance()  # one point per sample: nothing to compare


def test_scene_camera_gaze_of_the_pupil_capture_relay_is_refused(outlets):
    info = resolve_gaze_stream("T-pupil", timeout_s=5.0)
    with pytest.raises(
        StreamLayoutError, match="'T-pupil' sends gaze in a head-mounted tracker's scene-camera"
    ):
        GazeInlet(info, DISPLAY).start()


def test_wrong_channel_count_is_refused(outlets):
    info = resolve_gaze_stream("Tobii7", timeout_s=5.0)
    with pytest.raises(StreamLayoutError, match="expects 6 channels, got 7"):
        GazeInlet(info, DISPLAY).start()


def test_forced_layout_that_does_not_fit_is_refused(outlets):
    info = resolve_gaze_stream("T-tobii", timeout_s=5.0)
    with pytest.raises(StreamLayoutError, match="'eyelink'.*expects 10 channels, got 6"):
        GazeInlet(info, DISPLAY, layout="eyelink").start()


def test_discovery_finds_gaze_types_case_insensitively(outlets):
    names = {i.name() for i in find_gaze_streams(wait_s=1.0)}
    assert {"T-tobii", "T-pupil", "T-gazepoint", "T-eyelink", "T-generic", "Tobii7"} <= names
    assert "T-eeg" not in names  # content type EEG is not gaze
    listed = {d["name"]: d for d in list_gaze_streams(wait_s=1.0)}
    assert listed["T-pupil"]["n_channels"] == 22 and listed["T-pupil"]["channel_format"] == "double64"
    assert listed["T-gazepoint"]["type"] == "gaze" and listed["T-gazepoint"]["nominal_rate_hz"] == 200.0
    assert resolve_gaze_stream("T-eeg", timeout_s=5.0).type() == "EEG"  # but can be asked for by name


def test_resolve_without_a_name_refuses_to_guess_and_missing_stream_is_a_device_error(outlets):
    with pytest.raises(
        DeviceError, match=r"expected one gaze stream, found \d+ .*'T-tobii'.*choose one by name"
    ):
        resolve_gaze_stream(None, timeout_s=5.0)
    with pytest.raises(DeviceError, match="named 'no-such-tracker' within 0.3 s, found none"):
        resolve_gaze_stream("no-such-tracker", timeout_s=0.3)


def test_an_error_in_the_thread_travels_on_the_queue(outlets):
    info = resolve_gaze_stream("T-gazepoint", timeout_s=5.0)
    inlet = GazeInlet(info, DISPLAY).start()
    try:

        def broken(*_):
            raise ValueError("decoder exploded")

        inlet._handle = broken  # the next chunk fails inside the thread
        with pytest.raises(ValueError, match="decoder exploded"):
            for _ in range(100):
                inlet.get(timeout_s=0.1)
        inlet._thread.join(2.0)
        assert not inlet.running  # the thread ended with its error handed over, nothing swallowed
    finally:
        inlet.stop()


def test_provenance_and_clean_stop(outlets):
    info = resolve_gaze_stream("T-eyelink", timeout_s=5.0)
    inlet = GazeInlet(info, DISPLAY).start()
    collect(inlet, 10)
    inlet.stop()
    assert not inlet.running
    prov = inlet.provenance()
    assert prov["stream"]["name"] == "T-eyelink" and prov["stream"]["layout"] == "eyelink"
    assert prov["stream"]["nominal_rate_hz"] == 200.0 and prov["stream"]["source_id"] == "T-eyelink-src"
    assert prov["stream"]["hostname"]
    assert prov["time_correction_s"] is not None and abs(prov["time_correction_s"]) < 0.01  # same machine
    assert prov["stats"]["n_samples"] >= 10


def test_out_of_order_timestamps_sorted_and_counted(tmp_path):
    offsets = [0.00, 0.03, 0.01, 0.02, 0.05, 0.04]  # irregular-rate stream: liblsl does not dejitter it
    rows = [[0.1 * (i + 1), 0.5, 3, 0.1 * (i + 1), 0.5, 3] for i in range(6)]
    ooo = {"name": "T-ooo", "type": "Gaze", "format": "float32", "rate": 0.0,
           "labels": list(BUILTIN_LAYOUTS["tobii"].labels),
           "chunks": [{"rows": rows, "t_offsets": offsets}]}  # fmt: skip
    spec = {"lifetime_s": 30, "outlets": [ooo]}
    proc = start_outlets(spec, tmp_path)
    try:
        info = resolve_gaze_stream("T-ooo", timeout_s=5.0)
        with GazeInlet(info, DISPLAY) as inlet:
            got, _ = concat_chunks(collect(inlet, 6 - 2, timeout_s=5.0))
            time.sleep(0.2)
            more, _ = concat_chunks(inlet.drain())
    finally:
        stop_process(proc)
    t = np.concatenate([got["t_lsl"], more["t_lsl"]])
    x = np.concatenate([got["x_screen_px"], more["x_screen_px"]])
    assert np.all(np.diff(t) >= 0)
    assert inlet.stats.n_out_of_order >= 2
    assert t.size + inlet.stats.n_late_dropped == 6
    # sample i was sent at offset[i] with x = 0.1 (i + 1) * W; sorted by time, x follows the offsets' order
    by_time = [0.1 * (i + 1) * W for i in np.argsort(offsets)]
    assert set(np.round(x, 1)) <= set(np.round(by_time, 1))
    if inlet.stats.n_late_dropped == 0:
        np.testing.assert_allclose(x, by_time, atol=0.05)


@pytest.mark.slow
def test_outlet_gone_for_5_s_is_recovered_with_the_gap_recorded(tmp_path):
    spec = {"lifetime_s": 30, "outlets": [_outlet("tobii", "T-gap", [[0.5, 0.5, 3, 0.5, 0.5, 3]], rate=100.0,
                                                  source_id="T-gap-src", disappear_after_s=1.0,
                                                  disappear_for_s=5.0)]}  # fmt: skip
    proc = start_outlets(spec, tmp_path)
    try:
        info = resolve_gaze_stream("T-gap", timeout_s=5.0)
        with GazeInlet(info, DISPLAY) as inlet:
            chunks = collect(inlet, 50)
            t_end = time.monotonic() + 15.0
            while time.monotonic() < t_end and inlet.stats.n_gaps == 0:
                chunk = inlet.get(timeout_s=0.1)
                chunks += [chunk] if chunk is not None else []
            chunks += collect(inlet, 100)  # a second after the return
    finally:
        stop_process(proc)
    samples, gaps = concat_chunks(chunks)
    assert gaps.size == 1, gaps
    assert 5.0 <= gaps["t_back"][0] - gaps["t_lost"][0] < 8.0
    flagged = np.flatnonzero(samples["flags"] & GAZE_GAP_BEFORE)
    assert flagged.size == 1 and samples["t_lsl"][flagged[0]] == gaps["t_back"][0]
    assert samples["t_lsl"][flagged[0] - 1] == gaps["t_lost"][0]
    assert np.all(np.diff(samples["t_lsl"]) > 0)
    # times after the return are on the local clock: the newest sample is not far from "now"
    assert pylsl.local_clock() - samples["t_lsl"][-1] < 1.0
    assert np.allclose(np.diff(samples["t_lsl"][flagged[0] :]), 0.01, atol=2e-3)


@pytest.mark.slow
def test_outlet_paused_then_sending_its_backlog_loses_nothing(tmp_path):
    """A tracker process starved by the machine (SIGSTOP ~0.4 s, then SIGCONT) sends its backlog at once,
    stamped at the nominal times: the silence opens a fresh inlet, but the old connection is kept while it
    connects, so every sample arrives, no gap is recorded and no reconnect is counted (issue 24)."""
    rate_hz = 200.0
    spec = {"lifetime_s": 30, "outlets": [_outlet("tobii", "T-pause", [[0.5, 0.5, 3, 0.5, 0.5, 3]], rate=rate_hz,
                                                  source_id="T-pause-src")]}  # fmt: skip
    proc = start_outlets(spec, tmp_path)
    try:
        info = resolve_gaze_stream("T-pause", timeout_s=5.0)
        with GazeInlet(info, DISPLAY) as inlet:
            chunks = collect(inlet, 50)
            for _ in range(2):  # two stalls, each far longer than the gap threshold (0.1 s)
                proc.send_signal(signal.SIGSTOP)
                time.sleep(0.4)
                proc.send_signal(signal.SIGCONT)
                chunks += collect(inlet, int(rate_hz))  # the backlog and a second after it
            stats = inlet.stats
    finally:
        proc.send_signal(signal.SIGCONT)
        stop_process(proc)
    samples, gaps = concat_chunks(chunks)
    assert samples.size > 2 * rate_hz and gaps.size == 0, gaps
    # every sample of the stream, once: stamps one period apart from the first to the last
    np.testing.assert_allclose(np.diff(samples["t_lsl"]), 1.0 / rate_hz, atol=1e-6)
    assert stats.n_gaps == 0 and stats.n_reconnects == 0
