"""``radgaze experiment gaze-ablation``: does gaze help? A Table-IV-like ablation on synthetic sessions.

Synthetic readings (``radgaze.capture.synth``) name findings by place ("consolidation in the left lower zone"), and
the radiologist's gaze for a sentence dwells on that place, so localisation matters and gaze carries
information that the images and reports alone only give weakly. Every variant trains the ``tiny`` preset on
the same training sessions (CPU, seconds each) and is evaluated on held-out synthetic cases (another
synth seed).

Variants (the CLIP global loss is kept in every row so that zero-shot and retrieval, which use the global
embeddings, are trained in all of them):

* CLIP only ............ clip
* MLCE only ............ clip + mlce (EGMA Eq. 4 alone)
* EGF .................. clip + egf (Eq. 5 = FILIP fine-grained + MLCE)
* EGM .................. clip + egm (Eq. 6-8)
* EGF+EGM .............. clip + egf + egm (the full EGMA), gaze on 100 % of cases
* EGF+EGM gaze R % ..... the same with gaze on only R % of the training cases (R = 0, 1, 5, 10, 50)
* ... GL floor ......... MLCE only and EGF+EGM with patch masses below the uniform one zeroed (a diagnostic:
                          EGMA's GL = GS > 0 is nearly all-ones for Gaussian heatmaps)

Metrics (mean ± sd over seeds): retrieval P@1 (image->text and text->image, class-prompt protocol), zero-shot
accuracy, pointing game and CC of model attention vs the radiologist heatmaps.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METRICS = (
    ("retrieval_i2t_p_at_1", "I2T P@1"),
    ("retrieval_t2i_p_at_1", "T2I P@1"),
    ("zero_shot_accuracy", "ZS acc"),
    ("zero_shot_macro_f1", "ZS F1"),
    ("pointing_game", "pointing"),
    ("attention_cc", "att. CC"),
)
# Synthetic radiographs at 512 px: the tiny encoder sees 112 px and heatmaps are stored at <= 512 px, so the
# synth default of 2048 px would only cost decode time.
SYNTH_IMAGE_PX = 512
DEFAULT_RATIOS = (0.0, 0.01, 0.05, 0.10, 0.50)  # plus 1.0 = the EGF+EGM row (EGMA's 1/5/10/50 % ablation)


@dataclass(frozen=True)
class Variant:
    name: str
    losses: tuple[str, ...]
    gaze_ratio: float
    overrides: tuple[str, ...] = ()


def variants(ratios: tuple[float, ...] = DEFAULT_RATIOS) -> list[Variant]:
    rows = [
        Variant("CLIP only", ("clip",), 1.0),
        Variant("MLCE only", ("clip", "mlce"), 1.0),
        Variant("EGF", ("clip", "egf"), 1.0),
        Variant("EGM", ("clip", "egm"), 1.0),
        Variant("EGF+EGM", ("clip", "egf", "egm"), 1.0),
    ]
    rows += [Variant(f"EGF+EGM gaze {100 * r:g}%", ("clip", "egf", "egm"), r) for r in ratios if r < 1.0]
    # The diagnostic rows: GL = (GS > 0) marks almost every patch of a Gaussian heatmap as gazed; a floor of
    # one uniform mass keeps only the patches looked at more than average (radgaze.training.data.apply_gaze_floor).
    floor = ("data.gaze_floor=1.0",)
    rows += [
        Variant("MLCE only, GL floor", ("clip", "mlce"), 1.0, floor),
        Variant("EGF+EGM, GL floor", ("clip", "egf", "egm"), 1.0, floor),
    ]
    return rows


def gaze_label_density(folder: Path, cache: dict, floors: tuple[float, ...] = (0.0, 1.0)) -> dict[str, float]:
    """Mean fraction of the 7x7 patches with gaze > 0 (EGMA's GL) per gazed sentence, for each floor."""
    from radgaze.training import data as tdata
    from radgaze.training.config import DataConfig

    index = tdata.build_index(folder)
    ds = tdata.SessionDataset(folder, index.cases, DataConfig(), image_size=112, n_side=7, cache=cache)
    fractions: dict[str, list[float]] = {f"floor_{f:g}": [] for f in floors}
    for i in range(len(ds)):
        rows = ds.sample(i).gaze
        rows = rows[rows.sum(axis=1) > 0]
        for f in floors:
            fractions[f"floor_{f:g}"] += list((tdata.apply_gaze_floor(rows, f) > 0).mean(axis=1))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in fractions.items()}


