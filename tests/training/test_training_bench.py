"""bench train / bench data on the CPU: the code paths run and their figures are consistent (never their speed)."""

from __future__ import annotations

import json

import pytest

from radgaze.training import bench, bench_data


def test_breakdown_parts_sum_to_the_step_and_fractions_to_one():
    br = bench.breakdown_summary([0.1, 0.3], [0.05, 0.05], [1.0, 2.0])
    assert br["data_wait_s"] == pytest.approx(0.2) and br["compute_s"] == pytest.approx(1.5)
    assert br["step_s"] == pytest.approx(0.2 + 0.05 + 1.5)
    assert sum(br["fractions"].values()) == pytest.approx(1.0)
    assert br["fractions"]["data_wait"] == pytest.approx(0.2 / 1.75)
    with pytest.raises(ValueError, match="equal, non-empty"):
        bench.breakdown_summary([0.1], [], [1.0])


@pytest.mark.slow
def test_bench_train_on_cpu_reports_a_consistent_breakdown_fed_from_the_prepared_form(tmp_path):
    res = bench.measure(
        config="tiny",
        device=bench.torch.device("cpu"),
        batch_size=4,
        steps=2,
        warmup=1,
        n_cases=8,
        work=tmp_path,
        workers=1,
        image_px=256,
    )
    json.dumps(res)  # one JSON object
    assert res["measured"] and res["device"] == "cpu" and res["batch_size"] == 4 and res["workers"] == 1
    assert (tmp_path / "sessions" / ".radgaze-prepared" / "manifest.json").is_file()
    br = res["breakdown"]
    assert br["steps"] == 2
    assert br["step_s"] == pytest.approx(br["data_wait_s"] + br["host_s"] + br["compute_s"])
    assert res["step_s"] == br["step_s"] and res["samples_per_s"] == pytest.approx(4 / br["step_s"])
    assert res["data_wait_frac"] == br["fractions"]["data_wait"] and 0 <= res["data_wait_frac"] <= 1
    assert res["flops_per_step"] > 0 and "FlopCounterMode" in res["flops_method"]
    assert res["mfu"] is None and res["peak_memory_gib"] is None  # no GPU peak / device memory on a CPU
    key = bench.PROJECTED_KEY
    assert res[key] == pytest.approx(bench.PAPER_EPOCHS * bench.PAPER_SAMPLES / res["samples_per_s"])


def test_bench_train_without_cuda_has_every_field_null():
    if bench.torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the GPU benchmark would run instead")
    res = bench.not_measured("no CUDA")
    for k in (
        "samples_per_s",
        "mfu",
        "step_s",
        "breakdown",
        "data_wait_frac",
        "peak_memory_gib",
        bench.PROJECTED_KEY,
    ):
        assert res[k] is None, k


@pytest.mark.slow
def test_bench_data_measures_both_sources_with_load_average(capsys):
    argv = ["--config", "tiny", "--cases", "4", "--image-px", "256", "--workers", "1", "--batch-size", "2"]
    argv += ["--items", "20", "--raw-items", "2", "--batches", "2", "--raw-batches", "1", "--json"]
    assert bench_data.main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    for src in ("raw", "prepared"):
        pp, ww = res[src]["per_process"], res[src]["with_workers"]
        assert pp["samples"] >= 1 and pp["samples_per_s"] > 0 and "load1" in pp
        assert ww["workers"] == 1 and ww["samples"] == 2 * (1 if src == "raw" else 2) and "load1" in ww
    assert res["prepare"]["cases"] == 4 and res["prepare"]["variant"] == "s112-g7-m8"
    assert res["speedup_per_process"] == pytest.approx(
        res["prepared"]["per_process"]["samples_per_s"] / res["raw"]["per_process"]["samples_per_s"], rel=0.01
    )
    assert res["met"]["prepared_16_workers"] is None  # fewer than 16 workers: not shown, not guessed
