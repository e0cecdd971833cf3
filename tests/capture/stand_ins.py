"""What the tests of stand-in processes share: starting one (it prints ``READY ...`` once listening), stopping
it, and comparing the gaze a recorder stored with the truth the stand-in wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from radgaze.capture.base.records import GAZE_VALID, DisplayGeometry
from radgaze.capture.io.display import ppd_screen


def start(script: Path, spec: dict, spec_path: Path) -> tuple[subprocess.Popen, list[str]]:
    """``python script spec_path`` with ``spec`` written there; returns the process and the words after READY."""
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, str(script), str(spec_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    line = proc.stdout.readline().split()
    assert line[:1] == ["READY"], proc.stderr.read()
    return proc, line[1:]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)


def nearest(t_truth: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the truth time nearest each of ``t``."""
    k = np.clip(np.searchsorted(t_truth, t), 1, t_truth.size - 1)
    return np.where(np.abs(t_truth[k - 1] - t) < np.abs(t_truth[k] - t), k - 1, k)


def one_line(stderr: str) -> str:
    """radgaze's one error line (exactly one)."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("radgaze")]
    assert len(lines) == 1, stderr
    return lines[0]


def against_truth(gaze: np.ndarray, truth, display: DisplayGeometry) -> tuple[dict, dict]:
    """Stored screen gaze against the truth (``t``, ``x``, ``y``, ``valid`` on the LSL clock), each stored sample
    with the truth nearest it in time: (metrics, arrays: valid, truth_valid, dt)."""
    k = nearest(truth["t"], gaze["t_lsl"])
    dt = np.abs(truth["t"][k] - gaze["t_lsl"])
    valid = (gaze["flags"] & GAZE_VALID) > 0
    ppd = float(np.mean(ppd_screen(display)))
    err_deg = np.hypot(gaze["x_screen_px"] - truth["x"][k], gaze["y_screen_px"] - truth["y"][k])[valid] / ppd
    metrics = {
        "stored": int(gaze.size),
        "valid": int(valid.sum()),
        "truth_valid_of_stored": int(truth["valid"][k].sum()),
        "err_deg_median": float(np.median(err_deg)),
        "err_deg_p95": float(np.percentile(err_deg, 95)),
        "err_deg_max": float(err_deg.max()),
        "time_err_median_ms": float(np.median(dt) * 1000),
        "time_err_p95_ms": float(np.percentile(dt, 95) * 1000),
        "time_err_max_ms": float(dt.max() * 1000),
    }
    return metrics, {"valid": valid, "truth_valid": truth["valid"][k], "dt": dt}


RADGAZE = [sys.executable, "-m", "radgaze.app.cli"]


def record_headless(tmp_path: Path, screen: list[str], seconds: float) -> subprocess.CompletedProcess:
    """``radgaze record --headless --tracker any`` of one case ("c1", a random 16-bit image) into tmp_path/out."""
    from PIL import Image

    image = tmp_path / "cxr.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65535, (600, 500), dtype=np.uint16)).save(image)
    return subprocess.run(
        [*RADGAZE, "record", "--headless", "--tracker", "any", "--no-audio", "--image", str(image),
         "--out", str(tmp_path / "out"), "--case-id", "c1", *screen, "--duration", str(seconds)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def stored_case(tmp_path: Path) -> tuple[np.ndarray, dict]:
    """The gaze of case c1 and the provenance of the one session file in tmp_path/out."""
    from radgaze.capture.store.reader import SessionReader

    (path,) = (tmp_path / "out").glob("*.h5")
    with SessionReader(path) as r:
        return r.case("c1").gaze, r.provenance


def bridge_while_recording(
    bridge_args: list[str],
    stream: str,
    tmp_path: Path,
    screen: list[str],
    record_s: float,
    refused: bool = False,
) -> subprocess.Popen:
    """A head-mounted bridge (``radgaze`` + ``bridge_args``) publishing ``stream`` while ``record_headless``
    records; ``refused``: the bridge must then stop by itself with exit 2. The bridge is stopped (SIGTERM: it says
    what it mapped and writes its summary) and returned, its output unread."""
    bridge = subprocess.Popen(
        [*RADGAZE, *bridge_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert f"publishing {stream!r}" in bridge.stdout.readline(), bridge.stderr.read()
        rec = record_headless(tmp_path, screen, record_s)
        assert rec.returncode == 0, rec.stderr
        if refused:
            assert bridge.wait(60) == 2
    finally:
        stop(bridge)
    return bridge


def bridge_against_truth(
    bridge: subprocess.Popen, tmp_path: Path, truth_path: Path, summary: Path, display
) -> tuple[dict, dict]:
    """After a bridge published while ``record_headless`` recorded: the stored gaze (generic layout) against the
    stand-in's truth, the bridge's closing summary merged in: (metrics, arrays)."""
    assert bridge.returncode == 0, bridge.stderr.read()
    gaze, prov = stored_case(tmp_path)
    assert prov["tracker"]["stream"]["layout"] == "generic"
    metrics, got = against_truth(gaze, np.load(truth_path), display)
    return {**metrics, **json.loads(summary.read_text())}, got
