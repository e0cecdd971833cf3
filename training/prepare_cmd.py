"""``radgaze prepare``: decode session files once into the prepared form (training/prepared.py)."""

from __future__ import annotations

import json
import logging

from radgaze.capture.base.errors import ConfigError
from radgaze.training.prepared import PREPARED_DIR, Variant, patch_grid_side, prepare


def main(argv: list[str] | None = None) -> int:
    import argparse

    from radgaze.training.config import load_config

    p = argparse.ArgumentParser(
        prog="radgaze prepare",
        description="Decode a folder of session files once into the prepared form training reads fast "
        "(letterboxed images, heatmaps on the square and the patch grid, sentences, labels, has-gaze; one "
        "shard of .npy arrays per session file). Run again to refresh: only changed files are redone. "
        "`radgaze train OUT` (or SESSIONS when OUT is SESSIONS/.radgaze-prepared) then reads it.",
        epilog="example: radgaze prepare ./sessions ./sessions/.radgaze-prepared --config paper --size 448",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("sessions", help="folder of session files (searched recursively)")
    p.add_argument("out", nargs="?", default=None, help=f"prepared folder (default: SESSIONS/{PREPARED_DIR})")
    p.add_argument(
        "--config", default="paper", help="training preset or file: gives size, encoder, sentences"
    )
    p.add_argument("--size", type=int, action="append", default=[], help="more image sizes (repeatable)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(a.config)
    mcfg = cfg.model_config()
    sizes = sorted({int(mcfg.image_size), *a.size})
    bad = [s for s in sizes if s < 16]
    if bad:
        raise ConfigError(f"invalid --size {bad}: expected image sizes of at least 16 px")
    variants = [Variant(s, patch_grid_side(mcfg, s), cfg.data.max_sentences) for s in sizes]
    report = prepare(a.sessions, a.out, variants).to_dict()
    report["variants"] = [v.key for v in variants]
    if a.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['out']}: {report['n_cases']} cases from {report['n_files']} session file(s), "
            f"{report['refreshed_files']} refreshed, {report['n_skipped']} skipped, variants {report['variants']}"
        )
    return 0
