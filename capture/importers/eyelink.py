"""EyeLink recordings (EDF or ASC) -> a radgaze session file with one case per trial.

- Trials: a ``TRIALID <id>`` message starts one; it ends at its ``TRIAL_RESULT`` message, the next ``TRIALID`` or
  the last sample (SR Research's Experiment Builder / Data Viewer conventions). A file without ``TRIALID`` is one
  case. Trials without samples are skipped and listed.
- Clock: every time is EyeLink's own (the tracker's ms since it started) / 1000, as recorded; nothing is re-timed.
- Gaze: screen px as the tracker wrote them; missing codes (-32768, 1e8, ``.``) are invalid samples (kept).
  Binocular recordings combine both eyes (``--eye left|right`` keeps one) without a jump when an eye drops out
  (capture/gazemath/binocular.py), and record a warning when the eyes disagree by more than 2 deg.
- Pixels per degree come from the recording: the median of the tracker's per-sample gaze resolution over the
  trial (EDF; ASC made with ``edf2asc -res``), else the mean resolution of the ASC ``END`` lines. ``--screen-mm``
  with ``--distance-mm`` replaces it with the screen's physical size; with neither in the file nor given, the
  import stops and says so (never a silent default). The case's ``attrs["ppd"]`` records the value and source.
- Display: ``DISPLAY_COORDS`` (the experiment's message), else ``GAZE_COORDS`` (the tracker's), else ``--display``.
- Images: ``--image`` for every trial, or ``--image-map`` (CSV ``trial,image``; paths relative to it): each image
  fitted to the display for its trial. Without either the screen itself is the case's image (size of the display,
  no hash), so gaze, fixations and heatmaps stay in screen pixels.
- Words: EyeLink files hold no dictation; a case without words is valid (no sentences).
- EyeLink's own parsed events (its fixations, saccades and blinks for the eyes used) are kept beside radgaze's
  fixations in the case's ``attrs["tracker_events"]`` (seconds on the same clock, screen px).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ConfigError, ImportFormatError
from radgaze.capture.base.records import GAZE_DTYPE, GAZE_VALID, CaseRecord, DisplayGeometry, ImageRef
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S
from radgaze.capture.gazemath.binocular import BinocularCombiner, disagreement_warning, eye_disagreement_deg
from radgaze.capture.gazemath.fixations import fixation_agreement, fixation_settings, fixations_from_gaze
from radgaze.capture.gazemath.geometry import display_for_ppd, fit_view, map_gaze_to_image, ppd_screen
from radgaze.capture.gazemath.plausible import on_screen
from radgaze.capture.importers.common import (
    ImportResult,
    add_sentences,
    check_output,
    image_ref,
    read_table,
    safe_name,
    write_session_file,
)
from radgaze.capture.importers.eyelink_files import (
    EVENT_FIXATION,
    EVENT_NAMES,
    EYE_NAMES,
    EyeLinkRecording,
    read_eyelink,
)
from radgaze.capture.io.display import parse_size

ASSUMED_DISTANCE_MM = 650.0  # only the curvature of off-centre degrees depends on it when px/deg is recorded
PPD_FROM_SAMPLES = "recording: EyeLink per-sample gaze resolution (median over the trial)"
PPD_FROM_END_LINES = "recording: EyeLink ASC END lines' mean gaze resolution"
PPD_FROM_OPTIONS = "--screen-mm and --distance-mm"


@dataclass(frozen=True)
class Trial:
    trial_id: str
    t0_ms: float
    t1_ms: float  # exclusive: the next trial's start, the trial's TRIAL_RESULT, or just after the last sample


def split_trials(rec: EyeLinkRecording) -> list[Trial]:
    """Trials from ``TRIALID`` messages (see the module docstring); one trial for the whole file without them."""
    t_end = float(np.nextafter(rec.t_ms[-1], np.inf))
    starts = [
        (t, m.split(None, 1)[1].strip() if " " in m else "") for t, m in zip(rec.msg_t_ms, rec.msg_text)
    ]
    starts = [
        (float(t), tid) for (t, tid), m in zip(starts, rec.msg_text) if m.split(None, 1)[0] == "TRIALID"
    ]
    if not starts:
        return [Trial("", float(rec.t_ms[0]), t_end)]
    results = [float(t) for t, m in zip(rec.msg_t_ms, rec.msg_text) if m.startswith("TRIAL_RESULT")]
    out = []
    for k, (t0, tid) in enumerate(starts):
        t1 = starts[k + 1][0] if k + 1 < len(starts) else t_end
        ends = [t for t in results if t0 <= t <= t1]
        out.append(Trial(tid or str(k + 1), t0, ends[0] if ends else t1))
    return out


def recording_ppd(rec: EyeLinkRecording, sel: np.ndarray) -> tuple[tuple[float, float], str] | None:
    """(ppd_x, ppd_y) and where it came from, for the samples ``sel``; None when the file holds no resolution."""
    res = rec.res_ppd[sel]
    ok = np.isfinite(res).all(axis=1)
    if ok.any():
        return (float(np.median(res[ok, 0])), float(np.median(res[ok, 1]))), PPD_FROM_SAMPLES
    if rec.block_res_ppd:
        mean = np.mean(np.asarray(rec.block_res_ppd, np.float64), axis=0)
        return (float(mean[0]), float(mean[1])), PPD_FROM_END_LINES
    return None


@dataclass(frozen=True)
class GeometryOptions:
    """What the command line says about the display (each may be None)."""

    display_px: str | None = None
    screen_mm: str | None = None
    distance_mm: float | None = None


def trial_display(
    rec: EyeLinkRecording, sel: np.ndarray, opts: GeometryOptions
) -> tuple[DisplayGeometry, dict]:
    """The display of a trial and its ``ppd`` provenance record (value and source)."""
    size = rec.screen_px() or (parse_size(opts.display_px, "--display") if opts.display_px else None)
    if size is None:
        raise ImportFormatError(
            f"{rec.path}: expected GAZE_COORDS or DISPLAY_COORDS messages (the display in px), got none; "
            "give it with --display WxH"
        )
    w_px, h_px = int(size[0]), int(size[1])
    if opts.screen_mm and opts.distance_mm:
        w_mm, h_mm = parse_size(opts.screen_mm, "--screen-mm")
        display, source = DisplayGeometry(w_px, h_px, w_mm, h_mm, float(opts.distance_mm)), PPD_FROM_OPTIONS
    else:
        found = recording_ppd(rec, sel)
        if found is None:
            raise ImportFormatError(
                f"{rec.path}: expected the tracker's gaze resolution (px/deg) in the file (EDF samples, ASC made "
                "with edf2asc -res, or END ... RES lines), got none; give --screen-mm WxH and --distance-mm MM"
            )
        (ppd_x, ppd_y), source = found
        display = display_for_ppd(w_px, h_px, ppd_x, ppd_y, opts.distance_mm or ASSUMED_DISTANCE_MM)
    ppd_x, ppd_y = ppd_screen(display)
    return display, {"x": round(ppd_x, 3), "y": round(ppd_y, 3), "source": source}


_CALIBRATION = re.compile(r"^!CAL CALIBRATION (HV\d+) \S+ (LEFT|RIGHT)\b")
_VALIDATION = re.compile(r"^!CAL VALIDATION (HV\d+) \S+ (LEFT|RIGHT) .*?ERROR ([\d.]+) avg\. ([\d.]+) max")


def calibration(rec: EyeLinkRecording, eyes: list[str], t_end_ms: float) -> dict:
    """The tracker's calibrations of the eyes used up to ``t_end_ms``, in BIDS eye-tracking's terms: how many,
    of which type, and the last validation's average and maximal error (deg); {} when the file has none."""
    out: dict = {}
    wanted = {e.upper() for e in eyes}
    cals = [_CALIBRATION.match(m) for t, m in zip(rec.msg_t_ms, rec.msg_text) if t <= t_end_ms]
    cals = [m for m in cals if m and m.group(2) in wanted]
    if cals:
        out["CalibrationCount"] = len(cals)
        out["CalibrationType"] = cals[-1].group(1)
    vals = [_VALIDATION.match(m) for t, m in zip(rec.msg_t_ms, rec.msg_text) if t <= t_end_ms]
    vals = [m for m in vals if m and m.group(2) in wanted]
    if vals:
        out["AverageCalibrationError"] = float(vals[-1].group(3))
        out["MaximalCalibrationError"] = float(vals[-1].group(4))
    return out


