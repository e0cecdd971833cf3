"""radgaze import egd: tiny EGD-CXR folders in the dataset's layout, imported and checked; broken files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from radgaze.capture.base.errors import ImportFormatError
from radgaze.capture.base.records import GAZE_ON_IMAGE, GAZE_VALID
from radgaze.capture.gazemath.heatmap import mass_inside
from radgaze.capture.importers.common import ellipse_mask
from radgaze.capture.importers.egd import EGD_DISPLAY, import_egd, padded_view
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.summary import describe_session

W_IMG, H_IMG = 800, 1000
PADS = (0, 0, 489, 489)  # top, bottom, left, right: padded to ~16:9 as EGD-CXR does
EFFUSION = (600.0, 850.0)  # image px
HEART = (380.0, 600.0)
GAZE_HEADER = (
    "SESSION_ID,MEDIA_ID,DICOM_ID,CNT,Time (in secs),TIMETICK(f=10000000),FPOGX,FPOGY,FPOGS,FPOGD,FPOGID,FPOGV,"
    "BPOGX,BPOGY,BPOGV,LPCX,LPCY,LPD,LPS,LPV,RPCX,RPCY,RPD,RPS,RPV,BKID,BKDUR,BKPMIN,LPMM,LPMMV,RPMM,RPMMV,"
    "SACCADE_MAG,SACCADE_DIR,VID_FRAME,X_ORIGINAL,Y_ORIGINAL"
).split(",")
# case -> (onset Time on the session clock, [(phrase, begin, end, gaze target during it)])
CASES = {
    "d1": (
        10.0,
        [
            ("Heart size is normal.", 2.0, 3.6, HEART),
            ("There is a left pleural effusion.", 6.0, 8.4, EFFUSION),
        ],
    ),
    "d2": (30.0, [("The lungs are clear.", 1.0, 2.6, HEART)]),
}


def _screen(x_img: float, y_img: float) -> tuple[float, float]:
    """Image px -> FPOG (fraction of the 1920x1080 screen) through the padded fit."""
    v = padded_view(W_IMG, H_IMG, PADS, EGD_DISPLAY, 0.0)[0]
    return (x_img * v["scale"] + v["offset_x"]) / 1920, (y_img * v["scale"] + v["offset_y"]) / 1080


def _plan(onset: float, phrases) -> list[tuple[float, float, tuple[float, float]]]:
    """(t0, t1, target): look at each phrase's target from 1 s before it to its end, heart otherwise."""
    spans, t = [], onset
    for _, b, e, target in phrases:
        if onset + b - 1.0 > t:
            spans.append((t, onset + b - 1.0, (100.0, 100.0)))
        spans.append((onset + b - 1.0, onset + e, target))
        t = onset + e
    spans.append((t, t + 1.0, (100.0, 100.0)))
    return spans


def _row(session: str, dicom: str, t: float, fx: float, fy: float, dur: float, valid: int, k: int) -> list:
    row = dict.fromkeys(GAZE_HEADER, 0)
    row.update(
        {
            "SESSION_ID": session,
            "MEDIA_ID": 1,
            "DICOM_ID": dicom,
            "CNT": k,
            "Time (in secs)": round(t, 4),
            "FPOGX": fx,
            "FPOGY": fy,
            "FPOGS": round(t, 4),
            "FPOGD": dur,
            "FPOGID": k,
            "FPOGV": valid,
            "LPD": 30.0,
            "RPD": 32.0,
        }
    )
    return [row[h] for h in GAZE_HEADER]


