"""What replay and review said wrongly (issue 23, item 9): an 8-bit PNG's pixel type ("uint8", not the uint16 it
is loaded as) in the corner of replay, review and annotate; the timeline's word labels never overlap, however
dense the words (a word without room keeps its bar and gets its label when zoomed in)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from replay_review_sessions import make_case, phantom, stamp_image_hash
from test_review_mode import run_dir  # noqa: F401 (fixture)

from radgaze.app.timeline import label_rows
from radgaze.capture.base.records import Words
from radgaze.capture.store.writer import SessionWriter


def _session_8bit(folder: Path, dense_words: bool = False) -> Path:
    """One case on an 8-bit PNG (as most exported radiographs are); ``dense_words``: 60 words 0.08 s apart."""
    folder.mkdir(parents=True, exist_ok=True)
    rec = make_case("c8", 1000.0)
    Image.fromarray((phantom() // 256).astype(np.uint8)).save(folder / rec.image.path)
    stamp_image_hash(rec, folder)
    rec.view_events["window_center"], rec.view_events["window_width"] = 128.0, 256.0  # read as 8-bit
    if dense_words:
        t = rec.t_start + 0.5 + 0.08 * np.arange(60)
        text = [f"word{i}" for i in range(60)]
        rec = replace(rec, words=Words(t, t + 0.07, text, np.ones(60)))
    path = folder / "eight.h5"
    with SessionWriter(path, reader_id="r", provenance={"source": "test"}) as w:
        w.write_case(rec)
    return path


def test_label_rows_put_each_label_where_it_fits_or_nowhere():
    starts = np.array([0.0, 10.0, 20.0, 100.0])
    widths = np.array([30.0, 30.0, 30.0, 30.0])
    assert label_rows(starts, widths, n_rows=2) == [0, 1, -1, 0]  # the third overlaps both rows: no label


def test_replay_says_uint8_and_word_labels_never_overlap(qtbot, tmp_path, artifacts_dir):
    from radgaze.app.replay import ReplayWindow

    win = ReplayWindow(_session_8bit(tmp_path / "s", dense_words=True), audio=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    qtbot.wait(50)
    assert win.image_view.corner_text().splitlines()[0] == "400 × 480  uint8"
    tl = win.timeline

    def shown_rects():  # the text itself: the item's rectangle less its document margin
        m = tl._word_items[0].textItem.document().documentMargin()
        return [it.sceneBoundingRect().adjusted(m, m, -m, -m) for it in tl._word_items if it.isVisible()]

    rects = shown_rects()
    assert 3 <= len(rects) < 60  # dense: some words labelled, not all
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            assert not a.intersects(b), (a, b)
    assert win.grab().save(str(artifacts_dir / "replay_dense_words.png"))
    tl.words_box.setXRange(0.5, 1.5, padding=0)  # zoomed in on a second of speech: its words all labelled
    qtbot.wait(20)
    in_view = [it for it, t in zip(tl._word_items, tl._word_t_s) if 0.5 <= t <= 1.4]
    assert in_view and all(it.isVisible() for it in in_view)
    win.close()


def test_review_and_annotate_say_uint8(qtbot, tmp_path, run_dir):  # noqa: F811
    from radgaze.app.annotate.window import AnnotateWindow, WorkItem
    from radgaze.app.review import ReviewWindow
    from radgaze.capture.annotation.labels import load_label_set
    from radgaze.capture.annotation.protocol import load_protocol

    path = _session_8bit(tmp_path / "s")
    review = ReviewWindow(run_dir, path.parent)
    qtbot.addWidget(review)
    review.resize(1366, 740)
    with qtbot.waitSignal(review.rows_ready, timeout=60_000):
        review.show()
    assert review.reader_view.corner_text().splitlines()[0] == "400 × 480  uint8"
    assert review.model_view.corner_text().splitlines()[0] == "400 × 480  uint8"
    review.close()
    annotate = AnnotateWindow([WorkItem(path, "c8")], load_protocol(), load_label_set())
    qtbot.addWidget(annotate)
    annotate.show()
    assert annotate.image_view.corner_text().splitlines()[0] == "400 × 480  uint8"
    annotate.close()
