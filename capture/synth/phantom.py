"""Phantom frontal (PA) chest radiographs with findings at known places.

Everything is drawn from analytic shapes in normalised image coordinates (``xn = x_img_px / width``,
``yn = y_img_px / height``, origin top-left), so the same anatomy can be evaluated on the full-resolution
pixel grid (to draw the image) and on the coarse heatmap grid (to give each finding a ground-truth mask).
Conventions follow a PA radiograph shown in MONOCHROME2: the patient's right is on the image's left, more
attenuation is brighter.

Proportions (normalised to the image side) are chosen to match typical adult PA films: cardiothoracic ratio
0.39-0.48 when normal and >= 0.55 with cardiomegaly (the usual 0.5 threshold, Danzer 1919); the right
hemidiaphragm ~2 cm higher than the left; ~10 posterior ribs visible above the diaphragm at full inspiration.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image
from scipy import ndimage

SIDES = ("right", "left")  # the patient's sides; "right" is drawn on the image's left
ZONES = ("upper", "middle", "lower")
HEART_TILT_RAD = np.deg2rad(20.0)  # long axis of the cardiac silhouette, apex down and to the patient's left
BONE_GRID_MAX_PX = 1024  # bones are drawn at most this fine and upsampled (cortex stays >= 2 px wide)
FINDING_LABELS = ("consolidation", "pleural_effusion", "cardiomegaly", "pneumothorax", "nodule")


@dataclass(frozen=True)
class Anatomy:
    """Per-case anatomy, in normalised image units (fractions of the image side)."""

    cx: float = 0.5  # midline
    lung_d_centre: float = 0.20  # lung centre's distance from the midline
    lung_half_w: float = 0.17  # lung half-width (superellipse semi-axis)
    lung_top: float = 0.12  # apex height
    lung_y_centre: float = 0.47
    dome_y: tuple[float, float] = (0.68, 0.71)  # hemidiaphragm dome height (right, left)
    dome_k: float = 2.6  # dome curvature (dy per d^2)
    heart_cx: float = 0.035  # heart centre offset towards the patient's left (image right)
    heart_cy: float = 0.62
    heart_a: float = 0.16  # heart semi-axes
    heart_b: float = 0.13
    body_half_w: float = 0.47
    rib_phase: float = 0.0
    breast: float = 0.0  # density of breast shadows over the lower zones (0 = none)
    noise_seed: int = 0

    def heart_width(self) -> float:
        return 2.0 * self.heart_a

    def thorax_width(self) -> float:
        return 2.0 * (self.lung_d_centre + self.lung_half_w)

    def cardiothoracic_ratio(self) -> float:
        return self.heart_width() / self.thorax_width()


def random_anatomy(rng: np.random.Generator) -> Anatomy:
    """A plausible adult anatomy with small per-case variation (a few % of the image side)."""
    half_w = rng.uniform(0.155, 0.18)
    d_c = rng.uniform(0.19, 0.21)
    ctr = rng.uniform(0.39, 0.47)  # normal cardiothoracic ratio
    right_dome = rng.uniform(0.66, 0.70)
    return Anatomy(
        cx=0.5 + rng.uniform(-0.012, 0.012),
        lung_d_centre=d_c,
        lung_half_w=half_w,
        lung_top=rng.uniform(0.10, 0.135),
        lung_y_centre=rng.uniform(0.45, 0.49),
        dome_y=(right_dome, right_dome + rng.uniform(0.015, 0.04)),
        dome_k=rng.uniform(2.2, 3.0),
        heart_cx=rng.uniform(0.025, 0.045),
        heart_cy=right_dome - 0.06 + rng.uniform(-0.01, 0.01),
        heart_a=ctr * (d_c + half_w),
        heart_b=rng.uniform(0.12, 0.135),
        body_half_w=rng.uniform(0.45, 0.49),
        rib_phase=rng.uniform(-0.3, 0.3),
        breast=float(rng.uniform(0.03, 0.07)) if rng.random() < 0.5 else 0.0,
        noise_seed=int(rng.integers(2**31)),
    )


@dataclass(frozen=True)
class FindingSpec:
    """One finding to draw. ``side``/``zone`` are the patient's; ``centre`` (normalised) and ``size`` (a
    radius or depth, normalised) are fixed when the case is drawn."""

    label: str
    side: str = ""  # "right" | "left" | "" (cardiomegaly)
    zone: str = ""  # "upper" | "middle" | "lower" | ""
    centre: tuple[float, float] = (0.5, 0.5)
    size: float = 0.05
    shape_seed: int = 0

    @property
    def location(self) -> str:
        if self.label == "cardiomegaly":
            return "heart"
        if self.label == "pleural_effusion":
            return f"{self.side} lower zone"
        if self.label == "pneumothorax":
            return f"{self.side} upper zone"
        return f"{self.side} {self.zone} zone"


@dataclass
class Phantom:
    pixels: np.ndarray  # (H, W) uint16, MONOCHROME2
    anatomy: Anatomy
    findings: list[FindingSpec] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- geometry fields
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised pixel-centre coordinates, broadcastable: xn (1, w), yn (h, 1)."""
    xn = ((np.arange(w, dtype=np.float32) + 0.5) / w)[None, :]
    yn = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]
    return xn, yn


