"""Packaging: one import name, the shipped data in the wheel, and the wheel working outside the checkout.

Issue 13: ``pip install radgaze`` must add exactly one top-level import name, ``radgaze`` (the repository's
``app/ assets/ capture/ model/ training/`` folders are mapped onto ``radgaze.app`` ... by setuptools'
``package-dir``), so a researcher's own ``model.py`` or ``training/`` package in the working directory can never
shadow ours, and nothing the code writes (checkpoints, session files) names a module path.
Issue 15, section 3: the wheel carries the data in ``assets/`` (and every other data file beside the code) and the
installed wheel runs the demo and the synthetic-session generator.

The wheel is built from a copy of the sources (``pip wheel --no-deps --no-build-isolation``: no network, no
stale ``build/`` of the checkout) and installed with ``--no-deps`` into a fresh venv outside the checkout whose
dependencies come from the running interpreter's site-packages through a folder of links: a plain path in a
``.pth`` file, so the ``.pth`` files there (the checkout's editable finder among them) never run, and the
editable install's own metadata is left out.
"""

from __future__ import annotations

import json
import os
import pickletools
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS["package-dir"]  # "radgaze.app" -> "app"
CODE_SUFFIXES = (".py", ".pyc")
DECOY_MODULES = ("app.py", "capture/__init__.py", "model.py", "training/__init__.py")


# ------------------------------------------------------------------------------------- the source tree
def _source_files(folder: str) -> list[Path]:
    """Every file the wheel should carry from one mapped top-level folder (caches left out)."""
    root = REPO / folder
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", ".pyo"))
    )


def _wheel_name(folder: str, path: Path) -> str:
    """assets/prompts/x.json -> radgaze/assets/prompts/x.json (the name inside the wheel)."""
    package = next(name for name, f in PACKAGE_DIR.items() if f == folder)
    rel = path.relative_to(REPO / folder).as_posix()
    return f"{package.replace('.', '/')}/{rel}"


def _init_packages() -> set[str]:
    """Dotted names of the folders that hold an ``__init__.py`` under the mapped top-level folders."""
    found = set()
    for package, folder in PACKAGE_DIR.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((package, *rel)))
    return found


