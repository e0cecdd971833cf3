"""EGD-CXR (Karargyris et al. 2021) -> radgaze session files, one file per recording session.

Layout read (REFERENCE-NOTES.md, "Public gaze + dictation datasets"), all in ``SRC``:
``fixations.csv`` and/or ``eye_gaze.csv`` (SESSION_ID, MEDIA_ID, DICOM_ID, Time (in secs), FPOGX, FPOGY,
FPOGD, FPOGV, ...; FPOG* normalised to the screen), ``master_sheet.csv`` (dicom_id, image_top_pad,
image_bottom_pad, image_left_pad, image_right_pad, label columns) and
``audio_segmentation_transcripts/<dicom_id>/transcript.json`` ({"full_text", "time_stamped_text": [{"phrase",
"begin_time", "end_time"}]}).

Choices (documented here because the dataset leaves them open):
- One session file per SESSION_ID (``OUT/egd_<session>.h5``), one case per DICOM_ID in viewing order; times are
  the session's ``Time (in secs)`` clock, unchanged.
- A case starts at its first gaze (or fixation) time, when the image appeared; transcript times are taken as
  seconds from that moment.
- Transcripts time whole phrases; each phrase's words share its span evenly (an approximation).
- Fixations: a fixations.csv row starts at its ``Time`` and lasts ``FPOGD`` seconds; rows with FPOGV = 0 are
  dropped. Without fixations.csv they are detected from eye_gaze.csv with radgaze's I-VT.
- Geometry: the image, padded by master_sheet's pads, is fitted (centred) to the fixed 1920x1080 screen; no
  zoom or pan (EGD-CXR's viewer had none). Image sizes come from the images (``--images``) or from a MIMIC-CXR
  metadata CSV with dicom_id, Rows, Columns (``--mimic-metadata``).
- Labels: master_sheet columns holding only 0/1 values are labels; a case has those equal to 1.
- Heatmaps follow radgaze's (REFLACX's) convention, not EGD-CXR's own (counts + 150 px Gaussian).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ImportFormatError
from radgaze.capture.base.records import (
    FIXATION_DTYPE,
    GAZE_DTYPE,
    GAZE_VALID,
    VIEW_DTYPE,
    VIEW_FIT,
    CaseRecord,
    DisplayGeometry,
    ImageRef,
)
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S
from radgaze.capture.gazemath.fixations import fixation_settings, fixations_from_gaze
from radgaze.capture.gazemath.geometry import map_gaze_to_image, ppd_screen, screen_to_image
from radgaze.capture.gazemath.plausible import SCREEN_MARGIN_FRAC, first_outside, implausible_value
from radgaze.capture.importers.common import (
    ImportResult,
    Table,
    add_sentences,
    check_output,
    image_ref,
    index_images,
    make_words,
    read_table,
    safe_name,
    spread_phrase,
    write_session_file,
)
from radgaze.capture.importers.plausibility import (
    reading_error,
    refuse_duplicates,
    refuse_long_reading,
    refuse_ms_fixations,
    refuse_ms_samples,
)
from radgaze.capture.io.display import options_ppd_source, ppd_record

TIME = "Time (in secs)"
GAZE_COLUMNS = ("DICOM_ID", TIME, "FPOGX", "FPOGY")
FIXATION_COLUMNS = ("DICOM_ID", TIME, "FPOGX", "FPOGY", "FPOGD")
OPTIONAL_GAZE = ("SESSION_ID", "FPOGV", "LPD", "RPD", "LPV", "RPV", "MEDIA_ID")
PADS = ("image_top_pad", "image_bottom_pad", "image_left_pad", "image_right_pad")
MASTER_COLUMNS = ("dicom_id", *PADS)
MASTER_NOT_LABELS = frozenset(
    {*MASTER_COLUMNS, "anchor_age", "study_id", "patient_id", "stay_id", "subject_id"}
)
# EGD-CXR showed every image on a fixed 1920x1080 screen (Karargyris et al. 2021). Its physical size is not in
# the dataset: the active area of a common 24-inch 16:9 panel (527 x 296 mm) and radgaze's default 650 mm
# viewing distance (DisplayGeometry) are assumptions; --screen-mm / --distance-mm override them.
EGD_DISPLAY = DisplayGeometry(1920, 1080, 527.0, 296.0, 650.0)
EGD_SCREEN_ASSUMED = (
    "assumed: 527 x 296 mm (a 24-inch 16:9 panel; EGD-CXR, Karargyris et al. 2021, states the 1920 x 1080 "
    "screen but not its size)"
)
EGD_DISTANCE_ASSUMED = "assumed: 650 mm (radgaze's default; EGD-CXR does not state the viewing distance)"


def egd_ppd_source(screen_mm: str | None = None, distance_mm: float | None = None) -> str:
    """Where an EGD-CXR import's px/deg comes from: the options given, else the stated assumptions."""
    return options_ppd_source(
        screen_mm,
        distance_mm,
        screen_mm_otherwise=EGD_SCREEN_ASSUMED,
        distance_otherwise=EGD_DISTANCE_ASSUMED,
    )


