"""``radgaze bench capture``: LSL gaze ingest, sentence-heatmap latency, heatmap throughput.

- ingest: an outlet in ANOTHER PROCESS publishes ``--rate`` Hz (default 2,000) for ``--duration`` s (default
  10) on loopback; a GazeInlet (clocksync + dejitter, recover) reads it. Lost = sent - received; latency =
  local_clock() at receipt (right after the pull) minus the sample's clock-corrected time, whose stamp is the
  moment the sample was due at the source, so the source's own scheduling delay counts too. The first
  1.5 s after connecting are sent as invalid warm-up samples and kept out of the latency figures (liblsl holds
  the first ~0.6 s of a new connection while it measures the clock offset); they are reported as
  ``ingest_connect_delay_max_ms`` and count for lost samples.
- heatmap latency: time from a sentence's last word becoming final to its heatmap stored in the session file
  (capture.align.LiveAligner + SessionWriter); null when those are not installed.
- heatmaps/s: capture.heatmap.render_heatmap at 512x512 with 20 fixations, one thread; null when absent.

Goals (issue 3, section 6): 0 lost, p99 < 5 ms, p95 <= 50 ms, >= 1,000 heatmaps/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pylsl

from capture.gaze.inlet import GazeInlet
from capture.gaze.layouts import BUILTIN_LAYOUTS
from capture.records import FIXATION_DTYPE, GAZE_VALID, DisplayGeometry, Words

GOALS = {
    "ingest_lost_samples": ("==", 0),
    "ingest_latency_p99_ms": ("<", 5.0),
    "heatmap_latency_p95_ms": ("<=", 50.0),
    "heatmaps_per_s": (">=", 1000.0),
}
WARMUP_S = 1.5  # ingest samples sent before the measured ones (see serve_outlet)
HEATMAP_SIZE_PX = 512
HEATMAP_FIXATIONS = 20


# ---------------------------------------------------------------------------------------------------------
# the outlet process


def serve_outlet(name: str, rate_hz: float, duration_s: float) -> int:
    """Publish the generic layout at ``rate_hz`` for ``duration_s`` once consumed; print the count."""
    from capture.sim_tracker import make_stream_info

    layout = BUILTIN_LAYOUTS["generic"]
    info = make_stream_info(layout, rate_hz, DisplayGeometry(), name, f"radgaze-bench:{name}")
    outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
    print("READY", flush=True)
    if not outlet.wait_for_consumers(timeout=30.0):
        print("SENT 0", flush=True)
        return 1
    # WARMUP_S of samples with confidence 0 (decoded as invalid) first: liblsl's clock synchronisation
    # holds the first samples of a new connection (~0.6 s here) while it takes its first clock offsets.
    n_warm = int(round(rate_hz * WARMUP_S))
    rows = np.repeat(np.array([[0.5, 0.5, 3.0, 0.5, 0.5, 3.0, 1.0]], np.float32), 4096, axis=0)
    n_total = n_warm + int(round(rate_hz * duration_s))
    t0, k = pylsl.local_clock(), 0
    while k < n_total:
        due = min(n_total, k + 4096, int((pylsl.local_clock() - t0) * rate_hz) + 1)
        if due > k:
            ks = np.arange(k, due)
            chunk = rows[: ks.size].copy()
            chunk[:, 6] = (ks >= n_warm).astype(np.float32)
            outlet.push_chunk(chunk, list(t0 + ks / rate_hz))
            k = due
        time.sleep(0.0002)
    print(f"SENT {k}", flush=True)
    time.sleep(2.0)  # keep the outlet up while the consumer drains
    return 0


def bench_ingest(rate_hz: float, duration_s: float) -> dict:
    """Ingest figures from an outlet in a child process (see module docstring)."""
    name = f"radgaze-bench-{os.getpid()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "capture.bench", "--serve-outlet", name, str(rate_hz), str(duration_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("bench outlet process did not start")
        info = pylsl.resolve_byprop("name", name, minimum=1, timeout=10.0)
        if not info:
            raise RuntimeError(f"bench outlet {name!r} not found on LSL")
        inlet = GazeInlet(info[0], DisplayGeometry(), max_chunk=4096, pull_timeout_s=0.01).start()
        latencies, warm_latencies, n_received, times, n_gaps = [], [], 0, [], 0
        try:
            while proc.poll() is None or not inlet.queue.empty():
                chunk = inlet.get(timeout_s=0.05)
                if chunk is None:
                    continue
                s = chunk.samples
                measured = (s["flags"] & GAZE_VALID) != 0
                latencies.append(chunk.t_received - s["t_lsl"][measured])
                warm_latencies.append(chunk.t_received - s["t_lsl"][~measured])
                n_received += s.size
                n_gaps += chunk.gaps.size
                times.append(s["t_lsl"][measured])
        finally:
            inlet.stop()
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)
        proc.stdout.close()
    sent = int(out.split("SENT")[-1].split()[0]) if "SENT" in out else -1
    lat_ms = np.concatenate(latencies) * 1e3 if latencies else np.zeros(0)
    warm_ms = np.concatenate(warm_latencies) * 1e3 if warm_latencies else np.zeros(0)
    t = np.concatenate(times) if times else np.zeros(0)
    return {
        "ingest_rate_hz": round(float((t.size - 1) / (t[-1] - t[0])), 1) if t.size > 1 else 0.0,
        "ingest_sent_samples": sent,
        "ingest_received_samples": n_received,
        "ingest_lost_samples": sent - n_received,
        "ingest_latency_p50_ms": _pct(lat_ms, 50),
        "ingest_latency_p99_ms": _pct(lat_ms, 99),
        "ingest_latency_max_ms": round(float(lat_ms.max()), 3) if lat_ms.size else None,
        "ingest_connect_delay_max_ms": round(float(warm_ms.max()), 3) if warm_ms.size else None,
        "ingest_out_of_order": inlet.stats.n_out_of_order,
        "ingest_gaps": n_gaps,
    }


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values.size else None


# ---------------------------------------------------------------------------------------------------------
# heatmaps


def bench_heatmaps_per_s(seconds: float = 2.0, seed: int = 0) -> tuple[float | None, str | None]:
    """render_heatmap calls per second at 512x512 with 20 fixations (one thread), or (None, why)."""
    try:
        from capture.heatmap import render_heatmap
        from capture.store import heatmap_grid
    except ImportError as exc:
        return None, f"capture.heatmap not available ({exc})"
    rng = np.random.default_rng(seed)
    size = HEATMAP_SIZE_PX
    grid = heatmap_grid(size, size)
    sets = [
        (rng.uniform(0, size, HEATMAP_FIXATIONS), rng.uniform(0, size, HEATMAP_FIXATIONS),
         rng.uniform(0.1, 0.6, HEATMAP_FIXATIONS))
        for _ in range(64)
    ]  # fmt: skip
    sigma_img_px = 15.0  # ~1 degree on a 512 px image fitted to the default display
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, y, w = sets[n % len(sets)]
        render_heatmap(x, y, w, sigma_img_px, image_w=size, image_h=size, grid=grid)
        n += 1
    return round(n / (time.perf_counter() - t0), 1), None


def bench_heatmap_latency(n_sentences: int = 40) -> tuple[float | None, str | None]:
    """p95 (ms) from a sentence's last word final to its heatmap stored, or (None, why)."""
    try:
        from capture.align import LiveAligner
        from capture.store import SessionWriter
    except ImportError as exc:
        return None, f"capture.align.LiveAligner not available ({exc})"
    try:
        return _measure_live_aligner(LiveAligner, SessionWriter, n_sentences), None
    except (AttributeError, TypeError, LookupError) as exc:  # not the API app/live.py uses
        return None, f"LiveAligner API mismatch: {exc!r}"


