"""The session store: one HDF5 file per reading, one or more cases in it (schema in docs/session-format.md).

One writer per file (:class:`SessionWriter`), any number of readers (:class:`SessionReader`). A live writer
(``live=True``) keeps the file in HDF5 single-writer/multiple-reader (SWMR) mode while a case is recorded and
flushes at least every ``flush_interval_s``; a recorder killed with ``kill -9`` leaves a file whose earlier
cases are untouched (each was closed cleanly before the next began) and whose current case holds everything up
to the last flush. A batch writer (``live=False``: synth, importers) writes to a temporary file and renames it
into place on close, so a half-written session never appears under its final name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from radgaze.capture import __version__
from radgaze.capture.annotation.check import annotation_problems
from radgaze.capture.base.errors import SessionFormatError, StoreWriteError
from radgaze.capture.base.records import (
    CLOCK_EVENT_DTYPE,
    FIXATION_DTYPE,
    GAP_DTYPE,
    GAZE_DTYPE,
    VIEW_DTYPE,
    Audio,
    CaseAnnotation,
    CaseRecord,
    DisplayGeometry,
    Finding,
    ImageRef,
    Sentences,
    TranscriptCorrection,
    Words,
)
from radgaze.capture.gazemath.findings import findings_on
from radgaze.capture.gazemath.heatmap import heatmap_grid
from radgaze.capture.store.annotations import append_revision, read_annotation
from radgaze.capture.store.integrity import (
    CHECKSUM,
    WriterLock,
    as_write_error,
    damaged_datasets,
    digest_problem,
    room_problem,
    stamp_digest,
)
from radgaze.capture.store.privacy import scrub_provenance

_log = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------- schema 2: datasets + filters
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
# live writes of these wait for the next flush (SessionWriter._append says why)
_HELD_UNTIL_FLUSH = frozenset(name for name, spec in CASE_DATASETS.items() if spec.codec) | {"heatmaps"}


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


def list_sessions(folder: str | os.PathLike) -> list[Path]:
    """Session files (``*.h5``) under ``folder``, recursively, sorted by path."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    return sorted(p for p in folder.rglob("*.h5") if p.is_file())


