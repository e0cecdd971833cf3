"""``radgaze bench capture``: LSL gaze ingest, sentence-heatmap latency, heatmap throughput.

- ingest: an outlet in ANOTHER PROCESS publishes ``--rate`` Hz (default 2,000) for ``--duration`` s (default
  10) on loopback; a GazeInlet (clocksync + dejitter, recover) reads it. Lost = sent - received; latency =
  local_clock() at receipt (right after the pull) minus the sample's clock-corrected time, whose stamp is the
  moment the sample was due at the source, so the source's own scheduling delay counts too. The first
  1.5 s after connecting are sent as invalid warm-up samples and kept out of the latency figures (liblsl holds
  the first ~0.6 s of a new connection while it measures the clock offset); they are reported as
  ``ingest_connect_delay_max_ms`` and count for lost samples.
- heatmap latency: time from a sentence's final words entering the recorder's pipeline (radgaze.capture.live.pipeline:
  fixations -> LiveAligner -> SessionWriter, live SWMR) to its heatmap in the file, flushed; null when
  those are not installed.
- heatmaps/s: radgaze.capture.gazemath.heatmap.render_heatmap at 512x512 with 20 fixations, one thread (a child process with
  BLAS limited to one thread); null when absent.

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

from radgaze.capture.base.helpformat import DefaultsOnceFormatter
from radgaze.capture.base.records import GAZE_VALID, DisplayGeometry, Words
from radgaze.capture.base.report import bench_result, goal_table, print_result
from radgaze.capture.live.gaze.inlet import GazeInlet
from radgaze.capture.live.gaze.layouts import BUILTIN_LAYOUTS

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
    from radgaze.capture.live.sim_tracker import make_stream_info

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
        [
            sys.executable,
            "-m",
            "radgaze.capture.bench.capture",
            "--serve-outlet",
            name,
            str(rate_hz),
            str(duration_s),
        ],
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


ONE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def bench_heatmaps_per_s_one_thread(seconds: float = 2.0) -> tuple[float | None, str | None]:
    """:func:`bench_heatmaps_per_s` in a child process whose BLAS is limited to one thread (numpy's BLAS
    reads its thread count at import, so this cannot be changed in a running process)."""
    proc = subprocess.run(
        [sys.executable, "-m", "radgaze.capture.bench.capture", "--measure-heatmaps", str(seconds)],
        capture_output=True,
        text=True,
        env={**os.environ, **ONE_THREAD_ENV},
        timeout=120,
    )
    if proc.returncode != 0:
        return None, f"heatmap throughput child failed: {proc.stderr.strip().splitlines()[-1:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["heatmaps_per_s"], result["why"]


def bench_heatmaps_per_s(seconds: float = 2.0, seed: int = 0) -> tuple[float | None, str | None]:
    """render_heatmap calls per second at 512x512 with 20 fixations in this thread, or (None, why)."""
    try:
        from radgaze.capture.gazemath.heatmap import heatmap_grid, render_heatmap
    except ImportError as exc:
        return None, f"radgaze.capture.gazemath.heatmap not available ({exc})"
    rng = np.random.default_rng(seed)
    size = HEATMAP_SIZE_PX
    grid = heatmap_grid(size, size)  # 512 x 512 map, 1 image px per map px
    sets = [
        (rng.uniform(0, size, HEATMAP_FIXATIONS), rng.uniform(0, size, HEATMAP_FIXATIONS),
         rng.uniform(0.1, 0.6, HEATMAP_FIXATIONS))
        for _ in range(64)
    ]  # fmt: skip
    # 1 degree on a 512 px image fitted to the default display: ~40 screen px/deg * 512/2048 = ~10 px; use 15
    sigma_img_px = 15.0
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, y, w = sets[n % len(sets)]
        render_heatmap(x, y, w, sigma_img_px, grid=grid)
        n += 1
    return round(n / (time.perf_counter() - t0), 1), None


def bench_heatmap_latency(n_sentences: int = 40) -> tuple[dict | None, str | None]:
    """Latency (ms) from a sentence's last word final to its heatmap stored, or (None, why)."""
    try:
        from radgaze.capture.gazemath.geometry import fit_view
        from radgaze.capture.live.pipeline import LivePipeline
        from radgaze.capture.store.writer import SessionWriter
    except ImportError as exc:
        return None, f"radgaze.capture.live.pipeline (LiveAligner + SessionWriter) not available ({exc})"
    return _measure_live_pipeline(LivePipeline, SessionWriter, fit_view, n_sentences), None


