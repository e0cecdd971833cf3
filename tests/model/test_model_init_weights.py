"""Initialising from MedCLIP, GLoRIA, MGCA, CLIP and Hugging Face Swin weights (radgaze.model.init_weights).

Every checkpoint here is written by the test in the key layout of the project that publishes it (tiny
shapes; sources in radgaze.model.init_weights' docstring): MedCLIP's MedCLIPModel (RyanWangZf/MedCLIP
modeling_medclip.py: vision_model.model = a Hugging Face SwinModel, projection_head, text_model.model = a
BertModel with pooler), GLoRIA's Lightning .ckpt (marshuang80/gloria: gloria.img_encoder.model = torchvision
ResNet, global_embedder, local_embedder, gloria.text_encoder.model), MGCA's (HKU-MedAI/MGCA encoder.py:
img_encoder_q.model = a ViT with timm's names, text_encoder_q.model = BLIP's BertModel without token-type
embeddings), OpenAI CLIP's (openai/CLIP clip/model.py). The source modules are real (transformers' SwinModel
and BertModel, torchvision's ResNet, timm's ViT), so "same outputs" is checked against the real thing.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
import torch.nn.functional as F

from radgaze.capture.base.errors import CheckpointError
from radgaze.model.config import ModelConfig
from radgaze.model.egma import EGMAModel
from radgaze.model.encoders import ImageEncoder, TextEncoder
from radgaze.model.init_weights import init_from, read_state_dict

# transformers 4.x Swin names (the published microsoft/swin-tiny-patch4-window7-224 and MedCLIP files) from
# the 5.x ones: the pairs transformers' conversion_mapping.py lists for "swin".
_SWIN_4X = (
    ("attention.q_proj", "attention.self.query"),
    ("attention.k_proj", "attention.self.key"),
    ("attention.v_proj", "attention.self.value"),
    (
        "attention.relative_position_bias.relative_position_bias_table",
        "attention.self.relative_position_bias_table",
    ),
    ("attention.o_proj", "attention.output.dense"),
    ("mlp.fc1", "intermediate.dense"),
    ("mlp.fc2", "output.dense"),
)


def _swin_4x_names(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        for new, old in _SWIN_4X:
            k = k.replace(new, old)
        out[k] = v
        if k.endswith("attention.self.relative_position_bias_table"):  # 4.x persisted this buffer
            idx = k.replace("relative_position_bias_table", "relative_position_index")
            out[idx] = torch.zeros(49 * 49, dtype=torch.long)
    return out


def _tiny_cfg(**kw) -> ModelConfig:
    return dataclasses.replace(ModelConfig.preset("tiny"), **kw)


def _hf_swin(depths=(2, 2, 2)):
    from transformers import SwinConfig, SwinModel

    cfg = SwinConfig(
        image_size=112, patch_size=4, embed_dim=32, depths=list(depths), num_heads=[1, 2, 4], window_size=7
    )
    return SwinModel(cfg).eval()


def _bert_like_tiny(model: EGMAModel, pooler: bool = True, seed: int = 3):
    """A transformers BertModel of the tiny text encoder's shape (own random weights), as MedCLIP/GLoRIA's."""
    from transformers import BertModel

    torch.manual_seed(seed)
    return BertModel(model.text_encoder.bert.config, add_pooling_layer=pooler).eval()


def _swin_model() -> EGMAModel:
    cfg = _tiny_cfg(image_encoder_kwargs={"depths": [2, 2, 2], "num_heads": [1, 2, 4], "embed_dim": 32})
    torch.manual_seed(0)
    return EGMAModel(cfg).eval()


def _text_inputs(model: EGMAModel):
    tok = model.tokenize([["small left pleural effusion."], ["no pneumothorax."]])
    return tok["input_ids"][:, 0], tok["attention_mask"][:, 0]


def _medclip_state(model: EGMAModel, naming_4x: bool = True):
    torch.manual_seed(1)
    swin = _hf_swin()
    bert = _bert_like_tiny(model)
    vis = _swin_4x_names(swin.state_dict()) if naming_4x else swin.state_dict()
    sd = {f"vision_model.model.{k}": v for k, v in vis.items()}
    sd["vision_model.projection_head.weight"] = torch.randn(model.config.embed_dim, 128)
    sd.update({f"text_model.model.{k}": v for k, v in bert.state_dict().items()})
    sd["text_model.projection_head.weight"] = torch.randn(model.config.embed_dim, 32)
    sd["logit_scale"] = torch.tensor(2.5)
    return sd, swin, bert


def test_medclip_checkpoint_reproduces_medclip_outputs(tmp_path):
    model = _swin_model()
    sd, swin, bert = _medclip_state(model)
    (tmp_path / "medclip-vit-pretrained").mkdir()
    torch.save(sd, tmp_path / "medclip-vit-pretrained" / "pytorch_model.bin")  # MedCLIP's WEIGHTS_NAME
    report = init_from(model, tmp_path / "medclip-vit-pretrained")
    assert report.layout == "medclip"
    assert report.mismatched == []
    assert [k for k in report.missing if k.startswith(("image_", "text_"))] == []
    assert "text_model.model.pooler.dense.weight" in report.unexpected  # our BERT has no pooler
    assert not any("relative_position_index" in k for k in report.unexpected)
    x = torch.randn(2, 3, 112, 112)
    ids, am = _text_inputs(model)
    with torch.no_grad():
        pooled = swin(pixel_values=x).pooler_output  # MedCLIPVisionModelViT: pooler_output -> projection
        want_img = F.normalize(pooled @ sd["vision_model.projection_head.weight"].T, dim=-1)
        _, got_img = model.encode_image(x)
        hidden = bert(input_ids=ids, attention_mask=am).last_hidden_state
        got_txt = model.text_encoder(ids, am)
    torch.testing.assert_close(got_img, want_img, atol=1e-5, rtol=1e-5)
    w = am[..., None].float()
    torch.testing.assert_close(got_txt, (hidden * w).sum(1) / w.sum(1), atol=1e-5, rtol=1e-5)
    assert float(model.logit_scale.detach()) == pytest.approx(2.5)
    torch.testing.assert_close(model.text_proj.weight, sd["text_model.projection_head.weight"])


def test_medclip_safetensors_in_transformers_5_naming_loads_the_same(tmp_path):
    from safetensors.torch import save_file

    a, b = _swin_model(), _swin_model()
    sd4, _, _ = _medclip_state(a, naming_4x=True)
    sd5, _, _ = _medclip_state(b, naming_4x=False)
    torch.save(sd4, tmp_path / "old.bin")
    save_file({k: v.contiguous() for k, v in sd5.items()}, str(tmp_path / "new.safetensors"))
    init_from(a, tmp_path / "old.bin")
    init_from(b, tmp_path / "new.safetensors")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


class AttributeDict(dict):
    """Stands for pytorch_lightning's AttributeDict (MGCA's save_hyperparameters): a dict subclass."""


class HyperParameters:
    """Stands for GLoRIA's OmegaConf hyper-parameters: unpickling it must run nothing."""

    def __reduce__(self):
        return (_unpickling_ran, ())