def _side_d(xn: np.ndarray, anat: Anatomy, side: str) -> np.ndarray:
    """Distance from the midline towards the given side's lateral chest wall (normalised)."""
    return (anat.cx - xn) if side == "right" else (xn - anat.cx)


def diaphragm_y(d: np.ndarray, anat: Anatomy, side: str) -> np.ndarray:
    """Height of the hemidiaphragm (normalised y) at distance ``d`` from the midline: a dome peaking at
    d = 0.14, dropping into the costophrenic angle laterally."""
    y0 = anat.dome_y[0 if side == "right" else 1]
    return y0 + anat.dome_k * (d - 0.14) ** 2


def heart_field(xn: np.ndarray, yn: np.ndarray, anat: Anatomy) -> np.ndarray:
    """< 1 inside the cardiac silhouette (ellipse), dimensionless."""
    dx, dy = xn - anat.cx - anat.heart_cx, yn - anat.heart_cy
    c, s = np.float32(np.cos(HEART_TILT_RAD)), np.float32(np.sin(HEART_TILT_RAD))
    return ((c * dx + s * dy) / anat.heart_a) ** 2 + ((c * dy - s * dx) / anat.heart_b) ** 2


def cardiac_silhouette(xn: np.ndarray, yn: np.ndarray, anat: Anatomy) -> np.ndarray:
    """Boolean mask of the visible heart: the heart ellipse above the diaphragm (below it, it merges into the
    abdomen's density and no reader can see or point at it)."""
    floor = 0.5 * (anat.dome_y[0] + anat.dome_y[1]) + 0.035  # the diaphragm under the heart
    return (heart_field(xn, yn, anat) < 1.0) & (yn < floor)


def lung_field(xn: np.ndarray, yn: np.ndarray, anat: Anatomy, side: str) -> np.ndarray:
    """Boolean mask of one lung (broadcast of xn, yn): a superellipse cut by the diaphragm, mediastinum and
    heart."""
    d = _side_d(xn, anat, side)
    dy = yn - anat.lung_y_centre
    b = np.where(dy < 0, anat.lung_y_centre - anat.lung_top, 0.62)  # wide lower half: lungs widen downwards
    shape = np.abs((d - anat.lung_d_centre) / anat.lung_half_w) ** 2.4 + (dy / b) ** 2 < 1.0
    medial = d > (0.06 + 0.035 * (side == "left") * np.exp(-(((yn - 0.30) / 0.045) ** 2)))  # aortic knob
    return shape & medial & (yn < diaphragm_y(d, anat, side)) & (heart_field(xn, yn, anat) > 1.0)


