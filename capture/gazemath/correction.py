"""Transcript correction: the reader's edits of the recognised words, and the case re-derived from them.

Edits (:class:`Fix`, :class:`Insert`, :class:`Delete`, :class:`Merge`) all name indices of the word list they are
applied to (the recognised words, or the last correction), never of a partly edited one, so a batch reads as
the reader made it on screen. Unchanged and fixed words keep their times exactly; a merge spans its first
word's start to its last word's end; inserted words share the gap between their nearest kept neighbours evenly
(a gap of zero or less: zero-length words at the next word's start; at the ends the neighbour's boundary).
Words the reader typed (fixed, inserted, merged) get probability 1.0: the reader confirmed them, and 1.0 is
what :class:`~radgaze.capture.records.Words` holds when a probability is unknown (NaN would trip every
consumer that averages probabilities).
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass

import numpy as np

from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S, HeatmapContext, sentence_heatmap, sentence_spans
from radgaze.capture.gazemath.heatmap import SIGMA_DEG
from radgaze.capture.records import CaseRecord, Sentences, TranscriptCorrection, Words
from radgaze.capture.store.findings import findings_on

TYPED_PROBABILITY = 1.0  # probability of a word the reader typed


@dataclass(frozen=True)
class Fix:
    """Replace the text of word ``index``; its times are kept."""

    index: int
    text: str


@dataclass(frozen=True)
class Insert:
    """A new word before (or, with ``after``, after) word ``index``; its times are interpolated."""

    index: int
    text: str
    after: bool = False


@dataclass(frozen=True)
class Delete:
    """Drop word ``index``."""

    index: int


@dataclass(frozen=True)
class Merge:
    """Words ``first..last`` (inclusive) become one word ``text`` spanning their times."""

    first: int
    last: int
    text: str


Edit = Fix | Insert | Delete | Merge
_KINDS = {"fix": Fix, "insert": Insert, "delete": Delete, "merge": Merge}


def edit_to_json(edit: Edit) -> dict:
    """An edit as a JSON-ready dict (``{"kind": "fix", "index": 3, "text": "effusion"}``), as the store keeps it."""
    kind = next(k for k, cls in _KINDS.items() if isinstance(edit, cls))
    return {"kind": kind, **edit.__dict__}


def edit_from_json(doc: dict) -> Edit:
    """The inverse of :func:`edit_to_json`; ValueError naming the expected kinds when it is not an edit."""
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind not in _KINDS:
        raise ValueError(f"edit: expected a kind in {sorted(_KINDS)}, got {kind!r}")
    fields = {k: v for k, v in doc.items() if k != "kind"}
    try:
        return _KINDS[kind](**fields)
    except TypeError as exc:
        raise ValueError(
            f"edit {kind}: expected fields of {_KINDS[kind].__name__}, got {sorted(fields)}"
        ) from exc


def _check_index(i: object, n: int, what: str) -> int:
    if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < n:
        raise ValueError(f"{what}: expected a word index in 0..{n - 1}, got {i!r}")
    return int(i)


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what}: expected a non-empty word, got {text!r}")
    return text


def _plan(n: int, edits: list[Edit]) -> tuple[dict[int, object], list[list[str]]]:
    """Per original word: what becomes of it (``str`` new text, ``None`` dropped, ``("merge", last, text)``), and
    per gap g (before word g; gap n after the last word) the words inserted there, in the order given."""
    fate: dict[int, object] = {}
    gaps: list[list[str]] = [[] for _ in range(n + 1)]
    inside_merge: set[int] = set()
    for k, e in enumerate(edits):
        what = f"edit {k} ({type(e).__name__.lower()})"
        if isinstance(e, Insert):
            gap = _check_index(e.index, n, what) + bool(e.after)
            gaps[gap].append(_check_text(e.text, what))
            continue
        if isinstance(e, Merge):
            first, last = _check_index(e.first, n, what), _check_index(e.last, n, what)
            if last <= first:
                raise ValueError(f"{what}: expected last > first, got first={first}, last={last}")
            touched, action = range(first, last + 1), ("merge", last, _check_text(e.text, what))
            inside_merge.update(range(first + 1, last + 1))
        elif isinstance(e, Fix):
            touched, action = [_check_index(e.index, n, what)], _check_text(e.text, what)
        elif isinstance(e, Delete):
            touched, action = [_check_index(e.index, n, what)], None
        else:
            raise ValueError(f"{what}: expected a Fix, Insert, Delete or Merge, got {type(e).__name__}")
        clash = [i for i in touched if i in fate]
        if clash:
            raise ValueError(f"{what}: expected each word edited once, got word {clash[0]} edited again")
        fate.update({i: "_merged" for i in touched})
        fate[touched[0]] = action
    inner = sorted(g for g in inside_merge if gaps[g])
    if inner:
        raise ValueError(f"insert: expected a gap outside merged words, got the gap before word {inner[0]}")
    return fate, gaps


def apply_edits(words: Words, edits: list[Edit]) -> Words:
    """The corrected words: ``edits`` applied to ``words`` (indices of ``words``), times as the module says."""
    n = len(words)
    fate, gaps = _plan(n, list(edits))
    t0, t1 = np.asarray(words.t_start, np.float64), np.asarray(words.t_end, np.float64)
    prob = np.asarray(words.probability, np.float32)
    rows: list[tuple[float, float, str, float]] = []  # NaN times: inserted, filled below
    for i in range(n + 1):
        rows += [(np.nan, np.nan, text, TYPED_PROBABILITY) for text in gaps[i]]
        if i == n:
            break
        action = fate.get(i, words.text[i])
        if (
            action is None or action == "_merged"
        ):  # deleted, or inside a merge (the merge's first word holds it)
            continue
        if isinstance(action, tuple):
            rows.append((t0[i], t1[action[1]], action[2], TYPED_PROBABILITY))
        else:
            typed = i in fate
            rows.append((t0[i], t1[i], action, TYPED_PROBABILITY if typed else float(prob[i])))
    start = np.array([r[0] for r in rows], np.float64)
    end = np.array([r[1] for r in rows], np.float64)
    _interpolate_inserted(start, end)
    return Words(start, end, [r[2] for r in rows], np.array([r[3] for r in rows], np.float32))


def _interpolate_inserted(start: np.ndarray, end: np.ndarray) -> None:
    """Fill the NaN times of each run of inserted words in place: the run shares the gap from the previous
    kept word's end to the next one's start evenly (none before: the next one's start; none after: the
    previous one's end; a gap <= 0: zero-length words at the next word's start)."""
    known = np.flatnonzero(np.isfinite(start))
    if known.size == 0:
        start[:], end[:] = np.nan, np.nan  # nothing to interpolate from (a transcript of inserts only)
        return
    missing = ~np.isfinite(start)
    i = 0
    while i < start.size:  # bounded: i advances past each run
        if not missing[i]:
            i += 1
            continue
        j = i
        while j < start.size and missing[j]:
            j += 1
        a = end[i - 1] if i > 0 else start[j]
        b = start[j] if j < start.size else end[i - 1]
        if b <= a:
            a = b = min(a, b) if j < start.size else a
        edges = np.linspace(a, b, j - i + 1)
        start[i:j], end[i:j] = edges[:-1], edges[1:]
        i = j


def _same_sentence_rows(old: Sentences) -> dict[tuple, int]:
    """Old sentence index by (text, t_start, t_end, window_start, window_end): what makes a heatmap reusable."""
    return {
        (old.text[i], float(old.t_start[i]), float(old.t_end[i]), float(old.window_start[i]),
         float(old.window_end[i])): i
        for i in range(len(old))
    }  # fmt: skip


def rederive_sentences(
    case: CaseRecord, words: Words, *, lead_s: float = EYE_VOICE_LEAD_S, sigma_deg: float = SIGMA_DEG
) -> tuple[Sentences, np.ndarray, list[int]]:
    """Sentences and heatmap stack of ``words`` over the case's fixations, reusing the case's heatmap of every
    sentence whose text and gaze window are unchanged; returns them and the indices of the recomputed ones."""
    ctx = HeatmapContext(case.image.width, case.image.height, case.display, case.view_events, sigma_deg)
    reusable = _same_sentence_rows(case.sentences)
    rows, maps, recomputed = [], [], []
    for k, (_, _, text, t0, t1) in enumerate(sentence_spans(words)):
        old = reusable.get((text, t0, t1, t0 - lead_s, t1))
        if old is not None:
            hm, n_fix = case.sentence_heatmap(old), int(case.sentences.n_fixations[old])
        else:
            hm, n_fix = sentence_heatmap(case.fixations, t0 - lead_s, t1, ctx)
            recomputed.append(k)
        rows.append((t0, t1, t0 - lead_s, t1, text, len(maps) if hm is not None else -1, n_fix))
        if hm is not None:
            maps.append(np.asarray(hm, np.float32))
    h, w, _ = ctx.grid
    stack = np.stack(maps) if maps else np.zeros((0, h, w), np.float32)
    if not rows:
        return Sentences.empty(), stack, recomputed
    cols = list(zip(*rows))
    f8 = [np.array(c, np.float64) for c in cols[:4]]
    sentences = Sentences(*f8, list(cols[4]), np.array(cols[5], np.int32), np.array(cols[6], np.int32))
    return sentences, stack, recomputed


def correct_case(
    record: CaseRecord, edits: list[Edit], *, lead_s: float = EYE_VOICE_LEAD_S, sigma_deg: float = SIGMA_DEG
) -> CaseRecord:
    """A copy of ``record`` with ``edits`` applied to its words (the last correction when it has one).

    ``recognised_words`` holds the recogniser's words (kept from an earlier correction), sentences are
    re-derived and only changed sentences' heatmaps recomputed: ``correction.recomputed`` lists them."""
    if not record.complete:
        raise ValueError(
            f"case {record.case_id}: expected a closed case to correct, got one still incomplete"
        )
    edits = list(edits)
    words = apply_edits(record.words, edits)
    sentences, heatmaps, recomputed = rederive_sentences(record, words, lead_s=lead_s, sigma_deg=sigma_deg)
    out = copy.copy(record)
    out.attrs = dict(record.attrs)
    out.recognised_words = record.recognised_words if record.recognised_words is not None else record.words
    out.words, out.sentences, out.heatmaps = words, sentences, heatmaps
    out.findings = findings_on(record.findings, record.sentences, sentences)
    before = record.correction.edits if record.correction is not None else []
    out.correction = TranscriptCorrection(
        edits=[*before, [edit_to_json(e) for e in edits]],
        recomputed=recomputed,
        lead_s=float(lead_s),
    )
    return out


def edits_from_text(words: list[str], corrected_text: str) -> list[Edit]:
    """The edits that turn ``words`` into the whitespace-separated words of ``corrected_text`` (a word-level
    diff: a word replaced by one is a fix, several by one a merge, the rest deletes and inserts)."""
    new = corrected_text.split()
    edits: list[Edit] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=words, b=new, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            edits += [Fix(i1 + k, new[j1 + k]) for k in range(i2 - i1)]
        elif op == "replace" and j2 - j1 == 1:
            edits.append(Merge(i1, i2 - 1, new[j1]))
        else:
            edits += [Delete(i) for i in range(i1, i2)]
            at_end = i1 >= len(words)
            edits += [Insert(len(words) - 1 if at_end else i1, t, after=at_end) for t in new[j1:j2]]
    return edits
