"""``radgaze eval RUN SESSIONS --json``: zero-shot classification, retrieval and attention agreement.

* Zero-shot (EGMA / CLIP protocol): global image embedding vs the report embedding of each class prompt; a
  class scores the max over its prompts; accuracy and macro F1 over cases with exactly one label.
* Retrieval (EGMA reference protocol, REFERENCE-NOTES): the texts are the class prompts; image->text
  relevant = prompts of the image's class (so P@k <= prompts-per-class / k), text->image relevant = images of
  the prompt's class. Precision at 1, 5 and 10 in both directions.
* Attention agreement: the model's sentence attention vs the radiologist's sentence heatmap on the session's
  heatmap grid, computed by :mod:`radgaze.model.agreement` (the functions ``radgaze review`` calls; see
  docs/agreement.md): CC (Pearson), NSS at the fixations of the sentence's gaze window, pointing game (the
  attention maximum falls inside the reader's own shapes that hold at least half of the sentence's gaze, when
  the reader drew any; else inside the finding's box when the sentence names a ground-truth finding; else inside
  the heatmap's half-maximum region; ``pointing_game_masks`` counts which). ``--sentences-csv`` writes the
  per-sentence table exactly as review's ``--export-csv`` does.
* Labels: the reader's annotation labels when the case has them (``radgaze.training.data.case_labels``).

Every metric is in [0, 1] except CC ([-1, 1]) and NSS (unbounded; 0 = chance); None when it cannot be computed
(e.g. no labels, no gaze).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from radgaze.capture.base.errors import ConfigError
from radgaze.model import agreement
from radgaze.model.metrics import pointing_game
from radgaze.model.zeroshot import (
    accuracy_macro_f1,
    class_scores,
    image_embeddings,
    precision_at_k,
    report_embeddings,
)
from radgaze.training import data as tdata
from radgaze.training.config import DataConfig

log = logging.getLogger(__name__)

KS = (1, 5, 10)
TRAINING_CASES_WARNING = (
    "EVALUATED ON TRAINING CASES: these numbers measure fit, not generalisation "
    "(hold cases out: data.val_fraction, or evaluate on sessions the run never saw)"
)
NORMAL_LABELS = ("normal", "no_finding", "no finding")
# Prompt templates for a class name (after "_" -> " "); the class score is the max over them (EGMA appendix
# Tables V-VI use several phrasings per class the same way).
TEMPLATES = ("{x}.", "there is {x}.", "findings consistent with {x}.", "{x} is present.", "evidence of {x}.")
NORMAL_PROMPTS = (
    "no acute cardiopulmonary abnormality.",
    "the lungs are clear.",
    "normal chest radiograph.",
    "no focal consolidation, effusion or pneumothorax.",
    "heart size is normal.",
)


def prompts_for_labels(labels: Sequence[str]) -> dict[str, list[str]]:
    """Class -> prompts: the model's published prompt sets where they name the class, else templates."""
    known: dict[str, list[str]] = {}
    try:
        from radgaze.model.zeroshot import load_prompts

        for name in ("chexpert8x200", "chexpert5x200"):
            try:
                known.update({k: list(v) for k, v in load_prompts(name).items() if k not in known})
            except Exception:  # a missing prompt set only means templates are used
                continue
    except ImportError:
        pass
    out = {}
    for lab in labels:
        if lab in known:
            out[lab] = known[lab]
        elif lab.lower() in NORMAL_LABELS:
            out[lab] = list(NORMAL_PROMPTS)
        else:
            x = lab.replace("_", " ")
            out[lab] = [t.format(x=x) for t in TEMPLATES]
    return out


# ------------------------------------------------------------------------------------------- evaluation
def _single_label(labels: Sequence[str]) -> str | None:
    return labels[0] if len(labels) == 1 else None


