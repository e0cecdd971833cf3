"""Run directories: the one rule for the model of a run, the guard of `train --out`, the automatic split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radgaze.capture.base.errors import CheckpointError, ConfigError
from radgaze.training.runs import (
    POINTER_NAME,
    check_run_dir,
    run_checkpoint,
    run_contents,
    write_pointer,
)
from radgaze.training.trainer import AUTO_VAL_MIN_CASES, auto_val_fraction


def _fake_checkpoint(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    return path


def test_run_checkpoint_pointer_then_best_then_last_then_the_dir(tmp_path):
    run = tmp_path / "run"
    last = _fake_checkpoint(run / "checkpoints" / "last")
    assert run_checkpoint(run) == last
    best = _fake_checkpoint(run / "checkpoints" / "best")
    assert run_checkpoint(run) == best and run_checkpoint(run, "last") == last
    other = _fake_checkpoint(tmp_path / "retrain")
    write_pointer(run, other)
    assert run_checkpoint(run) == other.resolve()
    assert run_checkpoint(run, "best") == best  # asked by name: that one, pointer or not
    assert run_checkpoint(last) == last  # a checkpoint directory is its own model
    (run / POINTER_NAME).write_text("not json")
    with pytest.raises(CheckpointError, match="expected JSON"):
        run_checkpoint(run)
    with pytest.raises(CheckpointError, match="checkpoints/best"):
        run_checkpoint(tmp_path / "empty", "best")
    with pytest.raises(CheckpointError, match="expected a checkpoint name"):
        run_checkpoint(run, "newest")


def test_check_run_dir_refuses_resumes_or_overwrites(tmp_path):
    run = tmp_path / "run"
    check_run_dir(run, resume=False, overwrite=False)  # new directory: fine
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    check_run_dir(run, resume=False, overwrite=False)  # no run in it yet: fine
    _fake_checkpoint(run / "checkpoints" / "last")
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1}) + "\n")
    (run / "retrain").mkdir()
    assert run_contents(run) == ["metrics.jsonl", "checkpoints/"]
    with pytest.raises(ConfigError, match=r"already holds a run \(metrics.jsonl, checkpoints/\).*--resume"):
        check_run_dir(run, resume=False, overwrite=False)
    check_run_dir(run, resume=True, overwrite=False)
    assert (run / "metrics.jsonl").is_file()  # resume keeps everything
    with pytest.raises(ConfigError, match="got both"):
        check_run_dir(run, resume=True, overwrite=True)
    check_run_dir(run, resume=False, overwrite=True)
    assert (
        run_contents(run) == [] and (run / "notes.txt").read_text() == "mine" and (run / "retrain").is_dir()
    )


def test_validation_split_is_automatic_from_enough_cases():
    assert auto_val_fraction(None, AUTO_VAL_MIN_CASES - 1) == 0.0
    assert auto_val_fraction(None, AUTO_VAL_MIN_CASES) == pytest.approx(0.2)
    assert auto_val_fraction(0.0, 500) == 0.0 and auto_val_fraction(0.3, 5) == pytest.approx(0.3)


def test_sig3_and_table():
    from radgaze.training.console import sig3, table

    assert [sig3(v) for v in (0.123456, 12345.6, None, float("nan"), 7, True)] == [
        "0.123",
        "1.23e+04",
        "–",
        "–",
        "7",
        "yes",
    ]
    text = table([("cc", 0.51234), ("n_cases", 8)], title="evaluation")
    assert text.splitlines() == ["evaluation", "  cc       0.512", "  n_cases      8"]
