"""Edits of a closed case: its corrected transcript (``correction_<n>`` groups, the switch written last) and
its annotation revisions, through a writer or on a closed session file (``radgaze annotate``).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from radgaze.capture.annotation.check import annotation_problems
from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.base.records import CaseAnnotation, CaseRecord, Sentences, Words
from radgaze.capture.store.annotations import append_revision
from radgaze.capture.store.integrity import CHECKSUM, WriterLock, digest_problem, stamp_digest
from radgaze.capture.store.journal import JournaledFile
from radgaze.capture.store.recovery import repair_in_place
from radgaze.capture.store.schema import (
    CORRECTION_IN_USE,
    CORRECTION_PREFIX,
    FORMAT_NAME,
    HEATMAP_CODEC,
    HEATMAP_DTYPE,
    HEATMAPS_FROM,
    HEATMAPS_FROM_CORRECTED,
    HEATMAPS_FROM_RETRANSCRIBED,
    SCHEMA_VERSION,
    SENTENCE_ROW,
    WORD_ROW,
    attr_str,
    blosc_filter,
    case_group,
    decode_texts,
    encode_heatmap,
    text_rows,
)


def store_correction(f: h5py.File, g: h5py.Group, record: CaseRecord) -> int:
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
    if attr_str(g.attrs.get(HEATMAPS_FROM, "")) != source:
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
        return store_correction(f, case_group(f, record.case_id, path), record)


@contextmanager
def _open_closed_session(path: Path, what: str):
    """A closed session file opened for appending, under the writer's lock and through the undo journal: a
    kill at any moment leaves the file as it was before (the edit and its new digest, or neither); what a
    killed writer left unfinished is repaired first. One-line errors for a foreign or busy file."""
    lock = WriterLock.acquire(path, advice=f"{what} it once its recording is closed")
    try:
        if path.is_file():
            repair_in_place(path)
        journaled = JournaledFile(path, commit_on_flush=False)
    except OSError as exc:
        lock.release()
        raise SessionFormatError(
            f"{path}: expected a closed session file to {what}, got one that cannot be opened for writing ({exc})"
        ) from None
    try:
        with _opened(path, journaled, what) as f:
            yield f
        journaled.finish()
    finally:
        if not journaled.closed:
            journaled.abandon()  # the journal stays: the file is read as of its last flush
        lock.release()


@contextmanager
def _opened(path: Path, journaled: JournaledFile, what: str):
    try:
        f = h5py.File(journaled, "a", libver="latest")
    except OSError as exc:
        raise SessionFormatError(
            f"{path}: expected a closed session file to {what}, got one HDF5 cannot open for writing ({exc})"
        ) from None
    with f:
        if attr_str(f.attrs.get("format", "")) != FORMAT_NAME:
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
        g = case_group(f, case_id, path)
        refuse_bad_annotation(g, case_id, annotation)
        if 2 <= int(f.attrs["schema_version"]) < SCHEMA_VERSION:  # schema 1's heatmaps are read as such
            f.attrs["schema_version"] = SCHEMA_VERSION  # its annotation log is now the current schema's
        return append_revision(g, annotation, step)


def refuse_bad_annotation(g: h5py.Group, case_id: str, annotation: CaseAnnotation) -> None:
    image = json.loads(attr_str(g.attrs["image_json"]))
    problems = annotation_problems(annotation, int(image["width"]), int(image["height"]))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValueError(f"case {case_id}: annotation not stored: {problems[0]}{more}")


def _check_correction_matches(g: h5py.Group, record: CaseRecord) -> None:
    """ValueError unless the record's recognised words are the case's stored ones and its maps fit the grid."""
    stored = g["words"][()]
    texts = decode_texts(stored, g["words_text"][()])
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
    rows, blob = text_rows(list(words.text), 0, WORD_ROW)
    rows["t_start"], rows["t_end"], rows["probability"] = words.t_start, words.t_end, words.probability
    group.create_dataset("words", data=rows, **CHECKSUM)
    group.create_dataset("words_text", data=blob, **CHECKSUM)
    rows, blob = text_rows(list(sentences.text), 0, SENTENCE_ROW)
    for name in ("t_start", "t_end", "window_start", "window_end", "heatmap_index", "n_fixations"):
        rows[name] = getattr(sentences, name)
    group.create_dataset("sentences", data=rows, **CHECKSUM)
    group.create_dataset("sentences_text", data=blob, **CHECKSUM)
    encoded = [encode_heatmap(np.asarray(m, np.float32)) for m in heatmaps]
    stored = np.stack([e[0] for e in encoded]) if encoded else np.zeros(heatmaps.shape, HEATMAP_DTYPE)
    chunked = {"chunks": (1, *stored.shape[1:]), **blosc_filter(HEATMAP_CODEC)} if len(stored) else {}
    group.create_dataset("heatmaps", data=stored, **chunked, **CHECKSUM)
    group.create_dataset("heatmap_peak", data=np.array([e[1] for e in encoded], np.float32), **CHECKSUM)
