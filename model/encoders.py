"""Image and text encoders of the EGMA model (arXiv 2403.12416, appendix B-A).

* :class:`ImageEncoder`: any timm model; patch tokens (B, n, C) from ``forward_features`` and the pooled
  embedding (B, C) from ``forward_head(pre_logits=True)`` (after the final norm, as the reference uses).
* :class:`TextEncoder`: a transformers BERT; each sentence is encoded alone and pooled by an
  attention-masked mean over its tokens (the reference code averaged the padding in, a defect).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from radgaze.capture.errors import CheckpointError, ConfigError
from radgaze.model.config import RANDOM_TEXT_ENCODERS, ModelConfig


def _create_timm(config: ModelConfig) -> nn.Module:
    import timm

    kwargs: dict[str, Any] = {"num_classes": 0, **config.image_encoder_kwargs}
    if "img_size" not in kwargs and _accepts_img_size(config.image_encoder):
        kwargs["img_size"] = config.image_size
    pretrained = config.image_pretrained
    try:
        if isinstance(pretrained, str):
            if not Path(pretrained).is_file():
                raise CheckpointError(
                    f"image_pretrained: expected a weights file, got {pretrained!r} (absent)"
                )
            # timm's own loader maps original checkpoints (e.g. Microsoft's Swin) onto its modules.
            return timm.create_model(
                config.image_encoder, pretrained=True, pretrained_cfg_overlay={"file": pretrained}, **kwargs
            )
        return timm.create_model(config.image_encoder, pretrained=bool(pretrained), **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise ConfigError(
                f"invalid value for 'image_encoder': no timm model {config.image_encoder!r}"
            ) from exc
        raise


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


class TextEncoder(nn.Module):
    """BERT over single sentences -> masked-mean-pooled sentence features (N, H)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert
        self.num_features = int(bert.config.hidden_size)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """input_ids, attention_mask (N, L) -> (N, H): mean of the last hidden states over real tokens."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return masked_mean(hidden, attention_mask)


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean over dim 1 of hidden (N, L, H) where mask (N, L) is nonzero; all-masked rows give 0."""
    w = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)
