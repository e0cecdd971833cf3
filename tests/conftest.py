"""Test-wide set-up: isolated LSL, offscreen Qt, a pinned PulseAudio server, the real sample files beside the repo."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _isolate_lsl() -> None:
    """Give liblsl a config with a private SessionID, resolving on this machine only.

    Must run before pylsl is first used; subprocesses inherit LSLAPICFG, so outlets started by tests see the
    same session and nothing else (no real lab stream can leak in). CI's .ci/run sets LSLAPICFG too; under
    pytest-xdist each worker gets a session of its own, so a test resolving "any tracker" never sees an outlet
    of a test running beside it on another worker.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1"… under pytest -n: one session each
    if not worker and os.environ.get("LSLAPICFG") and Path(os.environ["LSLAPICFG"]).is_file():
        return
    cfg = Path(tempfile.mkdtemp(prefix="radgaze-lsl-")) / "lsl_api.cfg"
    cfg.write_text(
        "[lab]\n"
        f"SessionID = radgaze-test-{worker or 'main'}-{uuid.uuid4().hex[:12]}\n"
        "[multicast]\n"
        "ResolveScope = machine\n"
        "KnownPeers = {127.0.0.1}\n"
    )
    os.environ["LSLAPICFG"] = str(cfg)


def _pin_pulse_server() -> None:
    """Name the running PulseAudio server in PULSE_SERVER, for this process and its children.

    Clients otherwise find a per-user server through $XDG_CONFIG_HOME/pulse, and the Qt tests move
    XDG_CONFIG_HOME for their settings: the audio tests after them lost the server, and .ci/pulse-mic.sh then
    started a second one with no stream keeping its sink running (capture stamps off by up to 0.36 s).
    """
    if os.environ.get("PULSE_SERVER") or shutil.which("pactl") is None:
        return
    try:
        info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return
    for line in info.stdout.splitlines():
        if info.returncode == 0 and line.startswith("Server String:"):
            os.environ["PULSE_SERVER"] = line.split(":", 1)[1].strip()


_isolate_lsl()
_pin_pulse_server()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub in tests
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _one_virtual_microphone_user_at_a_time(request: pytest.FixtureRequest):
    """Tests marked ``audio`` all hear the one virtual speaker: each holds an exclusive lock on the machine while
    it runs, so pytest-xdist workers (and a second test run on the same machine) take turns."""
    if request.node.get_closest_marker("audio") is None:
        yield
        return
    lock_path = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / "radgaze-virtual-mic.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real radiographs, DICOM, speech). Tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real sample data folder {SHARED_DATA} is absent (it lives beside the repo, never in it)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave screenshots and figures for a person to look at (ignored by git)."""
    out = Path(os.environ.get("RADGAZE_ARTIFACTS", REPO / "artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return out
