from __future__ import annotations

import json

import pytest

from radgaze.capture.base.errors import ConfigError
from radgaze.training.config import PRESETS, TrainConfig, load_config, parse_override


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_round_trip(name):
    cfg = load_config(name)
    assert cfg.preset == name
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()


def test_paper_preset_carries_the_papers_hyperparameters():
    cfg = load_config("paper")
    assert (cfg.epochs, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.warmup_frac) == (50, 1e-6, 1e-4, 0.2)
    assert cfg.batch_size == 40 and cfg.optim.grad_clip == 1.0
    mcfg = cfg.model_config()
    assert mcfg.image_size == 224 and mcfg.image_encoder.startswith("swin_tiny")
    assert mcfg.text_encoder == "emilyalsentzer/Bio_ClinicalBERT"


def test_tiny_preset_resolves_the_model_preset_and_overrides_reach_nested_loss():
    cfg = load_config("tiny", ['model.loss.losses=["clip","egf"]', "optim.lr=0.01", "data.gaze_ratio=0.25"])
    mcfg = cfg.model_config()
    assert mcfg.loss.losses == ("clip", "egf")
    assert mcfg.text_encoder == "tiny-bert"
    assert cfg.optim.lr == 0.01 and cfg.data.gaze_ratio == 0.25


def test_config_file_with_base_preset(tmp_path):
    p = tmp_path / "my.toml"
    p.write_text('base = "tiny"\nepochs = 7\n[optim]\naccum_steps = 2\n')
    cfg = load_config(p)
    assert cfg.epochs == 7 and cfg.optim.accum_steps == 2 and cfg.batch_size == load_config("tiny").batch_size
    j = tmp_path / "my.json"
    j.write_text(json.dumps({"base": "tiny", "seed": 5}))
    assert load_config(j).seed == 5


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("data.gaze_ratio=1.5", "gaze_ratio"),
        ("epochs=0", "epochs"),
        ("batch_size=1", "batch_size"),
        ('device="tpu"', "device"),
        ("optim.bogus=1", "bogus"),
        ("nonsense", "section.key=value"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_key(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config("tiny", [override])


def test_unknown_preset_or_missing_file():
    with pytest.raises(ConfigError, match="neither a preset"):
        load_config("no-such-preset")


def test_parse_override_types():
    assert parse_override("optim.lr=1e-4") == (["optim", "lr"], 1e-4)
    assert parse_override("device=cpu") == (["device"], "cpu")
    assert parse_override('model.loss.losses=["clip"]') == (["model", "loss", "losses"], ["clip"])