def padded_view(
    image_w: int,
    image_h: int,
    pads_tblr: tuple[float, float, float, float],
    display: DisplayGeometry,
    t_lsl: float,
) -> np.ndarray:
    """One VIEW row: the image padded by (top, bottom, left, right) px, fitted and centred on the screen."""
    top, bottom, left, right = pads_tblr
    w_pad, h_pad = image_w + left + right, image_h + top + bottom
    scale = min(display.screen_w_px / w_pad, display.screen_h_px / h_pad)
    row = np.zeros(1, VIEW_DTYPE)
    row["t_lsl"], row["kind"], row["scale"] = t_lsl, VIEW_FIT, scale
    row["offset_x"] = (display.screen_w_px - w_pad * scale) / 2 + left * scale
    row["offset_y"] = (display.screen_h_px - h_pad * scale) / 2 + top * scale
    row["window_center"], row["window_width"] = np.nan, np.nan  # EGD-CXR has no window/level
    return row


def gaze_rows(tab: Table, idx: np.ndarray, display: DisplayGeometry) -> np.ndarray:
    """eye_gaze.csv rows ``idx`` -> GAZE rows in screen px (image px are filled later through the view)."""
    g = np.zeros(idx.size, GAZE_DTYPE)
    g["t_lsl"] = tab.numbers(TIME)[idx]
    x = tab.numbers("FPOGX", allow_nan=True)[idx] * display.screen_w_px
    y = tab.numbers("FPOGY", allow_nan=True)[idx] * display.screen_h_px
    _refuse_implausible(tab, idx, x, y, display)
    refuse_ms_samples(str(tab.path), TIME, g["t_lsl"])
    valid = np.isfinite(x) & np.isfinite(y)
    if tab.has("FPOGV"):
        valid &= tab.numbers("FPOGV", allow_nan=True)[idx] > 0
    g["x_screen_px"], g["y_screen_px"] = np.where(valid, x, np.nan), np.where(valid, y, np.nan)
    pupils = [tab.numbers(c, allow_nan=True)[idx] for c in ("LPD", "RPD") if tab.has(c)]
    if pupils:
        p = np.stack(pupils, 1)
        ok = np.isfinite(p) & (p > 0)
        g["pupil"] = np.where(ok.any(1), np.where(ok, p, 0).sum(1) / np.maximum(ok.sum(1), 1), np.nan)
    else:
        g["pupil"] = np.nan
    g["flags"] = np.where(valid, GAZE_VALID, 0)
    return g[np.argsort(g["t_lsl"], kind="stable")]


def fixation_rows(tab: Table, idx: np.ndarray, display: DisplayGeometry, view: np.ndarray) -> np.ndarray:
    """fixations.csv rows ``idx`` -> FIXATION rows (start = Time, duration = FPOGD, invalid rows dropped)."""
    t0 = tab.numbers(TIME)[idx]
    dur = tab.numbers("FPOGD")[idx]
    keep = dur > 0
    if tab.has("FPOGV"):
        keep &= tab.numbers("FPOGV", allow_nan=True)[idx] > 0
    fix = np.zeros(int(keep.sum()), FIXATION_DTYPE)
    fix["t_start"], fix["t_end"] = t0[keep], t0[keep] + dur[keep]
    fix["x_screen_px"] = tab.numbers("FPOGX")[idx][keep] * display.screen_w_px
    fix["y_screen_px"] = tab.numbers("FPOGY")[idx][keep] * display.screen_h_px
    _refuse_implausible(tab, idx[keep], fix["x_screen_px"], fix["y_screen_px"], display)
    refuse_ms_fixations(str(tab.path), "FPOGD", fix["t_start"], fix["t_end"])
    x, y, scale = screen_to_image(fix["x_screen_px"], fix["y_screen_px"], fix["t_start"], view)
    fix["x_img_px"], fix["y_img_px"] = x, y
    fix["ppd_img"] = (
        float(np.sqrt(np.prod(ppd_screen(display)))) / scale
    )  # as radgaze.capture.gazemath.fixations does
    return fix[np.argsort(fix["t_start"], kind="stable")]