# --------------------------------------------------------------------------------------------- writer
class SessionWriter:
    """Append-only writer of one session file. Not thread-safe: call it from one thread (the recorder's)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        reader_id: str = "anonymous",
        provenance: dict | None = None,
        live: bool = False,
        flush_interval_s: float = 0.25,
        keep_provenance_paths: bool = False,
    ) -> None:
        self.path = Path(path)
        self.live = live
        self.flush_interval_s = flush_interval_s
        # privacy.py: no host names or absolute paths in the file unless asked (docs/privacy.md)
        self._scrub = (lambda d: d) if keep_provenance_paths else scrub_provenance
        self._tmp_path = self.path if live else self.path.with_name(f".{self.path.name}.partial")
        self._lock = _create_exclusively(self.path, self._tmp_path)
        self._failed: StoreWriteError | None = None
        self._file: h5py.File | None = _guarded(self.path, h5py.File, self._tmp_path, "w-", libver="latest")
        self._file.attrs.update(
            {
                "format": FORMAT_NAME,
                "schema_version": SCHEMA_VERSION,
                "software_version": __version__,
                "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "reader_id": reader_id,
                "provenance_json": json.dumps(self._scrub(provenance or {}), default=str),
            }
        )
        self._file.create_group("cases")
        self._case: h5py.Group | None = None
        self._case_id: str | None = None
        self._n_cases = 0
        self._pending: dict[str, list[np.ndarray]] = {}  # live rows held until the next flush
        self._last_flush = time.monotonic()

    # -- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and not self.live and self._file is not None:
            self._close_failed()  # a batch write that failed half-way never appears under its name
            return
        self.close()

    @property
    def current_case(self) -> str | None:
        return self._case_id

    def update_provenance(self, **items: object) -> None:
        """Merge items into the file's provenance (only between cases in live mode)."""
        f = self._reopen_plain()
        prov = json.loads(f.attrs["provenance_json"])
        prov.update(json.loads(json.dumps(items, default=str)))
        f.attrs["provenance_json"] = json.dumps(self._scrub(prov), default=str)

    def begin_case(
        self,
        case_id: str,
        image: ImageRef,
        display: DisplayGeometry,
        *,
        t_start: float,
        labels: tuple[str, ...] | list[str] = (),
        findings: list[Finding] | None = None,
        attrs: dict | None = None,
    ) -> None:
        """Start a case: create every dataset it will use (SWMR needs them all before it starts)."""
        if self._case is not None:
            raise RuntimeError(f"case {self._case_id!r} is still open; call end_case first")
        f = self._reopen_plain()
        if not case_id or "/" in case_id:
            raise ValueError(f"case_id must be a non-empty name without '/', got {case_id!r}")
        if case_id in f["cases"]:
            raise ValueError(f"case {case_id!r} already exists in {self.path}")
        g = f["cases"].create_group(case_id)
        h_hm, w_hm, scale = heatmap_grid(image.width, image.height)
        g.attrs.update(
            {
                "case_id": case_id,
                "order": self._n_cases,
                "image_json": json.dumps(asdict(image)),
                "display_json": json.dumps(display.to_dict()),
                "t_start": float(t_start),
                "t_end": float("nan"),
                "complete": False,
                "labels_json": json.dumps(list(labels)),
                "attrs_json": json.dumps(attrs or {}, default=str),
                "heatmap_scale": scale,
                "heatmaps_from": HEATMAPS_FROM_RECOGNISED,
            }
        )
        _create_case_datasets(g, (h_hm, w_hm))
        g["audio"].attrs["sample_rate"] = 16000
        if findings is not None:
            _write_findings(g, findings, (h_hm, w_hm))
        self._n_cases += 1
        self._case, self._case_id = g, case_id
        if self.live:
            f.flush()
            f.swmr_mode = True
            self._last_flush = time.monotonic()

    def end_case(self, t_end: float) -> None:
        """Close the current case and mark it complete."""
        g = self._require_case()
        name = g.name
        self._write_pending()
        self._case, self._case_id = None, None
        f = self._reopen_plain()
        f[name].attrs["t_end"] = float(t_end)
        f[name].attrs["complete"] = True
        f.flush()

    def close(self) -> None:
        if self._file is None:
            return
        if self._failed is not None:
            self._close_failed()
            return
        try:
            if self._case is not None:  # closing mid-case keeps what came, marked incomplete
                self._write_pending()
                self._case = self._case_id = None
            if not self.live:
                self._file.flush()
                stamp_digest(self._file)
            self._file.flush()
            self._file.close()
        except (OSError, RuntimeError) as exc:
            self._fail(exc)
            self._close_failed()
            raise self._failed from None
        self._file = None
        if self._tmp_path != self.path:
            os.replace(self._tmp_path, self.path)
        elif self.live:
            compact_session_file(self.path)
        self._lock.release()

    @property
    def failed(self) -> StoreWriteError | None:
        """The write failure that stopped this writer (None while it writes)."""
        return self._failed

    def _fail(self, exc: BaseException) -> StoreWriteError:
        if self._failed is None:
            self._failed = as_write_error(self.path, exc)  # the caller says it, in one line
        return self._failed

    def _close_failed(self) -> None:
        """After a failed write: close without writing more rows (the reserve left on the disk holds what
        HDF5 writes at close). A live file keeps what its last flush wrote, its open case marked incomplete
        (read as a killed recorder's file, not compacted); a batch file's partial copy is removed."""
        self._pending = {}
        try:
            self._file.close()
        except (OSError, RuntimeError):
            pass  # HDF5 could not write its cache out: the last flush is what the file holds
        self._file, self._case, self._case_id = None, None, None
        if self._tmp_path != self.path:
            self._tmp_path.unlink(missing_ok=True)
        self._lock.release()

    # -- appends --------------------------------------------------------------------------------------
    def append_gaze(self, samples: np.ndarray) -> None:
        self._append("gaze", _as_table(samples, GAZE_DTYPE, "gaze samples"))

    def append_fixations(self, fixations: np.ndarray) -> None:
        self._append("fixations", _as_table(fixations, FIXATION_DTYPE, "fixations"))

    def append_view_events(self, events: np.ndarray) -> None:
        self._append("view_events", _as_table(events, VIEW_DTYPE, "view events"))

    def append_gaps(self, gaps: np.ndarray) -> None:
        self._append("gaps", _as_table(gaps, GAP_DTYPE, "gaps"))

    def append_clock_events(self, events: np.ndarray) -> None:
        self._append("clock_events", _as_table(events, CLOCK_EVENT_DTYPE, "clock events"))

    def append_audio(
        self, samples_int16: np.ndarray, t_lsl_first_sample: float, sample_rate: int = 16000
    ) -> None:
        g = self._require_case()
        samples = np.asarray(samples_int16)
        if samples.ndim != 1 or samples.dtype != np.int16:
            raise ValueError(f"audio: expected 1-D int16 mono samples, got {samples.dtype} {samples.shape}")
        ds = g["audio"]
        n_samples = self._length("audio")
        if n_samples == 0 and not self.live:
            ds.attrs["sample_rate"] = int(sample_rate)
        elif int(ds.attrs["sample_rate"]) != int(sample_rate):
            raise ValueError(
                f"audio: expected {int(ds.attrs['sample_rate'])} Hz blocks, got {sample_rate} Hz"
            )
        block = np.array([(float(t_lsl_first_sample), n_samples)], dtype=AUDIO_BLOCK_ROW)
        self._append("audio", samples)
        self._append("audio_blocks", block)

    def append_words(self, words: Words) -> None:
        self._require_case()
        rows, blob = _text_rows(words.text, self._length("words_text"), WORD_ROW)
        rows["t_start"], rows["t_end"], rows["probability"] = words.t_start, words.t_end, words.probability
        self._append("words_text", blob)
        self._append("words", rows)

    def append_sentence(
        self,
        *,
        t_start: float,
        t_end: float,
        window_start: float,
        window_end: float,
        text: str,
        heatmap: np.ndarray | None,
        n_fixations: int,
    ) -> int:
        """Append one sentence and its heatmap (``None`` = the explicit empty marker). Returns its index."""
        g = self._require_case()
        k = -1
        if heatmap is not None:
            hm = g["heatmaps"]
            heatmap = np.asarray(heatmap, dtype=np.float32)
            if heatmap.shape != hm.shape[1:]:
                raise ValueError(f"heatmap: expected shape {hm.shape[1:]}, got {heatmap.shape}")
            k = self._length("heatmaps")
            stored, peak = _encode_heatmap(heatmap)
            self._append("heatmaps", stored[None])
            self._append("heatmap_peak", np.array([peak], np.float32))
        rows, blob = _text_rows([text], self._length("sentences_text"), SENTENCE_ROW)
        rows[0] = (
            t_start,
            t_end,
            window_start,
            window_end,
            k,
            n_fixations,
            rows[0]["text_offset"],
            rows[0]["text_len"],
        )
        self._append("sentences_text", blob)
        self._append("sentences", rows)
        return self._length("sentences") - 1

    def write_case(self, record: CaseRecord) -> None:
        """Write a whole case at once (synthetic and imported sessions)."""
        if record.recognised_words is not None:
            raise ValueError(
                f"case {record.case_id}: expected an uncorrected case (its recognised sentences are not in the "
                "record), got a corrected one; write the recognised case, then write_correction"
            )
        self.begin_case(
            record.case_id,
            record.image,
            record.display,
            t_start=record.t_start,
            labels=record.labels,
            findings=record.findings,
            attrs=record.attrs,
        )
        self.append_gaze(record.gaze)
        self.append_fixations(record.fixations)
        self.append_view_events(record.view_events)
        self.append_gaps(record.gaps)
        self.append_clock_events(record.clock_events)
        self.append_words(record.words)
        s = record.sentences
        for i in range(len(s)):
            self.append_sentence(
                t_start=s.t_start[i],
                t_end=s.t_end[i],
                window_start=s.window_start[i],
                window_end=s.window_end[i],
                text=s.text[i],
                heatmap=record.sentence_heatmap(i),
                n_fixations=int(s.n_fixations[i]),
            )
        if record.audio is not None:
            a = record.audio
            bounds = list(a.block_first_sample) + [a.samples.size]
            for t, lo, hi in zip(a.block_t_lsl, bounds[:-1], bounds[1:]):
                self.append_audio(a.samples[lo:hi], t, a.sample_rate)
        self.end_case(record.t_end)
        if record.annotation is not None and not record.annotation.is_empty():
            self.write_annotation(record.case_id, record.annotation, step="import")

    def write_annotation(self, case_id: str, annotation: CaseAnnotation, *, step: str) -> int:
        """Store the reader's annotation of a closed case as it stands after confirming ``step``; flush.

        Appends one revision (see :mod:`radgaze.capture.store.annotations`): what earlier revisions hold is never
        touched, so a crash at any point keeps every step confirmed before it. Refuses (``ValueError``, one line,
        nothing written) shapes off the image or of no size, unknown steps and duplicate labels.
        Returns the revision number.
        """
        if case_id == self._case_id:
            raise RuntimeError(f"case {case_id!r} is still being recorded; annotate it after end_case")
        f = self._reopen_plain()
        if case_id not in f["cases"]:
            raise ValueError(f"expected a case of {self.path.name} ({list(f['cases'])}), got {case_id!r}")
        g = f["cases"][case_id]
        _refuse_bad_annotation(g, case_id, annotation)
        revision = append_revision(g, annotation, step)
        f.flush()
        return revision

    def write_second_look(self, case_id: str, payload: dict, unviewed: np.ndarray, model: np.ndarray) -> None:
        """Store a closed case's second look (:mod:`radgaze.capture.store.second_look`); flush. Written once."""
        from radgaze.capture.store.second_look import write_second_look_group

        if case_id == self._case_id:
            raise RuntimeError(
                f"case {case_id!r} is still being recorded; store its second look after end_case"
            )
        f = self._reopen_plain()
        if case_id not in f["cases"]:
            raise ValueError(f"expected a case of {self.path.name} ({list(f['cases'])}), got {case_id!r}")
        write_second_look_group(f["cases"][case_id], payload, unviewed, model)
        f.flush()

    def read_case(self, case_id: str) -> CaseRecord:
        """A closed case as stored so far, read through this writer's own handle (the recorder's thread: the
        transcript it corrects, the words the annotation panel shows). Refuses the case being recorded."""
        if case_id == self._case_id:
            raise RuntimeError(f"case {case_id!r} is still being recorded; read it after end_case")
        f = self._reopen_plain()
        if case_id not in f["cases"]:
            raise ValueError(f"expected a case of {self.path.name} ({list(f['cases'])}), got {case_id!r}")
        return _read_case(f["cases"][case_id], int(f.attrs["schema_version"]))

    def write_correction(self, record: CaseRecord) -> int:
        """Store a closed case's corrected transcript (``record`` as ``correct_case`` returns it); flush.

        The corrected words, sentences and heatmaps go whole into a new group of the case, flushed; only then
        do the case's attributes switch to it, so a crash at any point reads either the transcript before
        (the recognised words are never touched) or the whole correction. Returns the correction's number."""
        if record.case_id == self._case_id:
            raise RuntimeError(f"case {record.case_id!r} is still being recorded; correct it after end_case")
        if record.correction is None or record.recognised_words is None:
            raise ValueError(
                f"case {record.case_id}: expected a corrected case (correction and recognised_words set, as "
                "correct_case returns it), got one without"
            )
        f = self._reopen_plain()
        if record.case_id not in f["cases"]:
            raise ValueError(
                f"expected a case of {self.path.name} ({list(f['cases'])}), got {record.case_id!r}"
            )
        return _store_correction(f, f["cases"][record.case_id], record)

    def flush(self) -> None:
        """Write the rows held since the last flush and flush the file (SWMR readers then see them)."""
        if self._file is not None:
            self._write_pending()
            self._with_write_errors(self._file.flush)
            self._last_flush = time.monotonic()

    def tick(self) -> None:
        """Flush if the flush interval has passed (call it from the recorder loop)."""
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    # -- internals ------------------------------------------------------------------------------------
    def _require_case(self) -> h5py.Group:
        if self._case is None:
            raise RuntimeError("no case is open; call begin_case first")
        return self._case

    def _append(self, name: str, rows: np.ndarray) -> None:
        """Live, compressed dataset: hold the rows until the next flush, which writes them at once (HDF5
        recompresses a chunk at every write, and under SWMR never frees the copy it replaces: gaze written
        50 times a second made a file 25x its data). Otherwise write now. Either way a crash keeps exactly
        what the last flush wrote, as in schema 1."""
        if len(rows) == 0:
            return
        self._require_case()
        if self.live and name in _HELD_UNTIL_FLUSH:
            self._pending.setdefault(name, []).append(rows)
        else:
            self._write_rows(name, rows)
        if self.live:
            self.tick()

    def _length(self, name: str) -> int:
        """Rows of a current-case dataset, those held for the next flush included."""
        held = sum(len(r) for r in self._pending.get(name, ()))
        return int(self._require_case()[name].shape[0]) + held

    def _write_pending(self) -> None:
        """Write the held rows (gaze, audio, heatmaps), one write per dataset. Rows written at once that
        point into them (a sentence's heatmap_index, an audio block's first_sample, a heatmap_peak) may reach
        the disk a flush earlier; the reader keeps only those whose target is there, as for a crash."""
        pending, self._pending = self._pending, {}
        for name, parts in pending.items():
            self._write_rows(name, np.concatenate(parts) if len(parts) > 1 else parts[0])

    def _write_rows(self, name: str, rows: np.ndarray) -> None:
        ds = self._require_case()[name]
        n = ds.shape[0]

        def write() -> None:
            ds.resize(n + len(rows), axis=0)
            ds[n:] = rows

        self._with_write_errors(write, rows.nbytes)

    def _with_write_errors(self, write, n_bytes: int = 0) -> None:
        """Run one write of about ``n_bytes``, after looking that the disk has room for it and for closing
        the file (integrity.DISK_RESERVE_BYTES). A full disk or a failed write stops the writer:
        StoreWriteError, one line, every later write refused with it; close() then keeps what the last flush
        wrote (live) or removes the partial file (batch)."""
        if self._failed is not None:
            raise self._failed
        full = room_problem(self._tmp_path.parent, n_bytes)
        if full is not None:
            raise self._fail(OSError(28, full)) from None
        try:
            write()
        except (OSError, RuntimeError) as exc:
            raise self._fail(exc) from None

    def _reopen_plain(self) -> h5py.File:
        """The file, out of SWMR mode (a clean close + reopen), so groups and attributes can be added."""
        if self._file is None:
            raise RuntimeError(f"session writer for {self.path} is closed")
        if self._failed is not None:
            raise self._failed
        if self.live and self._file.swmr_mode:
            case_name = self._case.name if self._case is not None else None  # a closed file's handles lose it
            self._with_write_errors(self._file.close)
            self._file = _guarded(self.path, h5py.File, self._tmp_path, "a", libver="latest")
            if case_name is not None:
                self._case = self._file[case_name]
        return self._file


