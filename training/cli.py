"""``radgaze train SESSIONS --out RUN``: EGMA pretraining over a folder of session files.

Works the same alone or under ``torchrun --nproc_per_node N -m radgaze.training.cli SESSIONS --out RUN`` (DDP).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from radgaze.capture.base.errors import ConfigError, RadgazeError
from radgaze.capture.base.helpformat import DefaultsOnceFormatter
from radgaze.capture.store.case_image import add_images_option, use_image_dirs
from radgaze.training.config import load_config

LOSSES = ("clip", "mlce", "filip", "egf", "egm")  # radgaze.model.config.LOSS_NAMES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze train",
        description="Train EGMA (CLIP + eye-gaze guided fine-grained alignment and mapping) on every "
        "usable case "
        "in a folder of session files. Writes RUN/config.json, metrics.jsonl, checkpoints/{last,best}, "
        "report.json and eval.json. Damaged session files are skipped and counted in report.json.",
        epilog="example: radgaze train ./sessions --out runs/tiny --config tiny --epochs 2 "
        "(into an existing run: add --resume or --overwrite)",
        formatter_class=DefaultsOnceFormatter,
    )
    _add_run_options(p)
    _add_output_options(p)
    return p


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """What to train on, into where, with which config and overrides."""
    p.add_argument(
        "sessions",
        help="folder of session files (searched recursively; its .radgaze-prepared is used when present) "
        "or a prepared folder (radgaze prepare)",
    )
    p.add_argument("--out", required=True, help="run directory")
    add_images_option(p)
    p.add_argument("--config", default="paper", help="preset (tiny, paper) or a TOML/JSON file")
    p.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    p.add_argument(
        "--batch-size", type=int, default=None, help="override the config's per-process batch size"
    )
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default=None, help="override the config's device"
    )
    p.add_argument(
        "--gaze-ratio", type=float, default=None, help="fraction of cases that keep their gaze (0..1)"
    )
    p.add_argument("--losses", default=None, help=f"comma-separated subset of {','.join(LOSSES)}")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument(
        "--init",
        default=None,
        metavar="PATH",
        help="initialise from a MedCLIP, CLIP, GLoRIA, MGCA or radgaze checkpoint (file or directory); "
        "missing/unexpected keys go to RUN/init.json (config key: init)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any config override, e.g. optim.lr=1e-4 (repeatable)",
    )


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """An existing run (resume/overwrite) and what the command prints."""
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an --out that already holds a run (its checkpoints and logs are removed)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the run summary as one JSON line (for programs)"
    )
    p.add_argument(
        "--progress-json",
        default=None,
        metavar="FILE|-",
        help='JSON progress lines {"step","total","loss","eta_s"} (+ a final {"done": true}) to a '
        "file or - for stdout",
    )
    p.add_argument(
        "--no-bar", action="store_true", help="no progress bar (default: a bar when stderr is a tty)"
    )
    p.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)


def overrides_from_args(a: argparse.Namespace) -> list[str]:
    over = list(a.set)
    if a.epochs is not None:
        over.append(f"epochs={a.epochs}")
    if a.batch_size is not None:
        over.append(f"batch_size={a.batch_size}")
    if a.device is not None:
        over.append(f'device="{a.device}"')
    if a.gaze_ratio is not None:
        over.append(f"data.gaze_ratio={a.gaze_ratio}")
    if a.seed is not None:
        over.append(f"seed={a.seed}")
    if a.init is not None:
        over.append(f"init={json.dumps(os.path.abspath(a.init))}")
    if a.losses is not None:
        names = [s.strip() for s in a.losses.split(",") if s.strip()]
        bad = [n for n in names if n not in LOSSES]
        if bad or not names:
            raise ConfigError(f"invalid --losses {a.losses!r}: expected a comma-separated subset of {LOSSES}")
        over.append("model.loss.losses=" + json.dumps(names))
    return over


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    use_image_dirs(a.images)  # moved images: looked for there, in this process and its workers
    from radgaze.training.console import setup_phase_logging

    setup_phase_logging()  # phase lines on stderr (model build, indexing, evaluation), warnings loudly
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    from radgaze.training.runs import check_run_dir

    try:
        if os.environ.get("RANK", "0") == "0":
            check_run_dir(a.out, resume=a.resume, overwrite=a.overwrite)
        if not os.path.exists(a.sessions):  # before the model is built: fail in a second, not in ten
            raise ConfigError(f"expected a folder of session files, got {a.sessions!r} (does not exist)")
        cfg = load_config(a.config, overrides_from_args(a))
        logging.getLogger("radgaze.training.cli").info("loading the trainer (torch, timm, transformers) …")
        from radgaze.training.trainer import train

        report = train(
            cfg,
            a.sessions,
            a.out,
            resume=a.resume,
            progress_json=a.progress_json,
            show_bar=False if a.no_bar else None,
            stop_after_steps=a.stop_after_steps,
        )
    except RadgazeError as exc:
        if a.progress_json:
            _emit_error(a.progress_json, str(exc))
        raise
    if a.progress_json != "-" and os.environ.get("RANK", "0") == "0":  # one summary under torchrun
        summary = {k: report.get(k) for k in ("run", "finished", "steps", "total_steps", "wall_s")}
        summary["n_skipped"] = report["data"]["n_skipped"]
        print(json.dumps(summary) if a.json else summary_text(report))
    return 0


def summary_text(report: dict) -> str:
    """The run for people: what was trained on, how it ended, and its evaluation (3 significant digits)."""
    from radgaze.training.console import table

    d = report["data"]
    rows = [
        ("finished", report.get("finished")),
        ("steps", f"{report.get('steps')}/{report.get('total_steps')}"),
        ("epochs", report.get("epochs")),
        ("training cases", d.get("n_train")),
        ("validation cases", d.get("n_val")),
        ("skipped files", d.get("n_skipped_files")),  # unreadable session files
        ("skipped cases", d.get("n_skipped_cases")),  # cases of readable files (no sentences, image missing…)
        ("final loss", (report.get("final_terms") or {}).get("loss")),
        ("best select metric", report.get("best_metric")),
        ("wall time (s)", report.get("wall_s")),
    ]
    lines = [table(rows, title=f"run {report['run']}")]
    ev = report.get("eval")
    if ev:
        from radgaze.training.evaluate import result_table

        lines.append(result_table(ev))
    return "\n".join(lines)


def _emit_error(target: str, message: str) -> None:
    line = json.dumps({"done": True, "ok": False, "error": message}) + "\n"
    if target == "-":
        sys.stdout.write(line)
        sys.stdout.flush()
    else:
        with open(target, "a") as fh:
            fh.write(line)


if __name__ == "__main__":
    sys.exit(main())
