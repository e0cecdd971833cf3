"""Agreement between the model's attention and the radiologist's heatmaps, per sentence and per case (Qt-free).

The one implementation that ``radgaze review`` (its table, typed-text queries and CSV) and ``radgaze eval``
(``attention_cc``, ``attention_nss``, ``pointing_game`` and ``--sentences-csv``) both call; docs/agreement.md
says why the grid and the shape rule are these.

Everything is computed on the session's heatmap grid (``radgaze.capture.gazemath.heatmap.heatmap_grid``: long side
512 px, ``scale`` image px per heatmap px), where the radiologist's sentence heatmaps are stored:

* the model's map of a sentence (:func:`model_maps_on_grid`, :func:`grid_attention`): the model's attention on
  the image as training feeds it (through its default window, letterboxed to the model's square), the padding
  cropped and the map resized bilinearly onto the grid, summing to 1;
* the fixation mask of a sentence (NSS, AUC-Judd): the grid cells holding a fixation that overlaps the sentence's
  gaze window;
* CC, KLD, SIM compare the model map with the reader's heatmap (the benchmark's KLD is KL(reader || model));
* against the reader's own localisations tied to the sentence (:func:`reader_shapes_mask`: the annotation's
  ellipses and boxes that hold at least half of the sentence's gaze heatmap, their union on the grid):
  ``ellipse_hit``, the pointing game (1 when the model map's maximum lies inside one of them, else 0), and
  ``ellipse_mass``, the share of the model map's mass inside them. NaN when no shape of the reader holds the
  sentence's gaze (or the reader drew none).

Metric definitions: ``radgaze.model.metrics`` (Bylinskii et al., TPAMI 2018). A sentence without a heatmap (the empty
marker) has no row; NSS and AUC-Judd are NaN when no fixation of the window lies on the image (heatmap-only
imports).

Disagreement, the table's default sort key, is ``1 - CC`` (0 = identical maps, 1 = unrelated, 2 = opposite):
CC is the one metric here that is symmetric, bounded and insensitive to how peaked each map is.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from radgaze.capture.base.records import CaseRecord

METRICS: tuple[str, ...] = ("cc", "nss", "kld", "sim", "auc_judd", "ellipse_hit", "ellipse_mass")
# True where a larger value means closer agreement (Bylinskii et al. 2018, Table 1); KLD is a distance.
HIGHER_IS_BETTER: dict[str, bool] = {
    "cc": True, "nss": True, "kld": False, "sim": True, "auc_judd": True, "ellipse_hit": True, "ellipse_mass": True,
}  # fmt: skip
METRIC_TITLES: dict[str, str] = {
    "cc": "CC", "nss": "NSS", "kld": "KLD", "sim": "SIM", "auc_judd": "AUC-Judd",
    "ellipse_hit": "Hit", "ellipse_mass": "In shapes",
}  # fmt: skip


@dataclass(frozen=True)
class SentenceAgreement:
    """One table row: a sentence of a case, its metrics (NaN = undefined) and its disagreement."""

    session: str
    case_id: str
    sentence_index: int
    text: str
    n_fixations: int
    cc: float
    nss: float
    kld: float
    sim: float
    auc_judd: float
    ellipse_hit: float = math.nan
    ellipse_mass: float = math.nan

    @property
    def disagreement(self) -> float:
        """1 - CC, in [0, 2]."""
        return 1.0 - self.cc


@dataclass(frozen=True)
class CaseAgreement:
    """Per-case means over the case's sentences with a heatmap (NaN-aware)."""

    session: str
    case_id: str
    n_sentences: int
    cc: float
    nss: float
    kld: float
    sim: float
    auc_judd: float
    ellipse_hit: float = math.nan
    ellipse_mass: float = math.nan

    @property
    def disagreement(self) -> float:
        return 1.0 - self.cc


# ------------------------------------------------------------------------------------------------ maths
READER_SHAPE_MIN_MASS = (
    0.5  # a reader's shape belongs to a sentence when it holds this share of its gaze heatmap
)