def _measure_live_aligner(live_aligner, session_writer, n_sentences: int) -> float:
    """Like app/live.py: a live session, a fitted view, fixations ahead of the words (gaze is never behind
    ASR); each sentence's final words go in and the clock stops when its heatmap has been appended to the
    session file. Returns the p95 in ms over ``n_sentences`` sentences."""
    from capture.records import VIEW_DTYPE, VIEW_FIT, ImageRef

    rng = np.random.default_rng(0)
    display = DisplayGeometry()
    size = 2048
    image = ImageRef("bench.png", "0" * 64, size, size)
    scale = min(display.screen_w_px, display.screen_h_px) / size
    view = np.zeros(1, VIEW_DTYPE)
    view[0] = (0.0, VIEW_FIT, scale, 0.0, (display.screen_h_px - size * scale) / 2, 2048.0, 4096.0, 0)
    latencies = []
    with tempfile.TemporaryDirectory() as tmp:
        writer = session_writer(Path(tmp) / "bench.h5", reader_id="bench", live=True)
        try:
            writer.begin_case("bench", image, display, t_start=0.0)
            aligner = live_aligner(writer, image=image, display=display)
            aligner.add_view_events(view)
            t = 1.0
            for _ in range(n_sentences):
                fix = np.zeros(HEATMAP_FIXATIONS, FIXATION_DTYPE)
                fix["t_start"] = t + np.arange(HEATMAP_FIXATIONS) * 0.3
                fix["t_end"] = fix["t_start"] + 0.25
                fix["x_img_px"], fix["y_img_px"] = rng.uniform(0, size, (2, HEATMAP_FIXATIONS))
                fix["x_screen_px"] = fix["x_img_px"] * scale
                fix["y_screen_px"] = fix["y_img_px"] * scale + view[0]["offset_y"]
                fix["ppd_img"] = 53.0
                aligner.add_fixations(fix)
                words = Words(np.array([t + 3.0, t + 3.6, t + 4.2]), np.array([t + 3.5, t + 4.1, t + 4.4]),
                              ["small", "opacity", "."], np.ones(3, np.float32))  # fmt: skip
                t0 = time.perf_counter()
                aligner.add_words(words)
                closed = list(aligner.pop_closed())
                latencies.append(time.perf_counter() - t0)
                if not closed:
                    raise LookupError("LiveAligner did not close a sentence ended by '.' with gaze all in")
                t += 6.0
            aligner.finish()
        finally:
            writer.close()
    return round(float(np.percentile(np.array(latencies) * 1e3, 95)), 3)


