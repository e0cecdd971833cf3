"""Training configuration: dataclasses loaded from TOML/JSON presets or files, plus a few CLI overrides.

A config is one :class:`TrainConfig` holding the model's :class:`radgaze.model.config.ModelConfig` (as a plain
dict until the model is built, so this module loads without torch), the data options, the optimiser options
and the run options. Named presets live as package data in ``training/configs/<name>.toml``:

* ``tiny``  – a few-layer encoder pair at a small image size; trains in seconds on a CPU (tests, demos).
* ``paper`` – Swin-T + Bio_ClinicalBERT at 224 px with EGMA's published hyperparameters.

Overrides are dotted ``section.key=value`` strings (value parsed as TOML, else kept as a string), e.g.
``optim.lr=1e-4`` or ``model.loss.losses=["clip","egf"]``.
"""

from __future__ import annotations

import copy
import json
import math
import numbers
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from radgaze.capture.base.errors import ConfigError

PRESETS = ("tiny", "paper")


@dataclass
class DataConfig:
    """How sessions become training samples."""

    gaze_ratio: float = 1.0  # fraction of cases that keep their gaze (EGMA ablation: 0.01/0.05/0.1/0.5)
    # Patch masses below gaze_floor / n are zeroed before the model sees the gaze (0 = off, the paper: every
    # patch with any mass counts as gazed, GL = GS > 0); see radgaze.training.data.apply_gaze_floor.
    gaze_floor: float = 0.0
    max_sentences: int = 16  # sentences kept per report (the rest are dropped, in order)
    # held-out cases for the "best" checkpoint and the final evaluation; 0 = none (best by training loss);
    # None = automatic (radgaze.training.trainer.auto_val_fraction: 0.2 from 20 cases on, else none)
    val_fraction: float | None = None
    augment: bool = True  # photometric augmentations (geometry is never changed)
    # Photometric augmentation strengths of the EGMA reference code (REFERENCE-NOTES: ColorJitter(0.2, 0.2),
    # RandomAdjustSharpness(2, p=0.5), RandomAutocontrast(p=0.5)).
    brightness: float = 0.2
    contrast: float = 0.2
    sharpness_factor: float = 2.0
    sharpness_p: float = 0.5
    autocontrast_p: float = 0.5
    cache_in_memory: bool = True  # keep decoded, letterboxed images (small datasets, experiments)


@dataclass
class OptimConfig:
    """AdamW with a cosine schedule after a linear warm-up."""

    lr: float = 1e-5
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_frac: float = 0.1  # fraction of optimiser steps spent warming up linearly from 0
    min_lr_frac: float = 0.0  # cosine floor as a fraction of lr
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    accum_steps: int = 1  # micro-batches per optimiser step


@dataclass
class TrainConfig:
    """Everything a training run needs; written to ``RUN/config.json``."""

    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig.to_dict() (+ optional "preset" key)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 50
    batch_size: int = 40  # per process
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto (bf16 on CUDA, off on CPU) | bf16 | fp16 | off
    log_every_steps: int = 10
    save_every_steps: int = 0  # also checkpoint every N optimiser steps (0 = only at epoch ends)
    num_threads: int = 0  # torch CPU threads (0 = leave torch's default)
    num_workers: int = 0  # DataLoader worker processes (0 = load in the training process)
    eval_at_end: bool = True  # evaluate the final model on the training sessions (RUN/eval.json)
    # Continued pre-training: initialise the whole model from a MedCLIP, CLIP, GLoRIA, MGCA or radgaze
    # checkpoint (file or directory; radgaze.model.init_weights) before the first step ("" = no).
    init: str = ""
    init_layout: str = "auto"  # auto | medclip | clip | gloria | mgca | radgaze
    preset: str = ""  # the named preset this came from, for the record

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optim"]["betas"] = list(self.optim.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = copy.deepcopy(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"training config: unknown keys {sorted(unknown)}; allowed are {sorted(known)}")
        data = _section(DataConfig, d.pop("data", {}), "data")
        optim = _section(OptimConfig, d.pop("optim", {}), "optim")
        optim.betas = tuple(float(b) for b in optim.betas)
        cfg = cls(data=data, optim=optim, **d)
        check_types(cfg, "")
        validate(cfg)
        return cfg

    def model_config(self):
        """The :class:`radgaze.model.config.ModelConfig` (imports the model package)."""
        from radgaze.model.config import ModelConfig

        d = copy.deepcopy(self.model)
        preset = d.pop("preset", None)
        for f in fields(ModelConfig):  # before ModelConfig's own checks compare them (embed_dim = "fast")
            if f.name in d:
                check_field_type(f, d[f.name], "model")
        if preset:
            base = ModelConfig.preset(preset).to_dict()
            d = _deep_update(base, d)
        return ModelConfig.from_dict(d)


def _section(kind: type, d: dict[str, Any], name: str):
    if not isinstance(d, dict):
        raise ConfigError(f"training config: section {name!r} must be a table, got {type(d).__name__}")
    known = {f.name for f in fields(kind)}
    unknown = set(d) - known
    if unknown:
        raise ConfigError(
            f"training config [{name}]: unknown keys {sorted(unknown)}; allowed are {sorted(known)}"
        )
    section = kind(**d)
    check_types(section, name)
    return section


