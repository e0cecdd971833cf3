"""``radgaze bench model``: parity is tight, the vectorized losses are faster, GPU keys null without CUDA."""

from __future__ import annotations

import json

import pytest
import torch

from radgaze.model.bench import main


def test_bench_json_small(capsys):
    argv = [
        "--json",
        "--batch",
        "8",
        "--patches",
        "16",
        "--max-sentences",
        "4",
        "--dim",
        "16",
        "--repeats",
        "5",
    ]
    threads = torch.get_num_threads()
    try:  # one thread: small kernels on a loaded 2-core machine otherwise wait on a descheduled peer
        assert main([*argv, "--repeats", "5", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    res = json.loads(capsys.readouterr().out)
    assert res["loss_parity_max_abs_err"] < 1e-10
    terms = {"clip", "filip", "mlce", "egm", "egf"}
    for name in ("paper", "reference_code"):  # every term, under each definition, in float64
        assert set(res["loss_parity_float64"][name]) == terms
        assert max(res["loss_parity_float64"][name].values()) <= 1e-10, name
    assert res["loss_speedup_vs_loop"] > 2.0  # thousands of Python-level dot products vs a few kernels
    assert set(res["loss_terms_float64"]) == terms
    if not torch.cuda.is_available():
        assert res["train_step_samples_per_s"] is None and res["mfu"] is None


@pytest.mark.slow  # 30 s at load 9 on 2 cores
def test_train_step_bench_runs_the_gpu_code_path_on_cpu():
    """The CUDA benchmark's step (model, AdamW, autocast, FLOP counting) on the CPU with the tiny preset."""
    from radgaze.model.bench import peak_flops, train_step_bench

    res = train_step_bench("cpu", "tiny", batch=4, steps=1, sentences=3, tokens=8, amp=True)
    assert res["train_step_samples_per_s"] > 0 and res["train_step_flops"] > 1e6
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12
    assert peak_flops("NVIDIA H100 PCIe") == 756.0e12
    assert peak_flops("Some Unknown GPU") is None
