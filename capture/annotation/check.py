"""Checks of one case's annotation: shapes on the image and of real size, labels and certainties of the label set.

Each problem is one line naming what was expected and what came, so the annotation UI can show it before "next"
and the session writer can refuse it (nothing already in the file is touched by a refused write).
"""

from __future__ import annotations

import math

from radgaze.capture.annotation.labels import LabelSet
from radgaze.capture.base.records import SHAPE_KINDS, STEPS, CaseAnnotation, Shape

MIN_SHAPE_SIDE_PX = 2.0  # a shape narrower than this (image px) is a slip of the mouse, not a localisation


def shape_problems(shape: Shape, width_px: int, height_px: int, what: str = "shape") -> list[str]:
    """Problems of one shape on a ``width_px`` × ``height_px`` image."""
    if shape.kind not in SHAPE_KINDS:
        return [f"{what}: expected a kind in {list(SHAPE_KINDS)}, got {shape.kind!r}"]
    box = shape.box
    if not all(math.isfinite(v) for v in box):
        return [f"{what}: expected finite coordinates (image px), got {box}"]
    x0, y0, x1, y1 = box
    problems = []
    if x1 - x0 < MIN_SHAPE_SIDE_PX or y1 - y0 < MIN_SHAPE_SIDE_PX:
        problems.append(
            f"{what}: expected a {shape.kind} at least {MIN_SHAPE_SIDE_PX:g} px wide and high, "
            f"got {x1 - x0:.1f} × {y1 - y0:.1f} px"
        )
    if x0 < 0 or y0 < 0 or x1 > width_px or y1 > height_px:
        problems.append(
            f"{what}: expected it inside the {width_px} × {height_px} px image, "
            f"got x {x0:.0f}..{x1:.0f}, y {y0:.0f}..{y1:.0f}"
        )
    if shape.certainty < 0:
        problems.append(f"{what}: expected a certainty level >= 0, got {shape.certainty}")
    return problems


def annotation_problems(
    annotation: CaseAnnotation, width_px: int, height_px: int, label_set: LabelSet | None = None
) -> list[str]:
    """Every problem of ``annotation`` on a ``width_px`` × ``height_px`` image (empty: it may be stored).

    Without ``label_set`` only what any label set allows is checked (shapes, steps, duplicate labels); with it,
    the label names, certainty levels, the exclusive label and the free text too.
    """
    problems = []
    for k, shape in enumerate(annotation.shapes):
        problems += shape_problems(shape, width_px, height_px, f"{shape.kind} {k + 1}")
    if annotation.chest_box is not None:
        chest = Shape("box", *annotation.chest_box)
        problems += shape_problems(chest, width_px, height_px, "chest box")
    unknown_steps = [s for s in annotation.confirmed_steps if s not in STEPS]
    if unknown_steps:
        problems.append(f"confirmed steps: expected names in {list(STEPS)}, got {unknown_steps}")
    names = annotation.label_names()
    if len(set(names)) != len(names):
        problems.append(f"labels: expected each label once, got {names}")
    if label_set is not None:
        problems += _label_set_problems(annotation, label_set)
    return problems


def _label_set_problems(annotation: CaseAnnotation, label_set: LabelSet) -> list[str]:
    known = set(label_set.label_names())
    levels = {c.level for c in label_set.certainties}
    problems = []
    for choice in annotation.labels:
        if choice.label not in known:
            problems.append(f"label set {label_set.name!r}: expected one of its labels, got {choice.label!r}")
            continue
        if choice.certainty not in levels:
            problems.append(
                f"label {choice.label!r}: expected a certainty level in {sorted(levels)}, got {choice.certainty}"
            )
        if label_set.label(choice.label).free_text and not choice.text.strip():
            problems.append(f"label {choice.label!r}: expected the reader's text, got none")
    exclusive = [
        c.label for c in annotation.labels if c.label in known and label_set.label(c.label).exclusive
    ]
    if exclusive and len(annotation.labels) > 1:
        problems.append(f"label {exclusive[0]!r} is chosen alone, got it with {annotation.label_names()}")
    for k, shape in enumerate(annotation.shapes):
        strangers = [name for name in shape.labels if name not in annotation.label_names()]
        if strangers:
            problems.append(f"{shape.kind} {k + 1}: expected labels chosen for the case, got {strangers}")
        if shape.certainty and shape.certainty not in levels:
            problems.append(
                f"{shape.kind} {k + 1}: expected a certainty level in {sorted(levels)}, got {shape.certainty}"
            )
    return problems


def missing_localisations(annotation: CaseAnnotation, label_set: LabelSet) -> list[str]:
    """Chosen labels that need a shape (``localise``) and have none: flagged before "next"."""
    shaped = {name for shape in annotation.shapes for name in shape.labels}
    return [
        c.label
        for c in annotation.labels
        if c.label in label_set.label_names() and label_set.label(c.label).localise and c.label not in shaped
    ]
