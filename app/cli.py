"""The one ``radgaze`` command: a thin dispatcher over one module per job.

Each job lives in the package that owns it and exposes ``main(argv: list[str] | None = None) -> int``.
Modules are imported only when their subcommand runs, so ``radgaze inspect`` never loads Qt or torch.
This module itself is Qt-free.
"""

from __future__ import annotations

import importlib
import os
import sys

from radgaze.capture.base.errors import RadgazeError

# subcommand -> (module with main(argv), one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "view": (
        "radgaze.app.view_cmd",
        "open images (DICOM/PNG/JPEG) or sessions in the viewer, nothing recorded",
    ),
    "demo": ("radgaze.app.demo", "open the viewer on synthetic cases with a simulated tracker and dictation"),
    "record": ("radgaze.app.record_cmd", "record a reading (window, or --headless)"),
    "annotate": (
        "radgaze.app.annotate.window",
        "annotate recorded cases: labels with certainty, ellipses, chest box (REFLACX protocol)",
    ),
    "replay": ("radgaze.app.replay", "replay a session: gaze, words, sentences, heatmaps, audio"),
    "review": ("radgaze.app.review", "model vs radiologist attention, side by side, with agreement metrics"),
    "inspect": (
        "radgaze.capture.store.inspect_cmd",
        "print metadata of an image (DICOM/PNG/JPEG) or a session file",
    ),
    "synth": (
        "radgaze.capture.synth.cli",
        "generate synthetic reading sessions (phantom images, gaze, dictation)",
    ),
    "sim-tracker": (
        "radgaze.capture.live.sim_tracker_cmd",
        "publish a simulated eye tracker as a real LSL stream",
    ),
    "pupil-bridge": (
        "radgaze.capture.live.gaze.pupil_bridge",
        "Pupil Core gaze mapped onto the screen (scene markers) and published as screen gaze on LSL",
    ),
    "neon-bridge": (
        "radgaze.capture.live.gaze.neon_bridge",
        "Pupil Labs Neon gaze mapped onto the screen (scene markers) and published as screen gaze on LSL",
    ),
    "import": (
        "radgaze.capture.importers.cli",
        "convert REFLACX / EGD-CXR / XDF recordings to session files",
    ),
    "retranscribe": (
        "radgaze.capture.live.retranscribe_cmd",
        "re-recognise recorded cases from their audio with another Whisper model, stored beside the live words",
    ),
    "export": (
        "radgaze.capture.exporters.cli",
        "write sessions in REFLACX's layout (labels, ellipses, fixations, words, gaze)",
    ),
    "prepare": (
        "radgaze.training.prepare_cmd",
        "decode sessions once into the fast prepared form training reads",
    ),
    "train": ("radgaze.training.cli", "EGMA pretraining over a folder of sessions"),
    "eval": ("radgaze.training.eval_cmd", "evaluate a run: zero-shot, retrieval, attention agreement"),
    "experiment": ("radgaze.training.experiment_cmd", "experiments: gaze-ablation | learning-curve"),
    "analyze": (
        "radgaze.capture.analysis.cli",
        "analyses: second-look (the trial per arm: added findings, sensitivity, FP/image)",
    ),
    "bench": ("radgaze.app.bench_cmd", "benchmarks: capture | viewer | model | store | data | train"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: radgaze <command> [options]   (radgaze <command> --help for details)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "example: radgaze synth ./sessions --cases 4 --seed 1 && radgaze inspect ./sessions/*.h5"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from radgaze.capture import __version__

        print(f"radgaze {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"radgaze: unknown command {name!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except RadgazeError as exc:
        print(f"radgaze {name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `radgaze inspect … | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # cannot write: a read-only folder, a full disk, a file where a folder goes
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"radgaze {name}: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