def fixation_mask(
    fixations: np.ndarray,
    window_start: float,
    window_end: float,
    shape: tuple[int, int],
    scale: float,
) -> np.ndarray:
    """(h, w) bool: heatmap-grid cells holding a fixation (FIXATION_DTYPE, image px) that overlaps
    [window_start, window_end] (LSL s). ``scale`` = image px per grid cell."""
    mask = np.zeros(shape, dtype=bool)
    if fixations.size == 0:
        return mask
    sel = fixations[(fixations["t_end"] >= window_start) & (fixations["t_start"] <= window_end)]
    x = np.floor(sel["x_img_px"].astype(np.float64) / scale).astype(np.int64)
    y = np.floor(sel["y_img_px"].astype(np.float64) / scale).astype(np.int64)
    ok = np.isfinite(sel["x_img_px"]) & (x >= 0) & (x < shape[1]) & (y >= 0) & (y < shape[0])
    mask[y[ok], x[ok]] = True
    return mask


def _grid_centres_img_px(shape: tuple[int, int], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) image px of every heatmap-grid cell's centre, each (h, w)."""
    ys = (np.arange(shape[0]) + 0.5) * scale
    xs = (np.arange(shape[1]) + 0.5) * scale
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return xx, yy


def reader_shapes_mask(record: CaseRecord, reader_map: np.ndarray) -> np.ndarray | None:
    """(h, w) bool on the heatmap grid: the union of the reader's shapes (ellipses, boxes; a cell counts when its
    centre lies inside) that each hold at least ``READER_SHAPE_MIN_MASS`` of ``reader_map``, a sentence's gaze
    heatmap: the findings the reader looked at while saying it. None when no shape does (or none was drawn)."""
    shapes = record.annotation.shapes if record.annotation is not None else []
    total = float(np.sum(reader_map))
    if not shapes or not total > 0:
        return None
    xx, yy = _grid_centres_img_px(reader_map.shape, record.heatmap_scale)
    mask = np.zeros(reader_map.shape, dtype=bool)
    for s in shapes:
        inside = s.contains(xx, yy)
        if float(np.sum(reader_map[inside])) >= READER_SHAPE_MIN_MASS * total:
            mask |= inside
    return mask if mask.any() else None


def pointing_target(record: CaseRecord, i: int, reader_map: np.ndarray) -> tuple[np.ndarray, str]:
    """The region sentence ``i``'s attention should point into, on the heatmap grid, and its kind: the reader's
    shapes that score it (:func:`sentence_shapes_mask`, "reader_ellipse"); else the ground-truth box of the
    finding the sentence names (synthetic readings, "finding_box"); else the reader heatmap's half-maximum region
    ("heatmap_half_max"). ``radgaze eval``'s pointing game counts every kind; review's Hit only the first."""
    reader = sentence_shapes_mask(record, i)
    if reader is not None:
        return reader, "reader_ellipse"
    xx, yy = _grid_centres_img_px(reader_map.shape, record.heatmap_scale)
    for f in record.findings or []:
        if f.sentence_index == i:
            x0, y0, x1, y1 = f.box
            box = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
            if box.any():
                return box, "finding_box"
    return reader_map >= 0.5 * float(np.max(reader_map)), "heatmap_half_max"


def agreement(
    model_map: np.ndarray,
    reader_map: np.ndarray,
    fix_mask: np.ndarray | None,
    shape_mask: np.ndarray | None = None,
) -> dict[str, float]:
    """The metrics of one sentence: model map vs reader heatmap (same shape); NSS and AUC-Judd of the model
    map at the fixated cells (NaN without a usable mask); pointing game and mass inside the reader's shapes
    (NaN without any)."""
    from radgaze.model.metrics import auc_judd, cc, kld, nss, pointing_game, sim

    out = {
        "cc": cc(model_map, reader_map),
        "kld": kld(reader_map, model_map),
        "sim": sim(model_map, reader_map),
    }
    usable = fix_mask is not None and 0 < int(np.count_nonzero(fix_mask)) < fix_mask.size
    out["nss"] = nss(model_map, fix_mask) if usable else math.nan
    out["auc_judd"] = auc_judd(model_map, fix_mask) if usable else math.nan
    localised = shape_mask is not None and bool(shape_mask.any())
    total = float(np.sum(model_map))
    out["ellipse_hit"] = float(pointing_game(model_map, shape_mask)) if localised else math.nan
    out["ellipse_mass"] = (
        float(np.sum(model_map[shape_mask]) / total) if localised and total > 0 else math.nan
    )
    return {k: float(out[k]) for k in METRICS}