def _store_correction(f: h5py.File, g: h5py.Group, record: CaseRecord) -> int:
    """Write ``record``'s correction into a new group of case group ``g``, then switch the case to it."""
    _check_correction_matches(g, record)
    numbers = [int(k[len(CORRECTION_PREFIX) :]) for k in g if k.startswith(CORRECTION_PREFIX)]
    name = f"{CORRECTION_PREFIX}{max(numbers, default=0) + 1}"  # a group a crash left unused is skipped
    group = g.create_group(name)
    _write_transcript(group, record.words, record.sentences, record.heatmaps)
    c = record.correction
    group.attrs.update(
        {
            "edits_json": json.dumps(c.edits, ensure_ascii=False),
            "recomputed_json": json.dumps([int(k) for k in c.recomputed]),
            "lead_s": float(c.lead_s),
            "saved_utc": datetime.now(UTC).isoformat(timespec="milliseconds"),
            **({"asr_json": json.dumps(c.asr, default=str)} if c.asr is not None else {}),
        }
    )
    f.flush()
    g.attrs[CORRECTION_IN_USE] = name  # the switch: one attribute, written after the data is on disk
    f.flush()
    source = HEATMAPS_FROM_RETRANSCRIBED if c.asr is not None else HEATMAPS_FROM_CORRECTED
    if _attr_str(g.attrs.get(HEATMAPS_FROM, "")) != source:
        g.attrs[HEATMAPS_FROM] = source
        f.flush()
    return int(name[len(CORRECTION_PREFIX) :])


