"""How every ``radgaze bench`` reports: figures, each goal with its ratio, and the machine's load beside them.

The convention (benchmarks/README.md): a benchmark lives beside the code it measures (``capture/bench/``,
``model/bench.py``, ``training/bench.py``, ``app/bench_viewer.py``), ``radgaze bench TARGET`` runs its
``main(argv)``, and its result is one JSON object (``--json``) or the same as a text table:

- the figures, at the top level, named with their units (``ingest_latency_p99_ms``, ``heatmaps_per_s``);
- ``goals``: for each goal of the issue that asked for the figure ``{"goal": "< 5.0", "value", "ratio", "met"}``,
  ratio = value / goal (None for a goal of 0 or a figure not measured; ``met`` None when not measured);
- ``machine``: CPU count and the 1/5/15-minute load averages at the end of the run (other work on a shared
  machine skews every timing; a figure is only comparable with its load beside it);
- ``notes``: why a figure is null, in words.

This module imports nothing of radgaze, so any package's benchmark may use it.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Mapping
from typing import Any

Goals = Mapping[
    str, tuple[str, float]
]  # figure name -> (operator, goal), e.g. {"heatmaps_per_s": (">=", 1000)}

_OPERATORS = {
    "==": lambda v, g: v == g,
    "<": lambda v, g: v < g,
    "<=": lambda v, g: v <= g,
    ">": lambda v, g: v > g,
    ">=": lambda v, g: v >= g,
}


def goal_row(value: float | None, op: str, goal: float) -> dict[str, Any]:
    """One goal: the figure, the goal as text, figure / goal, and whether it is met (None: not measured)."""
    if op not in _OPERATORS:
        raise ValueError(f"goal operator must be one of {', '.join(_OPERATORS)}, got {op!r}")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {"goal": f"{op} {goal}", "value": None, "ratio": None, "met": None}
    ratio = None if goal == 0 else round(float(value) / goal, 3)
    return {"goal": f"{op} {goal}", "value": value, "ratio": ratio, "met": bool(_OPERATORS[op](value, goal))}


def goal_table(figures: Mapping[str, Any], goals: Goals) -> dict[str, dict[str, Any]]:
    """:func:`goal_row` for every goal, in the goals' order (a figure absent from ``figures`` is not measured)."""
    return {key: goal_row(figures.get(key), op, goal) for key, (op, goal) in goals.items()}


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPUs and the load averages (1, 5, 15 min) now."""
    load_1, load_5, load_15 = os.getloadavg()
    return {
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(load_1, 2),
        "load_average_5min": round(load_5, 2),
        "load_average_15min": round(load_15, 2),
        "platform": platform.platform(terse=True),
    }


def bench_result(
    figures: Mapping[str, Any], goals: Goals | None = None, notes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The one result object: figures at the top level, then ``goals``, ``machine`` and ``notes``."""
    clash = {"goals", "machine", "notes"} & set(figures)
    if clash:
        raise ValueError(f"benchmark figures may not be named {sorted(clash)} (reserved for the report)")
    return {
        **figures,
        "goals": goal_table(figures, goals or {}),
        "machine": machine(),
        "notes": dict(notes or {}),
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def text_lines(result: Mapping[str, Any]) -> list[str]:
    """``result`` as aligned lines: the goal table, the other figures, the machine line, the notes."""
    goals, notes, mach = result.get("goals", {}), result.get("notes", {}), result.get("machine", {})
    width = max([len(k) for k in result] + [10])
    lines = []
    for key, g in goals.items():
        ratio = "-" if g["ratio"] is None else f"{g['ratio']:.3g}"
        met = {True: "met", False: "NOT met", None: "not measured"}[g["met"]]
        lines.append(f"{key:<{width}}  {_fmt(g['value']):>10}  goal {g['goal']:<10} ratio {ratio:>7}  {met}")
    for key, value in result.items():
        if key not in goals and key not in ("goals", "machine", "notes"):
            lines.append(f"{key:<{width}}  {_fmt(value)}")
    if mach:
        lines.append(
            f"machine: {mach['cpu_count']} CPUs, load average {mach['load_average_1min']} / "
            f"{mach['load_average_5min']} / {mach['load_average_15min']} (1 / 5 / 15 min), {mach['platform']}"
        )
    lines += [f"note: {key}: {why}" for key, why in notes.items()]
    return lines


def print_result(result: Mapping[str, Any], as_json: bool) -> None:
    """Print the result object as one JSON object or as :func:`text_lines`."""
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(text_lines(result)))