def sentence_agreement(record: CaseRecord, i: int, model_map: np.ndarray) -> dict[str, float]:
    """The metrics of sentence ``i`` of ``record`` (which has a heatmap) for ``model_map`` on its heatmap grid."""
    reader = record.sentence_heatmap(i)
    if reader is None:
        raise ValueError(f"expected a sentence with a heatmap, got sentence {i} (the empty marker)")
    if model_map.shape != reader.shape:
        raise ValueError(f"model map shape {model_map.shape} != heatmap shape {reader.shape}")
    s = record.sentences
    fix = fixation_mask(
        record.fixations, float(s.window_start[i]), float(s.window_end[i]), reader.shape, record.heatmap_scale
    )
    return agreement(model_map, reader, fix, sentence_shapes_mask(record, i))


def sentence_shapes_mask(record: CaseRecord, i: int) -> np.ndarray | None:
    """The reader's shapes that score sentence ``i`` (Hit, In shapes, eval's "reader_ellipse" pointing target):
    those holding >= 50 % of its gaze (:func:`reader_shapes_mask`); None for a sentence without a heatmap or one
    that names no finding (:func:`names_no_finding`)."""
    reader = record.sentence_heatmap(i)
    if reader is None or names_no_finding(str(record.sentences.text[i])):
        return None
    return reader_shapes_mask(record, reader)


# A sentence stating absence or normality ("No pneumothorax.", "The right lung is clear.") names no finding:
# its gaze may fall inside an ellipse drawn for another sentence, and a "Hit" there would score nothing said.
NO_FINDING_WORDS = frozenset(
    {"no", "not", "without", "negative", "absent", "resolved", "clear", "normal", "unremarkable"}
)


def names_no_finding(text: str) -> bool:
    """True when sentence ``text`` states absence or normality (a word of :data:`NO_FINDING_WORDS`), so the
    Hit and In-shapes scores against the reader's ellipses are undefined for it (shown "n/a")."""
    return bool(NO_FINDING_WORDS & set(re.findall(r"[a-z]+", text.casefold())))


def sentences_with_heatmaps(record: CaseRecord) -> list[int]:
    """Indices of the sentences that have a heatmap (not the empty marker)."""
    return [i for i in range(len(record.sentences)) if int(record.sentences.heatmap_index[i]) >= 0]


def case_rows(record: CaseRecord, model_maps: np.ndarray, *, session: str = "") -> list[SentenceAgreement]:
    """Rows of one case. ``model_maps`` (n_sentences_with_heatmap, h_hm, w_hm) in the order of
    :func:`sentences_with_heatmaps`."""
    idx = sentences_with_heatmaps(record)
    if len(model_maps) != len(idx):
        raise ValueError(
            f"expected {len(idx)} model maps (one per sentence with a heatmap), got {len(model_maps)}"
        )
    s = record.sentences
    return [
        SentenceAgreement(
            session, record.case_id, i, s.text[i], int(s.n_fixations[i]), **sentence_agreement(record, i, m)
        )
        for i, m in zip(idx, model_maps, strict=True)
    ]


def summarise_cases(rows: Iterable[SentenceAgreement]) -> list[CaseAgreement]:
    """Per-case NaN-aware means, in order of first appearance."""
    groups: dict[tuple[str, str], list[SentenceAgreement]] = {}
    for r in rows:
        groups.setdefault((r.session, r.case_id), []).append(r)
    out = []
    for (session, case_id), rs in groups.items():
        means = {}
        for k in METRICS:
            v = np.array([getattr(r, k) for r in rs], dtype=np.float64)
            means[k] = float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
        out.append(CaseAgreement(session, case_id, len(rs), **means))
    return out


def sort_by_disagreement(rows: Sequence[SentenceAgreement | CaseAgreement]) -> list:
    """Most disagreeing first (NaN CC last)."""
    return sorted(rows, key=lambda r: (math.isnan(r.cc), -r.disagreement if not math.isnan(r.cc) else 0.0))


def mean_metrics(rows: Sequence[SentenceAgreement | CaseAgreement]) -> dict[str, float]:
    """NaN-aware means of each metric (and of the disagreement) over ``rows``."""
    out = {}
    for k in (*METRICS, "disagreement"):
        v = np.array([getattr(r, k) for r in rows], dtype=np.float64)
        out[k] = float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
    return out


def _csv_names(row: SentenceAgreement | CaseAgreement) -> list[str]:
    names = [f.name for f in fields(row)] + ["disagreement"]
    # the table's "#" column: sentences numbered from 1, as shown (the stored index is 0-based)
    return ["sentence" if n == "sentence_index" else n for n in names]


