"""Session files -> a BIDS 1.11 dataset with eye-tracking (``radgaze export bids``).

Layout (BIDS 1.11, "Physiological recordings", eye-tracking; BEP020 merged; the bids-examples
``eyetracking_binocular`` dataset shows the same shape)::

    OUT/dataset_description.json, README, participants.tsv/.json
    OUT/sub-<reader>/ses-<session>/beh/
        sub-<r>_ses-<s>_task-<task>_run-<n>_events.tsv/.json          the case: image shown, words, sentences
        sub-<r>_ses-<s>_task-<task>_run-<n>_recording-eye1_physio.tsv.gz/.json       gaze samples
        sub-<r>_ses-<s>_task-<task>_run-<n>_recording-eye1_physioevents.tsv.gz/.json fixations, saccades,
                                                                                        blinks, words, sentences
    OUT/derivatives/radgaze/sub-<r>/ses-<s>/beh/<same entities>_desc-image_fixations.tsv   image-space
        fixations; _desc-sentences_heatmaps.npz: one heatmap per sentence on the stored grid

One run per case. The physio file holds ``timestamp`` (s on the session's clock: LSL, or EyeLink's for
imported EyeLink files), ``x_coordinate``/``y_coordinate`` (screen px, top-left origin) and ``pupil_size``;
invalid samples are ``n/a``. The physio TSVs have no header (their sidecar's ``Columns`` names them);
``physioevents`` onsets are on the same timestamp clock (``OnsetSource``), ``events.tsv`` onsets are seconds
from the case's start, which the physio sidecar's ``StartTime`` relates to the first sample.
``RecordedEye`` is ``cyclopean`` for radgaze's combined binocular point (one eye when only one was used).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ConfigError
from radgaze.capture.base.records import GAZE_VALID, CaseRecord
from radgaze.capture.store.privacy import file_digest, image_reference
from radgaze.capture.store.reader import SessionReader

BIDS_VERSION = "1.11.0"
TASK = "cxrreading"
PHYSIO_COLUMNS = ["timestamp", "x_coordinate", "y_coordinate", "pupil_size"]
PHYSIOEVENT_COLUMNS = ["onset", "duration", "trial_type", "x_coordinate", "y_coordinate", "message"]
EVENT_COLUMNS = ["onset", "duration", "trial_type", "value"]
NA = "n/a"


@dataclass
class BidsResult:
    root: Path
    runs: list[str] = field(default_factory=list)  # file prefixes of the runs written
    notes: list[str] = field(default_factory=list)


def bids_label(text: str, what: str) -> str:
    """A BIDS label (letters and digits only) from a reader id or file stem."""
    label = re.sub(r"[^A-Za-z0-9]", "", text)
    if not label:
        raise ConfigError(f"{what}: expected letters or digits to make a BIDS label of, got {text!r}")
    return label


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _cell(v: object) -> str:
    if v is None:
        return NA
    if isinstance(v, float | np.floating):
        return NA if not np.isfinite(v) else f"{float(v):.6f}".rstrip("0").rstrip(".")
    return str(v).replace("\t", " ").replace("\n", " ") or NA


def _write_tsv(path: Path, rows: list[list], header: list[str] | None) -> None:
    text = "".join("\t".join(_cell(v) for v in r) + "\n" for r in rows)
    if header is not None:
        path.write_text("\t".join(header) + "\n" + text, encoding="utf-8")
        return
    _write_gz(path, text)  # BIDS: no header in the physio TSVs


def _write_gz(path: Path, text: str) -> None:
    """gzip without a file name or time in its header (the BIDS validator warns on both)."""
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as fh:
        fh.write(text.encode("utf-8"))


# ------------------------------------------------------------------------------------------------ dataset
def write_dataset_files(root: Path, participants: list[str], software_version: str) -> None:
    """dataset_description.json, README, participants.tsv/.json."""
    _write_json(
        root / "dataset_description.json",
        {
            "Name": "radgaze reading sessions",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "GeneratedBy": [{"Name": "radgaze", "Version": software_version or "unknown"}],
        },
    )
    (root / "README").write_text(
        "Radiologists reading chest radiographs while an eye tracker recorded their gaze and they dictated a "
        "report; exported from radgaze session files by `radgaze export bids`. One run per case (one image).\n",
        encoding="utf-8",
    )
    _write_tsv(
        root / "participants.tsv", [[f"sub-{p}"] for p in sorted(set(participants))], ["participant_id"]
    )
    _write_json(root / "participants.json", {"participant_id": {"Description": "The reader (radiologist)."}})


def _derivative_description(root: Path, software_version: str) -> None:
    _write_json(
        root / "derivatives" / "radgaze" / "dataset_description.json",
        {
            "Name": "radgaze image-space fixations and sentence heatmaps",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "radgaze", "Version": software_version or "unknown"}],
        },
    )


# ------------------------------------------------------------------------------------------------ one run
def _fmt(values: np.ndarray, ok: np.ndarray, fmt: str) -> np.ndarray:
    """Numbers as text, ``n/a`` where not ``ok`` (vectorized: a case holds ~10^5 samples)."""
    v = np.where(ok, values, 0.0).astype(np.float64)
    return np.where(ok, np.char.mod(fmt, v), NA)


def physio_text(case: CaseRecord) -> str:
    """The physio TSV's lines: timestamp, x, y, pupil (screen px; ``n/a`` for invalid samples)."""
    g = case.gaze
    valid = (
        (g["flags"] & GAZE_VALID).astype(bool) & np.isfinite(g["x_screen_px"]) & np.isfinite(g["y_screen_px"])
    )
    cols = [
        np.char.mod("%.6f", g["t_lsl"].astype(np.float64)),
        _fmt(g["x_screen_px"], valid, "%.2f"),
        _fmt(g["y_screen_px"], valid, "%.2f"),
        _fmt(g["pupil"], valid & np.isfinite(g["pupil"]), "%.3f"),
    ]
    lines = cols[0]
    for c in cols[1:]:
        lines = np.char.add(np.char.add(lines, "\t"), c)
    return "\n".join(lines.tolist()) + "\n" if g.size else ""


