"""Tracebacks that became one line (issue 24, item 8): a truncated model.safetensors, a wrongly typed or binary
TOML, ``train --out`` on a file. Each ran into a traceback before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from radgaze.capture.base.errors import CheckpointError, ConfigError
from radgaze.training.config import load_config


def _radgaze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_a_truncated_model_safetensors_is_one_checkpoint_error(tmp_path: Path):
    import torch

    from radgaze.model.checkpoint import load_checkpoint, save_checkpoint
    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    torch.manual_seed(0)
    save_checkpoint(EGMAModel(ModelConfig.preset("tiny")), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(
        CheckpointError, match="expected a whole model.safetensors, got one that cannot be read"
    ):
        load_checkpoint(tmp_path / "ckpt")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            'base = "tiny"\n[optim]\nlr = "fast"\n',
            r"invalid value for optim\.'lr': expected a number, got 'fast'",
        ),
        ('base = "tiny"\nepochs = "many"\n', r"invalid value for 'epochs': expected an integer, got 'many'"),
        ('base = "tiny"\n[data]\nstrict = 3\n', r"'strict'|unknown keys"),
        # before: accepted, and `radgaze train` ended with exit 0 and a model of NaN weights
        ('base = "tiny"\n[optim]\nlr = inf\n', r"'optim.lr': expected a finite number > 0, got inf"),
        (
            'base = "tiny"\n[optim]\nweight_decay = nan\n',
            r"'optim.weight_decay': expected a finite number >= 0, got nan",
        ),
        (
            'base = "tiny"\n[optim]\nweight_decay = -1.0\n',
            r"'optim.weight_decay': expected a finite number >= 0, got -1.0",
        ),
    ],
)
def test_wrongly_typed_training_toml_is_one_line(tmp_path: Path, toml: str, message: str):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ('embed_dim = "fast"', r"model\.'embed_dim': expected an integer, got 'fast'"),
        ("image_size = 1.5", r"model\.'image_size': expected an integer, got 1\.5"),
        ("image_encoder = 3", r"model\.'image_encoder': expected str, got 3"),
        ("local_files_only = 1", r"model\.'local_files_only': expected bool, got 1"),
    ],
)  # before: embed_dim = "fast" and image_encoder = 3 were tracebacks (TypeError inside ModelConfig's checks)
def test_a_wrongly_typed_model_table_is_one_line(tmp_path: Path, model: str, message: str):
    path = tmp_path / "c.toml"
    path.write_text(f'base = "tiny"\n[model]\n{model}\n')
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path).model_config()
    assert "\n" not in str(err.value)
    path.write_text('base = "tiny"\n[model]\nimage_pretrained = false\n')  # a bool | str field takes a bool
    assert load_config(path).model_config().image_pretrained is False


def test_a_binary_toml_is_one_line(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="as UTF-8 text"):
        load_config(path)


@pytest.mark.parametrize(
    ("value", "got"), [('"high"', "'high'"), ("nan", "nan"), ("inf", "inf")]
)  # nan: before, accepted, and every sample of the stream was judged invalid without a word
def test_a_layout_config_with_confidence_min_high_is_one_line(tmp_path: Path, value: str, got: str):
    from radgaze.capture.live.gaze.layouts import StreamDescription, load_layout_config

    path = tmp_path / "layout.toml"
    path.write_text(
        f"[gaze_layout]\nconfidence_min = {value}\n[gaze_layout.channels]\nx = 0\ny = 1\nconfidence = 2\n"
    )
    desc = StreamDescription(
        name="t", type="Gaze", n_channels=3, channel_format="float32", nominal_rate_hz=100.0
    )
    with pytest.raises(ConfigError, match=rf"confidence_min: expected a finite number, got {got}"):
        load_layout_config(path, desc)


def test_train_out_on_a_file_is_one_line(tmp_path: Path, synth_sessions: Path):
    out = tmp_path / "not-a-folder"
    out.write_text("x")
    done = _radgaze("train", str(synth_sessions), "--out", str(out), "--config", "tiny", "--epochs", "1")
    assert done.returncode == 2, done.stderr[-2000:]
    # the progress lines aside, one line says it
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("radgaze train:")]
    assert "Traceback" not in done.stderr and len(errors) == 1
    assert errors[0].startswith(f"radgaze train: cannot write {out}") and "Not a directory" in errors[0]