UNPICKLED = []


def _unpickling_ran():
    UNPICKLED.append(True)
    return {}


def _resnet18_model() -> EGMAModel:
    torch.manual_seed(0)
    return EGMAModel(_tiny_cfg(image_encoder="resnet18", image_encoder_kwargs={}, image_size=224)).eval()


def test_gloria_lightning_checkpoint_loads_resnet_and_bert_without_running_pickled_code(tmp_path):
    import torchvision

    model = _resnet18_model()
    torch.manual_seed(2)
    resnet = torchvision.models.resnet18(weights=None).eval()
    resnet.fc = torch.nn.Identity()  # gloria/models/cnn_backbones.py
    bert = _bert_like_tiny(model)
    sd = {f"gloria.img_encoder.model.{k}": v for k, v in resnet.state_dict().items()}
    sd["gloria.img_encoder.global_embedder.weight"] = torch.randn(768, 512)
    sd["gloria.img_encoder.global_embedder.bias"] = torch.randn(768)
    sd["gloria.img_encoder.local_embedder.weight"] = torch.randn(768, 256, 1, 1)
    sd.update({f"gloria.text_encoder.model.{k}": v for k, v in bert.state_dict().items()})
    ckpt = {"epoch": 7, "state_dict": sd, "hyper_parameters": HyperParameters()}
    torch.save(ckpt, tmp_path / "chexpert_resnet18.ckpt")
    report = init_from(model, tmp_path / "chexpert_resnet18.ckpt")
    assert UNPICKLED == []
    assert report.layout == "gloria"
    assert any(m.startswith("image_proj.weight") for m in report.mismatched)  # 768-d vs embed_dim 64
    assert "gloria.img_encoder.local_embedder.weight" in report.unexpected
    assert "text_proj.weight" in report.missing
    x = torch.randn(2, 3, 224, 224)
    ids, am = _text_inputs(model)
    with torch.no_grad():
        torch.testing.assert_close(model.image_encoder(x)[1], resnet(x), atol=1e-5, rtol=1e-5)
        want = bert(input_ids=ids, attention_mask=am).last_hidden_state
        torch.testing.assert_close(
            model.text_encoder.bert(input_ids=ids, attention_mask=am).last_hidden_state, want
        )


