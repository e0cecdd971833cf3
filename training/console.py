"""What ``radgaze train`` and ``radgaze eval`` print for people: timed phase lines and a table of results.

Phases are the ``radgaze.training`` loggers' INFO lines (model build, data indexing, evaluation, ...),
printed on stderr with the seconds since the command started, so a long step never passes in silence::

    [   0.0 s] building the model (preset tiny) …
    [   2.9 s] indexing the sessions in ./sessions …

Results are a two-column table, numbers to 3 significant digits (:func:`sig3`); ``--json`` prints the one
JSON object instead, for programs.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterable

LOGGER_NAME = "radgaze.training"


class _PhaseFormatter(logging.Formatter):
    def __init__(self, t0: float) -> None:
        super().__init__()
        self.t0 = t0

    def format(self, record: logging.LogRecord) -> str:
        head = f"[{time.perf_counter() - self.t0:7.1f} s]"
        if record.levelno >= logging.WARNING:
            head += f" {record.levelname.lower()}:"
        return f"{head} {record.getMessage()}"


def setup_phase_logging(stream=None) -> logging.Handler:
    """Route ``radgaze.training`` (and ``radgaze.model``) INFO lines to ``stream`` (stderr) with timestamps."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_PhaseFormatter(time.perf_counter()))
    for name in (LOGGER_NAME, "radgaze.model"):
        log = logging.getLogger(name)
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        log.propagate = False
    return handler


def sig3(value: object) -> str:
    """A value for a table: floats to 3 significant digits, None as '–', others as str."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.3g}"
    return str(value)


def table(rows: Iterable[tuple[str, object]], title: str = "") -> str:
    """A two-column plain-text table (name, value) with aligned columns."""
    rows = [(str(k), sig3(v)) for k, v in rows]
    if not rows:
        return title
    width = max(len(k) for k, _ in rows)
    vwidth = max(len(v) for _, v in rows)
    lines = [title] if title else []
    lines += [f"  {k:<{width}}  {v:>{vwidth}}" for k, v in rows]
    return "\n".join(lines)
