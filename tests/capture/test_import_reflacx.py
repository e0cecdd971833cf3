"""radgaze import reflacx: tiny REFLACX folders in the dataset's layout, imported and checked; broken files."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from radgaze.capture.annotation.check import annotation_problems
from radgaze.capture.annotation.labels import load_label_set
from radgaze.capture.base.errors import ConfigError, ImportFormatError
from radgaze.capture.base.records import (
    GAZE_ON_IMAGE,
    GAZE_VALID,
    VIEW_FIT,
    VIEW_WINDOW,
    VIEW_ZOOM,
    LabelChoice,
    Shape,
)
from radgaze.capture.gazemath.heatmap import mass_inside
from radgaze.capture.importers.common import read_table
from radgaze.capture.importers.reflacx import (
    FIXATION_COLUMNS,
    import_reflacx,
    rect_transforms,
    view_timeline,
)
from radgaze.capture.importers.reflacx_annotation import metadata_choices, read_ellipses
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.summary import describe_session

W_IMG, H_IMG = 1000, 1200
SCREEN = (1920, 1080)
FIT_SCALE = 1080 / H_IMG  # image fitted to the screen height
FIT_RECT_SCREEN = (510.0, 0.0, 1410.0, 1080.0)
ZOOM = 2.0  # zoomed on the nodule while it is dictated
NODULE_BOX = (600.0, 700.0, 800.0, 900.0)
HEART = (450.0, 650.0)
PPD_SCREEN = 40.0  # screen px per degree

SENTENCES = [
    (["heart", "size", "is", "normal", "."], 2.0),
    (["there", "is", "a", "nodule", "in", "the", "left", "lower", "lung", "."], 6.0),
    (["no", "effusion", "."], 11.0),
]


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _words() -> list[list]:
    rows = []
    for words, t in SENTENCES:
        for w in words:
            dur = 0.05 if w in ".," else 0.3
            rows.append([w, round(t, 3), round(t + dur, 3)])
            t += dur + 0.05
    return rows


def _view(zoomed: bool) -> tuple[list[float], list[float], float]:
    """(shown rect in image px, screen rect, scale)."""
    if not zoomed:
        return [0.0, 0.0, float(W_IMG), float(H_IMG)], list(FIT_RECT_SCREEN), FIT_SCALE
    s = FIT_SCALE * ZOOM
    cx, cy = 700.0, 800.0
    half_w, half_h = 900 / s / 2, 1080 / s / 2
    return [cx - half_w, cy - half_h, cx + half_w, cy + half_h], list(FIT_RECT_SCREEN), s


def _fixations(rng: np.random.Generator, window_level: float = 0.5) -> list[list]:
    """Heart during sentence 1, nodule (zoomed) during sentence 2, heart again during sentence 3."""
    rows = []
    plan = [(0.6, 3.5, HEART, False), (4.6, 9.6, (700.0, 800.0), True), (10.0, 12.5, HEART, False)]
    for t0, t1, (x, y), zoomed in plan:
        t = t0
        shown, screen, scale = _view(zoomed)
        while t + 0.25 < t1:
            ppd_img = PPD_SCREEN / scale
            rows.append(
                [
                    round(t, 3),
                    round(t + 0.25, 3),
                    x + rng.normal(0, 15),
                    y + rng.normal(0, 15),
                    0.8,
                    ppd_img,
                    ppd_img,
                    1.0,
                    window_level,
                    *shown,
                    *screen,
                ]
            )
            t += 0.3
    return rows


def _header() -> list[str]:
    cols = list(FIXATION_COLUMNS)
    cols.insert(4, "pupil_area_normalized")
    return cols


def make_reflacx(root: Path, *, with_gaze: bool = True, seed: int = 0) -> Path:
    """A REFLACX folder (main_data/ + gaze_data/) with two readings, one of them discarded."""
    rng = np.random.default_rng(seed)
    main = root / "main_data"
    labels = ["Lung nodule or mass", "Pleural abnormality"]
    _write_csv(
        main / "metadata_phase_1.csv",
        ["id", "split", "eye_tracking_data_discarded", "image", "dicom_id", "subject_id", "image_size_x",
         "image_size_y", *labels],
        [
            ["P101R000001", "train", "False", "files/p1/s1/dcm1.dcm", "dcm1", "17", W_IMG, H_IMG, 4, 0],
            ["P101R000002", "train", "True", "files/p1/s1/dcm2.dcm", "dcm2", "17", W_IMG, H_IMG, 0, 0],
        ],
    )  # fmt: skip
    case = main / "P101R000001"
    _write_csv(case / "fixations.csv", _header(), _fixations(rng))
    _write_csv(
        case / "timestamps_transcription.csv",
        ["word", "timestamp_start_word", "timestamp_end_word"],
        _words(),
    )
    _write_csv(case / "chest_bounding_box.csv", ["xmin", "ymin", "xmax", "ymax"], [[80, 60, 920, 1100]])
    _write_csv(
        case / "anomaly_location_ellipses.csv",
        ["xmin", "ymin", "xmax", "ymax", "certainty", *labels],
        [[*NODULE_BOX, 4, "True", "False"]],
    )
    (case / "transcription.txt").write_text("heart size is normal. there is a nodule ...")
    if with_gaze:
        t = np.arange(0.5, 12.5, 0.01)
        x = np.where((t > 4.6) & (t < 9.6), 700.0, HEART[0]) + rng.normal(0, 5, t.size)
        y = np.where((t > 4.6) & (t < 9.6), 800.0, HEART[1]) + rng.normal(0, 5, t.size)
        x[100:110] = np.nan  # a blink
        rows = []
        for ti, xi, yi in zip(t, x, y):
            shown, screen, scale = _view(4.6 < ti < 9.6)
            ppd = PPD_SCREEN / scale
            rows.append([round(ti, 3), xi, yi, 0.8, ppd, ppd, 1.0, 0.5, *shown, *screen])
        gaze_header = ["timestamp_sample", *_header()[2:]]
        _write_csv(root / "gaze_data" / "P101R000001" / "gaze.csv", gaze_header, rows)
    return root


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    return make_reflacx(tmp_path / "reflacx")


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ------------------------------------------------------------------------------------------------ pure parts
def test_rect_transforms_map_shown_rect_onto_screen_rect():
    shown = np.array([[0.0, 0.0, 1000.0, 1200.0], [450.0, 550.0, 950.0, 1150.0]])
    screen = np.array([FIT_RECT_SCREEN, FIT_RECT_SCREEN])
    tr = rect_transforms(shown, screen, where="t")
    np.testing.assert_allclose(tr[:, 0], [0.9, 1.8])
    # the shown rectangle's corners land on the screen rectangle's corners
    np.testing.assert_allclose(shown[:, 0] * tr[:, 0] + tr[:, 1], screen[:, 0])
    np.testing.assert_allclose(shown[:, 3] * tr[:, 0] + tr[:, 2], screen[:, 3])
    with pytest.raises(ImportFormatError, match="positive width"):
        rect_transforms(np.array([[0.0, 0, 0, 10]]), np.array([[0.0, 0, 10, 10]]), where="t")


def test_view_timeline_rows_only_at_changes():
    t = np.arange(6.0)
    tr = np.array([[1, 0, 0], [1, 0, 0], [2, -5, -5], [2, -5, -5], [2, -5, -5], [1, 0, 0]], float)
    win = np.array([[0.5, 1]] * 4 + [[0.4, 1]] * 2)
    v = view_timeline(t, tr, win)
    assert v["t_lsl"].tolist() == [0, 2, 4, 5]
    assert v["kind"].tolist() == [VIEW_FIT, VIEW_ZOOM, VIEW_WINDOW, VIEW_ZOOM]
    assert v["window_center"].tolist() == pytest.approx([0.5, 0.5, 0.4, 0.4])


# ------------------------------------------------------------------------------------------------ import
def test_import_reflacx_reading(src: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = import_reflacx(src, out)
    assert result.n_cases == 1 and result.n_discarded == 1 and not result.skipped
    assert _files(out) == ["P101R000001.h5"]
    with SessionReader(out / "P101R000001.h5") as r:
        assert r.provenance["importer"] == "reflacx"
        case = r.case("P101R000001")
    assert (case.image.width, case.image.height) == (W_IMG, H_IMG)
    assert case.labels == ["lung_nodule_or_mass"]
    assert case.attrs["dicom_id"] == "dcm1" and case.attrs["chest_box"] == [80, 60, 920, 1100]
    # words as dictated ("." rows kept), three sentences cut at the "." rows
    assert len(case.words) == sum(len(w) for w, _ in SENTENCES)
    assert case.sentences.text == [
        "heart size is normal.",
        "there is a nodule in the left lower lung.",
        "no effusion.",
    ]
    assert case.sentences.t_start[1] == pytest.approx(6.0)  # audio-start clock kept
    # view timeline: fit, zoom on the nodule, back
    assert case.view_events["kind"].tolist() == [VIEW_FIT, VIEW_ZOOM, VIEW_ZOOM]
    assert case.view_events["scale"] == pytest.approx([FIT_SCALE, FIT_SCALE * ZOOM, FIT_SCALE])
    # display inferred: holds the screen rectangles; its ppd reproduces the recorded one
    assert case.display.screen_w_px == 1410 and case.display.screen_h_px == 1080
    from radgaze.capture.gazemath.geometry import ppd_screen

    assert np.mean(ppd_screen(case.display)) == pytest.approx(PPD_SCREEN, rel=1e-3)
    # fixations: image px and screen px agree through the view
    fx = case.fixations
    assert fx.size == len(_fixations(np.random.default_rng(0)))
    zoomed = (fx["t_start"] >= 4.6) & (fx["t_start"] < 9.6)
    assert fx["ppd_img"][zoomed] == pytest.approx(PPD_SCREEN / (FIT_SCALE * ZOOM))
    assert fx["x_screen_px"][~zoomed] == pytest.approx(fx["x_img_px"][~zoomed] * FIT_SCALE + 510, abs=1e-2)
    # raw gaze from gaze_data/: the blink is kept as invalid; on-image flags set
    assert case.gaze.size == 1200
    valid = (case.gaze["flags"] & GAZE_VALID).astype(bool)
    assert (~valid).sum() == 10
    assert np.all(case.gaze["flags"][valid] & GAZE_ON_IMAGE)
    # the finding is linked to the nodule sentence, and that sentence's heatmap mass lies on it
    assert case.findings is not None and len(case.findings) == 1
    f = case.findings[0]
    assert f.label == "lung_nodule_or_mass" and f.box == NODULE_BOX and f.sentence_index == 1
    assert f.location == "certainty 4/5 (Suspicious for / Probably)"  # REFLACX's 1..5 scale
    # the reader's annotation, in REFLACX's label names: the metadata's certainty, the ellipse, the chest box
    ann = case.annotation
    assert ann is not None and ann.label_set == "reflacx"
    assert ann.labels == [LabelChoice("Lung nodule or mass", 4)]  # "Pleural abnormality" 0 = not chosen
    assert ann.shapes == [Shape("ellipse", *NODULE_BOX, ("Lung nodule or mass",), 4)]
    assert ann.chest_box == (80.0, 60.0, 920.0, 1100.0)
    # every step of REFLACX's protocol, the transcript's too (its transcription.txt is there)
    assert ann.confirmed_steps == ["dictate", "labels", "shapes", "chest_box", "transcript"]
    assert annotation_problems(ann, W_IMG, H_IMG, load_label_set()) == []
    hm = case.sentence_heatmap(1)
    assert hm is not None and hm.sum() == pytest.approx(1.0, abs=1e-4)
    assert mass_inside(hm, f.mask) > 0.6
    assert mass_inside(case.sentence_heatmap(0), f.mask) < 0.05
    assert describe_session(out / "P101R000001.h5")["valid"]


def test_reflacx_labels_without_a_certainty_take_their_ellipses_or_none(tmp_path: Path):
    """Support devices (True/False) and Other (free text) have no certainty in REFLACX's metadata."""
    labels = ["Atelectasis", "Other", "Pneumothorax", "Support devices"]
    _write_csv(tmp_path / "meta.csv", ["id", *labels],
               [["P300R1", 3, "azygos lobe|old rib fracture", 0, "True"]])  # fmt: skip
    _write_csv(tmp_path / "ellipses.csv", ["xmin", "ymin", "xmax", "ymax", "certainty", *labels],
               [[10, 20, 110, 220, 2, "False", "True", "False", "False"],
                [300, 300, 400, 420, 5, "False", "False", "True", "False"]])  # fmt: skip
    shapes = read_ellipses(tmp_path / "ellipses.csv")
    assert shapes == [Shape("ellipse", 10, 20, 110, 220, ("Other",), 2),
                      Shape("ellipse", 300, 300, 400, 420, ("Pneumothorax",), 5)]  # fmt: skip
    meta = read_table(tmp_path / "meta.csv", ("id",))
    choices = metadata_choices(meta, 0, frozenset({"id"}), shapes)
    assert choices == [
        LabelChoice("Atelectasis", 3),
        LabelChoice("Other", 2, "azygos lobe; old rib fracture"),  # its ellipse's certainty
        LabelChoice("Support devices", 0),  # no ellipse, no certainty in the source
        LabelChoice("Pneumothorax", 5),  # metadata 0 but an ellipse names it
    ]


