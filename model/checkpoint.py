"""Checkpoints: a directory with safetensors weights, the JSON model config, the text encoder's
architecture config and tokenizer files, and optional metrics. Loadable by path alone (no training code,
no hub): :func:`load_checkpoint`.

Layout::

    DIR/model.safetensors   every parameter and buffer of EGMAModel
    DIR/config.json         {"format": "radgaze-egma", "version": 1, "model": ModelConfig.to_dict()}
    DIR/text_config.json    the BERT's own config (architecture; weights are in model.safetensors)
    DIR/tokenizer/          tokenizer files (save_pretrained)
    DIR/metrics.json        optional

Writes are atomic at the directory level (open_clip's habit of temp + os.replace): the files go to a fresh
sibling temp directory, which then replaces DIR, so a crash never leaves a half-written DIR.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from radgaze.capture.base.errors import CheckpointError, ConfigError

FORMAT = "radgaze-egma"
VERSION = 1
WEIGHTS, CONFIG, TEXT_CONFIG, TOKENIZER, METRICS = (
    "model.safetensors",
    "config.json",
    "text_config.json",
    "tokenizer",
    "metrics.json",
)


def save_checkpoint(model, directory: str | Path, *, metrics: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (an EGMAModel) to ``directory`` atomically; returns the directory."""
    from safetensors.torch import save_model

    model = getattr(model, "module", model)  # DistributedDataParallel wrapper
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        save_model(model, str(tmp / WEIGHTS))
        header = {"format": FORMAT, "version": VERSION, "model": model.config.to_dict()}
        (tmp / CONFIG).write_text(json.dumps(header, indent=1))
        (tmp / TEXT_CONFIG).write_text(model.text_encoder.bert.config.to_json_string())
        model.tokenizer.save_pretrained(str(tmp / TOKENIZER))
        if metrics is not None:
            (tmp / METRICS).write_text(json.dumps(metrics, indent=1, default=float))
        _replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished ``src`` into place as ``dst``; an existing ``dst`` is swapped out, then removed."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
    os.replace(dst, old / "ckpt")
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def read_config(directory: str | Path):
    """The ModelConfig stored in a checkpoint directory."""
    from radgaze.model.config import ModelConfig

    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory}: expected {CONFIG} in the directory, it is missing")
    try:
        header = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {directory}: {CONFIG} is not valid JSON ({exc})") from exc
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {directory}: expected format {FORMAT!r} version {VERSION}, "
            f"got {header.get('format')!r} version {header.get('version')!r}"
        )
    try:
        return ModelConfig.from_dict(header["model"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {directory}: bad model config ({exc})") from exc


def read_metrics(directory: str | Path) -> dict[str, Any] | None:
    """metrics.json of a checkpoint, or None when it has none."""
    path = Path(directory) / METRICS
    return json.loads(path.read_text()) if path.is_file() else None


def load_checkpoint(directory: str | Path, device: str = "cpu"):
    """Rebuild the EGMAModel saved in ``directory`` (weights, config, tokenizer) on ``device``, in eval mode.

    Nothing is fetched: the BERT is built from text_config.json, the image encoder without pretrained
    weights, and every weight comes from model.safetensors (strict: missing or extra keys are an error).
    """
    import dataclasses

    from safetensors.torch import load_model
    from transformers import AutoTokenizer, BertConfig, BertModel

    from radgaze.model.egma import EGMAModel

    directory = Path(directory)
    for name in (WEIGHTS, TEXT_CONFIG, TOKENIZER):
        if not (directory / name).exists():
            raise CheckpointError(f"checkpoint {directory}: expected {name} in the directory, it is missing")
    config = read_config(directory)
    build_cfg = dataclasses.replace(config, image_pretrained=False)
    bert = BertModel(BertConfig.from_json_file(str(directory / TEXT_CONFIG)), add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(str(directory / TOKENIZER), local_files_only=True)
    model = EGMAModel(build_cfg, text_backbone=(bert, tokenizer))
    model.config = config
    try:
        load_model(model, str(directory / WEIGHTS), strict=True, device=str(device))
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {directory}: weights do not match its config ({exc})") from exc
    except Exception as exc:  # safetensors' own error type: a truncated or damaged file (issue 24)
        raise CheckpointError(
            f"checkpoint {directory}: expected a whole {WEIGHTS}, got one that cannot be read "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return model.to(device).eval()