def mean_sd(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample sd (ddof=1; 0 for one value) of the non-None values."""
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return None, None
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def format_table(rows: list[dict]) -> str:
    """Markdown table: one row per variant, 'mean ± sd' per metric."""
    head = "| variant | losses | gaze | " + " | ".join(label for _, label in METRICS) + " |"
    sep = "|" + "---|" * (3 + len(METRICS))
    lines = [head, sep]
    for r in rows:
        cells = []
        for key, _ in METRICS:
            m = r["metrics"][key]
            cells.append("n/a" if m["mean"] is None else f"{m['mean']:.3f} ± {m['sd']:.3f}")
        lines.append(
            f"| {r['name']} | {'+'.join(r['losses'])} | {100 * r['gaze_ratio']:g}% | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def make_data(work: Path, n_train: int, n_test: int, seed: int) -> tuple[Path, Path]:
    """Synthetic training and held-out test sessions (different synth seeds, so different phantoms)."""
    train_dir, test_dir = work / "train", work / "test"
    for d, n, s in ((train_dir, n_train, seed), (test_dir, n_test, seed + 10_000)):
        if not any(d.glob("**/*.h5")):  # a --work folder from an earlier run is reused as it is
            from radgaze.capture.synth import write_synthetic_sessions

            d.mkdir(parents=True, exist_ok=True)
            write_synthetic_sessions(d, n_cases=n, seed=s, image_size=SYNTH_IMAGE_PX)
    return train_dir, test_dir


def run_ablation(
    *,
    n_cases: int,
    n_seeds: int,
    n_test: int,
    epochs: int,
    work: Path,
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    data_seed: int = 7,
    overrides: list[str] | None = None,
    only: list[str] | None = None,
    log_fh=None,
) -> dict:
    """Train every variant for every seed on the same synthetic data; evaluate on held-out cases."""
    t0 = time.perf_counter()
    train_dir, test_dir = make_data(work, n_cases, n_test, data_seed)
    sample_cache: dict = {}
    rows, baselines = [], {}
    for v in variants(ratios):
        if only and v.name not in only:
            continue
        per_seed = [
            _train_and_evaluate(v, seed, epochs, train_dir, test_dir, work, sample_cache, overrides, log_fh)
            for seed in range(n_seeds)
        ]
        for res in per_seed:  # properties of the test set, not of a model
            baselines["chance"] = res.get("pointing_game_chance", baselines.get("chance"))
            baselines["majority"] = res.get("zero_shot_majority_baseline", baselines.get("majority"))
        rows.append(_variant_row(v, per_seed))
    return _ablation_result(rows, baselines, train_dir, sample_cache, n_cases, n_test, n_seeds, epochs,
                            overrides, t0)  # fmt: skip


def _run_dir(work: Path, v: Variant, seed: int) -> Path:
    return work / "runs" / f"{v.name.replace(' ', '_').replace('%', 'pct').replace('+', '-')}_s{seed}"


def _train_and_evaluate(
    v: Variant, seed: int, epochs: int, train_dir: Path, test_dir: Path, work: Path, sample_cache: dict,
    overrides: list[str] | None, log_fh,
) -> dict:  # fmt: skip
    """One run of one variant: train the tiny preset, evaluate the last checkpoint, log one JSON line."""
    from radgaze.training.config import load_config
    from radgaze.training.evaluate import evaluate_run
    from radgaze.training.trainer import train

    over = [
        f"epochs={epochs}",
        f"seed={seed}",
        f"data.gaze_ratio={v.gaze_ratio}",
        "eval_at_end=false",
        "model.loss.losses=" + json.dumps(list(v.losses)),
        *v.overrides,
        *(overrides or []),
    ]
    run_dir = _run_dir(work, v, seed)
    t_run = time.perf_counter()
    rep = train(load_config("tiny", over), train_dir, run_dir, show_bar=False, sample_cache=sample_cache)
    res = evaluate_run(run_dir, test_dir, checkpoint="last", sample_cache=sample_cache)
    res["train_s"] = round(time.perf_counter() - t_run, 2)
    res["final_loss"] = rep["final_terms"].get("loss")
    res["n_with_gaze"] = rep["data"]["n_with_gaze"]
    if log_fh is not None:
        brief = {k: res.get(k) for k, _ in METRICS}
        line = {"variant": v.name, "seed": seed, **brief, "train_s": res["train_s"]}
        log_fh.write(json.dumps({**line, "n_with_gaze": res["n_with_gaze"]}) + "\n")
        log_fh.flush()
    return res


def _variant_row(v: Variant, per_seed: list[dict]) -> dict:
    """A table row: mean ± sd of every metric over the seeds of one variant."""
    metrics = {}
    for key, _ in METRICS:
        vals = [r.get(key) for r in per_seed]
        mean, sd = mean_sd(vals)
        metrics[key] = {"mean": mean, "sd": sd, "values": vals}
    return {
        "name": v.name,
        "losses": list(v.losses),
        "gaze_ratio": v.gaze_ratio,
        "overrides": list(v.overrides),
        "metrics": metrics,
        "n_with_gaze": per_seed[0]["n_with_gaze"] if per_seed else None,
        "train_s_mean": float(np.mean([r["train_s"] for r in per_seed])) if per_seed else None,
    }


def _ablation_result(
    rows: list[dict], baselines: dict, train_dir: Path, sample_cache: dict, n_cases: int, n_test: int,
    n_seeds: int, epochs: int, overrides: list[str] | None, t0: float,
) -> dict:  # fmt: skip
    return {
        "experiment": "gaze-ablation",
        "gl_positive_patch_fraction": gaze_label_density(train_dir, sample_cache),
        "pointing_game_chance": baselines.get("chance"),
        "zero_shot_majority_baseline": baselines.get("majority"),
        "n_train_cases": n_cases,
        "n_test_cases": n_test,
        "n_seeds": n_seeds,
        "epochs": epochs,
        "config": "tiny",
        "overrides": overrides or [],
        "rows": rows,
        "table_markdown": format_table(rows),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
