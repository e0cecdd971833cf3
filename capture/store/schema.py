"""The session file's schema (docs/session-format.md): format name and version, the row layouts of the
case datasets and their filters, the 16-bit heatmap encoding, the transcript-correction attributes, and the
text/attribute encodings the writer and the reader share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from radgaze.capture.base.errors import UnknownCaseError
from radgaze.capture.base.records import CLOCK_EVENT_DTYPE, FIXATION_DTYPE, GAP_DTYPE, GAZE_DTYPE, VIEW_DTYPE

FORMAT_NAME = "radgaze-session"
# 2: compressed, 16-bit heatmaps; 3: per-case annotation_log; 4: Fletcher-32 on every dataset, clock_events,
# content digest; 5: the annotation log as checksummed UTF-8 bytes (docs/session-format.md)
SCHEMA_VERSION = 5

WORD_ROW = np.dtype(
    [("t_start", "f8"), ("t_end", "f8"), ("probability", "f4"), ("text_offset", "i8"), ("text_len", "i4")]
)
SENTENCE_ROW = np.dtype(
    [
        ("t_start", "f8"),
        ("t_end", "f8"),
        ("window_start", "f8"),
        ("window_end", "f8"),
        ("heatmap_index", "i4"),
        ("n_fixations", "i4"),
        ("text_offset", "i8"),
        ("text_len", "i4"),
    ]
)
AUDIO_BLOCK_ROW = np.dtype([("t_lsl", "f8"), ("first_sample", "i8")])


@dataclass(frozen=True)
class DatasetSpec:
    """One growable case dataset: row dtype, rows per chunk, and the Blosc codec of its chunks (None: stored
    uncompressed)."""

    dtype: np.dtype
    chunk_rows: int = 256
    codec: str | None = None


def blosc_filter(codec: str) -> dict:
    """Schema 2's lossless filter: Blosc (hdf5plugin, HDF5 filter 32001) with a byte shuffle, then ``lz4``
    at level 9 (gaze, heatmaps: a flush of a 512 x 512 map costs well under a millisecond, gzip took 15-50
    ms) or ``zstd`` at level 1 (audio: ~10 % smaller than lz4 on noise-like samples). Blosc2 compressed a
    little better but cost 5-15 ms per flush here, which the heatmap latency cannot pay. Readers need
    ``import hdf5plugin`` (done by this module)."""
    level = {"lz4": 9, "zstd": 1}[codec]
    return dict(hdf5plugin.Blosc(cname=codec, clevel=level, shuffle=hdf5plugin.Blosc.SHUFFLE))


# Every 1-D dataset a case has, created together before SWMR starts (the list docs/session-format.md shows).
# Chunks of ~1 s of 1 kHz gaze / 0.5 s of audio: each flush rewrites the growing chunk, and under SWMR HDF5
# never reuses the space of the copy it replaced, so smaller chunks leak less while recording (a closed live
# file is compacted anyway: compact_session_file).
# Only the streams that carry the bytes are compressed: the small tables written a few rows at a time would
# gain kilobytes and cost a chunk recompression on every flush that touches them.
CASE_DATASETS: dict[str, DatasetSpec] = {
    "gaze": DatasetSpec(GAZE_DTYPE, 1024, "lz4"),
    "fixations": DatasetSpec(FIXATION_DTYPE),
    "view_events": DatasetSpec(VIEW_DTYPE),
    "gaps": DatasetSpec(GAP_DTYPE),
    "clock_events": DatasetSpec(CLOCK_EVENT_DTYPE),  # schema 4: steps of the tracker's clock
    "words": DatasetSpec(WORD_ROW),
    "words_text": DatasetSpec(np.dtype("u1"), 1024),
    "sentences": DatasetSpec(SENTENCE_ROW),
    "sentences_text": DatasetSpec(np.dtype("u1"), 1024),
    "audio": DatasetSpec(np.dtype("i2"), 8000, "zstd"),
    "audio_blocks": DatasetSpec(AUDIO_BLOCK_ROW),
    "heatmap_peak": DatasetSpec(np.dtype("f4")),  # schema 2: the maximum of each stored heatmap
}
# The heatmap stack, (k, h, w), one compressed chunk per map, as 16-bit fixed point relative to the map's
# peak: stored = round(map / heatmap_peak * 65535), read back as stored * heatmap_peak / 65535 (float32).
# Precision: absolute error half a step, heatmap_peak / 131070 (7.6e-6 of the peak) per pixel (plus float32
# rounding, < 1 % of that), so tails below that
# read as 0 (for a Gaussian that drops ~8e-6 of its mass); a map's sum moves by ~1e-5. float16 was tried:
# 25 % larger after compression, and numpy's float32 -> float16 cast cost 2-30 ms a map (subnormals) here.
HEATMAP_DTYPE = np.dtype("u2")
HEATMAP_FULL_SCALE = 65535
HEATMAP_DTYPE_V1 = np.dtype("f4")  # schema 1: the map itself, float32, uncompressed, no heatmap_peak
HEATMAP_CODEC = "lz4"


# Transcript correction: the corrected transcript of a closed case lives in a group of the case beside the
# recognised one, which is never touched; the case attribute HEATMAPS_FROM says which of the two the case's
# sentences and heatmaps are read from, and CORRECTION_IN_USE which group (docs/session-format.md).
HEATMAPS_FROM = "heatmaps_from"
HEATMAPS_FROM_RECOGNISED, HEATMAPS_FROM_CORRECTED = "recognised", "corrected"
# a re-recognition of the case's audio with another model (radgaze retranscribe), stored as a correction is
HEATMAPS_FROM_RETRANSCRIBED = "retranscribed"
# read from the correction_<n> group in use
TRANSCRIPT_GROUP_SOURCES = (HEATMAPS_FROM_CORRECTED, HEATMAPS_FROM_RETRANSCRIBED)
CORRECTION_IN_USE = "transcript_correction"
CORRECTION_PREFIX = "correction_"


def encode_heatmap(heatmap: np.ndarray) -> tuple[np.ndarray, float]:
    """``(uint16 round(map / peak * 65535), peak)``, peak = the maximum (0 for an all-zero map: zeros).

    Float32 subnormals (the far tails of Gaussians, which round to 0 here anyway) are zeroed through their
    bits first: arithmetic on them runs ~10x slower."""
    if heatmap.size and float(np.min(heatmap)) < 0:
        raise ValueError(f"heatmap: expected non-negative values, got a minimum of {float(np.min(heatmap))}")
    peak = float(np.max(heatmap)) if heatmap.size else 0.0
    if not np.isfinite(peak):
        raise ValueError(f"heatmap: expected finite values, got a maximum of {peak}")
    if peak <= 0:
        return np.zeros(heatmap.shape, HEATMAP_DTYPE), 0.0
    bits = np.ascontiguousarray(heatmap, dtype=np.float32).view(np.uint32).copy()
    bits[(bits & np.uint32(0x7F800000)) == 0] = 0
    scaled = bits.view(np.float32)
    scaled *= np.float32(HEATMAP_FULL_SCALE / peak)
    scaled += np.float32(0.5)
    np.minimum(scaled, np.float32(HEATMAP_FULL_SCALE), out=scaled)
    # the values are in [0.5, 65535] here; numpy's SIMD float -> uint16 cast reports an "overflow" that an
    # earlier reduction left in the FPU flags, not one of its own
    with np.errstate(over="ignore", invalid="ignore"):
        return scaled.astype(HEATMAP_DTYPE), peak


def text_rows(texts: list[str], offset: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    encoded = [t.encode("utf-8") for t in texts]
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    rows = np.zeros(len(texts), dtype=dtype)
    rows["text_len"] = lengths
    rows["text_offset"] = offset + np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(texts) else 0
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return rows, blob


def attr_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value) if value is not None else ""


def decode_texts(rows: np.ndarray, blob: np.ndarray) -> list[str]:
    raw = blob.tobytes()
    return [
        raw[o : o + n].decode("utf-8", errors="replace")
        for o, n in zip(rows["text_offset"], rows["text_len"])
    ]


def case_group(f: h5py.File, case_id: str, path: Path) -> h5py.Group:
    """Case ``case_id``'s group of the open session file ``f`` (at ``path``); UnknownCaseError (a ValueError)
    naming the file's cases when it has none of that name."""
    if case_id not in f["cases"]:
        raise UnknownCaseError(f"expected a case of {path.name} ({list(f['cases'])}), got {case_id!r}")
    return f["cases"][case_id]
