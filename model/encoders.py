"""Image and text encoders of the EGMA model (arXiv 2403.12416, appendix B-A).

* :class:`ImageEncoder`: any timm model; patch tokens (B, n, C) from ``forward_features`` and the pooled
  embedding (B, C) from ``forward_head(pre_logits=True)`` (after the final norm, as the reference uses).
* :class:`TextEncoder`: a transformers BERT; each sentence is encoded alone and pooled by an
  attention-masked mean over its tokens (default), or by the EGMA reference's mean of the last 4 hidden
  layers (``ModelConfig.text_pooling``; the reference also averaged the padding in, a defect).
* Image weights (``ModelConfig.image_pretrained``): random, timm's hub copy, a local file (timm or original
  naming), or a Hugging Face Swin (directory, file or hub repo id) mapped onto timm's modules.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from radgaze.capture.base.errors import CheckpointError, ConfigError
from radgaze.model.config import RANDOM_TEXT_ENCODERS, ModelConfig


def _create_timm(config: ModelConfig) -> nn.Module:
    """The timm image backbone with the weights ``config.image_pretrained`` names (see :func:`_pretrained_source`)."""
    import timm

    kwargs: dict[str, Any] = {"num_classes": 0, **config.image_encoder_kwargs}
    if "img_size" not in kwargs and _accepts_img_size(config.image_encoder):
        kwargs["img_size"] = config.image_size
    kind, where = _pretrained_source(config)
    try:
        if kind == "timm-file":
            # timm's own loader maps original checkpoints (e.g. Microsoft's Swin) onto its modules.
            return timm.create_model(
                config.image_encoder, pretrained=True, pretrained_cfg_overlay={"file": where}, **kwargs
            )
        if kind == "timm-hub":
            return _timm_from_hub(config.image_encoder, kwargs)
        backbone = timm.create_model(config.image_encoder, pretrained=False, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise ConfigError(
                f"invalid value for 'image_encoder': no timm model {config.image_encoder!r}"
            ) from exc
        raise
    if kind == "hf":
        _load_hf_swin(backbone, Path(where))
    return backbone


def _timm_from_hub(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """timm's pretrained weights for ``name`` (downloaded once into the Hugging Face cache)."""
    import timm

    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except OSError as exc:  # offline, no cache, hub unreachable (huggingface_hub's errors are OSErrors)
        raise CheckpointError(
            f"image_pretrained=true: could not get timm's pretrained weights for {name!r} "
            f"({type(exc).__name__}); expected network access once, or set image_pretrained to a local "
            "weights file or Hugging Face directory"
        ) from exc


def _pretrained_source(config: ModelConfig) -> tuple[str, str]:
    """Where the image weights come from: ("random", ""), ("timm-hub", name) for True (timm's hub copy of the
    model's default pretrained tag; with ``local_files_only`` only the local cache is used), ("timm-file",
    path) for a weights file in timm's or the original authors' naming, ("hf", path) for a Hugging Face Swin
    (a directory with config.json, a weights file in HF naming, or a hub repo id such as
    ``microsoft/swin-tiny-patch4-window7-224``, the one the EGMA reference loads)."""
    pretrained = config.image_pretrained
    if pretrained is False:
        return "random", ""
    if pretrained is True:
        if config.local_files_only:
            return "timm-file", _cached_timm_weights(config.image_encoder)
        return "timm-hub", config.image_encoder
    path = Path(pretrained)
    if path.is_dir():
        return "hf", str(path)
    if path.is_file():
        return ("hf" if _is_hf_swin_file(path) else "timm-file"), str(path)
    if _looks_like_repo_id(pretrained):
        return "hf", str(_hub_snapshot(pretrained, config.local_files_only))
    raise CheckpointError(
        f"image_pretrained: expected a weights file, a Hugging Face directory or a hub repo id, got "
        f"{pretrained!r} (absent)"
    )


def _looks_like_repo_id(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name) is not None and not name.endswith(
        _WEIGHT_SUFFIXES
    )


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz")


