"""Whole synthetic readings: deterministic, localised (each finding's sentence heatmap lies on the finding),
written as session files with their images beside them, and the ``radgaze synth`` command end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from radgaze.capture.base.records import VIEW_ZOOM
from radgaze.capture.io.images import load_image
from radgaze.capture.store.reader import SessionReader, list_sessions
from radgaze.capture.synth import synth_reading, write_synthetic_sessions
from radgaze.capture.synth.phantom import Anatomy, region_mask
from radgaze.capture.synth.preview import write_preview

SIZE = 256


@pytest.fixture(scope="module")
def reading():
    """Twelve cases with every finding kind several times (forced, so the test does not rest on chance)."""
    forced = [
        [("consolidation", "right", "lower"), ("nodule", "left", "upper")],
        [("pleural_effusion", "left", "lower")],
        [("cardiomegaly", "", ""), ("pneumothorax", "right", "upper")],
        [("nodule", "right", "middle"), ("consolidation", "left", "middle")],
        [],
        [("pneumothorax", "left", "upper"), ("pleural_effusion", "right", "lower")],
        [("consolidation", "right", "upper")],
        [("nodule", "left", "lower"), ("cardiomegaly", "", "")],
        [("consolidation", "left", "lower")],
        [("pleural_effusion", "right", "lower"), ("nodule", "right", "upper")],
        [("pneumothorax", "right", "upper")],
        [],
    ]
    return synth_reading(5, n_cases=len(forced), image_size=SIZE, rate_hz=250.0, findings=forced)


def _dilate(mask: np.ndarray, radius_cells: float) -> np.ndarray:
    r = int(np.ceil(radius_cells))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return ndimage.binary_dilation(mask, structure=(xx**2 + yy**2) <= radius_cells**2)


def _sigma_cells(case) -> float:
    """1 degree of visual angle in heatmap cells (the heatmap sigma when fitted)."""
    return float(np.median(case.fixations["ppd_img"])) / case.heatmap_scale


def test_same_seed_same_reading_and_cases_depend_only_on_their_index():
    a = synth_reading(3, n_cases=2, image_size=128)
    b = synth_reading(3, n_cases=2, image_size=128)
    c = synth_reading(3, n_cases=1, image_size=128)
    d = synth_reading(4, n_cases=1, image_size=128)
    for x, y in zip(a, b):
        assert x.case_id == y.case_id
        assert x.gaze.tobytes() == y.gaze.tobytes()  # bytes: invalid samples hold NaN
        assert x.fixations.tobytes() == y.fixations.tobytes()
        assert x.words.text == y.words.text and x.sentences.text == y.sentences.text
        np.testing.assert_array_equal(x.heatmaps, y.heatmaps)
    assert a.pngs == b.pngs
    assert a[0].gaze.tobytes() == c[0].gaze.tobytes()
    assert a.pngs[0] == c.pngs[0]
    assert a.pngs[0] != d.pngs[0]
    assert a[1].t_start > a[0].t_end  # cases follow each other on one clock


def test_each_finding_sentence_heatmap_lies_on_the_finding(reading):
    """Ground truth: the heatmap of the sentence that names a finding puts most of its mass on the finding
    (its mask widened by the 1-degree heatmap sigma), far above the mask's share of the image."""
    n = 0
    for case in reading:
        for f in case.findings:
            hm = case.sentence_heatmap(f.sentence_index)
            assert hm is not None, f"{case.case_id}: no heatmap for {f.label}"
            area = _dilate(f.mask, 1.5 * _sigma_cells(case))
            mass = float(hm[area].sum())
            assert mass > 0.6, f"{case.case_id} {f.label}: {mass:.2f} of the heatmap on the finding"
            assert mass > 2.5 * area.mean(), f"{case.case_id} {f.label}: no better than chance"
            n += 1
    assert n >= 15


def test_each_finding_sentence_names_it(reading):
    for case in reading:
        for f in case.findings:
            text = case.sentences.text[f.sentence_index].lower()
            side = f.location.split()[0]
            assert f.label == "cardiomegaly" or side in text
            key = {"pleural_effusion": "effusion", "cardiomegaly": "cardi|heart", "nodule": "nodul"}.get(
                f.label
            )
            assert any(k in text for k in (key or f.label[:8]).split("|")) or f.label == "consolidation"


def test_fixations_land_on_findings_before_the_sentence_starts(reading):
    """Eye-voice lead: a fixation on the finding begins shortly (0-1.6 s) before its sentence is spoken."""
    leads = []
    for case in reading:
        fx = case.fixations
        for f in case.findings:
            area = _dilate(f.mask, _sigma_cells(case))
            r = np.clip((fx["y_img_px"] / case.heatmap_scale).astype(int), 0, area.shape[0] - 1)
            c = np.clip((fx["x_img_px"] / case.heatmap_scale).astype(int), 0, area.shape[1] - 1)
            on = area[r, c]
            t0 = case.sentences.t_start[f.sentence_index]
            t1 = case.sentences.t_end[f.sentence_index]
            during = on & (fx["t_start"] < t1) & (fx["t_end"] > t0 - 1.6)
            # one fixation at least: the I-VT velocity window (20 ms) joins the small in-dwell saccades
            assert during.sum() >= 1, f"{case.case_id} {f.label}: {during.sum()} fixations on it"
            leads.append(t0 - fx["t_start"][during].min())
    leads = np.array(leads)
    assert 0.5 < np.median(leads) < 1.4 and np.all(leads < 2.0)


