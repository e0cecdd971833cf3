"""Dictated reports for phantom cases: sentences in radiology phrasing, word timings, dictation tokens.

Each sentence names one finding with its location ("There is a consolidation in the right lower zone.") or
makes a normal statement about one piece of anatomy ("The heart size is normal."); its ``target`` says where a
reader looks while forming it, which drives the simulated gaze (radgaze.capture.synth.reading).

Timing: dictation runs at about 2-3 words/s (read-aloud and dictation rates of ~130-180 words/min, e.g.
Yuan et al. 2006, "Towards an integrated understanding of speaking rate in conversation"), with pauses of
about 0.5-2 s between sentences. Word durations grow with word length (syllables), as in any speech.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from radgaze.capture.base.records import Words
from radgaze.capture.synth.phantom import FindingSpec

# targets of normal statements (anatomy regions, see radgaze.capture.synth.phantom.region_mask)
TARGETS = ("finding", "heart", "costophrenic_angles", "apices", "lungs", "mediastinum", "bones")

_FINDING_TEMPLATES: dict[str, tuple[str, ...]] = {
    "consolidation": (
        "There is a consolidation in the {side} {zone} zone.",
        "Patchy airspace opacity in the {side} {zone} zone.",
        "{Side} {zone} zone consolidation, likely pneumonia.",
        "Focal consolidation is seen in the {side} {zone} zone.",
        "There is an area of airspace opacification in the {side} {zone} zone.",
    ),
    "pleural_effusion": (
        "There is a {amount} {side} pleural effusion.",
        "{Amount} {side} pleural effusion with blunting of the costophrenic angle.",
        "Blunting of the {side} costophrenic angle, in keeping with a {amount} effusion.",
        "A {amount} {side} pleural effusion is present.",
    ),
    "cardiomegaly": (
        "The heart is enlarged.",
        "Cardiomegaly.",
        "The cardiac silhouette is enlarged.",
        "There is cardiomegaly.",
    ),
    "pneumothorax": (
        "There is a {side} apical pneumothorax.",
        "Small {side} pneumothorax.",
        "A {side} pneumothorax is present with a visible pleural edge.",
        "There is a {side} sided pneumothorax at the apex.",
    ),
    "nodule": (
        "There is a {mm} millimeter nodule in the {side} {zone} zone.",
        "A well defined nodule is noted in the {side} {zone} zone.",
        "{Side} {zone} zone pulmonary nodule.",
        "There is a rounded nodular opacity in the {side} {zone} zone.",
    ),
}

_NORMAL_TEMPLATES: dict[str, tuple[str, ...]] = {
    "heart": (
        "The heart size is normal.",
        "Heart size is within normal limits.",
        "Normal cardiac silhouette.",
    ),
    "costophrenic_angles": (
        "No pleural effusion.",
        "There is no pleural effusion.",
        "The costophrenic angles are clear.",
    ),
    "apices": ("No pneumothorax.", "There is no pneumothorax.", "No pneumothorax is seen."),
    "lungs": ("The lungs are clear.", "No focal consolidation.", "The lungs are well expanded and clear."),
    "mediastinum": (
        "The mediastinal contours are normal.",
        "Normal mediastinal contours.",
        "The mediastinum is not widened.",
    ),
    "bones": (
        "No acute osseous abnormality.",
        "The visualized bones are unremarkable.",
        "The bones are intact.",
    ),
}

WORDS_PER_S = (2.0, 3.0)  # dictation pace range (module docstring)
SENTENCE_PAUSE_S = (0.5, 1.6)  # pause between sentences
LONG_PAUSE_S = (1.8, 3.5)  # occasional longer pause (looking for the next thing to say)
LONG_PAUSE_P = 0.25


@dataclass(frozen=True)
class ReportSentence:
    """One dictated sentence; ``finding_index`` is its finding's index in the case (-1 for normal
    statements), ``target`` the region looked at while it is formed."""

    text: str
    finding_index: int
    target: str


@dataclass(frozen=True)
class TimedSentence:
    sentence: ReportSentence
    t_start: float  # first word's start (LSL s)
    t_end: float  # last word's end
    word_slice: tuple[int, int]  # rows of the Words list (dictation tokens)


def _size_words(spec: FindingSpec) -> dict[str, str]:
    amount = "small" if spec.size < 0.075 else ("moderate" if spec.size < 0.095 else "large")
    side = spec.side
    return {
        "side": side,
        "Side": side.capitalize(),
        "zone": spec.zone,
        "amount": amount,
        "Amount": amount.capitalize(),
        "mm": str(int(round(spec.size * 350 * 2 / 5) * 5)),  # diameter on a ~35 cm film, to 5 mm
    }


def compose_report(rng: np.random.Generator, specs: list[FindingSpec]) -> list[ReportSentence]:
    """Sentences for a case: one per finding (radiology order: lungs, pleura, heart) then normal statements
    for the anatomy with no finding, in a typical order (heart, mediastinum, lungs, pleura, bones)."""
    order = {"consolidation": 0, "nodule": 1, "pneumothorax": 2, "pleural_effusion": 3, "cardiomegaly": 4}
    idx = sorted(range(len(specs)), key=lambda i: order[specs[i].label])
    if rng.random() < 0.3:  # some readers lead with the heart
        idx = sorted(idx, key=lambda i: specs[i].label != "cardiomegaly")
    out = []
    for i in idx:
        t = _FINDING_TEMPLATES[specs[i].label]
        out.append(ReportSentence(t[rng.integers(len(t))].format(**_size_words(specs[i])), i, "finding"))
    labels = {s.label for s in specs}
    normals = []
    if "cardiomegaly" not in labels:
        normals.append("heart")
    if rng.random() < 0.5:
        normals.append("mediastinum")
    if not labels & {"consolidation", "nodule"}:
        normals.append("lungs")
    if "pleural_effusion" not in labels:
        normals.append("costophrenic_angles")
    if "pneumothorax" not in labels:
        normals.append("apices")
    if rng.random() < 0.4:
        normals.append("bones")
    for target in normals:
        t = _NORMAL_TEMPLATES[target]
        out.append(ReportSentence(t[rng.integers(len(t))], -1, target))
    return out


def _syllables(word: str) -> int:
    """Rough syllable count (vowel groups), at least 1."""
    return max(1, len(re.findall(r"[aeiouy]+", word.lower())))


def dictation_tokens(text: str, *, spoken_punctuation: bool) -> list[str]:
    """Tokens as a dictation system yields them: punctuation attached to words as Whisper does
    ("zone."), or spoken ("zone", "period") as radiologists dictate."""
    tokens = text.split()
    if not spoken_punctuation:
        return tokens
    spoken = {".": "period", ",": "comma"}
    out = []
    for tok in tokens:
        if tok[-1] in spoken:
            out += [tok[:-1], spoken[tok[-1]]]
        else:
            out.append(tok)
    return out


def time_report(
    rng: np.random.Generator,
    sentences: list[ReportSentence],
    t_first: float,
    *,
    spoken_punctuation: bool = False,
) -> tuple[Words, list[TimedSentence]]:
    """Word timings for the report: the first word starts at ``t_first`` (LSL s).

    The pace (words/s) is drawn per case in :data:`WORDS_PER_S`; each word lasts in proportion to its
    syllables, with short gaps between words and pauses between sentences. Returns the words (dictation
    tokens) and each sentence's time span and word rows."""
    rate = rng.uniform(*WORDS_PER_S)
    t = t_first
    starts, ends, texts, probs, timed = [], [], [], [], []
    for k, s in enumerate(sentences):
        if k:
            lo, hi = LONG_PAUSE_S if rng.random() < LONG_PAUSE_P else SENTENCE_PAUSE_S
            t += rng.uniform(lo, hi)
        toks = dictation_tokens(s.text, spoken_punctuation=spoken_punctuation)
        syl = np.array([_syllables(w) for w in toks], dtype=float)
        # a word's slot (duration + gap) ~ 0.6 + 0.4 * syllables / mean syllables, scaled to the pace
        slot = (0.6 + 0.4 * syl / syl.mean()) / rate * rng.uniform(0.85, 1.15, len(toks))
        gap = slot * rng.uniform(0.05, 0.2, len(toks))
        i0 = len(texts)
        t_sentence = t
        for tok, sl, g in zip(toks, slot, gap):
            starts.append(t)
            ends.append(t + sl - g)
            texts.append(tok)
            probs.append(rng.uniform(0.8, 1.0))
            t += sl
        t = ends[-1]
        timed.append(TimedSentence(s, t_sentence, t, (i0, len(texts))))
    words = Words(np.array(starts), np.array(ends), texts, np.array(probs, dtype=np.float32))
    return words, timed


