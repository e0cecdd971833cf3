"""The session writer: one writer per file (:class:`SessionWriter`).

A live writer (``live=True``) keeps the file in HDF5 single-writer/multiple-reader (SWMR) mode while a case
is recorded and flushes at least every ``flush_interval_s``; between cases (where groups and attributes are
added, which SWMR cannot do) it writes through an undo journal (:mod:`radgaze.capture.store.journal`). A
recorder killed with ``kill -9`` at any moment leaves a file whose closed cases are all there and whose current
case holds everything up to the last flush. A batch writer (``live=False``: synth, importers) writes to a temporary file
and renames it into place on close, so a half-written session never appears under its final name.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from radgaze.capture import __version__
from radgaze.capture.base.errors import StoreWriteError
from radgaze.capture.base.records import (
    CLOCK_EVENT_DTYPE,
    FIXATION_DTYPE,
    GAP_DTYPE,
    GAZE_DTYPE,
    VIEW_DTYPE,
    CaseAnnotation,
    CaseRecord,
    DisplayGeometry,
    Finding,
    ImageRef,
    Words,
)
from radgaze.capture.gazemath.heatmap import heatmap_grid
from radgaze.capture.store.annotations import append_revision
from radgaze.capture.store.edits import refuse_bad_annotation, store_correction
from radgaze.capture.store.integrity import CHECKSUM, WriterLock, as_write_error, room_problem, stamp_digest
from radgaze.capture.store.journal import JournaledFile
from radgaze.capture.store.privacy import scrub_provenance
from radgaze.capture.store.reader import read_case_group
from radgaze.capture.store.recovery import compact_session_file
from radgaze.capture.store.schema import (
    AUDIO_BLOCK_ROW,
    CASE_DATASETS,
    FORMAT_NAME,
    HEATMAP_CODEC,
    HEATMAP_DTYPE,
    HEATMAPS_FROM_RECOGNISED,
    SCHEMA_VERSION,
    SENTENCE_ROW,
    WORD_ROW,
    blosc_filter,
    case_group,
    encode_heatmap,
    text_rows,
)

# live writes of these wait for the next flush (SessionWriter._append says why)
_HELD_UNTIL_FLUSH = frozenset(name for name, spec in CASE_DATASETS.items() if spec.codec) | {"heatmaps"}


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
        self._journaled: JournaledFile | None = None  # the file object under self._file between cases (live)
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
            self._start_swmr()

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
            if self._journaled is not None:
                self._journaled.finish()
        except (OSError, RuntimeError) as exc:
            self._fail(exc)
            self._close_failed()
            raise self._failed from None
        self._file = self._journaled = None
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
        if self._journaled is not None:
            self._journaled.abandon()  # its journal stays: readers undo what the failed write began
        self._file, self._journaled, self._case, self._case_id = None, None, None, None
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
        rows, blob = text_rows(words.text, self._length("words_text"), WORD_ROW)
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
            stored, peak = encode_heatmap(heatmap)
            self._append("heatmaps", stored[None])
            self._append("heatmap_peak", np.array([peak], np.float32))
        rows, blob = text_rows([text], self._length("sentences_text"), SENTENCE_ROW)
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
        g = case_group(f, case_id, self.path)
        refuse_bad_annotation(g, case_id, annotation)
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
        write_second_look_group(case_group(f, case_id, self.path), payload, unviewed, model)
        f.flush()

    def read_case(self, case_id: str) -> CaseRecord:
        """A closed case as stored so far, read through this writer's own handle (the recorder's thread: the
        transcript it corrects, the words the annotation panel shows). Refuses the case being recorded."""
        if case_id == self._case_id:
            raise RuntimeError(f"case {case_id!r} is still being recorded; read it after end_case")
        f = self._reopen_plain()
        return read_case_group(case_group(f, case_id, self.path), int(f.attrs["schema_version"]))

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
        return store_correction(f, case_group(f, record.case_id, self.path), record)

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
        """The file, out of SWMR mode (a clean close + a reopen through the undo journal), so groups and
        attributes can be added."""
        if self._file is None:
            raise RuntimeError(f"session writer for {self.path} is closed")
        if self._failed is not None:
            raise self._failed
        if self.live and self._file.swmr_mode:
            case_name = self._case.name if self._case is not None else None  # a closed file's handles lose it
            self._with_write_errors(self._file.close)
            self._journaled = _guarded(self.path, JournaledFile, self.path)
            self._file = _guarded(self.path, h5py.File, self._journaled, "a", libver="latest")
            if case_name is not None:
                self._case = self._file[case_name]
        return self._file

    def _start_swmr(self) -> None:
        """Flush, leave the journal (a clean close) and go on in SWMR mode, through HDF5's own file driver."""
        self._with_write_errors(self._file.flush)
        if self._journaled is not None:
            case_name = self._case.name
            self._with_write_errors(self._file.close)
            self._journaled.finish()
            self._journaled = None
            self._file = _guarded(self.path, h5py.File, self.path, "a", libver="latest")
            self._case = self._file[case_name]
        self._with_write_errors(lambda: setattr(self._file, "swmr_mode", True))
        self._last_flush = time.monotonic()


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


def _as_table(rows: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.dtype != dtype:
        missing = set(dtype.names) - set(rows.dtype.names or ())
        if missing:
            raise ValueError(f"{what}: expected fields {dtype.names}, missing {sorted(missing)}")
        rows = rows.astype(dtype)
    return rows.reshape(-1)


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
