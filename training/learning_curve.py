"""``radgaze experiment learning-curve``: does gaze improve sample efficiency? (EGMA's central claim.)

The same tiny encoders are trained on nested subsets (64, 256, 1024, ... cases) of one pool of synthetic
single-finding studies (``radgaze.capture.synth`` with ``max_findings=1``, a sixth of them normal: six balanced
classes whose look, size and place vary, each named with its place in the report) and evaluated on one
fixed held-out synthetic set (another synth seed), for three variants:

* CLIP only .......... the global image-report loss (no gaze);
* EGF+EGM ............ CLIP + EGMA's gaze-guided fine-grained alignment and cross-modality mapping, gaze on
                        every training case;
* EGF+EGM gaze 10 % .. the same with gaze on a tenth of the training cases.

Metrics on the held-out set (mean ± sd over seeds):

* zero-shot accuracy and macro F1 over the six classes (majority-class and chance baselines). The class
  prompts are reports: ten per class written by the synthetic report generator for a study with just that
  finding (radgaze.capture.synth.report.class_prompt_reports; no image, no case of any session). The
  CheXpert-style sentence prompts ("there is pneumothorax.") are kept as a column ("sentence prompts"): every
  synthetic report negates the findings it does not have ("No pneumothorax."), so a bare finding sentence
  sits nearest the reports of the *other* classes and those prompts test negation more than alignment.
  Image->text retrieval P@1 over the class prompts equals zero-shot accuracy by construction (the class
  score is the best prompt's), so it is not reported twice;
* text->image P@1 over the class prompts (chance: the class frequency);
* report retrieval R@1 both ways, each case's own report as the one relevant text (its own query set, as
  the paper's 8x200 protocol; chance 1 / number of test cases): it needs the finding AND its place;
* pointing game (chance: the mean target area) and CC of the model's sentence attention vs the heatmap.

Epochs per size: at least ``--epochs``, and enough that every run makes ``--min-steps`` optimiser steps
(small subsets otherwise stop before the encoders learn anything).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ConfigError

CURVE_METRICS = (
    ("zero_shot_accuracy", "ZS acc (= I2T P@1)"),
    ("zero_shot_macro_f1", "ZS macro F1"),
    ("zero_shot_accuracy_label_prompts", "ZS acc, sentence prompts"),
    ("retrieval_t2i_p_at_1", "T2I P@1"),
    ("report_retrieval_i2t_r_at_1", "report I2T R@1"),
    ("report_retrieval_t2i_r_at_1", "report T2I R@1"),
    ("pointing_game", "pointing game"),
    ("attention_cc", "attention CC"),
)
CASES_PER_FILE = 8
N_CLASSES = 6  # five synthetic findings + normal
P_NORMAL = 1.0 / N_CLASSES
PROMPTS_PER_CLASS = 10  # report prompts per class (class_prompt_reports)
PROMPT_SEED = 20_000  # apart from the pool's and the held-out set's seeds


@dataclass(frozen=True)
class CurveVariant:
    name: str
    losses: tuple[str, ...]
    gaze_ratio: float


CURVE_VARIANTS = (
    CurveVariant("CLIP only", ("clip",), 1.0),
    CurveVariant("EGF+EGM", ("clip", "egf", "egm"), 1.0),
    CurveVariant("EGF+EGM gaze 10%", ("clip", "egf", "egm"), 0.1),
)


@dataclass(frozen=True)
class CurvePreset:
    """What one learning curve runs: sizes, the config preset and the images (``--device`` picks one)."""

    sizes: tuple[int, ...]
    config: str
    image_size: int  # encoder input, px
    synth_px: int  # synthetic radiograph side, px
    n_test: int
    epochs: int
    min_steps: int
    device: str
    overrides: tuple[str, ...] = ()  # config overrides of every run (before --set's)

    def batch_size(self) -> int:
        from radgaze.training.config import load_config

        return load_config(self.config, list(self.overrides)).batch_size


PRESETS = {
    # A 2-core CPU, measured (README "learning curve"): the tiny encoders at 64 px (a 4x4 patch grid: sides
    # and zones still apart) learn global alignment in ~5k samples, while 128 px costs ~4x a sample. Every run
    # makes at least 320 steps of 16 (64 cases: 80 epochs; 1024: 5 epochs), so small sets are not
    # starved of steps (the old 32-128 steps of 8 at 128 px left the CLIP loss at ln 8: nothing learned).
    # Batch 16 (not 8): more in-batch negatives per step and ~1.5x the samples/s; lr 5e-4 for it.
    "cpu": CurvePreset(
        (64, 256, 1024), "tiny", 64, 256, 192, 5, 320, "cpu", ("batch_size=16", "optim.lr=5e-4")
    ),
    # a GPU: Table-IV scale, EGMA's config (Swin-T + Bio_ClinicalBERT, 224 px, 50 epochs)
    "cuda": CurvePreset((370, 1110, 3700), "paper", 224, 512, 800, 50, 0, "cuda"),
}


def epochs_for(n_cases: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """At least ``epochs``, and enough for ``min_steps`` optimiser steps on ``n_cases`` cases."""
    steps_per_epoch = max(1, math.ceil(n_cases / batch_size))
    return max(epochs, math.ceil(min_steps / steps_per_epoch))


# ------------------------------------------------------------------------------------------------ data
def make_pool(work: Path, n_max: int, n_test: int, synth_px: int, seed: int) -> tuple[Path, Path]:
    """The training pool (``n_max`` single-finding cases) and the held-out set (another seed). A folder
    already holding sessions (an earlier ``--work``) is reused as it is."""
    from radgaze.capture.synth import write_synthetic_sessions

    pool, test = work / "pool", work / "test"
    for d, n, s in ((pool, n_max, seed), (test, n_test, seed + 10_000)):
        if not any(d.glob("*.h5")):
            d.mkdir(parents=True, exist_ok=True)
            write_synthetic_sessions(
                d, n_cases=n, seed=s, image_size=synth_px, cases_per_file=CASES_PER_FILE,
                p_normal=P_NORMAL, max_findings=1,
            )  # fmt: skip
    return pool, test


def subset_folder(pool: Path, work: Path, n_cases: int) -> Path:
    """A folder of links to the first ``n_cases`` cases of the pool (whole session files: sizes are
    multiples of CASES_PER_FILE), so that every size is a subset of the next (a nested learning curve)."""
    if n_cases % CASES_PER_FILE:
        raise ConfigError(f"--sizes: expected multiples of {CASES_PER_FILE}, got {n_cases}")
    out = work / f"train_{n_cases}"
    files = sorted(pool.glob("*.h5"))[: n_cases // CASES_PER_FILE]
    if len(files) * CASES_PER_FILE < n_cases:
        raise ConfigError(f"the pool {pool} holds fewer than {n_cases} cases")
    out.mkdir(parents=True, exist_ok=True)
    from radgaze.capture.store.reader import SessionReader

    for f in files:
        _link(f, out / f.name)
        with SessionReader(f) as r:
            for case in r.cases():
                _link(pool / case.image.path, out / case.image.path)
    return out


def _link(src: Path, dst: Path) -> None:
    if not dst.exists():
        dst.symlink_to(src.resolve())


# -------------------------------------------------------------------------------------------- training
def run_config(variant: CurveVariant, seed: int, n_cases: int, preset: CurvePreset, overrides: list[str]):
    """The TrainConfig of one run: the preset's config and overrides, epochs for its step budget, the
    variant's losses and gaze ratio, no validation split (the held-out set is separate, so every case of the
    subset trains), then ``overrides`` (--set) last."""
    from radgaze.training.config import load_config

    base = load_config(preset.config, [*preset.overrides, *overrides])
    epochs = epochs_for(n_cases, base.batch_size, preset.epochs, preset.min_steps)
    return load_config(
        preset.config,
        [
            *preset.overrides,
            f"epochs={epochs}",
            f"seed={seed}",
            f"device={preset.device}",
            f"model.image_size={preset.image_size}",
            f"data.gaze_ratio={variant.gaze_ratio}",
            "eval_at_end=false",
            "data.val_fraction=0",
            "model.loss.losses=" + json.dumps(list(variant.losses)),
            *overrides,
        ],
    )


def train_and_evaluate(
    variant: CurveVariant, seed: int, n_cases: int, train_dir: Path, test_dir: Path, work: Path,
    preset: CurvePreset, cache: dict, overrides: list[str],
) -> dict:  # fmt: skip
    """One run: train ``variant`` on ``train_dir`` and evaluate its last checkpoint on ``test_dir``."""
    from radgaze.training.evaluate import evaluate_run
    from radgaze.training.trainer import train

    cfg = run_config(variant, seed, n_cases, preset, overrides)
    epochs = cfg.epochs
    slug = variant.name.replace(" ", "_").replace("%", "pct").replace("+", "-")
    run_dir = work / "runs" / f"n{n_cases}_{slug}_s{seed}"
    t0 = time.perf_counter()
    rep = train(cfg, train_dir, run_dir, show_bar=False, sample_cache=cache)
    res = evaluate_run(
        run_dir, test_dir, device=preset.device, checkpoint="last", sample_cache=cache,
        max_attention_cases=64, prompts=class_prompts(),
    )  # fmt: skip
    res.update(
        train_s=round(time.perf_counter() - t0, 1),
        epochs=epochs,
        n_with_gaze=rep["data"]["n_with_gaze"],
        final_loss=rep["final_terms"].get("loss"),
        **clip_loss_start_end(run_dir / "metrics.jsonl"),
    )
    return res


def class_prompts() -> dict[str, list[list[str]]]:
    """The zero-shot prompts of the curve: PROMPTS_PER_CLASS generated reports per class (module docstring)."""
    from radgaze.capture.synth.phantom import FINDING_LABELS
    from radgaze.capture.synth.report import class_prompt_reports

    labels = ("normal", *FINDING_LABELS)
    return {
        lab: class_prompt_reports(lab, PROMPTS_PER_CLASS, PROMPT_SEED + k) for k, lab in enumerate(labels)
    }


def clip_loss_start_end(metrics_jsonl: Path, n: int = 10) -> dict:
    """Mean CLIP loss of a run's first and last ``n`` logged steps (None where it has no CLIP term): did the
    global alignment move at all? (ln(batch) is the loss of no alignment.)"""
    if not metrics_jsonl.is_file():
        return {"clip_loss_first": None, "clip_loss_last": None}
    lines = [json.loads(x) for x in metrics_jsonl.read_text().splitlines() if x.strip()]
    vals = [x["clip_loss"] for x in lines if x.get("clip_loss") is not None]
    if not vals:
        return {"clip_loss_first": None, "clip_loss_last": None}
    return {"clip_loss_first": float(np.mean(vals[:n])), "clip_loss_last": float(np.mean(vals[-n:]))}


def summarise(per_seed: list[dict]) -> dict:
    """Mean, sd (ddof=1) and the values of every curve metric over seeds."""
    out = {}
    for key, _ in CURVE_METRICS:
        vals = [r.get(key) for r in per_seed]
        ok = [float(v) for v in vals if v is not None and not math.isnan(float(v))]
        out[key] = {
            "mean": float(np.mean(ok)) if ok else None,
            "sd": float(np.std(ok, ddof=1)) if len(ok) > 1 else 0.0 if ok else None,
            "values": vals,
        }
    return out


def baselines(res: dict, n_test: int) -> dict:
    """What no learning scores on the held-out set (properties of the set, not of a model)."""
    return {
        "zero_shot_majority_class": res.get("zero_shot_majority_baseline"),
        "zero_shot_chance": 1.0 / max(1, len(res.get("classes") or [])),
        "t2i_p_at_1_chance": _class_frequency(res),
        "report_retrieval_chance": 1.0 / n_test,
        "pointing_game_chance": res.get("pointing_game_chance"),
        "attention_cc_chance": 0.0,
    }


def _class_frequency(res: dict) -> float:
    """Expected text->image P@1 of a random ranking: a prompt's class frequency among the test images,
    averaged over classes (each has the same number of prompts) = 1 / number of classes."""
    return 1.0 / max(1, len(res.get("classes") or []))


def run_curve(
    *, preset: CurvePreset, n_seeds: int, work: Path, data_seed: int = 11, overrides: list[str] | None = None,
    log_fh=None, first_seed: int = 0,
) -> dict:  # fmt: skip
    """Every size x variant x seed (``first_seed`` ... ``first_seed + n_seeds - 1``: a curve can be run in
    parts and tabulated from the joined logs); rows in the order of the table."""
    t0 = time.perf_counter()
    pool, test = make_pool(work, max(preset.sizes), preset.n_test, preset.synth_px, data_seed)
    cache: dict = {}
    rows, base = [], None
    for n in preset.sizes:
        train_dir = subset_folder(pool, work, n)
        for v in CURVE_VARIANTS:
            per_seed = []
            for seed in range(first_seed, first_seed + n_seeds):
                res = train_and_evaluate(v, seed, n, train_dir, test, work, preset, cache, overrides or [])
                base = base or baselines(res, preset.n_test)
                per_seed.append(res)
                if log_fh is not None:
                    brief = {k: res.get(k) for k, _ in CURVE_METRICS}
                    line = {"n_cases": n, "variant": v.name, "seed": seed, **brief, "train_s": res["train_s"],
                            "pointing_game_chance": res.get("pointing_game_chance"),
                            "clip_loss_first": res["clip_loss_first"], "clip_loss_last": res["clip_loss_last"],
                            "load_average_1min": round(os.getloadavg()[0], 2)}  # fmt: skip
                    log_fh.write(json.dumps(line) + "\n")
                    log_fh.flush()
            rows.append(
                {
                    "n_cases": n,
                    "variant": v.name,
                    "losses": list(v.losses),
                    "gaze_ratio": v.gaze_ratio,
                    "epochs": per_seed[0]["epochs"],
                    "n_with_gaze": per_seed[0]["n_with_gaze"],
                    "train_s_mean": float(np.mean([r["train_s"] for r in per_seed])),
                    "metrics": summarise(per_seed),
                }
            )
    return {
        "experiment": "learning-curve",
        "preset": preset.__dict__,
        "n_seeds": n_seeds,
        "n_test_cases": preset.n_test,
        "overrides": overrides or [],
        "baselines": base,
        "rows": rows,
        "table_markdown": format_curve_table(rows, base),
        "wall_s": round(time.perf_counter() - t0, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def result_from_log(log: Path, test_dir: Path, preset: CurvePreset) -> dict:
    """The result of a curve from its ``--log`` lines (one per run), e.g. of a run stopped before the end:
    rows for the (size, variant) pairs that have runs; the baselines that are properties of the test set's
    labels (majority class, chance) from ``test_dir``; the pointing-game chance from the lines that carry it
    (else None)."""
    from radgaze.training.data import build_index

    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    if not lines:
        raise ConfigError(f"{log}: expected JSON lines of learning-curve runs, found none")
    rows, batch = [], preset.batch_size()
    for n in sorted({x["n_cases"] for x in lines}):
        for v in CURVE_VARIANTS:
            runs = [x for x in lines if x["n_cases"] == n and x["variant"] == v.name]
            if runs:
                rows.append({"n_cases": n, "variant": v.name, "epochs": epochs_for(
                    n, batch, preset.epochs, preset.min_steps), "n_seeds": len(runs), "metrics": summarise(runs)})  # fmt: skip
    labels = [c.labels[0] if len(c.labels) == 1 else "normal" for c in build_index(test_dir).cases]
    counts = {lab: labels.count(lab) for lab in set(labels)}
    base = {
        "zero_shot_majority_class": max(counts.values()) / len(labels),
        "zero_shot_chance": 1.0 / len(counts),
        "t2i_p_at_1_chance": 1.0 / len(counts),
        "report_retrieval_chance": 1.0 / len(labels),
        "pointing_game_chance": next(
            (x["pointing_game_chance"] for x in lines if x.get("pointing_game_chance")), None
        ),
        "attention_cc_chance": 0.0,
    }
    return {
        "experiment": "learning-curve",
        "preset": preset.__dict__,
        "n_seeds": max(r["n_seeds"] for r in rows),
        "n_test_cases": len(labels),
        "baselines": base,
        "rows": rows,
        "table_markdown": format_curve_table(rows, base),
        "from_log": str(log),
    }


# -------------------------------------------------------------------------------------------- reporting
def format_curve_table(rows: list[dict], base: dict | None) -> str:
    """Markdown: one row per (cases, variant), 'mean ± sd' per metric (the value alone for one seed: it has
    no sd), then the no-learning baselines."""
    head = "| cases | variant | epochs | seeds | " + " | ".join(label for _, label in CURVE_METRICS) + " |"
    lines = [head, "|" + "---|" * (4 + len(CURVE_METRICS))]
    for r in rows:
        n_seeds = r.get("n_seeds", len(r["metrics"][CURVE_METRICS[0][0]]["values"]))
        cells = [_cell(r["metrics"][k], n_seeds) for k, _ in CURVE_METRICS]
        lines.append(
            f"| {r['n_cases']} | {r['variant']} | {r['epochs']} | {n_seeds} | " + " | ".join(cells) + " |"
        )
    if base:
        b = [
            f"{base['zero_shot_majority_class']:.3f} (majority) / {base['zero_shot_chance']:.3f} (chance)",
            f"{base['zero_shot_chance']:.3f} (chance)",
            f"{base['zero_shot_majority_class']:.3f} (majority)",
            f"{base['t2i_p_at_1_chance']:.3f}",
            f"{base['report_retrieval_chance']:.3f}",
            f"{base['report_retrieval_chance']:.3f}",
            "n/a" if base["pointing_game_chance"] is None else f"{base['pointing_game_chance']:.3f}",
            "0",
        ]
        lines.append("| — | no learning (baseline) | — | — | " + " | ".join(b) + " |")
    return "\n".join(lines)


def _seeds_text(rows: list[dict], n_seeds: int) -> str:
    """'3 seeds', or '1-3 seeds' for a curve whose rows hold different numbers of seeds (a stopped one)."""
    counts = sorted({r.get("n_seeds", n_seeds) for r in rows} or {n_seeds})
    lo, hi = counts[0], counts[-1]
    return f"{lo}–{hi} seeds" if lo != hi else f"{hi} seed{'s' if hi > 1 else ''}"


def _cell(m: dict, n_seeds: int) -> str:
    if m["mean"] is None:
        return "n/a"
    return f"{m['mean']:.3f}" if n_seeds == 1 else f"{m['mean']:.3f} ± {m['sd']:.3f}"


def _baseline_for(key: str, base: dict) -> float | None:
    return {
        "zero_shot_accuracy": base["zero_shot_majority_class"],
        "zero_shot_accuracy_label_prompts": base["zero_shot_majority_class"],
        "zero_shot_macro_f1": base["zero_shot_chance"],
        "retrieval_t2i_p_at_1": base["t2i_p_at_1_chance"],
        "report_retrieval_i2t_r_at_1": base["report_retrieval_chance"],
        "report_retrieval_t2i_r_at_1": base["report_retrieval_chance"],
        "pointing_game": base["pointing_game_chance"],
        "attention_cc": 0.0,
    }[key]


def plot_curve(result: dict, png: Path) -> Path:
    """One panel per metric: mean ± sd over seeds against training cases (log scale), one line per variant,
    the no-learning baseline dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, base = result["rows"], result["baselines"]
    fig, axes = plt.subplots(3, 3, figsize=(13, 10.5), constrained_layout=True)  # 8 metrics + the legend
    colours = {"CLIP only": "#444444", "EGF+EGM": "#c0392b", "EGF+EGM gaze 10%": "#2e86c1"}
    for ax, (key, label) in zip(axes.flat, CURVE_METRICS):
        for v in CURVE_VARIANTS:
            pts = [(r["n_cases"], r["metrics"][key]) for r in rows if r["variant"] == v.name]
            pts = [(n, m) for n, m in pts if m["mean"] is not None]
            if not pts:
                continue
            n = np.array([p[0] for p in pts])
            mean = np.array([p[1]["mean"] for p in pts])
            sd = np.array([p[1]["sd"] for p in pts])
            ax.errorbar(n, mean, yerr=sd, marker="o", capsize=3, color=colours.get(v.name), label=v.name)
        ref = _baseline_for(key, base) if base else None
        if ref is not None:
            ax.axhline(ref, ls="--", color="#888888", lw=1, label="no learning")
        ax.set_xscale("log", base=2)
        sizes = sorted({r["n_cases"] for r in rows})
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("training cases")
        ax.grid(alpha=0.3)
    axes.flat[-1].axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    axes.flat[-1].legend(handles, labels, loc="center", fontsize=11, frameon=False)
    p = result["preset"]
    fig.suptitle(
        f"Learning curve on synthetic single-finding studies: {p['config']} preset, {p['image_size']} px, "
        f"{_seeds_text(rows, result['n_seeds'])}, {result['n_test_cases']} held-out cases "
        "(mean ± sd over seeds)",
        fontsize=12,
    )
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png