def eye_columns(rec: EyeLinkRecording, eye: str) -> list[int]:
    """Columns of ``rec.x_px`` to use: both recorded eyes, or the one asked for."""
    if eye == "both":
        return list(range(len(rec.eyes)))
    if eye not in rec.eyes:
        raise ConfigError(f"--eye: expected one of the recorded eyes {list(rec.eyes)} or 'both', got {eye!r}")
    return [rec.eyes.index(eye)]


def trial_gaze(
    rec: EyeLinkRecording, sel: np.ndarray, cols: list[int], display: DisplayGeometry
) -> tuple[np.ndarray, str | None]:
    """GAZE_DTYPE rows (screen px, EyeLink clock in s) of the samples ``sel``, and a warning when two eyes
    disagree."""
    x, y, p = rec.x_px[sel][:, cols], rec.y_px[sel][:, cols], rec.pupil[sel][:, cols]
    ok = np.isfinite(x) & np.isfinite(y)
    warning = None
    if len(cols) == 2:
        warning = disagreement_warning(eye_disagreement_deg(x, y, ok, ppd_screen(display)))
        cx, cy, valid = BinocularCombiner().combine(x, y, ok)
    else:
        cx, cy, valid = x[:, 0], y[:, 0], ok[:, 0]
    valid = valid & on_screen(cx, cy, display)  # judged in px (issue 24): 5e6 px is no gaze, kept invalid
    cx, cy = np.where(valid, cx, np.nan), np.where(valid, cy, np.nan)
    out = np.zeros(int(sel.sum()), GAZE_DTYPE)
    out["t_lsl"] = rec.t_ms[sel] / 1000.0
    out["x_screen_px"], out["y_screen_px"] = cx, cy
    use = ok & np.isfinite(p)
    n_p = use.sum(axis=1)
    out["pupil"] = np.where(n_p > 0, np.where(use, p, 0.0).sum(axis=1) / np.maximum(n_p, 1), np.nan)
    out["x_img_px"] = out["y_img_px"] = np.nan
    out["flags"] = np.where(valid, GAZE_VALID, 0).astype(np.uint8)
    return out, warning