def test_medclip_resnet_checkpoint_maps_its_fc_onto_the_image_projection(tmp_path):
    """MedCLIPVisionModel: a torchvision ResNet whose fc (no bias) is the 512-d projection head."""
    import torchvision

    model = _resnet18_model()
    torch.manual_seed(6)
    resnet = torchvision.models.resnet18(weights=None).eval()
    resnet.fc = torch.nn.Linear(512, model.config.embed_dim, bias=False)
    sd = {f"vision_model.model.{k}": v for k, v in resnet.state_dict().items()}
    sd.update({f"text_model.model.{k}": v for k, v in _bert_like_tiny(model).state_dict().items()})
    sd["logit_scale"] = torch.tensor(2.0)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    report = init_from(model, tmp_path)
    assert report.layout == "medclip" and "image_proj.weight" in report.loaded
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(
            model.encode_image(x)[1], F.normalize(resnet(x), dim=-1), atol=1e-5, rtol=1e-5
        )


def test_mgca_checkpoint_loads_vit_and_a_bert_without_token_types(tmp_path):
    import timm

    cfg = _tiny_cfg(
        image_encoder="vit_base_patch16_224",
        image_encoder_kwargs={"depth": 2, "embed_dim": 32, "num_heads": 2},
    )
    torch.manual_seed(0)
    model = EGMAModel(cfg).eval()
    torch.manual_seed(4)
    vit = timm.create_model("vit_base_patch16_224", depth=2, embed_dim=32, num_heads=2, img_size=112)
    vit.eval()
    bert = _bert_like_tiny(model, pooler=False)
    with torch.no_grad():
        bert.embeddings.token_type_embeddings.weight.zero_()  # what BLIP's med.py BertEmbeddings computes
    sd = {f"img_encoder_q.model.{k}": v for k, v in vit.state_dict().items() if not k.startswith("head.")}
    sd["img_encoder_q.global_embed.head.0.weight"] = torch.randn(2048, 32)
    sd["img_encoder_q.global_embed.head.1.running_mean"] = torch.zeros(2048)
    text = {k: v for k, v in bert.state_dict().items() if "token_type" not in k}
    sd.update({f"text_encoder_q.model.{k}": v for k, v in text.items()})
    sd["prototype_layer.weight"] = torch.randn(500, 128)
    hparams = AttributeDict(emb_dim=128, img_encoder="vit_base")
    torch.save(
        {"state_dict": sd, "hyper_parameters": hparams, "callbacks": [AttributeDict()]},
        tmp_path / "vit_base.ckpt",
    )
    report = init_from(model, tmp_path / "vit_base.ckpt")
    assert report.layout == "mgca"
    assert "prototype_layer.weight" in report.unexpected
    assert any("token-type" in n for n in report.notes)
    x = torch.randn(2, 3, 112, 112)
    ids, am = _text_inputs(model)
    with torch.no_grad():
        want = vit.forward_head(vit.forward_features(x), pre_logits=True)
        torch.testing.assert_close(model.image_encoder(x)[1], want, atol=1e-5, rtol=1e-5)
        got = model.text_encoder.bert(input_ids=ids, attention_mask=am).last_hidden_state
        torch.testing.assert_close(got, bert(input_ids=ids, attention_mask=am).last_hidden_state)


def _openai_clip_visual(vit) -> dict:
    """OpenAI CLIP's visual keys (clip/model.py VisionTransformer) for a timm CLIP ViT's weights."""
    sd = vit.state_dict()
    out = {
        "visual.conv1.weight": sd["patch_embed.proj.weight"],
        "visual.class_embedding": sd["cls_token"].reshape(-1),
        "visual.positional_embedding": sd["pos_embed"][0],
        "visual.ln_pre.weight": sd["norm_pre.weight"],
        "visual.ln_pre.bias": sd["norm_pre.bias"],
        "visual.ln_post.weight": sd["norm.weight"],
        "visual.ln_post.bias": sd["norm.bias"],
    }
    names = {"norm1": "ln_1", "norm2": "ln_2", "attn.proj": "attn.out_proj", "mlp.fc1": "mlp.c_fc"}
    names["mlp.fc2"] = "mlp.c_proj"
    for k, v in sd.items():
        m = re.match(r"blocks\.(\d+)\.(.+)\.(weight|bias)$", k)
        if not m:
            continue
        if m[2] == "attn.qkv":
            out[f"visual.transformer.resblocks.{m[1]}.attn.in_proj_{m[3]}"] = v
        else:
            out[f"visual.transformer.resblocks.{m[1]}.{names[m[2]]}.{m[3]}"] = v
    return out


