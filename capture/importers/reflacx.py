"""REFLACX (Bigolin Lanfredi et al. 2022) -> radgaze session files, one file per reading.

Layout read (REFERENCE-NOTES.md, "Public gaze + dictation datasets"): ``metadata_phase_{1,2,3}.csv``
in ``SRC`` or ``SRC/main_data``, and beside them one folder per reading id (``P{phase}{trial}R{6 digits}``) with
``fixations.csv``, ``timestamps_transcription.csv``, optionally ``chest_bounding_box.csv``,
``anomaly_location_ellipses.csv`` and ``transcription.txt``. Raw samples (``gaze.csv``) are taken from the
reading folder or from ``SRC/gaze_data/<id>/`` when present.

Choices (documented here because the dataset leaves them open):
- One session file per reading (``OUT/<id>.h5``, one case): every REFLACX reading has its own clock.
- Clock: REFLACX times are seconds from the start of the reading's audio; the imported case keeps them as they
  are, so ``t_lsl = 0`` is the audio start (words and gaze were recorded on that one clock).
- View timeline: each fixation row carries the shown image rectangle and where it sat on screen; a VIEW row is
  written at the first fixation showing a new transform or window (the change happened at some point since
  the previous fixation, so view times are late by at most one saccade).
- Coordinates: ``x_position``/``y_position`` are image pixels; screen positions follow from the rectangles.
  ``ppd_img`` is the mean of the row's x/y ``angular_resolution_*_pixels_per_degree`` (image px, zoom included).
- Display: ``--display WxH`` when given, else the smallest screen holding every recorded screen rectangle;
  its physical size is set so that screen pixels per degree equal the recorded ones (through the view scale)
  at the viewing distance.
- Window: REFLACX's window_level / window_width are stored as given (REFLACX's own units, see attrs).
- Readings marked ``eye_tracking_data_discarded`` are skipped and counted (a radgaze export marks an unread case
  so; its ``radgaze.json`` says "unread" and the import says so in a warning).
- radgaze's own exports carry ``<id>/radgaze.json`` (:func:`radgaze.capture.exporters.reflacx.case_state`): the
  annotation's confirmed steps are taken from it (an annotation holding only confirmed steps included) and its
  ``transcript`` (recognised / corrected / retranscribed) becomes ``attrs["transcript"]``. A REFLACX reading
  without it did every step of REFLACX's protocol: dictation, labels, ellipses, the chest box when drawn, and the
  transcript when ``transcription.txt`` is there.
- A reading never dictated (an empty ``timestamps_transcription.csv``) is imported without words.
- A refused import leaves nothing behind: the session files it wrote are removed, and OUT when it made it.
- Labels: the metadata's ``labels`` cell and label columns (True or a positive certainty), plus every label an
  ellipse names.
- Findings: each ellipse of ``anomaly_location_ellipses.csv`` is a Finding (box = the ellipse's bounding box,
  label = its true label columns joined by ";", mask = the ellipse on the heatmap grid, location = its certainty
  on REFLACX's 1..5 scale in words), linked to the first sentence naming it.
- Annotation: the reader's labels with certainties, ellipses and chest box as the case's annotation
  (:mod:`radgaze.capture.importers.reflacx_annotation`), in REFLACX's own label names.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
from pathlib import Path

import numpy as np

from radgaze.capture.annotation.labels import load_label_set
from radgaze.capture.base.errors import ConfigError, ImportFormatError
from radgaze.capture.base.records import (
    FIXATION_DTYPE,
    GAZE_DTYPE,
    GAZE_VALID,
    STEP_TRANSCRIPT,
    VIEW_DTYPE,
    VIEW_FIT,
    VIEW_PAN,
    VIEW_WINDOW,
    VIEW_ZOOM,
    CaseAnnotation,
    CaseRecord,
    DisplayGeometry,
    Finding,
)
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S
from radgaze.capture.gazemath.geometry import image_to_screen, map_gaze_to_image, view_index
from radgaze.capture.importers.common import (
    ImportResult,
    Table,
    add_sentences,
    check_output,
    ellipse_mask,
    image_ref,
    index_images,
    make_words,
    read_table,
    safe_name,
    write_session_file,
)
from radgaze.capture.importers.plausibility import (
    reading_error,
    refuse_duplicates,
    refuse_image_size,
    refuse_long_reading,
    refuse_ms_fixations,
    refuse_ms_samples,
    refuse_off_screen,
)
from radgaze.capture.importers.reflacx_annotation import (
    BOX_COLUMNS,
    ELLIPSE_KNOWN,
    read_ellipses,
    reading_annotation,
)
from radgaze.capture.io.display import options_ppd_source, ppd_record

SHOWN = ("xmin_shown_from_image", "ymin_shown_from_image", "xmax_shown_from_image", "ymax_shown_from_image")
ON_SCREEN = (
    "xmin_in_screen_coordinates",
    "ymin_in_screen_coordinates",
    "xmax_in_screen_coordinates",
    "ymax_in_screen_coordinates",
)
PPD = ("angular_resolution_x_pixels_per_degree", "angular_resolution_y_pixels_per_degree")
WINDOW = ("window_width", "window_level")
FIXATION_COLUMNS = (
    "timestamp_start_fixation",
    "timestamp_end_fixation",
    "x_position",
    "y_position",
    *PPD,
    *WINDOW,
    *SHOWN,
    *ON_SCREEN,
)
GAZE_COLUMNS = ("timestamp_sample", "x_position", "y_position")
WORD_COLUMNS = ("word", "timestamp_start_word", "timestamp_end_word")
METADATA_COLUMNS = ("id", "eye_tracking_data_discarded", "image_size_x", "image_size_y")
# metadata columns that are not labels
METADATA_KNOWN = frozenset(
    {*METADATA_COLUMNS, "split", "image", "dicom_id", "subject_id", "labels", "study_id", "phase"}
)
# Relative change of the view transform that counts as a new view (screen rectangles are whole pixels: a
# 1-px rounding on a ~1000 px rectangle is 1e-3).
VIEW_CHANGE_REL = 2e-3
# Viewing distance of an inferred display: radgaze's default (DisplayGeometry). It only sets the physical size;
# the physical size is chosen so the recorded pixels per degree come out whatever the distance.
DEFAULT_DISPLAY = DisplayGeometry()
REFLACX_PPD_SOURCE = (
    "the tracker's own: REFLACX fixations.csv angular_resolution_x/y_pixels_per_degree (EyeLink's, per fixation), "
    "median over the reading through the view scale"
)


def normalise_label(name: str) -> str:
    """ "Enlarged cardiac silhouette" -> "enlarged_cardiac_silhouette" (radgaze's label style)."""
    out = "".join(c if c.isalnum() else "_" for c in name.strip().casefold())
    return "_".join(p for p in out.split("_") if p)


# --------------------------------------------------------------------------------------------- pure maths
def rect_transforms(shown: np.ndarray, on_screen: np.ndarray, *, where: str) -> np.ndarray:
    """Image->screen transforms from shown-image / on-screen rectangles, each (n, 4) as x0, y0, x1, y1.

    Returns (n, 3): scale (screen px per image px; the mean of the x and y ratios), offset_x, offset_y."""
    w_img, h_img = shown[:, 2] - shown[:, 0], shown[:, 3] - shown[:, 1]
    w_scr, h_scr = on_screen[:, 2] - on_screen[:, 0], on_screen[:, 3] - on_screen[:, 1]
    bad = ~((w_img > 0) & (h_img > 0) & (w_scr > 0) & (h_scr > 0))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ImportFormatError(
            f"{where} row {i + 2}: expected shown and screen rectangles with positive width and height, got "
            f"shown {shown[i].tolist()}, screen {on_screen[i].tolist()}"
        )
    scale = (w_scr / w_img + h_scr / h_img) / 2
    return np.stack([scale, on_screen[:, 0] - shown[:, 0] * scale, on_screen[:, 1] - shown[:, 1] * scale], 1)


def view_timeline(t_s: np.ndarray, transforms: np.ndarray, window: np.ndarray) -> np.ndarray:
    """VIEW_DTYPE rows at the first time of each new (scale, offset, window) state.

    t_s (n,) sorted; transforms (n, 3) scale/offset_x/offset_y; window (n, 2) centre/width. The first row is a
    FIT; later rows are ZOOM (scale changed), PAN (offset only) or WINDOW (window only)."""
    rows = []
    prev = None
    for i in range(t_s.size):
        s, ox, oy = transforms[i]
        c, w = window[i]
        if prev is not None:
            ps, pox, poy, pc, pw = prev
            zoom = abs(s - ps) > VIEW_CHANGE_REL * ps
            pan = max(abs(ox - pox), abs(oy - poy)) > 1.0  # more than a screen pixel
            win = not (math.isclose(c, pc, rel_tol=1e-6, abs_tol=1e-9) and math.isclose(w, pw, rel_tol=1e-6))
            if not (zoom or pan or win):
                continue
            kind = VIEW_ZOOM if zoom else VIEW_PAN if pan else VIEW_WINDOW
        else:
            kind = VIEW_FIT
        rows.append((t_s[i], kind, s, ox, oy, c, w, 0))
        prev = (s, ox, oy, c, w)
    return np.array(rows, dtype=VIEW_DTYPE)


def display_for(
    transforms: np.ndarray, ppd_img: np.ndarray, on_screen: np.ndarray, given: DisplayGeometry | None
) -> DisplayGeometry:
    """The display of a reading: ``given`` when set, else the smallest screen holding every screen
    rectangle, with a physical size that reproduces the recorded screen pixels per degree."""
    if given is not None:
        return given
    ppd_scr = float(np.median(ppd_img * transforms[:, 0]))
    w_px = int(math.ceil(float(np.max(on_screen[:, 2]))))
    h_px = int(math.ceil(float(np.max(on_screen[:, 3]))))
    d = DEFAULT_DISPLAY.viewing_distance_mm
    mm_per_deg = (
        2.0 * d * math.tan(math.radians(0.5))
    )  # the convention of radgaze.capture.gazemath.geometry.ppd_screen
    pitch_mm = mm_per_deg / ppd_scr
    return DisplayGeometry(w_px, h_px, w_px * pitch_mm, h_px * pitch_mm, d)


# --------------------------------------------------------------------------------------------- files
def _rects(tab: Table, names: tuple[str, ...]) -> np.ndarray:
    return np.stack([tab.numbers(n) for n in names], axis=1)


def read_fixations(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """fixations.csv -> (FIXATION rows without screen coordinates, transforms (n, 3), window (n, 2), screen
    rectangles (n, 4)), sorted by start time."""
    tab = read_table(path, FIXATION_COLUMNS)
    t0, t1 = tab.numbers("timestamp_start_fixation"), tab.numbers("timestamp_end_fixation")
    if np.any(t1 < t0):
        i = int(np.flatnonzero(t1 < t0)[0])
        raise ImportFormatError(
            f"{path} row {i + 2}: expected timestamp_end_fixation >= timestamp_start_fixation"
        )
    refuse_ms_fixations(str(path), "timestamp_end_fixation", t0, t1)
    refuse_duplicates(str(path), "fixation", np.stack([t0, t1, tab.numbers("x_position")], 1))
    order = np.argsort(t0, kind="stable")
    ppd = np.stack([tab.numbers(n) for n in PPD], 1).mean(axis=1)
    if np.any(ppd <= 0):
        raise ImportFormatError(f"{path}: expected positive angular_resolution_*_pixels_per_degree values")
    on_screen = _rects(tab, ON_SCREEN)
    transforms = rect_transforms(_rects(tab, SHOWN), on_screen, where=str(path))
    window = np.stack([tab.numbers("window_level"), tab.numbers("window_width")], 1)
    fix = np.zeros(tab.n_rows, FIXATION_DTYPE)
    fix["t_start"], fix["t_end"] = t0, t1
    fix["x_img_px"], fix["y_img_px"] = tab.numbers("x_position"), tab.numbers("y_position")
    fix["ppd_img"] = ppd
    return fix[order], transforms[order], window[order], on_screen[order]


def read_gaze(path: Path, view_events: np.ndarray) -> np.ndarray:
    """gaze.csv -> GAZE rows (screen and image px; NaN positions kept as invalid samples)."""
    tab = read_table(path, GAZE_COLUMNS)
    t = tab.numbers("timestamp_sample")
    refuse_ms_samples(str(path), "timestamp_sample", t)
    order = np.argsort(t, kind="stable")
    g = np.zeros(tab.n_rows, GAZE_DTYPE)
    g["t_lsl"] = t
    x, y = tab.numbers("x_position", allow_nan=True), tab.numbers("y_position", allow_nan=True)
    refuse_duplicates(str(path), "sample", np.stack([t, x, y], 1))
    g["x_img_px"], g["y_img_px"] = x, y
    g["pupil"] = (
        tab.numbers("pupil_area_normalized", allow_nan=True) if tab.has("pupil_area_normalized") else np.nan
    )
    v = view_events[view_index(t, view_events)]
    g["x_screen_px"], g["y_screen_px"] = image_to_screen(x, y, v)
    g["flags"] = np.where(np.isfinite(x) & np.isfinite(y), GAZE_VALID, 0)
    return g[order]


def read_words(path: Path):
    """timestamps_transcription.csv -> Words (none when the reader never dictated: a header only)."""
    tab = read_table(path, WORD_COLUMNS, allow_empty=True)
    return make_words(
        tab.text("word"),
        tab.numbers("timestamp_start_word"),
        tab.numbers("timestamp_end_word"),
        where=str(path),
    )


def read_findings(path: Path, image_w: int, image_h: int) -> list[Finding]:
    """anomaly_location_ellipses.csv -> one Finding per ellipse (labels = its true boolean columns)."""
    tab = read_table(path, BOX_COLUMNS, allow_empty=True)
    boxes = _rects(tab, BOX_COLUMNS)
    label_cols = [c for c in tab.columns if c not in ELLIPSE_KNOWN]
    truth = {c: tab.flags(c) for c in label_cols}
    certainty = (
        tab.numbers("certainty", allow_nan=True) if tab.has("certainty") else np.full(tab.n_rows, np.nan)
    )
    out = []
    for i in range(tab.n_rows):
        labels = [normalise_label(c) for c in label_cols if truth[c][i]]
        box = tuple(float(v) for v in boxes[i])
        where = _certainty_text(int(certainty[i])) if np.isfinite(certainty[i]) else ""
        out.append(
            Finding(";".join(labels) or "abnormality", where, box, ellipse_mask(box, image_w, image_h))
        )
    return out


@functools.cache
def _reflacx_scale():
    """REFLACX's certainty scale, as radgaze ships it (read once, not per ellipse)."""
    return load_label_set()


def _certainty_text(level: int) -> str:
    """REFLACX's ellipse certainty 1..5 (collection app: ``6 - certainty_chosen_index``) in words."""
    scale = _reflacx_scale()
    try:
        name = scale.certainty(level).name
    except ConfigError:
        return f"certainty {level} (expected 1..{scale.max_level()})"
    return f"certainty {level}/{scale.max_level()} ({name})"


def read_chest_box(path: Path) -> list[float] | None:
    if not path.is_file():
        return None
    tab = read_table(path, BOX_COLUMNS)
    return [float(tab.numbers(c)[0]) for c in BOX_COLUMNS]


def metadata_labels(tab: Table, i: int) -> list[str]:
    """Case labels of metadata row i: the ``labels`` cell (";", "," or "|" separated) and every other column
    holding True or a positive number (REFLACX gives label columns with certainty values)."""
    labels: list[str] = []
    if tab.has("labels"):
        for part in tab.text("labels")[i].replace("|", ";").replace(",", ";").split(";"):
            if part.strip():
                labels.append(normalise_label(part))
    for col in tab.columns:
        if col in METADATA_KNOWN:
            continue
        cell = tab.columns[col][i].strip().casefold()
        try:
            positive = cell == "true" or float(cell) > 0
        except ValueError:
            continue
        if positive:
            labels.append(normalise_label(col))
    return sorted(set(labels))


def _finding_labels(findings: list[Finding] | None) -> set[str]:
    """Labels named by the ellipses (a case's labels when the metadata has no label columns)."""
    return {part for f in findings or [] for part in f.label.split(";") if part and part != "abnormality"}


def find_metadata(src: Path) -> tuple[Path, list[tuple[int, Path]]]:
    """(folder holding the metadata and the reading folders, [(phase, metadata file)])."""
    for base in (src, src / "main_data"):
        files = sorted(base.glob("metadata_phase_*.csv"))
        if files:
            out = []
            for f in files:
                digits = f.stem.rsplit("_", 1)[-1]
                out.append((int(digits) if digits.isdigit() else 0, f))
            return base, out
    raise ImportFormatError(
        f"{src}: expected a REFLACX folder with metadata_phase_1.csv (.. _2, _3) in it or in main_data/, found none"
    )


# --------------------------------------------------------------------------------------------- one reading
def read_reading(
    case_dir: Path,
    meta: Table,
    i: int,
    *,
    phase: int,
    gaze_path: Path | None,
    image_path: Path | None,
    display: DisplayGeometry | None,
    lead_s: float,
) -> CaseRecord:
    """One REFLACX reading as a CaseRecord with sentences and heatmaps."""
    rid = meta.text("id")[i].strip()
    if not case_dir.is_dir():
        raise ImportFormatError(f"{case_dir}: expected the folder of REFLACX reading {rid}, found nothing")
    w_img, h_img = meta_image_size(meta, i)
    src_image = meta.text("image")[i].strip() if meta.has("image") else ""
    image = image_ref(
        image_path, width=w_img, height=h_img, stored_path=str(image_path) if image_path else src_image
    )
    fix, transforms, window, on_screen = read_fixations(case_dir / "fixations.csv")
    disp = display_for(transforms, fix["ppd_img"], on_screen, display)
    view = view_timeline(fix["t_start"], transforms, window)
    fix["x_screen_px"] = fix["x_img_px"] * transforms[:, 0] + transforms[:, 1]
    fix["y_screen_px"] = fix["y_img_px"] * transforms[:, 0] + transforms[:, 2]
    _refuse_off_screen(case_dir / "fixations.csv", fix, disp)
    words = read_words(case_dir / "timestamps_transcription.csv")
    gaze = np.zeros(0, GAZE_DTYPE)
    if gaze_path is not None:
        gaze = read_gaze(gaze_path, view)
        _refuse_off_screen(gaze_path, gaze, disp)
        gaze = map_gaze_to_image(gaze, view, disp, image.width, image.height)
    ellipses = case_dir / "anomaly_location_ellipses.csv"
    findings = read_findings(ellipses, image.width, image.height) if ellipses.is_file() else None
    state = radgaze_state(case_dir)
    annotation = _annotation_of(case_dir, meta, i, state)
    times = [0.0, float(fix["t_start"][0]), float(words.t_start[0]) if len(words) else 0.0]
    ends = [float(fix["t_end"].max()), float(words.t_end.max()) if len(words) else 0.0]
    if gaze.size:
        times.append(float(gaze["t_lsl"][0]))
        ends.append(float(gaze["t_lsl"][-1]))
    view["t_lsl"][0] = min(times)  # the first view holds from the case start
    refuse_long_reading(f"REFLACX reading {rid}", min(times), max(ends))
    attrs = _reading_attrs(case_dir, meta, i, phase=phase, display_inferred=display is None, state=state)
    record = CaseRecord(
        case_id=safe_name(rid),
        image=image,
        display=disp,
        t_start=min(times),
        t_end=max(ends),
        gaze=gaze,
        fixations=fix,
        view_events=view,
        words=words,
        findings=findings,
        labels=sorted(set(metadata_labels(meta, i)) | _finding_labels(findings)),
        attrs=attrs,
        annotation=annotation,
    )
    return add_sentences(record, lead_s=lead_s)


def _annotation_of(case_dir: Path, meta: Table, i: int, state: dict | None) -> CaseAnnotation | None:
    """The reader's annotation of one reading (labels, ellipses, chest box) with the steps they confirmed."""
    chest = read_chest_box(case_dir / "chest_bounding_box.csv")
    shapes = read_ellipses(case_dir / "anomaly_location_ellipses.csv")
    return with_confirmed_steps(
        reading_annotation(meta, i, METADATA_KNOWN, shapes, chest),
        state,
        transcribed=(case_dir / "transcription.txt").is_file(),
    )


def radgaze_state(case_dir: Path) -> dict | None:
    """``radgaze.json`` of a reading written by ``radgaze export reflacx`` (None: a REFLACX reading)."""
    path = case_dir / "radgaze.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportFormatError(f"{path}: expected radgaze's case state (JSON), got {exc}") from None
    if not isinstance(state, dict) or not isinstance(state.get("confirmed_steps", []), list):
        raise ImportFormatError(f"{path}: expected an object with a confirmed_steps list, got {state!r:.80}")
    return state


def with_confirmed_steps(
    annotation: CaseAnnotation | None, state: dict | None, *, transcribed: bool
) -> CaseAnnotation | None:
    """The reading's annotation with the steps the reader confirmed: radgaze.json's when there is one (an
    annotation of confirmed steps only is kept), else REFLACX's whole protocol, its transcript step included
    when the reading has its ``transcription.txt``."""
    if state is None:
        if annotation is not None and transcribed:
            annotation.confirmed_steps.append(STEP_TRANSCRIPT)
        return annotation
    steps = [str(step) for step in state.get("confirmed_steps", [])]
    if annotation is None:
        return (
            CaseAnnotation(confirmed_steps=steps, label_set="reflacx", protocol="reflacx") if steps else None
        )
    annotation.confirmed_steps = steps
    return annotation


def _unread_note(base: Path, rid: str) -> str | None:
    """The warning for a discarded reading that a radgaze export marked unread (None for any other)."""
    try:
        state = radgaze_state(base / rid)
    except ImportFormatError:
        return None
    if state is None or state.get("read") != "unread":
        return None
    return f"{rid}: never read (no dictation, no annotation; radgaze export): not imported"


def _refuse_off_screen(path: Path, rows: np.ndarray, disp: DisplayGeometry) -> None:
    """Fixation or gaze rows whose image position lands off the screen (after the view's scaling): one line
    naming the file, row, column and the file's value (issue 24)."""
    refuse_off_screen(
        str(path), ("x_position", "y_position"), rows["x_screen_px"], rows["y_screen_px"], disp,
        (rows["x_img_px"], rows["y_img_px"]),
    )  # fmt: skip


def meta_image_size(meta: Table, i: int) -> tuple[int, int]:
    """Row ``i``'s image_size_x / image_size_y, refused in one line when no radiograph has that size."""
    w, h = float(meta.numbers("image_size_x")[i]), float(meta.numbers("image_size_y")[i])
    refuse_image_size(f"{meta.path} row {i + 2}", ("image_size_x", "image_size_y"), w, h)
    return int(w), int(h)


def _reading_attrs(
    case_dir: Path, meta: Table, i: int, *, phase: int, display_inferred: bool, state: dict | None = None
) -> dict:
    """The case attributes of one reading: where its times and views come from, ids, chest box, transcript."""
    attrs = {
        "source": "reflacx",
        "reflacx_id": meta.text("id")[i].strip(),
        "phase": phase,
        "time_origin": "seconds from the start of the reading's audio (REFLACX); t_lsl = 0 there",
        "view_times": "first fixation showing each new view (REFLACX records the view per fixation)",
        "window_units": "REFLACX window_level / window_width as recorded",
        "display_inferred": display_inferred,
        "image_source_path": meta.text("image")[i].strip() if meta.has("image") else "",
    }
    for col in ("split", "dicom_id", "subject_id"):
        if meta.has(col):
            attrs[col] = meta.text(col)[i].strip()
    chest = read_chest_box(case_dir / "chest_bounding_box.csv")
    if chest is not None:
        attrs["chest_box"] = chest
    if state is not None:  # a radgaze export: who made the transcript
        attrs["transcript"] = str(state.get("transcript", "recognised"))
    txt = case_dir / "transcription.txt"
    if txt.is_file():
        attrs["transcription"] = txt.read_text(encoding="utf-8", errors="replace").strip()
    return attrs


def import_reflacx(
    src: str | Path,
    out: str | Path,
    *,
    images: str | Path | None = None,
    display: DisplayGeometry | None = None,
    lead_s: float = EYE_VOICE_LEAD_S,
    overwrite: bool = False,
    skip_broken: bool = False,
    limit: int | None = None,
    ppd_source: str | None = None,
) -> ImportResult:
    """Import every non-discarded REFLACX reading under ``src`` into ``out/<id>.h5``.

    A broken reading raises ImportFormatError and the import leaves nothing behind (the files it wrote, and
    ``out`` when it made it), or with ``skip_broken`` is listed in the result and the import goes on."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise ImportFormatError(f"{src}: expected a REFLACX dataset folder, found nothing")
    base, metas = find_metadata(src)
    image_index = index_images(Path(images) if images else None)
    result = ImportResult()
    made_out = not out.exists()
    try:
        for phase, meta_path in metas:
            _import_metadata(src, base, out, phase, meta_path, result, image_index, images, options={
                "display": display, "lead_s": lead_s, "overwrite": overwrite, "skip_broken": skip_broken,
                "limit": limit, "ppd_source": ppd_source,
            })  # fmt: skip
    except BaseException:
        _remove_partial_import(out, result.written, made_out)
        raise
    return result


def _remove_partial_import(out: Path, written: list[Path], made_out: bool) -> None:
    """A refused import leaves nothing behind: the files it wrote, and OUT when it made it."""
    if made_out:
        shutil.rmtree(out, ignore_errors=True)
        return
    for path in written:
        path.unlink(missing_ok=True)


def _import_metadata(
    src: Path,
    base: Path,
    out: Path,
    phase: int,
    meta_path: Path,
    result: ImportResult,
    image_index: dict[str, Path],
    images: str | Path | None,
    *,
    options: dict,
) -> None:
    """Every reading of one metadata file into ``out`` (see :func:`import_reflacx`)."""
    meta = read_table(meta_path, METADATA_COLUMNS)
    discarded = meta.flags("eye_tracking_data_discarded")
    for i in range(meta.n_rows):
        if options["limit"] is not None and result.n_cases >= options["limit"]:
            return
        rid = meta.text("id")[i].strip()
        if discarded[i]:
            result.n_discarded += 1
            note = _unread_note(base, rid)
            if note is not None:
                result.warnings.append(note)
            continue
        if not rid:
            raise ImportFormatError(f"{meta_path} row {i + 2}: expected a reading id, got an empty cell")
        target = out / f"{safe_name(rid)}.h5"
        check_output(target, options["overwrite"])
        image_path = _image_for(meta, i, image_index, images)
        try:
            gaze = _import_one(
                src,
                base,
                meta,
                i,
                phase,
                target,
                image_path,
                display=options["display"],
                lead_s=options["lead_s"],
                ppd_source=options["ppd_source"],
            )
        except Exception as exc:  # every error of a reading, whatever raised it (issue 24)
            error = reading_error(f"REFLACX reading {rid}", exc)
            if not options["skip_broken"]:
                raise error from exc
            result.skipped.append((rid, str(error)))
            continue
        if gaze is None:
            result.warnings.append(
                f"{rid}: no gaze.csv found; imported from fixations.csv only (no raw gaze)"
            )
        result.written.append(target)
        result.n_cases += 1


def _import_one(
    src: Path,
    base: Path,
    meta: Table,
    i: int,
    phase: int,
    target: Path,
    image_path: Path | None,
    *,
    display: DisplayGeometry | None,
    lead_s: float,
    ppd_source: str | None = None,
) -> Path | None:
    """Reading ``i`` of a metadata table -> its own session file ``target``; returns its gaze.csv (None: the
    reading has none, its case is flagged ``gaze_file: missing``)."""
    rid = meta.text("id")[i].strip()
    gaze_path = next(
        (p for p in (base / rid / "gaze.csv", src / "gaze_data" / rid / "gaze.csv") if p.is_file()), None
    )
    record = read_reading(
        base / rid,
        meta,
        i,
        phase=phase,
        gaze_path=gaze_path,
        image_path=image_path,
        display=display,
        lead_s=lead_s,
    )
    # px/deg: REFLACX's recorded one when the display was inferred from it, else the given display's
    source = REFLACX_PPD_SOURCE if display is None else ppd_source or options_ppd_source(None, None)
    record.attrs["ppd"] = ppd_record(record.display, source)
    record.attrs["gaze_file"] = "gaze.csv" if gaze_path is not None else "missing"
    provenance = {
        "importer": "reflacx",
        "source": str(src),
        "tracker": "EyeLink 1000 (REFLACX)",
        "eye_voice_lead_s": lead_s,
        "ppd": record.attrs["ppd"],
    }
    write_session_file(target, [record], provenance=provenance)
    return gaze_path


def _image_for(meta: Table, i: int, index: dict[str, Path], root: str | Path | None) -> Path | None:
    if root is None:
        return None
    if meta.has("dicom_id") and meta.text("dicom_id")[i].strip() in index:
        return index[meta.text("dicom_id")[i].strip()]
    if meta.has("image") and meta.text("image")[i].strip():
        rel = Path(meta.text("image")[i].strip())
        for cand in (
            Path(root) / rel,
            *(Path(root) / Path(*rel.parts[k:]) for k in range(1, len(rel.parts))),
        ):
            if cand.is_file():
                return cand
        if rel.stem in index:
            return index[rel.stem]
    raise ConfigError(
        f"--images {root}: no image found for REFLACX reading {meta.text('id')[i].strip()} "
        f"(looked for its dicom_id / image path under that folder)"
    )