def _refuse_implausible(tab: Table, idx: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, display) -> None:
    """FPOGX / FPOGY are fractions of the screen, judged in px after scaling (FPOGX 50 is 50 screens away):
    one line naming the file, its row, the column and the value. Rows repeating the row before refused."""
    for column, px, side in (("FPOGX", x_px, display.screen_w_px), ("FPOGY", y_px, display.screen_h_px)):
        with np.errstate(invalid="ignore"):
            ok = (px >= -SCREEN_MARGIN_FRAC * side) & (px <= (1 + SCREEN_MARGIN_FRAC) * side)
        bad = first_outside(ok, px)
        if bad is not None:
            expected = f"a fraction of the screen, 0..1 (+/- {SCREEN_MARGIN_FRAC:g})"
            row, value = int(idx[bad[0]]), bad[1] / side
            raise ImportFormatError(implausible_value(str(tab.path), column, row, value, expected))
    refuse_duplicates(str(tab.path), "sample", np.stack([tab.numbers(TIME)[idx], x_px, y_px], 1))


def read_transcript(path: Path, t0: float):
    """transcript.json -> Words on the session clock (phrase times are seconds from ``t0``)."""
    if not path.is_file():
        raise ImportFormatError(f"{path}: expected an EGD-CXR transcript.json, found nothing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (
        OSError,
        UnicodeDecodeError,
        json.JSONDecodeError,
        RecursionError,
    ) as exc:  # RecursionError: nesting
        raise ImportFormatError(
            f"{path}: expected JSON with full_text and time_stamped_text ({type(exc).__name__}: {exc})"
        ) from exc
    phrases = data.get("time_stamped_text") if isinstance(data, dict) else None
    if not isinstance(phrases, list):
        raise ImportFormatError(f"{path}: expected a list 'time_stamped_text', got {type(phrases).__name__}")
    texts: list[str] = []
    starts, ends = [], []
    for k, ph in enumerate(phrases):
        try:
            phrase, b, e = str(ph["phrase"]), float(ph["begin_time"]), float(ph["end_time"])
        except (TypeError, KeyError, ValueError) as exc:
            raise ImportFormatError(
                f"{path}: time_stamped_text[{k}]: expected phrase, begin_time, end_time (numbers), got {ph!r}"
            ) from exc
        if not (np.isfinite(b) and np.isfinite(e)) or e < b:
            raise ImportFormatError(
                f"{path}: time_stamped_text[{k}]: expected begin_time <= end_time, got {b}, {e}"
            )
        w, s, t = spread_phrase(phrase, t0 + b, t0 + e)
        texts += w
        starts.append(s)
        ends.append(t)
    if not texts:
        return make_words([], np.zeros(0), np.zeros(0), where=str(path)), data.get("full_text", "")
    return make_words(texts, np.concatenate(starts), np.concatenate(ends), where=str(path)), data.get(
        "full_text", ""
    )


def label_columns(master: Table) -> list[str]:
    """master_sheet columns holding only 0/1 (or empty) values: the label columns."""
    out = []
    for col, cells in master.columns.items():
        if col in MASTER_NOT_LABELS:
            continue
        values = {c.strip() for c in cells} - {""}
        if values and values <= {"0", "1", "0.0", "1.0"}:
            out.append(col)
    return out


def image_sizes(mimic_metadata: Path | None) -> dict[str, tuple[int, int]]:
    """dicom_id -> (width, height) from a MIMIC-CXR metadata CSV (dicom_id, Rows, Columns)."""
    if mimic_metadata is None:
        return {}
    tab = read_table(Path(mimic_metadata), ("dicom_id", "Rows", "Columns"))
    rows, cols = tab.numbers("Rows"), tab.numbers("Columns")
    return {d.strip(): (int(c), int(r)) for d, r, c in zip(tab.text("dicom_id"), rows, cols)}


def _case_image(dicom_id: str, images: dict[str, Path], sizes: dict[str, tuple[int, int]]) -> ImageRef:
    if dicom_id in images:
        return image_ref(images[dicom_id])
    if dicom_id in sizes:
        return image_ref(
            None, width=sizes[dicom_id][0], height=sizes[dicom_id][1], stored_path=f"{dicom_id}.dcm"
        )
    raise ImportFormatError(
        f"EGD-CXR image {dicom_id}: its size is needed for the geometry; pass --images (a folder holding "
        f"{dicom_id}.dcm/.png/.jpg) or --mimic-metadata (a CSV with dicom_id, Rows, Columns)"
    )


