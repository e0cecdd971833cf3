"""The second-look part of a case: what the record window showed the reader at sign-off, when, and what the
reader did then (``docs/session-format.md``, "Second look").

A group ``second_look`` of the case, written once, after the case is closed (the recorder's writer thread, as
annotation steps are): attributes ``shown`` (the arm: True = the overlay was shown), ``assignment`` (``on`` /
``off`` / ``random``), ``seed``, ``t_space_lsl`` (when Space ended the first dictation), ``events_json``
([[t_lsl, kind], ...]), ``versions_json`` (one summary per version computed: dwell clusters, zone fractions,
zones named, the status line, the parameters); datasets ``unviewed`` and ``model`` ((versions, rows, cols)
uint8 masks on the coverage grid, ``grid_scale`` image px per cell in each version's summary).

Plain data in and out (dicts and arrays): the store sits below the gaze maths that computes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.store.integrity import CHECKSUM

SECOND_LOOK_GROUP = "second_look"
_REQUIRED_ATTRS = ("shown", "assignment", "seed", "t_space_lsl", "events_json", "versions_json")


def write_second_look_group(g: h5py.Group, payload: dict, unviewed: np.ndarray, model: np.ndarray) -> None:
    """Create the case's ``second_look`` group from ``payload`` (keys as the attributes above, ``events`` and
    ``versions`` as lists) and the stacked masks. Refuses a second write (the part is written once)."""
    if SECOND_LOOK_GROUP in g:
        raise ValueError(f"case {g.name}: its second look is already stored (written once)")
    unviewed, model = np.asarray(unviewed, bool), np.asarray(model, bool)
    n = len(payload["versions"])
    if unviewed.ndim != 3 or unviewed.shape[0] != n or model.shape != unviewed.shape:
        raise ValueError(
            f"second look masks: expected ({n}, rows, cols) for both, got {unviewed.shape} and {model.shape}"
        )
    sl = g.create_group(SECOND_LOOK_GROUP)
    sl.attrs.update(
        {
            "shown": bool(payload["shown"]),
            "assignment": str(payload["assignment"]),
            "seed": int(payload["seed"]),
            "t_space_lsl": float(payload["t_space_lsl"]),
            "events_json": json.dumps(payload["events"]),
            "versions_json": json.dumps(payload["versions"]),
        }
    )
    sl.create_dataset("unviewed", data=unviewed.astype(np.uint8), compression="gzip", **CHECKSUM)
    sl.create_dataset("model", data=model.astype(np.uint8), compression="gzip", **CHECKSUM)


def read_second_look_group(g: h5py.Group) -> dict | None:
    """The case's second look as a dict (the payload's keys plus ``unviewed`` and ``model`` masks), or None
    when the case has none. A group missing an attribute is a format error naming it."""
    if SECOND_LOOK_GROUP not in g:
        return None
    sl = g[SECOND_LOOK_GROUP]
    missing = [a for a in _REQUIRED_ATTRS if a not in sl.attrs]
    if missing or "unviewed" not in sl or "model" not in sl:
        raise SessionFormatError(
            f"case {g.name}: second_look: expected attributes {list(_REQUIRED_ATTRS)} and datasets unviewed, "
            f"model; missing {missing or [d for d in ('unviewed', 'model') if d not in sl]}"
        )
    return {
        "shown": bool(sl.attrs["shown"]),
        "assignment": str(sl.attrs["assignment"]),
        "seed": int(sl.attrs["seed"]),
        "t_space_lsl": float(sl.attrs["t_space_lsl"]),
        "events": [(float(t), str(k)) for t, k in json.loads(sl.attrs["events_json"])],
        "versions": json.loads(sl.attrs["versions_json"]),
        "unviewed": sl["unviewed"][()].astype(bool),
        "model": sl["model"][()].astype(bool),
    }


def read_second_looks(path: str | os.PathLike) -> dict[str, dict]:
    """{case_id: second look dict} of every case of a session file that has one; SessionFormatError (one line)
    for a file HDF5 cannot read (before: h5py's OSError, which `export reflacx` took for its own output folder
    and stopped on, leaving a partial tree)."""
    out = {}
    try:
        with h5py.File(Path(path), "r", locking=False) as f:
            for case_id, g in f["cases"].items():
                stored = read_second_look_group(g)
                if stored is not None:
                    out[case_id] = stored
    except (OSError, RuntimeError, KeyError) as exc:
        raise SessionFormatError(
            f"{path}: expected an HDF5 session file, got something HDF5 cannot read (damaged, truncated or "
            f"foreign): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    return out
