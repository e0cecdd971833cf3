"""Session schema 2: compressed datasets (filters listed in one place), 16-bit heatmaps within their
documented precision, SWMR appends through the filters, and schema-1 files still read."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, DisplayGeometry, ImageRef, Words
from radgaze.capture.gazemath.heatmap import heatmap_grid
from radgaze.capture.store import inspect_cmd
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.schema import CASE_DATASETS, HEATMAP_FULL_SCALE, SCHEMA_VERSION
from radgaze.capture.store.summary import describe_session
from radgaze.capture.store.writer import SessionWriter

V1_FIXTURE = Path(__file__).parent / "data" / "session_v1.h5.gz"
IMAGE = ImageRef(path="img.png", sha256="cd" * 32, width=2048, height=1536)


def _v1_file(tmp_path: Path) -> Path:
    """The schema-1 file committed as a fixture: written by the schema-1 writer (radgaze commit abd3ba6) with
    one case: 300 gaze rows, 2 fixations, 2 words, 2 sentences (the second the empty marker), one 64 x 48
    Gaussian heatmap, 8,000 audio samples in 2 blocks, one finding with its mask."""
    path = tmp_path / "v1.h5"
    with gzip.open(V1_FIXTURE, "rb") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def _gaussian(h: int, w: int, cx: float, cy: float, sigma_px: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma_px**2)).astype(np.float32)
    return m / m.sum()


def _gaze(t0: float, n: int) -> np.ndarray:
    g = np.zeros(n, GAZE_DTYPE)
    g["t_lsl"] = t0 + np.arange(n) / 1000.0
    g["x_screen_px"] = 700 + 30 * np.sin(np.arange(n) / 50.0)
    g["y_screen_px"] = 900 + 20 * np.cos(np.arange(n) / 70.0)
    g["flags"] = GAZE_VALID
    return g


def test_schema_1_file_still_reads(tmp_path: Path):
    path = _v1_file(tmp_path)
    with SessionReader(path) as r:
        assert r.schema_version == 1 < SCHEMA_VERSION
        assert r.reader_id == "R7" and r.case_ids == ["c1"]
        c = r.case("c1")
    assert c.complete and c.gaze.size == 300 and c.fixations.size == 2
    assert c.words.text == ["Heart", "enlarged."]
    assert c.sentences.text == ["Heart enlarged.", "Ünïcode sentence with no gaze."]
    assert c.sentence_heatmap(1) is None
    hm = c.sentence_heatmap(0)
    assert hm.dtype == np.float32 and hm.shape == (48, 64)
    np.testing.assert_array_equal(hm, _gaussian(48, 64, 20, 10, 4.0))  # float32 as written, exactly
    assert c.audio.samples.size == 8000 and c.audio.block_first_sample.tolist() == [0, 4000]
    assert c.findings[0].label == "cardiomegaly" and c.findings[0].mask.sum() == 100
    d = describe_session(path)
    assert d["valid"] and d["schema_version"] == 1
    sizes = d["cases"][0]["datasets"]
    assert sizes["heatmaps"]["dtype"] == "float32" and sizes["heatmaps"]["filters"] == []
    assert "heatmap_peak" not in sizes


def test_every_case_dataset_has_the_listed_filter(tmp_path: Path):
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        w.begin_case("c", IMAGE, DisplayGeometry(), t_start=0.0)
        w.end_case(1.0)
    with h5py.File(path, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION == 5
        g = f["cases/c"]
        assert set(g) == set(CASE_DATASETS) | {"heatmaps"}
        for name, spec in CASE_DATASETS.items():
            assert g[name].dtype == spec.dtype and g[name].chunks == (spec.chunk_rows,)
            assert (g[name].compression == "blosc" or "32001" in g[name]._filters) == bool(spec.codec)
        assert g["heatmaps"].dtype == np.uint16 and "32001" in g["heatmaps"]._filters
        assert all(g[name].fletcher32 for name in g)  # every dataset checksummed


def test_heatmaps_round_trip_within_the_documented_precision(tmp_path: Path):
    h, w, _ = heatmap_grid(IMAGE.width, IMAGE.height)
    rng = np.random.default_rng(3)
    maps = [_gaussian(h, w, *rng.uniform(0, w, 1), rng.uniform(0, h), sigma) for sigma in (2.0, 6.0, 40.0)]
    maps.append(np.full((h, w), 1.0 / (h * w), np.float32))  # the flattest map: every value the peak
    single = np.zeros((h, w), np.float32)
    single[7, 9] = 1.0
    maps.append(single)
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w_:
        w_.begin_case("c", IMAGE, DisplayGeometry(), t_start=0.0)
        for i, m in enumerate(maps):
            w_.append_sentence(
                t_start=i, t_end=i + 1, window_start=i, window_end=i + 1, text=f"s{i}", heatmap=m,
                n_fixations=1,
            )  # fmt: skip
        w_.end_case(10.0)
    with SessionReader(path) as r:
        c = r.case("c")
    assert c.heatmaps.dtype == np.float32 and c.heatmaps.shape == (len(maps), h, w)
    for got, want in zip(c.heatmaps, maps):
        peak = float(want.max())
        assert float(np.max(np.abs(got - want))) <= 0.51 * peak / HEATMAP_FULL_SCALE  # half a step
        assert abs(float(got.sum()) - 1.0) < 1e-4
        assert int(np.argmax(got)) == int(np.argmax(want))
    np.testing.assert_array_equal(c.heatmaps[-1], single)  # full scale reads back exactly
    assert describe_session(path)["valid"]


def test_writer_rejects_heatmaps_it_cannot_store(tmp_path: Path):
    h, w, _ = heatmap_grid(IMAGE.width, IMAGE.height)
    with SessionWriter(tmp_path / "s.h5") as wr:
        wr.begin_case("c", IMAGE, DisplayGeometry(), t_start=0.0)
        bad = np.zeros((h, w), np.float32)
        bad[0, 0] = -0.1
        with pytest.raises(ValueError, match="non-negative"):
            wr.append_sentence(
                t_start=0, t_end=1, window_start=0, window_end=1, text="x", heatmap=bad, n_fixations=1
            )
        bad[0, 0] = np.inf
        with pytest.raises(ValueError, match="finite"):
            wr.append_sentence(
                t_start=0, t_end=1, window_start=0, window_end=1, text="x", heatmap=bad, n_fixations=1
            )
        wr.end_case(1.0)
    with SessionReader(tmp_path / "s.h5") as r:  # nothing half-written by the refused calls
        c = r.case("c")
    assert len(c.sentences) == 0 and c.heatmaps.shape[0] == 0


def test_live_swmr_appends_through_the_filters_are_seen_by_a_reader(tmp_path: Path):
    """Rows held for the flush reach an SWMR reader after it; the compressed chunks grow across flushes;
    the file is not inflated by the rewritten chunks (HDF5 does not reuse space freed under SWMR)."""
    path = tmp_path / "live.h5"
    h, w, _ = heatmap_grid(IMAGE.width, IMAGE.height)
    writer = SessionWriter(path, live=True, flush_interval_s=3600)  # flush only when asked
    writer.begin_case("c", IMAGE, DisplayGeometry(), t_start=0.0)
    reader = SessionReader(path)
    try:
        t, sent = 0.0, []
        for step in range(30):  # 30 flushes of 200 gaze rows + 3,200 audio samples, a sentence every 10
            sent.append(_gaze(t, 200))
            for part in np.split(sent[-1], 10):  # as a recorder appends: 20 rows at a time
                writer.append_gaze(part)
            audio = (1000 * np.sin(np.arange(3200) / 7.0)).astype(np.int16)
            writer.append_audio(audio, t)
            if step % 10 == 9:
                writer.append_words(Words(np.array([t]), np.array([t + 0.1]), ["x."], np.ones(1, "f4")))
                writer.append_sentence(
                    t_start=t, t_end=t + 0.1, window_start=t - 1, window_end=t + 0.1, text="x.",
                    heatmap=_gaussian(h, w, 100 + step, 200, 12.0), n_fixations=2,
                )  # fmt: skip
            reader.refresh()
            before = reader.case("c")
            writer.flush()
            reader.refresh()
            after = reader.case("c")
            assert before.gaze.size == 200 * step and after.gaze.size == 200 * (step + 1)
            assert after.audio.samples.size == 3200 * (step + 1)
            assert after.heatmaps.shape[0] == len(after.sentences) == (step + 1) // 10
            t += 0.2
        np.testing.assert_array_equal(after.gaze, np.concatenate(sent))
    finally:
        reader.close()
        writer.end_case(t)
    live_bytes = path.stat().st_size
    writer.close()  # compacts: the copies of rewritten chunks that SWMR flushes left behind go
    assert path.stat().st_size < live_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["live.h5"]
    d = describe_session(path)
    assert d["valid"]
    sizes = d["cases"][0]["datasets"]
    assert sizes["heatmaps"]["stored_bytes"] * 10 < sizes["heatmaps"]["data_bytes"]
    assert sizes["gaze"]["stored_bytes"] < sizes["gaze"]["data_bytes"]
    stored = sum(s["stored_bytes"] for s in sizes.values())
    assert d["file_bytes"] < 1.2 * stored + 100_000, "rewritten chunks were left behind in the file"


def test_inspect_prints_per_dataset_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "s.h5"
    h, w, _ = heatmap_grid(IMAGE.width, IMAGE.height)
    with SessionWriter(path) as wr:
        wr.begin_case("c", IMAGE, DisplayGeometry(), t_start=0.0)
        wr.append_gaze(_gaze(0.0, 5000))
        wr.append_sentence(
            t_start=0, t_end=1, window_start=0, window_end=1, text="x.", heatmap=_gaussian(h, w, 50, 60, 9.0),
            n_fixations=1,
        )  # fmt: skip
        wr.end_case(5.0)
    assert inspect_cmd.main([str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    hm = info["cases"][0]["datasets"]["heatmaps"]
    assert hm["data_bytes"] == h * w * 2 and 0 < hm["stored_bytes"] < hm["data_bytes"]
    assert hm["filters"] == ["blosc", "fletcher32"] and info["file_bytes"] == path.stat().st_size
    assert inspect_cmd.main([str(path)]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("    ")}
    assert "heatmaps" in lines and "gaze" in lines and "blosc" in lines["heatmaps"]
    assert "uint16" in lines["heatmaps"] and "on disk" in out