def test_openai_clip_loads_the_image_tower_and_reports_its_text_transformer(tmp_path):
    import timm
    from timm.models.vision_transformer import _convert_openai_clip

    kw = {"depth": 2, "embed_dim": 32, "num_heads": 2}
    cfg = _tiny_cfg(image_encoder="vit_base_patch16_clip_224", image_encoder_kwargs=kw)
    torch.manual_seed(0)
    model = EGMAModel(cfg).eval()
    torch.manual_seed(5)
    vit = timm.create_model("vit_base_patch16_clip_224", img_size=112, num_classes=0, **kw).eval()
    sd = _openai_clip_visual(vit)
    sd["visual.proj"] = torch.randn(32, cfg.embed_dim)
    sd["token_embedding.weight"] = torch.randn(100, 32)
    sd["positional_embedding"] = torch.randn(77, 32)
    sd["transformer.resblocks.0.attn.in_proj_weight"] = torch.randn(96, 32)
    sd["ln_final.weight"] = torch.ones(32)
    sd["text_projection"] = torch.randn(32, cfg.embed_dim)
    sd["logit_scale"] = torch.tensor(4.6052)
    torch.save(sd, tmp_path / "ViT-tiny.pt")
    report = init_from(model, tmp_path / "ViT-tiny.pt")
    assert report.layout == "clip"
    assert {"token_embedding.weight", "text_projection", "ln_final.weight"} <= set(report.unexpected)
    assert any("text transformer" in n for n in report.notes)
    # timm's own OpenAI-CLIP converter (an independent reading of the same layout) agrees with ours
    oracle = _convert_openai_clip(sd, vit)
    own = model.image_encoder.backbone.state_dict()
    for k, v in oracle.items():
        if not k.startswith("head."):
            assert torch.equal(own[k], v), k
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        want = F.normalize(
            vit.forward_head(vit.forward_features(x), pre_logits=True) @ sd["visual.proj"], dim=-1
        )
        torch.testing.assert_close(model.encode_image(x)[1], want, atol=1e-5, rtol=1e-5)