def lung_extent(anat: Anatomy, side: str, n: int = 256) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) normalised box of one lung, sampled on an n x n grid."""
    xn, yn = _grid(n, n)
    m = lung_field(xn, yn, anat, side)
    rows, cols = np.nonzero(m)
    return cols.min() / n, rows.min() / n, (cols.max() + 1) / n, (rows.max() + 1) / n


def zone_centre(anat: Anatomy, side: str, zone: str, n: int = 256) -> tuple[float, float]:
    """Centre (xn, yn) of a lung zone: the lung's height split in thirds, centre of that third's lung area."""
    xn, yn = _grid(n, n)
    m = lung_field(xn, yn, anat, side)
    rows, cols = np.nonzero(m)
    y0, y1 = rows.min(), rows.max() + 1
    k = ZONES.index(zone)
    lo, hi = y0 + (y1 - y0) * k / 3, y0 + (y1 - y0) * (k + 1) / 3
    sel = (rows >= lo) & (rows < hi)
    return float((cols[sel].mean() + 0.5) / n), float((rows[sel].mean() + 0.5) / n)


def _wobble(xn: np.ndarray, yn: np.ndarray, seed: int, n_waves: int = 8, freq: float = 9.0) -> np.ndarray:
    """Smooth analytic noise in about [-1, 1]: a sum of random plane waves, identical on any grid."""
    rng = np.random.default_rng(seed)
    ang = rng.uniform(0, 2 * np.pi, n_waves)
    f = freq * rng.uniform(0.5, 1.5, n_waves)
    ph = rng.uniform(0, 2 * np.pi, n_waves)
    out = np.zeros(np.broadcast_shapes(xn.shape, yn.shape), np.float32)
    for a, fk, p in zip(ang, f, ph):
        out += np.cos(2 * np.pi * fk * (np.cos(a) * xn + np.sin(a) * yn) + p).astype(np.float32)
    return out * np.float32(np.sqrt(2.0 / n_waves))


def finding_field(
    spec: FindingSpec, xn: np.ndarray, yn: np.ndarray, anat: Anatomy, *, in_lung: bool = True
) -> np.ndarray:
    """Boolean mask of a finding on the grid (xn, yn). ``in_lung=False`` leaves an airspace finding's region
    unclipped by the lung outline (for drawing: the lung's own soft edge then shapes it)."""
    cx, cy = spec.centre
    if spec.label == "cardiomegaly":
        return cardiac_silhouette(xn, yn, anat)
    if spec.label == "nodule":
        return ((xn - cx) ** 2 + (yn - cy) ** 2) < spec.size**2
    if in_lung or spec.label == "pneumothorax":
        lung = lung_field(xn, yn, anat, spec.side)
    else:
        lung = _side_d(xn, anat, spec.side) > 0.03
    if spec.label == "consolidation":
        r = ((xn - cx) / spec.size) ** 2 + ((yn - cy) / (0.8 * spec.size)) ** 2
        return lung & (r + 0.35 * _wobble(xn, yn, spec.shape_seed) < 1.0)
    d = _side_d(xn, anat, spec.side)
    if spec.label == "pleural_effusion":
        # fluid level with a meniscus rising laterally; spec.size = fluid height at the lung's mid-width
        lateral = np.clip((d - anat.lung_d_centre) / anat.lung_half_w, -1, 1)
        level = cy - spec.size * (0.8 + 1.2 * np.clip(lateral, 0, 1) ** 2)
        return lung & (yn > level)
    if spec.label == "pneumothorax":
        # air between the chest wall and the collapsed lung's edge: a crescent along the apex and the upper
        # lateral wall, i.e. the outer rim of the lung's superellipse; spec.size sets the rim's depth
        dy = yn - anat.lung_y_centre
        b = np.where(dy < 0, anat.lung_y_centre - anat.lung_top, 0.62)
        f = np.abs((d - anat.lung_d_centre) / anat.lung_half_w) ** 2.4 + (dy / b) ** 2
        rim = f > 1.0 - 7.0 * spec.size
        # from the lateral wall (0 deg, seen from the lung's centre) over the apex (90 deg), ending medially
        angle_deg = np.degrees(np.arctan2(anat.lung_y_centre - yn, d - anat.lung_d_centre))
        return lung & rim & (angle_deg > -10.0) & (angle_deg < 125.0)
    raise ValueError(f"finding label must be one of {FINDING_LABELS}, got {spec.label!r}")


def place_findings(rng: np.random.Generator, anat: Anatomy, labels: list[tuple[str, str, str]]) -> tuple:
    """Turn (label, side, zone) choices into FindingSpecs with centres and sizes; returns (anatomy, specs)
    (cardiomegaly enlarges the heart, so it returns the changed anatomy)."""
    specs = []
    for label, side, zone in labels:
        seed = int(rng.integers(2**31))
        if label == "cardiomegaly":
            ctr = rng.uniform(0.56, 0.64)
            anat = replace(
                anat,
                heart_a=ctr * anat.thorax_width() / 2,
                heart_b=anat.heart_b * 1.12,
                heart_cy=anat.heart_cy + 0.01,
            )
            specs.append(
                FindingSpec(label, centre=(anat.cx + anat.heart_cx, anat.heart_cy), size=anat.heart_a)
            )
        elif label == "nodule":
            x, y = zone_centre(anat, side, zone)
            x += rng.uniform(-0.04, 0.04)
            y += rng.uniform(-0.03, 0.03)
            specs.append(FindingSpec(label, side, zone, (x, y), rng.uniform(0.012, 0.022), seed))
        elif label == "consolidation":
            x, y = zone_centre(anat, side, zone)
            specs.append(
                FindingSpec(
                    label, side, zone, (x + rng.uniform(-0.02, 0.02), y), rng.uniform(0.07, 0.1), seed
                )
            )
        elif label == "pleural_effusion":
            d_cp = anat.lung_d_centre + 0.6 * anat.lung_half_w
            y_cp = float(diaphragm_y(np.float32(d_cp), anat, side))
            x = anat.cx - d_cp if side == "right" else anat.cx + d_cp
            specs.append(FindingSpec(label, side, "lower", (x, y_cp), rng.uniform(0.06, 0.11), seed))
        elif label == "pneumothorax":
            x, y = zone_centre(anat, side, "upper")
            specs.append(FindingSpec(label, side, "upper", (x, y), rng.uniform(0.035, 0.06), seed))
        else:
            raise ValueError(f"finding label must be one of {FINDING_LABELS}, got {label!r}")
    return anat, specs


# ---------------------------------------------------------------------------------------------- drawing
def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _resize(a: np.ndarray, side_px: int) -> np.ndarray:
    """Bilinear resize of a square float image to side_px x side_px (pixel-centre aligned)."""
    if a.shape == (side_px, side_px):
        return a.astype(np.float32)
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    return np.asarray(img.resize((side_px, side_px), Image.Resampling.BILINEAR), dtype=np.float32)


def _blur(a: np.ndarray, sigma_px: float) -> np.ndarray:
    return ndimage.gaussian_filter(a.astype(np.float32), sigma_px, mode="nearest")


def _radial_vessels(
    rng: np.random.Generator, xn: np.ndarray, yn: np.ndarray, anat: Anatomy, freq: float
) -> np.ndarray:
    """Vessel-like lines branching out of each hilum: ridges of noise sampled in polar coordinates (fast
    across the angle, slow along the radius), thinning towards the periphery. Values 0..1 on the grid."""
    # axis 0 = angle (fine), axis 1 = log radius (coarse): zero-crossings run outwards like vessels
    tex = ndimage.gaussian_filter(rng.standard_normal((256, 256)).astype(np.float32), (1.8, 6.0), mode="wrap")
    tex /= tex.std() + 1e-12
    out = np.zeros(np.broadcast_shapes(xn.shape, yn.shape), np.float32)
    for sgn in (-1.0, 1.0):
        dx, dy = xn - (anat.cx + sgn * 0.09), yn - 0.43
        r = np.sqrt(dx**2 + dy**2) + 1e-6
        theta = np.arctan2(dy, sgn * dx)
        coords = np.stack(
            np.broadcast_arrays(theta * 40 * freq + 128, np.log(r) * 25 * freq + 128 + 60 * (sgn > 0))
        )
        g = ndimage.map_coordinates(tex, coords.reshape(2, -1), order=1, mode="wrap").reshape(out.shape)
        width = 0.22 * np.clip(0.3 / (r + 0.08), 0.4, 1.3)
        fade = _smoothstep((r - 0.025) / 0.05)  # the hilum itself is drawn as a dense blob
        out = np.maximum(out, np.exp(-((g / width) ** 2)) * fade * (sgn * (xn - anat.cx) > 0))
    return out


def _ridges(rng: np.random.Generator, n: int, sigma_px: float, width: float) -> np.ndarray:
    """Vessel-like network: the zero set of smooth random noise, thickened (values in 0..1)."""
    g = _blur(rng.standard_normal((n, n)), sigma_px)
    g /= g.std() + 1e-12
    return np.exp(-((g / width) ** 2))


def _soft_tissue_layer(
    xn: np.ndarray, yn: np.ndarray, anat: Anatomy, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Everything smooth (body, lungs, heart, mediastinum, vessels, gas bubble) on a coarse grid (h, w).

    Returns (layer, lung mask blurred 0..1, lung darkness subtracted, vessel density), each (h, w) float32."""
    n = xn.shape[1]
    # body: neck at the top widening over the shoulders; brightness follows the tissue path length
    half_w = 0.13 + (anat.body_half_w - 0.13) * np.sqrt(_smoothstep((yn + 0.02) / 0.16))
    t = np.sqrt(np.clip(1 - ((xn - anat.cx) / half_w) ** 2, 0, 1))
    body = t > 0
    out = np.where(body, 0.50 + 0.32 * t**0.5, 0.03).astype(np.float32)
    out += np.where(body, 0.08 * _smoothstep((0.2 - yn) / 0.1) * (1 - t), 0)  # shoulder muscle
    for sgn in (-1, 1):  # humeral heads in the upper corners
        head = ((xn - anat.cx - sgn * (anat.body_half_w - 0.01)) / 0.06) ** 2 + ((yn - 0.12) / 0.07) ** 2 < 1
        out += 0.05 * _blur(head & body, max(0.7, n / 200))
    # lungs (air) with their soft edges; darkest laterally, vessels denser towards each hilum
    lungs = lung_field(xn, yn, anat, "right") | lung_field(xn, yn, anat, "left")
    soft = _blur(lungs, max(0.7, n / 400))
    d = np.abs(xn - anat.cx)
    depth = (
        0.40 + 0.08 * _smoothstep((d - 0.05) / 0.2) - 0.10 * _smoothstep((anat.lung_top + 0.06 - yn) / 0.08)
    )
    vessels = 0.7 * _radial_vessels(rng, xn, yn, anat, 1.0) + 0.3 * _radial_vessels(rng, xn, yn, anat, 2.2)
    hilum = np.exp(-(((d - 0.10) / 0.07) ** 2 + ((yn - 0.42) / 0.10) ** 2))
    vessel_gain = 0.06 + 0.10 * hilum + 0.05 * _smoothstep((0.30 - d) / 0.2)
    out -= soft * depth
    out += soft * vessel_gain * vessels
    out += 0.10 * soft * np.exp(-(((d - 0.085) / 0.035) ** 2 + ((yn - 0.43) / 0.06) ** 2))  # hilar vessels
    # mediastinum brighter than soft tissue alone, trachea darker, aortic knob, heart
    med = _smoothstep((0.08 - d) / 0.04) * (yn < anat.heart_cy)
    out += 0.04 * med
    out -= 0.07 * _smoothstep((0.016 - np.abs(xn - anat.cx)) / 0.008) * _smoothstep((0.34 - yn) / 0.04) * body
    knob = ((xn - anat.cx - 0.055) / 0.032) ** 2 + ((yn - 0.30) / 0.028) ** 2 < 1
    out += 0.04 * _blur(knob, max(0.7, n / 300))
    # breast shadows: soft tissue over the lower zones with a sharp, convex inferior margin
    if anat.breast > 0:
        d_c, y_c = anat.lung_d_centre + 0.05, np.mean(anat.dome_y) - 0.06
        e = ((d - d_c) / 0.17) ** 2 + ((yn - y_c) / 0.11) ** 2
        fade_in = _smoothstep((yn - y_c + 0.11) / 0.16)  # no upper edge, only the inferior margin is sharp
        out += anat.breast * _blur(e < 1.0, max(0.7, n / 400)) * fade_in * (0.25 + 0.75 * soft)
    # gastric bubble under the left hemidiaphragm
    gy = anat.dome_y[1] + 0.045
    bubble = ((xn - anat.cx - 0.14) / 0.05) ** 2 + ((yn - gy) / 0.025) ** 2 < 1
    out -= 0.12 * _blur(bubble, max(0.7, n / 250))
    return out, soft, soft * depth, soft * vessels * vessel_gain


def _finding_layer(
    specs: list[FindingSpec],
    xn: np.ndarray,
    yn: np.ndarray,
    anat: Anatomy,
    lung_soft: np.ndarray,
    lung_dark: np.ndarray,
    vessels: np.ndarray,
) -> np.ndarray:
    """Density added (or removed) by each finding, on the coarse grid. Airspace findings fill a share of the
    lung's darkness ``lung_dark`` (so they end at the lung's own edge without seams)."""
    n = xn.shape[1]
    out = np.zeros((yn.shape[0], n), np.float32)
    for s in specs:
        if s.label == "cardiomegaly":
            continue  # drawn through the enlarged heart of the anatomy
        m = finding_field(s, xn, yn, anat, in_lung=False)
        if s.label == "consolidation":
            tex = np.clip(
                0.8 + 0.35 * _blur(np.random.default_rng(s.shape_seed).standard_normal(m.shape), n / 150),
                0,
                1.2,
            )
            out += 0.75 * _blur(m, max(0.7, n / 80)) * tex * lung_dark
        elif s.label == "pleural_effusion":
            mf = _blur(m, max(0.7, n / 250))
            out += mf * (1.05 * lung_dark - vessels)
        elif s.label == "nodule":
            r = np.sqrt((xn - s.centre[0]) ** 2 + (yn - s.centre[1]) ** 2) / s.size
            out += 0.26 * np.sqrt(np.clip(1 - r**2, 0, 1)) + 0.04 * _smoothstep((1.3 - r) / 0.3)
        elif s.label == "pneumothorax":
            mf = _blur(m, max(0.5, n / 500))
            out -= mf * (vessels + 0.07)  # no lung markings beyond the pleural edge, darker
            edge = _blur(m, max(0.5, n / 600))
            line = 4 * edge * (1 - edge) * (lung_soft > 0.8) * (~m)
            out += 0.14 * line
    return out


def _bone_layer(
    xn: np.ndarray, yn: np.ndarray, anat: Anatomy, px: float, lung_soft: np.ndarray
) -> np.ndarray:
    """Ribs, clavicles and spine at full resolution (sharp cortical edges). ``px`` = one pixel, normalised."""
    out = np.zeros(np.broadcast_shapes(xn.shape, yn.shape), np.float32)
    lung_weight = 0.45 + 0.55 * lung_soft
    d_all = np.abs(xn - anat.cx)
    inside = d_all < anat.body_half_w - 0.02
    for side in SIDES:
        d = _side_d(xn, anat, side)
        u = np.clip((d - 0.02) / 0.38, 0, 1)
        lateral_fade = _smoothstep((0.43 - d) / 0.04) * (d > 0)
        # posterior ribs: rise slightly from the spine, then curve down along the lateral wall
        v = yn + 0.06 * np.sin(np.pi * 0.8 * u) - 0.11 * u**2.5 - anat.lung_top + 0.03
        s = v / 0.06 * (1 - 0.15 * v) + anat.rib_phase
        k = np.floor(s)
        frac = s - k
        band = (frac < 0.45) & (k >= 0) & (k < 10)
        p = frac / 0.45
        cortex = np.exp(-((p / 0.12) ** 2)) + np.exp(-(((1 - p) / 0.12) ** 2))
        out += band * (0.03 + 0.035 * cortex) * lateral_fade * _smoothstep((d - 0.03) / 0.04) * lung_weight
        # anterior ribs: fainter, running down and medially from the lateral wall
        va = yn - 0.14 * (1 - u) ** 1.5 - anat.lung_top - 0.06
        sa = va / 0.075 + 0.5
        ka = np.floor(sa)
        fa = sa - ka
        band_a = (fa < 0.3) & (ka >= 0) & (ka < 6) & (u > 0.25)
        out += band_a * 0.02 * _smoothstep((u - 0.25) / 0.2) * lateral_fade * lung_weight
        # clavicle: an S-shaped bar from the manubrium up and out to the shoulder
        yc = anat.lung_top + 0.065 - 0.085 * u + 0.012 * np.sin(2 * np.pi * u)
        half_t = 0.013 + 0.006 * u
        dist = np.abs(yn - yc) / half_t
        clav = (dist < 1) & (u > 0.06) & (u < 0.95)
        taper = _smoothstep((u - 0.06) / 0.04) * _smoothstep((0.95 - u) / 0.05)
        out += clav * taper * (0.06 + 0.05 * np.exp(-(((1 - dist) / 0.25) ** 2)))
    # spine: vertebral bodies with darker disc spaces, fading behind the heart
    vert = np.abs(xn - anat.cx) < 0.032
    phase = (yn / 0.042) % 1.0
    disc = np.exp(-(((phase - 0.5) / 0.07) ** 2))
    out += vert * (0.035 - 0.02 * disc) * (1 - 0.5 * _smoothstep((yn - 0.45) / 0.2))
    pedicle = np.exp(-(((np.abs(xn - anat.cx) - 0.024) / (2 * px + 0.003)) ** 2)) * (phase < 0.35)
    out += 0.015 * pedicle
    return out * inside


def render_phantom(anat: Anatomy, specs: list[FindingSpec], size_px: int) -> np.ndarray:
    """Draw the radiograph: a (size_px, size_px) uint16 MONOCHROME2 image, deterministic in (anat, specs).

    Smooth structures are drawn on a coarse grid (a quarter of the size, 128..512 px), bones on a grid of at
    most BONE_GRID_MAX_PX, both upsampled; noise at full resolution."""
    if size_px < 32:
        raise ValueError(f"phantom size must be at least 32 px, got {size_px}")
    rng = np.random.default_rng(anat.noise_seed)
    n = int(min(size_px, max(128, min(512, size_px // 4))))
    xs, ys = _grid(n, n)
    smooth, lung_soft, lung_dark, vessels = _soft_tissue_layer(xs, ys, anat, rng)
    smooth += _finding_layer(specs, xs, ys, anat, lung_soft, lung_dark, vessels)
    nb = min(size_px, BONE_GRID_MAX_PX)
    xb, yb = _grid(nb, nb)
    bones = _bone_layer(xb, yb, anat, 1.0 / nb, _resize(lung_soft, nb))
    a = _resize(smooth, size_px) + _resize(bones, size_px)
    # image noise: quantum mottle (full res) and a faint coarser grain; exposure gamma like a film curve
    a += rng.normal(0, 0.012, a.shape).astype(np.float32)
    grain = _blur(rng.standard_normal((n, n)), 1.0)
    a += 0.01 * _resize(grain, size_px)
    a = np.clip(a, 0, 1) ** 1.15
    return np.round(2000 + a * 60000).astype(np.uint16)


# ------------------------------------------------------------------------------------- masks on any grid
def finding_mask(spec: FindingSpec, anat: Anatomy, h: int, w: int) -> np.ndarray:
    """(h, w) bool mask of a finding on a grid covering the whole image (e.g. the heatmap grid)."""
    xn, yn = _grid(h, w)
    return np.broadcast_to(finding_field(spec, xn, yn, anat), (h, w)).copy()


def region_mask(name: str, anat: Anatomy, h: int, w: int) -> np.ndarray:
    """(h, w) bool mask of the anatomy a normal statement is about (what a reader looks at while saying it):
    "heart", "mediastinum", "lungs", "apices" (upper quarter of each lung plus its upper lateral edge),
    "costophrenic_angles" (the lowest lateral part of each lung), "bones" (the thoracic cage)."""
    xn, yn = _grid(h, w)
    shape = (h, w)
    if name == "heart":
        return np.broadcast_to(cardiac_silhouette(xn, yn, anat), shape).copy()
    if name == "mediastinum":
        return np.broadcast_to(
            (np.abs(xn - anat.cx) < 0.07) & (yn > 0.15) & (yn < anat.heart_cy - 0.05), shape
        ).copy()
    out = np.zeros(shape, bool)
    for side in SIDES:
        lung = np.broadcast_to(lung_field(xn, yn, anat, side), shape)
        if not lung.any():
            continue
        rows, cols = np.nonzero(lung)
        y0, y1 = rows.min() / h, (rows.max() + 1) / h
        d = _side_d(xn, anat, side)
        if name == "lungs":
            out |= lung
        elif name == "apices":
            out |= lung & (yn < y0 + 0.22 * (y1 - y0))
        elif name == "costophrenic_angles":
            bottom = yn > diaphragm_y(d, anat, side) - 0.07
            out |= lung & bottom & (d > anat.lung_d_centre + 0.2 * anat.lung_half_w)
        elif name == "bones":
            out |= lung & (d > anat.lung_d_centre)  # ribs are judged over the lateral lungs
        else:
            raise ValueError(
                "region must be heart, mediastinum, lungs, apices, costophrenic_angles or bones, "
                f"got {name!r}"
            )
    return out


FINDING_COUNT_P = (0.5, 0.35, 0.15)  # chance of 1, 2, 3 findings in an abnormal study


def random_case_findings(
    rng: np.random.Generator, p_normal: float = 0.25, max_findings: int = 3
) -> list[tuple[str, str, str]]:
    """(label, side, zone) choices for one case: a normal study with probability ``p_normal``, else one to
    ``max_findings`` (<= 3) distinct findings (no two in the same place). ``max_findings=1`` makes every
    study single-label (the learning-curve experiment: each case is one zero-shot class; the finding's
    look, size and place still vary)."""
    if not 1 <= max_findings <= len(FINDING_COUNT_P):
        raise ValueError(f"max_findings: expected 1..{len(FINDING_COUNT_P)}, got {max_findings}")
    if rng.random() < p_normal:
        return []
    if max_findings == 1:
        n = 1
    else:
        p = np.asarray(FINDING_COUNT_P[:max_findings]) / sum(FINDING_COUNT_P[:max_findings])
        n = int(rng.choice(np.arange(1, max_findings + 1), p=p))
    labels = list(rng.choice(FINDING_LABELS, size=n, replace=False))
    used: set[tuple[str, str]] = set()
    out = []
    for label in labels:
        for _ in range(10):
            side = str(rng.choice(SIDES)) if label != "cardiomegaly" else ""
            zone = {"consolidation": str(rng.choice(ZONES)), "nodule": str(rng.choice(ZONES))}.get(label, "")
            zone = zone or {"pleural_effusion": "lower", "pneumothorax": "upper"}.get(label, "")
            if (side, zone) not in used or not side:
                break
        if side and (side, zone) in used:
            continue
        used.add((side, zone))
        out.append((str(label), side, zone))
    return out


def draw_case(
    rng: np.random.Generator, size_px: int, findings: list[tuple[str, str, str]] | None = None
) -> Phantom:
    """A whole phantom case: random anatomy, the given (or random) findings placed, the image drawn."""
    anat = random_anatomy(rng)
    choices = random_case_findings(rng) if findings is None else findings
    anat, specs = place_findings(rng, anat, choices)
    return Phantom(render_phantom(anat, specs, size_px), anat, specs)