def correct_session_file(path: str | os.PathLike, record: CaseRecord) -> int:
    """Store the corrected transcript of a case of a closed session file (``radgaze annotate``'s transcript
    step), as :meth:`SessionWriter.write_correction` does: the whole correction first, the switch last."""
    path = Path(path)
    if record.correction is None or record.recognised_words is None:
        raise ValueError(
            f"case {record.case_id}: expected a corrected case (as correct_case returns it), got one without"
        )
    with _open_closed_session(path, "correct") as f:
        if record.case_id not in f["cases"]:
            raise ValueError(f"expected a case of {path.name} ({list(f['cases'])}), got {record.case_id!r}")
        return _store_correction(f, f["cases"][record.case_id], record)


@contextmanager
def _open_closed_session(path: Path, what: str):
    """A closed session file opened for appending (one-line errors for a foreign or busy file)."""
    try:
        f = h5py.File(path, "a", libver="latest")
    except OSError as exc:
        raise SessionFormatError(
            f"{path}: expected a closed session file to {what}, got one that cannot be opened for writing "
            f"({exc}; is it still being recorded?)"
        ) from None
    with f:
        if _attr_str(f.attrs.get("format", "")) != FORMAT_NAME:
            raise SessionFormatError(
                f"{path}: expected a {FORMAT_NAME} file, got format {f.attrs.get('format')!r}"
            )
        damaged = digest_problem(f) is not None  # changed since it was closed: a new digest would hide it
        yield f
        f.flush()
        if not damaged:
            stamp_digest(f)  # the file changed: its digest follows
        f.flush()


def annotate_session_file(
    path: str | os.PathLike, case_id: str, annotation: CaseAnnotation, *, step: str
) -> int:
    """Append one annotation revision to case ``case_id`` of a closed session file (``radgaze annotate``).

    The file is opened, appended to, flushed and closed for each revision, so between two confirmed steps it
    is a closed file that any crash leaves whole. Refuses (one line, nothing written) what
    :meth:`SessionWriter.write_annotation` refuses, a file that is not a session, and one still being recorded.
    """
    path = Path(path)
    with _open_closed_session(path, "annotate") as f:
        if case_id not in f["cases"]:
            raise ValueError(f"expected a case of {path.name} ({list(f['cases'])}), got {case_id!r}")
        g = f["cases"][case_id]
        _refuse_bad_annotation(g, case_id, annotation)
        if 2 <= int(f.attrs["schema_version"]) < SCHEMA_VERSION:  # schema 1's heatmaps are read as such
            f.attrs["schema_version"] = SCHEMA_VERSION  # its annotation log is now the current schema's
        return append_revision(g, annotation, step)


def _refuse_bad_annotation(g: h5py.Group, case_id: str, annotation: CaseAnnotation) -> None:
    image = json.loads(_attr_str(g.attrs["image_json"]))
    problems = annotation_problems(annotation, int(image["width"]), int(image["height"]))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValueError(f"case {case_id}: annotation not stored: {problems[0]}{more}")


def compact_session_file(path: Path) -> None:
    """Rewrite a closed live session without the space its SWMR flushes left behind (HDF5 does not reuse
    space freed under SWMR: each flush's copy of a growing compressed chunk, and the chunk index, stay in the
    file; ~5 MB per minute of reading where the data is ~2.3). Chunks are copied as stored, not recompressed.
    The copy goes to a hidden name and replaces ``path`` only once whole, so a crash here leaves the closed
    original; when the copy fails (disk full, ...) the original is kept and the failure logged."""
    partial = path.with_name(f".{path.name}.compact-partial")
    full = room_problem(path.parent, path.stat().st_size)
    if full is not None:
        _log.warning("%s: kept as written, not compacted (%s)", path, full)
        return
    try:
        with h5py.File(path, "r") as src, h5py.File(partial, "w", libver="latest") as dst:
            dst.attrs.update(dict(src.attrs))
            for name in src:  # cases/ and whatever other groups the schema has next to it
                src.copy(src[name], dst, name=name)
            dst.flush()
            stamp_digest(dst)
        os.replace(partial, path)
    except (OSError, RuntimeError) as exc:  # h5py reports a full disk as either
        partial.unlink(missing_ok=True)
        _log.warning("%s: kept as written, not compacted (%s: %s)", path, type(exc).__name__, exc)


def _create_case_datasets(g: h5py.Group, grid: tuple[int, int]) -> None:
    """Every dataset of a schema-2 case, empty, chunked and filtered as :data:`CASE_DATASETS` says."""
    for name, spec in CASE_DATASETS.items():
        g.create_dataset(
            name,
            shape=(0,),
            maxshape=(None,),
            dtype=spec.dtype,
            chunks=(spec.chunk_rows,),
            **(blosc_filter(spec.codec) if spec.codec else {}),
            **CHECKSUM,
        )
    g.create_dataset(
        "heatmaps",
        shape=(0, *grid),
        maxshape=(None, *grid),
        dtype=HEATMAP_DTYPE,
        chunks=(1, *grid),
        **blosc_filter(HEATMAP_CODEC),
        **CHECKSUM,
    )


def _check_correction_matches(g: h5py.Group, record: CaseRecord) -> None:
    """ValueError unless the record's recognised words are the case's stored ones and its maps fit the grid."""
    stored = g["words"][()]
    texts = _texts(stored, g["words_text"][()])
    recognised = record.recognised_words
    if texts != list(recognised.text) or not np.array_equal(stored["t_start"], recognised.t_start):
        raise ValueError(
            f"case {record.case_id}: expected recognised words equal to the stored {len(texts)} words, got "
            f"{len(recognised)} that differ"
        )
    grid = g["heatmaps"].shape[1:]
    if record.heatmaps.shape[1:] != grid and len(record.heatmaps):
        raise ValueError(f"heatmaps: expected maps of shape {grid}, got {record.heatmaps.shape[1:]}")


