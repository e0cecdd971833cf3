"""``radgaze bench store``: session-file size per minute of reading and the writer's overhead.

A synthetic minute of live recording is pushed through a live (SWMR) SessionWriter as a recorder would:
gaze chunks every 20 ms, 16 kHz audio blocks every 100 ms, words and a sentence heatmap every 6 s, a flush
every 0.25 s of recording. The time spent inside writer calls is the write overhead (CPU seconds per second
recorded, the compaction at close included); the file size is measured after close (``file_mb_per_min``)
and just before it (``live_file_mb_per_min``: what a crash leaves, with the space SWMR flushes left
behind). Per-dataset stored sizes show where the bytes go (schema 2: Blosc lz4/zstd after a byte shuffle,
16-bit heatmaps; docs/session-format.md). The synthetic audio is white noise (+-3000), the gaze random positions:
close to incompressible, so the figure is an upper bound for a real reading (speech and fixations compress
better).

Between cases the writer leaves SWMR mode and writes through its undo journal (capture/store/journal.py):
``case_switch_ms`` is the time of one ``end_case`` + ``begin_case`` (the reader waits on it when Space opens the
next image) over 24 cases of 2 s, ``annotation_write_ms`` that of one confirmed annotation step stored between
cases.

Goal (issue 12, section 2): <= 2.5 MB per minute of reading with audio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry, ImageRef, Words
from radgaze.capture.base.report import bench_result, print_result
from radgaze.capture.gazemath.heatmap import heatmap_grid
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.writer import SessionWriter

GOAL_MB_PER_MIN = 2.5
GOALS = {"with_audio_file_mb_per_min": ("<=", GOAL_MB_PER_MIN)}


def measure(minutes: float, gaze_hz: float, audio: bool, folder: Path) -> dict:
    """Record ``minutes`` of synthetic reading into ``folder/bench.h5``; its size and the writer's CPU time."""
    rng = np.random.default_rng(0)
    path = folder / "bench.h5"
    image = ImageRef("bench.png", "0" * 64, 2048, 2048)
    grid = heatmap_grid(image.width, image.height)[:2]
    tick = time.perf_counter
    t0 = tick()
    writer = SessionWriter(path, live=True)
    writer.begin_case("bench", image, DisplayGeometry(), t_start=0.0)
    spent = tick() - t0
    per_chunk, carry, t = gaze_hz * 0.02, 0.0, 0.0
    for k in range(int(minutes * 60 / 0.02)):
        carry += per_chunk
        n = int(carry)
        carry -= n
        gaze = _gaze_chunk(rng, t, n, gaze_hz)
        audio_block = rng.integers(-3000, 3000, 1600, dtype=np.int16) if audio and k % 5 == 0 else None
        sentence = _sentence(rng, t, grid) if k % 300 == 299 else None  # a sentence every 6 s
        t1 = tick()
        _write_step(writer, t, gaze, audio_block, sentence, flush=k % 13 == 12)
        spent += tick() - t1
        t += 0.02
    t1 = tick()
    writer.end_case(t)
    live_size = path.stat().st_size  # what a crash now would leave: SWMR flushes leave old chunk copies
    writer.close()  # compacts the file
    spent += tick() - t1
    size = path.stat().st_size
    with SessionReader(path) as reader:
        sizes = reader.dataset_sizes("bench")
    return {
        "recorded_s": round(t, 1),
        "gaze_hz": gaze_hz,
        "audio": audio,
        "file_mb_per_min": round(size / 2**20 / (t / 60), 2),
        "live_file_mb_per_min": round(live_size / 2**20 / (t / 60), 2),
        "dataset_mb_per_min": {
            name: round(d["stored_bytes"] / 2**20 / (t / 60), 3)
            for name, d in sizes.items()
            if d["stored_bytes"] >= 1024
        },
        "write_overhead_cpu_s_per_s": round(spent / t, 4),
        "write_overhead_percent_of_real_time": round(100 * spent / t, 2),
    }


