"""The second look at sign-off: where the reader dwelt without dictating, which parts of the lung fields were
never within the useful field of view, and where a model looked that the reader did not.

Pure maths on the case's own fixations (FIXATION_DTYPE: image px and image px per degree at that moment) and
its sentences' gaze windows; no Qt, no file. The record window draws the result (:mod:`radgaze.app.second_look`),
the session stores it (``docs/session-format.md``, "Second look").

Facts and numbers, with their sources:
- missed lesions fall into search errors (never fixated), recognition errors (fixated briefly) and decision
  errors (dwelt on, not reported); the decision-error dwell is ~1 s of cumulative gaze on a region (Kundel,
  Nodine & Carmody, Invest Radiol 1978; Kundel et al., Invest Radiol 1989);
- the useful field of view of chest-radiograph search is ~5 deg across, i.e. a 2.5 deg radius around each
  fixation (Kundel et al. 1989; Carmody, Nodine & Kundel 1980 for nodule conspicuity);
- circling the regions a reader dwelt on raised AFROC area by ~16 % (Kundel et al., Invest Radiol 1990).
- lung zones: each lung's height split in thirds (upper / mid / lower), the radiological convention; the
  patient's right lung is on the image's left in a PA film.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

DECISION_DWELL_S = 1.0  # Kundel, Nodine & Carmody 1978 (module docstring)
UFOV_RADIUS_DEG = 2.5  # Kundel et al. 1989: ~5 deg useful field of view
CLUSTER_RADIUS_DEG = 1.0  # fixations within ~1 deg (the fovea's radius) of a cluster's centre join it
GRID_LONG_SIDE = 128  # coverage grid cells on the image's long side (2048 px: 16 px per cell)
ZONE_NOT_VIEWED_FRAC = 0.5  # a zone is named "not viewed" when at least half of it was never in the UFOV
# shade an unviewed part only where it holds a disc of half the UFOV radius (1.25 deg: a nodule-sized search
# target with margin); thinner slivers between fixations' UFOV discs and the lung edge are not marked
SHADE_CORE_FRAC = 0.5
MODEL_TOP_FRACTION = 0.1  # "high model attention": the top 10 % of the image's cells by attention
SIDES = ("right", "left")  # the patient's sides; right is on the image's left (PA film)
ZONES = ("upper", "mid", "lower")
ZONE_NAMES = tuple(f"{side} {zone}" for side in SIDES for zone in ZONES)  # index + 1 = zone label
# The lungs inside a chest box (REFLACX's box around heart and lungs), in box fractions: each lung a
# superellipse from its apex near the box top to the costophrenic angle near the bottom, the mediastinum a
# central strip (from the phantom's anatomy, radgaze.capture.synth.phantom, and typical PA proportions)
LUNG_CENTRE_U = (0.27, 0.73)
LUNG_HALF_W_U = 0.22
LUNG_V_RANGE = (0.03, 0.95)
# Without a chest box: PA chest films are framed with the thorax filling most of the image
DEFAULT_CHEST_BOX_F = (0.08, 0.06, 0.92, 0.92)


@dataclass(frozen=True)
class SecondLookParams:
    dwell_s: float = DECISION_DWELL_S
    ufov_deg: float = UFOV_RADIUS_DEG
    cluster_deg: float = CLUSTER_RADIUS_DEG
    zone_frac: float = ZONE_NOT_VIEWED_FRAC
    shade_core_frac: float = SHADE_CORE_FRAC
    model_top_fraction: float = MODEL_TOP_FRACTION

    def __post_init__(self) -> None:
        for name in ("dwell_s", "ufov_deg", "cluster_deg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"second look {name}: expected > 0, got {getattr(self, name)}")
        if not 0.0 < self.model_top_fraction < 1.0:
            raise ValueError(
                f"second look model_top_fraction: expected in (0, 1), got {self.model_top_fraction}"
            )


@dataclass(frozen=True)
class DwellCluster:
    """Fixations dwelt on together (image px); ``radius_px`` encloses them with a 1-deg margin."""

    x_img_px: float
    y_img_px: float
    radius_px: float
    dwell_s: float
    n_fixations: int
    t_first_lsl: float


@dataclass
class SecondLook:
    """What the second look shows for one case at ``t_lsl``. Masks are on a grid of ``grid_scale`` image px
    per cell: ``unviewed`` (lung field never within the UFOV, shaded parts only), ``model`` (high model
    attention never within the UFOV; None without a model)."""

    t_lsl: float
    clusters: list[DwellCluster]
    unviewed: np.ndarray
    zone_unviewed_frac: dict[str, float]
    zones_not_viewed: list[str]
    grid_scale: float
    lung_source: str  # "chest box" | "image estimate"
    model: np.ndarray | None = None
    params: SecondLookParams = field(default_factory=SecondLookParams)

    @property
    def empty(self) -> bool:
        return not self.clusters and not self.unviewed.any() and (self.model is None or not self.model.any())

    def status_line(self) -> str:
        """One line for the status bar: what is marked, zones by name."""
        parts = [f"{z} zone not viewed" for z in self.zones_not_viewed]
        if self.clusters:
            n = len(self.clusters)
            parts.append(
                f"{n} place{'s' if n > 1 else ''} dwelt on (≥ {self.params.dwell_s:g} s) not dictated"
            )
        if self.unviewed.any() and not self.zones_not_viewed:
            parts.append("parts of the lung fields not viewed")
        if self.model is not None and self.model.any():
            parts.append("model attention where you did not look")
        # no claim that nothing was missed: a brief glance at a finding (a recognition error) leaves no mark
        return "; ".join(parts) if parts else "no marks: every lung zone viewed, every long dwell dictated"

    def summary(self) -> dict:
        """JSON-ready description (masks excluded; they are stored as arrays)."""
        return {
            "t_lsl": self.t_lsl,
            "clusters": [asdict(c) for c in self.clusters],
            "zone_unviewed_frac": self.zone_unviewed_frac,
            "zones_not_viewed": self.zones_not_viewed,
            "grid_scale": self.grid_scale,
            "lung_source": self.lung_source,
            "has_model": self.model is not None,
            "params": asdict(self.params),
            "status": self.status_line(),
        }


# ---------------------------------------------------------------------------------------------- dwell
def covered_by_windows(t_start: np.ndarray, t_end: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """(n,) bool: fixation [t_start, t_end] overlaps any gaze window (k, 2) [start, end] (LSL s)."""
    windows = np.asarray(windows, float).reshape(-1, 2)
    if windows.size == 0:
        return np.zeros(np.shape(t_start), bool)
    ts, te = np.asarray(t_start)[:, None], np.asarray(t_end)[:, None]
    return ((ts <= windows[None, :, 1]) & (te >= windows[None, :, 0])).any(axis=1)


def cluster_fixations(x: np.ndarray, y: np.ndarray, dur_s: np.ndarray, radius_px: float) -> np.ndarray:
    """Cluster label per fixation, in time order: each joins the nearest cluster whose dwell-weighted centre is
    within ``radius_px`` (image px), else starts one. Returns (n,) int labels 0..k-1."""
    labels = np.full(len(x), -1, np.int64)
    cx, cy, w = [], [], []
    for i in range(len(x)):
        if cx:
            d = np.hypot(np.asarray(cx) - x[i], np.asarray(cy) - y[i])
            j = int(np.argmin(d))
            if d[j] <= radius_px:
                wt = w[j] + dur_s[i]
                cx[j] = (cx[j] * w[j] + x[i] * dur_s[i]) / wt
                cy[j] = (cy[j] * w[j] + y[i] * dur_s[i]) / wt
                w[j], labels[i] = wt, j
                continue
        cx.append(float(x[i]))
        cy.append(float(y[i]))
        w.append(float(dur_s[i]))
        labels[i] = len(cx) - 1
    return labels


def dwelt_not_dictated(
    fixations: np.ndarray, windows: np.ndarray, params: SecondLookParams
) -> list[DwellCluster]:
    """Clusters of fixations (FIXATION_DTYPE) with cumulative dwell ≥ ``params.dwell_s`` that no sentence's
    gaze window (``windows`` (k, 2) LSL s) covers: no fixation inside any window lies within the UFOV radius
    of the cluster's centre (the place was not looked at while anything was dictated)."""
    fx = fixations[np.isfinite(fixations["x_img_px"]) & np.isfinite(fixations["y_img_px"])]
    if fx.size == 0:
        return []
    x, y = fx["x_img_px"].astype(float), fx["y_img_px"].astype(float)
    dur = (fx["t_end"] - fx["t_start"]).astype(float)
    ppd = float(np.median(fx["ppd_img"]))
    labels = cluster_fixations(x, y, dur, params.cluster_deg * ppd)
    covered = covered_by_windows(fx["t_start"], fx["t_end"], windows)
    out = []
    for k in range(int(labels.max()) + 1):
        m = labels == k
        if dur[m].sum() < params.dwell_s:
            continue
        cx, cy = np.average(x[m], weights=dur[m]), np.average(y[m], weights=dur[m])
        if (np.hypot(x[covered] - cx, y[covered] - cy) <= params.ufov_deg * ppd).any():
            continue  # looked at (within the UFOV) while dictating a sentence
        r = float(np.hypot(x[m] - cx, y[m] - cy).max()) + ppd
        out.append(
            DwellCluster(
                float(cx), float(cy), r, float(dur[m].sum()), int(m.sum()), float(fx["t_start"][m][0])
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- lung fields
def coverage_grid(width_px: int, height_px: int) -> tuple[int, int, float]:
    """(rows, cols, image px per cell) of the coverage grid: GRID_LONG_SIDE cells on the long side."""
    if width_px <= 0 or height_px <= 0:
        raise ValueError(f"image size: expected positive px, got {width_px} x {height_px}")
    scale = max(width_px, height_px) / GRID_LONG_SIDE
    return max(1, round(height_px / scale)), max(1, round(width_px / scale)), float(scale)


def lung_zones_from_box(
    box: tuple[float, float, float, float], shape: tuple[int, int], scale: float
) -> np.ndarray:
    """Zone label per grid cell (0 outside the lungs, 1..6 = ZONE_NAMES' index + 1) for lungs inside a chest
    box (x0, y0, x1, y1 image px). Each lung's height is split in thirds."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"chest box: expected x0 < x1 and y0 < y1 (image px), got {box}")
    rows, cols = shape
    xc, yc = (np.arange(cols) + 0.5) * scale, (np.arange(rows) + 0.5) * scale
    u = ((xc - x0) / (x1 - x0))[None, :]
    v = ((yc - y0) / (y1 - y0))[:, None]
    vt, vb = LUNG_V_RANGE
    b = (vb - vt) / 2
    zones = np.zeros(shape, np.int8)
    third = np.clip(((v - vt) / (vb - vt) * 3).astype(int), 0, 2)
    for s, cu in enumerate(LUNG_CENTRE_U):  # s 0: the patient's right = image left
        inside = np.abs((u - cu) / LUNG_HALF_W_U) ** 3 + np.abs((v - (vt + b)) / b) ** 3 < 1.0
        zones = np.where(inside, (s * 3 + third + 1).astype(np.int8), zones)
    return zones


def estimate_chest_box(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """A chest box (image px) from the image itself: the box around the two largest dark regions inside the
    body (the lungs) that touch neither image border, on a smoothed, downsampled copy; the standard PA framing
    (DEFAULT_CHEST_BOX_F) when two such regions are not found. ``pixels``: display-ready values (brighter =
    denser, as MONOCHROME2)."""
    h, w = pixels.shape[:2]
    step = max(1, max(h, w) // 256)
    img = ndimage.gaussian_filter(np.asarray(pixels[::step, ::step], float), 2.0)
    lo, hi = np.percentile(img, (1, 99))
    dark = img < lo + 0.45 * max(hi - lo, 1e-9)
    lab, n = ndimage.label(dark)
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))) | {0}
    sizes = [(int((lab == k).sum()), k) for k in range(1, n + 1) if k not in border]
    sizes.sort(reverse=True)
    if len(sizes) < 2 or sizes[1][0] < 0.01 * img.size:
        f = DEFAULT_CHEST_BOX_F
        return (f[0] * w, f[1] * h, f[2] * w, f[3] * h)
    rows, cols = np.nonzero(np.isin(lab, [sizes[0][1], sizes[1][1]]))
    return (cols.min() * step, rows.min() * step, (cols.max() + 1) * step, (rows.max() + 1) * step)


# ---------------------------------------------------------------------------------------------- coverage
def viewed_mask(fixations: np.ndarray, shape: tuple[int, int], scale: float, ufov_deg: float) -> np.ndarray:
    """(rows, cols) bool: grid cells whose centre was within ``ufov_deg`` of some fixation (each fixation's own
    image px per degree, so zoom counts)."""
    rows, cols = shape
    seen = np.zeros(shape, bool)
    xc, yc = (np.arange(cols) + 0.5) * scale, (np.arange(rows) + 0.5) * scale
    ok = np.isfinite(fixations["x_img_px"]) & np.isfinite(fixations["y_img_px"])
    for f in fixations[ok]:
        r = float(ufov_deg * f["ppd_img"])
        c0, c1 = np.searchsorted(xc, [f["x_img_px"] - r, f["x_img_px"] + r])
        r0, r1 = np.searchsorted(yc, [f["y_img_px"] - r, f["y_img_px"] + r])
        if c1 <= c0 or r1 <= r0:
            continue
        d2 = (xc[None, c0:c1] - f["x_img_px"]) ** 2 + (yc[r0:r1, None] - f["y_img_px"]) ** 2
        seen[r0:r1, c0:c1] |= d2 <= r * r
    return seen


def disc(radius_cells: float) -> np.ndarray:
    """A boolean disc structuring element of the given radius (cells, at least one cell across)."""
    r = max(0, int(np.floor(radius_cells)))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return xx * xx + yy * yy <= max(radius_cells, 0.5) ** 2


def wide_parts(mask: np.ndarray, radius_cells: float) -> np.ndarray:
    """``mask`` opened with a disc: the union of every disc of ``radius_cells`` that fits inside it."""
    if radius_cells < 1.0:
        return mask.copy()
    return ndimage.binary_opening(mask, structure=disc(radius_cells))


def large_parts(mask: np.ndarray, min_cells: float) -> np.ndarray:
    """``mask`` without its connected parts smaller than ``min_cells`` cells."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask.copy()
    sizes = ndimage.sum(mask, lab, index=np.arange(1, n + 1))
    keep = np.concatenate([[False], sizes >= min_cells])
    return keep[lab]


def zone_fractions(unviewed: np.ndarray, zones: np.ndarray) -> dict[str, float]:
    """Fraction of each lung zone's cells that are unviewed (zones with no cell are left out)."""
    out = {}
    for k, name in enumerate(ZONE_NAMES, start=1):
        n = int((zones == k).sum())
        if n:
            out[name] = round(float((unviewed & (zones == k)).sum()) / n, 4)
    return out


def model_not_viewed(
    attention: np.ndarray, seen: np.ndarray, params: SecondLookParams, min_cells: float
) -> np.ndarray:
    """(rows, cols) bool: cells of high model attention (its top ``model_top_fraction`` and at least half its
    range above its minimum, resized to the grid) never within the UFOV, in parts of at least ``min_cells`` cells."""
    att = np.asarray(attention, float)
    if att.ndim != 2 or att.size == 0 or not np.isfinite(att).all():
        raise ValueError(f"model attention: expected a finite 2-D map, got shape {att.shape}")
    zoom = (seen.shape[0] / att.shape[0], seen.shape[1] / att.shape[1])
    grid = ndimage.zoom(att, zoom, order=1, grid_mode=True, mode="nearest")[: seen.shape[0], : seen.shape[1]]
    if grid.max() <= grid.min():
        return np.zeros(seen.shape, bool)
    lo, hi = float(grid.min()), float(grid.max())
    high = grid >= max(float(np.quantile(grid, 1.0 - params.model_top_fraction)), lo + 0.5 * (hi - lo))
    return large_parts(high & ~seen, min_cells)


def compute_second_look(
    fixations: np.ndarray,
    windows: np.ndarray,
    image_wh: tuple[int, int],
    *,
    t_lsl: float,
    chest_box: tuple[float, float, float, float] | None = None,
    pixels: np.ndarray | None = None,
    attention: np.ndarray | None = None,
    params: SecondLookParams | None = None,
) -> SecondLook:
    """The second look of a case from its fixations (FIXATION_DTYPE) and sentence gaze windows ((k, 2) LSL
    s). Lung fields from ``chest_box`` (image px) when given, else estimated on ``pixels``, else the standard
    PA framing. ``attention``: a model's attention map over the whole image (any resolution)."""
    params = params or SecondLookParams()
    w, h = image_wh
    shape_rc = coverage_grid(w, h)
    shape, scale = shape_rc[:2], shape_rc[2]
    source = "chest box" if chest_box is not None else "image estimate"
    if chest_box is None:
        chest_box = estimate_chest_box(pixels) if pixels is not None else _default_box(w, h)
    zones = lung_zones_from_box(chest_box, shape, scale)
    seen = viewed_mask(fixations, shape, scale, params.ufov_deg)
    ppd = float(np.median(fixations["ppd_img"])) if fixations.size else 1.0
    r_cells = params.ufov_deg * ppd / scale
    unviewed = wide_parts((zones > 0) & ~seen, params.shade_core_frac * r_cells)
    disc_cells = np.pi * r_cells**2
    fractions = zone_fractions((zones > 0) & ~seen, zones)
    model = None if attention is None else model_not_viewed(attention, seen, params, 0.25 * disc_cells)
    return SecondLook(
        t_lsl=float(t_lsl),
        clusters=dwelt_not_dictated(fixations, windows, params),
        unviewed=unviewed,
        zone_unviewed_frac=fractions,
        zones_not_viewed=[z for z, f in fractions.items() if f >= params.zone_frac],
        grid_scale=scale,
        lung_source=source,
        model=model,
        params=params,
    )


def _default_box(w: int, h: int) -> tuple[float, float, float, float]:
    f = DEFAULT_CHEST_BOX_F
    return (f[0] * w, f[1] * h, f[2] * w, f[3] * h)


# ---------------------------------------------------------------------------------------------- the trial
SECOND_LOOK_MODES = ("on", "off", "random")
EVENT_KINDS = ("computed", "shown", "hidden", "updated", "signed_off")


def second_look_arm(mode: str, seed: int, case_id: str) -> bool:
    """Whether this case gets the second look: always (``on``), never (``off``), or a coin seeded by
    (seed, case_id) (``random``): the same seed and case always draw the same arm, on any machine."""
    if mode not in SECOND_LOOK_MODES:
        raise ValueError(f"second look: expected one of {', '.join(SECOND_LOOK_MODES)}, got {mode!r}")
    if mode != "random":
        return mode == "on"
    digest = hashlib.sha256(f"radgaze-second-look:{int(seed)}:{case_id}".encode()).digest()
    return digest[0] % 2 == 1


@dataclass
class SecondLookLog:
    """One case's second look as it happened: the arm it drew, every version computed (the first at Space;
    later ones when the dictation's last words came in) and what the reader did ((t_lsl, kind) events, kinds
    in EVENT_KINDS). In the ``off`` arm the overlay is computed (what would have been shown) but never shown."""

    case_id: str
    shown: bool
    assignment: str
    seed: int
    t_space_lsl: float
    versions: list[SecondLook] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)

    def add_event(self, t_lsl: float, kind: str) -> None:
        if kind not in EVENT_KINDS:
            raise ValueError(f"second look event: expected one of {', '.join(EVENT_KINDS)}, got {kind!r}")
        self.events.append((float(t_lsl), kind))

    def payload(self) -> tuple[dict, np.ndarray, np.ndarray]:
        """(plain dict, unviewed masks, model masks) for the store (radgaze.capture.store.second_look)."""
        if not self.versions:
            raise ValueError(f"case {self.case_id}: expected at least one computed second look, got none")
        unviewed = np.stack([v.unviewed for v in self.versions])
        model = np.stack(
            [v.model if v.model is not None else np.zeros_like(v.unviewed) for v in self.versions]
        )
        payload = {
            "shown": self.shown,
            "assignment": self.assignment,
            "seed": self.seed,
            "t_space_lsl": self.t_space_lsl,
            "events": [[t, k] for t, k in self.events],
            "versions": [v.summary() for v in self.versions],
        }
        return payload, unviewed, model


def second_look_from_stored(stored: dict, version: int = -1) -> SecondLook:
    """A stored second look (radgaze.capture.store.second_look.read_second_look_group's dict) as the
    SecondLook of one version (the last by default: what the reader had at sign-off)."""
    s = stored["versions"][version]
    params = SecondLookParams(**s["params"])
    return SecondLook(
        t_lsl=float(s["t_lsl"]),
        clusters=[DwellCluster(**c) for c in s["clusters"]],
        unviewed=np.asarray(stored["unviewed"][version], bool),
        zone_unviewed_frac=dict(s["zone_unviewed_frac"]),
        zones_not_viewed=list(s["zones_not_viewed"]),
        grid_scale=float(s["grid_scale"]),
        lung_source=str(s["lung_source"]),
        model=np.asarray(stored["model"][version], bool) if s["has_model"] else None,
        params=params,
    )


def shown_at(stored: dict, t_lsl: float) -> SecondLook | None:
    """What the reader saw at ``t_lsl`` (replay): the newest version computed by then while the overlay was
    up (after its first "shown", not "hidden" since the last "shown", before "signed_off"), else None."""
    if not stored["shown"]:
        return None
    shown = hidden = signed = False
    for t, kind in sorted(stored["events"], key=lambda e: e[0]):
        if t > t_lsl:
            break
        if kind == "shown":
            shown, hidden = True, False
        hidden = hidden or kind == "hidden"
        signed = signed or kind == "signed_off"
    if not shown or hidden or signed:
        return None
    times = [v["t_lsl"] for v in stored["versions"]]
    k = int(np.searchsorted(times, t_lsl, side="right")) - 1
    return second_look_from_stored(stored, max(k, 0))
