"""Transcript correction: the reader's edits of the recognised words, and the case re-derived from them.

Edits (:class:`Fix`, :class:`Insert`, :class:`Delete`, :class:`Merge`) all name indices of the word list they are
applied to (the recognised words, or the last correction), never of a partly edited one, so a batch reads as
the reader made it on screen. Unchanged and fixed words keep their times exactly; a merge spans its first
word's start to its last word's end.

Inserted words (what the reader typed that the recogniser missed, or typed over deleted words) are placed in
the speech between their nearest kept neighbours: the case's audio says where the reader spoke
(capture/gazemath/speech.py: Silero VAD), and a run of typed words is spread over the speech time between the
neighbours that no kept word occupies, each word at least :data:`MIN_TYPED_WORD_S` plus a share of the rest by
its letters. Before the first kept word and after the last, the case's start and end bound the run. Without
audio (or with no speech found there) the run shares the time between its neighbours; where that is shorter
than the minimum, the run takes the minimum about the middle of the gap. So a typed sentence that the
recogniser missed after the last word gets the time it was spoken in, and its heatmap the gaze of that time.
Words the reader typed (fixed, inserted, merged) get probability 1.0: the reader confirmed them, and 1.0 is
what :class:`~radgaze.capture.base.records.Words` holds when a probability is unknown (NaN would trip every
consumer that averages probabilities).
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass

import numpy as np

from radgaze.capture.base.records import CaseRecord, Sentences, TranscriptCorrection, Words
from radgaze.capture.gazemath.align import EYE_VOICE_LEAD_S, HeatmapContext, sentence_heatmap, sentence_spans
from radgaze.capture.gazemath.findings import findings_on
from radgaze.capture.gazemath.heatmap import SIGMA_DEG
from radgaze.capture.gazemath.speech import case_speech_t_lsl

TYPED_PROBABILITY = 1.0  # probability of a word the reader typed
# Shortest time a typed word is given: about one short syllable (syllables of conversational English last
# ~0.2 s on average, Greenberg 1999, "Speaking in shorthand", Speech Communication 29), so a typed word is
# never a zero-length instant, and five of them fit in the second of a short phrase.
MIN_TYPED_WORD_S = 0.15


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
        if isinstance(e, Insert):  # into no words at all: Insert(0), the one gap there is
            gap = (
                0
                if (n, e.index, e.after) == (0, 0, False)
                else _check_index(e.index, n, what) + bool(e.after)
            )
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


def apply_edits(
    words: Words,
    edits: list[Edit],
    *,
    speech_t_lsl: np.ndarray | None = None,
    bounds_t_lsl: tuple[float, float] | None = None,
    min_dur_s: float = MIN_TYPED_WORD_S,
) -> Words:
    """The corrected words: ``edits`` applied to ``words`` (indices of ``words``), times as the module says.

    ``speech_t_lsl`` (k, 2): where the reader spoke (:func:`~radgaze.capture.gazemath.speech.case_speech_t_lsl`);
    ``bounds_t_lsl``: the case's start and end, which bound words typed before the first or after the last."""
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
    texts = [r[2] for r in rows]
    _place_inserted(start, end, texts, speech_t_lsl, bounds_t_lsl, min_dur_s)
    return Words(start, end, texts, np.array([r[3] for r in rows], np.float32))