def _write_transcript(group: h5py.Group, words: Words, sentences: Sentences, heatmaps: np.ndarray) -> None:
    """Words, sentences and heatmaps of a transcript into ``group``, each dataset written whole, in the case's
    row layouts (WORD_ROW, SENTENCE_ROW, 16-bit maps with their peaks)."""
    rows, blob = _text_rows(list(words.text), 0, WORD_ROW)
    rows["t_start"], rows["t_end"], rows["probability"] = words.t_start, words.t_end, words.probability
    group.create_dataset("words", data=rows, **CHECKSUM)
    group.create_dataset("words_text", data=blob, **CHECKSUM)
    rows, blob = _text_rows(list(sentences.text), 0, SENTENCE_ROW)
    for name in ("t_start", "t_end", "window_start", "window_end", "heatmap_index", "n_fixations"):
        rows[name] = getattr(sentences, name)
    group.create_dataset("sentences", data=rows, **CHECKSUM)
    group.create_dataset("sentences_text", data=blob, **CHECKSUM)
    encoded = [_encode_heatmap(np.asarray(m, np.float32)) for m in heatmaps]
    stored = np.stack([e[0] for e in encoded]) if encoded else np.zeros(heatmaps.shape, HEATMAP_DTYPE)
    chunked = {"chunks": (1, *stored.shape[1:]), **blosc_filter(HEATMAP_CODEC)} if len(stored) else {}
    group.create_dataset("heatmaps", data=stored, **chunked, **CHECKSUM)
    group.create_dataset("heatmap_peak", data=np.array([e[1] for e in encoded], np.float32), **CHECKSUM)


def _encode_heatmap(heatmap: np.ndarray) -> tuple[np.ndarray, float]:
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


def _as_table(rows: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.dtype != dtype:
        missing = set(dtype.names) - set(rows.dtype.names or ())
        if missing:
            raise ValueError(f"{what}: expected fields {dtype.names}, missing {sorted(missing)}")
        rows = rows.astype(dtype)
    return rows.reshape(-1)


def _text_rows(texts: list[str], offset: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    encoded = [t.encode("utf-8") for t in texts]
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    rows = np.zeros(len(texts), dtype=dtype)
    rows["text_len"] = lengths
    rows["text_offset"] = offset + np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(texts) else 0
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return rows, blob


def _write_findings(g: h5py.Group, findings: list[Finding], grid: tuple[int, int]) -> None:
    meta = [
        {
            "label": f.label,
            "location": f.location,
            "box": list(map(float, f.box)),
            "sentence_index": f.sentence_index,
        }
        for f in findings
    ]
    g.attrs["findings_json"] = json.dumps(meta)
    masks = np.zeros((len(findings), *grid), dtype=np.uint8)
    for i, f in enumerate(findings):
        if f.mask is not None:
            if f.mask.shape != grid:
                raise ValueError(
                    f"finding {f.label!r}: mask shape {f.mask.shape}, expected the heatmap grid {grid}"
                )
            masks[i] = f.mask
    g.create_dataset("finding_masks", data=masks, compression="gzip", compression_opts=4, **CHECKSUM)


# --------------------------------------------------------------------------------------------- reader
class SessionReader:
    """Read a session file (also one being written live, or left behind by a killed recorder)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file, self._recovered_copy = _open_h5(self.path)
        # True when the file was left by a writer killed between two cases and is read through a copy
        self.recovered = self._recovered_copy is not None
        try:
            with _damage_as_format_error(self.path, "its header"):
                self._check_header()
        except Exception:
            self.close()
            raise

    def _check_header(self) -> None:
        attrs = self._file.attrs
        fmt = _attr_str(attrs.get("format"))
        if fmt != FORMAT_NAME:
            raise SessionFormatError(
                f"{self.path}: expected a radgaze session (attribute format={FORMAT_NAME!r}), got format={fmt!r}"
            )
        try:
            self.schema_version = int(attrs["schema_version"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SessionFormatError(f"{self.path}: missing or invalid schema_version") from exc
        if not 1 <= self.schema_version <= SCHEMA_VERSION:
            raise SessionFormatError(
                f"{self.path}: schema_version {self.schema_version} is not supported by this radgaze "
                f"(expected 1..{SCHEMA_VERSION}); upgrade radgaze"
            )
        if "cases" not in self._file or not isinstance(self._file["cases"], h5py.Group):
            raise SessionFormatError(f"{self.path}: expected a 'cases' group, found none")
        self.software_version = _attr_str(attrs.get("software_version", ""))
        self.reader_id = _attr_str(attrs.get("reader_id", ""))
        self.created_utc = _attr_str(attrs.get("created_utc", ""))
        try:
            self.provenance = json.loads(_attr_str(attrs.get("provenance_json", "{}")))
        except json.JSONDecodeError as exc:
            raise SessionFormatError(f"{self.path}: provenance is not valid JSON") from exc

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._recovered_copy is not None:
            self._recovered_copy.unlink(missing_ok=True)
            self._recovered_copy = None

    def refresh(self) -> None:
        """See data a live writer appended since opening (SWMR)."""
        if self._file.swmr_mode:
            for g in self._file["cases"].values():
                for ds in g.values():
                    if isinstance(ds, h5py.Dataset):
                        ds.refresh()

    @property
    def case_ids(self) -> list[str]:
        with _damage_as_format_error(self.path, "its list of cases"):
            groups = self._file["cases"]
            return sorted(groups, key=lambda k: _case_order(groups, k))

    def cases(self) -> Iterator[CaseRecord]:
        for cid in self.case_ids:
            yield self.case(cid)

    def case(self, case_id: str) -> CaseRecord:
        if case_id not in self.case_ids:
            raise KeyError(f"{self.path}: no case {case_id!r}; cases are {self.case_ids}")
        with _damage_as_format_error(self.path, f"case {case_id!r}"):
            return _read_case(self._file["cases"][case_id], self.schema_version)

    def dataset_sizes(self, case_id: str) -> dict[str, dict]:
        """Per dataset of a case: bytes on disk, bytes of data, dtype and filter (what ``inspect`` shows)."""
        with _damage_as_format_error(self.path, f"case {case_id!r}"):
            g = self._file["cases"][case_id]
            out = {name: _dataset_size(ds) for name, ds in g.items() if isinstance(ds, h5py.Dataset)}
            for name, sub in g.items():  # a correction's transcript: "correction_1/words", ...
                if isinstance(sub, h5py.Group):
                    out.update({f"{name}/{k}": _dataset_size(ds) for k, ds in sub.items()})
            return out

    def integrity_problems(self) -> list[str]:
        """Datasets HDF5 cannot read whole (checksum mismatch) by name, and a content digest that does not
        match (integrity.py); empty for a sound file."""
        problems = damaged_datasets(self._file)
        if not problems:
            digest = digest_problem(self._file)
            problems += [digest] if digest else []
        return problems

    def image_path(self, case: CaseRecord) -> Path:
        """The case's image path, resolved relative to the session file when it is relative."""
        p = Path(case.image.path)
        return p if p.is_absolute() else (self.path.parent / p)


def _dataset_size(ds: h5py.Dataset) -> dict:
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[3].decode(errors="replace") for i in range(plist.get_nfilters())]
    return {
        "stored_bytes": int(ds.id.get_storage_size()),
        "data_bytes": int(ds.size * ds.dtype.itemsize),
        "dtype": str(ds.dtype) if ds.dtype.names is None else "compound",
        "filters": filters,
    }


def _case_order(groups: h5py.Group, name: str) -> float:
    """A case's position; a case whose attributes a crash left unreadable sorts last (it was the newest)."""
    try:
        return float(groups[name].attrs["order"])
    except (OSError, KeyError, ValueError, TypeError):
        return float("inf")


@contextmanager
def _damage_as_format_error(path: Path, what: str):
    """HDF5 reports damage as OSError, KeyError, ValueError, ... from deep inside: one typed error instead."""
    try:
        yield
    except SessionFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, UnicodeDecodeError) as exc:
        raise SessionFormatError(
            f"{path}: {what} is damaged and cannot be read ({type(exc).__name__}: {exc})"
        ) from exc