def tracker_events(rec: EyeLinkRecording, trial: Trial, cols: list[int]) -> dict:
    """EyeLink's parsed events overlapping the trial for the eyes used, as JSON-ready columns (s, screen px)."""
    eyes = [EYE_NAMES.index(rec.eyes[c]) for c in cols]
    ev = rec.events
    ev = ev[(ev["t_end_ms"] >= trial.t0_ms) & (ev["t_start_ms"] < trial.t1_ms) & np.isin(ev["eye"], eyes)]
    out = {}
    for kind, name in EVENT_NAMES.items():
        e = ev[ev["kind"] == kind]
        out[name + "s"] = {
            "eye": [EYE_NAMES[i] for i in e["eye"]],
            "t_start": (e["t_start_ms"] / 1000.0).tolist(),
            "t_end": (e["t_end_ms"] / 1000.0).tolist(),
            "x_screen_px": _json_floats(e["x_px"]),
            "y_screen_px": _json_floats(e["y_px"]),
            **(
                {
                    "x_end_screen_px": _json_floats(e["x_end_px"]),
                    "y_end_screen_px": _json_floats(e["y_end_px"]),
                }
                if kind == 2
                else {}
            ),
        }
    return out


def _json_floats(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 2) for v in values]


# ------------------------------------------------------------------------------------------------ images
def read_image_map(path: str | Path) -> dict[str, Path]:
    """``trial,image`` CSV -> {trial id: image path} (relative paths resolved against the CSV's folder)."""
    path = Path(path)
    tab = read_table(path, ["trial", "image"])
    out = {}
    for trial, image in zip(tab.text("trial"), tab.text("image")):
        p = Path(image.strip())
        out[trial.strip()] = p if p.is_absolute() else path.parent / p
    return out


def trial_image(
    trial: Trial, image: str | Path | None, image_map: dict[str, Path] | None, display: DisplayGeometry
) -> tuple[ImageRef, tuple[float, float]] | None:
    """The trial's image and its default window; the screen itself without an image; None when the map has no
    entry for the trial (the trial is skipped)."""
    path = image_map.get(trial.trial_id) if image_map is not None else image
    if image_map is not None and path is None:
        return None
    if path is None:
        return ImageRef("", "", display.screen_w_px, display.screen_h_px), (32768.0, 65536.0)
    from radgaze.capture.io.images import default_window, load_image

    ref = image_ref(Path(path))
    try:
        window = default_window(load_image(path))
    except Exception as exc:  # image_ref has read it already; a second failure is the same bad file
        raise ImportFormatError(f"{path}: expected a readable radiograph: {exc}") from exc
    return ref, window


# ------------------------------------------------------------------------------------------------ cases
@dataclass(frozen=True)
class EyeLinkOptions:
    image: str | Path | None = None
    image_map: dict[str, Path] | None = None
    geometry: GeometryOptions = GeometryOptions()
    eye: str = "both"
    fixation_method: str = "ivt"
    fixation_params: dict | None = None  # --ivt-window-ms (fixation_params); None: the defaults


