"""``radgaze bench model``: parity is tight, the vectorized losses are faster, GPU keys null without CUDA."""

from __future__ import annotations

import json

import torch

from model.bench import main


def test_bench_json_small(capsys):
    assert main(["--json", "--batch", "6", "--max-sentences", "4", "--dim", "16", "--repeats", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["loss_parity_max_abs_err"] < 1e-10
    assert res["loss_speedup_vs_loop"] > 1.0
    assert set(res["loss_terms_float64"]) == {"clip", "filip", "mlce", "egm"}
    if not torch.cuda.is_available():
        assert res["train_step_samples_per_s"] is None and res["mfu"] is None
