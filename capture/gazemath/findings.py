"""A case's findings across a transcript correction: each names its sentence by index (``sentence_index``),
stored against the recognised sentences; when a correction re-derives the sentences, the index follows the
sentence by time (the store applies it when reading a corrected case, ``correct_case`` when making one)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from radgaze.capture.base.records import Finding, Sentences


def sentence_moved_to(old: Sentences, new: Sentences, i: int) -> int:
    """The sentence of ``new`` that old sentence ``i`` became: the one overlapping its time span most (a
    sentence split in two goes to its larger part; merged ones go together); -1 when ``i`` is -1 or nothing
    of it is left (all its words deleted)."""
    if not 0 <= i < len(old) or len(new) == 0:
        return -1
    t0, t1 = float(old.t_start[i]), float(old.t_end[i])
    overlap = np.minimum(new.t_end, t1) - np.maximum(new.t_start, t0)
    if t1 <= t0:  # a zero-length sentence: the one that holds its instant
        overlap = np.where((new.t_start <= t0) & (t0 <= new.t_end), 1.0, -1.0)
    best = int(np.argmax(overlap))
    return best if overlap[best] > 0 else -1


def findings_on(findings: list[Finding] | None, old: Sentences, new: Sentences) -> list[Finding] | None:
    """``findings`` with their ``sentence_index`` moved from ``old`` sentences to the re-derived ``new``."""
    if findings is None:
        return None
    return [replace(f, sentence_index=sentence_moved_to(old, new, f.sentence_index)) for f in findings]
