"""Training samples from a folder of session files (recorded, synthetic or imported).

Sessions are read only through :mod:`radgaze.capture.store.reader`; images through :func:`radgaze.capture.io.images.load_image`.
Each sample is one case: the radiograph letterboxed to the encoder's square (aspect kept, zero padding), the
dictated sentences, each sentence heatmap moved through the very same letterbox and reduced to the encoder's
patch grid, a has-gaze flag and the case labels.

An index of the folder (``.radgaze-index.json`` beside the data) records every file's size and mtime and the
cases in it; it is refreshed for files that changed. Damaged files are skipped with a warning (logged, never
raised) and listed in :attr:`SessionIndex.skipped`, which the trainer writes into the run report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.base.records import CaseRecord
from radgaze.capture.store.case_image import IMAGES_ENV, case_image_problem
from radgaze.capture.store.reader import SessionReader, list_sessions
from radgaze.model.image_transforms import (
    LetterboxTransform,
    heatmap_to_patch_grid,
    letterbox_square,
    to_model_input,
)
from radgaze.training.config import DataConfig

log = logging.getLogger(__name__)

INDEX_NAME = ".radgaze-index.json"
INDEX_VERSION = 1


# ------------------------------------------------------------------------------------------------ index
@dataclass(frozen=True)
class IndexedCase:
    """One case of one session file, as the index knows it (no pixels)."""

    file: str  # path relative to the indexed folder (posix)
    case_id: str
    labels: tuple[str, ...]
    n_sentences: int
    n_heatmaps: int

    @property
    def key(self) -> str:
        return f"{self.file}::{self.case_id}"


@dataclass
class SessionIndex:
    folder: Path
    cases: list[IndexedCase]
    skipped: list[dict] = field(default_factory=list)  # [{"file", "case_id" (or None), "error"}]
    n_files: int = 0
    refreshed_files: int = 0  # files (re)read on this build; 0 = the cache was fully reused

    def report(self) -> dict:
        n_files, n_cases = skipped_counts(self.skipped)
        return {
            "n_files": self.n_files,
            "n_cases": len(self.cases),
            "n_skipped": len(self.skipped),
            "n_skipped_files": n_files,
            "n_skipped_cases": n_cases,
            "skipped": self.skipped,
            "refreshed_files": self.refreshed_files,
        }


def skipped_counts(skipped: list[dict]) -> tuple[int, int]:
    """(whole files skipped, cases skipped in files that opened) of an index's ``skipped`` entries: an entry
    without a case id is a file that could not be read at all; one with a case id is one case of a file."""
    files = {s["file"] for s in skipped if s.get("case_id") is None}
    return len(files), sum(1 for s in skipped if s.get("case_id") is not None)


def _scan_file(path: Path) -> tuple[list[dict], list[dict]]:
    """Cases (dicts) of one session file, and problems found (dicts); opening failures become one problem."""
    cases, problems = [], []
    try:
        with SessionReader(path) as reader:
            for cid in reader.case_ids:
                try:
                    case = reader.case(cid)
                except SessionFormatError as exc:
                    problems.append({"case_id": cid, "error": str(exc)})
                    continue
                if len(case.sentences) == 0:
                    problems.append({"case_id": cid, "error": "case has no dictated sentences"})
                    continue
                image_problem = case_image_problem(case.image, path)  # missing, or another file
                if image_problem is not None:
                    problems.append({"case_id": cid, "error": image_problem})
                    continue
                cases.append(
                    {
                        "case_id": cid,
                        "labels": case_labels(case),
                        "n_sentences": len(case.sentences),
                        "n_heatmaps": int((case.sentences.heatmap_index >= 0).sum()),
                    }
                )
    except (SessionFormatError, OSError, RuntimeError, ValueError, KeyError) as exc:
        # SessionFormatError is the store's contract; h5py can still raise RuntimeError on a file with a valid
        # HDF5 signature but a garbage superblock. A damaged file is skipped and counted, never fatal.
        problems.append({"case_id": None, "error": f"{type(exc).__name__}: {exc}"})
    return cases, problems


def build_index(folder: str | os.PathLike, *, use_cache: bool = True) -> SessionIndex:
    """Index every session file under ``folder``, reusing the cached entries of unchanged files.

    A file counts as changed when its size or mtime (ns) differ from the cached entry. The cache is rewritten
    atomically when anything changed; an unwritable folder only costs the cache.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SessionFormatError(f"expected a folder of session files, got {folder} (not a directory)")
    cache_path = folder / INDEX_NAME
    cached: dict = {}
    if use_cache and cache_path.is_file():
        try:
            blob = json.loads(cache_path.read_text())
            if blob.get("version") == INDEX_VERSION:
                cached = blob.get("files", {})
        except (OSError, json.JSONDecodeError):
            cached = {}
    files: dict[str, dict] = {}
    refreshed = 0
    for path in list_sessions(folder):
        rel = path.relative_to(folder).as_posix()
        st = path.stat()
        entry = cached.get(rel)
        key = (st.st_size, st.st_mtime_ns, os.environ.get(IMAGES_ENV, ""))  # new image folders: a new scan
        if not (entry and (entry["size"], entry["mtime_ns"], entry.get("images", "")) == key):
            cases, problems = _scan_file(path)
            entry = {
                "size": key[0],
                "mtime_ns": key[1],
                "images": key[2],
                "cases": cases,
                "problems": problems,
            }
            refreshed += 1
        files[rel] = entry
    if refreshed or set(files) != set(cached):
        write_json_atomic(cache_path, {"version": INDEX_VERSION, "files": files})
    index = SessionIndex(folder=folder, cases=[], n_files=len(files), refreshed_files=refreshed)
    for rel in sorted(files):
        for c in files[rel]["cases"]:
            index.cases.append(
                IndexedCase(
                    rel, c["case_id"], tuple(c["labels"]), int(c["n_sentences"]), int(c["n_heatmaps"])
                )
            )
        for p in files[rel]["problems"]:
            log.warning("skipping %s%s: %s", rel, f" case {p['case_id']}" if p["case_id"] else "", p["error"])
            index.skipped.append({"file": rel, **p})
    return index