_NONE = np.zeros(0, np.int64)


@dataclass
class _Dataset:
    """What every case of an EGD-CXR import reads from."""

    src: Path
    fix_tab: Table | None
    gaze_tab: Table | None
    pads: dict[str, tuple[float, float, float, float]]  # dicom_id -> (top, bottom, left, right) px
    master_row: dict[str, int]
    labels: dict[str, np.ndarray]  # label column -> (n_master_rows,) bool
    images: dict[str, Path]
    sizes: dict[str, tuple[int, int]]
    display: DisplayGeometry
    lead_s: float
    ppd_source: str
    fixation_params: dict | None = None  # I-VT on raw gaze when the session has no fixations.csv


def _case_rows(tab: Table | None) -> dict[tuple[str, str], np.ndarray]:
    """(SESSION_ID, DICOM_ID) -> row indices of a gaze/fixation table (SESSION_ID "0" when absent)."""
    if tab is None:
        return {}
    sessions = tab.text("SESSION_ID") if tab.has("SESSION_ID") else ["0"] * tab.n_rows
    out: dict[tuple[str, str], list[int]] = {}
    for i, (s, d) in enumerate(zip(sessions, tab.text("DICOM_ID"))):
        out.setdefault((s.strip(), d.strip()), []).append(i)
    return {k: np.asarray(v, np.int64) for k, v in out.items()}


def import_egd(
    src: str | Path,
    out: str | Path,
    *,
    images: str | Path | None = None,
    mimic_metadata: str | Path | None = None,
    display: DisplayGeometry = EGD_DISPLAY,
    lead_s: float = EYE_VOICE_LEAD_S,
    overwrite: bool = False,
    skip_broken: bool = False,
    ppd_source: str | None = None,
    fixation_params: dict | None = None,
) -> ImportResult:
    """Import an EGD-CXR folder into ``out/egd_<session>.h5`` files (see the module docstring). ``ppd_source``
    says where the display's size and distance came from (default: :func:`egd_ppd_source`, the assumptions)."""
    src, out = Path(src), Path(out)
    ds = _load_dataset(src, images, mimic_metadata, display, lead_s)
    ds.ppd_source = ppd_source or egd_ppd_source()
    ds.fixation_params = fixation_params or {}
    primary = ds.fix_tab if ds.fix_tab is not None else ds.gaze_tab
    fix_groups, gaze_groups = _case_rows(ds.fix_tab), _case_rows(ds.gaze_tab)
    t_primary = primary.numbers(TIME)
    sessions: dict[str, list[tuple[float, str]]] = {}
    for (session, dicom_id), idx in _case_rows(primary).items():
        sessions.setdefault(session, []).append((float(t_primary[idx].min()), dicom_id))
    result = ImportResult()
    for session, cases in sessions.items():
        records = []
        for _, dicom_id in sorted(cases):
            rows = (fix_groups.get((session, dicom_id), _NONE), gaze_groups.get((session, dicom_id), _NONE))
            try:
                records.append(_read_case(ds, session, dicom_id, rows))
            except Exception as exc:  # every error of a case, whatever raised it (issue 24)
                error = reading_error(f"EGD-CXR case {dicom_id}", exc)
                if not skip_broken:
                    raise error from exc
                result.skipped.append((dicom_id, str(error)))
        if records:
            _write_session(ds, session, records, out, overwrite, result)
    return result


def _load_dataset(
    src: Path,
    images: str | Path | None,
    mimic_metadata: str | Path | None,
    display: DisplayGeometry,
    lead_s: float,
) -> _Dataset:
    """The dataset's tables (fixations and/or gaze, master sheet) and image index, checked."""
    if not src.is_dir():
        raise ImportFormatError(f"{src}: expected an EGD-CXR dataset folder, found nothing")
    fix_path, gaze_path = src / "fixations.csv", src / "eye_gaze.csv"
    if not fix_path.is_file() and not gaze_path.is_file():
        raise ImportFormatError(f"{src}: expected fixations.csv and/or eye_gaze.csv (EGD-CXR), found neither")
    fix_tab = read_table(fix_path, FIXATION_COLUMNS, keep=OPTIONAL_GAZE) if fix_path.is_file() else None
    gaze_tab = read_table(gaze_path, GAZE_COLUMNS, keep=OPTIONAL_GAZE) if gaze_path.is_file() else None
    master = read_table(src / "master_sheet.csv", MASTER_COLUMNS)
    pads = np.stack([master.numbers(c) for c in PADS], 1)
    dicoms = [d.strip() for d in master.text("dicom_id")]
    return _Dataset(
        src=src,
        fix_tab=fix_tab,
        gaze_tab=gaze_tab,
        pads={d: tuple(float(v) for v in pads[i]) for i, d in enumerate(dicoms)},
        master_row={d: i for i, d in enumerate(dicoms)},
        labels={c: master.flags(c) for c in label_columns(master)},
        images=index_images(Path(images) if images else None),
        sizes=image_sizes(Path(mimic_metadata) if mimic_metadata else None),
        display=display,
        lead_s=lead_s,
        ppd_source=egd_ppd_source(),
    )


