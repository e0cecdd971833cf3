"""The README's examples, run in order from a clean folder, as a newcomer types them (issue 23, item 11).

Every line of every ```bash block is run, in the README's order, in one fresh folder, with the installed
``radgaze``. The user's own files the examples name (``./cxr/``, ``study.dcm``, ``image.dcm``) are copies of the
real radiographs in ../shared/data. A windowed line that waits for a person (``radgaze view``, ``demo`` without
``--seconds``, ``annotate``, ``replay`` and ``review`` without an export) must still be running after
``WINDOW_S`` (its window is up, no error) and is then ended with SIGTERM, as Ctrl-C would. A line that cannot run
here is listed in ``NOT_HERE`` with its reason; a README line matching nothing there is run, so a new example is
tested from the day it is written.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WINDOW_S = 12.0  # a windowed command still running this long after its start has its window up
LINE_TIMEOUT_S = 600.0

# (pattern, why it does not run here): searched in each README line
NOT_HERE = [
    (
        r"apt-get install|\.ci/run",
        "system set-up (apt, PulseAudio); tests/test_packaging.py installs the wheel in a venv",
    ),
    (r"^pip install", "installs radgaze: the test runs the installed one"),
    (r"--mic\b", "needs a microphone"),
    (r"--tracker Tobii|^radgaze sim-tracker", "a tracker stream and a Whisper model for the dictation"),
    (r"--whisper \./my-whisper-dir|--whisper base|retranscribe", "a Whisper model (no network here)"),
    (
        r"/data/|recording\.xdf|reading\.edf|reading\.asc",
        "credentialed datasets or the user's own recordings",
    ),
    (r"--device cuda|^srun|bench train|bench model", "a CUDA GPU or a cluster"),
    (
        r"--config paper --init|--out runs/paper",
        "the paper config: ImageNet Swin-T and BioClinicalBERT weights",
    ),
    (r"--images \S+\.csv", "labelled image sets (CheXpert 5x200/8x200, RSNA)"),
    (r"learning-curve", "hours on 2 CPU cores"),
    (r"gaze-ablation", "15 trainings (5 variants x 3 seeds): over 10 minutes on 2 busy CPU cores"),
    (r"--cases 40 --size 1024|second-look", "the second-look trial: 40 cases at 1024 px, minutes here"),
    (r"^radgaze bench", "benchmarks: minutes each, figures in benchmarks/README.md"),
    (r"--images \./worklist/", "the record window needs a tracker and a microphone"),
]
WINDOWED = re.compile(
    r"(^|&& )radgaze (view|annotate)\b|^radgaze demo\s*(#|$)|^radgaze (replay|review) \S+( \S+/)?\s*(#|$)"
)


def readme_lines(text: str) -> list[str]:
    """The commands of the README's ```bash blocks, in order (continued lines joined, comments kept)."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.strip())
    return lines


def why_not_here(line: str) -> str | None:
    return next((why for pattern, why in NOT_HERE if re.search(pattern, line)), None)


def test_readme_lines_are_found_and_classified():
    lines = readme_lines((REPO / "README.md").read_text())
    assert any(line.startswith("radgaze eval runs/tiny heldout/") for line in lines)
    heldout = next(i for i, line in enumerate(lines) if line.startswith("radgaze synth heldout/"))
    assert heldout < next(
        i for i, line in enumerate(lines) if line.startswith("radgaze eval runs/tiny heldout/")
    )
    assert why_not_here("radgaze train sessions/ --out runs/paper --config paper --device cuda") is not None
    assert why_not_here("radgaze train sessions/ --out runs/tiny --config tiny --epochs 3") is None
    assert WINDOWED.search("radgaze view ./cxr/ --preset lung")
    assert WINDOWED.search("radgaze synth s/ --cases 2 --seed 1 && radgaze annotate s/*.h5")
    assert WINDOWED.search("radgaze replay sessions/synth-s1-000.h5        # timeline")
    assert not WINDOWED.search(
        "radgaze replay sessions/synth-s1-000.h5 --export out/ --export-video out/case.mp4"
    )
    assert WINDOWED.search("radgaze review runs/tiny sessions/             # radiologist vs model")


def _users_files(folder: Path, data: Path) -> None:
    """What the examples call the user's own files: a folder of radiographs and two DICOM files."""
    (folder / "cxr").mkdir()
    for name in ("00000001_000.png", "hannover_006f3a8a.png"):
        shutil.copy(data / "cxr" / name, folder / "cxr" / name)
    shutil.copy(data / "dicom" / "RG1_J2KI.dcm", folder / "study.dcm")
    shutil.copy(data / "dicom" / "RG3_J2KR.dcm", folder / "image.dcm")