def test_a_checkpoint_that_maps_nothing_is_refused_in_one_line(tmp_path):
    model = _swin_model()
    # a CLIP ResNet (ModifiedResNet keys) cannot go into a Swin: only logit_scale would "load"
    sd = {"visual.layer1.0.conv1.weight": torch.randn(64, 64, 1, 1), "logit_scale": torch.tensor(1.0)}
    torch.save(sd, tmp_path / "RN50.pt")
    with pytest.raises(CheckpointError, match="nothing in this clip checkpoint maps") as err:
        init_from(model, tmp_path / "RN50.pt")
    assert "\n" not in str(err.value)
    torch.save({"head.fc.weight": torch.randn(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="could not tell which model wrote"):
        init_from(model, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        init_from(model, tmp_path / "absent")
    (tmp_path / "junk.bin").write_bytes(b"not a pickle at all")
    with pytest.raises(CheckpointError, match="expected a PyTorch checkpoint"):
        read_state_dict(tmp_path / "junk.bin")


def test_shape_mismatches_are_listed_not_loaded(tmp_path):
    model = _swin_model()
    sd, _, _ = _medclip_state(model)
    sd["vision_model.projection_head.weight"] = torch.randn(512, 768)  # MedCLIP's real 768 -> 512
    torch.save(sd, tmp_path / "pytorch_model.bin")
    before = model.image_proj.weight.detach().clone()
    report = init_from(model, tmp_path)
    assert report.mismatched == ["image_proj.weight: checkpoint (512, 768) vs radgaze (64, 128)"]
    assert torch.equal(model.image_proj.weight, before)
    assert "image_proj.weight" in report.missing


def test_image_pretrained_hugging_face_directory_and_offline_hub_id(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(7)
    swin = _hf_swin()
    d = tmp_path / "swin-tiny-patch4-window7-224"  # SwinForImageClassification's layout: swin. + classifier
    d.mkdir()
    sd = {f"swin.{k}": v.contiguous() for k, v in swin.state_dict().items()}
    sd["classifier.weight"] = torch.randn(1000, 128)
    save_file(sd, str(d / "model.safetensors"))
    (d / "config.json").write_text(swin.config.to_json_string())
    kw = {"depths": [2, 2, 2], "num_heads": [1, 2, 4], "embed_dim": 32}
    enc = ImageEncoder(_tiny_cfg(image_encoder_kwargs=kw, image_pretrained=str(d))).eval()
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(enc(x)[1], swin(pixel_values=x).pooler_output, atol=1e-5, rtol=1e-5)
    with pytest.raises(CheckpointError, match="do not fit the configured image encoder"):
        ImageEncoder(_tiny_cfg(image_pretrained=str(d)))  # depths [1, 1, 1]: blocks missing
    # tests run with HF_HUB_OFFLINE=1: a repo id that is not cached is one clear error, nothing fetched
    with pytest.raises(CheckpointError, match="could not get it from the Hugging Face hub"):
        ImageEncoder(_tiny_cfg(image_pretrained="radgaze-tests/no-such-swin", local_files_only=True))


def test_paper_presets_start_from_imagenet_swin():
    from radgaze.training.config import load_config

    assert ModelConfig.preset("paper").image_pretrained is True
    assert load_config("paper").model_config().image_pretrained is True


def test_text_pooling_last4_is_the_mean_of_the_last_four_hidden_layers():
    from radgaze.model.tiny_bert import build_random_bert

    bert, tok = build_random_bert(num_hidden_layers=4)
    bert.eval()
    enc = tok(
        ["small effusion.", "no acute cardiopulmonary abnormality seen."], padding=True, return_tensors="pt"
    )
    ids, am = enc["input_ids"], enc["attention_mask"]
    assert int(am.sum()) < am.numel()  # the short sentence is padded
    with torch.no_grad():
        hs = bert(input_ids=ids, attention_mask=am, output_hidden_states=True).hidden_states
        layers = torch.stack(hs[-4:]).mean(0)
        w = am[..., None].float()
        torch.testing.assert_close(TextEncoder(bert, "last4")(ids, am), (layers * w).sum(1) / w.sum(1))
        torch.testing.assert_close(TextEncoder(bert, "last4_unmasked")(ids, am), layers.mean(1))
        assert not torch.allclose(TextEncoder(bert, "last4")(ids, am), TextEncoder(bert, "mean")(ids, am))
    small, _ = build_random_bert()  # 2 layers: 3 hidden states
    with pytest.raises(Exception, match="averages the last 4 hidden layers"):
        TextEncoder(small, "last4")
    with pytest.raises(Exception, match="text_pooling"):
        ModelConfig.from_dict({**ModelConfig.preset("tiny").to_dict(), "text_pooling": "cls"})


def test_image_pretrained_true_offline_reads_timms_weights_from_the_local_cache(tmp_path, monkeypatch):
    """image_pretrained = true with local_files_only: timm's hub weights come from the Hugging Face cache
    (its models--<org>--<name>/refs + snapshots layout), never from the network; absent = one clear error."""
    import huggingface_hub.constants as hub_constants
    import timm
    from safetensors.torch import save_file

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    cfg = _tiny_cfg(image_pretrained=True, local_files_only=True)
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        ImageEncoder(cfg)
    with pytest.raises(CheckpointError, match="could not get timm's pretrained weights"):  # HF_HUB_OFFLINE=1
        ImageEncoder(_tiny_cfg(image_pretrained=True, local_files_only=False))
    repo = timm.models.get_pretrained_cfg(
        cfg.image_encoder
    ).hf_hub_id  # timm/swin_tiny_patch4_window7_224.ms_in1k
    folder = tmp_path / "hub" / ("models--" + repo.replace("/", "--"))
    snap = folder / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    torch.manual_seed(8)
    src = ImageEncoder(_tiny_cfg())
    save_file(
        {k: v.contiguous() for k, v in src.backbone.state_dict().items()}, str(snap / "model.safetensors")
    )
    dst = ImageEncoder(cfg)
    for (k, a), b in zip(src.backbone.state_dict().items(), dst.backbone.state_dict().values()):
        assert torch.equal(a, b), k


def test_a_torchscript_archive_is_read_through_torch_jit(tmp_path):
    """OpenAI distributes CLIP as TorchScript archives; only their state dict is used."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecation notice for torch.jit.script
        scripted = torch.jit.script(torch.nn.Linear(3, 2))
    scripted.save(str(tmp_path / "scripted.pt"))
    sd = read_state_dict(tmp_path / "scripted.pt")
    assert set(sd) == {"weight", "bias"} and torch.equal(sd["weight"], scripted.weight)