def sampling_frequency_hz(case: CaseRecord) -> float:
    """The median sample rate (trackers that send irregularly get their typical rate)."""
    dt = np.diff(case.gaze["t_lsl"])
    dt = dt[dt > 0]
    return round(float(1.0 / np.median(dt)), 3) if dt.size else 0.0


def recorded_eye(case: CaseRecord) -> str:
    eyes = case.attrs.get("eyes") or []
    return eyes[0] if len(eyes) == 1 and eyes[0] in ("left", "right") else "cyclopean"


def _pupil_description(case: CaseRecord) -> str:
    unit = case.attrs.get("pupil_unit")
    if unit in ("area", "diameter"):
        return f"Pupil {unit} as the eye tracker reports it."
    return "Pupil size as the eye tracker reports it: diameter or area, the session does not say which."


def physio_sidecar(case: CaseRecord, provenance: dict) -> dict:
    out = {
        "SamplingFrequency": sampling_frequency_hz(case),
        "StartTime": round(float(case.gaze["t_lsl"][0] - case.t_start), 6) if case.gaze.size else 0.0,
        "Columns": PHYSIO_COLUMNS,
        "PhysioType": "eyetrack",
        "SampleCoordinateSystem": "gaze-on-screen",
        "SampleCoordinateUnits": "pixel",
        "EnvironmentCoordinates": "top-left",
        "RecordedEye": recorded_eye(case),
        "timestamp": {
            "Description": "Sample time on the session's clock (LSL, or the tracker's).",
            "Units": "s",
        },
        "x_coordinate": {"Description": "Gaze position on the screen, from the left edge.", "Units": "pixel"},
        "y_coordinate": {"Description": "Gaze position on the screen, from the top edge.", "Units": "pixel"},
        "pupil_size": {"Description": _pupil_description(case), "Units": "arbitrary"},
    }
    out.update(case.attrs.get("calibration") or {})  # the tracker's calibration (EyeLink imports), BIDS keys
    tracker = provenance.get("tracker")
    name = tracker.get("stream", {}).get("name") if isinstance(tracker, dict) else tracker
    if name:
        out["ManufacturersModelName"] = str(name)
    return out