def trial_case(rec: EyeLinkRecording, trial: Trial, opts: EyeLinkOptions) -> CaseRecord | str:
    """One trial as a case (words empty; sentences added by the caller), or why it is skipped."""
    sel = (rec.t_ms >= trial.t0_ms) & (rec.t_ms < trial.t1_ms)
    if not sel.any():
        return "no samples in the trial"
    display, ppd = trial_display(rec, sel, opts.geometry)
    picked = trial_image(trial, opts.image, opts.image_map, display)
    if picked is None:
        return "not in --image-map"
    ref, window = picked
    cols = eye_columns(rec, opts.eye)
    gaze, warning = trial_gaze(rec, sel, cols, display)
    t0, t1 = trial.t0_ms / 1000.0, max(trial.t1_ms / 1000.0, float(gaze["t_lsl"][-1]))
    view = fit_view(ref.width, ref.height, display, t_lsl=t0, window=window)
    gaze = map_gaze_to_image(gaze, view, display, ref.width, ref.height)
    name = safe_name(f"{rec.path.stem}_trial{trial.trial_id}" if trial.trial_id else rec.path.stem)
    attrs = {
        "source": f"eyelink {rec.path.suffix.lstrip('.').lower()}",
        "eyelink_file": str(rec.path),
        "trial_id": trial.trial_id,
        "eyes": [rec.eyes[c] for c in cols],
        "sample_rate_hz": rec.rate_hz,
        "pupil_unit": rec.pupil_unit,
        "ppd": ppd,
        "fixation_method": opts.fixation_method,
        "fixations": fixation_settings(opts.fixation_method, opts.fixation_params or {}),
        "view": "image fitted to the display for the whole trial" if ref.path else "the screen is the image",
        "tracker_events": tracker_events(rec, trial, cols),
        "calibration": calibration(rec, [rec.eyes[c] for c in cols], trial.t1_ms),
        "warnings": [warning] if warning else [],
    }
    return CaseRecord(
        case_id=name,
        image=ref,
        display=display,
        t_start=t0,
        t_end=t1,
        gaze=gaze,
        fixations=fixations_from_gaze(
            gaze, view, display, method=opts.fixation_method, **(opts.fixation_params or {})
        ),
        view_events=view,
        attrs=attrs,
    )


def import_eyelink(
    path: str | Path,
    out: str | Path,
    *,
    opts: EyeLinkOptions | None = None,
    lead_s: float = EYE_VOICE_LEAD_S,
    overwrite: bool = False,
) -> ImportResult:
    """Import one EDF/ASC file as ``out/<stem>.h5``, one case per trial (see the module docstring)."""
    path, out = Path(path), Path(out)
    opts = opts or EyeLinkOptions()
    target = out / f"{safe_name(path.stem)}.h5"
    check_output(target, overwrite)
    rec = read_eyelink(path)
    result, records = ImportResult(), []
    for trial in split_trials(rec):
        case = trial_case(rec, trial, opts)
        if isinstance(case, str):
            result.skipped.append((trial.trial_id or path.stem, case))
            continue
        records.append(add_sentences(case, lead_s=lead_s))
        result.warnings.extend(f"{case.case_id}: {w}" for w in case.attrs["warnings"])
    if not records:
        raise ImportFormatError(f"{path}: expected at least one trial with samples, got none to import")
    out.mkdir(parents=True, exist_ok=True)
    write_session_file(target, records, provenance=_provenance(rec, records, lead_s))
    result.written.append(target)
    result.n_cases = len(records)
    return result


def _provenance(rec: EyeLinkRecording, records: list[CaseRecord], lead_s: float) -> dict:
    ppd_sources = sorted({r.attrs["ppd"]["source"] for r in records})
    return {
        "importer": "eyelink",
        "source": str(rec.path),
        "tracker": "EyeLink",
        "tracker_rate_hz": rec.rate_hz,
        "timestamps": "EyeLink's clock (the tracker's ms since it started) / 1000, as recorded",
        "ppd_source": "; ".join(ppd_sources),
        "eye_voice_lead_s": lead_s,
    }


def eyelink_agreement(rec: EyeLinkRecording, eye: str, geometry: GeometryOptions, **params: float) -> dict:
    """radgaze's fixations on one recorded eye of the whole recording against EyeLink's own parser's
    (:func:`~radgaze.capture.gazemath.fixations.fixation_agreement`; centroids in screen px), with the px/deg
    used (``ppd``)."""
    sel = np.ones(rec.t_ms.size, bool)
    display, ppd = trial_display(rec, sel, geometry)
    gaze, _ = trial_gaze(rec, sel, eye_columns(rec, eye), display)
    view = fit_view(display.screen_w_px, display.screen_h_px, display, t_lsl=float(gaze["t_lsl"][0]))
    ours = fixations_from_gaze(gaze, view, display, **params)
    ev = rec.events
    theirs = ev[(ev["kind"] == EVENT_FIXATION) & (ev["eye"] == EYE_NAMES.index(eye))]
    out = fixation_agreement(
        ours["t_start"],
        ours["t_end"],
        np.stack([ours["x_screen_px"], ours["y_screen_px"]], axis=1).astype(np.float64),
        theirs["t_start_ms"] / 1000.0,
        theirs["t_end_ms"] / 1000.0,
        np.stack([theirs["x_px"], theirs["y_px"]], axis=1).astype(np.float64),
    )
    return {**out, "ppd": ppd}
