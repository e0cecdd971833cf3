"""Every public LSL gaze bridge (tests/capture/bridges.py, written from each bridge's source) through live
``radgaze record --headless --tracker any`` and through ``radgaze import xdf``: the stored session matches the
ground truth the fixture pushed — median screen error <= 1 px, validity identical, stored-time error <= 1 ms
at p95, no invented outages, counters equal to what is stored. pylsl's own example outlets (EEG, markers)
run beside every bridge and are never taken for gaze.

These are correctness tolerances on data, not timings. The measured figures land in
$RADGAZE_ARTIFACTS/bridge_metrics.json (docs/trackers.md holds a table of them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bridges import BRIDGES, gaze_plan, header_xml, plans_for
from PIL import Image
from stand_ins import nearest as _nearest
from stand_ins import stop

from radgaze.capture.base.errors import ImportFormatError
from radgaze.capture.base.records import GAZE_VALID, DisplayGeometry
from radgaze.capture.importers.xdf import import_xdf
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.summary import describe_session

HERE = Path(__file__).resolve().parent
DURATION_S = 3.0
DISPLAY = DisplayGeometry(1920, 1080, 531.0, 299.0, 650.0)
pytestmark = pytest.mark.slow


@pytest.fixture()
def image(tmp_path) -> Path:
    path = tmp_path / "cxr.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65535, (600, 500), dtype=np.uint16)).save(path)
    return path


def start_bridge(bridge: str, tmp_path: Path, **spec) -> tuple[subprocess.Popen, Path]:
    truth = tmp_path / f"truth-{bridge}.npz"
    path = tmp_path / f"bridge-{bridge}.json"
    # the bridge streams 2 s longer than the recording, so the recording ends while data still flows
    path.write_text(json.dumps({"bridge": bridge, "duration_s": DURATION_S + 2.0, "truth": str(truth),
                                "lifetime_s": 60.0, **spec}))  # fmt: skip
    proc = subprocess.Popen([sys.executable, str(HERE / "bridges.py"), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
    return proc, truth


def _aligned_start(t_truth: np.ndarray, t: np.ndarray, n: int = 50) -> int:
    """Index of the pushed sample that the first stored one is. A bridge stamping at read time pushes a
    backlog with stamps microseconds apart, where "nearest in time" is a coin toss: of the pushed samples
    around the nearest one, take the one from which the next ``n`` stored times match best."""
    k = int(_nearest(t_truth, t[:1])[0])
    m = min(n, t.size)
    best = min(
        range(max(0, k - 2), min(t_truth.size - m, k + 2) + 1),
        key=lambda c: float(np.abs(t_truth[c : c + m] - t[:m]).sum()),
    )
    return int(best)


def compare(gaze: np.ndarray, t_start: float, t_truth, x_truth, y_truth, valid_truth) -> dict:
    """Stored gaze vs the pushed truth, sample for sample: the first stored row is paired with the pushed
    sample nearest in time, the following ones in order (so a lost, doubled or re-timed sample shows)."""
    pushed = np.isfinite(t_truth)
    t_truth, x_truth, y_truth, valid_truth = (a[pushed] for a in (t_truth, x_truth, y_truth, valid_truth))
    t = gaze["t_lsl"]
    k0 = _aligned_start(t_truth, t)
    k_last = t_truth.size - 1 - _aligned_start(-t_truth[::-1], -t[::-1])  # the same, from the end
    k = np.minimum(k0 + np.arange(t.size), t_truth.size - 1)
    dt = np.abs(t_truth[k] - t)
    valid = (gaze["flags"] & GAZE_VALID) > 0
    both = valid & valid_truth[k]
    err = np.hypot(gaze["x_screen_px"][both] - x_truth[k][both], gaze["y_screen_px"][both] - y_truth[k][both])
    return {
        "stored": int(t.size),
        "pushed_in_window": int(k_last - k0 + 1),
        "median_err_px": float(np.median(err)) if err.size else float("nan"),
        "validity_mismatches": int(np.count_nonzero(valid != valid_truth[k])),
        "n_valid": int(np.count_nonzero(valid)),
        "time_err_p95_ms": float(np.percentile(dt, 95) * 1000),
        "time_err_max_ms": float(dt.max() * 1000),
    }


def record_metrics(kind: str, bridge: str, metrics: dict, artifacts: Path) -> None:
    path = artifacts / "bridge_metrics.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault(kind, {})[bridge] = metrics
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


def check(metrics: dict, n_gaps: int, expected_gaps: int) -> None:
    assert metrics["median_err_px"] <= 1.0, metrics
    assert metrics["validity_mismatches"] == 0, metrics
    assert metrics["time_err_p95_ms"] <= 1.0, metrics
    assert metrics["stored"] == metrics["pushed_in_window"], metrics
    assert metrics["n_valid"] > 0
    assert n_gaps == expected_gaps


EXPECTED_LAYOUT = {"tobii": "tobii", "pupil_capture": "pupil", "neon": "neon", "gazepoint": "gazepoint",
                   "gazepoint36": "gazepoint36", "eyelink": "eyelink"}  # fmt: skip


def _layout_of(bridge: str) -> str:
    return next(
        v for k, v in sorted(EXPECTED_LAYOUT.items(), key=lambda kv: -len(kv[0])) if bridge.startswith(k)
    )


# head-mounted trackers: their relays send gaze in the scene camera's image, refused as screen gaze
HEAD_MOUNTED = frozenset({"pupil_capture", "neon"})
SCREEN_BRIDGES = sorted(set(BRIDGES) - HEAD_MOUNTED)


@pytest.mark.parametrize("bridge", SCREEN_BRIDGES)
def test_live_record_of_each_bridge_matches_what_it_pushed(bridge, tmp_path, image, artifacts_dir):
    proc, truth_path = start_bridge(bridge, tmp_path)
    out = tmp_path / "out"
    try:
        rec = subprocess.run(
            [sys.executable, "-m", "radgaze.app.cli", "record", "--headless", "--tracker", "any", "--no-audio",
             "--image", str(image), "--out", str(out), "--case-id", "c1", "--display", "1920x1080",
             "--duration", str(DURATION_S)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert rec.returncode == 0, rec.stderr
        deadline = time.monotonic() + 20
        while not truth_path.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop(proc)
    truth = np.load(truth_path)
    (path,) = out.glob("*.h5")
    with SessionReader(path) as r:
        case, prov = r.case("c1"), r.provenance
    info = describe_session(path)
    assert info["valid"], info
    metrics = compare(case.gaze, case.t_start, truth["t"], truth["x"], truth["y"], truth["valid"])
    stats = prov["tracker"]["stats"]
    metrics.update(n_gaps=int(case.gaps.size), n_reconnects=stats["n_reconnects"])
    record_metrics("live", bridge, metrics, artifacts_dir)
    assert prov["tracker"]["stream"]["layout"] == _layout_of(bridge)
    assert prov["tracker"]["dejitter"] is False
    check(metrics, case.gaps.size, 1 if bridge == "tobii_restart" else 0)
    # the closing line and the file's provenance say what inspect reads back
    assert f"{case.gaze.size} gaze samples, {case.gaps.size} gaps" in rec.stdout
    assert info["cases"][0]["gaze_samples"] == case.gaze.size
    pre, post = re.search(
        r"(\d+) gaze samples before the case began and (\d+) after it ended", rec.stdout
    ).groups()
    # the final counters, not a snapshot at opening
    assert stats["n_samples"] == case.gaze.size + int(pre) + int(post)
    assert stats["n_gaps"] == case.gaps.size
    if bridge == "tobii_restart":
        assert stats["n_reconnects"] >= 1


def write_bridge_xdf(path: Path, bridge: str, t0: float = 5000.0) -> dict:
    """The same fixture as an XDF file (LabRecorder's chunks); returns the gaze truth with its stamps."""
    plans = plans_for(bridge, DURATION_S)
    write_plans_xdf(path, plans, t0)
    g = gaze_plan(plans)
    return {"t": t0 + g.t, "x": g.x_px, "y": g.y_px, "valid": g.valid}


def write_plans_xdf(path: Path, plans: list, t0: float = 5000.0) -> None:
    from test_import_xdf import _chunk, _samples

    data = b"XDF:" + _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    for sid, p in enumerate(plans, start=1):
        data += _chunk(2, np.uint32(sid).tobytes() + header_xml(p).encode())
    for sid, p in enumerate(plans, start=1):
        t = t0 + np.asarray(p.t, float)
        rows = p.rows if p.fmt == "string" else np.asarray(p.rows)
        for lo in range(0, len(t), 500):
            data += _chunk(3, _samples(sid, t[lo : lo + 500], rows[lo : lo + 500], p.fmt))
        for tc in (t[0], t[-1]):
            data += _chunk(4, np.array([sid], "<u4").tobytes() + np.array([tc, 0.0], "<f8").tobytes())
    path.write_bytes(data)


@pytest.mark.parametrize("bridge", SCREEN_BRIDGES)
def test_xdf_import_of_each_bridge_matches_what_it_pushed(bridge, tmp_path, image, artifacts_dir):
    xdf = tmp_path / f"{bridge}.xdf"
    truth = write_bridge_xdf(xdf, bridge)
    res = import_xdf(xdf, tmp_path / "out", image=image, display=DISPLAY, case_id="c1")
    with SessionReader(res.written[0]) as r:
        case = r.case("c1")
        attrs = case.attrs
    metrics = compare(case.gaze, case.t_start, truth["t"], truth["x"], truth["y"], truth["valid"])
    metrics["n_gaps"] = int(case.gaps.size)
    record_metrics("xdf", bridge, metrics, artifacts_dir)
    assert attrs["gaze_layout"] == _layout_of(bridge)
    assert attrs["gaze_stream"] == gaze_plan(plans_for(bridge, 0.1)).name
    check(metrics, 0, 0)


@pytest.mark.parametrize("bridge", sorted(HEAD_MOUNTED))
def test_head_mounted_scene_camera_gaze_is_refused_live_and_on_import(bridge, tmp_path, image):
    proc, _ = start_bridge(bridge, tmp_path)
    out = tmp_path / "out"
    try:
        rec = subprocess.run(
            [sys.executable, "-m", "radgaze.app.cli", "record", "--headless", "--tracker", "any", "--no-audio",
             "--image", str(image), "--out", str(out), "--case-id", "c1", "--display", "1920x1080",
             "--duration", "1"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        stop(proc)
    assert rec.returncode == 2, rec.stderr
    ours = [line for line in rec.stderr.splitlines() if not LIBLSL_LOG.match(line)]
    assert len(ours) == 1 and "scene-camera image" in ours[0] and "AprilTag" in ours[0], ours
    assert not list(out.glob("*.h5"))
    xdf = tmp_path / f"{bridge}.xdf"
    write_bridge_xdf(xdf, bridge)
    with pytest.raises(ImportFormatError, match="scene-camera image.*not on the screen"):
        import_xdf(xdf, tmp_path / "xdf_out", image=image, display=DISPLAY, case_id="c1")
    assert not list((tmp_path / "xdf_out").glob("*.h5"))


# ------------------------------------------------------------------------------------------------ isolation
def _session_env(tmp_path: Path, session: str) -> dict:
    import os

    cfg = tmp_path / f"lsl-{session}.cfg"
    cfg.write_text(
        f"[lab]\nSessionID = {session}\n[multicast]\nResolveScope = machine\nKnownPeers = {{127.0.0.1}}\n"
    )
    return {**os.environ, "LSLAPICFG": str(cfg)}


def test_a_tracker_of_another_lsl_session_is_never_seen(tmp_path, image):
    """Session A has only pylsl's SendData EEG stream; session B (another LSLAPICFG, same machine) has a Tobii
    app stream typed Eyetracker. Discovery, ``--tracker any`` and the window's default choice (the same
    resolve_gaze_stream) in session A see no gaze stream; the same calls in session B see the tracker."""
    import uuid

    a, b = f"radgaze-A-{uuid.uuid4().hex[:8]}", f"radgaze-B-{uuid.uuid4().hex[:8]}"
    env_a, env_b = _session_env(tmp_path, a), _session_env(tmp_path, b)
    spec_a = tmp_path / "a.json"
    spec_a.write_text(json.dumps({"outlets": [{"name": "BioSemi", "type": "EEG", "rate": 100.0, "n_channels": 8,
                                               "source_id": "myuid34234", "rows": [[0.0] * 8]}],
                                  "lifetime_s": 40}))  # fmt: skip
    outlets_a = subprocess.Popen([sys.executable, str(HERE / "lsl_outlet_proc.py"), str(spec_a)], env=env_a,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    spec_b = tmp_path / "b.json"
    spec_b.write_text(json.dumps({"bridge": "tobii_eyetracker_type", "duration_s": 20.0, "examples": False,
                                  "truth": str(tmp_path / "b.npz"), "lifetime_s": 40}))  # fmt: skip
    outlets_b = subprocess.Popen([sys.executable, str(HERE / "bridges.py"), str(spec_b)], env=env_b,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    probe = (
        "from radgaze.capture.live.gaze.discovery import list_gaze_streams, resolve_gaze_stream\n"
        "print([s['name'] for s in list_gaze_streams(1.5)])\n"
        "try:\n    print('chose', resolve_gaze_stream(None, timeout_s=2.0).name())\n"
        "except Exception as e:\n    print('none:', e)\n"
    )
    try:
        assert outlets_a.stdout.readline().strip() == "READY"
        assert outlets_b.stdout.readline().strip() == "READY"
        seen_a = subprocess.run([sys.executable, "-c", probe], env=env_a, capture_output=True, text=True,
                                timeout=60).stdout  # fmt: skip
        seen_b = subprocess.run([sys.executable, "-c", probe], env=env_b, capture_output=True, text=True,
                                timeout=60).stdout  # fmt: skip
        rec = subprocess.run(
            [sys.executable, "-m", "radgaze.app.cli", "record", "--headless", "--tracker", "any", "--no-audio",
             "--image", str(image), "--out", str(tmp_path / "out"), "--duration", "1"],
            env=env_a, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        for proc in (outlets_a, outlets_b):
            stop(proc)
    assert seen_a.splitlines()[0] == "[]" and seen_a.splitlines()[1].startswith("none:"), seen_a
    assert seen_b.splitlines()[0] == "['Tobii']" and seen_b.splitlines()[1] == "chose Tobii", seen_b
    assert rec.returncode == 2 and "found none" in rec.stderr and not list((tmp_path / "out").glob("*.h5"))


def test_xdf_with_two_streams_that_fit_lists_them_and_how_to_choose(tmp_path, image):
    from bridges import eyelink, pylsl_examples, tobii

    from radgaze.capture.base.errors import ImportFormatError

    xdf = tmp_path / "two.xdf"
    write_plans_xdf(xdf, tobii(1.0, 0) + eyelink(1.0, 1) + pylsl_examples(1.0, 0))
    with pytest.raises(ImportFormatError) as err:
        import_xdf(xdf, tmp_path / "out", image=image, display=DISPLAY)
    msg = str(err.value)
    assert "'Tobii'" in msg and "'EyeLink'" in msg and "--gaze-stream" in msg and "\n" not in msg
    assert "BioSemi" not in msg.split("got 2")[1]  # the EEG stream is not a candidate
    res = import_xdf(xdf, tmp_path / "out", image=image, display=DISPLAY, gaze_stream="eyelink-testhost")
    with SessionReader(res.written[0]) as r:
        assert next(r.cases()).attrs["gaze_layout"] == "eyelink"


# ------------------------------------------------------------------------------------------------ wrong streams
LIBLSL_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \(")
WRONG = {
    "string": ({"name": "WrongStrings", "type": "Gaze", "format": "string", "rate": 0.0, "n_channels": 2,
                "labels": ["x", "y"]}, "WrongStrings", "expected float32 or double64 channels, got string"),
    "no_layout": ({"name": "WrongLabels", "type": "Gaze", "format": "float32", "rate": 0.0,
                   "labels": ["a", "b", "c"], "rows": [[0.1, 0.2, 0.3]]}, "any", "0 Hz, labels ['a', 'b', 'c']"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(WRONG))
def test_a_wrong_stream_is_refused_in_one_line_and_nothing_is_recorded(kind, tmp_path, image):
    spec, tracker, expected = WRONG[kind]
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps({"outlets": [spec], "lifetime_s": 30}))
    proc = subprocess.Popen([sys.executable, str(HERE / "lsl_outlet_proc.py"), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "READY"
        rec = subprocess.run(
            [sys.executable, "-m", "radgaze.app.cli", "record", "--headless", "--tracker", tracker, "--no-audio",
             "--image", str(image), "--out", str(tmp_path / "out"), "--duration", "1"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        stop(proc)
    assert rec.returncode == 2, rec.stderr
    ours = [line for line in rec.stderr.splitlines() if not LIBLSL_LOG.match(line)]  # liblsl logs its config
    assert len(ours) == 1 and expected in ours[0] and "Traceback" not in rec.stderr, ours
    assert "--layout-config" in ours[0] or kind == "string"
    assert not list((tmp_path / "out").glob("*.h5"))