def _measure_live_pipeline(live_pipeline, session_writer, fit_view, n_sentences: int) -> dict:
    """The recorder's own path (radgaze.capture.live.pipeline.LivePipeline on a live SWMR session file): screen gaze in
    10 ms chunks runs ahead of the words, as it does when ASR lags speech; for each sentence its final words
    go in and the clock stops when its heatmap is appended to the file, and again after a flush (what a
    reader of the live file can see). Gaze is the built-in scanpath, 250 Hz; sentences ~ 3.3 s apart."""
    from radgaze.capture.base.records import ImageRef
    from radgaze.capture.gazemath.scanpath import synthetic_scanpath

    display = DisplayGeometry()
    size = 2048
    rate_hz, chunk_s, sentence_s, asr_lag_s = 250.0, 0.01, 3.3, 0.8
    image = ImageRef("bench.png", "0" * 64, size, size)
    t_base = 1000.0
    gaze = synthetic_scanpath(0, n_sentences * sentence_s + 5.0, rate_hz, display)
    gaze["t_lsl"] += t_base
    appended, stored, n_closed, n_maps = [], [], 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        writer = session_writer(Path(tmp) / "bench.h5", reader_id="bench", live=True)
        try:
            view = fit_view(size, size, display, t_lsl=t_base)
            pipe = live_pipeline(writer, case_id="bench", image=image, display=display, initial_view=view)
            k, per_chunk = 0, int(rate_hz * chunk_s)
            for i in range(n_sentences):
                t0_s = t_base + 1.0 + i * sentence_s
                t_final = t0_s + 2.5 + asr_lag_s  # the last word ends at t0 + 2.5; ASR is final a bit later
                while k < gaze.size and gaze["t_lsl"][k] < t_final:
                    pipe.push_gaze(gaze[k : k + per_chunk])
                    k += per_chunk
                words = Words(
                    t0_s + np.array([0.0, 0.6, 1.4, 2.3]), t0_s + np.array([0.5, 1.3, 2.2, 2.5]),
                    ["small", "left", "opacity", "."], np.ones(4, np.float32),
                )  # fmt: skip
                t0 = time.perf_counter()
                closed = pipe.push_words(words)
                appended.append(time.perf_counter() - t0)
                writer.flush()
                stored.append(time.perf_counter() - t0)
                n_closed += len(closed)
                n_maps += sum(c.heatmap is not None for c in closed)
            pipe.finish()
        finally:
            writer.close()
    if n_closed != n_sentences:
        raise RuntimeError(
            f"heatmap latency bench: expected {n_sentences} sentences to close, {n_closed} did"
        )
    return {
        "appended_p95_ms": round(float(np.percentile(np.array(appended) * 1e3, 95)), 3),
        "stored_p95_ms": round(float(np.percentile(np.array(stored) * 1e3, 95)), 3),
        "stored_max_ms": round(float(np.max(stored) * 1e3), 3),
        "n_sentences": n_closed,
        "n_heatmaps": n_maps,
    }


# ---------------------------------------------------------------------------------------------------------


def ratios(figures: dict) -> dict:
    """Each goal: the figure, the goal, the ratio figure/goal (lost: the count), and whether it is met."""
    return goal_table(figures, GOALS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radgaze bench capture",
        description="Benchmark capture: LSL ingest from another process (rate, lost samples, latency), "
        "sentence heatmap latency, heatmap throughput. Goals: 0 lost, p99 < 5 ms, p95 <= 50 ms, >= 1000/s.",
        epilog="example: radgaze bench capture --json --duration 10 --rate 2000",
        formatter_class=DefaultsOnceFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--duration", type=float, default=10.0, help="ingest duration in seconds")
    p.add_argument("--rate", type=float, default=2000.0, help="ingest sample rate in Hz")
    p.add_argument("--skip-ingest", action="store_true", help="only the heatmap figures")
    p.add_argument("--sentences", type=int, default=40, help="sentences in the heatmap latency run")
    p.add_argument("--serve-outlet", nargs=3, metavar=("NAME", "RATE", "DURATION"), help=argparse.SUPPRESS)
    p.add_argument("--measure-heatmaps", type=float, metavar="SECONDS", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_outlet:
        name, rate, duration = args.serve_outlet
        return serve_outlet(name, float(rate), float(duration))
    if args.measure_heatmaps:
        rate, why = bench_heatmaps_per_s(args.measure_heatmaps)
        print(json.dumps({"heatmaps_per_s": rate, "why": why}))
        return 0
    figures: dict = {"ingest_rate_hz": None, "ingest_lost_samples": None, "ingest_latency_p99_ms": None}
    notes = {}
    if not args.skip_ingest:
        figures.update(bench_ingest(args.rate, args.duration))
    latency, why = bench_heatmap_latency(args.sentences)
    figures["heatmap_latency_p95_ms"] = latency["stored_p95_ms"] if latency else None
    if latency:
        figures["heatmap_latency"] = latency
    if why:
        notes["heatmap_latency_p95_ms"] = why
    figures["heatmaps_per_s"], why = bench_heatmaps_per_s_one_thread()
    if why:
        notes["heatmaps_per_s"] = why
    figures["config"] = {"rate_hz": args.rate, "duration_s": args.duration}
    print_result(bench_result(figures, GOALS, notes), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
