"""The annotation part of a case: an append-only log of JSON revisions, one per confirmed step.

Each time the reader confirms a step (labels, shapes, chest box, transcript) the whole annotation as it then
stands is appended as one line of the case's ``annotation_jsonl`` and the file is flushed. Nothing is ever
rewritten in place, so a ``kill -9`` at any moment leaves every revision written before it readable; a line the
crash left half-written is skipped with a note and the one before it is used.

Schema 5 stores the log as UTF-8 bytes (uint8), one JSON document per line (``json.dumps`` never writes a raw
newline), chunked with HDF5's Fletcher-32 filter like every other dataset: a flipped bit is refused by HDF5 and
named by ``inspect``. Schemas 3-4 kept it as ``annotation_log``, variable-length strings, on which HDF5 takes no
filter; those are still read, and the first revision appended to such a case copies them into the checksummed
log (written and flushed before the old dataset is removed, so a crash in between leaves both, the new one read).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import h5py
import numpy as np

from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.base.records import CaseAnnotation, LabelChoice, Shape

ANNOTATION_LOG = "annotation_jsonl"  # schema 5: uint8 UTF-8 JSON lines, Fletcher-32
ANNOTATION_LOG_VLEN = (
    "annotation_log"  # schemas 3-4: variable-length strings (no filter possible), still read
)
_CHUNK_BYTES = 4096  # a revision is ~0.3-2 kB of JSON


def annotation_to_json(annotation: CaseAnnotation, *, revision: int, step: str) -> str:
    """One revision's row: the whole annotation after ``step`` was confirmed."""
    return json.dumps(
        {
            "revision": revision,
            "step": step,
            "saved_utc": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "label_set": annotation.label_set,
            "protocol": annotation.protocol,
            "confirmed_steps": list(annotation.confirmed_steps),
            "labels": [
                {"label": c.label, "certainty": c.certainty, "text": c.text} for c in annotation.labels
            ],
            "shapes": [
                {"kind": s.kind, "box": list(s.box), "labels": list(s.labels), "certainty": s.certainty}
                for s in annotation.shapes
            ],
            "chest_box": None if annotation.chest_box is None else list(annotation.chest_box),
        },
        ensure_ascii=False,
    )


def annotation_from_json(text: str, where: str) -> CaseAnnotation:
    """Parse one revision row; :class:`SessionFormatError` (one line, naming ``where``) when it is not one."""
    try:
        doc = json.loads(text)
        annotation = CaseAnnotation(
            labels=[
                LabelChoice(str(c["label"]), _int(c["certainty"]), str(c.get("text", "")))
                for c in doc["labels"]
            ],
            shapes=[_shape(s) for s in doc["shapes"]],
            chest_box=None if doc["chest_box"] is None else _box(doc["chest_box"]),
            confirmed_steps=[str(s) for s in doc["confirmed_steps"]],
            label_set=str(doc.get("label_set", "")),
            protocol=str(doc.get("protocol", "")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        got = repr(text[:60]) if text else "an empty row"
        raise SessionFormatError(
            f"{where}: expected an annotation revision (JSON with labels, shapes, chest_box, confirmed_steps), "
            f"got {got} ({type(exc).__name__}: {exc})"
        ) from None
    return annotation


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer certainty, got {value!r}")
    return value


def _box(values: object) -> tuple[float, float, float, float]:
    if not isinstance(values, list) or len(values) != 4:
        raise ValueError(f"expected a box [x0, y0, x1, y1], got {values!r}")
    box = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in box):
        raise ValueError(f"expected finite box coordinates, got {values!r}")
    return box  # type: ignore[return-value]


def _shape(doc: dict) -> Shape:
    return Shape(
        str(doc["kind"]), *_box(doc["box"]), tuple(str(n) for n in doc["labels"]), _int(doc["certainty"])
    )


def append_revision(case_group: h5py.Group, annotation: CaseAnnotation, step: str) -> int:
    """Append ``annotation`` as the case's next revision; returns its number (1 = the first)."""
    rows = _stored_rows(case_group)
    line = annotation_to_json(annotation, revision=len(rows) + 1, step=step) + "\n"
    if ANNOTATION_LOG not in case_group:
        _create_log(case_group, "".join(f"{r}\n" for r in rows) + line)
        case_group.file.flush()
        if ANNOTATION_LOG_VLEN in case_group:
            del case_group[ANNOTATION_LOG_VLEN]  # copied into the checksummed log above
        return len(rows) + 1
    log = case_group[ANNOTATION_LOG]
    n = log.shape[0]
    if n and log[n - 1] != ord("\n"):
        line = "\n" + line  # a line a crash left unfinished stays a line of its own (skipped when read)
    data = np.frombuffer(line.encode("utf-8"), np.uint8)
    log.resize(n + data.size, axis=0)
    log[n:] = data
    return len(rows) + 1


def _create_log(case_group: h5py.Group, text: str) -> None:
    data = np.frombuffer(text.encode("utf-8"), np.uint8)
    case_group.create_dataset(
        ANNOTATION_LOG, data=data, maxshape=(None,), chunks=(_CHUNK_BYTES,), fletcher32=True
    )


def _stored_rows(case_group: h5py.Group) -> list[str]:
    """Every stored revision's text, oldest first (a half-written last line included, as it stands)."""
    if ANNOTATION_LOG in case_group:
        text = case_group[ANNOTATION_LOG][()].tobytes().decode("utf-8", errors="replace")
        rows = text.split("\n")
        return rows[:-1] if rows[-1] == "" else rows
    if ANNOTATION_LOG_VLEN in case_group:
        return list(case_group[ANNOTATION_LOG_VLEN].asstr()[()])
    return []


def read_annotation(case_group: h5py.Group, case_id: str) -> tuple[CaseAnnotation | None, list[str]]:
    """The case's latest readable revision (None: never annotated) and one line per revision skipped."""
    rows = _stored_rows(case_group)
    problems: list[str] = []
    for k in range(len(rows) - 1, -1, -1):
        where = f"case {case_id}: annotation revision {k + 1} of {len(rows)}"
        try:
            annotation = annotation_from_json(rows[k], where)
        except SessionFormatError as exc:
            problems.append(f"{exc}; {'the one before it is used' if k else 'no annotation is read'}")
            continue
        return annotation, problems[::-1]
    return None, problems[::-1]


def revision_steps(case_group: h5py.Group) -> list[str]:
    """The step each stored revision confirmed, oldest first ('?' for an unreadable row)."""
    steps = []
    for text in _stored_rows(case_group):
        try:
            steps.append(str(json.loads(text)["step"]))
        except (ValueError, KeyError, TypeError):
            steps.append("?")
    return steps