def classification_metrics(
    model, images: torch.Tensor, labels: list[str | None], device, prompts: dict[str, list] | None = None
) -> dict:
    """Zero-shot accuracy / macro F1 and class-prompt retrieval P@k. ``prompts``: class -> prompts, each a
    sentence or a whole report (a list of sentences, embedded as reports are); None = prompts_for_labels."""
    keep = [i for i, lab in enumerate(labels) if lab is not None]
    classes = sorted({labels[i] for i in keep})
    out: dict = {
        "zero_shot_accuracy": None,
        "zero_shot_macro_f1": None,
        "classes": classes,
        "n_classified": 0,
    }
    for d in ("i2t", "t2i"):
        for k in KS:
            out[f"retrieval_{d}_p_at_{k}"] = None
    if len(classes) < 2:
        out["zero_shot_note"] = (
            f"no zero-shot or class retrieval (–): it needs cases of at least 2 classes with one label each; "
            f"{len(keep)} of {len(labels)} case(s) have one label ({len(classes)} class(es))"
        )
        return out
    given = prompts or {}
    missing = [c for c in classes if not given.get(c)]
    prompts = {**prompts_for_labels(missing), **{c: list(given[c]) for c in classes if given.get(c)}}
    texts, text_cls = [], []
    for ci, c in enumerate(classes):
        texts += prompts[c]
        text_cls += [ci] * len(prompts[c])
    text_cls_a = np.asarray(text_cls)
    img = image_embeddings(model, images[keep])
    txt = report_embeddings(model, [[t] if isinstance(t, str) else list(t) for t in texts])
    sim = (img @ txt.T).numpy()
    scores = class_scores(sim, text_cls_a, len(classes))
    y_true = np.asarray([classes.index(labels[i]) for i in keep])
    acc, f1 = accuracy_macro_f1(y_true, scores.argmax(axis=1), len(classes))
    out.update(zero_shot_accuracy=acc, zero_shot_macro_f1=f1, n_classified=len(keep))
    out["zero_shot_majority_baseline"] = float(
        np.bincount(y_true).max() / len(y_true)
    )  # always the top class
    for k in KS:
        out[f"retrieval_i2t_p_at_{k}"] = precision_at_k(sim, y_true, text_cls_a, k)
        out[f"retrieval_t2i_p_at_{k}"] = precision_at_k(sim.T, text_cls_a, y_true, k)
    out["prompts_per_class"] = {c: len(prompts[c]) for c in classes}
    return out


def case_attention_rows(
    model, ds: tdata.SessionDataset, idx: int, device
) -> tuple[list, list[tuple[float, str]]]:
    """Case ``idx`` of ``ds``: its sentences' agreement rows (:func:`radgaze.model.agreement.case_rows`, review's
    rows) and, per row, the pointing game against :func:`radgaze.model.agreement.pointing_target` as
    (hit, target kind, chance = the target's share of the grid)."""
    sample = ds.sample(idx)  # keeps the case record (fixations, shapes, findings) beside the pixels
    rec = sample.record
    with_hm = agreement.sentences_with_heatmaps(rec) if rec is not None else []
    if not with_hm:
        return [], []
    x = ds.normalise(sample.image01).to(device)
    texts = [str(rec.sentences.text[i]) for i in with_hm]
    maps = agreement.grid_attention(model, x, sample.letterbox, texts, rec.heatmaps.shape[1:])
    rows = agreement.case_rows(rec, maps, session=Path(ds.cases[idx].file).name)
    pointing = []
    for i, m in zip(with_hm, maps, strict=True):
        target, kind = agreement.pointing_target(rec, i, rec.sentence_heatmap(i))
        pointing.append((float(pointing_game(m, target)), kind, float(target.mean())))
    return rows, pointing