def open_session(path: str | os.PathLike) -> SessionReader:
    return SessionReader(path)


def _open_h5(path: Path) -> tuple[h5py.File, Path | None]:
    """Open read-only: plainly; as an SWMR reader when a live writer has it (or was killed in SWMR mode);
    else, when a writer was killed outside SWMR mode (between two cases), through a copy whose "open for
    writing" flag is cleared. Returns the file and the temporary copy to delete on close (or None)."""
    if not path.is_file():
        raise SessionFormatError(f"{path}: expected a session file, found nothing there")
    if path.stat().st_size == 0:
        raise SessionFormatError(f"{path}: expected an HDF5 session file, got an empty file")
    try:
        return h5py.File(path, "r"), None
    except OSError as exc:
        message = str(exc)
    flags = _superblock_flags(path)
    if flags & _SWMR_WRITE_ACCESS:  # a live SWMR writer has it, or was killed while it had it
        try:
            return h5py.File(path, "r", swmr=True), None
        except OSError as exc:
            message = str(exc)
    if flags:  # a writer never closed it: read a copy with the flags cleared
        copy = _copy_with_flags_cleared(path)
        if copy is not None:
            try:
                return h5py.File(copy, "r"), copy
            except OSError as exc:
                copy.unlink(missing_ok=True)
                message = str(exc)
    raise SessionFormatError(
        f"{path}: expected an HDF5 session file, got something HDF5 cannot open (damaged, truncated or "
        f"foreign): {message}"
    )


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SWMR_WRITE_ACCESS = 0x04  # superblock consistency flags (HDF5 file format spec): 0x01 write, 0x04 SWMR write


def _superblock_flags(path: Path) -> int:
    """The file-consistency flags of a version-2/3 superblock at offset 0 (0 when absent or not that kind)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[11] if len(head) == 12 and head[:8] == _HDF5_SIGNATURE and head[8] in (2, 3) else 0


def _copy_with_flags_cleared(path: Path) -> Path | None:
    """A temporary copy of ``path`` with the superblock's file-consistency flags cleared and its end-of-file
    address no smaller than the bytes on disk (what HDF5's ``h5clear -s --increment`` does), padded with zeros
    up to that address; None when the superblock is not the version-2/3 kind that carries the flags.

    Superblock v2/v3 (HDF5 file format spec, "Superblock"): signature (8), version (1), size of offsets (1),
    size of lengths (1), consistency flags (1), base / extension / end-of-file / root addresses, then a
    Jenkins lookup3 checksum of all that.
    """
    with open(path, "rb") as fh:
        head = fh.read(12 + 4 * 8 + 4)
    if len(head) < 12 or head[:8] != _HDF5_SIGNATURE or head[8] not in (2, 3):
        return None
    n = 12 + 4 * head[9]
    sb = bytearray(head[:n])
    if len(sb) < n or lookup3(bytes(sb)) != int.from_bytes(head[n : n + 4], "little"):
        return None
    sb[11] = 0
    o = head[9]
    eoa = int.from_bytes(sb[12 + 2 * o : 12 + 3 * o], "little")
    size = path.stat().st_size
    sb[12 + 2 * o : 12 + 3 * o] = max(eoa, size).to_bytes(o, "little")
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}-recovered-", suffix=".h5")
    os.close(fd)
    copy = Path(name)
    shutil.copyfile(path, copy)
    with open(copy, "r+b") as fh:
        fh.write(bytes(sb) + lookup3(bytes(sb)).to_bytes(4, "little"))
        if eoa > size:  # the writer died before the file grew to what its superblock promises
            fh.truncate(eoa)
    return copy


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` (public domain), the checksum HDF5 puts on its metadata."""
    m = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & m

    def word(i: int) -> int:
        return int.from_bytes(data[i : i + 4], "little")

    a = b = c = (0xDEADBEEF + len(data) + initval) & m
    i, rest = 0, len(data)
    while rest > 12:
        a, b, c = (a + word(i)) & m, (b + word(i + 4)) & m, (c + word(i + 8)) & m
        a = ((a - c) & m) ^ rot(c, 4)
        c = (c + b) & m
        b = ((b - a) & m) ^ rot(a, 6)
        a = (a + c) & m
        c = ((c - b) & m) ^ rot(b, 8)
        b = (b + a) & m
        a = ((a - c) & m) ^ rot(c, 16)
        c = (c + b) & m
        b = ((b - a) & m) ^ rot(a, 19)
        a = (a + c) & m
        c = ((c - b) & m) ^ rot(b, 4)
        b = (b + a) & m
        i, rest = i + 12, rest - 12
    if rest == 0:
        return c
    tail = data[i:] + bytes(12 - rest)
    a = (a + int.from_bytes(tail[0:4], "little")) & m
    b = (b + int.from_bytes(tail[4:8], "little")) & m
    c = (c + int.from_bytes(tail[8:12], "little")) & m
    c = ((c ^ b) - rot(b, 14)) & m
    a = ((a ^ c) - rot(c, 11)) & m
    b = ((b ^ a) - rot(a, 25)) & m
    c = ((c ^ b) - rot(b, 16)) & m
    a = ((a ^ c) - rot(c, 4)) & m
    b = ((b ^ a) - rot(a, 14)) & m
    return ((c ^ b) - rot(b, 24)) & m


def _attr_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value) if value is not None else ""


