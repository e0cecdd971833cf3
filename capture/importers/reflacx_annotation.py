"""A REFLACX reading's annotation -> radgaze's :class:`~radgaze.capture.base.records.CaseAnnotation`.

What REFLACX holds (its collection code, ricbl/eyetracking; REFERENCE-NOTES.md):
- ``anomaly_location_ellipses.csv``: one row per ellipse, ``xmin ymin xmax ymax`` (image px, the ellipse's
  bounding box), ``certainty`` 1..5 (the collection app stores ``6 - certainty_chosen_index``: 5 = "Consistent
  with" … 1 = "Unlikely") and one True/False column per label.
- ``metadata_phase_N.csv``: per reading, one column per label holding the highest certainty of its ellipses (0 =
  not chosen); "Support devices" True/False and "Other" the reader's free text, which REFLACX asks without a
  certainty.
- ``chest_bounding_box.csv``: one row ``xmin ymin xmax ymax``, the box around heart and lungs.

Mapping: each ellipse becomes a Shape with its true labels and certainty; each chosen label a LabelChoice with
the metadata's certainty, or for a label REFLACX gives no certainty the highest of its ellipses (0 when it has
none: the source gave none); labels named only by ellipses are added the same way. Every REFLACX step was done,
so ``confirmed_steps`` lists them all.
"""

from __future__ import annotations

from pathlib import Path

from radgaze.capture.base.errors import ImportFormatError
from radgaze.capture.base.records import (
    SHAPE_ELLIPSE,
    STEP_CHEST_BOX,
    STEP_DICTATE,
    STEP_LABELS,
    STEP_SHAPES,
    CaseAnnotation,
    LabelChoice,
    Shape,
)
from radgaze.capture.gazemath.plausible import first_outside, implausible_value
from radgaze.capture.importers.common import Table, read_table

BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
ELLIPSE_KNOWN = frozenset({*BOX_COLUMNS, "certainty"})
FREE_TEXT_LABEL = "Other"
NOT_TEXT = frozenset({"", "false", "true", "0", "nan", "none", "-1"})


def read_ellipses(path: Path) -> list[Shape]:
    """``anomaly_location_ellipses.csv`` -> one ellipse Shape per row (labels: its True columns)."""
    if not path.is_file():
        return []
    tab = read_table(path, BOX_COLUMNS, allow_empty=True)
    cols = [c for c in tab.columns if c not in ELLIPSE_KNOWN]
    truth = {c: tab.flags(c) for c in cols}
    boxes = {c: tab.numbers(c) for c in BOX_COLUMNS}
    certainty = tab.numbers("certainty", allow_nan=True) if tab.has("certainty") else None
    if certainty is not None:
        bad = first_outside((certainty >= 1) & (certainty <= 5), certainty)
        if bad is not None:
            raise ImportFormatError(
                implausible_value(str(path), "certainty", *bad, "a REFLACX certainty 1..5")
            )
    shapes = []
    for i in range(tab.n_rows):
        level = 0 if certainty is None or certainty[i] != certainty[i] else int(certainty[i])
        labels = tuple(c for c in cols if truth[c][i])
        shapes.append(Shape(SHAPE_ELLIPSE, *(float(boxes[c][i]) for c in BOX_COLUMNS), labels, level))
    return shapes


def metadata_choices(meta: Table, i: int, known: frozenset[str], shapes: list[Shape]) -> list[LabelChoice]:
    """The label choices of metadata row ``i`` (columns not in ``known``), then those only ellipses name."""
    choices: dict[str, LabelChoice] = {}
    for col in meta.columns:
        if col in known:
            continue
        cell = meta.columns[col][i].strip()
        if col == FREE_TEXT_LABEL and cell.casefold() not in NOT_TEXT:
            choices[col] = LabelChoice(col, _shape_certainty(shapes, col), cell.replace("|", "; "))
            continue
        try:
            level = int(float(cell))
        except ValueError:
            if cell.casefold() == "true":
                choices[col] = LabelChoice(col, _shape_certainty(shapes, col))
            continue
        if level > 0:
            choices[col] = LabelChoice(col, level)
    for shape in shapes:
        for name in shape.labels:
            choices.setdefault(name, LabelChoice(name, _shape_certainty(shapes, name)))
    return list(choices.values())


def _shape_certainty(shapes: list[Shape], label: str) -> int:
    return max((s.certainty for s in shapes if label in s.labels), default=0)


def reading_annotation(
    meta: Table, i: int, known: frozenset[str], shapes: list[Shape], chest_box: list[float] | None
) -> CaseAnnotation | None:
    """The whole annotation of one reading (None when REFLACX holds none of it)."""
    labels = metadata_choices(meta, i, known, shapes)
    if not (labels or shapes or chest_box):
        return None
    steps = [STEP_DICTATE, STEP_LABELS, STEP_SHAPES] + ([STEP_CHEST_BOX] if chest_box else [])
    return CaseAnnotation(
        labels=labels,
        shapes=shapes,
        chest_box=None if chest_box is None else tuple(chest_box),  # type: ignore[arg-type]
        confirmed_steps=steps,
        label_set="reflacx",
        protocol="reflacx",
    )