def test_import_reflacx_without_raw_gaze_and_with_images(tmp_path: Path):
    from PIL import Image

    src = make_reflacx(tmp_path / "reflacx", with_gaze=False)
    _rewrite(src / "main_data/metadata_phase_1.csv", lambda r: [row[:-2] for row in r])  # no label columns
    images = tmp_path / "mimic" / "files" / "p1" / "s1"
    images.mkdir(parents=True)
    Image.fromarray(np.full((H_IMG, W_IMG), 30000, np.uint16)).save(images / "dcm1.png")
    result = import_reflacx(src, tmp_path / "out", images=tmp_path / "mimic")
    with SessionReader(result.written[0]) as r:
        case = r.case("P101R000001")
    assert case.gaze.size == 0 and case.fixations.size > 0
    assert case.labels == ["lung_nodule_or_mass"]  # from the ellipses
    assert case.image.path.endswith("dcm1.png") and len(case.image.sha256) == 64
    # a wrong-sized image is an error naming both sizes
    Image.fromarray(np.zeros((10, 20), np.uint8)).save(images / "dcm1.png")
    with pytest.raises(ImportFormatError, match="1000x1200"):
        import_reflacx(src, tmp_path / "out2", images=tmp_path / "mimic")


def test_import_reflacx_refuses_to_overwrite(src: Path, tmp_path: Path):
    import_reflacx(src, tmp_path / "out")
    with pytest.raises(ConfigError, match="--overwrite"):
        import_reflacx(src, tmp_path / "out")
    assert import_reflacx(src, tmp_path / "out", overwrite=True).n_cases == 1
    # a failed re-import keeps the old file
    (src / CASE / "fixations.csv").write_text("")
    with pytest.raises(ImportFormatError):
        import_reflacx(src, tmp_path / "out", overwrite=True)
    assert _files(tmp_path / "out") == ["P101R000001.h5"]
    assert describe_session(tmp_path / "out" / "P101R000001.h5")["valid"]


