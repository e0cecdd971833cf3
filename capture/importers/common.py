"""Shared pieces of the importers: strict CSV reading, words, sentence heatmaps, finding links, safe writing.

Every problem with a source (missing file or column, a value that is not a number, an empty table, a NaN where
a time must be) is an :class:`ImportFormatError` naming the file and what was expected. Sessions are written
whole or not at all (:func:`write_session_file`).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from radgaze.capture.base.errors import ConfigError, ImageLoadError, ImportFormatError
from radgaze.capture.base.records import CaseRecord, Finding, ImageRef, Words
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S, sentence_heatmaps
from radgaze.capture.gazemath.heatmap import heatmap_grid
from radgaze.capture.io.display import display_from_options, parse_size  # noqa: F401  (re-exported)
from radgaze.capture.store.writer import SessionWriter

# CSV cells read as true / false in boolean columns (REFLACX writes True/False; pandas-exported sheets 1/0).
TRUE_CELLS = frozenset({"true", "1", "1.0", "yes", "t", "y"})
FALSE_CELLS = frozenset({"false", "0", "0.0", "no", "f", "n", ""})


@dataclass
class Table:
    """A CSV file read as columns of strings (``columns[name][row]``), with its path for error messages."""

    path: Path
    columns: dict[str, list[str]]
    n_rows: int
    _parsed: dict = field(default_factory=dict, repr=False)  # (column, allow_nan) -> parsed numbers

    def has(self, name: str) -> bool:
        return name in self.columns

    def text(self, name: str) -> list[str]:
        self._require(name)
        return self.columns[name]

    def numbers(self, name: str, *, allow_nan: bool = False) -> np.ndarray:
        """Column ``name`` as float64; a cell that is not a number (or empty/NaN unless ``allow_nan``) raises."""
        self._require(name)
        if (name, allow_nan) in self._parsed:
            return self._parsed[name, allow_nan]
        out = np.empty(self.n_rows, np.float64)
        for i, cell in enumerate(self.columns[name]):
            s = cell.strip()
            try:
                v = float(s) if s else math.nan
            except ValueError:
                raise ImportFormatError(
                    f"{self.path}: column {name!r} row {i + 2}: expected a number, got {cell!r}"
                ) from None
            if not allow_nan and not math.isfinite(v):
                raise ImportFormatError(
                    f"{self.path}: column {name!r} row {i + 2}: expected a finite number, got {cell!r}"
                )
            out[i] = v
        out.flags.writeable = False
        self._parsed[name, allow_nan] = out
        return out

    def flags(self, name: str) -> np.ndarray:
        """Column ``name`` as booleans (True/False, 1/0, yes/no; empty = False)."""
        self._require(name)
        out = np.zeros(self.n_rows, bool)
        for i, cell in enumerate(self.columns[name]):
            s = cell.strip().casefold()
            if s in TRUE_CELLS:
                out[i] = True
            elif s not in FALSE_CELLS:
                raise ImportFormatError(
                    f"{self.path}: column {name!r} row {i + 2}: expected True/False, got {cell!r}"
                )
        return out

    def rows_where(self, keep: np.ndarray) -> Table:
        idx = np.flatnonzero(keep)
        cols = {k: [v[i] for i in idx] for k, v in self.columns.items()}
        return Table(self.path, cols, int(idx.size))

    def _require(self, name: str) -> None:
        if name not in self.columns:
            raise ImportFormatError(
                f"{self.path}: expected a column {name!r}, got columns {sorted(self.columns)}"
            )


def read_table(
    path: Path, required: Sequence[str], *, allow_empty: bool = False, keep: Sequence[str] | None = None
) -> Table:
    """Read a CSV with a header row; raise ImportFormatError when it is missing, empty or lacks a column.

    ``keep`` (optional) limits the columns held in memory to the required ones plus these (large gaze files)."""
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"{path}: expected a CSV file with columns {list(required)}, found nothing")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise ImportFormatError(
                    f"{path}: expected a CSV file with columns {list(required)}, got an empty file"
                )
            header = [h.strip() for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                raise ImportFormatError(f"{path}: expected columns {missing}, got columns {header}")
            wanted = None if keep is None else set(required) | set(keep)
            picked = [(j, h) for j, h in enumerate(header) if wanted is None or h in wanted]
            columns: dict[str, list[str]] = {h: [] for _, h in picked}
            n_rows = 0
            for r in reader:  # streamed: only the kept columns are held (EGD-CXR's eye_gaze.csv is large)
                if not any(c.strip() for c in r):
                    continue
                if len(r) != len(header):
                    raise ImportFormatError(
                        f"{path}: row {n_rows + 2}: expected {len(header)} cells (as the header), got {len(r)}"
                    )
                for j, h in picked:
                    columns[h].append(r[j])
                n_rows += 1
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ImportFormatError(f"{path}: expected a UTF-8 CSV file, could not read it ({exc})") from exc
    if not n_rows and not allow_empty:
        raise ImportFormatError(f"{path}: expected at least one data row, got only the header")
    return Table(path, columns, n_rows)


# ------------------------------------------------------------------------------------------------ words
def make_words(texts: Sequence[str], t_start: np.ndarray, t_end: np.ndarray, *, where: str) -> Words:
    """Words sorted by start time with ``end >= start`` (an end before its start is set to the start).

    ``where`` names the source in error messages (NaN or infinite times raise)."""
    t0 = np.asarray(t_start, np.float64)
    t1 = np.asarray(t_end, np.float64)
    if not (np.all(np.isfinite(t0)) and np.all(np.isfinite(t1))):
        raise ImportFormatError(f"{where}: expected finite word times, got NaN or infinite values")
    order = np.argsort(t0, kind="stable")
    t0, t1 = t0[order], np.maximum(t1[order], t0[order])
    text = [str(texts[i]).strip() for i in order]
    keep = np.array([bool(t) for t in text], bool)
    return Words(
        t0[keep], t1[keep], [t for t, k in zip(text, keep) if k], np.ones(int(keep.sum()), np.float32)
    )


def spread_phrase(phrase: str, begin_s: float, end_s: float) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Split a timed phrase into words that share its span evenly (an approximation: the source times only
    the phrase). Returns (words, t_start, t_end)."""
    words = phrase.split()
    n = len(words)
    if n == 0:
        return [], np.zeros(0), np.zeros(0)
    edges = begin_s + (end_s - begin_s) * np.arange(n + 1) / n
    return words, edges[:-1], edges[1:]


