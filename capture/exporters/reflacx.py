"""radgaze session files -> REFLACX's layout (``radgaze export reflacx SESSIONS OUT``), one reading per case.

Written as REFLACX 1.0 lays its files out (REFERENCE-NOTES.md, "Public gaze + dictation datasets"), so that
REFLACX's own tools and ``radgaze import reflacx`` read it: ``OUT/main_data/metadata_phase_3.csv``, one folder
``OUT/main_data/<id>/`` per reading with ``fixations.csv``, ``timestamps_transcription.csv``,
``transcription.txt`` and, when the reader annotated the case, ``anomaly_location_ellipses.csv`` and
``chest_bounding_box.csv``; raw samples in ``OUT/gaze_data/<id>/gaze.csv``. CSV files end lines with CRLF.

Choices:
- Ids: a case imported from REFLACX keeps its id; any other gets ``P300R`` + a 6-digit number, in the order
  written, and ``OUT/radgaze_ids.csv`` says which session file and case each id came from, and whether the
  reader saw the second look before signing the case (``second_look``: shown / not shown / empty: none).
- Clock: REFLACX times are seconds from the start of the reading's audio. A REFLACX-sourced case already is on
  that clock; a recorded case is shifted so its first audio sample (or, without audio, its start) is 0.
- Window: REFLACX writes the window as a fraction of the stored range (value / (2^BitsStored - 1)); a
  REFLACX-sourced case holds those numbers already and they are written unchanged.
- Rounding as REFLACX's own dataset builder (ricbl/eyetracking, create_main_table.py): times in s from
  ``start_audio_recording`` to the ms, positions and rectangles in whole px, window to 5 decimals, CRLF.
  ``pupil_area_normalized`` there is the EyeLink pupil area over a per-session normalisation constant; radgaze
  writes the tracker's pupil value of the sample at the fixation's start (no such constant is recorded).
- Case state (what REFLACX's layout cannot say): ``<id>/radgaze.json`` holds ``read`` ("read" / "unread": never
  dictated nor annotated), the annotation's ``confirmed_steps`` in order and ``transcript`` ("recognised",
  "corrected" by the reader, or "retranscribed" by another model). An unread case is written with
  ``eye_tracking_data_discarded`` True, so neither REFLACX's tools nor ``radgaze import reflacx`` take it for a
  reading.
- Labels: the metadata has one column per label of the label set except the exclusive "Normal radiograph"
  (REFLACX has none): the certainty chosen (0 = not chosen), "Support devices" True/False, "Other" the free
  text. Ellipses: their box, certainty and one True/False column per label. Boxes drawn as "box" shapes have no
  place in REFLACX and are reported, not written.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radgaze.capture.annotation.labels import LabelSet, load_label_set
from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.base.records import SHAPE_ELLIPSE, CaseAnnotation, CaseRecord
from radgaze.capture.gazemath.geometry import image_to_screen, shown_rect, view_index
from radgaze.capture.store.privacy import file_digest, image_reference
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.second_look import read_second_looks

PHASE = 3
FREE_TEXT_LABEL = "Other"
BOOLEAN_LABELS = frozenset({"Support devices"})
VIEW_COLUMNS = (
    "pupil_area_normalized",
    "angular_resolution_x_pixels_per_degree",
    "angular_resolution_y_pixels_per_degree",
    "window_width",
    "window_level",
    "xmin_shown_from_image",
    "ymin_shown_from_image",
    "xmax_shown_from_image",
    "ymax_shown_from_image",
    "xmin_in_screen_coordinates",
    "ymin_in_screen_coordinates",
    "xmax_in_screen_coordinates",
    "ymax_in_screen_coordinates",
)
FIXATION_COLUMNS = (
    "timestamp_start_fixation", "timestamp_end_fixation", "x_position", "y_position", *VIEW_COLUMNS,
)  # fmt: skip
WORD_COLUMNS = ("word", "timestamp_start_word", "timestamp_end_word")
METADATA_COLUMNS = (
    "id", "split", "eye_tracking_data_discarded", "image", "dicom_id", "subject_id", "image_size_x", "image_size_y",
)  # fmt: skip


@dataclass
class ExportResult:
    written: list[str] = field(default_factory=list)  # reading ids
    notes: list[str] = field(default_factory=list)  # what REFLACX's layout could not hold
    skipped: list[str] = field(
        default_factory=list
    )  # session files / cases that could not be read (one line each)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(header)
        w.writerows(rows)


def _t(x: float) -> str:
    return f"{x:.3f}"


def _num(x: float, digits: int = 5) -> str:
    return "" if not np.isfinite(x) else f"{x:.{digits}f}".rstrip("0").rstrip(".")


def time_origin(case: CaseRecord) -> float:
    """The LSL time that is 0 in REFLACX's files: the audio start (REFLACX's clock)."""
    if case.attrs.get("source") == "reflacx":
        return 0.0
    if case.audio is not None and case.audio.block_t_lsl.size:
        return float(case.audio.block_t_lsl[0])
    return float(case.t_start)


def _window_scale(case: CaseRecord) -> float:
    """Factor from the stored window values to REFLACX's (a fraction of the stored range)."""
    if case.attrs.get("source") == "reflacx":
        return 1.0
    return 1.0 / float(2 ** int(case.image.bits_stored or 8) - 1)


