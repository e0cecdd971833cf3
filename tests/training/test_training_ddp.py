from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results(synth_sessions, tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("ddp") / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(Path(__file__).with_name("ddp_check.py")),
        str(synth_sessions),
        str(out),
    ]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p),
    }
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_two_process_torchrun_on_cpu_gathers_correctly_and_trains(ddp_results):
    out, results = ddp_results
    for res in results:
        assert res["world_size"] == 2 and res["backend"] == "gloo"
        assert res["gather_values_ok"] and res["gather_grad_ok"]
        assert res["loss_ok"], res
        assert res["grad_ok"], res
        assert res["train_world_size"] == 2 and res["train_finished"]
    # 16 cases, 4 per rank per step, 2 ranks -> 2 steps per epoch, 2 epochs
    assert results[0]["train_steps"] == 4
    assert (out / "run" / "checkpoints" / "last").is_dir()
    assert json.loads((out / "run" / "report.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_two_process_logit_scale_gradient_equals_the_full_batch_one(ddp_results):
    _, results = ddp_results
    for res in results:
        assert res["logit_scale_grad_ok"], res["grad_rel_err"]["logit_scale"]