# ------------------------------------------------------------------------------------------------ heatmaps
def add_sentences(record: CaseRecord, *, lead_s: float = EYE_VOICE_LEAD_S) -> CaseRecord:
    """Fill ``record.sentences`` / ``heatmaps`` / ``heatmap_scale`` from its words and fixations (the same
    alignment live capture uses), and link findings to the sentences that name them."""
    sentences, heatmaps = sentence_heatmaps(record, lead_s=lead_s)
    record.sentences, record.heatmaps = sentences, heatmaps
    record.heatmap_scale = heatmap_grid(record.image.width, record.image.height)[2]
    if record.findings:
        record.findings = link_findings(record.findings, sentences.text)
    return record


# Words of a finding label that say nothing about what was seen (they would match unrelated sentences).
_GENERIC = frozenset(
    {
        "abnormal", "abnormality", "acute", "other", "issue", "quality", "disease", "contour", "enlarged",
        "wide", "high", "lung", "lungs", "volume", "or", "and", "of", "the", "with", "opacity", "finding",
    }
)  # fmt: skip
# Radiology synonyms for dataset labels (REFLACX / EGD-CXR label names -> words a report uses).
_SYNONYMS = {
    "cardiac": ("cardiomegaly", "heart", "cardiac"),
    "silhouette": ("cardiomegaly", "heart"),
    "cardiomegaly": ("cardiomegaly", "heart", "cardiac"),
    "pleural": ("pleural", "effusion", "effusions"),
    "effusion": ("effusion", "effusions"),
    "nodule": ("nodule", "nodules", "nodular"),
    "mass": ("mass", "masses"),
    "edema": ("edema", "oedema", "congestion"),
    "devices": ("tube", "line", "catheter", "pacemaker", "wire", "wires", "device", "devices", "clip"),
    "emphysema": ("emphysema", "hyperinflated", "hyperinflation", "emphysematous"),
    "groundglass": ("groundglass", "ground-glass", "ground"),
    "hilum": ("hilum", "hila", "hilar"),
    "mediastinal": ("mediastinum", "mediastinal"),
    "mediastinum": ("mediastinum", "mediastinal"),
    "fracture": ("fracture", "fractures"),
    "atelectasis": ("atelectasis", "atelectatic", "atelectases"),
    "consolidation": ("consolidation", "consolidations", "airspace"),
    "pneumothorax": ("pneumothorax", "pneumothoraces"),
    "hernia": ("hernia",),
    "interstitial": ("interstitial", "fibrosis", "reticular"),
}
_NEGATIONS = frozenset({"no", "without", "negative", "resolved", "absent"})
_TOKEN = re.compile(r"[a-z][a-z\-]*")


def label_keywords(label: str) -> frozenset[str]:
    """Words that mark a sentence as being about a finding with this label ("Lung nodule or mass" ->
    nodule, nodules, mass, ...)."""
    out: set[str] = set()
    for tok in _TOKEN.findall(label.casefold().replace("_", " ")):
        if tok in _GENERIC or len(tok) < 3:
            continue
        out.update(_SYNONYMS.get(tok, (tok,)))
    return frozenset(out)


def _with_singulars(tokens: list[str]) -> set[str]:
    """Tokens plus their plural-stripped forms ("tubes" -> "tube")."""
    return set(tokens) | {t[:-1] for t in tokens if len(t) > 3 and t.endswith("s")}