# ---------------------------------------------------------------------------------------------------------


def ratios(figures: dict) -> dict:
    """Each goal: the figure, the goal, the ratio figure/goal (lost: the count), and whether it is met."""
    out = {}
    for key, (op, goal) in GOALS.items():
        value = figures.get(key)
        if value is None:
            out[key] = {"goal": f"{op} {goal}", "value": None, "ratio": None, "met": None}
            continue
        met = {"==": value == goal, "<": value < goal, "<=": value <= goal, ">=": value >= goal}[op]
        ratio = None if goal == 0 else round(value / goal, 3)
        out[key] = {"goal": f"{op} {goal}", "value": value, "ratio": ratio, "met": bool(met)}
    return out


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except None (those options say in words what happens without them)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze bench capture",
        description="Benchmark capture: LSL ingest from another process (rate, lost samples, latency), "
        "sentence heatmap latency, heatmap throughput. Goals: 0 lost, p99 < 5 ms, p95 <= 50 ms, >= 1000/s.",
        epilog="example: radgaze bench capture --json --duration 10 --rate 2000",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--duration", type=float, default=10.0, help="ingest duration in seconds")
    p.add_argument("--rate", type=float, default=2000.0, help="ingest sample rate in Hz")
    p.add_argument("--skip-ingest", action="store_true", help="only the heatmap figures")
    p.add_argument("--serve-outlet", nargs=3, metavar=("NAME", "RATE", "DURATION"), help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_outlet:
        name, rate, duration = args.serve_outlet
        return serve_outlet(name, float(rate), float(duration))
    figures: dict = {"ingest_rate_hz": None, "ingest_lost_samples": None, "ingest_latency_p99_ms": None}
    notes = {}
    if not args.skip_ingest:
        figures.update(bench_ingest(args.rate, args.duration))
    figures["heatmap_latency_p95_ms"], why = bench_heatmap_latency()
    if why:
        notes["heatmap_latency_p95_ms"] = why
    figures["heatmaps_per_s"], why = bench_heatmaps_per_s()
    if why:
        notes["heatmaps_per_s"] = why
    result = {
        **figures,
        "config": {
            "rate_hz": args.rate,
            "duration_s": args.duration,
            "cpu_count": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine skews latency
        },
        "goals": ratios(figures),
        "notes": notes,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, g in result["goals"].items():
            print(
                f"{key:<26} {g['value']!s:>10}  goal {g['goal']:<10} ratio {g['ratio']!s:>7}  met {g['met']}"
            )
        for key in ("ingest_rate_hz", "ingest_latency_p50_ms", "ingest_latency_max_ms"):
            print(f"{key:<26} {figures.get(key)!s:>10}")
        for key, why in notes.items():
            print(f"note: {key}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