def write_json_atomic(path: Path, obj: dict) -> None:
    """``obj`` as JSON in ``path`` via a temp file and os.replace; a failure is logged, never raised."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not write the session index %s (%s); continuing without a cache", path, exc)
        tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------- case selection
def _rank(keys: Sequence[str], seed: int, salt: str) -> list[str]:
    """Keys in a pseudo-random order that depends only on (seed, salt, key): adding a case never reorders
    the others."""

    def h(k: str) -> str:
        return hashlib.sha256(f"{salt}:{seed}:{k}".encode()).hexdigest()

    return sorted(keys, key=h)


def select_gaze_cases(keys: Sequence[str], ratio: float, seed: int) -> set[str]:
    """The cases that keep their gaze: ``round(ratio * n)`` of them (at least one when ratio > 0), chosen
    deterministically by seed."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"gaze ratio must be in [0, 1], got {ratio}")
    n_keep = 0 if ratio == 0 else max(1, int(math.floor(ratio * len(keys) + 0.5)))
    return set(_rank(keys, seed, "gaze")[:n_keep])


def split_cases(keys: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, val) keys, val = ``round(val_fraction * n)`` cases chosen deterministically by seed."""
    n_val = int(math.floor(val_fraction * len(keys) + 0.5)) if val_fraction > 0 else 0
    n_val = min(n_val, max(0, len(keys) - 2))
    val = set(_rank(keys, seed, "val")[:n_val])
    return [k for k in keys if k not in val], [k for k in keys if k in val]


# ------------------------------------------------------------------------------------------- geometry
# The letterbox itself is the model's (radgaze.model.image_transforms), so training, evaluation and the app's
# attention overlay all put images and heatmaps on the square the same way.


def letterbox_image(pixels01: np.ndarray, size: int) -> tuple[torch.Tensor, LetterboxTransform]:
    """(H, W) image in [0, 1] -> ((1, size, size) float tensor, its LetterboxTransform)."""
    return letterbox_square(np.asarray(pixels01, dtype=np.float32), size)


def letterbox_heatmap(heatmap: np.ndarray, tf: LetterboxTransform) -> np.ndarray:
    """A heatmap covering the whole image at any resolution (the store keeps a reduced one) -> (S, S) map on
    the square, placed exactly where the image was placed. Sums to 1 (or 0 when empty)."""
    h, w = heatmap.shape
    hm_tf = LetterboxTransform(
        h, w, tf.size, tf.scale * tf.src_w / w, tf.new_h, tf.new_w, tf.top_px, tf.left_px
    )
    out = hm_tf.apply_to_heatmap(np.clip(np.nan_to_num(heatmap.astype(np.float32)), 0, None)).numpy()
    total = float(out.sum())
    return out / total if total > 0 else out


def to_patch_grid(square_map: np.ndarray, n_side: int) -> np.ndarray:
    """(S, S) map -> (n_side, n_side) area masses summing to 1 (all zero when empty)."""
    t = torch.from_numpy(np.ascontiguousarray(square_map, dtype=np.float32))
    return heatmap_to_patch_grid(t, n_side).reshape(n_side, n_side).numpy()


def case_labels(record: CaseRecord) -> list[str]:
    """The case's labels for zero-shot and retrieval: the reader's own (their annotation, certainty at least
    "Possibly", in radgaze's label style: "Enlarged cardiac silhouette" -> "enlarged_cardiac_silhouette",
    "Normal radiograph" -> "normal") when they annotated the case, else the labels the case came with."""
    ann = record.annotation
    if ann is None or not ann.labels:
        return list(record.labels)
    from radgaze.capture.annotation.labels import present_labels

    out = []
    for label in present_labels(ann.labels):
        out.append("normal" if label.casefold() == "normal radiograph" else _label_style(label))
    return sorted(set(out))


def _label_style(name: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in name.casefold()).split()
    return "_".join(words)


# ------------------------------------------------------------------------------------------ augment
def photometric_augment(image01: torch.Tensor, cfg: DataConfig, gen: torch.Generator) -> torch.Tensor:
    """Brightness/contrast jitter, random sharpness and autocontrast on a (1, S, S) image in [0, 1].

    Only intensities change, never geometry, so the heatmaps stay valid. Randomness comes from ``gen`` only.
    """
    x = image01
    u = torch.rand(5, generator=gen)
    order = torch.randperm(2, generator=gen)
    for op in order.tolist():
        if op == 0 and cfg.brightness > 0:
            x = x * (1 - cfg.brightness + 2 * cfg.brightness * u[0])
        elif op == 1 and cfg.contrast > 0:
            mean = x.mean()
            x = (x - mean) * (1 - cfg.contrast + 2 * cfg.contrast * u[1]) + mean
    x = x.clamp(0, 1)
    if u[2] < cfg.sharpness_p:
        blur = torch.nn.functional.avg_pool2d(x[None], 3, stride=1, padding=1, count_include_pad=False)[0]
        x = (blur + cfg.sharpness_factor * (x - blur)).clamp(0, 1)  # factor 2 = sharpen (torchvision sense)
    if u[3] < cfg.autocontrast_p:
        lo, hi = x.min(), x.max()
        if hi > lo:
            x = (x - lo) / (hi - lo)
    return x


# ------------------------------------------------------------------------------------------- dataset
@dataclass
class CaseSample:
    """One case ready for the model (before augmentation and normalisation)."""

    key: str
    image01: torch.Tensor  # (1, S, S) in [0, 1], letterboxed
    letterbox: LetterboxTransform
    sentences: list[str]
    gaze: np.ndarray  # (m, n) float32, patch-grid heatmap per sentence, zero row = no gaze
    heatmaps_sq: list[np.ndarray | None]  # per sentence (S, S) letterboxed heatmap, None = empty marker
    labels: list[str]
    record: CaseRecord | None = None  # kept only when asked (evaluation)
    reading: np.ndarray | None = None  # (S, S) float32 mean of the non-empty heatmaps_sq (zeros when none)


def _gaze_rows(maps: list[np.ndarray | None], n_side: int) -> np.ndarray:
    rows = np.zeros((len(maps), n_side * n_side), np.float32)
    for i, hm in enumerate(maps):
        if hm is not None:
            rows[i] = to_patch_grid(hm, n_side).reshape(-1)
    return rows


def reading_map(maps: list[np.ndarray | None], image_size: int) -> np.ndarray:
    """The whole reading's heatmap on the square: the mean of the sentences' non-empty maps (eCLIP's expert
    heatmap), zeros when none has gaze."""
    present = [m for m in maps if m is not None]
    if not present:
        return np.zeros((image_size, image_size), np.float32)
    return np.ascontiguousarray(np.mean(present, axis=0), dtype=np.float32)


def apply_gaze_floor(rows: np.ndarray, floor: float) -> np.ndarray:
    """Zero the patch masses of each (m, n) gaze row below ``floor / n`` (``floor`` times the uniform mass),
    keep at least each row's maximum, and renormalise rows to sum 1. ``floor`` 0 returns ``rows`` unchanged.

    Gaussian heatmaps are positive almost everywhere, so EGMA's binary gaze label GL = (GS > 0) marks nearly
    every patch as gazed; a floor of 1 keeps only the patches looked at more than average.
    """
    if floor <= 0 or rows.size == 0:
        return rows
    n = rows.shape[1]
    keep = (rows >= floor / n) | (rows == rows.max(axis=1, keepdims=True))
    out = np.where(keep & (rows > 0), rows, 0.0).astype(np.float32)
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


def read_case(folder: Path, case: IndexedCase) -> tuple[CaseRecord, np.ndarray]:
    """(the case record, its image windowed to float32 (H, W) in [0, 1]) through the session store."""
    from radgaze.capture.io.images import windowed01
    from radgaze.capture.store.case_image import load_case_image

    with SessionReader(folder / case.file) as reader:
        record = reader.case(case.case_id)
    return record, windowed01(load_case_image(record.image, folder / case.file))  # sha256, size verified


def case_sample_from(
    key: str,
    record: CaseRecord,
    pixels01: np.ndarray,
    *,
    image_size: int,
    n_side: int,
    max_sentences: int,
    keep_record: bool = False,
) -> CaseSample:
    """A decoded case -> its sample at one encoder size: letterboxed image and heatmaps, patch-grid rows."""
    image01, lb = letterbox_image(pixels01, image_size)
    m = min(len(record.sentences), max_sentences)
    maps: list[np.ndarray | None] = []
    for i in range(m):
        hm = record.sentence_heatmap(i)
        maps.append(
            None if hm is None or not np.isfinite(hm).all() or hm.sum() <= 0 else letterbox_heatmap(hm, lb)
        )
    return CaseSample(
        key=key,
        image01=image01,
        letterbox=lb,
        sentences=list(record.sentences.text[:m]),
        gaze=_gaze_rows(maps, n_side),
        heatmaps_sq=maps,
        labels=case_labels(record),
        record=record if keep_record else None,
        reading=reading_map(maps, image_size),
    )


def load_case_sample(
    folder: Path,
    case: IndexedCase,
    *,
    image_size: int,
    n_side: int,
    max_sentences: int,
    keep_record: bool = False,
) -> CaseSample:
    """Read one case through the session store and letterbox its image and heatmaps."""
    record, pixels01 = read_case(folder, case)
    return case_sample_from(
        case.key,
        record,
        pixels01,
        image_size=image_size,
        n_side=n_side,
        max_sentences=max_sentences,
        keep_record=keep_record,
    )


class SessionDataset(torch.utils.data.Dataset):
    """Cases of an index as training items.

    Item: {"image": (3, S, S) normalised, "heatmap": (1, S, S) mean sentence heatmap on the square (zero
    without gaze; eCLIP's expert heatmap), "sentences": list[str], "gaze": (m, n) float32 (zero rows where the
    case's gaze was withheld or a sentence had none), "has_gaze": bool, "labels": list[str], "key": str,
    "index": int}. Augmentation randomness is a function of (seed, epoch, index) only, so an interrupted run
    resumes onto the very same augmented images.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        cases: Sequence[IndexedCase],
        cfg: DataConfig,
        *,
        image_size: int,
        n_side: int,
        gaze_keys: set[str] | None = None,
        seed: int = 0,
        train: bool = True,
        mean: float = 0.5863,
        std: float = 0.2795,
        cache: dict | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.cases = list(cases)
        self.cfg = cfg
        self.image_size = image_size
        self.n_side = n_side
        self.gaze_keys = {c.key for c in self.cases} if gaze_keys is None else set(gaze_keys)
        self.seed = seed
        self.train = train
        self.mean, self.std = mean, std  # grey normalisation (ModelConfig.image_mean / image_std)
        self.epoch = 0
        # decoded, letterboxed cases; pass one dict to several datasets (experiments) to decode each case once
        self._cache: dict = {} if cache is None else cache

    def __len__(self) -> int:
        return len(self.cases)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _cache_key(self, i: int) -> tuple:
        return (
            str(self.folder.resolve()),
            self.cases[i].key,
            self.image_size,
            self.n_side,
            self.cfg.max_sentences,
        )

    def sample(self, i: int) -> CaseSample:
        ck = self._cache_key(i)
        s = self._cache.get(ck)
        if s is None:
            s = load_case_sample(
                self.folder,
                self.cases[i],
                image_size=self.image_size,
                n_side=self.n_side,
                max_sentences=self.cfg.max_sentences,
                keep_record=True,
            )
            if self.cfg.cache_in_memory:
                self._cache[ck] = s
        return s

    def normalise(self, image01: torch.Tensor) -> torch.Tensor:
        """(1, S, S) in [0, 1] -> (3, S, S) normalised grey repeated to 3 channels (EGMA reference code)."""
        return to_model_input(image01, self.mean, self.std)

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        """``item``: an index, or (epoch, index) from the trainer's sampler (workers hold no epoch state)."""
        epoch, i = item if isinstance(item, tuple) else (self.epoch, item)
        s = self.sample(i)
        return self.make_item(epoch, i, s.key, s.image01, s.reading, s.gaze, s.sentences, s.labels)

    def make_item(
        self,
        epoch: int,
        i: int,
        key: str,
        image01: torch.Tensor,
        reading: np.ndarray | None,
        gaze_rows: np.ndarray,
        sentences: list[str],
        labels: list[str],
    ) -> dict:
        """The training item of case ``i`` from its prepared arrays: augmentation, normalisation, the gaze
        withheld for cases outside ``gaze_keys``."""
        x = image01
        if self.train and self.cfg.augment:
            gen = torch.Generator().manual_seed(_item_seed(self.seed, epoch, i))
            x = photometric_augment(x, self.cfg, gen)
        x = self.normalise(x)
        keep = key in self.gaze_keys
        gaze = apply_gaze_floor(gaze_rows, self.cfg.gaze_floor) if keep else np.zeros_like(gaze_rows)
        if not keep or reading is None:
            reading = np.zeros((self.image_size, self.image_size), np.float32)
        return {
            "image": x,
            "heatmap": torch.from_numpy(np.ascontiguousarray(reading, dtype=np.float32))[None],  # (1, S, S)
            "sentences": sentences,
            "gaze": torch.from_numpy(np.ascontiguousarray(gaze)),
            "has_gaze": bool(keep and gaze.sum() > 0),
            "labels": labels,
            "key": key,
            "index": i,
        }


def _item_seed(seed: int, epoch: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()[:8], "little") >> 1


def collate(items: list[dict]) -> dict:
    """Stack items; gaze padded to the batch's largest sentence count (B, m_max, n)."""
    m_max = max(len(it["sentences"]) for it in items)
    n = items[0]["gaze"].shape[1]
    gaze = torch.zeros(len(items), m_max, n)
    for b, it in enumerate(items):
        gaze[b, : it["gaze"].shape[0]] = it["gaze"]
    return {
        "image": torch.stack([it["image"] for it in items]),
        "heatmap": torch.stack([it["heatmap"] for it in items]),
        "reports": [it["sentences"] for it in items],
        "gaze": gaze,
        "has_gaze": torch.tensor([it["has_gaze"] for it in items], dtype=torch.bool),
        "labels": [it["labels"] for it in items],
        "keys": [it["key"] for it in items],
        "index": torch.tensor([it["index"] for it in items]),
    }


def model_batch(model, batch: dict, device: torch.device) -> dict:
    """A collated batch -> the model's batch dict (tokenised reports; gaze matched to the token layout)."""
    tok = model.tokenize(batch["reports"])
    m_tok = tok["sentence_mask"].shape[1]
    gaze = batch["gaze"]
    if gaze.shape[1] < m_tok:
        gaze = torch.nn.functional.pad(gaze, (0, 0, 0, m_tok - gaze.shape[1]))
    gaze = gaze[:, :m_tok] * tok["sentence_mask"][..., None].to(gaze.dtype)
    out = {k: v.to(device) for k, v in tok.items()}
    out["image"] = batch["image"].to(device, non_blocking=True)  # pinned by the loader on CUDA
    out["gaze"] = gaze.to(device)
    out["has_gaze"] = (batch["has_gaze"] & (gaze.sum(dim=(1, 2)) > 0)).to(device)
    if getattr(getattr(model, "config", None), "eclip", False):
        out["heatmap_image"] = batch["heatmap"].to(device)  # eCLIP: the whole reading's heatmap per case
    return out


def index_summary(index: SessionIndex, gaze_keys: set[str]) -> dict:
    return {**index.report(), "n_with_gaze": sum(1 for c in index.cases if c.key in gaze_keys)}