def check_types(obj: Any, where: str) -> None:
    """ConfigError (one line) for a field whose value is not of its default's type (``lr = "fast"``: a
    number expected, a string came); an int is a float, a bool is no number. Fields defaulting to None or to a
    container are not checked here."""
    for f in fields(obj):
        check_field_type(f, getattr(obj, f.name), where)


def check_field_type(f: Any, value: Any, where: str) -> None:
    """:func:`check_types` for one dataclass field ``f`` and the ``value`` given for it (a ``bool | str``
    field, such as ``model.image_pretrained``, takes either)."""
    default = f.default if f.default is not MISSING else None
    if default is None or value is None or isinstance(default, list | tuple | dict):
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool | str) if "str" in str(f.type) else isinstance(value, bool)
    elif isinstance(default, int | float):  # numpy numbers too (experiments build configs from arrays)
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        ok = ok and (not isinstance(default, int) or float(value).is_integer())
    else:
        ok = isinstance(value, type(default))
    if not ok:
        number = isinstance(default, int | float) and not isinstance(default, bool)
        kind = (
            ("an integer" if isinstance(default, int) else "a number") if number else type(default).__name__
        )
        raise ConfigError(
            f"invalid value for {where + '.' if where else ''}{f.name!r}: expected {kind}, got {value!r}"
        )


def validate(cfg: TrainConfig) -> None:
    """Raise ConfigError on values that cannot work."""
    checks = [
        (0.0 <= cfg.data.gaze_ratio <= 1.0, "data.gaze_ratio", "a fraction in [0, 1]", cfg.data.gaze_ratio),
        (
            cfg.data.val_fraction is None or 0.0 <= cfg.data.val_fraction < 1.0,
            "data.val_fraction",
            "a fraction in [0, 1) or unset (automatic)",
            cfg.data.val_fraction,
        ),
        (cfg.data.gaze_floor >= 0, "data.gaze_floor", ">= 0", cfg.data.gaze_floor),
        (cfg.data.max_sentences >= 1, "data.max_sentences", ">= 1", cfg.data.max_sentences),
        (0 < cfg.optim.lr < math.inf, "optim.lr", "a finite number > 0", cfg.optim.lr),
        (
            0 <= cfg.optim.weight_decay < math.inf,
            "optim.weight_decay",
            "a finite number >= 0",
            cfg.optim.weight_decay,
        ),
        (0.0 <= cfg.optim.warmup_frac < 1.0, "optim.warmup_frac", "in [0, 1)", cfg.optim.warmup_frac),
        (cfg.optim.accum_steps >= 1, "optim.accum_steps", ">= 1", cfg.optim.accum_steps),
        (cfg.optim.grad_clip >= 0, "optim.grad_clip", ">= 0", cfg.optim.grad_clip),
        (cfg.epochs >= 1, "epochs", ">= 1", cfg.epochs),
        (cfg.batch_size >= 2, "batch_size", ">= 2 (contrastive losses need negatives)", cfg.batch_size),
        (cfg.device in ("auto", "cpu", "cuda"), "device", "auto, cpu or cuda", cfg.device),
        (cfg.amp in ("auto", "bf16", "fp16", "off"), "amp", "auto, bf16, fp16 or off", cfg.amp),
        (cfg.log_every_steps >= 1, "log_every_steps", ">= 1", cfg.log_every_steps),
        (cfg.save_every_steps >= 0, "save_every_steps", ">= 0", cfg.save_every_steps),
        (
            cfg.init_layout in ("auto", "medclip", "clip", "gloria", "mgca", "radgaze"),
            "init_layout",
            "auto, medclip, clip, gloria, mgca or radgaze",
            cfg.init_layout,
        ),
    ]
    for ok, name, expected, got in checks:
        if not ok:
            raise ConfigError(f"invalid value for {name!r}: expected {expected}, got {got!r}")


def _deep_update(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_update(out[k], v)
        else:
            out[k] = v
    return out


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # a binary file is no config either
        raise ConfigError(f"cannot read config file {path} as UTF-8 text: {exc}") from exc
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"config file {path} is not valid {path.suffix.lstrip('.').upper()}: {exc}"
        ) from exc


def preset_dict(name: str) -> dict[str, Any]:
    """The raw mapping of a named preset (``tiny`` or ``paper``)."""
    if name not in PRESETS:
        raise ConfigError(
            f"unknown config preset {name!r}; expected one of {', '.join(PRESETS)} or a file path"
        )
    text = resources.files("radgaze.training").joinpath("configs", f"{name}.toml").read_text()
    d = tomllib.loads(text)
    d.setdefault("preset", name)
    return d


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-4"`` -> (["optim", "lr"], 1e-4). Values parse as TOML values, else stay strings."""
    if "=" not in item:
        raise ConfigError(f"invalid override {item!r}: expected section.key=value")
    key, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return [k for k in key.strip().split(".") if k], value


def load_config(source: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A config from a preset name or a TOML/JSON file (default: ``paper``), then dotted overrides."""
    source = "paper" if source is None else source
    if isinstance(source, str) and source in PRESETS:
        d = preset_dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config {str(source)!r} is neither a preset ({', '.join(PRESETS)}) nor a file")
        d = _read_mapping(path)
        base = d.pop("base", None)  # a file may start from a preset: base = "tiny"
        if base:
            d = _deep_update(preset_dict(base), d)
    for item in overrides or []:
        keys, value = parse_override(item)
        node = d
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"invalid override {item!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return TrainConfig.from_dict(d)


def save_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