def _write_session(
    ds: _Dataset, session: str, records: list, out: Path, overwrite: bool, result: ImportResult
) -> None:
    """One recording session's cases -> ``out/egd_<session>.h5``, counted in ``result``."""
    target = out / f"egd_{safe_name(session)}.h5"
    check_output(target, overwrite)
    provenance = {
        "importer": "egd-cxr",
        "source": str(ds.src),
        "tracker": "Gazepoint GP3 (EGD-CXR)",
        "session_id": session,
        "eye_voice_lead_s": ds.lead_s,
        "ppd": ppd_record(ds.display, ds.ppd_source),
    }
    write_session_file(target, records, provenance=provenance)
    result.written.append(target)
    result.n_cases += len(records)


def _read_case(ds: _Dataset, session: str, dicom_id: str, rows: tuple[np.ndarray, np.ndarray]) -> CaseRecord:
    """One EGD-CXR case (a DICOM_ID within a session) with sentences and heatmaps."""
    src, fix_tab, gaze_tab, display = ds.src, ds.fix_tab, ds.gaze_tab, ds.display
    if dicom_id not in ds.pads:
        raise ImportFormatError(
            f"{src / 'master_sheet.csv'}: expected a row for dicom_id {dicom_id}, found none"
        )
    image = _case_image(dicom_id, ds.images, ds.sizes)
    fix_idx, gaze_idx = rows
    firsts = [
        tab.numbers(TIME)[idx].min() for tab, idx in ((fix_tab, fix_idx), (gaze_tab, gaze_idx)) if idx.size
    ]
    t0 = float(min(firsts))
    view = padded_view(image.width, image.height, ds.pads[dicom_id], display, t0)
    gaze = np.zeros(0, GAZE_DTYPE)
    if gaze_idx.size:
        gaze = map_gaze_to_image(
            gaze_rows(gaze_tab, gaze_idx, display), view, display, image.width, image.height
        )
    if fix_idx.size:
        fix = fixation_rows(fix_tab, fix_idx, display, view)
    else:
        fix = fixations_from_gaze(gaze, view, display, **ds.fixation_params)
    words, full_text = read_transcript(
        src / "audio_segmentation_transcripts" / dicom_id / "transcript.json", t0
    )
    ends = [t0]
    for arr in (fix["t_end"], gaze["t_lsl"], words.t_end):
        if arr.size:
            ends.append(float(arr.max()))
    refuse_long_reading(f"EGD-CXR case {dicom_id}", t0, max(ends))
    i = ds.master_row[dicom_id]
    record = CaseRecord(
        case_id=safe_name(dicom_id),
        image=image,
        display=display,
        t_start=t0,
        t_end=max(ends),
        gaze=gaze,
        fixations=fix,
        view_events=view,
        words=words,
        labels=sorted(c.casefold() for c, v in ds.labels.items() if v[i]),
        attrs={
            "source": "egd-cxr",
            "dicom_id": dicom_id,
            "session_id": session,
            "time_origin": "EGD-CXR 'Time (in secs)' of the session; transcript times counted from the case's "
            "first gaze sample",
            "word_times": "phrase spans shared evenly between the phrase's words (approximation)",
            "pads_tblr": [float(v) for v in ds.pads[dicom_id]],
            "full_text": full_text,
            "ppd": ppd_record(display, ds.ppd_source),
            "fixations": {"from": "EGD-CXR fixations.csv (Gazepoint's)"}
            if fix_idx.size
            else {"from": "radgaze I-VT on eye_gaze.csv", **fixation_settings("ivt", ds.fixation_params)},
        },
    )
    return add_sentences(record, lead_s=ds.lead_s)