def _texts(rows: np.ndarray, blob: np.ndarray) -> list[str]:
    raw = blob.tobytes()
    return [
        raw[o : o + n].decode("utf-8", errors="replace")
        for o, n in zip(rows["text_offset"], rows["text_len"])
    ]


def _read_heatmaps(g: h5py.Group, schema_version: int) -> np.ndarray:
    """The case's heatmaps as float32 maps (schema 2: uint16 x heatmap_peak / 65535; a killed writer may have
    stored a map without its peak, or the reverse: keep the maps that have both)."""
    stored = g["heatmaps"][()]
    if schema_version < 2:
        return stored.astype(np.float32, copy=False)
    peak = g["heatmap_peak"][()]
    n = min(stored.shape[0], peak.shape[0])
    return stored[:n].astype(np.float32) * (peak[:n, None, None] / np.float32(HEATMAP_FULL_SCALE))


def _read_transcript(g: h5py.Group, schema_version: int) -> tuple[Words, Sentences, np.ndarray]:
    """Words, sentences and heatmaps of a case group (or of one of its correction groups)."""
    word_rows, sent_rows = g["words"][()], g["sentences"][()]
    # a killed writer may leave a row table longer than its text blob or heatmap stack: keep what is whole
    words_blob, sent_blob = g["words_text"][()], g["sentences_text"][()]
    word_rows = word_rows[word_rows["text_offset"] + word_rows["text_len"] <= words_blob.size]
    sent_rows = sent_rows[sent_rows["text_offset"] + sent_rows["text_len"] <= sent_blob.size]
    heatmaps = _read_heatmaps(g, schema_version)
    sent_rows = sent_rows[sent_rows["heatmap_index"] < heatmaps.shape[0]]
    words = Words(
        word_rows["t_start"].copy(),
        word_rows["t_end"].copy(),
        _texts(word_rows, words_blob),
        word_rows["probability"],
    )
    sentences = Sentences(
        sent_rows["t_start"].copy(),
        sent_rows["t_end"].copy(),
        sent_rows["window_start"].copy(),
        sent_rows["window_end"].copy(),
        _texts(sent_rows, sent_blob),
        sent_rows["heatmap_index"].astype(np.int32),
        sent_rows["n_fixations"].astype(np.int32),
    )
    return words, sentences, heatmaps


def _read_correction(g: h5py.Group, problems: list[str]) -> tuple[h5py.Group, TranscriptCorrection] | None:
    """The correction group the case's attributes switched to, with its edits (None: recognised words in use);
    a group that cannot be read is noted in ``problems`` and the recognised transcript used."""
    if _attr_str(g.attrs.get(HEATMAPS_FROM, "")) not in TRANSCRIPT_GROUP_SOURCES:
        return None
    name = _attr_str(g.attrs.get(CORRECTION_IN_USE, ""))
    try:
        group = g[name]
        a = group.attrs
        correction = TranscriptCorrection(
            edits=json.loads(_attr_str(a["edits_json"])),
            recomputed=[int(k) for k in json.loads(_attr_str(a["recomputed_json"]))],
            lead_s=float(a["lead_s"]),
            saved_utc=_attr_str(a.get("saved_utc", "")),
            asr=json.loads(_attr_str(a["asr_json"])) if "asr_json" in a else None,
        )
    except (KeyError, ValueError, TypeError, OSError) as exc:
        problems.append(
            f"transcript correction {name!r}: expected a readable correction group, got {type(exc).__name__}: "
            f"{exc}; the recognised transcript is used"
        )
        return None
    return group, correction


def _read_case(g: h5py.Group, schema_version: int = SCHEMA_VERSION) -> CaseRecord:
    a = g.attrs
    image = ImageRef(**json.loads(_attr_str(a["image_json"])))
    display = DisplayGeometry(**json.loads(_attr_str(a["display_json"])))
    words, sentences, heatmaps = _read_transcript(g, schema_version)
    annotation, read_problems = read_annotation(g, _attr_str(a["case_id"]))
    recognised, correction = None, None
    findings = _read_findings(g)
    used = _read_correction(g, read_problems)
    if used is not None:
        recognised, correction = words, used[1]
        recognised_sentences = sentences
        words, sentences, heatmaps = _read_transcript(used[0], SCHEMA_VERSION)
        findings = findings_on(findings, recognised_sentences, sentences)  # stored on the recognised ones
    gaze = g["gaze"][()]
    complete = bool(a["complete"])
    t_start = float(a["t_start"])
    t_end = float(a["t_end"])
    if not complete or not np.isfinite(t_end):
        t_end = _last_time(t_start, gaze, words, sentences)
    return CaseRecord(
        case_id=_attr_str(a["case_id"]),
        image=image,
        display=display,
        t_start=t_start,
        t_end=t_end,
        gaze=gaze,
        fixations=g["fixations"][()],
        view_events=g["view_events"][()],
        gaps=g["gaps"][()],
        clock_events=g["clock_events"][()] if "clock_events" in g else np.zeros(0, CLOCK_EVENT_DTYPE),
        words=words,
        sentences=sentences,
        heatmaps=heatmaps,
        heatmap_scale=float(a["heatmap_scale"]),
        audio=_read_audio(g),
        findings=findings,
        labels=json.loads(_attr_str(a.get("labels_json", "[]"))),
        complete=complete,
        attrs=json.loads(_attr_str(a.get("attrs_json", "{}"))),
        annotation=annotation,
        recognised_words=recognised,
        correction=correction,
        read_problems=read_problems,
    )


def _last_time(t_start: float, gaze: np.ndarray, words: Words, sentences: Sentences) -> float:
    candidates = [t_start]
    if gaze.size:
        candidates.append(float(gaze["t_lsl"][-1]))
    if len(words):
        candidates.append(float(np.max(words.t_end)))
    if len(sentences):
        candidates.append(float(np.max(sentences.t_end)))
    return max(candidates)