def view_columns(case: CaseRecord, t: np.ndarray, ppd_img: np.ndarray, pupil: np.ndarray) -> list[list[str]]:
    """REFLACX's per-row view columns at times ``t``: pupil, pixels per degree, window, shown and screen rects."""
    views = case.view_events
    if t.size == 0:
        return []
    if views.size == 0:
        raise SessionFormatError(f"case {case.case_id}: expected view events to place the image, got none")
    v = views[view_index(t, views)]
    shown = shown_rect(v, case.display, case.image.width, case.image.height)  # (n, 4) image px
    x0, y0 = image_to_screen(shown[:, 0], shown[:, 1], v)
    x1, y1 = image_to_screen(shown[:, 2], shown[:, 3], v)
    shown = shown.T
    k = _window_scale(case)
    rows = []
    for i in range(t.size):
        rows.append(
            [_num(pupil[i], 3), _num(ppd_img[i]), _num(ppd_img[i])]
            + [_num(v["window_width"][i] * k), _num(v["window_center"][i] * k)]
            + [str(round(float(s[i]))) for s in shown]
            + [str(round(float(s[i]))) for s in (x0, y0, x1, y1)]
        )
    return rows


def _fixation_rows(case: CaseRecord, origin: float) -> list[list[str]]:
    fx = case.fixations
    pupil = _pupil_at(case, fx["t_start"])
    views = view_columns(case, fx["t_start"], fx["ppd_img"], pupil)
    return [
        [_t(fx["t_start"][i] - origin), _t(fx["t_end"][i] - origin)]
        + [str(round(float(fx["x_img_px"][i]))), str(round(float(fx["y_img_px"][i])))]
        + views[i]
        for i in range(fx.size)
    ]


def _pupil_at(case: CaseRecord, t: np.ndarray) -> np.ndarray:
    g = case.gaze
    if g.size == 0:
        return np.full(t.size, np.nan)
    k = np.clip(np.searchsorted(g["t_lsl"], t), 0, g.size - 1)
    return g["pupil"][k].astype(np.float64)


def _ppd_at(case: CaseRecord, t: np.ndarray) -> np.ndarray:
    """Image px per degree at times ``t``: the nearest fixation's (REFLACX gives it per sample)."""
    fx = case.fixations
    if fx.size == 0:
        return np.full(t.size, np.nan)
    k = np.clip(np.searchsorted(fx["t_start"], t) - 1, 0, fx.size - 1)
    return fx["ppd_img"][k].astype(np.float64)


def _gaze_rows(case: CaseRecord, origin: float) -> list[list[str]]:
    g = case.gaze
    valid = (g["flags"] & 1).astype(bool)
    views = view_columns(case, g["t_lsl"], _ppd_at(case, g["t_lsl"]), g["pupil"].astype(np.float64))
    rows = []
    for i in range(g.size):
        x = str(round(float(g["x_img_px"][i]))) if valid[i] and np.isfinite(g["x_img_px"][i]) else ""
        y = str(round(float(g["y_img_px"][i]))) if valid[i] and np.isfinite(g["y_img_px"][i]) else ""
        rows.append([_t(g["t_lsl"][i] - origin), x, y] + views[i])
    return rows


