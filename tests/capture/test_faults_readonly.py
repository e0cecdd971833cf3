"""Every radgaze command that writes a file, pointed at a read-only folder (issue 24, item 8): exit 2 and one line
saying what could not be written, never a traceback, never exit 0 without the file, never a window left open.

Before: ``replay --export`` and ``review --export-csv`` into a read-only folder printed a traceback from inside
Qt's event loop and never ended (the window stayed open); ``replay``, ``annotate``, ``view``, ``review``,
``demo`` and ``record --screenshot`` ended with exit 0 and no file (QPixmap.save only answers False). The
windowed commands run offscreen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from faults import read_only_folder
from test_import_egd import _images, make_egd
from test_import_xdf import tobii_stream, word_stream, write_xdf

from radgaze.capture.synth.session import write_synthetic_sessions

INPUTS = ["work", "session", "sessions", "image", "xdf", "egd", "egd_images", "run"]


def _commands(inputs: dict[str, Path], ro: Path) -> dict[str, list]:
    session, folder = inputs["session"], inputs["sessions"]
    return {
        "synth": ["synth", ro / "o", "--cases", "1", "--size", "256"],
        "synth --preview": ["synth", inputs["work"] / "s2", "--cases", "1", "--size", "256", "--preview",
                            ro / "p.png"],
        "import egd": ["import", "egd", inputs["egd"], ro / "o", "--images", inputs["egd_images"]],
        "import xdf": ["import", "xdf", inputs["xdf"], ro / "o", "--image", inputs["image"]],
        "export reflacx": ["export", "reflacx", session, ro / "o"],
        "export bids": ["export", "bids", session, ro / "o"],
        "prepare": ["prepare", folder, ro / "o"],
        "train --out": ["train", folder, "--out", ro / "o", "--epochs", "1"],
        "replay --export": ["replay", session, "--export", ro / "o", "--no-audio"],
        "replay --screenshot": ["replay", session, "--screenshot", ro / "o.png", "--no-audio"],
        "annotate --screenshot": ["annotate", session, "--screenshot", ro / "o.png"],
        "view --screenshot": ["view", session, "--screenshot", ro / "o.png"],
        "review --export-csv": ["review", inputs["run"], session, "--export-csv", ro / "o.csv"],
        "review --export-figure": ["review", inputs["run"], session, "--export-figure", ro / "o.png"],
        "review --screenshot": ["review", inputs["run"], session, "--screenshot", ro / "o.png"],
        "eval --sentences-csv": ["eval", inputs["run"], folder, "--sentences-csv", ro / "o.csv"],
        "demo --screenshot": ["demo", "--seconds", "2", "--screenshot", ro / "o.png"],
        "record --screenshot": ["record", inputs["work"] / f"rec-{ro.parent.name}.h5", "--images", folder, "--sim",
                                "--no-audio", "--seconds", "2", "--screenshot", ro / "o.png"],
    }  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    from PIL import Image

    work = tmp_path_factory.mktemp("ro-inputs")
    (session,) = write_synthetic_sessions(work / "s", 1, seed=2, cases_per_file=1, image_size=256)
    image = work / "chest.png"
    Image.fromarray(np.full((64, 64), 2000, np.uint16)).save(image)
    xdf = write_xdf(work / "r.xdf", [word_stream(), tobii_stream(np.random.default_rng(1))])
    return {"work": work, "session": session, "sessions": session.parent, "image": image, "xdf": xdf,
            "egd": make_egd(work / "egd"), "egd_images": _images(work / "egd-img"), "run": _tiny_run(work / "run")}  # fmt: skip


def _tiny_run(run: Path) -> Path:
    """A run folder holding an untrained tiny checkpoint (what review and eval read)."""
    import torch

    from radgaze.model.checkpoint import save_checkpoint
    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    torch.manual_seed(0)
    save_checkpoint(EGMAModel(ModelConfig.preset("tiny")), run / "checkpoints" / "last")
    return run


@pytest.mark.parametrize("name", list(_commands(dict.fromkeys(INPUTS, Path()), Path())))
def test_a_command_writing_into_a_read_only_folder_says_so_in_one_line(tmp_path: Path, inputs, name: str):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1"}
    with read_only_folder(tmp_path / "ro") as ro:
        argv = [str(a) for a in _commands(inputs, ro)[name]]
        done = subprocess.run(
            [sys.executable, "-m", "radgaze.app.cli", *argv],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )  # a window left open would run into the timeout
        assert list(ro.iterdir()) == []
    said = [
        ln for ln in done.stderr.splitlines() if ln.startswith("radgaze ")
    ]  # (not train's progress lines)
    assert done.returncode == 2, (name, done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and len(said) == 1, (name, done.stderr[-2000:])
    assert said[0].startswith(f"radgaze {name.split()[0]}:") and str(ro) in said[0], said[0]
    assert "write" in said[0] or "Read-only" in said[0], said[0]