def _runs(missing: np.ndarray) -> list[tuple[int, int]]:
    """``(i, j)`` of each run of True in ``missing`` (j exclusive)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], missing.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in edges.reshape(-1, 2)]


def _weights(texts: list[str]) -> np.ndarray:
    """How long each word takes to say, relatively: its letters and digits (at least 1; "." counts 1)."""
    return np.array([max(1, sum(c.isalnum() for c in t)) for t in texts], np.float64)


def _free_speech(speech: np.ndarray, lo: float, hi: float, kept: np.ndarray, min_dur_s: float) -> np.ndarray:
    """The parts of ``speech`` (k, 2) inside ``[lo, hi]`` that no kept word (m, 2) occupies, sorted; parts
    shorter than ``min_dur_s`` are left out (the VAD's pad or the ragged end of a kept word's own speech)."""
    cut = np.clip(np.asarray(speech, np.float64).reshape(-1, 2), lo, hi)
    for a, b in kept[(kept[:, 1] > lo) & (kept[:, 0] < hi)]:
        left, right = np.minimum(cut, [a, a]), np.maximum(cut, [b, b])
        cut = np.concatenate([left, right])
        cut = cut[cut[:, 1] > cut[:, 0]]
    cut = cut[cut[:, 1] - cut[:, 0] >= min_dur_s]
    return cut[np.argsort(cut[:, 0])]


def _widened(a: float, b: float, need_s: float, rooms: list[tuple[float, float]]) -> tuple[float, float]:
    """``[a, b]`` made at least ``need_s`` long about its middle, kept inside the first of ``rooms`` that is
    long enough (the gap between the neighbours, then from the previous word's start to the next one's start
    plus a word, so that the typed words start in order between them); where none is, centred (a typed word is
    never of zero length)."""
    if b - a >= need_s:
        return a, b
    mid = (a + b) / 2
    lo, hi = next((r for r in rooms if r[1] - r[0] >= need_s), (mid - need_s, mid + need_s))
    mid = min(max(mid, lo + need_s / 2), hi - need_s / 2)
    return mid - need_s / 2, mid + need_s / 2


def spread_words(spans: np.ndarray, weights: np.ndarray, min_dur_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end times of words laid end to end over the time of ``spans`` (k, 2; sorted, disjoint, at
    least ``len(weights) * min_dur_s`` long together): each word ``min_dur_s`` plus a share of the rest by
    ``weights``. A word that crosses the pause between two spans starts in one and ends in the other."""
    length = spans[:, 1] - spans[:, 0]
    total, n = float(length.sum()), weights.size
    dur = min_dur_s + max(0.0, total - n * min_dur_s) * weights / weights.sum()
    at = np.concatenate([[0.0], np.cumsum(dur)])
    at *= min(1.0, total / at[-1])  # rounding: the last word ends with the speech
    seg_end = np.cumsum(length)
    seg_start = seg_end - length
    last = spans.shape[0] - 1
    k0 = np.minimum(np.searchsorted(seg_end, at[:-1], side="right"), last)  # a start opens the next span
    k1 = np.minimum(np.searchsorted(seg_end, at[1:], side="left"), last)  # an end closes its own
    start = np.clip(spans[k0, 0] + at[:-1] - seg_start[k0], spans[k0, 0], spans[k0, 1])
    end = np.clip(spans[k1, 0] + at[1:] - seg_start[k1], spans[k1, 0], spans[k1, 1])
    return start, end


def _place_inserted(
    start: np.ndarray,
    end: np.ndarray,
    texts: list[str],
    speech: np.ndarray | None,
    bounds: tuple[float, float] | None,
    min_dur_s: float,
) -> None:
    """Fill the NaN times of each run of inserted words in place (the module docstring says how)."""
    missing = ~np.isfinite(start)
    kept = np.stack([start[~missing], end[~missing]], axis=1)
    lo_case, hi_case = bounds if bounds is not None else (np.nan, np.nan)
    for i, j in _runs(missing):
        lo = end[i - 1] if i > 0 else lo_case
        hi = start[j] if j < start.size else hi_case
        need = min_dur_s * (j - i)
        if not (np.isfinite(lo) or np.isfinite(hi)):
            continue  # a transcript of inserts only, with nothing to place it in: times stay unknown
        lo, hi = (hi - need if np.isnan(lo) else lo), (lo + need if np.isnan(hi) else hi)
        free = _free_speech(speech, lo, hi, kept, min_dur_s) if speech is not None else np.zeros((0, 2))
        if free[:, 1].sum() - free[:, 0].sum() < need:
            a, b = (free[0, 0], free[-1, 1]) if free.size else (lo, hi)
            outer = (start[i - 1] if i > 0 else lo, start[j] + min_dur_s if j < start.size else hi)
            free = np.array([_widened(a, b, need, [(lo, hi), outer])])
        start[i:j], end[i:j] = spread_words(free, _weights(texts[i:j]), min_dur_s)


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