def write_fixations_csv(case: CaseRecord, path: Path) -> Path:
    """REFLACX's ``fixations.csv`` of one case (the one writer: ``radgaze export reflacx`` and replay's export):
    times in s from the audio start (:func:`time_origin`), positions and pixels per degree in image px, window
    as a fraction of the stored range, pupil from the raw sample at the fixation's start, CRLF."""
    _write_csv(path, list(FIXATION_COLUMNS), _fixation_rows(case, time_origin(case)))
    return path


def write_transcription_csv(case: CaseRecord, path: Path) -> Path:
    """REFLACX's ``timestamps_transcription.csv`` of one case: each word (dictated punctuation as its own row),
    its start and end in s from the audio start."""
    words, origin = case.words, time_origin(case)
    rows = [
        [words.text[i], _t(words.t_start[i] - origin), _t(words.t_end[i] - origin)] for i in range(len(words))
    ]
    _write_csv(path, list(WORD_COLUMNS), rows)
    return path


def label_columns(label_set: LabelSet) -> list[str]:
    """REFLACX's label columns: every label but the exclusive one ("Normal radiograph"), sorted."""
    return sorted(s.name for s in label_set.labels if not s.exclusive)


def metadata_cells(annotation: CaseAnnotation | None, columns: list[str]) -> list[str]:
    chosen = {c.label: c for c in (annotation.labels if annotation else [])}
    cells = []
    for name in columns:
        c = chosen.get(name)
        if name == FREE_TEXT_LABEL:
            cells.append(c.text.replace("; ", "|") if c else "")
        elif name in BOOLEAN_LABELS:
            cells.append("True" if c else "False")
        else:
            cells.append(str(c.certainty) if c else "0")
    return cells


def _ellipse_rows(annotation: CaseAnnotation, columns: list[str]) -> list[list[str]]:
    return [
        [_num(s.x0, 1), _num(s.y0, 1), _num(s.x1, 1), _num(s.y1, 1), str(s.certainty)]
        + ["True" if name in s.labels else "False" for name in columns]
        for s in annotation.shapes
        if s.kind == SHAPE_ELLIPSE
    ]


def export_case(
    case: CaseRecord,
    reading_id: str,
    out: Path,
    columns: list[str],
    result: ExportResult,
    *,
    keep_names: bool = False,
) -> list:
    """Write one reading's files; returns its metadata row (image and dicom_id by content hash unless
    ``keep_names``: a file name may carry a patient's name, docs/privacy.md)."""
    origin = time_origin(case)
    folder = out / "main_data" / reading_id
    write_fixations_csv(case, folder / "fixations.csv")
    write_transcription_csv(case, folder / "timestamps_transcription.csv")
    text = case.attrs.get("transcription") or " ".join(case.sentences.text)
    (folder / "transcription.txt").write_text(text, encoding="utf-8")
    if case.gaze.size:
        header = ["timestamp_sample", "x_position", "y_position"] + list(VIEW_COLUMNS)
        _write_csv(out / "gaze_data" / reading_id / "gaze.csv", header, _gaze_rows(case, origin))
    ann = case.annotation
    if ann is not None:
        _write_csv(folder / "anomaly_location_ellipses.csv",
                   ["xmin", "ymin", "xmax", "ymax", "certainty", *columns], _ellipse_rows(ann, columns))  # fmt: skip
        boxes = sum(s.kind != SHAPE_ELLIPSE for s in ann.shapes)
        if boxes:
            result.notes.append(
                f"{reading_id}: {boxes} box shape(s) not written (REFLACX holds ellipses only)"
            )
        if ann.chest_box is not None:
            _write_csv(folder / "chest_bounding_box.csv", ["xmin", "ymin", "xmax", "ymax"],
                       [[_num(v, 1) for v in ann.chest_box]])  # fmt: skip
    state = case_state(case)
    (folder / "radgaze.json").write_text(json.dumps(state), encoding="utf-8")
    discarded = "True" if state["read"] == "unread" else "False"  # an unread case is no reading
    image, dicom_id = image_cells(case, keep_names)
    return [
        reading_id, case.attrs.get("split", ""), discarded, image, dicom_id, case.attrs.get("subject_id", ""),
        str(case.image.width), str(case.image.height),
    ] + metadata_cells(ann, columns)  # fmt: skip


