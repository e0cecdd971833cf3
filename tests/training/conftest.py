"""Shared fixtures for training tests: small synthetic session folders (radgaze.capture.synth), built once per run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def _synth(out: Path, n_cases: int, seed: int) -> Path:
    synth = pytest.importorskip(
        "radgaze.capture.synth", reason="radgaze.capture.synth (synthetic sessions) is not available"
    )
    if not hasattr(synth, "write_synthetic_sessions"):
        pytest.skip("radgaze.capture.synth.write_synthetic_sessions is not available yet")
    out.mkdir(parents=True, exist_ok=True)
    # 512 px images: the tiny encoder sees 112 px and stored heatmaps are <= 512 px; decoding stays cheap
    synth.write_synthetic_sessions(out, n_cases=n_cases, seed=seed, image_size=512)
    return out


@pytest.fixture(scope="session")
def synth_sessions(tmp_path_factory) -> Path:
    """16 synthetic cases (training set of the CPU tests). Treat as read-only; copy to modify."""
    return _synth(tmp_path_factory.mktemp("synth_train"), 16, seed=11)


@pytest.fixture(scope="session")
def synth_heldout(tmp_path_factory) -> Path:
    """8 other synthetic cases (evaluation)."""
    return _synth(tmp_path_factory.mktemp("synth_test"), 8, seed=12)


@pytest.fixture
def sessions_copy(synth_sessions: Path, tmp_path: Path) -> Path:
    """A writable copy of the synthetic training folder."""
    dst = tmp_path / "sessions"
    shutil.copytree(synth_sessions, dst)
    return dst
