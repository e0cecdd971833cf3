from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from radgaze.training import data as tdata
from radgaze.training.config import DataConfig


# --------------------------------------------------------------------------------------- pure geometry
@pytest.mark.parametrize("h, w", [(300, 200), (200, 300), (256, 256), (1000, 517)])
def test_letterbox_moves_heatmaps_with_the_image(h, w):
    """A bright pixel in the image and a point mass in its heatmap land on the same square position."""
    size = 112
    y0, x0 = int(h * 0.3), int(w * 0.7)
    img = np.zeros((h, w), np.float32)
    img[y0 - 3 : y0 + 4, x0 - 3 : x0 + 4] = 1.0
    sq, lb = tdata.letterbox_image(img, size)
    assert sq.shape == (1, size, size)
    # heatmap at half the image resolution (as the store keeps it), same place
    hm = np.zeros((h // 2, w // 2), np.float32)
    hm[y0 // 2 - 1 : y0 // 2 + 2, x0 // 2 - 1 : x0 // 2 + 2] = 1.0
    hm_sq = tdata.letterbox_heatmap(hm / hm.sum(), lb)
    assert hm_sq.sum() == pytest.approx(1.0, abs=1e-5)
    iy, ix = np.unravel_index(np.argmax(sq[0].numpy()), (size, size))
    cy = (hm_sq * np.arange(size)[:, None]).sum()
    cx = (hm_sq * np.arange(size)[None, :]).sum()
    assert abs(cy - iy) <= 1.5 and abs(cx - ix) <= 1.5
    ex, ey = lb.to_square_xy(np.float64(x0 + 0.5), np.float64(y0 + 0.5))
    assert abs(ex - (cx + 0.5)) <= 1.5 and abs(ey - (cy + 0.5)) <= 1.5
    # padding stays empty in both
    pad = np.ones((size, size), bool)
    pad[lb.top_px : lb.top_px + lb.new_h, lb.left_px : lb.left_px + lb.new_w] = False
    assert float(sq[0].numpy()[pad].sum()) == 0.0 and float(hm_sq[pad].sum()) == 0.0


def test_patch_grid_area_sums_and_normalises():
    m = np.zeros((112, 112), np.float32)
    m[0:16, 0:16] = 1.0  # exactly patch (0, 0) of a 7x7 grid
    m[96:112, 96:112] = 3.0  # patch (6, 6)
    g = tdata.to_patch_grid(m, 7)
    assert g.shape == (7, 7) and g.sum() == pytest.approx(1.0)
    assert g[0, 0] == pytest.approx(0.25) and g[6, 6] == pytest.approx(0.75)
    assert tdata.to_patch_grid(np.zeros((112, 112)), 7).sum() == 0.0
    odd = tdata.to_patch_grid(np.ones((100, 100), np.float32), 7)
    assert odd.sum() == pytest.approx(1.0) and np.allclose(odd, odd[0, 0])


def test_gaze_selection_is_deterministic_by_seed_and_sized_by_ratio():
    keys = [f"s{i:03d}.h5::c{i}" for i in range(200)]
    a = tdata.select_gaze_cases(keys, 0.05, seed=3)
    assert a == tdata.select_gaze_cases(list(reversed(keys)), 0.05, seed=3)
    assert len(a) == 10
    assert a != tdata.select_gaze_cases(keys, 0.05, seed=4)
    assert tdata.select_gaze_cases(keys, 0.0, 3) == set()
    assert tdata.select_gaze_cases(keys, 1.0, 3) == set(keys)
    assert len(tdata.select_gaze_cases(keys[:20], 0.01, 3)) == 1  # at least one case when the ratio is > 0
    # nested: a larger ratio keeps the cases of a smaller one (same seed)
    assert tdata.select_gaze_cases(keys, 0.01, 3) <= a <= tdata.select_gaze_cases(keys, 0.5, 3)


def test_photometric_augmentation_is_seeded_and_keeps_geometry():
    x = torch.zeros(1, 32, 32)
    x[:, 8:16, 8:16] = 0.8
    cfg = DataConfig(sharpness_p=0.0)
    a = tdata.photometric_augment(x, cfg, torch.Generator().manual_seed(1))
    b = tdata.photometric_augment(x, cfg, torch.Generator().manual_seed(1))
    c = tdata.photometric_augment(x, cfg, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    # the bright square stays where it was
    assert a[:, 8:16, 8:16].mean() > a[:, 20:, 20:].mean()


# ------------------------------------------------------------------------------ sessions (radgaze.capture.synth)
def test_index_lists_cases_and_is_cached_then_refreshed(sessions_copy: Path):
    idx = tdata.build_index(sessions_copy)
    assert len(idx.cases) == 16 and not idx.skipped
    assert idx.refreshed_files == idx.n_files >= 1
    assert (sessions_copy / tdata.INDEX_NAME).is_file()
    again = tdata.build_index(sessions_copy)
    assert again.refreshed_files == 0 and [c.key for c in again.cases] == [c.key for c in idx.cases]
    # touching one file (mtime) makes exactly that file re-read
    f = sorted(sessions_copy.rglob("*.h5"))[0]
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert tdata.build_index(sessions_copy).refreshed_files == 1


def test_damaged_file_is_skipped_with_a_warning_and_counted(sessions_copy: Path, caplog):
    bad = sessions_copy / "zz_damaged.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(2000))  # HDF5 magic, garbage after
    (sessions_copy / "zz_empty.h5").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="radgaze.training.data"):
        idx = tdata.build_index(sessions_copy)
    assert len(idx.cases) == 16
    assert {s["file"] for s in idx.skipped} == {"zz_damaged.h5", "zz_empty.h5"}
    assert idx.report()["n_skipped"] == 2
    assert "zz_damaged.h5" in caplog.text


def test_dataset_items_have_matching_shapes_and_gaze_ratio_zeroes_gaze(synth_sessions: Path):
    idx = tdata.build_index(synth_sessions)
    keys = [c.key for c in idx.cases]
    keep = tdata.select_gaze_cases(keys, 0.5, seed=0)
    ds = tdata.SessionDataset(
        synth_sessions, idx.cases, DataConfig(), image_size=112, n_side=7, gaze_keys=keep
    )
    n_gaze = 0
    for i in range(len(ds)):
        it = ds[i]
        assert it["image"].shape == (3, 112, 112) and torch.isfinite(it["image"]).all()
        m = len(it["sentences"])
        assert m >= 1 and it["gaze"].shape == (m, 49)
        rows = it["gaze"].sum(dim=1)
        assert torch.all((rows.abs() < 1e-5) | ((rows - 1).abs() < 1e-4))
        if it["key"] in keep:
            n_gaze += bool(it["has_gaze"])
        else:
            assert not it["has_gaze"] and float(it["gaze"].abs().sum()) == 0.0
    assert n_gaze >= 1
    # augmentation depends on (seed, epoch, index) only
    assert torch.equal(ds[(0, 3)]["image"], ds[(0, 3)]["image"])
    assert not torch.equal(ds[(0, 3)]["image"], ds[(1, 3)]["image"])
    batch = tdata.collate([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 112, 112)
    assert batch["gaze"].shape[0] == 4 and batch["gaze"].shape[1] == max(len(r) for r in batch["reports"])


def test_index_cache_file_is_valid_json_with_sizes(sessions_copy: Path):
    tdata.build_index(sessions_copy)
    blob = json.loads((sessions_copy / tdata.INDEX_NAME).read_text())
    entry = next(iter(blob["files"].values()))
    assert {"size", "mtime_ns", "cases", "problems"} <= set(entry)


def test_gaze_floor_keeps_above_uniform_patches_and_renormalises():
    rows = np.array([[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25], [0, 0, 0, 0]], np.float32)
    out = tdata.apply_gaze_floor(rows, 1.0)  # uniform mass is 0.25
    assert np.allclose(out[0], [0.625, 0.375, 0, 0])
    assert np.allclose(out[1], rows[1])  # a flat row keeps everything (each patch is a maximum)
    assert np.all(out[2] == 0)
    assert tdata.apply_gaze_floor(rows, 0.0) is rows
    assert np.allclose(tdata.apply_gaze_floor(rows[:1], 10.0)[0], [1, 0, 0, 0])  # at least the maximum
