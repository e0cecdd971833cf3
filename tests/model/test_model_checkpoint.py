"""Checkpoints: safetensors + JSON config + tokenizer, atomic, loadable by path; same outputs after load."""

from __future__ import annotations

import json

import pytest
import torch
from model_batches import make_model_batch

from radgaze.capture.base.errors import CheckpointError
from radgaze.model.checkpoint import load_checkpoint, read_config, read_metrics, save_checkpoint
from radgaze.model.config import ModelConfig
from radgaze.model.egma import EGMAModel


@pytest.fixture(scope="module")
def trained_model():
    """A tiny model nudged by one optimiser step, so weights differ from any fresh initialisation."""
    torch.manual_seed(1)
    d = ModelConfig.preset("tiny").to_dict()
    d["loss"]["egm_threshold"] = 0.3  # non-default config values must survive the trip
    model = EGMAModel(ModelConfig.from_dict(d))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    out = model(make_model_batch(model))
    sum(v for k, v in out.items() if k.endswith("_loss")).backward()
    opt.step()
    return model.eval()


def test_round_trip_gives_the_same_outputs(trained_model, tmp_path):
    d = save_checkpoint(trained_model, tmp_path / "ckpt", metrics={"loss": 1.5})
    loaded = load_checkpoint(d)
    assert loaded.config == trained_model.config and not loaded.training
    batch = make_model_batch(trained_model, seed=3)
    with torch.no_grad():
        a, b = trained_model(batch), loaded(batch)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
        fresh = EGMAModel(trained_model.config).eval()(batch)
    assert float(fresh["egf_loss"]) != float(a["egf_loss"])  # the comparison can fail
    assert (
        loaded.tokenize([["Small effusion."]])["input_ids"].tolist()
        == trained_model.tokenize([["Small effusion."]])["input_ids"].tolist()
    )
    assert read_metrics(d) == {"loss": 1.5}
    assert read_config(d).loss.egm_threshold == 0.3


def test_save_replaces_atomically_and_leaves_no_temp(trained_model, tmp_path):
    target = tmp_path / "latest"
    save_checkpoint(trained_model, target, metrics={"step": 1})
    save_checkpoint(trained_model, target, metrics={"step": 2})
    assert read_metrics(target) == {"step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


def test_failed_save_keeps_the_previous_checkpoint(trained_model, tmp_path):
    target = tmp_path / "latest"
    save_checkpoint(trained_model, target, metrics={"step": 1})
    with pytest.raises(TypeError):
        save_checkpoint(trained_model, target, metrics={"bad": object()})  # not JSON-serialisable
    assert read_metrics(target) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]
    load_checkpoint(target)


def test_missing_or_foreign_files_are_checkpoint_errors(trained_model, tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "nothing")
    d = save_checkpoint(trained_model, tmp_path / "c")
    (d / "config.json").write_text(json.dumps({"format": "other", "version": 9}))
    with pytest.raises(CheckpointError, match="expected format"):
        load_checkpoint(d)


def test_weights_not_matching_config_are_a_checkpoint_error(trained_model, tmp_path):
    d = save_checkpoint(trained_model, tmp_path / "c")
    header = json.loads((d / "config.json").read_text())
    header["model"]["embed_dim"] = 32
    (d / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(d)


def test_save_unwraps_a_ddp_style_wrapper(trained_model, tmp_path):
    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    d = save_checkpoint(Wrapper(trained_model), tmp_path / "w")
    assert load_checkpoint(d).config == trained_model.config