def test_normal_statements_look_at_their_anatomy(reading):
    hits, total = 0, 0
    for case in reading:
        for i, text in enumerate(case.sentences.text):
            if "heart size" not in text.lower():
                continue
            hm = case.sentence_heatmap(i)
            assert hm is not None
            # heart region of this case's anatomy is unknown here; use the default's, widened generously
            heart = _dilate(region_mask("heart", Anatomy(), *hm.shape), 2 * _sigma_cells(case))
            hits += float(hm[heart].sum()) > 0.6
            total += 1
    assert total >= 3 and hits / total > 0.8


def test_reading_has_blinks_zoom_and_valid_structure(reading):
    zoomed = [c for c in reading if np.any(c.view_events["kind"] == VIEW_ZOOM)]
    for case in reading:
        assert len(case.sentences) >= 3
        assert np.all(np.diff(case.gaze["t_lsl"]) > 0)
        assert case.t_start <= case.gaze["t_lsl"][0] and case.gaze["t_lsl"][-1] <= case.t_end
        assert case.labels == (sorted({f.label for f in case.findings}) or ["normal"])
        assert case.heatmaps.shape[1:] == (SIZE, SIZE)
        assert np.allclose(case.heatmaps.sum(axis=(1, 2)), 1.0, atol=1e-4)
    assert zoomed, "with zoom_p=0.3 over 10 finding cases, at least one reading zooms"


def test_written_sessions_read_back_with_their_images(tmp_path):
    paths = write_synthetic_sessions(tmp_path, 5, 9, cases_per_file=2, image_size=128, rate_hz=120.0)
    assert [p.name for p in paths] == ["synth-s9-000.h5", "synth-s9-001.h5", "synth-s9-002.h5"]
    assert list_sessions(tmp_path) == paths
    ids = []
    for path in paths:
        with SessionReader(path) as r:
            assert r.provenance["source"] == "synthetic" and r.provenance["tracker"]["rate_hz"] == 120.0
            for case in r.cases():
                ids.append(case.case_id)
                assert not Path(case.image.path).is_absolute()
                img = load_image(path.parent / case.image.path)
                assert img.pixels.dtype == np.uint16 and img.pixels.shape == (128, 128)
                assert img.meta.sha256 == case.image.sha256
                assert len(case.gaze) > 0 and len(case.fixations) > 0 and len(case.words) > 0
                assert case.findings is not None
                for f in case.findings:
                    assert 0 <= f.sentence_index < len(case.sentences) and f.mask.any()
    assert ids == [f"synth9-{i:04d}" for i in range(5)]
    # the same cases as the in-memory API gives
    mem = synth_reading(9, n_cases=2, image_size=128, rate_hz=120.0)
    with SessionReader(paths[0]) as r:
        assert r.case(mem[1].case_id).gaze.tobytes() == mem[1].gaze.tobytes()


def test_preview_is_drawn(tmp_path, artifacts_dir, reading):
    out = write_preview(artifacts_dir / "synth_preview.png", reading[0], reading.images[0], side_px=384)
    from PIL import Image

    im = Image.open(out)
    assert im.size[0] == 768 and im.size[1] > 384
    arr = np.asarray(im.convert("RGB")).astype(int)
    assert np.any((arr[..., 0] > 200) & (arr[..., 1] < 100))  # a finding outline / fixation drawn in colour


def _radgaze(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "sessions"
    preview = tmp_path / "preview.png"
    repo = Path(__file__).resolve().parents[2]
    proc = _radgaze(
        "synth", str(out), "--cases", "3", "--seed", "2", "--rate", "500", "--size", "256",
        "--cases-per-file", "2", "--display", "1920x1080", "--preview", str(preview), cwd=repo,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    files = sorted(out.glob("*.h5"))
    assert len(files) == 2 and len(list(out.glob("*.png"))) == 3 and preview.is_file()
    info = _radgaze("inspect", str(files[0]), "--json", cwd=repo)
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["valid"] and [c["case_id"] for c in doc["cases"]] == ["synth2-0000", "synth2-0001"]
    assert all(c["gaze_samples"] > 0 and c["sentences"] > 0 for c in doc["cases"])
    with SessionReader(files[0]) as r:
        case = r.case("synth2-0000")
        assert (case.display.screen_w_px, case.display.screen_h_px) == (1920, 1080)
        g = case.gaze[(case.gaze["flags"] & 1) > 0]
        assert np.median(np.diff(case.gaze["t_lsl"])) == pytest.approx(1 / 500)
        assert 0 < np.median(g["x_screen_px"]) < 1920 and 0 < np.median(g["y_screen_px"]) < 1080
    bad = _radgaze("synth", str(out / "x"), "--rate", "5", cwd=repo)
    assert bad.returncode == 2 and "--rate" in bad.stderr and "Traceback" not in bad.stderr
    again = _radgaze("synth", str(out), "--cases", "1", "--seed", "2", "--size", "64", cwd=repo)
    assert again.returncode == 2 and "synth-s2-000.h5" in again.stderr and "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
