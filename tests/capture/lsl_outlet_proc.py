"""Publish LSL outlets from a separate process, for tests: ``python lsl_outlet_proc.py SPEC.json``.

SPEC: {"outlets": [{"name", "type", "source_id", "format" ("float32"/"double64"/"string"),
"rate" (Hz, 0 = irregular), "n_channels", "labels", "types", "eyes", "units", "manufacturer",
"rows" ([[...], ...] pushed cyclically in real time at "rate", 1 row per period),
"chunks" ([{"rows": [[...]], "t_offsets": [...]}] pushed once each with explicit times t0 + offset; for
out-of-order tests), "disappear_after_s" + "disappear_for_s" (destroy the outlet, wait, publish again under
the same source id), "clock_steps" ([[at_s, step_s], ...]: from at_s of streaming on, every stamp is moved by
step_s more, as a device whose clock steps)}], "lifetime_s"}. Prints "READY" once every outlet exists, then runs until lifetime_s or
until killed. Each outlet waits for a consumer before its first push.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import numpy as np
import pylsl


def make_outlet(spec: dict) -> pylsl.StreamOutlet:
    n = int(spec.get("n_channels") or len(spec["labels"]))
    info = pylsl.StreamInfo(
        spec["name"], spec.get("type", "Gaze"), n, float(spec.get("rate", 0.0)),
        spec.get("format", "float32"), spec.get("source_id", spec["name"] + "-src"),
    )  # fmt: skip
    desc = info.desc()
    if spec.get("manufacturer"):
        desc.append_child_value("manufacturer", spec["manufacturer"])
    if spec.get("labels"):
        chans = desc.append_child("channels")
        for i, label in enumerate(spec["labels"]):
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            for key in ("type", "eye", "unit"):
                values = spec.get(key + "s") or []
                if i < len(values) and values[i]:
                    ch.append_child_value(key, values[i])
    return pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)


def run_outlet(spec: dict, box: list, deadline: float) -> None:
    outlet = box.pop()  # the only reference, so that ``del outlet`` really takes the stream away
    outlet.wait_for_consumers(timeout=max(0.0, deadline - time.monotonic()))
    for chunk in spec.get("chunks", []):
        t0 = pylsl.local_clock()
        outlet.push_chunk(np.asarray(chunk["rows"], float), [t0 + dt for dt in chunk["t_offsets"]])
        time.sleep(0.05)
    rows = np.asarray(spec.get("rows", []), float)
    if rows.size == 0:
        while time.monotonic() < deadline:
            time.sleep(0.05)
        return
    rate = float(spec["rate"]) or 100.0
    t_start = time.monotonic()
    away_at = spec.get("disappear_after_s")
    t0, i = pylsl.local_clock(), 0
    while time.monotonic() < deadline:
        if away_at is not None and time.monotonic() - t_start >= away_at:
            del outlet
            time.sleep(float(spec["disappear_for_s"]))
            outlet = make_outlet(spec)
            print("BACK", flush=True)
            away_at = None
            outlet.wait_for_consumers(timeout=10.0)
            t0, i = pylsl.local_clock(), 0
        due = int((pylsl.local_clock() - t0) * rate) + 1
        if due > i:
            idx = np.arange(i, due)
            outlet.push_chunk(rows[idx % len(rows)], list(t0 + idx / rate + _clock_steps(spec, idx / rate)))
            i = due
        time.sleep(0.002)


def _clock_steps(spec: dict, t_s: np.ndarray) -> np.ndarray:
    """The sum of the clock steps in force at each streaming time ``t_s`` (the stamps' error)."""
    out = np.zeros_like(t_s)
    for at_s, step_s in spec.get("clock_steps", []):
        out += np.where(t_s >= at_s, step_s, 0.0)
    return out


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    deadline = time.monotonic() + float(spec.get("lifetime_s", 60.0))
    outlets = [(s, [make_outlet(s)]) for s in spec["outlets"]]
    print("READY", flush=True)
    threads = [threading.Thread(target=run_outlet, args=(s, o, deadline), daemon=True) for s, o in outlets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
