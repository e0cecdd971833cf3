"""Test-wide set-up: isolated LSL, offscreen Qt, a pinned PulseAudio server, the real sample files beside the repo."""

from __future__ import annotations

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist with ``--dist loadgroup`` (the README's test command): each module runs on one worker,
    so its module fixtures (a built wheel, a trained run, an Xvfb) are made once; every test of the one virtual
    microphone runs on one worker, one after another, since they all hear the same speaker."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        group = "audio" if item.get_closest_marker("audio") else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))


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