def _cached_timm_weights(name: str) -> str:
    """The locally cached weights file of timm's default pretrained tag for ``name`` (no network)."""
    import timm
    from huggingface_hub import hf_hub_download

    repo = timm.models.get_pretrained_cfg(name).hf_hub_id if timm.is_model(name) else None
    if not repo:
        raise CheckpointError(f"image_pretrained=true: timm has no hub weights for {name!r}")
    for file in ("model.safetensors", "pytorch_model.bin"):
        try:
            return hf_hub_download(repo, file, local_files_only=True)
        except Exception:  # noqa: BLE001 - hub errors differ by version; try the next file
            continue
    raise CheckpointError(
        f"image_pretrained=true with local_files_only: {repo} is not in the local Hugging Face cache; run once "
        "with local_files_only=false on a machine with internet, or set image_pretrained to a weights file "
        "or directory"
    )


def _hub_snapshot(repo: str, local_files_only: bool) -> Path:
    """A Hugging Face hub repo's config + weights in the local cache (downloaded unless local_files_only)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo,
                allow_patterns=["config.json", "*.safetensors", "pytorch_model.bin"],
                local_files_only=local_files_only,
            )
        )
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, network: one clear line
        raise CheckpointError(
            f"image_pretrained {repo!r}: could not get it from the Hugging Face hub "
            f"(local_files_only={local_files_only}, HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}); "
            f"expected a cached copy or a local directory: {type(exc).__name__}: {exc}"
        ) from exc


def _is_hf_swin_file(path: Path) -> bool:
    from radgaze.model.init_weights import is_hf_swin, read_state_dict

    return path.suffix in (".safetensors", ".bin") and is_hf_swin(read_state_dict(path))


def _load_hf_swin(backbone: nn.Module, where: Path) -> None:
    """Hugging Face Swin weights (SwinModel or SwinForImageClassification) into a timm Swin; every
    backbone tensor must come from the file (the classifier head, if any, is not used)."""
    from radgaze.model.init_weights import apply_state, hf_swin_to_timm, is_hf_swin, read_state_dict

    sd = read_state_dict(where)
    if not is_hf_swin(sd):
        raise CheckpointError(
            f"image_pretrained {where}: expected Hugging Face Swin weights (keys embeddings.patch_embeddings...), "
            f"got e.g. {sorted(sd)[:3]}"
        )
    mapped, _unused = hf_swin_to_timm(sd)
    loaded, absent, mismatched = apply_state(backbone, mapped)
    missing = sorted(set(backbone.state_dict()) - set(loaded))
    if missing or absent or mismatched:
        raise CheckpointError(
            f"image_pretrained {where}: the Swin weights do not fit the configured image encoder: "
            f"{len(missing)} tensors missing (e.g. {missing[:3]}), shapes differ for {mismatched[:3]}, "
            f"no place for {absent[:3]}"
        )


def _accepts_img_size(name: str) -> bool:
    """Transformers (ViT, Swin, ...) take img_size; convnets do not."""
    return any(key in name for key in ("vit", "swin", "deit", "beit", "eva", "cait", "xcit", "mvit"))


class ImageEncoder(nn.Module):
    """timm backbone -> patch tokens (B, n, C) and pooled (B, C); ``patch_grid`` = sqrt(n)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = _create_timm(config)
        self.num_features = int(self.backbone.num_features)
        self.num_prefix_tokens = int(getattr(self.backbone, "num_prefix_tokens", 0))
        self.output_fmt = str(getattr(self.backbone, "output_fmt", "NCHW"))
        with torch.no_grad():
            was_training = self.backbone.training
            self.backbone.eval()
            probe = torch.zeros(1, 3, config.image_size, config.image_size)
            n = self.tokens(self.backbone.forward_features(probe)).shape[1]
            self.backbone.train(was_training)
        side = int(round(n**0.5))
        if side * side != n:
            raise ConfigError(
                f"image encoder {config.image_encoder!r} gives {n} patch tokens, not a square grid"
            )
        self.patch_grid = side

    def tokens(self, feats: Tensor) -> Tensor:
        """forward_features output -> patch tokens (B, n, C), prefix (class) tokens dropped."""
        if feats.ndim == 4:
            if self.output_fmt == "NHWC":
                return feats.flatten(1, 2)
            return feats.flatten(2).transpose(1, 2)
        return feats[:, self.num_prefix_tokens :]

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images (B, 3, S, S) normalised -> (patch tokens (B, n, C), pooled (B, C))."""
        feats = self.backbone.forward_features(images)
        pooled = self.backbone.forward_head(feats, pre_logits=True)
        return self.tokens(feats), pooled


def load_text_backbone(config: ModelConfig, bert_config: Any | None = None) -> tuple[nn.Module, Any]:
    """(BERT module, tokenizer) for ``config.text_encoder``.

    A name in RANDOM_TEXT_ENCODERS builds a random BERT locally (radgaze.model.tiny_bert); a directory or hub name
    loads weights with ``local_files_only`` as configured. ``bert_config`` (a BertConfig) builds the
    architecture with random weights instead, for loading a checkpoint whose weights come separately.
    """
    from transformers import AutoModel, AutoTokenizer

    name = config.text_encoder
    if name in RANDOM_TEXT_ENCODERS:
        from radgaze.model.tiny_bert import build_random_bert

        bert, tok = build_random_bert(**config.text_encoder_kwargs)
        if bert_config is not None:
            bert = type(bert)(bert_config, add_pooling_layer=False)
        return bert, tok
    if bert_config is not None:
        raise ConfigError("bert_config is only for checkpoints; load_checkpoint passes it with its tokenizer")
    try:
        tok = AutoTokenizer.from_pretrained(name, local_files_only=config.local_files_only)
        bert = AutoModel.from_pretrained(
            name, local_files_only=config.local_files_only, add_pooling_layer=False
        )
    except OSError as exc:
        raise CheckpointError(
            f"text encoder {name!r}: could not load (local_files_only={config.local_files_only}); expected a "
            f"local directory with config.json, weights and tokenizer files, or a cached hub name: {exc}"
        ) from exc
    return bert, tok


TEXT_POOLINGS = ("mean", "last4", "last4_unmasked")


class TextEncoder(nn.Module):
    """BERT over single sentences -> pooled sentence features (N, H).

    ``pooling``: ``mean`` (default) = attention-masked mean of the last hidden layer over real tokens;
    ``last4`` = the mean of the last 4 hidden layers (the EGMA reference's MedCLIPTextModel, public repository
    MoMarky/EGMA ``egma/modeling_egma.py``), then the masked mean over tokens; ``last4_unmasked`` = the
    reference exactly: the padding of the batch (padded to its longest sentence, as the reference's
    ``padding=True``) is averaged in too, a defect kept only to reproduce it.
    """

    def __init__(self, bert: nn.Module, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in TEXT_POOLINGS:
            raise ConfigError(
                f"invalid value for 'text_pooling': expected one of {TEXT_POOLINGS}, got {pooling!r}"
            )
        layers = int(getattr(bert.config, "num_hidden_layers", 0))
        if pooling != "mean" and layers + 1 < 4:
            raise ConfigError(
                f"text_pooling {pooling!r} averages the last 4 hidden layers; the text encoder has only "
                f"{layers + 1} (embeddings + {layers} layers)"
            )
        self.bert = bert
        self.pooling = pooling
        self.num_features = int(bert.config.hidden_size)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """input_ids, attention_mask (N, L) -> (N, H) pooled as ``self.pooling`` says."""
        if self.pooling == "mean":
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return masked_mean(hidden, attention_mask)
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = torch.stack(tuple(out.hidden_states[-4:]), 0).mean(0)
        if self.pooling == "last4_unmasked":
            return hidden.mean(1)
        return masked_mean(hidden, attention_mask)


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean over dim 1 of hidden (N, L, H) where mask (N, L) is nonzero; all-masked rows give 0."""
    w = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)