# ------------------------------------------------------------------------------------------------ broken input
def _rewrite(path: Path, edit) -> None:
    rows = list(csv.reader(path.open(newline="")))
    rows = edit(rows)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


CASE = Path("main_data/P101R000001")


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        (
            "missing fixations",
            lambda p: (p / CASE / "fixations.csv").unlink(),
            r"fixations\.csv: expected a CSV",
        ),
        (
            "empty fixations",
            lambda p: (p / CASE / "fixations.csv").write_text(""),
            r"fixations\.csv.*empty file",
        ),
        (
            "header only",
            lambda p: _rewrite(p / CASE / "fixations.csv", lambda r: r[:1]),
            r"fixations\.csv: expected at least one data row",
        ),
        (
            "missing column",
            lambda p: _rewrite(p / CASE / "fixations.csv", lambda r: [row[1:] for row in r]),
            r"fixations\.csv: expected columns \['timestamp_start_fixation'\]",
        ),
        (
            "text in a number column",
            lambda p: _rewrite(p / CASE / "fixations.csv", lambda r: [r[0], ["abc", *r[1][1:]], *r[2:]]),
            r"fixations\.csv: column 'timestamp_start_fixation' row 2: expected a number, got 'abc'",
        ),
        (
            "NaN time",
            lambda p: _rewrite(
                p / CASE / "timestamps_transcription.csv", lambda r: [r[0], [r[1][0], "nan", r[1][2]], *r[2:]]
            ),
            r"timestamps_transcription\.csv: column 'timestamp_start_word' row 2: expected a finite number",
        ),
        (
            "missing transcript",
            lambda p: (p / CASE / "timestamps_transcription.csv").unlink(),
            r"timestamps_transcription\.csv: expected a CSV",
        ),
        (
            "bad discarded flag",
            lambda p: _rewrite(
                p / "main_data/metadata_phase_1.csv",
                lambda r: [r[0], [*r[1][:2], "maybe", *r[1][3:]], *r[2:]],
            ),
            r"metadata_phase_1\.csv: column 'eye_tracking_data_discarded' row 2: expected True/False",
        ),
        (
            "ragged row",
            lambda p: _rewrite(p / CASE / "fixations.csv", lambda r: [r[0], r[1][:-3], *r[2:]]),
            r"fixations\.csv: row 2: expected 17 cells",
        ),
        (
            "missing case folder",
            lambda p: __import__("shutil").rmtree(p / CASE),
            r"P101R000001: expected the folder",
        ),
    ],
)
def test_import_reflacx_broken_files(src: Path, tmp_path: Path, name: str, edit, message: str):
    edit(src)
    out = tmp_path / "out"
    with pytest.raises(ImportFormatError, match=message):
        import_reflacx(src, out)
    assert _files(out) == []  # nothing half-written, not even a hidden partial file


