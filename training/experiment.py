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

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ConfigError

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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze experiment",
        description="Experiments. gaze-ablation: train the tiny EGMA on synthetic sessions as CLIP only, "
        "MLCE only, EGF, EGM, EGF+EGM and EGF+EGM with gaze on 0/1/5/10/50 % of cases; print a Table-IV-like "
        "table (mean ± sd over seeds) of retrieval P@1, zero-shot accuracy and pointing game on held-out "
        "synthetic cases. learning-curve: CLIP only vs EGF+EGM vs EGF+EGM with gaze on 10 % of cases "
        "over nested training sets (64, 256, 1024 cases by default) on one held-out set; prints the table "
        "and writes a PNG plot (does gaze improve sample efficiency?).",
        epilog="example: radgaze experiment gaze-ablation --cases 64 --seeds 3 --json   |   "
        "radgaze experiment learning-curve --png curve.png --work /tmp/lc --log /tmp/lc.jsonl",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("name", choices=("gaze-ablation", "learning-curve"), help="which experiment")
    p.add_argument("--cases", type=int, default=64, help="gaze-ablation: synthetic training cases")
    p.add_argument("--test-cases", type=int, default=None, help="held-out synthetic cases (default: cases/2; "
                   "learning-curve: the preset's)")  # fmt: skip
    p.add_argument("--seeds", type=int, default=3, help="training seeds per variant")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (gaze-ablation: 6; learning-curve: "
                   "the preset's minimum)")  # fmt: skip
    p.add_argument("--ratios", default="0,0.01,0.05,0.1,0.5", help="gaze-ablation: gaze ratios besides 1.0")
    p.add_argument(
        "--only", action="append", default=None, help="gaze-ablation: only this variant (repeatable)"
    )
    p.add_argument("--sizes", default=None, help="learning-curve: training set sizes, e.g. 64,256,1024 "
                   "(default: the preset's)")  # fmt: skip
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="learning-curve preset: cpu = the "
                   "tiny encoders at 128 px; cuda = Table-IV scale (370/1110/3700 cases, the paper config)")  # fmt: skip
    p.add_argument("--image-size", type=int, default=None, help="learning-curve: encoder input px")
    p.add_argument(
        "--min-steps", type=int, default=None, help="learning-curve: optimiser steps per run at least"
    )
    p.add_argument("--png", default="learning-curve.png", help="learning-curve: where to write the plot")
    p.add_argument("--first-seed", type=int, default=0, help="learning-curve: seeds first-seed ... (run a curve "
                   "in parts, then --from-log on the joined logs)")  # fmt: skip
    p.add_argument("--from-log", default=None, metavar="JSONL", help="learning-curve: no training; the table "
                   "and plot of the runs in this --log file (with --work: its test/ set for the baselines)")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--work", default=None, help="working folder (default: a temporary one, removed)")
    p.add_argument("--log", default=None, help="also append one JSON line per run to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    log_fh = open(a.log, "a") if a.log else None  # noqa: SIM115
    try:
        with tempfile.TemporaryDirectory(prefix=f"radgaze-{a.name}-") as tmp:
            work = Path(a.work) if a.work else Path(tmp)
            if a.name == "learning-curve":
                return _learning_curve(a, work, log_fh)
            return _gaze_ablation(a, work, log_fh)
    finally:
        if log_fh is not None:
            log_fh.close()


def _learning_curve(a: argparse.Namespace, work: Path, log_fh) -> int:
    from dataclasses import replace

    from radgaze.training import learning_curve as lc

    preset = lc.PRESETS[a.device]
    changes = {
        "sizes": tuple(int(x) for x in a.sizes.split(",")) if a.sizes else None,
        "n_test": a.test_cases,
        "epochs": a.epochs,
        "image_size": a.image_size,
        "min_steps": a.min_steps,
    }
    preset = replace(preset, **{k: v for k, v in changes.items() if v is not None})
    if a.seeds < 1 or not preset.sizes or min(preset.sizes) < lc.CASES_PER_FILE or preset.n_test < 12:
        raise ConfigError(
            f"expected --seeds >= 1, --sizes >= {lc.CASES_PER_FILE} and --test-cases >= 12; got {a.seeds}, "
            f"{preset.sizes}, {preset.n_test}"
        )
    if a.from_log:
        result = lc.result_from_log(Path(a.from_log), work / "test", preset)
        result["png"] = str(lc.plot_curve(result, Path(a.png)))
        print(json.dumps(result) if a.json else result["table_markdown"])
        return 0
    if a.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "--device cuda: expected a CUDA GPU, found none (torch.cuda.is_available() is False)"
            )
    result = lc.run_curve(
        preset=preset, n_seeds=a.seeds, work=work, overrides=a.set, log_fh=log_fh, first_seed=a.first_seed
    )
    result["png"] = str(lc.plot_curve(result, Path(a.png)))
    if a.json:
        print(json.dumps(result))
    else:
        print(result["table_markdown"])
        print(
            f"\n{a.seeds} seed(s), {preset.n_test} held-out synthetic single-finding cases, {preset.config} "
            f"preset at {preset.image_size} px; {result['wall_s']} s (load average {result['load_average_1min']}); "
            f"plot: {result['png']}"
        )
    return 0


def _gaze_ablation(a: argparse.Namespace, work: Path, log_fh) -> int:
    epochs = 6 if a.epochs is None else a.epochs
    if a.cases < 4 or a.seeds < 1 or epochs < 1:
        raise ConfigError(
            f"expected --cases >= 4, --seeds >= 1, --epochs >= 1; got {a.cases}, {a.seeds}, {epochs}"
        )
    ratios = tuple(float(r) for r in a.ratios.split(",") if r.strip())
    result = run_ablation(
        n_cases=a.cases,
        n_seeds=a.seeds,
        n_test=a.test_cases or max(4, a.cases // 2),
        epochs=epochs,
        work=work,
        ratios=ratios,
        overrides=a.set,
        only=a.only,
        log_fh=log_fh,
    )
    if a.json:
        print(json.dumps(result))
    else:
        print(result["table_markdown"])
        print(
            f"\n{a.cases} training / {result['n_test_cases']} held-out synthetic cases, {a.seeds} seed(s), "
            f"{epochs} epochs, tiny preset; {result['wall_s']} s. Chance: pointing game "
            f"{result['pointing_game_chance']}, zero-shot majority class {result['zero_shot_majority_baseline']}. "
            f"Patches with gaze > 0 per gazed sentence (EGMA's GL): {result['gl_positive_patch_fraction']}"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
