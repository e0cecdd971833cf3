from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _pythonpath() -> str:
    """The repository after whatever PYTHONPATH the test run has (a worktree's import shim comes first)."""
    return os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)


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
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": _pythonpath()}
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


def _torchrun_node(node_rank: int, port: int, argv: list[str]) -> list[str]:
    """One "node" of a two-node job on loopback: what a cluster runs on each host (c10d rendezvous)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--node-rank",
        str(node_rank),
        "--nproc-per-node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        f"radgaze-test-{port}",
        "--max-restarts",
        "0",
        *argv,
    ]


@pytest.fixture(scope="module")
def two_node_results(synth_sessions, tmp_path_factory) -> tuple[Path, list[dict]]:
    """ddp_check.py on two torchrun nodes, training from a prepared dataset that lacks the run's variant
    (rank 0 adds it while rank 1 waits)."""
    from radgaze.training import prepared as tprep

    root = tmp_path_factory.mktemp("two_node")
    out, prepared = root / "out", root / "prepared"
    tprep.prepare(synth_sessions, prepared, [tprep.Variant(64, 4, 8)])
    port = _free_port()
    argv = [str(Path(__file__).with_name("ddp_check.py")), str(synth_sessions), str(out), str(prepared)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": _pythonpath()}
    nodes = [
        subprocess.Popen(
            _torchrun_node(k, port, argv),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (0, 1)
    ]
    logs = []
    for proc in nodes:
        try:
            o, e = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for p in nodes:
                p.kill()
            raise
        logs.append((proc.returncode, o[-2000:] + e[-4000:]))
    assert all(rc == 0 for rc, _ in logs), logs
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_two_torchrun_nodes_on_loopback_equal_one_process_on_the_full_batch(two_node_results):
    out, results = two_node_results
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert {r["node"]["GROUP_RANK"] for r in results} == {"0", "1"}  # two nodes, one process each
    assert all(r["node"]["LOCAL_RANK"] == "0" for r in results)
    for res in results:
        assert res["world_size"] == 2 and res["backend"] == "gloo"
        assert res["gather_values_ok"] and res["gather_grad_ok"]
        assert res["loss_ok"] and res["grad_ok"] and res["logit_scale_grad_ok"], res
        assert res["loss_split_mean"] == pytest.approx(res["loss_full"], rel=1e-5)
        assert res["train_world_size"] == 2 and res["train_finished"] and res["train_steps"] == 4
        assert res["train_prepared"] == str(out.parent / "prepared")
    manifest = json.loads((out.parent / "prepared" / "manifest.json").read_text())
    assert [112, 7, 8] in manifest["variants"]  # added by rank 0 before the ranks read it


@pytest.mark.slow
def test_two_process_logit_scale_gradient_equals_the_full_batch_one(ddp_results):
    _, results = ddp_results
    for res in results:
        assert res["logit_scale_grad_ok"], res["grad_rel_err"]["logit_scale"]