def link_findings(findings: list[Finding], sentence_texts: Sequence[str]) -> list[Finding]:
    """Set each finding's ``sentence_index`` to the first sentence naming its label (a non-negated mention
    preferred), or -1. Labels may list several names separated by ";"."""
    tokens = [_with_singulars(_TOKEN.findall(t.casefold())) for t in sentence_texts]
    out = []
    for f in findings:
        keys = frozenset().union(*(label_keywords(part) for part in f.label.split(";")))
        hits = [i for i, toks in enumerate(tokens) if keys & toks]
        positive = [i for i in hits if not (_NEGATIONS & tokens[i])]
        pick = positive[0] if positive else hits[0] if hits else -1
        out.append(replace(f, sentence_index=pick))
    return out


def ellipse_mask(box: tuple[float, float, float, float], image_w: int, image_h: int) -> np.ndarray:
    """The ellipse inscribed in ``box`` (image px) on the stored heatmap grid, as a bool mask (h_hm, w_hm)."""
    h_hm, w_hm, scale = heatmap_grid(image_w, image_h)
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = max((x1 - x0) / 2, scale / 2), max((y1 - y0) / 2, scale / 2)
    xs = (np.arange(w_hm) + 0.5) * scale
    ys = (np.arange(h_hm) + 0.5) * scale
    return ((xs[None, :] - cx) / rx) ** 2 + ((ys[:, None] - cy) / ry) ** 2 <= 1.0


# ------------------------------------------------------------------------------------------------ images
def image_ref(
    path: Path | None, *, width: int | None = None, height: int | None = None, stored_path: str | None = None
) -> ImageRef:
    """An ImageRef: loaded from ``path`` when given (size, bits, content hash), else from the source's sizes
    (empty hash). ``stored_path`` is what the session records as the image path (default: ``path``)."""
    if path is not None:
        from radgaze.capture.io.images import load_image

        try:
            meta = load_image(path).meta
        except ImageLoadError as exc:
            raise ImportFormatError(f"{path}: expected a readable radiograph: {exc}") from exc
        if width is not None and height is not None and (meta.width, meta.height) != (width, height):
            raise ImportFormatError(
                f"{path}: the source gives the image as {width}x{height} px, the file is "
                f"{meta.width}x{meta.height} px"
            )
        return ImageRef(
            stored_path or str(path), meta.sha256, meta.width, meta.height, meta.bits_stored, meta.photometric
        )
    if not width or not height or width <= 0 or height <= 0:
        raise ImportFormatError(f"image {stored_path!r}: expected a positive size, got {width}x{height}")
    return ImageRef(stored_path or "", "", int(width), int(height))


def index_images(root: Path | None) -> dict[str, Path]:
    """Image files under ``root`` by file stem (DICOM ``.dcm``, PNG, JPEG), for lookup by dicom_id."""
    if root is None:
        return {}
    if not Path(root).is_dir():
        raise ConfigError(f"--images: expected a folder of images, got {root}")
    exts = {".dcm", ".dicom", ".png", ".jpg", ".jpeg"}
    return {p.stem: p for p in sorted(Path(root).rglob("*")) if p.suffix.lower() in exts and p.is_file()}


# ------------------------------------------------------------------------------------------------ writing
@dataclass
class ImportResult:
    """What an import did: session files written, cases imported, cases skipped (with why)."""

    written: list[Path] = field(default_factory=list)
    n_cases: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (case id, reason)
    n_discarded: int = 0  # cases the dataset itself marks as discarded
    warnings: list[str] = field(
        default_factory=list
    )  # what an import found questionable but kept (one line each)

    def summary(self) -> str:
        parts = [f"wrote {len(self.written)} session file(s) with {self.n_cases} case(s)"]
        if self.n_discarded:
            parts.append(f"skipped {self.n_discarded} case(s) the dataset marks as discarded")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} broken case(s)")
        if self.warnings:
            parts.append(f"{len(self.warnings)} warning(s)")
        return "; ".join(parts)


def write_session_file(
    path: Path, records: Iterable[CaseRecord], *, provenance: dict, reader_id: str = "anonymous"
) -> Path:
    """Write ``records`` into a new session file at ``path``, all or nothing.

    The file is written under a hidden name and renamed into place only when every case is in; on any error
    the partial file is removed and the error re-raised."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.importing")
    for stale in (staging, staging.with_name(f".{staging.name}.partial")):
        stale.unlink(missing_ok=True)
    writer = SessionWriter(staging, reader_id=reader_id, provenance=provenance)
    try:
        for rec in records:
            writer.write_case(rec)
    except BaseException:
        writer.close()
        staging.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(staging, path)
    return path


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse to replace an existing session file unless asked to (an overwrite happens only when the new file
    is complete: :func:`write_session_file` renames it over the old one)."""
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; pass --overwrite to replace it")


def safe_name(text: str) -> str:
    """A file / case name from a source id (path separators and odd characters replaced)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "case"