def test_import_reflacx_no_metadata(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFormatError, match="metadata_phase_1.csv"):
        import_reflacx(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ImportFormatError, match="expected a REFLACX dataset folder"):
        import_reflacx(tmp_path / "nothing", tmp_path / "out")


def test_import_reflacx_skip_broken_goes_on(src: Path, tmp_path: Path):
    import shutil

    # a second good reading, then break the first
    meta = src / "main_data/metadata_phase_1.csv"
    _rewrite(meta, lambda r: [*r, ["P101R000003", *r[1][1:]]])
    shutil.copytree(src / CASE, src / "main_data/P101R000003")
    (src / CASE / "fixations.csv").write_text("")
    result = import_reflacx(src, tmp_path / "out", skip_broken=True)
    assert result.n_cases == 1 and [c for c, _ in result.skipped] == ["P101R000001"]
    assert _files(tmp_path / "out") == ["P101R000003.h5"]


def test_failure_while_writing_leaves_nothing(src: Path, tmp_path: Path, monkeypatch):
    from radgaze.capture.store.writer import SessionWriter

    def boom(self, **kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(SessionWriter, "append_sentence", boom)
    with pytest.raises(ImportFormatError, match="got RuntimeError: disk full"):  # one line, whatever raised
        import_reflacx(src, tmp_path / "out")
    assert _files(tmp_path / "out") == []


# ------------------------------------------------------------------------------------------------ CLI
def _radgaze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "radgaze.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_import_reflacx(src: Path, tmp_path: Path):
    out = tmp_path / "out"
    done = _radgaze("import", "reflacx", str(src), str(out), "--display", "1920x1080")
    assert done.returncode == 0, done.stderr
    assert (
        "wrote 1 session file(s) with 1 case(s)" in done.stdout
        and "1 case(s) the dataset marks" in done.stdout
    )
    with SessionReader(out / "P101R000001.h5") as r:
        assert r.case("P101R000001").display.screen_w_px == 1920
    (src / CASE / "timestamps_transcription.csv").write_text("word,start\nx,1\n")
    bad = _radgaze("import", "reflacx", str(src), str(tmp_path / "out2"))
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "timestamps_transcription.csv: expected columns" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_cli_import_help_has_examples():
    for sub in ("reflacx", "egd", "xdf"):
        done = _radgaze("import", sub, "--help")
        assert done.returncode == 0 and "example: radgaze import " + sub in done.stdout
    assert "(default: 1.0)" in _radgaze("import", "reflacx", "--help").stdout
