from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _pythonpath() -> str:
    """The repository after whatever PYTHONPATH the test run has (a worktree's import shim comes first)."""
    return os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)


def _train_cmd(sessions: Path, run: Path, progress: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "radgaze.training.cli",
        str(sessions),
        "--out",
        str(run),
        "--config",
        "tiny",
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--set",
        "save_every_steps=1",
        "--set",
        "eval_at_end=false",
        "--set",
        "num_threads=1",
        "--progress-json",
        str(progress),
        "--no-bar",
        *extra,
    ]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": _pythonpath()}


def _last_step(progress: Path) -> int:
    if not progress.is_file():
        return 0
    steps = [json.loads(x).get("step", 0) for x in progress.read_text().splitlines() if x.strip()]
    return max(steps, default=0)


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(synth_sessions, tmp_path):
    # 16 cases / batch 4 -> 4 steps per epoch, 12 in all; kill during epoch 1 (steps 5..8)
    killed, ref = tmp_path / "killed", tmp_path / "ref"
    progress = tmp_path / "progress.jsonl"
    proc = subprocess.Popen(
        _train_cmd(synth_sessions, killed, progress),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    t0 = time.monotonic()
    while _last_step(progress) < 6 and proc.poll() is None and time.monotonic() - t0 < 180:
        time.sleep(0.02)
    assert proc.poll() is None, (
        "training ended before it could be killed: " + proc.stderr.read().decode()[-3000:]
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = _last_step(progress)
    assert 6 <= at_kill < 12
    state = torch.load(killed / "checkpoints" / "state.pt", map_location="cpu", weights_only=False)
    assert 1 <= state["loop"]["step"] < 12
    resumed = subprocess.run(
        _train_cmd(synth_sessions, killed, progress, "--resume"),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    last = json.loads(progress.read_text().splitlines()[-1])
    assert last["done"] and last["finished"] and last["steps"] == 12
    reference = subprocess.run(
        _train_cmd(synth_sessions, ref, tmp_path / "ref_progress.jsonl"),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    wa = torch.load(killed / "checkpoints" / "state.pt", map_location="cpu", weights_only=False)["model"]
    wb = torch.load(ref / "checkpoints" / "state.pt", map_location="cpu", weights_only=False)["model"]
    for k in wb:
        assert torch.equal(wa[k], wb[k]), k
    steps = [json.loads(x)["step"] for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))