def csv_text(rows: Sequence[SentenceAgreement | CaseAgreement], *, mean_row: bool = True) -> str:
    """CSV with a header: the dataclass fields then ``disagreement``; sentences numbered from 1 as the table
    shows them (column ``sentence``); NaN written as an empty cell; a last row ``mean`` (in the first column)
    holding the NaN-aware mean of every metric over the rows above."""
    if not rows:
        return ""
    names = _csv_names(rows[0])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for r in rows:
        d = asdict(r)
        d["disagreement"] = r.disagreement
        if "sentence_index" in d:
            d["sentence"] = d.pop("sentence_index") + 1
        writer.writerow([_cell(d[n]) for n in names])
    if mean_row:
        means = mean_metrics(rows)
        count = "n_fixations" if "n_fixations" in names else "n_sentences"
        first = {names[0]: "mean", count: sum(getattr(r, count) for r in rows)}
        writer.writerow([_cell(means.get(n, first.get(n, ""))) for n in names])
    return buf.getvalue()


def _cell(v: object) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def write_csv(rows: Sequence[SentenceAgreement | CaseAgreement], path: str | os.PathLike) -> None:
    with open(path, "w", newline="") as fh:
        fh.write(csv_text(rows))


DISPLAY_FLOOR_QUANTILE = 0.5  # the lower half of a map's values is drawn transparent


def display_map(heatmap: np.ndarray, floor_quantile: float = DISPLAY_FLOOR_QUANTILE) -> np.ndarray:
    """A map as shown (reader's and model's alike): scaled to [0, 1] from its ``floor_quantile`` value (0) to its
    maximum (1), clipped below, so each map has a transparent low end under the overlay's alpha ramp and both
    colour scales mean the same ("fraction of the range above this map's median"). A reader's gaze heatmap is
    zero over most of the film (its median is ~0: the same as min-max); a model's attention is spread over the
    whole film, and min-max scaling tinted all of it. A constant map becomes all zeros."""
    hm = np.asarray(heatmap, dtype=np.float32)
    if hm.size == 0:
        return hm.copy()
    lo, hi = float(np.quantile(hm, floor_quantile)), float(np.max(hm))
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return np.zeros_like(hm)
    return np.clip((hm - lo) / (hi - lo), 0.0, 1.0)


# ------------------------------------------------------------------------------------------------ model
def square_to_grid(square_maps: np.ndarray, tf, shape: tuple[int, int]) -> np.ndarray:
    """Maps (T, S, S) on the model's square -> (T, h, w) on the heatmap grid: the letterbox padding cropped
    (``tf``: the image's :class:`radgaze.model.image_transforms.LetterboxTransform`), bilinear resize, clipped
    at 0, each summing to 1."""
    import torch
    import torch.nn.functional as F

    sq = torch.as_tensor(np.asarray(square_maps, dtype=np.float32))
    crop = sq[:, None, tf.top_px : tf.top_px + tf.new_h, tf.left_px : tf.left_px + tf.new_w]
    out = F.interpolate(crop, size=tuple(int(n) for n in shape), mode="bilinear", align_corners=False)[:, 0]
    out = out.clamp_min(0.0).numpy()
    total = out.reshape(len(out), -1).sum(1)[:, None, None] if len(out) else 1.0
    return (out / np.maximum(total, 1e-30)).astype(np.float32)


def grid_attention(model, image, tf, texts: list[str], shape: tuple[int, int]) -> np.ndarray:
    """The model's attention for each text, on the heatmap grid: ``image`` (3, S, S) the model's normalised
    input, ``tf`` its letterbox transform -> (len(texts), h, w), each summing to 1."""
    from radgaze.model.attention import sentence_attention

    if not texts:
        return np.zeros((0, *shape), np.float32)
    return square_to_grid(sentence_attention(model, image, list(texts)), tf, shape)


def model_maps_on_grid(model, pixels01: np.ndarray, texts: list[str], shape: tuple[int, int]) -> np.ndarray:
    """The model's attention for each text on the image, on the heatmap grid: (len(texts), h, w), each map
    summing to 1. ``pixels01``: the image as training reads it (float32 in [0, 1] through its default window,
    :func:`radgaze.capture.io.images.windowed01`), letterboxed to the model's square as training does."""
    from radgaze.model.image_transforms import letterbox_square, to_model_input

    cfg = model.config
    square, tf = letterbox_square(np.asarray(pixels01, dtype=np.float32), int(cfg.image_size))
    return grid_attention(model, to_model_input(square, cfg.image_mean, cfg.image_std), tf, texts, shape)
