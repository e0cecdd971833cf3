"""`radgaze bench store` measures a real live writer: the file grows with what was written."""

from __future__ import annotations

from pathlib import Path

from radgaze.capture.bench.store import measure
from radgaze.capture.store.reader import SessionReader


def test_store_bench_measures_a_readable_live_file(tmp_path: Path):
    (tmp_path / "a").mkdir()
    with_audio = measure(0.1, 500.0, True, tmp_path / "a")
    with SessionReader(tmp_path / "a" / "bench.h5") as r:
        case = r.case("bench")
    assert case.complete and case.gaze.size == 3000 and case.audio.samples.size == 1600 * 60
    assert len(case.sentences) == 1 and case.heatmaps.shape[0] == 1
    (tmp_path / "b").mkdir()
    gaze_only = measure(0.1, 500.0, False, tmp_path / "b")
    assert with_audio["file_mb_per_min"] > gaze_only["file_mb_per_min"] > 0
    assert 0 < gaze_only["write_overhead_cpu_s_per_s"] < 1
