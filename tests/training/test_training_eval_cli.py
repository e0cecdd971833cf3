from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from radgaze.model.zeroshot import accuracy_macro_f1

REPO = Path(__file__).resolve().parents[2]
KEYS = [
    "zero_shot_accuracy",
    "zero_shot_macro_f1",
    "pointing_game",
    "attention_cc",
    "attention_nss",
    *[f"retrieval_{d}_p_at_{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)],
]


def _env() -> dict:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p),
    }


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------------------------------------------ pure
def test_accuracy_and_macro_f1():
    acc, f1 = accuracy_macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    assert acc == 0.75
    assert f1 == pytest.approx((2 / 3 + 0.8) / 2)


# ------------------------------------------------------------------------------- a trained run, via CLI
@pytest.fixture(scope="module")
def trained_run(synth_sessions, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    proc = _cli(
        "train",
        str(synth_sessions),
        "--out",
        str(run),
        "--config",
        "tiny",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--losses",
        "clip,egf,egm",
        "--gaze-ratio",
        "0.5",
        "--no-bar",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["finished"] and summary["steps"] == 8 and summary["n_skipped"] == 0
    return run


@pytest.mark.slow
def test_train_cli_writes_the_run_and_its_final_evaluation(trained_run):
    cfg = json.loads((trained_run / "config.json").read_text())
    assert cfg["model"]["loss"]["losses"] == ["clip", "egf", "egm"] and cfg["data"]["gaze_ratio"] == 0.5
    report = json.loads((trained_run / "report.json").read_text())
    assert report["data"]["n_with_gaze"] == 8
    ev = json.loads((trained_run / "eval.json").read_text())
    assert set(KEYS) <= set(ev)


@pytest.mark.slow
def test_eval_cli_prints_every_key_in_range(trained_run, synth_heldout):
    proc = _cli("eval", str(trained_run), str(synth_heldout), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    for k in KEYS:
        assert res[k] is not None, k
    for k in KEYS:
        if k == "attention_nss":
            assert np.isfinite(res[k])
        elif k == "attention_cc":
            assert -1.0 <= res[k] <= 1.0
        else:
            assert 0.0 <= res[k] <= 1.0, (k, res[k])
    assert res["n_cases"] == 8 and res["n_attention_sentences"] > 0
    # image->text P@k with 5 prompts per class cannot exceed 5/k
    assert res["retrieval_i2t_p_at_10"] <= 0.5 + 1e-9


def test_cli_errors_are_one_line_exit_2(tmp_path):
    proc = _cli("train", str(tmp_path / "missing"), "--out", str(tmp_path / "run"), "--config", "tiny")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "radgaze train:" in proc.stderr
    proc = _cli("train", str(tmp_path), "--out", str(tmp_path / "run"), "--config", "tiny", "--losses", "foo")
    assert proc.returncode == 2 and "losses" in proc.stderr


def test_help_texts_give_an_example():
    for cmd in (["train"], ["eval"], ["experiment"], ["bench", "train"]):
        proc = _cli(*cmd, "--help", timeout=120)
        assert proc.returncode == 0 and "example:" in proc.stdout, cmd


def test_bench_train_without_cuda_reports_not_measured():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the GPU benchmark would run instead")
    proc = _cli("bench", "train", "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout)
    assert res["measured"] is False and res["samples_per_s"] is None and res["mfu"] is None
    assert "not measured" in res["reason"]


@pytest.mark.slow
def test_gaze_ablation_experiment_runs_end_to_end(tmp_path):
    proc = _cli(
        "experiment",
        "gaze-ablation",
        "--cases",
        "8",
        "--test-cases",
        "4",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--only",
        "CLIP only",
        "--only",
        "EGF+EGM gaze 50%",
        "--set",
        "batch_size=4",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    assert [r["name"] for r in res["rows"]] == ["CLIP only", "EGF+EGM gaze 50%"]
    assert res["rows"][1]["n_with_gaze"] == 4
    for r in res["rows"]:
        assert 0.0 <= r["metrics"]["retrieval_i2t_p_at_1"]["mean"] <= 1.0
    assert "| CLIP only |" in res["table_markdown"]


# ------------------------------------------------------------------------ runs stay what they are (issue 10)
@pytest.mark.slow
def test_train_into_an_existing_run_refuses_then_overwrites_with_one_history(trained_run, tmp_path):
    import shutil

    run = shutil.copytree(trained_run, tmp_path / "run")
    before = (run / "metrics.jsonl").read_text()
    args = ("train", str(trained_run.parent / "missing-is-not-checked-first"), "--out", str(run))
    proc = _cli(*args, "--config", "tiny")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "already holds a run" in proc.stderr and "--resume" in proc.stderr and "--overwrite" in proc.stderr
    assert (run / "metrics.jsonl").read_text() == before  # nothing touched
    sessions = json.loads((trained_run / "report.json").read_text())["sessions"]
    proc = _cli(
        "train", sessions, "--out", str(run), "--config", "tiny", "--epochs", "1", "--batch-size", "4",
        "--no-bar", "--overwrite",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 4  # one history, of the new run
    assert json.loads((run / "report.json").read_text())["epochs"] == 1
    # for people: a table with 3 significant digits, phases on stderr, the training-cases warning
    assert "run " in proc.stdout and "training cases" in proc.stdout and "final loss" in proc.stdout
    loss = json.loads((run / "report.json").read_text())["final_terms"]["loss"]
    assert f"{loss:.3g}" in proc.stdout
    for phase in ("building the model", "indexing the sessions", "evaluating on 16 training case(s)"):
        assert phase in proc.stderr, (phase, proc.stderr[-2000:])
    assert "EVALUATED ON TRAINING CASES" in proc.stderr and "WARNING: EVALUATED ON TRAINING" in proc.stdout
    ev = json.loads((run / "eval.json").read_text())
    assert ev["evaluated_on"] == "training cases" and "TRAINING CASES" in ev["warning"]


@pytest.mark.slow
def test_eval_uses_the_runs_model_rule_and_says_when_it_sees_training_cases(trained_run, tmp_path):
    import shutil

    from radgaze.training.runs import run_checkpoint, write_pointer

    run = shutil.copytree(trained_run, tmp_path / "run")
    sessions = json.loads((run / "report.json").read_text())["sessions"]
    proc = _cli("eval", str(run), sessions)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING: EVALUATED ON TRAINING CASES" in proc.stdout and "indexing the sessions" in proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.strip().startswith("attention_cc"))
    value = row.split()[-1]
    assert len(value.lstrip("-").replace(".", "").lstrip("0")) <= 3, row  # 3 significant digits
    # after a GUI retrain the pointer names the model: eval follows it as review does
    other = shutil.copytree(run / "checkpoints" / "last", tmp_path / "retrained")
    write_pointer(run, other, source_run="retrain")
    proc = _cli("eval", str(run), sessions, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    assert res["checkpoint"] == str(other.resolve()) == str(run_checkpoint(run))
    assert res["evaluated_on"] == "training cases"
    proc = _cli("eval", str(run), sessions, "--json", "--checkpoint", "last")
    assert json.loads(proc.stdout)["checkpoint"] == str(run / "checkpoints" / "last")
