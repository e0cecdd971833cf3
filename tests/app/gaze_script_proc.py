"""A scripted eye tracker in its own process: a real LSL stream in the Tobii Pro bridge's layout (radgaze's own
stream description and encoder, as ``radgaze sim-tracker`` publishes), for tests that need the gaze of one
planned reading to start when the test says so.

``python gaze_script_proc.py NAME WxH RATE_HZ``: prints ``READY`` once the outlet exists, then publishes invalid
samples (eyes not found) at RATE_HZ. A line ``PLAY rows.npy`` on stdin (GAZE_DTYPE rows, ``t_lsl`` seconds from
0, screen px of the WxH display) plays those rows in real time from now: ``T0 <lsl time>`` is printed when the
first goes out and ``DONE`` after the last; then invalid samples again. ``QUIT`` (or end of stdin) ends it.
"""

from __future__ import annotations

import queue
import sys
import threading
import time

import numpy as np
import pylsl

from radgaze.capture.io.display import parse_display
from radgaze.capture.live.gaze.layouts import BUILTIN_LAYOUTS, encode_samples
from radgaze.capture.live.sim_tracker import make_stream_info


def read_commands(lines: queue.Queue) -> None:
    for line in sys.stdin:
        lines.put(line.strip())
    lines.put("QUIT")


def main() -> None:
    name, display_text, rate_hz = sys.argv[1], sys.argv[2], float(sys.argv[3])
    display = parse_display(display_text)
    layout = BUILTIN_LAYOUTS["tobii"]
    outlet = pylsl.StreamOutlet(make_stream_info(layout, rate_hz, display, name, f"{name}-src"), 0, 360)
    idle = encode_samples(
        layout, np.array([np.nan]), np.array([np.nan]), np.array([np.nan]), np.array([False]), display
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_commands, args=(lines,), daemon=True).start()
    print("READY", flush=True)
    t_next = pylsl.local_clock()
    script, t0, k = None, 0.0, 0
    while True:
        try:
            cmd = lines.get_nowait()
        except queue.Empty:
            cmd = ""
        if cmd == "QUIT":
            return
        if cmd.startswith("PLAY "):
            rows = np.load(cmd[5:])
            valid = np.isfinite(rows["x_screen_px"]) & np.isfinite(rows["y_screen_px"])
            script = (
                rows["t_lsl"],
                encode_samples(
                    layout, rows["x_screen_px"], rows["y_screen_px"], rows["pupil"], valid, display
                ),
            )
            t0, k = pylsl.local_clock(), 0
            print(f"T0 {t0!r}", flush=True)
        now = pylsl.local_clock()
        if script is not None:
            t_rel, raw = script
            n = int(np.searchsorted(t_rel, now - t0, side="right"))
            if n > k:
                outlet.push_chunk(raw[k:n], list(t0 + t_rel[k:n]))
                k = n
            if k >= len(t_rel):
                script, t_next = None, now
                print("DONE", flush=True)
        else:
            while t_next <= now:
                outlet.push_sample(idle[0], t_next)
                t_next += 1.0 / rate_hz
        time.sleep(0.002)


if __name__ == "__main__":
    main()