def make_egd(root: Path, *, fixations: bool = True, gaze: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    fix_rows, gaze_rows = [], []
    for dicom, (onset, phrases) in CASES.items():
        for t0, t1, (x, y) in _plan(onset, phrases):
            t = t0
            while t + 0.25 <= t1:  # fixations of 0.25 s every 0.3 s
                fx, fy = _screen(x + rng.normal(0, 10), y + rng.normal(0, 10))
                fix_rows.append(_row("1", dicom, t, fx, fy, 0.25, 1, len(fix_rows)))
                t += 0.3
            for ts in np.arange(t0, t1, 1 / 60):
                fx, fy = _screen(x + rng.normal(0, 3), y + rng.normal(0, 3))
                gaze_rows.append(_row("1", dicom, ts, fx, fy, 0.0, 1, len(gaze_rows)))
        fix_rows.append(_row("1", dicom, onset + 0.05, 0.5, 0.5, 0.2, 0, len(fix_rows)))  # invalid: dropped
        gaze_rows.append(_row("1", dicom, onset + 0.01, float("nan"), float("nan"), 0.0, 0, len(gaze_rows)))
        tdir = root / "audio_segmentation_transcripts" / dicom
        tdir.mkdir(parents=True)
        (tdir / "transcript.json").write_text(
            json.dumps(
                {
                    "full_text": " ".join(p for p, *_ in phrases),
                    "time_stamped_text": [
                        {"phrase": p, "begin_time": b, "end_time": e} for p, b, e, _ in phrases
                    ],
                }
            )
        )
    gaze_rows.sort(key=lambda r: r[4])
    for name, rows, on in (("fixations.csv", fix_rows, fixations), ("eye_gaze.csv", gaze_rows, gaze)):
        if on:
            with (root / name).open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(GAZE_HEADER)
                w.writerows(rows)
    with (root / "master_sheet.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dicom_id", "path", "study_id", "patient_id", "anchor_age", "image_top_pad",
                    "image_bottom_pad", "image_left_pad", "image_right_pad", "Normal", "CHF", "pneumonia",
                    "cxr_exam_indication"])  # fmt: skip
        w.writerow(["d1", "files/p1/d1.dcm", 5, 7, 1, *PADS, 0, 1, 0, "dyspnea"])
        w.writerow(["d2", "files/p1/d2.dcm", 6, 8, 0, *PADS, 1, 0, 0, "cough"])
    return root