def attention_metrics(
    model, ds: tdata.SessionDataset, device, max_cases: int | None = None, rows_out: list | None = None
) -> dict:
    """Model attention vs the readers' sentence heatmaps over the cases of ``ds``, on each case's heatmap grid,
    through the very functions review uses (:mod:`radgaze.model.agreement`): mean CC and NSS over sentences, the
    pointing game over every sentence (target kinds counted in ``pointing_game_masks``) and its chance level.
    ``rows_out`` receives the sentence rows (review's table)."""
    rows, pointing = [], []
    n = len(ds) if max_cases is None else min(len(ds), max_cases)
    report_every = max(1, math.ceil(n / 4))  # four progress lines over the slowest phase
    for idx in range(n):
        if idx and idx % report_every == 0:
            log.info("  attention agreement: %d/%d cases …", idx, n)
        r, p = case_attention_rows(model, ds, idx, device)
        rows += r
        pointing += p
    if rows_out is not None:
        rows_out.extend(rows)
    mask_kinds = {"reader_ellipse": 0, "finding_box": 0, "heatmap_half_max": 0}
    for _, kind, _ in pointing:
        mask_kinds[kind] += 1
    means = agreement.mean_metrics(rows) if rows else {}
    return {
        "pointing_game": float(np.mean([p[0] for p in pointing])) if pointing else None,
        "pointing_game_chance": float(np.mean([p[2] for p in pointing])) if pointing else None,
        "attention_cc": _finite(means.get("cc")),
        "attention_nss": _finite(means.get("nss")),
        "n_attention_sentences": len(rows),
        "pointing_game_masks": mask_kinds,
    }


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


