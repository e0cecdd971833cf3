"""Zero-shot classification and retrieval (EGMA protocol, arXiv 2403.12416 section IV and appendix C).

Prompts are package data (assets/prompts/*.json): ``chexpert5x200`` (severity x subtype x location
combinations: GLoRIA's radiologist set, of which EGMA's Table V prints examples) and ``chexpert8x200`` (five expert queries per class, Table VI); ``rsna`` and
``siim`` are the No Finding + Pneumonia / Pneumothorax subsets of 8x200 the paper uses (appendix C-C, C-D).
Class score = max over that class's prompts of cos(global image, prompt embedding).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import torch
from torch import Tensor

from radgaze.assets import asset_text
from radgaze.capture.base.errors import ConfigError

PROMPT_SETS = ("chexpert5x200", "chexpert8x200", "rsna", "siim")
_PARTS = ("severity", "subtype", "location")  # composition order unless a class gives its own "order"
_SUBSETS = {"rsna": ("No Finding", "Pneumonia"), "siim": ("No Finding", "Pneumothorax")}


def load_prompts(name: str) -> dict[str, list[str]]:
    """Prompt set ``name`` -> {class: [prompt sentences]} (class order as in the paper's tables)."""
    if name not in PROMPT_SETS:
        raise ConfigError(f"invalid value for the 'name' parameter: allowed are {PROMPT_SETS}, got {name!r}")
    file = "chexpert8x200" if name in _SUBSETS else name
    data = json.loads(asset_text("prompts", f"{file}.json"))
    classes = data["classes"]
    if file == "chexpert5x200":
        out = {c: _combine(*(v[k] for k in v.get("order", _PARTS))) for c, v in classes.items()}
    else:
        out = {c: list(v) for c, v in classes.items()}
    if name in _SUBSETS:
        out = {c: out[c] for c in _SUBSETS[name]}
    return out


def _combine(first: list[str], second: list[str], third: list[str]) -> list[str]:
    """Every first x second x third phrase (severity, subtype, location in a class's order), empty parts
    skipped, duplicates dropped."""
    phrases = (" ".join(p for p in parts if p) for parts in itertools.product(first, second, third))
    return list(dict.fromkeys(phrases))


@torch.no_grad()
def report_embeddings(model, reports: list[list[str]], batch_size: int = 64) -> Tensor:
    """Reports (each a list of sentences) -> (N, D) normalised report embeddings (on CPU)."""
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(reports), batch_size):
        tok = model.tokenize(reports[i : i + batch_size])
        _, report = model.encode_text(
            *(tok[k].to(dev) for k in ("input_ids", "attention_mask", "sentence_mask"))
        )
        out.append(report.float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.embed_dim)


def text_embeddings(model, texts: list[str], batch_size: int = 64) -> Tensor:
    """Each text as a one-sentence report -> (T, D) normalised report embeddings (on CPU)."""
    return report_embeddings(model, [[t] for t in texts], batch_size)


@torch.no_grad()
def image_embeddings(model, images: Tensor, batch_size: int = 32) -> Tensor:
    """images (N, 3, S, S) normalised -> (N, D) normalised global embeddings (on CPU)."""
    dev = next(model.parameters()).device
    out = [
        model.encode_image(images[i : i + batch_size].to(dev))[1].float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, model.config.embed_dim)


def class_scores(sim: np.ndarray, owner: np.ndarray, n_classes: int) -> np.ndarray:
    """The zero-shot rule, once: (N, T) image-prompt cosines and (T,) the class index of each prompt -> (N, C)
    class scores, each the max over that class's prompts (CLIP / EGMA)."""
    sim, owner = np.asarray(sim), np.asarray(owner)
    if sim.ndim != 2 or owner.shape != (sim.shape[1],):
        raise ValueError(f"expected sim (N, T) and owner (T,), got {sim.shape} and {owner.shape}")
    missing = sorted(set(range(n_classes)) - set(owner.tolist()))
    if missing:
        raise ValueError(f"expected at least one prompt per class, classes {missing} have none")
    return np.stack([sim[:, owner == c].max(axis=1) for c in range(n_classes)], axis=1)


def zero_shot_scores(model, images: Tensor, prompts: dict[str, list[str]]) -> np.ndarray:
    """(N, C) class scores, columns in ``prompts`` order: max over the class's prompts of the cosine."""
    was_training = model.training
    model.eval()
    try:
        img = image_embeddings(model, images)
        txt = text_embeddings(model, [t for ts in prompts.values() for t in ts])
    finally:
        model.train(was_training)
    owner = np.array([c for c, ts in enumerate(prompts.values()) for _ in ts])
    return class_scores((img @ txt.T).numpy(), owner, len(prompts))


def accuracy_macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[float, float]:
    """Accuracy and macro F1 (mean over classes present in y_true or y_pred) of integer labels."""
    acc = float(np.mean(y_true == y_pred))
    f1s = []
    for c in range(n_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return acc, float(np.mean(f1s)) if f1s else 0.0


def precision_at_k(sim: np.ndarray, query_labels: np.ndarray, item_labels: np.ndarray, k: int) -> float:
    """Mean over queries (rows of sim) of the fraction of the top-k items sharing the query's label."""
    k = min(k, sim.shape[1])
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return float((np.asarray(item_labels)[top] == np.asarray(query_labels)[:, None]).mean())


def retrieval_precision_at_k(
    sim: np.ndarray, img_labels, txt_labels, ks: tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """Image->text and text->image P@k from sim (N_img, N_txt); relevant = same class (EGMA protocol).

    Keys ``i2t_p@{k}`` and ``t2i_p@{k}``.
    """
    sim = np.asarray(sim, dtype=np.float64)
    il, tl = np.asarray(img_labels), np.asarray(txt_labels)
    if sim.shape != (len(il), len(tl)):
        raise ValueError(f"sim: expected shape ({len(il)}, {len(tl)}) (images, texts), got {sim.shape}")
    out = {f"i2t_p@{k}": precision_at_k(sim, il, tl, k) for k in ks}
    out.update({f"t2i_p@{k}": precision_at_k(sim.T, tl, il, k) for k in ks})
    return out