def _run(line: str, cwd: Path, env: dict) -> tuple[str, str]:
    """Run one README line with bash; returns (how it ended, its output's tail). ``A && B`` with a windowed B:
    A runs to its end first, then B is given its window time."""
    windowed = bool(WINDOWED.search(line))
    if windowed and "&&" in line:
        first, last = line.rsplit("&&", 1)
        how, tail = _run(first.strip(), cwd, env)
        if how != "exit 0":
            return how, tail
        line = last.strip()
    proc = subprocess.Popen(
        ["bash", "-c", line], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=WINDOW_S if windowed else LINE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM if windowed else signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        return ("window up" if windowed else "timed out"), out[-2000:]
    return f"exit {proc.returncode}", out[-2000:]


@pytest.mark.slow
def test_the_readme_examples_run_in_order_from_a_clean_folder(tmp_path, shared_data):
    lines = readme_lines((REPO / "README.md").read_text())
    _users_files(tmp_path, shared_data)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "QT_QPA_PLATFORM": "offscreen"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / ".config")
    ran, skipped, failed = [], [], []
    for line in lines:
        why = why_not_here(line)
        if why is not None:
            skipped.append(f"{line}  [{why}]")
            continue
        t0 = time.monotonic()
        how, tail = _run(line, tmp_path, env)
        ran.append(f"{how:>10} {time.monotonic() - t0:6.1f} s  {line}")
        if how not in ("exit 0", "window up"):
            failed.append(f"{line}\n  -> {how}\n{tail}")
    print("\n".join(["ran:", *ran, "not here:", *skipped]))
    assert not failed, "\n\n".join(failed)
    assert (tmp_path / "heldout").is_dir() and (tmp_path / "runs" / "tiny").is_dir()
    assert (tmp_path / "out" / "fixations.csv").is_file() and (tmp_path / "out" / "case.mp4").is_file()
    assert (tmp_path / "agreement.csv").is_file() and (tmp_path / "figure.pdf").is_file()
    assert len(ran) >= 18, ran


def _fake_bin(folder: Path, with_sudo: bool) -> Path:
    """A PATH folder with an apt-get that logs its arguments (and a sudo that logs, then runs the rest)."""
    folder.mkdir()
    log = folder / "calls.log"
    (folder / "apt-get").write_text(f'#!/bin/bash\necho "apt-get $*" >> {log}\n')
    if with_sudo:
        (folder / "sudo").write_text(f'#!/bin/bash\necho "sudo $1" >> {log}\nexec "$@"\n')
    for f in folder.iterdir():
        f.chmod(0o755)
    return log


@pytest.mark.parametrize("with_sudo", [True, False], ids=["user with sudo", "root without sudo"])
def test_the_setup_line_installs_the_packages_as_a_user_and_as_root(tmp_path, with_sudo):
    """The README's set-up line up to the venv: apt-get through sudo for a user, directly as root (issue 23,
    item 12: the line began with a bare sudo, which root containers lack)."""
    setup = next(line for line in readme_lines((REPO / "README.md").read_text()) if "apt-get install" in line)
    apt_part = setup.split("&& python3 -m venv")[0].strip()
    log = _fake_bin(tmp_path / "bin", with_sudo)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    if not with_sudo and shutil.which("sudo", path=env["PATH"]) is not None:
        pytest.skip("this machine has a sudo in /usr/bin or /bin: root without sudo cannot be shown here")
    proc = subprocess.run(["bash", "-c", apt_part], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert calls[0] == ("sudo apt-get" if with_sudo else "apt-get update")
    assert len(installs) == 1 and "libxcb-cursor0" in installs[0] and "libportaudio2" in installs[0]


@pytest.mark.slow
def test_the_readme_says_the_size_of_the_environment():
    """The README's "~N GB environment" against this environment's site-packages (issue 23, item 13)."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    if not (site / "nvidia").is_dir():
        pytest.skip(f"{site} has no CUDA wheels (not PyPI's torch): the README's figure is not about it")
    said_gb = float(re.search(r"~(\d+(?:\.\d+)?) GB environment", (REPO / "README.md").read_text()).group(1))
    size_b = sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and not f.is_symlink())
    measured_gb = size_b / 1e9
    assert abs(measured_gb - said_gb) / said_gb < 0.2, (
        f"README says ~{said_gb} GB, measured {measured_gb:.1f} GB"
    )