def measure_case_switches(folder: Path, n_cases: int = 24) -> dict:
    """Milliseconds of each case switch (``end_case`` + the next ``begin_case``) and annotation write, p50/p95."""
    from radgaze.capture.base.records import CaseAnnotation, LabelChoice

    rng = np.random.default_rng(1)
    image = ImageRef("bench.png", "0" * 64, 2048, 2048)
    switches, annotations = [], []
    annotation = CaseAnnotation(labels=[LabelChoice("Atelectasis", 4)], confirmed_steps=["dictate", "labels"])
    with SessionWriter(folder / "cases.h5", live=True) as writer:
        t0 = time.perf_counter()
        for i in range(n_cases):
            writer.begin_case(f"c{i}", image, DisplayGeometry(), t_start=2.0 * i)
            if i:
                switches.append(time.perf_counter() - t0)
                t1 = time.perf_counter()
                writer.write_annotation(f"c{i - 1}", annotation, step="labels")
                annotations.append(time.perf_counter() - t1)
            for k in range(100):
                writer.append_gaze(_gaze_chunk(rng, 2.0 * i + 0.02 * k, 20, 1000.0))
                if k % 13 == 12:
                    writer.flush()
            t0 = time.perf_counter()
            writer.end_case(2.0 * i + 2.0)

    def p50_p95(seconds: list[float]) -> dict:
        return {q: round(float(np.percentile(seconds, v)) * 1000, 2) for q, v in (("p50", 50), ("p95", 95))}

    return {"case_switch_ms": p50_p95(switches), "annotation_write_ms": p50_p95(annotations)}


def _gaze_chunk(rng: np.random.Generator, t: float, n: int, gaze_hz: float) -> np.ndarray:
    """``n`` valid gaze samples from ``t`` on, scattered over a portrait display."""
    g = np.zeros(n, GAZE_DTYPE)
    g["t_lsl"] = t + np.arange(n) / gaze_hz
    g["x_screen_px"], g["y_screen_px"] = rng.normal(700, 200, n), rng.normal(1000, 300, n)
    g["flags"] = GAZE_VALID
    return g


def _sentence(rng: np.random.Generator, t: float, grid: tuple[int, int]) -> tuple[np.ndarray, Words]:
    """A normalised Gaussian heatmap on the map grid and the two words of the sentence it belongs to."""
    h, w = grid
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    hm = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 15.0**2)).astype(np.float32)
    words = Words(
        np.array([t - 2, t - 1]), np.array([t - 1.5, t - 0.5]), ["No", "effusion."], np.ones(2, "f4")
    )
    return hm / hm.sum(), words


def _write_step(writer: SessionWriter, t: float, gaze, audio_block, sentence, *, flush: bool) -> None:
    """What a recorder writes in one 20 ms step: gaze, maybe audio, maybe a sentence; every 0.25 s of
    recording a flush, as a recorder does (the loop runs faster than real time)."""
    writer.append_gaze(gaze)
    if audio_block is not None:
        writer.append_audio(audio_block, t)
    if sentence is not None:
        heatmap, words = sentence
        writer.append_words(words)
        writer.append_sentence(
            t_start=t - 2,
            t_end=t - 0.5,
            window_start=t - 3,
            window_end=t - 0.5,
            text="No effusion.",
            heatmap=heatmap,
            n_fixations=5,
        )
    if flush:
        writer.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="radgaze bench store",
        description=__doc__.split("\n\n")[0],
        epilog="example: radgaze bench store --minutes 1 --gaze-hz 1000 --json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--minutes", type=float, default=1.0, help="minutes of reading to simulate")
    p.add_argument("--gaze-hz", type=float, default=1000.0, help="gaze sample rate")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            measure(args.minutes, args.gaze_hz, audio, Path(tmp) / str(audio))
            for audio in (False, True)
            if (Path(tmp) / str(audio)).mkdir() is None
        ]
        switches = measure_case_switches(Path(tmp))
    figures = {
        **switches,
        "with_audio": rows[1],
        "gaze_only": rows[0],
        "with_audio_file_mb_per_min": rows[1]["file_mb_per_min"],
    }
    notes = {
        "audio": "white noise and random gaze: an upper bound for a real reading (speech compresses better)"
    }
    print_result(bench_result(figures, GOALS, notes), args.json)
    return 0