def class_prompt_reports(label: str, n: int, seed: int = 0) -> list[list[str]]:
    """``n`` zero-shot prompts for one class of the single-finding studies: whole reports (lists of sentences)
    as :func:`compose_report` writes them for a study with just that finding (``label`` "normal": none), each
    on a fresh random anatomy and place. No image is drawn and no case is shared with any session: the class
    is described in the reports' own phrasing, as CLIP's "a photo of a {}" matches its captions (a bare
    "pneumothorax." is nearest the "No pneumothorax." of every other class's report)."""
    from radgaze.capture.synth.phantom import FINDING_LABELS, SIDES, ZONES, place_findings, random_anatomy

    if label != "normal" and label not in FINDING_LABELS:
        raise ValueError(f"label must be 'normal' or one of {FINDING_LABELS}, got {label!r}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        anat = random_anatomy(rng)
        choice = []
        if label != "normal":
            side = "" if label == "cardiomegaly" else str(rng.choice(SIDES))
            zone = {"pleural_effusion": "lower", "pneumothorax": "upper", "cardiomegaly": ""}.get(
                label, str(rng.choice(ZONES))
            )
            choice = [(label, side, zone)]
        _, specs = place_findings(rng, anat, choice)
        out.append([s.text for s in compose_report(rng, specs)])
    return out