def case_state(case: CaseRecord) -> dict:
    """What ``<id>/radgaze.json`` says of a case: read or unread, the confirmed annotation steps, who made the
    transcript."""
    ann = case.annotation
    steps = list(ann.confirmed_steps) if ann is not None else []
    unread = len(case.words) == 0 and (ann is None or ann.is_empty())
    transcript = "recognised"
    if case.correction is not None:
        transcript = "retranscribed" if case.correction.asr is not None else "corrected"
    return {"read": "unread" if unread else "read", "confirmed_steps": steps, "transcript": transcript}


def image_cells(case: CaseRecord, keep_names: bool) -> tuple[str, str]:
    """The metadata's ``image`` and ``dicom_id``: the image's content hash by default (a dataset's own dicom_id
    is kept: it names no file), its path and file-name stem with ``keep_names``."""
    if keep_names:
        image = case.attrs.get("image_source_path") or case.image.path
        return image, case.attrs.get("dicom_id", Path(case.image.path).stem)
    ref = image_reference(case.image.sha256)
    return ref, case.attrs.get("dicom_id", ref)


def _readable_cases(path: Path, result: ExportResult) -> list[tuple[str, CaseRecord, dict | None]]:
    """Every case of a session file read whole before anything is written (a damaged case: a note)."""
    second_looks = read_second_looks(path)
    cases = []
    with SessionReader(path) as reader:
        for case_id in reader.case_ids:
            try:
                cases.append((case_id, reader.case(case_id), second_looks.get(case_id)))
            except SessionFormatError as exc:
                result.skipped.append(str(exc))
    return cases


def second_look_cell(stored: dict | None) -> str:
    """radgaze_ids.csv's ``second_look``: "shown" (the reader saw the overlay before signing), "not shown"
    (the trial's control arm: computed, stored, not drawn) or "" (recorded without a second look)."""
    if stored is None:
        return ""
    return "shown" if stored["shown"] else "not shown"


def export_reflacx(
    sessions: list[Path],
    out: Path,
    *,
    label_set: LabelSet | None = None,
    overwrite: bool = False,
    keep_names: bool = False,
) -> ExportResult:
    """Write every case of ``sessions`` into ``out`` in REFLACX's layout. A session file or case that cannot be
    read is skipped with a note (``result.skipped``), never half-written; the rest is exported. Sessions are
    named in radgaze_ids.csv by their content's sha256 and case number unless ``keep_names``."""
    metadata = out / "main_data" / f"metadata_phase_{PHASE}.csv"
    if metadata.exists() and not overwrite:
        raise FileExistsError(f"{metadata} exists; pass --overwrite to replace the export")
    label_set = label_set or load_label_set()
    columns = label_columns(label_set)
    result, rows, ids = ExportResult(), [], []
    for path in sessions:
        try:
            cases = _readable_cases(path, result)
        except SessionFormatError as exc:  # a damaged file stops nothing else (issue 24)
            result.skipped.append(str(exc))
            continue
        session_name = str(path) if keep_names else f"sha256:{file_digest(path)}"
        for k, (case_id, case, second_look) in enumerate(cases, start=1):
            rid = case.attrs.get("reflacx_id") or f"P{PHASE}00R{len(result.written) + 1:06d}"
            rows.append(export_case(case, rid, out, columns, result, keep_names=keep_names))
            ids.append([rid, session_name, case_id if keep_names else str(k), second_look_cell(second_look)])
            result.written.append(rid)
    _write_csv(metadata, [*METADATA_COLUMNS, *columns], rows)
    _write_csv(out / "radgaze_ids.csv", ["id", "session_file", "case_id", "second_look"], ids)
    return result
