"""EGMAModel: tokenization, encoders, loss assembly per ablation, config round trip, tiny BERT dir."""

from __future__ import annotations

import pytest
import torch
from model_batches import REPORTS, make_model_batch

from radgaze.capture.base.errors import ConfigError
from radgaze.model.config import LossConfig, ModelConfig
from radgaze.model.egma import EGMAModel
from radgaze.model.tiny_bert import make_tiny_bert_dir


def test_tokenize_pads_reports_and_sentences(tiny_model):
    tok = tiny_model.tokenize(REPORTS)
    assert tok["input_ids"].shape[:2] == (3, 4) and tok["sentence_mask"].tolist() == [
        [True, True, False, False],
        [True, False, False, False],
        [True, True, True, True],
    ]
    assert tok["attention_mask"][~tok["sentence_mask"]].sum() == 0  # padded slots are empty
    cls = tiny_model.tokenizer.cls_token_id
    assert (tok["input_ids"][tok["sentence_mask"]][:, 0] == cls).all()  # each sentence tokenized alone


def test_tokenize_truncates_to_max_tokens(tiny_model):
    tok = tiny_model.tokenize([["effusion " * 200]])
    assert tok["input_ids"].shape[-1] == tiny_model.config.max_tokens


def test_encoders_give_normalised_features_and_zero_padding(tiny_model):
    b = make_model_batch(tiny_model)
    with torch.no_grad():
        patches, glob = tiny_model.encode_image(b["image"])
        sents, report = tiny_model.encode_text(b["input_ids"], b["attention_mask"], b["sentence_mask"])
    assert patches.shape == (3, 49, 64) and glob.shape == (3, 64) and tiny_model.patch_grid == 7
    torch.testing.assert_close(patches.norm(dim=-1), torch.ones(3, 49))
    torch.testing.assert_close(report.norm(dim=-1), torch.ones(3))
    assert sents[~b["sentence_mask"]].abs().max() == 0
    torch.testing.assert_close(sents[b["sentence_mask"]].norm(dim=-1), torch.ones(7))


def test_sentence_embedding_ignores_padding_tokens(tiny_model):
    """Attention-masked mean: a sentence's embedding does not depend on how long its batch-mates are."""
    with torch.no_grad():
        alone = tiny_model.encode_text(**tiny_model.tokenize([["No pneumothorax."]]))[0][0, 0]
        padded = tiny_model.encode_text(**tiny_model.tokenize([["No pneumothorax.", "x " * 25]]))[0][0, 0]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "losses, keys",
    [
        (("clip",), {"clip_loss"}),
        (("mlce",), {"mlce_loss"}),
        (("filip",), {"filip_loss"}),
        (("egf",), {"egf_loss"}),
        (("egm",), {"egm_loss"}),
        (("clip", "egf", "egm"), {"clip_loss", "egf_loss", "egm_loss"}),
        (("egf", "egm"), {"egf_loss", "egm_loss"}),
    ],
)
def test_forward_returns_the_configured_loss_terms(losses, keys):
    torch.manual_seed(0)
    model = EGMAModel(ModelConfig.from_dict({**_tiny_dict(), "loss": {"losses": list(losses)}}))
    out = model(make_model_batch(model))
    assert {k for k in out if k.endswith("_loss")} == keys
    total = sum(v for k, v in out.items() if k.endswith("_loss"))
    total.backward()
    assert torch.isfinite(total)
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["logit_scale"] is not None  # in the graph for DDP, even where unused (MLCE on cosines)
    if losses != ("mlce",):
        assert grads["logit_scale"] != 0
    for prefix in ("image_encoder.", "text_encoder.", "image_proj", "text_proj"):
        assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith(prefix)), (
            prefix
        )


def test_egf_equals_filip_plus_mlce_and_no_gaze_batch_works(tiny_model):
    b = make_model_batch(tiny_model)
    with torch.no_grad():
        out = tiny_model(b)
        assert float(out["egf_loss"]) == pytest.approx(float(out["egf_filip"] + out["egf_mlce"]), rel=1e-6)
        b.pop("gaze"), b.pop("has_gaze")
        plain = tiny_model(b)
    assert float(plain["egf_mlce"]) == 0.0 and float(plain["mlce_gaze_samples"]) == 0
    assert torch.isfinite(plain["egm_loss"])


