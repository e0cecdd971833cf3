"""The commands as a user meets them (issue 10, section 6): help texts that show every option once, with no
code identifiers; one name for the microphone and --sim in both record modes; one-line refusals instead of
tracebacks; exit codes that say what happened."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


def _help(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", *args, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_record_help_shows_the_headless_options_too():
    text = _help("record")
    for option in (
        "--images",
        "--sim",
        "--mic",
        "--audio-file",
        "--headless",
        "--duration",
        "--out",
        "--image",
    ):
        assert option in text, option
    assert "radgaze record --headless" in text  # the headless section is there, named


@pytest.mark.parametrize(
    "command", [("record",), ("record", "--headless"), ("demo",), ("view",), ("synth",)], ids=" ".join
)
def test_help_says_each_default_once_and_names_no_code(command):
    text = _help(*command)
    assert "(default: None)" not in text and "(None:" not in text
    # one option's help never says its default twice (argparse wraps lines: join them first)
    flat = re.sub(r"\s+", " ", text)
    for chunk in re.split(r" (?=--[a-z])", flat):
        assert chunk.count("(default") <= 1, chunk
    assert not re.search(r"radgaze\.(capture|app|model|training)\.", text), text


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", *args], capture_output=True, text=True, timeout=180
    )


def _one_line_refusal(out: subprocess.CompletedProcess, *words: str) -> None:
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if "propagateSizeHints" not in line]
    assert len(lines) == 1, out.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_synth_onto_an_existing_file_is_one_line(tmp_path):
    target = tmp_path / "sessions.h5"
    target.write_bytes(b"")
    _one_line_refusal(_run("synth", str(target), "--cases", "1"), "expected a folder", "existing file")


def test_demo_refuses_negative_seconds():
    _one_line_refusal(_run("demo", "--seconds", "-3"), "--seconds", "-3")


def test_review_screenshot_on_a_bad_session_fails_on_stderr(tmp_path):
    import torch

    from radgaze.model.checkpoint import save_checkpoint
    from radgaze.model.config import ModelConfig
    from radgaze.model.egma import EGMAModel

    torch.manual_seed(0)
    save_checkpoint(EGMAModel(ModelConfig.preset("tiny")), tmp_path / "run" / "checkpoints" / "last")
    bad = tmp_path / "s" / "bad.h5"
    bad.parent.mkdir()
    bad.write_text("not a session")
    out = subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", "review", str(tmp_path / "run"), str(bad)]
        + ["--screenshot", str(tmp_path / "r.png")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode != 0, out.stdout + out.stderr[-2000:]
    assert "bad.h5" in out.stderr and "HDF5" in out.stderr
    assert "Traceback" not in out.stderr