def _event_rows(case: CaseRecord, t0: float, image_name: str) -> list[list]:
    """events.tsv rows: the image shown, each word, each sentence (onsets in s from the case's start)."""
    rows = [[0.0, round(case.duration_s, 6), "image", image_name]]
    w, s = case.words, case.sentences
    rows += [[w.t_start[i] - t0, w.t_end[i] - w.t_start[i], "word", w.text[i]] for i in range(len(w))]
    rows += [[s.t_start[i] - t0, s.t_end[i] - s.t_start[i], "sentence", s.text[i]] for i in range(len(s))]
    return sorted(rows, key=lambda r: r[0])


def events_sidecar(case: CaseRecord, task: str) -> dict:
    d = case.display
    return {
        "TaskName": task,
        "Columns": EVENT_COLUMNS,
        "onset": {
            "Description": "Seconds from the case's start (the physio StartTime relates the samples).",
            "Units": "s",
        },
        "duration": {"Description": "Duration of the event.", "Units": "s"},
        "trial_type": {
            "Description": "What happened.",
            "Levels": {
                "image": "The radiograph on screen.",
                "word": "A dictated word.",
                "sentence": "A dictated sentence.",
            },
        },
        "value": {"Description": "The image file, or the word's or sentence's text."},
        "StimulusPresentation": {
            "ScreenDistance": round(d.viewing_distance_mm / 1000.0, 4),
            "ScreenOrigin": ["top", "left"],
            "ScreenResolution": [int(d.screen_w_px), int(d.screen_h_px)],
            "ScreenSize": [round(d.screen_w_mm / 1000.0, 4), round(d.screen_h_mm / 1000.0, 4)],
        },
    }


_TRACKER_KINDS = {"fixations": "tracker_fixation", "saccades": "tracker_saccade", "blinks": "tracker_blink"}


def physioevent_rows(case: CaseRecord) -> list[list]:
    """physioevents rows on the timestamp clock: radgaze's fixations, the tracker's own parsed events (EyeLink
    imports), words and sentences."""
    f = case.fixations
    rows = [
        [
            f["t_start"][i],
            f["t_end"][i] - f["t_start"][i],
            "fixation",
            f["x_screen_px"][i],
            f["y_screen_px"][i],
            None,
        ]
        for i in range(f.size)
    ]
    for key, kind in _TRACKER_KINDS.items():
        ev = (case.attrs.get("tracker_events") or {}).get(key) or {}
        for i, t in enumerate(ev.get("t_start", [])):
            xy = (
                (ev.get("x_screen_px") or [None] * (i + 1))[i],
                (ev.get("y_screen_px") or [None] * (i + 1))[i],
            )
            rows.append([t, ev["t_end"][i] - t, kind, *(np.nan if v is None else v for v in xy), None])
    w, s = case.words, case.sentences
    rows += [[w.t_start[i], w.t_end[i] - w.t_start[i], "word", None, None, w.text[i]] for i in range(len(w))]
    rows += [
        [s.t_start[i], s.t_end[i] - s.t_start[i], "sentence", None, None, s.text[i]] for i in range(len(s))
    ]
    return sorted(rows, key=lambda r: float(r[0]))


PHYSIOEVENTS_SIDECAR = {
    "Columns": PHYSIOEVENT_COLUMNS,
    "OnsetSource": "timestamp",
    "onset": {"Description": "Start on the physio file's timestamp clock.", "Units": "s"},
    "duration": {"Description": "Duration of the event.", "Units": "s"},
    "trial_type": {
        "Description": "Event type.",
        "Levels": {
            "fixation": "A fixation found by radgaze (I-VT, or I-DT when the session says so).",
            "tracker_fixation": "A fixation found by the eye tracker's own parser.",
            "tracker_saccade": "A saccade found by the eye tracker's own parser.",
            "tracker_blink": "A blink found by the eye tracker's own parser.",
            "word": "A dictated word.",
            "sentence": "A dictated sentence.",
        },
    },
    "x_coordinate": {"Description": "Fixation centre, or saccade start, on the screen.", "Units": "pixel"},
    "y_coordinate": {"Description": "Fixation centre, or saccade start, on the screen.", "Units": "pixel"},
    "message": {"Description": "The word's or sentence's text."},
}


