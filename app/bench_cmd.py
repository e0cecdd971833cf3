"""``radgaze bench TARGET``: dispatch to the benchmark that lives beside the code it measures."""

from __future__ import annotations

import importlib
import sys

TARGETS: dict[str, tuple[str, str]] = {
    "capture": ("radgaze.capture.bench.capture", "LSL ingest rate/latency, heatmap latency and throughput"),
    "asr": (
        "radgaze.capture.bench.asr",
        "live dictation vs whole-file decode: WER, invented findings, sentences, onsets, RTF, commit latency",
    ),
    "viewer": (
        "radgaze.app.bench_viewer",
        "window/level update, gaze overlay rate, frame time idle vs during ASR",
    ),
    "model": ("radgaze.model.bench", "loss parity and speed-up vs loop; GPU train-step throughput and MFU"),
    "second-look": (
        "radgaze.app.bench_second_look",
        "Space -> second-look overlay drawn in the record window",
    ),
    "store": ("radgaze.capture.bench.store", "session file size per minute of reading and write overhead"),
    "data": (
        "radgaze.training.bench_data",
        "training items/s from sessions vs the prepared form, per process and with N workers",
    ),
    "train": (
        "radgaze.training.bench",
        "the paper config on synthetic data: samples/s, MFU, time for 50 epochs",
    ),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: radgaze bench {" + ",".join(TARGETS) + "} [--json] [options]\n")
        for name, (_, summary) in TARGETS.items():
            print(f"  {name:<8} {summary}")
        print("\nexample: radgaze bench capture --json")
        return 0
    if argv[0] not in TARGETS:
        print(
            f"radgaze bench: unknown target {argv[0]!r}; expected one of {', '.join(TARGETS)}",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(TARGETS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)