def _images(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for d in CASES:
        Image.fromarray(np.full((H_IMG, W_IMG), 20000, np.uint16)).save(folder / f"{d}.png")
    return folder


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _effusion_mask() -> np.ndarray:
    x, y = EFFUSION
    return ellipse_mask((x - 120, y - 120, x + 120, y + 120), W_IMG, H_IMG)


def test_padded_view_puts_the_padded_image_on_the_screen():
    v = padded_view(W_IMG, H_IMG, PADS, EGD_DISPLAY, 5.0)[0]
    padded_w = W_IMG + PADS[2] + PADS[3]
    assert v["scale"] == pytest.approx(min(1920 / padded_w, 1080 / H_IMG))
    # the padded image's left edge is the screen's left edge (it fills the width), the image starts after the pad
    assert v["offset_x"] - PADS[2] * v["scale"] == pytest.approx((1920 - padded_w * v["scale"]) / 2)
    assert v["t_lsl"] == 5.0


def test_import_egd_session(tmp_path: Path):
    src = make_egd(tmp_path / "egd")
    out = tmp_path / "out"
    result = import_egd(src, out, images=_images(tmp_path / "img"))
    assert result.n_cases == 2 and _files(out) == ["egd_1.h5"]
    assert describe_session(out / "egd_1.h5")["valid"]
    with SessionReader(out / "egd_1.h5") as r:
        assert r.case_ids == ["d1", "d2"]
        d1, d2 = r.case("d1"), r.case("d2")
    assert d1.labels == ["chf"] and d2.labels == ["normal"]
    assert d1.t_start == pytest.approx(10.0, abs=0.02) and d2.t_start == pytest.approx(30.0, abs=0.02)
    # phrase words spread evenly over the phrase, on the session clock from the case onset
    assert d1.words.text[4:10] == ["There", "is", "a", "left", "pleural", "effusion."]
    np.testing.assert_allclose(d1.words.t_start[4:10], d1.t_start + 6.0 + 0.4 * np.arange(6), atol=1e-6)
    assert d1.sentences.text == ["Heart size is normal.", "There is a left pleural effusion."]
    # fixations: the FPOGV = 0 row is dropped; positions land back on the image targets
    assert np.all(d1.fixations["t_end"] - d1.fixations["t_start"] == pytest.approx(0.25))
    near = np.hypot(d1.fixations["x_img_px"] - EFFUSION[0], d1.fixations["y_img_px"] - EFFUSION[1]) < 60
    assert near.sum() >= 10
    # raw gaze: the NaN sample is kept invalid, valid ones are on the image
    valid = (d1.gaze["flags"] & GAZE_VALID).astype(bool)
    assert (~valid).sum() == 1 and np.all(d1.gaze["flags"][valid] & GAZE_ON_IMAGE)
    assert np.nanmean(d1.gaze["pupil"]) == pytest.approx(31.0)
    # the effusion sentence's heatmap sits on the effusion, the heart sentence's does not
    assert mass_inside(d1.sentence_heatmap(1), _effusion_mask()) > 0.6
    assert mass_inside(d1.sentence_heatmap(0), _effusion_mask()) < 0.05
    assert d1.attrs["pads_tblr"] == list(map(float, PADS)) and len(d1.image.sha256) == 64


def test_import_egd_from_raw_gaze_only_with_mimic_sizes(tmp_path: Path):
    src = make_egd(tmp_path / "egd", fixations=False)
    meta = tmp_path / "mimic-cxr-2.0.0-metadata.csv"
    meta.write_text(f"dicom_id,subject_id,Rows,Columns\nd1,1,{H_IMG},{W_IMG}\nd2,1,{H_IMG},{W_IMG}\n")
    result = import_egd(src, tmp_path / "out", mimic_metadata=meta)
    with SessionReader(result.written[0]) as r:
        d1 = r.case("d1")
    assert (d1.image.width, d1.image.height) == (W_IMG, H_IMG) and d1.image.sha256 == ""
    assert d1.fixations.size >= 4  # detected by I-VT from the 60 Hz samples
    assert mass_inside(d1.sentence_heatmap(1), _effusion_mask()) > 0.6


# ------------------------------------------------------------------------------------------------ broken input
def _break_transcript(p: Path, text: str) -> None:
    (p / "audio_segmentation_transcripts/d2/transcript.json").write_text(text)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: (p / "master_sheet.csv").unlink(), r"master_sheet\.csv: expected a CSV file"),
        (
            lambda p: (p / "master_sheet.csv").write_text("dicom_id,image_top_pad\nd1,0\n"),
            r"master_sheet\.csv: expected columns \['image_bottom_pad'",
        ),
        (
            lambda p: (p / "audio_segmentation_transcripts/d2/transcript.json").unlink(),
            r"d2/transcript\.json: expected an EGD-CXR transcript",
        ),
        (lambda p: _break_transcript(p, "{not json"), r"d2/transcript\.json: expected JSON"),
        (
            lambda p: _break_transcript(
                p, json.dumps({"time_stamped_text": [{"phrase": "x", "end_time": 1}]})
            ),
            r"time_stamped_text\[0\]: expected phrase, begin_time, end_time",
        ),
        (
            lambda p: _break_transcript(p, json.dumps({"full_text": "x"})),
            r"expected a list 'time_stamped_text'",
        ),
        (
            lambda p: (p / "fixations.csv").write_text(
                (p / "fixations.csv").read_text().replace(",0.25,", ",abc,", 1)
            ),
            r"fixations\.csv: column 'FPOGD' row \d+: expected a number, got 'abc'",
        ),
        (lambda p: (p / "eye_gaze.csv").write_text(""), r"eye_gaze\.csv.*empty file"),
        (
            lambda p: [(p / n).unlink() for n in ("fixations.csv", "eye_gaze.csv")],
            r"expected fixations\.csv and/or eye_gaze\.csv",
        ),
    ],
)
def test_import_egd_broken_files(tmp_path: Path, edit, message: str):
    src = make_egd(tmp_path / "egd")
    edit(src)
    out = tmp_path / "out"
    with pytest.raises(ImportFormatError, match=message):
        import_egd(src, out, images=_images(tmp_path / "img"))
    assert _files(out) == []


def test_import_egd_needs_image_sizes(tmp_path: Path):
    src = make_egd(tmp_path / "egd")
    with pytest.raises(ImportFormatError, match="--images .* or --mimic-metadata"):
        import_egd(src, tmp_path / "out")
    assert _files(tmp_path / "out") == []


def test_import_egd_skip_broken_keeps_the_good_case(tmp_path: Path):
    src = make_egd(tmp_path / "egd")
    (src / "audio_segmentation_transcripts/d2/transcript.json").unlink()
    result = import_egd(src, tmp_path / "out", images=_images(tmp_path / "img"), skip_broken=True)
    assert result.n_cases == 1 and [c for c, _ in result.skipped] == ["d2"]
    with SessionReader(result.written[0]) as r:
        assert r.case_ids == ["d1"]


def test_cli_import_egd(tmp_path: Path):
    src = make_egd(tmp_path / "egd")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "radgaze.app.cli",
        "import",
        "egd",
        str(src),
        str(out),
        "--images",
        str(_images(tmp_path / "i")),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "wrote 1 session file(s) with 2 case(s)" in done.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 2 and "exists; pass --overwrite" in again.stderr
