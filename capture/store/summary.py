"""Summaries and validation of a session file: what ``radgaze inspect`` (``--json``) prints."""

from __future__ import annotations

import os

import numpy as np

from radgaze.capture.annotation.check import annotation_problems
from radgaze.capture.base.errors import SessionFormatError
from radgaze.capture.base.records import CaseAnnotation, CaseRecord
from radgaze.capture.store.reader import SessionReader
from radgaze.capture.store.schema import (
    FORMAT_NAME,
    HEATMAPS_FROM_CORRECTED,
    HEATMAPS_FROM_RECOGNISED,
    HEATMAPS_FROM_RETRANSCRIBED,
)


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