def test_gaze_shape_is_checked(tiny_model):
    b = make_model_batch(tiny_model)
    b["gaze"] = b["gaze"][:, :, :10]
    with pytest.raises(ValueError, match="expected shape"):
        tiny_model(b)


def test_temperature_initialised_and_clamped():
    torch.manual_seed(0)
    model = EGMAModel(ModelConfig.preset("tiny"))
    assert float(model.scale().detach()) == pytest.approx(1 / 0.07)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert float(model.scale().detach()) == pytest.approx(100.0)


def test_config_round_trip_presets_and_errors():
    cfg = ModelConfig.preset("tiny")
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg and isinstance(again.loss, LossConfig) and again.loss.losses == ("egf", "egm")
    assert ModelConfig.preset("paper").text_encoder == "emilyalsentzer/Bio_ClinicalBERT"
    assert ModelConfig.preset("bench").text_encoder_kwargs["num_hidden_layers"] == 6
    with pytest.raises(ConfigError, match="unknown keys"):
        ModelConfig.from_dict({"image_size": 224, "bogus": 1})
    with pytest.raises(ConfigError, match="loss.losses"):
        ModelConfig(loss=LossConfig(losses=("clip", "sparc")))
    with pytest.raises(ConfigError, match="preset"):
        ModelConfig.preset("huge")


def test_tiny_bert_dir_loads_as_local_text_encoder(tmp_path):
    d = make_tiny_bert_dir(tmp_path / "bert", extra_words=["zygomorphic"])
    cfg = ModelConfig.from_dict({**_tiny_dict(), "text_encoder": str(d), "local_files_only": True})
    model = EGMAModel(cfg)
    assert "zygomorphic" in model.tokenizer.get_vocab()
    ids = model.tokenize([["Small left pleural effusion."]])["input_ids"][0, 0]
    assert model.tokenizer.unk_token_id not in ids.tolist()
    with torch.no_grad():
        _, report = model.encode_text(**model.tokenize([["Small left pleural effusion."]]))
    assert torch.isfinite(report).all()


def test_missing_local_text_encoder_is_a_checkpoint_error(tmp_path):
    from radgaze.capture.base.errors import CheckpointError

    cfg = ModelConfig.from_dict(
        {**_tiny_dict(), "text_encoder": str(tmp_path / "nope"), "local_files_only": True}
    )
    with pytest.raises(CheckpointError, match="could not load"):
        EGMAModel(cfg)


def test_vit_encoder_by_timm_name():
    cfg = ModelConfig.from_dict(
        {
            **_tiny_dict(),
            "image_encoder": "vit_tiny_patch16_224",
            "image_encoder_kwargs": {"depth": 1, "embed_dim": 48, "num_heads": 2},
            "image_size": 64,
        }
    )
    model = EGMAModel(cfg)
    assert model.patch_grid == 4  # 64 / 16, class token dropped
    with torch.no_grad():
        patches, glob = model.encode_image(torch.randn(2, 3, 64, 64))
    assert patches.shape == (2, 16, 64) and glob.shape == (2, 64)


def test_unknown_timm_name_is_a_config_error():
    with pytest.raises(ConfigError, match="no timm model"):
        EGMAModel(ModelConfig.from_dict({**_tiny_dict(), "image_encoder": "not_a_model_xyz"}))


def _tiny_dict() -> dict:
    return ModelConfig.preset("tiny").to_dict()


def test_image_weights_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    from radgaze.model.encoders import ImageEncoder

    cfg = ModelConfig.preset("tiny")
    torch.manual_seed(5)
    src = ImageEncoder(cfg)
    path = tmp_path / "swin.safetensors"
    save_file({k: v.contiguous() for k, v in src.backbone.state_dict().items()}, str(path))
    torch.manual_seed(6)
    dst = ImageEncoder(ModelConfig.from_dict({**cfg.to_dict(), "image_pretrained": str(path)}))
    for (k, a), b in zip(src.backbone.state_dict().items(), dst.backbone.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(Exception, match="expected a weights file"):
        ImageEncoder(ModelConfig.from_dict({**cfg.to_dict(), "image_pretrained": str(tmp_path / "none.pt")}))


def test_losses_stay_float32_under_bf16_autocast(tiny_model):
    b = make_model_batch(tiny_model)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny_model(b)
    for k, v in out.items():
        assert v.dtype == torch.float32, k
    with torch.no_grad():
        ref = tiny_model(b)
    assert float(out["egm_loss"]) == pytest.approx(float(ref["egm_loss"]), rel=0.05)