def _module_paths() -> set[str]:
    """The dotted module paths a file could name if it pickled or quoted our code by module, without the
    ``radgaze.`` prefix (``model.egma``, ``capture.store.writer``) and in the old flat capture layout
    (``capture.session_file``, ``capture.whisper_testing``, ``model.testing``)."""
    names = {"capture.whisper_testing", "capture.store_bench", "capture.bench", "model.testing"}
    for package, folder in PACKAGE_DIR.items():
        top = package.split(".", 1)[1]
        for py in (REPO / folder).rglob("*.py"):
            parts = py.relative_to(REPO / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            if parts:
                names.add(".".join((top, *parts)))
                names.add(f"{top}.{parts[-1]}")
    return names


def test_packages_list_names_every_folder_that_holds_an_init_py():
    """pyproject's explicit list is what gets installed: a package missing from it is silently not shipped."""
    listed = set(SETUPTOOLS["packages"])
    found = _init_packages()
    missing, extra = sorted(found - listed), sorted(listed - found)
    assert not missing, (
        f"folders with an __init__.py that pyproject.toml's [tool.setuptools] packages does not list (they "
        f"would be left out of the wheel): {missing}; add them to that list"
    )
    assert not extra, f"pyproject.toml lists packages with no folder holding an __init__.py: {extra}"
    assert set(PACKAGE_DIR) == {"radgaze." + f for f in PACKAGE_DIR.values()}, PACKAGE_DIR
    assert all(p.split(".")[0] == "radgaze" for p in listed), listed
    assert not (REPO / "radgaze").exists(), "radgaze is a namespace mapped by package-dir; no radgaze/ folder"


# ------------------------------------------------------------------------------------------- the wheel
@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (pyproject, README, the mapped folders)."""
    src = tmp_path_factory.mktemp("wheel-src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for folder in PACKAGE_DIR.values():
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    proc = subprocess.run(
        [*cmd, "-w", str(out), "."], cwd=src, capture_output=True, text=True, timeout=600, env=_clean_env()
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(out.glob("radgaze-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_installs_one_top_level_name_radgaze(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        top_level = z.read(f"{info}/top_level.txt").decode().split()
        record = [line.split(",")[0] for line in z.read(f"{info}/RECORD").decode().splitlines() if line]
        entry_points = z.read(f"{info}/entry_points.txt").decode()
    assert top_level == ["radgaze"]
    assert {n.split("/")[0] for n in record} == {"radgaze", info}, sorted({n.split("/")[0] for n in record})
    assert {n.split("/")[0] for n in names} == {"radgaze", info}
    assert "radgaze/__init__.py" not in names  # a PEP 420 namespace: nothing of ours at radgaze/ itself
    assert re.search(r"^radgaze = radgaze\.app\.cli:main$", entry_points, re.M), entry_points


def test_wheel_carries_every_module_and_data_file_of_the_source_folders(wheel):
    """Code and data (assets/**, training/configs/*.toml, ...): what is in the folders is in the wheel."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    expected = {_wheel_name(f, p) for f in PACKAGE_DIR.values() for p in _source_files(f)}
    missing = sorted(expected - names)
    assert not missing, f"files of the source folders missing from the wheel (package-data?): {missing}"
    data = {n for n in expected if not n.endswith(CODE_SUFFIXES)}
    assert {"radgaze/training/configs/tiny.toml", "radgaze/training/configs/paper.toml"} <= data
    assert any(n.startswith("radgaze/assets/prompts/") for n in data), sorted(data)
    shipped = {n for n in names if n.startswith("radgaze/")}
    assert not sorted(shipped - expected), "the wheel carries files that are not in the source folders"


# ----------------------------------------------------------------------------- the wheel, installed
@dataclass(frozen=True)
class Installed:
    venv: Path
    python: Path
    radgaze: Path
    site_packages: Path
    env: dict[str, str]


def _clean_env() -> dict[str, str]:
    """This environment without anything that would put the checkout on the path."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _dependency_links(dst: Path) -> None:
    """Links to everything in the running interpreter's site-packages except radgaze's own install (its
    dist-info, the editable finder) and the .pth files."""
    dst.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name
        if name.startswith(("radgaze", "__editable__")) or name.endswith(".pth") or name == "__pycache__":
            continue
        (dst / name).symlink_to(entry)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Installed:
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
            env=_clean_env(),
        ).strip()
    )
    _dependency_links(root / "deps")
    (site / "radgaze_test_dependencies.pth").write_text(f"{root / 'deps'}\n")
    env = {**_clean_env(), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(OMP_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Installed(venv, python, venv / "bin" / "radgaze", site, env)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A researcher's folder with its own ``app.py``, ``capture/``, ``model.py`` and ``training/``: each raises
    and leaves a marker file when imported."""
    work = tmp_path_factory.mktemp("researcher")
    for rel in DECOY_MODULES:
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        marker = work / f"imported-{rel.replace('/', '-')}"
        path.write_text(
            f"open({str(marker)!r}, 'w').close()\nraise RuntimeError('the decoy {rel} was imported')\n"
        )
    for module in ("app", "capture", "model", "training"):  # the decoys do shadow a plain import from here
        control = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=work, env=_clean_env(),
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert control.returncode != 0 and "decoy" in control.stderr, (module, control.stderr[-500:])
    assert len(_decoys_imported(work)) == len(DECOY_MODULES), _decoys_imported(work)
    for marker in work.glob("imported-*"):
        marker.unlink()
    return work


def _decoys_imported(work: Path) -> list[str]:
    return sorted(p.name for p in work.glob("imported-*"))


def _run(
    installed: Installed, args: list[str], cwd: Path, timeout_s: float = 600
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=installed.env, capture_output=True, text=True, timeout=timeout_s
    )
    assert proc.returncode == 0, (
        f"{args}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    return proc


PROBE = """
import json, sys
import radgaze.app, radgaze.assets, radgaze.capture, radgaze.model, radgaze.training
from radgaze.assets import asset_text
from radgaze.training.config import load_config
print(json.dumps({
    "files": {m.__name__: m.__file__ for m in (radgaze.app, radgaze.assets, radgaze.capture, radgaze.model,
                                               radgaze.training)},
    "radgaze_path": list(radgaze.__path__),
    "editable": sorted(m for m in sys.modules if "editable" in m),
    "finders": [type(f).__name__ if not isinstance(f, type) else f.__name__ for f in sys.meta_path],
    "prompts": len(json.loads(asset_text("prompts", "chexpert5x200.json"))),
    "tiny_epochs": load_config("tiny", []).epochs,
}))
"""


@pytest.mark.slow
def test_installed_wheel_imports_from_its_own_site_packages_not_the_checkout(installed, workdir):
    out = json.loads(_run(installed, [installed.python, "-c", PROBE], cwd=workdir).stdout)
    site = str(installed.site_packages)
    for name, file in out["files"].items():
        assert file.startswith(site + os.sep), (name, file, site)
    assert out["radgaze_path"] == [str(installed.site_packages / "radgaze")]
    assert out["editable"] == [] and not any("Editable" in f for f in out["finders"]), out
    assert out["prompts"] > 0 and out["tiny_epochs"] > 0
    assert _decoys_imported(workdir) == []


@pytest.fixture(scope="module")
def sessions(installed, workdir) -> Path:
    """``radgaze synth`` from the installed wheel, run in the researcher's folder."""
    out = _run(installed, [installed.radgaze, "synth", "sessions", "--cases", "8", "--seed", "3", "--size", "512"],
               cwd=workdir)  # fmt: skip
    files = sorted((workdir / "sessions").glob("*.h5"))
    assert files and "8 cases" in out.stdout, out.stdout
    return workdir / "sessions"


@pytest.fixture(scope="module")
def tiny_run(installed, workdir, sessions) -> Path:
    args = [installed.radgaze, "train", sessions, "--out", "runs/tiny", "--config", "tiny", "--epochs", "1"]
    _run(installed, args, cwd=workdir)
    return workdir / "runs" / "tiny"


@pytest.mark.slow
def test_synth_from_the_installed_wheel_writes_readable_sessions(sessions, workdir):
    from radgaze.capture.store.reader import open_session

    n_cases = 0
    for path in sorted(sessions.glob("*.h5")):
        with open_session(path) as reader:
            n_cases += len(list(reader.cases()))
    assert n_cases == 8
    assert _decoys_imported(workdir) == []


@pytest.mark.slow
def test_radgaze_train_beside_a_researchers_model_and_training_uses_ours(tiny_run, workdir):
    report = json.loads((tiny_run / "report.json").read_text())
    assert report["finished"] and report["steps"] >= 1 and report["world_size"] == 1, report
    assert (tiny_run / "checkpoints" / "last" / "model.safetensors").is_file()
    assert _decoys_imported(workdir) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_of_radgaze_training_cli_beside_a_researchers_training_uses_ours(
    installed, workdir, sessions
):
    out = workdir / "runs" / "ddp"
    torchrun = [installed.python, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    torchrun += ["--master-addr", "127.0.0.1", "--master-port", _free_port()]
    args = [
        *torchrun,
        "-m",
        "radgaze.training.cli",
        sessions,
        "--out",
        out,
        "--config",
        "tiny",
        "--epochs",
        "1",
    ]
    proc = _run(installed, args, cwd=workdir)
    report = json.loads((out / "report.json").read_text())
    assert report["finished"] and report["world_size"] == 2, report
    assert "decoy" not in proc.stderr
    assert _decoys_imported(workdir) == []


@pytest.mark.slow
def test_demo_from_the_installed_wheel_saves_a_screenshot(installed, workdir, artifacts_dir):
    shot = artifacts_dir / "packaging-installed-demo.png"
    shot.unlink(missing_ok=True)
    proc = _run(installed, [installed.radgaze, "demo", "--seconds", "5", "--screenshot", shot], cwd=workdir)
    assert shot.is_file(), proc.stdout + proc.stderr
    from PIL import Image

    with Image.open(shot) as im:
        assert im.width >= 640 and im.height >= 480, im.size
        gray = np.asarray(im.convert("L"), np.float32)
    assert gray.std() > 20, "the demo screenshot is nearly uniform"
    assert _decoys_imported(workdir) == []


# -------------------------------------------------------------- what the code writes names no module path
def _pickle_globals(data: bytes) -> set[str]:
    """``module name`` of every GLOBAL / STACK_GLOBAL in a pickle stream."""
    found, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif op.name == "GLOBAL":
            found.add(arg)
        elif op.name == "STACK_GLOBAL":
            found.add(f"{strings[-2]} {strings[-1]}")
    return found


def _module_path_hits(data: bytes, pattern: re.Pattern[bytes]) -> list[str]:
    return sorted({m.group(0).decode() for m in pattern.finditer(data)})


@pytest.mark.slow
def test_checkpoints_and_session_files_name_no_module_paths_and_load_in_the_checkout(tiny_run, sessions):
    """Nothing written names ``app.``/``capture.``/``model.``/``training.`` (or ``radgaze.``) module paths, so a
    package move never breaks an old file; the files the wheel wrote load with the checkout's code."""
    alternatives = b"|".join(re.escape(n.encode()) for n in sorted(_module_paths(), key=len, reverse=True))
    pattern = re.compile(rb"(?<![\w.])(?:radgaze\.)?(?:" + alternatives + rb")(?![\w])")
    files = [p for p in [*tiny_run.rglob("*"), *sessions.glob("*.h5")] if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files) and any(p.name == "state.pt" for p in files)
    hits = {str(p): _module_path_hits(p.read_bytes(), pattern) for p in files}
    assert not {k: v for k, v in hits.items() if v}, hits
    allowed = ("torch", "collections", "numpy", "_codecs", "builtins")
    for state in tiny_run.rglob("state.pt"):
        with zipfile.ZipFile(state) as z:
            for name in (n for n in z.namelist() if n.endswith(".pkl")):
                names = _pickle_globals(z.read(name))
                assert names and all(n.split(".")[0].split()[0] in allowed for n in names), names

    import torch

    from radgaze.capture.store.reader import open_session
    from radgaze.model.checkpoint import load_checkpoint

    model = load_checkpoint(tiny_run / "checkpoints" / "last")
    assert sum(p.numel() for p in model.parameters()) > 0
    state = torch.load(tiny_run / "checkpoints" / "state.pt", map_location="cpu", weights_only=False)
    assert state["model"].keys() == model.state_dict().keys()
    with open_session(sorted(sessions.glob("*.h5"))[0]) as reader:
        assert list(reader.cases())