def _read_audio(g: h5py.Group) -> Audio | None:
    samples = g["audio"][()]
    blocks = g["audio_blocks"][()]
    if samples.size == 0 or blocks.size == 0:
        return None
    blocks = blocks[blocks["first_sample"] < samples.size]
    return Audio(
        samples, int(g["audio"].attrs["sample_rate"]), blocks["t_lsl"].copy(), blocks["first_sample"].copy()
    )


def _read_findings(g: h5py.Group) -> list[Finding] | None:
    if "findings_json" not in g.attrs:
        return None
    meta = json.loads(_attr_str(g.attrs["findings_json"]))
    masks = g["finding_masks"][()] if "finding_masks" in g else None
    return [
        Finding(
            label=m["label"],
            location=m["location"],
            box=tuple(m["box"]),
            mask=None if masks is None else masks[i].astype(bool),
            sentence_index=int(m["sentence_index"]),
        )
        for i, m in enumerate(meta)
    ]


# --------------------------------------------------------------------------------------------- inspect
def describe_session(path: str | os.PathLike) -> dict:
    """A JSON-ready summary and validation of a session file (what ``radgaze inspect --json`` prints).

    Raises :class:`SessionFormatError` when the file cannot be opened as a session at all; problems inside
    an openable file are listed in ``errors`` and make ``valid`` false.
    """
    with SessionReader(path) as reader:
        errors: list[str] = reader.integrity_problems()
        cases = []
        for cid in reader.case_ids:
            try:
                case = reader.case(cid)
            except SessionFormatError as exc:
                errors.append(str(exc))
                continue
            errors += [f"case {cid}: {e}" for e in validate_case(case)]
            cases.append({**_case_summary(case), "datasets": reader.dataset_sizes(cid)})
        return {
            "path": str(reader.path),
            "format": FORMAT_NAME,
            "schema_version": reader.schema_version,
            "valid": not errors,
            "errors": errors,
            # read through a repaired copy: the writer was killed between two cases (the file is untouched)
            "recovered_from_crash": reader.recovered,
            "software_version": reader.software_version,
            "reader_id": reader.reader_id,
            "created_utc": reader.created_utc,
            "provenance": reader.provenance,
            "file_bytes": reader.path.stat().st_size,
            "cases": cases,
        }


def _case_summary(case: CaseRecord) -> dict:
    valid = (case.gaze["flags"] & 1).astype(bool) if case.gaze.size else np.zeros(0, bool)
    return {
        "case_id": case.case_id,
        "complete": case.complete,
        "duration_s": round(case.duration_s, 3),
        "gaze_samples": int(case.gaze.size),
        "gaze_valid_fraction": round(float(valid.mean()), 4) if valid.size else None,
        "fixations": int(case.fixations.size),
        "view_events": int(case.view_events.size),
        "gaps": int(case.gaps.size),
        "clock_events": int(case.clock_events.size),  # schema 4: tracker clock steps (samples kept)
        "words": len(case.words),
        "sentences": len(case.sentences),
        "heatmaps": int(case.heatmaps.shape[0]),
        "empty_sentences": int(np.sum(case.sentences.heatmap_index < 0)),
        "audio_s": round(case.audio.samples.size / case.audio.sample_rate, 3) if case.audio else 0.0,
        "labels": case.labels,
        "findings": len(case.findings or []),
        "annotation": _annotation_summary(case.annotation),
        "heatmaps_from": heatmaps_from(case),
        "transcript_correction": _correction_summary(case),
        "image": {"path": case.image.path, "width": case.image.width, "height": case.image.height},
    }


def heatmaps_from(case: CaseRecord) -> str:
    """Which words the case's sentences and heatmaps come from: recognised, corrected or retranscribed."""
    if case.correction is None:
        return HEATMAPS_FROM_RECOGNISED
    return HEATMAPS_FROM_CORRECTED if case.correction.asr is None else HEATMAPS_FROM_RETRANSCRIBED


def _correction_summary(case: CaseRecord) -> dict | None:
    c = case.correction
    if c is None:
        return None
    return {
        "retranscribed": c.asr,
        "edits": c.n_edits,
        "saves": len(c.edits),
        "recognised_words": len(case.recognised_words) if case.recognised_words is not None else None,
        "recomputed_heatmaps": len(c.recomputed),
        "lead_s": c.lead_s,
        "saved_utc": c.saved_utc,
    }


def _annotation_summary(annotation: CaseAnnotation | None) -> dict | None:
    if annotation is None:
        return None
    return {
        "labels": [f"{c.label} ({c.certainty})" for c in annotation.labels],
        "shapes": len(annotation.shapes),
        "chest_box": annotation.chest_box is not None,
        "confirmed_steps": list(annotation.confirmed_steps),
        "label_set": annotation.label_set,
    }


def validate_case(case: CaseRecord) -> list[str]:
    """Consistency problems of one case, as sentences (empty when the case is sound)."""
    problems: list[str] = list(case.read_problems)
    if case.annotation is not None:
        problems += annotation_problems(case.annotation, case.image.width, case.image.height)
    for name, t in (("gaze", case.gaze["t_lsl"]), ("view_events", case.view_events["t_lsl"])):
        if t.size > 1 and np.any(np.diff(t) < 0):
            problems.append(f"{name} times are not sorted")
    if len(case.words) and np.any(case.words.t_end < case.words.t_start):
        problems.append("a word ends before it starts")
    idx = case.sentences.heatmap_index
    if idx.size and (np.any(idx >= case.heatmaps.shape[0]) or np.any(idx < -1)):
        problems.append("a sentence points at a heatmap that does not exist")
    if case.heatmaps.shape[0]:
        sums = case.heatmaps.reshape(case.heatmaps.shape[0], -1).sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-3)
        if bad.size:
            problems.append(f"heatmaps {bad.tolist()} do not sum to 1")
    return problems


def _create_exclusively(path: Path, tmp_path: Path) -> WriterLock:
    """Take the writer's lock of ``path`` (one line naming the writer that has it) and refuse a session
    that exists; a partial copy a killed batch writer left is removed (the lock says nobody writes it)."""
    _guarded(path, path.parent.mkdir, parents=True, exist_ok=True)
    lock = WriterLock.acquire(path)
    if path.exists():
        lock.release()
        raise FileExistsError(f"session file {path} exists; a session file is written once")
    if tmp_path != path:
        tmp_path.unlink(missing_ok=True)
    return lock


def _guarded(path: Path, call, *args, **kwargs):
    """``call(*args, **kwargs)``; an OSError (read-only folder, disk full) becomes one StoreWriteError line."""
    try:
        return call(*args, **kwargs)
    except FileExistsError:
        raise
    except OSError as exc:
        raise as_write_error(path, exc) from None
