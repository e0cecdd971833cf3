"""Synthetic readers who make one kind of error each (issue 22's second look is tested on them).

Kundel and Nodine sorted missed lesions by where the eyes went: a **search** error never brings the lesion
into the useful field of view (here: a whole lung zone skipped), a **recognition** error fixates it briefly
(one glance) and a **decision** error dwells on it (≥ 1 s in all) and still does not report it (Kundel, Nodine
& Carmody, Invest Radiol 1978). A **complete** reader covers every lung zone (fixations on a grid spaced at
1.2 UFOV radii, so each part of the lungs comes within 2.5° of one) and reports every finding; the
``default`` reader is radgaze's usual synthetic one (two fixations per zone, not guaranteed to cover).

An error case has one finding, a nodule in a random lung zone, that the reader misses (not in the report);
the case's ``attrs["reader_error"]`` says which error, which zone and where the nodule is (the truth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from radgaze.capture.synth.phantom import ZONES, lung_field

READERS = ("default", "complete", "search", "decision", "recognition")
ERROR_KINDS = ("search", "decision", "recognition")
UFOV_DEG = 2.5  # the second look's default (radgaze.capture.gazemath.second_look.UFOV_RADIUS_DEG)
COVER_SPACING_UFOV = 1.2  # grid spacing of a complete search, in UFOV radii (< sqrt(2): no gap between discs)
KEEP_OUT_MARGIN_DEG = (
    0.25  # later gaze stays this far beyond the UFOV of what the reader missed (~ the accuracy)
)
DECISION_FIXATIONS = (
    6  # on the missed nodule: 6 x ~0.28 s median = ~1.7 s of dwell (> the 1 s of the literature)
)
ZONE_WORD = {"upper": "upper", "middle": "mid", "lower": "lower"}  # synth's zones -> the second look's names


@dataclass(frozen=True)
class ReaderPlan:
    """How one case is read. ``keep_out`` (heatmap grid, bool): where no gaze may land after the error (the
    skipped zone, or the missed nodule), with the UFOV and a margin around it."""

    kind: str
    ufov_px: float
    side: str = ""
    zone: str = ""
    finding_xy: tuple[float, float] = (float("nan"), float("nan"))
    keep_out: np.ndarray | None = None

    @property
    def zone_name(self) -> str:
        return f"{self.side} {ZONE_WORD[self.zone]}" if self.side else ""

    def truth(self) -> dict:
        """What the reader missed and how (stored in the case's attrs)."""
        return {
            "kind": self.kind,
            "finding": 0,
            "zone": self.zone_name,
            "x_img_px": round(self.finding_xy[0], 1),
            "y_img_px": round(self.finding_xy[1], 1),
        }


def check_reader(kind: str) -> str:
    if kind not in READERS:
        raise ValueError(f"synthetic reader: expected one of {', '.join(READERS)}, got {kind!r}")
    return kind


def error_case_findings(rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """The one finding of an error case: a nodule in a random lung zone."""
    return [("nodule", str(rng.choice(["right", "left"])), str(rng.choice(ZONES)))]


def zone_mask(anat, side: str, zone: str, h: int, w: int) -> np.ndarray:
    """(h, w) bool: one lung zone (the lung's height split in thirds, as phantom.zone_centre does)."""
    yn, xn = (np.arange(h)[:, None] + 0.5) / h, (np.arange(w)[None, :] + 0.5) / w
    lung = lung_field(xn, yn, anat, side)
    rows = np.nonzero(lung.any(axis=1))[0]
    y0, y1 = rows.min(), rows.max() + 1
    k = ZONES.index(zone)
    lo, hi = y0 + (y1 - y0) * k / 3, y0 + (y1 - y0) * (k + 1) / 3
    band = (np.arange(h) >= lo) & (np.arange(h) < hi)
    return lung & band[:, None]


def dilate(mask: np.ndarray, radius_cells: float) -> np.ndarray:
    """``mask`` grown by ``radius_cells`` (Euclidean: every cell within that distance of a set cell)."""
    if not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= radius_cells


def outside(points: np.ndarray, keep_out: np.ndarray | None, scale: float) -> np.ndarray:
    """The points (k, 2) image px not in ``keep_out`` (heatmap grid of ``scale`` image px per cell)."""
    if keep_out is None or len(points) == 0:
        return points
    h, w = keep_out.shape
    c = np.clip((points[:, 0] / scale).astype(int), 0, w - 1)
    r = np.clip((points[:, 1] / scale).astype(int), 0, h - 1)
    return points[~keep_out[r, c]]


def make_plan(kind: str, rng, ph, masks: dict, scale: float, ppd_img: float) -> ReaderPlan:
    """The reader plan of a case (``ph`` the drawn phantom, ``masks`` its heatmap-grid masks)."""
    ufov_px = UFOV_DEG * ppd_img
    if kind not in ERROR_KINDS:
        return ReaderPlan(kind, ufov_px)
    spec = ph.findings[0]
    rows, cols = np.nonzero(masks[0])
    xy = ((cols.mean() + 0.5) * scale, (rows.mean() + 0.5) * scale)
    margin_cells = (ufov_px + KEEP_OUT_MARGIN_DEG * ppd_img) / scale
    if kind == "search":
        base = zone_mask(ph.anatomy, spec.side, spec.zone, *masks[0].shape)
    else:
        base = np.zeros(masks[0].shape, bool)
        base[int(xy[1] / scale), int(xy[0] / scale)] = True
    del rng
    return ReaderPlan(kind, ufov_px, spec.side, spec.zone, xy, dilate(base, margin_cells))


def zone_cover_points(anat, side: str, zone: str, size: int, spacing_px: float) -> np.ndarray:
    """Fixation places covering one lung zone: a grid of ``spacing_px`` over its box, the points whose
    neighbourhood (half a spacing) touches the zone, row by row in a serpentine. (k, 2) image px."""
    n = 256
    m = zone_mask(anat, side, zone, n, n)
    near = dilate(m, 0.5 * spacing_px / size * n)
    rows, cols = np.nonzero(m)
    x0, x1 = cols.min() / n * size, (cols.max() + 1) / n * size
    y0, y1 = rows.min() / n * size, (rows.max() + 1) / n * size
    xs = np.arange(x0 + 0.5 * spacing_px, x1 + 0.01, spacing_px) if x1 - x0 > spacing_px else [(x0 + x1) / 2]
    ys = np.arange(y0 + 0.5 * spacing_px, y1 + 0.01, spacing_px) if y1 - y0 > spacing_px else [(y0 + y1) / 2]
    pts = []
    for k, y in enumerate(ys):
        row = [(x, y) for x in (xs if k % 2 == 0 else xs[::-1])]
        pts += [p for p in row if near[min(int(p[1] / size * n), n - 1), min(int(p[0] / size * n), n - 1)]]
    return np.asarray(pts, float).reshape(-1, 2)


def error_points(plan: ReaderPlan, rng: np.random.Generator) -> np.ndarray:
    """The fixations of the error itself on the missed nodule: a dwell (decision), one glance (recognition)."""
    n = {"decision": DECISION_FIXATIONS, "recognition": 1}.get(plan.kind, 0)
    jitter = rng.normal(0.0, 0.1 * plan.ufov_px / UFOV_DEG, (n, 2))  # within ~0.1 deg: one place
    return np.asarray(plan.finding_xy, float)[None, :] + jitter


def planned_search_path(
    rng, ph, masks: dict, size: int, scale: float, plan: ReaderPlan, sample
) -> np.ndarray:
    """The systematic search of a planned reader: centre glance, each lung zone covered top to bottom (right
    lung first), the error on its nodule where the zone is passed, then heart, mediastinum, costophrenic
    angles and apices. ``sample(mask, n)`` draws n image-px points in a heatmap-grid mask. (k, 2) image px."""
    spacing = COVER_SPACING_UFOV * plan.ufov_px
    pts = [np.array([[0.5 * size, 0.45 * size]])]
    for side in ("right", "left"):
        for zone in ZONES:
            if plan.kind == "search" and (side, zone) == (plan.side, plan.zone):
                continue  # the zone the reader never looks at
            pts.append(zone_cover_points(ph.anatomy, side, zone, size, spacing))
            if plan.kind in ("decision", "recognition") and (side, zone) == (plan.side, plan.zone):
                pts.append(error_points(plan, rng))
    for name in ("heart", "mediastinum", "costophrenic_angles", "apices"):
        pts.append(
            outside(sample(masks[name], 2 if name in ("heart", "mediastinum") else 3), plan.keep_out, scale)
        )
    path = np.concatenate(pts)
    return outside(path, plan.keep_out, scale) if plan.kind == "search" else path
