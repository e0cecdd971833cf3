"""``radgaze eval``: a run on session files (training/evaluate.py) or, with ``--images``, the paper's
protocols on a labelled image set (training/protocols.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from radgaze.capture.base.errors import ConfigError
from radgaze.model import agreement
from radgaze.training.evaluate import evaluate_run, result_table
from radgaze.training.protocols import PATH_COLUMNS, PROTOCOLS, ProbeSettings, evaluate_images, format_table


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--images" or a.startswith("--images=") for a in argv):  # labelled image sets: protocols.py
        return images_main(argv)
    p = argparse.ArgumentParser(
        prog="radgaze eval",
        description="Evaluate a training run on a folder of sessions: zero-shot accuracy/macro F1, retrieval "
        "P@1/5/10 both ways, pointing game, CC and NSS of model attention vs radiologist sentence heatmaps.",
        epilog="example: radgaze eval runs/tiny ./sessions --json; on labelled image sets (CheXpert 5x200, "
        "RSNA, SIIM ...): radgaze eval RUN --images CSV|DIR --protocol zeroshot|retrieval|linear-probe (see "
        "radgaze eval RUN --images X --help)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run", help="run directory written by radgaze train")
    p.add_argument("sessions", help="folder of session files to evaluate on")
    p.add_argument(
        "--checkpoint",
        default=None,
        choices=("best", "last"),
        help="best or last; unset = the run's model (current.json, else best, else last)",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="device")
    p.add_argument("--max-attention-cases", type=int, default=None, help="cap the cases used for attention")
    p.add_argument("--json", action="store_true", help="print one JSON object (for programs), no phase lines")
    p.add_argument(
        "--sentences-csv",
        type=Path,
        default=None,
        help="also write the attention agreement per sentence as CSV (the table radgaze review --export-csv "
        "writes: most disagreeing first, a mean row last)",
    )
    a = p.parse_args(argv)
    if not a.json:
        from radgaze.training.console import setup_phase_logging

        setup_phase_logging()
    rows: list = []
    result = evaluate_run(
        a.run,
        a.sessions,
        device=a.device,
        checkpoint=a.checkpoint,
        max_attention_cases=a.max_attention_cases,
        rows_out=rows,
    )
    if a.sentences_csv is not None:
        agreement.write_csv(agreement.sort_by_disagreement(rows), a.sentences_csv)
    if a.json:
        print(json.dumps(result))
    else:
        print(result_table(result))
    return 0


def _floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc
    if not vals or not all(0 < v <= 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected fractions in (0, 1], got {text!r}")
    return vals


def _ints(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one seed")
    return vals


def images_parser() -> argparse.ArgumentParser:
    d = ProbeSettings()
    p = argparse.ArgumentParser(
        prog="radgaze eval",
        description="The EGMA paper's protocols on a labelled image set (a CSV with path and label or one-hot "
        "class columns, or a folder per class): zero-shot classification (accuracy, macro F1, AUC), "
        "retrieval (P@1/5/10 both ways) or the linear probe of Table I (AUROC on 1/10/100 % of the training "
        "split). Broken rows are counted and listed, never fatal.",
        epilog="example: radgaze eval runs/paper --images chexpert5x200.csv --protocol zeroshot --json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run", help="run directory written by radgaze train (or a checkpoint directory)")
    p.add_argument("--images", required=True, help="CSV file or folder per class")
    p.add_argument("--protocol", choices=PROTOCOLS, default="zeroshot", help="which evaluation")
    p.add_argument(
        "--prompts",
        default=None,
        help="chexpert5x200, chexpert8x200, rsna, siim or a JSON file (default: chexpert5x200 for zeroshot, "
        "chexpert8x200 for retrieval; linear-probe: the classes found, or these prompt classes if given)",
    )
    p.add_argument("--path-column", default=None, help=f"CSV path column (default: first of {PATH_COLUMNS})")
    p.add_argument(
        "--label-column", default=None, help="CSV label column (default: label; else one-hot columns)"
    )
    p.add_argument(
        "--root", default=None, help="folder that relative CSV paths start from (default: the CSV's)"
    )
    p.add_argument("--checkpoint", default="best", choices=("best", "last"), help="which checkpoint of RUN")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="device")
    p.add_argument("--fractions", type=_floats, default=d.fractions, help="linear probe: training fractions")
    p.add_argument("--seeds", type=_ints, default=d.seeds, help="linear probe: head seeds")
    p.add_argument("--epochs", type=int, default=d.epochs, help="linear probe: epochs (paper: 30)")
    p.add_argument("--lr", type=float, default=d.lr, help="linear probe: learning rate (paper: 5e-7)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="linear probe (paper: 1e-4)")
    p.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs, help="linear probe (paper: 6)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="linear probe: head batch size")
    p.add_argument("--test-fraction", type=float, default=d.test_fraction, help="hold-out without a split")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--no-bar", action="store_true", help="no progress bar (default: a bar when stderr is a tty)"
    )
    return p


def images_main(argv: list[str] | None = None) -> int:
    a = images_parser().parse_args(argv)
    probe = ProbeSettings(
        fractions=a.fractions,
        seeds=a.seeds,
        epochs=a.epochs,
        lr=a.lr,
        weight_decay=a.weight_decay,
        warmup_epochs=a.warmup_epochs,
        batch_size=a.batch_size,
        test_fraction=a.test_fraction,
    )
    if probe.epochs < 1 or probe.batch_size < 1 or not 0 < probe.test_fraction < 1 or probe.lr <= 0:
        raise ConfigError(
            "linear probe: expected epochs >= 1, batch size >= 1, lr > 0 and a test fraction in (0, 1), got "
            f"{probe.epochs}, {probe.batch_size}, {probe.lr}, {probe.test_fraction}"
        )
    result = evaluate_images(
        a.run,
        a.images,
        a.protocol,
        prompts=a.prompts,
        device=a.device,
        checkpoint=a.checkpoint,
        probe=probe,
        bar=not a.no_bar and sys.stderr.isatty(),
        path_column=a.path_column,
        label_column=a.label_column,
        root=a.root,
    )
    print(json.dumps(result) if a.json else format_table(result))
    return 0
