"""Quality gates that run with the tests: ruff (lint + format) and the import-linter layer contracts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["app", "capture", "model", "training", "tests"]


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; pip install -e '.[test]'")
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_lint_is_clean():
    r = _run([_tool("ruff"), "check", *PACKAGES])
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_is_clean():
    r = _run([_tool("ruff"), "format", "--check", *PACKAGES])
    assert r.returncode == 0, r.stdout + r.stderr


def test_layer_contracts_hold():
    """Qt only in app/; capture, model, training never import app; model never imports training; capture layered."""
    r = _run([_tool("lint-imports"), "--no-cache"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 kept, 0 broken" in r.stdout
