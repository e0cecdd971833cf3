"""``radgaze train --init PATH``: continued pre-training from a MedCLIP checkpoint (radgaze.model.init_weights)."""

from __future__ import annotations

import json

import pytest
import torch

from radgaze.capture.base.errors import CheckpointError


def _medclip_dir(tmp_path):
    """A MedCLIP-ViT ``pytorch_model.bin`` (RyanWangZf/MedCLIP modeling_medclip.py key layout) of the tiny
    model's shapes: a Hugging Face SwinModel and a BertModel with pooler, both real transformers modules."""
    from transformers import BertModel, SwinConfig, SwinModel

    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    ref = EGMAModel(ModelConfig.preset("tiny"))
    torch.manual_seed(21)
    swin = SwinModel(
        SwinConfig(image_size=112, patch_size=4, embed_dim=32, depths=[1, 1, 1], num_heads=[1, 2, 4])
    )
    bert = BertModel(ref.text_encoder.bert.config, add_pooling_layer=True)
    sd = {f"vision_model.model.{k}": v for k, v in swin.state_dict().items()}
    sd.update({f"text_model.model.{k}": v for k, v in bert.state_dict().items()})
    sd["vision_model.projection_head.weight"] = torch.randn(64, 128)
    sd["text_model.projection_head.weight"] = torch.randn(64, 32)
    sd["logit_scale"] = torch.tensor(3.0)
    d = tmp_path / "medclip-vit-pretrained"
    d.mkdir()
    torch.save(sd, d / "pytorch_model.bin")
    return d, sd


def test_train_init_from_medclip_starts_from_its_weights(synth_sessions, tmp_path):
    from safetensors.torch import load_file

    from radgaze.training.cli import main

    d, sd = _medclip_dir(tmp_path)
    run = tmp_path / "run"
    args = [str(synth_sessions), "--out", str(run), "--config", "tiny", "--epochs", "1", "--batch-size", "4"]
    # lr 1e-12: the trained weights stay the initial ones to ~1e-12, so they show where training started
    args += ["--init", str(d), "--no-bar", "--set", "eval_at_end=false", "--set", "optim.lr=1e-12"]
    assert main(args) == 0
    init = json.loads((run / "init.json").read_text())
    assert init["layout"] == "medclip"
    assert "text_model.model.pooler.dense.weight" in init["unexpected"]
    assert not [k for k in init["missing"] if k.startswith(("image_encoder.", "text_encoder."))]
    assert json.loads((run / "config.json").read_text())["init"] == str(d)
    w = load_file(str(run / "checkpoints" / "last" / "model.safetensors"))
    torch.testing.assert_close(
        w["text_proj.weight"], sd["text_model.projection_head.weight"], atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        w["image_encoder.backbone.patch_embed.proj.weight"],
        sd["vision_model.model.embeddings.patch_embeddings.projection.weight"],
        atol=1e-6,
        rtol=0,
    )


def test_train_init_that_maps_nothing_stops_before_training(synth_sessions, tmp_path):
    from radgaze.training.cli import main

    bad = tmp_path / "clip-rn50.pt"
    torch.save(
        {"visual.layer1.0.conv1.weight": torch.zeros(4, 4, 1, 1), "logit_scale": torch.tensor(1.0)}, bad
    )
    run = tmp_path / "run"
    with pytest.raises(CheckpointError, match="maps onto radgaze's image or text encoder"):
        main([str(synth_sessions), "--out", str(run), "--config", "tiny", "--init", str(bad), "--no-bar"])
    assert not (run / "checkpoints" / "last").exists()
