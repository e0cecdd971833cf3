"""``radgaze experiment gaze-ablation | learning-curve`` (training/experiment.py,
training/learning_curve.py)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from radgaze.capture.base.errors import ConfigError
from radgaze.training.experiment import run_ablation


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
    return _report(
        result,
        a.json,
        f"{a.seeds} seed(s), {preset.n_test} held-out synthetic single-finding cases, {preset.config} "
        f"preset at {preset.image_size} px; {result['wall_s']} s (load average {result['load_average_1min']}); "
        f"plot: {result['png']}",
    )


def _report(result: dict, as_json: bool, footer: str) -> int:
    """One JSON object, or the result's table and a line saying what it was measured on."""
    if as_json:
        print(json.dumps(result))
    else:
        print(result["table_markdown"])
        print(f"\n{footer}")
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
    return _report(
        result,
        a.json,
        f"{a.cases} training / {result['n_test_cases']} held-out synthetic cases, {a.seeds} seed(s), "
        f"{epochs} epochs, tiny preset; {result['wall_s']} s. Chance: pointing game "
        f"{result['pointing_game_chance']}, zero-shot majority class {result['zero_shot_majority_baseline']}. "
        f"Patches with gaze > 0 per gazed sentence (EGMA's GL): {result['gl_positive_patch_fraction']}",
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
