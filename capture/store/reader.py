"""The session reader: any number of readers per file (:class:`SessionReader`), also of a file being written
live or left behind by a killed recorder (read through :mod:`radgaze.capture.store.recovery`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from radgaze.capture.base.errors import SessionFormatError, UnknownCaseError
from radgaze.capture.base.records import (
    CLOCK_EVENT_DTYPE,
    Audio,
    CaseRecord,
    DisplayGeometry,
    Finding,
    ImageRef,
    Sentences,
    TranscriptCorrection,
    Words,
)
from radgaze.capture.gazemath.findings import findings_on
from radgaze.capture.store.annotations import read_annotation
from radgaze.capture.store.integrity import damaged_datasets, digest_problem
from radgaze.capture.store.recovery import open_h5
from radgaze.capture.store.schema import (
    CORRECTION_IN_USE,
    FORMAT_NAME,
    HEATMAP_FULL_SCALE,
    HEATMAPS_FROM,
    SCHEMA_VERSION,
    TRANSCRIPT_GROUP_SOURCES,
    attr_str,
    case_group,
    decode_texts,
)


def list_sessions(folder: str | os.PathLike) -> list[Path]:
    """Session files (``*.h5``) under ``folder``, recursively, sorted by path."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    return sorted(p for p in folder.rglob("*.h5") if p.is_file())


class SessionReader:
    """Read a session file (also one being written live, or left behind by a killed recorder)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file, self._recovered_copy = open_h5(self.path)
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
        fmt = attr_str(attrs.get("format"))
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
        self.software_version = attr_str(attrs.get("software_version", ""))
        self.reader_id = attr_str(attrs.get("reader_id", ""))
        self.created_utc = attr_str(attrs.get("created_utc", ""))
        try:
            self.provenance = json.loads(attr_str(attrs.get("provenance_json", "{}")))
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
        """Case ``case_id`` as stored (UnknownCaseError naming the file's cases when it has none of that name)."""
        with _damage_as_format_error(self.path, "its list of cases"):
            g = case_group(self._file, case_id, self.path)
        with _damage_as_format_error(self.path, f"case {case_id!r}"):
            return read_case_group(g, self.schema_version)

    def dataset_sizes(self, case_id: str) -> dict[str, dict]:
        """Per dataset of a case: bytes on disk, bytes of data, dtype and filter (what ``inspect`` shows)."""
        with _damage_as_format_error(self.path, f"case {case_id!r}"):
            g = case_group(self._file, case_id, self.path)
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
    except (SessionFormatError, UnknownCaseError):
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, UnicodeDecodeError) as exc:
        raise SessionFormatError(
            f"{path}: {what} is damaged and cannot be read ({type(exc).__name__}: {exc})"
        ) from exc


def open_session(path: str | os.PathLike) -> SessionReader:
    return SessionReader(path)


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
        decode_texts(word_rows, words_blob),
        word_rows["probability"],
    )
    sentences = Sentences(
        sent_rows["t_start"].copy(),
        sent_rows["t_end"].copy(),
        sent_rows["window_start"].copy(),
        sent_rows["window_end"].copy(),
        decode_texts(sent_rows, sent_blob),
        sent_rows["heatmap_index"].astype(np.int32),
        sent_rows["n_fixations"].astype(np.int32),
    )
    return words, sentences, heatmaps


def _read_correction(g: h5py.Group, problems: list[str]) -> tuple[h5py.Group, TranscriptCorrection] | None:
    """The correction group the case's attributes switched to, with its edits (None: recognised words in use);
    a group that cannot be read is noted in ``problems`` and the recognised transcript used."""
    if attr_str(g.attrs.get(HEATMAPS_FROM, "")) not in TRANSCRIPT_GROUP_SOURCES:
        return None
    name = attr_str(g.attrs.get(CORRECTION_IN_USE, ""))
    try:
        group = g[name]
        a = group.attrs
        correction = TranscriptCorrection(
            edits=json.loads(attr_str(a["edits_json"])),
            recomputed=[int(k) for k in json.loads(attr_str(a["recomputed_json"]))],
            lead_s=float(a["lead_s"]),
            saved_utc=attr_str(a.get("saved_utc", "")),
            asr=json.loads(attr_str(a["asr_json"])) if "asr_json" in a else None,
        )
    except (KeyError, ValueError, TypeError, OSError) as exc:
        problems.append(
            f"transcript correction {name!r}: expected a readable correction group, got {type(exc).__name__}: "
            f"{exc}; the recognised transcript is used"
        )
        return None
    return group, correction


def read_case_group(g: h5py.Group, schema_version: int = SCHEMA_VERSION) -> CaseRecord:
    a = g.attrs
    image = ImageRef(**json.loads(attr_str(a["image_json"])))
    display = DisplayGeometry(**json.loads(attr_str(a["display_json"])))
    words, sentences, heatmaps = _read_transcript(g, schema_version)
    annotation, read_problems = read_annotation(g, attr_str(a["case_id"]))
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
        case_id=attr_str(a["case_id"]),
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
        labels=json.loads(attr_str(a.get("labels_json", "[]"))),
        complete=complete,
        attrs=json.loads(attr_str(a.get("attrs_json", "{}"))),
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
    meta = json.loads(attr_str(g.attrs["findings_json"]))
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
