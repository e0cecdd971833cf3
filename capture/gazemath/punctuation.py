"""Dictated punctuation and sentence splitting on word lists (pure functions).

Radiologists dictate punctuation ("no effusion period", "new paragraph"), as in REFLACX, whose transcripts
keep "." and "," as their own rows with their own times. Both sources end up in the same form: a word list in
which a punctuation mark is a row of its own (or, from Whisper's own punctuation, attached to a word:
"effusion."). :func:`convert_dictated_punctuation` turns spoken commands into such rows;
:func:`split_sentences` cuts the list into sentences at ".", "?", "!" and paragraph / line breaks.

Ambiguity: "period" is also a word ("the postoperative period"). After one of :data:`LITERAL_PERIOD_AFTER` it
is kept as a word; "postoperative period period" gives "postoperative period.".
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence

import numpy as np

from radgaze.capture.base.records import Words

PARAGRAPH = "\n\n"
LINE_BREAK = "\n"

# Spoken commands -> mark. The common set of dictation systems (REFLACX transcripts use "." "," rows; Dragon
# Medical's basic punctuation commands use these spoken forms).
DICTATED_PUNCTUATION: dict[tuple[str, ...], str] = {
    ("period",): ".",
    ("full", "stop"): ".",
    ("comma",): ",",
    ("colon",): ":",
    ("semicolon",): ";",
    ("question", "mark"): "?",
    ("exclamation", "mark"): "!",
    ("new", "paragraph"): PARAGRAPH,
    ("next", "paragraph"): PARAGRAPH,
    ("new", "line"): LINE_BREAK,
    ("next", "line"): LINE_BREAK,
}
# Words after which "period" is a noun, not a full stop.
LITERAL_PERIOD_AFTER = frozenset(
    {
        "postoperative",
        "perioperative",
        "postpartum",
        "the",
        "this",
        "that",
        "a",
        "time",
        "same",
        "short",
        "long",
    }
)
SENTENCE_END_MARKS = frozenset({".", "?", "!", PARAGRAPH, LINE_BREAK})
# Tokens ending in "." that do not end a sentence.
ABBREVIATIONS = frozenset(
    {"dr.", "e.g.", "i.e.", "vs.", "approx.", "cf.", "no.", "mr.", "mrs.", "st.", "fig."}
)
_NO_SPACE_BEFORE = frozenset(".,:;?!)")
_PUNCT = string.punctuation + "\u2026\u201c\u201d\u2018\u2019"


def normalize_token(text: str) -> str:
    """Casefold and strip whitespace and surrounding punctuation: " Period." -> "period"."""
    return text.strip().strip(_PUNCT).casefold()


def is_punctuation(text: str) -> bool:
    """True for a row that is only punctuation or a line / paragraph break (".", ",", "\\n\\n")."""
    s = text.strip(" \t")
    return bool(s) and all(c in _PUNCT or c in "\n" for c in s)


def _match_command(
    norm: Sequence[str], i: int, commands: Mapping[tuple[str, ...], str]
) -> tuple[int, str | None]:
    """(n_words, mark) of the longest command spoken at ``norm[i:]``, or (1, None)."""
    best_n, best_mark = 1, None
    for words, mark in commands.items():
        if len(words) >= best_n and tuple(norm[i : i + len(words)]) == words:
            best_n, best_mark = len(words), mark
    return best_n, best_mark


def _could_grow(norm: Sequence[str], i: int, commands: Mapping[tuple[str, ...], str]) -> bool:
    """True when ``norm[i:]`` is a proper prefix of some command (more words may complete it)."""
    tail = tuple(norm[i:])
    return any(len(words) > len(tail) and words[: len(tail)] == tail for words in commands)


def convert_dictated_punctuation(
    tokens: Sequence[str],
    *,
    final: bool = True,
    commands: Mapping[tuple[str, ...], str] = DICTATED_PUNCTUATION,
    literal_period_after: frozenset[str] = LITERAL_PERIOD_AFTER,
) -> tuple[list[tuple[int, int, str]], int]:
    """Turn spoken punctuation commands into punctuation rows.

    tokens: words as recognised (Whisper words carry a leading space and maybe attached punctuation).
    Returns ``(rows, n_consumed)``: rows ``(i0, i1, text)`` cover ``tokens[i0:i1]`` (i1 exclusive; a command
    may span two words) with ``text`` the stripped word or the mark. With ``final=False`` a tail that could
    still grow into a command ("new" before "paragraph" has been heard) is left unconsumed:
    ``n_consumed < len(tokens)`` and the caller passes those tokens again with the next ones. Punctuation
    the recogniser attached to the word before a dictated mark is dropped ("effusion," "period" -> "effusion"
    ".").
    """
    norm = [normalize_token(t) for t in tokens]
    rows: list[tuple[int, int, str]] = []
    i = 0
    while i < len(tokens):
        if not final and _could_grow(norm, i, commands):
            break
        n, mark = _match_command(norm, i, commands)
        if mark is not None and norm[i] == "period" and i > 0 and norm[i - 1] in literal_period_after:
            n, mark = 1, None
        if mark is not None:
            if rows and not is_punctuation(rows[-1][2]):  # "effusion," + "period": the dictated mark wins
                a, b, prev = rows[-1]
                rows[-1] = (a, b, prev.rstrip(".,;:!?") or prev)
            rows.append((i, i + n, mark))
            i += n
            continue
        text = tokens[i].strip()
        if text:
            rows.append((i, i + 1, text))
        i += 1
    return rows, i


def apply_dictated_punctuation(words: Words, *, final: bool = True) -> tuple[Words, int]:
    """:func:`convert_dictated_punctuation` on a :class:`Words` record.

    A mark row spans the times of the words that dictated it; its probability is their minimum. Returns the
    new words and how many input words were consumed (see ``final``).
    """
    rows, n_used = convert_dictated_punctuation(words.text, final=final)
    i0 = np.array([r[0] for r in rows], dtype=np.int64)
    i1 = np.array([r[1] for r in rows], dtype=np.int64)
    prob = np.asarray(words.probability, np.float32)
    out = Words(
        t_start=np.asarray(words.t_start, np.float64)[i0],
        t_end=np.asarray(words.t_end, np.float64)[i1 - 1],
        text=[r[2] for r in rows],
        probability=np.array([prob[a:b].min() for a, b in zip(i0, i1)], dtype=np.float32),
    )
    return out, n_used


def ends_sentence(token: str, *, marks: frozenset[str] = SENTENCE_END_MARKS) -> bool:
    """True when ``token`` closes a sentence: a mark row, or a word ending in ".", "?", "!" (not an
    abbreviation such as "e.g." and not a lone decimal like "2.")."""
    if token in marks or token.strip(" ") in marks:
        return True
    s = token.strip()
    if not s or s[-1] not in ".?!" or s.casefold() in ABBREVIATIONS:
        return False
    return not (s[-1] == "." and s[:-1].replace(".", "").isdigit())


def join_tokens(tokens: Sequence[str], *, keep_breaks: bool = False) -> str:
    """Words to text: one space between words, none before ``.,:;?!``; line / paragraph breaks dropped, or
    kept as newlines with ``keep_breaks`` (for display)."""
    parts: list[str] = []
    for t in tokens:
        s = t.strip(" \t")
        if keep_breaks and s and not s.strip():  # "\n" or "\n\n"
            parts.append(s)
            continue
        s = s.strip()
        if not s:
            continue
        if parts and not parts[-1].endswith("\n") and not (s[0] in _NO_SPACE_BEFORE and is_punctuation(s)):
            parts.append(" ")
        parts.append(s)
    return "".join(parts)


def split_sentences(
    tokens: Sequence[str], *, final: bool = True, marks: frozenset[str] = SENTENCE_END_MARKS
) -> list[tuple[int, int, str]]:
    """Cut a word list (punctuation already converted) into sentences.

    Returns ``(i0, i1, text)`` per sentence, ``tokens[i0:i1]`` (i1 exclusive) including its closing mark row.
    Sentences with no word (only marks) are dropped. An unterminated tail is a sentence only when ``final``.
    Use :func:`content_span` to get a sentence's spoken-word time span without the mark rows.
    """
    out: list[tuple[int, int, str]] = []
    start = 0
    for i, t in enumerate(tokens):
        if ends_sentence(t, marks=marks):
            _append_sentence(out, tokens, start, i + 1)
            start = i + 1
    if final and start < len(tokens):
        _append_sentence(out, tokens, start, len(tokens))
    return out


def _append_sentence(out: list, tokens: Sequence[str], i0: int, i1: int) -> None:
    if any(not is_punctuation(t) for t in tokens[i0:i1] if t.strip()):
        # leading marks (a "," right after a full stop) belong to no sentence's words; keep the range whole
        out.append((i0, i1, join_tokens(tokens[i0:i1])))


def content_span(words: Words, i0: int, i1: int) -> tuple[float, float]:
    """(t_start, t_end) of the spoken words of ``words[i0:i1]``, ignoring punctuation rows; NaNs if none."""
    idx = [i for i in range(i0, i1) if not is_punctuation(words.text[i])]
    if not idx:
        return float("nan"), float("nan")
    return float(np.asarray(words.t_start)[idx[0]]), float(np.asarray(words.t_end)[idx[-1]])
