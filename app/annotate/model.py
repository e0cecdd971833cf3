"""The annotation of one case as the reader builds it, step by step, keyboard first (Qt-free).

Keys (REFLACX's label list, 17 labels): ``1``–``9``, ``0``, then ``Q W E R T Y U`` toggle a label, in the label
set's order. Right after a label is switched on (for the case in the labels step, for the selected shape in the
shapes step), the next digit ``1``–``5`` is its certainty (5 = "Consistent with" … 1 = "Unlikely", the level
numbers of the scale); any other key leaves it unset, which "next" then flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from radgaze.capture.annotation.check import annotation_problems, missing_localisations
from radgaze.capture.annotation.labels import LabelSet
from radgaze.capture.annotation.protocol import Protocol
from radgaze.capture.base.records import (
    SHAPE_BOX,
    STEP_CHEST_BOX,
    STEP_DICTATE,
    STEP_LABELS,
    STEP_SHAPES,
    CaseAnnotation,
    LabelChoice,
    Shape,
)

LABEL_KEYS = "1234567890QWERTYU"


@dataclass
class CaseAnnotator:
    """One case's annotation and where the reader is in the protocol."""

    protocol: Protocol
    label_set: LabelSet
    width_px: int
    height_px: int
    annotation: CaseAnnotation = field(default_factory=CaseAnnotation)
    step_index: int = 0
    selected: int | None = None  # index of the selected shape
    awaiting_certainty: str | None = None  # the label whose certainty the next digit gives
    awaiting_shape: int | None = None  # the shape that label was typed for (shapes step), else None
    notice: str = ""  # one line for the reader: a certainty awaited, or one cancelled (and why)

    def __post_init__(self) -> None:
        self.annotation.label_set = self.label_set.name
        self.annotation.protocol = self.protocol.name
        if not self.annotation.confirmed_steps and self.steps and self.steps[0] != STEP_DICTATE:
            self.annotation.confirmed_steps = [STEP_DICTATE]  # the case was dictated when it was recorded

    # -- steps ------------------------------------------------------------------------------------------
    @property
    def steps(self) -> list[str]:
        """The steps the reader goes through here (dictation happened when recording)."""
        return [s for s in self.protocol.steps if s != STEP_DICTATE]

    @property
    def step(self) -> str:
        return self.steps[self.step_index] if self.steps else ""

    def problems(self) -> list[str]:
        """What stops "next" at this step (one line each)."""
        problems = annotation_problems(self.annotation, self.width_px, self.height_px, self.label_set)
        if self.step == STEP_LABELS and not self.annotation.labels:
            problems.append("labels: choose at least one (Normal radiograph when there is no finding)")
        if self.step in (STEP_LABELS, STEP_SHAPES):
            problems += [f"label {c.label!r}: expected a certainty, got none" for c in self.annotation.labels
                         if c.certainty == 0]  # fmt: skip
        if self.step == STEP_SHAPES:
            problems += [f"label {name!r} needs an ellipse, has none" for name in self._unshaped()]
            problems += [f"shape {k + 1}: expected a certainty, got none"
                         for k, s in enumerate(self.annotation.shapes) if s.certainty == 0]  # fmt: skip
        if self.step == STEP_CHEST_BOX and self.annotation.chest_box is None:
            problems.append("chest box: draw one box around heart and lungs")
        return problems

    def _unshaped(self) -> list[str]:
        return (
            missing_localisations(self.annotation, self.label_set) if self.protocol.has(STEP_SHAPES) else []
        )

    def confirm(self) -> str | None:
        """Confirm the current step when nothing stops it: returns the step confirmed (to be saved), else None.

        Refused for a missing certainty, the next digit gives it (to the first label, or shape, without one)."""
        if self.problems():
            self._await_missing_certainty()
            return None
        done = self.step
        if done not in self.annotation.confirmed_steps:
            self.annotation.confirmed_steps.append(done)
        self.step_index = min(self.step_index + 1, len(self.steps))
        self._await(None)
        return done

    def _await_missing_certainty(self) -> None:
        if self.step == STEP_SHAPES:
            unsure = [k for k, shape in enumerate(self.annotation.shapes) if shape.certainty == 0]
            if unsure:
                self.selected = unsure[0]
                labels = self.annotation.shapes[unsure[0]].labels
                self._await(labels[-1] if labels else "its label", unsure[0])
                return
        unsure_labels = self._uncertain_labels()
        if unsure_labels and self.step in (STEP_LABELS, STEP_SHAPES):
            self._await(unsure_labels[0])

    def back(self) -> None:
        self.step_index = max(0, self.step_index - 1)
        self._await(None)

    @property
    def finished(self) -> bool:
        return self.step_index >= len(self.steps)

    # -- keys -------------------------------------------------------------------------------------------
    def press(self, key: str) -> bool:
        """A label or certainty key; True when it changed something."""
        key = key.upper()
        if self.awaiting_certainty is not None and key in "12345":
            return self._set_certainty(int(key))
        self._await(None)
        k = LABEL_KEYS.find(key)
        if k < 0 or k >= len(self.label_set.labels) or not key:
            return False
        name = self.label_set.labels[k].name
        if self.step == STEP_SHAPES:
            return self._toggle_shape_label(name)
        if self.step == STEP_LABELS:
            return self._toggle_case_label(name)
        return False

    def _toggle_case_label(self, name: str) -> bool:
        chosen = self.annotation.labels
        if name in self.annotation.label_names():
            self.annotation.labels = [c for c in chosen if c.label != name]
            return True
        spec = self.label_set.label(name)
        if spec.exclusive:
            chosen = []
        else:
            chosen = [c for c in chosen if not self.label_set.label(c.label).exclusive]
        self.annotation.labels = [*chosen, LabelChoice(name, 0)]
        self._await(name)
        return True

    def _toggle_shape_label(self, name: str) -> bool:
        if self.selected is None or name not in self.annotation.label_names():
            return False
        shape = self.annotation.shapes[self.selected]
        on = name not in shape.labels
        labels = (*shape.labels, name) if on else tuple(n for n in shape.labels if n != name)
        self.annotation.shapes[self.selected] = replace(shape, labels=labels)
        self._await(name if on else None, self.selected if on else None)
        return True

    def _await(self, name: str | None, shape: int | None = None) -> None:
        """The next digit is ``name``'s certainty (on shape ``shape`` in the shapes step); None: nothing awaited."""
        self.awaiting_certainty, self.awaiting_shape = name, shape
        if name is None:
            self.notice = ""
        elif shape is None:
            self.notice = f"{name}: press 1–5 for its certainty"
        else:
            self.notice = f"{self.shape_name(shape)}, {name}: press 1–5 for its certainty"

    def shape_name(self, index: int) -> str:
        """ "Ellipse 2" — a shape as the reader sees it numbered (from 1)."""
        kind = (
            self.annotation.shapes[index].kind if index < len(self.annotation.shapes) else self.protocol.shape
        )
        return f"{kind.capitalize()} {index + 1}"

    def _cancel_pending(self, why: str) -> None:
        """A certainty awaited for one shape is not carried to another: cancelled, and the reader told."""
        name, shape = self.awaiting_certainty, self.awaiting_shape
        if name is None or shape is None:
            return
        self._await(None)
        self.notice = f"{self.shape_name(shape)}, {name}: certainty not given, cancelled ({why}); Enter asks for it again"

    def _set_certainty(self, level: int) -> bool:
        name, shape = self.awaiting_certainty, self.awaiting_shape
        self._await(None)
        if self.step == STEP_SHAPES and shape is not None and shape < len(self.annotation.shapes):
            self.annotation.shapes[shape] = replace(self.annotation.shapes[shape], certainty=level)
            return True
        self.annotation.labels = [
            replace(c, certainty=level) if c.label == name else c for c in self.annotation.labels
        ]
        return True

    def _uncertain_labels(self) -> list[str]:
        return [c.label for c in self.annotation.labels if c.certainty == 0]

    def set_text(self, label: str, text: str) -> None:
        """The free text of a label ("Other")."""
        self.annotation.labels = [
            replace(c, text=text) if c.label == label else c for c in self.annotation.labels
        ]

    # -- shapes -----------------------------------------------------------------------------------------
    def add_shape(self, box: tuple[float, float, float, float]) -> None:
        """A shape drawn in the shapes step (the protocol's kind) or the chest box in its step."""
        x0, y0, x1, y1 = _clip(_ordered(box), self.width_px, self.height_px)
        if self.step == STEP_CHEST_BOX:
            self.annotation.chest_box = (x0, y0, x1, y1)
        elif self.step == STEP_SHAPES:
            self.annotation.shapes.append(Shape(self.protocol.shape, x0, y0, x1, y1))
            self.select(len(self.annotation.shapes) - 1, why="drawn")

    def select(self, index: int, why: str = "selected") -> None:
        """Select shape ``index``; a certainty still awaited for another shape is cancelled (and said)."""
        if self.awaiting_shape is not None and self.awaiting_shape != index:
            self._cancel_pending(f"{self.shape_name(index).lower()} {why}")
        self.selected = index

    def set_shape_box(self, index: int, box: tuple[float, float, float, float]) -> None:
        """Move or resize shape ``index`` (-1: the chest box)."""
        x0, y0, x1, y1 = _clip(_ordered(box), self.width_px, self.height_px)
        if index < 0:
            self.annotation.chest_box = (x0, y0, x1, y1)
        else:
            self.annotation.shapes[index] = replace(self.annotation.shapes[index], x0=x0, y0=y0, x1=x1, y1=y1)

    def delete_selected(self) -> bool:
        if self.step != STEP_SHAPES or self.selected is None:
            return False
        del self.annotation.shapes[self.selected]
        self.selected = None
        self._await(None)
        return True

    def select_next(self) -> None:
        n = len(self.annotation.shapes)
        if n:
            self.select(0 if self.selected is None else (self.selected + 1) % n)
        else:
            self.selected = None

    def drawing_kind(self) -> str:
        return SHAPE_BOX if self.step == STEP_CHEST_BOX else self.protocol.shape


def _ordered(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _clip(box: tuple[float, float, float, float], w: int, h: int) -> tuple[float, float, float, float]:
    """A shape drawn past the image's edge ends at the edge (REFLACX clips the same way)."""
    x0, y0, x1, y1 = box
    return max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
