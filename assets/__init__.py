"""Data the app ships (installed as ``radgaze.assets``): prompt sets, tracker layouts, presets, icon, desktop entry.

Read them with :func:`asset_text` / :func:`asset_path` (``importlib.resources``), never by a path relative to a
source file, so they load the same from a checkout, an editable install and a wheel.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def asset_path(*parts: str) -> Traversable:
    """The packaged file ``assets/<parts...>`` (a Traversable; use ``resources.as_file`` for a real path)."""
    return resources.files(__name__).joinpath(*parts)


def asset_text(*parts: str) -> str:
    """The UTF-8 text of the packaged file ``assets/<parts...>``."""
    return asset_path(*parts).read_text("utf-8")
