"""Run directories: which checkpoint is "the model of a run", and whether a directory may be trained into.

One rule, used by ``radgaze eval``, ``radgaze review``, the retrain panel and any overlay alike
(:func:`run_checkpoint`):

1. ``RUN/current.json`` when present (written by the app's Retrain when a retrain finishes: the retrained
   checkpoint is the one in use);
2. else ``RUN/checkpoints/best`` (the best epoch by validation loss, else by training loss);
3. else ``RUN/checkpoints/last``;
4. else RUN itself when it is a checkpoint directory.

A caller may ask for ``best`` or ``last`` by name (``radgaze eval --checkpoint last``); then only that one.

The pointer is a plain JSON file (no symlink, works on every file system): ``{"checkpoint": path, "run":
path, "updated_utc": ...}``, replaced atomically.

:func:`check_run_dir` is the guard of ``radgaze train --out RUN``: a directory that already holds a run is
never trained into again unless the caller says ``resume`` (continue it) or ``overwrite`` (start over, after
removing what the old run wrote), so checkpoints and ``metrics.jsonl`` always describe one run.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from radgaze.capture.base.errors import CheckpointError, ConfigError

POINTER_NAME = "current.json"
CHECKPOINT_NAMES = ("best", "last")
# What `radgaze train` writes into a run directory (radgaze.training.trainer module docstring); any of them
# marks the directory as holding a run. `retrain/` holds the app's retrains and is left alone by --overwrite.
RUN_FILES = ("config.json", "metrics.jsonl", "epochs.jsonl", "report.json", "eval.json", POINTER_NAME)
RUN_DIRS = ("checkpoints",)


def is_checkpoint_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a radgaze.model.checkpoint directory (weights and config)."""
    p = Path(path)
    return (p / "config.json").is_file() and (p / "model.safetensors").is_file()


def _pointer_target(run: Path) -> Path:
    pointer = run / POINTER_NAME
    try:
        target = Path(json.loads(pointer.read_text())["checkpoint"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{pointer}: expected JSON with a 'checkpoint' path, got {exc}") from exc
    target = target if target.is_absolute() else run / target
    if not is_checkpoint_dir(target):
        raise CheckpointError(f"{pointer} points to {target}, which is not a checkpoint directory")
    return target


def run_checkpoint(run_dir: str | os.PathLike, which: str | None = None) -> Path:
    """The checkpoint directory that is the model of ``run_dir`` (the rule of the module docstring).

    ``which`` = ``"best"`` / ``"last"`` asks for that checkpoint only. Raises CheckpointError."""
    run = Path(run_dir)
    if which is not None:
        if which not in CHECKPOINT_NAMES:
            raise CheckpointError(f"expected a checkpoint name in {CHECKPOINT_NAMES}, got {which!r}")
        path = run / "checkpoints" / which
        if not is_checkpoint_dir(path):
            raise CheckpointError(f"{run}: expected a checkpoint in checkpoints/{which}, found none")
        return path
    if (run / POINTER_NAME).is_file():
        return _pointer_target(run)
    for candidate in (run / "checkpoints" / "best", run / "checkpoints" / "last", run):
        if is_checkpoint_dir(candidate):
            return candidate
    raise CheckpointError(
        f"expected a run directory (checkpoints/best or checkpoints/last) or a checkpoint directory, got {run}"
    )


def write_pointer(run_dir: str | os.PathLike, checkpoint: str | os.PathLike, *, source_run: str = "") -> Path:
    """Make ``checkpoint`` the one in use for ``run_dir`` (atomic replace of RUN/current.json)."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    body = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "run": source_run,
        "updated_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = run / f".{POINTER_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(tmp, run / POINTER_NAME)
    return run / POINTER_NAME


def run_contents(run_dir: str | os.PathLike) -> list[str]:
    """The names of what a previous run left in ``run_dir`` (empty when it holds no run)."""
    run = Path(run_dir)
    found = [n for n in RUN_FILES if (run / n).is_file()]
    found += [n + "/" for n in RUN_DIRS if (run / n).is_dir() and any((run / n).iterdir())]
    return found


def check_run_dir(run_dir: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a directory holding a run unless ``resume`` or ``overwrite``; with ``overwrite``
    remove what the old run wrote. Raises ConfigError with one line naming what is there."""
    if resume and overwrite:
        raise ConfigError("expected one of --resume (continue the run) or --overwrite (start over), got both")
    found = run_contents(run_dir)
    if not found or resume:
        return
    if not overwrite:
        raise ConfigError(
            f"{run_dir} already holds a run ({', '.join(found)}); pass --resume to continue it, "
            "--overwrite to start it over, or choose another --out"
        )
    run = Path(run_dir)
    for name in RUN_FILES:
        (run / name).unlink(missing_ok=True)
    for name in RUN_DIRS:
        shutil.rmtree(run / name, ignore_errors=True)
