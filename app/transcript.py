"""The replay transcript: the case's words as text, the word being said highlighted, a click seeks to a word.

:func:`word_char_spans` (pure) lays the words out as one string and returns each word's character span;
:class:`ReplayTranscript` shows it and marks the current word with an extra selection (no re-layout per frame).
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from radgaze.capture.base.records import Words

HIGHLIGHT = "#ffeb3b"  # current word background
SENTENCE_END = (".", "?", "!")


def word_char_spans(words: list[str]) -> tuple[str, np.ndarray]:
    """Words -> (text, spans (n, 2) int [start, end) character offsets). A line break follows a word ending a
    sentence, a space follows the others; a punctuation-only token ("." from dictated "period") joins the word
    before it."""
    text = ""
    spans = np.zeros((len(words), 2), dtype=np.int64)
    for i, w in enumerate(words):
        if w and all(not ch.isalnum() for ch in w) and text.endswith(" "):
            text = text[:-1]
        spans[i] = len(text), len(text) + len(w)
        text += w + ("\n" if w.endswith(SENTENCE_END) else " ")
    return text.rstrip(), spans


def word_at_char(spans: np.ndarray, char_pos: int) -> int:
    """Index of the word whose span holds ``char_pos`` (or the word just before a separator), else -1."""
    if spans.size == 0:
        return -1
    i = int(np.searchsorted(spans[:, 0], char_pos, side="right")) - 1
    return i if i >= 0 and char_pos <= spans[i, 1] else -1


class ReplayTranscript(QtWidgets.QPlainTextEdit):
    """Read-only words; :meth:`set_current` highlights one. ``word_clicked`` gives the clicked word's index."""

    word_clicked = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.spans = np.zeros((0, 2), dtype=np.int64)
        self.current = -1
        self.viewport().setCursor(QtCore.Qt.CursorShape.PointingHandCursor)

    def set_words(self, words: Words) -> None:
        text, self.spans = word_char_spans(list(words.text))
        self.setPlainText(text if len(words) else "(no words in this case)")
        self.current = -1
        self.setExtraSelections([])

    def set_current(self, index: int) -> None:
        if index == self.current:
            return
        self.current = index
        if index < 0 or index >= len(self.spans):
            self.setExtraSelections([])
            return
        sel = QtWidgets.QTextEdit.ExtraSelection()
        cursor = QtGui.QTextCursor(self.document())
        cursor.setPosition(int(self.spans[index, 0]))
        cursor.setPosition(int(self.spans[index, 1]), QtGui.QTextCursor.MoveMode.KeepAnchor)
        sel.cursor = cursor
        fmt = QtGui.QTextCharFormat()
        fmt.setBackground(QtGui.QColor(HIGHLIGHT))
        fmt.setForeground(QtGui.QColor("black"))
        sel.format = fmt
        self.setExtraSelections([sel])
        self._scroll_to(cursor)

    def _scroll_to(self, cursor: QtGui.QTextCursor) -> None:
        rect = self.cursorRect(cursor)
        if not self.viewport().rect().contains(rect):
            keep = self.textCursor()
            self.setTextCursor(cursor)
            self.ensureCursorVisible()
            self.setTextCursor(keep)

    @property
    def current_text(self) -> str:
        """The highlighted word's text ('' when none)."""
        if self.current < 0:
            return ""
        a, b = self.spans[self.current]
        return self.toPlainText()[int(a) : int(b)]

    def mouseReleaseEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt override)
        super().mouseReleaseEvent(ev)
        i = word_at_char(self.spans, self.cursorForPosition(ev.position().toPoint()).position())
        if i >= 0:
            self.word_clicked.emit(i)