def _speech_for(record: CaseRecord, edits: list[Edit], method: str) -> np.ndarray | None:
    """Where the reader spoke in ``record`` (LSL s), when an edit inserts words and the case has audio."""
    if record.audio is None or not any(isinstance(e, Insert) for e in edits):
        return None
    return case_speech_t_lsl(record.audio, method=method)


def correct_case(
    record: CaseRecord,
    edits: list[Edit],
    *,
    lead_s: float = EYE_VOICE_LEAD_S,
    sigma_deg: float = SIGMA_DEG,
    speech_method: str = "vad",
) -> CaseRecord:
    """A copy of ``record`` with ``edits`` applied to its words (the last correction when it has one).

    ``recognised_words`` holds the recogniser's words (kept from an earlier correction), sentences are
    re-derived and only changed sentences' heatmaps recomputed: ``correction.recomputed`` lists them. Inserted
    words are placed in the case audio's speech (``speech_method`` "vad" or "energy", see the module)."""
    if not record.complete:
        raise ValueError(
            f"case {record.case_id}: expected a closed case to correct, got one still incomplete"
        )
    edits = list(edits)
    words = apply_edits(
        record.words,
        edits,
        speech_t_lsl=_speech_for(record, edits, speech_method),
        bounds_t_lsl=(float(record.t_start), float(record.t_end)),
    )
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


def _sentence_end(word: str) -> bool:
    return word.rstrip("\"')").endswith((".", "?", "!"))


def _slide_score(new: list[str], j1: int, j2: int) -> int:
    """How well the typed run ``new[j1:j2]`` sits at sentence boundaries (2: it is whole sentences)."""
    return int(_sentence_end(new[j2 - 1])) + int(j1 == 0 or _sentence_end(new[j1 - 1]))


def _slid_insert(words: list[str], new: list[str], ops: list[tuple], k: int) -> tuple[int, int, int]:
    """Insert op ``k`` moved along the equal words beside it where the diff could equally have put it, to where
    it is whole sentences ("clear. The| lungs are clear. The" typed after "clear." becomes the sentence
    "The lungs are clear." before the kept "The"), so the typed words' kept neighbours are the right ones.
    Returns its ``(i1, j1, j2)``."""
    _, i1, _, j1, j2 = ops[k]
    left = ops[k - 1][2] - ops[k - 1][1] if k > 0 and ops[k - 1][0] == "equal" else 0
    right = ops[k + 1][2] - ops[k + 1][1] if k + 1 < len(ops) and ops[k + 1][0] == "equal" else 0
    best = (_slide_score(new, j1, j2), 0, 0)
    for s in range(1, left + 1):
        if words[i1 - s] != new[j2 - s]:
            break
        best = max(best, (_slide_score(new, j1 - s, j2 - s), -s, -s))
    for s in range(1, right + 1):
        if words[i1 + s - 1] != new[j1 + s - 1]:
            break
        best = max(best, (_slide_score(new, j1 + s, j2 + s), -s, s))
    return i1 + best[2], j1 + best[2], j2 + best[2]


def edits_from_text(words: list[str], corrected_text: str) -> list[Edit]:
    """The edits that turn ``words`` into the whitespace-separated words of ``corrected_text`` (a word-level
    diff: a word replaced by one is a fix, several by one a merge, the rest deletes and inserts; a run of
    inserted words is put where it is whole sentences when the diff could put it there as well)."""
    new = corrected_text.split()
    edits: list[Edit] = []
    ops = difflib.SequenceMatcher(a=words, b=new, autojunk=False).get_opcodes()
    for n, (op, i1, i2, j1, j2) in enumerate(ops):
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            edits += [Fix(i1 + k, new[j1 + k]) for k in range(i2 - i1)]
        elif op == "replace" and j2 - j1 == 1:
            edits.append(Merge(i1, i2 - 1, new[j1]))
        else:
            if op == "insert":
                i1, j1, j2 = _slid_insert(words, new, ops, n)
                i2 = i1
            edits += [Delete(i) for i in range(i1, i2)]
            at_end = i1 >= len(words) > 0
            edits += [Insert(len(words) - 1 if at_end else i1, t, after=at_end) for t in new[j1:j2]]
    return edits