def write_derivatives(case: CaseRecord, base: Path) -> None:
    """Image-space fixations (TSV) and the sentence heatmaps (npz, the stored grid) of one run."""
    base.parent.mkdir(parents=True, exist_ok=True)
    f = case.fixations
    rows = [
        [
            f["t_start"][i],
            f["t_end"][i] - f["t_start"][i],
            f["x_img_px"][i],
            f["y_img_px"][i],
            f["ppd_img"][i],
        ]
        for i in range(f.size)
    ]
    _write_tsv(
        Path(f"{base}_desc-image_fixations.tsv"),
        rows,
        ["onset", "duration", "x_image_px", "y_image_px", "ppd_image"],
    )
    np.savez_compressed(
        f"{base}_desc-sentences_heatmaps.npz",
        heatmaps=case.heatmaps,
        heatmap_index=case.sentences.heatmap_index,
        image_px_per_heatmap_px=np.float64(case.heatmap_scale),
    )


def image_name(case: CaseRecord, keep_names: bool) -> str:
    """How the events name the image: its content hash, its file name with ``keep_names`` (docs/privacy.md);
    ``screen`` when the screen itself is the case's image (an EyeLink import without images)."""
    if not case.image.sha256 and not case.image.path:
        return "screen"
    return Path(case.image.path).name if keep_names else image_reference(case.image.sha256)


def write_run(
    case: CaseRecord, provenance: dict, beh: Path, prefix: str, task: str, keep_names: bool
) -> None:
    """One case as one run: events, physio and physioevents with their sidecars."""
    beh.mkdir(parents=True, exist_ok=True)
    _write_tsv(
        beh / f"{prefix}_events.tsv",
        _event_rows(case, case.t_start, image_name(case, keep_names)),
        EVENT_COLUMNS,
    )
    _write_json(beh / f"{prefix}_events.json", events_sidecar(case, task))
    rec = beh / f"{prefix}_recording-eye1"
    _write_gz(Path(f"{rec}_physio.tsv.gz"), physio_text(case))
    _write_json(Path(f"{rec}_physio.json"), {"TaskName": task, **physio_sidecar(case, provenance)})
    _write_tsv(Path(f"{rec}_physioevents.tsv.gz"), physioevent_rows(case), None)
    _write_json(Path(f"{rec}_physioevents.json"), PHYSIOEVENTS_SIDECAR)


def export_bids(
    sessions: list[Path],
    out: str | Path,
    *,
    task: str = TASK,
    overwrite: bool = False,
    keep_names: bool = False,
) -> BidsResult:
    """Every case of ``sessions`` as a run of a BIDS dataset at ``out`` (see the module docstring). Sessions are
    named by their content digest and images by their hash unless ``keep_names`` (a file name may carry a
    patient's name: docs/privacy.md)."""
    root = Path(out)
    task = bids_label(task, "--task")
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise ConfigError(f"{root} exists and is not empty; pass --overwrite to replace it")
        shutil.rmtree(root)
    result, readers, version = BidsResult(root), [], ""
    for path in sessions:
        with SessionReader(path) as reader:
            sub = bids_label(reader.reader_id or "anonymous", f"{path}: reader id")
            ses = bids_label(Path(path).stem, f"{path}: file name") if keep_names else file_digest(path)[:12]
            readers.append(sub)
            version = version or reader.software_version
            for run, case_id in enumerate(reader.case_ids, start=1):
                case = reader.case(case_id)
                if not case.gaze.size:
                    result.notes.append(f"{path} case {case_id}: no gaze samples, not exported")
                    continue
                prefix = f"sub-{sub}_ses-{ses}_task-{task}_run-{run}"
                rel = Path(f"sub-{sub}") / f"ses-{ses}" / "beh"
                write_run(case, reader.provenance, root / rel, prefix, task, keep_names)
                write_derivatives(case, root / "derivatives" / "radgaze" / rel / prefix)
                result.runs.append(prefix)
    if not result.runs:
        raise ConfigError(f"expected cases with gaze in {[str(p) for p in sessions]}, found none to export")
    write_dataset_files(root, readers, version)
    _derivative_description(root, version)
    return result