@torch.no_grad()
def evaluate_dataset(
    model,
    ds: tdata.SessionDataset,
    *,
    device="cpu",
    max_attention_cases: int | None = None,
    prompts: dict[str, list] | None = None,
    rows_out: list | None = None,
) -> dict:
    """All metrics of ``model`` on the cases of ``ds`` (no augmentation, gaze of every case). ``prompts``
    (class -> sentences or reports) replace the class prompts of zero-shot and class retrieval; the default
    prompts' accuracy and macro F1 are then kept as ``zero_shot_*_label_prompts``. ``rows_out`` receives the
    attention agreement's sentence rows."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    eval_ds = tdata.SessionDataset(
        ds.folder,
        ds.cases,
        ds.cfg,
        image_size=ds.image_size,
        n_side=ds.n_side,
        train=False,
        seed=ds.seed,
        mean=ds.mean,
        std=ds.std,
    )
    eval_ds._cache = ds._cache  # share decoded images
    log.info("  zero-shot and retrieval over %d case(s) …", len(eval_ds))
    items = [eval_ds[i] for i in range(len(eval_ds))]
    images = torch.stack([it["image"] for it in items])
    labels = [_single_label(it["labels"]) for it in items]
    result: dict = {"n_cases": len(items)}
    result.update(classification_metrics(model, images, labels, device, prompts))
    if prompts:
        default = classification_metrics(model, images, labels, device)
        for k in ("zero_shot_accuracy", "zero_shot_macro_f1"):
            result[f"{k}_label_prompts"] = default[k]
    # report-level retrieval (each case's own report is the one relevant text)
    img = image_embeddings(model, images)
    rep = report_embeddings(model, [it["sentences"] for it in items])
    sim = (img @ rep.T).numpy()
    ids = np.arange(len(items))
    result["report_retrieval_i2t_r_at_1"] = precision_at_k(sim, ids, ids, 1)
    result["report_retrieval_t2i_r_at_1"] = precision_at_k(sim.T, ids, ids, 1)
    log.info("  attention agreement (model vs reader heatmaps) …")
    result.update(attention_metrics(model, eval_ds, device, max_attention_cases, rows_out))
    if was_training:
        model.train()
    return result


def trained_on(run_dir: Path, sessions: str | os.PathLike) -> bool:
    """True when ``sessions`` is (or contains, or lies inside) the folder the run was trained on (its
    report.json's ``sessions``): its cases are then training cases."""
    report = run_dir / "report.json"
    if not report.is_file():
        return False
    try:
        trained = json.loads(report.read_text()).get("sessions")
    except (OSError, json.JSONDecodeError):
        return False
    if not trained:
        return False
    a, b = Path(sessions).resolve(), Path(trained).resolve()
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def evaluate_run(
    run_dir: str | os.PathLike,
    sessions: str | os.PathLike,
    *,
    device: str = "cpu",
    checkpoint: str | None = None,
    max_attention_cases: int | None = None,
    sample_cache: dict | None = None,
    prompts: dict[str, list] | None = None,
    rows_out: list | None = None,
) -> dict:
    """Evaluate the model of ``run_dir`` (:func:`radgaze.training.runs.run_checkpoint`: RUN/current.json,
    else checkpoints/best, else checkpoints/last; ``checkpoint`` = "best"/"last" picks one) on ``sessions``.

    ``sample_cache`` shares decoded cases between evaluations (experiments); ``prompts`` as
    :func:`evaluate_dataset`; ``rows_out`` receives the sentence rows of the attention agreement. The result says
    ``evaluated_on``, with a ``warning`` when the sessions are the run's training sessions."""
    from radgaze.model.checkpoint import load_checkpoint
    from radgaze.training.runs import run_checkpoint

    run_dir = Path(run_dir)
    ckpt = run_checkpoint(run_dir, checkpoint)
    log.info("loading the model from %s …", ckpt)
    model = load_checkpoint(ckpt, device=device)
    data_cfg = DataConfig()
    cfg_path = run_dir / "config.json"
    if cfg_path.is_file():
        data_cfg = DataConfig(**json.loads(cfg_path.read_text()).get("data", {}))
    log.info("indexing the sessions in %s …", sessions)
    index = tdata.build_index(sessions)
    if not index.cases:
        raise ConfigError(f"no usable cases under {sessions} ({len(index.skipped)} skipped)")
    mcfg = model.config
    ds = tdata.SessionDataset(
        sessions,
        index.cases,
        data_cfg,
        image_size=int(mcfg.image_size),
        n_side=int(model.patch_grid),
        train=False,
        mean=mcfg.image_mean,
        std=mcfg.image_std,
        cache=sample_cache,
    )
    on_training = trained_on(run_dir, sessions)
    if on_training:
        log.warning(TRAINING_CASES_WARNING)
    log.info("evaluating %d case(s) …", len(ds))
    result = evaluate_dataset(
        model, ds, device=device, max_attention_cases=max_attention_cases, prompts=prompts, rows_out=rows_out
    )
    result["checkpoint"] = str(ckpt)
    result["n_skipped_files"], result["n_skipped_cases"] = tdata.skipped_counts(index.skipped)
    result["evaluated_on"] = "training cases" if on_training else "sessions not named in the run's report"
    if on_training:
        result["warning"] = TRAINING_CASES_WARNING
    return result


# What the human table shows first, in this order (the rest follows alphabetically).
HEADLINE_KEYS = (
    "n_cases",
    "zero_shot_accuracy",
    "zero_shot_macro_f1",
    "zero_shot_majority_baseline",
    "attention_cc",
    "attention_nss",
    "pointing_game",
    "pointing_game_chance",
    *(f"retrieval_{d}_p_at_{k}" for d in ("i2t", "t2i") for k in KS),
    "report_retrieval_i2t_r_at_1",
    "report_retrieval_t2i_r_at_1",
)


def result_table(result: dict) -> str:
    """The evaluation for people: scalar metrics to 3 significant digits, then what was evaluated."""
    scalars = {k: v for k, v in result.items() if isinstance(v, (int, float)) or v is None}
    order = [k for k in HEADLINE_KEYS if k in scalars]
    order += sorted(k for k in scalars if k not in order)
    from radgaze.training.console import table

    lines = [table([(k, scalars[k]) for k in order], title="evaluation")]
    for k in ("zero_shot_note", "checkpoint", "evaluated_on"):
        if result.get(k):
            lines.append(f"  {k}: {result[k]}")
    if result.get("warning"):
        lines.append(f"  WARNING: {result['warning']}")
    return "\n".join(lines)
